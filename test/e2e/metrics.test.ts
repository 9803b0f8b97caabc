/**
 * GET /metrics against a real service migrating between two real redis-servers: who may read
 * it (the API's own auth, scoped to the caller's project, or the metrics token for all), what
 * it holds (ferry_* names, task_id labels on task metrics, lag 0 once caught up), and what it
 * never holds (passwords, keys, credentials).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { FerryClient } from '../../src/api/client.js';
import { rawRequest, signedHeaders } from '../helpers/http.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { startService, type Service } from '../helpers/service.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PROJECT = '0123456789abcdef0123456789abcdef';
const OTHER = 'fedcba9876543210fedcba9876543210';
const AK = 'FERRYMETRICSAK000001';
const SK = 'ferry-metrics-secret-key-000000000000001';
const OTHER_AK = 'FERRYMETRICSAK000002';
const OTHER_SK = 'ferry-metrics-secret-key-000000000000002';
const TOKEN = 'metrics-test-api-token-0001';
const METRICS_TOKEN = 'scrape-token-0123456789abcdef';
const SOURCE_PASSWORD = 'metrics-source-password-x1';

/** Sample lines (not comments) of an exposition: name, labels text, value. */
function samples(text: string): { name: string; labels: string; value: number }[] {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(l);
      assert.ok(m, `an exposition line: ${l}`);
      return { name: m[1]!, labels: m[2] ?? '', value: Number(m[3]) };
    });
}

