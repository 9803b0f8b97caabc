/**
 * Several Ferry nodes on one PostgreSQL database (issue 13): three nodes started at once (the
 * migrations run once), incremental tasks spread over them under live non-idempotent load; one
 * node killed with SIGKILL: its tasks move to the others within 20 s and resume by PSYNC (no
 * full resync), 0 differences; a node paused with SIGSTOP past its lease: its workers stop
 * themselves, and once resumed it writes nothing (fencing), 0 differences; concurrent API calls
 * on different nodes for one task (stop on one, update on another, delete on a third).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { sdkClient, startService, type SdkError, type SdkResponse, type Service } from '../helpers/service.js';
import { compareServers, formatDifferences, type Difference } from '../helpers/compare.js';
import { pipelinedLoad, type PipelinedLoad } from '../helpers/load.js';
import { newSchema, pgSkip, pgUrl } from '../helpers/postgres.js';

const PROJECT = '0123456789abcdef0123456789abcdef';
const AK = 'FERRYSCALEAK00000001';
const SK = 'ferry-scale-secret-key-00000000000000001';
const LEASE_SECONDS = 4;
const TASKS = 6;

type Client = ReturnType<typeof sdkClient>;
interface NodeView {
  id: string;
  listen: string;
  heartbeat_at: string;
  self: boolean;
  tasks: string[];
}

function ok(r: SdkResponse | SdkError): SdkResponse {
  if (!('httpStatusCode' in r) || r.httpStatusCode >= 400) assert.fail(`expected success, got ${JSON.stringify(r)}`);
  return r as SdkResponse;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function show(client: Client, taskId: string): Promise<SdkResponse> {
  return ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } }));
}

async function waitForStatus(client: Client, taskId: string, wanted: string[], timeoutMs = 60_000): Promise<SdkResponse> {
  const deadline = Date.now() + timeoutMs;
  let last: SdkResponse | null = null;
  while (Date.now() < deadline) {
    last = await show(client, taskId);
    if (wanted.includes(String(last.status))) return last;
    await sleep(100);
  }
  assert.fail(`task ${taskId} never reached ${wanted.join('/')}: ${JSON.stringify(last)}`);
}

async function nodes(client: Client): Promise<NodeView[]> {
  return ok(await client.call('GET', '/v2/{project_id}/nodes')).nodes as NodeView[];
}

/** Waits until `check` holds for the nodes listing; fails with the last listing. */
async function waitForNodes(client: Client, what: string, check: (n: NodeView[]) => boolean, timeoutMs: number): Promise<NodeView[]> {
  const deadline = Date.now() + timeoutMs;
  let last: NodeView[] = [];
  while (Date.now() < deadline) {
    last = await nodes(client);
    if (check(last)) return last;
    await sleep(100);
  }
  assert.fail(`${what} within ${timeoutMs} ms: ${JSON.stringify(last)}`);
}

async function converges(source: RedisServer, target: RedisServer, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let diffs: Difference[] = [];
  while (Date.now() < deadline) {
    diffs = (await compareServers(source, target)).filter((d) => !d.key.startsWith('__ferry:checkpoint'));
    if (diffs.length === 0) return;
    await sleep(250);
  }
  assert.fail(`the target did not converge: ${diffs.length} differences\n${formatDifferences(diffs)}`);
}

/** Every task's log, for a failure message. */
async function taskLogs(client: Client, ids: string[]): Promise<string> {
  const out: string[] = [];
  for (const id of ids) {
    const logs = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/logs', { pathParams: { task_id: id }, query: { offset: 0, limit: 200 } }));
    out.push(`${id}: ${(logs.migration_logs as { created_at: string; message: string }[]).map((l) => `${l.created_at.slice(11, 23)} ${l.message}`).join(' | ')}`);
  }
  return out.join('\n');
}

/** Full resyncs the source has served (INFO stats sync_full). */
async function fullSyncs(source: RedisServer): Promise<number> {
  const info = await source.client().info('stats');
  return Number(/sync_full:(\d+)/.exec(info)?.[1] ?? NaN);
}

