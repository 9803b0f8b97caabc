import { decodeIntset, decodeListpack, decodeZiplist, decodeZipmap, elementToBigInt, elementToBuffer, elementToNumber } from './encodings.js';
import type {
  KeyChunk,
  KeyHeader,
  RdbEntry,
  WholeKeyEntry,
  StreamConsumer,
  StreamEntry,
  StreamGroup,
  StreamId,
  StreamPendingEntry,
} from './entries.js';
import { RdbError } from './errors.js';
import { CaptureOverflow, NEED_DATA, RdbInput, type NeedData } from './input.js';
import { LzfStream, lzfDecompress } from './lzf.js';
import { RdbOpcode, RdbType, type BlobElement, type LogicalType } from './types.js';
import { formatDouble, moduleNameFromId } from './values.js';

type Gen<T> = Generator<NeedData | RdbEntry, T, void>;
/** A generator that only waits for input, never emits entries. */
type ReadGen<T> = Generator<NeedData, T, void>;

// Special string encodings, returned by lengthOrEncoding() as negative numbers.
const ENC_INT8 = -1;
const ENC_INT16 = -2;
const ENC_INT32 = -3;
const ENC_LZF = -4;

/** Bounded pieces: a big key is cut into chunks of at most this many items or bytes. */
const CHUNK_ITEMS = 1000;
const CHUNK_BYTES = 1 << 20;

export interface RdbParserOptions {
  /**
   * Whether a key of this RDB type should arrive whole as a RESTORE payload (when it is small
   * enough). False makes the parser decode it into command-shaped chunks.
   */
  wantsPayload?: (rdbType: number, rdbVersion: number, magic: RdbMagic) => boolean;
  /** Keys whose encoded value is larger than this are streamed in chunks. Default 16 MiB. */
  maxPayloadBytes?: number;
}

export type RdbMagic = 'REDIS' | 'VALKEY';

export const LOGICAL: Record<number, LogicalType> = {
  [RdbType.STRING]: 'string',
  [RdbType.LIST]: 'list',
  [RdbType.LIST_ZIPLIST]: 'list',
  [RdbType.LIST_QUICKLIST]: 'list',
  [RdbType.LIST_QUICKLIST_2]: 'list',
  [RdbType.SET]: 'set',
  [RdbType.SET_INTSET]: 'set',
  [RdbType.SET_LISTPACK]: 'set',
  [RdbType.ZSET]: 'zset',
  [RdbType.ZSET_2]: 'zset',
  [RdbType.ZSET_ZIPLIST]: 'zset',
  [RdbType.ZSET_LISTPACK]: 'zset',
  [RdbType.HASH]: 'hash',
  [RdbType.HASH_ZIPMAP]: 'hash',
  [RdbType.HASH_ZIPLIST]: 'hash',
  [RdbType.HASH_LISTPACK]: 'hash',
  [RdbType.HASH_METADATA_PRE_GA]: 'hash',
  [RdbType.HASH_LISTPACK_EX_PRE_GA]: 'hash',
  [RdbType.HASH_METADATA]: 'hash',
  [RdbType.HASH_LISTPACK_EX]: 'hash',
  [RdbType.STREAM_LISTPACKS]: 'stream',
  [RdbType.STREAM_LISTPACKS_2]: 'stream',
  [RdbType.STREAM_LISTPACKS_3]: 'stream',
  [RdbType.STREAM_LISTPACKS_4]: 'stream',
  [RdbType.STREAM_LISTPACKS_5]: 'stream',
  [RdbType.MODULE_2]: 'module',
};

/**
 * A streaming RDB parser: push chunks in, pull entries out.
 *
 *     parser.push(chunk);
 *     for (let e = parser.next(); e !== NEED_DATA && e !== null; e = parser.next()) handle(e);
 *
 * It holds at most one small key's bytes (or one element of a big key) at a time; the caller
 * gets back-pressure for free, because nothing is parsed until it asks for the next entry.
 */
export class RdbParser {
  private readonly input = new RdbInput();
  private readonly gen: Gen<void>;
  private finished = false;
  private readonly wantsPayload: NonNullable<RdbParserOptions['wantsPayload']>;
  private readonly maxPayloadBytes: number;

  version = 0;
  magic: RdbMagic = 'REDIS';
  private db = 0;
  private keys = 0;

  constructor(options: RdbParserOptions = {}) {
    this.wantsPayload = options.wantsPayload ?? (() => true);
    this.maxPayloadBytes = options.maxPayloadBytes ?? 16 * 1024 * 1024;
    this.gen = this.parse();
  }

  push(chunk: Buffer): void {
    this.input.push(chunk);
  }

  /** No more input will come: a snapshot that is not complete now is truncated. */
  end(): void {
    this.input.end();
  }

