import type { Endpoint } from '../common/endpoint.js';
import type { MigrationMethod } from '../engine/migration.js';
import type { MigrationProgress } from '../engine/stats.js';
import type { BackupImportProgress } from '../engine/backup-import.js';
import type { VerifyReport } from '../verify/index.js';

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
  sourceMode?: 'auto' | 'psync' | 'scan';
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
}

export interface WorkerStartVerify {
  type: 'start-verify';
  taskId: string;
  source: Endpoint[];
  target: Endpoint[];
  rounds: number;
  ttlToleranceMs: number;
}

export interface WorkerStop {
  type: 'stop';
}

export type ToWorker = WorkerStart | WorkerStartImport | WorkerStartVerify | WorkerStop | WorkerUpdate;

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

export type FromWorker = WorkerProgress | WorkerLog | WorkerFinished | WorkerImportProgress | WorkerVerifyDone;
