import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Migration } from '../../src/engine/migration.js';
import type { MigrationProgress } from '../../src/engine/stats.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { startProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { compareClusters } from '../helpers/compare-cluster.js';
import { startCluster } from '../helpers/redis-cluster.js';

const logger = pino({ level: process.env.FERRY_TEST_LOG ?? 'silent' });

function viaProxy(proxy: TcpProxy, target: RedisServer, extra: Partial<ConstructorParameters<typeof Migration>[0]> = {}): Migration {
  return new Migration({
    source: { host: '127.0.0.1', port: proxy.port },
    target: { host: target.host, port: target.port },
    method: 'incremental',
    resumeMode: 'auto',
    logger,
    pollIntervalMs: 100,
    ...extra,
  });
}

async function until(m: Migration, test: (p: MigrationProgress) => boolean, what: string, timeoutMs = 30_000): Promise<MigrationProgress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const p = m.progress();
    if (p.phase === 'failed') throw new Error(`migration failed: ${p.failure}`);
    if (test(p)) return p;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify({ phase: p.phase, reconnects: p.reconnects, applied: p.stream.appliedOffset })}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function caughtUp(m: Migration, source: RedisServer): Promise<void> {
  const offset = Number(/master_repl_offset:(\d+)/.exec(await source.client().info('replication'))?.[1]);
  await until(m, (p) => p.shards[0]?.phase === 'incremental' && p.stream.appliedOffset >= offset, `applied offset ${offset}`);
}

/** A bounded load of non-idempotent writes: any replay or loss shows in the final values. */
async function load(source: RedisServer, n: number, tag: string): Promise<void> {
  const c = source.client();
  for (let i = 0; i < n; i++) {
    await c.incr(`counter:${i % 10}`);
    await c.append(`log:${i % 5}`, `${tag}${i},`);
    await c.lpush(`list:${i % 3}`, `${tag}${i}`);
    if (i % 50 === 0) await c.multi().incr('tx:a').hincrby('tx:h', 'f', 2).exec();
  }
}

