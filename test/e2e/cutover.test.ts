/**
 * Cutover (issue 14): ExchangeInstanceIp and RollbackExchangeInstanceIp through the service, on
 * real servers, under a live load whose clients follow the hook (a killed connection is retried
 * where the hook pointed). Exchange then rollback with writes both ways; a failing hook and a
 * drain timeout that change nothing for clients; a cluster source and target.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { startCluster, type RedisCluster } from '../helpers/redis-cluster.js';
import { sdkClient, startService, type SdkError, type SdkResponse, type Service } from '../helpers/service.js';
import { compareServers, formatDifferences, type Difference } from '../helpers/compare.js';
import { compareClusters } from '../helpers/compare-cluster.js';
import { abortableLoad, type AbortableLoadResult } from '../helpers/load.js';
import { cliPath } from '../helpers/run-cli.js';
import { spawn } from 'node:child_process';

const PROJECT = '0123456789abcdef0123456789abcdef';
const AK = 'FERRYCUTOVERAK000001';
const SK = 'ferry-cutover-secret-key-000000000000001';
type Client = ReturnType<typeof sdkClient>;

function ok(r: SdkResponse | SdkError): SdkResponse {
  if (!('httpStatusCode' in r) || r.httpStatusCode >= 400) assert.fail(`expected success, got ${JSON.stringify(r)}`);
  return r as SdkResponse;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function show(client: Client, taskId: string): Promise<SdkResponse> {
  return ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } }));
}

async function logs(client: Client, taskId: string): Promise<string[]> {
  const r = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/logs', { pathParams: { task_id: taskId }, query: { limit: 1000 } }));
  return (r.migration_logs as { message: string }[]).map((l) => l.message);
}

interface CutoverView {
  direction: string;
  task_status: string;
  last: { action: string; ok: boolean; pause_ms: number | null; drain_ms: number | null; error: string | null; hook: { ok: boolean; detail: string } | null } | null;
}

/** Waits until the task has synced (INCRMIGEATING, lag 0). */
async function inSync(client: Client, taskId: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const t = await show(client, taskId);
    if (t.status === 'INCRMIGEATING') {
      const s = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/stats', { pathParams: { task_id: taskId } }));
      if (s.offset === '0') return;
    }
    await sleep(100);
  }
  assert.fail(`task ${taskId} did not get in sync: ${JSON.stringify(await show(client, taskId))}`);
}

/** Requests a switch (204) and waits for its outcome (the `last` switch of that action after the request). */
async function switchOver(client: Client, taskId: string, action: 'exchange' | 'rollback', body?: unknown): Promise<CutoverView> {
  const before = JSON.stringify(((await show(client, taskId)).cutover as CutoverView).last);
  const r = await client.call('POST', `/v2/{project_id}/migration-task/{task_id}/${action === 'exchange' ? 'exchange-ip' : 'rollback-ip'}`, { pathParams: { task_id: taskId }, ...(body ? { data: body } : {}) });
  assert.equal(r.httpStatusCode, 204, JSON.stringify(r));
  const during = (await show(client, taskId)).cutover as CutoverView;
  assert.ok(['EXCHANGING', 'ROLLING_BACK', 'EXCHANGE_SUCCESS', 'ROLLBACK_SUCCESS', ''].includes(during.task_status));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const c = (await show(client, taskId)).cutover as CutoverView;
    if (c.task_status !== 'EXCHANGING' && c.task_status !== 'ROLLING_BACK' && JSON.stringify(c.last) !== before) return c;
    await sleep(50);
  }
  assert.fail(`the ${action} did not finish`);
}

/**
 * Clients that go where the hook says: one connection per side, no reconnect and no resend
 * (a write killed at the switch must not be replayed on the old side); the next write after a
 * lost connection opens one to the current side.
 */
