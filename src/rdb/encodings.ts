/**
 * Decoders (and fixture encoders) for Redis's compact blob encodings: listpack, ziplist, intset
 * and zipmap. Layouts follow src/listpack.c, src/ziplist.c, src/intset.h and src/zipmap.c.
 *
 * Decoders return elements in blob order. Strings are zero-copy subarrays of the input, integers
 * are numbers when exactly representable and bigints otherwise. Every read is bounds-checked
 * against the blob and every loop advances by at least one byte, so corrupt input throws a
 * BlobFormatError naming the encoding and the byte offset instead of reading garbage or hanging.
 * The checks match what Redis's own deep integrity validation (sanitize-dump-payload) enforces.
 */
import { Buffer } from 'node:buffer';
import type { BlobElement } from './types.js';

export type BlobEncoding = 'listpack' | 'ziplist' | 'intset' | 'zipmap';

/** A blob that does not follow its encoding. `offset` is the byte position inside the blob. */
export class BlobFormatError extends Error {
  readonly encoding: BlobEncoding;
  readonly offset: number;

  constructor(encoding: BlobEncoding, offset: number, message: string) {
    super(`${encoding}: ${message}`);
    this.name = 'BlobFormatError';
    this.encoding = encoding;
    this.offset = offset;
  }
}


const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Both listpack and ziplist store 65535 in their u16 count when the real count does not fit. */
const COUNT_UNKNOWN = 0xffff;
const END = 0xff;

