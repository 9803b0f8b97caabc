/**
 * `ferry tasks …`: a client of a running service for people at a terminal and for scripts.
 * Credentials come from the flags, then the environment, then a profile file
 * (~/.config/ferry/credentials, INI sections of endpoint / ak / sk / project_id / token, which
 * must be readable by its owner only). Tables by default, --json for scripts; exit codes in
 * EXIT below.
 */
import { readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApiCallError, FerryClient, type ClientCredential } from '../api/client.js';
import { formatBytes } from '../common/format.js';
import { count } from './output.js';
import { resolvePassword } from './passwords.js';

export const EXIT = { ok: 0, refused: 1, usage: 2, differences: 3, unreachable: 4, unauthenticated: 5 } as const;

class UsageError extends Error {}

export interface TasksOptions {
  endpoint?: string;
  profile?: string;
  credentialsFile?: string;
  ak?: string;
  sk?: string;
  projectId?: string;
  token?: string;
  json?: boolean;
  [option: string]: unknown;
}

export const DEFAULT_ENDPOINT = 'http://127.0.0.1:8080';

export function defaultCredentialsFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'ferry', 'credentials');
}

/** `[name]` sections of `key = value` lines; `#` and `;` start comments. */
export function parseProfiles(text: string): Map<string, Record<string, string>> {
  const profiles = new Map<string, Record<string, string>>();
  let current: Record<string, string> | null = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section) {
      current = {};
      profiles.set(section[1]!.trim(), current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || current === null) continue;
    current[line.slice(0, eq).trim().toLowerCase().replace(/-/g, '_')] = line.slice(eq + 1).trim();
  }
  return profiles;
}