class MovableClients {
  private readonly connections = new Map<string, Redis>();
  constructor(public where: { host: string; port: number }) {}
  client = (): Redis => {
    const key = `${this.where.host}:${this.where.port}`;
    let c = this.connections.get(key);
    if (!c || c.status === 'end' || c.status === 'close') {
      c = new Redis({ host: this.where.host, port: this.where.port, retryStrategy: () => null, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 0 });
      c.on('error', () => undefined);
      this.connections.set(key, c);
    }
    return c;
  };
  close(): void {
    for (const c of this.connections.values()) c.disconnect();
  }
}

/**
 * A live load (pipelined non-commutative pairs) plus an INCR per acknowledgement, so that "no
 * acknowledged write lost, none applied twice" is checked by one number, and the longest time
 * one write waited (the write pause as clients see it).
 */
function liveLoad(clients: MovableClients): { stop(): Promise<{ load: AbortableLoadResult; acked: number; longestWaitMs: number }> } {
  const abort = new AbortController();
  const load = abortableLoad({ client: clients.client, connections: 3, batch: 20, prefix: 'load:', signal: abort.signal, maxMs: 60_000, pauseMs: 5 });
  let acked = 0;
  let longestWaitMs = 0;
  const counter = (async () => {
    while (!abort.signal.aborted) {
      const started = Date.now();
      try {
        await clients.client().incr('acked');
        acked++;
      } catch {
        await sleep(10);
      }
      longestWaitMs = Math.max(longestWaitMs, Date.now() - started);
    }
  })();
  let stopped: Promise<{ load: AbortableLoadResult; acked: number; longestWaitMs: number }> | null = null;
  return {
    // Idempotent: the tests' finally blocks stop it too, so a failed assertion leaves nothing running.
    stop() {
      abort.abort();
      stopped ??= Promise.all([load, counter]).then(([l]) => ({ load: l, acked, longestWaitMs }));
      return stopped;
    },
  };
}

/** The task worker among the service's children (the service runs one task at a time here). */
function workerOf(servicePid: number, allowNone = false): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === servicePid && /tasks\/worker\.js/.test(readFileSync(`/proc/${entry}/cmdline`, 'utf8'))) return Number(entry);
    } catch {
      /* gone meanwhile */
    }
  }
  if (allowNone) return -1;
  assert.fail('no worker process found');
}

const withoutCheckpoints = (d: Difference[]): Difference[] => d.filter((x) => !x.key.startsWith('__ferry:'));

async function converges(from: RedisServer, to: RedisServer, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let diffs: Difference[] = [];
  while (Date.now() < deadline) {
    diffs = withoutCheckpoints(await compareServers(from, to));
    if (diffs.length === 0) return;
    await sleep(200);
  }
  assert.fail(`${to.addr} did not converge to ${from.addr}: ${diffs.length} differences\n${formatDifferences(diffs)}`);
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`never: ${what}`);
}

