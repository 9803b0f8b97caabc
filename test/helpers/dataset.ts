/**
 * Datasets for migration tests: every type in every encoding the server can produce, big keys,
 * and a bounded live-write workload. Encodings are forced by lowering the conversion thresholds
 * with CONFIG SET just around the key that needs them, so keys stay small and the RDB a test
 * takes from the source contains every on-disk type the server version writes.
 */
import type { Redis } from 'ioredis';
import { printableKey } from './compare.js';
import type { RedisServer } from './redis-server.js';

type Arg = string | Buffer | number;

export interface PopulateOptions {
  /** Databases to fill (default [0, 1, 15]). Every db gets the same key names, db-specific values. */
  dbs?: number[];
  /** Prefix of every key name (default ''). */
  prefix?: string;
}

export interface PopulateReport {
  /** Keys created, all dbs together. */
  keys: number;
  /** Key (printable) -> OBJECT ENCODING as observed in the first db. */
  encodings: Record<string, string>;
  /** Keys whose encoding was not the one the dataset meant to produce on this version. */
  mismatches: string[];
  /** Parts left out on this server, with the reason. */
  skipped: string[];
}

const B = (s: string): Buffer => Buffer.from(s, 'latin1');

/** \r\n, NUL and 0xff in key names and values: whatever is binary-unsafe breaks on these. */
export const BINARY_BYTES = Buffer.from([0x0d, 0x0a, 0x00, 0xff, 0xfe, 0x20, 0x22]);

/** Far-future absolute expiry (2100-01-01T00:00:00Z) for the PEXPIREAT key. */
export const FAR_FUTURE_MS = 4_102_444_800_000;

/** Integers on every listpack/ziplist integer width boundary. */
const INT_EDGES = [
  '0', '12', '-1', '127', '128', '-4096', '4095', '4096', '-32768', '32767', '32768', '-8388608',
  '8388607', '8388608', '-2147483648', '2147483647', '2147483648', '9223372036854775807',
  '-9223372036854775808',
];
/** Strings on every listpack string-length width boundary (6-bit, 12-bit, 32-bit lengths). */
const STR_EDGES = ['', 'a', 'x'.repeat(63), 'y'.repeat(64), 'z'.repeat(4095), 'w'.repeat(4096)];
/** Not canonical integers: must stay strings ("+1", leading zero, "-0", spaces). */
const NEAR_INTS = ['+1', '01', '-0', ' 1', '1 ', '1.0', '0x10'];

/** The zset scores named in the brief, as the strings handed to ZADD. */
export const ZSET_SCORES: readonly string[] = [
  '1', '0', '-3', '0.1', '1e-9', '-2.5e300', '0.33333333333333331', 'inf', '-inf', '-0', '1.5e308',
];

function printable(k: string | Buffer): string {
  return printableKey(typeof k === 'string' ? B(k) : k);
}

/** Config names of the encoding thresholds (renamed from ziplist to listpack in 7.0). */
function thresholdNames(s: RedisServer): {
  hashEntries: string; hashValue: string; zsetEntries: string; zsetValue: string; listSize: string;
} {
  const lp = s.features.listpackConfigNames;
  return {
    hashEntries: lp ? 'hash-max-listpack-entries' : 'hash-max-ziplist-entries',
    hashValue: lp ? 'hash-max-listpack-value' : 'hash-max-ziplist-value',
    zsetEntries: lp ? 'zset-max-listpack-entries' : 'zset-max-ziplist-entries',
    zsetValue: lp ? 'zset-max-listpack-value' : 'zset-max-ziplist-value',
    listSize: lp ? 'list-max-listpack-size' : 'list-max-ziplist-size',
  };
}

async function configGet(c: Redis, name: string): Promise<string | undefined> {
  const r = (await c.config('GET', name)) as string[];
  return r.length >= 2 ? r[1] : undefined;
}

/**
 * Sets thresholds for the duration of `fn` and puts the previous values back afterwards, also
 * on failure, so the server (and a later DUMP/RESTORE on it) sees the defaults again.
 */
async function withConfig<T>(c: Redis, cfg: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved: [string, string][] = [];
  try {
    for (const [k, v] of Object.entries(cfg)) {
      const old = await configGet(c, k);
      if (old === undefined) throw new Error(`server has no config '${k}'`);
      saved.push([k, old]);
      await c.config('SET', k, v);
    }
    return await fn();
  } finally {
    for (const [k, v] of saved.reverse()) await c.config('SET', k, v);
  }
}

