/**
 * A Sentinel source with real processes: a master, its replica, and one Sentinel
 * (redis-server --sentinel) on loopback ports. A failover during the incremental phase, with
 * live pipelined load, must leave the target equal to the new master.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { discoverDeployment } from '../../src/cluster/topology.js';
import { parseAddressList } from '../../src/common/endpoint.js';
import { Migration } from '../../src/engine/migration.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { abortableLoad } from '../helpers/load.js';
import { closedPort, startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';

const logger = pino({ level: process.env.FERRY_TEST_LOG ?? 'silent' });
const SENTINEL_PW = 'sentinel-own-pw';

const T0 = Date.now();
async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 20_000): Promise<T> {
  if (process.env.FERRY_TEST_TIMING) console.error(`${Date.now() - T0} ms: waiting for ${what}`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function info(s: RedisServer, section: string): Promise<string> {
  return s.client().info(section);
}

const offsetOf = async (s: RedisServer): Promise<number> => Number(/master_repl_offset:(\d+)/.exec(await info(s, 'replication'))?.[1]);

async function masterAddr(sentinel: RedisServer): Promise<string> {
  const r = (await sentinel.client().call('SENTINEL', 'get-master-addr-by-name', 'mymaster')) as string[];
  return `${r[0]}:${r[1]}`;
}

async function failover(writesDuringFailover: boolean): Promise<void> {
  const fast = { 'repl-diskless-sync-delay': '0' };
  const master = await startRedis({ config: fast });
  const replica = await startRedis({ config: { ...fast, replicaof: `127.0.0.1 ${master.port}` } });
  const target = await startRedis();
  let sentinel: RedisServer | null = null;
  try {
    await until('the replica to sync', async () => /master_link_status:up/.test(await info(replica, 'replication')));
    sentinel = await startRedis({
      args: ['--sentinel'],
      password: SENTINEL_PW,
      config: {
        'sentinel monitor mymaster 127.0.0.1': `${master.port} 1`,
        'sentinel down-after-milliseconds mymaster': '2000',
        'sentinel failover-timeout mymaster': '10000',
      },
    });
    const s = sentinel;
    // Sentinel learns about the replica from the master's INFO.
    await until('Sentinel to know the replica', async () => {
      const replicas = (await s.client().call('SENTINEL', 'replicas', 'mymaster')) as string[][];
      return replicas.some((r) => r.includes(String(replica.port)) && /^slave$/.test(r[r.indexOf('flags') + 1] ?? ''));
    });

    const pipe = master.client().pipeline();
    for (let i = 0; i < 500; i++) pipe.set(`seed:${i}`, `v${i}`);
    await pipe.exec();

    // The first Sentinel of the list is down: the second answers.
    const down = await closedPort();
    const source = parseAddressList(`sentinel://:${SENTINEL_PW}@127.0.0.1:${down},127.0.0.1:${s.port}/mymaster`);
    const migration = new Migration({ source, target: { host: target.host, port: target.port }, method: 'incremental', resumeMode: 'auto', logger, pollIntervalMs: 200 });
    const running = migration.run();
    // The last offset applied from the old master: PSYNC can continue on the new one only up to
    // where its history and the old master's are the same (second_repl_offset).
    let appliedOnOld = 0;
    const sampler = setInterval(() => {
      const sh = migration.progress().shards[0];
      if (sh?.source === master.addr && (sh.phase === 'incremental' || sh.phase === 'reconnecting')) appliedOnOld = Math.max(appliedOnOld, sh.stream.appliedOffset);
    }, 2);
    const before = new AbortController();
    const loadBefore = abortableLoad({ client: () => master.client(), signal: before.signal, maxMs: 30_000 });
    await until('the incremental phase', async () => migration.progress().phase === 'incremental');
    assert.equal(migration.progress().shards[0]!.source, master.addr);
    await new Promise((r) => setTimeout(r, 300)); // writes in the stream phase
    // The failover. Writes pause for it, as an application's do while its master moves, so the
    // promoted replica has the whole history Ferry applied and PSYNC can continue there.
    if (!writesDuringFailover) {
      before.abort();
      assert.ok((await loadBefore).commands > 200);
      const last = await offsetOf(master);
      await until('the replica to have every write', async () => (await offsetOf(replica)) >= last);
    }
    await until('Sentinel to accept the failover', async () => (await s.client().call('SENTINEL', 'failover', 'mymaster')) === 'OK');
    await until('Sentinel to name the new master', async () => (await masterAddr(s)) === replica.addr);
    await until('the replica to be promoted', async () => /role:master/.test(await info(replica, 'replication')));
    if (writesDuringFailover) {
      // Writes the old master took after the promotion are not in the new history: the
      // target must end up equal to the new master anyway (a full resync, purged first).
      before.abort();
      assert.ok((await loadBefore).commands > 200);
    }
    const after = new AbortController();
    const loadAfter = abortableLoad({ client: () => replica.client(), signal: after.signal, maxMs: 30_000 });
    await until('the migration to follow the new master', async () => migration.progress().shards[0]!.source === replica.addr && migration.progress().phase === 'incremental', 10_000);
    await new Promise((r) => setTimeout(r, 500)); // more writes on the new master
    after.abort();
    assert.ok((await loadAfter).commands > 200);

    const wanted = await offsetOf(replica);
    await until('the target to catch up with the new master', async () => migration.progress().stream.appliedOffset >= wanted, 20_000);
    const diffs = await compareServers(replica, target);
    assert.equal(diffs.length, 0, formatDifferences(diffs));
    const p = migration.progress();
    assert.ok(p.reconnects >= 1, 'the link was re-established');
    clearInterval(sampler);
    if (!writesDuringFailover) {
      // Sentinel's own hello messages (PUBLISH, replicated) can still reach the old master after
      // the promotion; only then is a full resync right.
      const shared = Number(/second_repl_offset:(-?\d+)/.exec(await info(replica, 'replication'))?.[1]);
      if (appliedOnOld + 1 <= shared) assert.equal(p.fullResyncs, 0, `PSYNC continued on the new master (applied ${appliedOnOld}, shared history to ${shared})`);
      else assert.equal(p.fullResyncs, 1, `the histories diverged at ${shared} (applied ${appliedOnOld}): one full resync`);
    }
    migration.stop();
    const result = await running;
    assert.equal(result.phase, 'stopped');
    assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
  } finally {
    await sentinel?.stop();
    await master.stop();
    await replica.stop();
    await target.stop();
  }
}

describe('Sentinel source', () => {
  after(stopAll);

  it('follows a failover during incremental sync: +switch-master moves the link, PSYNC continues on the new master (no full resync), 0 differences', async () => {
    await failover(false);
  });

  it('a failover with writes going on through it (some reach the old master after the promotion): 0 differences with the new master', async () => {
    await failover(true);
  });

  it('a wrong Sentinel password or an unknown master name fails clearly', async () => {
    const master = await startRedis();
    const sentinel = await startRedis({ args: ['--sentinel'], password: SENTINEL_PW, config: { 'sentinel monitor mymaster 127.0.0.1': `${master.port} 1` } });
    try {
      const ok = await discoverDeployment(parseAddressList(`sentinel://127.0.0.1:${sentinel.port}/mymaster`, { sentinelPassword: SENTINEL_PW }));
      assert.deepEqual(ok.kind === 'standalone' ? [ok.master.host, ok.master.port] : null, ['127.0.0.1', master.port]);
      await assert.rejects(discoverDeployment(parseAddressList(`sentinel://:wrong@127.0.0.1:${sentinel.port}/mymaster`)), /Sentinel 127\.0\.0\.1:\d+: authentication failed.*Sentinel's own password/);
      await assert.rejects(discoverDeployment(parseAddressList(`sentinel://:${SENTINEL_PW}@127.0.0.1:${sentinel.port}/other`)), /does not monitor a master named "other"/);
      assert.throws(() => parseAddressList('sentinel://127.0.0.1:1'), /invalid Sentinel URI/);
    } finally {
      await sentinel.stop();
      await master.stop();
    }
  });
});
