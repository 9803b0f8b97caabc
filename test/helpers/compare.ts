/**
 * Key-by-key comparison of two live servers, in both directions, for migration assertions.
 *
 * Values are read in chunks (LRANGE/ZRANGE by index, SSCAN/HSCAN, GETRANGE, XRANGE) so that the
 * big keys of populateBigKeys compare in seconds without one huge reply. Keys are compared as
 * bytes (scanBuffer), so binary key names survive.
 */
import type { Redis } from 'ioredis';
import type { RedisServer } from './redis-server.js';

export type DifferenceKind = 'missing' | 'extra' | 'type' | 'value' | 'ttl' | 'function';

export interface Difference {
  /** Source db (target db when it has no source counterpart); -1 for server-wide (functions). */
  db: number;
  /** Printable, escaped key name (\\r, \\n, \\xHH); the library name for 'function'. */
  key: string;
  kind: DifferenceKind;
  detail: string;
}

export interface CompareOptions {
  /** Source dbs to compare; default: every db either side has keys in (INFO keyspace). */
  dbs?: number[];
  /** Allowed PTTL difference, also for hash-field TTLs (default 2000 ms). */
  ttlToleranceMs?: number;
  /** Source db -> target db, for migrations that remap dbs. Unlisted dbs map to themselves. */
  dbMap?: Record<number, number>;
  /** Keys compared concurrently (default 32). */
  concurrency?: number;
}

const SCAN_COUNT = 1000;
const LIST_CHUNK = 10_000;
const ZSET_CHUNK = 10_000;
const STREAM_CHUNK = 1000;
const STRING_CHUNK = 4 * 1024 * 1024;
const FIELD_TTL_CHUNK = 1000;

