/**
 * CRC64, LZF and the compact blob encodings (listpack, ziplist, intset, zipmap).
 *
 * Unit tests pin every encoding branch and boundary; the last suite checks the decoders against
 * blobs DUMPed by a real redis-server and the encoders (plus CRC64 and the LZF compressor)
 * against what the same server accepts through RESTORE with deep payload sanitization.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Crc64, crc64 } from '../../src/rdb/crc64.js';
import { lzfDecompress } from '../../src/rdb/lzf.js';
import { lzfCompress } from '../helpers/lzf-compress.js';
import {
  BlobFormatError,
  decodeIntset,
  decodeListpack,
  decodeZiplist,
  decodeZipmap,
  elementToBigInt,
  elementToBuffer,
  elementToNumber,
  listpackBacklenSize,
} from '../../src/rdb/encodings.js';
import { encodeIntset, encodeListpack, encodeZiplist, encodeZipmap, parseStrictInt64, type EncodableItem } from '../helpers/rdb-encoders.js';
import type { BlobElement } from '../../src/rdb/types.js';

// ---------------------------------------------------------------------------------------------
// helpers

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bit-at-a-time BigInt CRC-64 Jones, as an independent reference for the table version. */
function crc64Reference(buf: Uint8Array): bigint {
  const poly = 0x95ac9329ac4bc9b5n;
  let crc = 0n;
  for (const byte of buf) {
    crc ^= BigInt(byte);
    for (let k = 0; k < 8; k++) crc = crc & 1n ? (crc >> 1n) ^ poly : crc >> 1n;
  }
  return crc;
}

/** Compact text-like data: compressible, with many short back-references. */
function textLike(n: number, seed = 7): Buffer {
  const rnd = prng(seed);
  const words = ['user:', 'session', 'value', 'alpha', 'beta', '{"id":', '"name":"', 'xxxxxxxx', '\n'];
  let s = '';
  while (s.length < n) s += words[Math.floor(rnd() * words.length)]! + Math.floor(rnd() * 1000);
  return Buffer.from(s.slice(0, n), 'latin1');
}

function str(e: BlobElement): string {
  return elementToBuffer(e).toString('latin1');
}

/** Elements as comparable JS values: Buffers become latin1 strings, numbers and bigints stay. */
function plain(list: readonly BlobElement[]): (string | number | bigint)[] {
  return list.map((e) => (Buffer.isBuffer(e) ? e.toString('latin1') : e));
}

function throwsBlob(fn: () => unknown, encoding: string, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BlobFormatError, `expected BlobFormatError, got ${String(err)}`);
    assert.equal(err.encoding, encoding);
    assert.match(err.message, pattern);
    return true;
  });
}

/**
 * Random corruption (byte changes, truncation, insertion; the size header sometimes fixed up so
 * the damage gets past the first check). Every outcome must be a result or a BlobFormatError:
 * no RangeError from an unchecked read, no hang.
 */
