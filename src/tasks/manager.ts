import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { parseAddressList, type Endpoint } from '../common/endpoint.js';
import type { MigrationProgress } from '../engine/stats.js';
import type { BackupFilesSpec, DbMappingSpec, TaskCutover, TaskSwitchHook, LogLevel, MigrationMethodName, ResumeMode, Task, TaskEndpoint, TaskStats, TaskStatus } from './model.js';
import type { SecretBox } from './secrets.js';
import { StaleLeaseError, type Fence, type TaskCommand, type TaskStore } from './store.js';
import { NodeLeases, type NodeIdentity } from './leases.js';
import { TaskRunner } from './runner.js';
import type { FromWorker, ImportFiles } from './worker-protocol.js';
import type { BackupImportProgress } from '../engine/backup-import.js';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { AddressPolicySpec } from '../common/address-policy.js';

/** Where backup files come from: local directories named as buckets, an object store, a backups dir. */
export interface ImportConfig {
  /** A Map, never a plain object: bucket names come from API users ("constructor", "__proto__"). */
  buckets: ReadonlyMap<string, string>;
  objectStore: { endpoint?: string; region?: string; accessKeyId?: string; secretAccessKey?: string; forcePathStyle?: boolean } | null;
  backupsDir: string | null;
}

export interface ManagerOptions {
  /** The address policy a task's worker enforces (undefined: any address). */
  workerPolicy?: (task: Task) => AddressPolicySpec | undefined;
  /** resume_mode auto: a task that has never connected fails after this long (default 5 min). */
  firstConnectTimeoutMs?: number;
  /** Cutover: the hook of tasks that name none, and the limits of the switch (service config `cutover`). */
  cutover?: CutoverConfig;
  /** This node among the nodes sharing the store (default: one node, id "local", 15 s leases). */
  node?: NodeIdentity;
}

export interface CutoverConfig {
  defaultHook?: TaskSwitchHook | null;
  pauseTimeoutMs?: number;
  drainTimeoutMs?: number;
}

/** A node alone on its store: every task is its own. */
const LONE_NODE: NodeIdentity = { id: 'local', listen: '', capacity: 1_000_000, leaseMs: 15_000 };

/**
 * A reason for a task's `error`, in the user's terms: configured directories (server paths)
 * become the bucket or backup they stand for, and any other absolute path is cut to its name.
 */
export function userFacingReason(reason: string, places: readonly { dir: string; label: string }[]): string {
  let out = reason;
  for (const p of [...places].sort((a, b) => b.dir.length - a.dir.length)) {
    if (p.dir === '' || p.dir === '/') continue;
    out = out.split(`${p.dir}/`).join(`${p.label}: `).split(p.dir).join(p.label);
  }
  return out.replace(/(^|[\s'"(=])(\/[^\s'"),]*\/)([^\s'"),/]+)/g, (_m, lead: string, _dir: string, base: string) => `${lead}${base}`);
}

/**
 * Kills a worker left by a service that died, when that process is still alive and is indeed a
 * Ferry worker (a pid can be reused: the command line must name the worker module), and waits
 * until it is gone.
 */
