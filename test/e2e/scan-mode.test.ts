/**
 * Scan mode: sources that refuse SYNC/PSYNC (started here with `rename-command SYNC ""` and
 * `rename-command PSYNC ""`, as managed services do) are copied with SCAN + DUMP and followed
 * through keyspace notifications, with verify-and-repair rounds until nothing differs.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { Migration, type MigrationOptions } from '../../src/engine/migration.js';
import type { MigrationProgress } from '../../src/engine/stats.js';
import { startRedis, stopAll, type RedisServer, type StartOptions } from '../helpers/redis-server.js';
import { populateAllTypes, populateBigKeys } from '../helpers/dataset.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { mixedLoad } from '../helpers/scan-load.js';
import { startCluster } from '../helpers/redis-cluster.js';
import { compareClusters } from '../helpers/compare-cluster.js';
import { parseEndpoint } from '../../src/common/endpoint.js';

/** A source as managed services offer it: replication commands renamed away. */
const NO_SYNC: StartOptions['config'] = { 'rename-command SYNC': '""', 'rename-command PSYNC': '""' };

/** A logger that keeps its lines (and prints them when FERRY_TEST_LOG is set). */
function recordingLogger(): { logger: Logger; lines: { level: number; msg: string; reason?: string }[] } {
  const lines: { level: number; msg: string; reason?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
      if (process.env.FERRY_TEST_LOG) process.stderr.write(chunk);
      done();
    },
  });
  return { logger: pino({ level: process.env.FERRY_TEST_LEVEL ?? 'info' }, sink), lines };
}

