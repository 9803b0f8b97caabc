/**
 * Compares one key on the source with its counterpart on the target: existence, TYPE, PTTL,
 * and the full value, read in chunks so that no key is ever fetched whole.
 *
 * Ordered values (strings, lists, streams, pending entries) are compared as two chunk streams
 * in lockstep, stopping at the first difference. Unordered ones (sets, hashes, zsets) cannot
 * be walked in the same order on two servers, so:
 *  - up to IN_MEMORY_MAX elements, both sides are scanned into memory and compared;
 *  - above, each SCAN page of the source is looked up on the target (SMISMEMBER, HMGET,
 *    ZMSCORE) and the sizes are compared: equal sizes plus "every source element is on the
 *    target with the same value" is equality. Only a size mismatch with no source element
 *    missing needs the reverse walk, to name an element only the target has.
 * Memory per key is thus bounded by a chunk, whatever the key's size.
 *
 * Everything goes through Conn.call, so the commands of many keys compared at once share each
 * connection's pipeline. Big keys take a permit of `heavy` first, so only a few of them hold
 * chunk-sized replies at a time.
 */

import { ReplyError, type Reply } from '../resp/reply-decoder.js';
import type { Arg } from '../resp/encode.js';
import type { Semaphore } from './pool.js';
import {
  UnexpectedReplyError,
  asArray,
  asBuffer,
  asInt,
  asNullableBuffer,
  asText,
  bytesKey,
  firstDifference,
  flatMap,
  formatScore,
  fromBytesKey,
  parseScore,
  scanReply,
  show,
} from './replies.js';
import { unlessUnknown, type Conn } from './sides.js';
import type { DifferenceKind } from './types.js';

/** GETRANGE chunk. */
const STRING_CHUNK = 1024 * 1024;
/** Strings longer than this, and collections with more elements than SMALL_COLLECTION, are "big". */
const SMALL_STRING = 64 * 1024;
const SMALL_COLLECTION = 1000;
/** Collections up to this many elements (on both sides) are compared in memory. */
export const IN_MEMORY_MAX = 10_000;
/** An in-memory comparison gives up (and the key is re-checked in a later round) past this. */
const IN_MEMORY_GROWTH_LIMIT = 2 * IN_MEMORY_MAX;
const LIST_CHUNK = 1000;
/** COUNT hint of SSCAN / HSCAN / ZSCAN. */
const SCAN_PAGE = 1000;
const STREAM_CHUNK = 500;
const PEL_CHUNK = 500;
const FIELD_TTL_CHUNK = 1000;
/** Specific differences named per key and kind; the rest is summed up as "...". */
const MAX_EXAMPLES = 4;

/** Stream-level XINFO STREAM fields compared when both servers report them (several are 7.0+). */
const STREAM_FIELDS = ['length', 'last-generated-id', 'max-deleted-entry-id', 'entries-added', 'recorded-first-entry-id', 'groups'];
/** XINFO GROUPS fields; lag is derived from the others, so it is left out. */
const GROUP_FIELDS = ['consumers', 'pending', 'last-delivered-id', 'entries-read'];

export type KeyDifferenceKind = Exclude<DifferenceKind, 'function'>;

/** One kind of difference in one key, its examples joined into one detail. */
export interface Found {
  kind: KeyDifferenceKind;
  detail: string;
}

/** A key's name and connection on each side (the names differ when a prefix is added). */
export interface KeyPair {
  s: Conn;
  sk: Buffer;
  t: Conn;
  tk: Buffer;
}

export interface CompareContext {
  ttlToleranceMs: number;
  /** Permits for big keys (see the module comment). */
  heavy: Semaphore;
  signal?: AbortSignal;
}

/** The key changed while it was being compared (it is re-checked in a later round, if any). */
class ChangedError extends Error {
  override readonly name = 'ChangedError';
}

/** Differences of one key, a few examples per kind. */
class Findings {
  private readonly byKind = new Map<KeyDifferenceKind, string[]>();
  private readonly more = new Set<KeyDifferenceKind>();

