/**
 * An LZF compressor for test fixtures (Ferry only ever decompresses what a source sent).
 */
const MAX_REF_LEN = 264;
const MAX_REF_DIST = 8192;
const MAX_LITERAL_RUN = 32;

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
