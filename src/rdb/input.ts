import { Crc64 } from './crc64.js';
import { RdbError } from './errors.js';

/** Yielded by the parser's generator when it has consumed everything pushed so far. */
export const NEED_DATA: unique symbol = Symbol('need-data');
export type NeedData = typeof NEED_DATA;

/** Thrown inside the parser when a captured payload grows past its limit; caught at key level. */
export class CaptureOverflow extends Error {}

const EMPTY = Buffer.alloc(0);
/** How much of the next chunk is copied to join a read that straddles two chunks. */
const BRIDGE_BYTES = 4096;
/**
 * A read this big that the window cannot satisfy gets one buffer of its own length, filled as
 * chunks arrive: joining the growing rest with each new chunk instead would copy a 32 MiB value
 * about 8 GiB in 64 KiB chunks.
 */
const LARGE_READ = 256 * 1024;

/**
 * The parser's view of a snapshot arriving in chunks.
 *
 * Reads are synchronous against one contiguous window `buf`; before a read the parser makes
 * sure enough bytes are there with `yield* need(n)`, which suspends the parser (yielding
 * NEED_DATA) until the next chunk is pushed. Bytes that straddle two chunks are coalesced, so
 * a read never has to look at more than one Buffer.
 *
 * It also keeps two running facts about the bytes consumed: the CRC64 of the file so far, and
 * an optional *capture* of the bytes of the current key, which becomes the RESTORE payload. A
 * capture that grows past its limit throws CaptureOverflow so the parser can rewind and
 * stream the key instead of holding it.
 */
export class RdbInput {
  buf: Buffer = EMPTY;
  pos = 0;
  /** Absolute offset of buf[0] in the file. */
  private base = 0;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private ended = false;

  private readonly crc = new Crc64();
  /** Absolute offset up to which the CRC has been computed. */
  private crcPos = 0;

  /** A large read being assembled (see LARGE_READ): its buffer and how much of it is filled. */
  private large: { buf: Buffer; filled: number; needed: number } | null = null;
  /** Bytes copied to join reads across chunks (for tests: it must stay linear in the input). */
  bytesCopied = 0;