describe('cutover: ExchangeInstanceIp and RollbackExchangeInstanceIp', () => {
  let service: Service;
  let client: Client;
  let dir: string;
  let hookServer: http.Server;
  let hookPort = 0;
  const hookCalls: { action: string; from_addrs: string; to_addrs: string; exchanged_ip: string[]; is_exchange_domain: boolean }[] = [];
  /** Where the URL hook sends the clients (set per test). */
  let movable: MovableClients | null = null;
  let sides: Record<string, { host: string; port: number }> = {};
  let failingHook = '';
  let failingLog = '';

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-cutover-'));
    failingLog = path.join(dir, 'failing.log');
    failingHook = path.join(dir, 'failing-hook.sh');
    writeFileSync(failingHook, `#!/bin/sh\necho "$FERRY_ACTION $FERRY_TASK_ID" >> ${failingLog}\necho "no route to the new side"\nexit 3\n`);
    chmodSync(failingHook, 0o755);
    hookServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const call = JSON.parse(body) as (typeof hookCalls)[number];
        hookCalls.push(call);
        const to = sides[call.to_addrs];
        if (movable && to) movable.where = to;
        res.writeHead(to ? 200 : 500).end(to ? 'moved' : 'unknown side');
      });
    });
    await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
    hookPort = (hookServer.address() as { port: number }).port;
    service = await startService({
      credentials: [{ ak: AK, sk: SK, projectId: PROJECT }],
      addressPolicy: 'any',
      cutover: { allowedHookCommands: [failingHook], drainTimeoutSeconds: 3, pauseTimeoutSeconds: 5 },
    } as never);
    client = sdkClient(service.endpoint, AK, SK, PROJECT);
  });

  after(async () => {
    await service?.stop();
    service?.cleanup();
    hookServer?.close();
    rmSync(dir, { recursive: true, force: true });
    await stopAll();
  });

  async function startTask(name: string, sourceAddrs: string, targetAddrs: string, hook: unknown): Promise<string> {
    const created = ok(await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name } }));
    const taskId = String(created.instance_id);
    ok(
      await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
        pathParams: { task_id: taskId },
        data: { migration_method: 'incremental_migration', resume_mode: 'auto', source_instance: { addrs: sourceAddrs }, target_instance: { addrs: targetAddrs }, switch_hook: hook },
      }),
    );
    return taskId;
  }

  it('exchange under live load, then rollback: the hook runs once each way, writes pause for well under 1 s, writes on each side reach the other, 0 differences, no acknowledged write lost', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    sides = { [source.addr]: { host: '127.0.0.1', port: source.port }, [target.addr]: { host: '127.0.0.1', port: target.port } };
    const clients = new MovableClients(sides[source.addr]!);
    movable = clients;
    let load: ReturnType<typeof liveLoad> | null = null;
    try {
      const p = source.client().pipeline();
      for (let i = 0; i < 2000; i++) p.set(`seed:${i}`, `v${i}`).expire(`seed:${i}`, 3600);
      await p.exec();
      const taskId = await startTask('cutover', source.addr, target.addr, { url: `http://127.0.0.1:${hookPort}/switch`, timeout_seconds: 5 });
      await inSync(client, taskId);
      load = liveLoad(clients);
      await sleep(800);

      const exchanged = await switchOver(client, taskId, 'exchange', { exchanged_ip: ['10.0.0.1'], is_exchange_domain: false });
      assert.equal(exchanged.task_status, 'EXCHANGE_SUCCESS', JSON.stringify(exchanged));
      assert.equal(exchanged.direction, 'reverse');
      assert.equal(hookCalls.length, 1, 'the hook ran once');
      assert.deepEqual(hookCalls[0], { action: 'exchange', task_id: taskId, from_addrs: source.addr, to_addrs: target.addr, exchanged_ip: ['10.0.0.1'], is_exchange_domain: false } as never);
      const pauseMs = exchanged.last!.pause_ms!;
      console.log(`# exchange under load: writes paused ${pauseMs} ms (drain ${exchanged.last!.drain_ms} ms)`);
      assert.ok(pauseMs < 1000, `writes paused ${pauseMs} ms`);
      const t = await show(client, taskId);
      assert.equal(t.status, 'INCRMIGEATING');
      assert.equal(t.task_status, 'EXCHANGE_SUCCESS');

      // The clients write on the target now; the reverse sync takes it to the source.
      await sleep(800);
      await target.client().set('written:on-target', 'after-exchange');
      await eventually('a write on the target reaches the source', async () => (await source.client().get('written:on-target')) === 'after-exchange');

      const rolledBack = await switchOver(client, taskId, 'rollback');
      assert.equal(rolledBack.task_status, 'ROLLBACK_SUCCESS', JSON.stringify(rolledBack));
      assert.equal(rolledBack.direction, 'forward');
      assert.equal(hookCalls.length, 2);
      assert.equal(hookCalls[1]!.action, 'rollback');
      assert.equal(hookCalls[1]!.to_addrs, source.addr);
      console.log(`# rollback under load: writes paused ${rolledBack.last!.pause_ms} ms`);
      assert.ok(rolledBack.last!.pause_ms! < 1000, `writes paused ${rolledBack.last!.pause_ms} ms`);
      assert.equal((await show(client, taskId)).status, 'INCRMIGEATING');
      await sleep(800);
      const { load: l, acked, longestWaitMs } = await load.stop();
      assert.ok(l.pipelines > 50, `the load ran (${l.pipelines} pipelines)`);
      console.log(`# longest wait of one client write across both switches: ${longestWaitMs} ms`);

      // Back on the source: its writes reach the target again.
      await source.client().set('written:on-source', 'after-rollback');
      await converges(source, target);
      assert.equal(Number(await source.client().get('acked')), acked, 'every acknowledged INCR is on the source, once');
      assert.equal(Number(await target.client().get('acked')), acked, 'and on the target');
      assert.equal(await target.client().get('written:on-target'), 'after-exchange');
      assert.ok((await logs(client, taskId)).some((m) => /exchange succeeded: writes paused \d+ ms/.test(m)));
      ok(await client.call('POST', '/v2/{project_id}/migration-task/batch-stop', { data: { migration_tasks: [taskId] } }));
    } finally {
      await load?.stop();
      movable = null;
      clients.close();
      await source.stop();
      await target.stop();
    }
  });

  it('a failing hook and a drain timeout: writes resume within the timeout, status INCRMIGEATING, the hook output in the task log, nothing lost', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const clients = new MovableClients({ host: '127.0.0.1', port: source.port });
    let load: ReturnType<typeof liveLoad> | null = null;
    try {
      await source.client().set('seed', '1');
      const taskId = await startTask('failing', source.addr, target.addr, { command: failingHook, timeout_seconds: 5 });
      await inSync(client, taskId);
      // Not an allowed command: refused when configuring.
      const created = ok(await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name: 'refused-hook' } }));
      const refused = await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
        pathParams: { task_id: String(created.instance_id) },
        data: { migration_method: 'incremental_migration', resume_mode: 'auto', source_instance: { addrs: source.addr }, target_instance: { addrs: target.addr }, switch_hook: { command: '/bin/true' } },
      });
      assert.equal(refused.httpStatusCode, 400);
      assert.match(String((refused as SdkError).errorMsg), /switch_hook\.command/);

      load = liveLoad(clients);
      await sleep(500);
      const failed = await switchOver(client, taskId, 'exchange');
      assert.equal(failed.task_status, '');
      assert.equal(failed.direction, 'forward');
      assert.equal(failed.last!.ok, false);
      assert.match(failed.last!.error!, /hook failed \(exit code 3\)/);
      assert.equal(readFileSync(failingLog, 'utf8').trim(), `exchange ${taskId}`, 'the hook ran once');
      assert.equal((await show(client, taskId)).status, 'INCRMIGEATING');
      const messages = await logs(client, taskId);
      assert.ok(messages.some((m) => /no route to the new side/.test(m)), 'the hook output is in the task log');
      assert.ok(messages.some((m) => /exchange failed, clients stay where they were/.test(m)));

      // Drain timeout: the target holds Ferry's writes back, so the target cannot catch up.
      await target.client().call('CLIENT', 'PAUSE', '8000', 'WRITE');
      await sleep(300);
      // (Another body than the first request's: a signed request repeated within its second is a replay.)
      const timedOut = await switchOver(client, taskId, 'exchange', { exchanged_ip: ['10.0.0.2'] });
      await target.client().call('CLIENT', 'UNPAUSE');
      assert.equal(timedOut.last!.ok, false);
      assert.match(timedOut.last!.error!, /drain timeout/);
      assert.equal(timedOut.last!.hook, null, 'the hook did not run');
      assert.ok(timedOut.last!.pause_ms! < 3800, `writes paused ${timedOut.last!.pause_ms} ms (drain timeout 3 s)`);
      assert.equal(readFileSync(failingLog, 'utf8').trim().split('\n').length, 1);
      assert.equal((await show(client, taskId)).status, 'INCRMIGEATING');
      await sleep(300);
      const { acked, longestWaitMs } = await load.stop();
      console.log(`# failing hook and drain timeout: longest wait of one client write ${longestWaitMs} ms`);
      assert.ok(longestWaitMs < 4000, `a client waited ${longestWaitMs} ms (drain timeout 3 s)`);
      await converges(source, target);
      assert.equal(Number(await target.client().get('acked')), acked);
      assert.ok(existsSync(failingLog));
      ok(await client.call('POST', '/v2/{project_id}/migration-task/batch-stop', { data: { migration_tasks: [taskId] } }));
    } finally {
      await load?.stop();
      await target.client().call('CLIENT', 'UNPAUSE').catch(() => undefined);
      clients.close();
      await source.stop();
      await target.stop();
    }
  });

  it('a worker killed after the exchange: the task restarts in the reverse direction from where it stood, nothing replayed twice, and can still roll back', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    sides = { [source.addr]: { host: '127.0.0.1', port: source.port }, [target.addr]: { host: '127.0.0.1', port: target.port } };
    try {
      await source.client().set('counter', '0');
      const taskId = await startTask('crash', source.addr, target.addr, { url: `http://127.0.0.1:${hookPort}/switch` });
      await inSync(client, taskId);
      const exchanged = await switchOver(client, taskId, 'exchange');
      assert.equal(exchanged.task_status, 'EXCHANGE_SUCCESS', JSON.stringify(exchanged));
      for (let i = 0; i < 50; i++) await target.client().incr('counter');
      await eventually('the reverse sync applied the first writes', async () => (await source.client().get('counter')) === '50');
      const worker = workerOf(service.pid());
      process.kill(worker, 'SIGKILL');
      for (let i = 0; i < 50; i++) await target.client().incr('counter');
      await eventually('a new worker runs the reverse sync and catches up', async () => workerOf(service.pid(), true) !== worker && (await source.client().get('counter')) === '100', 20_000);
      await sleep(500);
      assert.equal(await source.client().get('counter'), '100', 'no write applied twice');
      const t = await show(client, taskId);
      assert.equal(t.task_status, 'EXCHANGE_SUCCESS');
      assert.equal((t.cutover as CutoverView).direction, 'reverse');
      await eventually('INCRMIGEATING again', async () => (await show(client, taskId)).status === 'INCRMIGEATING', 20_000);
      const rolledBack = await switchOver(client, taskId, 'rollback');
      assert.equal(rolledBack.task_status, 'ROLLBACK_SUCCESS', JSON.stringify(rolledBack));
      await source.client().incr('counter');
      await eventually('forward again', async () => (await target.client().get('counter')) === '101');
      ok(await client.call('POST', '/v2/{project_id}/migration-task/batch-stop', { data: { migration_tasks: [taskId] } }));
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('a cluster source and a cluster target: every master paused and drained; writes in every slot range go back and forth', async () => {
    const sourceCluster: RedisCluster = await startCluster({ masters: 3 });
    const targetCluster: RedisCluster = await startCluster({ masters: 3 });
    try {
      const sc = sourceCluster.client();
      for (let i = 0; i < 300; i++) await sc.set(`c:${i}`, `v${i}`);
      sides = { [targetCluster.addrs]: { host: '127.0.0.1', port: targetCluster.nodes[0]!.port }, [sourceCluster.addrs]: { host: '127.0.0.1', port: sourceCluster.nodes[0]!.port } };
      const taskId = await startTask('cluster', sourceCluster.addrs, targetCluster.addrs, { url: `http://127.0.0.1:${hookPort}/switch` });
      await inSync(client, taskId, 60_000);
      for (let i = 300; i < 400; i++) await sc.set(`c:${i}`, `v${i}`);
      const calls = hookCalls.length;
      const exchanged = await switchOver(client, taskId, 'exchange');
      assert.equal(exchanged.task_status, 'EXCHANGE_SUCCESS', JSON.stringify(exchanged));
      assert.equal(hookCalls.length, calls + 1);
      console.log(`# cluster exchange (3 masters): writes paused ${exchanged.last!.pause_ms} ms`);
      assert.ok(exchanged.last!.pause_ms! < 1000);
      assert.deepEqual(withoutCheckpoints(await compareClusters(sourceCluster, targetCluster)), []);
      const tc = targetCluster.client();
      for (let i = 0; i < 100; i++) await tc.set(`back:${i}`, `t${i}`);
      await eventually('writes on every target master reach the source', async () => (await Promise.all(Array.from({ length: 100 }, (_, i) => sc.get(`back:${i}`)))).every((v, i) => v === `t${i}`), 15_000);
      const rolledBack = await switchOver(client, taskId, 'rollback');
      assert.equal(rolledBack.task_status, 'ROLLBACK_SUCCESS', JSON.stringify(rolledBack));
      for (let i = 0; i < 100; i++) await sc.set(`forth:${i}`, `s${i}`);
      await eventually('writes on the source reach the target again', async () => (await Promise.all(Array.from({ length: 100 }, (_, i) => tc.get(`forth:${i}`)))).every((v, i) => v === `s${i}`), 15_000);
      assert.deepEqual(withoutCheckpoints(await compareClusters(sourceCluster, targetCluster)), []);
      ok(await client.call('POST', '/v2/{project_id}/migration-task/batch-stop', { data: { migration_tasks: [taskId] } }));
    } finally {
      await sourceCluster.stop();
      await targetCluster.stop();
    }
  });
});