async function encodingOf(c: Redis, key: Arg): Promise<string> {
  return String(await c.call('OBJECT', 'ENCODING', key));
}

/** ql_nodes from DEBUG OBJECT, or undefined when DEBUG is disabled or does not report it. */
async function quicklistNodes(c: Redis, key: Buffer): Promise<number | undefined> {
  try {
    const m = /ql_nodes:(\d+)/.exec(String(await c.call('DEBUG', 'OBJECT', key)));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export async function populateAllTypes(server: RedisServer, opts: PopulateOptions = {}): Promise<PopulateReport> {
  const dbs = opts.dbs ?? [0, 1, 15];
  const p = opts.prefix ?? '';
  const f = server.features;
  const names = thresholdNames(server);
  const report: PopulateReport = { keys: 0, encodings: {}, mismatches: [], skipped: [] };
  const k = (name: string): Buffer => B(p + name);

  if (!f.hashFieldTtl) report.skipped.push('hash-field TTLs (HPEXPIRE needs 7.4+)');
  if (!f.setListpack) report.skipped.push('listpack-encoded sets (7.2+)');
  if (!f.streamV2) report.skipped.push('XSETID ENTRIESADDED/MAXDELETEDID, XGROUP ENTRIESREAD (7.0+)');
  if (!f.functions) report.skipped.push('FUNCTION LOAD (7.0+)');
  if (!f.plainNodes) report.skipped.push('quicklist PLAIN nodes (7.0+)');

  for (const [dbIndex, db] of dbs.entries()) {
    const c = server.client(db);
    const first = dbIndex === 0;
    // expected: acceptable encodings for this version; checked in the first db only (the
    // other dbs are built by the same code).
    const made = async (key: Buffer, expected: string[]): Promise<void> => {
      report.keys++;
      if (!first) return;
      const enc = await encodingOf(c, key);
      report.encodings[printable(key)] = enc;
      if (!expected.includes(enc)) {
        report.mismatches.push(`${printable(key)}: encoding ${enc}, expected ${expected.join('|')}`);
      }
    };
    const tag = `db${db}`;

    // ---- strings
    await c.set(k('str:int'), '12345');
    await made(k('str:int'), ['int']);
    await c.set(k('str:int:min'), '-9223372036854775808');
    await made(k('str:int:min'), ['int']);
    await c.set(k('str:embstr'), `short-${tag}`);
    await made(k('str:embstr'), ['embstr']);
    await c.set(k('str:raw'), `raw-${tag}-${'r'.repeat(100)}`);
    await made(k('str:raw'), ['raw']);
    // APPEND always leaves a raw string, even a short one
    await c.set(k('str:appended'), 'ab');
    await c.append(k('str:appended'), 'cd');
    await made(k('str:appended'), ['raw']);
    await c.set(k('str:near-int'), '0123');
    await made(k('str:near-int'), ['embstr']);
    await c.set(k('str:binary-value'), Buffer.concat([B('a\r\nb\0c'), BINARY_BYTES, B(tag)]));
    await made(k('str:binary-value'), ['embstr', 'raw']);
    await c.set(k('str:empty'), '');
    await made(k('str:empty'), ['embstr']);
    const binKey = Buffer.concat([k('bin:'), BINARY_BYTES, B('\r\n')]);
    await c.set(binKey, `binary key in ${tag}`);
    await made(binKey, ['embstr']);
    const binKey2 = Buffer.concat([k(''), Buffer.from([0xff, 0x00, 0x0d, 0x0a])]);
    await c.set(binKey2, Buffer.from([0, 1, 2, 0xff]));
    await made(binKey2, ['embstr']);

    // ---- lists
    const smallList = [...INT_EDGES, ...STR_EDGES.slice(0, 4), ...NEAR_INTS, `in-${tag}`, B('cr\r\nlf\0')];
    await c.rpush(k('list:small'), ...smallList);
    await made(k('list:small'), f.listListpack ? ['listpack'] : ['quicklist', 'ziplist']);
    await c.rpush(k('list:strsizes'), ...STR_EDGES);
    await made(k('list:strsizes'), f.listListpack ? ['listpack', 'quicklist'] : ['quicklist', 'ziplist']);
    await withConfig(c, { [names.listSize]: '4' }, async () => {
      // 4 entries per node: 25 elements make 7 nodes
      const els = Array.from({ length: 25 }, (_, i) => (i % 3 === 0 ? String(i * 1000) : `node-el-${i}-${tag}`));
      await c.rpush(k('list:quicklist'), ...els);
      await made(k('list:quicklist'), ['quicklist']);
    });
    await withConfig(c, { [names.listSize]: '4', 'list-compress-depth': '1' }, async () => {
      // LZF wants >= 48 byte nodes that shrink: repetitive 80-byte elements compress well;
      // depth 1 leaves head and tail raw and compresses every inner node.
      const els = Array.from({ length: 24 }, (_, i) => `${'compressible-'.repeat(6)}${i}-${tag}`);
      await c.rpush(k('list:compressed'), ...els);
      await made(k('list:compressed'), ['quicklist']);
    });
    if (f.plainNodes) {
      // A PLAIN node holds one element too big for a listpack node. 7.2+ does this for
      // elements over the node size limit (8 KB); 7.0 only above packed_threshold (1 GB by
      // default), which DEBUG QUICKLIST-PACKED-THRESHOLD lowers.
      const big = Buffer.alloc(10_000);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 5)) & 0xff;
      const needDebug = !f.listListpack;
      let debugOk = true;
      if (needDebug) {
        try {
          await c.call('DEBUG', 'QUICKLIST-PACKED-THRESHOLD', '1000');
        } catch (err) {
          debugOk = false;
          if (first) report.skipped.push(`PLAIN list node on 7.0: DEBUG unavailable (${(err as Error).message})`);
        }
      }
      try {
        await withConfig(c, { [names.listSize]: '4', 'list-compress-depth': '1' }, async () => {
          await c.rpush(k('list:plain'), 'before-1', 'before-2', big, 'after-1', big, 'after-2', `tail-${tag}`);
        });
      } finally {
        if (needDebug && debugOk) await c.call('DEBUG', 'QUICKLIST-PACKED-THRESHOLD', '0');
      }
      await made(k('list:plain'), ['quicklist']);
      if (first && !(needDebug && !debugOk)) {
        // 7 elements, 4 per node, 2 of them PLAIN: 5 nodes; packed they would need 2
        const nodes = await quicklistNodes(c, k('list:plain'));
        if (nodes !== undefined && nodes < 5) report.mismatches.push(`list:plain: ${nodes} quicklist nodes, expected 5 (no PLAIN nodes?)`);
      }
    }
    await c.rpush(binKey.subarray(0, binKey.length - 2), ...[B('\0'), B('\r\n'), B('\xff')]);
    await made(binKey.subarray(0, binKey.length - 2), f.listListpack ? ['listpack'] : ['quicklist', 'ziplist']);

    // ---- sets
    await c.sadd(k('set:int16'), '-32768', '-1', '0', '1', '32767');
    await made(k('set:int16'), ['intset']);
    await c.sadd(k('set:int32'), '-2147483648', '-70000', '40000', '2147483647');
    await made(k('set:int32'), ['intset']);
    await c.sadd(k('set:int64'), '-9223372036854775808', '-5000000000', '5000000000', '9223372036854775807', '7');
    await made(k('set:int64'), ['intset']);
    await c.sadd(k('set:small'), 'alpha', 'beta', '123', `in-${tag}`, B('bin\0\r\n\xff'));
    await made(k('set:small'), f.setListpack ? ['listpack'] : ['hashtable']);
    {
      const cfg: Record<string, string> = { 'set-max-intset-entries': '4' };
      if (f.setListpack) cfg['set-max-listpack-entries'] = '4';
      await withConfig(c, cfg, async () => {
        await c.sadd(k('set:hashtable'), ...Array.from({ length: 20 }, (_, i) => `member-${i}-${tag}`), '42', '');
        await made(k('set:hashtable'), ['hashtable']);
        // only integers, but too many for an intset
        await c.sadd(k('set:ints-hashtable'), ...Array.from({ length: 12 }, (_, i) => String(i * 1_000_003 - 5)));
        await made(k('set:ints-hashtable'), ['hashtable']);
      });
    }

    // ---- zsets
    const zargs = (members: string[]): string[] => ZSET_SCORES.flatMap((s, i) => [s, members[i] ?? `m${i}`]);
    const zmembers = ZSET_SCORES.map((s, i) => `m${i}:${s}:${tag}`);
    await c.zadd(k('zset:small'), ...zargs(zmembers));
    await c.zadd(k('zset:small'), '2', B('bin\0\r\n\xff'), '3', '');
    await made(k('zset:small'), f.listpackConfigNames ? ['listpack'] : ['ziplist']);
    await withConfig(c, { [names.zsetEntries]: '4' }, async () => {
      await c.zadd(k('zset:skiplist'), ...zargs(zmembers));
      await c.zadd(k('zset:skiplist'), ...Array.from({ length: 10 }, (_, i) => [String(i / 7), `extra-${i}`]).flat());
      await made(k('zset:skiplist'), ['skiplist']);
    });
    await withConfig(c, { [names.zsetValue]: '8' }, async () => {
      // a member longer than the value limit converts even a 1-member zset
      await c.zadd(k('zset:long-member'), '1', `a-member-longer-than-8-bytes-${tag}`);
      await made(k('zset:long-member'), ['skiplist']);
    });

    // ---- hashes
    const hashFields: Arg[] = [
      'name', `hash-in-${tag}`, 'int', '42', 'neg', '-7', 'max', '9223372036854775807',
      'min', '-9223372036854775808', 'float', '3.14', 'empty', '', 'near', '007',
      B('bin\0\r\n\xff'), B('val\r\n\0'),
    ];
    await c.hset(k('hash:small'), ...hashFields);
    await made(k('hash:small'), f.listpackConfigNames ? ['listpack'] : ['ziplist']);
    await withConfig(c, { [names.hashEntries]: '4' }, async () => {
      await c.hset(k('hash:hashtable'), ...hashFields, ...Array.from({ length: 10 }, (_, i) => [`f${i}`, String(i * 11)]).flat());
      await made(k('hash:hashtable'), ['hashtable']);
    });
    await withConfig(c, { [names.hashValue]: '8' }, async () => {
      await c.hset(k('hash:long-value'), 'f', `a-value-longer-than-8-bytes-${tag}`);
      await made(k('hash:long-value'), ['hashtable']);
    });
    if (f.hashFieldTtl) {
      // Field TTLs: a listpack hash becomes "listpackex"; a hashtable keeps its encoding.
      await c.hset(k('hash:fttl:listpack'), 'keep', 'forever', 'hour', '1h', 'day', '1d', 'far', 'far');
      await c.call('HPEXPIRE', k('hash:fttl:listpack'), 3_600_000, 'FIELDS', 1, 'hour');
      await c.call('HPEXPIRE', k('hash:fttl:listpack'), 86_400_000, 'FIELDS', 1, 'day');
      await c.call('HPEXPIREAT', k('hash:fttl:listpack'), FAR_FUTURE_MS, 'FIELDS', 1, 'far');
      await made(k('hash:fttl:listpack'), ['listpackex']);
      await withConfig(c, { [names.hashEntries]: '4' }, async () => {
        const fields = Array.from({ length: 12 }, (_, i) => [`f${i}`, `v${i}-${tag}`]).flat();
        await c.hset(k('hash:fttl:hashtable'), ...fields);
        await c.call('HPEXPIRE', k('hash:fttl:hashtable'), 3_600_000, 'FIELDS', 3, 'f0', 'f1', 'f2');
        await c.call('HPEXPIRE', k('hash:fttl:hashtable'), 86_400_000, 'FIELDS', 1, 'f5');
        await made(k('hash:fttl:hashtable'), ['hashtable']);
      });
      // a key TTL on top of field TTLs
      await c.hset(k('hash:fttl:keyttl'), 'a', '1', 'b', '2');
      await c.call('HPEXPIRE', k('hash:fttl:keyttl'), 7_200_000, 'FIELDS', 1, 'a');
      await c.pexpire(k('hash:fttl:keyttl'), 86_400_000);
      await made(k('hash:fttl:keyttl'), ['listpackex']);
    }

    // ---- streams
    await withConfig(c, { 'stream-node-max-entries': '4' }, async () => {
      await buildStream(c, k('stream'), tag, server);
    });
    await made(k('stream'), ['stream']);
    // an empty stream that only carries a consumer group
    await c.xgroup('CREATE', k('stream:empty'), 'g-empty', '$', 'MKSTREAM');
    await made(k('stream:empty'), ['stream']);
    // a stream emptied by XDEL: no entries, but a last id and (7.0+) deletion counters
    await c.xadd(k('stream:drained'), '5-1', 'f', 'v');
    await c.xdel(k('stream:drained'), '5-1');
    await made(k('stream:drained'), ['stream']);

    // ---- key TTLs
    await c.set(k('ttl:1h'), `expires in an hour (${tag})`, 'PX', 3_600_000);
    await made(k('ttl:1h'), ['embstr']);
    await c.hset(k('ttl:1d'), 'a', '1', 'b', 'two');
    await c.pexpire(k('ttl:1d'), 86_400_000);
    await made(k('ttl:1d'), f.listpackConfigNames ? ['listpack'] : ['ziplist']);
    await c.rpush(k('ttl:far'), 'x', 'y', 'z');
    await c.pexpireat(k('ttl:far'), FAR_FUTURE_MS);
    await made(k('ttl:far'), f.listListpack ? ['listpack'] : ['quicklist', 'ziplist']);
    await c.sadd(k('ttl:set'), '1', '2', '3');
    await c.pexpire(k('ttl:set'), 3_600_000);
    await made(k('ttl:set'), ['intset']);
    await c.zadd(k('ttl:zset'), '1', 'a');
    await c.pexpire(k('ttl:zset'), 86_400_000);
    await made(k('ttl:zset'), f.listpackConfigNames ? ['listpack'] : ['ziplist']);
  }

  if (f.functions) {
    // server-wide, not per db: once, REPLACE so a second populate on the same server works
    await server.client(dbs[0] ?? 0).call('FUNCTION', 'LOAD', 'REPLACE', FERRY_LUA_LIBRARY);
  }
  return report;
}