function fuzz(valid: Buffer, decode: (b: Buffer) => BlobElement[], fixHeader: boolean, seed: number, rounds = 1500): void {
  const rnd = prng(seed);
  for (let r = 0; r < rounds; r++) {
    let b = Buffer.from(valid);
    const kind = Math.floor(rnd() * 3);
    if (kind === 0) {
      const flips = 1 + Math.floor(rnd() * 3);
      for (let k = 0; k < flips; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    } else if (kind === 1) {
      b = b.subarray(0, Math.floor(rnd() * b.length));
    } else {
      const at = Math.floor(rnd() * b.length);
      const junk = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => Math.floor(rnd() * 256)));
      b = Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
    }
    if (fixHeader && b.length >= 4 && rnd() < 0.7) b.writeUInt32LE(b.length, 0);
    try {
      decode(b);
    } catch (err) {
      if (!(err instanceof BlobFormatError)) {
        assert.fail(`round ${r}: ${String(err)} for ${b.toString('hex').slice(0, 200)}`);
      }
    }
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

// ---------------------------------------------------------------------------------------------
// CRC64

describe('crc64', () => {
  it('matches the check value of CRC-64 Jones (Redis flavour)', () => {
    assert.equal(crc64(Buffer.from('123456789')), 0xe9c6d914c4b8d9can);
    assert.equal(crc64(Buffer.alloc(0)), 0n);
  });

  it('matches a bitwise reference for every length 0..300 and odd alignments', () => {
    const data = randomBytes(400);
    for (let len = 0; len <= 300; len++) {
      const off = len % 7;
      const slice = data.subarray(off, off + len);
      assert.equal(crc64(slice), crc64Reference(slice), `len ${len} offset ${off}`);
    }
  });

  it('gives the same digest incrementally as one-shot, whatever the chunking', () => {
    const data = randomBytes(100_003);
    const whole = crc64(data);
    const rnd = prng(1);
    for (let trial = 0; trial < 20; trial++) {
      const c = new Crc64();
      let pos = 0;
      while (pos < data.length) {
        const end = Math.min(data.length, pos + Math.floor(rnd() * 5000));
        c.update(data, pos, end);
        pos = end;
      }
      assert.equal(c.digest(), whole);
    }
    const c = new Crc64();
    c.update(data.subarray(0, 12345));
    c.update(data.subarray(12345));
    assert.equal(c.digest(), whole);
  });

  it('writes the digest little-endian and resets to zero', () => {
    const c = new Crc64();
    c.update(Buffer.from('123456789'));
    assert.deepEqual(c.digestLE(), Buffer.from('cad9b8c414d9c6e9', 'hex'));
    assert.equal(c.digestLE().readBigUInt64LE(0), c.digest());
    c.reset();
    assert.equal(c.digest(), 0n);
    c.update(Buffer.from('123456789'), 0, 9);
    assert.equal(c.digest(), 0xe9c6d914c4b8d9can);
  });

  it('rejects a range outside the buffer', () => {
    assert.throws(() => new Crc64().update(Buffer.alloc(4), 2, 5), RangeError);
    assert.throws(() => new Crc64().update(Buffer.alloc(4), 3, 2), RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// LZF

describe('lzf', () => {
  it('round-trips repetitive and text-like data of many sizes', () => {
    for (const n of [5, 21, 33, 100, 1000, 8191, 8192, 8193, 70_000, 300_000]) {
      for (const src of [Buffer.alloc(n, 0x61), textLike(n, n), Buffer.from('abc'.repeat(n).slice(0, n))]) {
        const c = lzfCompress(src);
        if (n >= 100) assert.ok(c !== null, `size ${n} should compress`);
        if (c === null) continue;
        assert.ok(c.length < src.length);
        assert.deepEqual(lzfDecompress(c, src.length), src);
      }
    }
  });

  it('round-trips random data with repeated chunks far apart (long distances, long matches)', () => {
    const chunk = randomBytes(3000);
    const src = Buffer.concat([chunk, randomBytes(5000), chunk, chunk, randomBytes(9000), chunk]);
    const c = lzfCompress(src);
    assert.ok(c !== null);
    assert.deepEqual(lzfDecompress(c, src.length), src);
  });

  it('returns null for incompressible input', () => {
    assert.equal(lzfCompress(randomBytes(1000)), null);
    assert.equal(lzfCompress(Buffer.alloc(0)), null);
    assert.equal(lzfCompress(Buffer.from('ab')), null);
  });

  it('decodes hand-made overlapping back-references byte by byte', () => {
    // literal "a", then a long reference (n = 7 + 10, copy 19) at distance 1: a run of 20 "a".
    assert.equal(lzfDecompress(Buffer.from([0x00, 0x61, 0xe0, 0x0a, 0x00]), 20).toString(), 'a'.repeat(20));
    // literal "ab", then n = 2 (copy 4) at distance 2: "ababab".
    assert.equal(lzfDecompress(Buffer.from([0x01, 0x61, 0x62, 0x40, 0x01]), 6).toString(), 'ababab');
    // literal "abc", then copy 3 at distance 3 (touching, not overlapping), then 32 literals.
    const lit = Buffer.alloc(32, 0x7a);
    const src = Buffer.concat([Buffer.from([0x02, 0x61, 0x62, 0x63, 0x20, 0x02, 0x1f]), lit]);
    assert.equal(lzfDecompress(src, 38).toString(), `abcabc${'z'.repeat(32)}`);
    // a long non-overlapping reference (distance 40, copy 30) goes through copyWithin.
    const base = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyzABCD');
    const far = Buffer.concat([Buffer.from([0x1f]), base.subarray(0, 32), Buffer.from([0x07]), base.subarray(32), Buffer.from([0xe0, 21, 39])]);
    assert.equal(lzfDecompress(far, 70).toString(), base.toString() + base.subarray(0, 30).toString());
  });

  it('throws clear errors on corrupt input', () => {
    assert.throws(() => lzfDecompress(Buffer.from([0x00, 0x61, 0x20, 0x05]), 4), /LZF: back-reference before start of output at input byte 2/);
    assert.throws(() => lzfDecompress(Buffer.from([0x05, 0x61, 0x62]), 6), /literal run of 6 bytes at input byte 0 runs past the end/);
    assert.throws(() => lzfDecompress(Buffer.from([0x00, 0x61, 0x20]), 4), /back-reference at input byte 2 is truncated/);
    assert.throws(() => lzfDecompress(Buffer.from([0x00, 0x61, 0xe0]), 4), /back-reference at input byte 2 is truncated/);
    assert.throws(() => lzfDecompress(Buffer.from([0x01, 0x61, 0x62]), 3), /decompressed to 2 bytes but 3 were expected/);
    assert.throws(() => lzfDecompress(Buffer.from([0x01, 0x61, 0x62]), 1), /output overflow at input byte 0/);
    assert.throws(() => lzfDecompress(Buffer.from([0x00, 0x61, 0x40, 0x00]), 3), /output overflow at input byte 2/);
    assert.throws(() => lzfDecompress(Buffer.from([0x00, 0x61]), 1_000_000), /cannot expand to 1000000 bytes/);
    assert.throws(() => lzfDecompress(Buffer.from([0x00, 0x61]), -1), /invalid expected length/);
  });

  it('never fails on corrupt input with anything but an LZF error', () => {
    const src = textLike(5000);
    const c = lzfCompress(src);
    assert.ok(c !== null);
    const rnd = prng(3);
    for (let r = 0; r < 2000; r++) {
      const b: Buffer = Buffer.from(c);
      b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      const cut: Buffer = rnd() < 0.3 ? b.subarray(0, Math.floor(rnd() * b.length)) : b;
      try {
        assert.equal(lzfDecompress(cut, src.length).length, src.length);
      } catch (err) {
        assert.match((err as Error).message, /^LZF: /);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// listpack

/** [value, expected first encoding byte (or its masked type), expected decoded value]. */
const LP_INTS: [EncodableItem, number, number | bigint][] = [
  [0, 0x00, 0],
  [127, 0x7f, 127],
  [128, 0xc0, 128],
  [-1, 0xdf, -1],
  [-4096, 0xd0, -4096],
  [4095, 0xcf, 4095],
  [4096, 0xf1, 4096],
  [-4097, 0xf1, -4097],
  [-32768, 0xf1, -32768],
  [32767, 0xf1, 32767],
  [32768, 0xf2, 32768],
  [-32769, 0xf2, -32769],
  [-8388608, 0xf2, -8388608],
  [8388607, 0xf2, 8388607],
  [8388608, 0xf3, 8388608],
  [-8388609, 0xf3, -8388609],
  [-2147483648, 0xf3, -2147483648],
  [2147483647, 0xf3, 2147483647],
  [2147483648, 0xf4, 2147483648],
  [-2147483649, 0xf4, -2147483649],
  [Number.MAX_SAFE_INTEGER, 0xf4, Number.MAX_SAFE_INTEGER],
  [Number.MIN_SAFE_INTEGER, 0xf4, Number.MIN_SAFE_INTEGER],
  [2n ** 53n, 0xf4, 2n ** 53n],
  [-(2n ** 53n), 0xf4, -(2n ** 53n)],
  [INT64_MAX, 0xf4, INT64_MAX],
  [INT64_MIN, 0xf4, INT64_MIN],
  ['9223372036854775807', 0xf4, INT64_MAX],
  ['-9223372036854775808', 0xf4, INT64_MIN],
  ['42', 0x2a, 42],
  ['-100', 0xdf, -100],
];

/** Offsets of each entry in a listpack, by walking with the documented sizes (independent of the decoder). */
function listpackEntryOffsets(lp: Buffer): number[] {
  const offs: number[] = [];
  let p = 6;
  while (lp[p] !== 0xff) {
    offs.push(p);
    const b = lp[p]!;
    let len: number;
    if (b < 0x80) len = 1;
    else if (b < 0xc0) len = 1 + (b & 0x3f);
    else if (b < 0xe0) len = 2;
    else if (b < 0xf0) len = 2 + (((b & 0x0f) << 8) | lp[p + 1]!);
    else if (b === 0xf0) len = 5 + lp.readUInt32LE(p + 1);
    else len = { 0xf1: 3, 0xf2: 4, 0xf3: 5, 0xf4: 9 }[b]!;
    p += len + listpackBacklenSize(len);
  }
  return offs;
}

describe('listpack', () => {
  it('encodes and decodes every integer encoding at its boundaries', () => {
    const lp = encodeListpack(LP_INTS.map(([v]) => v));
    const offs = listpackEntryOffsets(lp);
    LP_INTS.forEach(([v, enc], i) => {
      const b = lp[offs[i]!]!;
      const masked = enc < 0x80 ? b : enc < 0xe0 ? b & 0xe0 : b;
      const want = enc < 0x80 ? enc : enc < 0xe0 ? 0xc0 : enc;
      assert.equal(masked, want, `encoding of ${String(v)}: ${b.toString(16)}`);
    });
    const decoded = decodeListpack(lp);
    assert.deepEqual(decoded, LP_INTS.map(([, , d]) => d));
    // numbers stay numbers inside the safe range, bigints outside it
    assert.equal(typeof decoded[20], 'number');
    assert.equal(typeof decoded[22], 'bigint');
  });

  it('encodes strings of every length class (6-bit, 12-bit, 32-bit) and backlen size', () => {
    // entry lengths around the backlen boundaries: 127/128, 16382/16383, 2097150/2097151
    const lengths = [0, 1, 63, 64, 125, 126, 127, 4095, 4096, 16377, 16378, 70_000, 2_097_145, 2_097_146];
    const strs = lengths.map((n, i) => Buffer.alloc(n, 0x61 + (i % 26)));
    const lp = encodeListpack(strs);
    const offs = listpackEntryOffsets(lp);
    const firstBytes = offs.map((o) => lp[o]!);
    assert.deepEqual(
      firstBytes.map((b) => (b < 0xc0 ? 0x80 : b < 0xf0 ? 0xe0 : b)),
      [0x80, 0x80, 0x80, 0xe0, 0xe0, 0xe0, 0xe0, 0xe0, 0xf0, 0xf0, 0xf0, 0xf0, 0xf0, 0xf0],
    );
    const decoded = decodeListpack(lp);
    assert.equal(decoded.length, strs.length);
    decoded.forEach((e, i) => assert.ok(Buffer.isBuffer(e) && e.equals(strs[i]!), `string ${i} (len ${lengths[i]})`));
    assert.equal(listpackBacklenSize(127), 1);
    assert.equal(listpackBacklenSize(128), 2);
    assert.equal(listpackBacklenSize(16382), 2);
    assert.equal(listpackBacklenSize(16383), 3);
    assert.equal(listpackBacklenSize(2097150), 3);
    assert.equal(listpackBacklenSize(2097151), 4);
  });

  it('keeps non-canonical integer text as strings, like Redis', () => {
    const texts = ['007', '-0', '+1', ' 1', '1 ', '1.5', '', '-', '9223372036854775808', '-9223372036854775809', '12345678901234567890123', '1e3'];
    const decoded = decodeListpack(encodeListpack(texts));
    assert.deepEqual(plain(decoded), texts);
    decoded.forEach((e) => assert.ok(Buffer.isBuffer(e)));
    assert.equal(parseStrictInt64(Buffer.from('-9223372036854775808')), INT64_MIN);
    assert.equal(parseStrictInt64(Buffer.from('0')), 0n);
    assert.equal(parseStrictInt64(Buffer.from('00')), null);
  });

  it('produces byte-exact blobs', () => {
    // total 12, count 2 | "a": 0x81 'a' backlen 2 | 1: 0x01 backlen 1 | end
    assert.deepEqual(encodeListpack(['a', 1]), Buffer.from('0c000000020081610201 01ff'.replace(/ /g, ''), 'hex'));
    assert.deepEqual(encodeListpack([]), Buffer.from('07000000 0000 ff'.replace(/ /g, ''), 'hex'));
    // -1 as 13-bit: 0xdf 0xff; 300-byte string: 0xe1 0x2c + data + backlen of 302 = [0x02, 0xae]
    const lp = encodeListpack([-1, Buffer.alloc(300, 0x78)]);
    assert.deepEqual(lp.subarray(6, 9), Buffer.from([0xdf, 0xff, 0x02]));
    assert.deepEqual(lp.subarray(9, 11), Buffer.from([0xe1, 0x2c]));
    assert.deepEqual(lp.subarray(311, 313), Buffer.from([0x02, 0xae]));
  });

  it('counts the elements when the header says 65535 (unknown)', () => {
    const items = Array.from({ length: 70_000 }, (_, i) => (i % 3 === 0 ? `k${i}` : i));
    const lp = encodeListpack(items);
    assert.equal(lp.readUInt16LE(4), 65535);
    const decoded = decodeListpack(lp);
    assert.equal(decoded.length, 70_000);
    assert.equal(str(decoded[69_998]!), '69998');
    assert.equal(str(decoded[69_999]!), 'k69999');
    assert.equal(str(decoded[3]!), 'k3');
  });

  it('returns zero-copy string views into the blob', () => {
    const lp = encodeListpack(['hello']);
    const [e] = decodeListpack(lp);
    assert.ok(Buffer.isBuffer(e));
    assert.equal(e.buffer, lp.buffer);
  });

  it('throws on truncated or corrupt blobs, naming the byte', () => {
    const good = encodeListpack(['abc', 1000, 'x'.repeat(100)]);
    throwsBlob(() => decodeListpack(good.subarray(0, 5)), 'listpack', /shorter than the 7-byte minimum/);
    throwsBlob(() => decodeListpack(good.subarray(0, good.length - 1)), 'listpack', /header says \d+ total bytes but blob is \d+ bytes/);
    const noEnd = Buffer.from(good);
    noEnd[noEnd.length - 1] = 0x00;
    throwsBlob(() => decodeListpack(noEnd), 'listpack', /not the 0xff end marker/);
    // first string claims 60 bytes: runs into the rest and past the end
    const long = Buffer.from(good);
    long[6] = 0x80 | 60;
    throwsBlob(() => decodeListpack(long), 'listpack', /entry at byte \d+ runs past the end \(blob is \d+ bytes\)|backlen/);
    const pastEnd = Buffer.from(encodeListpack(['abc']));
    pastEnd[6] = 0x80 | 10;
    throwsBlob(() => decodeListpack(pastEnd), 'listpack', /entry at byte 6 runs past the end \(blob is 12 bytes\)/);
    const bigStr = Buffer.from(encodeListpack(['abc']));
    bigStr[6] = 0xf0;
    throwsBlob(() => decodeListpack(bigStr), 'listpack', /entry at byte 6 runs past the end/);
    const badBacklen = Buffer.from(good);
    badBacklen[10] = 0x05;
    throwsBlob(() => decodeListpack(badBacklen), 'listpack', /entry at byte 6 has a backlen that does not match its size 4/);
    const unknown = Buffer.from(good);
    unknown[6] = 0xf5;
    throwsBlob(() => decodeListpack(unknown), 'listpack', /unknown entry encoding 0xf5 at byte 6/);
    const count = Buffer.from(good);
    count.writeUInt16LE(4, 4);
    throwsBlob(() => decodeListpack(count), 'listpack', /header count 4 but 3 entries found/);
    // an end marker before the last byte
    const early = Buffer.concat([encodeListpack(['abc']).subarray(0, -1), Buffer.from([0xff, 0xff])]);
    early.writeUInt32LE(early.length, 0);
    throwsBlob(() => decodeListpack(early), 'listpack', /end marker at byte 11 but blob is 13 bytes/);
  });

  it('survives random corruption with only BlobFormatErrors', () => {
    const good = encodeListpack(['abc', 1000, 'x'.repeat(100), -5, INT64_MAX, 'y'.repeat(5000), 70000, '']);
    fuzz(good, decodeListpack, true, 11);
  });
});

// ---------------------------------------------------------------------------------------------
// ziplist

const ZL_INTS: [EncodableItem, number, number | bigint][] = [
  [0, 0xf1, 0],
  [12, 0xfd, 12],
  [13, 0xfe, 13],
  [-1, 0xfe, -1],
  [-128, 0xfe, -128],
  [127, 0xfe, 127],
  [128, 0xc0, 128],
  [-129, 0xc0, -129],
  [-32768, 0xc0, -32768],
  [32767, 0xc0, 32767],
  [32768, 0xf0, 32768],
  [-32769, 0xf0, -32769],
  [-8388608, 0xf0, -8388608],
  [8388607, 0xf0, 8388607],
  [8388608, 0xd0, 8388608],
  [-8388609, 0xd0, -8388609],
  [-2147483648, 0xd0, -2147483648],
  [2147483647, 0xd0, 2147483647],
  [2147483648, 0xe0, 2147483648],
  [-2147483649, 0xe0, -2147483649],
  [2n ** 53n + 1n, 0xe0, 2n ** 53n + 1n],
  [INT64_MAX, 0xe0, INT64_MAX],
  [INT64_MIN, 0xe0, INT64_MIN],
  ['5', 0xf6, 5],
];

/** Entry offsets, prevlen sizes and encoding bytes of a ziplist, walked independently of the decoder. */
function ziplistWalk(zl: Buffer): { start: number; prevlenSize: number; enc: number }[] {
  const out: { start: number; prevlenSize: number; enc: number }[] = [];
  let p = 10;
  while (zl[p] !== 0xff) {
    const prevlenSize = zl[p]! < 254 ? 1 : 5;
    const e = zl[p + prevlenSize]!;
    let hdr = 1;
    let data: number;
    if (e >> 6 === 0) data = e & 0x3f;
    else if (e >> 6 === 1) {
      hdr = 2;
      data = ((e & 0x3f) << 8) | zl[p + prevlenSize + 1]!;
    } else if (e >> 6 === 2) {
      hdr = 5;
      data = zl.readUInt32BE(p + prevlenSize + 1);
    } else data = { 0xc0: 2, 0xd0: 4, 0xe0: 8, 0xf0: 3, 0xfe: 1 }[e] ?? 0;
    out.push({ start: p, prevlenSize, enc: e });
    p += prevlenSize + hdr + data;
  }
  return out;
}

describe('ziplist', () => {
  it('encodes and decodes every integer encoding, including int24 and the 0..12 immediates', () => {
    const immediates = Array.from({ length: 13 }, (_, i) => i);
    const zl = encodeZiplist([...ZL_INTS.map(([v]) => v), ...immediates]);
    const walk = ziplistWalk(zl);
    ZL_INTS.forEach(([v, enc], i) => assert.equal(walk[i]!.enc, enc, `encoding of ${String(v)}`));
    immediates.forEach((v, i) => assert.equal(walk[ZL_INTS.length + i]!.enc, 0xf1 + v));
    assert.deepEqual(decodeZiplist(zl), [...ZL_INTS.map(([, , d]) => d), ...immediates]);
  });

  it('encodes strings of every length class and switches prevlen to 5 bytes after big entries', () => {
    const lengths = [0, 63, 64, 250, 251, 252, 253, 16383, 16384, 70_000, 3];
    const strs = lengths.map((n, i) => Buffer.alloc(n, 0x41 + i));
    const zl = encodeZiplist(strs);
    const walk = ziplistWalk(zl);
    assert.deepEqual(
      walk.map((w) => w.enc >> 6),
      [0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 0],
    );
    // entry sizes: 251+2+1 = 254 (first one needing a 5-byte prevlen after it), 250+2+1 = 253
    assert.deepEqual(
      walk.map((w) => w.prevlenSize),
      [1, 1, 1, 1, 1, 5, 5, 5, 5, 5, 5],
    );
    assert.equal(zl.readUInt32LE(4), walk[walk.length - 1]!.start);
    const decoded = decodeZiplist(zl);
    decoded.forEach((e, i) => assert.ok(Buffer.isBuffer(e) && e.equals(strs[i]!), `string ${i}`));
  });

  it('accepts a 5-byte prevlen holding a small value (left by cascade updates)', () => {
    // hand-made: header, entry "a" (prevlen 0), entry "b" with prevlen fe 03000000, end
    const body = Buffer.from([0x00, 0x01, 0x61, 0xfe, 0x03, 0x00, 0x00, 0x00, 0x01, 0x62, 0xff]);
    const zl = Buffer.concat([Buffer.alloc(10), body]);
    zl.writeUInt32LE(zl.length, 0);
    zl.writeUInt32LE(13, 4);
    zl.writeUInt16LE(2, 8);
    assert.deepEqual(plain(decodeZiplist(zl)), ['a', 'b']);
  });

  it('produces byte-exact blobs and handles the empty ziplist', () => {
    // zlbytes 17, zltail 14, zllen 2 | 00 02 'hi' | 04 f3 (2) | ff
    assert.deepEqual(encodeZiplist(['hi', 2]), Buffer.from('11000000 0e000000 0200 0002 6869 04f3 ff'.replace(/ /g, ''), 'hex'));
    const empty = encodeZiplist([]);
    assert.deepEqual(empty, Buffer.from('0b000000 0a000000 0000 ff'.replace(/ /g, ''), 'hex'));
    assert.deepEqual(decodeZiplist(empty), []);
  });

  it('counts the elements when zllen is 65535', () => {
    const zl = encodeZiplist(Array.from({ length: 66_000 }, (_, i) => i));
    assert.equal(zl.readUInt16LE(8), 65535);
    const decoded = decodeZiplist(zl);
    assert.equal(decoded.length, 66_000);
    assert.equal(decoded[65_999], 65_999);
  });

  it('throws on truncated or corrupt blobs, naming the byte', () => {
    const good = encodeZiplist(['abc', 1000, 'x'.repeat(300), 7]);
    throwsBlob(() => decodeZiplist(good.subarray(0, 10)), 'ziplist', /shorter than the 11-byte minimum/);
    throwsBlob(() => decodeZiplist(good.subarray(0, good.length - 1)), 'ziplist', /header says \d+ total bytes but blob is \d+ bytes/);
    const prev = Buffer.from(good);
    prev[15] = 9; // prevlen of the second entry (first entry: 00 03 'abc' = 5 bytes)
    throwsBlob(() => decodeZiplist(prev), 'ziplist', /entry at byte 15 says the previous entry is 9 bytes, but it is 5/);
    const tail = Buffer.from(good);
    tail.writeUInt32LE(15, 4);
    throwsBlob(() => decodeZiplist(tail), 'ziplist', /tail offset 15 but the last entry starts at byte \d+/);
    const tailOut = Buffer.from(good);
    tailOut.writeUInt32LE(good.length + 5, 4);
    throwsBlob(() => decodeZiplist(tailOut), 'ziplist', /tail offset \d+ is outside the blob/);
    const count = Buffer.from(good);
    count.writeUInt16LE(3, 8);
    throwsBlob(() => decodeZiplist(count), 'ziplist', /header count 3 but 4 entries found/);
    const unknown = Buffer.from(good);
    unknown[16] = 0xc1;
    throwsBlob(() => decodeZiplist(unknown), 'ziplist', /unknown entry encoding 0xc1 at byte 16/);
    const long = Buffer.from(encodeZiplist(['abc']));
    long[11] = 0x3f;
    throwsBlob(() => decodeZiplist(long), 'ziplist', /entry at byte 10 runs past the end \(blob is 16 bytes\)/);
    const big = Buffer.from(encodeZiplist(['abc']));
    big[11] = 0x80;
    throwsBlob(() => decodeZiplist(big), 'ziplist', /entry at byte 10 runs past the end/);
    const early = Buffer.concat([encodeZiplist(['abc']).subarray(0, -1), Buffer.from([0xff, 0xff])]);
    early.writeUInt32LE(early.length, 0);
    throwsBlob(() => decodeZiplist(early), 'ziplist', /end marker at byte 15 but blob is 17 bytes/);
  });

  it('survives random corruption with only BlobFormatErrors', () => {
    const good = encodeZiplist(['abc', 1000, 'x'.repeat(300), -5, INT64_MIN, 'y'.repeat(20_000), 8388607, '', 3]);
    fuzz(good, decodeZiplist, true, 12);
  });
});

// ---------------------------------------------------------------------------------------------
// intset

describe('intset', () => {
  it('uses 16-bit, 32-bit and 64-bit encodings as needed, sorted and unique', () => {
    const i16 = encodeIntset([5, -32768, 32767, 0, 5]);
    assert.equal(i16.readUInt32LE(0), 2);
    assert.deepEqual(i16, Buffer.from('02000000 04000000 0080 0000 0500 ff7f'.replace(/ /g, ''), 'hex'));
    assert.deepEqual(decodeIntset(i16), [-32768, 0, 5, 32767]);

    const i32 = encodeIntset([32768, -2147483648, 2147483647, 1]);
    assert.equal(i32.readUInt32LE(0), 4);
    assert.deepEqual(decodeIntset(i32), [-2147483648, 1, 32768, 2147483647]);

    const i64 = encodeIntset([INT64_MAX, INT64_MIN, 2n ** 53n, 2147483648n, -1n]);
    assert.equal(i64.readUInt32LE(0), 8);
    assert.deepEqual(decodeIntset(i64), [INT64_MIN, -1, 2147483648, 2n ** 53n, INT64_MAX]);

    assert.deepEqual(decodeIntset(encodeIntset([])), []);
  });

  it('throws on corrupt blobs', () => {
    throwsBlob(() => decodeIntset(Buffer.alloc(7)), 'intset', /shorter than the 8-byte header/);
    const badEnc = Buffer.from(encodeIntset([1, 2]));
    badEnc.writeUInt32LE(3, 0);
    throwsBlob(() => decodeIntset(badEnc), 'intset', /unknown encoding 3/);
    const good = encodeIntset([1, 2, 3]);
    throwsBlob(() => decodeIntset(good.subarray(0, good.length - 1)), 'intset', /3 elements of 2 bytes need 14 bytes but blob is 13 bytes/);
    const unsorted = Buffer.from(good);
    unsorted.writeInt16LE(9, 10);
    throwsBlob(() => decodeIntset(unsorted), 'intset', /element 2 at byte 12 is not greater than the previous one/);
    const dup = Buffer.from(encodeIntset([INT64_MAX, 1n]));
    dup.writeBigInt64LE(1n, 16);
    throwsBlob(() => decodeIntset(dup), 'intset', /element 1 at byte 16/);
  });

  it('survives random corruption with only BlobFormatErrors', () => {
    fuzz(encodeIntset([1, 5, 100, 70000, -3]), decodeIntset, false, 13);
  });
});

// ---------------------------------------------------------------------------------------------
// zipmap

describe('zipmap', () => {
  it('decodes fields and values, skipping free bytes after values', () => {
    const zm = encodeZipmap([
      ['name', 'foo', 3],
      ['empty', ''],
      ['n', '12345', 4],
    ]);
    // count 3 | 04 'name' 03 03 'foo' ... | 05 'empty' 00 00 | 01 'n' 05 04 '12345' .... | ff
    assert.deepEqual(zm.subarray(0, 11), Buffer.from([3, 4, 0x6e, 0x61, 0x6d, 0x65, 3, 3, 0x66, 0x6f, 0x6f]));
    assert.deepEqual(plain(decodeZipmap(zm)), ['name', 'foo', 'empty', '', 'n', '12345']);
  });

  it('handles 5-byte lengths (>= 254) and a saturated count byte', () => {
    const pairs = Array.from({ length: 300 }, (_, i): [string, string] => [`f${i}`, i === 7 ? 'v'.repeat(70_000) : `v${i}`]);
    const big: [string, string][] = [['k'.repeat(254), 'x'.repeat(253)], ...pairs];
    const zm = encodeZipmap(big);
    assert.equal(zm[0], 254);
    assert.equal(zm[1], 254);
    assert.equal(zm.readUInt32LE(2), 254);
    const decoded = plain(decodeZipmap(zm));
    assert.equal(decoded.length, big.length * 2);
    assert.deepEqual(decoded, big.flat());
  });

  it('throws on corrupt blobs', () => {
    throwsBlob(() => decodeZipmap(Buffer.from([0])), 'zipmap', /shorter than the 2-byte minimum/);
    throwsBlob(() => decodeZipmap(Buffer.from([1, 1, 0x61, 1, 0, 0x62])), 'zipmap', /not the 0xff end marker/);
    throwsBlob(() => decodeZipmap(Buffer.from([1, 1, 0x61, 0xff])), 'zipmap', /field at byte 1 has no value/);
    throwsBlob(() => decodeZipmap(Buffer.from([1, 5, 0x61, 0xff])), 'zipmap', /field at byte 1 runs past the end \(blob is 4 bytes\)/);
    throwsBlob(() => decodeZipmap(Buffer.from([1, 1, 0x61, 1, 3, 0x62, 0xff])), 'zipmap', /value at byte 3 runs past the end/);
    throwsBlob(() => decodeZipmap(Buffer.from([1, 1, 0x61, 0xfe, 1, 0, 0, 0, 0xff])), 'zipmap', /value at byte 3 runs past the end/);
    throwsBlob(() => decodeZipmap(Buffer.from([2, 1, 0x61, 1, 0, 0x62, 0xff])), 'zipmap', /header count 2 but 1 pairs found/);
    throwsBlob(() => decodeZipmap(Buffer.from([1, 0xfe, 0x61, 0xff])), 'zipmap', /field at byte 1 runs past the end/);
  });

  it('survives random corruption with only BlobFormatErrors', () => {
    const zm = encodeZipmap([['name', 'foo', 3], ['k'.repeat(300), 'v'.repeat(300), 1], ['a', '']]);
    fuzz(zm, decodeZipmap, false, 14);
  });
});

// ---------------------------------------------------------------------------------------------
// element helpers

describe('element helpers', () => {
  it('elementToBuffer renders integers as decimal ASCII', () => {
    assert.equal(elementToBuffer(-42).toString(), '-42');
    assert.equal(elementToBuffer(INT64_MIN).toString(), '-9223372036854775808');
    const b = Buffer.from('x');
    assert.equal(elementToBuffer(b), b);
  });

  it('elementToNumber parses integers, decimals and infinities, and rejects the rest', () => {
    assert.equal(elementToNumber(7), 7);
    assert.equal(elementToNumber(2n ** 60n), 2 ** 60);
    assert.equal(elementToNumber(Buffer.from('1.5')), 1.5);
    assert.equal(elementToNumber(Buffer.from('-0.10000000000000001')), -0.1);
    assert.equal(elementToNumber(Buffer.from('1e+20')), 1e20);
    assert.equal(elementToNumber(Buffer.from('inf')), Infinity);
    assert.equal(elementToNumber(Buffer.from('-inf')), -Infinity);
    assert.equal(elementToNumber(Buffer.from('12')), 12);
    for (const bad of ['', 'abc', '1.2.3', 'nan', ' 1', '0x10']) {
      assert.throws(() => elementToNumber(Buffer.from(bad)), /not a number/, bad);
    }
  });

  it('elementToBigInt is exact beyond 2^53 and rejects non-integers', () => {
    assert.equal(elementToBigInt(2n ** 60n + 1n), 2n ** 60n + 1n);
    assert.equal(elementToBigInt(-5), -5n);
    assert.equal(elementToBigInt(Buffer.from('9007199254740993')), 9007199254740993n);
    for (const bad of [Buffer.from('1.5'), Buffer.from(''), Buffer.from('x1'), 1.5]) {
      assert.throws(() => elementToBigInt(bad), /not an integer/);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Against a real redis-server

/** Minimal RDB reading for DUMP payloads: length encoding and strings (raw, int, LZF). */
class RdbReader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  byte(): number {
    const b = this.buf[this.pos++];
    if (b === undefined) throw new Error('rdb: unexpected end');
    return b;
  }

  /** Returns [value, special] where special is the low 6 bits of an 11xxxxxx byte, else -1. */
  private lenOrSpecial(): [number, number] {
    const b = this.byte();
    switch (b >> 6) {
      case 0:
        return [b & 0x3f, -1];
      case 1:
        return [((b & 0x3f) << 8) | this.byte(), -1];
      case 2: {
        if (b === 0x80) {
          const v = this.buf.readUInt32BE(this.pos);
          this.pos += 4;
          return [v, -1];
        }
        if (b === 0x81) {
          const v = Number(this.buf.readBigUInt64BE(this.pos));
          this.pos += 8;
          return [v, -1];
        }
        throw new Error(`rdb: bad length byte ${b}`);
      }
      default:
        return [0, b & 0x3f];
    }
  }

  len(): number {
    const [v, special] = this.lenOrSpecial();
    if (special >= 0) throw new Error('rdb: expected a plain length');
    return v;
  }

  string(): Buffer {
    const [n, special] = this.lenOrSpecial();
    if (special < 0) return this.take(n);
    if (special === 0) return Buffer.from(String(this.buf.readInt8(this.advance(1))));
    if (special === 1) return Buffer.from(String(this.buf.readInt16LE(this.advance(2))));
    if (special === 2) return Buffer.from(String(this.buf.readInt32LE(this.advance(4))));
    if (special === 3) {
      const clen = this.len();
      const ulen = this.len();
      return lzfDecompress(this.take(clen), ulen);
    }
    throw new Error(`rdb: unknown string encoding ${special}`);
  }

  private advance(n: number): number {
    const at = this.pos;
    this.pos += n;
    return at;
  }

  take(n: number): Buffer {
    return this.buf.subarray(this.advance(n), this.pos);
  }
}

/** Splits a DUMP payload: checks the CRC64 footer with our implementation. */
function openDump(payload: Buffer): { type: number; body: RdbReader; version: number; lzf: boolean } {
  const crcAt = payload.length - 8;
  assert.equal(crc64(payload.subarray(0, crcAt)), payload.readBigUInt64LE(crcAt), 'DUMP footer CRC64');
  const version = payload.readUInt16LE(crcAt - 2);
  const body = new RdbReader(payload.subarray(1, crcAt - 2));
  return { type: payload[0]!, body, version, lzf: payload[1]! === 0xc3 };
}

function rdbLen(n: number): Buffer {
  if (n < 64) return Buffer.from([n]);
  if (n < 16384) return Buffer.from([0x40 | (n >> 8), n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = 0x80;
  b.writeUInt32BE(n, 1);
  return b;
}

/** An RDB string; LZF-compressed with our compressor when asked and worthwhile. */
function rdbString(raw: Buffer, compress = false): Buffer {
  const c = compress ? lzfCompress(raw) : null;
  if (c) return Buffer.concat([Buffer.from([0xc3]), rdbLen(c.length), rdbLen(raw.length), c]);
  return Buffer.concat([rdbLen(raw.length), raw]);
}

function makeDump(type: number, value: Buffer, version: number): Buffer {
  const v = Buffer.alloc(2);
  v.writeUInt16LE(version, 0);
  const body = Buffer.concat([Buffer.from([type]), value, v]);
  const c = new Crc64();
  c.update(body);
  return Buffer.concat([body, c.digestLE()]);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function startRedisServer(port: number, dir: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server did not start:\n${log}`));
    }, 10_000);
    child.stdout?.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}:\n${log}`));
    });
  });
}

const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

describe('against a real redis-server', { skip: haveRedis ? false : 'redis-server not on PATH' }, () => {
  let child: ChildProcess | undefined;
  let dir = '';
  let redis: Redis;
  let rdbVersion = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ferry-encodings-'));
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3 && !child; attempt++) {
      const port = await freePort();
      try {
        child = await startRedisServer(port, dir);
        redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
        await redis.connect();
      } catch (err) {
        lastErr = err;
      }
    }
    if (!child) throw lastErr;
    const settings: [string, string][] = [
      ['hash-max-listpack-entries', '1000'],
      ['hash-max-listpack-value', '100000'],
      ['zset-max-listpack-entries', '1000'],
      ['zset-max-listpack-value', '100000'],
      ['list-max-listpack-size', '5'],
      ['list-compress-depth', '1'],
      ['set-max-intset-entries', '1000'],
      ['sanitize-dump-payload', 'yes'],
    ];
    for (const [k, v] of settings) await redis.config('SET', k, v);
    await redis.set('probe', 'x');
    const probe = await redis.dumpBuffer('probe');
    rdbVersion = probe.readUInt16LE(probe.length - 10);
  });

  after(async () => {
    if (redis) redis.disconnect();
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const intTexts = ['0', '127', '128', '-4096', '4095', '4096', '-32768', '32767', '32768', '-8388608', '8388607', '8388608',
    '-2147483648', '2147483647', '2147483648', '9007199254740993', '-9223372036854775808', '9223372036854775807'];

  it('decodes a real hash listpack (type 16), byte-identical to our encoder', async () => {
    const fields: Buffer[] = [];
    const values: Buffer[] = [];
    intTexts.forEach((t, i) => {
      fields.push(Buffer.from(`f${i}`));
      values.push(Buffer.from(t));
    });
    for (const n of [0, 63, 64, 4095, 4096, 70_000]) {
      fields.push(Buffer.from(`s${n}`));
      values.push(Buffer.alloc(n, 0x61 + (n % 26)));
    }
    fields.push(Buffer.from('-17'), Buffer.from('007'), Buffer.from([0, 0xff, 0x0d, 0x0a]));
    values.push(Buffer.from('1.5'), Buffer.from(''), Buffer.from('bin'));
    const args = fields.flatMap((f, i) => [f, values[i]!]);
    await redis.hset('h', ...args);
    assert.equal(await redis.object('ENCODING', 'h'), 'listpack');

    const dump = openDump(await redis.dumpBuffer('h'));
    assert.equal(dump.type, 16);
    assert.equal(dump.version, rdbVersion);
    assert.ok(dump.lzf, 'a repetitive listpack is stored LZF-compressed');
    const blob = dump.body.string();
    const decoded = decodeListpack(blob);
    const all = (await redis.callBuffer('HGETALL', 'h')) as Buffer[];
    assert.deepEqual(decoded.map(elementToBuffer), all);
    assert.deepEqual(decoded.map(elementToBuffer), args);
    assert.equal(decoded[2 * 15 + 1], 9007199254740993n);
    assert.equal(decoded[2 * 16 + 1], INT64_MIN);
    assert.equal(decoded[2 * 3 + 1], -4096);
    assert.deepEqual(encodeListpack(args), blob);
  });

  it('decodes a real zset listpack (type 17) with integer and fractional scores', async () => {
    const scores = ['0', '-4096', '1.5', '-0.25', '1000000000000', 'inf', '-inf', '0.1', '123456789.125', '-1'];
    await redis.zadd('z', ...scores.flatMap((s, i) => [s, `m${i}`]));
    assert.equal(await redis.object('ENCODING', 'z'), 'listpack');
    const dump = openDump(await redis.dumpBuffer('z'));
    assert.equal(dump.type, 17);
    const decoded = decodeListpack(dump.body.string());
    const range = await redis.zrange('z', 0, -1, 'WITHSCORES');
    assert.equal(decoded.length, range.length);
    for (let i = 0; i < range.length; i += 2) {
      assert.equal(str(decoded[i]!), range[i]);
      assert.equal(elementToNumber(decoded[i + 1]!), Number(range[i + 1]!.replace(/^(-?)inf$/, '$1Infinity')));
    }
  });

  it('decodes a real quicklist (type 18) with LZF-compressed inner nodes', async () => {
    const items: Buffer[] = [];
    for (let i = 0; i < 40; i++) items.push(i % 4 === 0 ? Buffer.from(String(i * 1000 - 7000)) : Buffer.from(`element-${i}-${'z'.repeat(40)}`));
    await redis.rpush('l', ...items);
    const dump = openDump(await redis.dumpBuffer('l'));
    assert.equal(dump.type, 18);
    const nodes = dump.body.len();
    assert.ok(nodes >= 8, `${nodes} nodes`);
    const out: Buffer[] = [];
    for (let n = 0; n < nodes; n++) {
      assert.equal(dump.body.len(), 2, 'PACKED container');
      out.push(...decodeListpack(dump.body.string()).map(elementToBuffer));
    }
    assert.deepEqual(out, await redis.lrangeBuffer('l', 0, -1));
  });

  it('decodes real intsets (type 11) of each width, byte-identical to our encoder', async () => {
    const sets: [string, string[], number][] = [
      ['i16', ['-32768', '32767', '0', '5', '-1'], 2],
      ['i32', ['-32768', '32768', '-2147483648', '2147483647'], 4],
      ['i64', ['1', '9007199254740993', '-9223372036854775808', '9223372036854775807', '-2147483649'], 8],
    ];
    for (const [key, members, width] of sets) {
      await redis.sadd(key, ...members);
      assert.equal(await redis.object('ENCODING', key), 'intset');
      const dump = openDump(await redis.dumpBuffer(key));
      assert.equal(dump.type, 11);
      const blob = dump.body.string();
      assert.equal(blob.readUInt32LE(0), width);
      const sorted = members.map(BigInt).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      assert.deepEqual(decodeIntset(blob).map((e) => BigInt(str(e))), sorted);
      assert.deepEqual(encodeIntset(members.map(BigInt)), blob);
      const smembers = (await redis.smembers(key)).map(BigInt).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      assert.deepEqual(smembers, sorted);
    }
  });

  /** RESTOREs a value we encoded (CRC64 by us) and returns nothing: the server validates deeply. */
  async function restore(key: string, type: number, value: Buffer): Promise<void> {
    await redis.del(key);
    assert.equal(await redis.restore(key, 0, makeDump(type, value, rdbVersion)), 'OK');
  }

  const mixed: EncodableItem[] = ['abc', 0, 12, 13, -1, 128, -32768, 32768, -8388609, 2147483648, INT64_MIN, INT64_MAX,
    '', Buffer.alloc(300, 0x62), Buffer.alloc(16_384, 0x63), '007', '1.5', Buffer.from([0, 0xff])];

  it('RESTOREs our ziplist list (type 10), plain and LZF-compressed', async () => {
    const zl = encodeZiplist(mixed);
    for (const compress of [false, true]) {
      await restore('zl', 10, rdbString(zl, compress));
      assert.deepEqual(await redis.lrangeBuffer('zl', 0, -1), mixed.map(toBuf));
    }
  });

  it('RESTOREs our quicklist of ziplists (type 14)', async () => {
    const a = mixed.slice(0, 9);
    const b = mixed.slice(9);
    await restore('ql', 14, Buffer.concat([rdbLen(2), rdbString(encodeZiplist(a)), rdbString(encodeZiplist(b), true)]));
    assert.deepEqual(await redis.lrangeBuffer('ql', 0, -1), mixed.map(toBuf));
  });

  it('RESTOREs our hash ziplist (type 13) and zset ziplist (type 12)', async () => {
    const pairs = mixed.flatMap((v, i) => [`field${i}`, v]);
    await restore('hz', 13, rdbString(encodeZiplist(pairs)));
    assert.deepEqual(await redis.callBuffer('HGETALL', 'hz'), pairs.map(toBuf));

    const zitems: EncodableItem[] = ['a', -5, 'b', 1.5, 'c', 7, 'e', INT64_MAX, 'd', 'inf'];
    await restore('zz', 12, rdbString(encodeZiplist(zitems)));
    const range = await redis.zrange('zz', 0, -1, 'WITHSCORES');
    assert.deepEqual(range, ['a', '-5', 'b', '1.5', 'c', '7', 'e', '9.2233720368547758e+18', 'd', 'inf']);
  });

  it('RESTOREs our zipmap (type 9) with free bytes and long lengths', async () => {
    const pairs: [string, string, number][] = [['name', 'foo', 3], ['k'.repeat(300), 'v'.repeat(1000), 4], ['e', '', 0], ['n', '12', 1]];
    await restore('zm', 9, rdbString(encodeZipmap(pairs)));
    const got = await redis.hgetall('zm');
    assert.deepEqual(got, Object.fromEntries(pairs.map(([f, v]) => [f, v])));
  });

  it('RESTOREs our listpack hash (type 16) and intset (type 11)', async () => {
    const pairs = mixed.flatMap((v, i) => [`f${i}`, v]);
    await restore('hl', 16, rdbString(encodeListpack(pairs), true));
    assert.deepEqual(await redis.callBuffer('HGETALL', 'hl'), pairs.map(toBuf));

    const ints = [INT64_MIN, -1n, 0n, 7n, 2n ** 53n + 1n, INT64_MAX];
    await restore('is', 11, rdbString(encodeIntset(ints)));
    const members = (await redis.smembers('is')).map(BigInt).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    assert.deepEqual(members, ints);
  });

  it('is rejected by the server when our CRC is wrong (the footer check is real)', async () => {
    const dump = makeDump(11, rdbString(encodeIntset([1, 2])), rdbVersion);
    dump[dump.length - 1] ^= 1;
    await assert.rejects(redis.restore('bad', 0, dump), /checksum/);
  });
});

function toBuf(v: EncodableItem): Buffer {
  if (Buffer.isBuffer(v)) return v;
  return Buffer.from(typeof v === 'string' ? v : v.toString());
}
