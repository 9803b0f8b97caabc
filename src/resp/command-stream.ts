/**
 * Offset-aware decoder of a master's replication stream.
 *
 * A master only ever writes RESP arrays of bulk strings (`*N\r\n$len\r\n<bytes>\r\n...`), and every
 * byte of them advances the replication offset, so each command is reported with the exact
 * offsets around it: `offsetAfter` is what a replica ACKs once the command is applied.
 *
 * Speed matters (this sits on the hot path of the live phase), hence two paths:
 *  - fast path: a command that lies whole in the current chunk is parsed in one pass; its
 *    arguments are zero-copy `subarray()` views of the chunk, made on first access of `args`,
 *    and `raw` is a view of the whole encoded command;
 *  - slow path: a command that straddles chunks goes through a resumable byte-level state
 *    machine. Arguments complete within one chunk are still views; only a bulk that is itself
 *    split is copied, once, into a buffer of its announced length (no repeated concatenation).
 * Views keep their chunk alive, which is fine because socket `data` chunks are fresh Buffers;
 * callers must not reuse or mutate a chunk after pushing it.
 */

import { encodeCommand } from './encode.js';

export interface StreamCommand {
  /** Arguments, name included. */
  readonly args: Buffer[];
  /** args[0], ASCII-lowercased. */
  readonly name: string;
  /** Replication offset of the command's first byte (`*`). */
  readonly offsetBefore: number;
  /** Replication offset just after the command's last byte: the value to ACK once applied. */
  readonly offsetAfter: number;
  /** Encoded size in bytes (offsetAfter - offsetBefore). */
  readonly size: number;
  /**
   * The command exactly as encoded on the stream (`size` bytes), ready to forward without
   * re-encoding. A view when the command came in one chunk, re-encoded otherwise.
   */
  readonly raw: Buffer;
  /**
   * The receive chunk the command lies whole in, and where it starts there (`raw` is
   * chunk[chunkStart, chunkStart + size)); null when it straddled chunks. Lets a consumer
   * forward a run of adjacent commands as one view without a view per command.
   */
  readonly chunk?: Buffer | null;
  readonly chunkStart?: number;
}

/**
 * A decoded command. Argument views are created on first access of `args`: a Buffer view costs
 * about 40 ns, several times the rest of the parse, and a consumer that forwards `raw` or drops
 * the command (PING, REPLCONF) never needs them.
 */
class DecodedCommand implements StreamCommand {
  readonly name: string;
  readonly offsetBefore: number;
  readonly offsetAfter: number;
  /** The chunk the command lies in (fast path), else null. */
  readonly chunk: Buffer | null;
  /** Start of the command in chunk. */
  readonly chunkStart: number;
  /** [begin, end) positions of each argument in src (fast path). */
  private readonly bounds: number[] | null;
  private argv: Buffer[] | null;

  constructor(
    name: string,
    before: number,
    after: number,
    src: Buffer | null,
    start: number,
    bounds: number[] | null,
    argv: Buffer[] | null,
  ) {
    this.name = name;
    this.offsetBefore = before;
    this.offsetAfter = after;
    this.chunk = src;
    this.chunkStart = start;
    this.bounds = bounds;
    this.argv = argv;
  }

  get size(): number {
    return this.offsetAfter - this.offsetBefore;
  }

  get args(): Buffer[] {
    if (this.argv === null) {
      const src = this.chunk!;
      const b = this.bounds!;
      const argv = new Array<Buffer>(b.length >> 1);
      for (let i = 0; i < b.length; i += 2) argv[i >> 1] = src.subarray(b[i]!, b[i + 1]!);
      this.argv = argv;
    }
    return this.argv;
  }

  get raw(): Buffer {
    if (this.chunk !== null) return this.chunk.subarray(this.chunkStart, this.chunkStart + this.size);
    return encodeCommand(this.argv!);
  }
}

export interface CommandStreamOptions {
  /** Largest accepted bulk, in bytes. Default 512 MB (Redis's proto-max-bulk-len default). */
  maxBulkBytes?: number;
  /** Largest accepted argument count. Default 64 Mi. */
  maxArgs?: number;
}

/** The replication stream is malformed; the link must be dropped (and resynced). */
export class StreamProtocolError extends Error {
  override readonly name = 'StreamProtocolError';
}

