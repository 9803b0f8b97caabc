/**
 * Scan mode through the service: `source_mode` in SetOnlineMigrationTask, shown by
 * ShowMigrationTask with the mode that runs; a source refusing PSYNC falls back to scan (auto),
 * the task log says why, and the `offset` stat (keys waiting) reaches 0 once converged.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { sdkClient, startService, type SdkError, type SdkResponse, type Service } from '../helpers/service.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { mixedLoad } from '../helpers/scan-load.js';

const PROJECT = '0123456789abcdef0123456789abcdef';
const AK = 'FERRYSCANAK000000001';
const SK = 'ferry-scan-secret-key-000000000000000001';

type Client = ReturnType<typeof sdkClient>;

function ok(r: SdkResponse | SdkError): SdkResponse {
  if (!('httpStatusCode' in r) || r.httpStatusCode >= 400) assert.fail(`expected success, got ${JSON.stringify(r)}`);
  return r as SdkResponse;
}

/** `lastSeen` says, on a time-out, what the wait saw last (the failure must explain itself). */
async function until<T>(what: string, fn: () => Promise<T | null>, timeoutMs = 60_000, lastSeen?: () => unknown): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${lastSeen ? `; last seen: ${JSON.stringify(lastSeen())}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('scan mode through the API', () => {
  let source: RedisServer;
  let target: RedisServer;
  let service: Service;
  let client: Client;

  before(async () => {
    source = await startRedis({ config: { 'rename-command SYNC': '""', 'rename-command PSYNC': '""' } });
    target = await startRedis();
    service = await startService({ credentials: [{ ak: AK, sk: SK, projectId: PROJECT }] });
    client = sdkClient(service.endpoint, AK, SK, PROJECT);
  });

  after(async () => {
    await service?.stop();
    service?.cleanup();
    await stopAll();
  });

  it('source_mode auto on a source refusing PSYNC: falls back to scan (logged), converges under writes, offset 0, stops', async () => {
    for (let i = 0; i < 500; i++) await source.client(i % 3).set(`k:${i}`, `v${i}`);
    const created = ok(await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name: 'scan-task' } }));
    const taskId = String(created.instance_id);
    const pathParams = { task_id: taskId };
    ok(
      await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
        pathParams,
        data: { migration_method: 'incremental_migration', resume_mode: 'manual', source_mode: 'auto', source_instance: { addrs: source.addr }, target_instance: { addrs: target.addr } },
      }),
    );
    await until('INCRMIGEATING', async () => {
      const t = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams }));
      if (t.status === 'FAILED') assert.fail(`task failed: ${JSON.stringify(t)}`);
      return t.status === 'INCRMIGEATING' ? t : null;
    });
    await mixedLoad(source, { durationMs: 2000, connections: 2, seed: 3 });
    let lastStats: SdkResponse | undefined;
    await until(
      'offset 0',
      async () => {
        const s = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/stats', { pathParams }));
        lastStats = s;
        return s.offset === '0' ? s : null;
      },
      60_000,
      () => lastStats,
    );
    const diffs = await compareServers(source, target);
    assert.equal(diffs.length, 0, formatDifferences(diffs));

    const shown = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams }));
    assert.equal(shown.source_mode, 'auto');
    const running = shown.source_mode_running as { mode: string; reason: string };
    assert.equal(running.mode, 'scan');
    assert.match(running.reason, /PSYNC/);
    const logs = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/logs', { pathParams, query: { limit: 100 } }));
    const messages = (logs.migration_logs as { message: string }[]).map((l) => l.message);
    assert.ok(messages.some((m) => /falling back to scan mode.*PSYNC/.test(m)), messages.join('\n'));

    ok(await client.call('POST', '/v2/{project_id}/migration-task/{task_id}/stop', { pathParams }));
    await until('TERMINATED', async () => {
      const t = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams }));
      return t.status === 'TERMINATED' ? t : null;
    });
  });

  it('refuses an unknown source_mode', async () => {
    const created = ok(await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name: 'bad-mode' } }));
    const r = await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
      pathParams: { task_id: String(created.instance_id) },
      data: { migration_method: 'full_amount_migration', resume_mode: 'manual', source_mode: 'rdb', source_instance: { addrs: source.addr }, target_instance: { addrs: target.addr } },
    });
    assert.equal((r as SdkError).httpStatusCode, 400, JSON.stringify(r));
  });
});
