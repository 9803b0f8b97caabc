/**
 * The RDB parser against files crafted byte by byte (test/helpers/rdb-writer.ts): every RDB
 * version from 1 to 13 (plus 14 for type 27) and Valkey's VALKEY080, every type id that
 * version can hold, every opcode, in both payload mode (exact bytes) and decode mode (exact
 * command-shaped chunks), fed whole, one byte at a time and in odd chunk sizes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import type { RdbParserOptions } from '../../src/rdb/parser.js';
import { parseAll } from '../helpers/rdb-parse.js';
import type { RdbEntry } from '../../src/rdb/entries.js';
import { RdbError } from '../../src/rdb/errors.js';
import { encodeListpack } from '../helpers/rdb-encoders.js';
import {
  OP,
  RdbWriter,
  T,
  V,
  len,
  moduleId,
  payloadOf,
  sid,
  str,
  streamDefaults,
  textOf,
  type KeyOptions,
  type Magic,
  type RdbValue,
  type SId,
  type StreamSpec,
  type StreamType,
  type Text,
} from '../helpers/rdb-writer.js';

// ---------------------------------------------------------------------------------------------
// Parsing and comparing


/** Buffers as latin1 text, bigints as '123n', undefined properties dropped: readable diffs. */
function norm(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.toString('latin1');
  if (typeof v === 'bigint') return `${v}n`;
  if (Array.isArray(v)) return v.map(norm);
  if (v instanceof RegExp) return v;
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = norm(x);
    return out;
  }
  return v;
}

/** `expected` with each RegExp that matches the actual string at its place replaced by it. */
function resolveRegExps(expected: unknown, actual: unknown): unknown {
  if (expected instanceof RegExp) return typeof actual === 'string' && expected.test(actual) ? actual : expected;
  if (Array.isArray(expected)) return expected.map((e, i) => resolveRegExps(e, Array.isArray(actual) ? actual[i] : undefined));
  if (expected !== null && typeof expected === 'object') {
    const a = (actual ?? {}) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(expected).map(([k, e]) => [k, resolveRegExps(e, a[k])]));
  }
  return expected;
}

/**
 * Entries as plain data through their public interface (a whole key is a class with getters),
 * with consecutive 'string' chunks of one key merged: how a string value is cut depends on how
 * the input arrived, only the concatenation is specified.
 */
function view(entries: RdbEntry[]): unknown[] {
  const out: unknown[] = [];
  for (const e of entries) {
    if (e.kind === 'key') {
      assert.ok(e.value.equals(e.payload.subarray(1)) && e.payload[0] === e.rdbType, 'payload = type byte + value');
      assert.equal(e.keyLength, e.key.length, 'keyLength');
      assert.equal(e.valueLength, e.value.length, 'valueLength');
      out.push({
        kind: e.kind,
        db: e.db,
        key: Buffer.from(e.key),
        rdbType: e.rdbType,
        logical: e.logical,
        expireAtMs: e.expireAtMs,
        idleSeconds: e.idleSeconds,
        lfuFreq: e.lfuFreq,
        payload: Buffer.from(e.payload),
        rdbVersion: e.rdbVersion,
      });
      continue;
    }
    const prev = out.at(-1) as RdbEntry | undefined;
    if (e.kind === 'key-chunk' && e.chunk.type === 'string' && prev?.kind === 'key-chunk' && prev.chunk.type === 'string') {
      prev.chunk.data = Buffer.concat([prev.chunk.data, e.chunk.data]);
      continue;
    }
    out.push(e.kind === 'key-chunk' && e.chunk.type === 'string' ? { kind: e.kind, chunk: { ...e.chunk } } : e);
  }
  return out;
}

function assertEntries(actual: RdbEntry[], expected: unknown[], message: string): void {
  const a = norm(view(actual));
  const e = norm(expected);
  assert.deepEqual(a, resolveRegExps(e, a), message);
}

const CHUNKINGS: { name: string; sizes: (data: Buffer) => number[] }[] = [
  { name: 'whole', sizes: (d) => [d.length] },
  { name: '1-byte', sizes: () => [1] },
  { name: '3/17/256', sizes: () => [3, 17, 256] },
];

const DECODE: RdbParserOptions = { wantsPayload: () => false };

// ---------------------------------------------------------------------------------------------
// A file plus the entries the parser must produce from it, in both modes

const LOGICAL: Record<number, string> = {
  0: 'string',
  1: 'list',
  10: 'list',
  14: 'list',
  18: 'list',
  2: 'set',
  11: 'set',
  20: 'set',
  3: 'zset',
  5: 'zset',
  12: 'zset',
  17: 'zset',
  4: 'hash',
  9: 'hash',
  13: 'hash',
  16: 'hash',
  22: 'hash',
  23: 'hash',
  24: 'hash',
  25: 'hash',
  15: 'stream',
  19: 'stream',
  21: 'stream',
  26: 'stream',
  27: 'stream',
  7: 'module',
};

/** Expected decode-mode chunks (strings stand for the bytes; norm() turns Buffers into text). */
type Chunk = Record<string, unknown>;
const C = {
  string: (data: Text): Chunk => ({ type: 'string', data }),
  list: (items: Text[]): Chunk => ({ type: 'list', items }),
  set: (members: Text[]): Chunk => ({ type: 'set', members }),
  zset: (pairs: [Text, string][]): Chunk => ({ type: 'zset', members: pairs.map((p) => p[0]), scores: pairs.map((p) => p[1]) }),
  hash: (pairs: [Text, Text][]): Chunk => ({ type: 'hash', fields: pairs.map((p) => p[0]), values: pairs.map((p) => p[1]) }),
  hashTtl: (triples: [Text, Text, number][]): Chunk => ({
    type: 'hash',
    fields: triples.map((p) => p[0]),
    values: triples.map((p) => p[1]),
    expireAtMs: triples.map((p) => p[2]),
  }),
  unrewritable: (reason: RegExp): Chunk => ({ type: 'unrewritable', reason }),
};