  add(kind: KeyDifferenceKind, detail: string): void {
    let list = this.byKind.get(kind);
    if (list === undefined) this.byKind.set(kind, (list = []));
    if (list.length < MAX_EXAMPLES) list.push(detail);
    else this.more.add(kind);
  }

  /** True once `kind` has its examples: callers stop looking for more. */
  full(kind: KeyDifferenceKind): boolean {
    return (this.byKind.get(kind)?.length ?? 0) >= MAX_EXAMPLES;
  }

  has(kind: KeyDifferenceKind): boolean {
    return this.byKind.has(kind);
  }

  toFound(): Found[] {
    return [...this.byKind].map(([kind, list]) => ({
      kind,
      detail: list.join('; ') + (this.more.has(kind) ? '; ...' : ''),
    }));
  }
}

/** The same command on both sides, sent in the same tick so both read the same moment. */
async function both(p: KeyPair, args: (key: Buffer) => Arg[]): Promise<[Reply, Reply]> {
  return Promise.all([p.s.call(args(p.sk)), p.t.call(args(p.tk))]);
}

async function heavyIf<T>(ctx: CompareContext, big: boolean, fn: () => Promise<T>): Promise<T> {
  if (!big) return fn();
  const release = await ctx.heavy.acquire();
  try {
    return await fn();
  } finally {
    release();
  }
}

/**
 * Calls `onPage` with each page of an SSCAN / HSCAN / ZSCAN; stops early when it returns false.
 * A page may repeat elements (a rehash during the scan): callers are idempotent about that.
 */
async function scanPages(
  c: Conn,
  cmd: 'SSCAN' | 'HSCAN' | 'ZSCAN',
  key: Buffer,
  ctx: CompareContext,
  onPage: (items: Reply[]) => Promise<boolean> | boolean,
): Promise<void> {
  let cursor = '0';
  do {
    ctx.signal?.throwIfAborted();
    const page = scanReply(await c.call([cmd, key, cursor, 'COUNT', SCAN_PAGE]));
    cursor = page.cursor;
    if (!(await onPage(page.items))) return;
  } while (cursor !== '0');
}

/** Pairs of a HSCAN / ZSCAN page. */
function pairs(items: Reply[]): [Buffer, Reply][] {
  const out: [Buffer, Reply][] = [];
  for (let i = 0; i + 1 < items.length; i += 2) out.push([asBuffer(items[i] as Reply), items[i + 1] as Reply]);
  return out;
}

function growthGuard(n: number, what: string): void {
  if (n > IN_MEMORY_GROWTH_LIMIT) throw new ChangedError(`${what} grew past ${IN_MEMORY_GROWTH_LIMIT} elements while being compared`);
}

// ---------------------------------------------------------------------------------------------
// The key

/**
 * Compares the key pair. Nothing is reported for a key that is gone on both sides (expired or
 * deleted meanwhile). Errors the server returns for this key (WRONGTYPE because it was just
 * replaced, MOVED during a resharding) become a 'value' difference, so a later round re-checks
 * it; a broken connection is fatal and propagates.
 */