function toSafe(v: bigint): number | bigint {
  return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

function hex(b: number): string {
  return `0x${b.toString(16).padStart(2, '0')}`;
}

function pastEnd(enc: BlobEncoding, what: string, at: number, size: number): BlobFormatError {
  return new BlobFormatError(enc, at, `${what} at byte ${at} runs past the end (blob is ${size} bytes)`);
}

// ---------------------------------------------------------------------------------------------
// listpack
// ---------------------------------------------------------------------------------------------

const LP_HEADER = 6;

/**
 * Size of the backlen that follows an entry whose encoding+data is `l` bytes (lpEncodeBacklen).
 * Note the asymmetric bounds: 16383 already takes 3 bytes.
 */
export function listpackBacklenSize(l: number): number {
  if (l <= 127) return 1;
  if (l < 16383) return 2;
  if (l < 2097151) return 3;
  if (l < 268435455) return 4;
  return 5;
}

/**
 * Reads the backlen ending at `last` backwards like lpDecodeBacklen: 7 bits per byte, the
 * high bit set on every byte but the first (leftmost) one.
 */
function decodeBacklen(buf: Buffer, last: number, size: number): number {
  let val = 0;
  let mul = 1;
  for (let k = 0; k < size; k++) {
    const b = buf[last - k]!;
    val += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return k === size - 1 ? val : -1;
    mul *= 128;
  }
  return -1;
}

export function decodeListpack(buf: Buffer): BlobElement[] {
  const size = buf.length;
  if (size < LP_HEADER + 1) {
    throw new BlobFormatError('listpack', 0, `blob is ${size} bytes, shorter than the 7-byte minimum`);
  }
  const total = buf.readUInt32LE(0);
  if (total !== size) {
    throw new BlobFormatError('listpack', 0, `header says ${total} total bytes but blob is ${size} bytes`);
  }
  if (buf[size - 1] !== END) {
    throw new BlobFormatError('listpack', size - 1, `last byte is ${hex(buf[size - 1]!)}, not the 0xff end marker`);
  }
  const declared = buf.readUInt16LE(4);
  const out: BlobElement[] = [];
  const last = size - 1;
  let p = LP_HEADER;
  while (buf[p] !== END) {
    p = decodeListpackEntry(buf, p, last, out);
  }
  if (p !== last) {
    throw new BlobFormatError('listpack', p, `end marker at byte ${p} but blob is ${size} bytes`);
  }
  if (declared !== COUNT_UNKNOWN && declared !== out.length) {
    throw new BlobFormatError('listpack', 4, `header count ${declared} but ${out.length} entries found`);
  }
  return out;
}

/** Decodes the entry at `p` into `out` and returns the offset of the next entry. */
function decodeListpackEntry(buf: Buffer, p: number, last: number, out: BlobElement[]): number {
  const b = buf[p]!;
  let hdr: number; // encoding bytes before the data
  let strLen = -1; // >= 0 for strings
  if (b < 0x80) {
    hdr = 1; // 7-bit uint, the value is the byte itself
  } else if (b < 0xc0) {
    hdr = 1;
    strLen = b & 0x3f;
  } else if (b < 0xe0) {
    hdr = 2; // 13-bit int
  } else if (b < 0xf0) {
    hdr = 2;
    if (p + 1 >= last) throw pastEnd('listpack', 'entry', p, last + 1);
    strLen = ((b & 0x0f) << 8) | buf[p + 1]!;
  } else {
    switch (b) {
      case 0xf0:
        hdr = 5;
        if (p + 5 > last) throw pastEnd('listpack', 'entry', p, last + 1);
        strLen = buf.readUInt32LE(p + 1);
        break;
      case 0xf1:
        hdr = 3;
        break;
      case 0xf2:
        hdr = 4;
        break;
      case 0xf3:
        hdr = 5;
        break;
      case 0xf4:
        hdr = 9;
        break;
      default:
        throw new BlobFormatError('listpack', p, `unknown entry encoding ${hex(b)} at byte ${p}`);
    }
  }
  const entryLen = strLen >= 0 ? hdr + strLen : hdr;
  const backlen = listpackBacklenSize(entryLen);
  const next = p + entryLen + backlen;
  // The next entry (or the end marker) must still start inside the blob.
  if (next > last) throw pastEnd('listpack', 'entry', p, last + 1);
  if (decodeBacklen(buf, next - 1, backlen) !== entryLen) {
    throw new BlobFormatError(
      'listpack',
      p + entryLen,
      `entry at byte ${p} has a backlen that does not match its size ${entryLen}`,
    );
  }
  out.push(strLen >= 0 ? buf.subarray(p + hdr, p + hdr + strLen) : listpackInt(buf, p, b));
  return next;
}

function listpackInt(buf: Buffer, p: number, b: number): number | bigint {
  if (b < 0x80) return b;
  if (b < 0xe0) {
    const u = ((b & 0x1f) << 8) | buf[p + 1]!;
    return u >= 4096 ? u - 8192 : u;
  }
  switch (b) {
    case 0xf1:
      return buf.readInt16LE(p + 1);
    case 0xf2:
      return buf.readIntLE(p + 1, 3);
    case 0xf3:
      return buf.readInt32LE(p + 1);
    default:
      return toSafe(buf.readBigInt64LE(p + 1));
  }
}

// ---------------------------------------------------------------------------------------------
// ziplist
// ---------------------------------------------------------------------------------------------

const ZL_HEADER = 10;
const ZL_BIG_PREVLEN = 0xfe;

export function decodeZiplist(buf: Buffer): BlobElement[] {
  const size = buf.length;
  if (size < ZL_HEADER + 1) {
    throw new BlobFormatError('ziplist', 0, `blob is ${size} bytes, shorter than the 11-byte minimum`);
  }
  const total = buf.readUInt32LE(0);
  if (total !== size) {
    throw new BlobFormatError('ziplist', 0, `header says ${total} total bytes but blob is ${size} bytes`);
  }
  const last = size - 1;
  if (buf[last] !== END) {
    throw new BlobFormatError('ziplist', last, `last byte is ${hex(buf[last]!)}, not the 0xff end marker`);
  }
  const tail = buf.readUInt32LE(4);
  if (tail > last) {
    throw new BlobFormatError('ziplist', 4, `tail offset ${tail} is outside the blob (${size} bytes)`);
  }
  const declared = buf.readUInt16LE(8);
  const out: BlobElement[] = [];
  let p = ZL_HEADER;
  let prevSize = 0;
  let prevStart = -1;
  while (buf[p] !== END) {
    const next = decodeZiplistEntry(buf, p, last, prevSize, out);
    prevSize = next - p;
    prevStart = p;
    p = next;
  }
  if (p !== last) {
    throw new BlobFormatError('ziplist', p, `end marker at byte ${p} but blob is ${size} bytes`);
  }
  if (prevStart >= 0 && tail !== prevStart) {
    throw new BlobFormatError('ziplist', 4, `tail offset ${tail} but the last entry starts at byte ${prevStart}`);
  }
  if (declared !== COUNT_UNKNOWN && declared !== out.length) {
    throw new BlobFormatError('ziplist', 8, `header count ${declared} but ${out.length} entries found`);
  }
  return out;
}

/** Decodes the entry at `p` (whose predecessor is `prevSize` bytes) and returns the next offset. */
function decodeZiplistEntry(buf: Buffer, p: number, last: number, prevSize: number, out: BlobElement[]): number {
  let q = p;
  let prevlen: number;
  if (buf[q]! < ZL_BIG_PREVLEN) {
    prevlen = buf[q]!;
    q += 1;
  } else {
    // 0xfe + u32. Redis may keep this long form even for small values after a cascade update.
    if (q + 5 > last) throw pastEnd('ziplist', 'entry', p, last + 1);
    prevlen = buf.readUInt32LE(q + 1);
    q += 5;
  }
  if (prevlen !== prevSize) {
    throw new BlobFormatError('ziplist', p, `entry at byte ${p} says the previous entry is ${prevlen} bytes, but it is ${prevSize}`);
  }
  if (q >= last) throw pastEnd('ziplist', 'entry', p, last + 1);
  const e = buf[q]!;
  let hdr: number;
  let strLen = -1;
  switch (e >> 6) {
    case 0:
      hdr = 1;
      strLen = e & 0x3f;
      break;
    case 1:
      hdr = 2;
      if (q + 1 >= last) throw pastEnd('ziplist', 'entry', p, last + 1);
      strLen = ((e & 0x3f) << 8) | buf[q + 1]!; // big-endian, unlike everything else here
      break;
    case 2:
      hdr = 5;
      if (q + 5 > last) throw pastEnd('ziplist', 'entry', p, last + 1);
      strLen = buf.readUInt32BE(q + 1);
      break;
    default:
      hdr = 1;
      break;
  }
  const dataLen = strLen >= 0 ? strLen : ziplistIntSize(e, q);
  const data = q + hdr;
  const next = data + dataLen;
  if (next > last) throw pastEnd('ziplist', 'entry', p, last + 1);
  out.push(strLen >= 0 ? buf.subarray(data, next) : ziplistInt(buf, data, e));
  return next;
}

function ziplistIntSize(e: number, at: number): number {
  switch (e) {
    case 0xc0:
      return 2;
    case 0xd0:
      return 4;
    case 0xe0:
      return 8;
    case 0xf0:
      return 3;
    case 0xfe:
      return 1;
    default:
      if (e >= 0xf1 && e <= 0xfd) return 0;
      throw new BlobFormatError('ziplist', at, `unknown entry encoding ${hex(e)} at byte ${at}`);
  }
}

function ziplistInt(buf: Buffer, data: number, e: number): number | bigint {
  switch (e) {
    case 0xc0:
      return buf.readInt16LE(data);
    case 0xd0:
      return buf.readInt32LE(data);
    case 0xe0:
      return toSafe(buf.readBigInt64LE(data));
    case 0xf0:
      return buf.readIntLE(data, 3);
    case 0xfe:
      return buf.readInt8(data);
    default:
      return (e & 0x0f) - 1; // 4-bit immediate 0..12
  }
}

// ---------------------------------------------------------------------------------------------
// intset
// ---------------------------------------------------------------------------------------------

const IS_HEADER = 8;

export function decodeIntset(buf: Buffer): BlobElement[] {
  const size = buf.length;
  if (size < IS_HEADER) {
    throw new BlobFormatError('intset', 0, `blob is ${size} bytes, shorter than the 8-byte header`);
  }
  const width = buf.readUInt32LE(0);
  if (width !== 2 && width !== 4 && width !== 8) {
    throw new BlobFormatError('intset', 0, `unknown encoding ${width} (expected 2, 4 or 8)`);
  }
  const count = buf.readUInt32LE(4);
  if (IS_HEADER + count * width !== size) {
    throw new BlobFormatError('intset', 4, `${count} elements of ${width} bytes need ${IS_HEADER + count * width} bytes but blob is ${size} bytes`);
  }
  return width === 8 ? decodeIntset64(buf, count) : decodeIntsetSmall(buf, count, width);
}

function decodeIntsetSmall(buf: Buffer, count: number, width: number): BlobElement[] {
  const out: BlobElement[] = new Array<BlobElement>(count);
  let prev = -Infinity;
  for (let i = 0; i < count; i++) {
    const at = IS_HEADER + i * width;
    const v = width === 2 ? buf.readInt16LE(at) : buf.readInt32LE(at);
    if (v <= prev) throw unsorted(at, i);
    out[i] = v;
    prev = v;
  }
  return out;
}

function decodeIntset64(buf: Buffer, count: number): BlobElement[] {
  const out: BlobElement[] = new Array<BlobElement>(count);
  let prev = INT64_MIN - 1n;
  for (let i = 0; i < count; i++) {
    const at = IS_HEADER + i * 8;
    const v = buf.readBigInt64LE(at);
    if (v <= prev) throw unsorted(at, i);
    out[i] = toSafe(v);
    prev = v;
  }
  return out;
}

/** Redis keeps intsets sorted and unique (it binary-searches them), so anything else is corrupt. */
function unsorted(at: number, i: number): BlobFormatError {
  return new BlobFormatError('intset', at, `element ${i} at byte ${at} is not greater than the previous one`);
}

// ---------------------------------------------------------------------------------------------
// zipmap
// ---------------------------------------------------------------------------------------------

const ZM_BIGLEN = 254;

/** Returns [field, value, field, value, ...]. */
export function decodeZipmap(buf: Buffer): BlobElement[] {
  const size = buf.length;
  if (size < 2) {
    throw new BlobFormatError('zipmap', 0, `blob is ${size} bytes, shorter than the 2-byte minimum`);
  }
  const last = size - 1;
  if (buf[last] !== END) {
    throw new BlobFormatError('zipmap', last, `last byte is ${hex(buf[last]!)}, not the 0xff end marker`);
  }
  const out: BlobElement[] = [];
  let p = 1;
  while (buf[p] !== END) {
    p = decodeZipmapPair(buf, p, last, out);
  }
  if (p !== last) {
    throw new BlobFormatError('zipmap', p, `end marker at byte ${p} but blob is ${size} bytes`);
  }
  // The count byte saturates at 254, which then means "count by scanning".
  const declared = buf[0]!;
  const pairs = out.length / 2;
  if (declared !== ZM_BIGLEN && declared !== pairs) {
    throw new BlobFormatError('zipmap', 0, `header count ${declared} but ${pairs} pairs found`);
  }
  return out;
}

function decodeZipmapPair(buf: Buffer, p: number, last: number, out: BlobElement[]): number {
  const [fieldLen, fieldHdr] = zipmapLength(buf, p, last, 'field');
  const fieldStart = p + fieldHdr;
  const fieldEnd = fieldStart + fieldLen;
  if (fieldEnd > last) throw pastEnd('zipmap', 'field', p, last + 1);
  if (buf[fieldEnd] === END) {
    throw new BlobFormatError('zipmap', fieldEnd, `field at byte ${p} has no value`);
  }
  const [valueLen, valueHdr] = zipmapLength(buf, fieldEnd, last, 'value');
  // After the value length comes one byte counting unused bytes left after the value.
  const freeAt = fieldEnd + valueHdr;
  if (freeAt >= last) throw pastEnd('zipmap', 'value', fieldEnd, last + 1);
  const valueStart = freeAt + 1;
  const valueEnd = valueStart + valueLen;
  const next = valueEnd + buf[freeAt]!;
  if (next > last) throw pastEnd('zipmap', 'value', fieldEnd, last + 1);
  out.push(buf.subarray(fieldStart, fieldEnd), buf.subarray(valueStart, valueEnd));
  return next;
}

/** A zipmap length: one byte below 254, or 254 then a u32 (host order, little-endian in practice). */
function zipmapLength(buf: Buffer, p: number, last: number, what: string): [number, number] {
  const b = buf[p]!;
  if (b < ZM_BIGLEN) return [b, 1];
  if (b !== ZM_BIGLEN) throw new BlobFormatError('zipmap', p, `invalid ${what} length byte ${hex(b)} at byte ${p}`);
  if (p + 5 > last) throw pastEnd('zipmap', what, p, last + 1);
  return [buf.readUInt32LE(p + 1), 5];
}

// ---------------------------------------------------------------------------------------------
// element helpers
// ---------------------------------------------------------------------------------------------

/** The element as Redis would return it: strings as-is, integers as decimal ASCII. */
export function elementToBuffer(e: BlobElement): Buffer {
  if (Buffer.isBuffer(e)) return e;
  return Buffer.from(e.toString(), 'latin1');
}

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INFINITY = /^([+-]?)inf(?:inity)?$/i;

/**
 * The element as a number (zset scores, stream counters). Integers pass through (bigints round to
 * the nearest double, as Redis's own cast does); strings must be decimal or inf / -inf.
 */
export function elementToNumber(e: BlobElement): number {
  if (typeof e === 'number') return e;
  if (typeof e === 'bigint') return Number(e);
  const s = e.toString('latin1');
  if (DECIMAL.test(s)) return Number(s);
  const inf = INFINITY.exec(s);
  if (inf) return inf[1] === '-' ? -Infinity : Infinity;
  throw new Error(`not a number: ${JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}...` : s)}`);
}

const INTEGER = /^-?\d+$/;

/**
 * The element as an exact integer (stream IDs and deltas, TTLs): unlike elementToNumber this
 * never rounds values beyond 2^53. Strings must be plain decimal integers.
 */
export function elementToBigInt(e: BlobElement): bigint {
  if (typeof e === 'bigint') return e;
  if (typeof e === 'number') {
    if (!Number.isInteger(e)) throw new Error(`not an integer: ${e}`);
    return BigInt(e);
  }
  const s = e.toString('latin1');
  if (!INTEGER.test(s)) throw new Error(`not an integer: ${JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}...` : s)}`);
  return BigInt(s);
}