class Scenario {
  readonly w: RdbWriter;
  readonly payloadMode: unknown[] = [];
  readonly decodeMode: unknown[] = [];
  private db = 0;
  private keys = 0;

  constructor(
    readonly magic: Magic,
    readonly version: number,
  ) {
    this.w = new RdbWriter(magic, version);
  }

  get label(): string {
    return this.magic === 'REDIS' ? `RDB ${this.version}` : `VALKEY${String(this.version).padStart(3, '0')}`;
  }

  private both(e: unknown): void {
    this.payloadMode.push(e);
    this.decodeMode.push(e);
  }

  aux(name: string, value: Text | number, form: 'raw' | 'int' = 'raw'): this {
    this.w.aux(name, value, form);
    this.both({ kind: 'aux', name, value: textOf(value) });
    return this;
  }

  selectDb(db: number, width?: 6 | 14 | 32 | 64): this {
    this.w.selectDb(db, width);
    this.db = db;
    this.both({ kind: 'select-db', db });
    return this;
  }

  resizeDb(keys: number, expires: number): this {
    this.w.resizeDb(keys, expires);
    this.both({ kind: 'resize-db', db: this.db, keys, expires });
    return this;
  }

  function2(code: string): this {
    this.w.function2(code);
    this.both({ kind: 'function', code });
    return this;
  }

  moduleAux(name: string, encver: number): this {
    this.w.moduleAux(moduleId(name, encver), 2, [{ uint: 7 }, { sint: -3 }, { float: 0.5 }, { double: -2.25 }, { string: 'aux data' }]);
    this.both({ kind: 'module-aux', module: `${name} (encoding version ${encver})` });
    return this;
  }

  /** Opcodes the parser reads past without an entry (SLOT_INFO, SLOT_IMPORT). */
  silent(write: (w: RdbWriter) => void): this {
    write(this.w);
    return this;
  }

  /**
   * A key: `chunks` is what decode mode must produce for it (payload mode must hand on the
   * type byte + value bytes exactly). `classes` are the KEY_META class names expected.
   */
  key(name: Text, value: RdbValue, chunks: Chunk[], o: KeyOptions = {}): this {
    this.w.key(name, value, o);
    this.keys++;
    if (o.keyMeta) {
      this.both({ kind: 'key-meta-skipped', db: this.db, key: name, classes: o.keyMeta.map((c) => `${c.name} v${c.version}`) });
    }
    const header = {
      db: this.db,
      key: name,
      rdbType: value.type,
      logical: LOGICAL[value.type],
      expireAtMs: o.expireMs ?? (o.expireSeconds !== undefined ? o.expireSeconds * 1000 : null),
      idleSeconds: o.idle ?? null,
      lfuFreq: o.freq ?? null,
    };
    this.payloadMode.push({ kind: 'key', ...header, payload: payloadOf(value), rdbVersion: this.version });
    this.decodeMode.push({ kind: 'key-begin', ...header, reason: 'not-restorable' });
    for (const c of chunks) this.decodeMode.push({ kind: 'key-chunk', chunk: c });
    this.decodeMode.push({ kind: 'key-end' });
    return this;
  }

  finish(): Buffer {
    const end = { kind: 'end', checksumVerified: this.magic === 'VALKEY' || this.version >= 5 ? true : null, keys: this.keys };
    this.both(end);
    return this.w.finish();
  }
}

// ---------------------------------------------------------------------------------------------
// Contents

const FUTURE_S = 2_000_000_000; // 2033, in seconds
const FUTURE_MS = 4_102_444_800_123; // 2100, in ms
const T0 = 1_700_000_000_000; // stream ids (beyond 32 bits: 64-bit lengths)
const BINARY = Buffer.from([0x0d, 0x0a, 0x00, 0xff, 0xfe, 0x20, 0x22]);
const LONG = 'long-value-'.repeat(10); // 110 bytes: 14-bit lengths, and LZF compressible

/** A value whose body is a list of already-encoded parts (mixed string forms). */
function raw(type: number, ...parts: Buffer[]): RdbValue {
  return { type, body: Buffer.concat(parts) };
}

function addStrings(s: Scenario): void {
  const ms = s.version >= 3;
  s.key('str:raw', V.string('hello world'), [C.string('hello world')], ms ? { expireMs: FUTURE_MS } : { expireSeconds: FUTURE_S });
  s.key('str:expire-seconds', V.string('old form'), [C.string('old form')], { expireSeconds: FUTURE_S + 1 });
  s.key('str:int8', V.string(-5, 'int8'), [C.string('-5')]);
  s.key('str:int8-max', V.string(127, 'int8'), [C.string('127')]);
  s.key('str:int16', V.string(-1234, 'int16'), [C.string('-1234')]);
  s.key('str:int32', V.string(-2_000_000_000, 'int32'), [C.string('-2000000000')]);
  s.key('str:int32-max', V.string(2_147_483_647, 'int32'), [C.string('2147483647')]);
  s.key('str:lzf', V.string(LONG, 'lzf'), [C.string(LONG)]);
  s.key('str:empty', V.string(''), [C.string('')]);
  s.key('str:14bit', V.string(LONG), [C.string(LONG)]);
  s.key('str:32bit-len', V.string('thirty-two', 'raw', 32), [C.string('thirty-two')]);
  s.key('str:64bit-len', V.string('sixty-four', 'raw', 64), [C.string('sixty-four')]);
  s.key(BINARY, V.string(BINARY), [C.string(BINARY)]);
  s.key('12', V.string('int-looking key'), [C.string('int-looking key')], { keyForm: 'int' });
  s.key('lzf-key-name-'.repeat(4), V.string('v'), [C.string('v')], { keyForm: 'lzf' });
}