const CR = 0x0d;
const LF = 0x0a;
const STAR = 0x2a;
const DOLLAR = 0x24;

export const DEFAULT_MAX_BULK_BYTES = 512 * 1024 * 1024;
/** Generous: a master propagates a client's DEL or SADD of millions of arguments as it came. */
export const DEFAULT_MAX_ARGS = 64 * 1024 * 1024;

// Slow-path states.
const S_START = 0; // expecting '*'
const S_COUNT = 1; // digits of the argument count
const S_COUNT_LF = 2;
const S_DOLLAR = 3; // expecting '$'
const S_LEN = 4; // digits of a bulk length
const S_LEN_LF = 5;
const S_DATA = 6; // bulk payload
const S_DATA_CR = 7;
const S_DATA_LF = 8;

const NAME_CACHE_SLOTS = 64;
const NAME_CACHE_MAX_LEN = 32;

function hex(b: number): string {
  return '0x' + b.toString(16).padStart(2, '0');
}

export class CommandStreamDecoder {
  private readonly maxBulk: number;
  private readonly maxArgs: number;
  /** Stream offset of the next byte to be pushed. */
  private off: number;

  // Slow-path state for a command that straddles chunks.
  private state = S_START;
  private num = 0;
  private digits = 0;
  private argc = 0;
  private args: Buffer[] = [];
  private cmdStart = 0;
  private bulk: Buffer | null = null;
  private bulkLen = 0;
  private bulkFill = 0;

  private failure: Error | null = null;
  private keepalives = 0;

  // Command names repeat endlessly (SET, SET, SET...): cache the lowercased string by raw bytes.
  private readonly cacheKeys: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(NAME_CACHE_SLOTS);
  private readonly cacheNames: string[] = new Array<string>(NAME_CACHE_SLOTS);

  constructor(startOffset: bigint | number, opts: CommandStreamOptions = {}) {
    const start = Number(startOffset);
    if (!Number.isSafeInteger(start) || start < 0) {
      throw new RangeError(`invalid replication start offset ${String(startOffset)}`);
    }
    this.off = start;
    this.maxBulk = opts.maxBulkBytes ?? DEFAULT_MAX_BULK_BYTES;
    this.maxArgs = opts.maxArgs ?? DEFAULT_MAX_ARGS;
  }

  /** Stream offset after every byte pushed so far (may be inside a command). */
  get offset(): number {
    return this.off;
  }

  /** True when no partial command is buffered, i.e. `offset` is a command boundary. */
  get atBoundary(): boolean {
    return this.state === S_START;
  }

  /** Bare '\n' seen between commands; they are skipped and do not count toward the offset. */
  get keepalivesSkipped(): number {
    return this.keepalives;
  }

  /**
   * Decodes a chunk; returns the commands completed by it, in order. Throws StreamProtocolError
   * on malformed input, and after that every call throws the same error; commands completed
   * earlier in the same chunk are not returned then (the link must be resumed from the last
   * applied offset anyway).
   */
  push(chunk: Buffer): StreamCommand[] {
    if (this.failure) throw this.failure;
    const out: StreamCommand[] = [];
    try {
      const len = chunk.length;
      // Stream offset of chunk[0]; lowered by one per skipped keepalive so that base + i stays the
      // stream offset of chunk[i] for the bytes after it.
      let base = this.off;
      let pos = 0;
      if (this.state !== S_START) pos = this.slow(chunk, 0, base, out);
      while (pos < len) {
        const b = chunk[pos]!;
        if (b !== STAR) {
          // A newline keepalive is not part of the replication offset (masters send them
          // before the payload); skip it. Anything else is garbage.
          if (b === LF) {
            this.keepalives++;
            base--;
            pos++;
            continue;
          }
          throw new StreamProtocolError(`garbage on the replication stream at offset ${base + pos}: ${hex(b)}`);
        }
        const end = this.fast(chunk, pos, base, out);
        if (end >= 0) {
          pos = end;
        } else {
          // Incomplete: hand the rest of the chunk to the resumable state machine.
          pos = this.slow(chunk, pos, base, out);
        }
      }
      this.off = base + len;
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      throw e;
    }
    return out;
  }

