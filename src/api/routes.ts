import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AddressPolicyError, checkAddress, type AddressPolicy } from '../common/address-policy.js';
import type { EndpointTls } from '../common/endpoint.js';
import { TaskManager, TaskStateError } from '../tasks/manager.js';
import type { DbMappingSpec, LogLevel, MigrationMethodName, ResumeMode, Task, TaskEndpoint, TaskSwitchHook } from '../tasks/model.js';
import { DbMapper } from '../engine/db-map.js';
import { Errors } from './errors.js';
import { normalizeAddress } from './instances.js';
import { schemas } from './schemas.js';
import type { ApiDependencies } from './server.js';
import { jobView, logView, taskDetail, taskListItem, taskStats } from './views.js';

type Params = { project_id: string; task_id?: string; job_id?: string };

/** source_instance / target_instance as the schema lets them through (nulls for unused members). */
interface EndpointBody {
  id?: string | null;
  addrs?: string | null;
  password?: string | null;
  /** Extensions: TLS (true, or files on this host) and Sentinel's own password. */
  tls?: boolean | null | { ca_file?: string | null; cert_file?: string | null; key_file?: string | null; servername?: string | null; insecure?: boolean | null };
  sentinel_password?: string | null;
}

/** The TLS settings an endpoint body asks for (validated by its schema), or null. */
function tlsOf(body: EndpointBody['tls']): EndpointTls | null {
  if (body === undefined || body === null || body === false) return null;
  if (body === true) return {};
  const tls: EndpointTls = {};
  if (body.ca_file) tls.caFile = body.ca_file;
  if (body.cert_file) tls.certFile = body.cert_file;
  if (body.key_file) tls.keyFile = body.key_file;
  if (body.servername) tls.servername = body.servername;
  if (body.insecure) tls.insecure = true;
  return tls;
}

/** bandwidth_limit_mb after validation: a number, a numeric string, '' or null. */
function bandwidthOf(v: unknown): number | null {
  if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) return null;
  return typeof v === 'number' ? v : Number(String(v).trim());
}

function verificationView(task: Task): Record<string, unknown> {
  const v = task.verification;
  if (!v) return { status: 'none' };
  const report = v.report as { equal?: boolean; keysChecked?: number; rounds?: number; counts?: unknown; differences?: unknown } | null;
  return {
    status: v.status,
    started_at: v.startedAt,
    finished_at: v.finishedAt,
    equal: report?.equal ?? null,
    keys_checked: report?.keysChecked ?? null,
    rounds: report?.rounds ?? null,
    counts: report?.counts ?? null,
    differences: report?.differences ?? [],
    error: v.error,
  };
}

/** db_map, dbs and db_prefix checked the way the engine reads them (null when none is given). */
function dbMappingOf(b: { db_map?: string | null; dbs?: string | null; db_prefix?: string | null }): DbMappingSpec | null {
  const spec: DbMappingSpec = { dbMap: b.db_map?.trim() || null, dbs: b.dbs?.trim() || null, dbPrefix: b.db_prefix || null };
  if (!spec.dbMap && !spec.dbs && !spec.dbPrefix) return null;
  for (const [field, check] of [
    ['db_map', () => DbMapper.parse(spec.dbMap ?? undefined)],
    ['dbs', () => DbMapper.parseDbList(spec.dbs ?? undefined)],
    ['db_prefix', () => DbMapper.parsePrefixes(spec.dbPrefix ?? undefined)],
  ] as const) {
    try {
      check();
    } catch (e) {
      throw Errors.invalidParameter(field, `${(e as Error).message.replace(/^invalid --[a-z-]+ /, 'Invalid value ')}.`);
    }
  }
  return spec;
}

/** Body limits per operation: small, except where a list of ids or files may be long. */
const SMALL = 64 * 1024;
const LISTS = 512 * 1024;
const IMPORT = 1024 * 1024;

/**
 * The DCS v2 data-migration operations (dcs-api.md section 1), all under /v2/{project_id}, and
 * Ferry's extensions. Shapes are checked by the route schemas (src/api/schemas.ts) before a
 * handler runs; handlers check what depends on state (the task, the instances, the policy).
 */
