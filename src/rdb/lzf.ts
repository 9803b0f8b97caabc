/**
 * LZF, the compressor Redis uses for RDB strings (0xC3 form) and compressed quicklist nodes.
 * Stream format (src/lzf_d.c): a control byte c, then
 *   c < 32  : a literal run of c + 1 bytes follows;
 *   c >= 32 : a back-reference. n = c >> 5 (if n == 7, add the next byte), then one more byte;
 *             distance = ((c & 0x1f) << 8) + that byte + 1, copy n + 2 bytes from output end - distance.
 * Back-references may overlap the bytes they produce (distance < length), e.g. runs of one byte.
 */
import { Buffer } from 'node:buffer';

/** Longest back-reference: n = 7 + 255, copy n + 2. */
const MAX_REF_LEN = 264;
/** Farthest back-reference: 13 bits of distance - 1. */
const MAX_REF_DIST = 8192;
const MAX_LITERAL_RUN = 32;
/**
 * Largest output one input byte can produce: a 3-byte back-reference yields 264 bytes. Used to
 * reject absurd expected lengths (a corrupt header) before allocating them.
 */
const MAX_EXPANSION = Math.ceil(MAX_REF_LEN / 3);
/** Below this length a byte loop beats the call overhead of set()/copyWithin(). */
const SHORT_COPY = 16;

/**
 * Decompress an LZF stream whose decompressed size is known (RDB stores it). Throws on corrupt
 * input, including when the stream decodes to a different length than expected.
 */
export function lzfDecompress(src: Uint8Array, expectedLength: number): Buffer {
  checkExpectedLength(src.length, expectedLength);
  const out = Buffer.allocUnsafe(expectedLength);
  const inEnd = src.length;
  let ip = 0;
  let op = 0;
  while (ip < inEnd) {
    const at = ip;
    const ctrl = src[ip++]!;
    if (ctrl < 32) {
      const len = ctrl + 1;
      if (ip + len > inEnd) {
        throw new Error(`LZF: literal run of ${len} bytes at input byte ${at} runs past the end of the input (${inEnd} bytes)`);
      }
      if (op + len > expectedLength) throw overflow(at, op + len, expectedLength);
      if (len < SHORT_COPY) {
        for (let k = 0; k < len; k++) out[op + k] = src[ip + k]!;
      } else {
        out.set(src.subarray(ip, ip + len), op);
      }
      ip += len;
      op += len;
      continue;
    }
    let len = ctrl >> 5;
    if (len === 7) {
      if (ip >= inEnd) throw truncatedRef(at);
      len += src[ip++]!;
    }
    if (ip >= inEnd) throw truncatedRef(at);
    const ref = op - ((ctrl & 0x1f) << 8) - src[ip++]! - 1;
    len += 2;
    if (ref < 0) throw new Error(`LZF: back-reference before start of output at input byte ${at}`);
    if (op + len > expectedLength) throw overflow(at, op + len, expectedLength);
    if (len < SHORT_COPY || ref + len > op) {
      // Overlapping references must be copied forward one byte at a time: each copied byte
      // may be the source of a later one.
      for (let k = 0; k < len; k++) out[op + k] = out[ref + k]!;
    } else {
      out.copyWithin(op, ref, ref + len);
    }
    op += len;
  }
  if (op !== expectedLength) {
    throw new Error(`LZF: decompressed to ${op} bytes but ${expectedLength} were expected`);
  }
  return out;
}

function checkExpectedLength(inLen: number, expectedLength: number): void {
  if (!Number.isSafeInteger(expectedLength) || expectedLength < 0) {
    throw new Error(`LZF: invalid expected length ${expectedLength}`);
  }
  if (expectedLength > inLen * MAX_EXPANSION) {
    throw new Error(`LZF: ${inLen} compressed bytes cannot expand to ${expectedLength} bytes`);
  }
}

function truncatedRef(at: number): Error {
  return new Error(`LZF: back-reference at input byte ${at} is truncated`);
}

function overflow(at: number, wouldBe: number, expected: number): Error {
  return new Error(`LZF: output overflow at input byte ${at} (${wouldBe} > expected ${expected} bytes)`);
}