/** The library FUNCTION LOAD installs on 7.0+. */
export const FERRY_LUA_LIBRARY = [
  '#!lua name=ferrylib',
  "redis.register_function('ferry_echo', function(keys, args) return args[1] end)",
].join('\n');

/**
 * A stream with: entries sharing the master fields and entries with other fields, several
 * listpack nodes, XDEL'd entries (one still pending), XTRIM, two groups, pending entries of two
 * consumers (one re-delivered, so delivery count 2), a consumer with an empty PEL and, on 7.0+,
 * XSETID counters and a group created with ENTRIESREAD.
 */
async function buildStream(c: Redis, key: Buffer, tag: string, server: RedisServer): Promise<void> {
  const f = server.features;
  const base = 1_700_000_000_000;
  for (let i = 0; i < 14; i++) {
    const id = `${base + Math.floor(i / 3)}-${i % 3}`;
    if (i % 4 === 2) await c.xadd(key, id, 'other', `o${i}`, 'extra', B(`\r\n\0${tag}`));
    else await c.xadd(key, id, 'f1', `v${i}`, 'f2', String(i * 10));
  }
  await c.xgroup('CREATE', key, 'g1', '0');
  if (f.streamV2) await c.call('XGROUP', 'CREATE', key, 'g2', `${base + 1}-0`, 'ENTRIESREAD', '3');
  else await c.xgroup('CREATE', key, 'g2', `${base + 1}-0`);

  await c.xreadgroup('GROUP', 'g1', 'alice', 'COUNT', 3, 'STREAMS', key, '>');
  await c.xreadgroup('GROUP', 'g1', 'bob', 'COUNT', 2, 'STREAMS', key, '>');
  // reading alice's history again bumps her delivery counts to 2
  await c.xreadgroup('GROUP', 'g1', 'alice', 'STREAMS', key, '0');
  await c.xack(key, 'g1', `${base}-1`);
  if (f.createConsumer) {
    await c.call('XGROUP', 'CREATECONSUMER', key, 'g1', 'carol');
  } else {
    const r = (await c.xreadgroup('GROUP', 'g1', 'carol', 'COUNT', 1, 'STREAMS', key, '>')) as
      [string, [string, string[]][]][] | null;
    const id = r?.[0]?.[1]?.[0]?.[0];
    if (id !== undefined) await c.xack(key, 'g1', id);
  }
  await c.xreadgroup('GROUP', 'g2', 'dave', 'COUNT', 2, 'STREAMS', key, '>');

  // delete a middle entry that bob still has pending, and one nobody read
  await c.xdel(key, `${base + 1}-1`, `${base + 3}-0`);
  // exact trim drops the oldest entry
  await c.xtrim(key, 'MAXLEN', '=', 11);
  if (f.streamV2) {
    const info = (await c.call('XINFO', 'STREAM', key)) as unknown[];
    const added = Number(info[info.indexOf('entries-added') + 1]);
    await c.call('XSETID', key, `${base + 100}-5`, 'ENTRIESADDED', String(added + 40), 'MAXDELETEDID', `${base + 50}-0`);
  }
}