  private protocolError(off: number, what: string, b: number): StreamProtocolError {
    return new StreamProtocolError(`protocol error on the replication stream at offset ${off}: ${what}, got ${hex(b)}`);
  }

  /**
   * Parses a command lying whole in chunk[pos..]. Returns the position after it, or -1 when the
   * chunk ends first (nothing is emitted then). Throws on malformed bytes.
   */
  private fast(chunk: Buffer, pos: number, base: number, out: StreamCommand[]): number {
    const len = chunk.length;
    let p = pos + 1;
    let n = 0;
    let c = 0;
    // Argument count.
    for (;;) {
      if (p >= len) return -1;
      c = chunk[p]!;
      if (c === CR) break;
      if (c < 0x30 || c > 0x39) throw this.protocolError(base + p, 'expected a digit of the argument count', c);
      n = n * 10 + (c - 0x30);
      if (n > this.maxArgs) throw this.tooManyArgs(base + pos, n);
      p++;
    }
    if (p === pos + 1 || n === 0) throw this.protocolError(base + p, 'expected a positive argument count', c);
    if (p + 1 >= len) return -1;
    if (chunk[p + 1] !== LF) throw this.protocolError(base + p + 1, 'expected LF', chunk[p + 1]!);
    p += 2;
    const bounds = new Array<number>(n * 2);
    for (let i = 0; i < n; i++) {
      if (p >= len) return -1;
      c = chunk[p]!;
      if (c !== DOLLAR) throw this.protocolError(base + p, "expected '$'", c);
      const lenStart = ++p;
      let l = 0;
      for (;;) {
        if (p >= len) return -1;
        c = chunk[p]!;
        if (c === CR) break;
        if (c < 0x30 || c > 0x39) throw this.protocolError(base + p, 'expected a digit of a bulk length', c);
        l = l * 10 + (c - 0x30);
        if (l > this.maxBulk) throw this.bulkTooBig(base + lenStart - 1, l);
        p++;
      }
      if (p === lenStart) throw this.protocolError(base + p, 'expected a bulk length', c);
      if (p + 1 >= len) return -1;
      if (chunk[p + 1] !== LF) throw this.protocolError(base + p + 1, 'expected LF', chunk[p + 1]!);
      p += 2;
      const e = p + l;
      if (e + 2 > len) return -1;
      if (chunk[e] !== CR) throw this.protocolError(base + e, 'expected CR after bulk data', chunk[e]!);
      if (chunk[e + 1] !== LF) throw this.protocolError(base + e + 1, 'expected LF after bulk data', chunk[e + 1]!);
      bounds[2 * i] = p;
      bounds[2 * i + 1] = e;
      p = e + 2;
    }
    const before = base + pos;
    const after = base + p;
    out.push(new DecodedCommand(this.nameOf(chunk, bounds[0]!, bounds[1]!), before, after, chunk, pos, bounds, null));
    return p;
  }

