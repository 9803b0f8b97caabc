import type { AuditEntry, Job, LogLevel, Task, TaskLog } from './model.js';

/**
 * Where tasks, their logs and jobs live. SQLite (embedded, the default) implements it now;
 * PostgreSQL comes later, so nothing above this interface may assume SQLite. Every method is
 * async for that reason, even where SQLite answers synchronously.
 */
export interface TaskStore {
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
  /** Deletes the tasks of the project with these ids (and their logs); returns the ids deleted. */
  deleteTasks(projectId: string, ids: readonly string[]): Promise<string[]>;

  appendLog(log: TaskLog): Promise<void>;
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
