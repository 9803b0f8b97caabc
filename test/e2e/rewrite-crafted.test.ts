/**
 * Crafted files of old formats (RDB 1, 2, 6, 7, 9: zipmap, ziplists, intsets, pre-quicklist
 * lists, quicklists of LZF ziplists, string-score zsets, v1 streams with groups) applied to a
 * real target two ways, which must give the same values:
 *   (a) RESTORE of the parser's payloads (payload mode), labelled with min(file version, 10);
 *   (b) the KeyRewriter's commands for the decode-mode chunks, sent in order.
 * The target checks payloads deeply (sanitize-dump-payload yes), so a malformed crafted
 * payload fails loudly instead of loading as garbage.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { RdbParser, NEED_DATA, type RdbParserOptions } from '../../src/rdb/parser.js';
import type { RdbEntry } from '../../src/rdb/entries.js';
import { KeyRewriter } from '../../src/rdb/rewrite.js';
import { dumpPayload } from '../../src/rdb/dump.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { RdbWriter, T, V, len, str, type StreamSpec, type Text } from '../helpers/rdb-writer.js';

// ---------------------------------------------------------------------------------------------
// Parsing and applying

function parseAll(data: Buffer, options: RdbParserOptions = {}, chunk = 97): RdbEntry[] {
  const parser = new RdbParser(options);
  const entries: RdbEntry[] = [];
  let at = 0;
  for (;;) {
    const e = parser.next();
    if (e === null) return entries;
    if (e === NEED_DATA) {
      if (at >= data.length) parser.end();
      else parser.push(data.subarray(at, (at += chunk)));
      continue;
    }
    entries.push(e);
  }
}

const RESTORE_DB = 1;
const REWRITE_DB = 2;

function show(args: readonly unknown[]): string {
  return args.map((a) => (Buffer.isBuffer(a) ? JSON.stringify(a.toString('latin1')) : String(a))).join(' ');
}

/** (a): every whole key through RESTORE ... ABSTTL REPLACE. */
async function applyByRestore(target: RedisServer, file: Buffer, fileVersion: number): Promise<number> {
  const client = target.client(RESTORE_DB);
  let restored = 0;
  for (const e of parseAll(file)) {
    if (e.kind === 'key-begin') assert.fail(`payload mode streamed ${e.key.toString('latin1')} (${e.reason})`);
    if (e.kind !== 'key') continue;
    const args = [e.key, e.expireAtMs ?? 0, dumpPayload(e.payload, Math.min(fileVersion, 10)), 'ABSTTL', 'REPLACE'];
    try {
      await client.callBuffer('RESTORE', ...args);
    } catch (err) {
      assert.fail(`RESTORE ${e.key.toString('latin1')} (type ${e.rdbType}) failed: ${(err as Error).message}`);
    }
    restored++;
  }
  return restored;
}

/** (b): every key decoded into chunks and rebuilt with the KeyRewriter's commands, in order. */
async function applyByRewrite(target: RedisServer, file: Buffer): Promise<{ keys: number; commands: string[] }> {
  const client = target.client(REWRITE_DB);
  const commands: string[] = [];
  let rewriter: KeyRewriter | null = null;
  let keys = 0;
  const send = async (cmds: (Buffer | string | number | bigint)[][]): Promise<void> => {
    for (const [name, ...args] of cmds) {
      const line = show([name, ...args]);
      commands.push(line);
      try {
        await client.callBuffer(String(name), ...args.map((a) => (typeof a === 'bigint' ? a.toString() : a)));
      } catch (err) {
        assert.fail(`rewrite command failed: ${line}: ${(err as Error).message}`);
      }
    }
  };
  for (const e of parseAll(file, { wantsPayload: () => false })) {
    switch (e.kind) {
      case 'key':
        assert.fail('decode mode gave a whole key');
        break;
      case 'key-begin':
        rewriter = new KeyRewriter(e);
        await send(rewriter.begin());
        keys++;
        break;
      case 'key-chunk':
        assert.ok(rewriter, 'chunk outside a key');
        await send(rewriter.chunk(e.chunk));
        break;
      case 'key-end':
        assert.ok(rewriter, 'key-end outside a key');
        assert.equal(rewriter.failure, null, `rewriter failure for ${rewriter.key.toString('latin1')}`);
        await send(rewriter.end());
        rewriter = null;
        break;
      default:
        break;
    }
  }
  return { keys, commands };
}

