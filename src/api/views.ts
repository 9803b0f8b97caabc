import { maskSecret } from '../tasks/secrets.js';
import { describeHook } from '../engine/cutover-hook.js';
import type { Job, Task, TaskEndpoint, TaskLog, TaskStats } from '../tasks/model.js';

/**
 * Task → the JSON DCS returns. Passwords are never returned, only masked; numbers that DCS
 * models as strings are strings.
 */

function endpointView(e: TaskEndpoint | null): Record<string, unknown> | null {
  if (!e) return null;
  const first = e.addrs.split(',')[0] ?? '';
  const colon = first.lastIndexOf(':');
  return {
    id: e.id ?? '',
    name: e.name ?? '',
    addrs: e.addrs,
    ip: colon > 0 ? first.slice(0, colon).replace(/^\[|\]$/g, '') : '',
    port: colon > 0 ? first.slice(colon + 1) : '',
    password: maskSecret(e.password !== null),
    task_status: 'RUNNING',
    db: '0',
    proxy_multi_db: false,
    // Ferry's extensions: TLS settings name files only; Sentinel's password is masked like the other.
    ...(e.tls ? { tls: { ca_file: e.tls.caFile ?? '', cert_file: e.tls.certFile ?? '', key_file: e.tls.keyFile ?? '', servername: e.tls.servername ?? '', insecure: e.tls.insecure === true } } : {}),
    ...(e.sentinelPassword ? { sentinel_password: maskSecret(true) } : {}),
  };
}

/** A row of ListMigrationTask. */
export function taskListItem(t: Task): Record<string, unknown> {
  return {
    task_id: t.id,
    task_name: t.name,
    description: t.description,
    status: t.status,
    migration_type: t.migrationType,
    migration_method: t.migrationMethod ?? '',
    ecs_tenant_private_ip: '',
    data_source: t.source?.addrs ?? '',
    source_instance_name: t.source?.name ?? '',
    source_instance_id: t.source?.id ?? '',
    source_instance_status: '',
    source_instance_subnet_id: '',
    source_instance_spec_code: '',
    target_instance_addrs: t.target?.addrs ?? '',
    target_instance_name: t.target?.name ?? '',
    target_instance_id: t.target?.id ?? '',
    target_instance_status: '',
    target_instance_subnet_id: '',
    target_instance_spec_code: '',
    created_at: t.createdAt,
    error_message: t.error,
    released_at: '',
    version: '',
    resume_mode: t.resumeMode,
    supported_features: [],
  };
}

/** ShowMigrationTask (also the body of StopMigrationTask). */
export function taskDetail(t: Task): Record<string, unknown> {
  return {
    task_id: t.id,
    task_name: t.name,
    description: t.description,
    status: t.status,
    migration_type: t.migrationType,
    migration_method: t.migrationMethod ?? '',
    ecs_tenant_private_ip: '',
    network_type: t.networkType ?? 'vpc',
    source_instance: endpointView(t.source),
    target_instance: endpointView(t.target),
    created_at: t.createdAt,
    updated_at: t.updatedAt,
    released_at: '',
    version: '',
    resume_mode: t.resumeMode,
    supported_features: [],
    tenant_vpc_id: t.vpcId ?? '',
    tenant_subnet_id: t.subnetId ?? '',
    tenant_security_group_id: t.securityGroupId ?? '',
    bandwidth_limit_mb: t.bandwidthLimitMb === null ? '' : String(t.bandwidthLimitMb),
    task_status: t.cutover?.taskStatus ?? '',
    error: t.error ?? '',
    error_message: t.error,
    // Ferry extensions: the source mode asked for, and the one running (and why).
    source_mode: t.sourceMode ?? 'auto',
    source_mode_running: t.stats?.sourceMode ?? null,
    db_map: t.dbMapping?.dbMap ?? '',
    dbs: t.dbMapping?.dbs ?? '',
    db_prefix: t.dbMapping?.dbPrefix ?? '',
    cutover: cutoverView(t),
  };
}

/** The cutover extension of ShowMigrationTask: never a hook's URL credentials or query. */
function cutoverView(t: Task): Record<string, unknown> {
  const c = t.cutover;
  const hook = t.switchHook ? describeHook('command' in t.switchHook ? { command: t.switchHook.command } : { url: t.switchHook.url }) : null;
  const last = c?.last;
  return {
    direction: c?.direction ?? 'forward',
    task_status: c?.taskStatus ?? '',
    switch_hook: hook,
    last: last
      ? {
          action: last.action,
          ok: last.ok,
          at: last.at,
          pause_ms: last.pauseMs,
          drain_ms: last.drainMs,
          error: last.error,
          hook: last.hook ? { description: last.hook.description, ok: last.hook.ok, timed_out: last.hook.timedOut, detail: last.hook.detail, duration_ms: last.hook.durationMs } : null,
        }
      : null,
  };
}

/** ShowMigrationTaskStats: strings as DCS models them; `is_migrating` a boolean. */
export function taskStats(t: Task, s: TaskStats | null): Record<string, unknown> {
  const migrating = s?.isMigrating ?? false;
  return {
    full_migration_progress: String(s?.fullMigrationProgress ?? (t.status === 'SUCCESS' ? 100 : 0)),
    offset: String(s?.lagBytes ?? 0),
    source_dbsize: String(s?.sourceDbsize ?? 0),
    target_dbsize: String(s?.targetDbsize ?? 0),
    target_input_kbps: String(s?.targetInputKbps ?? 0),
    target_ops: String(s?.targetOps ?? 0),
    is_migrating: migrating && (t.status === 'FULLMIGRATING' || t.status === 'INCRMIGEATING' || t.status === 'MIGRATING'),
    // Ferry's extensions (marked as such in the OpenAPI document).
    keys_migrated: String(s?.keysMigrated ?? 0),
    write_errors: String(s?.writeErrors ?? 0),
    reconnects: String(s?.reconnects ?? 0),
  };
}

export function logView(l: TaskLog): Record<string, unknown> {
  return { created_at: l.createdAt, log_level: l.level, message: l.message, log_code: l.code, keyword: l.keywords };
}

export function jobView(j: Job): Record<string, unknown> {
  return { job_id: j.id, job_type: j.type, status: j.status, begin_time: j.beginTime, end_time: j.endTime, fail_reason: j.failReason };
}
