import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Migration } from '../../src/engine/migration.js';
import type { MigrationProgress } from '../../src/engine/stats.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { applyLiveWrites, populateAllTypes } from '../helpers/dataset.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { pipelinedLoad } from '../helpers/load.js';

const logger = pino({ level: process.env.FERRY_TEST_LOG ?? 'silent' });

function incremental(source: RedisServer, target: RedisServer, untilSynced = false): Migration {
  return new Migration({
    source: { host: source.host, port: source.port },
    target: { host: target.host, port: target.port },
    method: 'incremental',
    untilSynced,
    logger,
    pollIntervalMs: 200,
  });
}

async function sourceOffset(source: RedisServer): Promise<number> {
  const info = await source.client().info('replication');
  return Number(/master_repl_offset:(\d+)/.exec(info)?.[1]);
}

/** Waits until the target has applied everything the source has written so far. */
async function waitForCatchUp(migration: Migration, source: RedisServer, timeoutMs = 30_000): Promise<MigrationProgress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const wanted = await sourceOffset(source);
    const p = migration.progress();
    if (p.phase === 'failed') throw new Error(`migration failed: ${p.failure}`);
    if (p.phase === 'incremental' && p.stream.appliedOffset >= wanted) return p;
    if (Date.now() > deadline) throw new Error(`not caught up: applied ${p.stream.appliedOffset} < ${wanted} (phase ${p.phase})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('incremental migration, standalone to standalone', () => {
  after(stopAll);

  it('applies live writes (INCR, APPEND, LPUSH, HINCRBY, EXPIRE, MULTI/EXEC, EVAL, SELECT) made during and after the snapshot', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    try {
      await populateAllTypes(source);
      const migration = incremental(source, target);
      const running = migration.run();
      // Writes start while the snapshot is being taken and go on after it.
      const writes = await applyLiveWrites(source, { durationMs: 3000, seed: 7 });
      assert.ok(writes.total > 100, `only ${writes.total} writes`);
      const p = await waitForCatchUp(migration, source);
      assert.ok(p.stream.commandsForwarded > 0);
      assert.ok(p.stream.transactions > 0, 'MULTI/EXEC blocks were forwarded');
      const diffs = await compareServers(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      migration.stop();
      const result = await running;
      assert.equal(result.phase, 'stopped');
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('concurrent pipelined bursts of non-commutative pairs (SET/DEL, RPUSH/LPOP, SADD/SREM, HSET/HDEL, INCR, MULTI) during and after the snapshot: 0 differences', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    try {
      await populateAllTypes(source);
      const migration = incremental(source, target);
      const running = migration.run();
      // Four clients, bursts of 60 commands, from the snapshot on.
      const load = pipelinedLoad(source, { clients: 4, burst: 60 });
      for (let i = 0; i < 100 && migration.progress().phase !== 'incremental'; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 1500));
      const { commands } = await load.stop();
      assert.ok(commands > 2000, `only ${commands} commands`);
      await waitForCatchUp(migration, source);
      const diffs = await compareServers(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      migration.stop();
      const result = await running;
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('acknowledges applied offsets: WAIT on the source counts Ferry as a replica', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      const migration = incremental(source, target);
      const running = migration.run();
      await waitForCatchUp(migration, source);
      await source.client().set('waited', 'yes');
      // WAIT sends REPLCONF GETACK; Ferry answers with the offset the target has applied.
      const acked = await source.client().call('WAIT', '1', '5000');
      assert.equal(acked, 1);
      assert.equal(await target.client().get('waited'), 'yes');
      // The checkpoint a resume would start from: the source's history, the applied offset, the db.
      await source.client(4).set('in-db-4', 'x');
      const caughtUp = await waitForCatchUp(migration, source);
      const info = await source.client().info('replication');
      assert.deepEqual(caughtUp.checkpoint, {
        replid: /master_replid:(\w+)/.exec(info)?.[1],
        appliedOffset: Number(/master_repl_offset:(\d+)/.exec(info)?.[1]),
        db: 4,
      });
      migration.stop();
      await running;
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('with untilSynced, finishes once the target has everything the source had', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync': 'no' } });
    const target = await startRedis();
    try {
      await applyLiveWrites(source, { ops: 500, seed: 3 });
      const migration = incremental(source, target, true);
      const result = await migration.run();
      assert.equal(result.phase, 'done');
      assert.equal(result.stream.lagBytes, 0);
      const diffs = await compareServers(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('forwards FLUSHDB and FLUSHALL by default', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      await source.client(3).set('gone', '1');
      await target.client(5).set('unrelated', '1');
      const migration = incremental(source, target);
      const running = migration.run();
      await waitForCatchUp(migration, source);
      assert.equal(await target.client(3).get('gone'), '1');
      await source.client(3).flushdb();
      await source.client(0).set('after', 'flush');
      await waitForCatchUp(migration, source);
      assert.equal(await target.client(3).get('gone'), null);
      assert.equal(await target.client(0).get('after'), 'flush');
      await source.client(0).flushall();
      await waitForCatchUp(migration, source);
      assert.equal(await target.client(5).dbsize(), 0);
      migration.stop();
      await running;
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
