/**
 * Prometheus metrics (`GET /metrics`, prom-client): the tasks' state and progress as the workers
 * last reported it, and the service process's own metrics. Every name starts with `ferry_`;
 * task metrics carry `task_id` and `task_name`, per-shard ones also `shard` (the source node's
 * host:port). Nothing secret goes in: no password, no credential, no key of the data.
 *
 * The task series are built fresh at each scrape from the store and the manager (a deleted
 * task's series vanish with it); the process metrics live in a registry of their own.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { LiveProgress, TaskManager } from '../tasks/manager.js';
import type { Task, TaskStatus } from '../tasks/model.js';
import type { TaskStore } from '../tasks/store.js';

export const ALL_STATUSES: readonly TaskStatus[] = ['RUNNING', 'FULLMIGRATING', 'INCRMIGEATING', 'MIGRATING', 'SUCCESS', 'FAILED', 'TERMINATING', 'TERMINATED'];

/** A shard's label: host:port of its source node, never credentials that a URL form could carry. */
/** Statuses in which a node's worker runs the task. */
const RUNNING_STATUSES: ReadonlySet<TaskStatus> = new Set(['FULLMIGRATING', 'INCRMIGEATING', 'MIGRATING', 'TERMINATING']);

export function shardLabel(source: string): string {
  const at = source.lastIndexOf('@');
  return (at >= 0 ? source.slice(at + 1) : source).replace(/^[a-z]+:\/\//i, '');
}

/** Differences the last verification found (0 when equal, absent when never verified). */
function verifyDifferences(task: Task): number | null {
  const v = task.verification;
  if (!v || v.status !== 'done') return null;
  const report = v.report as { equal?: boolean; differences?: unknown[]; counts?: Record<string, unknown> } | null;
  if (!report) return null;
  const counts = report.counts;
  if (counts && typeof counts === 'object') {
    let n = 0;
    for (const [k, value] of Object.entries(counts)) if (k !== 'equal' && typeof value === 'number') n += value;
    if (n > 0 || report.equal) return n;
  }
  return Array.isArray(report.differences) ? report.differences.length : report.equal ? 0 : 1;
}

export class ServiceMetrics {
  private readonly process = new Registry();

  constructor(
    private readonly store: TaskStore,
    private readonly manager: TaskManager,
  ) {
    collectDefaultMetrics({ register: this.process, prefix: 'ferry_' });
  }

  get contentType(): string {
    return this.process.contentType;
  }

  /** The exposition text: tasks of one project, or of all (`null`, the metrics token's view). */
  async render(projectId: string | null): Promise<string> {
    const tasks = projectId === null ? await this.store.listTasksByStatus(ALL_STATUSES) : (await this.store.listTasks(projectId, { offset: 0, limit: 100_000 })).tasks;
    const reg = new Registry();
    const r = [reg];
    const task = ['task_id', 'task_name'] as const;
    const shard = ['task_id', 'task_name', 'shard'] as const;
    const g = (name: string, help: string, labelNames: readonly string[]) => new Gauge({ name, help, labelNames, registers: r });
    const c = (name: string, help: string, labelNames: readonly string[]) => new Counter({ name, help, labelNames, registers: r });

    const tasksByStatus = g('ferry_tasks', 'Tasks by status', ['status']);
    const status = g('ferry_task_status', 'The task status: 1 for the current one (FULLMIGRATING, INCRMIGEATING, FAILED, ...)', [...task, 'status']);
    const phase = g('ferry_task_phase', "A shard's phase: 1 for the current one (connecting, snapshot, incremental, reconnecting, done, stopped, failed)", [...shard, 'phase']);
    const progress = g('ferry_snapshot_progress_percent', 'Full migration progress, 0-100', task);
    const keysDone = g('ferry_snapshot_keys_done', 'Snapshot keys read so far', task);
    const keysTotal = g('ferry_snapshot_keys_total', 'Keys the source held when the snapshot began (estimate)', task);
    const bytesDone = g('ferry_snapshot_bytes_done', 'Snapshot bytes read so far', task);
    const bytesTotal = g('ferry_snapshot_bytes_total', 'Snapshot size, when the source announced it', task);
    const received = g('ferry_stream_received_offset', "Replication offset after the last byte received from the source's stream", shard);
    const applied = g('ferry_stream_applied_offset', 'Replication offset after the last command the target acknowledged', shard);
    const sourceOffset = g('ferry_stream_source_offset', "The source's own master_repl_offset, last polled", shard);
    const lagBytes = g('ferry_lag_bytes', 'Bytes of the source stream not yet applied to the target', shard);
    const lagSeconds = g('ferry_lag_seconds', 'Age of the oldest command not yet applied to the target', shard);
    const forwarded = c('ferry_commands_forwarded_total', 'Stream commands written to the target', shard);
    const opsRate = g('ferry_commands_per_second', 'Commands (and snapshot keys) written to the target per second', task);
    const bytesRate = g('ferry_read_bytes_per_second', 'Bytes read from the source per second', task);
    const reconnects = c('ferry_reconnects_total', 'Source links lost and re-established (and worker restarts)', shard);
    const fullResyncs = c('ferry_full_resyncs_total', 'Full resyncs after the first sync', shard);
    const refused = c('ferry_refused_writes_total', 'Writes the target refused for good, by error code', [...task, 'code']);
    const retried = c('ferry_retried_writes_total', 'Writes the target refused for a while (OOM, LOADING...) that passed when sent again, by error code', [...task, 'code']);
    const differences = g('ferry_verify_differences', 'Differences the last verification found (0: equal)', task);
    const taskNode = g('ferry_task_node', 'The node whose worker runs the task (1); several nodes can share one PostgreSQL store', [...task, 'node']);
    const nodeHeartbeatAge = g('ferry_node_heartbeat_age_seconds', "Seconds since the node's last heartbeat (the nodes sharing the store, live ones only)", ['node', 'listen']);
    const nodeLeases = g('ferry_node_leases', 'Task leases the node holds (every project)', ['node', 'listen']);
    const nodeCapacity = g('ferry_node_capacity', 'Task leases the node takes at most', ['node', 'listen']);

    const counts = new Map<string, number>(ALL_STATUSES.map((s) => [s, 0]));
    for (const t of tasks) {
      counts.set(t.status, (counts.get(t.status) ?? 0) + 1);
      const l = { task_id: t.id, task_name: t.name };
      status.set({ ...l, status: t.status }, 1);
      if (t.workerNode && RUNNING_STATUSES.has(t.status)) taskNode.set({ ...l, node: t.workerNode }, 1);
      const diff = verifyDifferences(t);
      if (diff !== null) differences.set(l, diff);
      const live: LiveProgress | null = this.manager.liveProgress(t.id);
      if (!live) {
        // Not running: what the task record kept of its last run.
        // (The counters per code and shard are a running worker's; they end with it.)
        if (t.stats) {
          progress.set(l, t.stats.fullMigrationProgress);
          keysDone.set(l, t.stats.keysMigrated);
        }
        continue;
      }
      const p = live.progress;
      const s = p.snapshot;
      const stats = this.manager.stats(t);
      if (stats) progress.set(l, stats.fullMigrationProgress);
      keysDone.set(l, s.keys);
      if (s.keysExpected !== null) keysTotal.set(l, s.keysExpected);
      bytesDone.set(l, s.bytesRead);
      if (s.bytesTotal !== null) bytesTotal.set(l, s.bytesTotal);
      opsRate.set(l, live.ops);
      bytesRate.set(l, live.kbps * 1024);
      for (const [code, n] of Object.entries(p.errors.byCode)) refused.inc({ ...l, code }, n);
      for (const [code, n] of Object.entries(p.errors.retriedByCode ?? {})) retried.inc({ ...l, code }, n);
      p.shards.forEach((sh, i) => {
        const sl = { ...l, shard: shardLabel(sh.source) };
        phase.set({ ...sl, phase: sh.phase }, 1);
        received.set(sl, sh.stream.receivedOffset);
        applied.set(sl, sh.stream.appliedOffset);
        if (sh.stream.sourceOffset !== null) sourceOffset.set(sl, sh.stream.sourceOffset);
        if (sh.stream.lagBytes !== null) lagBytes.set(sl, sh.stream.lagBytes);
        if (sh.stream.lagSeconds !== null) lagSeconds.set(sl, sh.stream.lagSeconds);
        forwarded.inc(sl, sh.stream.commandsForwarded);
        // The worker restarts of resume_mode auto count as reconnects of the first shard.
        reconnects.inc(sl, sh.reconnects + (i === 0 ? live.restarts : 0));
        fullResyncs.inc(sl, sh.fullResyncs);
      });
    }
    for (const [s, n] of counts) tasksByStatus.set({ status: s }, n);
    const now = Date.now();
    for (const n of await this.store.listNodes(this.manager.leases.node.leaseMs)) {
      const nl = { node: n.id, listen: n.listen };
      nodeHeartbeatAge.set(nl, Math.max(0, (now - Date.parse(n.heartbeatAt)) / 1000));
      nodeLeases.set(nl, n.tasks.length);
      nodeCapacity.set(nl, n.capacity);
    }
    return (await reg.metrics()) + (await this.process.metrics());
  }
}