function addV1Collections(s: Scenario): void {
  s.key(
    'list:linked',
    raw(T.LIST, len(5), str('a'), str(42, 'int8'), str(LONG, 'lzf'), str(''), str(BINARY)),
    [C.list(['a', '42', LONG, '', BINARY])],
  );
  s.key('list:64bit-count', V.list(['x', 'y'], { countWidth: 64 }), [C.list(['x', 'y'])]);
  s.key('set:linked', raw(T.SET, len(3), str('m1'), str(70000, 'int32'), str(BINARY)), [C.set(['m1', '70000', BINARY])]);
  s.key(
    'zset:string-scores',
    V.zset([
      ['a', 1.5],
      ['b', Number.NaN],
      ['c', Infinity],
      ['d', -Infinity],
      ['e', '-0.25'],
      ['f', '1.0000000000000001e-05'],
      [7, 3],
    ]),
    [C.zset([['a', '1.5'], ['b', 'nan'], ['c', 'inf'], ['d', '-inf'], ['e', '-0.25'], ['f', '1.0000000000000001e-05'], ['7', '3']])],
  );
  s.key('hash:linked', V.hash([['f1', 'v1'], ['f2', ''], ['n', 12]], { countWidth: 32 }), [C.hash([['f1', 'v1'], ['f2', ''], ['n', '12']])]);
  s.key('hash:mixed-forms', raw(T.HASH, len(2), str('f', 'raw', 14), str(-1, 'int8'), str(LONG, 'lzf'), str(LONG, 'lzf')), [
    C.hash([['f', '-1'], [LONG, LONG]]),
  ]);
}

function addV2Blobs(s: Scenario): void {
  const bigField = 'F'.repeat(300); // a 254 + u32 zipmap length
  s.key(
    'hash:zipmap',
    V.hashZipmap([['name', 'zipmap'], ['n', '12'], ['free', 'v', 3], [bigField, 'big'], ['', 'empty field']]),
    [C.hash([['name', 'zipmap'], ['n', '12'], ['free', 'v'], [bigField, 'big'], ['', 'empty field']])],
  );
  s.key('hash:zipmap-lzf', V.hashZipmap([['aaaaaaaaaa', 'aaaaaaaaaaaaaaaaaaaa'], ['aaaaaaaaab', 'aaaaaaaaaaaaaaaaaaaa']], 'lzf'), [
    C.hash([['aaaaaaaaaa', 'aaaaaaaaaaaaaaaaaaaa'], ['aaaaaaaaab', 'aaaaaaaaaaaaaaaaaaaa']]),
  ]);
  s.key(
    'list:ziplist',
    V.listZiplist(['a', 0, 12, 13, -128, -200, 70000, -8388608, 2 ** 31, 2 ** 40, -(2n ** 63n), LONG, '']),
    [C.list(['a', '0', '12', '13', '-128', '-200', '70000', '-8388608', '2147483648', '1099511627776', '-9223372036854775808', LONG, ''])],
  );
  s.key('set:intset16', V.setIntset([3, 1, -2]), [C.set(['-2', '1', '3'])]);
  s.key('set:intset32', V.setIntset([100000, -5]), [C.set(['-5', '100000'])]);
  s.key('set:intset64', V.setIntset([1n, 2n ** 40n, -(2n ** 62n)], 'raw'), [C.set([`${-(2n ** 62n)}`, '1', `${2n ** 40n}`])]);
  s.key(
    'zset:ziplist',
    V.zsetZiplist([[5, -3], ['a', 1], ['b', '2.5'], ['c', 'inf']]), // sorted by score, as Redis keeps them
    [C.zset([['5', '-3'], ['a', '1'], ['b', '2.5'], ['c', 'inf']])],
  );
}

function addV6(s: Scenario): void {
  s.key('hash:ziplist', V.hashZiplist([['f', 'v'], ['n', 5], ['long', LONG]], 'lzf'), [C.hash([['f', 'v'], ['n', '5'], ['long', LONG]])]);
}

function addV7(s: Scenario): void {
  const compressible = ['q'.repeat(40), 'q'.repeat(30), 'r'.repeat(25)];
  s.key(
    'list:quicklist',
    V.listQuicklist([['a', 'b', 1], compressible, [-1, 2 ** 33, '']], (i) => (i === 1 ? 'lzf' : 'raw')),
    [C.list(['a', 'b', '1', ...compressible, '-1', '8589934592', ''])],
  );
}

function addV8(s: Scenario): void {
  s.key(
    'zset:binary-scores',
    V.zset2([
      ['x', 1.5],
      ['y', -Infinity],
      ['z', Infinity],
      ['w', 0.1],
      ['big', 1e300],
      ['int', 2 ** 53 + 2],
      ['negzero', -0],
      ['tiny', 5e-324],
    ]),
    [
      C.zset([
        ['x', '1.5'],
        ['y', '-inf'],
        ['z', 'inf'],
        ['w', '0.1'],
        ['big', '1e+300'],
        ['int', '9007199254740994'],
        ['negzero', '-0'],
        ['tiny', '5e-324'],
      ]),
    ],
  );
  s.key(
    'module:json',
    V.module2(moduleId('ReJSON-RL', 3), [{ uint: 5 }, { sint: -7 }, { float: 1.5 }, { double: 2.5 }, { string: '{"a":1}' }, { uint: 2n ** 63n }]),
    [C.unrewritable(/ReJSON-RL \(encoding version 3\)/)],
  );
}