export function printableKey(buf: Buffer): string {
  let s = '';
  for (const b of buf) {
    if (b === 0x5c) s += '\\\\';
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else if (b === 0x0d) s += '\\r';
    else if (b === 0x0a) s += '\\n';
    else s += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return s;
}

/** Short printable rendering of a value for a detail message. */
function show(v: Buffer | string | undefined | null, max = 60): string {
  if (v === undefined || v === null) return '(none)';
  const buf = typeof v === 'string' ? Buffer.from(v, 'latin1') : v;
  const p = printableKey(buf.length > max ? buf.subarray(0, max) : buf);
  return buf.length > max ? `"${p}"... (${buf.length} bytes)` : `"${p}"`;
}

// latin1 maps bytes 1:1 onto string code units: a cheap, lossless Map key for binary names.
export const bkey = (b: Buffer): string => b.toString('latin1');
export const unkey = (s: string): Buffer => Buffer.from(s, 'latin1');

export interface KeyspaceDb {
  keys: number;
  /** Hashes with field TTLs (INFO keyspace `subexpiry`, 7.4+); undefined before 7.4. */
  subexpiry: number | undefined;
}

export async function keyspace(server: RedisServer): Promise<Map<number, KeyspaceDb>> {
  const info = await server.client(0).info('keyspace');
  const out = new Map<number, KeyspaceDb>();
  for (const line of info.split(/\r?\n/)) {
    const m = /^db(\d+):(.*)$/.exec(line);
    if (!m) continue;
    const fields = new Map((m[2] ?? '').split(',').map((kv) => kv.split('=') as [string, string]));
    const sub = fields.get('subexpiry');
    out.set(Number(m[1]), { keys: Number(fields.get('keys') ?? 0), subexpiry: sub === undefined ? undefined : Number(sub) });
  }
  return out;
}

export async function scanKeys(c: Redis): Promise<Map<string, Buffer>> {
  const keys = new Map<string, Buffer>();
  let cursor = '0';
  do {
    const [next, batch] = await c.scanBuffer(cursor, 'COUNT', SCAN_COUNT);
    cursor = next.toString();
    for (const k of batch) keys.set(bkey(k), k);
  } while (cursor !== '0');
  return keys;
}

function isUnknownCommand(err: unknown): boolean {
  return err instanceof Error && /unknown (sub)?command|unknown command|ERR unknown/i.test(err.message);
}

// ---------------------------------------------------------------------------------------------
// Per-type comparisons. Each returns the differences found (kind 'value' unless noted).

/** One difference in one key (the caller knows which key and db). */
export interface Found {
  kind: DifferenceKind;
  detail: string;
}

/** A key's name on each side: the same unless a db/prefix mapping renames it. */
interface KeyPair {
  a: Buffer;
  b: Buffer;
}

async function compareString(a: Redis, b: Redis, k: KeyPair): Promise<Found[]> {
  const [la, lb] = await Promise.all([a.strlen(k.a), b.strlen(k.b)]);
  if (la !== lb) return [{ kind: 'value', detail: `string length ${la} vs ${lb}` }];
  for (let off = 0; off < la; off += STRING_CHUNK) {
    const end = Math.min(la, off + STRING_CHUNK) - 1;
    const [va, vb] = await Promise.all([a.getrangeBuffer(k.a, off, end), b.getrangeBuffer(k.b, off, end)]);
    if (!va.equals(vb)) {
      let i = 0;
      while (i < va.length && va[i] === vb[i]) i++;
      return [{ kind: 'value', detail: `string differs at byte ${off + i}: ${show(va.subarray(i))} vs ${show(vb.subarray(i))}` }];
    }
  }
  return [];
}

async function compareList(a: Redis, b: Redis, k: KeyPair): Promise<Found[]> {
  const [la, lb] = await Promise.all([a.llen(k.a), b.llen(k.b)]);
  if (la !== lb) return [{ kind: 'value', detail: `list length ${la} vs ${lb}` }];
  for (let start = 0; start < la; start += LIST_CHUNK) {
    const stop = Math.min(la, start + LIST_CHUNK) - 1;
    const [ca, cb] = await Promise.all([a.lrangeBuffer(k.a, start, stop), b.lrangeBuffer(k.b, start, stop)]);
    for (let i = 0; i < Math.max(ca.length, cb.length); i++) {
      const x = ca[i];
      const y = cb[i];
      if (!x || !y || !x.equals(y)) {
        return [{ kind: 'value', detail: `list element ${start + i}: ${show(x)} vs ${show(y)}` }];
      }
    }
  }
  return [];
}

async function sscanAll(c: Redis, key: Buffer): Promise<Set<string>> {
  const out = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await c.sscanBuffer(key, cursor, 'COUNT', 5000);
    cursor = next.toString();
    for (const m of batch) out.add(bkey(m));
  } while (cursor !== '0');
  return out;
}

function setDiff(what: string, a: Set<string> | Map<string, unknown>, b: Set<string> | Map<string, unknown>): Found[] {
  const onlyA: string[] = [];
  const onlyB: string[] = [];
  for (const m of a.keys()) if (!b.has(m)) onlyA.push(m);
  for (const m of b.keys()) if (!a.has(m)) onlyB.push(m);
  const out: Found[] = [];
  const list = (xs: string[]): string => xs.slice(0, 5).map((x) => show(unkey(x))).join(', ') + (xs.length > 5 ? `, ... (${xs.length})` : '');
  if (onlyA.length > 0) out.push({ kind: 'value', detail: `${what} only in source: ${list(onlyA)}` });
  if (onlyB.length > 0) out.push({ kind: 'value', detail: `${what} only in target: ${list(onlyB)}` });
  return out;
}

async function compareSet(a: Redis, b: Redis, k: KeyPair): Promise<Found[]> {
  const [ma, mb] = await Promise.all([sscanAll(a, k.a), sscanAll(b, k.b)]);
  return setDiff('set members', ma, mb);
}

