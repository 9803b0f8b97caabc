/**
 * Streaming decoder of server replies (RESP2, plus the RESP3 types a server may send).
 *
 * Representation (discriminate with typeof / instanceof / Array.isArray / Buffer.isBuffer):
 *   simple string `+`, bulk `$`, verbatim `=` → Buffer (verbatim without its `txt:` prefix)
 *   error `-`, blob error `!`                → ReplyError
 *   integer `:`                             → number, or bigint outside the safe range
 *   big number `(`                          → bigint
 *   double `,`                              → number (inf, -inf, nan included)
 *   boolean `#`                             → boolean
 *   `$-1`, `*-1`, null `_`                  → null
 *   array `*`, set `~`                      → Reply[]
 *   map `%`                                 → ReplyMap (ordered entries; Buffer keys cannot key a Map)
 *   push `>`                                → PushReply (out of band: not the answer to a command)
 *   attribute `|`                           → parsed and dropped (metadata, not a reply)
 *
 * The decoder is a resumable state machine: a reply split at any byte is resumed where it
 * stopped, never re-parsed, and a bulk split across chunks is copied once into a buffer of
 * its announced size, so large replies cost linear time.
 */

/** An error reply from the server. `message` is the error line without the leading '-'. */
export class ReplyError extends Error {
  override readonly name = 'ReplyError';
  /** The error code: first word of the line, e.g. ERR, WRONGTYPE, MOVED, NOAUTH. */
  get code(): string {
    const sp = this.message.indexOf(' ');
    return sp === -1 ? this.message : this.message.slice(0, sp);
  }
}

/** A RESP3 map, kept as ordered entries. */
export class ReplyMap {
  constructor(readonly entries: Array<[Reply, Reply]>) {}
}

/** A RESP3 push message (pub/sub, invalidation): never matches a pending command. */
export class PushReply {
  constructor(readonly items: Reply[]) {}
}

export type Reply =
  | null
  | boolean
  | number
  | bigint
  | Buffer
  | ReplyError
  | ReplyMap
  | PushReply
  | Reply[];

/** The byte stream from the server is not valid RESP; the connection cannot be trusted further. */
export class RespProtocolError extends Error {
  override readonly name = 'RespProtocolError';
}

const CR = 0x0d;
const LF = 0x0a;

/** Lines (headers, simple strings, errors) longer than this are taken as a runaway stream. */
const MAX_LINE = 64 * 1024 * 1024;
/** Same cap as Redis's default proto-max-bulk-len. */
const MAX_BULK = 512 * 1024 * 1024;

const MODE_LINE = 0;
const MODE_BULK = 1;

const K_ARRAY = 0;
const K_SET = 1;
const K_MAP = 2;
const K_PUSH = 3;
const K_ATTR = 4;

interface Frame {
  kind: number;
  items: Reply[];
  remaining: number;
}

function hex(b: number): string {
  return '0x' + b.toString(16).padStart(2, '0');
}

/** Type bytes that may start a reply. */
const TYPE_BYTES = new Uint8Array(256);
for (const c of '+-:$*_,#(=!%~>|') TYPE_BYTES[c.charCodeAt(0)] = 1;

/**
 * Shared replies for +OK and +QUEUED (a batch of writes gets one per command): every caller
 * only reads them. Frozen views would be nicer, but typed arrays cannot be frozen.
 */
const OK = Buffer.from('OK', 'latin1');
const QUEUED = Buffer.from('QUEUED', 'latin1');

export class ReplyDecoder {
  private readonly onReply: (r: Reply) => void;
  /** Absolute stream offset of the first byte of the chunk being decoded. */
  private base = 0;
  private mode = MODE_LINE;
  /** Pieces of a line that started in an earlier chunk. */
  private lineParts: Buffer[] = [];
  private lineLen = 0;
  /** Absolute offset of the current line's type byte, for error messages. */
  private lineStart = 0;
  private bulkType = 0;
  private bulkLen = 0;
  private bulkStart = 0;
  /** Set only when a bulk straddles chunks: the bytes so far (payload plus CRLF). */
  private bulkBuf: Buffer | null = null;
  private bulkFill = 0;
  private readonly stack: Frame[] = [];
  private failure: Error | null = null;

  constructor(onReply: (r: Reply) => void) {
    this.onReply = onReply;
  }

  /** Total bytes consumed so far. */
  get offset(): number {
    return this.base;
  }

  /**
   * Feeds bytes; calls onReply for each complete top-level reply. Throws RespProtocolError on
   * malformed input; after any throw (including one from onReply) the decoder is unusable,
   * because the rest of the chunk was not consumed and the stream position is lost.
   */
  push(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    try {
      this.decode(chunk);
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      throw e;
    }
    this.base += chunk.length;
  }

