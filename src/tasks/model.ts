/**
 * The migration task as the service keeps it: DCS's vocabulary (statuses, methods, resume
 * modes) over Ferry's engine. Secrets are held encrypted (`EncryptedSecret`) everywhere but in
 * the worker that runs the task.
 */

/** DCS task statuses Ferry uses (INCRMIGEATING is DCS's own spelling). */
export type TaskStatus =
  | 'RUNNING' // created, waiting to be configured
  | 'FULLMIGRATING'
  | 'INCRMIGEATING'
  | 'MIGRATING' // backup-file import
  | 'SUCCESS'
  | 'FAILED'
  | 'TERMINATING'
  | 'TERMINATED';

export type MigrationType = 'online_migration' | 'backupfile_import';
export type MigrationMethodName = 'full_amount_migration' | 'incremental_migration';
export type ResumeMode = 'auto' | 'manual';

/** A secret sealed with the data dir's key (AES-256-GCM); base64 of iv + tag + ciphertext. */
export type EncryptedSecret = string & { readonly __sealed: unique symbol };

/** One side of a migration: a registered instance id, or addresses. */
export interface TaskEndpoint {
  /** Registered instance id (config `instances`), when given by id. */
  id: string | null;
  /** `host:port[,host:port]`, resolved from the instance when given by id. */
  addrs: string;
  name: string | null;
  password: EncryptedSecret | null;
  /** TLS settings (files on the service's host), when the endpoint speaks TLS (an extension). */
  tls?: import('../common/endpoint.js').EndpointTls | null;
  /** Sentinel's own password, for `sentinel://` addresses (an extension). */
  sentinelPassword?: EncryptedSecret | null;
}

export interface TaskStats {
  fullMigrationProgress: number; // 0..100
  lagBytes: number | null;
  sourceDbsize: number | null;
  targetDbsize: number | null;
  targetInputKbps: number;
  targetOps: number;
  isMigrating: boolean;
  keysMigrated: number;
  writeErrors: number;
  reconnects: number;
  /** Resume point (replid, applied offset, db), when the stream phase has begun. */
  checkpoint: { replid: string; appliedOffset: number; db: number } | null;
  /** The mode the migration runs in and why (scan mode: the source refuses PSYNC, or it was asked for). */
  sourceMode?: { mode: 'psync' | 'scan'; reason: string | null } | null;
}

/** What a backup-file import reads (DCS `backup_files`). */
export interface BackupFilesSpec {
  fileSource: 'self_build_obs' | 'backup_record';
  bucketName: string | null;
  files: string[];
  backupId: string | null;
}

/** The last verification of a task's source and target (a Ferry extension). */
export interface TaskVerification {
  status: 'running' | 'done' | 'failed';
  startedAt: string;
  finishedAt: string | null;
  report: unknown;
  error: string | null;
}

export interface Task {
  id: string;
  projectId: string;
  name: string;
  description: string;
  migrationType: MigrationType;
  migrationMethod: MigrationMethodName | null; // null until configured (online tasks)
  resumeMode: ResumeMode;
  bandwidthLimitMb: number | null;
  networkType: string | null;
  vpcId: string | null;
  subnetId: string | null;
  securityGroupId: string | null;
  source: TaskEndpoint | null;
  target: TaskEndpoint | null;
  status: TaskStatus;
  error: string | null;
  /** The job that CreateOnlineMigrationTask returned (ShowJobInfo). */
  jobId: string | null;
  stats: TaskStats | null;
  createdAt: string; // ISO 8601
  updatedAt: string;
  /** Set when the task has been asked to stop; survives restarts. */
  stopRequested: boolean;
  /** Backup-file import tasks: what to read. */
  backupFiles?: BackupFilesSpec | null;
  /** What a write the target refuses for good does: fail the task (default) or skip it. */
  writeErrorPolicy?: 'fail' | 'skip';
  verification?: TaskVerification | null;
  /** Extension: do not forward FLUSHALL / FLUSHDB. */
  dropFlush?: boolean;
  /** Extension: keys already on the target before the full sync (default fail). */
  targetConflict?: 'fail' | 'replace' | 'purge-first';
  /** When the task was configured or restarted by its user (ISO 8601). */
  startedAt?: string | null;
  /**
   * When a worker of this task first got past connecting (the preflight checks passed and the
   * snapshot began). Null: it never connected, so resume_mode auto gives up after a bounded
   * time; set: the target holds this task's own writes, so a later full sync does not ask again.
   */
  connectedAt?: string | null;
  /**
   * The process id of the task's last worker. After a crash of the service, a worker of the old
   * service that is still alive is killed before the task starts again (two writers of one task
   * would break exactly-once).
   */
  workerPid?: number | null;
  /** The node that ran that worker: only that node may kill it by pid (a pid means nothing on another host). */
  workerNode?: string | null;
  /** How the source is read: auto (PSYNC, scan when refused), psync, scan. */
  sourceMode?: 'auto' | 'psync' | 'scan';
  /** Extension: what moves the clients at a cutover (else the service's default hook). */
  switchHook?: TaskSwitchHook | null;
  /** Cutover state (absent: never switched, clients on the source). */
  cutover?: TaskCutover | null;
  /** Extension: which source dbs go where, in `ferry migrate`'s notation (null: every db to itself). */
  dbMapping?: DbMappingSpec | null;
}