/**
 * LZF decompression in bounded pieces, for strings too big to hold whole (a 512 MB value on the
 * rebuild path): compressed input is pushed as it arrives, and decompressed output comes out in
 * pieces of at most `pieceBytes`. Back-references reach at most 8 KiB back, so only that much
 * history is kept between pieces. A token cut by a push boundary waits for the next push.
 */
export class LzfStream {
  /** History (up to MAX_REF_DIST bytes) followed by the piece being filled. */
  private window: Buffer;
  /** Where the current piece starts in `window` (after the history). */
  private start = 0;
  private op = 0;
  /** Bytes of a token cut by the end of a push (at most a control byte, 2 more, and a literal run). */
  private carry: Buffer = Buffer.alloc(0);
  /** Output produced so far, and input consumed (for error messages). */
  private produced = 0;
  private consumed = 0;

  constructor(
    private readonly expectedLength: number,
    private readonly pieceBytes = 1 << 20,
  ) {
    if (!Number.isSafeInteger(expectedLength) || expectedLength < 0) throw new Error(`LZF: invalid expected length ${expectedLength}`);
    // Sized for the output when it is smaller than a piece: output never passes expectedLength,
    // and a window of a whole piece (1 MiB) for every small compressed string of a snapshot was
    // most of the rebuild path's time, in the garbage collector.
    this.window = Buffer.allocUnsafe(MAX_REF_DIST + Math.min(pieceBytes, expectedLength) + MAX_REF_LEN + MAX_LITERAL_RUN);
  }

  /** Decompresses `input`; calls `piece` with each full piece of output (a copy it may keep). */
  push(input: Buffer, piece: (out: Buffer) => void): void {
    let src = input;
    if (this.carry.length > 0) {
      src = Buffer.concat([this.carry, input]);
      this.carry = Buffer.alloc(0);
    }
    const end = src.length;
    let ip = 0;
    const w = this.window;
    while (ip < end) {
      const at = this.consumed + ip;
      const ctrl = src[ip]!;
      let len: number;
      let ref = -1;
      let tokenBytes: number;
      if (ctrl < 32) {
        len = ctrl + 1;
        tokenBytes = 1 + len;
        if (ip + tokenBytes > end) break; // the rest of the literal comes with the next push
      } else {
        len = ctrl >> 5;
        let p = ip + 1;
        if (len === 7) {
          if (p >= end) break;
          len += src[p++]!;
        }
        if (p >= end) break;
        const distance = ((ctrl & 0x1f) << 8) + src[p++]! + 1;
        len += 2;
        tokenBytes = p - ip;
        ref = this.op - distance;
        // The window keeps the last 8 KiB of output, the farthest a reference reaches: below 0
        // is before the start of the output.
        if (ref < 0) throw new Error(`LZF: back-reference before start of output at input byte ${at}`);
      }
      if (this.produced + (this.op - this.start) + len > this.expectedLength) {
        throw new Error(`LZF: output overflow at input byte ${at} (${this.produced + (this.op - this.start) + len} > expected ${this.expectedLength} bytes)`);
      }
      if (ctrl < 32) {
        src.copy(w, this.op, ip + 1, ip + 1 + len);
      } else {
        for (let k = 0; k < len; k++) w[this.op + k] = w[ref + k]!;
      }
      this.op += len;
      ip += tokenBytes;
      if (this.op - this.start >= this.pieceBytes) this.emit(piece);
    }
    if (ip < end) this.carry = Buffer.from(src.subarray(ip));
    this.consumed += ip;
  }

  /** The end of the compressed input: the last piece, after checking the length. */
  finish(piece: (out: Buffer) => void): void {
    if (this.carry.length > 0) throw new Error(`LZF: the input ends inside a token at input byte ${this.consumed}`);
    if (this.op > this.start) this.emit(piece);
    if (this.produced !== this.expectedLength) throw new Error(`LZF: decompressed to ${this.produced} bytes but ${this.expectedLength} were expected`);
  }

  /** Hands out the current piece and keeps the last 8 KiB of output as history. */
  private emit(piece: (out: Buffer) => void): void {
    const w = this.window;
    const out = Buffer.from(w.subarray(this.start, this.op));
    this.produced += out.length;
    const keep = Math.min(MAX_REF_DIST, this.op);
    w.copy(w, 0, this.op - keep, this.op);
    this.start = this.op = keep;
    piece(out);
  }
}
