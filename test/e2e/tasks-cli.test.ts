/**
 * `ferry tasks …` (the built CLI) against a real `ferry serve` migrating between two real
 * redis-servers: credentials from a 0600 profile file, the environment and flags; tables and
 * --json; the exit codes scripts rely on.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FerryClient } from '../../src/api/client.js';
import { parseProfiles, table } from '../../src/cli/tasks.js';
import { closedPort, startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { ferry } from '../helpers/run-cli.js';
import { startService, type Service } from '../helpers/service.js';

const PROJECT = '0123456789abcdef0123456789abcdef';
const AK = 'FERRYCLIAK0000000001';
const SK = 'ferry-cli-secret-key-0000000000000000001';
const TOKEN = 'ferry-cli-token-000000000001';
const SOURCE_PASSWORD = 'cli-source-password-9';

describe('ferry tasks', () => {
  let service: Service;
  let source: RedisServer;
  let target: RedisServer;
  let home: string;
  let passwordFile: string;
  let taskId: string;
  /** No credential from the test's own environment; the profile in a private config dir. */
  let env: Record<string, string>;
  let api: FerryClient;

  const run = (args: string[], extra: Record<string, string> = {}) => ferry(['tasks', ...args], { ...env, ...extra });

  before(async () => {
    [source, target] = await Promise.all([startRedis({ password: SOURCE_PASSWORD, config: { 'repl-diskless-sync-delay': '0' } }), startRedis()]);
    service = await startService({ credentials: [{ ak: AK, sk: SK, projectId: PROJECT }, { token: TOKEN, projectId: PROJECT }] });
    home = mkdtempSync(path.join(os.tmpdir(), 'ferry-cli-home-'));
    mkdirSync(path.join(home, 'ferry'), { recursive: true });
    writeFileSync(path.join(home, 'ferry', 'credentials'), `# test profile\n[default]\nendpoint = ${service.endpoint}\nak = ${AK}\nsk = ${SK}\nproject_id = ${PROJECT}\n\n[broken]\nak = ${AK}\nsk = wrong-secret\nproject_id = ${PROJECT}\n`, { mode: 0o600 });
    passwordFile = path.join(home, 'source-password');
    writeFileSync(passwordFile, `${SOURCE_PASSWORD}\n`, { mode: 0o600 });
    env = { XDG_CONFIG_HOME: home, FERRY_AK: '', FERRY_SK: '', FERRY_PROJECT_ID: '', FERRY_TOKEN: '', FERRY_ENDPOINT: '', FERRY_PROFILE: '', FERRY_CREDENTIALS_FILE: '' };
    for (let i = 0; i < 50; i++) await source.client().set(`cli:${i}`, `v${i}`);
    api = new FerryClient(service.endpoint, { ak: AK, sk: SK, projectId: PROJECT });
  });

  after(async () => {
    await service?.stop();
    service?.cleanup();
    await stopAll();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('parses profiles and prints aligned tables', () => {
    const p = parseProfiles('[default]\nak = A\n; comment\nproject-id=P\n[other]\nsk= S \n');
    assert.deepEqual(p.get('default'), { ak: 'A', project_id: 'P' });
    assert.deepEqual(p.get('other'), { sk: 'S' });
    assert.equal(table(['A', 'BB'], [['xxx', null]]), 'A    BB\nxxx  -\n');
  });

  it('creates an incremental task with the profile file; it reaches the stream phase with lag 0', async () => {
    const created = await run(['create', '--name', 'cli-task', '--source', source.addr, '--source-password-file', passwordFile, '--target', target.addr, '--bandwidth', '100', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const body = JSON.parse(created.stdout) as { task_id: string; status: string };
    taskId = body.task_id;
    assert.equal(body.status, 'FULLMIGRATING');
    // Waiting in-process (a CLI run per poll would cost a node start each); the CLI's own view after.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const p = (await api.call<{ phase: string; stream: { lag_bytes: number | null } }>('GET', `/v2/{project_id}/migration-task/${taskId}/progress`)).body;
      if (p.phase === 'incremental' && p.stream.lag_bytes === 0) break;
      if (Date.now() > deadline) assert.fail(`never caught up: ${JSON.stringify(p)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    const stats = await run(['stats', taskId, '--json']);
    assert.equal(stats.code, 0, stats.stderr);
    assert.equal((JSON.parse(stats.stdout) as { stream: { lag_bytes: number } }).stream.lag_bytes, 0);
    const human = await run(['stats', taskId]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^phase\s+incremental$/m);
    assert.match(human.stdout, /^lag\s+0 B$/m);
    assert.match(human.stdout, new RegExp(`^SHARD\\s+PHASE.*\\n${source.addr.replace(/\./g, '\\.')}\\s+incremental`, 'm'));
  });

  it('lists, shows and reads logs, as tables and as JSON; passwords never appear', async () => {
    const list = await run(['list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID\s+NAME\s+STATUS\s+METHOD\s+SOURCE\s+TARGET\s+CREATED$/m);
    assert.match(list.stdout, new RegExp(`^${taskId}\\s+cli-task\\s+INCRMIGEATING\\s+incremental\\s+`, 'm'));
    const filtered = JSON.parse((await run(['list', '--name', 'no-such', '--json'])).stdout) as { count: number };
    assert.equal(filtered.count, 0);
    const show = await run(['show', taskId]);
    assert.equal(show.code, 0);
    assert.match(show.stdout, /^bandwidth limit\s+100 MB\/s$/m);
    assert.match(show.stdout, /password \*{8}/);
    assert.ok(!show.stdout.includes(SOURCE_PASSWORD) && !(await run(['show', taskId, '--json'])).stdout.includes(SOURCE_PASSWORD));
    const logs = await run(['logs', taskId, '--level', 'INFO']);
    assert.equal(logs.code, 0);
    assert.match(logs.stdout, /CONFIGURED\s+migration configured: incremental_migration/);
    assert.ok(!/\bWARN\b/.test(logs.stdout.split('\n').slice(1).join('\n')), 'INFO only');
    const json = JSON.parse((await run(['logs', taskId, '--limit', '2', '--json'])).stdout) as { log_num: number; migration_logs: unknown[] };
    assert.equal(json.migration_logs.length, 2);
    assert.ok(json.log_num >= 3);
  });

  it('verify exits 0 when equal and 3 with differences', async () => {
    const equal = await run(['verify', taskId]);
    assert.equal(equal.code, 0, equal.stdout + equal.stderr);
    assert.match(equal.stdout, /^equal: \d+ keys checked/);
    await target.client().set('cli-only-on-target', 'x');
    const differs = await run(['verify', taskId, '--json']);
    assert.equal(differs.code, 3, differs.stdout + differs.stderr);
    assert.equal((JSON.parse(differs.stdout) as { equal: boolean }).equal, false);
    await target.client().del('cli-only-on-target');
  });

  it('stop --wait, a second stop is refused (exit 1), restart, delete needs --yes', async () => {
    const stop = await run(['stop', '--wait', taskId]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, new RegExp(`^${taskId}\\s+success`, 'm'));
    assert.match((await run(['show', taskId])).stdout, /^status\s+TERMINATED$/m);
    const again = await run(['stop', taskId]);
    assert.equal(again.code, 1);
    assert.match(again.stdout, /failed\s+DCS\.4957/);
    const restart = await run(['restart', taskId, '--json']);
    assert.equal(restart.code, 0, restart.stderr);
    const noYes = await run(['delete', taskId]);
    assert.equal(noYes.code, 2);
    assert.match(noYes.stderr, /--yes/);
    // Deleting a task whose worker is stopping used to crash the service (the worker's exit
    // updated a record the delete had just removed): the service must still answer afterwards.
    const del = await run(['delete', '--yes', taskId]);
    assert.equal(del.code, 0, del.stderr);
    const gone = await run(['show', taskId]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /DCS\.4133/);
  });

  it('a full migration with a db mapping (an extension): only source db 3, into target db 5; verify follows the mapping', async () => {
    const src3 = source.client(3);
    for (let i = 0; i < 20; i++) await src3.set(`mapped:${i}`, `v${i}`);
    await source.client(4).set('not-migrated', 'x');
    // Verify reports target keys that no migrated db accounts for: start from an empty target.
    await target.client().flushall();
    const created = await run(['create', '--name', 'cli-mapped', '--method', 'full', '--source', source.addr, '--source-password-file', passwordFile, '--target', target.addr, '--dbs', '3', '--db-map', '3:5', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const id = (JSON.parse(created.stdout) as { task_id: string }).task_id;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const status = (await api.call<{ status: string }>('GET', `/v2/{project_id}/migration-task/${id}`)).body.status;
      if (status === 'SUCCESS') break;
      assert.ok(status === 'FULLMIGRATING' && Date.now() < deadline, `status ${status}`);
      await new Promise((res) => setTimeout(res, 300));
    }
    assert.equal(await target.client(5).dbsize(), 20);
    assert.equal(await target.client(5).get('mapped:7'), 'v7');
    assert.equal(await target.client(4).exists('not-migrated'), 0);
    assert.equal(await target.client(3).dbsize(), 0);
    assert.match((await run(['show', id])).stdout, /^db mapping\s+map 3:5, only 3$/m);
    const verified = await run(['verify', id, '--json']);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const bad = await run(['create', '--name', 'cli-bad-map', '--source', source.addr, '--target', target.addr, '--db-map', '3-5']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /DCS\.4800: Invalid db_map in the request/);
    assert.equal((await run(['delete', '--yes', id])).code, 0);
  });

  it('a bad value is the API error, exit 1, and names the field', async () => {
    const r = await run(['create', '--name', 'bad-addr', '--source', 'not an address', '--target', target.addr]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /DCS\.4800: Invalid source_instance\.addrs in the request/);
    assert.match(r.stderr, /was created but not configured/);
  });

  it('credentials from the environment and flags override the profile; a token works too', async () => {
    const byEnv = await run(['list', '--json'], { FERRY_AK: AK, FERRY_SK: SK, FERRY_PROJECT_ID: PROJECT, FERRY_ENDPOINT: service.endpoint, XDG_CONFIG_HOME: path.join(home, 'none') });
    assert.equal(byEnv.code, 0, byEnv.stderr);
    const byToken = await run(['list', '--json', '--endpoint', service.endpoint, '--token', TOKEN, '--project-id', PROJECT], { XDG_CONFIG_HOME: path.join(home, 'none') });
    assert.equal(byToken.code, 0, byToken.stderr);
    const byFlags = await run(['list', '--sk', SK, '--ak', AK, '--project-id', PROJECT, '--endpoint', service.endpoint], { XDG_CONFIG_HOME: path.join(home, 'none') });
    assert.equal(byFlags.code, 0, byFlags.stderr);
    assert.match(byFlags.stderr, /--sk is visible to other users/);
  });

  it('exit codes: 5 refused authentication, 4 unreachable, 2 without credentials or with a readable profile file', async () => {
    const wrong = await run(['list', '--profile', 'broken', '--endpoint', service.endpoint]);
    assert.equal(wrong.code, 5, wrong.stderr);
    assert.match(wrong.stderr, /APIGW\.0301/);
    assert.ok(!wrong.stderr.includes('wrong-secret'));
    const port = await closedPort();
    const unreachable = await run(['list', '--endpoint', `http://127.0.0.1:${port}`]);
    assert.equal(unreachable.code, 4, unreachable.stderr);
    const none = await run(['list'], { XDG_CONFIG_HOME: path.join(home, 'none') });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no credentials/);
    const loose = path.join(home, 'loose');
    writeFileSync(loose, `[default]\nak = ${AK}\nsk = ${SK}\nproject_id = ${PROJECT}\n`);
    chmodSync(loose, 0o644);
    const refused = await run(['list', '--credentials-file', loose, '--endpoint', service.endpoint]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /readable by others \(mode 644\): run chmod 600/);
  });
});