// ---------------------------------------------------------------------------------------------

export interface BigKeysOptions {
  /** Elements of big:list (default 1_000_000). */
  listElements?: number;
  /** Bytes of big:string (default 20 MB). */
  stringBytes?: number;
  /** Fields / members of big:hash, big:zset, big:set (default 200_000 each). */
  collectionSize?: number;
  db?: number;
  prefix?: string;
}

export interface BigKeyNames {
  list: string;
  string: string;
  hash: string;
  zset: string;
  set: string;
}

/** A deterministic byte pattern that is not trivially compressible and has \r\n and NUL in it. */
export function bigStringPattern(bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  let x = 0x9e3779b9;
  for (let i = 0; i < bytes; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    buf[i] = x & 0xff;
  }
  for (let i = 0; i + 4 <= bytes; i += 4096) buf.write('\r\n\0\xff', i, 'latin1');
  return buf;
}

/** Sends `commands` (one argument array each) in pipelines of `perPipeline`, failing on any error. */
async function pipelined(c: Redis, commands: Iterable<Arg[]>, perPipeline = 100): Promise<void> {
  let batch: Arg[][] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const pl = c.pipeline();
    for (const [cmd, ...args] of batch) pl.call(String(cmd), ...args);
    const res = await pl.exec();
    for (const [err] of res ?? []) if (err) throw err;
    batch = [];
  };
  for (const cmd of commands) {
    batch.push(cmd);
    if (batch.length >= perPipeline) await flush();
  }
  await flush();
}