export async function compareKeyPair(p: KeyPair, ctx: CompareContext): Promise<Found[]> {
  try {
    const [st, sp, tt, tp] = await Promise.all([
      p.s.call(['TYPE', p.sk]),
      p.s.call(['PTTL', p.sk]),
      p.t.call(['TYPE', p.tk]),
      p.t.call(['PTTL', p.tk]),
    ]);
    const sPttl = asInt(sp);
    const tPttl = asInt(tp);
    // PTTL -2 after TYPE said the key exists: it expired in between.
    const sType = sPttl === -2 ? 'none' : asText(st);
    const tType = tPttl === -2 ? 'none' : asText(tt);
    if (sType === 'none' && tType === 'none') return [];
    if (tType === 'none') return [{ kind: 'missing', detail: `${sType} missing on target` }];
    if (sType === 'none') return [{ kind: 'extra', detail: `${tType} only on target` }];
    if (sType !== tType) return [{ kind: 'type', detail: `${sType} vs ${tType}` }];

    const f = new Findings();
    await compareValue(sType, p, ctx, f);
    const sHas = sPttl >= 0;
    const tHas = tPttl >= 0;
    if (sHas !== tHas || (sHas && Math.abs(sPttl - tPttl) > ctx.ttlToleranceMs)) {
      f.add('ttl', `pttl ${sHas ? sPttl : '(none)'} vs ${tHas ? tPttl : '(none)'}`);
    }
    return f.toFound();
  } catch (e) {
    if (e instanceof ReplyError || e instanceof UnexpectedReplyError) return [{ kind: 'value', detail: `could not compare: ${e.message}` }];
    if (e instanceof ChangedError) return [{ kind: 'value', detail: e.message }];
    throw e;
  }
}

async function compareValue(type: string, p: KeyPair, ctx: CompareContext, f: Findings): Promise<void> {
  switch (type) {
    case 'string':
      return compareString(p, ctx, f);
    case 'list':
      return compareList(p, ctx, f);
    case 'set':
      return compareSet(p, ctx, f);
    case 'zset':
      return compareZset(p, ctx, f);
    case 'hash':
      return compareHash(p, ctx, f);
    case 'stream':
      return compareStream(p, ctx, f);
    default:
      return compareDump(type, p, f);
  }
}

// ---------------------------------------------------------------------------------------------
// Strings and lists: two chunk streams in lockstep

async function compareString(p: KeyPair, ctx: CompareContext, f: Findings): Promise<void> {
  const [a, b] = await both(p, (k) => ['STRLEN', k]);
  const la = asInt(a);
  const lb = asInt(b);
  if (la !== lb) {
    f.add('value', `string length ${la} vs ${lb}`);
    return;
  }
  await heavyIf(ctx, la > SMALL_STRING, async () => {
    for (let off = 0; off < la; off += STRING_CHUNK) {
      ctx.signal?.throwIfAborted();
      const end = Math.min(la, off + STRING_CHUNK) - 1;
      const [ra, rb] = await both(p, (k) => ['GETRANGE', k, off, end]);
      const x = asBuffer(ra);
      const y = asBuffer(rb);
      if (!x.equals(y)) {
        const i = firstDifference(x, y);
        f.add('value', `string byte ${off + i}: ${show(x.subarray(i, i + 16))} vs ${show(y.subarray(i, i + 16))}`);
        return;
      }
    }
  });
}

