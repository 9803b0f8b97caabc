/**
 * Ferry extension: GET /v2/{project_id}/migration-task/{task_id}/progress, the detailed view
 * behind the console's task page and `ferry tasks stats`: phase per shard, snapshot keys and
 * bytes with rate and ETA, stream offsets and lag, counters, refusals by error code, the phase
 * timeline, and the last hour of lag and throughput samples (kept in memory, sampled every
 * few seconds while a worker runs).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TaskManager } from '../tasks/manager.js';
import type { Task } from '../tasks/model.js';
import type { TaskStore } from '../tasks/store.js';
import { Errors } from './errors.js';
import { shardLabel } from './metrics.js';

export interface Sample {
  /** ms since the epoch */
  t: number;
  lag_bytes: number | null;
  lag_seconds: number | null;
  commands_per_second: number;
  read_bytes_per_second: number;
}

const HOUR_MS = 60 * 60 * 1000;

/** The last hour of samples of every running task. */
export class ProgressHistory {
  private readonly byTask = new Map<string, Sample[]>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly manager: TaskManager,
    readonly intervalMs = 2000,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  sample(now = Date.now()): void {
    const live = new Set(this.manager.runningTaskIds());
    for (const id of live) {
      const p = this.manager.liveProgress(id);
      if (!p) continue;
      const list = this.byTask.get(id) ?? [];
      list.push({ t: now, lag_bytes: p.progress.stream.lagBytes, lag_seconds: p.progress.stream.lagSeconds, commands_per_second: Math.round(p.ops), read_bytes_per_second: Math.round(p.kbps * 1024) });
      while (list.length > 0 && list[0]!.t < now - HOUR_MS) list.shift();
      this.byTask.set(id, list);
    }
    // A task that no longer runs keeps its hour until it ages out (the chart shows how it ended).
    for (const [id, list] of this.byTask) {
      if (live.has(id)) continue;
      while (list.length > 0 && list[0]!.t < now - HOUR_MS) list.shift();
      if (list.length === 0) this.byTask.delete(id);
    }
  }

  of(taskId: string): Sample[] {
    return this.byTask.get(taskId) ?? [];
  }
}

/** Log codes that mark a step of a task's life. */
const TIMELINE_CODES = new Set(['CREATED', 'CONFIGURED', 'PHASE', 'STOP', 'TERMINATED', 'SUCCESS', 'FAILED', 'RESTART', 'RECONNECT', 'RECOVER', 'VERIFY']);

async function timelineOf(store: TaskStore, task: Task): Promise<{ at: string; code: string; message: string }[]> {
  const { logs } = await store.listLogs(task.id, { offset: 0, limit: 1000 });
  return logs.filter((l) => TIMELINE_CODES.has(l.code)).map((l) => ({ at: l.createdAt, code: l.code, message: l.message }));
}

export function registerProgressRoute(app: FastifyInstance, deps: { store: TaskStore; manager: TaskManager; history: ProgressHistory }): void {
  const { store, manager, history } = deps;
  app.get(
    '/v2/:project_id/migration-task/:task_id/progress',
    {
      schema: {
        operationId: 'ShowMigrationTaskProgress',
        summary: 'Detailed progress of a task: phases, snapshot, stream offsets and lag per shard, counters, timeline, the last hour of samples (Ferry extension)',
        'x-ferry-extension': true,
        params: { type: 'object', properties: { project_id: { type: 'string', maxLength: 64 }, task_id: { type: 'string', maxLength: 200 } } },
      },
    },
    async (req: FastifyRequest) => {
      const id = (req.params as { task_id: string }).task_id;
      const task = await store.getTask(req.projectId, id);
      if (!task) throw Errors.taskNotFound();
      const live = manager.liveProgress(task.id);
      const stats = manager.stats(task);
      const p = live?.progress ?? null;
      const s = p?.snapshot ?? null;
      const now = Date.now();
      let keysPerSecond: number | null = null;
      let eta: number | null = null;
      if (s?.startedAt) {
        const elapsed = ((s.finishedAt ?? now) - s.startedAt) / 1000;
        if (elapsed > 0) keysPerSecond = Math.round(s.keys / elapsed);
        if (s.finishedAt === null && s.keysExpected && keysPerSecond) eta = Math.max(0, Math.round((s.keysExpected - s.keys) / keysPerSecond));
        if (s.finishedAt !== null) eta = 0;
      }
      return {
        task_id: task.id,
        task_name: task.name,
        status: task.status,
        running: live !== null,
        phase: p?.phase ?? null,
        source_mode: p?.sourceMode ?? stats?.sourceMode ?? null,
        full_migration_progress: stats?.fullMigrationProgress ?? (task.status === 'SUCCESS' ? 100 : 0),
        snapshot: s
          ? { keys_done: s.keys, keys_total: s.keysExpected, bytes_done: s.bytesRead, bytes_total: s.bytesTotal, started_at: s.startedAt, finished_at: s.finishedAt, keys_per_second: keysPerSecond, eta_seconds: eta }
          : null,
        stream: p
          ? { received_offset: p.stream.receivedOffset, applied_offset: p.stream.appliedOffset, source_offset: p.stream.sourceOffset, lag_bytes: p.stream.lagBytes, lag_seconds: p.stream.lagSeconds, commands_forwarded: p.stream.commandsForwarded }
          : { lag_bytes: stats?.lagBytes ?? null, lag_seconds: null },
        commands_per_second: live ? Math.round(live.ops) : 0,
        read_bytes_per_second: live ? Math.round(live.kbps * 1024) : 0,
        keys_migrated: stats?.keysMigrated ?? 0,
        source_keys: stats?.sourceDbsize ?? null,
        target_keys: stats?.targetDbsize ?? null,
        reconnects: stats?.reconnects ?? 0,
        full_resyncs: p?.fullResyncs ?? 0,
        refused_writes: { count: p?.errors.count ?? stats?.writeErrors ?? 0, by_code: p?.errors.byCode ?? {}, retried_by_code: p?.errors.retriedByCode ?? {} },
        shards: (p?.shards ?? []).map((sh) => ({
          shard: shardLabel(sh.source),
          phase: sh.phase,
          mode: sh.mode ?? 'psync',
          received_offset: sh.stream.receivedOffset,
          applied_offset: sh.stream.appliedOffset,
          source_offset: sh.stream.sourceOffset,
          lag_bytes: sh.stream.lagBytes,
          lag_seconds: sh.stream.lagSeconds,
          reconnects: sh.reconnects,
          full_resyncs: sh.fullResyncs,
        })),
        failure: task.error,
        timeline: await timelineOf(store, task),
        history: history.of(task.id),
        history_interval_ms: history.intervalMs,
      };
    },
  );
}