async function zrangeAll(c: Redis, key: Buffer): Promise<Map<string, string>> {
  const n = await c.zcard(key);
  const out = new Map<string, string>();
  for (let start = 0; start < n; start += ZSET_CHUNK) {
    const r = await c.zrangeBuffer(key, start, Math.min(n, start + ZSET_CHUNK) - 1, 'WITHSCORES');
    for (let i = 0; i + 1 < r.length; i += 2) out.set(bkey(r[i] as Buffer), (r[i + 1] as Buffer).toString());
  }
  return out;
}

/** A score string as the server prints it ("inf", "-inf", "0.10000000000000001", "0.1") -> double. */
function parseScore(s: string): number {
  const l = s.toLowerCase();
  if (l === 'inf' || l === '+inf') return Number.POSITIVE_INFINITY;
  if (l === '-inf') return Number.NEGATIVE_INFINITY;
  return Number(s);
}

/**
 * Scores are equal when the server strings are, or when they denote the same double: 7.0 prints
 * %.17g ("0.10000000000000001") and 7.2+ the shortest round-trip form ("0.1"), so a cross-version
 * migration must not count as a difference. -0 and 0 are equal on purpose: Redis itself turns
 * -0 into 0 when a zset is (re)encoded as a listpack, so the sign cannot survive a RESTORE.
 */
function sameScore(x: string, y: string): boolean {
  return x === y || parseScore(x) === parseScore(y);
}

async function compareZset(a: Redis, b: Redis, k: KeyPair): Promise<Found[]> {
  const [za, zb] = await Promise.all([zrangeAll(a, k.a), zrangeAll(b, k.b)]);
  const out = setDiff('zset members', za, zb);
  for (const [m, sa] of za) {
    const sb = zb.get(m);
    if (sb !== undefined && !sameScore(sa, sb)) {
      out.push({ kind: 'value', detail: `zset member ${show(unkey(m))} score ${sa} vs ${sb}` });
      if (out.length >= 5) break;
    }
  }
  return out;
}

async function hscanAll(c: Redis, key: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let cursor = '0';
  do {
    const [next, batch] = await c.hscanBuffer(key, cursor, 'COUNT', 5000);
    cursor = next.toString();
    for (let i = 0; i + 1 < batch.length; i += 2) out.set(bkey(batch[i] as Buffer), batch[i + 1] as Buffer);
  } while (cursor !== '0');
  return out;
}

/** HPEXPIRETIME of every field, absolute ms (-1: no TTL, -2: no such field). */
async function fieldExpireTimes(c: Redis, key: Buffer, fields: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (let i = 0; i < fields.length; i += FIELD_TTL_CHUNK) {
    const chunk = fields.slice(i, i + FIELD_TTL_CHUNK);
    const r = (await c.callBuffer('HPEXPIRETIME', key, 'FIELDS', chunk.length, ...chunk.map(unkey))) as number[];
    chunk.forEach((f, j) => out.set(f, Number(r[j])));
  }
  return out;
}

export interface HashTtlMode {
  /** Whether each side can answer HPEXPIRETIME at all. */
  source: boolean;
  target: boolean;
  /** False when INFO says neither db has a hash with field TTLs: skip the per-field queries. */
  needed: boolean;
  toleranceMs: number;
}

