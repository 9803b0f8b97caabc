/**
 * The service with TLS endpoints (API extension fields and a registered instance in the
 * config) and the stats a running task reports.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { abortableLoad } from '../helpers/load.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { sdkClient, startService, type SdkError, type SdkResponse, type Service } from '../helpers/service.js';
import { makeTestCerts, type TestCerts } from '../helpers/tls-certs.js';

const PROJECT = '0123456789abcdef0123456789abcdef';
const AK = 'FERRYTESTAK000000009';
const SK = 'ferry-test-secret-key-0000000000000000009';

function ok(r: SdkResponse | SdkError): SdkResponse {
  if (!('httpStatusCode' in r) || r.httpStatusCode >= 400) assert.fail(`expected success, got ${JSON.stringify(r)}`);
  return r as SdkResponse;
}

describe('service: TLS endpoints and live stats', () => {
  let certs: TestCerts;
  let source: RedisServer;
  let target: RedisServer;
  let service: Service;
  before(async () => {
    certs = makeTestCerts();
    source = await startRedis({ tls: { certFile: certs.serverCert, keyFile: certs.serverKey, caFile: certs.caFile, authClients: true } });
    target = await startRedis({ tls: { certFile: certs.serverCert, keyFile: certs.serverKey, caFile: certs.caFile } });
    service = await startService({
      credentials: [{ ak: AK, sk: SK, projectId: PROJECT }],
      instances: [{ id: 'tls-target', projectId: PROJECT, name: 'tls target', addrs: `127.0.0.1:${target.tlsPort}`, tls: { caFile: certs.caFile } }],
    });
  });
  after(async () => {
    await service?.stop();
    service?.cleanup();
    await stopAll();
    certs?.cleanup();
  });

  it('migrates from a mutual-TLS source (tls fields) to a registered TLS target; stats show real rates while it runs', async () => {
    const client = sdkClient(service.endpoint, AK, SK, PROJECT);
    const pipe = source.client().pipeline();
    for (let i = 0; i < 2000; i++) pipe.set(`k:${i}`, 'x'.repeat(200));
    await pipe.exec();
    const created = ok(await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name: 'tls-task' } }));
    const taskId = String(created.instance_id);
    const tls = { ca_file: certs.caFile, cert_file: certs.clientCert, key_file: certs.clientKey };
    ok(
      await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
        pathParams: { task_id: taskId },
        data: { migration_method: 'incremental_migration', resume_mode: 'auto', source_instance: { addrs: `127.0.0.1:${source.tlsPort}`, tls }, target_instance: { id: 'tls-target' } },
      }),
    );
    const detail = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } }));
    assert.deepEqual((detail.source_instance as { tls: unknown }).tls, { ...tls, servername: '', insecure: false });

    const stop = new AbortController();
    const load = abortableLoad({ client: () => source.client(), signal: stop.signal, maxMs: 30_000 });
    let best = { kbps: 0, ops: 0 };
    const deadline = Date.now() + 25_000;
    let status = '';
    while (Date.now() < deadline && (best.kbps === 0 || best.ops === 0 || status !== 'INCRMIGEATING')) {
      const t = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } }));
      status = String(t.status);
      assert.notEqual(status, 'FAILED', String(t.error));
      const s = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/stats', { pathParams: { task_id: taskId } }));
      best = { kbps: Math.max(best.kbps, Number(s.target_input_kbps)), ops: Math.max(best.ops, Number(s.target_ops)) };
      await new Promise((r) => setTimeout(r, 300));
    }
    stop.abort();
    await load;
    assert.equal(status, 'INCRMIGEATING');
    assert.ok(best.kbps > 0, 'target_input_kbps was > 0 at some point');
    assert.ok(best.ops > 0, 'target_ops was > 0 at some point');

    const until = Date.now() + 20_000;
    for (;;) {
      const s = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/stats', { pathParams: { task_id: taskId } }));
      // The target also holds the task's checkpoint key until the task stops.
      if (s.offset === '0' && Number(s.target_dbsize) === (await source.client().dbsize()) + 1) break;
      assert.ok(Date.now() < until, `not in sync: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const s = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/stats', { pathParams: { task_id: taskId } }));
    for (const f of ['full_migration_progress', 'offset', 'source_dbsize', 'target_dbsize', 'target_input_kbps', 'target_ops']) assert.equal(typeof s[f], 'string', f);
    assert.equal(s.full_migration_progress, '100');
    assert.equal(s.source_dbsize, String(await source.client().dbsize()));
    ok(await client.call('POST', '/v2/{project_id}/migration-task/{task_id}/stop', { pathParams: { task_id: taskId } }));
    const stopBy = Date.now() + 20_000;
    while (String(ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: taskId } })).status) !== 'TERMINATED') {
      assert.ok(Date.now() < stopBy, 'the task did not stop');
      await new Promise((r) => setTimeout(r, 200));
    }
    const diffs = await compareServers(source, target);
    assert.equal(diffs.length, 0, formatDifferences(diffs));
  });

  it('refuses bad tls fields with DCS.4800 naming the field', async () => {
    const client = sdkClient(service.endpoint, AK, SK, PROJECT);
    const created = ok(await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name: 'bad-tls' } }));
    const r = await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
      pathParams: { task_id: String(created.instance_id) },
      data: { migration_method: 'full_amount_migration', resume_mode: 'manual', source_instance: { addrs: source.addr, tls: { cert_file: certs.clientCert } }, target_instance: { addrs: target.addr } },
    });
    assert.equal((r as SdkError).httpStatusCode, 400);
    assert.equal((r as SdkError).errorCode, 'DCS.4800');
    assert.match(String((r as SdkError).errorMsg), /source_instance\.tls/);
  });
});