  private decode(chunk: Buffer): void {
    const len = chunk.length;
    let pos = 0;
    while (pos < len) {
      if (this.mode === MODE_BULK) {
        pos = this.bulkBytes(chunk, pos);
        continue;
      }
      if (this.lineLen === 0) {
        // Reject garbage as soon as its first byte is seen rather than after a whole line.
        const t = chunk[pos]!;
        if (TYPE_BYTES[t] === 0) {
          throw new RespProtocolError(
            `RESP protocol error at byte offset ${this.base + pos}: unexpected byte ${hex(t)} at the start of a reply`,
          );
        }
        this.lineStart = this.base + pos;
      }
      const nl = chunk.indexOf(LF, pos);
      if (nl === -1) {
        this.lineParts.push(chunk.subarray(pos));
        this.lineLen += len - pos;
        if (this.lineLen > MAX_LINE) {
          throw new RespProtocolError(
            `RESP protocol error at byte offset ${this.lineStart}: line longer than ${MAX_LINE} bytes`,
          );
        }
        return;
      }
      if (this.lineLen === 0 && this.simple(chunk, pos, nl)) {
        pos = nl + 1;
        continue;
      }
      let line: Buffer;
      if (this.lineLen === 0) {
        line = chunk.subarray(pos, nl + 1);
      } else {
        this.lineParts.push(chunk.subarray(pos, nl + 1));
        line = Buffer.concat(this.lineParts);
        this.lineParts = [];
        this.lineLen = 0;
      }
      pos = nl + 1;
      this.line(line);
    }
  }

  /**
   * The replies a batch of writes gets by the thousand (+OK, +QUEUED, small integers), read in
   * place without a view of the line: true when the line chunk[pos..nl] was one and is handled.
   * Anything else (and every malformed line) goes the general way.
   */
  private simple(chunk: Buffer, pos: number, nl: number): boolean {
    const t = chunk[pos]!;
    if (chunk[nl - 1] !== CR) return false;
    if (t === 0x2b) {
      const n = nl - pos;
      if (n === 4 && chunk[pos + 1] === 0x4f && chunk[pos + 2] === 0x4b) {
        this.value(OK);
        return true;
      }
      if (n === 8 && chunk[pos + 1] === 0x51 && chunk[pos + 2] === 0x55 && chunk[pos + 3] === 0x45 && chunk[pos + 4] === 0x55 && chunk[pos + 5] === 0x45 && chunk[pos + 6] === 0x44) {
        this.value(QUEUED);
        return true;
      }
      return false;
    }
    if (t !== 0x3a) return false;
    let p = pos + 1;
    const neg = chunk[p] === 0x2d;
    if (neg) p++;
    const end = nl - 1;
    if (p >= end || end - p > 15) return false;
    let v = 0;
    for (; p < end; p++) {
      const c = chunk[p]!;
      if (c < 0x30 || c > 0x39) return false;
      v = v * 10 + (c - 0x30);
    }
    this.value(neg ? -v : v);
    return true;
  }

  /** Consumes bulk payload bytes from chunk[pos..]; returns the new position. */
  private bulkBytes(chunk: Buffer, pos: number): number {
    const total = this.bulkLen + 2;
    const avail = chunk.length - pos;
    if (this.bulkBuf === null && avail >= total) {
      // Whole bulk in this chunk: a zero-copy view.
      const end = pos + this.bulkLen;
      this.checkBulkEnd(chunk[end]!, chunk[end + 1]!);
      this.mode = MODE_LINE;
      this.bulkDone(chunk.subarray(pos, end));
      return end + 2;
    }
    if (this.bulkBuf === null) {
      this.bulkBuf = Buffer.allocUnsafe(total);
      this.bulkFill = 0;
    }
    const n = Math.min(avail, total - this.bulkFill);
    chunk.copy(this.bulkBuf, this.bulkFill, pos, pos + n);
    this.bulkFill += n;
    if (this.bulkFill === total) {
      const buf = this.bulkBuf;
      this.bulkBuf = null;
      this.checkBulkEnd(buf[total - 2]!, buf[total - 1]!);
      this.mode = MODE_LINE;
      this.bulkDone(buf.subarray(0, this.bulkLen));
    }
    return pos + n;
  }

  private checkBulkEnd(cr: number, lf: number): void {
    if (cr !== CR || lf !== LF) {
      const at = this.bulkStart + this.bulkLen + (cr !== CR ? 0 : 1);
      throw new RespProtocolError(
        `RESP protocol error at byte offset ${at}: expected CRLF after a ${this.bulkLen}-byte bulk, got ${hex(cr !== CR ? cr : lf)}`,
      );
    }
  }

  private bulkDone(payload: Buffer): void {
    const t = this.bulkType;
    if (t === 0x24 /* $ */) {
      this.value(payload);
    } else if (t === 0x21 /* ! */) {
      this.value(new ReplyError(payload.toString('utf8')));
    } else {
      // Verbatim string: "fmt:" prefix (3-byte format plus colon) before the text.
      this.value(payload.length >= 4 && payload[3] === 0x3a ? payload.subarray(4) : payload);
    }
  }

  private error(off: number, what: string): RespProtocolError {
    return new RespProtocolError(`RESP protocol error at byte offset ${off}: ${what}`);
  }

