/**
 * Reads keys from a source that refuses replication, in the shapes the snapshot path already
 * applies (src/rdb/entries.ts):
 *
 * - a small key is one pipelined `MEMORY USAGE` (the size guard), then `DUMP` + `PEXPIRETIME`
 *   (or `PTTL`): the DUMP payload minus its 10-byte footer is exactly the type byte + value
 *   of a `key` entry, which SnapshotApplier RESTOREs with an absolute TTL;
 * - a key above the size limit, one whose type the target cannot RESTORE, or every key when
 *   DUMP is refused, is read with type commands in bounded chunks (GETRANGE, LRANGE, SSCAN,
 *   ZSCAN, HSCAN, XRANGE + XINFO/XPENDING) and handed out as `key-begin`, `key-chunk`s and
 *   `key-end`, which KeyRewriter turns into commands under a temporary key.
 *
 * Reads of whole keys are spread over several pipelined connections; what is in flight is
 * bounded in keys (the connections' own bounds) and in bytes (the size guard's estimates).
 */
import type { Endpoint } from '../../common/endpoint.js';
import { describeEndpoint } from '../../common/endpoint.js';
import { RedisConnection, RedisConnectionError } from '../../resp/connection.js';
import { encodeCommand, type Arg } from '../../resp/encode.js';
import { ReplyError, type Reply } from '../../resp/reply-decoder.js';
import type { KeyChunk, KeyHeader, RdbEntry, StreamEntry, StreamGroup, StreamId, StreamMeta, WholeKeyEntry } from '../../rdb/entries.js';
import { RdbType, type LogicalType } from '../../rdb/types.js';
import { LOGICAL } from '../../rdb/parser.js';
import type { Throttle } from '../throttle.js';
import type { SourceCaps } from './capabilities.js';

/** What reading a whole key gave. */
export type WholeRead =
  | { kind: 'whole'; entry: WholeKeyEntry }
  /** The key does not exist (any more). */
  | { kind: 'gone' }
  /** The key must be read in chunks (readChunked). */
  | { kind: 'chunked'; reason: 'too-big' | 'not-restorable' };

export interface KeyReaderOptions {
  endpoint: Endpoint;
  caps: SourceCaps;
  /** Pipelined connections for whole keys. */
  connections: number;
  /** Keys whose estimated size is larger are read in chunks. */
  maxWholeBytes: number;
  /** Estimated bytes of DUMPs in flight, all connections. */
  maxInflightBytes?: number;
  /** Can the target RESTORE a payload of this type id (DUMPed by a server of this RDB version)? */
  restorable(rdbType: number): boolean;
  throttle?: Throttle | null;
}

const CHUNK_ITEMS = 1000;
/** Keys per batch script call: short enough (well under a millisecond) not to stall the source. */
const BATCH_KEYS = 100;
/** Bytes one batch may DUMP; keys past it are read one by one (with the size guard). */
const BATCH_BYTES = 1024 * 1024;
/**
 * One call reads a batch of keys: per key its DUMP (when MEMORY USAGE is within the limit and
 * the batch's byte budget) and PEXPIRETIME. Per key two replies: the payload, false (gone),
 * or the size (too big: read it with commands), or -3 (over the budget: read it alone); then
 * the absolute expiry.
 */
const BATCH_SCRIPT = `
local limit, budget, used, out = tonumber(ARGV[1]), tonumber(ARGV[2]), 0, {}
for i = 3, #ARGV do
  local k = ARGV[i]
  local m = redis.call('MEMORY', 'USAGE', k)
  if not m then
    out[#out + 1] = false
    out[#out + 1] = -2
  elseif m > limit then
    out[#out + 1] = m
    out[#out + 1] = redis.call('PEXPIRETIME', k)
  elseif used + m > budget and used > 0 then
    out[#out + 1] = -3
    out[#out + 1] = -3
  else
    used = used + m
    out[#out + 1] = redis.call('DUMP', k)
    out[#out + 1] = redis.call('PEXPIRETIME', k)
  end
end
return out`;
const CHUNK_BYTES = 1024 * 1024;
const DEFAULT_INFLIGHT_BYTES = 64 * 1024 * 1024;