/** A task's switch hook (SetOnlineMigrationTask `switch_hook`, an extension). */
export type TaskSwitchHook = { command: string; args?: string[]; timeoutSeconds?: number } | { url: string; timeoutSeconds?: number };

/** DCS's IP-switch sub-state (`task_status`); ROLLING_BACK is Ferry's word for the rollback in progress. */
export type CutoverTaskStatus = '' | 'EXCHANGING' | 'EXCHANGE_SUCCESS' | 'ROLLING_BACK' | 'ROLLBACK_SUCCESS';

/** Where a task's clients are and how the last switch went (ExchangeInstanceIp / RollbackExchangeInstanceIp). */
export interface TaskCutover {
  taskStatus: CutoverTaskStatus;
  /** forward: source → target (clients on the source); reverse: target → source (clients on the target). */
  direction: 'forward' | 'reverse';
  /** Where the running direction started, by master (a restart without checkpoints resumes there). */
  startFrom: [string, { replid: string; appliedOffset: number; db: number }][] | null;
  last: {
    action: 'exchange' | 'rollback';
    ok: boolean;
    at: string;
    pauseMs: number | null;
    drainMs: number | null;
    hook: { description: string; ok: boolean; timedOut: boolean; detail: string; durationMs: number } | null;
    error: string | null;
  } | null;
}

/** `--db-map "N:M,..."`, `--dbs "0,1"`, `--db-prefix "1=p:"` of `ferry migrate`, for a task. */
export interface DbMappingSpec {
  dbMap: string | null;
  dbs: string | null;
  dbPrefix: string | null;
}

export type LogLevel = 'INFO' | 'WARN' | 'ERROR' | 'DEBUG';

export interface TaskLog {
  taskId: string;
  createdAt: string;
  level: LogLevel;
  code: string;
  message: string;
  keywords: string[];
}

export type JobStatus = 'INIT' | 'RUNNING' | 'SUCCESS' | 'FAIL';

export interface Job {
  id: string;
  projectId: string;
  type: string;
  status: JobStatus;
  beginTime: string; // ms since epoch, as a string (DCS style)
  endTime: string;
  failReason: string | null;
  /** The entity the job created (task id). */
  entityId: string | null;
}

/**
 * One mutating API call, as the audit log keeps it: who, what, when and the outcome. Never a
 * body (it may hold passwords) nor a credential beyond the access key's name.
 */
export interface AuditEntry {
  time: string;
  projectId: string;
  requestId: string;
  /** `ak:<AK>`, `token:<first 8 hex of its SHA-256>`, or `unauthenticated`. */
  actor: string;
  sourceIp: string;
  /** The operation (DCS's name), e.g. SetOnlineMigrationTask. */
  operation: string;
  method: string;
  taskIds: string[];
  httpStatus: number;
  /** Empty when the call succeeded. */
  errorCode: string;
}