  /** Handles one complete line, type byte through CRLF. */
  private line(line: Buffer): void {
    const end = line.length - 2;
    if (end < 1 || line[end] !== CR) {
      const at = this.lineStart + line.length - 1;
      throw this.error(at, `line feed without a preceding carriage return (byte ${hex(line[end] ?? LF)})`);
    }
    const t = line[0]!;
    switch (t) {
      case 0x2b: // + simple string
        this.value(line.subarray(1, end));
        return;
      case 0x2d: // - error
        this.value(new ReplyError(line.toString('utf8', 1, end)));
        return;
      case 0x3a: // : integer
        this.value(this.integer(line, end));
        return;
      case 0x28: {
        // ( big number
        const v = this.integer(line, end);
        this.value(typeof v === 'bigint' ? v : BigInt(v));
        return;
      }
      case 0x2c: // , double
        this.value(this.double(line, end));
        return;
      case 0x23: // # boolean
        if (end === 2 && line[1] === 0x74) this.value(true);
        else if (end === 2 && line[1] === 0x66) this.value(false);
        else throw this.error(this.lineStart + 1, `invalid boolean ${hex(line[1] ?? 0)}`);
        return;
      case 0x5f: // _ null
        if (end !== 1) throw this.error(this.lineStart + 1, `unexpected byte ${hex(line[1]!)} after null`);
        this.value(null);
        return;
      case 0x24: // $ bulk
      case 0x3d: // = verbatim
      case 0x21: {
        // ! blob error
        const n = this.length(line, end);
        if (n === -1 && t === 0x24) {
          this.value(null);
          return;
        }
        if (n < 0) throw this.error(this.lineStart + 1, `invalid length ${n}`);
        if (n > MAX_BULK) throw this.error(this.lineStart + 1, `bulk length ${n} exceeds ${MAX_BULK} bytes`);
        this.bulkType = t;
        this.bulkLen = n;
        this.bulkStart = this.lineStart + line.length;
        this.mode = MODE_BULK;
        return;
      }
      default: {
        // * array, ~ set, % map, > push, | attribute (the type byte was validated already)
        const n = this.length(line, end);
        if (n === -1 && t === 0x2a) {
          this.value(null);
          return;
        }
        if (n < 0) throw this.error(this.lineStart + 1, `invalid aggregate length ${n}`);
        const kind = t === 0x2a ? K_ARRAY : t === 0x7e ? K_SET : t === 0x25 ? K_MAP : t === 0x3e ? K_PUSH : K_ATTR;
        const count = kind === K_MAP || kind === K_ATTR ? n * 2 : n;
        const frame: Frame = { kind, items: [], remaining: count };
        if (count === 0) this.frameDone(frame);
        else this.stack.push(frame);
      }
    }
  }

  /** Parses a signed decimal integer from line[1..end). Number when safe, bigint otherwise. */
  private integer(line: Buffer, end: number): number | bigint {
    let p = 1;
    const neg = line[1] === 0x2d;
    if (neg || line[1] === 0x2b) p++;
    if (p >= end) throw this.error(this.lineStart + p, 'missing digits');
    if (end - p > 15) {
      // Up to 15 digits always fit a double exactly; beyond, let BigInt do exact arithmetic.
      for (let i = p; i < end; i++) this.digit(line, i);
      const big = BigInt(line.toString('latin1', 1, end));
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    let v = 0;
    for (let i = p; i < end; i++) v = v * 10 + this.digit(line, i);
    return neg ? -v : v;
  }

  private digit(line: Buffer, i: number): number {
    const c = line[i]!;
    if (c < 0x30 || c > 0x39) throw this.error(this.lineStart + i, `unexpected byte ${hex(c)} in a number`);
    return c - 0x30;
  }

  /** A length header: -1 or a non-negative integer. */
  private length(line: Buffer, end: number): number {
    const v = this.integer(line, end);
    if (typeof v === 'bigint') throw this.error(this.lineStart + 1, `length ${v} out of range`);
    return v;
  }

  private double(line: Buffer, end: number): number {
    const s = line.toString('latin1', 1, end);
    const lower = s.toLowerCase();
    if (lower === 'inf' || lower === '+inf') return Infinity;
    if (lower === '-inf') return -Infinity;
    if (lower === 'nan' || lower === '-nan') return NaN;
    const v = Number(s);
    if (s.length === 0 || Number.isNaN(v)) throw this.error(this.lineStart + 1, `invalid double "${s}"`);
    return v;
  }

  /** Delivers a complete value to the innermost open aggregate, or to onReply at top level. */
  private value(v: Reply): void {
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (top === undefined) {
        this.onReply(v);
        return;
      }
      top.items.push(v);
      if (--top.remaining > 0) return;
      this.stack.pop();
      if (top.kind === K_ATTR) return; // metadata about the next value: not an element itself
      v = this.build(top);
    }
  }

  private frameDone(frame: Frame): void {
    if (frame.kind !== K_ATTR) this.value(this.build(frame));
  }

  private build(f: Frame): Reply {
    switch (f.kind) {
      case K_MAP: {
        const entries: Array<[Reply, Reply]> = [];
        for (let i = 0; i < f.items.length; i += 2) entries.push([f.items[i]!, f.items[i + 1]!]);
        return new ReplyMap(entries);
      }
      case K_PUSH:
        return new PushReply(f.items);
      default:
        return f.items;
    }
  }
}
