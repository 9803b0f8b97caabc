/**
 * The ordered apply path under pipelined load and faults (issue 9): a target refusing writes
 * for a while (OOM) must not reorder the stream, with or without checkpoints; checkpoints and
 * acknowledgements never run ahead of what is applied; a stalled cluster node holds at most the
 * flow budget; silent peers fail with a one-line reason; keys whose name has a '}' and no tag
 * rebuild in their slot; checkpoint names are checked.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Migration } from '../../src/engine/migration.js';
import type { MigrationProgress } from '../../src/engine/stats.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { compareClusters } from '../helpers/compare-cluster.js';
import { startCluster, waitForCluster } from '../helpers/redis-cluster.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { exhaustMemory, liftMemoryLimit, pipelinedLoad, refusals, replOffset } from '../helpers/load.js';

const logger = pino({ level: process.env.FERRY_TEST_LOG ?? 'silent' });
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/cli.js');

async function until<T>(what: string | (() => string), probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `ferry migrate ... --json` as a child process: its latest progress line, and its exit. */
function ferryCli(args: string[]): { child: ChildProcess; latest(): MigrationProgress | null; output(): string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [cli, 'migrate', ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let latest: MigrationProgress | null = null;
  let out = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line.trim()) latest = JSON.parse(line) as MigrationProgress;
  });
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, latest: () => latest, output: () => out, exited };
}

/** Target caught up: everything the source has written is applied (the migration's own view). */
async function caughtUp(progress: () => MigrationProgress | null, source: RedisServer, what = 'the target to catch up'): Promise<void> {
  const offset = await replOffset(source);
  const where = (): string => JSON.stringify({ wanted: offset, shards: progress()?.shards.map((s) => ({ phase: s.phase, applied: s.stream.appliedOffset, received: s.stream.receivedOffset })), retried: progress()?.errors.retriedByCode });
  await until(() => `${what} ${where()}`, () => {
    const p = progress();
    if (p?.phase === 'failed') throw new Error(`migration failed: ${p.failure}`);
    return p !== null && p.phase === 'incremental' && p.shards.every((s) => s.stream.appliedOffset >= offset);
  }, 60_000);
}

/**
 * Load, then a stretch in which the target's memory limit flaps: it refuses every write that
 * needs memory, then takes them again for a moment, several times, with batches in flight each
 * time. That is where a retry that lets later writes pass, or two resends that race, leaves keys
 * the source deleted or moves a checkpoint back.
 */
async function oomWhileLoaded(source: RedisServer, target: RedisServer, flaps = 6): Promise<void> {
  const load = pipelinedLoad(source, { clients: 4, burst: 60 });
  await until('some load', () => load.bursts > 20);
  for (let i = 0; i < flaps; i++) {
    await exhaustMemory(target);
    const before = await refusals(target, 'OOM');
    await until('the target to refuse writes', async () => (await refusals(target, 'OOM')) > before);
    await new Promise((r) => setTimeout(r, 250 + 100 * (i % 3)));
    await liftMemoryLimit(target);
    await new Promise((r) => setTimeout(r, 80 + 40 * (i % 2)));
  }
  await new Promise((r) => setTimeout(r, 300));
  await load.stop();
}

/**
 * A minimal fake server on loopback for timeout tests: it answers the commands Ferry's probes
 * send (CLIENT, INFO as a standalone master, anything else +OK) until `silentFrom` says a
 * command starts its silence on that connection; from then on it says nothing.
 */
async function fakeServer(silentFrom: (command: string) => boolean): Promise<{ port: number; close(): void }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    let silent = false;
    socket.on('data', (d) => {
      for (const m of d.toString('latin1').matchAll(/\*\d+\r\n\$\d+\r\n([A-Za-z]+)/g)) {
        const name = m[1]!.toUpperCase();
        if (silent || (silent = silentFrom(name))) return;
        if (name === 'INFO') {
          const info = 'redis_version:7.0.15\r\nrole:master\r\ncluster_enabled:0\r\n';
          socket.write(`$${info.length}\r\n${info}\r\n`);
        } else socket.write('+OK\r\n');
      }
    });
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

