import type { Endpoint } from '../common/endpoint.js';
import type { MigrationMethod } from '../engine/migration.js';
import type { MigrationProgress } from '../engine/stats.js';
import type { BackupImportProgress } from '../engine/backup-import.js';
import type { VerifyReport } from '../verify/index.js';
import type { AddressPolicySpec } from '../common/address-policy.js';
import type { TargetConflictPolicy } from '../engine/preflight.js';
import type { SwitchHook } from '../engine/cutover-hook.js';
import type { CutoverReport, Direction } from '../engine/cutover.js';
import type { Checkpoint } from '../engine/stats.js';
import type { DbMappingSpec } from './model.js';

/**
 * Messages between the service and the worker process that runs one task's migration. Each
 * task runs in a process of its own so that a busy or crashing migration cannot stall the API
 * or another task. Passwords travel only over this IPC channel (never argv or environment).
 */
export interface WorkerStart {
  type: 'start';
  taskId: string;
  source: Endpoint[];
  target: Endpoint[];
  method: MigrationMethod;
  /** Null: unlimited. */
  bandwidthLimitMb: number | null;
  resumeMode: 'auto' | 'manual';
  writeErrorPolicy: 'fail' | 'skip';
  /** Do not forward FLUSHALL / FLUSHDB (the API's drop_flush). */
  dropFlush?: boolean;
  /** Keys already on the target before a full sync (the API's target_conflict). */
  targetConflict?: TargetConflictPolicy;
  /** Which addresses the worker may reach; absent: any. */
  addressPolicy?: AddressPolicySpec;
  /**
   * The task has written to this target in an earlier run (its record says so, whatever the
   * target holds): a full sync first removes what it wrote, so keys deleted on the source
   * meanwhile do not survive.
   */
  priorWrites?: boolean;
  /** How the source is read: auto (PSYNC, scan when refused), psync, scan. */
  sourceMode?: 'auto' | 'psync' | 'scan';
  /** After a cutover: the direction to run (reverse: target → source) and where it started. */
  direction?: Direction;
  startFrom?: [string, Checkpoint][] | null;
  /** Cutover limits (ms). */
  cutover?: { pauseTimeoutMs?: number; drainTimeoutMs?: number };
  /** Which source dbs go where (the API's db_map, dbs, db_prefix). */
  dbMapping?: DbMappingSpec | null;
  /**
   * Until when (ms since the epoch, this host's clock) the node's lease on the task lets this
   * worker write; later `lease` messages extend it. Past it, the worker exits at once without
   * another write: its node could not renew, and another node may own the task by now.
   */
  leaseValidUntil?: number;
}

/** ExchangeInstanceIp / RollbackExchangeInstanceIp: switch the clients with this hook. */
export interface WorkerCutover {
  type: 'cutover';
  action: 'exchange' | 'rollback';
  hook: SwitchHook;
  exchangedIp: string[];
  isExchangeDomain: boolean;
}

/** The node renewed its lease on the task: the worker may go on until `validUntil`. */
export interface WorkerLease {
  type: 'lease';
  validUntil: number;
}

/** The task ended for good (deleted): remove its checkpoints from the target, then exit. */
export interface WorkerStartCleanup {
  type: 'start-cleanup';
  taskId: string;
  target: Endpoint[];
  addressPolicy?: AddressPolicySpec;
}

/** UpdateMigrationTask on a running task: effective within a second. */
export interface WorkerUpdate {
  type: 'update';
  bandwidthLimitMb: number | null;
  resumeMode: 'auto' | 'manual';
}

/** Where an import's files are, in a form that crosses the IPC channel. */
export type ImportFiles =
  | { kind: 'local'; dir: string; names: string[] }
  | { kind: 's3'; config: { endpoint?: string; region?: string; accessKeyId?: string; secretAccessKey?: string; forcePathStyle?: boolean }; bucket: string; names: string[] };

export interface WorkerStartImport {
  type: 'start-import';
  taskId: string;
  files: ImportFiles;
  target: Endpoint[];
  addressPolicy?: AddressPolicySpec;
}

export interface WorkerStartVerify {
  type: 'start-verify';
  taskId: string;
  source: Endpoint[];
  target: Endpoint[];
  rounds: number;
  ttlToleranceMs: number;
  addressPolicy?: AddressPolicySpec;
  /** The task's db mapping: the verification compares what the migration wrote where. */
  dbMapping?: DbMappingSpec | null;
}

export interface WorkerStop {
  type: 'stop';
}

export type ToWorker = WorkerStart | WorkerStartImport | WorkerStartVerify | WorkerStartCleanup | WorkerStop | WorkerUpdate | WorkerCutover | WorkerLease;

export interface WorkerProgress {
  type: 'progress';
  progress: MigrationProgress;
  /** Source and target key counts, polled by the worker (INFO keyspace). */
  sourceKeys: number | null;
  targetKeys: number | null;
}

export interface WorkerLog {
  type: 'log';
  level: 'INFO' | 'WARN' | 'ERROR';
  code: string;
  message: string;
}

/** The migration ended: done (full), stopped, or failed with a reason. */
export interface WorkerFinished {
  type: 'finished';
  outcome: 'done' | 'stopped' | 'failed';
  reason: string | null;
  progress: MigrationProgress;
  /** A failure that trying again cannot fix (a preflight refusal): no auto restart. */
  permanent?: boolean;
}

export interface WorkerImportProgress {
  type: 'import-progress';
  progress: BackupImportProgress;
}

export interface WorkerVerifyDone {
  type: 'verify-done';
  report: VerifyReport | null;
  error: string | null;
}

/**
 * A cutover's progress: `switched` as soon as the hook has moved the clients (the service
 * records the new direction before anything else can fail), `done` with the report.
 */
export type WorkerCutoverEvent =
  | { type: 'cutover-switched'; direction: Direction; startFrom: [string, Checkpoint][] }
  | { type: 'cutover-done'; report: CutoverReport };

export type FromWorker = WorkerProgress | WorkerLog | WorkerFinished | WorkerImportProgress | WorkerVerifyDone | WorkerCutoverEvent;