async function compareList(p: KeyPair, ctx: CompareContext, f: Findings): Promise<void> {
  const [a, b] = await both(p, (k) => ['LLEN', k]);
  const la = asInt(a);
  const lb = asInt(b);
  if (la !== lb) {
    f.add('value', `list length ${la} vs ${lb}`);
    return;
  }
  await heavyIf(ctx, la > SMALL_COLLECTION, async () => {
    for (let start = 0; start < la; start += LIST_CHUNK) {
      ctx.signal?.throwIfAborted();
      const stop = Math.min(la, start + LIST_CHUNK) - 1;
      const [ra, rb] = await both(p, (k) => ['LRANGE', k, start, stop]);
      const xa = asArray(ra);
      const xb = asArray(rb);
      for (let i = 0; i < Math.max(xa.length, xb.length); i++) {
        const x = i < xa.length ? asBuffer(xa[i] as Reply) : null;
        const y = i < xb.length ? asBuffer(xb[i] as Reply) : null;
        if (x === null || y === null || !x.equals(y)) {
          f.add('value', `list element ${start + i}: ${show(x)} vs ${show(y)}`);
          return;
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Sets

async function collectMembers(c: Conn, key: Buffer, ctx: CompareContext): Promise<Set<string>> {
  const out = new Set<string>();
  await scanPages(c, 'SSCAN', key, ctx, (items) => {
    for (const m of items) out.add(bytesKey(asBuffer(m)));
    growthGuard(out.size, 'set');
    return true;
  });
  return out;
}

/** Which of `members` are in the set: SMISMEMBER when the server has it (6.2+). */
async function membership(c: Conn, key: Buffer, members: Buffer[]): Promise<boolean[]> {
  if (members.length === 0) return [];
  if (c.caps.smismember) {
    const r = await unlessUnknown(c.caps, 'smismember', () => c.call(['SMISMEMBER', key, ...members]));
    if (r !== undefined) return asArray(r).map((x) => asInt(x) === 1);
  }
  return Promise.all(members.map(async (m) => asInt(await c.call(['SISMEMBER', key, m])) === 1));
}

async function compareSet(p: KeyPair, ctx: CompareContext, f: Findings): Promise<void> {
  const [a, b] = await both(p, (k) => ['SCARD', k]);
  const na = asInt(a);
  const nb = asInt(b);
  if (na !== nb) f.add('value', `set size ${na} vs ${nb}`);
  const n = Math.max(na, nb);
  await heavyIf(ctx, n > SMALL_COLLECTION, async () => {
    if (n <= IN_MEMORY_MAX) {
      const [ma, mb] = await Promise.all([collectMembers(p.s, p.sk, ctx), collectMembers(p.t, p.tk, ctx)]);
      for (const m of ma) {
        if (f.full('value')) return;
        if (!mb.has(m)) f.add('value', `set member ${show(fromBytesKey(m))} missing on target`);
      }
      for (const m of mb) {
        if (f.full('value')) return;
        if (!ma.has(m)) f.add('value', `set member ${show(fromBytesKey(m))} only on target`);
      }
      return;
    }
    let missing = 0;
    await scanPages(p.s, 'SSCAN', p.sk, ctx, async (items) => {
      const members = items.map(asBuffer);
      const present = await membership(p.t, p.tk, members);
      members.forEach((m, i) => {
        if (present[i]) return;
        missing++;
        f.add('value', `set member ${show(m)} missing on target`);
      });
      return !f.full('value');
    });
    // Same size and no source member missing: equal. Otherwise name what only the target has.
    if (missing > 0 || na === nb) return;
    await scanPages(p.t, 'SSCAN', p.tk, ctx, async (items) => {
      const members = items.map(asBuffer);
      const present = await membership(p.s, p.sk, members);
      members.forEach((m, i) => {
        if (!present[i]) f.add('value', `set member ${show(m)} only on target`);
      });
      return !f.full('value');
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Sorted sets: members and exact scores

interface Scored {
  member: Buffer;
  score: number;
}

async function collectScores(c: Conn, key: Buffer, ctx: CompareContext): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  await scanPages(c, 'ZSCAN', key, ctx, (items) => {
    for (const [m, s] of pairs(items)) out.set(bytesKey(m), parseScore(s));
    growthGuard(out.size, 'zset');
    return true;
  });
  return out;
}

/** Scores of `members` (null: not a member): ZMSCORE when the server has it (6.2+). */
async function scoresOf(c: Conn, key: Buffer, members: Buffer[]): Promise<(number | null)[]> {
  if (members.length === 0) return [];
  const parse = (r: Reply): number | null => (r === null ? null : parseScore(r));
  if (c.caps.zmscore) {
    const r = await unlessUnknown(c.caps, 'zmscore', () => c.call(['ZMSCORE', key, ...members]));
    if (r !== undefined) return asArray(r).map(parse);
  }
  return Promise.all(members.map(async (m) => parse(await c.call(['ZSCORE', key, m]))));
}

/**
 * Doubles compared with ===: -0 equals 0 on purpose, since Redis itself turns -0 into 0 when a
 * zset is re-encoded, so the sign cannot survive every migration path.
 */
function scoreDiffers(f: Findings, member: Buffer, x: number, y: number): void {
  if (x !== y) f.add('value', `score of ${show(member)}: ${formatScore(x)} vs ${formatScore(y)}`);
}

async function compareZset(p: KeyPair, ctx: CompareContext, f: Findings): Promise<void> {
  const [a, b] = await both(p, (k) => ['ZCARD', k]);
  const na = asInt(a);
  const nb = asInt(b);
  if (na !== nb) f.add('value', `zset size ${na} vs ${nb}`);
  const n = Math.max(na, nb);
  await heavyIf(ctx, n > SMALL_COLLECTION, async () => {
    if (n <= IN_MEMORY_MAX) {
      const [za, zb] = await Promise.all([collectScores(p.s, p.sk, ctx), collectScores(p.t, p.tk, ctx)]);
      for (const [m, x] of za) {
        if (f.full('value')) return;
        const y = zb.get(m);
        if (y === undefined) f.add('value', `zset member ${show(fromBytesKey(m))} missing on target`);
        else scoreDiffers(f, fromBytesKey(m), x, y);
      }
      for (const m of zb.keys()) {
        if (f.full('value')) return;
        if (!za.has(m)) f.add('value', `zset member ${show(fromBytesKey(m))} only on target`);
      }
      return;
    }
    let missing = 0;
    await scanPages(p.s, 'ZSCAN', p.sk, ctx, async (items) => {
      const page: Scored[] = pairs(items).map(([member, s]) => ({ member, score: parseScore(s) }));
      const theirs = await scoresOf(p.t, p.tk, page.map((e) => e.member));
      page.forEach((e, i) => {
        const y = theirs[i];
        if (y === null || y === undefined) {
          missing++;
          f.add('value', `zset member ${show(e.member)} missing on target`);
        } else {
          scoreDiffers(f, e.member, e.score, y);
        }
      });
      return !f.full('value');
    });
    if (missing > 0 || na === nb) return;
    await scanPages(p.t, 'ZSCAN', p.tk, ctx, async (items) => {
      const members = pairs(items).map(([m]) => m);
      const ours = await scoresOf(p.s, p.sk, members);
      members.forEach((m, i) => {
        if (ours[i] === null) f.add('value', `zset member ${show(m)} only on target`);
      });
      return !f.full('value');
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Hashes, with field TTLs

async function collectFields(c: Conn, key: Buffer, ctx: CompareContext): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  await scanPages(c, 'HSCAN', key, ctx, (items) => {
    for (const [field, v] of pairs(items)) out.set(bytesKey(field), asBuffer(v));
    growthGuard(out.size, 'hash');
    return true;
  });
  return out;
}

/** HPEXPIRETIME of `fields` (absolute ms; -1 no TTL, -2 no field); undefined when unsupported. */
async function expireTimes(c: Conn, key: Buffer, fields: Buffer[]): Promise<number[] | undefined> {
  if (!c.caps.hashFieldTtl) return undefined;
  return unlessUnknown(c.caps, 'hashFieldTtl', async () => {
    const r = await c.call(['HPEXPIRETIME', key, 'FIELDS', fields.length, ...fields]);
    // Some versions answer nil for a key that is gone: no field has a TTL then.
    return r === null ? fields.map(() => -2) : asArray(r).map(asInt);
  });
}

/**
 * Field TTLs of fields both sides have, compared as absolute expire times within the
 * tolerance. Only asked of servers that support them; when just one side does, its TTLs are
 * a difference only if there are any.
 */
async function compareFieldTtls(p: KeyPair, fields: Buffer[], ctx: CompareContext, f: Findings): Promise<void> {
  if (!p.s.caps.hashFieldTtl && !p.t.caps.hashFieldTtl) return;
  for (let i = 0; i < fields.length && !f.full('field-ttl'); i += FIELD_TTL_CHUNK) {
    const chunk = fields.slice(i, i + FIELD_TTL_CHUNK);
    const [xs, ys] = await Promise.all([expireTimes(p.s, p.sk, chunk), expireTimes(p.t, p.tk, chunk)]);
    if (xs === undefined && ys === undefined) return;
    chunk.forEach((field, j) => {
      const x = xs?.[j];
      const y = ys?.[j];
      // -2: the field went away meanwhile; the value comparison speaks for presence.
      if (x === -2 || y === -2) return;
      if (x === undefined) {
        if (y !== undefined && y >= 0) f.add('field-ttl', `field ${show(field)} expire time (source has no field TTLs) vs ${y}`);
        return;
      }
      if (y === undefined) {
        if (x >= 0) f.add('field-ttl', `field ${show(field)} expire time ${x} vs (target has no field TTLs)`);
        return;
      }
      if ((x >= 0) !== (y >= 0) || (x >= 0 && Math.abs(x - y) > ctx.ttlToleranceMs)) {
        f.add('field-ttl', `field ${show(field)} expire time ${x >= 0 ? x : '(none)'} vs ${y >= 0 ? y : '(none)'}`);
      }
    });
  }
}

async function compareHash(p: KeyPair, ctx: CompareContext, f: Findings): Promise<void> {
  const [a, b] = await both(p, (k) => ['HLEN', k]);
  const na = asInt(a);
  const nb = asInt(b);
  if (na !== nb) f.add('value', `hash size ${na} vs ${nb}`);
  const n = Math.max(na, nb);
  await heavyIf(ctx, n > SMALL_COLLECTION, async () => {
    if (n <= IN_MEMORY_MAX) {
      const [ha, hb] = await Promise.all([collectFields(p.s, p.sk, ctx), collectFields(p.t, p.tk, ctx)]);
      const common: Buffer[] = [];
      for (const [field, x] of ha) {
        const y = hb.get(field);
        if (y !== undefined) common.push(fromBytesKey(field));
        if (f.full('value')) continue;
        if (y === undefined) f.add('value', `hash field ${show(fromBytesKey(field))} missing on target`);
        else if (!x.equals(y)) f.add('value', `hash field ${show(fromBytesKey(field))}: ${show(x)} vs ${show(y)}`);
      }
      for (const field of hb.keys()) {
        if (f.full('value')) break;
        if (!ha.has(field)) f.add('value', `hash field ${show(fromBytesKey(field))} only on target`);
      }
      await compareFieldTtls(p, common, ctx, f);
      return;
    }
    let missing = 0;
    await scanPages(p.s, 'HSCAN', p.sk, ctx, async (items) => {
      const page = pairs(items);
      const fields = page.map(([field]) => field);
      // HSCAN may return an empty page with a cursor that goes on: HMGET needs a field.
      if (fields.length === 0) return true;
      const theirs = asArray(await p.t.call(['HMGET', p.tk, ...fields]));
      const common: Buffer[] = [];
      page.forEach(([field, v], i) => {
        const y = asNullableBuffer(theirs[i] ?? null);
        if (y === null) {
          missing++;
          f.add('value', `hash field ${show(field)} missing on target`);
          return;
        }
        common.push(field);
        const x = asBuffer(v);
        if (!x.equals(y)) f.add('value', `hash field ${show(field)}: ${show(x)} vs ${show(y)}`);
      });
      if (!f.full('field-ttl')) await compareFieldTtls(p, common, ctx, f);
      return !(f.full('value') && f.full('field-ttl'));
    });
    if (missing > 0 || na === nb) return;
    await scanPages(p.t, 'HSCAN', p.tk, ctx, async (items) => {
      const fields = pairs(items).map(([field]) => field);
      if (fields.length === 0) return true;
      const ours = asArray(await p.s.call(['HMGET', p.sk, ...fields]));
      fields.forEach((field, i) => {
        if ((ours[i] ?? null) === null) f.add('value', `hash field ${show(field)} only on target`);
      });
      return !f.full('value');
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Streams: entries, then consumer groups with their consumers and pending entries

/** The id right after `id` (exclusive ranges without the 6.2+ "(" syntax); null after the last. */
export function nextStreamId(id: string): string | null {
  const dash = id.indexOf('-');
  const ms = BigInt(dash < 0 ? id : id.slice(0, dash));
  const seq = dash < 0 ? 0n : BigInt(id.slice(dash + 1));
  const max = 0xffff_ffff_ffff_ffffn;
  if (seq < max) return `${ms}-${seq + 1n}`;
  return ms < max ? `${ms + 1n}-0` : null;
}

/** An entry [id, [field, value, ...]] for a detail message. */
function showEntry(e: Reply | undefined): string {
  if (e === undefined) return '(none)';
  const [id, fields] = asArray(e);
  const fv = asArray(fields ?? null).map((x) => show(asBuffer(x), 20));
  const text = fv.length > 8 ? `${fv.slice(0, 8).join(' ')} ...` : fv.join(' ');
  return `${asText(id ?? null)} {${text}}`;
}

function sameEntry(x: Reply, y: Reply): boolean {
  const [ix, fx] = asArray(x);
  const [iy, fy] = asArray(y);
  if (!asBuffer(ix ?? null).equals(asBuffer(iy ?? null))) return false;
  const ax = asArray(fx ?? null);
  const ay = asArray(fy ?? null);
  return ax.length === ay.length && ax.every((v, i) => asBuffer(v).equals(asBuffer(ay[i] as Reply)));
}

function compareFields(what: string, names: readonly string[], a: Map<string, Reply>, b: Map<string, Reply>, f: Findings): void {
  for (const name of names) {
    // Fields one server does not report (older versions) are not compared.
    if (!a.has(name) || !b.has(name)) continue;
    const x = asText(a.get(name) ?? null);
    const y = asText(b.get(name) ?? null);
    if (x !== y) f.add('value', `${what} ${name} ${x} vs ${y}`);
  }
}

async function compareStream(p: KeyPair, ctx: CompareContext, f: Findings): Promise<void> {
  const [ia, ib] = await both(p, (k) => ['XINFO', 'STREAM', k]);
  const sa = flatMap(ia);
  const sb = flatMap(ib);
  compareFields('stream', STREAM_FIELDS, sa, sb, f);
  const length = Math.max(asInt(sa.get('length') ?? 0), asInt(sb.get('length') ?? 0));
  await heavyIf(ctx, length > SMALL_COLLECTION, () => compareStreamEntries(p, ctx, f));
  await compareGroups(p, ctx, f);
}

async function compareStreamEntries(p: KeyPair, ctx: CompareContext, f: Findings): Promise<void> {
  let start: string | null = '-';
  let index = 0;
  while (start !== null) {
    ctx.signal?.throwIfAborted();
    const from: string = start;
    const [ra, rb] = await both(p, (k) => ['XRANGE', k, from, '+', 'COUNT', STREAM_CHUNK]);
    const ea = asArray(ra);
    const eb = asArray(rb);
    for (let i = 0; i < Math.max(ea.length, eb.length); i++) {
      const x = ea[i];
      const y = eb[i];
      if (x === undefined || y === undefined || !sameEntry(x, y)) {
        f.add('value', `stream entry ${index + i}: ${showEntry(x)} vs ${showEntry(y)}`);
        return;
      }
    }
    index += ea.length;
    const last = ea[ea.length - 1];
    if (ea.length < STREAM_CHUNK || last === undefined) return;
    start = nextStreamId(asText(asArray(last)[0] ?? null));
  }
}

/** XINFO GROUPS (or XINFO CONSUMERS) as name → fields. */
function byName(r: Reply): Map<string, Map<string, Reply>> {
  const out = new Map<string, Map<string, Reply>>();
  for (const g of asArray(r)) {
    const m = flatMap(g);
    out.set(asText(m.get('name') ?? null), m);
  }
  return out;
}

async function compareGroups(p: KeyPair, ctx: CompareContext, f: Findings): Promise<void> {
  const [ra, rb] = await both(p, (k) => ['XINFO', 'GROUPS', k]);
  const ga = byName(ra);
  const gb = byName(rb);
  for (const [name, a] of ga) {
    const b = gb.get(name);
    const label = `group ${show(fromBytesKey(name))}`;
    if (b === undefined) {
      f.add('value', `${label} missing on target`);
      continue;
    }
    compareFields(label, GROUP_FIELDS, a, b, f);
    const group = fromBytesKey(name);
    await compareConsumers(p, group, label, f);
    await comparePending(p, group, label, ctx, f);
  }
  for (const name of gb.keys()) if (!ga.has(name)) f.add('value', `group ${show(fromBytesKey(name))} only on target`);
}

/**
 * Consumers and their pending counts. Their pending entries themselves are the group's PEL
 * entries that name them, compared by comparePending. Idle/inactive times are not state a
 * migration carries.
 */
async function compareConsumers(p: KeyPair, group: Buffer, label: string, f: Findings): Promise<void> {
  const [ra, rb] = await both(p, (k) => ['XINFO', 'CONSUMERS', k, group]);
  const ca = byName(ra);
  const cb = byName(rb);
  for (const [name, a] of ca) {
    const b = cb.get(name);
    const who = `${label} consumer ${show(fromBytesKey(name))}`;
    if (b === undefined) f.add('value', `${who} missing on target`);
    else compareFields(who, ['pending'], a, b, f);
  }
  for (const name of cb.keys()) if (!ca.has(name)) f.add('value', `${label} consumer ${show(fromBytesKey(name))} only on target`);
}

/** A PEL row [id, consumer, idle, deliveries], without the idle time (not migrated state). */
function pelRow(r: Reply): { id: string; text: string } {
  const [id, consumer, , count] = asArray(r);
  return { id: asText(id ?? null), text: `${show(asBuffer(consumer ?? null))} delivered ${asText(count ?? null)}` };
}

/** Compares a bigint-ordered stream id pair: which of two PEL ids comes first. */
function idLess(a: string, b: string): boolean {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const x = BigInt(am);
  const y = BigInt(bm);
  return x < y || (x === y && BigInt(as) < BigInt(bs));
}

async function comparePending(p: KeyPair, group: Buffer, label: string, ctx: CompareContext, f: Findings): Promise<void> {
  let start: string | null = '-';
  while (start !== null) {
    ctx.signal?.throwIfAborted();
    const from: string = start;
    const [ra, rb] = await both(p, (k) => ['XPENDING', k, group, from, '+', PEL_CHUNK]);
    const pa = asArray(ra).map(pelRow);
    const pb = asArray(rb).map(pelRow);
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
      const x = pa[i];
      const y = pb[i];
      if (x !== undefined && y !== undefined && x.id === y.id) {
        if (x.text !== y.text) {
          f.add('value', `${label} pending entry ${x.id}: ${x.text} vs ${y.text}`);
          return;
        }
        continue;
      }
      // The lower id is the one the other side lacks.
      if (y === undefined || (x !== undefined && idLess(x.id, y.id))) {
        f.add('value', `${label} pending entry ${x?.id}: ${x?.text} vs (none)`);
      } else {
        f.add('value', `${label} pending entry ${y.id}: (none) vs ${y.text}`);
      }
      return;
    }
    const last = pa[pa.length - 1];
    if (pa.length < PEL_CHUNK || last === undefined) return;
    start = nextStreamId(last.id);
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Types without a reader here (module types): compared as DUMP payloads, which is exact
 * between servers of one version but reports a difference across RDB versions or encodings.
 * The payload is read whole: such values are rare and have no chunked reader.
 */
async function compareDump(type: string, p: KeyPair, f: Findings): Promise<void> {
  const [a, b] = await both(p, (k) => ['DUMP', k]);
  const x = asNullableBuffer(a);
  const y = asNullableBuffer(b);
  if (x === null || y === null) return; // gone meanwhile: the next round (if any) sees it
  if (!x.equals(y)) f.add('value', `${type} values differ (compared as DUMP payloads, ${x.length} vs ${y.length} bytes)`);
}