describe('resilience: reconnect and resume', () => {
  after(stopAll);

  it('a source link cut 3 times under INCR/APPEND/LPUSH: +CONTINUE each time, no full resync, no difference', async () => {
    const source = await startRedis({ config: { 'repl-backlog-size': '64mb', 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const proxy = await startProxy(source.port);
    try {
      await source.client().set('seed', '1');
      const m = viaProxy(proxy, target);
      const running = m.run();
      await until(m, (p) => p.phase === 'incremental', 'incremental');
      for (let round = 1; round <= 3; round++) {
        const writes = load(source, 300, `r${round}-`);
        await new Promise((r) => setTimeout(r, 50));
        proxy.cut();
        await writes;
        await until(m, (p) => p.reconnects >= round && p.shards[0]?.phase === 'incremental', `reconnect ${round}`);
      }
      await caughtUp(m, source);
      const p = m.progress();
      assert.equal(p.reconnects, 3);
      assert.equal(p.fullResyncs, 0, 'every reconnect continued from the checkpoint');
      const diffs = await compareServers(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      m.stop();
      const result = await running;
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
    } finally {
      await proxy.close();
      await source.stop();
      await target.stop();
    }
  });

  it('a link down longer than the backlog allows: one full resync, and keys deleted meanwhile are gone', async () => {
    const source = await startRedis({ config: { 'repl-backlog-size': '16kb', 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const proxy = await startProxy(source.port);
    try {
      const c = source.client();
      for (let i = 0; i < 100; i++) await c.set(`doomed:${i}`, 'x');
      const m = viaProxy(proxy, target);
      const running = m.run();
      await caughtUp(m, source);
      proxy.refuse();
      proxy.cut();
      // More than the 16 KB backlog while Ferry is away, including deletions.
      for (let i = 0; i < 100; i++) await c.del(`doomed:${i}`);
      await load(source, 500, 'away-');
      proxy.accept();
      await until(m, (p) => p.fullResyncs >= 1 && p.shards[0]?.phase === 'incremental', 'the full resync');
      await caughtUp(m, source);
      const diffs = await compareServers(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      assert.equal(await target.client().exists('doomed:1'), 0);
      m.stop();
      await running;
    } finally {
      await proxy.close();
      await source.stop();
      await target.stop();
    }
  });

  it('manual mode fails on the first loss, with the reason', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const proxy = await startProxy(source.port);
    try {
      const m = viaProxy(proxy, target, { resumeMode: 'manual' });
      const outcome = m.run().then(
        () => null,
        (e: Error) => e,
      );
      await until(m, (p) => p.phase === 'incremental', 'incremental');
      proxy.cut();
      assert.match(String(await outcome), /closed|ECONNRESET/);
    } finally {
      await proxy.close();
      await source.stop();
      await target.stop();
    }
  });

  it('holds the bandwidth limit within 10% and changes it while running', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    try {
      // About 24 MB of values that do not compress (the RDB is LZF-compressed).
      const c = source.client();
      for (let i = 0; i < 384; i++) await c.set(`big:${i}`, randomBytes(64 * 1024));
      const m = new Migration({ source: { host: source.host, port: source.port }, target: { host: target.host, port: target.port }, method: 'full', logger, bandwidthLimitMb: 8 });
      const started = Date.now();
      let changedAt = 0;
      const running = m.run();
      // After ~1 s raise the limit: the remainder must go faster.
      setTimeout(() => {
        changedAt = Date.now();
        m.setBandwidthLimit(40);
      }, 1000);
      const result = await running;
      const seconds = (Date.now() - started) / 1000;
      const mb = result.snapshot.bytesRead / 1024 / 1024;
      // First second at 8 MB/s, the rest at 40 MB/s: a floor on the time taken.
      const minimum = 1 + Math.max(0, mb - 8) / 40;
      assert.ok(changedAt > 0);
      assert.ok(seconds >= minimum * 0.9, `${mb.toFixed(1)} MB in ${seconds.toFixed(2)} s: faster than the limit allows (${minimum.toFixed(2)} s)`);
      assert.ok(seconds <= minimum * 1.5 + 1, `${mb.toFixed(1)} MB in ${seconds.toFixed(2)} s: far slower than the limit (${minimum.toFixed(2)} s)`);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  for (const targetKind of ['standalone', 'cluster'] as const) it(`Ferry killed with SIGKILL 3 times during incremental sync into a ${targetKind} target: resumes from its checkpoints, counters exact`, async () => {
    const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/cli.js');
    const source = await startRedis({ config: { 'repl-backlog-size': '64mb', 'repl-diskless-sync-delay': '0' } });
    const target = targetKind === 'standalone' ? await startRedis() : await startCluster({ masters: 3 });
    const targetAddr = 'nodes' in target ? target.addrs : target.addr;
    const start = (extra: string[] = []): { child: ChildProcess; lines: string[]; exited: Promise<number | null> } => {
      const child = spawn(process.execPath, [cli, 'migrate', '--source', source.addr, '--target', targetAddr, '--method', 'incremental', '--checkpoint', 'kill-test', '--json', ...extra], { stdio: ['ignore', 'pipe', 'ignore'] });
      const lines: string[] = [];
      let buffered = '';
      child.stdout!.on('data', (d: Buffer) => {
        buffered += d.toString();
        const parts = buffered.split('\n');
        buffered = parts.pop()!;
        lines.push(...parts);
      });
      return { child, lines, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
    };
    const streaming = async (lines: string[]): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!lines.some((l) => /"phase":"incremental"/.test(l))) {
        if (Date.now() > deadline) throw new Error(`never streaming: ${lines.slice(-2).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await source.client().set('seed', '1');
      let stopLoad = false;
      const loading = (async () => {
        for (let i = 0; !stopLoad; i++) await load(source, 20, `k${i}-`);
      })();
      for (let kill = 1; kill <= 3; kill++) {
        const run = start();
        await streaming(run.lines);
        if (kill > 1) assert.ok(!run.lines.some((l) => /"phase":"snapshot"/.test(l)), `run ${kill} resumed without a full sync`);
        await new Promise((r) => setTimeout(r, 300 + 200 * kill));
        run.child.kill('SIGKILL');
        await run.exited;
      }
      stopLoad = true;
      await loading;
      const last = start(['--until-synced']);
      assert.equal(await last.exited, 0);
      assert.ok(!last.lines.some((l) => /"phase":"snapshot"/.test(l)), 'the last run resumed without a full sync');
      const diffs = await compareClusters(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('target OOM under maxmemory: writes are retried in order until memory is raised, nothing lost', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis({ config: { 'maxmemory-policy': 'noeviction' } });
    try {
      const c = source.client();
      for (let i = 0; i < 200; i++) await c.set(`blob:${i}`, randomBytes(16 * 1024));
      const used = Number(/used_memory:(\d+)/.exec(await target.client().info('memory'))?.[1]);
      await target.client().config('SET', 'maxmemory', String(used + 512 * 1024));
      const m = new Migration({
        source: { host: source.host, port: source.port },
        target: { host: target.host, port: target.port },
        method: 'incremental',
        resumeMode: 'auto',
        checkpointKey: '__ferry:checkpoint:oom-test',
        logger,
        pollIntervalMs: 100,
      });
      const running = m.run();
      await new Promise((r) => setTimeout(r, 1500));
      // Live writes while the target is still full: they wait behind the refused ones.
      for (let i = 0; i < 50; i++) await c.incr('counter');
      await target.client().config('SET', 'maxmemory', '0');
      await caughtUp(m, source);
      const diffs = await compareServers(source, target, {});
      const relevant = diffs.filter((d) => !d.key.startsWith('__ferry:checkpoint'));
      assert.equal(relevant.length, 0, formatDifferences(relevant));
      m.stop();
      const result = await running;
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('the target going away and coming back (restart): waits, then resumes from its checkpoint, counters exact', async () => {
    const source = await startRedis({ config: { 'repl-backlog-size': '64mb', 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const proxy = await startProxy(target.port);
    try {
      await source.client().set('seed', '1');
      const m = new Migration({
        source: { host: source.host, port: source.port },
        target: { host: '127.0.0.1', port: proxy.port },
        method: 'incremental',
        resumeMode: 'auto',
        checkpointKey: '__ferry:checkpoint:target-restart',
        logger,
        pollIntervalMs: 100,
      });
      const running = m.run();
      await caughtUp(m, source);
      const writes = load(source, 400, 'tr-');
      await new Promise((r) => setTimeout(r, 100));
      proxy.refuse();
      proxy.cut();
      await new Promise((r) => setTimeout(r, 1500));
      proxy.accept();
      await writes;
      await until(m, (p) => p.reconnects >= 1, 'the target reconnect');
      await caughtUp(m, source);
      const diffs = (await compareServers(source, target)).filter((d) => !d.key.startsWith('__ferry:checkpoint'));
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      m.stop();
      const result = await running;
      assert.equal(result.phase, 'stopped');
    } finally {
      await proxy.close();
      await source.stop();
      await target.stop();
    }
  });

  it('when the source drops Ferry for an overflowing replica buffer, the error says which setting to raise', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0', 'client-output-buffer-limit': 'replica 512kb 256kb 1' } });
    const target = await startRedis();
    try {
      const m = new Migration({
        source: { host: source.host, port: source.port },
        target: { host: target.host, port: target.port },
        method: 'incremental',
        logger,
        pollIntervalMs: 100,
        bandwidthLimitMb: 1,
      });
      const outcome = m.run().then(
        () => null,
        (e: Error) => e,
      );
      await until(m, (p) => p.phase === 'incremental', 'incremental');
      const c = source.client();
      const value = randomBytes(64 * 1024);
      for (let i = 0; i < 400; i++) await c.set(`flood:${i}`, value);
      const error = await Promise.race([outcome, new Promise((r) => setTimeout(() => r(new Error('no disconnect within 20 s')), 20_000))]);
      assert.match(String(error), /client-output-buffer-limit replica/);
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