  private capturing = false;
  private captureStart = 0; // index in buf
  private captureAbs = 0;
  private captureSegments: Buffer[] = [];
  private captureBytes = 0;
  private captureLimit = Infinity;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
  }

  end(): void {
    this.ended = true;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Absolute offset of the next byte to read. */
  get offset(): number {
    return this.base + this.pos;
  }

  /** Bytes pushed but not yet consumed. */
  get buffered(): number {
    return this.buf.length - this.pos + this.queuedBytes + (this.large?.filled ?? 0);
  }

  avail(): number {
    return this.buf.length - this.pos;
  }

  /** Make at least n bytes readable in `buf`, suspending until they arrive. */
  *need(n: number, what: string): Generator<NeedData, void, void> {
    while (this.buf.length - this.pos < n) {
      if (this.queue.length > 0) {
        this.advanceWindow(n);
        continue;
      }
      if (this.ended) {
        throw new RdbError(this.offset, what, `input ends ${this.avail() + (this.large?.filled ?? 0)} bytes later, ${n} needed`);
      }
      yield NEED_DATA;
    }
  }

  /** Consume n bytes without looking at them (they still count for CRC and capture). */
  *skip(n: number, what: string): Generator<NeedData, void, void> {
    for (;;) {
      const avail = this.buf.length - this.pos;
      if (avail >= n) {
        this.pos += n;
        return;
      }
      this.pos = this.buf.length;
      n -= avail;
      yield* this.need(1, what);
    }
  }

  /**
   * Move the window on. With nothing left unread, the next chunk simply becomes the window.
   * Otherwise the unread rest is joined with only as much of the next chunk as the read
   * needs (at least a few KB): copying whole chunks would copy the entire stream once more.
   */
  private advanceWindow(needed: number): void {
    if (this.large) return this.fillLarge();
    this.checksumConsumed();
    if (this.capturing) {
      if (this.pos > this.captureStart) {
        this.captureSegments.push(this.buf.subarray(this.captureStart, this.pos));
        this.captureBytes += this.pos - this.captureStart;
      }
      this.captureStart = 0;
    }
    const rest = this.buf.length - this.pos;
    const next = this.queue[0]!;
    if (needed >= LARGE_READ && needed - rest > next.length) return this.startLarge(needed, rest);
    let joined: Buffer;
    if (rest === 0) {
      joined = next;
      this.queue.shift();
    } else {
      const take = Math.min(next.length, Math.max(needed - rest, BRIDGE_BYTES));
      joined = Buffer.concat([this.buf.subarray(this.pos), next.subarray(0, take)]);
      this.bytesCopied += joined.length;
      if (take === next.length) this.queue.shift();
      else this.queue[0] = next.subarray(take);
    }
    this.queuedBytes -= joined.length - rest;
    this.base += this.pos;
    this.buf = joined;
    this.pos = 0;
    if (this.capturing && this.captureBytes > this.captureLimit) throw new CaptureOverflow();
  }

  /**
   * Starts assembling a read of `needed` bytes in one buffer of that size (plus a little, so the
   * next small reads are there too): the unread rest first, then chunks as they come. The window
   * stays empty meanwhile; the read position (offset) stays where it was.
   */
  private startLarge(needed: number, rest: number): void {
    // A capture this read would push past its limit: stop capturing now (the parser rewinds and
    // streams the key) rather than assemble bytes the capture cannot keep.
    if (this.capturing && this.captureBytes + needed > this.captureLimit) throw new CaptureOverflow();
    const buf = Buffer.allocUnsafe(needed + BRIDGE_BYTES);
    this.buf.copy(buf, 0, this.pos);
    this.bytesCopied += rest;
    this.base += this.pos;
    this.buf = EMPTY;
    this.pos = 0;
    this.large = { buf, filled: rest, needed };
    this.fillLarge();
  }

  private fillLarge(): void {
    const large = this.large!;
    while (this.queue.length > 0 && large.filled < large.buf.length) {
      const next = this.queue[0]!;
      const take = Math.min(next.length, large.buf.length - large.filled);
      next.copy(large.buf, large.filled, 0, take);
      large.filled += take;
      this.bytesCopied += take;
      this.queuedBytes -= take;
      if (take === next.length) this.queue.shift();
      else this.queue[0] = next.subarray(take);
    }
    if (large.filled >= large.needed) {
      this.large = null;
      this.buf = large.buf.subarray(0, large.filled);
      this.pos = 0;
    }
  }

  /** Feed the bytes consumed so far (and not yet checksummed) into the CRC. */
  private checksumConsumed(): void {
    const from = this.crcPos - this.base;
    if (from < this.pos) {
      this.crc.update(this.buf, Math.max(0, from), this.pos);
      this.crcPos = this.base + this.pos;
    }
  }

  /** CRC64 of every byte consumed so far (call right after the EOF opcode). */
  checksum(): bigint {
    this.checksumConsumed();
    return this.crc.digest();
  }

  // ---- capture of one key's bytes, for the RESTORE payload -------------------------------

  startCapture(limit: number): void {
    this.capturing = true;
    this.captureStart = this.pos;
    this.captureAbs = this.offset;
    this.captureSegments = [];
    this.captureBytes = 0;
    this.captureLimit = limit;
  }

  capturedBytes(): number {
    return this.captureBytes + (this.pos - this.captureStart);
  }

  /** Stop capturing and return the bytes consumed since startCapture (zero-copy when they lie in one window). */
  finishCapture(): Buffer {
    this.capturing = false;
    const tail = this.buf.subarray(this.captureStart, this.pos);
    const segments = this.captureSegments;
    this.captureSegments = [];
    const total = this.captureBytes + tail.length;
    this.captureBytes = 0;
    if (segments.length === 0) return tail;
    segments.push(tail);
    return Buffer.concat(segments, total);
  }

  /** Stop capturing and move the read position back to where the capture started. */
  rewindCapture(): void {
    this.capturing = false;
    if (this.captureSegments.length === 0) {
      this.pos = this.captureStart;
    } else {
      this.buf = Buffer.concat([...this.captureSegments, this.buf.subarray(this.captureStart)]);
      this.base = this.captureAbs;
      this.pos = 0;
    }
    this.captureSegments = [];
    this.captureBytes = 0;
  }

  /** Everything pushed but not consumed: what follows the snapshot on a replication link. */
  takeRest(): Buffer[] {
    const rest: Buffer[] = [];
    if (this.pos < this.buf.length) rest.push(this.buf.subarray(this.pos));
    if (this.large) rest.push(this.large.buf.subarray(0, this.large.filled));
    this.large = null;
    rest.push(...this.queue);
    this.base += this.buf.length;
    this.buf = EMPTY;
    this.pos = 0;
    this.queue.length = 0;
    this.queuedBytes = 0;
    return rest;
  }

  // ---- synchronous reads: the caller has ensured enough bytes with need() ------------------

  u8(): number {
    return this.buf[this.pos++]!;
  }

  bytes(n: number): Buffer {
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  i32le(): number {
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  i64le(): bigint {
    const v = this.buf.readBigInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  u64be(): bigint {
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  u64le(): bigint {
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  f64le(): number {
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }
}
