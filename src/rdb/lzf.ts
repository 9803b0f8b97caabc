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

const HASH_BITS = 14;

/**
 * A simple greedy LZF compressor (3-byte hash, one candidate per bucket). Returns null when the
 * result would not be shorter than the input, mirroring how Redis falls back to a raw string.
 * Meant for building test fixtures: valid output matters more than ratio or speed.
 */
export function lzfCompress(src: Uint8Array): Buffer | null {
  const n = src.length;
  if (n === 0) return null;
  // Worst case is all literals: one control byte per 32 input bytes.
  const out = Buffer.allocUnsafe(n + Math.ceil(n / MAX_LITERAL_RUN) + 1);
  const table = new Int32Array(1 << HASH_BITS).fill(-1);
  let op = 0;
  let litStart = 0;
  let ip = 0;

  const flushLiterals = (upTo: number): void => {
    while (litStart < upTo) {
      const run = Math.min(MAX_LITERAL_RUN, upTo - litStart);
      out[op++] = run - 1;
      for (let k = 0; k < run; k++) out[op++] = src[litStart + k]!;
      litStart += run;
    }
  };

  while (ip + 2 < n) {
    const h = hash3(src[ip]!, src[ip + 1]!, src[ip + 2]!);
    const ref = table[h]!;
    table[h] = ip;
    const dist = ip - ref;
    if (ref < 0 || dist > MAX_REF_DIST || !same3(src, ref, ip)) {
      ip++;
      continue;
    }
    // Extend the match; it may run into the bytes it is producing (ref + len > ip), which the
    // decompressor handles by copying byte by byte.
    const maxLen = Math.min(MAX_REF_LEN, n - ip);
    let len = 3;
    while (len < maxLen && src[ref + len] === src[ip + len]) len++;
    flushLiterals(ip);
    op = writeBackRef(out, op, len, dist - 1);
    ip += len;
    litStart = ip;
  }
  flushLiterals(n);
  return op < n ? out.subarray(0, op) : null;
}

function hash3(a: number, b: number, c: number): number {
  return Math.imul((a << 16) | (b << 8) | c, 0x9e3779b1) >>> (32 - HASH_BITS);
}

function same3(src: Uint8Array, a: number, b: number): boolean {
  return src[a] === src[b] && src[a + 1] === src[b + 1] && src[a + 2] === src[b + 2];
}

/** Writes a back-reference of `len` (3..264) bytes at distance `off` + 1; returns the new offset. */
function writeBackRef(out: Buffer, op: number, len: number, off: number): number {
  const n = len - 2;
  if (n < 7) {
    out[op++] = (n << 5) | (off >> 8);
  } else {
    out[op++] = (7 << 5) | (off >> 8);
    out[op++] = n - 7;
  }
  out[op++] = off & 0xff;
  return op;
}
