import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import path from 'node:path';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { startProxy } from '../helpers/tcp-proxy.js';
import { sdkClient, startService, type SdkError, type SdkResponse, type Service } from '../helpers/service.js';
import { signRequest } from '../../src/api/auth/signature.js';
import { rawRequest, signedHeaders as signedWith, socketRequest } from '../helpers/http.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';

const PROJECT = '0123456789abcdef0123456789abcdef';
const OTHER_PROJECT = 'fedcba9876543210fedcba9876543210';
const AK = 'FERRYTESTAK000000001';
const SK = 'ferry-test-secret-key-0000000000000000001';
const OTHER_AK = 'FERRYTESTAK000000002';
const OTHER_SK = 'ferry-test-secret-key-0000000000000000002';
const TOKEN = 'test-token-for-project-one';

type Client = ReturnType<typeof sdkClient>;

function isError(r: SdkResponse | SdkError): r is SdkError {
  return !('httpStatusCode' in r) || r.httpStatusCode >= 400;
}

function ok(r: SdkResponse | SdkError): SdkResponse {
  if (isError(r)) assert.fail(`expected success, got ${r.httpStatusCode} ${r.errorCode} ${r.errorMsg}`);
  return r as SdkResponse;
}

function fails(r: SdkResponse | SdkError, status: number, code: string): void {
  assert.ok(isError(r), `expected ${code}, got success ${JSON.stringify(r)}`);
  assert.equal(r.httpStatusCode, status, JSON.stringify(r));
  assert.equal(r.errorCode, code, JSON.stringify(r));
}

async function waitForStatus(client: Client, taskId: string, wanted: string[], timeoutMs = 40_000): Promise<SdkResponse> {
  const deadline = Date.now() + timeoutMs;
  let last: SdkResponse | SdkError | undefined;
  while (Date.now() < deadline) {
    last = await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } });
    if (!isError(last) && wanted.includes(String(last.status))) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`task ${taskId} never reached ${wanted.join('/')}: ${JSON.stringify(last)}`);
}

/** Task id -> the job id CreateOnlineMigrationTask returned with it. */
const jobs = new Map<string, string>();

async function createTask(client: Client, name: string): Promise<string> {
  const created = ok(await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name, description: 'test', vpc_id: 'vpc-1', subnet_id: 'subnet-1', security_group_id: 'sg-1' } }));
  assert.equal(typeof created.instance_id, 'string');
  jobs.set(String(created.instance_id), String(created.job_id));
  return String(created.instance_id);
}

/** Signs with our own signer (the algorithm the SDK uses), optionally at another time. */
function signedHeaders(port: number, method: string, urlPath: string, body: Buffer, opts: { date?: Date; sk?: string } = {}): Record<string, string> {
  return signedWith(port, method, urlPath, body, { ak: AK, sk: SK, projectId: PROJECT }, opts);
}

