/**
 * Encoders of Redis's compact blob encodings (listpack, ziplist, intset, zipmap), for test
 * fixtures only: Ferry itself never writes these blobs (it forwards payloads as they came).
 */
import { Buffer } from 'node:buffer';

/** Values accepted by the encoders. Strings are UTF-8; integer-looking ones become integer entries. */
export type EncodableItem = Buffer | string | number | bigint;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Both listpack and ziplist store 65535 in their u16 count when the real count does not fit. */
const COUNT_UNKNOWN = 0xffff;
const END = 0xff;
const LP_HEADER = 6;
const ZL_HEADER = 10;
const ZL_BIG_PREVLEN = 0xfe;
const IS_HEADER = 8;
const ZM_BIGLEN = 254;

/** Bytes of a listpack entry's backlen for an entry of `l` bytes. */
function listpackBacklenSize(l: number): number {
  if (l <= 127) return 1;
  if (l < 16383) return 2;
  if (l < 2097151) return 3;
  if (l < 268435455) return 4;
  return 5;
}

// ---------------------------------------------------------------------------------------------
// encoders (fixtures and tests)
// ---------------------------------------------------------------------------------------------

/**
 * Parses a byte string the way Redis's string2ll / lpStringToInt64 do: optional '-', no leading
 * zeros (except "0" itself), no '+', no spaces, within int64. Returns null if it is not one.
 */
export function parseStrictInt64(s: Uint8Array): bigint | null {
  const n = s.length;
  if (n === 0 || n > 20) return null;
  if (n === 1 && s[0] === 0x30) return 0n;
  let i = s[0] === 0x2d ? 1 : 0;
  if (i === n || s[i]! < 0x31 || s[i]! > 0x39) return null;
  for (i++; i < n; i++) {
    if (s[i]! < 0x30 || s[i]! > 0x39) return null;
  }
  const v = BigInt(Buffer.from(s.buffer, s.byteOffset, n).toString('latin1'));
  return v >= INT64_MIN && v <= INT64_MAX ? v : null;
}

type Normalized = { int: bigint } | { str: Buffer };

/** Turns an encoder input into what Redis would store: an int64 if the text allows it, else bytes. */
function normalize(item: EncodableItem): Normalized {
  if (typeof item === 'bigint') {
    return item >= INT64_MIN && item <= INT64_MAX ? { int: item } : { str: Buffer.from(item.toString()) };
  }
  if (typeof item === 'number') {
    if (Number.isSafeInteger(item)) return { int: BigInt(item) };
    return { str: Buffer.from(formatDouble(item)) };
  }
  const bytes = typeof item === 'string' ? Buffer.from(item, 'utf8') : item;
  const v = parseStrictInt64(bytes);
  return v === null ? { str: bytes } : { int: v };
}

/** Non-integer numbers (zset scores) as text Redis can read back; Redis spells infinity "inf". */
function formatDouble(d: number): string {
  if (d === Infinity) return 'inf';
  if (d === -Infinity) return '-inf';
  if (Number.isNaN(d)) return 'nan';
  return String(d);
}

function u32le(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(v, 0);
  return b;
}

/** Little-endian two's complement of `v` in `width` bytes. */
function intLE(v: bigint, width: number): Buffer {
  const b = Buffer.allocUnsafe(width);
  let u = BigInt.asUintN(width * 8, v);
  for (let i = 0; i < width; i++) {
    b[i] = Number(u & 0xffn);
    u >>= 8n;
  }
  return b;
}

function listpackIntEncoding(v: bigint): Buffer {
  if (v >= 0n && v <= 127n) return Buffer.from([Number(v)]);
  if (v >= -4096n && v <= 4095n) {
    const u = Number(BigInt.asUintN(13, v));
    return Buffer.from([0xc0 | (u >> 8), u & 0xff]);
  }
  if (v >= -32768n && v <= 32767n) return Buffer.concat([Buffer.from([0xf1]), intLE(v, 2)]);
  if (v >= -8388608n && v <= 8388607n) return Buffer.concat([Buffer.from([0xf2]), intLE(v, 3)]);
  if (v >= -2147483648n && v <= 2147483647n) return Buffer.concat([Buffer.from([0xf3]), intLE(v, 4)]);
  return Buffer.concat([Buffer.from([0xf4]), intLE(v, 8)]);
}

function listpackStrEncoding(s: Buffer): Buffer {
  const n = s.length;
  if (n < 64) return Buffer.concat([Buffer.from([0x80 | n]), s]);
  if (n < 4096) return Buffer.concat([Buffer.from([0xe0 | (n >> 8), n & 0xff]), s]);
  return Buffer.concat([Buffer.from([0xf0]), u32le(n), s]);
}

/** lpEncodeBacklen: most significant 7-bit group first, every byte after the first flagged 0x80. */
function listpackBacklen(l: number): Buffer {
  const size = listpackBacklenSize(l);
  const b = Buffer.allocUnsafe(size);
  let rest = l;
  for (let i = size - 1; i >= 0; i--) {
    b[i] = (rest % 128) | (i === 0 ? 0 : 0x80);
    rest = Math.floor(rest / 128);
  }
  return b;
}