  /**
   * Resumable byte-level parser for a command that straddles chunks. Starts in the saved state,
   * consumes chunk[pos..] until the command completes (emitting it) or the chunk ends.
   * Returns the position after the consumed bytes.
   */
  private slow(chunk: Buffer, pos: number, base: number, out: StreamCommand[]): number {
    const len = chunk.length;
    let p = pos;
    while (p < len) {
      const c = chunk[p]!;
      switch (this.state) {
        case S_START:
          // Only entered at a '*' (push() screens the command start).
          this.cmdStart = base + p;
          this.num = 0;
          this.digits = 0;
          this.args = [];
          this.state = S_COUNT;
          p++;
          break;
        case S_COUNT:
          if (c === CR) {
            if (this.digits === 0 || this.num === 0) {
              throw this.protocolError(base + p, 'expected a positive argument count', c);
            }
            this.argc = this.num;
            this.state = S_COUNT_LF;
          } else if (c >= 0x30 && c <= 0x39) {
            this.num = this.num * 10 + (c - 0x30);
            this.digits++;
            if (this.num > this.maxArgs) throw this.tooManyArgs(this.cmdStart, this.num);
          } else {
            throw this.protocolError(base + p, 'expected a digit of the argument count', c);
          }
          p++;
          break;
        case S_COUNT_LF:
        case S_LEN_LF:
          if (c !== LF) throw this.protocolError(base + p, 'expected LF', c);
          p++;
          if (this.state === S_COUNT_LF) {
            this.state = S_DOLLAR;
          } else {
            this.bulkLen = this.num;
            this.bulkFill = 0;
            this.bulk = null;
            this.state = S_DATA;
          }
          break;
        case S_DOLLAR:
          if (c !== DOLLAR) throw this.protocolError(base + p, "expected '$'", c);
          this.num = 0;
          this.digits = 0;
          this.state = S_LEN;
          p++;
          break;
        case S_LEN:
          if (c === CR) {
            if (this.digits === 0) throw this.protocolError(base + p, 'expected a bulk length', c);
            this.state = S_LEN_LF;
          } else if (c >= 0x30 && c <= 0x39) {
            this.num = this.num * 10 + (c - 0x30);
            this.digits++;
            if (this.num > this.maxBulk) throw this.bulkTooBig(base + p - this.digits, this.num);
          } else {
            throw this.protocolError(base + p, 'expected a digit of a bulk length', c);
          }
          p++;
          break;
        case S_DATA: {
          const need = this.bulkLen - this.bulkFill;
          const avail = len - p;
          if (this.bulk === null && avail >= need) {
            // Payload whole in this chunk: zero-copy view.
            this.args.push(chunk.subarray(p, p + need));
            p += need;
            this.state = S_DATA_CR;
            break;
          }
          if (this.bulk === null) this.bulk = Buffer.allocUnsafe(this.bulkLen);
          const n = Math.min(need, avail);
          chunk.copy(this.bulk, this.bulkFill, p, p + n);
          this.bulkFill += n;
          p += n;
          if (this.bulkFill === this.bulkLen) {
            this.args.push(this.bulk);
            this.bulk = null;
            this.state = S_DATA_CR;
          }
          break;
        }
        case S_DATA_CR:
          if (c !== CR) throw this.protocolError(base + p, 'expected CR after bulk data', c);
          this.state = S_DATA_LF;
          p++;
          break;
        case S_DATA_LF:
          if (c !== LF) throw this.protocolError(base + p, 'expected LF after bulk data', c);
          p++;
          if (this.args.length < this.argc) {
            this.state = S_DOLLAR;
            break;
          }
          {
            const args = this.args;
            this.args = [];
            this.state = S_START;
            const after = base + p;
            const a0 = args[0]!;
            out.push(new DecodedCommand(this.nameOf(a0, 0, a0.length), this.cmdStart, after, null, 0, null, args));
          }
          return p;
      }
    }
    return p;
  }

  private tooManyArgs(off: number, n: number): StreamProtocolError {
    return new StreamProtocolError(
      `replication stream command at offset ${off} has over ${this.maxArgs} arguments (${n}+); raise maxArgs if this is genuine`,
    );
  }

  private bulkTooBig(off: number, n: number): StreamProtocolError {
    return new StreamProtocolError(
      `replication stream bulk at offset ${off} is over ${this.maxBulk} bytes (${n}+); raise maxBulkBytes if this is genuine`,
    );
  }

  /** ASCII-lowercased name of the bytes b[s..e), cached by raw bytes. */
  private nameOf(b: Buffer, s: number, e: number): string {
    const n = e - s;
    if (n === 0 || n > NAME_CACHE_MAX_LEN) return asciiLower(b, s, e);
    const h = (n * 31 + (b[s]! | 0x20) * 7 + (b[e - 1]! | 0x20)) & (NAME_CACHE_SLOTS - 1);
    const key = this.cacheKeys[h];
    if (key !== undefined && key.length === n) {
      let i = 0;
      while (i < n && key[i] === b[s + i]) i++;
      if (i === n) return this.cacheNames[h]!;
    }
    const name = asciiLower(b, s, e);
    // Copy the key: a view would pin a whole socket chunk for the life of the decoder.
    this.cacheKeys[h] = Uint8Array.prototype.slice.call(b, s, e);
    this.cacheNames[h] = name;
    return name;
  }
}

/** Lowercases A-Z only; other bytes map to the code point of the same value (latin1). */
function asciiLower(b: Buffer, start: number, end: number): string {
  const s = b.toString('latin1', start, end);
  // String.toLowerCase would also fold latin1 letters such as 0xC0; only A-Z are folded here.
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s;
}
