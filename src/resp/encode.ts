/**
 * RESP command encoder: `*N\r\n` followed by N bulk strings `$len\r\n<bytes>\r\n`.
 *
 * Each call measures the exact size first and then writes into a single allocation, so a
 * pipeline of small commands costs one Buffer per command (or one per batch with
 * encodeCommands) instead of a concat of many small pieces.
 */

/** One command argument. Strings are sent as UTF-8; numbers and bigints as decimal text. */
export type Arg = Buffer | string | number | bigint;

const CR = 0x0d;
const LF = 0x0a;
const STAR = 0x2a;
const DOLLAR = 0x24;

/** Number of decimal digits of a non-negative safe integer. */
function digitCount(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Writes a non-negative integer in decimal at `off`; returns the offset after it. */
function writeDecimal(buf: Buffer, off: number, n: number): number {
  const end = off + digitCount(n);
  let p = end;
  do {
    buf[--p] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  } while (n > 0);
  return end;
}

/** Decimal text of a numeric argument. Non-finite numbers are always a caller bug. */
function numberText(a: number | bigint): string {
  if (typeof a === 'number' && !Number.isFinite(a)) {
    throw new TypeError(`cannot encode non-finite number ${a} as a RESP argument`);
  }
  return String(a);
}

/**
 * Strings up to this length are measured and copied in JS: for short keys a char loop beats the
 * two native calls (byteLength, write) by a wide margin.
 */
const SHORT_STRING = 64;

/** UTF-8 length of a string. */
function utf8Length(s: string): number {
  if (s.length <= SHORT_STRING) {
    let i = 0;
    while (i < s.length && s.charCodeAt(i) < 0x80) i++;
    if (i === s.length) return i;
  }
  return Buffer.byteLength(s, 'utf8');
}

/** Writes a string whose UTF-8 length is `len`; returns the offset after it. */
function writeString(buf: Buffer, off: number, s: string, len: number): number {
  // UTF-8 length equals the UTF-16 length only when every char is ASCII: copy chars as bytes.
  if (len === s.length && len <= SHORT_STRING) {
    for (let i = 0; i < len; i++) buf[off + i] = s.charCodeAt(i);
    return off + len;
  }
  return off + buf.write(s, off, len, 'utf8');
}

/** Byte length of an argument's payload. */
function argLength(a: Arg): number {
  if (typeof a === 'string') return utf8Length(a);
  if (typeof a === 'number' || typeof a === 'bigint') return numberText(a).length; // ASCII only
  return a.length;
}

/** Encoded size of one command. */
function commandSize(args: readonly Arg[]): number {
  if (args.length === 0) throw new TypeError('cannot encode an empty command');
  let size = 1 + digitCount(args.length) + 2;
  for (const a of args) {
    const len = argLength(a);
    size += 1 + digitCount(len) + 2 + len + 2;
  }
  return size;
}

/** Writes one command at `off`; returns the offset after it. */
function writeCommand(buf: Buffer, off: number, args: readonly Arg[]): number {
  buf[off++] = STAR;
  off = writeDecimal(buf, off, args.length);
  buf[off++] = CR;
  buf[off++] = LF;
  for (const a of args) {
    let payload: Buffer | string;
    let len: number;
    if (typeof a === 'string') {
      payload = a;
      len = utf8Length(a);
    } else if (typeof a === 'number' || typeof a === 'bigint') {
      payload = numberText(a); // ASCII
      len = payload.length;
    } else {
      payload = a;
      len = a.length;
    }
    buf[off++] = DOLLAR;
    off = writeDecimal(buf, off, len);
    buf[off++] = CR;
    buf[off++] = LF;
    if (typeof payload === 'string') {
      off = writeString(buf, off, payload, len);
    } else {
      payload.copy(buf, off);
      off += len;
    }
    buf[off++] = CR;
    buf[off++] = LF;
  }
  return off;
}

/** Encodes one command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly Arg[]): Buffer {
  const size = commandSize(args);
  const buf = Buffer.allocUnsafe(size);
  const end = writeCommand(buf, 0, args);
  // A mismatch would mean a length was measured differently than written: never ship that.
  if (end !== size) throw new Error(`RESP encoder size mismatch: measured ${size}, wrote ${end}`);
  return buf;
}

/** Encodes several commands back to back into one Buffer (one allocation for the batch). */
export function encodeCommands(cmds: readonly (readonly Arg[])[]): Buffer {
  let size = 0;
  for (const args of cmds) size += commandSize(args);
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  for (const args of cmds) off = writeCommand(buf, off, args);
  if (off !== size) throw new Error(`RESP encoder size mismatch: measured ${size}, wrote ${off}`);
  return buf;
}