async function compareHash(a: Redis, b: Redis, k: KeyPair, ttl: HashTtlMode): Promise<Found[]> {
  const [ha, hb] = await Promise.all([hscanAll(a, k.a), hscanAll(b, k.b)]);
  const out = setDiff('hash fields', ha, hb);
  for (const [f, va] of ha) {
    const vb = hb.get(f);
    if (vb !== undefined && !va.equals(vb)) {
      out.push({ kind: 'value', detail: `hash field ${show(unkey(f))}: ${show(va)} vs ${show(vb)}` });
      if (out.length >= 5) return out;
    }
  }
  if (!ttl.needed || (!ttl.source && !ttl.target)) return out;
  const common = [...ha.keys()].filter((f) => hb.has(f));
  if (ttl.source && ttl.target) {
    const [ta, tb] = await Promise.all([fieldExpireTimes(a, k.a, common), fieldExpireTimes(b, k.b, common)]);
    for (const f of common) {
      const x = ta.get(f) ?? -1;
      const y = tb.get(f) ?? -1;
      const bad = (x < 0) !== (y < 0) || (x >= 0 && Math.abs(x - y) > ttl.toleranceMs);
      if (bad) {
        out.push({ kind: 'ttl', detail: `hash field ${show(unkey(f))} expire time ${x} vs ${y}` });
        if (out.length >= 5) break;
      }
    }
  } else if (ttl.source) {
    // the target cannot hold field TTLs: a difference only if the source has any
    const ta = await fieldExpireTimes(a, k.a, common);
    const withTtl = [...ta].filter(([, t]) => t >= 0);
    if (withTtl.length > 0) out.push({ kind: 'ttl', detail: `${withTtl.length} hash field TTL(s) in source, target has no field TTL support` });
  }
  return out;
}

// ---- streams

type Reply = Buffer | number | null | Reply[];

function str(r: Reply | undefined): string {
  if (r === undefined || r === null) return 'nil';
  if (Buffer.isBuffer(r)) return r.toString('latin1');
  if (typeof r === 'number') return String(r);
  return JSON.stringify(r);
}

/** A RESP2 flat [k, v, k, v] array as a map. */
function flat(r: Reply | undefined): Map<string, Reply> {
  const out = new Map<string, Reply>();
  if (!Array.isArray(r)) return out;
  for (let i = 0; i + 1 < r.length; i += 2) out.set(str(r[i]), r[i + 1] as Reply);
  return out;
}

function arr(r: Reply | undefined): Reply[] {
  return Array.isArray(r) ? r : [];
}

/** Stream-level fields compared when both servers report them (several are 7.0+). */
const STREAM_FIELDS = ['length', 'last-generated-id', 'max-deleted-entry-id', 'entries-added', 'recorded-first-entry-id'];

interface GroupState {
  fields: Map<string, string>;
  /** id -> "consumer/delivery-count" */
  pel: Map<string, string>;
  /** consumer -> sorted "id/delivery-count" list */
  consumers: Map<string, string>;
}

function groupState(g: Reply): GroupState {
  const m = flat(g);
  const fields = new Map<string, string>();
  // lag is derived from the others; times (seen/active/delivery) are not migrated state
  for (const f of ['last-delivered-id', 'entries-read', 'pel-count']) if (m.has(f)) fields.set(f, str(m.get(f)));
  const pel = new Map<string, string>();
  for (const p of arr(m.get('pending'))) {
    const [id, consumer, , count] = arr(p);
    pel.set(str(id), `${str(consumer)}/${str(count)}`);
  }
  const consumers = new Map<string, string>();
  for (const c of arr(m.get('consumers'))) {
    const cm = flat(c);
    const ids = arr(cm.get('pending')).map((p) => {
      const [id, , count] = arr(p);
      return `${str(id)}/${str(count)}`;
    });
    consumers.set(str(cm.get('name')), `pel-count=${str(cm.get('pel-count'))} [${ids.sort().join(' ')}]`);
  }
  return { fields, pel, consumers };
}

function compareMaps(what: string, a: Map<string, string>, b: Map<string, string>, out: Found[]): void {
  for (const [k, va] of a) {
    const vb = b.get(k);
    if (vb === undefined) out.push({ kind: 'value', detail: `${what} ${k} only in source (${va})` });
    else if (va !== vb) out.push({ kind: 'value', detail: `${what} ${k}: ${va} vs ${vb}` });
  }
  for (const [k, vb] of b) if (!a.has(k)) out.push({ kind: 'value', detail: `${what} ${k} only in target (${vb})` });
}

