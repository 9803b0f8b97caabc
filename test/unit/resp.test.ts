import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { CommandStreamDecoder, type StreamCommand } from '../../src/resp/command-stream.js';
import { encodeCommand, encodeCommands, type Arg } from '../../src/resp/encode.js';
import { PushReply, ReplyDecoder, ReplyError, ReplyMap, type Reply } from '../../src/resp/reply-decoder.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Decodes `chunks` with a fresh ReplyDecoder and returns every reply. */
function decodeReplies(chunks: Buffer[]): Reply[] {
  const out: Reply[] = [];
  const d = new ReplyDecoder((r) => out.push(r));
  for (const c of chunks) d.push(c);
  return out;
}

/** Every way to cut `buf` into two chunks, plus one byte at a time. */
function* splits(buf: Buffer): Generator<Buffer[]> {
  yield [buf];
  for (let i = 1; i < buf.length; i++) yield [buf.subarray(0, i), buf.subarray(i)];
  yield Array.from(buf, (x) => Buffer.from([x]));
}

/** Deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('encodeCommand', () => {
  it('encodes an array of bulk strings', () => {
    assert.equal(encodeCommand(['SET', 'k', 'v']).toString(), '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n');
    assert.equal(encodeCommand(['PING']).toString(), '*1\r\n$4\r\nPING\r\n');
  });

  it('encodes numbers, bigints, UTF-8, binary and empty arguments', () => {
    const bin = Buffer.from([0, 13, 10, 255, 42]);
    const enc = encodeCommand(['X', 42, -7, 1.5, 12345678901234567890n, 'é€', '', bin]);
    const expected = Buffer.concat([
      b('*8\r\n$1\r\nX\r\n$2\r\n42\r\n$2\r\n-7\r\n$3\r\n1.5\r\n$20\r\n12345678901234567890\r\n'),
      b('$5\r\n'),
      Buffer.from('é€', 'utf8'),
      b('\r\n$0\r\n\r\n$5\r\n'),
      bin,
      b('\r\n'),
    ]);
    assert.deepEqual(enc, expected);
  });

  it('encodes strings exactly as Buffer.from(s, "utf8") does', () => {
    const strings = ['', 'ascii', 'é', '€uro', '\ud83d\ude00', 'lone \ud800 surrogate', 'x'.repeat(64), 'é'.repeat(40), 'y'.repeat(65) + '€'];
    for (const s of strings) {
      const payload = Buffer.from(s, 'utf8');
      const expected = Buffer.concat([b(`*1\r\n$${payload.length}\r\n`), payload, b('\r\n')]);
      assert.deepEqual(encodeCommand([s]), expected, JSON.stringify(s));
    }
  });

  it('gets the length prefix right around powers of ten', () => {
    for (const n of [0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 100000]) {
      const v = 'x'.repeat(n);
      const enc = encodeCommand(['SET', 'k', v]);
      assert.equal(enc.toString(), `*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${n}\r\n${v}\r\n`);
    }
    const many: Arg[] = Array.from({ length: 12 }, (_, i) => i);
    assert.ok(encodeCommand(many).toString().startsWith('*12\r\n$1\r\n0\r\n'));
  });

  it('encodeCommands is the concatenation of encodeCommand', () => {
    const cmds: Arg[][] = [['SELECT', 0], ['SET', 'a', Buffer.from('1')], ['DEL', 'a', 'b', 'c']];
    assert.deepEqual(encodeCommands(cmds), Buffer.concat(cmds.map((c) => encodeCommand(c))));
    assert.equal(encodeCommands([]).length, 0);
  });

  it('rejects empty commands and non-finite numbers', () => {
    assert.throws(() => encodeCommand([]), /empty command/);
    assert.throws(() => encodeCommand(['SET', 'k', NaN]), /non-finite/);
    assert.throws(() => encodeCommand(['SET', 'k', Infinity]), /non-finite/);
  });

  it('round-trips through both decoders', () => {
    const r = rng(7);
    const cmds: Arg[][] = [];
    for (let i = 0; i < 200; i++) {
      const n = 1 + Math.floor(r() * 5);
      const args: Arg[] = [];
      for (let j = 0; j < n; j++) {
        const kind = Math.floor(r() * 4);
        if (kind === 0) args.push(`k${i}:${j}`);
        else if (kind === 1) args.push(Math.floor(r() * 1e9) - 5e8);
        else if (kind === 2) args.push(BigInt(Math.floor(r() * 1e9)) * 10n ** 12n);
        else args.push(Buffer.from(Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256))));
      }
      cmds.push(args);
    }
    const asBuf = (a: Arg): Buffer => (Buffer.isBuffer(a) ? a : Buffer.from(String(a)));
    const stream = encodeCommands(cmds);
    const decoded = new CommandStreamDecoder(0).push(stream);
    assert.equal(decoded.length, cmds.length);
    decoded.forEach((c, i) => assert.deepEqual(c.args, cmds[i]!.map(asBuf)));
    const replies = decodeReplies([stream]);
    replies.forEach((rep, i) => assert.deepEqual(rep, cmds[i]!.map(asBuf)));
  });
});

describe('ReplyDecoder', () => {
  const cases: Array<[string, string, Reply]> = [
    ['simple string', '+OK\r\n', b('OK')],
    ['empty simple string', '+\r\n', b('')],
    ['error', '-ERR unknown command\r\n', new ReplyError('ERR unknown command')],
    ['zero', ':0\r\n', 0],
    ['negative integer', ':-42\r\n', -42],
    ['max safe integer', ':9007199254740991\r\n', 9007199254740991],
    ['integer beyond safe range', ':9007199254740993\r\n', 9007199254740993n],
    ['int64 min', ':-9223372036854775808\r\n', -9223372036854775808n],
    ['bulk', '$5\r\nhello\r\n', b('hello')],
    ['empty bulk', '$0\r\n\r\n', b('')],
    ['bulk holding CRLF', '$4\r\na\r\nb\r\n', b('a\r\nb')],
    ['null bulk', '$-1\r\n', null],
    ['null array', '*-1\r\n', null],
    ['empty array', '*0\r\n', []],
    ['array', '*3\r\n$1\r\na\r\n:1\r\n-WRONGTYPE x\r\n', [b('a'), 1, new ReplyError('WRONGTYPE x')]],
    ['nested arrays', '*2\r\n*1\r\n+x\r\n*2\r\n*0\r\n$-1\r\n', [[b('x')], [[], null]]],
    ['resp3 null', '_\r\n', null],
    ['double', ',3.25\r\n', 3.25],
    ['double inf', ',inf\r\n', Infinity],
    ['double -inf', ',-inf\r\n', -Infinity],
    ['double nan', ',nan\r\n', NaN],
    ['boolean true', '#t\r\n', true],
    ['boolean false', '#f\r\n', false],
    ['big number', '(12345678901234567890\r\n', 12345678901234567890n],
    ['small big number', '(7\r\n', 7n],
    ['verbatim', '=15\r\ntxt:Some string\r\n', b('Some string')],
    ['blob error', '!9\r\nERR oops!\r\n', new ReplyError('ERR oops!')],
    ['map', '%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n', new ReplyMap([[b('a'), 1], [b('b'), [2]]])],
    ['set', '~2\r\n:1\r\n:2\r\n', [1, 2]],
    ['push', '>3\r\n+message\r\n+ch\r\n$2\r\nhi\r\n', new PushReply([b('message'), b('ch'), b('hi')])],
    ['attribute before a value', '|1\r\n+key\r\n+val\r\n:7\r\n', 7],
    ['attribute inside an array', '*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n:2\r\n', [1, 2]],
  ];

  for (const [name, wire, expected] of cases) {
    it(`decodes ${name} split at every byte boundary`, () => {
      for (const chunks of splits(b(wire))) assert.deepEqual(decodeReplies(chunks), [expected]);
    });
  }

  it('decodes a stream of every type split at every byte boundary', () => {
    const wire = b(cases.map((c) => c[1]).join(''));
    const expected = cases.map((c) => c[2]);
    for (const chunks of splits(wire)) assert.deepEqual(decodeReplies(chunks), expected);
    // Three-way cuts over a window, to cover replies that straddle three chunks.
    for (let i = 1; i < 60; i++) {
      for (let j = i + 1; j < 80; j++) {
        assert.deepEqual(decodeReplies([wire.subarray(0, i), wire.subarray(i, j), wire.subarray(j)]), expected);
      }
    }
  });

  it('exposes the error code', () => {
    assert.equal(new ReplyError('MOVED 3999 127.0.0.1:6381').code, 'MOVED');
    assert.equal(new ReplyError('NOAUTH').code, 'NOAUTH');
  });

  it('decodes a large bulk fed in small chunks in linear time', () => {
    const size = 32 * 1024 * 1024;
    const payload = Buffer.alloc(size, 0x61);
    payload[size - 1] = 0x7a;
    const wire = Buffer.concat([b(`$${size}\r\n`), payload, b('\r\n+after\r\n')]);
    const chunks: Buffer[] = [];
    for (let o = 0; o < wire.length; o += 1000) chunks.push(wire.subarray(o, o + 1000));
    const t0 = performance.now();
    const out = decodeReplies(chunks);
    const ms = performance.now() - t0;
    assert.equal(out.length, 2);
    assert.ok(Buffer.isBuffer(out[0]));
    assert.ok((out[0] as Buffer).equals(payload));
    assert.deepEqual(out[1], b('after'));
    // Quadratic concatenation would take minutes here.
    assert.ok(ms < 5000, `took ${ms} ms`);
  });

  it('names the absolute offset and byte of a garbage reply', () => {
    const d = new ReplyDecoder(() => {});
    d.push(b('+OK\r\n'));
    d.push(b('$3\r\nabc\r\n'));
    assert.throws(() => d.push(b('A')), /byte offset 14: unexpected byte 0x41/);
    // The decoder stays failed: the stream position is lost.
    assert.throws(() => d.push(b('+OK\r\n')), /byte offset 14/);
  });

  it('rejects malformed lengths, numbers and terminators', () => {
    const bad: Array<[string, RegExp]> = [
      ['$1x\r\n', /byte offset 2: unexpected byte 0x78/],
      [':12a\r\n', /byte offset 3: unexpected byte 0x61/],
      ['+OK\n', /byte offset 3: line feed without a preceding carriage return/],
      ['$3\r\nabcX\r\n', /byte offset 7: expected CRLF after a 3-byte bulk, got 0x58/],
      ['$3\r\nabc\rX', /byte offset 8: expected CRLF after a 3-byte bulk, got 0x58/],
      ['*-2\r\n', /invalid aggregate length -2/],
      ['#x\r\n', /invalid boolean/],
      [',abc\r\n', /invalid double/],
      ['*1\r\n\x00', /byte offset 4: unexpected byte 0x00/],
    ];
    for (const [wire, re] of bad) {
      for (const chunks of splits(b(wire))) {
        assert.throws(() => decodeReplies(chunks), re, `${JSON.stringify(wire)} in ${chunks.length} chunks`);
      }
    }
  });
});

describe('CommandStreamDecoder', () => {
  const PING = b('*1\r\n$4\r\nPING\r\n');
  const GETACK = b('*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n');

  it('reports the exact size of PING and GETACK', () => {
    assert.equal(PING.length, 14);
    assert.equal(GETACK.length, 37);
    const d = new CommandStreamDecoder(1000n);
    const [ping, getack] = d.push(Buffer.concat([PING, GETACK]));
    assert.equal(ping!.name, 'ping');
    assert.deepEqual([ping!.offsetBefore, ping!.offsetAfter, ping!.size], [1000, 1014, 14]);
    assert.equal(getack!.name, 'replconf');
    assert.deepEqual(getack!.args, [b('REPLCONF'), b('GETACK'), b('*')]);
    assert.deepEqual([getack!.offsetBefore, getack!.offsetAfter, getack!.size], [1014, 1051, 37]);
    assert.equal(d.offset, 1051);
    assert.ok(d.atBoundary);
  });

  /** A stream of assorted commands and what each must decode to. */
  function sampleStream(bigValue = 0): { wire: Buffer; cmds: Buffer[][] } {
    const cmds: Arg[][] = [
      ['SELECT', '0'],
      ['SeT', 'key:1', 'value'],
      ['MULTI'],
      ['INCR', 'n'],
      ['SET', 'bin', Buffer.from([0x0d, 0x0a, 0x2a, 0x24, 0x00])],
      ['EXEC'],
      ['PING'],
      ['REPLCONF', 'GETACK', '*'],
      ['APPEND', '', ''],
      ['DEL', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'],
    ];
    if (bigValue > 0) cmds.push(['SET', 'big', Buffer.alloc(bigValue, 0x62)], ['PING']);
    const asBuf = (a: Arg): Buffer => (Buffer.isBuffer(a) ? a : Buffer.from(String(a)));
    return { wire: encodeCommands(cmds), cmds: cmds.map((c) => c.map(asBuf)) };
  }

  function decodeAll(chunks: Buffer[], start = 0): StreamCommand[] {
    const d = new CommandStreamDecoder(start);
    const out: StreamCommand[] = [];
    for (const c of chunks) out.push(...d.push(c));
    assert.ok(d.atBoundary);
    return out;
  }

  function check(out: StreamCommand[], cmds: Buffer[][], wire: Buffer, start: number): void {
    assert.equal(out.length, cmds.length);
    let off = start;
    out.forEach((c, i) => {
      const raw = encodeCommand(cmds[i]!);
      assert.deepEqual(c.args, cmds[i]);
      assert.equal(c.name, cmds[i]![0]!.toString('latin1').toLowerCase());
      assert.equal(c.offsetBefore, off);
      assert.equal(c.size, raw.length);
      assert.equal(c.offsetAfter, off + raw.length);
      assert.deepEqual(c.raw, raw);
      off += raw.length;
    });
    assert.equal(off, start + wire.length);
  }

  it('keeps offsets, args and raw bytes exact across a split at every position', () => {
    const { wire, cmds } = sampleStream();
    for (const chunks of splits(wire)) check(decodeAll(chunks, 5), cmds, wire, 5);
  });

  it('handles a large value split over many chunks, copying only the split bulk', () => {
    const { wire, cmds } = sampleStream(300_000);
    for (const size of [1, 7, 1000, 65536, 299_999]) {
      const chunks: Buffer[] = [];
      for (let o = 0; o < wire.length; o += size) chunks.push(Buffer.from(wire.subarray(o, o + size)));
      if (size === 1) continue; // covered by the per-byte path below on a smaller stream
      check(decodeAll(chunks, 1), cmds, wire, 1);
    }
    const r = rng(3);
    for (let k = 0; k < 50; k++) {
      const chunks: Buffer[] = [];
      for (let o = 0; o < wire.length; ) {
        const n = 1 + Math.floor(r() * 5000);
        chunks.push(Buffer.from(wire.subarray(o, o + n)));
        o += n;
      }
      check(decodeAll(chunks), cmds, wire, 0);
    }
  });

  it('returns zero-copy views for a command lying in one chunk', () => {
    const chunk = Buffer.from(encodeCommand(['SET', 'k', 'v']));
    const [c] = new CommandStreamDecoder(0).push(chunk);
    assert.equal(c!.args[1]!.buffer, chunk.buffer);
    assert.equal(c!.raw.buffer, chunk.buffer);
  });

  it('survives random commands cut at random places', () => {
    const r = rng(11);
    const cmds: Buffer[][] = [];
    for (let i = 0; i < 2000; i++) {
      const n = 1 + Math.floor(r() * 6);
      const args: Buffer[] = [];
      for (let j = 0; j < n; j++) {
        args.push(Buffer.from(Array.from({ length: Math.floor(r() * (r() < 0.05 ? 3000 : 30)) }, () => Math.floor(r() * 256))));
      }
      if (args[0]!.length === 0) args[0] = b('X');
      cmds.push(args);
    }
    const wire = encodeCommands(cmds);
    for (let k = 0; k < 20; k++) {
      const chunks: Buffer[] = [];
      for (let o = 0; o < wire.length; ) {
        const n = 1 + Math.floor(r() * (k < 10 ? 64 : 20000));
        chunks.push(Buffer.from(wire.subarray(o, o + n)));
        o += n;
      }
      const out = decodeAll(chunks, 77);
      assert.equal(out.length, cmds.length);
      let off = 77;
      out.forEach((c, i) => {
        assert.equal(c.offsetBefore, off);
        assert.deepEqual(c.args, cmds[i]);
        off = c.offsetAfter;
      });
      assert.equal(off, 77 + wire.length);
    }
  });

  it('names the offset and byte of garbage at a command start', () => {
    const d = new CommandStreamDecoder(1000);
    d.push(PING);
    assert.throws(() => d.push(b('A')), { message: 'garbage on the replication stream at offset 1014: 0x41' });
    assert.throws(() => d.push(PING), /offset 1014/, 'stays failed');
    // Garbage in the middle of a chunk, after a command split across chunks.
    const e = new CommandStreamDecoder(0);
    e.push(PING.subarray(0, 5));
    assert.throws(() => e.push(Buffer.concat([PING.subarray(5), b('+OK\r\n')])), {
      message: 'garbage on the replication stream at offset 14: 0x2b',
    });
  });

  it('names the offset of malformed bytes inside a command, however it is split', () => {
    const bad: Array<[string, RegExp]> = [
      ['*1\r\n$4\r\nPINGX\r\n', /offset 12: expected CR after bulk data, got 0x58/],
      ['*1\r\n$4\r\nPING\rX', /offset 13: expected LF after bulk data, got 0x58/],
      ['*1\r\n#4\r\nPING\r\n', /offset 4: expected '\$', got 0x23/],
      ['*x\r\n', /offset 1: expected a digit of the argument count, got 0x78/],
      ['*0\r\n', /offset 2: expected a positive argument count/],
      ['*\r\n', /offset 1: expected a positive argument count/],
      ['*1\r\n$-1\r\n', /offset 5: expected a digit of a bulk length, got 0x2d/],
      ['*1\r\n$\r\n', /offset 5: expected a bulk length/],
      ['*1\rX', /offset 3: expected LF, got 0x58/],
    ];
    for (const [wire, re] of bad) {
      for (const chunks of splits(b(wire))) {
        assert.throws(() => decodeAll(chunks), re, `${JSON.stringify(wire)} in ${chunks.length} chunks`);
      }
    }
  });

  it('skips a bare newline keepalive without counting it', () => {
    const d = new CommandStreamDecoder(0);
    const out = d.push(Buffer.concat([b('\n'), PING, b('\n\n'), PING]));
    assert.deepEqual(
      out.map((c) => [c.offsetBefore, c.offsetAfter]),
      [
        [0, 14],
        [14, 28],
      ],
    );
    assert.equal(d.offset, 28);
    assert.equal(d.keepalivesSkipped, 3);
  });

  it('caps bulk sizes and argument counts', () => {
    assert.throws(() => new CommandStreamDecoder(0).push(b('*1\r\n$536870913\r\n')), /over 536870912 bytes/);
    assert.throws(() => new CommandStreamDecoder(0, { maxArgs: 1048576 }).push(b('*1048577\r\n')), /over 1048576 arguments/);
    const small = new CommandStreamDecoder(0, { maxBulkBytes: 10, maxArgs: 2 });
    assert.throws(() => small.push(b('*1\r\n$11\r\n')), /bulk at offset 4 is over 10 bytes/);
    assert.throws(() => new CommandStreamDecoder(0, { maxArgs: 2 }).push(b('*3\r\n')), /offset 0 has over 2 arguments/);
    // The slow path enforces the same caps.
    const split = new CommandStreamDecoder(0, { maxBulkBytes: 10 });
    split.push(b('*1\r\n$1'));
    assert.throws(() => split.push(b('1\r\n')), /bulk at offset 4 is over 10 bytes/);
  });

  it('rejects a bad start offset', () => {
    assert.throws(() => new CommandStreamDecoder(-1), RangeError);
    assert.throws(() => new CommandStreamDecoder(2n ** 60n), RangeError);
  });

  it('decodes SET traffic fast', (t) => {
    // FERRY_BENCH=1 runs the full ~100 MB measurement; the default keeps the suite quick.
    const target = (process.env['FERRY_BENCH'] ? 100 : 16) * 1024 * 1024;
    const parts: Buffer[] = [];
    let total = 0;
    for (let i = 0; total < target; i++) {
      const c = encodeCommand(['SET', `key:${i}`, 'value']);
      parts.push(c);
      total += c.length;
    }
    const wire = Buffer.concat(parts);
    const chunks: Buffer[] = [];
    for (let o = 0; o < wire.length; o += 65536) chunks.push(Buffer.from(wire.subarray(o, o + 65536)));
    let best = 0;
    for (let round = 0; round < 3; round++) {
      const d = new CommandStreamDecoder(0);
      let n = 0;
      let keyBytes = 0;
      const t0 = performance.now();
      for (const c of chunks) {
        for (const cmd of d.push(c)) {
          n++;
          keyBytes += cmd.args[1]!.length;
        }
      }
      const s = (performance.now() - t0) / 1000;
      assert.equal(n, parts.length);
      assert.equal(d.offset, wire.length);
      assert.ok(keyBytes > 0);
      best = Math.max(best, wire.length / 1048576 / s);
    }
    t.diagnostic(`command stream: ${(wire.length / 1048576).toFixed(0)} MB of SET key:N value (${(wire.length / parts.length).toFixed(1)} B/cmd), args materialised: ${best.toFixed(0)} MB/s`);
  });
});