describe('the ordered apply path', () => {
  after(stopAll);

  it('OOM on the target under pipelined concurrent load (CLI --resume auto, no --checkpoint): nothing reordered, nothing lost', async () => {
    const source = await startRedis({ config: { 'repl-backlog-size': '64mb', 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const run = ferryCli(['--source', source.addr, '--target', target.addr, '--method', 'incremental', '--resume', 'auto']);
    try {
      await source.client().set('seed', '1');
      await until('incremental', () => run.latest()?.phase === 'incremental');
      await oomWhileLoaded(source, target);
      const refused = await refusals(target, 'OOM');
      assert.ok(refused > 0, 'the target refused writes with OOM');
      await caughtUp(run.latest, source);
      const diffs = await compareServers(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      assert.equal(run.latest()!.errors.count, 0, 'every refused write passed in the end');
    } finally {
      run.child.kill('SIGTERM');
      await run.exited;
      await source.stop();
      await target.stop();
    }
  });

  it('OOM with checkpoints (exactly-once): the checkpoint never moves backwards, the source is never told more than the target holds', async () => {
    const source = await startRedis({ config: { 'repl-backlog-size': '64mb', 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const key = '__ferry:checkpoint:oom:0';
    const m = new Migration({
      source: { host: source.host, port: source.port },
      target: { host: target.host, port: target.port },
      method: 'incremental',
      resumeMode: 'auto',
      checkpointKey: '__ferry:checkpoint:oom',
      logger,
      pollIntervalMs: 100,
    });
    const running = m.run();
    let watching = true;
    const violations: string[] = [];
    let samples = 0;
    try {
      await source.client().set('seed', '1');
      await until('incremental', () => m.progress().phase === 'incremental');
      // Watch: what the source was told (its replica's ack) must never pass the checkpoint
      // committed on the target, and the checkpoint must only move forward.
      const watcher = (async () => {
        let last = 0;
        while (watching) {
          const acked = Number(/slave0:.*offset=(\d+)/.exec(await source.client().info('replication'))?.[1] ?? 0);
          const text = await target.client().get(key);
          const committed = text ? Number(text.split(' ')[1]) : 0;
          if (committed < last) violations.push(`checkpoint moved back from ${last} to ${committed}`);
          // The ack may run ahead of the last checkpoint by units that write nothing (a PING or a
          // SELECT after the last batch): a few dozen bytes, never a write.
          if (text && acked > committed + 256) violations.push(`source acknowledged ${acked}, target holds up to ${committed}`);
          last = Math.max(last, committed);
          samples++;
          await new Promise((r) => setImmediate(r));
        }
      })();
      await oomWhileLoaded(source, target);
      assert.ok((await refusals(target, 'OOM')) > 0, 'the target refused writes with OOM');
      await caughtUp(() => m.progress(), source);
      watching = false;
      await watcher;
      assert.ok(samples > 20, `watched ${samples} times`);
      assert.deepEqual(violations.slice(0, 5), []);
      const diffs = (await compareServers(source, target)).filter((d) => !d.key.startsWith('__ferry:checkpoint'));
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      assert.equal(m.progress().errors.count, 0);
      assert.ok((m.progress().errors.retriedByCode?.OOM ?? 0) > 0, 'Ferry saw and retried OOM refusals');
    } finally {
      watching = false;
      m.stop();
      await running.catch(() => undefined);
      await source.stop();
      await target.stop();
    }
  });

  it('a stalled cluster target node: Ferry holds at most its flow budget (RSS bounded), then catches up with 0 differences', async () => {
    // The source keeps everything for Ferry (no output-buffer limit, a big backlog).
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0', 'client-output-buffer-limit': 'replica 0 0 0', 'repl-backlog-size': '16mb' } });
    const target = await startCluster({ masters: 3 });
    const run = ferryCli(['--source', source.addr, '--target', target.addrs, '--method', 'incremental', '--resume', 'auto']);
    let stalled: RedisServer | null = null;
    try {
      await source.client().set('seed', '1');
      await until('incremental', () => run.latest()?.phase === 'incremental');
      stalled = (await target.masters())[1]!;
      process.kill(stalled.pid, 'SIGSTOP');
      const value = Buffer.alloc(256 * 1024, 'v');
      let peakRss = 0;
      const rssOf = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${run.child.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
      // 600 MiB of 256 KiB values, a third of them for the stalled node's slots.
      const c = source.client();
      for (let i = 0; i < 2400; i += 40) {
        const p = c.pipeline();
        for (let j = i; j < i + 40; j++) p.set(`big:${j}`, value);
        await p.exec();
        peakRss = Math.max(peakRss, rssOf());
      }
      for (let i = 0; i < 20; i++) {
        peakRss = Math.max(peakRss, rssOf());
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(peakRss > 0, 'measured');
      assert.ok(peakRss < 350 * 1024 * 1024, `Ferry's RSS stayed bounded while a target node stalled: peak ${Math.round(peakRss / 1048576)} MiB for 600 MiB written`);
      process.kill(stalled.pid, 'SIGCONT');
      stalled = null;
      await caughtUp(run.latest, source);
      // While the stalled node is marked FAIL the others answer CLUSTERDOWN: waited out and
      // sent again, never given up (a write given up is counted here and missing on the target).
      const why = (): string => `write errors ${JSON.stringify(run.latest()?.errors)}; Ferry's log:\n${run.output().split('\n').slice(-20).join('\n')}`;
      const diffs = await compareClusters(source, target);
      assert.equal(diffs.length, 0, `${formatDifferences(diffs)}\n${why()}`);
      assert.equal(run.latest()?.errors.count, 0, why());
    } finally {
      if (stalled) process.kill(stalled.pid, 'SIGCONT');
      run.child.kill('SIGTERM');
      await run.exited;
      await source.stop();
      await target.stop();
    }
  });

  it('a cluster target that answers CLUSTERDOWN for longer than the router waits: the writes are held and sent again in order, none given up', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startCluster({ masters: 3 });
    const m = new Migration({ source: { host: source.host, port: source.port }, target: target.nodes.map((n) => ({ host: n.host, port: n.port })), method: 'incremental', resumeMode: 'auto', logger, pollIntervalMs: 100 });
    const running = m.run();
    try {
      await source.client().set('seed', '1');
      await until('incremental', () => m.progress().phase === 'incremental');
      // One node stops serving one of its slots: with full coverage required it answers
      // CLUSTERDOWN to every write, as the other nodes do while a stalled node is marked FAIL,
      // and for as long as the test wants.
      const node = (await target.masters())[1]!;
      const myself = String(await node.client().call('CLUSTER', 'NODES')).split('\n').find((l) => l.includes('myself'))!;
      const slot = myself.split(' ')[8]!.split('-')[0]!;
      await node.client().call('CLUSTER', 'DELSLOTS', slot);
      await until('the node to say the cluster is down', async () => /cluster_state:fail/.test(String(await node.client().call('CLUSTER', 'INFO'))));
      // Non-commutative writes, a third of them for that node's slots: SET/DEL, INCR, RPUSH/LPOP.
      const c = source.client();
      for (let round = 0; round < 3; round++) {
        const p = c.pipeline();
        for (let i = 0; i < 100; i++) {
          p.set(`down:${i}`, `v${round}`);
          if (i % 3 === round) p.del(`down:${i}`);
          p.incr(`count:${i % 10}`);
          p.rpush(`list:${i % 10}`, `${round}:${i}`);
          if (i % 4 === 0) p.lpop(`list:${i % 10}`);
        }
        await p.exec();
      }
      // Past the router's own wait (about 5 s): the writes reach the refusal policy. Before the
      // fix each was reported as refused (EXECABORT) and dropped; now they are held and resent.
      await until(() => `the router to hand the refusal over ${JSON.stringify(m.progress().errors)}`, () => (m.progress().errors.retriedByCode?.CLUSTERDOWN ?? 0) > 0 || m.progress().errors.count > 0);
      await node.client().call('CLUSTER', 'ADDSLOTS', slot);
      await waitForCluster(target.nodes);
      await caughtUp(() => m.progress(), source);
      const diffs = await compareClusters(source, target);
      assert.equal(diffs.length, 0, `${formatDifferences(diffs)}\nwrite errors: ${JSON.stringify(m.progress().errors)}`);
      assert.equal(m.progress().errors.count, 0, JSON.stringify(m.progress().errors));
      assert.ok((m.progress().errors.retriedByCode?.CLUSTERDOWN ?? 0) > 0, 'Ferry saw and retried CLUSTERDOWN');
    } finally {
      m.stop();
      await running.catch(() => undefined);
      await source.stop();
      await target.stop();
    }
  });

  it('a source that goes silent in the replica handshake fails within the source timeout, naming the stage and the peer', async () => {
    // Answers Ferry's probes, then nothing from the replica link's first PING on.
    const fake = await fakeServer((name) => name === 'PING');
    const target = await startRedis();
    try {
      const m = new Migration({ source: { host: '127.0.0.1', port: fake.port }, target: { host: target.host, port: target.port }, method: 'full', logger, sourceTimeoutMs: 500 });
      const outcome = await Promise.race([m.run().then(() => 'done', (e: Error) => e.message), new Promise<string>((r) => setTimeout(() => r('still waiting after 10 s'), 10_000))]);
      assert.match(outcome, new RegExp(`^source 127\\.0\\.0\\.1:${fake.port}: no data for 500 ms during the handshake`));
    } finally {
      fake.close();
      await target.stop();
    }
  });

  it('a source that accepts and never answers at all fails in discovery within the timeout, naming it', async () => {
    const fake = await fakeServer(() => true);
    const target = await startRedis();
    try {
      const m = new Migration({ source: { host: '127.0.0.1', port: fake.port }, target: { host: target.host, port: target.port }, method: 'full', logger, sourceTimeoutMs: 500 });
      const outcome = await Promise.race([m.run().then(() => 'done', (e: Error) => e.message), new Promise<string>((r) => setTimeout(() => r('still waiting after 10 s'), 10_000))]);
      assert.match(outcome, new RegExp(`no reply from 127\\.0\\.0\\.1:${fake.port} within 500 ms`));
    } finally {
      fake.close();
      await target.stop();
    }
  });

  it('a source that goes silent in the command stream fails within the source timeout (no PING for 500 ms)', async () => {
    // A fake master: handshake, an empty snapshot, then nothing at all (a real one PINGs every 10 s).
    const rdb = Buffer.from('REDIS0003\xff', 'latin1');
    const sockets: net.Socket[] = [];
    const fake = net.createServer((socket) => {
      sockets.push(socket);
      let synced = false;
      socket.on('data', (d) => {
        if (synced) return; // after the snapshot: silence (a real master PINGs every 10 s)
        for (const m of d.toString('latin1').matchAll(/\*\d+\r\n\$\d+\r\n([A-Za-z]+)/g)) {
          const name = m[1]!.toUpperCase();
          if (name === 'PSYNC') {
            synced = true;
            socket.write(Buffer.concat([Buffer.from(`+FULLRESYNC ${'d'.repeat(40)} 0\r\n$${rdb.length}\r\n`), rdb]));
            return;
          }
          if (name === 'INFO') {
            const info = 'redis_version:7.0.15\r\nrole:master\r\ncluster_enabled:0\r\n';
            socket.write(`$${info.length}\r\n${info}\r\n`);
          } else socket.write(name === 'PING' ? '+PONG\r\n' : '+OK\r\n');
        }
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const port = (fake.address() as net.AddressInfo).port;
    const target = await startRedis();
    try {
      const m = new Migration({ source: { host: '127.0.0.1', port }, target: { host: target.host, port: target.port }, method: 'incremental', logger, sourceTimeoutMs: 500 });
      const outcome = await Promise.race([m.run().then(() => 'done', (e: Error) => e.message), new Promise<string>((r) => setTimeout(() => r('still waiting after 10 s'), 10_000))]);
      assert.match(outcome, new RegExp(`source 127\\.0\\.0\\.1:${port}: no data for 500 ms during the command stream`));
    } finally {
      for (const s of sockets) s.destroy();
      fake.close();
      await target.stop();
    }
  });

  it('a target that stops answering fails within the reply timeout, naming it', async () => {
    // Answers the handshake and the version probe, then nothing from the first snapshot write on: a hung server.
    const fake = await fakeServer((name) => name === 'RESTORE');
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    try {
      for (let i = 0; i < 100; i++) await source.client().set(`k${i}`, 'v');
      const m = new Migration({ source: { host: source.host, port: source.port }, target: { host: '127.0.0.1', port: fake.port }, method: 'full', logger, targetReplyTimeoutMs: 500, targetConflict: 'replace' });
      const outcome = await Promise.race([m.run().then(() => 'done', (e: Error) => e.message), new Promise<string>((r) => setTimeout(() => r('still waiting after 15 s'), 15_000))]);
      assert.match(outcome, new RegExp(`no reply from 127\\.0\\.0\\.1:${fake.port} within 500 ms`));
    } finally {
      fake.close();
      await source.stop();
    }
  });

  it('warns at the start when the source backlog holds less than a minute of its writes, naming the setting', async () => {
    const source = await startRedis({ config: { 'repl-backlog-size': '16kb', 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const lines: string[] = [];
    const captured = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const m = new Migration({ source: { host: source.host, port: source.port }, target: { host: target.host, port: target.port }, method: 'incremental', logger: captured, pollIntervalMs: 100 });
    const running = m.run();
    const load = pipelinedLoad(source, { clients: 2, burst: 50, pauseMs: 10 });
    try {
      await until('the backlog warning', () => lines.find((l) => l.includes('repl-backlog-size')), 15_000);
      const warning = JSON.parse(lines.find((l) => l.includes('repl-backlog-size'))!) as { msg: string; seconds: number };
      assert.match(warning.msg, /holds only [\d.]+ s of its writes .* raise repl-backlog-size to \d+mb or more/);
      assert.ok(warning.seconds < 60);
    } finally {
      await load.stop();
      m.stop();
      await running.catch(() => undefined);
      await source.stop();
      await target.stop();
    }
  });

  it("rebuilds a big key named with a '}' and no hash tag (user}42) in its own slot on a cluster target: no CROSSSLOT, no temporary left", async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startCluster({ masters: 3 });
    try {
      const c = source.client();
      const fields: string[] = [];
      for (let i = 0; i < 3000; i++) fields.push(`f${i}`, `value-${i}`);
      await c.hset('user}42', ...fields);
      await c.rpush('a}b{', ...Array.from({ length: 2000 }, (_v, i) => `e${i}`));
      await c.set('plain', 'x');
      // A tiny payload limit sends both keys down the rebuild path (type commands, temporary key, RENAME).
      const m = new Migration({ source: { host: source.host, port: source.port }, target: target.addrs.split(',').map((a) => ({ host: '127.0.0.1', port: Number(a.split(':')[1]) })), method: 'full', logger, maxPayloadBytes: 1024 });
      const result = await m.run();
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
      assert.equal(result.snapshot.rewritten, 2);
      const diffs = await compareClusters(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      for (const master of await target.masters()) {
        const left = await master.client().keys('*__ferry_tmp__*');
        assert.deepEqual(left, [], `temporary keys left on ${master.addr}`);
      }
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('--checkpoint refuses glob characters, and keeps a non-ASCII name readable on the target', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startCluster({ masters: 3 });
    try {
      const bad = ferryCli(['--source', source.addr, '--target', target.addrs, '--method', 'incremental', '--checkpoint', 'job*']);
      assert.equal(await bad.exited, 1);
      assert.match(bad.output(), /invalid checkpoint name "__ferry:checkpoint:job\*": it must not contain \* \? \[ \] or \\/);

      const name = 'перенос-1';
      const run = ferryCli(['--source', source.addr, '--target', target.addrs, '--method', 'incremental', '--checkpoint', name, '--resume', 'auto']);
      try {
        await until('incremental', () => run.latest()?.phase === 'incremental');
        for (let i = 0; i < 50; i++) await source.client().incr(`n${i % 7}`);
        await caughtUp(run.latest, source);
        const floorKey = `__ferry:checkpoint:${name}:0:floor`;
        const found = await until('the floor checkpoint under its UTF-8 name', async () => (await target.client().exists(floorKey)) === 1);
        assert.equal(found, true);
      } finally {
        run.child.kill('SIGTERM');
        await run.exited;
      }
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