async function killOrphanWorker(pid: number, logger: Logger): Promise<void> {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // gone, or no /proc: nothing to do
  }
  if (!/tasks[/\\]worker\.(?:js|ts)/.test(cmdline)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  logger.warn({ pid }, 'killed a worker of the previous service run that was still alive');
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A task operation refused because of the task's state (DCS.4957). */
export class TaskStateError extends Error {}

/** Statuses in which a worker runs. */
export const ACTIVE_STATUSES: readonly TaskStatus[] = ['FULLMIGRATING', 'INCRMIGEATING', 'MIGRATING', 'TERMINATING'];

interface Running {
  runner: TaskRunner;
  /** Settles once the worker has exited and its exit has been recorded (status, lease). */
  exitRecorded?: Promise<void>;
  /** Last progress and what was derived from it (rates). */
  progress: MigrationProgress | null;
  sourceKeys: number | null;
  targetKeys: number | null;
  lastSample: { at: number; bytes: number; ops: number } | null;
  kbps: number;
  ops: number;
  lastPersist: number;
  restarts: number;
  streamBase: number | null;
  importProgress: BackupImportProgress | null;
  /** The last "worker crashed" message, for the task's error when no outcome came. */
  crash?: string;
  /** The worker reported a failure that a restart cannot fix. */
  permanent?: boolean;
  /** A backup-file import (its outcome is recorded as an import's). */
  isImport?: boolean;
  /** task_status to return to when the switch in progress fails. */
  cutoverFallback?: TaskCutover['taskStatus'];
  /** The lease went away: the worker was killed, and nothing more is written for it. */
  lost?: boolean;
}

/** A running migration's last report and the rates derived from it (TaskManager.liveProgress). */
export interface LiveProgress {
  progress: MigrationProgress;
  /** KiB/s read from the source, commands (and snapshot keys) written per second. */
  kbps: number;
  ops: number;
  sourceKeys: number | null;
  targetKeys: number | null;
  /** Worker restarts of resume_mode auto. */
  restarts: number;
}

export interface ConfigureInput {
  writeErrorPolicy: 'fail' | 'skip';
  dropFlush?: boolean;
  targetConflict?: 'fail' | 'replace' | 'purge-first';
  sourceMode?: 'auto' | 'psync' | 'scan';
  switchHook?: TaskSwitchHook | null;
  dbMapping?: DbMappingSpec | null;
  method: MigrationMethodName;
  resumeMode: ResumeMode;
  bandwidthLimitMb: number | null;
  source: TaskEndpoint;
  target: TaskEndpoint;
}

/**
 * The tasks' life: DCS statuses, one worker process per migrating task, stats and logs from
 * the workers into the store, and recovery after the service restarts.
 *
 *   RUNNING --configure--> FULLMIGRATING --(full) snapshot applied--> SUCCESS
 *                                        --(incremental)--> INCRMIGEATING
 *   FULLMIGRATING | INCRMIGEATING --stop--> TERMINATING --worker gone--> TERMINATED
 *   any migrating status --failure--> FAILED (manual) / restarted after a pause (auto)
 *   FAILED | TERMINATED --batch-restart--> FULLMIGRATING
 */
export class TaskManager {
  private readonly running = new Map<string, Running>();
  private closing = false;
  /** This node's leases: which tasks it may run and write. */
  readonly leases: NodeLeases;

  constructor(
    private readonly store: TaskStore,
    private readonly secrets: SecretBox,
    private readonly logger: Logger,
    private readonly imports: ImportConfig = { buckets: new Map(), objectStore: null, backupsDir: null },
    private readonly options: ManagerOptions = {},
  ) {
    this.leases = new NodeLeases(store, options.node ?? LONE_NODE, ACTIVE_STATUSES, logger, {
      claimed: (taskId, fence, how) => this.onClaimed(taskId, fence, how),
      lost: (taskId) => this.onLeaseLost(taskId),
      command: (c) => this.onCommand(c),
      renewed: (validUntil) => {
        for (const r of this.running.values()) if (!r.isImport) r.runner.lease(validUntil);
      },
    });
  }

  get nodeId(): string {
    return this.leases.node.id;
  }

  private readonly verifications = new Map<string, TaskRunner>();

  /**
   * At start: this node takes back the leases of its previous run and claims its share of the
   * tasks nobody holds (after a restart, or a node's loss); they start again from their
   * checkpoints, tasks that were stopping are stopped. Then the heartbeat keeps it going.
   */
  async recover(): Promise<void> {
    await this.leases.start();
  }

  /** This node holds the task's lease now: resume it (or finish what the last owner left). */
  private async onClaimed(taskId: string, fence: Fence, how: 'reclaimed' | 'claimed'): Promise<void> {
    const task = await this.store.getTaskById(taskId);
    if (!task || !ACTIVE_STATUSES.includes(task.status)) {
      await this.leases.release(taskId);
      return;
    }
    if (this.running.has(taskId)) return;
    // A worker of this node's previous run, still alive (it exits when it sees its service
    // gone; this is for one that cannot): it must not write next to the new one. Only this
    // node's own: a pid from another host names some other process here.
    if (task.workerPid && (!task.workerNode || task.workerNode === this.nodeId)) await killOrphanWorker(task.workerPid, this.logger);
    if (task.migrationType === 'backupfile_import') {
      // Just created by another node, which claims it a moment later: leave it to that node.
      if (how === 'claimed' && !task.workerNode && Date.now() - Date.parse(task.createdAt) < 30_000) {
        await this.leases.release(taskId);
        return;
      }
      // Replaying an AOF twice would apply its INCRs twice: an interrupted import is not restarted.
      await this.fail(task.id, 'the service restarted during the import; the target may hold part of the backup: start a new import');
      return;
    }
    if (task.status === 'TERMINATING' || task.stopRequested) {
      await this.setStatus(task, 'TERMINATED');
      await this.leases.release(taskId);
      return;
    }
    if (how === 'reclaimed' || task.workerNode === this.nodeId) await this.olog(task.id, 'INFO', 'RECOVER', 'service restarted: the migration starts again');
    else if (task.workerNode) await this.olog(task.id, 'INFO', 'RECOVER', `node ${this.nodeId} took the task over from node ${task.workerNode} (lease ${fence.token}): the migration resumes`);
    else await this.olog(task.id, 'INFO', 'LEASE', `node ${this.nodeId} runs the task (lease ${fence.token})`);
    this.launch(task);
  }

  /** The lease is gone: kill the worker at once (no drain: that would write), record nothing. */
  private onLeaseLost(taskId: string): void {
    const r = this.running.get(taskId);
    if (!r) return;
    r.lost = true;
    r.runner.kill();
    this.running.delete(taskId);
  }

  /** A request that arrived at another node, for a task this node runs. */
  private async onCommand(c: TaskCommand): Promise<void> {
    const running = this.running.get(c.taskId);
    if (c.kind === 'stop') {
      if (running) running.runner.stop();
      else {
        // Held but not running (between two attempts of resume_mode auto): stopped now.
        const task = await this.store.getTaskById(c.taskId);
        if (task && task.status === 'TERMINATING') await this.setStatus(task, 'TERMINATED');
        await this.leases.release(c.taskId);
      }
      return;
    }
    if (c.kind === 'update' && running) {
      const task = await this.store.getTaskById(c.taskId);
      if (task) running.runner.update(task.bandwidthLimitMb, task.resumeMode);
    }
  }

  /**
   * A write this node makes as the task's owner: only under its lease, and refused by the store
   * when another node has claimed the task since (this node was paused, or cut off).
   */
  private async ownerModify(taskId: string, change: (task: Task) => boolean | void): Promise<Task | null> {
    const fence = this.leases.fence(taskId);
    if (!fence) return null;
    try {
      return await this.store.modifyTask(taskId, change, fence);
    } catch (e) {
      if (!(e instanceof StaleLeaseError)) throw e;
      this.staleRefused(taskId);
      return null;
    }
  }

  private staleRefused(taskId: string): void {
    this.leases.staleWrites++;
    this.logger.warn({ taskId }, 'a write under a stale lease was refused: another node owns the task now');
    this.leases.forget(taskId);
  }

  /** A task log line written as the owner (see ownerModify). */
  private async olog(taskId: string, level: LogLevel, code: string, message: string): Promise<void> {
    const fence = this.leases.fence(taskId);
    if (!fence) return;
    const ok = await this.store.appendLog({ taskId, createdAt: new Date().toISOString(), level, code, message, keywords: [] }, fence);
    if (ok === false) this.staleRefused(taskId);
  }

  async configure(task: Task, input: ConfigureInput): Promise<Task> {
    if (task.status !== 'RUNNING' || task.migrationMethod !== null) {
      throw new TaskStateError(`the task is ${task.status}; only a new task (RUNNING, not yet configured) can be configured`);
    }
    const settings = {
      migrationMethod: input.method,
      resumeMode: input.resumeMode,
      bandwidthLimitMb: input.bandwidthLimitMb,
      writeErrorPolicy: input.writeErrorPolicy,
      dropFlush: input.dropFlush ?? false,
      targetConflict: input.targetConflict ?? 'fail',
      startedAt: new Date().toISOString(),
      connectedAt: null,
      sourceMode: input.sourceMode ?? 'auto',
      switchHook: input.switchHook ?? null,
      cutover: null,
      dbMapping: input.dbMapping ?? null,
      source: input.source,
      target: input.target,
      error: null,
      stopRequested: false,
    };
    // Checked again inside the write: two nodes configuring the same task at once, one wins.
    let refused: string | null = null;
    const stored = await this.store.modifyTask(task.id, (t) => {
      if (t.status !== 'RUNNING' || t.migrationMethod !== null) {
        refused = t.status;
        return false;
      }
      Object.assign(t, settings);
      t.status = 'FULLMIGRATING';
      t.updatedAt = new Date().toISOString();
    });
    if (refused !== null || !stored) throw new TaskStateError(`the task is ${refused ?? 'gone'}; only a new task (RUNNING, not yet configured) can be configured`);
    Object.assign(task, stored);
    await this.log(task.id, 'INFO', 'CONFIGURED', `migration configured: ${input.method}, resume ${input.resumeMode}`);
    for (const [side, e] of [['source', input.source], ['target', input.target]] as const) {
      if (e.tls?.insecure) await this.log(task.id, 'WARN', 'TLS_INSECURE', `TLS certificate verification is off for the ${side} (tls.insecure): anyone on the path can read and change the data`);
    }
    await this.launchHereOrLeave(task);
    return task;
  }

  /**
   * ExchangeInstanceIp (forward → reverse) and RollbackExchangeInstanceIp (reverse → forward):
   * asynchronous, like DCS's: task_status EXCHANGING / ROLLING_BACK now, then EXCHANGE_SUCCESS /
   * ROLLBACK_SUCCESS when the worker reports the switch, or back where it was on failure.
   */
  async cutover(task: Task, action: 'exchange' | 'rollback', fields: { exchangedIp: string[]; isExchangeDomain: boolean } = { exchangedIp: [], isExchangeDomain: false }): Promise<Task> {
    const c: TaskCutover = task.cutover ?? { taskStatus: '', direction: 'forward', startFrom: null, last: null };
    const running = this.running.get(task.id);
    if (!running && task.status === 'INCRMIGEATING' && task.workerNode && task.workerNode !== this.nodeId) {
      // The switch runs in the worker, on the node that holds the task (no command row for it yet).
      throw new TaskStateError(`the task runs on node ${task.workerNode}: send the ${action === 'exchange' ? 'IP exchange' : 'rollback'} to that node (GET /v2/{project_id}/nodes lists where each listens)`);
    }
    if (task.migrationType !== 'online_migration' || task.migrationMethod !== 'incremental_migration' || task.status !== 'INCRMIGEATING' || !running || running.isImport) {
      throw new TaskStateError(`the task is ${task.status}; ${action === 'exchange' ? 'an IP exchange' : 'a rollback'} needs an incremental migration in INCRMIGEATING`);
    }
    if (c.taskStatus === 'EXCHANGING' || c.taskStatus === 'ROLLING_BACK') throw new TaskStateError(`a switch is in progress (${c.taskStatus})`);
    if (action === 'exchange' && c.direction !== 'forward') throw new TaskStateError('the clients are on the target already (EXCHANGE_SUCCESS): roll back first');
    if (action === 'rollback' && c.direction !== 'reverse') throw new TaskStateError('nothing to roll back: no exchange has succeeded');
    if (task.stats?.sourceMode?.mode === 'scan') throw new TaskStateError('the task runs in scan mode (no replication offsets): an IP exchange needs PSYNC on both sides');
    const m = task.dbMapping;
    if (m && (m.dbMap || m.dbs || m.dbPrefix)) {
      throw new TaskStateError('the task maps, selects or prefixes dbs (db_map, dbs, db_prefix): the reverse sync would need the inverse mapping, so an IP exchange is not offered');
    }
    const hook = task.switchHook ?? this.options.cutover?.defaultHook ?? null;
    if (!hook) throw new TaskStateError('no switch hook: give the task one (SetOnlineMigrationTask switch_hook) or configure cutover.hook in the service config; Ferry cannot move the clients itself');
    const previous = c.taskStatus;
    task.cutover = { ...c, taskStatus: action === 'exchange' ? 'EXCHANGING' : 'ROLLING_BACK' };
    task.updatedAt = new Date().toISOString();
    let inProgress: string | null = null;
    const stored = await this.ownerModify(task.id, (t) => {
      // Checked again under the row lock: two requests may both have read "no switch running".
      const now = t.cutover?.taskStatus;
      if (now === 'EXCHANGING' || now === 'ROLLING_BACK') {
        inProgress = now;
        return false;
      }
      t.cutover = task.cutover;
      t.updatedAt = task.updatedAt;
    });
    if (inProgress !== null) throw new TaskStateError(`a switch is in progress (${inProgress})`);
    if (!stored) throw new TaskStateError('this node no longer holds the task (another node took it over): try again');
    await this.log(task.id, 'INFO', action === 'exchange' ? 'EXCHANGE' : 'ROLLBACK', `${action} requested${fields.exchangedIp.length ? ` (exchanged_ip ${fields.exchangedIp.join(',')})` : ''}`);
    running.cutoverFallback = previous;
    running.runner.cutover({
      type: 'cutover',
      action,
      hook: 'command' in hook ? { command: hook.command, args: hook.args, timeoutMs: hook.timeoutSeconds ? hook.timeoutSeconds * 1000 : undefined } : { url: hook.url, timeoutMs: hook.timeoutSeconds ? hook.timeoutSeconds * 1000 : undefined },
      exchangedIp: fields.exchangedIp,
      isExchangeDomain: fields.isExchangeDomain,
    });
    return task;
  }

  /** Runs the task on this node when it has room in its share; otherwise another node claims it. */
  private async launchHereOrLeave(task: Task): Promise<void> {
    if (this.running.has(task.id)) return;
    if (this.leases.fence(task.id) || (await this.leases.claimNow(task.id))) this.launch(task);
  }

  async stop(task: Task): Promise<Task> {
    if (!ACTIVE_STATUSES.includes(task.status) || task.status === 'TERMINATING') {
      throw new TaskStateError(`the task is ${task.status}; only a migrating task can be stopped`);
    }
    let refused: string | null = null;
    const stored = await this.store.modifyTask(task.id, (t) => {
      if (!ACTIVE_STATUSES.includes(t.status) || t.status === 'TERMINATING') {
        refused = t.status;
        return false;
      }
      t.stopRequested = true;
      t.status = 'TERMINATING';
      t.updatedAt = new Date().toISOString();
    });
    if (refused !== null || !stored) throw new TaskStateError(`the task is ${refused ?? 'gone'}; only a migrating task can be stopped`);
    Object.assign(task, stored);
    await this.log(task.id, 'INFO', 'STOP', 'stop requested');
    const running = this.running.get(task.id);
    if (running) {
      running.runner.stop();
      return task;
    }
    if (this.leases.fence(task.id)) {
      await this.setStatus(task, 'TERMINATED');
      await this.leases.release(task.id);
      return task;
    }
    const owner = await this.store.leaseOwner(task.id);
    // Another node runs it: the command reaches it with its next poll (about a second).
    if (owner !== null) await this.store.sendCommand(task.id, 'stop');
    else await this.store.modifyTask(task.id, (t) => {
      // Nobody runs it (a node claiming it now sees TERMINATING and ends it the same way).
      if (t.status !== 'TERMINATING') return false;
      t.status = 'TERMINATED';
      t.updatedAt = new Date().toISOString();
      Object.assign(task, t);
    }).then(async (t) => {
      if (t?.status === 'TERMINATED') await this.log(task.id, 'INFO', 'TERMINATED', 'migration stopped');
    });
    return task;
  }

  /** Resolves once the task has left TERMINATING (or after `timeoutMs`), wherever it runs. */
  async waitUntilStopped(taskId: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const running = this.running.get(taskId);
    if (running) {
      await Promise.race([running.runner.exited, new Promise((r) => setTimeout(r, timeoutMs))]);
      // The exit handler persists the final status; give it its turn.
      for (let i = 0; i < 50 && this.running.has(taskId); i++) await new Promise((r) => setTimeout(r, 20));
      return;
    }
    // Another node's: its status in the store says when it is done.
    while (Date.now() < deadline) {
      const t = await this.store.getTaskById(taskId);
      if (!t || t.status !== 'TERMINATING') return;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async restart(task: Task): Promise<Task> {
    if (task.migrationType !== 'online_migration' || task.migrationMethod === null || !['FAILED', 'TERMINATED'].includes(task.status)) {
      throw new TaskStateError(`the task is ${task.status}; only a configured online task that failed or was stopped can be restarted`);
    }
    if (task.cutover?.direction === 'reverse') {
      throw new TaskStateError('the clients of this task are on the target (exchanged): its reverse sync cannot start over from the switch point without replaying writes; create a new task from the target to the source');
    }
    // A worker that reported its end may still be exiting: its exit is recorded (status, lease)
    // before the new run starts, or it would be taken for the new run's end.
    const ending = this.running.get(task.id);
    if (ending) {
      await Promise.race([ending.exitRecorded, new Promise((r) => setTimeout(r, 30_000).unref())]);
      if (this.running.get(task.id) === ending) throw new TaskStateError('the task is still stopping: try again in a moment');
    }
    let refused: string | null = null;
    const stored = await this.store.modifyTask(task.id, (t) => {
      if (!['FAILED', 'TERMINATED'].includes(t.status)) {
        refused = t.status;
        return false;
      }
      // A restart is a new sync (from checkpoints, else in full): not from an old switch point.
      if (t.cutover) t.cutover = { ...t.cutover, startFrom: null };
      t.status = 'FULLMIGRATING';
      t.error = null;
      t.stopRequested = false;
      t.updatedAt = new Date().toISOString();
      t.startedAt = t.updatedAt;
    });
    if (refused !== null || !stored) throw new TaskStateError(`the task is ${refused ?? 'gone'}; only a configured online task that failed or was stopped can be restarted`);
    Object.assign(task, stored);
    await this.log(task.id, 'INFO', 'RESTART', 'restart requested');
    await this.launchHereOrLeave(task);
    return task;
  }

  /**
   * Deleting a task ends it for good: a running worker is stopped (its migration removes its
   * checkpoints from the target as it ends), and a task that ran before has its checkpoints
   * removed by a short cleanup worker, so `__ferry:checkpoint:<id>:*` never outlives its task.
   */
  async delete(projectId: string, ids: readonly string[]): Promise<string[]> {
    const cleanups: Task[] = [];
    const sourceCleanups: Task[] = [];
    for (const id of ids) {
      const task = await this.store.getTask(projectId, id);
      if (!task) continue;
      const running = this.running.get(id);
      if (running) {
        await this.store.modifyTask(id, (t) => void (t.stopRequested = true));
        running.runner.stop();
        await running.runner.exited;
        this.running.delete(id);
      } else if (this.leases.fence(id)) {
        await this.leases.release(id);
      } else if ((await this.store.leaseOwner(id)) !== null) {
        // Another node runs it: stop it there (its migration removes its checkpoints as it
        // ends), and wait until that node lets go of the lease, or the lease runs out.
        await this.store.modifyTask(id, (t) => void (t.stopRequested = true));
        await this.store.sendCommand(id, 'stop');
        const deadline = Date.now() + 40_000;
        while (Date.now() < deadline && (await this.store.leaseOwner(id)) !== null) await new Promise((r) => setTimeout(r, 200));
      }
      if (task.migrationType === 'online_migration' && task.connectedAt && task.target) cleanups.push(task);
      // After a cutover the reverse sync kept checkpoints on the source (`<name>:reverse:*`).
      if (task.cutover && task.source) sourceCleanups.push(task);
    }
    const deleted = await this.store.deleteTasks(projectId, ids);
    for (const task of cleanups) this.cleanUpTarget(task);
    for (const task of sourceCleanups) this.cleanUpTarget(task, 'source');
    return deleted;
  }

  /** Removes a deleted task's checkpoints from its target (or source, after a cutover), in a worker of its own. */
  private cleanUpTarget(task: Task, side: 'target' | 'source' = 'target'): void {
    let target: Endpoint[];
    try {
      target = this.endpointOf(side === 'target' ? task.target : task.source);
    } catch {
      return;
    }
    const runner = new TaskRunner({ type: 'start-cleanup', taskId: task.id, target, addressPolicy: this.options.workerPolicy?.(task) }, (m) => {
      if (m.type === 'log') this.logger[m.level === 'INFO' ? 'info' : 'warn']({ taskId: task.id }, m.message);
    });
    this.cleanups.add(runner);
    runner.launch();
    void runner.exited.then(() => this.cleanups.delete(runner));
  }

  private readonly cleanups = new Set<TaskRunner>();

  /** Resolves when the cleanup workers started so far have ended (tests, shutdown). */
  async cleanupsDone(): Promise<void> {
    await Promise.all([...this.cleanups].map((r) => r.exited));
  }

  /** Passes a changed resume mode or bandwidth limit to the running worker, here or on its node. */
  applyUpdate(task: Task): void {
    const running = this.running.get(task.id);
    if (running) {
      running.runner.update(task.bandwidthLimitMb, task.resumeMode);
      return;
    }
    void this.store
      .leaseOwner(task.id)
      .then((owner) => (owner !== null ? this.store.sendCommand(task.id, 'update') : undefined))
      .catch((e: Error) => this.logger.warn({ taskId: task.id, err: e.message }, 'could not forward an update to the node running the task'));
  }

  /**
   * UpdateMigrationTask: the resume mode and the bandwidth limit, written atomically (a stop
   * arriving at another node at the same moment keeps its status), then passed to the worker.
   */
  async update(task: Task, resumeMode: ResumeMode | null, bandwidthLimitMb: number | null): Promise<Task> {
    const stored = await this.store.modifyTask(task.id, (t) => {
      if (resumeMode !== null) t.resumeMode = resumeMode;
      if (bandwidthLimitMb !== null) t.bandwidthLimitMb = bandwidthLimitMb;
      t.updatedAt = new Date().toISOString();
    });
    if (stored) Object.assign(task, stored);
    this.applyUpdate(task);
    return task;
  }

  /** Live stats of a running task, or what was stored last. */
  stats(task: Task): TaskStats | null {
    const running = this.running.get(task.id);
    if (running?.importProgress) return this.importStats(running.importProgress, running);
    if (!running?.progress) return task.stats;
    return this.statsFrom(running);
  }

  isRunning(taskId: string): boolean {
    return this.running.has(taskId);
  }

  /**
   * The last progress a running migration's worker reported, with the rates derived from it
   * (the metrics and the console's progress view); null when no worker runs or none reported.
   */
  liveProgress(taskId: string): LiveProgress | null {
    const running = this.running.get(taskId);
    if (!running?.progress) return null;
    return { progress: running.progress, kbps: running.kbps, ops: running.ops, sourceKeys: running.sourceKeys, targetKeys: running.targetKeys, restarts: running.restarts };
  }

  /** Ids of the tasks a worker runs for now (migrations and imports). */
  runningTaskIds(): string[] {
    return [...this.running.keys()];
  }

  /** Starts a backup-file import task (status MIGRATING). */
  async startImport(task: Task): Promise<void> {
    const spec = task.backupFiles!;
    // The node that took the request runs the import (its files may be local to it).
    await this.leases.claimNow(task.id, true);
    let files: ImportFiles;
    try {
      files = this.importFiles(spec);
    } catch (e) {
      await this.fail(task.id, this.importReason(spec, (e as Error).message));
      return;
    }
    const target = this.endpointOf(task.target);
    await this.log(task.id, 'INFO', 'IMPORT', `import of ${spec.files.join(', ') || spec.backupId} started`);
    const runner = new TaskRunner({ type: 'start-import', taskId: task.id, files, target, addressPolicy: this.options.workerPolicy?.(task) }, (m) => void this.onWorkerMessage(task.id, m));
    void this.ownerModify(task.id, (t) => void (t.workerNode = this.nodeId)).catch((e: Error) => this.logger.warn({ taskId: task.id, err: e.message }, 'could not record the worker node'));
    const running: Running = { runner, progress: null, sourceKeys: null, targetKeys: null, lastSample: null, kbps: 0, ops: 0, lastPersist: 0, restarts: 0, streamBase: null, importProgress: null, isImport: true };
    this.running.set(task.id, running);
    runner.launch();
    // A task deleted while its worker stops has no record left to update: log it, never crash the service.
    running.exitRecorded = runner.exited.then((exit) => this.onWorkerExit(task.id, running, exit)).catch((e: Error) => this.logger.warn({ taskId: task.id, err: e.message }, 'could not record the end of a worker'));
  }

  private importFiles(spec: BackupFilesSpec): ImportFiles {
    if (spec.fileSource === 'backup_record') {
      if (!this.imports.backupsDir) throw new Error('no backups directory is configured (config "backupsDir")');
      const dir = path.join(this.imports.backupsDir, spec.backupId ?? '');
      if (!spec.backupId || path.relative(this.imports.backupsDir, dir).startsWith('..') || !existsSync(dir)) throw new Error(`backup record ${spec.backupId} not found`);
      const names = spec.files.length ? spec.files : readdirSync(dir).filter((n) => statSync(path.join(dir, n)).isFile());
      return { kind: 'local', dir, names };
    }
    const bucket = spec.bucketName ?? '';
    const local = this.imports.buckets.get(bucket);
    if (local !== undefined) return { kind: 'local', dir: local, names: spec.files };
    if (this.imports.objectStore) return { kind: 's3', config: this.imports.objectStore, bucket, names: spec.files };
    throw new Error(`bucket ${JSON.stringify(bucket)} is not configured (config "buckets" or "objectStore")`);
  }

  /** An import's failure in the user's terms: the bucket or backup, never a server path. */
  private importReason(spec: BackupFilesSpec, reason: string): string {
    const places: { dir: string; label: string }[] = [];
    const bucketDir = spec.bucketName !== null ? this.imports.buckets.get(spec.bucketName) : undefined;
    if (bucketDir !== undefined) places.push({ dir: bucketDir, label: `bucket ${spec.bucketName}` });
    if (this.imports.backupsDir) {
      if (spec.backupId) places.push({ dir: path.join(this.imports.backupsDir, spec.backupId), label: `backup ${spec.backupId}` });
      places.push({ dir: this.imports.backupsDir, label: 'the backups directory' });
    }
    return userFacingReason(reason, places);
  }

  /** Starts a verification of the task's source and target in a worker (a Ferry extension). */
  async startVerify(task: Task, rounds: number, ttlToleranceMs: number): Promise<Task> {
    if (this.verifications.has(task.id)) throw new TaskStateError('a verification of this task is already running');
    if (!task.source || !task.target) throw new TaskStateError('the task has no source and target to compare (configure it first)');
    task.verification = { status: 'running', startedAt: new Date().toISOString(), finishedAt: null, report: null, error: null };
    await this.store.modifyTask(task.id, (t) => void (t.verification = task.verification));
    const runner = new TaskRunner(
      { type: 'start-verify', taskId: task.id, source: this.endpointOf(task.source), target: this.endpointOf(task.target), rounds, ttlToleranceMs, addressPolicy: this.options.workerPolicy?.(task), dbMapping: task.dbMapping ?? null },
      (m) => {
        if (m.type !== 'verify-done') return;
        void this.finishVerify(task.id, m.report, m.error);
      },
    );
    this.verifications.set(task.id, runner);
    runner.launch();
    void runner.exited.then(() => {
      this.verifications.delete(task.id);
      if (!runner.reportedOutcome) void this.finishVerify(task.id, null, 'the verification worker exited without a result');
    });
    return task;
  }

  private async finishVerify(taskId: string, report: unknown, error: string | null): Promise<void> {
    let finished = false;
    await this.store.modifyTask(taskId, (t) => {
      if (!t.verification || t.verification.status !== 'running') return false;
      t.verification = { ...t.verification, status: error ? 'failed' : 'done', finishedAt: new Date().toISOString(), report, error };
      finished = true;
    });
    if (!finished) return;
    await this.log(taskId, error ? 'ERROR' : 'INFO', 'VERIFY', error ? `verification failed: ${error}` : `verification done: ${(report as { equal?: boolean }).equal ? 'equal' : 'differences found'}`);
  }

  /** Stops every worker (service shutdown): their tasks keep their status and resume at start. */
  async shutdown(): Promise<void> {
    this.closing = true;
    await this.leases.stop();
    const all = [...this.running.values()];
    for (const r of all) r.runner.kill();
    for (const v of this.verifications.values()) v.kill();
    await Promise.all([...all.map((r) => r.runner.exited), ...[...this.verifications.values()].map((v) => v.exited)]);
    // Its workers are gone: another node may take its tasks at once instead of after the lease.
    for (const taskId of this.leases.heldTasks()) await this.leases.release(taskId);
    await this.store.removeNode(this.nodeId).catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------

  private launch(task: Task, restarts = 0): void {
    if (!this.leases.fence(task.id)) return; // not this node's (any more)
    let source: Endpoint[];
    let target: Endpoint[];
    try {
      source = this.endpointOf(task.source);
      target = this.endpointOf(task.target);
    } catch (e) {
      void this.fail(task.id, (e as Error).message).catch((err: Error) => this.logger.warn({ taskId: task.id, err: err.message }, 'could not fail the task'));
      return;
    }
    if (task.cutover && (task.cutover.taskStatus === 'EXCHANGING' || task.cutover.taskStatus === 'ROLLING_BACK')) {
      // The worker ended during a switch: the pause lapsed by itself; the direction is the one
      // recorded when (if) the hook moved the clients.
      task.cutover.taskStatus = task.cutover.direction === 'reverse' ? 'EXCHANGE_SUCCESS' : task.cutover.last?.ok && task.cutover.last.action === 'rollback' ? 'ROLLBACK_SUCCESS' : '';
      void this.olog(task.id, 'WARN', 'CUTOVER', `the worker ended during a switch; the clients are on the ${task.cutover.direction === 'reverse' ? 'target' : 'source'} side as far as Ferry knows`).catch((e: Error) => this.logger.warn({ taskId: task.id, err: e.message }, 'could not log'));
    }
    const runner = new TaskRunner(
      {
        type: 'start', taskId: task.id, source, target, method: task.migrationMethod === 'incremental_migration' ? 'incremental' : 'full', bandwidthLimitMb: task.bandwidthLimitMb, resumeMode: task.resumeMode, writeErrorPolicy: task.writeErrorPolicy ?? 'fail',
        dropFlush: task.dropFlush ?? false,
        // Once the task has written to the target, what is there is its own: a later full sync
        // (restart, recovery) replaces it instead of refusing.
        targetConflict: task.connectedAt && (task.targetConflict ?? 'fail') === 'fail' ? 'replace' : (task.targetConflict ?? 'fail'),
        addressPolicy: this.options.workerPolicy?.(task),
        // The task's own record, not a key on the target, says whether it has written before.
        priorWrites: !!task.connectedAt,
        sourceMode: task.sourceMode ?? 'auto',
        direction: task.cutover?.direction ?? 'forward',
        startFrom: task.cutover?.startFrom ?? null,
        cutover: { pauseTimeoutMs: this.options.cutover?.pauseTimeoutMs, drainTimeoutMs: this.options.cutover?.drainTimeoutMs },
        dbMapping: task.dbMapping ?? null,
        leaseValidUntil: this.leases.deadline(),
      },
      (m) => void this.onWorkerMessage(task.id, m),
    );
    const running: Running = { runner, progress: null, sourceKeys: null, targetKeys: null, lastSample: null, kbps: 0, ops: 0, lastPersist: 0, restarts, streamBase: null, importProgress: null };
    this.running.set(task.id, running);
    runner.launch();
    task.workerPid = runner.pid ?? null;
    task.workerNode = this.nodeId;
    void this.ownerModify(task.id, (t) => {
      t.workerPid = task.workerPid;
      t.workerNode = task.workerNode;
      t.cutover = task.cutover ?? null;
    }).catch(() => undefined);
    // A task deleted while its worker stops has no record left to update: log it, never crash the service.
    running.exitRecorded = runner.exited.then((exit) => this.onWorkerExit(task.id, running, exit)).catch((e: Error) => this.logger.warn({ taskId: task.id, err: e.message }, 'could not record the end of a worker'));
  }

  /** Every address of the list: a cluster's nodes, or a master and its replicas. */
  private endpointOf(e: TaskEndpoint | null): Endpoint[] {
    if (!e) throw new Error('the task has no source or target');
    const password = e.password ? this.secrets.open(e.password) : undefined;
    const sentinelPassword = e.sentinelPassword ? this.secrets.open(e.sentinelPassword) : undefined;
    return parseAddressList(e.addrs, { password, sentinelPassword, ...(e.tls ? { tls: e.tls } : {}) });
  }

  private async onWorkerMessage(taskId: string, m: FromWorker): Promise<void> {
    const running = this.running.get(taskId);
    if (!running || running.lost) return;
    try {
      switch (m.type) {
        case 'log':
          if (m.code === 'WORKER') running.crash = m.message;
          await this.olog(taskId, m.level, m.code, m.message);
          return;
        case 'progress': {
          running.progress = m.progress;
          running.sourceKeys = m.sourceKeys;
          running.targetKeys = m.targetKeys;
          this.sampleRates(running);
          const task = await this.store.getTaskById(taskId);
          if (!task) return;
          const status = this.statusFor(task, m.progress.phase);
          const now = Date.now();
          // Past connecting means past the preflight checks: the task is established.
          const connectedNow = !task.connectedAt && (m.progress.phase === 'snapshot' || m.progress.phase === 'incremental');
          if (connectedNow) task.connectedAt = new Date(now).toISOString();
          if (connectedNow || status !== task.status || now - running.lastPersist > 5000) {
            running.lastPersist = now;
            const stats = this.statsFrom(running);
            // Applied to the row as it is inside the write: a stop or an update from another
            // node between the read above and now is kept.
            await this.ownerModify(taskId, (t) => {
              if (connectedNow && !t.connectedAt) t.connectedAt = task.connectedAt;
              t.stats = stats;
              const s2 = this.statusFor(t, m.progress.phase);
              if (s2 !== t.status && t.status !== 'TERMINATING' && ACTIVE_STATUSES.includes(t.status)) t.status = s2;
              t.updatedAt = new Date().toISOString();
            });
          }
          return;
        }
        case 'import-progress': {
          running.importProgress = m.progress;
          this.sampleImportRates(running);
          const stats = this.importStats(m.progress, running);
          if (m.progress.warnings.length > 0) stats.writeErrors = m.progress.errors.count;
          const now = Date.now();
          if (now - running.lastPersist > 2000 || m.progress.phase !== 'importing') {
            running.lastPersist = now;
            await this.ownerModify(taskId, (t) => void (t.stats = stats));
          }
          return;
        }
        case 'verify-done':
          return;
        case 'cutover-switched': {
          // The clients have moved: this is where the task's direction changes, whatever follows.
          await this.ownerModify(taskId, (t) => {
            t.cutover = { ...(t.cutover ?? { taskStatus: '', last: null }), direction: m.direction, startFrom: m.startFrom, taskStatus: t.cutover?.taskStatus ?? '' };
          });
          return;
        }
        case 'cutover-done': {
          const r = m.report;
          const task = await this.ownerModify(taskId, (task) => {
          const c = task.cutover ?? { taskStatus: '', direction: 'forward', startFrom: null, last: null };
          task.cutover = {
            ...c,
            taskStatus: r.ok ? (r.action === 'exchange' ? 'EXCHANGE_SUCCESS' : 'ROLLBACK_SUCCESS') : (running.cutoverFallback ?? ''),
            direction: r.direction,
            startFrom: r.ok ? r.startFrom : c.startFrom,
            last: {
              action: r.action,
              ok: r.ok,
              at: new Date().toISOString(),
              pauseMs: r.pauseMs,
              drainMs: r.drainMs,
              hook: r.hook ? { description: r.hook.description, ok: r.hook.ok, timedOut: r.hook.timedOut, detail: r.hook.detail, durationMs: r.hook.durationMs } : null,
              error: r.error,
            },
          };
          task.updatedAt = new Date().toISOString();
          });
          if (!task) return;
          const what = r.action === 'exchange' ? 'EXCHANGE' : 'ROLLBACK';
          if (r.ok) await this.olog(taskId, 'INFO', `${what}_SUCCESS`, `${r.action} succeeded: writes paused ${r.pauseMs} ms; direction ${r.direction === 'forward' ? 'source → target' : 'target → source'}`);
          else await this.olog(taskId, 'ERROR', `${what}_FAILED`, `${r.action} failed, clients stay where they were: ${r.error}`);
          return;
        }
        case 'finished': {
          if (m.permanent) running.permanent = true;
          if (running.isImport) {
            const task = await this.ownerModify(taskId, (t) => {
              if (running.importProgress) t.stats = this.importStats(running.importProgress);
              t.updatedAt = new Date().toISOString();
              if (m.outcome === 'failed') t.error = t.backupFiles ? this.importReason(t.backupFiles, m.reason ?? 'the import failed') : m.reason;
              else t.status = m.outcome === 'done' ? 'SUCCESS' : 'TERMINATED';
            });
            if (!task) return;
            if (m.outcome === 'failed') await this.olog(taskId, 'ERROR', 'FAILED', `import failed: ${task.error}`);
            else await this.olog(taskId, 'INFO', task.status, `import ${m.outcome}: ${running.importProgress?.keys ?? 0} keys, ${running.importProgress?.commands ?? 0} commands`);
            return;
          }
          running.progress = m.progress;
          const stats = this.statsFrom(running);
          const task = await this.ownerModify(taskId, (t) => {
            t.stats = stats;
            t.updatedAt = new Date().toISOString();
            if (m.outcome === 'failed') t.error = m.reason;
            else t.status = m.outcome === 'done' ? 'SUCCESS' : 'TERMINATED';
          });
          if (!task) return;
          if (m.outcome === 'failed') await this.olog(taskId, 'ERROR', 'FAILED', `migration failed: ${m.reason}`);
          else if (m.outcome === 'done') await this.olog(taskId, 'INFO', 'SUCCESS', `migration finished: ${m.progress.snapshot.keys} keys`);
          else await this.olog(taskId, 'INFO', 'TERMINATED', 'migration stopped');
          return;
        }
      }
    } catch (e) {
      this.logger.error({ taskId, err: (e as Error).message }, 'could not record a worker message');
    }
  }

  private async onWorkerExit(taskId: string, running: Running, exit: { code: number | null; signal: NodeJS.Signals | null }): Promise<void> {
    const current = this.running.get(taskId);
    if (current === running) this.running.delete(taskId);
    // A newer worker runs the task already (restarted after this one reported its end): the old
    // one's exit must not touch the new run (it failed it as "ended unexpectedly").
    else if (current !== undefined) return;
    // Shutting down, or the lease is gone (the worker was killed for it, or stopped itself):
    // whatever happens next is for the node that holds the task now.
    if (this.closing || running.lost || !this.leases.fence(taskId)) return;
    const task = await this.store.getTaskById(taskId);
    if (!task) {
      await this.leases.release(taskId);
      return;
    }
    // Ended already: the worker reported its outcome (and the log has it) before it exited.
    if (task.status === 'TERMINATING' || task.stopRequested) {
      if (task.status !== 'SUCCESS' && task.status !== 'TERMINATED') await this.setStatus(task, 'TERMINATED');
      await this.leases.release(taskId);
      return;
    }
    if (!ACTIVE_STATUSES.includes(task.status)) {
      await this.leases.release(taskId);
      return;
    }
    if (task.migrationType === 'backupfile_import') {
      const why = running.crash ?? running.runner.startError ?? `the import worker exited (${exit.signal ?? `code ${exit.code}`}) without reporting an outcome`;
      await this.fail(taskId, task.error ?? (task.backupFiles ? this.importReason(task.backupFiles, why) : why));
      return;
    }
    const reason = running.runner.reportedOutcome
      ? (task.error ?? 'the migration ended unexpectedly')
      : (running.runner.startError ?? running.crash ?? `the worker process exited (${exit.signal ?? `code ${exit.code}`}) without reporting an outcome`);
    if (running.permanent) {
      await this.fail(taskId, reason);
      return;
    }
    const firstConnectMs = this.options.firstConnectTimeoutMs ?? 300_000;
    const startedAt = Date.parse(task.startedAt ?? task.createdAt);
    if (task.resumeMode === 'auto' && !task.connectedAt && Date.now() - startedAt >= firstConnectMs) {
      // Auto mode is for keeping an established migration alive, not for knocking forever on
      // an address that never answered (a typo, a firewall).
      await this.fail(taskId, `never connected in ${Math.round(firstConnectMs / 1000)} s (resume_mode auto gives up on a task that has never connected): ${reason}`);
      return;
    }
    if (task.resumeMode === 'auto') {
      // Until resuming from a checkpoint exists, "auto" means: start the migration again.
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(running.restarts, 5));
      await this.olog(taskId, 'WARN', 'RECONNECT', `${reason}; starting again in ${Math.round(delay / 1000)} s (resume_mode auto)`);
      await this.ownerModify(taskId, (t) => {
        if (t.status === 'TERMINATING' || t.stopRequested) return false;
        t.status = 'FULLMIGRATING';
        t.error = reason;
      });
      setTimeout(() => {
        void this.store.getTaskById(taskId).then(async (t) => {
          if (!this.leases.fence(taskId) || this.closing || this.running.has(taskId)) return;
          if (t && !t.stopRequested && t.status === 'FULLMIGRATING') this.launch(t, running.restarts + 1);
          else if (t && (t.stopRequested || t.status === 'TERMINATING')) {
            await this.setStatus(t, 'TERMINATED');
            await this.leases.release(taskId);
          } else await this.leases.release(taskId);
        }).catch((e: Error) => this.logger.warn({ taskId, err: e.message }, 'could not restart the worker'));
      }, delay).unref();
      return;
    }
    await this.fail(taskId, reason);
  }

  /** The owner fails the task for good (and gives its lease up). */
  private async fail(taskId: string, reason: string): Promise<void> {
    const task = await this.ownerModify(taskId, (t) => {
      t.status = 'FAILED';
      t.error = reason;
      t.updatedAt = new Date().toISOString();
    });
    if (task) await this.olog(taskId, 'ERROR', 'FAILED', reason);
    await this.leases.release(taskId);
  }

  private statusFor(task: Task, phase: MigrationProgress['phase']): TaskStatus {
    if (task.status === 'TERMINATING') return 'TERMINATING';
    switch (phase) {
      case 'incremental':
        return 'INCRMIGEATING';
      case 'snapshot':
        return 'FULLMIGRATING';
      // Connecting (a first start, a restart resuming from its checkpoint): the status stays
      // what it was until the source says whether it continues or resyncs.
      default:
        return task.status;
    }
  }

  private sampleRates(running: Running): void {
    const p = running.progress!;
    const now = Date.now();
    // Bytes taken in from the source: the snapshot, then the stream since its first offset.
    if (running.streamBase === null && p.stream.receivedOffset > 0) running.streamBase = p.stream.receivedOffset;
    const bytes = p.snapshot.bytesRead + (running.streamBase === null ? 0 : p.stream.receivedOffset - running.streamBase);
    const ops = p.snapshot.restored + p.snapshot.rewritten + p.stream.commandsForwarded;
    const last = running.lastSample;
    if (last && now > last.at) {
      const seconds = (now - last.at) / 1000;
      running.kbps = Math.max(0, (bytes - last.bytes) / 1024 / seconds);
      running.ops = Math.max(0, (ops - last.ops) / seconds);
    }
    running.lastSample = { at: now, bytes, ops };
  }

  /** Import rates: backup bytes read and keys + commands written per second, between two reports. */
  private sampleImportRates(running: Running): void {
    const p = running.importProgress!;
    const now = Date.now();
    const ops = p.keys + p.commands;
    const last = running.lastSample;
    if (last && now > last.at) {
      const seconds = (now - last.at) / 1000;
      running.kbps = Math.max(0, (p.bytesRead - last.bytes) / 1024 / seconds);
      running.ops = Math.max(0, (ops - last.ops) / seconds);
    }
    if (p.phase !== 'importing' && p.phase !== 'planning') running.kbps = running.ops = 0;
    running.lastSample = { at: now, bytes: p.bytesRead, ops };
  }

  /**
   * An import's stats. Not meaningful for a backup, and so 0 or absent: `offset` (no
   * replication lag), `source_dbsize` (no source server: the keys read are `keys_migrated`),
   * `target_dbsize` (not polled during an import).
   */
  private importStats(p: BackupImportProgress, running?: Running): TaskStats {
    return {
      fullMigrationProgress: p.progress,
      lagBytes: 0,
      sourceDbsize: null,
      targetDbsize: null,
      targetInputKbps: running ? Math.round(running.kbps) : 0,
      targetOps: running ? Math.round(running.ops) : 0,
      isMigrating: p.phase === 'importing' || p.phase === 'planning',
      keysMigrated: p.keys + p.commands,
      writeErrors: p.errors.count,
      reconnects: 0,
      checkpoint: null,
    };
  }

  private statsFrom(running: Running): TaskStats {
    const p = running.progress!;
    const s = p.snapshot;
    let progress = 0;
    if (s.finishedAt !== null || p.phase === 'incremental' || p.phase === 'done') progress = 100;
    else if (s.bytesTotal) progress = Math.min(99, Math.floor((100 * s.bytesRead) / s.bytesTotal));
    else if (s.keysExpected) progress = Math.min(99, Math.floor((100 * s.keys) / s.keysExpected));
    return {
      fullMigrationProgress: progress,
      lagBytes: p.stream.lagBytes,
      sourceDbsize: running.sourceKeys ?? s.keysExpected,
      targetDbsize: running.targetKeys,
      targetInputKbps: Math.round(running.kbps),
      targetOps: Math.round(running.ops),
      isMigrating: p.phase === 'snapshot' || p.phase === 'incremental' || p.phase === 'connecting',
      keysMigrated: s.restored + s.rewritten,
      writeErrors: p.errors.count,
      reconnects: running.restarts + p.reconnects,
      checkpoint: p.checkpoint,
      sourceMode: p.sourceMode ?? null,
    };
  }

  /** The owner records the task's new status. */
  private async setStatus(task: Task, status: TaskStatus): Promise<void> {
    const stored = await this.ownerModify(task.id, (t) => {
      t.status = status;
      t.updatedAt = new Date().toISOString();
    });
    if (!stored) return;
    Object.assign(task, stored);
    if (status === 'TERMINATED') await this.olog(task.id, 'INFO', 'TERMINATED', 'migration stopped');
  }

  async log(taskId: string, level: LogLevel, code: string, message: string): Promise<void> {
    await this.store.appendLog({ taskId, createdAt: new Date().toISOString(), level, code, message, keywords: [] });
  }

  /** New ids look like DCS's (UUIDs). */
  static newId(): string {
    return randomUUID();
  }
}