describe('GET /metrics', () => {
  let service: Service;
  let source: RedisServer;
  let target: RedisServer;
  let client: FerryClient;
  let taskId: string;

  before(async () => {
    [source, target] = await Promise.all([startRedis({ password: SOURCE_PASSWORD, config: { 'repl-diskless-sync-delay': '0' } }), startRedis()]);
    service = await startService({
      credentials: [
        { ak: AK, sk: SK, projectId: PROJECT },
        { token: TOKEN, projectId: PROJECT },
        { ak: OTHER_AK, sk: OTHER_SK, projectId: OTHER },
      ],
      addressPolicy: 'any',
      metricsToken: METRICS_TOKEN,
    });
    client = new FerryClient(service.endpoint, { ak: AK, sk: SK, projectId: PROJECT });
    for (let i = 0; i < 100; i++) await source.client().set(`m:${i}`, `v${i}`);
    taskId = (await client.call<{ instance_id: string }>('POST', '/v2/{project_id}/migration/instance', { body: { name: 'metrics-task' } })).body.instance_id;
    await client.call('POST', `/v2/{project_id}/migration/${taskId}/task`, {
      body: { migration_method: 'incremental_migration', resume_mode: 'auto', source_instance: { addrs: source.addr, password: SOURCE_PASSWORD }, target_instance: { addrs: target.addr } },
    });
    const other = new FerryClient(service.endpoint, { ak: OTHER_AK, sk: OTHER_SK, projectId: OTHER });
    await other.call('POST', '/v2/{project_id}/migration/instance', { body: { name: 'other-project-task' } });
    // Caught up: the stream phase with nothing left to apply.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const p = (await client.call<{ phase: string | null; stream: { lag_bytes: number | null } }>('GET', `/v2/{project_id}/migration-task/${taskId}/progress`)).body;
      if (p.phase === 'incremental' && p.stream.lag_bytes === 0) break;
      if (Date.now() > deadline) assert.fail(`the task never caught up: ${JSON.stringify(p)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  after(async () => {
    await service?.stop();
    service?.cleanup();
    await stopAll();
  });

  it('is refused without credentials, with a wrong bearer token, and with a bearer token on the API', async () => {
    const none = await rawRequest(service.port, 'GET', '/metrics', null, {});
    assert.equal(none.status, 401);
    assert.equal(JSON.parse(none.body).error_code, 'APIGW.0301');
    const wrong = await rawRequest(service.port, 'GET', '/metrics', null, { authorization: 'Bearer not-the-token-at-all' });
    assert.equal(wrong.status, 401);
    assert.ok(!wrong.body.includes(METRICS_TOKEN));
    // The metrics token opens /metrics only, not the API.
    const api = await rawRequest(service.port, 'GET', `/v2/${PROJECT}/migration-tasks`, null, { authorization: `Bearer ${METRICS_TOKEN}` });
    assert.equal(api.status, 401, api.body);
  });

  it("with the metrics token: every project's tasks, ferry_ names, task_id labels, lag 0, process metrics, no secrets", async () => {
    const res = await rawRequest(service.port, 'GET', '/metrics', null, { authorization: `Bearer ${METRICS_TOKEN}` });
    assert.equal(res.status, 200, res.body);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const text = res.body;
    const all = samples(text);
    for (const s of all) assert.ok(s.name.startsWith('ferry_'), `${s.name} starts with ferry_`);
    // Task metrics carry task_id (and task_name); the service-wide ones are the task counts and the process's.
    for (const s of all) {
      if (s.name === 'ferry_tasks' || s.name.startsWith('ferry_process_') || s.name.startsWith('ferry_nodejs_') || s.name.startsWith('ferry_node_')) continue;
      assert.match(s.labels, /task_id="/, `${s.name}${s.labels} has a task_id`);
    }
    const shard = `shard="${source.addr}"`;
    const lag = all.find((s) => s.name === 'ferry_lag_bytes' && s.labels.includes(`task_id="${taskId}"`));
    assert.ok(lag, text);
    assert.ok(lag.labels.includes(shard) && lag.labels.includes('task_name="metrics-task"'), lag.labels);
    assert.equal(lag.value, 0);
    const has = (name: string, ...parts: string[]) => all.find((s) => s.name === name && parts.every((p) => s.labels.includes(p)));
    assert.equal(has('ferry_task_status', `task_id="${taskId}"`, 'status="INCRMIGEATING"')?.value, 1);
    assert.equal(has('ferry_task_phase', `task_id="${taskId}"`, shard, 'phase="incremental"')?.value, 1);
    assert.equal(has('ferry_snapshot_keys_done', `task_id="${taskId}"`)?.value, 100);
    assert.equal(has('ferry_snapshot_progress_percent', `task_id="${taskId}"`)?.value, 100);
    for (const name of ['ferry_stream_received_offset', 'ferry_stream_applied_offset', 'ferry_stream_source_offset', 'ferry_lag_seconds', 'ferry_commands_forwarded_total', 'ferry_reconnects_total', 'ferry_full_resyncs_total']) {
      assert.ok(has(name, `task_id="${taskId}"`, shard), `${name} for the task's shard`);
    }
    assert.ok(has('ferry_commands_per_second', `task_id="${taskId}"`) && has('ferry_read_bytes_per_second', `task_id="${taskId}"`));
    assert.equal(has('ferry_full_resyncs_total', `task_id="${taskId}"`)?.value, 0);
    assert.ok(has('ferry_task_status', 'task_name="other-project-task"', 'status="RUNNING"'), 'the other project too');
    assert.equal(has('ferry_tasks', 'status="INCRMIGEATING"')?.value, 1);
    // The node running it (one node here, over SQLite), and the nodes sharing the store.
    const node = has('ferry_task_node', `task_id="${taskId}"`);
    assert.ok(node && node.value === 1 && /node="[^"]+"/.test(node.labels), text);
    const nodeName = /node="([^"]+)"/.exec(node.labels)![1]!;
    assert.equal(has('ferry_node_leases', `node="${nodeName}"`)?.value, 1);
    assert.ok((has('ferry_node_heartbeat_age_seconds', `node="${nodeName}"`)?.value ?? 99) < 15, 'a live heartbeat');
    assert.ok((has('ferry_node_capacity', `node="${nodeName}"`)?.value ?? 0) > 0);
    assert.ok(all.some((s) => s.name === 'ferry_process_cpu_user_seconds_total'), 'process metrics');
    assert.ok(all.some((s) => s.name === 'ferry_process_resident_memory_bytes'), 'process memory');
    for (const secret of [SOURCE_PASSWORD, SK, OTHER_SK, TOKEN, METRICS_TOKEN, 'm:1"', 'v1"']) assert.ok(!text.includes(secret), `no ${secret} in the metrics`);
  });

  it("with AK/SK or X-Auth-Token: the caller's project only", async () => {
    const text = await client.text('/metrics');
    assert.ok(text.includes(`task_id="${taskId}"`));
    assert.ok(!text.includes('other-project-task'), "another project's tasks are not shown");
    const signed = await rawRequest(service.port, 'GET', '/metrics', null, signedHeaders(service.port, 'GET', '/metrics', Buffer.alloc(0), { ak: OTHER_AK, sk: OTHER_SK, projectId: OTHER }));
    assert.equal(signed.status, 200);
    assert.ok(signed.body.includes('other-project-task') && !signed.body.includes(taskId));
    const byToken = await rawRequest(service.port, 'GET', '/metrics', null, { 'x-auth-token': TOKEN });
    assert.equal(byToken.status, 200);
    assert.ok(byToken.body.includes(`task_id="${taskId}"`));
    const bad = await rawRequest(service.port, 'GET', '/metrics', null, { 'x-auth-token': 'nope' });
    assert.equal(bad.status, 401);
    // The client signs a nonce: the same change twice within a second is not taken for a replay.
    for (let i = 0; i < 2; i++) await client.call('PUT', `/v2/{project_id}/migration-task/${taskId}`, { body: { bandwidth_limit_mb: 100 } });
  });

  it('counts verification differences: 0 when equal, more after a key only the target has', async () => {
    const differences = async (): Promise<number | undefined> =>
      samples(await client.text('/metrics')).find((s) => s.name === 'ferry_verify_differences' && s.labels.includes(`task_id="${taskId}"`))?.value;
    const verifyOnce = async (): Promise<void> => {
      await client.call('POST', `/v2/{project_id}/migration-task/${taskId}/verify`, { body: {} });
      const deadline = Date.now() + 30_000;
      while ((await client.call<{ status: string }>('GET', `/v2/{project_id}/migration-task/${taskId}/verify`)).body.status === 'running') {
        if (Date.now() > deadline) assert.fail('the verification did not end');
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    assert.equal(await differences(), undefined, 'never verified: no series');
    await verifyOnce();
    assert.equal(await differences(), 0);
    await target.client().set('only-on-the-target', 'x');
    await verifyOnce();
    assert.equal(await differences(), 1);
  });

  it('the Grafana dashboard and the alert rules in docs/ use only metrics the service exposes', async () => {
    const text = await client.text('/metrics');
    const exposed = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap((m) => (m[2] === 'histogram' ? [m[1]!, `${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1]!])));
    const dashboard = JSON.parse(readFileSync(path.join(root, 'docs/grafana-dashboard.json'), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
    const rules = parseYaml(readFileSync(path.join(root, 'docs/prometheus-alerts.yml'), 'utf8')) as { groups: { rules: { expr: string }[] }[] };
    const exprs = [...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...rules.groups.flatMap((g) => g.rules.map((r) => r.expr))];
    assert.ok(exprs.length > 10);
    for (const expr of exprs) for (const [name] of expr.matchAll(/ferry_[a-z_]+/g)) assert.ok(exposed.has(name), `${name} (in ${expr}) is exposed`);
  });
});