/** Child processes of `pid` that are still running (not exited, not zombies). */
function liveChildren(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') out.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

describe('several nodes on one PostgreSQL database', { skip: pgSkip }, () => {
  const services: Service[] = [];
  const clients: Client[] = [];
  const sources: RedisServer[] = [];
  const targets: RedisServer[] = [];
  const taskIds: string[] = [];
  let keyDir: string;
  let loads: PipelinedLoad[] = [];

  before(async () => {
    keyDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-scale-key-'));
    const schema = newSchema();
    const config = (id: string) => ({
      credentials: [{ ak: AK, sk: SK, projectId: PROJECT }],
      addressPolicy: 'any',
      store: { postgres: pgUrl, schema },
      node: { id, capacity: 4, leaseSeconds: LEASE_SECONDS },
      // One key for every node: a password sealed by one opens on the others.
      secretKeyFile: path.join(keyDir, 'secret.key'),
    });
    // All three at once: the schema migrations must run once, under the advisory lock.
    services.push(...(await Promise.all(['n1', 'n2', 'n3'].map((id) => startService(config(id))))));
    for (const s of services) clients.push(sdkClient(s.endpoint, AK, SK, PROJECT));
    for (let i = 0; i < 2; i++) sources.push(await startRedis({ config: { 'repl-backlog-size': '64mb', 'repl-diskless-sync-delay': '0' } }));
    for (let i = 0; i < TASKS; i++) targets.push(await startRedis());
  });

  after(async () => {
    await Promise.all(loads.map((l) => l.stop()));
    for (const s of services) {
      try {
        process.kill(s.pid(), 'SIGCONT');
      } catch {
        /* gone */
      }
      await s.stop();
      s.cleanup();
    }
    rmSync(keyDir, { recursive: true, force: true });
    await stopAll();
  });

  it(`spreads ${TASKS} incremental tasks over three nodes; SIGKILL of one: its tasks move to the others within 20 s, resume without a full resync, 0 differences`, async () => {
    for (const [i, s] of sources.entries()) {
      const p = s.client().pipeline();
      for (let k = 0; k < 2000; k++) p.set(`seed:${i}:${k}`, randomBytes(64));
      await p.exec();
    }
    // Created and configured round-robin on the three nodes' APIs.
    for (let i = 0; i < TASKS; i++) {
      const client = clients[i % 3]!;
      const created = ok(await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name: `scale-${i}` } }));
      const taskId = String(created.instance_id);
      taskIds.push(taskId);
      ok(
        await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
          pathParams: { task_id: taskId },
          data: { migration_method: 'incremental_migration', resume_mode: 'auto', source_instance: { addrs: sources[i % 2]!.addr }, target_instance: { addrs: targets[i]!.addr } },
        }),
      );
    }
    for (const id of taskIds) await waitForStatus(clients[0]!, id, ['INCRMIGEATING']);
    const spread = await waitForNodes(clients[1]!, 'every task held, two per node', (n) => n.length === 3 && n.every((x) => x.tasks.length === 2), 10_000);
    assert.deepEqual(spread.map((n) => n.id), ['n1', 'n2', 'n3']);
    assert.equal(spread.filter((n) => n.self).map((n) => n.id).join(), 'n2', 'the answering node says which it is');
    assert.ok(spread.every((n) => /^127\.0\.0\.1:\d+$/.test(n.listen) && !Number.isNaN(Date.parse(n.heartbeat_at))));
    const fullBefore = (await Promise.all(sources.map(fullSyncs))).reduce((a, b) => a + b, 0);
    assert.equal(fullBefore, TASKS, `one full sync per task so far\n${await taskLogs(clients[1]!, taskIds)}`);

    loads = sources.map((s) => pipelinedLoad(s, { clients: 2, burst: 60, pauseMs: 10 }));
    await sleep(1500);
    const victim = spread.find((n) => n.id === 'n1')!;
    const killedAt = Date.now();
    await services[0]!.kill9();
    const moved = await waitForNodes(
      clients[1]!,
      "n1's tasks taken over by n2 and n3",
      (n) => n.every((x) => x.id !== 'n1') && n.flatMap((x) => x.tasks).length === TASKS && victim.tasks.every((t) => n.some((x) => x.tasks.includes(t))),
      20_000,
    );
    const tookMs = Date.now() - killedAt;
    assert.ok(tookMs < 20_000, `taken over in ${tookMs} ms`);
    assert.deepEqual(moved.map((n) => n.tasks.length).sort(), [3, 3], 'balanced over the two left');
    for (const id of taskIds) await waitForStatus(clients[2]!, id, ['INCRMIGEATING'], 20_000);
    await sleep(1000); // load keeps running through the takeover and after it
    await Promise.all(loads.map((l) => l.stop()));
    loads = [];
    for (let i = 0; i < TASKS; i++) await converges(sources[i % 2]!, targets[i]!);
    const fullAfter = (await Promise.all(sources.map(fullSyncs))).reduce((a, b) => a + b, 0);
    assert.equal(fullAfter, fullBefore, `the new owners continued by PSYNC from the checkpoints: no full resync\n${await taskLogs(clients[1]!, taskIds)}`);
    for (const id of victim.tasks) {
      const logs = ok(await clients[1]!.call('GET', '/v2/{project_id}/migration-task/{task_id}/logs', { pathParams: { task_id: id }, query: { offset: 0, limit: 200 } }));
      const messages = (logs.migration_logs as { log_code?: string; content?: string }[]).map((l) => JSON.stringify(l));
      assert.ok(messages.some((m) => /took the task over/.test(m)), `the takeover is in the task's log: ${messages.join('\n')}`);
    }
    // The killed node comes back (same id): it holds nothing of what the others took.
    await services[0]!.restart();
    await waitForNodes(clients[0]!, 'n1 back, with no task', (n) => n.length === 3 && n.find((x) => x.id === 'n1')?.tasks.length === 0, 10_000);
  });

  it('a node paused with SIGSTOP past its lease: its workers stop themselves, the others take its tasks; resumed, it writes nothing; 0 differences', async () => {
    const before_ = await nodes(clients[0]!);
    const paused = before_.find((n) => n.id === 'n2')!;
    assert.ok(paused.tasks.length > 0, JSON.stringify(before_));
    const service = services[1]!;
    const pid = service.pid();
    assert.ok(liveChildren(pid).length >= paused.tasks.length, 'its workers run');
    loads = sources.map((s) => pipelinedLoad(s, { clients: 2, burst: 60, pauseMs: 10 }));
    await sleep(1000);
    const fullBefore = (await Promise.all(sources.map(fullSyncs))).reduce((a, b) => a + b, 0);
    process.kill(pid, 'SIGSTOP');
    try {
      // Its workers see no renewal and exit by themselves (the paused node cannot kill them):
      // zombies until it wakes up to reap them.
      const deadline = Date.now() + LEASE_SECONDS * 1000 + 2000;
      while (liveChildren(pid).length > 0 && Date.now() < deadline) await sleep(50);
      assert.deepEqual(liveChildren(pid), [], 'the paused node has no worker still running');
      await waitForNodes(
        clients[0]!,
        "n2's tasks taken over",
        (n) => n.every((x) => x.id !== 'n2') && paused.tasks.every((t) => n.some((x) => x.tasks.includes(t))),
        20_000,
      );
      for (const id of paused.tasks) await waitForStatus(clients[0]!, id, ['INCRMIGEATING'], 20_000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const snapshot = async (): Promise<string[]> =>
      Promise.all(paused.tasks.map(async (id) => {
        const t = await show(clients[2]!, id);
        const logs = ok(await clients[2]!.call('GET', '/v2/{project_id}/migration-task/{task_id}/logs', { pathParams: { task_id: id }, query: { offset: 0, limit: 1 } }));
        return `${t.status} ${logs.log_num}`;
      }));
    const owners = async (): Promise<Map<string, string>> => new Map((await nodes(clients[0]!)).flatMap((n) => n.tasks.map((t) => [t, n.id] as [string, string])));
    const ownersBefore = await owners();
    // Awake again: it learns it lost the leases and writes nothing for those tasks.
    await sleep(LEASE_SECONDS * 1000);
    const ownersAfter = await owners();
    for (const id of paused.tasks) {
      assert.notEqual(ownersAfter.get(id), 'n2', 'n2 did not take the task back');
      assert.equal(ownersAfter.get(id), ownersBefore.get(id), 'the owner did not change again');
    }
    assert.match(service.output(), /lease(s)? (lost|not renewed in time)/, 'n2 noticed it lost its leases');
    assert.ok((await snapshot()).every((s) => s.startsWith('INCRMIGEATING')), 'the tasks run on');
    // Its workers exited with code 4 while it was paused; awake, it would log that and schedule a
    // restart, were its writes not refused: the task logs hold nothing of the kind.
    const logs = await taskLogs(clients[2]!, paused.tasks);
    assert.doesNotMatch(logs, /exited \(code 4\)/, `the paused node wrote nothing for its lost tasks\n${logs}`);
    await Promise.all(loads.map((l) => l.stop()));
    loads = [];
    for (let i = 0; i < TASKS; i++) await converges(sources[i % 2]!, targets[i]!);
    const fullAfter = (await Promise.all(sources.map(fullSyncs))).reduce((a, b) => a + b, 0);
    assert.equal(fullAfter, fullBefore, `no full resync after the takeover either\n${await taskLogs(clients[0]!, taskIds)}`);
  });

  it('concurrent API calls on different nodes for one task: stop on one and update on another both hold; restart and delete reach the owner', async () => {
    const owners = new Map((await nodes(clients[0]!)).flatMap((n) => n.tasks.map((t) => [t, n.id] as [string, string])));
    const taskId = taskIds[0]!;
    const owner = owners.get(taskId)!;
    const others = clients.filter((_, i) => `n${i + 1}` !== owner);
    const [stopped, updated] = await Promise.all([
      others[0]!.call('POST', '/v2/{project_id}/migration-task/{task_id}/stop', { pathParams: { task_id: taskId } }),
      others[1]!.call('PUT', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId }, data: { bandwidth_limit_mb: 77 } }),
    ]);
    ok(stopped);
    ok(updated);
    const t = await waitForStatus(others[1]!, taskId, ['TERMINATED'], 15_000);
    assert.equal(String(t.bandwidth_limit_mb), '77', `the update survived the stop: ${JSON.stringify(t)}`);
    await waitForNodes(clients[0]!, 'the stopped task released', (n) => n.every((x) => !x.tasks.includes(taskId)), 10_000);
    // Restart on one node, delete on another while it runs wherever it landed.
    ok(await others[0]!.call('POST', '/v2/{project_id}/migration-tasks/batch-restart', { data: { migration_tasks: [taskId] } }));
    await waitForStatus(others[1]!, taskId, ['INCRMIGEATING'], 30_000);
    const runsOn = (await waitForNodes(clients[0]!, 'the restarted task held', (n) => n.some((x) => x.tasks.includes(taskId)), 10_000)).find((x) => x.tasks.includes(taskId))!;
    const elsewhere = clients.find((_, i) => `n${i + 1}` !== runsOn.id)!;
    const deleted = ok(await elsewhere.call('DELETE', '/v2/{project_id}/migration-tasks/delete', { data: { task_id_list: [taskId] } }));
    assert.deepEqual(deleted.task_id_list, [taskId]);
    const target = targets[0]!;
    const gone = Date.now() + 15_000;
    while ((await target.client().keys('__ferry:checkpoint:*')).length > 0 && Date.now() < gone) await sleep(100);
    assert.deepEqual(await target.client().keys('__ferry:checkpoint:*'), [], 'the owner stopped it and its checkpoints are gone');
    const r = await clients[0]!.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } });
    assert.equal(r.httpStatusCode, 400);
    assert.equal((r as SdkError).errorCode, 'DCS.4133', 'the task is gone');
  });
});
