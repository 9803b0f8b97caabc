import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { Redis } from 'ioredis';
import { Migration, type MigrationOptions } from '../../src/engine/migration.js';
import { DbMapper } from '../../src/engine/db-map.js';
import { parseEndpoint } from '../../src/common/endpoint.js';
import type { MigrationProgress } from '../../src/engine/stats.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { failover, startCluster, moveSlots, type RedisCluster } from '../helpers/redis-cluster.js';
import { compareClusters, type CompareSide } from '../helpers/compare-cluster.js';
import { formatDifferences } from '../helpers/compare.js';
import { populateAllTypes, populateBigKeys } from '../helpers/dataset.js';

const logger = pino({ level: process.env.FERRY_TEST_LOG ?? 'silent' });

function endpoints(side: RedisServer | RedisCluster) {
  const addrs = 'nodes' in side ? side.addrs : side.addr;
  return addrs.split(',').map((a) => parseEndpoint(a, { password: side.password }));
}

function migration(source: RedisServer | RedisCluster, target: RedisServer | RedisCluster, extra: Partial<MigrationOptions> = {}): Migration {
  return new Migration({ source: endpoints(source), target: endpoints(target), method: 'incremental', logger, pollIntervalMs: 200, ...extra });
}

async function waitForPhase(m: Migration, phase: string, timeoutMs = 60_000): Promise<MigrationProgress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const p = m.progress();
    if (p.phase === 'failed') throw new Error(`migration failed: ${p.failure}`);
    if (p.phase === phase) return p;
    if (Date.now() > deadline) throw new Error(`phase ${phase} not reached (now ${p.phase})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until every shard's applied offset has reached its source's current offset. */
async function waitForCatchUp(m: Migration, masters: RedisServer[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const wanted = await Promise.all(masters.map(async (s) => Number(/master_repl_offset:(\d+)/.exec(await s.client().info('replication'))?.[1])));
    const p = m.progress();
    if (p.phase === 'failed') throw new Error(`migration failed: ${p.failure}`);
    const applied = new Map(p.shards.map((s) => [s.source, s.stream.appliedOffset]));
    if (p.phase === 'incremental' && masters.every((s, i) => (applied.get(s.addr) ?? -1) >= wanted[i]!)) return;
    if (Date.now() > deadline) throw new Error(`not caught up: ${JSON.stringify(p.shards.map((s) => [s.source, s.stream.appliedOffset]))} vs ${wanted}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function mastersOf(side: RedisServer | RedisCluster): Promise<RedisServer[]> {
  return 'nodes' in side ? side.masters() : Promise.resolve([side]);
}

/**
 * Writes that a cluster target cannot take as they are, from a standalone source: cross-slot
 * MSET/DEL, RENAME, SMOVE, LMOVE, SUNIONSTORE, ZUNIONSTORE, COPY, a cross-slot MULTI/EXEC and
 * a script writing two keys (replicated as a MULTI of its effects).
 */
async function crossSlotWrites(c: Redis, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await c.mset(`a:${i}`, `1-${i}`, `b:${i}`, `2-${i}`, `c:${i}`, `3-${i}`);
    await c.incr(`a:${i}-n`);
    await c.del(`b:${i}`, `zz:${i}`, `c:${i}`);
    await c.set(`old:${i}`, `v${i}`, 'PX', 3_600_000);
    await c.rename(`old:${i}`, `new:${i}`);
    await c.sadd(`s1:${i}`, 'x', 'y', 'z');
    await c.sadd(`s2:${i}`, 'q');
    await c.smove(`s1:${i}`, `s2:${i}`, 'x');
    await c.rpush(`l1:${i}`, 'p', 'q', 'r');
    await c.lmove(`l1:${i}`, `l2:${i}`, 'LEFT', 'RIGHT');
    await c.sunionstore(`su:${i}`, `s1:${i}`, `s2:${i}`);
    await c.zadd(`z1:${i}`, 1, 'm1', 2, 'm2');
    await c.zadd(`z2:${i}`, 5, 'm2');
    await c.zunionstore(`zu:${i}`, 2, `z1:${i}`, `z2:${i}`, 'WEIGHTS', 1, 3);
    await c.copy(`a:${i}`, `copy:${i}`);
    const tx = await c.multi().incr(`tx1:${i}`).lpush(`tx2:${i}`, 'e').hset(`tx3:${i}`, 'f', 'v').incr(`{tag}:${i}`).exec();
    for (const [err] of tx ?? []) if (err) throw err;
    await c.eval("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])", 2, `lua1:${i}`, `lua2:${i}`, `v${i}`);
    await c.append(`a:${i}`, '+');
  }
}