export function encodeListpack(items: readonly EncodableItem[]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(LP_HEADER)];
  for (const item of items) {
    const n = normalize(item);
    const entry = 'int' in n ? listpackIntEncoding(n.int) : listpackStrEncoding(n.str);
    parts.push(entry, listpackBacklen(entry.length));
  }
  parts.push(Buffer.from([END]));
  const out = Buffer.concat(parts);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(Math.min(items.length, COUNT_UNKNOWN), 4);
  return out;
}

function ziplistIntEncoding(v: bigint): Buffer {
  if (v >= 0n && v <= 12n) return Buffer.from([0xf1 + Number(v)]);
  if (v >= -128n && v <= 127n) return Buffer.concat([Buffer.from([0xfe]), intLE(v, 1)]);
  if (v >= -32768n && v <= 32767n) return Buffer.concat([Buffer.from([0xc0]), intLE(v, 2)]);
  if (v >= -8388608n && v <= 8388607n) return Buffer.concat([Buffer.from([0xf0]), intLE(v, 3)]);
  if (v >= -2147483648n && v <= 2147483647n) return Buffer.concat([Buffer.from([0xd0]), intLE(v, 4)]);
  return Buffer.concat([Buffer.from([0xe0]), intLE(v, 8)]);
}

function ziplistStrEncoding(s: Buffer): Buffer {
  const n = s.length;
  if (n <= 0x3f) return Buffer.concat([Buffer.from([n]), s]);
  if (n <= 0x3fff) return Buffer.concat([Buffer.from([0x40 | (n >> 8), n & 0xff]), s]);
  const hdr = Buffer.allocUnsafe(5);
  hdr[0] = 0x80;
  hdr.writeUInt32BE(n, 1);
  return Buffer.concat([hdr, s]);
}

function ziplistPrevlen(prev: number): Buffer {
  if (prev < ZL_BIG_PREVLEN) return Buffer.from([prev]);
  return Buffer.concat([Buffer.from([ZL_BIG_PREVLEN]), u32le(prev)]);
}

export function encodeZiplist(items: readonly EncodableItem[]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(ZL_HEADER)];
  let offset = ZL_HEADER;
  let tail = ZL_HEADER;
  let prevSize = 0;
  for (const item of items) {
    const n = normalize(item);
    const body = 'int' in n ? ziplistIntEncoding(n.int) : ziplistStrEncoding(n.str);
    const prevlen = ziplistPrevlen(prevSize);
    parts.push(prevlen, body);
    tail = offset;
    prevSize = prevlen.length + body.length;
    offset += prevSize;
  }
  parts.push(Buffer.from([END]));
  const out = Buffer.concat(parts);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt32LE(tail, 4);
  out.writeUInt16LE(Math.min(items.length, COUNT_UNKNOWN), 8);
  return out;
}

/** Sorted, de-duplicated, at the narrowest width that holds every value, like intsetAdd builds it. */
export function encodeIntset(values: readonly bigint[] | readonly number[]): Buffer {
  const big = (values as readonly (bigint | number)[]).map((v) => {
    const b = typeof v === 'bigint' ? v : BigInt(v);
    if (b < INT64_MIN || b > INT64_MAX) throw new RangeError(`intset: ${b} does not fit in int64`);
    return b;
  });
  const sorted = [...new Set(big)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const width = sorted.reduce((w, v) => Math.max(w, intsetWidth(v)), 2);
  const out = Buffer.allocUnsafe(IS_HEADER + sorted.length * width);
  out.writeUInt32LE(width, 0);
  out.writeUInt32LE(sorted.length, 4);
  sorted.forEach((v, i) => intLE(v, width).copy(out, IS_HEADER + i * width));
  return out;
}

function intsetWidth(v: bigint): number {
  if (v >= -32768n && v <= 32767n) return 2;
  if (v >= -2147483648n && v <= 2147483647n) return 4;
  return 8;
}

/** [field, value] or [field, value, free bytes left after the value (0..255)]. */
export type ZipmapPair = readonly [Buffer | string, Buffer | string, number?];

function zipmapLengthBytes(n: number): Buffer {
  if (n < ZM_BIGLEN) return Buffer.from([n]);
  return Buffer.concat([Buffer.from([ZM_BIGLEN]), u32le(n)]);
}

export function encodeZipmap(pairs: readonly ZipmapPair[]): Buffer {
  const parts: Buffer[] = [Buffer.from([Math.min(pairs.length, ZM_BIGLEN)])];
  for (const [f, v, free = 0] of pairs) {
    if (!Number.isInteger(free) || free < 0 || free > 255) throw new RangeError(`zipmap: free ${free} is not 0..255`);
    const field = typeof f === 'string' ? Buffer.from(f, 'utf8') : f;
    const value = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    parts.push(zipmapLengthBytes(field.length), field, zipmapLengthBytes(value.length), Buffer.from([free]), value);
    // Redis leaves stale bytes in the free space; fill it with something visible.
    if (free > 0) parts.push(Buffer.alloc(free, 0x2e));
  }
  parts.push(Buffer.from([END]));
  return Buffer.concat(parts);
}