  /** The next entry; NEED_DATA when more input must be pushed first; null after the end. */
  next(): RdbEntry | NeedData | null {
    if (this.finished) return null;
    const step = this.gen.next();
    if (step.done) {
      this.finished = true;
      return null;
    }
    return step.value;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** Bytes copied to join reads across chunks: linear in the input, whatever the element sizes. */
  get bytesCopied(): number {
    return this.input.bytesCopied;
  }

  /** Bytes of the snapshot consumed so far. */
  get offset(): number {
    return this.input.offset;
  }

  /** Bytes pushed but not consumed. */
  get buffered(): number {
    return this.input.buffered;
  }

  /** After the end: the bytes pushed beyond the snapshot's last byte. */
  takeRest(): Buffer[] {
    return this.input.takeRest();
  }

  // ---------------------------------------------------------------------------------------
  // File structure

  private *parse(): Gen<void> {
    const r = this.input;
    yield* r.need(9, 'the RDB header (REDIS or VALKEY and a version)');
    const header = r.bytes(9).toString('latin1');
    if (header.startsWith('REDIS') && /^\d{4}$/.test(header.slice(5))) {
      this.magic = 'REDIS';
      this.version = Number(header.slice(5));
    } else if (header.startsWith('VALKEY') && /^\d{3}$/.test(header.slice(6))) {
      this.magic = 'VALKEY';
      this.version = Number(header.slice(6));
    } else {
      throw new RdbError(0, 'the RDB header (REDIS or VALKEY and a version)', `got ${JSON.stringify(header)}`);
    }
    if (this.version < 1) throw new RdbError(0, 'an RDB version of at least 1', `got ${this.version}`);

    for (;;) {
      if (r.avail() >= FAST_PATH_MIN_BYTES) {
        const fast = this.recordFromWindow();
        if (fast === NO_ENTRY) continue;
        if (fast !== undefined) {
          yield fast;
          continue;
        }
      }
      if (r.avail() < 1) yield* r.need(1, 'an opcode or a type byte');
      const at = r.offset;
      const op = r.u8();
      switch (op) {
        case RdbOpcode.EOF:
          yield* this.trailer();
          yield { kind: 'end', checksumVerified: this.checksumVerified, keys: this.keys };
          return;
        case RdbOpcode.SELECTDB:
          this.db = yield* this.length('a database number');
          yield { kind: 'select-db', db: this.db };
          continue;
        case RdbOpcode.RESIZEDB: {
          const keys = yield* this.length('the RESIZEDB key count');
          const expires = yield* this.length('the RESIZEDB expires count');
          yield { kind: 'resize-db', db: this.db, keys, expires };
          continue;
        }
        case RdbOpcode.AUX: {
          const name = yield* this.string('an AUX field name');
          const value = yield* this.string('an AUX field value');
          yield { kind: 'aux', name: name.toString('latin1'), value: Buffer.from(value) };
          continue;
        }
        case RdbOpcode.EXPIRETIME_MS:
          yield* r.need(8, 'an 8-byte expiry time in ms');
          this.expireAtMs = Number(r.i64le());
          continue;
        case RdbOpcode.EXPIRETIME:
          yield* r.need(4, 'a 4-byte expiry time in seconds');
          this.expireAtMs = r.i32le() * 1000;
          continue;
        case RdbOpcode.IDLE:
          this.idleSeconds = yield* this.length('an LRU idle time');
          continue;
        case RdbOpcode.FREQ:
          yield* r.need(1, 'an LFU frequency byte');
          this.lfuFreq = r.u8();
          continue;
        case RdbOpcode.SLOT_INFO:
          yield* this.length('a SLOT_INFO slot');
          yield* this.length('a SLOT_INFO key count');
          yield* this.length('a SLOT_INFO expires count');
          continue;
        case RdbOpcode.FUNCTION2:
          yield { kind: 'function', code: Buffer.from(yield* this.string('a function library')) };
          continue;
        case RdbOpcode.FUNCTION_PRE_GA:
          throw new RdbError(at, 'a released opcode', 'FUNCTION (246) comes from a Redis 7.0 release candidate; resave the source with 7.0 GA or later');
        case RdbOpcode.MODULE_AUX:
          yield { kind: 'module-aux', module: yield* this.skipModuleAux() };
          continue;
        case RdbOpcode.KEY_META_OR_SLOT_IMPORT:
          if (this.magic === 'VALKEY') {
            yield* this.skipSlotImport();
            continue;
          }
          if (this.version < 13) throw new RdbError(at, 'an opcode of RDB version ' + this.version, 'opcode 243 (KEY_META) exists from RDB 13');
          this.keyMetaClasses = yield* this.skipKeyMeta();
          continue;
        default: {
          const logical = this.logicalType(op, at);
          const key = yield* this.string('a key name');
          const header = this.takeKeyHeader(op, logical, key);
          if (this.keyMetaClasses.length > 0) {
            yield { kind: 'key-meta-skipped', db: this.db, key, classes: this.keyMetaClasses };
            this.keyMetaClasses = [];
          }
          yield* this.key(header);
        }
      }
    }
  }

  private checksumVerified: boolean | null = null;

  // Prefix opcodes apply to the next key only.
  private expireAtMs: number | null = null;
  private idleSeconds: number | null = null;
  private lfuFreq: number | null = null;
  private keyMetaClasses: string[] = [];

  private takeKeyHeader(rdbType: number, logical: LogicalType, key: Buffer): KeyHeader {
    const header: KeyHeader = { db: this.db, key, rdbType, logical, expireAtMs: this.expireAtMs, idleSeconds: this.idleSeconds, lfuFreq: this.lfuFreq };
    this.expireAtMs = this.idleSeconds = this.lfuFreq = null;
    this.keys++;
    return header;
  }

  // ---------------------------------------------------------------------------------------
  // Fast path: a whole record that lies in the current window is parsed with plain
  // synchronous code, without a generator per read. Anything unusual (a record cut by the
  // window's end, a rare opcode or type, a malformed byte) makes it give up with the position
  // unchanged, and the generator path below parses that record (and reports errors).

  /** Parses one record from the window: an entry, NO_ENTRY (a prefix opcode), or undefined. */
  private recordFromWindow(): RdbEntry | typeof NO_ENTRY | undefined {
    const r = this.input;
    const start = r.pos;
    try {
      const op = r.buf[r.pos++]!;
      switch (op) {
        case RdbOpcode.EXPIRETIME_MS: {
          if (r.pos + 8 > r.buf.length) throw SHORT;
          // Two halves instead of a BigInt: unix ms fit in 53 bits.
          this.expireAtMs = r.buf.readInt32LE(r.pos + 4) * 0x1_0000_0000 + r.buf.readUInt32LE(r.pos);
          r.pos += 8;
          return NO_ENTRY;
        }
        case RdbOpcode.SELECTDB:
          this.db = this.windowLength();
          return { kind: 'select-db', db: this.db };
        case RdbOpcode.RESIZEDB: {
          const keys = this.windowLength();
          return { kind: 'resize-db', db: this.db, keys, expires: this.windowLength() };
        }
        case RdbOpcode.AUX: {
          const name = this.windowString().toString('latin1');
          return { kind: 'aux', name, value: this.windowString() };
        }
        case RdbOpcode.IDLE:
          this.idleSeconds = this.windowLength();
          return NO_ENTRY;
        case RdbOpcode.FREQ:
          this.lfuFreq = this.windowBytes(1)[0]!;
          return NO_ENTRY;
        default: {
          const logical = LOGICAL[op];
          if (logical === undefined || !FAST_SKIPPABLE.has(op) || this.keyMetaClasses.length > 0) throw SHORT;
          if (this.magic === 'VALKEY' && op >= RdbType.HASH_METADATA_PRE_GA) throw SHORT; // Valkey's own ids: slow path
          if (!this.wantsPayload(op, this.version, this.magic)) throw SHORT;
          const buf = r.buf;
          const keyLength = this.windowLengthOrEncoding();
          if (keyLength < 0 || r.pos + keyLength > buf.length) throw SHORT; // integer-encoded names: slow path
          const keyStart = r.pos;
          r.pos += keyLength;
          const valueStart = r.pos;
          this.skipValueInWindow(op);
          if (r.pos - valueStart > this.maxPayloadBytes) throw SHORT;
          const entry = new WholeKey(this.db, op, logical, this.expireAtMs, this.idleSeconds, this.lfuFreq, this.version, buf, keyStart, keyStart + keyLength, buf, valueStart, r.pos);
          this.expireAtMs = this.idleSeconds = this.lfuFreq = null;
          this.keys++;
          return entry;
        }
      }
    } catch (e) {
      if (e !== SHORT) throw e;
      r.pos = start;
      return undefined;
    }
  }

  private windowBytes(n: number): Buffer {
    const r = this.input;
    if (r.pos + n > r.buf.length) throw SHORT;
    r.pos += n;
    return r.buf.subarray(r.pos - n, r.pos);
  }

  /** Length or a negative ENC_* constant, read from the window. */
  private windowLengthOrEncoding(): number {
    const r = this.input;
    const buf = r.buf;
    const p = r.pos;
    if (p >= buf.length) throw SHORT;
    const b = buf[p]!;
    switch (b >> 6) {
      case 0:
        r.pos = p + 1;
        return b & 0x3f;
      case 1:
        if (p + 2 > buf.length) throw SHORT;
        r.pos = p + 2;
        return ((b & 0x3f) << 8) | buf[p + 1]!;
      case 2: {
        if (b !== 0x80) throw SHORT; // 64-bit lengths and corrupt prefixes: the slow path
        if (p + 5 > buf.length) throw SHORT;
        r.pos = p + 5;
        return buf.readUInt32BE(p + 1);
      }
      default: {
        const enc = b & 0x3f;
        if (enc > 3) throw SHORT;
        r.pos = p + 1;
        return -1 - enc;
      }
    }
  }

  private windowLength(): number {
    const v = this.windowLengthOrEncoding();
    if (v < 0) throw SHORT;
    return v;
  }

  private windowString(): Buffer {
    const v = this.windowLengthOrEncoding();
    if (v >= 0) return this.windowBytes(v);
    switch (v) {
      case ENC_INT8:
        return Buffer.from(String(this.windowBytes(1).readInt8(0)));
      case ENC_INT16:
        return Buffer.from(String(this.windowBytes(2).readInt16LE(0)));
      case ENC_INT32:
        return Buffer.from(String(this.windowBytes(4).readInt32LE(0)));
      default:
        throw SHORT; // LZF: the slow path decompresses with proper error reporting
    }
  }

  private skipStringInWindow(): void {
    const r = this.input;
    const v = this.windowLengthOrEncoding();
    let n: number;
    if (v >= 0) n = v;
    else if (v === ENC_INT8) n = 1;
    else if (v === ENC_INT16) n = 2;
    else if (v === ENC_INT32) n = 4;
    else {
      n = this.windowLength(); // compressed length
      this.windowLength(); // original length
    }
    if (r.pos + n > r.buf.length) throw SHORT;
    r.pos += n;
  }

  private skipValueInWindow(type: number): void {
    switch (type) {
      case RdbType.LIST:
      case RdbType.SET:
      case RdbType.LIST_QUICKLIST: {
        const n = this.windowLength();
        for (let i = 0; i < n; i++) this.skipStringInWindow();
        return;
      }
      case RdbType.HASH: {
        const n = 2 * this.windowLength();
        for (let i = 0; i < n; i++) this.skipStringInWindow();
        return;
      }
      case RdbType.ZSET_2: {
        const n = this.windowLength();
        for (let i = 0; i < n; i++) {
          this.skipStringInWindow();
          this.windowBytes(8);
        }
        return;
      }
      case RdbType.ZSET: {
        const n = this.windowLength();
        for (let i = 0; i < n; i++) {
          this.skipStringInWindow();
          const len = this.windowBytes(1)[0]!;
          if (len < 253) this.windowBytes(len);
        }
        return;
      }
      case RdbType.LIST_QUICKLIST_2: {
        const n = this.windowLength();
        for (let i = 0; i < n; i++) {
          this.windowLength();
          this.skipStringInWindow();
        }
        return;
      }
      case RdbType.HASH_LISTPACK_EX:
        this.windowBytes(8);
        this.skipStringInWindow();
        return;
      default:
        this.skipStringInWindow(); // a single string: the value or a compact encoding
    }
  }

  private *trailer(): Gen<void> {
    const r = this.input;
    if (this.version < 5) return;
    const computed = r.checksum();
    const at = r.offset;
    yield* r.need(8, 'the 8-byte CRC64 trailer');
    const stored = r.u64le();
    if (stored === 0n) {
      this.checksumVerified = null; // saved with rdbchecksum no
    } else if (stored !== computed) {
      throw new RdbError(at, 'a matching CRC64 trailer', `file says ${hex64(stored)}, content hashes to ${hex64(computed)}`);
    } else {
      this.checksumVerified = true;
    }
  }

  private logicalType(type: number, at: number): LogicalType {
    if (this.magic === 'VALKEY') {
      if (type === RdbType.HASH_METADATA_PRE_GA) return 'hash'; // HASH_2
      // Valkey gives its own meanings to ids from 22 on (23 is PATH_HASH in RDB 81).
      if (type > RdbType.HASH_METADATA_PRE_GA) {
        throw new RdbError(at, 'a known value type', `type ${type} in VALKEY RDB version ${this.version} is not supported`);
      }
    }
    const logical = LOGICAL[type];
    if (logical !== undefined) return logical;
    if (type === RdbType.MODULE_PRE_GA) {
      throw new RdbError(at, 'a value type Ferry can read', 'type 6 (MODULE, Redis 4.0 pre-release) cannot be skipped or migrated');
    }
    throw new RdbError(at, 'a known value type', `type ${type} in ${this.magic} RDB version ${this.version} is not supported`);
  }

  private *key(header: KeyHeader): Gen<void> {
    const r = this.input;
    const type = header.rdbType;
    if (this.wantsPayload(type, this.version, this.magic)) {
      r.startCapture(this.maxPayloadBytes);
      let overflow = false;
      try {
        yield* this.skipValue(type);
      } catch (e) {
        if (!(e instanceof CaptureOverflow)) throw e;
        overflow = true;
      }
      if (!overflow && r.capturedBytes() <= this.maxPayloadBytes) {
        yield WholeKey.fromHeader(header, r.finishCapture(), this.version);
        return;
      }
      r.rewindCapture();
      yield { kind: 'key-begin', ...header, reason: 'too-big' };
    } else {
      yield { kind: 'key-begin', ...header, reason: 'not-restorable' };
    }
    yield* this.decodeValue(type);
    yield { kind: 'key-end' };
  }

  // ---------------------------------------------------------------------------------------
  // Primitive reads

  /** Length, or a negative ENC_* constant for the special string encodings. */
  private *lengthOrEncoding(what: string): ReadGen<number> {
    const r = this.input;
    if (r.avail() < 9) {
      yield* r.need(1, what);
      yield* r.need(lengthFieldSize(r.buf[r.pos]!), what);
    }
    const at = r.offset;
    const b = r.u8();
    switch (b >> 6) {
      case 0:
        return b & 0x3f;
      case 1:
        return ((b & 0x3f) << 8) | r.u8();
      case 2:
        if (b === 0x80) {
          const v = r.buf.readUInt32BE(r.pos);
          r.pos += 4;
          return v;
        }
        if (b === 0x81) {
          const v = r.u64be();
          if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RdbError(at, what, `64-bit length ${v} is beyond what Ferry handles`);
          return Number(v);
        }
        throw new RdbError(at, what, `invalid length prefix byte 0x${b.toString(16)}`);
      default: {
        const enc = b & 0x3f;
        if (enc > 3) throw new RdbError(at, what, `unknown string encoding ${enc}`);
        return -1 - enc;
      }
    }
  }

  private *length(what: string): ReadGen<number> {
    const at = this.input.offset;
    const v = yield* this.lengthOrEncoding(what);
    if (v < 0) throw new RdbError(at, what, 'found a string encoding marker where a length belongs');
    return v;
  }

  /** A 64-bit length as BigInt (module type ids use all 64 bits). */
  private *length64(what: string): ReadGen<bigint> {
    const r = this.input;
    yield* r.need(1, what);
    if (r.buf[r.pos] === 0x81) {
      yield* r.need(9, what);
      r.pos++;
      return r.u64be();
    }
    return BigInt(yield* this.length(what));
  }

  /** A whole string, decompressed. Only for values bounded by their encoding (elements, blobs). */
  private *string(what: string): ReadGen<Buffer> {
    const r = this.input;
    const v = yield* this.lengthOrEncoding(what);
    if (v >= 0) {
      if (r.avail() < v) yield* r.need(v, what);
      return r.bytes(v);
    }
    switch (v) {
      case ENC_INT8:
        yield* r.need(1, what);
        return Buffer.from(String(r.buf.readInt8(r.pos++)));
      case ENC_INT16: {
        yield* r.need(2, what);
        const n = r.buf.readInt16LE(r.pos);
        r.pos += 2;
        return Buffer.from(String(n));
      }
      case ENC_INT32:
        yield* r.need(4, what);
        return Buffer.from(String(r.i32le()));
      default: {
        const compressed = yield* this.length(`${what}: LZF compressed length`);
        const expanded = yield* this.length(`${what}: LZF original length`);
        yield* r.need(compressed, what);
        const at = r.offset;
        try {
          return lzfDecompress(r.bytes(compressed), expanded);
        } catch (e) {
          throw new RdbError(at, `${what} (LZF data)`, (e as Error).message);
        }
      }
    }
  }

  private *skipString(what: string): ReadGen<void> {
    const r = this.input;
    const v = yield* this.lengthOrEncoding(what);
    if (v >= 0) {
      if (r.avail() >= v) r.pos += v;
      else yield* r.skip(v, what);
      return;
    }
    switch (v) {
      case ENC_INT8:
        return yield* r.skip(1, what);
      case ENC_INT16:
        return yield* r.skip(2, what);
      case ENC_INT32:
        return yield* r.skip(4, what);
      default: {
        const compressed = yield* this.length(`${what}: LZF compressed length`);
        yield* this.length(`${what}: LZF original length`);
        return yield* r.skip(compressed, what);
      }
    }
  }

  /** A string holding a compact encoding, decoded; errors name the blob's position. */
  private *blob(what: string, decode: (b: Buffer) => BlobElement[]): ReadGen<BlobElement[]> {
    const at = this.input.offset;
    const raw = yield* this.string(what);
    try {
      return decode(raw);
    } catch (e) {
      throw new RdbError(at, what, (e as Error).message);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Skipping a value (payload mode: only its extent matters)

  private *skipValue(type: number): ReadGen<void> {
    const r = this.input;
    switch (type) {
      case RdbType.STRING:
      case RdbType.HASH_ZIPMAP:
      case RdbType.LIST_ZIPLIST:
      case RdbType.SET_INTSET:
      case RdbType.ZSET_ZIPLIST:
      case RdbType.HASH_ZIPLIST:
      case RdbType.HASH_LISTPACK:
      case RdbType.ZSET_LISTPACK:
      case RdbType.SET_LISTPACK:
      case RdbType.HASH_LISTPACK_EX_PRE_GA:
        return yield* this.skipString('a value');
      case RdbType.LIST:
      case RdbType.SET:
      case RdbType.LIST_QUICKLIST:
        return yield* this.skipStrings(yield* this.length('an element count'), 'an element');
      case RdbType.HASH:
        return yield* this.skipStrings(2 * (yield* this.length('a field count')), 'a hash field or value');
      case RdbType.ZSET: {
        const n = yield* this.length('a member count');
        for (let i = 0; i < n; i++) {
          yield* this.skipString('a sorted-set member');
          yield* r.need(1, 'a score length');
          const len = r.u8();
          if (len < 253) yield* r.skip(len, 'a score');
        }
        return;
      }
      case RdbType.ZSET_2: {
        const n = yield* this.length('a member count');
        for (let i = 0; i < n; i++) {
          yield* this.skipString('a sorted-set member');
          yield* r.skip(8, 'a binary score');
        }
        return;
      }
      case RdbType.LIST_QUICKLIST_2: {
        const n = yield* this.length('a quicklist node count');
        for (let i = 0; i < n; i++) {
          yield* this.length('a quicklist container');
          yield* this.skipString('a quicklist node');
        }
        return;
      }
      case RdbType.HASH_METADATA_PRE_GA: {
        const n = yield* this.length('a field count');
        const valkey = this.magic === 'VALKEY';
        for (let i = 0; i < n; i++) {
          if (!valkey) yield* this.length('a field TTL');
          yield* this.skipString('a hash field');
          yield* this.skipString('a hash value');
          if (valkey) yield* r.skip(8, 'a field expiry');
        }
        return;
      }
      case RdbType.HASH_METADATA: {
        yield* r.skip(8, 'the minimum field expiry');
        const n = yield* this.length('a field count');
        for (let i = 0; i < n; i++) {
          yield* this.length('a field TTL');
          yield* this.skipString('a hash field');
          yield* this.skipString('a hash value');
        }
        return;
      }
      case RdbType.HASH_LISTPACK_EX:
        yield* r.skip(8, 'the minimum field expiry');
        return yield* this.skipString('a listpack');
      case RdbType.STREAM_LISTPACKS:
      case RdbType.STREAM_LISTPACKS_2:
      case RdbType.STREAM_LISTPACKS_3:
      case RdbType.STREAM_LISTPACKS_4:
      case RdbType.STREAM_LISTPACKS_5:
        return yield* this.skipStream(type);
      case RdbType.MODULE_2:
        yield* this.length64('a module type id');
        return yield* this.skipModuleValues();
      default:
        throw new RdbError(r.offset, 'a known value type', `type ${type}`);
    }
  }

  private *skipStrings(n: number, what: string): ReadGen<void> {
    for (let i = 0; i < n; i++) yield* this.skipString(what);
  }

  private *skipStream(type: number): ReadGen<void> {
    const r = this.input;
    const nodes = yield* this.length('a stream node count');
    yield* this.skipStrings(2 * nodes, 'a stream node');
    const counters = type === RdbType.STREAM_LISTPACKS ? 3 : 8;
    for (let i = 0; i < counters; i++) yield* this.length64('a stream counter');
    const groups = yield* this.length('a consumer group count');
    for (let g = 0; g < groups; g++) {
      yield* this.skipString('a group name');
      yield* this.length64('a group last id');
      yield* this.length64('a group last id');
      if (type !== RdbType.STREAM_LISTPACKS) yield* this.length64('a group entries-read');
      const pending = yield* this.length('a pending entry count');
      for (let p = 0; p < pending; p++) {
        yield* r.skip(24, 'a pending entry');
        yield* this.length('a delivery count');
      }
      const consumers = yield* this.length('a consumer count');
      for (let c = 0; c < consumers; c++) {
        yield* this.skipString('a consumer name');
        yield* r.skip(type >= RdbType.STREAM_LISTPACKS_3 ? 16 : 8, 'consumer times');
        const owned = yield* this.length('a consumer pending count');
        yield* r.skip(16 * owned, 'consumer pending ids');
      }
      if (type >= RdbType.STREAM_LISTPACKS_5) yield* r.skip(16 * (yield* this.length('a NACK count')), 'NACKed ids');
    }
    if (type >= RdbType.STREAM_LISTPACKS_4) yield* this.skipStreamIdmp();
  }

  /**
   * The idempotent-producer section of Redis 8.6 streams (type 26+): recent producer/IID pairs
   * that let XADD drop duplicates. It has no command form, so it is read past, not migrated.
   */
  private *skipStreamIdmp(): ReadGen<void> {
    yield* this.length64('the IDMP duration');
    yield* this.length64('the IDMP max entries');
    const producers = yield* this.length('an IDMP producer count');
    for (let p = 0; p < producers; p++) {
      yield* this.skipString('an IDMP producer id');
      const count = yield* this.length('an IDMP entry count');
      for (let i = 0; i < count; i++) {
        yield* this.skipString('an IDMP iid');
        yield* this.length64('an IDMP stream id');
        yield* this.length64('an IDMP stream id');
      }
    }
    yield* this.length64('the IDMP iids-added counter');
    yield* this.length64('the IDMP duplicates counter');
  }

  /** Redis 8.6 KEY_META: per-key module metadata classes (keymeta.c). Read past; names returned. */
  private *skipKeyMeta(): ReadGen<string[]> {
    const r = this.input;
    const count = yield* this.length('a KEY_META class count');
    const names: string[] = [];
    for (let i = 0; i < count; i++) {
      yield* r.need(4, 'a KEY_META class spec');
      names.push(keyMetaClassName(r.buf.readUInt32LE(r.pos)));
      r.pos += 4;
      yield* this.skipModuleValues();
    }
    return names;
  }

  /** Valkey 9 SLOT_IMPORT: an unfinished slot import job (name, slot ranges); not data. */
  private *skipSlotImport(): ReadGen<void> {
    yield* this.skipString('a slot import job name');
    const ranges = yield* this.length('a slot range count');
    for (let i = 0; i < 2 * ranges; i++) yield* this.length('a slot number');
  }

  /** Module values are self-describing: opcode-tagged items until opcode 0. */
  private *skipModuleValues(): ReadGen<void> {
    const r = this.input;
    for (;;) {
      const at = r.offset;
      const op = yield* this.length('a module value opcode');
      switch (op) {
        case 0:
          return;
        case 1:
        case 2:
          yield* this.length64('a module integer');
          break;
        case 3:
          yield* r.skip(4, 'a module float');
          break;
        case 4:
          yield* r.skip(8, 'a module double');
          break;
        case 5:
          yield* this.skipString('a module string');
          break;
        default:
          throw new RdbError(at, 'a module value opcode (0-5)', `got ${op}`);
      }
    }
  }

  private *skipModuleAux(): ReadGen<string> {
    const at = this.input.offset;
    const name = moduleNameFromId(yield* this.length64('a module id'));
    const whenOpcode = yield* this.length('the MODULE_AUX when-opcode');
    if (whenOpcode !== 2) throw new RdbError(at, 'MODULE_AUX when-opcode 2', `got ${whenOpcode} for module ${name}`);
    yield* this.length('the MODULE_AUX when');
    yield* this.skipModuleValues();
    return name;
  }

  // ---------------------------------------------------------------------------------------
  // Decoding a value into command-shaped chunks (rewrite mode)

  private *decodeValue(type: number): Gen<void> {
    const r = this.input;
    switch (type) {
      case RdbType.STRING:
        return yield* this.decodeStringValue();
      case RdbType.LIST:
      case RdbType.SET: {
        const n = yield* this.length('an element count');
        const out = new ItemBatcher(type === RdbType.LIST ? 'list' : 'set');
        for (let i = 0; i < n; i++) {
          const chunk = out.add(yield* this.string('an element'));
          if (chunk) yield chunk;
        }
        return yield* out.flush();
      }
      case RdbType.LIST_ZIPLIST:
        return yield* emitItems('list', yield* this.blob('a ziplist', decodeZiplist));
      case RdbType.LIST_QUICKLIST: {
        const n = yield* this.length('a quicklist node count');
        const out = new ItemBatcher('list');
        for (let i = 0; i < n; i++) {
          for (const e of yield* this.blob('a quicklist ziplist node', decodeZiplist)) {
            const chunk = out.add(elementToBuffer(e));
            if (chunk) yield chunk;
          }
        }
        return yield* out.flush();
      }
      case RdbType.LIST_QUICKLIST_2: {
        const n = yield* this.length('a quicklist node count');
        const out = new ItemBatcher('list');
        for (let i = 0; i < n; i++) {
          const at = r.offset;
          const container = yield* this.length('a quicklist container');
          let elements: BlobElement[];
          if (container === 1) elements = [yield* this.string('a plain quicklist node')];
          else if (container === 2) elements = yield* this.blob('a quicklist listpack node', decodeListpack);
          else throw new RdbError(at, 'quicklist container 1 (plain) or 2 (packed)', `got ${container}`);
          for (const e of elements) {
            const chunk = out.add(elementToBuffer(e));
            if (chunk) yield chunk;
          }
        }
        return yield* out.flush();
      }
      case RdbType.SET_INTSET:
        return yield* emitItems('set', yield* this.blob('an intset', decodeIntset));
      case RdbType.SET_LISTPACK:
        return yield* emitItems('set', yield* this.blob('a listpack', decodeListpack));
      case RdbType.ZSET:
      case RdbType.ZSET_2: {
        const n = yield* this.length('a member count');
        const out = new PairBatcher('zset');
        for (let i = 0; i < n; i++) {
          const member = yield* this.string('a sorted-set member');
          const score = type === RdbType.ZSET ? yield* this.stringScore() : yield* this.binaryScore();
          const chunk = out.add(member, score);
          if (chunk) yield chunk;
        }
        return yield* out.flush();
      }
      case RdbType.ZSET_ZIPLIST:
        return yield* emitPairs('zset', yield* this.blob('a ziplist', decodeZiplist));
      case RdbType.ZSET_LISTPACK:
        return yield* emitPairs('zset', yield* this.blob('a listpack', decodeListpack));
      case RdbType.HASH: {
        const n = yield* this.length('a field count');
        const out = new PairBatcher('hash');
        for (let i = 0; i < n; i++) {
          const field = yield* this.string('a hash field');
          const chunk = out.add(field, yield* this.string('a hash value'));
          if (chunk) yield chunk;
        }
        return yield* out.flush();
      }
      case RdbType.HASH_ZIPMAP:
        return yield* emitPairs('hash', yield* this.blob('a zipmap', decodeZipmap));
      case RdbType.HASH_ZIPLIST:
        return yield* emitPairs('hash', yield* this.blob('a ziplist', decodeZiplist));
      case RdbType.HASH_LISTPACK:
        return yield* emitPairs('hash', yield* this.blob('a listpack', decodeListpack));
      case RdbType.HASH_METADATA_PRE_GA:
      case RdbType.HASH_METADATA:
        return yield* this.decodeHashWithTtls(type);
      case RdbType.HASH_LISTPACK_EX_PRE_GA:
      case RdbType.HASH_LISTPACK_EX: {
        if (type === RdbType.HASH_LISTPACK_EX) yield* r.skip(8, 'the minimum field expiry');
        const triples = yield* this.blob('a listpack of field, value, TTL', decodeListpack);
        if (triples.length % 3 !== 0) throw new RdbError(r.offset, 'field, value, TTL triples', `${triples.length} elements`);
        const out = new PairBatcher('hash');
        for (let i = 0; i < triples.length; i += 3) {
          const chunk = out.add(elementToBuffer(triples[i]!), elementToBuffer(triples[i + 1]!), elementToNumber(triples[i + 2]!));
          if (chunk) yield chunk;
        }
        return yield* out.flush();
      }
      case RdbType.STREAM_LISTPACKS:
      case RdbType.STREAM_LISTPACKS_2:
      case RdbType.STREAM_LISTPACKS_3:
      case RdbType.STREAM_LISTPACKS_4:
      case RdbType.STREAM_LISTPACKS_5:
        return yield* this.decodeStream(type);
      case RdbType.MODULE_2: {
        const name = moduleNameFromId(yield* this.length64('a module type id'));
        yield* this.skipModuleValues();
        yield {
          kind: 'key-chunk',
          chunk: { type: 'unrewritable', reason: `module type ${name} has no command form; it can only be restored whole (RESTORE) into a target that loads the module` },
        };
        return;
      }
      default:
        throw new RdbError(r.offset, 'a known value type', `type ${type}`);
    }
  }

  /** A string value of any size, handed on in bounded chunks (an LZF one decompressed in pieces). */
  private *decodeStringValue(): Gen<void> {
    const r = this.input;
    const v = yield* this.lengthOrEncoding('a string value');
    if (v < 0 && v !== ENC_LZF) {
      r.pos -= 1; // an integer encoding's prefix is one byte, still in the window: string() rereads it
      const whole = yield* this.string('a string value');
      yield { kind: 'key-chunk', chunk: { type: 'string', data: whole } };
      return;
    }
    if (v === ENC_LZF) {
      const compressed = yield* this.length('a string value: LZF compressed length');
      const expanded = yield* this.length('a string value: LZF original length');
      const at = r.offset;
      if (expanded <= CHUNK_BYTES && r.avail() >= compressed) {
        // The common case: a small compressed string whole in the window, decompressed at once.
        let data: Buffer;
        try {
          data = lzfDecompress(r.bytes(compressed), expanded);
        } catch (e) {
          throw new RdbError(at, 'a string value (LZF data)', (e as Error).message);
        }
        yield { kind: 'key-chunk', chunk: { type: 'string', data } };
        return;
      }
      const lzf = new LzfStream(expanded, CHUNK_BYTES);
      const pieces: Buffer[] = [];
      const take = (out: Buffer): void => void pieces.push(out);
      let remaining = compressed;
      try {
        while (remaining > 0) {
          if (r.avail() === 0) yield* r.need(1, 'a string value (LZF data)');
          const n = Math.min(r.avail(), remaining);
          remaining -= n;
          lzf.push(r.bytes(n), take);
          while (pieces.length > 0) yield { kind: 'key-chunk', chunk: { type: 'string', data: pieces.shift()! } };
        }
        lzf.finish(take);
      } catch (e) {
        if (e instanceof RdbError) throw e;
        throw new RdbError(at, 'a string value (LZF data)', (e as Error).message);
      }
      if (expanded === 0) yield { kind: 'key-chunk', chunk: { type: 'string', data: Buffer.alloc(0) } };
      while (pieces.length > 0) yield { kind: 'key-chunk', chunk: { type: 'string', data: pieces.shift()! } };
      return;
    }
    let remaining = v;
    if (remaining === 0) yield { kind: 'key-chunk', chunk: { type: 'string', data: Buffer.alloc(0) } };
    while (remaining > 0) {
      if (r.avail() === 0) yield* r.need(1, 'a string value');
      const n = Math.min(r.avail(), remaining, CHUNK_BYTES);
      remaining -= n;
      yield { kind: 'key-chunk', chunk: { type: 'string', data: r.bytes(n) } };
    }
  }

  /** Type 3 scores: a length byte, then ASCII; 253/254/255 stand for nan/+inf/-inf. */
  private *stringScore(): ReadGen<Buffer> {
    const r = this.input;
    yield* r.need(1, 'a score length');
    const len = r.u8();
    if (len === 253) return Buffer.from('nan');
    if (len === 254) return Buffer.from('inf');
    if (len === 255) return Buffer.from('-inf');
    yield* r.need(len, 'a score');
    return r.bytes(len);
  }

  private *binaryScore(): ReadGen<Buffer> {
    const r = this.input;
    yield* r.need(8, 'a binary score');
    return Buffer.from(formatDouble(r.f64le()));
  }

  private *decodeHashWithTtls(type: number): Gen<void> {
    const r = this.input;
    const valkey = type === RdbType.HASH_METADATA_PRE_GA && this.magic === 'VALKEY';
    let minExpire = 0;
    if (type === RdbType.HASH_METADATA) {
      yield* r.need(8, 'the minimum field expiry');
      minExpire = Number(r.i64le());
    }
    const n = yield* this.length('a field count');
    const out = new PairBatcher('hash');
    for (let i = 0; i < n; i++) {
      let ttl = 0;
      if (!valkey) ttl = yield* this.length('a field TTL');
      const field = yield* this.string('a hash field');
      const value = yield* this.string('a hash value');
      if (valkey) {
        yield* r.need(8, 'a field expiry');
        const t = Number(r.i64le());
        ttl = t < 0 ? 0 : t; // Valkey writes -1 for "no TTL"
      } else if (type === RdbType.HASH_METADATA && ttl !== 0) {
        ttl = ttl + minExpire - 1; // stored relative to the key's minimum, off by one so 0 means none
      }
      const chunk = out.add(field, value, ttl);
      if (chunk) yield chunk;
    }
    return yield* out.flush();
  }

  private *decodeStream(type: number): Gen<void> {
    const r = this.input;
    const nodes = yield* this.length('a stream node count');
    let batch: StreamEntry[] = [];
    for (let i = 0; i < nodes; i++) {
      const idAt = r.offset;
      const masterId = yield* this.string('a stream node master id');
      if (masterId.length !== 16) throw new RdbError(idAt, 'a 16-byte stream node id', `got ${masterId.length} bytes`);
      const master: StreamId = { ms: masterId.readBigUInt64BE(0), seq: masterId.readBigUInt64BE(8) };
      const lpAt = r.offset;
      const lp = yield* this.blob('a stream node listpack', decodeListpack);
      try {
        for (const entry of streamNodeEntries(master, lp)) {
          batch.push(entry);
          if (batch.length >= CHUNK_ITEMS) {
            yield { kind: 'key-chunk', chunk: { type: 'stream-entries', entries: batch } };
            batch = [];
          }
        }
      } catch (e) {
        throw new RdbError(lpAt, 'a well-formed stream node', (e as Error).message);
      }
    }
    if (batch.length > 0) yield { kind: 'key-chunk', chunk: { type: 'stream-entries', entries: batch } };

    const length = yield* this.length64('the stream length');
    const lastId = yield* this.streamIdFromLengths('the stream last id');
    let firstId: StreamId | null = null;
    let maxDeletedId: StreamId | null = null;
    let entriesAdded: bigint | null = null;
    if (type !== RdbType.STREAM_LISTPACKS) {
      firstId = yield* this.streamIdFromLengths('the stream first id');
      maxDeletedId = yield* this.streamIdFromLengths('the stream max deleted id');
      entriesAdded = yield* this.length64('the stream entries-added counter');
    }
    const groups: StreamGroup[] = [];
    const groupCount = yield* this.length('a consumer group count');
    for (let g = 0; g < groupCount; g++) {
      const name = Buffer.from(yield* this.string('a group name'));
      const groupLastId = yield* this.streamIdFromLengths('a group last id');
      const entriesRead = type === RdbType.STREAM_LISTPACKS ? null : yield* this.length64('a group entries-read');
      const pendingCount = yield* this.length('a pending entry count');
      const pending: StreamPendingEntry[] = [];
      const byId = new Map<string, StreamPendingEntry>();
      for (let p = 0; p < pendingCount; p++) {
        yield* r.need(24, 'a pending entry');
        const id = { ms: r.u64be(), seq: r.u64be() };
        const deliveryTimeMs = r.i64le();
        const entry = { id, deliveryTimeMs, deliveryCount: yield* this.length('a delivery count'), consumer: null };
        pending.push(entry);
        byId.set(`${id.ms}-${id.seq}`, entry);
      }
      const consumers: StreamConsumer[] = [];
      const consumerCount = yield* this.length('a consumer count');
      for (let c = 0; c < consumerCount; c++) {
        const consumerName = Buffer.from(yield* this.string('a consumer name'));
        yield* r.need(type >= RdbType.STREAM_LISTPACKS_3 ? 16 : 8, 'consumer times');
        const seenTimeMs = r.i64le();
        const activeTimeMs = type >= RdbType.STREAM_LISTPACKS_3 ? r.i64le() : null;
        const owned = yield* this.length('a consumer pending count');
        const ids: StreamId[] = [];
        for (let k = 0; k < owned; k++) {
          yield* r.need(16, 'a consumer pending id');
          const id = { ms: r.u64be(), seq: r.u64be() };
          ids.push(id);
          const pel = byId.get(`${id.ms}-${id.seq}`);
          if (pel) pel.consumer = consumerName;
        }
        consumers.push({ name: consumerName, seenTimeMs, activeTimeMs, pending: ids });
      }
      if (type >= RdbType.STREAM_LISTPACKS_5) yield* r.skip(16 * (yield* this.length('a NACK count')), 'NACKed ids');
      groups.push({ name, lastId: groupLastId, entriesRead, pending, consumers });
    }
    if (type >= RdbType.STREAM_LISTPACKS_4) yield* this.skipStreamIdmp();
    yield {
      kind: 'key-chunk',
      chunk: { type: 'stream-meta', meta: { length, lastId, firstId, maxDeletedId, entriesAdded, groups } },
    };
  }

  private *streamIdFromLengths(what: string): ReadGen<StreamId> {
    const ms = yield* this.length64(what);
    const seq = yield* this.length64(what);
    return { ms, seq };
  }
}

/**
 * A whole key. It keeps offsets into the window it was read from (which is never written to)
 * instead of views: `key`, `value` and `payload` are built only when someone asks, and the
 * RESTORE encoder copies straight from the window.
 */
class WholeKey implements WholeKeyEntry {
  readonly kind = 'key';

  constructor(
    readonly db: number,
    readonly rdbType: number,
    readonly logical: LogicalType,
    readonly expireAtMs: number | null,
    readonly idleSeconds: number | null,
    readonly lfuFreq: number | null,
    readonly rdbVersion: number,
    private readonly keySource: Buffer,
    private readonly keyStart: number,
    private readonly keyEnd: number,
    private readonly valueSource: Buffer,
    private readonly valueStart: number,
    private readonly valueEnd: number,
  ) {}

  static fromHeader(h: KeyHeader, value: Buffer, rdbVersion: number): WholeKey {
    return new WholeKey(h.db, h.rdbType, h.logical, h.expireAtMs, h.idleSeconds, h.lfuFreq, rdbVersion, h.key, 0, h.key.length, value, 0, value.length);
  }

  get key(): Buffer {
    return this.keySource.subarray(this.keyStart, this.keyEnd);
  }

  get value(): Buffer {
    return this.valueSource.subarray(this.valueStart, this.valueEnd);
  }

  get payload(): Buffer {
    return Buffer.concat([Buffer.of(this.rdbType), this.value]);
  }

  get keyLength(): number {
    return this.keyEnd - this.keyStart;
  }

  get valueLength(): number {
    return this.valueEnd - this.valueStart;
  }

  copyKey(out: Buffer, at: number): number {
    return this.keySource.copy(out, at, this.keyStart, this.keyEnd);
  }

  copyValue(out: Buffer, at: number): number {
    return this.valueSource.copy(out, at, this.valueStart, this.valueEnd);
  }
}

/** Thrown by the fast path when a record is not wholly in the window (or is unusual). */
const SHORT = Symbol('short');
/** The fast path consumed a prefix opcode: no entry to hand out. */
const NO_ENTRY = Symbol('no-entry');
/** Enough bytes for the fast path to be worth trying. */
const FAST_PATH_MIN_BYTES = 16;
/** Types the fast path can skip over (the rest are rarer or structured: slow path). */
const FAST_SKIPPABLE = new Set<number>([
  RdbType.STRING, RdbType.LIST, RdbType.SET, RdbType.ZSET, RdbType.HASH, RdbType.ZSET_2,
  RdbType.HASH_ZIPMAP, RdbType.LIST_ZIPLIST, RdbType.SET_INTSET, RdbType.ZSET_ZIPLIST, RdbType.HASH_ZIPLIST,
  RdbType.LIST_QUICKLIST, RdbType.HASH_LISTPACK, RdbType.ZSET_LISTPACK, RdbType.LIST_QUICKLIST_2,
  RdbType.SET_LISTPACK, RdbType.HASH_LISTPACK_EX,
]);

/** Size of a length field from its first byte (the special string encodings are one byte). */
function lengthFieldSize(first: number): number {
  switch (first >> 6) {
    case 0:
    case 3:
      return 1;
    case 1:
      return 2;
    default:
      return first === 0x81 ? 9 : first === 0x80 ? 5 : 1;
  }
}

const STREAM_ITEM_FLAG_DELETED = 1;
const STREAM_ITEM_FLAG_SAMEFIELDS = 2;

/** The live entries of one stream node, from its decoded listpack (t_stream.c layout). */
function* streamNodeEntries(master: StreamId, lp: BlobElement[]): Generator<StreamEntry> {
  let i = 0;
  const next = (): BlobElement => {
    if (i >= lp.length) throw new Error('stream node listpack ends in the middle of an entry');
    return lp[i++]!;
  };
  const int = (): number => elementToNumber(next());
  const count = int();
  const deleted = int();
  const masterFieldCount = int();
  const masterFields: Buffer[] = [];
  for (let f = 0; f < masterFieldCount; f++) masterFields.push(elementToBuffer(next()));
  next(); // the master entry's terminating 0
  const total = count + deleted;
  for (let e = 0; e < total; e++) {
    const flags = int();
    const ms = master.ms + elementToBigInt(next());
    const seq = master.seq + elementToBigInt(next());
    const fields: Buffer[] = [];
    if (flags & STREAM_ITEM_FLAG_SAMEFIELDS) {
      for (const name of masterFields) fields.push(name, elementToBuffer(next()));
    } else {
      const n = int();
      for (let f = 0; f < n; f++) fields.push(elementToBuffer(next()), elementToBuffer(next()));
    }
    next(); // lp-count, used only for backward iteration
    // Deleted entries are handed on too: a consumer group may still have them pending, and
    // the rewrite path can only recreate such a pending entry from an entry it adds and deletes.
    yield flags & STREAM_ITEM_FLAG_DELETED ? { id: { ms, seq }, fields, deleted: true } : { id: { ms, seq }, fields };
  }
}

const KEY_META_CHARSET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';

/** A KEY_META class spec: a 4-character name in bits 31..8 (6 bits each), version in 7..3. */
function keyMetaClassName(spec: number): string {
  let name = '';
  for (let i = 0; i < 4; i++) name += KEY_META_CHARSET[(spec >>> (26 - 6 * i)) & 63];
  return `${name} v${(spec >>> 3) & 31}`;
}

function hex64(v: bigint): string {
  return `0x${v.toString(16).padStart(16, '0')}`;
}

type ItemChunkType = 'list' | 'set';

/** Collects single items into bounded chunks. */
class ItemBatcher {
  private items: Buffer[] = [];
  private bytes = 0;
  constructor(private readonly type: ItemChunkType) {}

  add(item: Buffer): RdbEntry | null {
    this.items.push(item);
    this.bytes += item.length;
    return this.items.length >= CHUNK_ITEMS || this.bytes >= CHUNK_BYTES ? this.take() : null;
  }

  *flush(): Gen<void> {
    if (this.items.length > 0) yield this.take();
  }

  private take(): RdbEntry {
    const items = this.items;
    this.items = [];
    this.bytes = 0;
    const chunk: KeyChunk = this.type === 'list' ? { type: 'list', items } : { type: 'set', members: items };
    return { kind: 'key-chunk', chunk };
  }
}

/** Collects (member, score) or (field, value[, ttl]) pairs into bounded chunks. */
class PairBatcher {
  private firsts: Buffer[] = [];
  private seconds: Buffer[] = [];
  private ttls: number[] = [];
  private anyTtl = false;
  private bytes = 0;
  constructor(private readonly type: 'zset' | 'hash') {}

  add(first: Buffer, second: Buffer, ttl = 0): RdbEntry | null {
    this.firsts.push(first);
    this.seconds.push(second);
    this.ttls.push(ttl);
    if (ttl !== 0) this.anyTtl = true;
    this.bytes += first.length + second.length;
    return this.firsts.length >= CHUNK_ITEMS || this.bytes >= CHUNK_BYTES ? this.take() : null;
  }

  *flush(): Gen<void> {
    if (this.firsts.length > 0) yield this.take();
  }

  private take(): RdbEntry {
    const chunk: KeyChunk =
      this.type === 'zset'
        ? { type: 'zset', members: this.firsts, scores: this.seconds }
        : { type: 'hash', fields: this.firsts, values: this.seconds, ...(this.anyTtl ? { expireAtMs: this.ttls } : {}) };
    this.firsts = [];
    this.seconds = [];
    this.ttls = [];
    this.anyTtl = false;
    this.bytes = 0;
    return { kind: 'key-chunk', chunk };
  }
}

function* emitItems(type: ItemChunkType, elements: BlobElement[]): Gen<void> {
  const out = new ItemBatcher(type);
  for (const e of elements) {
    const chunk = out.add(elementToBuffer(e));
    if (chunk) yield chunk;
  }
  yield* out.flush();
}

function* emitPairs(type: 'zset' | 'hash', elements: BlobElement[]): Gen<void> {
  if (elements.length % 2 !== 0) throw new Error(`${type} blob holds an odd number of elements (${elements.length})`);
  const out = new PairBatcher(type);
  for (let i = 0; i < elements.length; i += 2) {
    const chunk = out.add(elementToBuffer(elements[i]!), elementToBuffer(elements[i + 1]!));
    if (chunk) yield chunk;
  }
  yield* out.flush();
}

export { NEED_DATA };