describe('ferry migrate --cutover-hook', () => {
  after(stopAll);

  it('exchanges once in sync (the hook runs once, without a shell), then keeps syncing target -> source until interrupted', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-cutover-cli-'));
    try {
      for (let i = 0; i < 500; i++) await source.client().set(`k${i}`, `v${i}`);
      const hookLog = path.join(dir, 'hook.log');
      const hook = path.join(dir, 'hook.sh');
      // $0 is the script: a shell would have expanded the argument-less command just the same,
      // but FERRY_* come only from the environment Ferry gives it.
      writeFileSync(hook, `#!/bin/sh\necho "$FERRY_ACTION $FERRY_FROM_ADDRS $FERRY_TO_ADDRS \${HOME:+home}" >> ${hookLog}\n`);
      chmodSync(hook, 0o755);
      const child = spawn(process.execPath, [cliPath, 'migrate', '--source', source.addr, '--target', target.addr, '--method', 'incremental', '--until-synced', '--cutover-hook', hook, '--target-conflict', 'replace'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      try {
        await eventually('the hook ran', async () => existsSync(hookLog), 30_000);
        await eventually('the CLI reports the cutover', async () => /cutover done/.test(stderr), 10_000);
        assert.equal(readFileSync(hookLog, 'utf8').trim(), `exchange ${source.addr} ${target.addr} home`);
        const pause = Number(/writes paused (\d+) ms/.exec(stderr)?.[1]);
        console.log(`# CLI exchange: writes paused ${pause} ms`);
        assert.ok(pause < 1000);
        await target.client().set('from-target', 'yes');
        await target.client().del('k1');
        await eventually('the reverse sync carries target writes to the source', async () => (await source.client().get('from-target')) === 'yes' && (await source.client().exists('k1')) === 0);
      } finally {
        child.kill('SIGINT');
      }
      assert.equal(await exited, 0, stderr);
      assert.deepEqual(withoutCheckpoints(await compareServers(target, source)), []);
      assert.equal(readFileSync(hookLog, 'utf8').trim().split('\n').length, 1, 'the hook ran once');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await source.stop();
      await target.stop();
    }
  });
});
