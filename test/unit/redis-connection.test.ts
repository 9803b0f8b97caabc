import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { encodeCommand } from '../../src/resp/encode.js';
import { ReplyError, type Reply } from '../../src/resp/reply-decoder.js';
import { RedisConnection, RedisConnectionError } from '../../src/resp/connection.js';

// Only loopback, only servers started here: never the shared Redis on 6379.
const HOST = '127.0.0.1';
const PASSWORD = 'ferry-test-Secr3t-passw0rd';
const REDIS_SERVER = process.env['REDIS_SERVER'] ?? 'redis-server';

/** A port that was free a moment ago (listen on 0, read it, close). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, HOST, resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

interface RedisInstance {
  port: number;
  proc: ChildProcess;
  dir: string;
  stop(): Promise<void>;
}

async function startRedis(): Promise<RedisInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-target-test-'));
  const port = await freePort();
  const proc = spawn(
    REDIS_SERVER,
    [
      '--port', String(port),
      '--bind', HOST,
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      '--requirepass', PASSWORD,
      '--logfile', join(dir, 'redis.log'),
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  // Ready once it accepts TCP connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: HOST, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    proc,
    dir,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function connect(port: number, extra: Partial<Parameters<typeof RedisConnection.connect>[0]> = {}): Promise<RedisConnection> {
  return RedisConnection.connect({ host: HOST, port, password: PASSWORD, name: 'ferry-test', ...extra });
}

describe('RedisConnection against a real redis-server', () => {
  let redis: RedisInstance;
  const opened: RedisConnection[] = [];
  const open = async (extra: Partial<Parameters<typeof RedisConnection.connect>[0]> = {}): Promise<RedisConnection> => {
    const c = await connect(redis.port, extra);
    opened.push(c);
    return c;
  };

  before(async () => {
    redis = await startRedis();
  });

  after(async () => {
    for (const c of opened) c.destroy();
    await redis?.stop();
  });

  it('authenticates and names the connection', async () => {
    const c = await open();
    assert.deepEqual(await c.call(['PING']), Buffer.from('PONG'));
    assert.deepEqual(await c.call(['CLIENT', 'GETNAME']), Buffer.from('ferry-test'));
    const u = await open({ user: 'default', name: 'ferry-user' });
    assert.deepEqual(await u.call(['CLIENT', 'GETNAME']), Buffer.from('ferry-user'));
  });

  it('pipelines 100k SETs under waitForRoom back-pressure', async () => {
    const c = await open({ maxInflight: 1000, maxInflightBytes: 256 * 1024 });
    await c.call(['SELECT', 1]);
    let ok = 0;
    let other: Reply | RedisConnectionError | undefined;
    let peakInflight = 0;
    let waits = 0;
    const N = 100_000;
    for (let i = 0; i < N; i++) {
      if (c.full) {
        waits++;
        await c.waitForRoom();
      }
      c.send(encodeCommand(['SET', `key:${i}`, `value:${i}`]), (r) => {
        if (Buffer.isBuffer(r) && r.toString() === 'OK') ok++;
        else other = r;
      });
      peakInflight = Math.max(peakInflight, c.inflight);
    }
    await c.drain();
    assert.equal(other, undefined);
    assert.equal(ok, N);
    assert.equal(c.inflight, 0);
    assert.equal(c.inflightBytes, 0);
    assert.ok(peakInflight <= 1000, `peak ${peakInflight}`);
    assert.ok(waits > 0, 'back-pressure engaged');
    assert.equal(await c.call(['DBSIZE']), N);
    assert.deepEqual(await c.call(['GET', 'key:99999']), Buffer.from('value:99999'));
    await c.call(['FLUSHDB']);
  });

  it('delivers error replies to the callback of the command that caused them', async () => {
    const c = await open();
    await c.call(['SET', 'errs:s', 'not-a-number']);
    await c.call(['DEL', 'errs:n']);
    const got: Array<Reply | RedisConnectionError> = [];
    for (const key of ['errs:s', 'errs:n', 'errs:s', 'errs:n']) c.send(encodeCommand(['INCR', key]), (r) => got.push(r));
    c.send(encodeCommand(['GET', 'errs:s']), (r) => got.push(r));
    await c.drain();
    assert.equal(got.length, 5);
    assert.ok(got[0] instanceof ReplyError);
    assert.match(got[0].message, /^ERR value is not an integer/);
    assert.equal(got[0].code, 'ERR');
    assert.equal(got[1], 1);
    assert.ok(got[2] instanceof ReplyError);
    assert.equal(got[3], 2);
    assert.deepEqual(got[4], Buffer.from('not-a-number'));
    await assert.rejects(c.call(['INCR', 'errs:s']), (e: unknown) => e instanceof ReplyError && /not an integer/.test(e.message));
    await assert.rejects(c.call(['NOSUCHCOMMAND']), ReplyError);
    // The connection is still in sync afterwards.
    assert.equal(await c.call(['INCR', 'errs:n']), 3);
  });

  it('fires markers in order with the replies, synchronously when idle', async () => {
    const c = await open();
    let fired = false;
    c.marker(() => (fired = true));
    assert.ok(fired, 'idle marker fires synchronously');
    const events: string[] = [];
    for (let i = 0; i < 20; i++) {
      c.send(encodeCommand(['PING']), () => events.push(`c${i}`));
      if (i % 5 === 4) c.marker(() => events.push(`m${i}`));
    }
    c.marker(() => events.push('end'));
    await c.drain();
    const expected: string[] = [];
    for (let i = 0; i < 20; i++) {
      expected.push(`c${i}`);
      if (i % 5 === 4) expected.push(`m${i}`);
    }
    expected.push('end');
    assert.deepEqual(events, expected);
  });

  it('drain resolves once every command sent so far is answered', async () => {
    const c = await open();
    await c.drain(); // nothing in flight
    let answered = 0;
    for (let i = 0; i < 1000; i++) c.send(encodeCommand(['ECHO', `x${i}`]), () => answered++);
    assert.equal(c.inflight, 1000);
    assert.ok(c.inflightBytes > 0);
    const d1 = c.drain();
    c.send(encodeCommand(['PING']), () => answered++);
    await d1;
    assert.ok(answered >= 1000);
    await c.drain();
    assert.equal(answered, 1001);
    assert.equal(c.inflight, 0);
  });

  it('closes cleanly with QUIT after the replies already owed', async () => {
    const c = await open();
    const got: Array<Reply | RedisConnectionError> = [];
    c.send(encodeCommand(['ECHO', 'last']), (r) => got.push(r));
    await c.close();
    assert.deepEqual(got, [Buffer.from('last')]);
    assert.equal(await c.closed, null);
    await assert.rejects(c.call(['PING']), RedisConnectionError);
  });

  it('reports a wrong password with the server text and never the password', async () => {
    const wrong = 'wrong-Pa55word-that-must-not-leak';
    for (const extra of [{ password: wrong }, { user: 'default', password: wrong }]) {
      await assert.rejects(connect(redis.port, extra), (e: unknown) => {
        assert.ok(e instanceof RedisConnectionError);
        assert.match(e.message, new RegExp(`^authentication failed for ${HOST}:${redis.port}: WRONGPASS`));
        assert.ok(!e.message.includes(wrong));
        assert.ok(!String(e.stack).includes(wrong));
        return true;
      });
    }
    // No password at all: connect works, commands get the server's NOAUTH.
    const c = await RedisConnection.connect({ host: HOST, port: redis.port });
    opened.push(c);
    await assert.rejects(c.call(['GET', 'x']), (e: unknown) => e instanceof ReplyError && e.code === 'NOAUTH');
  });

  it('fails every pending callback when the server dies', async () => {
    const doomed = await startRedis();
    try {
      const c = await connect(doomed.port);
      const address = `${HOST}:${doomed.port}`;
      const got: Array<Reply | RedisConnectionError> = [];
      // BLPOP with no timeout holds the reply stream, so everything after it stays pending.
      c.send(encodeCommand(['BLPOP', 'never', 0]), (r) => got.push(r));
      for (let i = 0; i < 10; i++) c.send(encodeCommand(['SET', `k${i}`, 'v']), (r) => got.push(r));
      let markerFired = false;
      c.marker(() => (markerFired = true));
      const drained = c.drain();
      const call = c.call(['PING']);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(got.length, 0);
      doomed.proc.kill('SIGKILL');
      await assert.rejects(drained, (e: unknown) => e instanceof RedisConnectionError && e.message.includes(address));
      await assert.rejects(call, RedisConnectionError);
      assert.equal(got.length, 11);
      for (const r of got) {
        assert.ok(r instanceof RedisConnectionError);
        assert.ok(r.message.includes(address), r.message);
      }
      assert.equal(markerFired, false, 'a marker must not fire for unanswered commands');
      const closedWith = await c.closed;
      assert.ok(closedWith instanceof RedisConnectionError);
      assert.equal(c.inflight, 0);
      // Later use fails fast, asynchronously.
      const late = await new Promise<Reply | RedisConnectionError>((resolve) => c.send(encodeCommand(['PING']), resolve));
      assert.ok(late instanceof RedisConnectionError);
      await assert.rejects(c.waitForRoom(), RedisConnectionError);
      c.marker(() => (markerFired = true));
      assert.equal(markerFired, false);
    } finally {
      await doomed.stop();
    }
  });
});

describe('RedisConnection failures without a server', () => {
  it('reports ECONNREFUSED on a closed loopback port', async () => {
    const port = await freePort();
    await assert.rejects(RedisConnection.connect({ host: HOST, port, password: PASSWORD }), {
      name: 'RedisConnectionError',
      message: `cannot connect to ${HOST}:${port}: ECONNREFUSED`,
    });
  });

  it('times out a server that never answers the handshake', async () => {
    const sockets: net.Socket[] = [];
    const srv = net.createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => srv.listen(0, HOST, resolve));
    const { port } = srv.address() as net.AddressInfo;
    try {
      await assert.rejects(
        RedisConnection.connect({ host: HOST, port, password: PASSWORD, connectTimeoutMs: 200 }),
        { message: `no reply from ${HOST}:${port} within 200 ms (connected, but it did not answer AUTH)` },
      );
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });

  it('fails the connection when a command waits for its reply longer than the reply timeout', async () => {
    // A peer that answers the handshake (CLIENT SETNAME) and then never again.
    const sockets: net.Socket[] = [];
    let answered = false;
    const srv = net.createServer((s) => {
      sockets.push(s);
      s.on('data', () => {
        if (!answered) s.write('+OK\r\n');
        answered = true;
      });
    });
    await new Promise<void>((resolve) => srv.listen(0, HOST, resolve));
    const { port } = srv.address() as net.AddressInfo;
    try {
      const c = await RedisConnection.connect({ host: HOST, port, name: 'ferry-test', replyTimeoutMs: 300 });
      const started = Date.now();
      await assert.rejects(c.call(['SET', 'k', 'v']), { message: `no reply from ${HOST}:${port} within 300 ms (1 commands waiting)` });
      assert.ok(Date.now() - started >= 290, 'not before the limit');
      assert.ok((await c.closed) !== null, 'the connection is closed with the failure');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });

  it('fails pending callbacks on a protocol violation, naming the offset', async () => {
    const sockets: net.Socket[] = [];
    const srv = net.createServer((s) => {
      sockets.push(s);
      s.on('data', () => s.write('+OK\r\n?garbage\r\n'));
    });
    await new Promise<void>((resolve) => srv.listen(0, HOST, resolve));
    const { port } = srv.address() as net.AddressInfo;
    try {
      const c = await RedisConnection.connect({ host: HOST, port });
      const first = c.call(['PING']);
      const second = c.call(['PING']);
      assert.deepEqual(await first, Buffer.from('OK'));
      await assert.rejects(second, (e: unknown) => {
        assert.ok(e instanceof RedisConnectionError);
        assert.match(e.message, new RegExp(`^protocol error from ${HOST}:${port}: .*byte offset 5: unexpected byte 0x3f`));
        return true;
      });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });
});