async function xrangeChunk(c: Redis, key: Buffer, start: string): Promise<[Buffer, Buffer[]][]> {
  return (await c.callBuffer('XRANGE', key, start, '+', 'COUNT', STREAM_CHUNK)) as [Buffer, Buffer[]][];
}

/** The id right after `id`, for exclusive XRANGE starts that also work before 6.2. */
function nextId(id: string): string {
  const [ms, seq] = id.split('-');
  const s = BigInt(seq ?? '0');
  if (s < 0xffff_ffff_ffff_ffffn) return `${ms}-${s + 1n}`;
  return `${BigInt(ms ?? '0') + 1n}-0`;
}

function sameEntry(x: [Buffer, Buffer[]], y: [Buffer, Buffer[]]): boolean {
  if (!x[0].equals(y[0]) || x[1].length !== y[1].length) return false;
  return x[1].every((v, i) => v.equals(y[1][i] as Buffer));
}

async function compareStream(a: Redis, b: Redis, k: KeyPair): Promise<Found[]> {
  const out: Found[] = [];
  // entries, in order, chunk by chunk
  let start = '-';
  let index = 0;
  for (;;) {
    const [ea, eb] = await Promise.all([xrangeChunk(a, k.a, start), xrangeChunk(b, k.b, start)]);
    for (let i = 0; i < Math.max(ea.length, eb.length); i++) {
      const x = ea[i];
      const y = eb[i];
      if (x && y && sameEntry(x, y)) continue;
      const render = (e: [Buffer, Buffer[]] | undefined): string =>
        e ? `${e[0].toString()} ${e[1].map((v) => show(v)).join(' ')}` : '(none)';
      return [{ kind: 'value', detail: `stream entry ${index + i}: ${render(x)} vs ${render(y)}` }];
    }
    if (ea.length < STREAM_CHUNK) break;
    index += ea.length;
    start = nextId((ea[ea.length - 1] as [Buffer, Buffer[]])[0].toString());
  }
  // metadata, groups, PELs, consumers
  const [ia, ib] = await Promise.all([
    a.callBuffer('XINFO', 'STREAM', k.a, 'FULL', 'COUNT', 0) as Promise<Reply>,
    b.callBuffer('XINFO', 'STREAM', k.b, 'FULL', 'COUNT', 0) as Promise<Reply>,
  ]);
  const ma = flat(ia);
  const mb = flat(ib);
  for (const f of STREAM_FIELDS) {
    if (ma.has(f) && mb.has(f) && str(ma.get(f)) !== str(mb.get(f))) {
      out.push({ kind: 'value', detail: `stream ${f}: ${str(ma.get(f))} vs ${str(mb.get(f))}` });
    }
  }
  const groups = (m: Map<string, Reply>): Map<string, GroupState> =>
    new Map(arr(m.get('groups')).map((g) => [str(flat(g).get('name')), groupState(g)]));
  const ga = groups(ma);
  const gb = groups(mb);
  for (const [name, sa] of ga) {
    const sb = gb.get(name);
    if (!sb) {
      out.push({ kind: 'value', detail: `stream group ${name} only in source` });
      continue;
    }
    // entries-read is 7.0+: compare only what both report
    const fa = new Map([...sa.fields].filter(([k]) => sb.fields.has(k)));
    const fb = new Map([...sb.fields].filter(([k]) => sa.fields.has(k)));
    compareMaps(`group ${name}`, fa, fb, out);
    compareMaps(`group ${name} pending entry`, sa.pel, sb.pel, out);
    compareMaps(`group ${name} consumer`, sa.consumers, sb.consumers, out);
  }
  for (const name of gb.keys()) if (!ga.has(name)) out.push({ kind: 'value', detail: `stream group ${name} only in target` });
  return out;
}

// ---------------------------------------------------------------------------------------------

