/**
 * Big elements on the rebuild path (decode mode): an element that spans many chunks is joined
 * once, into a buffer of its length, not re-concatenated with every new chunk (a 32 MiB hash
 * value used to copy about 8 GiB). Asserted on what the parser copies, not on time.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { NEED_DATA, RdbParser } from '../../src/rdb/parser.js';
import type { RdbEntry } from '../../src/rdb/entries.js';
import { RdbWriter, V } from '../helpers/rdb-writer.js';
import { LzfStream, lzfDecompress } from '../../src/rdb/lzf.js';
import { lzfCompress } from '../helpers/lzf-compress.js';

function parse(data: Buffer, chunk: number, options: ConstructorParameters<typeof RdbParser>[0]): { entries: RdbEntry[]; copied: number } {
  const parser = new RdbParser(options);
  const entries: RdbEntry[] = [];
  let at = 0;
  for (;;) {
    const e = parser.next();
    if (e === null) break;
    if (e === NEED_DATA) {
      if (at >= data.length) parser.end();
      else {
        parser.push(data.subarray(at, at + chunk));
        at += chunk;
      }
      continue;
    }
    entries.push(e);
  }
  return { entries, copied: parser.bytesCopied };
}

describe('big elements in decode mode', () => {
  it('a 24 MiB hash value in 64 KiB chunks is copied about once, and arrives whole', () => {
    const big = randomBytes(24 * 1024 * 1024);
    const data = new RdbWriter('REDIS', 10).key('h', V.hash([['small', 'x'], ['big', big], ['after', 'y']])).finish();
    const { entries, copied } = parse(data, 64 * 1024, { wantsPayload: () => false });
    const fields: Buffer[] = [];
    const values: Buffer[] = [];
    for (const e of entries) {
      if (e.kind === 'key-chunk' && e.chunk.type === 'hash') {
        fields.push(...e.chunk.fields);
        values.push(...e.chunk.values);
      }
    }
    assert.deepEqual(fields.map((f) => f.toString()), ['small', 'big', 'after']);
    assert.ok(values[1]!.equals(big), 'the big value is whole');
    assert.ok(copied < 2 * data.length, `copied ${copied} bytes for an input of ${data.length}`);
  });

  it('a big value that overflows the payload capture falls back to decoding without copying it again and again', () => {
    const big = randomBytes(8 * 1024 * 1024);
    const data = new RdbWriter('REDIS', 10).key('h', V.hash([['big', big]])).key('s', V.string('tail')).finish();
    const { entries, copied } = parse(data, 64 * 1024, { maxPayloadBytes: 1024 * 1024 });
    assert.ok(entries.some((e) => e.kind === 'key-begin'), 'decoded, not restored');
    assert.ok(entries.some((e) => e.kind === 'key' && e.key.toString() === 's'), 'the next key follows');
    assert.ok(copied < 3 * data.length, `copied ${copied} bytes for an input of ${data.length}`);
  });
});

describe('LZF in bounded pieces', () => {
  it('LzfStream decompresses exactly what lzfDecompress does, whatever the push boundaries', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 40; round++) {
      // Compressible text with some noise: literals and back-references of every length.
      const size = 1 + rand(300_000);
      const src = Buffer.alloc(size);
      for (let i = 0; i < size; i++) src[i] = rand(10) < 8 ? 97 + ((i >> rand(6)) % 5) : rand(256);
      const packed = lzfCompress(src);
      if (!packed) continue;
      const expected = lzfDecompress(packed, size);
      const pieces: Buffer[] = [];
      const s = new LzfStream(size, 1 + rand(70_000));
      for (let at = 0; at < packed.length; ) {
        const n = 1 + rand(5000);
        s.push(packed.subarray(at, at + n), (p) => pieces.push(p));
        at += n;
      }
      s.finish((p) => pieces.push(p));
      assert.ok(Buffer.concat(pieces).equals(expected), `round ${round}`);
      assert.ok(pieces.every((p) => p.length <= 70_000 + 300), 'bounded pieces');
    }
  });

  it('rejects a stream that decompresses to another length or reaches before its start', () => {
    const packed = lzfCompress(Buffer.from('abcabcabcabcabcabcabcabcabc'))!;
    const s = new LzfStream(5);
    assert.throws(() => s.push(packed, () => undefined), /output overflow/);
    const t = new LzfStream(100);
    t.push(packed, () => undefined);
    assert.throws(() => t.finish(() => undefined), /decompressed to \d+ bytes but 100 were expected/);
    assert.throws(() => new LzfStream(10).push(Buffer.from([0x20, 0x05]), () => undefined), /before start of output/);
  });

  it('a big LZF string on the rebuild path comes out in bounded pieces (1 MiB and one token at most)', () => {
    const big = Buffer.alloc(6 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = 97 + ((i * 7) % 13);
    const data = new RdbWriter('REDIS', 10).key('s', V.string(big, 'lzf')).finish();
    assert.ok(data.length < big.length / 4, 'the value is stored compressed');
    const { entries } = parse(data, 64 * 1024, { wantsPayload: () => false });
    const pieces = entries.flatMap((e) => (e.kind === 'key-chunk' && e.chunk.type === 'string' ? [e.chunk.data] : []));
    assert.ok(pieces.length >= 6, `${pieces.length} pieces`);
    assert.ok(pieces.every((p) => p.length <= 1024 * 1024 + 264), 'bounded');
    assert.ok(Buffer.concat(pieces).equals(big));
  });
});
