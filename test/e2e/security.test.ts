/**
 * Issue 15's attacks, replayed against a running service (and the CLI), each asserting the
 * refusal: source = target, one project aiming Ferry at another's server, a non-empty target,
 * Object.prototype bucket names, import errors, signature replays and edges; then the design
 * items (audit log, rate limit, body limits, file modes) and a fuzz of every route's body.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { closedPort, startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { startCluster, type RedisCluster } from '../helpers/redis-cluster.js';
import { startProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { sdkClient, startService, type SdkError, type SdkResponse, type Service } from '../helpers/service.js';
import { rawRequest, signedHeaders, socketRequest, type RawResponse } from '../helpers/http.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/cli.js');

const A = { ak: 'SECURITYTESTAK000001', sk: 'security-test-secret-key-a-000000000001', projectId: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' };
const B = { ak: 'SECURITYTESTAK000002', sk: 'security-test-secret-key-b-000000000002', projectId: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' };
const SOURCE_PASSWORD = 'src-secret-e-0451';

type Client = ReturnType<typeof sdkClient>;

function isError(r: SdkResponse | SdkError): r is SdkError {
  return !('httpStatusCode' in r) || r.httpStatusCode >= 400;
}

function ok(r: SdkResponse | SdkError): SdkResponse {
  if (isError(r)) assert.fail(`expected success, got ${r.httpStatusCode} ${r.errorCode} ${r.errorMsg}`);
  return r as SdkResponse;
}

function fails(r: SdkResponse | SdkError, status: number, code: string, msg?: RegExp): SdkError {
  assert.ok(isError(r), `expected ${code}, got success ${JSON.stringify(r)}`);
  assert.equal(r.httpStatusCode, status, JSON.stringify(r));
  assert.equal(r.errorCode, code, JSON.stringify(r));
  if (msg) assert.match(String(r.errorMsg), msg);
  return r;
}

/** A DCS error body, with the X-Request-Id every answer carries. */
function dcsError(res: RawResponse | { status: number; body: string; head: string }, status: number, code?: string): { error_code: string; error_msg: string } {
  assert.equal(res.status, status, res.body);
  const body = JSON.parse(res.body) as { error_code: string; error_msg: string; error_ext_msg: unknown };
  assert.equal(typeof body.error_code, 'string', res.body);
  assert.equal(typeof body.error_msg, 'string', res.body);
  assert.ok('error_ext_msg' in body, res.body);
  if (code) assert.equal(body.error_code, code, res.body);
  const requestId = 'head' in res ? /^x-request-id: (.+)$/im.exec(res.head)?.[1] : res.headers['x-request-id'];
  assert.match(String(requestId), /^[0-9a-f-]{36}$/, `X-Request-Id on ${res.body}`);
  return body;
}

async function waitFor<T>(what: string | (() => string), probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function task(client: Client, id: string): Promise<SdkResponse> {
  return ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: id } }));
}

async function waitForStatus(client: Client, id: string, wanted: string[], timeoutMs = 30_000): Promise<SdkResponse> {
  let last: SdkResponse | undefined;
  return waitFor(
    () => `task ${id} to reach ${wanted.join('/')} (last: ${JSON.stringify(last?.status)} ${JSON.stringify(last?.error)})`,
    async () => {
      last = await task(client, id);
      return wanted.includes(String(last.status)) ? last : undefined;
    },
    timeoutMs,
  );
}

async function createTask(client: Client, name: string): Promise<string> {
  const created = ok(await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name, vpc_id: 'v', subnet_id: 's', security_group_id: 'g' } }));
  return String(created.instance_id);
}

async function configure(client: Client, id: string, data: Record<string, unknown>): Promise<SdkResponse | SdkError> {
  return client.call('POST', '/v2/{project_id}/migration/{task_id}/task', { pathParams: { task_id: id }, data: { migration_method: 'full_amount_migration', resume_mode: 'manual', ...data } });
}

async function logsOf(client: Client, id: string): Promise<string[]> {
  const logs = ok(await client.call('GET', '/v2/{project_id}/migration-task/{task_id}/logs', { pathParams: { task_id: id }, query: { limit: 1000 } }));
  return (logs.migration_logs as { message: string }[]).map((l) => l.message);
}