async function functionLibraries(server: RedisServer): Promise<Map<string, string> | undefined> {
  if (!server.features.functions) return undefined;
  try {
    const r = (await server.client(0).call('FUNCTION', 'LIST', 'WITHCODE')) as unknown[];
    const out = new Map<string, string>();
    for (const lib of r) {
      const m = new Map<string, unknown>();
      const a = lib as unknown[];
      for (let i = 0; i + 1 < a.length; i += 2) m.set(String(a[i]), a[i + 1]);
      out.set(String(m.get('library_name')), String(m.get('library_code')));
    }
    return out;
  } catch (err) {
    if (isUnknownCommand(err)) return undefined;
    throw err;
  }
}

export async function compareFunctions(source: RedisServer, target: RedisServer): Promise<Difference[]> {
  const [fa, fb] = await Promise.all([functionLibraries(source), functionLibraries(target)]);
  const out: Difference[] = [];
  const a = fa ?? new Map<string, string>();
  const b = fb ?? new Map<string, string>();
  for (const [name, code] of a) {
    const other = b.get(name);
    if (other === undefined) {
      out.push({ db: -1, key: name, kind: 'function', detail: fb ? 'library missing on target' : 'target has no FUNCTION support' });
    } else if (other !== code) {
      out.push({ db: -1, key: name, kind: 'function', detail: 'library code differs' });
    }
  }
  for (const name of b.keys()) if (!a.has(name)) out.push({ db: -1, key: name, kind: 'function', detail: 'library only on target' });
  return out;
}

/** INFO keyspace `subexpiry` counts hashes with field TTLs; without it (pre-7.4) assume none. */
export function mayHaveFieldTtls(db: KeyspaceDb | undefined, server: RedisServer): boolean {
  if (!db || !server.features.hashFieldTtl) return false;
  return db.subexpiry === undefined || db.subexpiry > 0;
}

interface DbPair {
  /** Source db, or null when nothing maps onto the target db. */
  src: number | null;
  tgt: number;
}

function dbPairs(srcSpace: Map<number, KeyspaceDb>, tgtSpace: Map<number, KeyspaceDb>, opts: CompareOptions): DbPair[] {
  const map = (d: number): number => opts.dbMap?.[d] ?? d;
  const pairs = new Map<number, DbPair>();
  const srcDbs = opts.dbs ?? [...srcSpace.keys()];
  for (const s of srcDbs) {
    const t = map(s);
    const prev = pairs.get(t);
    if (prev) throw new Error(`dbMap maps source dbs ${prev.src} and ${s} both to target db ${t}`);
    pairs.set(t, { src: s, tgt: t });
  }
  if (opts.dbs === undefined) {
    for (const t of tgtSpace.keys()) {
      if (pairs.has(t)) continue;
      // the source db that would land here (it has no keys, or it would be paired already)
      const mappedFrom = Object.entries(opts.dbMap ?? {}).find(([, to]) => to === t)?.[0];
      const src = mappedFrom !== undefined ? Number(mappedFrom) : opts.dbMap?.[t] === undefined ? t : null;
      pairs.set(t, { src, tgt: t });
    }
  }
  return [...pairs.values()].sort((x, y) => (x.src ?? x.tgt) - (y.src ?? y.tgt));
}

/**
 * Compares one key: `sk` read through `sc` against `tk` read through `tc` (the names differ
 * when a mapping renames keys). An undefined connection means that side cannot hold the key.
 * Nothing is reported for a key that is gone on both sides (expired or deleted meanwhile).
 */