/** A stream spec exercising every node and group feature of `type`. */
function streamSpec(type: StreamType, withUnowned: boolean): StreamSpec {
  const t = (ms: number, seq = 0): string => `${T0 + ms}-${seq}`;
  return {
    nodes: [
      {
        entries: [
          { id: t(0), fields: [['temp', '20'], ['hum', 'high']] },
          { id: t(0, 1), fields: [['temp', 21], ['hum', 'low']] }, // SAMEFIELDS
          { id: t(5), fields: [['other', 'x']] },
          { id: t(6), fields: [['temp', '22'], ['hum', 'mid']], deleted: true }, // deleted SAMEFIELDS
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
        entriesRead: 5,
        pel: [
          { id: t(0, 1), deliveryTimeMs: T0 + 10, deliveryCount: 2 },
          { id: t(6), deliveryTimeMs: T0 + 20, deliveryCount: 1 }, // its entry is deleted
          ...(withUnowned ? [{ id: t(7), deliveryTimeMs: T0 + 30, deliveryCount: 4 }] : []),
          { id: t(1000, 1), deliveryTimeMs: T0 + 2000, deliveryCount: 3 },
        ],
        consumers: [
          { name: 'alice', seenTimeMs: T0 + 3000, activeTimeMs: T0 + 2500, pending: [t(0, 1), t(6)] },
          { name: 'bob', seenTimeMs: T0 + 3100, activeTimeMs: T0 + 2600, pending: [t(1000, 1)] },
          { name: 'carol', seenTimeMs: T0 + 3200, pending: [] },
        ],
        nacked: [t(5), t(7)],
      },
      { name: 'empty-group', lastId: '0-0', entriesRead: 0, pel: [], consumers: [] },
    ],
    ...(type >= 26
      ? {
          idmp: {
            durationSeconds: 100,
            maxEntries: 1000,
            producers: [
              { pid: 'producer-1', entries: [{ iid: 'iid-1', id: t(0) }, { iid: 'iid-2', id: t(5) }] },
              { pid: 'producer-2', entries: [] },
            ],
            iidsAdded: 2,
            iidsDuplicates: 1,
          },
        }
      : {}),
  };
}

/** What decode mode gives for a stream spec: its entries (deleted ones flagged), then the meta. */
function streamChunks(type: StreamType, spec: StreamSpec): Chunk[] {
  const id = (x: SId): { ms: bigint; seq: bigint } => sid(x);
  const d = streamDefaults(spec);
  const entries = spec.nodes.flatMap((n) =>
    n.entries.map((e) => ({ id: id(e.id), fields: e.fields.flat().map(textOf), ...(e.deleted ? { deleted: true } : {}) })),
  );
  const v1 = type === 15;
  const groups = (spec.groups ?? []).map((g) => {
    const owner = new Map<string, Text>();
    for (const c of g.consumers) for (const p of c.pending) owner.set(`${sid(p).ms}-${sid(p).seq}`, c.name);
    return {
      name: g.name,
      lastId: id(g.lastId),
      entriesRead: v1 ? null : BigInt(g.entriesRead ?? 0),
      pending: g.pel.map((p) => ({
        id: id(p.id),
        deliveryTimeMs: BigInt(p.deliveryTimeMs),
        deliveryCount: p.deliveryCount,
        consumer: owner.get(`${sid(p.id).ms}-${sid(p.id).seq}`) ?? null,
      })),
      consumers: g.consumers.map((c) => ({
        name: c.name,
        seenTimeMs: BigInt(c.seenTimeMs),
        activeTimeMs: type >= 21 ? BigInt(c.activeTimeMs ?? c.seenTimeMs) : null,
        pending: c.pending.map(id),
      })),
    };
  });
  const out: Chunk[] = [];
  if (entries.length > 0) out.push({ type: 'stream-entries', entries });
  out.push({
    type: 'stream-meta',
    meta: {
      length: d.length,
      lastId: id(d.lastId),
      firstId: v1 ? null : id(d.firstId),
      maxDeletedId: v1 ? null : id(d.maxDeletedId),
      entriesAdded: v1 ? null : d.entriesAdded,
      groups,
    },
  });
  return out;
}

function addStream(s: Scenario, type: StreamType): void {
  const spec = streamSpec(type, true);
  s.key(`stream:type${type}`, V.stream(type, spec), streamChunks(type, spec), { expireMs: FUTURE_MS });
  if (type !== 15) {
    // An empty stream (every entry trimmed) that still has a group.
    const empty: StreamSpec = {
      nodes: [],
      lastId: `${T0}-5`,
      maxDeletedId: `${T0}-5`,
      entriesAdded: 6,
      groups: [{ name: 'g', lastId: `${T0}-5`, entriesRead: 6, pel: [], consumers: [{ name: 'c', seenTimeMs: T0, pending: [] }] }],
    };
    s.key(`stream:empty-type${type}`, V.stream(type, empty), streamChunks(type, empty));
  }
}

function addV9(s: Scenario): void {
  s.key('str:idle', V.string('idle'), [C.string('idle')], { idle: 12345 });
  s.key('str:idle-32bit', V.string('idle2'), [C.string('idle2')], { idle: 100_000, expireMs: FUTURE_MS });
  s.key('str:freq', V.string('freq'), [C.string('freq')], { freq: 200 });
  addStream(s, 15);
}

function addV10(s: Scenario): void {
  s.key('hash:listpack', V.hashListpack([['f', 'v'], ['n', -4096], ['long', LONG]]), [C.hash([['f', 'v'], ['n', '-4096'], ['long', LONG]])]);
  s.key('zset:listpack', V.zsetListpack([['c', '-inf'], [LONG, 0], ['a', 1], ['b', '2.5']], 'lzf'), [
    C.zset([['c', '-inf'], [LONG, '0'], ['a', '1'], ['b', '2.5']]),
  ]);
  const plain = 'P'.repeat(200);
  s.key(
    'list:quicklist2',
    V.listQuicklist2([{ packed: ['a', 1, 2 ** 40] }, { plain }, { packed: ['', BINARY] }]),
    [C.list(['a', '1', '1099511627776', plain, '', BINARY])],
  );
  s.key('list:quicklist2-lzf', V.listQuicklist2([{ packed: ['zzzzzzzzzzzzzzzzzzzz', 'zzzzzzzzzzzzzzzzzzzzzzz'] }], 'lzf'), [
    C.list(['zzzzzzzzzzzzzzzzzzzz', 'zzzzzzzzzzzzzzzzzzzzzzz']),
  ]);
  addStream(s, 19);
}

function addV11(s: Scenario): void {
  s.key('set:listpack', V.setListpack(['a', 5, BINARY, '']), [C.set(['a', '5', BINARY, ''])]);
  addStream(s, 21);
}

const TTL1 = 1_900_000_000_000;
const TTL2 = 1_900_000_123_456;

function addV12(s: Scenario): void {
  s.key('hash:meta-pre-ga', V.hashMetadataPreGa([['a', '1', TTL1], ['b', '2', 0], ['c', LONG, TTL2]]), [
    C.hashTtl([['a', '1', TTL1], ['b', '2', 0], ['c', LONG, TTL2]]),
  ]);
  s.key('hash:lpex-pre-ga', V.hashListpackExPreGa([['a', '1', TTL1], ['b', 'x', 0]]), [C.hashTtl([['a', '1', TTL1], ['b', 'x', 0]])]);
  s.key('hash:meta', V.hashMetadata([['a', '1', TTL2], ['b', '2', 0], ['c', '3', TTL1]]), [
    C.hashTtl([['a', '1', TTL2], ['b', '2', 0], ['c', '3', TTL1]]),
  ]);
  s.key('hash:meta-no-ttl', V.hashMetadata([['a', '1', 0]]), [C.hash([['a', '1']])], { expireMs: FUTURE_MS });
  s.key('hash:lpex', V.hashListpackEx([['a', '1', TTL1], ['b', '2', 0], ['c', '3', TTL2]]), [
    C.hashTtl([['a', '1', TTL1], ['b', '2', 0], ['c', '3', TTL2]]),
  ]);
  s.key('hash:lpex-no-ttl', V.hashListpackEx([['a', '1', 0]]), [C.hash([['a', '1']])]);
}

/** The file of one version, with everything that version can hold. */
function scenario(magic: Magic, version: number): Scenario {
  const s = new Scenario(magic, version);
  const v = magic === 'VALKEY' ? 11 : version; // Valkey 80 holds what Redis RDB 11 holds, plus HASH_2
  if (v >= 7) s.aux('redis-ver', '7.0.0').aux('redis-bits', 64, 'int').aux('aof-base', 0, 'int');
  if (magic === 'VALKEY') s.aux('valkey-ver', '9.0.0');
  if (v >= 9) s.moduleAux('ReJSON-RL', 3);
  if (v >= 10) s.function2('#!lua name=mylib\nredis.register_function("f", function() return 1 end)');
  s.selectDb(0);
  if (v >= 7) s.resizeDb(40, 3);
  if (v >= 12 || magic === 'VALKEY') s.silent((w) => w.slotInfo(1234, 10, 2));
  if (magic === 'VALKEY') s.silent((w) => w.slotImport('import-job-1', [[0, 100], [5000, 16383]]));
  addStrings(s);
  addV1Collections(s);
  if (v >= 2) addV2Blobs(s);
  if (v >= 6) addV6(s);
  if (v >= 7) addV7(s);
  if (v >= 8) addV8(s);
  if (v >= 9) addV9(s);
  if (v >= 10) addV10(s);
  if (v >= 11) addV11(s);
  if (magic === 'VALKEY') {
    s.key('hash:valkey-hash2', V.hash2Valkey([['a', '1', TTL1], ['b', '2', 0], ['c', LONG, TTL2]]), [
      C.hashTtl([['a', '1', TTL1], ['b', '2', 0], ['c', LONG, TTL2]]),
    ]);
    s.key('hash:valkey-hash2-no-ttl', V.hash2Valkey([['a', '1', 0]]), [C.hash([['a', '1']])]);
  }
  if (magic === 'REDIS' && v >= 12) addV12(s);
  if (magic === 'REDIS' && v >= 13) {
    addStream(s, 26);
    s.key('str:with-key-meta', V.string('meta'), [C.string('meta')], {
      expireMs: FUTURE_MS,
      keyMeta: [
        { name: 'abcd', version: 1, values: [{ uint: 5 }] },
        { name: 'Zz_-', version: 31, values: [{ string: 'm' }, { double: 1 }, { float: 2 }, { sint: -1 }] },
        { name: 'AAAA', version: 0, values: [] },
      ],
    });
  }
  if (magic === 'REDIS' && v >= 14) addStream(s, 27);
  if (v >= 7) s.aux('after-keys', 'aux between dbs');
  if (v >= 9) s.moduleAux('mymodtype', 1023);
  s.selectDb(15);
  s.key('db15:str', V.string('in db 15'), [C.string('in db 15')], v >= 3 ? { expireMs: FUTURE_MS, ...(v >= 9 ? { idle: 3 } : {}) } : {});
  if (v >= 2) s.key('db15:set', V.setIntset([1, 2]), [C.set(['1', '2'])]);
  s.selectDb(200, 14);
  s.key('db200:list', V.list(['x']), [C.list(['x'])]);
  return s;
}

const FILES: [Magic, number][] = [
  ['REDIS', 1],
  ['REDIS', 2],
  ['REDIS', 6],
  ['REDIS', 7],
  ['REDIS', 8],
  ['REDIS', 9],
  ['REDIS', 10],
  ['REDIS', 11],
  ['REDIS', 12],
  ['REDIS', 13],
  ['REDIS', 14],
  ['VALKEY', 80],
];

// ---------------------------------------------------------------------------------------------

describe('RDB parser on crafted files of every version', () => {
  for (const [magic, version] of FILES) {
    const s = scenario(magic, version);
    const file = s.finish();
    describe(s.label, () => {
      for (const chunking of CHUNKINGS) {
        it(`payload mode, ${chunking.name}: every key whole, payload = the exact type byte + value bytes`, () => {
          assertEntries(parseAll(file, chunking.sizes(file)), s.payloadMode, `${s.label} payload mode, ${chunking.name}`);
        });
        it(`decode mode, ${chunking.name}: every key as its exact chunks`, () => {
          assertEntries(parseAll(file, chunking.sizes(file), DECODE), s.decodeMode, `${s.label} decode mode, ${chunking.name}`);
        });
      }
    });
  }

  it('covers every type id 0-5, 7 and 9-27 across the files', () => {
    const seen = new Set<number>();
    for (const [magic, version] of FILES) {
      const s = scenario(magic, version);
      for (const e of s.payloadMode as { kind: string; rdbType?: number }[]) if (e.kind === 'key') seen.add(e.rdbType!);
    }
    const want = [0, 1, 2, 3, 4, 5, 7, ...Array.from({ length: 19 }, (_, i) => 9 + i)];
    assert.deepEqual([...seen].sort((a, b) => a - b), want);
  });
});

describe('RDB parser on crafted files: specific behaviour', () => {
  it('an RDB < 5 file has no CRC trailer and ends with checksumVerified null', () => {
    for (const version of [1, 2, 3, 4]) {
      const file = new RdbWriter('REDIS', version).key('k', V.string('v')).finish();
      assert.equal(file.at(-1), 0xff, 'no trailer after EOF');
      const end = parseAll(file, [file.length]).at(-1);
      assert.deepEqual(end, { kind: 'end', checksumVerified: null, keys: 1 }, `RDB ${version}`);
    }
  });

  it('an RDB >= 5 file with a zero CRC ends with checksumVerified null, a wrong one fails', () => {
    const w = (): RdbWriter => new RdbWriter('REDIS', 6).key('k', V.string('v'));
    const zero = w().finish({ zeroChecksum: true });
    assert.deepEqual(parseAll(zero, [7]).at(-1), { kind: 'end', checksumVerified: null, keys: 1 });
    const bad = w().finish();
    bad[bad.length - 8]! ^= 1;
    assert.throws(() => parseAll(bad, [bad.length]), /CRC64/);
  });

  it('KEY_META comes out as key-meta-skipped before its key, in payload and decode mode', () => {
    const file = new RdbWriter('REDIS', 13)
      .key('k', V.list(['a']), { keyMeta: [{ name: 'mEta', version: 2, values: [{ string: 'x' }] }] })
      .key('plain', V.string('p'))
      .finish();
    for (const options of [{}, DECODE]) {
      const kinds = parseAll(file, [5], options).map((e) => e.kind + ('key' in e ? `:${e.key.toString()}` : ''));
      const first = kinds.indexOf('key-meta-skipped:k');
      assert.ok(first >= 0, `key-meta-skipped entry present: ${kinds.join(', ')}`);
      assert.match(kinds[first + 1]!, /^key(-begin)?:k$/, 'right before the key');
      assert.equal(kinds.filter((k) => k.startsWith('key-meta-skipped')).length, 1, 'only for the key that has it');
    }
    const meta = parseAll(file, [file.length]).find((e) => e.kind === 'key-meta-skipped');
    assert.deepEqual(norm(meta), { kind: 'key-meta-skipped', db: 0, key: 'k', classes: ['mEta v2'] });
  });

  it('opcode 243 before RDB 13 under REDIS magic fails, naming KEY_META', () => {
    const file = new RdbWriter('REDIS', 12).raw(Buffer.from([OP.KEY_META]), len(0)).key('k', V.string('v')).finish();
    assert.throws(() => parseAll(file, [file.length]), (e: unknown) => e instanceof RdbError && /KEY_META/.test(e.message));
  });

  it('Valkey SLOT_IMPORT is read past without an entry', () => {
    const file = new RdbWriter('VALKEY', 80).slotImport('job', [[1, 2]]).key('k', V.string('v')).slotImport('', []).finish();
    const kinds = parseAll(file, [1]).map((e) => e.kind);
    assert.deepEqual(kinds, ['key', 'end']);
  });

  it('under VALKEY magic, the Redis-only type ids 23-27 are rejected, not read with Redis layouts', () => {
    // Valkey numbers its own types from 22 up (HASH_2 = 22 in RDB 80, PATH_HASH = 23 in RDB 81):
    // a VALKEY file's type 23+ is not Redis's HASH_LISTPACK_EX_PRE_GA, HASH_METADATA, ...
    const values: [number, RdbValue][] = [
      [23, V.hashListpackExPreGa([['a', '1', 0]])],
      [24, V.hashMetadata([['a', '1', 0]])],
      [25, V.hashListpackEx([['a', '1', 0]])],
      [26, V.stream(26, { nodes: [{ entries: [{ id: '1-1', fields: [['a', 'b']] }] }] })],
      [27, V.stream(27, { nodes: [{ entries: [{ id: '1-1', fields: [['a', 'b']] }] }] })],
    ];
    const accepted: number[] = [];
    for (const [type, value] of values) {
      for (const version of [80, 81]) {
        const file = new RdbWriter('VALKEY', version).key('k', value).finish();
        try {
          parseAll(file, [file.length]);
          accepted.push(type);
        } catch (e) {
          assert.match((e as Error).message, new RegExp(`type ${type} in VALKEY RDB version ${version} is not supported`));
        }
      }
    }
    assert.deepEqual(
      [...new Set(accepted)],
      [],
      'BUG for the lead (src/rdb/parser.ts logicalType, and the LOGICAL table / skipValue / decodeValue dispatch): under ' +
        'VALKEY magic only type 22 is special-cased; types 23-27 are parsed with the Redis 7.4/8.6 layouts, so a Valkey ' +
        'RDB 81 (9.2) PATH_HASH (type 23) would be read as a Redis HASH_LISTPACK_EX_PRE_GA instead of being rejected ' +
        'with "type 23 in VALKEY RDB version 81 is not supported". Accepted type ids: ' +
        [...new Set(accepted)].join(', '),
    );
  });

  it('module type 7: whole payload in payload mode, unrewritable (naming the module) in decode mode', () => {
    const mod = V.module2(moduleId('graphdata', 9), [{ string: 'node' }, { uint: 1 }, { double: 0.5 }]);
    const file = new RdbWriter('REDIS', 9).key('m', mod).key('after', V.string('ok')).finish();
    const payload = parseAll(file, [2]);
    assert.deepEqual(norm(payload.map((e) => e.kind)), ['key', 'key', 'end']);
    const m = payload[0]!;
    assert.ok(m.kind === 'key' && m.logical === 'module' && m.payload.equals(payloadOf(mod)), 'module key read past whole');
    const decoded = parseAll(file, [2], DECODE);
    assert.deepEqual(view(decoded).map((e) => (e as RdbEntry).kind), ['key-begin', 'key-chunk', 'key-end', 'key-begin', 'key-chunk', 'key-end', 'end']);
    const chunk = decoded[1]!;
    assert.ok(chunk.kind === 'key-chunk' && chunk.chunk.type === 'unrewritable', 'unrewritable chunk');
    assert.match(chunk.chunk.type === 'unrewritable' ? chunk.chunk.reason : '', /graphdata \(encoding version 9\)/);
  });

  it('MODULE_AUX gives a module-aux entry with the module name', () => {
    const file = new RdbWriter('REDIS', 9).moduleAux(moduleId('ReJSON-RL', 3), 1, [{ string: 'x' }]).finish();
    assert.deepEqual(parseAll(file, [1])[0], { kind: 'module-aux', module: 'ReJSON-RL (encoding version 3)' });
  });

  it('type 6 (MODULE pre-GA) fails with a clear message', () => {
    const file = new RdbWriter('REDIS', 8).key('ok', V.string('v')).raw(Buffer.from([T.MODULE_PRE_GA]), str('m'), len(0)).finish();
    for (const options of [{}, DECODE]) {
      assert.throws(
        () => parseAll(file, [file.length], options),
        (e: unknown) => e instanceof RdbError && /type 6 \(MODULE, Redis 4\.0 pre-release\) cannot be skipped/.test(e.message),
      );
    }
  });

  it('opcode 246 (FUNCTION pre-GA) fails with a clear message', () => {
    const file = new RdbWriter('REDIS', 10).raw(Buffer.from([OP.FUNCTION_PRE_GA]), str('lib')).finish();
    assert.throws(
      () => parseAll(file, [file.length]),
      (e: unknown) => e instanceof RdbError && /FUNCTION \(246\).*7\.0 release candidate/.test(e.message) && e.offset === 9,
    );
  });

  it('64-bit lengths work everywhere a length goes', () => {
    const w = new RdbWriter('REDIS', 10);
    w.selectDb(3, 64).raw(Buffer.from([OP.RESIZEDB]), len(2, 64), len(1, 64));
    w.raw(Buffer.from([OP.AUX]), str('name', 'raw', 64), str('value', 'raw', 64));
    w.raw(Buffer.from([OP.IDLE]), len(77, 64));
    const listBody = Buffer.concat([len(2, 64), str('a', 'raw', 64), str('bb', 'raw', 64)]);
    w.raw(Buffer.from([T.LIST]), str('key', 'raw', 64), listBody);
    const hash = { type: T.HASH_LISTPACK, body: str(encodeListpack(['f', 'v']), 'raw', 64) };
    w.key('h', hash);
    const file = w.finish();
    const payload = parseAll(file, [4]);
    assertEntries(
      payload,
      [
        { kind: 'select-db', db: 3 },
        { kind: 'resize-db', db: 3, keys: 2, expires: 1 },
        { kind: 'aux', name: 'name', value: 'value' },
        {
          kind: 'key',
          db: 3,
          key: 'key',
          rdbType: 1,
          logical: 'list',
          expireAtMs: null,
          idleSeconds: 77,
          lfuFreq: null,
          payload: Buffer.concat([Buffer.from([1]), listBody]),
          rdbVersion: 10,
        },
        { kind: 'key', db: 3, key: 'h', rdbType: 16, logical: 'hash', expireAtMs: null, idleSeconds: null, lfuFreq: null, payload: payloadOf(hash), rdbVersion: 10 },
        { kind: 'end', checksumVerified: true, keys: 2 },
      ],
      '64-bit lengths, payload mode',
    );
    const decoded = parseAll(file, [1], DECODE).filter((e) => e.kind === 'key-chunk');
    assertEntries(
      decoded,
      [
        { kind: 'key-chunk', chunk: { type: 'list', items: ['a', 'bb'] } },
        { kind: 'key-chunk', chunk: { type: 'hash', fields: ['f'], values: ['v'] } },
      ],
      '64-bit lengths, decode mode',
    );
  });

  it('a 64-bit length beyond 2^53 is rejected with a clear message', () => {
    const file = new RdbWriter('REDIS', 10).raw(Buffer.from([T.LIST]), str('k'), len(2n ** 60n, 64)).finish();
    assert.throws(() => parseAll(file, [file.length]), /64-bit length \d+ is beyond what Ferry handles/);
  });

  for (const [what, size, chunkings] of [
    ['2.5 MiB', 2.5 * 1024 * 1024, [[Infinity], [3, 17, 256], [65536, 1]]],
    ['5000-byte', 5000, [[1], [3, 17, 256]]],
  ] as const) {
    it(`a ${what} raw string above maxPayloadBytes arrives as several 'string' chunks that concatenate to it`, () => {
      const big = Buffer.alloc(size);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 10)) & 0xff;
      // Compresses (it repeats) but stays above maxPayloadBytes compressed.
      const noise = Buffer.from(Array.from({ length: 1500 }, (_, i) => (i * 2654435761) >>> 24));
      const lzfBig = Buffer.concat([noise, noise, noise]);
      const file = new RdbWriter('REDIS', 11)
        .key('small', V.string('before'))
        .key('big', V.string(big), { expireMs: FUTURE_MS })
        .key('lzf-big', V.string(lzfBig, 'lzf'))
        .key('after', V.list(['a', 'b']))
        .finish();
      for (const sizes of chunkings) {
        const label = `chunks ${sizes.join('/')}`;
        const entries = parseAll(file, sizes.map((n) => (n === Infinity ? file.length : n)), { maxPayloadBytes: 1000 });
        const begin = entries.find((e) => e.kind === 'key-begin' && e.key.toString() === 'big');
        assert.ok(begin?.kind === 'key-begin' && begin.reason === 'too-big' && begin.expireAtMs === FUTURE_MS, `${label}: big key streamed as too-big`);
        const start = entries.indexOf(begin);
        const pieces: Buffer[] = [];
        let i = start + 1;
        for (; entries[i]?.kind === 'key-chunk'; i++) {
          const e = entries[i]!;
          assert.ok(e.kind === 'key-chunk' && e.chunk.type === 'string', `${label}: string chunks only`);
          if (e.kind === 'key-chunk' && e.chunk.type === 'string') {
            assert.ok(e.chunk.data.length <= 1 << 20, `${label}: chunk of at most 1 MiB`);
            pieces.push(e.chunk.data);
          }
        }
        assert.equal(entries[i]?.kind, 'key-end', label);
        assert.ok(pieces.length >= 2, `${label}: several chunks (got ${pieces.length})`);
        assert.ok(Buffer.concat(pieces).equals(big), `${label}: chunks concatenate to the original`);
        // The keys around it still come whole, the compressed big string as one chunk.
        const small = entries.find((e) => e.kind === 'key' && e.key.toString() === 'small');
        assert.ok(small?.kind === 'key' && small.payload.equals(payloadOf(V.string('before'))), `${label}: small key before`);
        const lzf = entries.findIndex((e) => e.kind === 'key-begin' && e.key.toString() === 'lzf-big');
        assert.ok(lzf >= 0, `${label}: the LZF string above maxPayloadBytes is streamed too`);
        assert.deepEqual(norm(entries.slice(lzf + 1, lzf + 3)), norm([{ kind: 'key-chunk', chunk: { type: 'string', data: lzfBig } }, { kind: 'key-end' }]), `${label}: LZF string, whole`);
        const after = entries.find((e) => e.kind === 'key' && e.key.toString() === 'after');
        assert.ok(after?.kind === 'key' && after.payload.equals(payloadOf(V.list(['a', 'b']))), `${label}: key after`);
        assert.deepEqual(entries.at(-1), { kind: 'end', checksumVerified: true, keys: 4 }, `${label}: CRC still verified`);
      }
    });
  }

  it('a collection above maxPayloadBytes is decoded in chunks (too-big), with exact contents', () => {
    const items = Array.from({ length: 2500 }, (_, i) => `item-${i}`);
    const file = new RdbWriter('REDIS', 9).key('biglist', V.list(items)).key('z', V.zset2([['m', 1]])).finish();
    const entries = parseAll(file, [3, 17, 256], { maxPayloadBytes: 4096 });
    assert.deepEqual(
      entries.map((e) => (e.kind === 'key-chunk' && e.chunk.type === 'list' ? `list:${e.chunk.items.length}` : e.kind)),
      ['key-begin', 'list:1000', 'list:1000', 'list:500', 'key-end', 'key', 'end'],
    );
    const got = entries.flatMap((e) => (e.kind === 'key-chunk' && e.chunk.type === 'list' ? e.chunk.items.map((b) => b.toString()) : []));
    assert.deepEqual(got, items);
  });
});
