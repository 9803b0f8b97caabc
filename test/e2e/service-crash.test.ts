/**
 * The service under faults (issue 9): killed with SIGKILL alone (its workers see it gone) or
 * with its whole process group, during incremental sync and during a re-snapshot, with keys
 * deleted on the source while it is down; a target refusing writes (OOM) under load; a deleted
 * task leaves no checkpoint behind. Every case ends with 0 differences.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { sdkClient, startService, type SdkError, type SdkResponse, type Service } from '../helpers/service.js';
import { compareServers, formatDifferences, type Difference } from '../helpers/compare.js';
import { exhaustMemory, liftMemoryLimit, pipelinedLoad, refusals } from '../helpers/load.js';

const PROJECT = '0123456789abcdef0123456789abcdef';
const AK = 'FERRYCRASHAK00000001';
const SK = 'ferry-crash-secret-key-00000000000000001';

type Client = ReturnType<typeof sdkClient>;

function ok(r: SdkResponse | SdkError): SdkResponse {
  if (!('httpStatusCode' in r) || r.httpStatusCode >= 400) assert.fail(`expected success, got ${JSON.stringify(r)}`);
  return r as SdkResponse;
}

async function show(client: Client, taskId: string): Promise<SdkResponse> {
  return ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } }));
}

async function waitForStatus(client: Client, taskId: string, wanted: string[], timeoutMs = 60_000): Promise<SdkResponse> {
  const deadline = Date.now() + timeoutMs;
  let last: SdkResponse | null = null;
  while (Date.now() < deadline) {
    try {
      last = await show(client, taskId);
      if (wanted.includes(String(last.status))) return last;
    } catch {
      /* the service is starting */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`task ${taskId} never reached ${wanted.join('/')}: ${JSON.stringify(last)}`);
}

/** Polls until the target equals the source (ignoring Ferry's checkpoints); fails with the last differences. */
async function converges(source: RedisServer, target: RedisServer, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let diffs: Difference[] = [];
  while (Date.now() < deadline) {
    diffs = (await compareServers(source, target)).filter((d) => !d.key.startsWith('__ferry:checkpoint'));
    if (diffs.length === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`the target did not converge: ${diffs.length} differences\n${formatDifferences(diffs)}`);
}

async function createAndStart(client: Client, name: string, source: RedisServer, target: RedisServer, extra: Record<string, unknown> = {}): Promise<string> {
  const created = ok(await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name, description: 'crash test' } }));
  const taskId = String(created.instance_id);
  ok(
    await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
      pathParams: { task_id: taskId },
      data: { migration_method: 'incremental_migration', resume_mode: 'auto', source_instance: { addrs: source.addr }, target_instance: { addrs: target.addr }, ...extra },
    }),
  );
  return taskId;
}

/** `n` keys of incompressible values (the RDB does not shrink them: a snapshot takes its time). */
async function seed(source: RedisServer, n: number, valueBytes = 32): Promise<void> {
  for (let i = 0; i < n; i += 500) {
    const p = source.client().pipeline();
    for (let j = i; j < Math.min(n, i + 500); j++) p.set(`doomed:${j}`, randomBytes(valueBytes));
    await p.exec();
  }
}

async function deleteSome(source: RedisServer, n: number): Promise<void> {
  const p = source.client().pipeline();
  for (let i = 0; i < n; i++) p.del(`doomed:${i * 3}`);
  await p.exec();
}

