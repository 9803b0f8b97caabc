import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { pino } from 'pino';
import { Migration } from '../../src/engine/migration.js';
import { closedPort, startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';

const logger = pino({ level: process.env.FERRY_TEST_LOG ?? 'silent' });

/**
 * A fake source on loopback that plays the replica handshake and then sends `afterPsync`.
 * Enough to check how Ferry takes garbage; a real server never sends it.
 */
async function fakeSource(afterPsync: Buffer): Promise<{ port: number; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let seen = '';
    socket.on('data', (d) => {
      seen += d.toString('latin1');
      // One reply per command received so far: +PONG, then +OK for AUTH/REPLCONF.
      const commands = seen.split('*').length - 1;
      while (answered < commands) {
        answered++;
        if (/PSYNC/.test(seen) && answered === commands) socket.write(afterPsync);
        else socket.write(answered === 1 ? '+PONG\r\n' : '+OK\r\n');
      }
    });
    let answered = 0;
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

function full(source: { host: string; port: number }, target: RedisServer): Migration {
  return new Migration({ source, target: { host: target.host, port: target.port }, method: 'full', logger });
}

describe('bad input from the source and lost targets', () => {
  after(stopAll);

  it('a snapshot that is not an RDB fails with the offset and what was expected', async () => {
    const fake = await fakeSource(Buffer.from(`+FULLRESYNC ${'a'.repeat(40)} 0\r\n$20\r\nTHIS IS NOT AN RDB!!`));
    const target = await startRedis();
    try {
      await assert.rejects(full({ host: '127.0.0.1', port: fake.port }, target).run(), /corrupt snapshot at byte 0: expected the RDB header/);
    } finally {
      fake.close();
      await target.stop();
    }
  });

  it('a snapshot cut short fails clearly instead of hanging', async () => {
    const fake = await fakeSource(Buffer.from(`+FULLRESYNC ${'b'.repeat(40)} 0\r\n$100\r\nREDIS0010\xfe\x00`, 'latin1'));
    const target = await startRedis();
    try {
      const run = full({ host: '127.0.0.1', port: fake.port }, target).run();
      setTimeout(() => fake.close(), 300);
      await assert.rejects(run, /closed|ended/);
    } finally {
      fake.close();
      await target.stop();
    }
  });

  it('garbage instead of a PSYNC reply is reported, not swallowed', async () => {
    const fake = await fakeSource(Buffer.from('\x00\x01garbage\r\n', 'latin1'));
    const target = await startRedis();
    try {
      await assert.rejects(full({ host: '127.0.0.1', port: fake.port }, target).run(), /unexpected PSYNC reply/);
    } finally {
      fake.close();
      await target.stop();
    }
  });

  it('garbage on the command stream stops the migration with the stream offset', async () => {
    const rdb = Buffer.from('REDIS0003\xff', 'latin1'); // version < 5: no checksum
    const fake = await fakeSource(
      Buffer.concat([Buffer.from(`+FULLRESYNC ${'c'.repeat(40)} 1000\r\n$${rdb.length}\r\n`), rdb, Buffer.from('*1\r\n$4\r\nPING\r\nXYZ')]),
    );
    const target = await startRedis();
    try {
      const migration = new Migration({
        source: { host: '127.0.0.1', port: fake.port },
        target: { host: target.host, port: target.port },
        method: 'incremental',
        logger,
      });
      await assert.rejects(migration.run(), /garbage on the replication stream at offset 1014/);
    } finally {
      fake.close();
      await target.stop();
    }
  });

  it('losing the target fails the migration with the reason', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      await source.client().set('k', 'v');
      const migration = new Migration({
        source: { host: source.host, port: source.port },
        target: { host: target.host, port: target.port },
        method: 'incremental',
        logger,
        pollIntervalMs: 100,
      });
      const outcome = migration.run().then(
        () => null,
        (e: Error) => e,
      );
      for (let i = 0; i < 100 && migration.progress().phase !== 'incremental'; i++) await new Promise((r) => setTimeout(r, 50));
      await target.stop();
      await source.client().set('after', 'target died');
      assert.match(String(await outcome), /lost the target: connection to 127\.0\.0\.1:\d+ closed by the server/);
      assert.equal(migration.progress().phase, 'failed');
    } finally {
      await source.stop();
    }
  });

  it('waits while the source answers -NOMASTERLINK, then syncs', async () => {
    // A replica whose master is unreachable refuses PSYNC with -NOMASTERLINK.
    const source = await startRedis({ config: { replicaof: `127.0.0.1 ${await closedPort()}` } });
    const target = await startRedis();
    try {
      const migration = full({ host: source.host, port: source.port }, target);
      const running = migration.run();
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(migration.progress().phase, 'connecting');
      await source.client().call('REPLICAOF', 'NO', 'ONE');
      await source.client().set('finally', 'here');
      const result = await running;
      assert.equal(result.phase, 'done');
      assert.equal(await target.client().get('finally'), 'here');
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('a write the target refuses for good: logged and skipped by default, or fails the migration with policy "fail"', async () => {
    for (const policy of ['skip', 'fail'] as const) {
      const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
      const target = await startRedis();
      try {
        await source.client().set('seed', '1');
        const migration = new Migration({
          source: { host: source.host, port: source.port },
          target: { host: target.host, port: target.port },
          method: 'incremental',
          writeErrorPolicy: policy,
          logger,
          pollIntervalMs: 100,
        });
        const outcome = migration.run().then(
          (r) => r,
          (e: Error) => e,
        );
        for (let i = 0; i < 100 && migration.progress().phase !== 'incremental'; i++) await new Promise((r) => setTimeout(r, 50));
        await target.client().rpush('clash', 'a list on the target only');
        await source.client().append('clash', 'a string on the source');
        await source.client().set('after', 'x');
        if (policy === 'fail') {
          assert.match(String(await outcome), /refused a write \(policy: fail\): APPEND clash in db 0: WRONGTYPE/);
        } else {
          for (let i = 0; i < 50 && (await target.client().get('after')) !== 'x'; i++) await new Promise((r) => setTimeout(r, 50));
          assert.equal(await target.client().get('after'), 'x', 'the migration went on');
          migration.stop();
          const result = await outcome;
          assert.ok(!(result instanceof Error));
          assert.equal(result.errors.count, 1);
          assert.equal(result.errors.recent[0]!.key, 'clash');
        }
      } finally {
        await source.stop();
        await target.stop();
      }
    }
  });
});
