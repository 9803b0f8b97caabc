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