/** A key read from a DUMP payload: the payload's body is the RDB value, as the parser's keys. */
class DumpedKey implements WholeKeyEntry {
  readonly kind = 'key';
  readonly idleSeconds = null;
  readonly lfuFreq = null;
  readonly rdbType: number;
  readonly rdbVersion: number;
  readonly logical: LogicalType;

  constructor(
    readonly db: number,
    readonly key: Buffer,
    private readonly dump: Buffer,
    readonly expireAtMs: number | null,
  ) {
    this.rdbType = dump[0]!;
    this.rdbVersion = dump.readUInt16LE(dump.length - 10);
    this.logical = LOGICAL[this.rdbType] ?? 'module';
  }

  get keyLength(): number {
    return this.key.length;
  }

  get valueLength(): number {
    return this.dump.length - 11;
  }

  get value(): Buffer {
    return this.dump.subarray(1, this.dump.length - 10);
  }

  get payload(): Buffer {
    return this.dump.subarray(0, this.dump.length - 10);
  }

  copyKey(out: Buffer, at: number): number {
    return this.key.copy(out, at);
  }

  copyValue(out: Buffer, at: number): number {
    return this.dump.copy(out, at, 1, this.dump.length - 10);
  }
}

/** A connection that remembers its selected db, so SELECT goes out only when it changes. */
class DbConnection {
  private db = 0;

  constructor(readonly connection: RedisConnection) {}

  send(db: number, args: readonly Arg[], cb: (reply: Reply | Error) => void): void {
    if (db !== this.db) {
      this.connection.send(encodeCommand(['SELECT', db]));
      this.db = db;
    }
    this.connection.send(encodeCommand(args), cb);
  }

  call(db: number, args: readonly Arg[]): Promise<Reply> {
    return new Promise((resolve, reject) => this.send(db, args, (r) => (r instanceof Error ? reject(r) : resolve(r))));
  }
}

function text(r: Reply | undefined): string {
  return Buffer.isBuffer(r) ? r.toString('latin1') : String(r);
}

function parseId(r: Reply | undefined): StreamId {
  const [ms, seq] = text(r).split('-');
  return { ms: BigInt(ms ?? 0), seq: BigInt(seq ?? 0) };
}

/** Bytes a chunk carries (what the bandwidth limit counts). */
function chunkBytes(c: KeyChunk): number {
  const sum = (xs: Buffer[]): number => xs.reduce((n, b) => n + b.length, 0);
  switch (c.type) {
    case 'string':
      return c.data.length;
    case 'list':
      return sum(c.items);
    case 'set':
      return sum(c.members);
    case 'zset':
      return sum(c.members) + sum(c.scores);
    case 'hash':
      return sum(c.fields) + sum(c.values);
    case 'stream-entries':
      return c.entries.reduce((n, e) => n + 16 + sum(e.fields), 0);
    default:
      return 64;
  }
}

function compareIds(a: StreamId, b: StreamId): number {
  return a.ms < b.ms ? -1 : a.ms > b.ms ? 1 : a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0;
}

/** The fields of a placeholder for a deleted message (it is XDELed right after being claimed). */
const DELETED_FIELDS = [Buffer.from('__ferry_deleted__'), Buffer.alloc(0)];

/** RESP2 maps come as flat [name, value, ...] arrays. */
function fields(r: Reply): Map<string, Reply> {
  const m = new Map<string, Reply>();
  if (!Array.isArray(r)) return m;
  for (let i = 0; i + 1 < r.length; i += 2) m.set(text(r[i]), r[i + 1]!);
  return m;
}

export class SourceKeyReader {
  private readonly whole: DbConnection[];
  private readonly chunked: DbConnection;
  private next = 0;
  private inflightBytes = 0;
  private pausedUntil = 0;
  private roomWaiters: (() => void)[] = [];
  private failure: Error | null = null;
  private closing = false;