/** The profile, or null when no file exists at the default place. A file others can read is refused. */
function loadProfile(opts: TasksOptions, env: NodeJS.ProcessEnv): Record<string, string> | null {
  const explicit = opts.credentialsFile || env.FERRY_CREDENTIALS_FILE || undefined;
  const file = explicit ?? defaultCredentialsFile(env);
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (e) {
    if (explicit) throw new UsageError(`cannot read the credentials file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return null;
  }
  // As ssh does with private keys: a secret others can read is not used.
  if ((mode & 0o077) !== 0) throw new UsageError(`the credentials file ${file} is readable by others (mode ${(mode & 0o777).toString(8)}): run chmod 600 ${file}`);
  const profiles = parseProfiles(readFileSync(file, 'utf8'));
  const name = opts.profile || env.FERRY_PROFILE || 'default';
  const profile = profiles.get(name);
  if (!profile) {
    if (opts.profile || env.FERRY_PROFILE) throw new UsageError(`no profile [${name}] in ${file}`);
    return null;
  }
  return profile;
}

/** Flags, then environment, then the profile: the first that names a credential wins as a whole. */
export function resolveConnection(opts: TasksOptions, env: NodeJS.ProcessEnv = process.env): { endpoint: string; credential: ClientCredential } {
  if (opts.sk !== undefined) process.stderr.write('ferry: warning: --sk is visible to other users of this machine (ps, shell history); prefer FERRY_SK or the credentials file\n');
  const profile = loadProfile(opts, env) ?? {};
  const endpoint = opts.endpoint || env.FERRY_ENDPOINT || profile.endpoint || DEFAULT_ENDPOINT;
  const layers: Record<string, string | undefined>[] = [
    { ak: opts.ak, sk: opts.sk, project_id: opts.projectId, token: opts.token },
    { ak: env.FERRY_AK || undefined, sk: env.FERRY_SK || undefined, project_id: env.FERRY_PROJECT_ID || undefined, token: env.FERRY_TOKEN || undefined },
    profile,
  ];
  const projectId = layers.map((l) => l.project_id).find((p) => p !== undefined && p !== '');
  for (const l of layers) {
    if (l.token) {
      if (!projectId) throw new UsageError('a token needs the project id: --project-id, FERRY_PROJECT_ID or project_id in the profile');
      return { endpoint, credential: { token: l.token, projectId } };
    }
    if (l.ak || l.sk) {
      if (!l.ak || !l.sk) throw new UsageError('give the access key and the secret key together (--ak/--sk, FERRY_AK/FERRY_SK, or ak/sk in the profile)');
      if (!projectId) throw new UsageError('the project id is missing: --project-id, FERRY_PROJECT_ID or project_id in the profile');
      return { endpoint, credential: { ak: l.ak, sk: l.sk, projectId } };
    }
  }
  throw new UsageError(`no credentials: give --ak/--sk/--project-id, set FERRY_AK/FERRY_SK/FERRY_PROJECT_ID, or write a [default] profile to ${defaultCredentialsFile(env)} (mode 0600)`);
}

// ---------------------------------------------------------------------------------------------
// Output

/** A plain text table: columns padded to their widest cell. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

const bytes = formatBytes;

const out = (text: string): void => void process.stdout.write(text);
const json = (value: unknown): void => out(`${JSON.stringify(value, null, 2)}\n`);

function intOption(value: unknown, name: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}`);
  return n;
}

function oneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}`);
  return value as T;
}

// ---------------------------------------------------------------------------------------------
// Commands

type Row = Record<string, unknown>;
const base = '/v2/{project_id}';

async function list(c: FerryClient, o: TasksOptions): Promise<number> {
  const r = await c.call<{ count: number; migration_tasks: Row[] }>('GET', `${base}/migration-tasks`, {
    query: { offset: intOption(o.offset, 'offset', 0, Number.MAX_SAFE_INTEGER), limit: intOption(o.limit, 'limit', 1, 1000), name: o.name as string | undefined },
  });
  if (o.json) return json(r.body), EXIT.ok;
  out(
    table(
      ['ID', 'NAME', 'STATUS', 'METHOD', 'SOURCE', 'TARGET', 'CREATED'],
      r.body.migration_tasks.map((t) => [t.task_id as string, t.task_name as string, t.status as string, String(t.migration_method ?? '').replace('_migration', '').replace('full_amount', 'full'), (t.data_source as string) || (t.migration_type === 'backupfile_import' ? 'backup files' : ''), t.target_instance_addrs as string, t.created_at as string]),
    ),
  );
  out(`${r.body.count} task(s)\n`);
  return EXIT.ok;
}

async function show(c: FerryClient, o: TasksOptions, id: string): Promise<number> {
  const r = await c.call<Row>('GET', `${base}/migration-task/${encodeURIComponent(id)}`);
  if (o.json) return json(r.body), EXIT.ok;
  const t = r.body;
  const side = (e: unknown): string => {
    const v = e as { addrs?: string; id?: string; password?: string | null } | null;
    return v ? `${v.addrs}${v.id ? ` (instance ${v.id})` : ''}${v.password ? ' password ********' : ''}` : '-';
  };
  out(
    table(
      ['FIELD', 'VALUE'],
      [
        ['id', t.task_id as string],
        ['name', t.task_name as string],
        ['status', t.status as string],
        ['type', t.migration_type as string],
        ['method', t.migration_method as string],
        ['resume mode', t.resume_mode as string],
        ['bandwidth limit', t.bandwidth_limit_mb ? `${t.bandwidth_limit_mb} MB/s` : 'none'],
        ['source mode', t.source_mode as string],
        ['db mapping', [t.db_map && `map ${t.db_map}`, t.dbs && `only ${t.dbs}`, t.db_prefix && `prefix ${t.db_prefix}`].filter(Boolean).join(', ') || 'each db to itself'],
        ['source', side(t.source_instance)],
        ['target', side(t.target_instance)],
        ['created', t.created_at as string],
        ['updated', t.updated_at as string],
        ['error', (t.error as string) || '-'],
      ],
    ),
  );
  return EXIT.ok;
}

async function stats(c: FerryClient, o: TasksOptions, id: string): Promise<number> {
  const r = await c.call<Row>('GET', `${base}/migration-task/${encodeURIComponent(id)}/progress`);
  const p = r.body as {
    status: string;
    phase: string | null;
    full_migration_progress: number;
    snapshot: { keys_done: number; keys_total: number | null; bytes_done: number; bytes_total: number | null; keys_per_second: number | null; eta_seconds: number | null } | null;
    stream: { lag_bytes: number | null; lag_seconds: number | null; applied_offset?: number };
    commands_per_second: number;
    read_bytes_per_second: number;
    keys_migrated: number;
    reconnects: number;
    full_resyncs: number;
    refused_writes: { count: number; by_code: Record<string, number> };
    shards: { shard: string; phase: string; applied_offset: number; received_offset: number; source_offset: number | null; lag_bytes: number | null; lag_seconds: number | null }[];
  };
  if (o.json) {
    const { history: _h, timeline: _t, ...rest } = r.body as Row;
    return json(rest), EXIT.ok;
  }
  const s = p.snapshot;
  out(
    table(
      ['FIELD', 'VALUE'],
      [
        ['status', p.status],
        ['phase', p.phase],
        ['progress', `${p.full_migration_progress} %`],
        ['snapshot keys', s ? `${count(s.keys_done)} / ${s.keys_total === null ? '?' : count(s.keys_total)}` : '-'],
        ['snapshot bytes', s ? `${bytes(s.bytes_done)} / ${s.bytes_total === null ? '?' : bytes(s.bytes_total)}` : '-'],
        ['snapshot rate', s?.keys_per_second !== null && s?.keys_per_second !== undefined ? `${count(s.keys_per_second)} keys/s` : '-'],
        ['eta', s?.eta_seconds !== null && s?.eta_seconds !== undefined ? `${s.eta_seconds} s` : '-'],
        ['lag', p.stream.lag_bytes === null ? '-' : bytes(p.stream.lag_bytes)],
        ['lag seconds', p.stream.lag_seconds === null ? '-' : p.stream.lag_seconds.toFixed(1)],
        ['commands/s', count(p.commands_per_second)],
        ['read', `${bytes(p.read_bytes_per_second)}/s`],
        ['keys migrated', count(p.keys_migrated)],
        ['reconnects', count(p.reconnects)],
        ['full resyncs', count(p.full_resyncs)],
        ['refused writes', `${count(p.refused_writes.count)}${Object.keys(p.refused_writes.by_code).length ? ` (${Object.entries(p.refused_writes.by_code).map(([k, n]) => `${k} ${n}`).join(', ')})` : ''}`],
      ],
    ),
  );
  if (p.shards.length > 0) {
    out('\n');
    out(table(['SHARD', 'PHASE', 'APPLIED', 'RECEIVED', 'SOURCE', 'LAG'], p.shards.map((sh) => [sh.shard, sh.phase, sh.applied_offset, sh.received_offset, sh.source_offset, bytes(sh.lag_bytes)])));
  }
  return EXIT.ok;
}

async function logs(c: FerryClient, o: TasksOptions, id: string): Promise<number> {
  const r = await c.call<{ log_num: number; migration_logs: Row[] }>('GET', `${base}/migration-task/${encodeURIComponent(id)}/logs`, {
    query: { offset: intOption(o.offset, 'offset', 0, Number.MAX_SAFE_INTEGER), limit: intOption(o.limit, 'limit', 1, 1000), log_level: oneOf(o.level, 'level', ['INFO', 'WARN', 'ERROR', 'DEBUG'] as const) },
  });
  if (o.json) return json(r.body), EXIT.ok;
  out(table(['TIME', 'LEVEL', 'CODE', 'MESSAGE'], r.body.migration_logs.map((l) => [l.created_at as string, l.log_level as string, l.log_code as string, l.message as string])));
  out(`${r.body.migration_logs.length} of ${r.body.log_num} entries\n`);
  return EXIT.ok;
}

function endpointBody(o: TasksOptions, side: 'source' | 'target'): Record<string, unknown> {
  const addrs = o[side] as string | undefined;
  const id = o[`${side}Id`] as string | undefined;
  if ((addrs === undefined) === (id === undefined)) throw new UsageError(`give --${side} <addrs> or --${side}-id <instance>, one of them`);
  const password = resolvePassword(side, { password: o[`${side}Password`] as string | undefined, passwordFile: o[`${side}PasswordFile`] as string | undefined });
  return { ...(id !== undefined ? { id } : { addrs }), password: password ?? null, tls: o[`${side}Tls`] ? true : null };
}

async function create(c: FerryClient, o: TasksOptions): Promise<number> {
  const method = oneOf(o.method, 'method', ['incremental', 'full', 'incremental_migration', 'full_amount_migration'] as const)!;
  const source = endpointBody(o, 'source');
  const target = endpointBody(o, 'target');
  const bandwidth = o.bandwidth === undefined ? null : intOption(o.bandwidth, 'bandwidth', 1, 10240);
  const created = await c.call<{ instance_id: string }>('POST', `${base}/migration/instance`, { body: { name: o.name, description: (o.description as string | undefined) ?? null } });
  const id = created.body.instance_id;
  try {
    const r = await c.call<Row>('POST', `${base}/migration/${encodeURIComponent(id)}/task`, {
      body: {
        migration_method: method.startsWith('incremental') ? 'incremental_migration' : 'full_amount_migration',
        resume_mode: oneOf(o.resume, 'resume', ['auto', 'manual'] as const),
        bandwidth_limit_mb: bandwidth,
        source_instance: source,
        target_instance: target,
        source_mode: oneOf(o.sourceMode, 'source-mode', ['auto', 'psync', 'scan'] as const) ?? null,
        target_conflict: oneOf(o.targetConflict, 'target-conflict', ['fail', 'replace', 'purge-first'] as const) ?? null,
        write_error_policy: oneOf(o.onWriteError, 'on-write-error', ['fail', 'skip'] as const) ?? null,
        drop_flush: o.dropFlush ? true : null,
        db_map: (o.dbMap as string | undefined) ?? null,
        dbs: (o.dbs as string | undefined) ?? null,
        db_prefix: (o.dbPrefix as string | undefined) ?? null,
      },
    });
    if (o.json) return json({ task_id: id, ...r.body }), EXIT.ok;
    out(`created task ${id} (${o.name}): ${r.body.status}\n`);
    return EXIT.ok;
  } catch (e) {
    // The task exists (unconfigured): say which, so it can be configured or deleted.
    if (e instanceof ApiCallError) e.message = `${e.message} (task ${id} was created but not configured; delete it with: ferry tasks delete --yes ${id})`;
    throw e;
  }
}

async function batch(c: FerryClient, o: TasksOptions, op: 'stop' | 'restart', ids: string[]): Promise<number> {
  const path = op === 'stop' ? `${base}/migration-task/batch-stop` : `${base}/migration-tasks/batch-restart`;
  const r = await c.call<{ migration_tasks: { task_id: string; result: string; error_code: string; error_msg: string }[] }>('POST', path, { body: { migration_tasks: ids } });
  const results = r.body.migration_tasks;
  if (op === 'stop' && o.wait) {
    for (const t of results.filter((x) => x.result === 'success')) {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const s = await c.call<Row>('GET', `${base}/migration-task/${encodeURIComponent(t.task_id)}`);
        if (s.body.status !== 'TERMINATING') break;
        if (Date.now() > deadline) throw new ApiCallError(0, 'TIMEOUT', `task ${t.task_id} is still stopping after 120 s`);
        await new Promise((res) => setTimeout(res, 300));
      }
    }
  }
  if (o.json) json(r.body);
  else out(table(['TASK', 'RESULT', 'ERROR'], results.map((t) => [t.task_id, t.result, t.error_code ? `${t.error_code} ${t.error_msg}` : ''])));
  return results.every((t) => t.result === 'success') ? EXIT.ok : EXIT.refused;
}

async function remove(c: FerryClient, o: TasksOptions, ids: string[]): Promise<number> {
  if (!o.yes) throw new UsageError(`deleting cannot be undone: add --yes to delete ${ids.join(' ')}`);
  const r = await c.call<{ task_id_list: string[] }>('DELETE', `${base}/migration-tasks/delete`, { body: { task_id_list: ids } });
  if (o.json) json(r.body);
  else out(`deleted ${r.body.task_id_list.length} task(s)${r.body.task_id_list.length ? `: ${r.body.task_id_list.join(' ')}` : ''}\n`);
  const missing = ids.filter((id) => !r.body.task_id_list.includes(id));
  if (missing.length > 0) {
    process.stderr.write(`ferry: no such task: ${missing.join(' ')}\n`);
    return EXIT.refused;
  }
  return EXIT.ok;
}

async function verify(c: FerryClient, o: TasksOptions, id: string): Promise<number> {
  const path = `${base}/migration-task/${encodeURIComponent(id)}/verify`;
  let v = (await c.call<Row>('POST', path, { body: { rounds: intOption(o.rounds, 'rounds', 1, 20) } })).body;
  if (o.wait !== false) {
    const deadline = Date.now() + intOption(o.timeout, 'timeout', 1, 86_400) * 1000;
    while (v.status === 'running') {
      if (Date.now() > deadline) throw new ApiCallError(0, 'TIMEOUT', `the verification of ${id} is still running after --timeout ${o.timeout} s`);
      await new Promise((res) => setTimeout(res, 500));
      v = (await c.call<Row>('GET', path)).body;
    }
  }
  if (o.json) json(v);
  else if (v.status === 'running') out(`verification of ${id} started\n`);
  else if (v.status === 'failed') out(`verification failed: ${v.error}\n`);
  else {
    const counts = Object.entries((v.counts ?? {}) as Record<string, number>).filter(([, n]) => n > 0);
    out(v.equal ? `equal: ${count(Number(v.keys_checked))} keys checked\n` : `differences: ${counts.map(([k, n]) => `${k} ${n}`).join(', ')} (${count(Number(v.keys_checked))} keys checked)\n`);
  }
  if (v.status === 'running') return EXIT.ok;
  return v.status === 'done' && v.equal ? EXIT.ok : EXIT.differences;
}

export async function runTasksCommand(name: string, args: string[], opts: TasksOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  try {
    const { endpoint, credential } = resolveConnection(opts, env);
    const client = new FerryClient(endpoint, credential);
    switch (name) {
      case 'list':
        return await list(client, opts);
      case 'show':
        return await show(client, opts, args[0]!);
      case 'stats':
        return await stats(client, opts, args[0]!);
      case 'logs':
        return await logs(client, opts, args[0]!);
      case 'create':
        return await create(client, opts);
      case 'stop':
        return await batch(client, opts, 'stop', args);
      case 'restart':
        return await batch(client, opts, 'restart', args);
      case 'delete':
        return await remove(client, opts, args);
      case 'verify':
        return await verify(client, opts, args[0]!);
      default:
        throw new UsageError(`unknown command ${name}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`ferry: ${e.message}\n`);
      return EXIT.usage;
    }
    if (e instanceof ApiCallError) {
      if (opts.json) process.stdout.write(`${JSON.stringify({ error_code: e.code, error_msg: e.message, http_status: e.status })}\n`);
      process.stderr.write(`ferry: ${e.status ? `${e.code}: ` : ''}${e.message}\n`);
      return e.status === 0 ? EXIT.unreachable : e.status === 401 ? EXIT.unauthenticated : EXIT.refused;
    }
    // A password file that cannot be read, and the like.
    process.stderr.write(`ferry: ${(e as Error).message}\n`);
    return EXIT.usage;
  }
}