// ---------------------------------------------------------------------------------------------
// Reading values back

type Raw = Buffer | number | null | Raw[];

function text(v: Raw): unknown {
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  if (Array.isArray(v)) return v.map(text);
  return v;
}

function pairsToObject(flat: unknown): Record<string, unknown> {
  const a = flat as unknown[];
  const out: Record<string, unknown> = {};
  for (let i = 0; i < a.length; i += 2) out[String(a[i])] = a[i + 1];
  return out;
}

/**
 * XINFO STREAM FULL as nested objects, minus what commands cannot reproduce: consumers' seen and
 * active times (XCLAIM and CREATECONSUMER set them to now) and the radix-tree sizes (how entries
 * are packed into nodes). The counters a v1 stream does not record (entries-added,
 * max-deleted-entry-id, recorded-first-entry-id, group entries-read and lag) are split off into
 * `counters`, compared in a test of their own.
 */
function xinfoFull(raw: unknown): { data: Record<string, unknown>; counters: Record<string, unknown> } {
  const top = pairsToObject(raw);
  delete top['radix-tree-keys'];
  delete top['radix-tree-nodes'];
  const counters: Record<string, unknown> = {};
  for (const name of ['entries-added', 'max-deleted-entry-id', 'recorded-first-entry-id']) {
    counters[name] = top[name];
    delete top[name];
  }
  top['groups'] = (top['groups'] as unknown[]).map((g) => {
    const group = pairsToObject(g);
    counters[`group ${String(group['name'])} entries-read`] = group['entries-read'];
    counters[`group ${String(group['name'])} lag`] = group['lag'];
    delete group['entries-read'];
    delete group['lag'];
    group['consumers'] = (group['consumers'] as unknown[]).map((c) => {
      const consumer = pairsToObject(c);
      delete consumer['seen-time'];
      delete consumer['active-time'];
      return consumer;
    });
    return group;
  });
  return { data: top, counters };
}

interface KeyState {
  type: string;
  value: unknown;
  /** Absolute expiry in ms (from PTTL), or -1. */
  expireAtMs: number;
  xinfo?: Record<string, unknown>;
  /** Stream counters a v1 stream does not record (entries-added, max-deleted and first ids, entries-read, lag). */
  counters?: Record<string, unknown>;
}

async function readKey(target: RedisServer, db: number, key: Text): Promise<KeyState | null> {
  const c = target.client(db);
  const call = async (...args: (Text | number)[]): Promise<unknown> => text((await c.callBuffer(String(args[0]), ...args.slice(1))) as Raw);
  const type = String(await call('TYPE', key));
  if (type === 'none') return null;
  const pttl = Number(await call('PTTL', key));
  const state: KeyState = { type, value: null, expireAtMs: pttl < 0 ? -1 : Date.now() + pttl };
  switch (type) {
    case 'string':
      state.value = await call('GET', key);
      break;
    case 'list':
      state.value = await call('LRANGE', key, 0, -1);
      break;
    case 'set':
      state.value = ((await call('SMEMBERS', key)) as string[]).sort();
      break;
    case 'zset': {
      const flat = (await call('ZRANGE', key, 0, -1, 'WITHSCORES')) as string[];
      const pairs: [string, string][] = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
      state.value = pairs;
      break;
    }
    case 'hash': {
      const flat = (await call('HGETALL', key)) as string[];
      const pairs: [string, string][] = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
      state.value = pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      break;
    }
    case 'stream':
      state.value = await call('XRANGE', key, '-', '+');
      ({ data: state.xinfo, counters: state.counters } = xinfoFull(await call('XINFO', 'STREAM', key, 'FULL')));
      break;
    default:
      assert.fail(`unexpected type ${type}`);
  }
  return state;
}

// ---------------------------------------------------------------------------------------------
// Cases

const FUTURE_S = 2_000_000_000;
const FUTURE_MS = 4_102_444_800_123;
const T0 = 1_700_000_000_000;
const LONG = 'long-value-'.repeat(10);
const BINARY = Buffer.from([0x0d, 0x0a, 0x00, 0xff, 0xfe, 0x20, 0x22]);
const BIN = BINARY.toString('latin1');

interface Expected {
  type: string;
  value: unknown;
  expireAtMs?: number;
}