function* chunks(total: number, size: number, make: (i: number) => Arg[]): Generator<Arg[]> {
  for (let start = 0; start < total; start += size) {
    const args: Arg[] = [];
    for (let i = start; i < Math.min(total, start + size); i++) args.push(...make(i));
    yield args;
  }
}

export async function populateBigKeys(server: RedisServer, opts: BigKeysOptions = {}): Promise<BigKeyNames> {
  const listElements = opts.listElements ?? 1_000_000;
  const stringBytes = opts.stringBytes ?? 20 * 1024 * 1024;
  const n = opts.collectionSize ?? 200_000;
  const p = opts.prefix ?? '';
  const c = server.client(opts.db ?? 0);
  const names: BigKeyNames = {
    list: `${p}big:list`, string: `${p}big:string`, hash: `${p}big:hash`, zset: `${p}big:zset`, set: `${p}big:set`,
  };
  // RPUSH batches of 1000 elements, 100 commands per pipeline
  await pipelined(c, [...chunks(listElements, 1000, (i) => [i % 5 === 0 ? String(i) : `item:${i}`])].map((a) => ['RPUSH', names.list, ...a]));
  await c.set(names.string, bigStringPattern(stringBytes));
  await pipelined(c, [...chunks(n, 1000, (i) => [`field:${i}`, i % 3 === 0 ? String(i) : `value:${i}`])].map((a) => ['HSET', names.hash, ...a]));
  await pipelined(c, [...chunks(n, 1000, (i) => [String(i % 2 === 0 ? i : i + 0.25), `member:${i}`])].map((a) => ['ZADD', names.zset, ...a]));
  await pipelined(c, [...chunks(n, 1000, (i) => [`m:${i}`])].map((a) => ['SADD', names.set, ...a]));
  return names;
}