describe('the service killed, and a refusing target, under load', () => {
  let service: Service;
  let client: Client;

  before(async () => {
    service = await startService({ credentials: [{ ak: AK, sk: SK, projectId: PROJECT }], addressPolicy: 'any' } as never);
    client = sdkClient(service.endpoint, AK, SK, PROJECT);
  });

  after(async () => {
    await service?.stop();
    service?.cleanup();
    await stopAll();
  });

  it('kill -9 of the service alone during incremental sync: its worker keeps the checkpoint and exits; keys deleted meanwhile are gone; 0 differences', async () => {
    const source = await startRedis({ config: { 'repl-backlog-size': '64mb', 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    try {
      await seed(source, 1000);
      const taskId = await createAndStart(client, 'kill-alone', source, target);
      await waitForStatus(client, taskId, ['INCRMIGEATING']);
      const load = pipelinedLoad(source, { clients: 4, burst: 60, pauseMs: 5 });
      await new Promise((r) => setTimeout(r, 1500));
      await service.kill9();
      await load.stop();
      await deleteSome(source, 300);
      // The orphaned worker exits without tidying anything on the target.
      const checkpoint = await target.client().get(`__ferry:checkpoint:${taskId}:0`);
      assert.ok(checkpoint, 'the checkpoint is still on the target after the service died');
      await service.restart();
      await waitForStatus(client, taskId, ['INCRMIGEATING']);
      await converges(source, target);
      assert.ok(!/ERR_IPC_CHANNEL_CLOSED/.test(service.output()), 'no IPC traces');
      const t = await show(client, taskId);
      assert.equal(t.status, 'INCRMIGEATING');
      ok(await client.call('POST', '/v2/{project_id}/migration-task/batch-stop', { data: { migration_tasks: [taskId] } }));
      await waitForStatus(client, taskId, ['TERMINATED']);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('the whole process group killed, during incremental sync and again during the re-snapshot a tiny backlog forces: status FULLMIGRATING while it re-snapshots, 0 differences', async () => {
    // 16 kB of backlog: every restart after some writes needs a full resync.
    const source = await startRedis({ config: { 'repl-backlog-size': '16kb', 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    try {
      await seed(source, 4000, 2000);
      // A bandwidth limit keeps the 8 MB snapshot going for a few seconds: time to kill in it.
      const taskId = await createAndStart(client, 'kill-group', source, target, { bandwidth_limit_mb: 2 });
      await waitForStatus(client, taskId, ['INCRMIGEATING']);
      const load = pipelinedLoad(source, { clients: 2, burst: 50, pauseMs: 20 });
      await new Promise((r) => setTimeout(r, 1000));
      await service.killGroup();
      await load.stop();
      await deleteSome(source, 300);
      await service.restart();
      // The backlog is gone: the task resyncs, and says so.
      await waitForStatus(client, taskId, ['FULLMIGRATING'], 20_000);
      const during = await show(client, taskId);
      assert.equal(during.status, 'FULLMIGRATING');
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal((await show(client, taskId)).status, 'FULLMIGRATING', 'still re-snapshotting when killed again');
      await service.killGroup();
      // Many keys, so that some were already copied by the snapshot that was cut.
      const p = source.client().pipeline();
      for (let i = 1; i < 4000; i += 4) p.del(`doomed:${i}`);
      await p.exec();
      await source.client().set('written-while-down', '1');
      await service.restart();
      await waitForStatus(client, taskId, ['INCRMIGEATING'], 60_000);
      await converges(source, target);
      ok(await client.call('POST', '/v2/{project_id}/migration-task/batch-stop', { data: { migration_tasks: [taskId] } }));
      await waitForStatus(client, taskId, ['TERMINATED']);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('a target refusing writes (OOM) under pipelined load, service path: refusals happen, nothing reordered, 0 differences', async () => {
    const source = await startRedis({ config: { 'repl-backlog-size': '64mb', 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    try {
      await source.client().set('seed', '1');
      const taskId = await createAndStart(client, 'oom', source, target);
      await waitForStatus(client, taskId, ['INCRMIGEATING']);
      const load = pipelinedLoad(source, { clients: 4, burst: 60 });
      await new Promise((r) => setTimeout(r, 500));
      // The memory limit flaps with batches in flight: refused, then taken, several times.
      for (let i = 0; i < 6; i++) {
        await exhaustMemory(target);
        const before = await refusals(target, 'OOM');
        const deadline = Date.now() + 20_000;
        while ((await refusals(target, 'OOM')) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        assert.ok((await refusals(target, 'OOM')) > before, 'the target refused writes with OOM');
        await new Promise((r) => setTimeout(r, 250 + 100 * (i % 3)));
        await liftMemoryLimit(target);
        await new Promise((r) => setTimeout(r, 80 + 40 * (i % 2)));
      }
      await new Promise((r) => setTimeout(r, 300));
      await load.stop();
      await converges(source, target);
      const t = await show(client, taskId);
      assert.equal(t.status, 'INCRMIGEATING', JSON.stringify(t));
      ok(await client.call('POST', '/v2/{project_id}/migration-task/batch-stop', { data: { migration_tasks: [taskId] } }));
      await waitForStatus(client, taskId, ['TERMINATED']);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('deleting a running task ends it for good: its checkpoint is removed from the target', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    try {
      await source.client().set('k', 'v');
      const taskId = await createAndStart(client, 'deleted', source, target);
      await waitForStatus(client, taskId, ['INCRMIGEATING']);
      await source.client().incr('n');
      const key = `__ferry:checkpoint:${taskId}:0`;
      const deadline = Date.now() + 10_000;
      while (!(await target.client().exists(key)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await target.client().exists(key), 1, 'a checkpoint exists while it runs');
      ok(await client.call('DELETE', '/v2/{project_id}/migration-tasks/delete', { data: { task_id_list: [taskId] } }));
      const gone = Date.now() + 15_000;
      while ((await target.client().exists(key)) && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await target.client().exists(key), 0, 'the checkpoint is gone after the delete');
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
