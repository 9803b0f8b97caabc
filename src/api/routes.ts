import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TaskManager, TaskStateError } from '../tasks/manager.js';
import type { Task, TaskEndpoint } from '../tasks/model.js';
import { Errors } from './errors.js';
import type { ApiDependencies } from './server.js';
import {
  LOG_LEVELS,
  MIGRATION_METHODS,
  MIGRATION_TYPES,
  RESUME_MODES,
  endpointBody,
  optionalBandwidth,
  optionalEnum,
  optionalString,
  parseJsonObject,
  queryInt,
  requiredEnum,
  requiredString,
  requiredStringArray,
  requiredObject,
  type JsonObject,
} from './validate.js';
import { jobView, logView, taskDetail, taskListItem, taskStats } from './views.js';

type Params = { project_id: string; task_id?: string; job_id?: string };

function optionalPositive(b: JsonObject, field: string, min: number, max: number): number | null {
  const v = b[field];
  if (v === undefined || v === null) return null;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw Errors.invalidParameter(field, `It must be an integer from ${min} to ${max}.`);
  return n;
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

/** The DCS v2 data-migration operations (dcs-api.md section 1), all under /v2/{project_id}. */
export function registerRoutes(app: FastifyInstance, deps: ApiDependencies): void {
  const { store, manager, secrets, instances } = deps;
  const base = '/v2/:project_id';

  const body = (req: FastifyRequest, allowEmpty = false): JsonObject => parseJsonObject(req.body as Buffer | undefined, { allowEmpty });
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

  function resolveEndpoint(projectId: string, field: string, given: { id: string | null; addrs: string | null; password: string | null }): TaskEndpoint {
    if (given.id !== null) {
      const instance = instances.find(projectId, given.id);
      if (!instance) throw Errors.instanceNotFound(given.id);
      const password = given.password ?? instance.password ?? null;
      return { id: instance.id, addrs: instance.addrs, name: instance.name, password: password === null ? null : secrets.seal(password) };
    }
    void field;
    return { id: null, addrs: given.addrs!, name: null, password: given.password === null ? null : secrets.seal(given.password) };
  }

  // 2. CreateOnlineMigrationTask
  app.post(`${base}/migration/instance`, async (req) => {
    const b = body(req);
    const now = new Date().toISOString();
    const task: Task = {
      id: TaskManager.newId(),
      projectId: req.projectId,
      name: requiredString(b, 'name', { max: 64 }),
      description: optionalString(b, 'description', { max: 1024 }) ?? '',
      migrationType: 'online_migration',
      migrationMethod: null,
      resumeMode: 'auto',
      bandwidthLimitMb: null,
      networkType: 'vpc',
      vpcId: optionalString(b, 'vpc_id', { max: 64 }),
      subnetId: optionalString(b, 'subnet_id', { max: 64 }),
      securityGroupId: optionalString(b, 'security_group_id', { max: 64 }),
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
    const ms = String(Date.now());
    await store.createJob({ id: task.jobId!, projectId: req.projectId, type: 'createMigrationTask', status: 'SUCCESS', beginTime: ms, endTime: ms, failReason: null, entityId: task.id });
    await manager.log(task.id, 'INFO', 'CREATED', `task ${task.name} created`);
    return { instance_id: task.id, job_id: task.jobId };
  });

  // 3. SetOnlineMigrationTask: configure and start.
  app.post(`${base}/migration/:task_id/task`, async (req) => {
    const task = await taskOf(req);
    const b = body(req);
    const method = requiredEnum(b, 'migration_method', MIGRATION_METHODS);
    const resumeMode = requiredEnum(b, 'resume_mode', RESUME_MODES);
    const bandwidthLimitMb = optionalBandwidth(b);
    const source = resolveEndpoint(req.projectId, 'source_instance', endpointBody(b, 'source_instance'));
    const target = resolveEndpoint(req.projectId, 'target_instance', endpointBody(b, 'target_instance'));
    // Extension: what a write the target refuses for good does (default: fail the task).
    const writeErrorPolicy = optionalEnum(b, 'write_error_policy', ['fail', 'skip'] as const) ?? 'fail';
    // Extension: how the source is read (scan mode for sources that refuse PSYNC).
    const sourceMode = optionalEnum(b, 'source_mode', ['auto', 'psync', 'scan'] as const) ?? 'auto';
    const started = await inState(() => manager.configure(task, { method, resumeMode, bandwidthLimitMb, source, target, writeErrorPolicy, sourceMode }));
    return { id: started.id, name: started.name, status: started.status, error: '' };
  });

  // 1. CreateMigrationTask: a backup-file import (online tasks are created by op 2).
  app.post(`${base}/migration-task`, async (req) => {
    const b = body(req);
    const name = requiredString(b, 'task_name', { max: 64 });
    const type = requiredEnum(b, 'migration_type', MIGRATION_TYPES);
    const method = requiredEnum(b, 'migration_method', MIGRATION_METHODS);
    if (type === 'online_migration') {
      throw Errors.invalidValue('migration_type', 'Online migration tasks are created with POST /v2/{project_id}/migration/instance.');
    }
    const target = resolveEndpoint(req.projectId, 'target_instance', endpointBody(b, 'target_instance'));
    const files = requiredObject(b, 'backup_files');
    const fileSource = optionalEnum(files, 'file_source', ['self_build_obs', 'backup_record'] as const) ?? 'self_build_obs';
    const list = files.files;
    if (list !== undefined && list !== null && !Array.isArray(list)) throw Errors.invalidParameter('backup_files.files', 'It must be an array.');
    const names = ((list ?? []) as unknown[]).map((f, i) => {
      if (f === null || typeof f !== 'object') throw Errors.invalidParameter(`backup_files.files[${i}]`, 'It must be an object.');
      return requiredString(f as JsonObject, 'file_name', { max: 1024, path: `backup_files.files[${i}].file_name` });
    });
    const bucketName = optionalString(files, 'bucket_name', { max: 255, path: 'backup_files.bucket_name' });
    const backupId = optionalString(files, 'backup_id', { max: 255, path: 'backup_files.backup_id' });
    if (fileSource === 'self_build_obs' && (!bucketName || names.length === 0)) {
      throw Errors.invalidParameter(bucketName ? 'backup_files.files' : 'backup_files.bucket_name', 'An OBS import needs bucket_name and files.');
    }
    if (fileSource === 'backup_record' && !backupId) throw Errors.invalidParameter('backup_files.backup_id', 'A backup_record import needs backup_id.');
    const now = new Date().toISOString();
    const task: Task = {
      id: TaskManager.newId(),
      projectId: req.projectId,
      name,
      description: optionalString(b, 'description', { max: 1024 }) ?? '',
      migrationType: 'backupfile_import',
      migrationMethod: method,
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
      backupFiles: { fileSource, bucketName, files: names, backupId },
    };
    await store.createTask(task);
    await manager.startImport(task);
    const current = (await store.getTask(req.projectId, task.id)) ?? task;
    return { id: current.id, name: current.name, status: current.status, error: current.error ?? '' };
  });

  // Ferry extension: verify a task's source and target (POST starts, GET reads).
  app.post(`${base}/migration-task/:task_id/verify`, async (req) => {
    const task = await taskOf(req);
    const b = body(req, true);
    const rounds = optionalPositive(b, 'rounds', 1, 20) ?? 1;
    const tolerance = optionalPositive(b, 'ttl_tolerance_ms', 0, 3_600_000) ?? 2000;
    const started = await inState(() => manager.startVerify(task, rounds, tolerance));
    return verificationView(started);
  });

  app.get(`${base}/migration-task/:task_id/verify`, async (req) => verificationView(await taskOf(req)));

  // 4. ListMigrationTask
  app.get(`${base}/migration-tasks`, async (req) => {
    const q = req.query as Record<string, unknown>;
    const offset = queryInt(q, 'offset', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 });
    const limit = queryInt(q, 'limit', { min: 1, max: 1000, fallback: 10 });
    const name = typeof q.name === 'string' && q.name !== '' ? q.name : undefined;
    const { total, tasks } = await store.listTasks(req.projectId, { offset, limit, name });
    return { count: total, migration_tasks: tasks.map(taskListItem) };
  });

  // 5. ShowMigrationTask
  app.get(`${base}/migration-task/:task_id`, async (req) => taskDetail(await taskOf(req)));

  // 6. ShowMigrationTaskStats
  app.get(`${base}/migration-task/:task_id/stats`, async (req) => {
    const task = await taskOf(req);
    return taskStats(task, manager.stats(task));
  });

  // 7. ListMigrationTaskLogs
  app.get(`${base}/migration-task/:task_id/logs`, async (req) => {
    const task = await taskOf(req);
    const q = req.query as Record<string, unknown>;
    const offset = queryInt(q, 'offset', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 });
    const limit = queryInt(q, 'limit', { min: 0, max: 1000, fallback: 10 });
    const level = optionalEnum(q as JsonObject, 'log_level', LOG_LEVELS) ?? undefined;
    const { total, logs } = await store.listLogs(task.id, { offset, limit, level });
    return { log_num: total, migration_logs: logs.map(logView) };
  });

  // 8. UpdateMigrationTask: resume mode (and, as a Ferry extension, the bandwidth limit).
  app.put(`${base}/migration-task/:task_id`, async (req) => {
    const task = await taskOf(req);
    const b = body(req);
    const resumeMode = optionalEnum(b, 'resume_mode', RESUME_MODES);
    const bandwidth = optionalBandwidth(b);
    if (resumeMode === null && bandwidth === null) throw Errors.invalidParameter('resume_mode', 'Nothing to update.');
    if (resumeMode !== null) task.resumeMode = resumeMode;
    if (bandwidth !== null) task.bandwidthLimitMb = bandwidth;
    task.updatedAt = new Date().toISOString();
    await store.updateTask(task);
    manager.applyUpdate(task);
    await manager.log(task.id, 'INFO', 'UPDATED', `updated: resume_mode ${task.resumeMode}${bandwidth !== null ? `, bandwidth ${bandwidth} MB/s` : ''}`);
    return {};
  });

  // 9. StopMigrationTask: asynchronous, answers with the task.
  app.post(`${base}/migration-task/:task_id/stop`, async (req) => {
    const task = await taskOf(req);
    return taskDetail(await inState(() => manager.stop(task)));
  });

  // 10. StopMigrationTaskSync: 204 once stopped.
  app.post(`${base}/migration-task/:task_id/sync-stop`, async (req, reply) => {
    const task = await taskOf(req);
    await inState(() => manager.stop(task));
    await manager.waitUntilStopped(task.id);
    return reply.status(204).type('application/json').send();
  });

  // 11. BatchStopMigrationTasks
  app.post(`${base}/migration-task/batch-stop`, async (req) => {
    const ids = requiredStringArray(body(req), 'migration_tasks');
    const results = [];
    for (const id of ids) results.push(await batchOne(req.projectId, id, (t) => manager.stop(t)));
    return { migration_tasks: results };
  });

  // 12. BatchRestartOnlineMigrationTasks
  app.post(`${base}/migration-tasks/batch-restart`, async (req) => {
    const ids = requiredStringArray(body(req), 'migration_tasks', { max: 50 });
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
  app.delete(`${base}/migration-tasks/delete`, async (req) => {
    const ids = requiredStringArray(body(req), 'task_id_list');
    const deleted = await manager.delete(req.projectId, ids);
    return { task_id_list: deleted };
  });

  // 14, 15. IP exchange: not offered by Ferry (yet).
  for (const op of ['exchange-ip', 'rollback-ip']) {
    app.post(`${base}/migration-task/:task_id/${op}`, async (req) => {
      await taskOf(req);
      throw Errors.notSupported(`${op} is not supported by this Ferry version yet: switch clients to the target yourself once the lag is 0.`);
    });
  }

  // ShowJobInfo
  app.get(`${base}/jobs/:job_id`, async (req) => {
    const job = await store.getJob(req.projectId, params(req).job_id ?? '');
    if (!job) throw Errors.jobNotFound();
    return jobView(job);
  });
}