  private constructor(
    private readonly o: KeyReaderOptions,
    connections: RedisConnection[],
    chunked: RedisConnection,
    private readonly onLost: (e: Error) => void,
  ) {
    this.whole = connections.map((c) => new DbConnection(c));
    this.chunked = new DbConnection(chunked);
    for (const c of [...connections, chunked]) {
      void c.closed.then((e) => {
        if (e && !this.failure && !this.closing) {
          this.failure = e;
          this.wake();
          this.onLost(e);
        }
      });
    }
  }

  static async open(o: KeyReaderOptions, onLost: (e: Error) => void): Promise<SourceKeyReader> {
    const opened: RedisConnection[] = [];
    try {
      for (let i = 0; i <= Math.max(1, o.connections); i++) {
        opened.push(await RedisConnection.connect({ ...o.endpoint, name: `ferry-scan-${i}` }));
      }
    } catch (e) {
      for (const c of opened) c.destroy('abandoned');
      throw e;
    }
    const chunked = opened.pop()!;
    return new SourceKeyReader(o, opened, chunked, onLost);
  }

  get where(): string {
    return describeEndpoint(this.o.endpoint);
  }

  /** True when the caller should wait (waitForRoom) before reading more whole keys. */
  get full(): boolean {
    if (this.failure) return false;
    if (this.inflightBytes >= (this.o.maxInflightBytes ?? DEFAULT_INFLIGHT_BYTES)) return true;
    if (this.pausedUntil > Date.now()) return true;
    return this.whole.every((c) => c.connection.full);
  }

  async waitForRoom(): Promise<void> {
    while (this.full) {
      const pause = this.pausedUntil - Date.now();
      if (pause > 0) {
        await new Promise((r) => setTimeout(r, pause));
        continue;
      }
      const blocked = this.whole.find((c) => c.connection.full);
      if (blocked && this.inflightBytes < (this.o.maxInflightBytes ?? DEFAULT_INFLIGHT_BYTES)) await blocked.connection.waitForRoom().catch(() => undefined);
      else await new Promise<void>((r) => this.roomWaiters.push(r));
    }
    if (this.failure) throw this.failure;
  }

  private wake(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w();
  }

  private pick(): DbConnection {
    for (let i = 0; i < this.whole.length; i++) {
      const c = this.whole[(this.next + i) % this.whole.length]!;
      if (!c.connection.full) {
        this.next = (this.next + i + 1) % this.whole.length;
        return c;
      }
    }
    this.next = (this.next + 1) % this.whole.length;
    return this.whole[this.next]!;
  }

  /** Bytes read from the source (DUMP payloads, chunks). */
  bytesRead = 0;

  private account(bytes: number): void {
    this.bytesRead += bytes;
    const pause = this.o.throttle?.consume(bytes) ?? 0;
    if (pause > 0) this.pausedUntil = Math.max(this.pausedUntil, Date.now() + pause);
  }

  private scriptSha: string | null = null;
  private batches = new Map<number, { keys: Buffer[]; done: ((r: WholeRead | Error) => void)[] }>();
  private flushScheduled = false;

  /** Loads the batch script (where the source allows scripts); without it keys are read one by one. */
  async prepare(): Promise<void> {
    if (!this.o.caps.batchScript) return;
    try {
      const sha = await this.chunked.call(0, ['SCRIPT', 'LOAD', BATCH_SCRIPT]);
      this.scriptSha = Buffer.isBuffer(sha) ? sha.toString('latin1') : null;
    } catch {
      this.scriptSha = null;
    }
  }

  /**
   * Reads one key whole (or finds it must be chunked). `done` gets the outcome or an error: a
   * broken connection (RedisConnectionError) or a refusal worth reporting (ReplyError).
   */
  readWhole(db: number, key: Buffer, done: (r: WholeRead | Error) => void): void {
    if (this.failure) return void process.nextTick(done, this.failure);
    if (this.scriptSha !== null && this.o.caps.batchScript) return this.batch(db, key, done);
    this.readOne(db, key, done);
  }