function endpoint(s: RedisServer) {
  return { host: s.host, port: s.port };
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits for lag 0 (nothing waits, the last repair round found nothing); fails fast if the migration fails. */
async function converged(migration: Migration, timeoutMs = 60_000): Promise<MigrationProgress> {
  let last = migration.progress();
  await waitFor('lag 0', () => {
    last = migration.progress();
    if (last.phase === 'failed') throw new Error(`migration failed: ${last.failure}`);
    return last.phase === 'incremental' && last.stream.lagBytes === 0;
  }, timeoutMs);
  return last;
}

async function assertSame(source: RedisServer, target: RedisServer): Promise<void> {
  const diffs = await compareServers(source, target);
  assert.equal(diffs.length, 0, `target differs from source:\n${formatDifferences(diffs)}`);
}

describe('scan mode (sources that refuse SYNC/PSYNC)', () => {
  after(stopAll);

  it('auto mode falls back to scan on a source refusing PSYNC, says why, and copies the mixed dataset and big keys exactly', async () => {
    const source = await startRedis({ config: NO_SYNC });
    const target = await startRedis();
    try {
      await populateAllTypes(source);
      await populateBigKeys(source, { listElements: 20_000, stringBytes: 3 * 1024 * 1024, collectionSize: 20_000, db: 2 });
      const { logger, lines } = recordingLogger();
      const result = await new Migration({ source: endpoint(source), target: endpoint(target), method: 'full', logger, maxPayloadBytes: 256 * 1024 }).run();
      assert.equal(result.phase, 'done');
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
      assert.equal(result.sourceMode?.mode, 'scan');
      assert.match(result.sourceMode?.reason ?? '', /refused PSYNC: ERR unknown command/);
      const fallback = lines.find((l) => /falling back to scan mode/.test(l.msg));
      assert.ok(fallback, 'the fallback is logged');
      assert.match(fallback.reason ?? '', /PSYNC/);
      const shard = result.shards[0]!;
      assert.equal(shard.mode, 'scan');
      assert.ok((shard.scan?.keysScanned ?? 0) >= 100, `scanned ${shard.scan?.keysScanned}`);
      assert.ok((shard.scan?.keysChunked ?? 0) >= 4, `big keys read with type commands: ${shard.scan?.keysChunked}`);
      assert.ok(result.snapshot.functions >= 1, 'function libraries copied');
      await assertSame(source, target);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('incremental: under a concurrent pipelined load (SELECT, MULTI/EXEC, EVAL, RENAME, EXPIRE, MOVE, FLUSHDB, SWAPDB) lag reaches 0, then nothing differs', async () => {
    const source = await startRedis({ config: NO_SYNC });
    const target = await startRedis();
    try {
      await populateAllTypes(source, { dbs: [0, 1] });
      for (const db of [9, 10, 11]) await source.client(db).set(`seed:${db}`, `in db ${db}`);
      const { logger } = recordingLogger();
      const migration = new Migration({ source: endpoint(source), target: endpoint(target), method: 'incremental', sourceMode: 'scan', logger, pollIntervalMs: 200 });
      const running = migration.run();
      // The load starts with the migration: it writes during the scan and after it.
      const load = await mixedLoad(source, { durationMs: 4000, connections: 4, seed: 5 });
      assert.ok(load.commands > 2000, `only ${load.commands} commands`);
      const last = await converged(migration);
      await assertSame(source, target);
      const scan = last.shards[0]!.scan!;
      assert.ok(scan.notifications > 1000, `notifications ${scan.notifications}`);
      assert.ok(scan.keysRecopied > 100, `re-copied ${scan.keysRecopied}`);
      assert.ok(scan.rounds.length >= 1 && scan.rounds.at(-1)!.found === 0, JSON.stringify(scan.rounds));
      assert.ok(scan.rounds.some((r) => /FLUSHDB|SWAPDB/.test(r.reason)), `a whole-db operation was seen: ${JSON.stringify(scan.rounds.map((r) => r.reason))}`);
      migration.stop();
      const result = await running;
      assert.equal(result.phase, 'stopped');
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
      // Ferry enabled notify-keyspace-events for the run and put the old value back.
      assert.deepEqual(await source.client().config('GET', 'notify-keyspace-events'), ['notify-keyspace-events', '']);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('lost notifications: the subscription is killed (CLIENT KILL) while writing; repair rounds still reach 0 differences', async () => {
    const source = await startRedis({ config: NO_SYNC });
    const target = await startRedis();
    try {
      await populateAllTypes(source, { dbs: [0] });
      const { logger } = recordingLogger();
      const migration = new Migration({ source: endpoint(source), target: endpoint(target), method: 'incremental', sourceMode: 'scan', logger, pollIntervalMs: 200 });
      const running = migration.run();
      await converged(migration);
      const controller = new AbortController();
      const load = mixedLoad(source, { durationMs: 5000, connections: 3, seed: 11, wholeDb: false, signal: controller.signal });
      for (let kill = 0; kill < 3; kill++) {
        await new Promise((r) => setTimeout(r, 700));
        const killed = await source.client().call('CLIENT', 'KILL', 'TYPE', 'pubsub');
        assert.equal(killed, 1, 'the keyspace subscription was killed');
        // Written while nobody listens: only a repair round can find these.
        await source.client().set(`unheard:${kill}`, `written while the subscription was down`);
        await source.client().del('load:s:1');
      }
      await load;
      const last = await converged(migration);
      await assertSame(source, target);
      const scan = last.shards[0]!.scan!;
      assert.ok(scan.subscriptionLosses >= 3, `losses ${scan.subscriptionLosses}`);
      assert.ok(scan.rounds.some((r) => /subscription/.test(r.reason)), JSON.stringify(scan.rounds));
      assert.ok(scan.keysRepaired >= 3, `repaired ${scan.keysRepaired}`);
      migration.stop();
      await running;
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('cluster source in scan mode: one reader and subscription per master, into a cluster target, under concurrent writes', async () => {
    const source = await startCluster({ masters: 3, config: NO_SYNC });
    const target = await startCluster({ masters: 3 });
    try {
      const c = source.client();
      await Promise.all(Array.from({ length: 600 }, (_, i) => (i % 4 === 0 ? c.set(`key:${i}`, `value:${i}`, 'PX', 3_600_000) : c.set(`key:${i}`, `value:${i}`))));
      await Promise.all(Array.from({ length: 60 }, (_, i) => c.hset(`{h}:${i}`, 'f', String(i), 'g', 'x')));
      await Promise.all(Array.from({ length: 60 }, (_, i) => c.rpush(`list:${i}`, 'a', 'b', String(i))));
      const { logger } = recordingLogger();
      const endpoints = (addrs: string) => addrs.split(',').map((a) => parseEndpoint(a));
      const migration = new Migration({ source: endpoints(source.addrs), target: endpoints(target.addrs), method: 'incremental', logger, pollIntervalMs: 200 });
      const running = migration.run();
      // Concurrent writes on every shard, during the scan and after it.
      const deadline = Date.now() + 3000;
      let n = 0;
      while (Date.now() < deadline) {
        await Promise.all(
          Array.from({ length: 50 }, (_, j) => {
            const i = n++;
            switch (j % 5) {
              case 0: return c.incr(`counter:${i % 37}`);
              case 1: return c.del(`key:${i % 600}`);
              case 2: return c.set(`key:${(i * 7) % 600}`, `new:${i}`);
              case 3: return c.lpop(`list:${i % 60}`);
              default: return c.hset(`{h}:${i % 60}`, `f${i % 3}`, String(i));
            }
          }),
        );
      }
      const progress = await converged(migration);
      assert.equal(progress.shards.length, 3);
      assert.ok(progress.shards.every((s) => s.mode === 'scan' && (s.scan?.notifications ?? 0) > 0), JSON.stringify(progress.shards.map((s) => s.scan?.notifications)));
      const diffs = await compareClusters(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      migration.stop();
      const result = await running;
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('a source without DUMP and CONFIG (a proxy-like ACL): every key by type commands, notifications as configured; psync mode does not fall back', async () => {
    // notify-keyspace-events is set by the operator; Ferry's user may not use DUMP or CONFIG.
    const source = await startRedis({ config: { ...NO_SYNC, 'notify-keyspace-events': 'KA' }, aclUsers: [{ name: 'ferry', password: 'ferry-secret', rules: '~* &* +@all -dump -config' }] });
    const asFerry = { ...endpoint(source), user: 'ferry', password: 'ferry-secret' };
    const target = await startRedis();
    try {
      await populateAllTypes(source, { dbs: [0, 3] });
      await assert.rejects(
        new Migration({ source: asFerry, target: endpoint(target), method: 'full', sourceMode: 'psync', logger: pino({ level: 'silent' }) }).run(),
        /refused PSYNC: ERR unknown command/,
      );
      const { logger, lines } = recordingLogger();
      const migration = new Migration({ source: asFerry, target: endpoint(target), method: 'incremental', sourceMode: 'scan', logger, pollIntervalMs: 200 });
      const running = migration.run();
      await waitFor('incremental', () => migration.progress().phase === 'incremental');
      await mixedLoad(source, { durationMs: 1500, connections: 2, seed: 21, wholeDb: false, dbs: [3] });
      const p = await converged(migration);
      await assertSame(source, target);
      assert.equal(p.shards[0]!.scan!.notificationSetup, 'unknown');
      assert.equal(p.snapshot.restored, 0, 'nothing could be RESTOREd without DUMP');
      assert.ok(p.snapshot.rewritten > 50, `rewritten ${p.snapshot.rewritten}`);
      assert.ok(lines.some((l) => /refuses DUMP/.test(l.msg)));
      assert.ok(lines.some((l) => /cannot check notify-keyspace-events/.test(l.msg)));
      migration.stop();
      const result = await running;
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('fails with a one-line reason where SCAN is refused, and where notifications are off and CONFIG SET is refused', async () => {
    const noScan = await startRedis({ config: { ...NO_SYNC, 'rename-command SCAN': '""' } });
    const noConfigSet = await startRedis({ aclUsers: [{ name: 'app', password: 'app-secret', rules: '~* +@all -config|set -psync -sync' }] });
    const target = await startRedis();
    try {
      await noScan.client().set('k', 'v');
      await assert.rejects(new Migration({ source: endpoint(noScan), target: endpoint(target), method: 'full', logger: pino({ level: 'silent' }) }).run(), (e: Error) => /refuses SCAN/.test(e.message) && !e.message.includes('\n'));
      await assert.rejects(
        new Migration({ source: { ...endpoint(noConfigSet), user: 'app', password: 'app-secret' }, target: endpoint(target), method: 'incremental', logger: pino({ level: 'silent' }) }).run(),
        (e: Error) => /set notify-keyspace-events to "KA"/.test(e.message) && !e.message.includes('app-secret'),
      );
    } finally {
      await noScan.stop();
      await noConfigSet.stop();
      await target.stop();
    }
  });

  it('keyspace drift asks for a round: a key that appears on the target alone (no notification can tell) is found and removed', async () => {
    const source = await startRedis({ config: NO_SYNC });
    const target = await startRedis();
    try {
      for (let i = 0; i < 100; i++) await source.client().set(`k:${i}`, String(i));
      const { logger } = recordingLogger();
      const migration = new Migration({ source: endpoint(source), target: endpoint(target), method: 'incremental', sourceMode: 'scan', logger, pollIntervalMs: 200 });
      const running = migration.run();
      const first = await converged(migration);
      const roundsBefore = first.shards[0]!.scan!.rounds.length;
      // Written behind Ferry's back: the source never notifies it, only the counts differ.
      await target.client().set('stray', 'only on the target');
      await waitFor('the stray key to be removed', async () => (await target.client().exists('stray')) === 0, 30_000);
      const after = await converged(migration);
      const rounds = after.shards[0]!.scan!.rounds;
      assert.ok(rounds.length > roundsBefore && rounds.some((r) => /keyspace drift/.test(r.reason) && r.found >= 1), JSON.stringify(rounds));
      await assertSame(source, target);
      migration.stop();
      await running;
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('the bandwidth limit holds for the DUMPs and the chunks of big keys', async () => {
    const source = await startRedis({ config: NO_SYNC });
    const target = await startRedis();
    try {
      for (let i = 0; i < 160; i++) await source.client().set(`big:${i}`, randomBytes(64 * 1024));
      await source.client().set('huge', randomBytes(2 * 1024 * 1024)); // above the size limit: chunks
      const started = Date.now();
      const result = await new Migration({ source: endpoint(source), target: endpoint(target), method: 'full', sourceMode: 'scan', logger: pino({ level: 'silent' }), bandwidthLimitMb: 8, maxPayloadBytes: 1024 * 1024 }).run();
      const seconds = (Date.now() - started) / 1000;
      const mb = result.snapshot.bytesRead / 1024 / 1024;
      assert.ok(mb >= 12, `read ${mb.toFixed(1)} MB`);
      assert.ok(seconds >= (mb / 8) * 0.85, `${mb.toFixed(1)} MB in ${seconds.toFixed(2)} s: faster than 8 MB/s allows`);
      assert.ok(result.shards[0]!.scan!.keysChunked >= 1, 'the big key went in chunks'); // (SCAN may list a key twice)
      await assertSame(source, target);
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