export function registerRoutes(app: FastifyInstance, deps: ApiDependencies & { addressPolicy: AddressPolicy }): void {
  const { store, manager, secrets, instances, addressPolicy: policy } = deps;
  const base = '/v2/:project_id';
  const params = (req: FastifyRequest): Params => req.params as Params;

  async function taskOf(req: FastifyRequest): Promise<Task> {
    const id = params(req).task_id ?? '';
    const task = await store.getTask(req.projectId, id);
    if (!task) throw Errors.taskNotFound();
    return task;
  }

  /** Runs a state-changing manager call, turning a refusal into DCS.4957. */
  async function inState<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof TaskStateError) throw Errors.wrongState(e.message);
      throw e;
    }
  }

  /** Every address must be one the service's address policy lets this project reach. */
  async function checkPolicy(projectId: string, field: string, addrs: string[], registered: boolean): Promise<void> {
    if (policy.mode === 'any') return;
    if (policy.mode === 'registered' && !registered) {
      const mine = new Set(instances.addressesOf(projectId));
      const stranger = addrs.find((a) => !mine.has(normalizeAddress(a)));
      if (stranger !== undefined) {
        throw Errors.policyRefused(
          `${field}.addrs`,
          `${stranger} is not an instance registered for this project, and the service's address policy (registered) allows only those: name a registered instance by id.`,
        );
      }
      return;
    }
    if (policy.mode === 'allow') {
      for (const a of addrs) {
        try {
          await checkAddress(policy, a);
        } catch (e) {
          if (e instanceof AddressPolicyError) throw Errors.policyRefused(`${field}.addrs`, `${e.message}.`);
          throw e;
        }
      }
    }
  }

  /**
   * A task's switch hook: a command runs on the service's host, so only the commands the
   * service config lists are taken; a URL must be one the address policy lets this project reach.
   */
  async function hookOf(projectId: string, h: { command?: string; args?: string[] | null; url?: string; timeout_seconds?: number | null } | null): Promise<TaskSwitchHook | null> {
    if (!h) return null;
    const timeout = h.timeout_seconds ? { timeoutSeconds: h.timeout_seconds } : {};
    if (h.command !== undefined) {
      if (!(deps.allowedHookCommands ?? []).includes(h.command)) {
        throw Errors.invalidParameter('switch_hook.command', 'It is not one of the commands the service allows as hooks (config cutover.allowedHookCommands).');
      }
      return { command: h.command, ...(h.args ? { args: h.args } : {}), ...timeout };
    }
    let url: URL;
    try {
      url = new URL(h.url ?? '');
    } catch {
      throw Errors.invalidParameter('switch_hook.url', 'It is not a URL.');
    }
    if (url.username || url.password) throw Errors.invalidParameter('switch_hook.url', 'Credentials in the URL are not accepted (they would show in logs).');
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    await checkPolicy(projectId, 'switch_hook', [`${url.hostname}:${port}`], false);
    return { url: h.url!, ...timeout };
  }

  async function resolveEndpoint(projectId: string, field: string, given: EndpointBody): Promise<TaskEndpoint> {
    const password = given.password === undefined || given.password === null || given.password === '' ? null : given.password;
    if (given.id !== undefined && given.id !== null && given.id !== '') {
      const instance = instances.find(projectId, given.id);
      if (!instance) throw Errors.instanceNotFound(given.id);
      await checkPolicy(projectId, field, instance.addrs.split(','), true);
      const secret = password ?? instance.password ?? null;
      const sentinelSecret = given.sentinel_password || instance.sentinelPassword || null;
      return {
        id: instance.id,
        addrs: instance.addrs,
        name: instance.name,
        password: secret === null ? null : secrets.seal(secret),
        tls: tlsOf(given.tls) ?? instance.tls ?? null,
        sentinelPassword: sentinelSecret === null ? null : secrets.seal(sentinelSecret),
      };
    }
    const text = (given.addrs ?? '').trim();
    // A sentinel:// address is one string (its list is Sentinel's); the policy checks the Sentinels.
    const addrs = /^sentinel:/i.test(text) ? [text] : text.split(',').map((a) => a.trim()).filter((a) => a !== '');
    const policyAddrs = /^sentinel:\/\//i.test(text) ? text.slice('sentinel://'.length).split('/')[0]!.split(',') : addrs;
    await checkPolicy(projectId, field, policyAddrs, false);
    return {
      id: null,
      addrs: addrs.join(','),
      name: null,
      password: password === null ? null : secrets.seal(password),
      tls: tlsOf(given.tls),
      sentinelPassword: given.sentinel_password ? secrets.seal(given.sentinel_password) : null,
    };
  }

  // 2. CreateOnlineMigrationTask
  app.post(`${base}/migration/instance`, { schema: schemas.createOnline, bodyLimit: SMALL }, async (req) => {
    const b = req.body as { name: string; description?: string | null; vpc_id?: string | null; subnet_id?: string | null; security_group_id?: string | null };
    const now = new Date().toISOString();
    const task: Task = {
      id: TaskManager.newId(),
      projectId: req.projectId,
      name: b.name,
      description: b.description ?? '',
      migrationType: 'online_migration',
      migrationMethod: null,
      resumeMode: 'auto',
      bandwidthLimitMb: null,
      networkType: 'vpc',
      vpcId: b.vpc_id ?? null,
      subnetId: b.subnet_id ?? null,
      securityGroupId: b.security_group_id ?? null,
      source: null,
      target: null,
      status: 'RUNNING',
      error: null,
      jobId: TaskManager.newId(),
      stats: null,
      createdAt: now,
      updatedAt: now,
      stopRequested: false,
    };
    await store.createTask(task);
    req.auditTaskIds.push(task.id);
    const ms = String(Date.now());
    await store.createJob({ id: task.jobId!, projectId: req.projectId, type: 'createMigrationTask', status: 'SUCCESS', beginTime: ms, endTime: ms, failReason: null, entityId: task.id });
    await manager.log(task.id, 'INFO', 'CREATED', `task ${task.name} created`);
    return { instance_id: task.id, job_id: task.jobId };
  });

  // 3. SetOnlineMigrationTask: configure and start.
  app.post(`${base}/migration/:task_id/task`, { schema: schemas.configure, bodyLimit: SMALL }, async (req) => {
    const task = await taskOf(req);
    const b = req.body as {
      migration_method: MigrationMethodName;
      resume_mode: ResumeMode;
      bandwidth_limit_mb?: unknown;
      source_instance: EndpointBody;
      target_instance: EndpointBody;
      write_error_policy?: 'fail' | 'skip' | null;
      drop_flush?: boolean | null;
      target_conflict?: 'fail' | 'replace' | 'purge-first' | null;
      source_mode?: 'auto' | 'psync' | 'scan' | null;
      switch_hook?: { command?: string; args?: string[] | null; url?: string; timeout_seconds?: number | null } | null;
      db_map?: string | null;
      dbs?: string | null;
      db_prefix?: string | null;
    };
    const switchHook = await hookOf(req.projectId, b.switch_hook ?? null);
    const dbMapping = dbMappingOf(b);
    const source = await resolveEndpoint(req.projectId, 'source_instance', b.source_instance);
    const target = await resolveEndpoint(req.projectId, 'target_instance', b.target_instance);
    // The obvious case at once; other spellings of one server (a name, a proxy, a replica) are
    // found by the worker's preflight (run_id, replication id, node ids) before it writes.
    const sourceAddrs = new Set(source.addrs.split(',').map(normalizeAddress));
    const shared = target.addrs.split(',').map(normalizeAddress).find((a) => sourceAddrs.has(a));
    if (shared !== undefined) throw Errors.invalidParameter('target_instance', `It names the same server as source_instance (${shared}): a migration into itself would replay its own writes forever.`);
    const started = await inState(() =>
      manager.configure(task, {
        method: b.migration_method,
        resumeMode: b.resume_mode,
        bandwidthLimitMb: bandwidthOf(b.bandwidth_limit_mb),
        source,
        target,
        // Extensions: a refused write fails the task by default; FLUSHes are forwarded unless
        // dropped; a non-empty target is refused unless the task says what to do with it.
        writeErrorPolicy: b.write_error_policy ?? 'fail',
        dropFlush: b.drop_flush ?? false,
        targetConflict: b.target_conflict ?? 'fail',
        // Extension: how the source is read (scan mode for sources that refuse PSYNC).
        sourceMode: b.source_mode ?? 'auto',
        // Extension: what moves the clients at a cutover.
        switchHook,
        // Extension: which source dbs go where (`ferry migrate`'s --db-map, --dbs, --db-prefix).
        dbMapping,
      }),
    );
    return { id: started.id, name: started.name, status: started.status, error: '' };
  });

  // 1. CreateMigrationTask: a backup-file import (online tasks are created by op 2).
  app.post(`${base}/migration-task`, { schema: schemas.createImport, bodyLimit: IMPORT }, async (req) => {
    const b = req.body as {
      task_name: string;
      description?: string | null;
      migration_type: 'backupfile_import' | 'online_migration';
      migration_method: MigrationMethodName;
      target_instance: EndpointBody;
      backup_files: { file_source?: 'self_build_obs' | 'backup_record' | null; bucket_name?: string | null; backup_id?: string | null; files?: { file_name: string }[] | null };
    };
    if (b.migration_type === 'online_migration') {
      throw Errors.invalidValue('migration_type', 'Online migration tasks are created with POST /v2/{project_id}/migration/instance.');
    }
    const target = await resolveEndpoint(req.projectId, 'target_instance', b.target_instance);
    const files = b.backup_files;
    const now = new Date().toISOString();
    const task: Task = {
      id: TaskManager.newId(),
      projectId: req.projectId,
      name: b.task_name,
      description: b.description ?? '',
      migrationType: 'backupfile_import',
      migrationMethod: b.migration_method,
      resumeMode: 'manual',
      bandwidthLimitMb: null,
      networkType: null,
      vpcId: null,
      subnetId: null,
      securityGroupId: null,
      source: null,
      target,
      status: 'MIGRATING',
      error: null,
      jobId: null,
      stats: null,
      createdAt: now,
      updatedAt: now,
      stopRequested: false,
      backupFiles: { fileSource: files.file_source ?? 'self_build_obs', bucketName: files.bucket_name ?? null, files: (files.files ?? []).map((f) => f.file_name), backupId: files.backup_id ?? null },
    };
    await store.createTask(task);
    req.auditTaskIds.push(task.id);
    await manager.startImport(task);
    const current = (await store.getTask(req.projectId, task.id)) ?? task;
    return { id: current.id, name: current.name, status: current.status, error: current.error ?? '' };
  });

  // Ferry extension: verify a task's source and target (POST starts, GET reads).
  app.post(`${base}/migration-task/:task_id/verify`, { schema: schemas.startVerify, bodyLimit: SMALL, config: { optionalBody: true } }, async (req) => {
    const task = await taskOf(req);
    const b = req.body as { rounds?: number | null; ttl_tolerance_ms?: number | null };
    const started = await inState(() => manager.startVerify(task, b.rounds ?? 1, b.ttl_tolerance_ms ?? 2000));
    return verificationView(started);
  });

  app.get(`${base}/migration-task/:task_id/verify`, { schema: schemas.showVerify }, async (req) => verificationView(await taskOf(req)));

  // 4. ListMigrationTask
  app.get(`${base}/migration-tasks`, { schema: schemas.list }, async (req) => {
    const q = req.query as { offset: number; limit: number; name?: string };
    const { total, tasks } = await store.listTasks(req.projectId, { offset: q.offset, limit: q.limit, name: q.name || undefined });
    return { count: total, migration_tasks: tasks.map(taskListItem) };
  });

  // 5. ShowMigrationTask
  app.get(`${base}/migration-task/:task_id`, { schema: schemas.show }, async (req) => taskDetail(await taskOf(req)));

  // 6. ShowMigrationTaskStats
  app.get(`${base}/migration-task/:task_id/stats`, { schema: schemas.stats }, async (req) => {
    const task = await taskOf(req);
    return taskStats(task, manager.stats(task));
  });

  // 7. ListMigrationTaskLogs
  app.get(`${base}/migration-task/:task_id/logs`, { schema: schemas.logs }, async (req) => {
    const task = await taskOf(req);
    const q = req.query as { offset: number; limit: number; log_level?: LogLevel };
    const { total, logs } = await store.listLogs(task.id, { offset: q.offset, limit: q.limit, level: q.log_level });
    return { log_num: total, migration_logs: logs.map(logView) };
  });

  // 8. UpdateMigrationTask: resume mode (and, as a Ferry extension, the bandwidth limit).
  app.put(`${base}/migration-task/:task_id`, { schema: schemas.update, bodyLimit: SMALL }, async (req) => {
    const task = await taskOf(req);
    const b = req.body as { resume_mode?: ResumeMode | null; bandwidth_limit_mb?: unknown };
    const resumeMode = b.resume_mode ?? null;
    const bandwidth = bandwidthOf(b.bandwidth_limit_mb);
    if (resumeMode === null && bandwidth === null) throw Errors.invalidParameter('resume_mode', 'Nothing to update.');
    await manager.update(task, resumeMode, bandwidth);
    await manager.log(task.id, 'INFO', 'UPDATED', `updated: resume_mode ${task.resumeMode}${bandwidth !== null ? `, bandwidth ${bandwidth} MB/s` : ''}`);
    return {};
  });

  // 9. StopMigrationTask: asynchronous, answers with the task.
  app.post(`${base}/migration-task/:task_id/stop`, { schema: schemas.stop, bodyLimit: SMALL }, async (req) => {
    const task = await taskOf(req);
    return taskDetail(await inState(() => manager.stop(task)));
  });

  // 10. StopMigrationTaskSync: 204 once stopped.
  app.post(`${base}/migration-task/:task_id/sync-stop`, { schema: schemas.syncStop, bodyLimit: SMALL }, async (req, reply) => {
    const task = await taskOf(req);
    await inState(() => manager.stop(task));
    await manager.waitUntilStopped(task.id);
    return reply.status(204).type('application/json').send();
  });

  // 11. BatchStopMigrationTasks
  app.post(`${base}/migration-task/batch-stop`, { schema: schemas.batchStop, bodyLimit: LISTS }, async (req) => {
    const { migration_tasks: ids } = req.body as { migration_tasks: string[] };
    const results = [];
    for (const id of ids) results.push(await batchOne(req.projectId, id, (t) => manager.stop(t)));
    return { migration_tasks: results };
  });

  // 12. BatchRestartOnlineMigrationTasks
  app.post(`${base}/migration-tasks/batch-restart`, { schema: schemas.batchRestart, bodyLimit: LISTS }, async (req) => {
    const { migration_tasks: ids } = req.body as { migration_tasks: string[] };
    const results = [];
    for (const id of ids) results.push(await batchOne(req.projectId, id, (t) => manager.restart(t)));
    return { migration_tasks: results };
  });

  async function batchOne(projectId: string, id: string, op: (t: Task) => Promise<Task>): Promise<Record<string, string>> {
    const task = await store.getTask(projectId, id);
    if (!task) return { task_id: id, result: 'failed', error_code: 'DCS.4133', error_msg: 'Instance job is not found.' };
    try {
      await op(task);
      return { task_id: id, result: 'success', error_code: '', error_msg: '' };
    } catch (e) {
      if (e instanceof TaskStateError) return { task_id: id, result: 'failed', error_code: 'DCS.4957', error_msg: e.message };
      throw e;
    }
  }

  // 13. DeleteMigrationTask (DELETE with a body); unknown ids are ignored.
  app.delete(`${base}/migration-tasks/delete`, { schema: schemas.delete, bodyLimit: LISTS }, async (req) => {
    const { task_id_list: ids } = req.body as { task_id_list: string[] };
    const deleted = await manager.delete(req.projectId, ids);
    return { task_id_list: deleted };
  });

  // 14. ExchangeInstanceIp: the cutover (asynchronous; task_status shows its progress).
  app.post(`${base}/migration-task/:task_id/exchange-ip`, { schema: schemas.exchangeIp, bodyLimit: SMALL, config: { optionalBody: true } }, async (req, reply) => {
    const task = await taskOf(req);
    const b = req.body as { exchanged_ip?: string[] | null; is_exchange_domain?: boolean | null };
    await inState(() => manager.cutover(task, 'exchange', { exchangedIp: b.exchanged_ip ?? [], isExchangeDomain: b.is_exchange_domain ?? false }));
    return reply.status(204).type('application/json').send();
  });

  // 15. RollbackExchangeInstanceIp
  app.post(`${base}/migration-task/:task_id/rollback-ip`, { schema: schemas.rollbackIp, bodyLimit: SMALL, config: { optionalBody: true } }, async (req, reply) => {
    const task = await taskOf(req);
    await inState(() => manager.cutover(task, 'rollback'));
    return reply.status(204).type('application/json').send();
  });

  // ShowJobInfo
  app.get(`${base}/jobs/:job_id`, { schema: schemas.job }, async (req) => {
    const job = await store.getJob(req.projectId, params(req).job_id ?? '');
    if (!job) throw Errors.jobNotFound();
    return jobView(job);
  });

  // Ferry extension: the nodes sharing the store (several nodes over PostgreSQL; one with SQLite).
  app.get(`${base}/nodes`, { schema: schemas.nodes }, async (req) => {
    const nodes = await store.listNodes(manager.leases.node.leaseMs);
    const out = [];
    for (const n of nodes) {
      // Only this project's tasks: another project's task ids are not this caller's business.
      const tasks: string[] = [];
      for (const id of n.tasks) if (await store.getTask(req.projectId, id)) tasks.push(id);
      out.push({ id: n.id, listen: n.listen, heartbeat_at: n.heartbeatAt, capacity: n.capacity, self: n.id === manager.nodeId, tasks });
    }
    return { nodes: out };
  });

  // Ferry extension: the audit log of the project's mutating calls.
  app.get(`${base}/audit-logs`, { schema: schemas.audit }, async (req) => {
    const q = req.query as { offset: number; limit: number };
    const { total, entries } = await store.listAudit(req.projectId, q);
    return {
      count: total,
      audit_logs: entries.map((e) => ({
        time: e.time,
        request_id: e.requestId,
        actor: e.actor,
        source_ip: e.sourceIp,
        operation: e.operation,
        method: e.method,
        task_ids: e.taskIds,
        http_status: e.httpStatus,
        error_code: e.errorCode,
      })),
    };
  });
}