async function assertSame(source: CompareSide, target: CompareSide, opts: Parameters<typeof compareClusters>[2] = {}): Promise<void> {
  const diffs = await compareClusters(source, target, opts);
  assert.equal(diffs.length, 0, formatDifferences(diffs));
}

describe('Redis Cluster sources and targets', () => {
  after(stopAll);

  it('standalone to cluster: every type, then cross-slot MSET/DEL/RENAME/SMOVE/LMOVE/*STORE, MULTI/EXEC and EVAL live', async () => {
    const source = await startRedis();
    const target = await startCluster({ masters: 3 });
    try {
      await populateAllTypes(source, { dbs: [0] });
      const m = migration(source, target);
      const running = m.run();
      await waitForPhase(m, 'incremental');
      await crossSlotWrites(source.client(0), 20);
      await waitForCatchUp(m, [source]);
      await assertSame(source, target);
      m.stop();
      const result = await running;
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent, null, 1));
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('cluster to standalone and cluster to cluster (3 masters with replicas), live writes on every shard', async () => {
    const source = await startCluster({ masters: 3, replicasPerMaster: 1 });
    const standalone = await startRedis();
    const cluster = await startCluster({ masters: 3 });
    try {
      const c = source.client();
      for (let i = 0; i < 300; i++) await c.set(`key:${i}`, `value:${i}`);
      for (let i = 0; i < 30; i++) await c.hset(`{h}:${i}`, 'f', String(i));
      const toStandalone = migration(source, standalone);
      const toCluster = migration(source, cluster);
      const runs = [toStandalone.run(), toCluster.run()];
      await waitForPhase(toStandalone, 'incremental');
      await waitForPhase(toCluster, 'incremental');
      for (let i = 0; i < 200; i++) {
        await c.incr(`counter:${i % 17}`);
        await c.lpush(`list:${i % 5}`, `e${i}`);
        await c.mset(`{m}:a${i}`, '1', `{m}:b${i}`, '2');
      }
      const masters = await source.masters();
      await waitForCatchUp(toStandalone, masters);
      await waitForCatchUp(toCluster, masters);
      assert.equal(toCluster.progress().shards.length, 3);
      await assertSame(source, standalone);
      await assertSame(source, cluster);
      toStandalone.stop();
      toCluster.stop();
      for (const r of await Promise.all(runs)) assert.equal(r.errors.count, 0, JSON.stringify(r.errors.recent));
    } finally {
      await source.stop();
      await standalone.stop();
      await cluster.stop();
    }
  });

  it('survives a resharding of the target during incremental sync (MOVED/ASK), no lost or duplicated writes', async () => {
    const source = await startRedis();
    const target = await startCluster({ masters: 3 });
    try {
      const c = source.client(0);
      for (let i = 0; i < 500; i++) await c.set(`k:${i}`, String(i));
      const m = migration(source, target);
      const running = m.run();
      await waitForPhase(m, 'incremental');
      const masters = await target.masters();
      // Move a range of slots from the first master to the last while counters are incremented.
      const writes = (async () => {
        for (let i = 0; i < 3000; i++) await c.incr(`n:${i % 200}`);
      })();
      const slots = Array.from({ length: 300 }, (_, i) => i);
      await moveSlots(target, slots, masters[2]!);
      await writes;
      await waitForCatchUp(m, [source]);
      await assertSame(source, target);
      m.stop();
      const result = await running;
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('several source dbs into a cluster: with prefixes they stay apart; without, a collision is reported', async () => {
    const source = await startRedis();
    const target = await startCluster({ masters: 3 });
    try {
      for (const db of [0, 1, 5]) {
        await source.client(db).set('same-name', `from-db${db}`);
        await source.client(db).set(`only-in-${db}`, 'x');
      }
      const prefixed = new Migration({
        source: endpoints(source),
        target: endpoints(target),
        method: 'full',
        logger,
        dbs: new DbMapper({ prefixes: new Map([[1, Buffer.from('db1:')], [5, Buffer.from('db5:')]]) }),
      });
      const r1 = await prefixed.run();
      assert.equal(r1.errors.count, 0, JSON.stringify(r1.errors.recent));
      const keyMap = (db: number, key: Buffer) => ({ db: 0, key: db === 0 ? key : Buffer.concat([Buffer.from(`db${db}:`), key]) });
      await assertSame(source, target, { keyMap });

      await target.flushAll();
      const merged = await new Migration({ source: endpoints(source), target: endpoints(target), method: 'full', logger }).run();
      assert.equal(merged.errors.count, 2, JSON.stringify(merged.errors.recent));
      assert.ok(merged.errors.recent.every((e) => e.key === 'same-name' && /collision/.test(e.error)));
      assert.equal(await target.client().get('same-name'), 'from-db0');

      await target.flushAll();
      const onlyDb1 = await new Migration({ source: endpoints(source), target: endpoints(target), method: 'full', logger, dbs: new DbMapper({ only: new Set([1]) }) }).run();
      assert.equal(onlyDb1.errors.count, 0);
      assert.equal(await target.client().get('same-name'), 'from-db1');
      assert.equal(await target.client().get('only-in-0'), null);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('detects a source shard failing over and fails with a clear reason', async () => {
    const source = await startCluster({ masters: 3, replicasPerMaster: 1 });
    const target = await startCluster({ masters: 3 });
    try {
      await source.client().set('k', 'v');
      const m = migration(source, target);
      const outcome = m.run().then(
        () => null,
        (e: Error) => e,
      );
      await waitForPhase(m, 'incremental');
      await failover(source, source.nodes[3]!); // replica of the first master
      const error = await outcome;
      assert.match(String(error), /failed over: it is now a replica of 127\.0\.0\.1:\d+/);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('the mixed dataset (every type, TTLs, big keys) through standalone→cluster, cluster→cluster and cluster→standalone', async () => {
    const origin = await startRedis();
    const first = await startCluster({ masters: 3 });
    const second = await startCluster({ masters: 3 });
    const back = await startRedis();
    try {
      await populateAllTypes(origin, { dbs: [0] });
      await populateBigKeys(origin, { listElements: 100_000, stringBytes: 5 * 1024 * 1024, collectionSize: 20_000 });
      const full = (from: RedisServer | RedisCluster, to: RedisServer | RedisCluster) =>
        new Migration({ source: endpoints(from), target: endpoints(to), method: 'full', logger, maxPayloadBytes: 1024 * 1024 }).run();
      for (const [from, to] of [[origin, first], [first, second], [first, back]] as const) {
        const result = await full(from, to);
        assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
        assert.ok(result.snapshot.rewritten > 0, 'big keys took the rewrite path');
      }
      await assertSame(origin, first);
      await assertSame(first, second);
      await assertSame(first, back);
    } finally {
      await origin.stop();
      await first.stop();
      await second.stop();
      await back.stop();
    }
  });

  it('with resume_mode auto, follows a failed-over source shard to its new master and continues (PSYNC2)', async () => {
    const source = await startCluster({ masters: 3, replicasPerMaster: 1 });
    const target = await startRedis();
    try {
      const c = source.client();
      for (let i = 0; i < 100; i++) await c.set(`before:${i}`, String(i));
      const m = migration(source, target, { resumeMode: 'auto' });
      const running = m.run();
      await waitForPhase(m, 'incremental');
      await failover(source, source.nodes[3]!);
      for (let i = 0; i < 200; i++) await c.incr(`after:${i % 20}`);
      const masters = await source.masters();
      const deadline = Date.now() + 30_000;
      for (;;) {
        const p = m.progress();
        if (p.phase === 'failed') throw new Error(String(p.failure));
        const wanted = await Promise.all(masters.map(async (s) => Number(/master_repl_offset:(\d+)/.exec(await s.client().info('replication'))?.[1])));
        const applied = new Map(p.shards.map((s) => [s.source, s.stream.appliedOffset]));
        if (masters.every((s, i) => (applied.get(s.addr) ?? -1) >= wanted[i]!) && p.shards.every((s) => s.phase === 'incremental')) break;
        if (Date.now() > deadline) throw new Error(`not caught up after the failover: ${JSON.stringify(p.shards.map((s) => [s.source, s.phase, s.stream.appliedOffset]))}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const p = m.progress();
      assert.ok(p.reconnects >= 1);
      assert.equal(p.fullResyncs, 0, 'the promoted replica continued the history');
      await assertSame(source, target);
      m.stop();
      await running;
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