describe('the DCS-compatible API, driven by the Huawei Cloud SDK', () => {
  let service: Service;
  let source: RedisServer;
  let target: RedisServer;
  let client: Client;
  let other: Client;
  let bucketDir: string;

  before(async () => {
    source = await startRedis({ password: 'src-pass-123' });
    target = await startRedis();
    bucketDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bucket-'));
    service = await startService({
      buckets: { 'local-bucket': bucketDir },
      credentials: [
        { ak: AK, sk: SK, projectId: PROJECT },
        { ak: OTHER_AK, sk: OTHER_SK, projectId: OTHER_PROJECT },
        { token: TOKEN, projectId: PROJECT },
      ],
      instances: [{ id: 'redis-target-1', projectId: PROJECT, name: 'target', addrs: target.addr }],
      // Two projects would default to "registered"; these tests name addresses directly
      // (the policies are tested in security.test.ts).
      addressPolicy: 'any',
    });
    client = sdkClient(service.endpoint, AK, SK, PROJECT);
    other = sdkClient(service.endpoint, OTHER_AK, OTHER_SK, OTHER_PROJECT);
  });

  after(async () => {
    await service?.stop();
    service?.cleanup();
    if (bucketDir) rmSync(bucketDir, { recursive: true, force: true });
    await stopAll();
  });

  it('runs a full migration: create, job, configure (the seed example body), SUCCESS, stats, logs, list, delete', async () => {
    await source.client(0).mset('a', '1', 'b', '2');
    await source.client(3).hset('h', 'f', 'v');
    const taskId = await createTask(client, 'full-task');

    const shown = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } }));
    assert.equal(shown.status, 'RUNNING');
    assert.equal(shown.tenant_vpc_id, 'vpc-1');

    // The seed operation with the reference's example shape: explicit nulls, a numeric bandwidth.
    const configured = ok(
      await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
        pathParams: { task_id: taskId },
        data: {
          migration_method: 'full_amount_migration',
          resume_mode: 'auto',
          bandwidth_limit_mb: 123,
          source_instance: { id: null, addrs: source.addr, password: 'src-pass-123' },
          target_instance: { id: 'redis-target-1', addrs: null, password: null },
        },
      }),
    );
    assert.equal(configured.id, taskId);
    assert.equal(configured.status, 'FULLMIGRATING');

    const done = await waitForStatus(client, taskId, ['SUCCESS', 'FAILED']);
    assert.equal(done.status, 'SUCCESS', JSON.stringify(done));
    assert.equal((done.source_instance as { password: string }).password, '********');
    assert.equal(done.bandwidth_limit_mb, '123');
    const diffs = await compareServers(source, target);
    assert.equal(diffs.length, 0, formatDifferences(diffs));

    const stats = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/stats', { pathParams: { task_id: taskId } }));
    assert.equal(stats.full_migration_progress, '100');
    assert.equal(stats.source_dbsize, '3');
    assert.equal(stats.target_dbsize, '3');
    assert.equal(stats.is_migrating, false);
    for (const f of ['offset', 'target_input_kbps', 'target_ops']) assert.equal(typeof stats[f], 'string');

    const logs = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/logs', { pathParams: { task_id: taskId }, query: { limit: 100 } }));
    const messages = (logs.migration_logs as { message: string; log_level: string }[]).map((l) => l.message);
    assert.ok(messages.some((m) => m.includes('phase: snapshot')), messages.join('\n'));
    assert.ok(messages.some((m) => m.includes('finished')), messages.join('\n'));

    const job = ok(await client.call('GET', '/v2/{project_id}/jobs/{job_id}', { pathParams: { job_id: jobs.get(taskId)! } }));
    assert.equal(job.status, 'SUCCESS');

    const list = ok(await client.call('GET', '/v2/{project_id}/migration-tasks', { query: { offset: 0, limit: 10, name: 'full-task' } }));
    assert.equal(list.count, 1);
    assert.equal((list.migration_tasks as { task_id: string }[])[0]!.task_id, taskId);

    // Configuring twice is refused.
    fails(
      await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
        pathParams: { task_id: taskId },
        data: { migration_method: 'full_amount_migration', resume_mode: 'auto', source_instance: { addrs: source.addr }, target_instance: { addrs: target.addr } },
      }),
      400,
      'DCS.4957',
    );

    const deleted = ok(await client.call('DELETE', '/v2/{project_id}/migration-tasks/delete', { data: { task_id_list: [taskId, 'no-such-task'] } }));
    assert.deepEqual(deleted.task_id_list, [taskId]);
    fails(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } }), 400, 'DCS.4133');

    // Nothing on disk or in the output holds the password in clear.
    const onDisk = readdirSync(service.dataDir).filter((f) => f.startsWith('ferry.db')).map((f) => readFileSync(path.join(service.dataDir, f)).toString('latin1')).join('');
    assert.ok(!onDisk.includes('src-pass-123'), 'the password is encrypted at rest');
    assert.ok(!service.output().includes('src-pass-123'), 'the password is not logged');
  });

  it('runs an incremental migration: INCRMIGEATING, live writes, stop, restart, sync-stop', async () => {
    await source.client(0).flushall();
    await target.client(0).flushall();
    await source.client(0).set('before', 'x');
    const taskId = await createTask(client, 'incremental-task');
    ok(
      await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
        pathParams: { task_id: taskId },
        data: { migration_method: 'incremental_migration', resume_mode: 'manual', bandwidth_limit_mb: '100', source_instance: { addrs: source.addr, password: 'src-pass-123' }, target_instance: { addrs: target.addr } },
      }),
    );
    await waitForStatus(client, taskId, ['INCRMIGEATING']);
    await source.client(1).set('during', 'y');
    for (let i = 0; i < 50 && (await target.client(1).get('during')) !== 'y'; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await target.client(1).get('during'), 'y');

    const stats = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/stats', { pathParams: { task_id: taskId } }));
    assert.equal(stats.is_migrating, true);

    // Restarting a running task is refused.
    const refused = ok(await client.call('POST', '/v2/{project_id}/migration-tasks/batch-restart', { data: { migration_tasks: [taskId] } }));
    assert.equal((refused.migration_tasks as { result: string; error_code: string }[])[0]!.error_code, 'DCS.4957');

    const stopped = ok(await client.call('POST', '/v2/{project_id}/migration-task/{task_id}/stop', { pathParams: { task_id: taskId } }));
    assert.ok(['TERMINATING', 'TERMINATED'].includes(String(stopped.status)));
    await waitForStatus(client, taskId, ['TERMINATED']);

    const restarted = ok(await client.call('POST', '/v2/{project_id}/migration-tasks/batch-restart', { data: { migration_tasks: [taskId, 'unknown-id'] } }));
    assert.deepEqual(
      (restarted.migration_tasks as { task_id: string; result: string }[]).map((r) => [r.task_id, r.result]),
      [[taskId, 'success'], ['unknown-id', 'failed']],
    );
    await waitForStatus(client, taskId, ['INCRMIGEATING']);
    await source.client(0).set('after-restart', 'z');
    for (let i = 0; i < 50 && (await target.client(0).get('after-restart')) !== 'z'; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await target.client(0).get('after-restart'), 'z');

    const syncStop = await client.call('POST', '/v2/{project_id}/migration-task/{task_id}/sync-stop', { pathParams: { task_id: taskId } });
    assert.equal(syncStop.httpStatusCode, 204);
    const final = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } }));
    assert.equal(final.status, 'TERMINATED');
    // Each of the two stops is logged once (the worker's outcome, not again when it exits).
    const logs = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/logs', { pathParams: { task_id: taskId }, query: { limit: 100 } }));
    const stoppedLines = (logs.migration_logs as { message: string }[]).filter((l) => l.message === 'migration stopped');
    assert.equal(stoppedLines.length, 2, JSON.stringify(logs.migration_logs));
  });

  it('a migrating task starts again by itself after the service is killed (kill -9)', async () => {
    await source.client(0).flushall();
    await target.client(0).flushall();
    const taskId = await createTask(client, 'survivor');
    ok(
      await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
        pathParams: { task_id: taskId },
        data: { migration_method: 'incremental_migration', resume_mode: 'auto', source_instance: { addrs: source.addr, password: 'src-pass-123' }, target_instance: { addrs: target.addr } },
      }),
    );
    await waitForStatus(client, taskId, ['INCRMIGEATING']);
    await service.kill9();
    await source.client(0).set('while-down', 'w');
    await service.restart();
    await waitForStatus(client, taskId, ['INCRMIGEATING']);
    await source.client(0).set('after-up', 'u');
    for (let i = 0; i < 80 && (await target.client(0).get('after-up')) !== 'u'; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await target.client(0).get('while-down'), 'w');
    assert.equal(await target.client(0).get('after-up'), 'u');
    const logs = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/logs', { pathParams: { task_id: taskId }, query: { limit: 100 } }));
    assert.ok((logs.migration_logs as { message: string }[]).some((l) => /service restarted/.test(l.message)));
    ok(await client.call('POST', '/v2/{project_id}/migration-task/batch-stop', { data: { migration_tasks: [taskId] } }));
    await waitForStatus(client, taskId, ['TERMINATED']);
  });

  it('keeps projects apart: another project cannot see or touch a task', async () => {
    const taskId = await createTask(client, 'private');
    fails(await other.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } }), 400, 'DCS.4133');
    const list = ok(await other.call('GET', '/v2/{project_id}/migration-tasks'));
    assert.ok(!(list.migration_tasks as { task_id: string }[]).some((t) => t.task_id === taskId));
    // A path naming project one with project two's credential.
    const body = Buffer.alloc(0);
    const urlPath = `/v2/${PROJECT}/migration-tasks`;
    const headers = { host: `127.0.0.1:${service.port}`, 'content-type': 'application/json' };
    const res = await rawRequest(service.port, 'GET', urlPath, null, { ...headers, ...signRequest({ method: 'GET', rawPath: urlPath, headers, body, accessKey: OTHER_AK, secretKey: OTHER_SK }) });
    assert.equal(res.status, 401);
    assert.equal(JSON.parse(res.body).error_code, 'DCS.1004');
    // Registered instances are per project too.
    const otherTask = await createTask(other, 'steal');
    fails(
      await other.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
        pathParams: { task_id: otherTask },
        data: { migration_method: 'full_amount_migration', resume_mode: 'auto', source_instance: { addrs: source.addr }, target_instance: { id: 'redis-target-1' } },
      }),
      404,
      'DCS.3022',
    );
  });

  it('refuses bad credentials: wrong SK, unknown AK, stale and future dates, no auth; accepts a token', async () => {
    const wrong = sdkClient(service.endpoint, AK, 'not-the-secret', PROJECT);
    fails(await wrong.call('GET', '/v2/{project_id}/migration-tasks'), 401, 'APIGW.0301');
    const unknown = sdkClient(service.endpoint, 'UNKNOWNAK00000000000', SK, PROJECT);
    fails(await unknown.call('GET', '/v2/{project_id}/migration-tasks'), 401, 'APIGW.0301');
    const urlPath = `/v2/${PROJECT}/migration-tasks`;
    for (const minutes of [-20, 20]) {
      const res = await rawRequest(service.port, 'GET', urlPath, null, signedHeaders(service.port, 'GET', urlPath, Buffer.alloc(0), { date: new Date(Date.now() + minutes * 60_000) }));
      assert.equal(res.status, 401, `date ${minutes} min off`);
      assert.equal(JSON.parse(res.body).error_code, 'APIGW.0301');
    }
    const fresh = await rawRequest(service.port, 'GET', urlPath, null, signedHeaders(service.port, 'GET', urlPath, Buffer.alloc(0)));
    assert.equal(fresh.status, 200, fresh.body);
    const none = await rawRequest(service.port, 'GET', urlPath, null, {});
    assert.equal(none.status, 401);
    assert.match(String(none.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.match(String(none.headers['content-type']), /application\/json/);
    const token = await rawRequest(service.port, 'GET', urlPath, null, { 'x-auth-token': TOKEN });
    assert.equal(token.status, 200);
    const badToken = await rawRequest(service.port, 'GET', urlPath, null, { 'x-auth-token': 'nope' });
    assert.equal(badToken.status, 401);
    // A body changed after signing.
    const body = Buffer.from(JSON.stringify({ name: 'x' }));
    const h = signedHeaders(service.port, 'POST', `/v2/${PROJECT}/migration/instance`, body);
    const tampered = await rawRequest(service.port, 'POST', `/v2/${PROJECT}/migration/instance`, Buffer.from(JSON.stringify({ name: 'y' })), h);
    assert.equal(tampered.status, 401);
  });

  it('answers every bad request with its DCS error, never a 500', async () => {
    const taskId = await createTask(client, 'for-bad-bodies');
    const configure = `/v2/${PROJECT}/migration/${taskId}/task`;
    const good = { migration_method: 'full_amount_migration', resume_mode: 'auto', source_instance: { addrs: source.addr }, target_instance: { addrs: target.addr } };
    const cases: [string, string, string, Buffer | string, number, string, RegExp?][] = [
      ['empty body', 'POST', configure, '', 400, 'DCS.4004'],
      ['not JSON', 'POST', configure, '{"migration_method":', 400, 'DCS.4005'],
      ['a JSON array', 'POST', configure, '[1,2]', 400, 'DCS.4005'],
      ['binary garbage', 'POST', configure, Buffer.from([0xff, 0xfe, 0x00, 0x01]), 400, 'DCS.4005'],
      ['missing migration_method', 'POST', configure, JSON.stringify({ ...good, migration_method: undefined }), 400, 'DCS.4800', /migration_method/],
      ['wrong migration_method', 'POST', configure, JSON.stringify({ ...good, migration_method: 'sideways' }), 400, 'DCS.4063', /migration_method/],
      ['wrong resume_mode', 'POST', configure, JSON.stringify({ ...good, resume_mode: 'sometimes' }), 400, 'DCS.4063', /resume_mode/],
      ['bandwidth 0', 'POST', configure, JSON.stringify({ ...good, bandwidth_limit_mb: 0 }), 400, 'DCS.4800', /bandwidth_limit_mb/],
      ['bandwidth 10241', 'POST', configure, JSON.stringify({ ...good, bandwidth_limit_mb: '10241' }), 400, 'DCS.4800', /bandwidth_limit_mb/],
      ['bandwidth 1.5', 'POST', configure, JSON.stringify({ ...good, bandwidth_limit_mb: 1.5 }), 400, 'DCS.4800', /bandwidth_limit_mb/],
      ['both id and addrs', 'POST', configure, JSON.stringify({ ...good, source_instance: { id: 'x', addrs: source.addr } }), 400, 'DCS.4800', /source_instance/],
      ['neither id nor addrs', 'POST', configure, JSON.stringify({ ...good, target_instance: { password: 'p' } }), 400, 'DCS.4800', /target_instance/],
      ['bad addrs', 'POST', configure, JSON.stringify({ ...good, source_instance: { addrs: 'not an address' } }), 400, 'DCS.4800', /source_instance.addrs/],
      ['source_instance not an object', 'POST', configure, JSON.stringify({ ...good, source_instance: 'x' }), 400, 'DCS.4800', /source_instance/],
      ['create without name', 'POST', `/v2/${PROJECT}/migration/instance`, '{}', 400, 'DCS.4800', /name/],
      ['name not a string', 'POST', `/v2/${PROJECT}/migration/instance`, '{"name":5}', 400, 'DCS.4800', /name/],
      ['unknown task', 'GET', `/v2/${PROJECT}/migration-task/00000000-0000-0000-0000-000000000000`, '', 400, 'DCS.4133'],
      ['unknown path', 'GET', `/v2/${PROJECT}/no-such-thing`, '', 404, 'DCS.4001'],
      ['bad offset', 'GET', `/v2/${PROJECT}/migration-tasks?offset=-1`, '', 400, 'DCS.4800', /offset/],
      ['bad limit', 'GET', `/v2/${PROJECT}/migration-tasks?limit=5000`, '', 400, 'DCS.4800', /limit/],
      ['batch-stop without list', 'POST', `/v2/${PROJECT}/migration-task/batch-stop`, '{}', 400, 'DCS.4800', /migration_tasks/],
      ['batch-restart of 51', 'POST', `/v2/${PROJECT}/migration-tasks/batch-restart`, JSON.stringify({ migration_tasks: Array.from({ length: 51 }, (_, i) => `t${i}`) }), 400, 'DCS.4800'],
      ['delete with a string', 'DELETE', `/v2/${PROJECT}/migration-tasks/delete`, '{"task_id_list":"x"}', 400, 'DCS.4800', /task_id_list/],
      ['import into an unknown instance', 'POST', `/v2/${PROJECT}/migration-task`, JSON.stringify({ task_name: 'b', migration_type: 'backupfile_import', migration_method: 'full_amount_migration', target_instance: { id: 'x' }, backup_files: { bucket_name: 'b', files: [{ file_name: 'f' }] } }), 404, 'DCS.3022'],
      ['import without files', 'POST', `/v2/${PROJECT}/migration-task`, JSON.stringify({ task_name: 'b', migration_type: 'backupfile_import', migration_method: 'full_amount_migration', target_instance: { addrs: target.addr }, backup_files: { bucket_name: 'b' } }), 400, 'DCS.4800', /backup_files.files/],
      ['exchange-ip of a task that is not migrating', 'POST', `/v2/${PROJECT}/migration-task/${taskId}/exchange-ip`, '{}', 400, 'DCS.4957'],
      ['stop a task that is not migrating', 'POST', `/v2/${PROJECT}/migration-task/${taskId}/stop`, '', 400, 'DCS.4957'],
      ['huge body', 'POST', configure, Buffer.alloc(3 * 1024 * 1024, 0x20), 413, 'APIGW.0201'],
    ];
    for (const [what, method, urlPath, raw, status, code, msg] of cases) {
      const body = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      const headers = signedHeaders(service.port, method, urlPath, body);
      const res = body.length > 1024 * 1024 ? { ...(await socketRequest(service.port, method, urlPath, body, headers)), headers: {} as http.IncomingHttpHeaders } : await rawRequest(service.port, method, urlPath, body.length ? body : null, headers);
      assert.equal(res.status, status, `${what}: ${res.body}`);
      const parsed = JSON.parse(res.body) as { error_code: string; error_msg: string; error_ext_msg: unknown };
      assert.equal(parsed.error_code, code, `${what}: ${res.body}`);
      assert.ok('error_ext_msg' in parsed, what);
      if (msg) assert.match(parsed.error_msg, msg, what);
      if (body.length <= 1024 * 1024) assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/, what);
    }
  });

  it('serves an OpenAPI document of the whole API', async () => {
    const res = await rawRequest(service.port, 'GET', '/openapi.json', null, {});
    assert.equal(res.status, 200);
    const doc = JSON.parse(res.body) as { paths: Record<string, unknown> };
    for (const p of ['/v2/{project_id}/migration/instance', '/v2/{project_id}/migration/{task_id}/task', '/v2/{project_id}/migration-tasks/batch-restart', '/v2/{project_id}/jobs/{job_id}']) {
      assert.ok(p in doc.paths, p);
    }
  });

  it('imports a backup file from a bucket (CreateMigrationTask backupfile_import) and verifies a task (extension)', async () => {
    await source.client(0).flushall();
    await target.client(0).flushall();
    for (let i = 0; i < 50; i++) await source.client(i % 3).set(`imported:${i}`, String(i));
    await source.client().call('SAVE');
    copyFileSync(path.join(source.dir, 'dump.rdb'), path.join(bucketDir, 'dump.rdb'));
    const created = ok(
      await client.call('POST', '/v2/{project_id}/migration-task', {
        data: {
          task_name: 'restore-backup',
          migration_type: 'backupfile_import',
          migration_method: 'full_amount_migration',
          target_instance: { id: 'redis-target-1' },
          backup_files: { file_source: 'self_build_obs', bucket_name: 'local-bucket', files: [{ file_name: 'dump.rdb', size: '1' }] },
        },
      }),
    );
    assert.equal(created.status, 'MIGRATING');
    const done = await waitForStatus(client, String(created.id), ['SUCCESS', 'FAILED']);
    assert.equal(done.status, 'SUCCESS', JSON.stringify(done));
    const diffs = await compareServers(source, target);
    assert.equal(diffs.length, 0, formatDifferences(diffs));

    // A file that is not a backup fails the task with the reason, before writing anything.
    writeFileSync(path.join(bucketDir, 'notes.txt'), 'not a backup at all');
    const bad = ok(
      await client.call('POST', '/v2/{project_id}/migration-task', {
        data: { task_name: 'bad', migration_type: 'backupfile_import', migration_method: 'full_amount_migration', target_instance: { addrs: target.addr }, backup_files: { bucket_name: 'local-bucket', files: [{ file_name: 'notes.txt' }] } },
      }),
    );
    const failed = await waitForStatus(client, String(bad.id), ['FAILED', 'SUCCESS']);
    assert.equal(failed.status, 'FAILED');
    assert.match(String(failed.error), /notes\.txt/);

    // Verification of an online task's source and target.
    const taskId = await createTask(client, 'to-verify');
    ok(
      await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
        pathParams: { task_id: taskId },
        // The target holds the imported keys already (the same as the source's).
        data: { migration_method: 'full_amount_migration', resume_mode: 'auto', source_instance: { addrs: source.addr, password: 'src-pass-123' }, target_instance: { addrs: target.addr }, target_conflict: 'replace' },
      }),
    );
    await waitForStatus(client, taskId, ['SUCCESS']);
    const started = ok(await client.call('POST', '/v2/{project_id}/migration-task/{task_id}/verify', { pathParams: { task_id: taskId }, data: { rounds: 2 } }));
    assert.equal(started.status, 'running');
    let result: SdkResponse | SdkError = started;
    for (let i = 0; i < 100; i++) {
      result = await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/verify', { pathParams: { task_id: taskId } });
      if (!isError(result) && result.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const verified = ok(result);
    assert.equal(verified.status, 'done', JSON.stringify(verified));
    assert.equal(verified.equal, true, JSON.stringify(verified));
  });

  it('a manual-mode task fails on a lost source link; batch-restart resumes from its checkpoint without a full sync', async () => {
    await source.client(0).flushall();
    await target.client(0).flushall();
    await source.client(0).set('m:before', '1');
    const proxy = await startProxy(source.port);
    try {
      const taskId = await createTask(client, 'manual-task');
      ok(
        await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
          pathParams: { task_id: taskId },
          data: { migration_method: 'incremental_migration', resume_mode: 'manual', source_instance: { addrs: proxy.addr, password: 'src-pass-123' }, target_instance: { addrs: target.addr } },
        }),
      );
      await waitForStatus(client, taskId, ['INCRMIGEATING']);
      for (let i = 0; i < 20; i++) await source.client(0).incr('m:counter');
      for (let i = 0; i < 50 && (await target.client(0).get('m:counter')) !== '20'; i++) await new Promise((r) => setTimeout(r, 100));
      proxy.cut();
      const failed = await waitForStatus(client, taskId, ['FAILED']);
      assert.match(String(failed.error), /closed|ECONNRESET/);
      for (let i = 0; i < 10; i++) await source.client(0).incr('m:counter');
      const restarted = ok(await client.call('POST', '/v2/{project_id}/migration-tasks/batch-restart', { data: { migration_tasks: [taskId] } }));
      assert.equal((restarted.migration_tasks as { result: string }[])[0]!.result, 'success');
      await waitForStatus(client, taskId, ['INCRMIGEATING']);
      for (let i = 0; i < 80 && (await target.client(0).get('m:counter')) !== '30'; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(await target.client(0).get('m:counter'), '30', 'every increment exactly once');
      const logs = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/logs', { pathParams: { task_id: taskId }, query: { limit: 200 } }));
      const snapshots = (logs.migration_logs as { message: string }[]).filter((l) => l.message === 'phase: snapshot').length;
      assert.equal(snapshots, 1, 'the restart resumed from the checkpoint: no second snapshot');
      ok(await client.call('POST', '/v2/{project_id}/migration-task/{task_id}/stop', { pathParams: { task_id: taskId } }));
      await waitForStatus(client, taskId, ['TERMINATED']);
    } finally {
      await proxy.close();
    }
  });
});