/** Processes whose parent is `pid` (the service's task workers). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function noWorkersLeft(service: Service, timeoutMs = 15_000): Promise<void> {
  await waitFor(`the service's workers to exit (left: ${childrenOf(service.pid()).join(', ')})`, async () => (childrenOf(service.pid()).length === 0 ? true : undefined), timeoutMs);
}

function ferry(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('security: the attacks of issue 15 against a running service', () => {
  let service: Service;
  let a: Client;
  let b: Client;
  let srcA: RedisServer;
  let tgtA: RedisServer;
  let replicaA: RedisServer;
  let victim: RedisServer;
  let bSrc: RedisServer;
  let src2: RedisServer;
  let tgt2: RedisServer;
  let srcE: RedisServer;
  let cluster: RedisCluster;
  let proxyA: TcpProxy;
  let proxyE: TcpProxy;
  let closed: number;
  let bucketDir: string;

  before(async () => {
    // No diskless-sync delay: a replica (Ferry) gets its snapshot at once.
    const config = { 'repl-diskless-sync-delay': '0' };
    [srcA, tgtA, victim, bSrc, src2, tgt2, srcE] = await Promise.all([
      startRedis({ config }),
      startRedis({ config }),
      startRedis({ config }),
      startRedis({ config }),
      startRedis({ config }),
      startRedis({ config }),
      startRedis({ config, password: SOURCE_PASSWORD }),
    ]);
    replicaA = await startRedis({ config: { replicaof: `127.0.0.1 ${srcA.port}` } });
    cluster = await startCluster({ masters: 3 });
    proxyA = await startProxy(srcA.port);
    proxyE = await startProxy(srcE.port);
    closed = await closedPort();
    const pipe = victim.client().pipeline();
    for (let i = 0; i < 1000; i++) pipe.set(`owned:${i}`, String(i));
    await pipe.exec();
    bucketDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-sec-bucket-'));
    service = await startService({
      credentials: [
        { ak: A.ak, sk: A.sk, projectId: A.projectId },
        { ak: B.ak, sk: B.sk, projectId: B.projectId },
      ],
      // No addressPolicy: two projects, so the default is "registered".
      instances: [
        { id: 'a-src', projectId: A.projectId, name: 'a source', addrs: srcA.addr },
        { id: 'a-tgt', projectId: A.projectId, name: 'a target', addrs: tgtA.addr },
        { id: 'a-proxy', projectId: A.projectId, name: 'a source through a proxy', addrs: proxyA.addr },
        { id: 'a-replica', projectId: A.projectId, name: 'a replica of the source', addrs: replicaA.addr },
        { id: 'a-victim', projectId: A.projectId, name: 'a production server', addrs: victim.addr },
        { id: 'a-src2', projectId: A.projectId, name: 'src2', addrs: src2.addr },
        { id: 'a-tgt2', projectId: A.projectId, name: 'tgt2', addrs: tgt2.addr },
        { id: 'a-src-e', projectId: A.projectId, name: 'established source', addrs: proxyE.addr },
        { id: 'a-closed', projectId: A.projectId, name: 'never answers', addrs: `127.0.0.1:${closed}` },
        { id: 'b-src', projectId: B.projectId, name: 'b source', addrs: bSrc.addr },
        { id: 'b-cluster', projectId: B.projectId, name: 'one node of a cluster', addrs: cluster.nodes[0]!.addr },
      ],
      buckets: { bkt: bucketDir },
      firstConnectTimeoutSeconds: 2,
    });
    a = sdkClient(service.endpoint, A.ak, A.sk, A.projectId);
    b = sdkClient(service.endpoint, B.ak, B.sk, B.projectId);
  });

  after(async () => {
    await service?.stop();
    service?.cleanup();
    await proxyA?.close();
    await proxyE?.close();
    await cluster?.stop();
    if (bucketDir) rmSync(bucketDir, { recursive: true, force: true });
    await stopAll();
  });

  it('defect 1: source = target is refused before anything is written: equal addresses (DCS error), a proxy or a replica of the source (preflight)', async () => {
    for (let i = 0; i < 5; i++) await srcA.client().incr('counter');
    const keysBefore = await srcA.client().dbsize();

    const same = await createTask(a, 'same-server');
    fails(await configure(a, same, { source_instance: { id: 'a-src' }, target_instance: { addrs: srcA.addr } }), 400, 'DCS.4800', /same server/);

    // The same server under another address: found by run_id, before any write.
    const viaProxy = await createTask(a, 'same-via-proxy');
    ok(await configure(a, viaProxy, { migration_method: 'incremental_migration', resume_mode: 'auto', source_instance: { id: 'a-src' }, target_instance: { id: 'a-proxy' } }));
    const failed = await waitForStatus(a, viaProxy, ['FAILED']);
    assert.match(String(failed.error), /source and target are the same server .*run_id/);
    assert.ok(!(await logsOf(a, viaProxy)).some((m) => m === 'phase: snapshot'), 'nothing was written');

    // A replica of the source as the target: the same replication history.
    const intoReplica = await createTask(a, 'into-replica');
    ok(await configure(a, intoReplica, { source_instance: { id: 'a-src' }, target_instance: { id: 'a-replica' } }));
    assert.match(String((await waitForStatus(a, intoReplica, ['FAILED'])).error), /same server|replication history/);

    assert.equal(await srcA.client().get('counter'), '5', 'the INCRs are not undone');
    assert.equal(await srcA.client().dbsize(), keysBefore);
    await noWorkersLeft(service);
  });

  it('defect 1 on the CLI: one line, exit 1, for a proxy in front of the source and for two nodes of one cluster', async () => {
    const proxied = await ferry(['migrate', '--source', srcA.addr, '--target', proxyA.addr, '--method', 'incremental', '--target-conflict', 'replace']);
    assert.equal(proxied.code, 1, proxied.stderr);
    assert.match(proxied.stderr, /^ferry: source and target are the same server/m);
    assert.equal(proxied.stderr.trim().split('\n').filter((l) => l.startsWith('ferry:')).length, 1, proxied.stderr);
    const overlapping = await ferry(['migrate', '--source', cluster.addrs, '--target', cluster.nodes[1]!.addr, '--target-conflict', 'replace']);
    assert.equal(overlapping.code, 1, overlapping.stderr);
    assert.match(overlapping.stderr, /^ferry: source and target are the same server/m);
  });

  it('CLI passwords: from a file, and a warning when given on the command line', async () => {
    const file = path.join(bucketDir, 'source-password');
    writeFileSync(file, `${SOURCE_PASSWORD}\n`, { mode: 0o600 });
    const target = await startRedis();
    try {
      const fromFile = await ferry(['migrate', '--source', srcE.addr, '--source-password-file', file, '--target', target.addr]);
      assert.equal(fromFile.code, 0, fromFile.stderr);
      assert.ok(!/warning/.test(fromFile.stderr), fromFile.stderr);
      await target.client().flushall();
      const inline = await ferry(['migrate', '--source', srcE.addr, '--source-password', SOURCE_PASSWORD, '--target', target.addr]);
      assert.equal(inline.code, 0, inline.stderr);
      assert.match(inline.stderr, /warning: --source-password is visible to other users .*--source-password-file/);
      assert.ok(!inline.stderr.includes(SOURCE_PASSWORD));
    } finally {
      await target.stop();
    }
  });

  it('defect 2: under the default "registered" policy project B cannot aim Ferry at a server it does not own, not even through a cluster it registered', async () => {
    // The attack of the issue: B's own empty Redis into A's 1000-key server, then FLUSHALL on B's source.
    const attack = await createTask(b, 'attack');
    fails(await configure(b, attack, { migration_method: 'incremental_migration', source_instance: { id: 'b-src' }, target_instance: { addrs: victim.addr } }), 400, 'DCS.4800', /target_instance\.addrs.*registered/);
    fails(await configure(b, attack, { source_instance: { id: 'b-src' }, target_instance: { id: 'a-victim' } }), 404, 'DCS.3022');
    fails(await configure(b, attack, { source_instance: { addrs: victim.addr }, target_instance: { id: 'b-src' } }), 400, 'DCS.4800', /source_instance\.addrs/);
    fails(
      await b.call('POST', '/v2/{project_id}/migration-task', {
        data: { task_name: 'restore-over', migration_type: 'backupfile_import', migration_method: 'full_amount_migration', target_instance: { addrs: victim.addr }, backup_files: { bucket_name: 'bkt', files: [{ file_name: 'x.rdb' }] } },
      }),
      400,
      'DCS.4800',
      /target_instance\.addrs/,
    );
    await bSrc.client().flushall();
    assert.equal(await victim.client().dbsize(), 1000, "A's server is untouched");

    // At run time, after discovery: B registered one node of a cluster; its other masters are
    // not registered, so the worker's connections to them are refused.
    const viaCluster = await createTask(b, 'via-cluster');
    ok(await configure(b, viaCluster, { source_instance: { id: 'b-src' }, target_instance: { id: 'b-cluster' } }));
    assert.match(String((await waitForStatus(b, viaCluster, ['FAILED'])).error), /is not allowed by the service's address policy \(registered\)/);
  });

  it('defect 2: drop_flush keeps FLUSHALL / FLUSHDB on the source from reaching the target', async () => {
    await tgtA.client().flushall();
    await srcE.client().set('kept', '1');
    const id = await createTask(a, 'drop-flush');
    ok(await configure(a, id, { migration_method: 'incremental_migration', resume_mode: 'auto', drop_flush: true, source_instance: { id: 'a-src-e', password: SOURCE_PASSWORD }, target_instance: { id: 'a-tgt' } }));
    await waitForStatus(a, id, ['INCRMIGEATING']);
    await srcE.client().flushall();
    await srcE.client().set('after-flush', 'x');
    await waitFor('after-flush on the target', async () => ((await tgtA.client().get('after-flush')) === 'x' ? true : undefined));
    assert.equal(await tgtA.client().get('kept'), '1', 'FLUSHALL was not forwarded');
    ok(await a.call('POST', '/v2/{project_id}/migration-task/{task_id}/stop', { pathParams: { task_id: id } }));
    await waitForStatus(a, id, ['TERMINATED']);
  });

  it('defect 3: a full sync into a target that holds keys is refused (how many, which dbs) unless target_conflict says replace or purge-first', async () => {
    await src2.client().set('x', 'new');
    await tgt2.client(0).set('keep', 'target-only');
    await tgt2.client(2).set('x', 'old');
    const refused = await createTask(a, 'into-non-empty');
    // resume_mode auto: the refusal is final all the same (no restart loop).
    ok(await configure(a, refused, { resume_mode: 'auto', source_instance: { id: 'a-src2' }, target_instance: { id: 'a-tgt2' } }));
    const failed = await waitForStatus(a, refused, ['FAILED']);
    assert.match(String(failed.error), /the target is not empty: 2 keys \(db0: 1, db2: 1\)/);
    assert.equal(await tgt2.client(2).get('x'), 'old', 'nothing was overwritten');
    assert.ok(!(await logsOf(a, refused)).some((m) => /starting again/.test(m)), 'a preflight refusal is not retried');

    const replace = await createTask(a, 'replace');
    ok(await configure(a, replace, { target_conflict: 'replace', source_instance: { id: 'a-src2' }, target_instance: { id: 'a-tgt2' } }));
    await waitForStatus(a, replace, ['SUCCESS']);
    assert.equal(await tgt2.client(0).get('x'), 'new');
    assert.equal(await tgt2.client(0).get('keep'), 'target-only', 'replace keeps the keys the source does not have');

    const purge = await createTask(a, 'purge-first');
    ok(await configure(a, purge, { target_conflict: 'purge-first', source_instance: { id: 'a-src2' }, target_instance: { id: 'a-tgt2' } }));
    await waitForStatus(a, purge, ['SUCCESS']);
    assert.equal(await tgt2.client(0).get('keep'), null, 'purge-first emptied the target');
    assert.equal(await tgt2.client(2).get('x'), null);
    assert.equal(await tgt2.client(0).get('x'), 'new');

    fails(await configure(a, await createTask(a, 'bad-policy'), { target_conflict: 'overwrite', source_instance: { id: 'a-src2' }, target_instance: { id: 'a-tgt2' } }), 400, 'DCS.4063', /target_conflict/);

    const cliRefused = await ferry(['migrate', '--source', src2.addr, '--target', tgt2.addr]);
    assert.equal(cliRefused.code, 1, cliRefused.stderr);
    assert.match(cliRefused.stderr, /^ferry: the target is not empty: 1 keys \(db0: 1\)/m);
    const cliPurge = await ferry(['migrate', '--source', src2.addr, '--target', tgt2.addr, '--target-conflict', 'purge-first']);
    assert.equal(cliPurge.code, 0, cliPurge.stderr);
  });

  it("defect 4: bucket names of Object.prototype's members fail the task with a reason; no worker is left behind", async () => {
    for (const bucket of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const created = ok(
        await a.call('POST', '/v2/{project_id}/migration-task', {
          data: { task_name: `proto-${bucket}`, migration_type: 'backupfile_import', migration_method: 'full_amount_migration', target_instance: { id: 'a-tgt' }, backup_files: { bucket_name: bucket, files: [{ file_name: 'dump.rdb' }] } },
        }),
      );
      const done = await waitForStatus(a, String(created.id), ['FAILED', 'SUCCESS']);
      assert.equal(done.status, 'FAILED', bucket);
      assert.equal(done.error, `bucket "${bucket}" is not configured (config "buckets" or "objectStore")`);
      assert.ok(!String(done.error).includes(process.cwd()) && !(await logsOf(a, String(created.id))).some((m) => m.includes(root)), 'no server path');
    }
    await noWorkersLeft(service);
  });

  it('defect 5: an import says why it failed in the user\'s terms, without server paths', async () => {
    await src2.client().call('SAVE');
    const dump = readFileSync(path.join(src2.dir, 'dump.rdb'));
    writeFileSync(path.join(bucketDir, 'truncated.rdb'), dump.subarray(0, Math.floor(dump.length / 2)));
    writeFileSync(path.join(bucketDir, 'notes.txt'), 'not a backup at all');
    const cases: [string, RegExp][] = [
      ['missing.rdb', /missing\.rdb in bucket bkt: no such file/],
      ['notes.txt', /notes\.txt/],
      ['truncated.rdb', /truncated\.rdb.*(ends|truncated|byte)/],
    ];
    for (const [file, reason] of cases) {
      const created = ok(
        await a.call('POST', '/v2/{project_id}/migration-task', {
          data: { task_name: `import-${file}`, migration_type: 'backupfile_import', migration_method: 'full_amount_migration', target_instance: { id: 'a-tgt' }, backup_files: { bucket_name: 'bkt', files: [{ file_name: file }] } },
        }),
      );
      const failed = await waitForStatus(a, String(created.id), ['FAILED', 'SUCCESS']);
      assert.equal(failed.status, 'FAILED', file);
      assert.match(String(failed.error), reason);
      assert.ok(!String(failed.error).includes(bucketDir) && !String(failed.error).includes(os.tmpdir()), `no server path in: ${failed.error}`);
      assert.ok(!/exited \(code/.test(String(failed.error)), String(failed.error));
    }
    await noWorkersLeft(service);
  });

  it('defect 6: a replayed signed POST is refused, host must be signed, an unknown AK and a bad signature get the same answer', async () => {
    const urlPath = `/v2/${A.projectId}/migration/instance`;
    const body = Buffer.from(JSON.stringify({ name: 'replayed-once' }));
    const headers = signedHeaders(service.port, 'POST', urlPath, body, A);
    assert.equal((await rawRequest(service.port, 'POST', urlPath, body, headers)).status, 200);
    for (let i = 0; i < 2; i++) dcsError(await rawRequest(service.port, 'POST', urlPath, body, headers), 401, 'APIGW.0301');
    const list = ok(await a.call('GET', '/v2/{project_id}/migration-tasks', { query: { name: 'replayed-once' } }));
    assert.equal(list.count, 1, 'one task, not three');

    const noHost = signedHeaders(service.port, 'POST', urlPath, Buffer.from('{"name":"no-host"}'), A, { withoutHost: true });
    assert.match(dcsError(await rawRequest(service.port, 'POST', urlPath, '{"name":"no-host"}', { ...noHost, host: `127.0.0.1:${service.port}` }), 401, 'APIGW.0301').error_msg, /Host is not in SignedHeaders/);

    const list2 = `/v2/${A.projectId}/migration-tasks`;
    const unknown = dcsError(await rawRequest(service.port, 'GET', list2, null, signedHeaders(service.port, 'GET', list2, Buffer.alloc(0), { ...A, ak: 'NOSUCHACCESSKEY00000' })), 401, 'APIGW.0301');
    const wrong = dcsError(await rawRequest(service.port, 'GET', list2, null, signedHeaders(service.port, 'GET', list2, Buffer.alloc(0), A, { sk: 'not-the-secret' })), 401, 'APIGW.0301');
    assert.equal(unknown.error_msg, wrong.error_msg);
    await waitFor('the difference in the service log', async () => (/unknown access key/.test(service.output()) ? true : undefined), 5000);
  });

  it('defect 7: 414 and bad percent-encoding in the DCS shape with X-Request-Id; names with NUL or CR/LF are refused', async () => {
    const long = `/v2/${A.projectId}/migration-task/${'a'.repeat(300)}`;
    dcsError(await rawRequest(service.port, 'GET', long, null, signedHeaders(service.port, 'GET', long, Buffer.alloc(0), A)), 414, 'APIGW.0201');
    const host = { host: `127.0.0.1:${service.port}` };
    dcsError(await socketRequest(service.port, 'GET', `/v2/${A.projectId}/migration-task/%zz`, Buffer.alloc(0), host), 400, 'APIGW.0201');
    dcsError(await socketRequest(service.port, 'GET', '/nowhere', Buffer.alloc(0), host), 404, 'DCS.4001');
    // Without a Host header at all: still the DCS shape (Node alone would answer a bare 400).
    dcsError(await socketRequest(service.port, 'GET', `/v2/${A.projectId}/migration-tasks`, Buffer.alloc(0), {}), 401, 'APIGW.0301');
    for (const name of ['evil\u0000name', 'line\r\nERROR fake log line', 'tab\tname', '   ']) {
      fails(await a.call('POST', '/v2/{project_id}/migration/instance', { data: { name } }), 400, 'DCS.4800', /name/);
      fails(
        await a.call('POST', '/v2/{project_id}/migration-task', {
          data: { task_name: name, migration_type: 'backupfile_import', migration_method: 'full_amount_migration', target_instance: { id: 'a-tgt' }, backup_files: { bucket_name: 'bkt', files: [{ file_name: 'dump.rdb' }] } },
        }),
        400,
        'DCS.4800',
        /task_name/,
      );
    }
    fails(
      await a.call('POST', '/v2/{project_id}/migration-task', {
        data: { task_name: 'fine', migration_type: 'backupfile_import', migration_method: 'full_amount_migration', target_instance: { id: 'a-tgt' }, backup_files: { bucket_name: 'bkt', files: [{ file_name: 'a\nb.rdb' }] } },
      }),
      400,
      'DCS.4800',
      /backup_files\.files\[0\]\.file_name/,
    );
  });

  it('defect 7: resume_mode auto fails a task that never connected after the bound, and keeps an established one retrying', async () => {
    const never = await createTask(a, 'never-connects');
    const started = Date.now();
    ok(await configure(a, never, { migration_method: 'incremental_migration', resume_mode: 'auto', source_instance: { id: 'a-closed' }, target_instance: { id: 'a-tgt' } }));
    const failed = await waitForStatus(a, never, ['FAILED'], 20_000);
    assert.match(String(failed.error), /never connected in 2 s .*ECONNREFUSED/);
    assert.ok(Date.now() - started >= 2000);

    await tgtA.client().flushall();
    const established = await createTask(a, 'established');
    ok(await configure(a, established, { migration_method: 'incremental_migration', resume_mode: 'auto', source_instance: { id: 'a-src-e', password: SOURCE_PASSWORD }, target_instance: { id: 'a-tgt' } }));
    await waitForStatus(a, established, ['INCRMIGEATING']);
    proxyE.refuse();
    proxyE.cut();
    // Twice the bound without a source: still migrating (reconnecting), not FAILED.
    await new Promise((r) => setTimeout(r, 4500));
    assert.equal((await task(a, established)).status, 'INCRMIGEATING');
    proxyE.accept();
    await srcE.client().set('after-outage', 'y');
    await waitFor('after-outage on the target', async () => ((await tgtA.client().get('after-outage')) === 'y' ? true : undefined), 30_000);
    ok(await a.call('POST', '/v2/{project_id}/migration-task/{task_id}/stop', { pathParams: { task_id: established } }));
    await waitForStatus(a, established, ['TERMINATED']);
  });

  it('audit log: every mutating call with who, what, when and outcome, never a secret, per project; in the OpenAPI document', async () => {
    const id = await createTask(a, 'audited');
    fails(await configure(a, id, { source_instance: { id: 'a-src-e', password: SOURCE_PASSWORD }, target_instance: { addrs: victim.addr, password: 'another-secret' }, resume_mode: 'sometimes' }), 400, 'DCS.4063');
    const page = ok(await a.call('GET', '/v2/{project_id}/audit-logs', { query: { limit: 1000 } }));
    const entries = page.audit_logs as { actor: string; operation: string; task_ids: string[]; http_status: number; error_code: string; time: string; request_id: string; source_ip: string }[];
    const created = entries.find((e) => e.operation === 'CreateOnlineMigrationTask' && e.task_ids.includes(id));
    assert.ok(created, JSON.stringify(entries.slice(0, 3)));
    assert.equal(created.actor, `ak:${A.ak}`);
    assert.equal(created.http_status, 200);
    assert.equal(created.error_code, '');
    assert.match(created.time, /^\d{4}-\d\d-\d\dT/);
    assert.equal(created.source_ip, '127.0.0.1');
    const refused = entries.find((e) => e.operation === 'SetOnlineMigrationTask' && e.task_ids.includes(id));
    assert.ok(refused);
    assert.equal(refused.http_status, 400);
    assert.equal(refused.error_code, 'DCS.4063');
    assert.ok(entries.some((e) => e.actor === 'unauthenticated' && e.error_code === 'APIGW.0301'), 'refused callers are recorded against the project they named');
    const all = JSON.stringify(page) + readdirSync(service.dataDir).filter((f) => f.startsWith('ferry.db')).map((f) => readFileSync(path.join(service.dataDir, f)).toString('latin1')).join('');
    assert.ok(!all.includes(SOURCE_PASSWORD) && !all.includes('another-secret'), 'no password in the audit log or the database');
    const theirs = ok(await b.call('GET', '/v2/{project_id}/audit-logs', { query: { limit: 1000 } }));
    assert.ok(!(theirs.audit_logs as { task_ids: string[] }[]).some((e) => e.task_ids.includes(id)), "project B does not see A's calls");

    const doc = JSON.parse((await rawRequest(service.port, 'GET', '/openapi.json', null, {})).body) as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, Record<string, unknown>> } }> } }>> };
    assert.ok('/v2/{project_id}/audit-logs' in doc.paths);
    const configureBody = doc.paths['/v2/{project_id}/migration/{task_id}/task']!.post!.requestBody!.content['application/json']!.schema.properties;
    for (const f of ['drop_flush', 'target_conflict', 'write_error_policy']) assert.equal(configureBody[f]!['x-ferry-extension'], true, f);
    assert.deepEqual(configureBody.target_conflict!.enum, ['fail', 'replace', 'purge-first', null]);
  });

  it('body limits per route: 413 in the DCS shape past an operation\'s limit, while a long id list still fits DeleteMigrationTask', async () => {
    const urlPath = `/v2/${A.projectId}/migration/instance`;
    const big = Buffer.from(JSON.stringify({ name: 'big', description: 'd'.repeat(100 * 1024) }));
    const res = await socketRequest(service.port, 'POST', urlPath, big, signedHeaders(service.port, 'POST', urlPath, big, A));
    dcsError(res, 413, 'APIGW.0201');
    const ids = Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(36, '0')}`);
    ok(await a.call('DELETE', '/v2/{project_id}/migration-tasks/delete', { data: { task_id_list: ids } }));
  });
});

describe('security: data dir and file modes, the single-project default, rate limit per access key', () => {
  let service: Service | undefined;
  after(async () => {
    await service?.stop();
    service?.cleanup();
  });

  it('an existing data dir (0755) and database (0644) become 0700 and 0600, the key too; one project means policy "any" with a warning; the 9th request in the window is refused for that AK only', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-sec-modes-'));
    chmodSync(dataDir, 0o755);
    writeFileSync(path.join(dataDir, 'ferry.db'), '');
    chmodSync(path.join(dataDir, 'ferry.db'), 0o644);
    mkdirSync(path.join(dataDir, 'unrelated'), { mode: 0o755 });
    writeFileSync(path.join(dataDir, 'secret.key'), Buffer.alloc(32, 7));
    chmodSync(path.join(dataDir, 'secret.key'), 0o644);
    service = await startService({ credentials: [{ ak: A.ak, sk: A.sk, projectId: A.projectId }, { token: 'sec-token', projectId: A.projectId }], rateLimit: { max: 8, timeWindowMs: 60_000 } }, { dataDir });
    assert.equal(statSync(dataDir).mode & 0o777, 0o700);
    for (const f of readdirSync(dataDir).filter((n) => n.startsWith('ferry.db') || n === 'secret.key')) assert.equal(statSync(path.join(dataDir, f)).mode & 0o777, 0o600, f);
    assert.match(service.output(), /warning: address policy "any"/);

    const client = sdkClient(service.endpoint, A.ak, A.sk, A.projectId);
    for (let i = 0; i < 8; i++) ok(await client.call('GET', '/v2/{project_id}/migration-tasks'));
    fails(await client.call('GET', '/v2/{project_id}/migration-tasks'), 429, 'APIGW.0308');
    const urlPath = `/v2/${A.projectId}/migration-tasks`;
    dcsError(await rawRequest(service.port, 'GET', urlPath, null, signedHeaders(service.port, 'GET', urlPath, Buffer.alloc(0), A)), 429, 'APIGW.0308');
    assert.equal((await rawRequest(service.port, 'GET', urlPath, null, { 'x-auth-token': 'sec-token' })).status, 200, 'another credential has its own budget');
  });
});

describe('security: fuzzing every route body', () => {
  let service: Service;
  let redis: RedisServer;
  let closed: number;

  before(async () => {
    redis = await startRedis();
    closed = await closedPort();
    service = await startService({
      credentials: [{ ak: A.ak, sk: A.sk, projectId: A.projectId }],
      // Only a closed loopback port may be named: whatever the fuzzer makes valid goes nowhere.
      addressPolicy: { mode: 'allow', allow: [`127.0.0.1/32:${closed}`] },
      instances: [{ id: 'inst', projectId: A.projectId, name: 'i', addrs: redis.addr }],
      buckets: { bkt: mkdtempSync(path.join(os.tmpdir(), 'ferry-sec-fuzz-')) },
      // An object store the policy does not allow (never reached: refused before connecting).
      objectStore: { endpoint: 'http://127.0.0.2:9', accessKeyId: 'fuzz-key', secretAccessKey: 'fuzz-secret' },
      firstConnectTimeoutSeconds: 1,
      rateLimit: { max: 100_000, timeWindowMs: 60_000 },
    });
  });

  after(async () => {
    await service?.stop();
    service?.cleanup();
    await stopAll();
  });

  it('the object store is subject to the address policy too', async () => {
    const client = sdkClient(service.endpoint, A.ak, A.sk, A.projectId);
    const created = ok(
      await client.call('POST', '/v2/{project_id}/migration-task', {
        data: { task_name: 's3', migration_type: 'backupfile_import', migration_method: 'full_amount_migration', target_instance: { addrs: `127.0.0.1:${closed}` }, backup_files: { bucket_name: 'remote', files: [{ file_name: 'dump.rdb' }] } },
      }),
    );
    const failed = await waitForStatus(client, String(created.id), ['FAILED', 'SUCCESS']);
    assert.equal(failed.status, 'FAILED');
    assert.match(String(failed.error), /object store 127\.0\.0\.2:9: 127\.0\.0\.2:9 is not allowed by the service's address policy \(allow\)/);
    assert.ok(!String(failed.error).includes('fuzz-secret'));
  });

  it('generated bad bodies get DCS errors, never a 500; the service still answers and leaves no worker behind', async () => {
    const client = sdkClient(service.endpoint, A.ak, A.sk, A.projectId);
    const taskId = await createTask(client, 'fuzz-target');
    const addr = `127.0.0.1:${closed}`;
    const endpoint = { addrs: addr, password: null };
    const valid: Record<string, [string, string, Record<string, unknown>]> = {
      createOnline: ['POST', '/migration/instance', { name: 'n', description: 'd', vpc_id: 'v', subnet_id: 's', security_group_id: 'g' }],
      configure: ['POST', `/migration/${taskId}/task`, { migration_method: 'full_amount_migration', resume_mode: 'auto', bandwidth_limit_mb: 10, source_instance: endpoint, target_instance: { id: 'inst' }, write_error_policy: 'skip', drop_flush: true, target_conflict: 'replace' }],
      createImport: ['POST', '/migration-task', { task_name: 't', migration_type: 'backupfile_import', migration_method: 'full_amount_migration', target_instance: endpoint, backup_files: { file_source: 'self_build_obs', bucket_name: 'bkt', files: [{ file_name: 'f.rdb' }] } }],
      verify: ['POST', `/migration-task/${taskId}/verify`, { rounds: 2, ttl_tolerance_ms: 10 }],
      update: ['PUT', `/migration-task/${taskId}`, { resume_mode: 'manual', bandwidth_limit_mb: '5' }],
      stop: ['POST', `/migration-task/${taskId}/stop`, {}],
      syncStop: ['POST', `/migration-task/${taskId}/sync-stop`, {}],
      batchStop: ['POST', '/migration-task/batch-stop', { migration_tasks: [taskId] }],
      batchRestart: ['POST', '/migration-tasks/batch-restart', { migration_tasks: [taskId] }],
      delete: ['DELETE', '/migration-tasks/delete', { task_id_list: ['00000000-0000-0000-0000-000000000000'] }],
      exchangeIp: ['POST', `/migration-task/${taskId}/exchange-ip`, { exchanged_ip: ['1'], is_exchange_domain: false }],
      list: ['GET', '/migration-tasks?offset=0&limit=5', {}],
    };
    // Anything that could be a host name is replaced: the fuzzer must not make Ferry resolve
    // (or reach) a name; a valid address is the closed loopback port.
    const tame = (v: unknown, key = ''): unknown => {
      if (typeof v === 'string' && key === 'addrs' && /[A-Za-z0-9.-]+:\d/.test(v)) return addr;
      if (Array.isArray(v)) return v.map((x) => tame(x));
      if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, tame(x, k)]));
      return v;
    };
    const nasty = fc.oneof(
      { arbitrary: fc.anything({ maxDepth: 3, withNullPrototype: false }), weight: 2 },
      { arbitrary: fc.constantFrom('', ' ', '\u0000', '\r\n', 'a'.repeat(5000), -1, 0, 1.5, 1e308, 10241, '10241', true, null, [], {}, [null], { __proto__: { polluted: true } }), weight: 2 },
      // names a plain-object lookup would find on Object.prototype
      { arbitrary: fc.constantFrom('constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'), weight: 2 },
      { arbitrary: fc.string({ maxLength: 300 }), weight: 1 },
      { arbitrary: fc.integer(), weight: 1 },
    );
    /** Every path to a leaf of a valid body (`backup_files.files.0.file_name`...). */
    const leaves = (v: unknown, prefix: string[] = []): string[][] =>
      v !== null && typeof v === 'object' && Object.keys(v).length > 0 ? Object.entries(v).flatMap(([k, x]) => [[...prefix, k], ...leaves(x, [...prefix, k])]) : [];
    const setPath = (v: unknown, at: string[], value: unknown): unknown => {
      if (at.length === 0) return value;
      const copy: Record<string, unknown> = Array.isArray(v) ? ([...v] as unknown as Record<string, unknown>) : { ...(v as Record<string, unknown>) };
      copy[at[0]!] = setPath(copy[at[0]!], at.slice(1), value);
      return copy;
    };
    const body = (template: Record<string, unknown>): fc.Arbitrary<unknown> =>
      fc.oneof(
        // one field of a valid body replaced, at any depth
        fc.tuple(fc.constantFrom(...leaves(template), ['unknown'], ['source_instance'], ['backup_files']), nasty).map(([at, v]) => setPath(template, at, v)),
        fc.tuple(fc.constantFrom('addrs', 'id', 'password', 'bucket_name', 'files', 'file_source'), nasty).map(([k, v]) => ({ ...template, source_instance: { [k]: v }, target_instance: { addrs: addr, [k]: v }, backup_files: { bucket_name: 'bkt', [k]: v } })),
        nasty,
      );
    const seen = new Map<number, number>();
    for (const [name, [method, suffix, template]] of Object.entries(valid)) {
      // Besides the random runs: every string leaf set to each Object.prototype name.
      const examples: [unknown, boolean][] = leaves(template)
        .filter((at) => typeof at.reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], template) === 'string')
        .flatMap((at) => ['constructor', '__proto__', 'toString'].map((n): [unknown, boolean] => [setPath(template, at, n), false]));
      await fc.assert(
        fc.asyncProperty(body(template), fc.boolean(), async (value, asText) => {
          const urlPath = `/v2/${A.projectId}${suffix}`;
          const raw = Buffer.from(asText && typeof value === 'string' ? value : (JSON.stringify(tame(value)) ?? ''));
          const res = await rawRequest(service.port, method, urlPath, raw.length ? raw : null, signedHeaders(service.port, method, urlPath, raw, A));
          seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
          assert.ok(res.status < 500, `${name}: ${res.status} ${res.body} for ${raw.toString().slice(0, 300)}`);
          assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
          if (res.status >= 400) dcsError(res, res.status);
        }),
        { numRuns: 60, seed: 15, examples },
      );
    }
    assert.ok((seen.get(400) ?? 0) > 200, `mostly refused: ${JSON.stringify([...seen])}`);
    ok(await client.call('GET', '/v2/{project_id}/migration-tasks'));
    // Every task the fuzzer managed to start ends (FAILED: nothing to connect to) and its worker exits.
    await waitFor('every task to settle', async () => {
      const list = ok(await client.call('GET', '/v2/{project_id}/migration-tasks', { query: { limit: 1000 } }));
      return (list.migration_tasks as { status: string }[]).every((t) => !['FULLMIGRATING', 'INCRMIGEATING', 'MIGRATING', 'TERMINATING'].includes(t.status)) ? true : undefined;
    });
    await noWorkersLeft(service);
    assert.ok(!/unexpected error in a request/.test(service.output()), service.output().slice(-2000));
  });
});