// ---------------------------------------------------------------------------------------------

export interface LiveWriteOptions {
  /** Stop after this long (ms). */
  durationMs?: number;
  /** Stop after this many operations (a MULTI block or an EVAL counts as one). Default 1000 if neither is given. */
  ops?: number;
  /** Key prefix (default 'live:'); every key written starts with it. */
  prefix?: string;
  /** Seed of the PRNG, for a reproducible sequence. */
  seed?: number;
  /** Stop early, e.g. when the migration under test has caught up. */
  signal?: AbortSignal;
}

export interface LiveWriteResult {
  total: number;
  byOp: Record<string, number>;
  elapsedMs: number;
}

/** xorshift32: deterministic and good enough to pick keys and ops. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x2545f491;
  return () => {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    return x / 0x1_0000_0000;
  };
}

const LUA_TWO_KEYS = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])";

/**
 * A bounded write workload on one connection, so it moves between dbs with real SELECTs the way
 * an application would. TTLs are at least an hour: nothing expires while a test compares.
 */
export async function applyLiveWrites(server: RedisServer, opts: LiveWriteOptions): Promise<LiveWriteResult> {
  const maxOps = opts.ops ?? (opts.durationMs === undefined ? 1000 : Number.POSITIVE_INFINITY);
  const deadline = opts.durationMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + opts.durationMs;
  const p = opts.prefix ?? 'live:';
  const rnd = prng(opts.seed ?? 12345);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const n = (): number => Math.floor(rnd() * 20);
  const byOp: Record<string, number> = {};
  const count = (op: string): void => {
    byOp[op] = (byOp[op] ?? 0) + 1;
  };
  const c = server.newClient(0);
  const started = Date.now();
  let total = 0;
  let db = 0;
  try {
    // the ops and their weights
    const ops: [string, number, () => Promise<unknown>][] = [
      ['incr', 3, () => c.incr(`${p}counter:${n()}`)],
      ['incrbyfloat', 2, () => c.incrbyfloat(`${p}float:${n() % 5}`, '0.1')],
      ['append', 2, () => c.append(`${p}str:${n()}`, `+${total}`)],
      ['lpush', 3, () => c.lpush(`${p}list:${n() % 4}`, `e${total}`, B(`\r\n\0${total}`))],
      ['rpop', 2, () => c.rpop(`${p}list:${n() % 4}`)],
      ['hincrby', 3, () => c.hincrby(`${p}hash:${n() % 4}`, `field:${n()}`, 1 + n())],
      ['sadd', 2, () => c.sadd(`${p}set:${n() % 4}`, `m${n()}`, String(n()))],
      ['srem', 1, () => c.srem(`${p}set:${n() % 4}`, `m${n()}`)],
      ['zincrby', 2, () => c.zincrby(`${p}zset:${n() % 4}`, (n() - 10) / 4, `m${n()}`)],
      ['xadd', 2, () => c.xadd(`${p}stream:${n() % 2}`, 'MAXLEN', '~', 200, '*', 'op', String(total), 'db', String(db))],
      ['expire', 1, () => c.expire(`${p}counter:${n()}`, 3600 + n())],
      ['pexpire', 1, () => c.pexpire(`${p}hash:${n() % 4}`, 7_200_000 + n())],
      ['setex', 2, () => c.set(`${p}ex:${n()}`, `v${total}`, 'EX', 3600 + n())],
      ['setdel', 1, () => c.set(`${p}del:${n() % 5}`, `doomed${total}`)],
      ['del', 1, () => c.del(`${p}del:${n() % 5}`, `${p}str:${n()}`)],
      ['multi', 2, async () => {
        const res = await c.multi()
          .incr(`${p}counter:${n()}`)
          .lpush(`${p}list:${n() % 4}`, `tx${total}`)
          .hincrby(`${p}hash:${n() % 4}`, 'tx', 1)
          .zincrby(`${p}zset:${n() % 4}`, 1, 'tx')
          .set(`${p}ex:${n()}`, 'tx', 'EX', 3600)
          .exec();
        for (const [err] of res ?? []) if (err) throw err;
      }],
      ['eval', 2, () => c.eval(LUA_TWO_KEYS, 2, `${p}lua:str:${n()}`, `${p}lua:counter`, `lua${total}`)],
      ['select', 2, async () => {
        db = pick([0, 1, 15]);
        await c.select(db);
      }],
    ];
    const weights = ops.reduce((s, o) => s + o[1], 0);
    while (total < maxOps && Date.now() < deadline && !opts.signal?.aborted) {
      let r = rnd() * weights;
      let chosen = ops[0] as (typeof ops)[number];
      for (const o of ops) {
        r -= o[1];
        if (r < 0) {
          chosen = o;
          break;
        }
      }
      await chosen[2]();
      count(chosen[0]);
      total++;
    }
  } finally {
    c.disconnect();
  }
  return { total, byOp, elapsedMs: Date.now() - started };
}