  private batch(db: number, key: Buffer, done: (r: WholeRead | Error) => void): void {
    let b = this.batches.get(db);
    if (!b) this.batches.set(db, (b = { keys: [], done: [] }));
    b.keys.push(key);
    b.done.push(done);
    if (b.keys.length >= BATCH_KEYS) this.flushBatch(db);
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        for (const d of [...this.batches.keys()]) this.flushBatch(d);
      });
    }
  }

  private flushBatch(db: number): void {
    const b = this.batches.get(db);
    if (!b || b.keys.length === 0) return;
    this.batches.delete(db);
    const c = this.pick();
    this.inflightBytes += BATCH_BYTES;
    c.send(db, ['EVALSHA', this.scriptSha!, 0, this.o.maxWholeBytes, BATCH_BYTES, ...b.keys], (r) => {
      this.inflightBytes -= BATCH_BYTES;
      if (this.roomWaiters.length > 0 && !this.full) this.wake();
      if (r instanceof RedisConnectionError) {
        for (const d of b.done) d(r);
        return;
      }
      if (!Array.isArray(r) || r.length !== 2 * b.keys.length) {
        // NOSCRIPT (the source's scripts were flushed), BUSY, an ACL...: one by one from now on.
        this.o.caps.batchScript = false;
        b.keys.forEach((k, i) => this.readOne(db, k, b.done[i]!));
        return;
      }
      for (let i = 0; i < b.keys.length; i++) {
        const key = b.keys[i]!;
        const v = r[2 * i]!;
        const t = Number(r[2 * i + 1]);
        const done = b.done[i]!;
        if (Buffer.isBuffer(v)) {
          if (v.length < 11 || t === -2) done({ kind: 'gone' });
          else this.dumped(db, key, v, t < 0 ? null : t, done);
        } else if (v === null) done({ kind: 'gone' });
        else if (Number(v) === -3) this.readOne(db, key, done);
        else done({ kind: 'chunked', reason: 'too-big' });
      }
    });
  }

  private dumped(db: number, key: Buffer, dump: Buffer, expireAtMs: number | null, done: (r: WholeRead | Error) => void): void {
    this.account(dump.length);
    const entry = new DumpedKey(db, key, dump, expireAtMs);
    if (!this.o.restorable(entry.rdbType)) return done({ kind: 'chunked', reason: 'not-restorable' });
    done({ kind: 'whole', entry });
  }

  private readOne(db: number, key: Buffer, done: (r: WholeRead | Error) => void): void {
    const caps = this.o.caps;
    const c = this.pick();
    if (!caps.dump) return void process.nextTick(done, { kind: 'chunked', reason: 'not-restorable' } satisfies WholeRead);
    if (!caps.memoryUsage) return this.dumpKey(c, db, key, 0, done);
    c.send(db, ['MEMORY', 'USAGE', key], (r) => {
      if (r instanceof RedisConnectionError) return done(r);
      if (r instanceof ReplyError) {
        caps.memoryUsage = false; // refused (ACL, renamed): no size guard from now on
        return this.dumpKey(c, db, key, 0, done);
      }
      if (r === null) return done({ kind: 'gone' });
      const size = Number(r);
      if (size > this.o.maxWholeBytes) return done({ kind: 'chunked', reason: 'too-big' });
      this.dumpKey(c, db, key, size, done);
    });
  }

  private dumpKey(c: DbConnection, db: number, key: Buffer, estimate: number, done: (r: WholeRead | Error) => void): void {
    const caps = this.o.caps;
    this.inflightBytes += estimate;
    let dump: Reply | Error = null;
    c.send(db, ['DUMP', key], (r) => {
      dump = r;
    });
    c.send(db, [caps.pexpiretime ? 'PEXPIRETIME' : 'PTTL', key], (ttl) => {
      this.inflightBytes -= estimate;
      if (this.roomWaiters.length > 0 && !this.full) this.wake();
      if (dump instanceof RedisConnectionError) return done(dump);
      if (dump instanceof ReplyError) {
        if (/unknown command|NOPERM|not allowed|disabled/i.test(dump.message)) {
          caps.dump = false; // from now on every key is read with type commands
          return done({ kind: 'chunked', reason: 'not-restorable' });
        }
        return done(dump);
      }
      if (ttl instanceof Error) return done(ttl);
      if (!Buffer.isBuffer(dump) || dump.length < 11) return done({ kind: 'gone' });
      const t = Number(ttl);
      if (t === -2) return done({ kind: 'gone' });
      this.dumped(db, key, dump, t < 0 ? null : caps.pexpiretime ? t : Date.now() + t, done);
    });
  }

  /** The source's absolute expiry of `key`: null without one, undefined when the key is gone. */
  private async expiry(db: number, key: Buffer): Promise<number | null | undefined> {
    const pexpiretime = this.o.caps.pexpiretime;
    const t = Number(await this.chunked.call(db, [pexpiretime ? 'PEXPIRETIME' : 'PTTL', key]));
    if (t === -2) return undefined;
    if (t < 0) return null;
    return pexpiretime ? t : Date.now() + t;
  }

  /**
   * Reads a key with type commands, one bounded chunk at a time, and hands each entry to
   * `emit` (awaiting it: that is the back-pressure). Returns false when the key was gone
   * before anything was emitted. A key that changes while it is read is read again later
   * (its notification arrives meanwhile), so the pieces need not be of one instant.
   */
  async readChunked(db: number, key: Buffer, reason: 'too-big' | 'not-restorable', emit: (e: RdbEntry) => void | Promise<void>): Promise<boolean> {
    const type = text(await this.chunked.call(db, ['TYPE', key]));
    if (type === 'none') return false;
    const expireAtMs = await this.expiry(db, key);
    if (expireAtMs === undefined) return false;
    const logical: LogicalType = (['string', 'list', 'set', 'zset', 'hash', 'stream'] as const).find((t) => t === type) ?? 'module';
    const header: KeyHeader = { db, key, rdbType: RDB_TYPE_OF[logical], logical, expireAtMs, idleSeconds: null, lfuFreq: null };
    await emit({ kind: 'key-begin', ...header, reason });
    const chunk = async (c: KeyChunk): Promise<void> => {
      this.account(chunkBytes(c));
      const pause = this.pausedUntil - Date.now();
      if (pause > 0) await new Promise((r) => setTimeout(r, pause)); // the bandwidth limit
      await emit({ kind: 'key-chunk', chunk: c });
    };
    switch (logical) {
      case 'string':
        await this.readString(db, key, chunk);
        break;
      case 'list':
        await this.readList(db, key, chunk);
        break;
      case 'set':
        await this.scanCollection(db, key, 'SSCAN', (items) => chunk({ type: 'set', members: items }));
        break;
      case 'zset':
        await this.scanCollection(db, key, 'ZSCAN', (items) => {
          const members: Buffer[] = [];
          const scores: Buffer[] = [];
          for (let i = 0; i + 1 < items.length; i += 2) members.push(items[i]!), scores.push(items[i + 1]!);
          return chunk({ type: 'zset', members, scores });
        });
        break;
      case 'hash':
        await this.scanCollection(db, key, 'HSCAN', async (items) => {
          const f: Buffer[] = [];
          const v: Buffer[] = [];
          for (let i = 0; i + 1 < items.length; i += 2) f.push(items[i]!), v.push(items[i + 1]!);
          const expireAtMs = this.o.caps.hashFieldTtl ? await this.fieldTtls(db, key, f) : undefined;
          await chunk({ type: 'hash', fields: f, values: v, ...(expireAtMs ? { expireAtMs } : {}) });
        });
        break;
      case 'stream':
        await this.readStream(db, key, chunk);
        break;
      default:
        await chunk({ type: 'unrewritable', reason: `a ${type} value (module type) cannot be read with commands and ${this.o.caps.dump ? 'is too big to DUMP' : 'DUMP is refused'}` });
    }
    await emit({ kind: 'key-end' });
    return true;
  }

  private async readString(db: number, key: Buffer, chunk: (c: KeyChunk) => Promise<void>): Promise<void> {
    const length = Number(await this.chunked.call(db, ['STRLEN', key]));
    if (length === 0) return chunk({ type: 'string', data: Buffer.alloc(0) });
    for (let at = 0; at < length; at += CHUNK_BYTES) {
      const part = await this.chunked.call(db, ['GETRANGE', key, at, Math.min(length, at + CHUNK_BYTES) - 1]);
      if (!Buffer.isBuffer(part) || part.length === 0) break;
      await chunk({ type: 'string', data: part });
    }
  }

  private async readList(db: number, key: Buffer, chunk: (c: KeyChunk) => Promise<void>): Promise<void> {
    for (let at = 0; ; at += CHUNK_ITEMS) {
      const items = await this.chunked.call(db, ['LRANGE', key, at, at + CHUNK_ITEMS - 1]);
      if (!Array.isArray(items) || items.length === 0) return;
      await chunk({ type: 'list', items: items as Buffer[] });
      if (items.length < CHUNK_ITEMS) return;
    }
  }

  private async scanCollection(db: number, key: Buffer, command: 'SSCAN' | 'ZSCAN' | 'HSCAN', each: (items: Buffer[]) => Promise<void>): Promise<void> {
    let cursor = '0';
    do {
      const r = await this.chunked.call(db, [command, key, cursor, 'COUNT', CHUNK_ITEMS]);
      if (!Array.isArray(r)) return;
      cursor = text(r[0]);
      const items = (r[1] as Reply[] | undefined) ?? [];
      if (items.length > 0) await each(items as Buffer[]);
    } while (cursor !== '0');
  }

  private async fieldTtls(db: number, key: Buffer, f: Buffer[]): Promise<number[]> {
    const r = await this.chunked.call(db, ['HPEXPIRETIME', key, 'FIELDS', f.length, ...f]);
    return Array.isArray(r) ? r.map((t) => Math.max(0, Number(t))) : f.map(() => 0);
  }

  private async readStream(db: number, key: Buffer, chunk: (c: KeyChunk) => Promise<void>): Promise<void> {
    // The groups first: a pending entry whose message was deleted (XDEL) must be added back,
    // in id order among the live entries, so that XCLAIM can recreate it (then it is deleted).
    const meta = await this.streamMeta(db, key);
    const pendingIds = [...new Map(meta.groups.flatMap((g) => g.pending.map((p) => [`${p.id.ms}-${p.id.seq}`, p.id] as const))).values()].sort(compareIds);
    let p = 0;
    const withDeleted = (entries: StreamEntry[], upTo: StreamId | null): StreamEntry[] => {
      const out: StreamEntry[] = [];
      for (const e of entries) {
        for (; p < pendingIds.length && compareIds(pendingIds[p]!, e.id) < 0; p++) out.push({ id: pendingIds[p]!, fields: DELETED_FIELDS, deleted: true });
        if (p < pendingIds.length && compareIds(pendingIds[p]!, e.id) === 0) p++;
        out.push(e);
      }
      for (; upTo === null && p < pendingIds.length && compareIds(pendingIds[p]!, meta.lastId) <= 0; p++) out.push({ id: pendingIds[p]!, fields: DELETED_FIELDS, deleted: true });
      return out;
    };
    let start = '-';
    for (;;) {
      const r = await this.chunked.call(db, ['XRANGE', key, start, '+', 'COUNT', CHUNK_ITEMS]);
      const entries: StreamEntry[] = (Array.isArray(r) ? r : []).map((e) => {
        const [id, f] = e as [Buffer, Buffer[]];
        return { id: parseId(id), fields: f };
      });
      const more = entries.length === CHUNK_ITEMS;
      const out = withDeleted(entries, more ? entries[entries.length - 1]!.id : null);
      if (out.length > 0) await chunk({ type: 'stream-entries', entries: out });
      if (!more) break;
      const last = entries[entries.length - 1]!.id;
      start = this.o.caps.exclusiveRange ? `(${last.ms}-${last.seq}` : `${last.ms}-${last.seq + 1n}`;
    }
    await chunk({ type: 'stream-meta', meta });
  }

  private async streamMeta(db: number, key: Buffer): Promise<StreamMeta> {
    const info = fields(await this.chunked.call(db, ['XINFO', 'STREAM', key]));
    const maxDeleted = info.get('max-deleted-entry-id');
    const added = info.get('entries-added');
    const meta: StreamMeta = {
      length: BigInt(Number(info.get('length') ?? 0)),
      lastId: parseId(info.get('last-generated-id')),
      firstId: null,
      maxDeletedId: maxDeleted === undefined ? null : parseId(maxDeleted),
      entriesAdded: added === undefined || added === null ? null : BigInt(text(added)),
      groups: [],
    };
    const groups = await this.chunked.call(db, ['XINFO', 'GROUPS', key]);
    for (const g of Array.isArray(groups) ? groups : []) {
      const gi = fields(g);
      const name = gi.get('name') as Buffer;
      const read = gi.get('entries-read');
      const group: StreamGroup = {
        name,
        lastId: parseId(gi.get('last-delivered-id')),
        entriesRead: read === undefined || read === null ? null : BigInt(text(read)),
        pending: [],
        consumers: [],
      };
      const consumers = await this.chunked.call(db, ['XINFO', 'CONSUMERS', key, name]);
      const owned = new Map<string, StreamId[]>();
      let from = '-';
      for (;;) {
        const p = await this.chunked.call(db, ['XPENDING', key, name, from, '+', CHUNK_ITEMS]);
        if (!Array.isArray(p) || p.length === 0) break;
        const now = BigInt(Date.now());
        for (const e of p) {
          const [id, consumer, idle, count] = e as [Buffer, Buffer, number, number];
          const sid = parseId(id);
          group.pending.push({ id: sid, consumer, deliveryTimeMs: now - BigInt(idle), deliveryCount: Number(count) });
          const list = owned.get(consumer.toString('latin1')) ?? [];
          list.push(sid);
          owned.set(consumer.toString('latin1'), list);
        }
        if (p.length < CHUNK_ITEMS) break;
        const last = parseId((p[p.length - 1] as Reply[])[0]);
        from = `${last.ms}-${last.seq + 1n}`;
      }
      for (const c of Array.isArray(consumers) ? consumers : []) {
        const ci = fields(c);
        const cname = ci.get('name') as Buffer;
        group.consumers.push({ name: cname, seenTimeMs: 0n, activeTimeMs: null, pending: owned.get(cname.toString('latin1')) ?? [] });
      }
      meta.groups.push(group);
    }
    return meta;
  }

  /** Every key of `db`, a SCAN page at a time, on a connection of its own. */
  async scan(db: number, page: (keys: Buffer[]) => void | Promise<void>, signal: { stopped: boolean }): Promise<void> {
    const c = new DbConnection(await RedisConnection.connect({ ...this.o.endpoint, name: 'ferry-scan-cursor' }));
    try {
      // The next page is asked for before this one is handed out: the source answers the SCAN
      // behind the reads already queued, and the pipeline must not run dry meanwhile.
      let next: Promise<Reply> | null = c.call(db, ['SCAN', '0', 'COUNT', CHUNK_ITEMS]);
      while (next) {
        const r = await next;
        if (signal.stopped) return;
        if (!Array.isArray(r)) throw new Error(`source ${this.where}: unexpected SCAN reply`);
        const cursor = text(r[0]);
        next = cursor === '0' ? null : c.call(db, ['SCAN', cursor, 'COUNT', CHUNK_ITEMS]);
        const keys = (r[1] as Buffer[] | undefined) ?? [];
        if (keys.length > 0) await page(keys);
      }
    } finally {
      c.connection.destroy('done');
    }
  }

  /** One command on the chunk connection (FUNCTION DUMP, INFO...). */
  call(args: readonly Arg[], db = 0): Promise<Reply> {
    return this.chunked.call(db, args);
  }

  close(): void {
    this.closing = true;
    for (const c of [...this.whole, this.chunked]) c.connection.destroy('closed');
  }
}

/** A representative RDB type per logical type, for entries read with commands. */
const RDB_TYPE_OF: Record<LogicalType, number> = {
  string: RdbType.STRING,
  list: RdbType.LIST,
  set: RdbType.SET,
  zset: RdbType.ZSET_2,
  hash: RdbType.HASH,
  stream: RdbType.STREAM_LISTPACKS_3,
  module: RdbType.MODULE_2,
};