interface Case {
  name: string;
  version: number;
  build(w: RdbWriter): void;
  expected: Record<string, Expected>;
  /** Why the target cannot take this case, or null. */
  unsupported?(target: RedisServer): string | null;
}

/** Sorted [field, value] pairs, the way readKey returns a hash. */
function hashValue(pairs: [string, string][]): [string, string][] {
  return [...pairs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

const bigField = 'F'.repeat(300);

function v1Stream(): StreamSpec {
  const t = (ms: number, seq = 0): string => `${T0 + ms}-${seq}`;
  return {
    nodes: [
      {
        entries: [
          { id: t(0), fields: [['temp', '20'], ['hum', 'high']] },
          { id: t(0, 1), fields: [['temp', 21], ['hum', 'low']] },
          { id: t(5), fields: [['other', 'x']] },
          { id: t(6), fields: [['temp', '22'], ['hum', 'mid']], deleted: true },
          { id: t(7), fields: [['temp', '23'], ['hum', BINARY]], sameFields: false },
        ],
      },
      {
        // A master id below the first entry's (its own first entry is long gone), so the seq
        // deltas are negative; and master fields that no entry uses as a whole.
        master: t(999, 3),
        masterFields: ['a', 'z'],
        form: 'lzf',
        entries: [
          { id: t(1000), fields: [['a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']], deleted: true },
          { id: t(1000, 1), fields: [['a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaab']] },
          { id: t(1001, 7), fields: [['b', 'bin'], ['a', '3']] },
          { id: t(1002), fields: [['a', 'x'], ['z', 'y']] }, // SAMEFIELDS with this node's master fields
        ],
      },
    ],
    groups: [
      {
        name: 'g1',
        lastId: t(1000, 1),
        pel: [
          { id: t(0, 1), deliveryTimeMs: T0 + 10, deliveryCount: 2 },
          { id: t(6), deliveryTimeMs: T0 + 20, deliveryCount: 1 }, // its entry was deleted
          { id: t(1000, 1), deliveryTimeMs: T0 + 2000, deliveryCount: 3 },
        ],
        consumers: [
          { name: 'alice', seenTimeMs: T0 + 3000, pending: [t(0, 1), t(6)] },
          { name: 'bob', seenTimeMs: T0 + 3100, pending: [t(1000, 1)] },
          { name: 'carol', seenTimeMs: T0 + 3200, pending: [] },
        ],
      },
      { name: 'g2', lastId: '0-0', pel: [], consumers: [] },
    ],
  };
}

/** XRANGE of v1Stream(): the live entries. */
const V1_STREAM_ENTRIES = [
  [`${T0}-0`, ['temp', '20', 'hum', 'high']],
  [`${T0}-1`, ['temp', '21', 'hum', 'low']],
  [`${T0 + 5}-0`, ['other', 'x']],
  [`${T0 + 7}-0`, ['temp', '23', 'hum', BIN]],
  [`${T0 + 1000}-1`, ['a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaab']],
  [`${T0 + 1001}-7`, ['b', 'bin', 'a', '3']],
  [`${T0 + 1002}-0`, ['a', 'x', 'z', 'y']],
];

const CASES: Case[] = [
  {
    name: 'RDB 1: linked list, set and hash, type 3 zset with string scores (inf, -inf, decimal text), expiry in seconds',
    version: 1,
    build(w) {
      w.key('list', { type: T.LIST, body: Buffer.concat([len(4), str('a'), str(42, 'int8'), str(LONG, 'lzf'), str(BINARY)]) }, { expireSeconds: FUTURE_S });
      w.key('set', { type: T.SET, body: Buffer.concat([len(3), str('m1'), str(70000, 'int32'), str(BINARY)]) });
      w.key('zset', V.zset([['a', 1.5], ['c', Infinity], ['d', -Infinity], ['e', '-0.25'], ['f', '1.0000000000000001e-05'], [7, 3]]));
      w.key('hash', V.hash([['f1', 'v1'], ['f2', ''], ['n', 12]]));
      w.key('string', V.string(-2_000_000_000, 'int32'), { expireSeconds: FUTURE_S + 7 });
    },
    expected: {
      list: { type: 'list', value: ['a', '42', LONG, BIN], expireAtMs: FUTURE_S * 1000 },
      set: { type: 'set', value: ['70000', BIN, 'm1'].sort() },
      zset: {
        type: 'zset',
        value: [['d', '-inf'], ['e', '-0.25'], ['f', '1.0000000000000001e-05'], ['a', '1.5'], ['7', '3'], ['c', 'inf']],
      },
      hash: { type: 'hash', value: hashValue([['f1', 'v1'], ['f2', ''], ['n', '12']]) },
      string: { type: 'string', value: '-2000000000', expireAtMs: (FUTURE_S + 7) * 1000 },
    },
  },
  {
    name: 'RDB 2: zipmap hash (free bytes, 254+ lengths), ziplist list and zset, intsets of every width',
    version: 2,
    build(w) {
      w.key('hash:zipmap', V.hashZipmap([['name', 'zipmap'], ['n', '12'], ['free', 'v', 3], ['', 'empty field']]));
      w.key('hash:zipmap-big', V.hashZipmap([['name', 'zipmap'], [bigField, 'big']]), { expireSeconds: FUTURE_S });
      w.key('list:ziplist', V.listZiplist(['a', 0, 12, 13, -128, -200, 70000, -8388608, 2 ** 31, 2 ** 40, -(2n ** 63n), LONG, '']));
      // A ziplist zset is kept sorted by score (Redis does not re-sort it on load).
      w.key('zset:ziplist', V.zsetZiplist([['d', '-inf'], [5, -3], ['a', 1], ['b', '2.5'], ['c', 'inf']]));
      w.key('set:intset16', V.setIntset([3, 1, -2]));
      w.key('set:intset32', V.setIntset([100000, -5]));
      w.key('set:intset64', V.setIntset([1n, 2n ** 40n, -(2n ** 62n)]));
    },
    expected: {
      'hash:zipmap': { type: 'hash', value: hashValue([['name', 'zipmap'], ['n', '12'], ['free', 'v'], ['', 'empty field']]) },
      'hash:zipmap-big': { type: 'hash', value: hashValue([['name', 'zipmap'], [bigField, 'big']]), expireAtMs: FUTURE_S * 1000 },
      'list:ziplist': {
        type: 'list',
        value: ['a', '0', '12', '13', '-128', '-200', '70000', '-8388608', '2147483648', '1099511627776', '-9223372036854775808', LONG, ''],
      },
      'zset:ziplist': { type: 'zset', value: [['d', '-inf'], ['5', '-3'], ['a', '1'], ['b', '2.5'], ['c', 'inf']] },
      'set:intset16': { type: 'set', value: ['-2', '1', '3'] },
      'set:intset32': { type: 'set', value: ['-5', '100000'] },
      'set:intset64': { type: 'set', value: [`${-(2n ** 62n)}`, '1', `${2n ** 40n}`].sort() },
    },
  },
  {
    name: 'RDB 6: lists before quicklists (linked and ziplist), LZF ziplist hash, string-score zset, ms expiry',
    version: 6,
    build(w) {
      w.key('list:linked', V.list(['x', 'y', LONG], { form: 'auto' }), { expireMs: FUTURE_MS });
      w.key('list:ziplist', V.listZiplist(['a', 1, 'b'], 'raw'));
      w.key('hash:ziplist', V.hashZiplist([['f', 'v'], ['n', 5], ['long', LONG]], 'lzf'), { expireMs: FUTURE_MS + 1 });
      w.key('zset', V.zset([['m', '10'], ['n', -Infinity], ['o', '2.5e3']]));
    },
    expected: {
      'list:linked': { type: 'list', value: ['x', 'y', LONG], expireAtMs: FUTURE_MS },
      'list:ziplist': { type: 'list', value: ['a', '1', 'b'] },
      'hash:ziplist': { type: 'hash', value: hashValue([['f', 'v'], ['n', '5'], ['long', LONG]]), expireAtMs: FUTURE_MS + 1 },
      zset: { type: 'zset', value: [['n', '-inf'], ['m', '10'], ['o', '2500']] },
    },
  },
  {
    name: 'RDB 7: quicklist of LZF-compressed ziplist nodes',
    version: 7,
    build(w) {
      w.aux('redis-ver', '3.2.0').selectDb(0).resizeDb(2, 1);
      const compressible = ['q'.repeat(40), 'q'.repeat(30), 'r'.repeat(25)];
      w.key('list:quicklist', V.listQuicklist([compressible, ['a', 'b', 1], compressible, [-1, 2 ** 33, '']], (i) => (i % 2 === 0 ? 'lzf' : 'raw')), {
        expireMs: FUTURE_MS,
      });
      w.key('list:quicklist-one', V.listQuicklist([['only']]));
    },
    expected: {
      'list:quicklist': {
        type: 'list',
        value: ['q'.repeat(40), 'q'.repeat(30), 'r'.repeat(25), 'a', 'b', '1', 'q'.repeat(40), 'q'.repeat(30), 'r'.repeat(25), '-1', '8589934592', ''],
        expireAtMs: FUTURE_MS,
      },
      'list:quicklist-one': { type: 'list', value: ['only'] },
    },
  },
  {
    name: 'RDB 9: v1 streams with groups, PEL, consumers, deleted and SAMEFIELDS entries; an empty stream with a group',
    version: 9,
    build(w) {
      w.key('stream', V.stream(T.STREAM_LISTPACKS, v1Stream()), { expireMs: FUTURE_MS });
      w.key(
        'stream:empty',
        V.stream(T.STREAM_LISTPACKS, {
          nodes: [],
          lastId: `${T0}-5`,
          groups: [{ name: 'g', lastId: `${T0}-5`, pel: [], consumers: [{ name: 'c', seenTimeMs: T0, pending: [] }] }],
        }),
      );
    },
    expected: {
      stream: { type: 'stream', value: V1_STREAM_ENTRIES, expireAtMs: FUTURE_MS },
      'stream:empty': { type: 'stream', value: [] },
    },
  },
  {
    name: 'RDB 10: v2 stream (type 19) with recorded counters, groups with entries-read',
    version: 10,
    build(w) {
      const spec = v1Stream();
      w.key(
        'stream:v2',
        V.stream(T.STREAM_LISTPACKS_2, {
          ...spec,
          entriesAdded: 12,
          groups: spec.groups!.map((g, i) => ({ ...g, entriesRead: i === 0 ? 7 : 0 })),
        }),
      );
    },
    expected: {
      'stream:v2': { type: 'stream', value: V1_STREAM_ENTRIES },
    },
  },
  {
    name: 'RDB 12: hash-field TTLs (types 24 and 25)',
    version: 12,
    unsupported: (t) => (t.features.hashFieldTtl ? null : `target Redis ${t.version.join('.')} has no hash-field TTLs (HPEXPIREAT needs 7.4)`),
    build(w) {
      w.key('hash:meta', V.hashMetadata([['a', '1', FUTURE_MS], ['b', '2', 0], ['c', LONG, FUTURE_MS + 5]]));
      w.key('hash:lpex', V.hashListpackEx([['a', '1', FUTURE_MS + 9], ['b', '2', 0]]));
    },
    expected: {
      'hash:meta': { type: 'hash', value: hashValue([['a', '1'], ['b', '2'], ['c', LONG]]) },
      'hash:lpex': { type: 'hash', value: hashValue([['a', '1'], ['b', '2']]) },
    },
  },
];

// ---------------------------------------------------------------------------------------------

describe('crafted old-format files on a real target: RESTORE and rewrite commands agree', () => {
  let target: RedisServer;

  before(async () => {
    target = await startRedis({ config: { 'sanitize-dump-payload': 'yes' } });
  });
  after(async () => {
    await target?.stop();
    await stopAll();
  });

  for (const c of CASES) {
    it(c.name, async (t: TestContext) => {
      const reason = c.unsupported?.(target) ?? null;
      if (reason !== null) {
        t.skip(reason);
        return;
      }
      await target.client(RESTORE_DB).flushdb();
      await target.client(REWRITE_DB).flushdb();
      const w = new RdbWriter('REDIS', c.version);
      c.build(w);
      const file = w.finish();
      const keyNames = Object.keys(c.expected);

      const restored = await applyByRestore(target, file, c.version);
      const { keys: rewritten, commands } = await applyByRewrite(target, file);
      assert.equal(restored, keyNames.length, 'every key restored');
      assert.equal(rewritten, keyNames.length, 'every key rewritten');

      for (const key of keyNames) {
        const exp = c.expected[key]!;
        const a = await readKey(target, RESTORE_DB, key);
        const b = await readKey(target, REWRITE_DB, key);
        assert.ok(a, `${key}: exists after RESTORE`);
        assert.ok(b, `${key}: exists after the rewrite commands:\n${commands.join('\n')}`);
        assert.deepEqual({ type: a.type, value: a.value }, { type: exp.type, value: exp.value }, `${key}: RESTORE gives the expected value`);
        assert.deepEqual({ type: b.type, value: b.value }, { type: exp.type, value: exp.value }, `${key}: rewrite gives the expected value`);
        const wantExpiry = exp.expireAtMs ?? -1;
        for (const [how, s] of [['RESTORE', a], ['rewrite', b]] as const) {
          if (wantExpiry === -1) assert.equal(s.expireAtMs, -1, `${key}: no TTL after ${how}`);
          else assert.ok(Math.abs(s.expireAtMs - wantExpiry) < 5000, `${key}: expiry after ${how} is ${s.expireAtMs}, want ${wantExpiry}`);
        }
        if (a.xinfo || b.xinfo) {
          assert.deepEqual(
            b.xinfo,
            a.xinfo,
            `${key}: XINFO STREAM FULL after the rewrite commands differs from after RESTORE (seen/active times, radix-tree sizes and v1 counters excluded); commands:\n${commands.join('\n')}`,
          );
        }
      }

      // Field TTLs (only reached on a 7.4+ target).
      if (c.version >= 12) {
        for (const db of [RESTORE_DB, REWRITE_DB]) {
          const ttls = await target.client(db).call('HPEXPIRETIME', 'hash:meta', 'FIELDS', 3, 'a', 'b', 'c');
          assert.deepEqual(ttls, [FUTURE_MS, -1, FUTURE_MS + 5], `field TTLs in db ${db}`);
        }
      }
    });
  }

  it('stream counters (entries-added, max-deleted-entry-id, group entries-read and lag) agree both ways', async () => {
    await target.client(RESTORE_DB).flushdb();
    await target.client(REWRITE_DB).flushdb();
    const spec = v1Stream();
    const empty: StreamSpec = {
      nodes: [],
      lastId: `${T0}-5`,
      groups: [{ name: 'g', lastId: `${T0}-5`, pel: [], consumers: [{ name: 'c', seenTimeMs: T0, pending: [] }] }],
    };
    const v2 = { ...spec, entriesAdded: 12, groups: spec.groups!.map((g, i) => ({ ...g, entriesRead: i === 0 ? 7 : 0 })) };
    const files: [string, number, Buffer][] = [
      ['v1', 9, new RdbWriter('REDIS', 9).key('v1', V.stream(T.STREAM_LISTPACKS, spec)).key('v1:empty', V.stream(T.STREAM_LISTPACKS, empty)).finish()],
      ['v2', 10, new RdbWriter('REDIS', 10).key('v2', V.stream(T.STREAM_LISTPACKS_2, v2)).finish()],
    ];
    const differences: string[] = [];
    for (const [, version, file] of files) {
      await applyByRestore(target, file, version);
      await applyByRewrite(target, file);
    }
    for (const key of ['v1', 'v1:empty', 'v2']) {
      const a = (await readKey(target, RESTORE_DB, key))!;
      const b = (await readKey(target, REWRITE_DB, key))!;
      for (const [name, want] of Object.entries(a.counters!)) {
        // Loading an empty v1 stream records its first id as UINT64_MAX-UINT64_MAX (streamGetEdgeID
        // on no entries); no command can set the recorded first id, so this one cannot agree.
        if (key === 'v1:empty' && name === 'recorded-first-entry-id') continue;
        // A v1 file records no counters, and two of RESTORE's values cannot be reproduced by
        // commands: XSETID never lowers max-deleted-entry-id (raised by the XDEL that recreates
        // pending entries of deleted messages), and the loader's entries-read estimate for
        // groups has no command form (XGROUP CREATE without ENTRIESREAD leaves it unknown).
        // Documented in docs/architecture.md (limits).
        if (key.startsWith('v1') && (name === 'max-deleted-entry-id' || /entries-read|lag/.test(name))) continue;
        const got = b.counters![name];
        if (JSON.stringify(got) !== JSON.stringify(want)) differences.push(`${key}: ${name}: RESTORE gives ${JSON.stringify(want)}, rewrite gives ${JSON.stringify(got)}`);
      }
    }
    assert.deepEqual(
      differences,
      [],
      'BUG for the lead (src/rdb/rewrite.ts KeyRewriter.streamMeta): the rewrite path leaves stream counters that differ from ' +
        'what RESTORE of the same payload gives. For a v1 (type 15) stream, whose file records no counters, Redis loads ' +
        'entries-added = length, max-deleted-entry-id = 0-0 and estimates each group\'s entries-read; the rewriter instead ' +
        'keeps the side effects of its own XADD/XDEL (entries-added counts the deleted entries, max-deleted-entry-id = the ' +
        'last XDELed id) and creates groups without ENTRIESREAD (entries-read and lag nil). Differences:\n' +
        differences.join('\n'),
    );
  });

  it('a key whose expiry has passed by the time it is applied: gone both ways (RESTORE ABSTTL REPLACE drops it)', async () => {
    // The engine skips keys already expired when they begin, but a big key can expire while it
    // is streamed; KeyRewriter.end() then runs PEXPIREAT <past> on the temporary key (which
    // deletes it) and RENAME fails.
    await target.client(RESTORE_DB).flushdb();
    await target.client(REWRITE_DB).flushdb();
    for (const db of [RESTORE_DB, REWRITE_DB]) await target.client(db).set('gone', 'stale value already on the target');
    const file = new RdbWriter('REDIS', 9).key('gone', V.list(['a', 'b']), { expireMs: 1000 }).finish();
    await applyByRestore(target, file, 9);
    assert.equal(await target.client(RESTORE_DB).exists('gone'), 0, 'RESTORE with a past ABSTTL leaves no key');
    let failure: unknown = null;
    try {
      await applyByRewrite(target, file);
    } catch (err) {
      failure = err;
    }
    const exists = await target.client(REWRITE_DB).exists('gone');
    assert.ok(
      failure === null && exists === 0,
      'BUG for the lead (src/rdb/rewrite.ts KeyRewriter.end): for a key whose expireAtMs is already past when end() runs, ' +
        '"PEXPIREAT <temp> <past>" deletes the temporary key and the following "RENAME <temp> <key>" fails with ' +
        '"ERR no such key", leaving the old value of the key on the target (RESTORE ... ABSTTL REPLACE deletes it). ' +
        `Got: ${failure === null ? 'no error' : (failure as Error).message}; key still exists: ${exists === 1}. ` +
        'Renaming first and then PEXPIREAT on the real key (or DEL of the real key when the time has passed) would match RESTORE.',
    );
  });

  it('the v1 stream keeps its groups, PEL owners and delivery counts both ways', async () => {
    await target.client(RESTORE_DB).flushdb();
    await target.client(REWRITE_DB).flushdb();
    const file = new RdbWriter('REDIS', 9).key('s', V.stream(T.STREAM_LISTPACKS, v1Stream())).finish();
    await applyByRestore(target, file, 9);
    await applyByRewrite(target, file);
    for (const db of [RESTORE_DB, REWRITE_DB]) {
      const how = db === RESTORE_DB ? 'RESTORE' : 'rewrite';
      const c = target.client(db);
      const groups = (await c.call('XINFO', 'GROUPS', 's')) as unknown[][];
      assert.deepEqual(groups.map((g) => pairsToObject(g)['name']), ['g1', 'g2'], `${how}: groups`);
      const g1 = pairsToObject(groups[0]);
      assert.equal(g1['last-delivered-id'], `${T0 + 1000}-1`, `${how}: g1 last id`);
      assert.equal(g1['pending'], 3, `${how}: g1 pending count`);
      const pending = (await c.call('XPENDING', 's', 'g1', '-', '+', 10)) as [string, string, number, number][];
      assert.deepEqual(
        pending.map(([id, consumer, , count]) => [id, consumer, count]),
        [
          [`${T0}-1`, 'alice', 2],
          [`${T0 + 6}-0`, 'alice', 1],
          [`${T0 + 1000}-1`, 'bob', 3],
        ],
        `${how}: PEL with owners and delivery counts`,
      );
      const consumers = ((await c.call('XINFO', 'CONSUMERS', 's', 'g1')) as unknown[][]).map((x) => pairsToObject(x));
      assert.deepEqual(
        consumers.map((x) => [x['name'], x['pending']]),
        [
          ['alice', 2],
          ['bob', 1],
          ['carol', 0],
        ],
        `${how}: consumers`,
      );
      assert.equal(await c.xlen('s'), 7, `${how}: length`);
    }
  });
});
