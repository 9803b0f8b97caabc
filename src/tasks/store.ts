import type { AuditEntry, Job, LogLevel, Task, TaskLog } from './model.js';

/**
 * The lease a node holds on a task: who owns it and the fencing token of that claim. Every
 * claim of a task increments its token, so a write carrying an older token comes from an owner
 * that lost the task (paused past its lease, cut off) and is refused.
 */
export interface Fence {
  nodeId: string;
  token: number;
}

/** A write refused because its fence is not the task's current lease. */
export class StaleLeaseError extends Error {
  constructor(taskId: string, fence: Fence) {
    super(`task ${taskId}: node ${fence.nodeId} no longer holds lease ${fence.token}`);
  }
}

/** A Ferry node as it announces itself in the store. */
export interface NodeAnnouncement {
  id: string;
  /** host:port its API listens on. */
  listen: string;
  /** Leases it is willing to hold at once. */
  capacity: number;
}

export interface NodeRecord extends NodeAnnouncement {
  /** ISO 8601, by the store's clock. */
  heartbeatAt: string;
  /** Ids of the tasks it holds unexpired leases on. */
  tasks: string[];
}

export interface HeldLease {
  taskId: string;
  token: number;
}

/** What a command row asks the owner of a task to do (the request came to another node). */
export type TaskCommandKind = 'stop' | 'update';

export interface TaskCommand {
  id: number;
  taskId: string;
  kind: TaskCommandKind;
}

/**
 * Nodes, leases and commands: how several Ferry nodes on one database share the tasks. With the
 * embedded SQLite store there is one node, and the same calls work for it.
 *
 * Times are taken from the store's clock where it has one (PostgreSQL's), so nodes whose clocks
 * disagree still agree on when a lease expires.
 */
export interface CoordinationStore {
  /**
   * Records the node's heartbeat and extends every unexpired lease it holds by `leaseMs`;
   * returns the leases renewed. A lease the node thinks it holds and that is not in the answer
   * is lost (it expired, another node may have it).
   */
  heartbeat(node: NodeAnnouncement, leaseMs: number): Promise<HeldLease[]>;
  /**
   * Claims up to `limit` tasks in one of `statuses` that have no lease or an expired one (or only
   * `taskId`, when given), oldest first, each with its token incremented. Safe when several nodes
   * claim at once: a task goes to one of them.
   */
  claimTasks(nodeId: string, statuses: readonly string[], limit: number, leaseMs: number, taskId?: string): Promise<HeldLease[]>;
  /**
   * A node that starts again under the same id takes back the leases its previous run held,
   * expired or not, each with a new token (the previous run's writes are refused from now on).
   */
  reclaimLeases(nodeId: string, leaseMs: number): Promise<HeldLease[]>;
  /** The node leaves (a clean shutdown): it no longer counts for the others' fair share. */
  removeNode(nodeId: string): Promise<void>;
  /** Gives the lease up (the task ended, or is left for another node); a stale fence does nothing. */
  releaseLease(taskId: string, fence: Fence): Promise<void>;
  /** The current owner of the task's unexpired lease, or null. */
  leaseOwner(taskId: string): Promise<string | null>;
  /** Nodes that heartbeated within `withinMs`, with the tasks they hold. */
  listNodes(withinMs: number): Promise<NodeRecord[]>;
  /** Tasks in `statuses`, and nodes that heartbeated within `withinMs` (for the fair share). */
  load(statuses: readonly string[], withinMs: number): Promise<{ tasks: number; nodes: number }>;
  /** Queues a command for whichever node owns the task. */
  sendCommand(taskId: string, kind: TaskCommandKind): Promise<void>;
  /** Takes (removes and returns) the commands for tasks the node holds leases on. */
  takeCommands(nodeId: string): Promise<TaskCommand[]>;
}

/**
 * Where tasks, their logs and jobs live: SQLite (embedded, the default, one node) or PostgreSQL
 * (several nodes on one database), so nothing above this interface may assume either. Every
 * method is async for that reason, even where SQLite answers synchronously.
 */
export interface TaskStore extends CoordinationStore {
  createTask(task: Task): Promise<void>;
  /** Null when the task does not exist in that project. */
  getTask(projectId: string, id: string): Promise<Task | null>;
  /** Any project: the manager's view (restart recovery). */
  getTaskById(id: string): Promise<Task | null>;
  /** Newest first; `name` filters by substring; `total` counts all matches. */
  listTasks(projectId: string, query: { offset: number; limit: number; name?: string }): Promise<{ total: number; tasks: Task[] }>;
  /** Tasks in any of the statuses, any project (restart recovery). */
  listTasksByStatus(statuses: readonly string[]): Promise<Task[]>;
  /** Replaces the stored task (by id) with this one; bumps nothing by itself. */
  updateTask(task: Task): Promise<void>;
  /**
   * Reads the task, lets `change` edit it, and writes it back, as one atomic step (another
   * node's write cannot fall in between). `change` returning false writes nothing. With a
   * `fence`, the write happens only while that lease is the task's current one, else
   * StaleLeaseError. Null when the task does not exist.
   */
  modifyTask(id: string, change: (task: Task) => boolean | void, fence?: Fence): Promise<Task | null>;
  /** Deletes the tasks of the project with these ids (and their logs); returns the ids deleted. */
  deleteTasks(projectId: string, ids: readonly string[]): Promise<string[]>;

  /** With a `fence`, appended only while that lease is current (a stale owner's log is dropped, false). */
  appendLog(log: TaskLog, fence?: Fence): Promise<boolean | void>;
  /** Oldest first; `level` filters exactly; `total` counts all matches. */
  listLogs(taskId: string, query: { offset: number; limit: number; level?: LogLevel }): Promise<{ total: number; logs: TaskLog[] }>;

  createJob(job: Job): Promise<void>;
  getJob(projectId: string, id: string): Promise<Job | null>;
  updateJob(job: Job): Promise<void>;

  /** The audit log of mutating API calls (oldest entries beyond a cap are dropped). */
  appendAudit(entry: AuditEntry): Promise<void>;
  /** Newest first; `total` counts all entries of the project. */
  listAudit(projectId: string, query: { offset: number; limit: number }): Promise<{ total: number; entries: AuditEntry[] }>;

  close(): Promise<void>;
}