export async function compareKeyPair(
  sc: Redis | undefined,
  sk: Buffer,
  tc: Redis | undefined,
  tk: Buffer,
  ttlMode: HashTtlMode,
): Promise<Found[]> {
  const tolerance = ttlMode.toleranceMs;
  const absent = Promise.resolve(['none', -2] as const);
  const [[ts, ps], [tt, pt]] = await Promise.all([
    sc ? Promise.all([sc.type(sk), sc.pttl(sk)]) : absent,
    tc ? Promise.all([tc.type(tk), tc.pttl(tk)]) : absent,
  ]);
  if (ts === 'none' && tt === 'none') return [];
  if (tt === 'none') return [{ kind: 'missing', detail: `${ts} missing on target` }];
  if (ts === 'none') return [{ kind: 'extra', detail: `${tt} only on target` }];
  if (ts !== tt) return [{ kind: 'type', detail: `${ts} vs ${tt}` }];
  const a = sc as Redis;
  const b = tc as Redis;
  const k: KeyPair = { a: sk, b: tk };
  let found: Found[];
  switch (ts) {
    case 'string': found = await compareString(a, b, k); break;
    case 'list': found = await compareList(a, b, k); break;
    case 'set': found = await compareSet(a, b, k); break;
    case 'zset': found = await compareZset(a, b, k); break;
    case 'hash': found = await compareHash(a, b, k, ttlMode); break;
    case 'stream': found = await compareStream(a, b, k); break;
    default: found = [{ kind: 'value', detail: `cannot compare values of type ${ts}` }];
  }
  if ((ps < 0) !== (pt < 0)) {
    found.push({ kind: 'ttl', detail: `PTTL ${ps < 0 ? 'none' : ps} vs ${pt < 0 ? 'none' : pt}` });
  } else if (ps >= 0 && Math.abs(ps - pt) > tolerance) {
    found.push({ kind: 'ttl', detail: `PTTL ${ps} vs ${pt} (tolerance ${tolerance} ms)` });
  }
  return found;
}

export async function compareServers(source: RedisServer, target: RedisServer, opts: CompareOptions = {}): Promise<Difference[]> {
  const tolerance = opts.ttlToleranceMs ?? 2000;
  const concurrency = opts.concurrency ?? 32;
  const [srcSpace, tgtSpace] = await Promise.all([keyspace(source), keyspace(target)]);
  const diffs: Difference[] = [];

  for (const { src, tgt } of dbPairs(srcSpace, tgtSpace, opts)) {
    const db = src ?? tgt;
    const tc = target.client(tgt);
    const sc = src === null ? undefined : source.client(src);
    const [sKeys, tKeys] = await Promise.all([sc ? scanKeys(sc) : new Map<string, Buffer>(), scanKeys(tc)]);
    const ttlMode: HashTtlMode = {
      source: source.features.hashFieldTtl,
      target: target.features.hashFieldTtl,
      // subexpiry is only reported on 7.4+; unknown counts as "maybe"
      needed: mayHaveFieldTtls(src === null ? undefined : srcSpace.get(src), source) ||
        mayHaveFieldTtls(tgtSpace.get(tgt), target),
      toleranceMs: tolerance,
    };
    const all = [...new Set([...sKeys.keys(), ...tKeys.keys()])].sort();

    const compareKey = async (name: string): Promise<void> => {
      const key = unkey(name);
      const printable = printableKey(key);
      const found = await compareKeyPair(sc, key, tc, key, ttlMode);
      for (const f of found) diffs.push({ db, key: printable, kind: f.kind, detail: f.detail });
    };

    for (let i = 0; i < all.length; i += concurrency) {
      await Promise.all(all.slice(i, i + concurrency).map(compareKey));
    }
  }
  diffs.push(...(await compareFunctions(source, target)));
  return diffs;
}

export function formatDifferences(diffs: readonly Difference[], max = 20): string {
  if (diffs.length === 0) return 'no differences';
  const lines = diffs.slice(0, max).map((d) => `  ${d.db < 0 ? 'server' : `db${d.db}`} ${d.kind} ${d.key}: ${d.detail}`);
  if (diffs.length > max) lines.push(`  ... and ${diffs.length - max} more`);
  return `${diffs.length} difference(s):\n${lines.join('\n')}`;
}
