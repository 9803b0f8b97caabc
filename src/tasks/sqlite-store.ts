/**
 * The embedded TaskStore: one SQLite file (better-sqlite3, synchronous) behind the async
 * interface.
 *
 * Durability: the file runs in WAL mode with `synchronous = NORMAL`. A commit is in the WAL (the
 * OS's page cache at least) when the call returns, so it survives the process dying in any way,
 * `kill -9` included; what NORMAL gives up against FULL is only the last commits before a power
 * loss or kernel crash (the database stays consistent, it just rolls back to an earlier
 * commit). That is the trade we want: task status changes are frequent, and an fsync per
 * change would cost more than re-doing a few seconds of work after a power cut.
 *
 * Layout: a task is stored whole as JSON (`data`), so adding a field to Task needs no schema
 * change; the fields we search or sort by are copied into columns with indexes. Schema changes
 * are numbered migrations recorded in `schema_version`, applied once each, in order, at open.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { AuditEntry, Job, LogLevel, Task, TaskLog } from './model.js';
import { StaleLeaseError, type Fence, type HeldLease, type NodeAnnouncement, type NodeRecord, type TaskCommand, type TaskCommandKind, type TaskStore } from './store.js';

/** Logs kept per task; appending beyond it drops the oldest, so a looping task cannot fill the disk. */
export const MAX_LOGS_PER_TASK = 10_000;

/** Audit entries kept (all projects together); older ones are dropped as new ones come. */
export const MAX_AUDIT_ENTRIES = 200_000;

interface Migration {
  version: number;
  description: string;
  sql: string;
}

/**
 * Never edit a migration once released: databases in the field have it applied already. Add a
 * new one with the next number instead. Plain CREATE (no IF NOT EXISTS) on purpose, so a
 * migration that somehow ran twice fails loudly instead of passing silently.
 */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'tasks, task_logs, jobs',
    sql: `
      CREATE TABLE tasks (
        id TEXT PRIMARY KEY NOT NULL,
        -- insertion order: breaks ties between tasks created in the same millisecond
        seq INTEGER NOT NULL UNIQUE,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        -- ms since epoch: ISO strings only sort right when every writer used the same format
        created_at_ms INTEGER NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX tasks_by_project ON tasks (project_id, created_at_ms DESC, seq DESC);
      CREATE INDEX tasks_by_status ON tasks (status);

      CREATE TABLE task_logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL,
        -- 1, 2, 3... per task: finding the entries beyond the cap is then one index range
        -- (counting a task's logs on every append would be a scan)
        seq INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        level TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        keywords TEXT NOT NULL
      );
      CREATE UNIQUE INDEX task_logs_by_task ON task_logs (task_id, seq);
      CREATE INDEX task_logs_by_task_level ON task_logs (task_id, level, seq);

      CREATE TABLE jobs (
        id TEXT PRIMARY KEY NOT NULL,
        project_id TEXT NOT NULL,
        status TEXT NOT NULL,
        data TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    description: 'audit_log',
    sql: `
      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id TEXT NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX audit_log_by_project ON audit_log (project_id, id DESC);
    `,
  },
  {
    version: 3,
    description: 'nodes, task_leases, task_commands',
    sql: `
      CREATE TABLE nodes (
        id TEXT PRIMARY KEY NOT NULL,
        listen TEXT NOT NULL,
        capacity INTEGER NOT NULL,
        heartbeat_at_ms INTEGER NOT NULL
      );
      -- One row per task ever claimed; a released lease keeps its row (owner '') so the
      -- token only ever grows.
      CREATE TABLE task_leases (
        task_id TEXT PRIMARY KEY NOT NULL,
        owner TEXT NOT NULL,
        token INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL
      );
      CREATE INDEX task_leases_by_owner ON task_leases (owner, expires_at_ms);
      CREATE TABLE task_commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL,
        kind TEXT NOT NULL
      );
      CREATE INDEX task_commands_by_task ON task_commands (task_id);
    `,
  },
];

/** A node silent for this long is dropped from the nodes table (its leases expired long before). */
export const NODE_FORGOTTEN_AFTER_MS = 24 * 3600_000;

/** The schema version this build writes; a database at a higher one came from a newer Ferry. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

type Row<T> = T | undefined;
interface DataRow {
  data: string;
}
interface CountRow {
  n: number;
}
interface LogRow {
  task_id: string;
  created_at: string;
  level: string;
  code: string;
  message: string;
  keywords: string;
}

/** `name` as a LIKE substring pattern: its own %, _ and \ match only themselves. */
export function likeSubstring(name: string): string {
  return `%${name.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export function createdAtMs(task: Task): number {
  const ms = Date.parse(task.createdAt);
  if (Number.isNaN(ms)) throw new RangeError(`task ${task.id}: createdAt is not a date: ${JSON.stringify(task.createdAt)}`);
  return ms;
}

/** SQLite reads a negative LIMIT as "no limit": refuse it rather than return everything. */
export function checkPage(query: { offset: number; limit: number }): void {
  if (!Number.isSafeInteger(query.offset) || query.offset < 0) throw new RangeError(`offset must be an integer >= 0, got ${query.offset}`);
  if (!Number.isSafeInteger(query.limit) || query.limit < 0) throw new RangeError(`limit must be an integer >= 0, got ${query.limit}`);
}

function parseTask(row: DataRow): Task {
  return JSON.parse(row.data) as Task;
}

function parseJob(row: DataRow): Job {
  return JSON.parse(row.data) as Job;
}

function parseLog(row: LogRow): TaskLog {
  return {
    taskId: row.task_id,
    createdAt: row.created_at,
    level: row.level as LogLevel,
    code: row.code,
    message: row.message,
    keywords: JSON.parse(row.keywords) as string[],
  };
}

/** Mode 0600 for the database and its WAL and shared-memory files, where they exist. */
function privateFiles(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      if ((fs.statSync(f).mode & 0o077) !== 0) fs.chmodSync(f, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

function applyMigrations(db: Database.Database): void {
  // IMMEDIATE: two processes opening the same new file at once must not both migrate it; the
  // second waits (busy_timeout), then finds the versions applied.
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY NOT NULL, description TEXT NOT NULL, applied_at TEXT NOT NULL)');
    const applied = new Set(
      db
        .prepare<[], { version: number }>('SELECT version FROM schema_version')
        .all()
        .map((r) => r.version),
    );
    const newest = Math.max(0, ...applied);
    if (newest > SCHEMA_VERSION) {
      throw new Error(`task database ${db.name} has schema version ${newest}, newer than this Ferry knows (${SCHEMA_VERSION}): upgrade Ferry`);
    }
    const record = db.prepare<[number, string, string]>('INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)');
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      db.exec(m.sql);
      record.run(m.version, m.description, new Date().toISOString());
    }
  }).immediate();
}

export class SqliteTaskStore implements TaskStore {
  private readonly stmt;
  private readonly appendLogTx;
  private readonly deleteTasksTx;
  private readonly modifyTaskTx;
  private readonly claimTx;

  private constructor(private readonly db: Database.Database) {
    // Prepared once here: preparing parses and plans the SQL, which costs more than running it.
    this.stmt = {
      insertTask: db.prepare<[string, string, string, string, number, string]>(
        `INSERT INTO tasks (id, seq, project_id, name, status, created_at_ms, data)
         VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks), ?, ?, ?, ?, ?)`,
      ),
      getTask: db.prepare<[string, string], DataRow>('SELECT data FROM tasks WHERE project_id = ? AND id = ?'),
      getTaskById: db.prepare<[string], DataRow>('SELECT data FROM tasks WHERE id = ?'),
      countTasks: db.prepare<[string], CountRow>('SELECT COUNT(*) AS n FROM tasks WHERE project_id = ?'),
      listTasks: db.prepare<[string, number, number], DataRow>(
        'SELECT data FROM tasks WHERE project_id = ? ORDER BY created_at_ms DESC, seq DESC LIMIT ? OFFSET ?',
      ),
      countTasksNamed: db.prepare<[string, string], CountRow>(
        "SELECT COUNT(*) AS n FROM tasks WHERE project_id = ? AND name LIKE ? ESCAPE '\\'",
      ),
      listTasksNamed: db.prepare<[string, string, number, number], DataRow>(
        `SELECT data FROM tasks WHERE project_id = ? AND name LIKE ? ESCAPE '\\'
         ORDER BY created_at_ms DESC, seq DESC LIMIT ? OFFSET ?`,
      ),
      // One statement for any number of statuses: they come in as one JSON array parameter.
      listTasksByStatus: db.prepare<[string], DataRow>(
        'SELECT data FROM tasks WHERE status IN (SELECT value FROM json_each(?)) ORDER BY seq',
      ),
      updateTask: db.prepare<[string, string, number, string, string, string]>(
        'UPDATE tasks SET name = ?, status = ?, created_at_ms = ?, data = ? WHERE id = ? AND project_id = ?',
      ),
      deleteTask: db.prepare<[string, string]>('DELETE FROM tasks WHERE project_id = ? AND id = ?'),
      deleteLogsOfTask: db.prepare<[string]>('DELETE FROM task_logs WHERE task_id = ?'),
      lastLogSeq: db.prepare<[string], { seq: number | null }>('SELECT MAX(seq) AS seq FROM task_logs WHERE task_id = ?'),
      insertLog: db.prepare<[string, number, string, string, string, string, string]>(
        'INSERT INTO task_logs (task_id, seq, created_at, level, code, message, keywords) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      trimLogs: db.prepare<[string, number]>('DELETE FROM task_logs WHERE task_id = ? AND seq <= ?'),
      countLogs: db.prepare<[string], CountRow>('SELECT COUNT(*) AS n FROM task_logs WHERE task_id = ?'),
      listLogs: db.prepare<[string, number, number], LogRow>(
        'SELECT task_id, created_at, level, code, message, keywords FROM task_logs WHERE task_id = ? ORDER BY seq LIMIT ? OFFSET ?',
      ),
      countLogsAtLevel: db.prepare<[string, string], CountRow>('SELECT COUNT(*) AS n FROM task_logs WHERE task_id = ? AND level = ?'),
      listLogsAtLevel: db.prepare<[string, string, number, number], LogRow>(
        `SELECT task_id, created_at, level, code, message, keywords FROM task_logs
         WHERE task_id = ? AND level = ? ORDER BY seq LIMIT ? OFFSET ?`,
      ),
      insertJob: db.prepare<[string, string, string, string]>('INSERT INTO jobs (id, project_id, status, data) VALUES (?, ?, ?, ?)'),
      getJob: db.prepare<[string, string], DataRow>('SELECT data FROM jobs WHERE project_id = ? AND id = ?'),
      updateJob: db.prepare<[string, string, string, string]>('UPDATE jobs SET status = ?, data = ? WHERE id = ? AND project_id = ?'),
      insertAudit: db.prepare<[string, string]>('INSERT INTO audit_log (project_id, data) VALUES (?, ?)'),
      trimAudit: db.prepare<[number | bigint]>('DELETE FROM audit_log WHERE id <= ?'),
      countAudit: db.prepare<[string], CountRow>('SELECT COUNT(*) AS n FROM audit_log WHERE project_id = ?'),
      listAudit: db.prepare<[string, number, number], DataRow>('SELECT data FROM audit_log WHERE project_id = ? ORDER BY id DESC LIMIT ? OFFSET ?'),
      leaseOf: db.prepare<[string], { owner: string; token: number; expires_at_ms: number }>('SELECT owner, token, expires_at_ms FROM task_leases WHERE task_id = ?'),
      upsertNode: db.prepare<[string, string, number, number]>(
        `INSERT INTO nodes (id, listen, capacity, heartbeat_at_ms) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET listen = excluded.listen, capacity = excluded.capacity, heartbeat_at_ms = excluded.heartbeat_at_ms`,
      ),
      pruneNodes: db.prepare<[number]>('DELETE FROM nodes WHERE heartbeat_at_ms < ?'),
      renewLeases: db.prepare<[number, string, number], { task_id: string; token: number }>(
        'UPDATE task_leases SET expires_at_ms = ? WHERE owner = ? AND expires_at_ms >= ? RETURNING task_id, token',
      ),
      claimable: db.prepare<[string, number, string | null, string | null, number], { id: string }>(
        `SELECT t.id FROM tasks t LEFT JOIN task_leases l ON l.task_id = t.id
         WHERE t.status IN (SELECT value FROM json_each(?)) AND (l.task_id IS NULL OR l.owner = '' OR l.expires_at_ms < ?)
           AND (? IS NULL OR t.id = ?)
         ORDER BY t.seq LIMIT ?`,
      ),
      claim: db.prepare<[string, string, number], { token: number }>(
        `INSERT INTO task_leases (task_id, owner, token, expires_at_ms) VALUES (?, ?, 1, ?)
         ON CONFLICT (task_id) DO UPDATE SET owner = excluded.owner, token = token + 1, expires_at_ms = excluded.expires_at_ms
         RETURNING token`,
      ),
      reclaim: db.prepare<[number, string], { task_id: string; token: number }>(
        'UPDATE task_leases SET token = token + 1, expires_at_ms = ? WHERE owner = ? RETURNING task_id, token',
      ),
      release: db.prepare<[string, string, number]>("UPDATE task_leases SET owner = '', expires_at_ms = 0 WHERE task_id = ? AND owner = ? AND token = ?"),
      leaseOwner: db.prepare<[string, number], { owner: string }>("SELECT owner FROM task_leases WHERE task_id = ? AND owner <> '' AND expires_at_ms >= ?"),
      liveNodes: db.prepare<[number], { id: string; listen: string; capacity: number; heartbeat_at_ms: number }>(
        'SELECT id, listen, capacity, heartbeat_at_ms FROM nodes WHERE heartbeat_at_ms >= ? ORDER BY id',
      ),
      leasesOf: db.prepare<[string, number], { task_id: string }>('SELECT task_id FROM task_leases WHERE owner = ? AND expires_at_ms >= ? ORDER BY task_id'),
      countByStatus: db.prepare<[string], CountRow>('SELECT COUNT(*) AS n FROM tasks WHERE status IN (SELECT value FROM json_each(?))'),
      countNodes: db.prepare<[number], CountRow>('SELECT COUNT(*) AS n FROM nodes WHERE heartbeat_at_ms >= ?'),
      insertCommand: db.prepare<[string, string]>('INSERT INTO task_commands (task_id, kind) VALUES (?, ?)'),
      takeCommands: db.prepare<[string, number], { id: number; task_id: string; kind: string }>(
        'DELETE FROM task_commands WHERE task_id IN (SELECT task_id FROM task_leases WHERE owner = ? AND expires_at_ms >= ?) RETURNING id, task_id, kind',
      ),
      deleteLeaseOfTask: db.prepare<[string]>('DELETE FROM task_leases WHERE task_id = ?'),
      deleteCommandsOfTask: db.prepare<[string]>('DELETE FROM task_commands WHERE task_id = ?'),
    };

    const s = this.stmt;
    // Sequence number, insert and trim in one transaction, so the cap holds even with two
    // writers and a crash never leaves a half-applied append.
    this.appendLogTx = db.transaction((log: TaskLog, fence?: Fence): boolean => {
      if (fence && !this.holds(log.taskId, fence)) return false;
      const seq = (s.lastLogSeq.get(log.taskId)?.seq ?? 0) + 1;
      s.insertLog.run(log.taskId, seq, log.createdAt, log.level, log.code, log.message, JSON.stringify(log.keywords));
      if (seq > MAX_LOGS_PER_TASK) s.trimLogs.run(log.taskId, seq - MAX_LOGS_PER_TASK);
      return true;
    });
    this.modifyTaskTx = db.transaction((id: string, change: (task: Task) => boolean | void, fence?: Fence): Task | null => {
      if (fence && !this.holds(id, fence)) throw new StaleLeaseError(id, fence);
      const row = s.getTaskById.get(id);
      if (!row) return null;
      const task = parseTask(row);
      if (change(task) === false) return task;
      s.updateTask.run(task.name, task.status, createdAtMs(task), JSON.stringify(task), task.id, task.projectId);
      return task;
    });
    this.claimTx = db.transaction((nodeId: string, statuses: readonly string[], limit: number, leaseMs: number, taskId?: string): HeldLease[] => {
      const now = Date.now();
      const ids = s.claimable.all(JSON.stringify(statuses), now, taskId ?? null, taskId ?? null, limit);
      return ids.map(({ id }) => {
        // Commands queued for the previous owner are stale: the task's row says what they said.
        s.deleteCommandsOfTask.run(id);
        return { taskId: id, token: s.claim.get(id, nodeId, now + leaseMs)!.token };
      });
    });
    this.deleteTasksTx = db.transaction((projectId: string, ids: readonly string[]): string[] => {
      const deleted: string[] = [];
      for (const id of new Set(ids)) {
        // Logs only go with a task this project owns: another project's ids must not reach them.
        if (s.deleteTask.run(projectId, id).changes === 0) continue;
        s.deleteLogsOfTask.run(id);
        s.deleteLeaseOfTask.run(id);
        s.deleteCommandsOfTask.run(id);
        deleted.push(id);
      }
      return deleted;
    });
  }

  /** Opens (creating it and its directory if needed) and migrates the database at `file`. */
  static open(file: string): SqliteTaskStore {
    if (file !== ':memory:') {
      fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
      privateFiles(file);
    }
    const db = new Database(file, { timeout: 5000 });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      applyMigrations(db);
      // The file (and its WAL, which holds recent commits) is the owner's only, whatever mode
      // an earlier version or a copy left it with.
      if (file !== ':memory:') privateFiles(file);
      return new SqliteTaskStore(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  async createTask(task: Task): Promise<void> {
    this.stmt.insertTask.run(task.id, task.projectId, task.name, task.status, createdAtMs(task), JSON.stringify(task));
  }

  async getTask(projectId: string, id: string): Promise<Task | null> {
    const row: Row<DataRow> = this.stmt.getTask.get(projectId, id);
    return row ? parseTask(row) : null;
  }

  async getTaskById(id: string): Promise<Task | null> {
    const row: Row<DataRow> = this.stmt.getTaskById.get(id);
    return row ? parseTask(row) : null;
  }

  /** The name filter is SQLite LIKE: case-insensitive for ASCII letters only. */
  async listTasks(projectId: string, query: { offset: number; limit: number; name?: string }): Promise<{ total: number; tasks: Task[] }> {
    checkPage(query);
    // Two statements, count and page, read in one transaction so `total` matches the page.
    return this.db.transaction(() => {
      if (query.name === undefined || query.name === '') {
        const total = this.stmt.countTasks.get(projectId)?.n ?? 0;
        return { total, tasks: this.stmt.listTasks.all(projectId, query.limit, query.offset).map(parseTask) };
      }
      const pattern = likeSubstring(query.name);
      const total = this.stmt.countTasksNamed.get(projectId, pattern)?.n ?? 0;
      return { total, tasks: this.stmt.listTasksNamed.all(projectId, pattern, query.limit, query.offset).map(parseTask) };
    })();
  }

  /** Oldest first (creation order), so recovery restarts tasks in the order they were made. */
  async listTasksByStatus(statuses: readonly string[]): Promise<Task[]> {
    if (statuses.length === 0) return [];
    return this.stmt.listTasksByStatus.all(JSON.stringify(statuses)).map(parseTask);
  }

  /**
   * Throws when no task with this id exists in `task.projectId`: a lost update (the task was
   * deleted, or a caller changed projectId) should be seen, not silently dropped.
   */
  async updateTask(task: Task): Promise<void> {
    const r = this.stmt.updateTask.run(task.name, task.status, createdAtMs(task), JSON.stringify(task), task.id, task.projectId);
    if (r.changes === 0) throw new Error(`task ${task.id} not found in project ${task.projectId}`);
  }

  async deleteTasks(projectId: string, ids: readonly string[]): Promise<string[]> {
    return this.deleteTasksTx(projectId, ids);
  }

  async appendLog(log: TaskLog, fence?: Fence): Promise<boolean> {
    // IMMEDIATE: take the write lock before reading MAX(seq), so a second process cannot read
    // the same number in between (it would fail the unique index instead of waiting).
    return this.appendLogTx.immediate(log, fence);
  }

  async modifyTask(id: string, change: (task: Task) => boolean | void, fence?: Fence): Promise<Task | null> {
    return this.modifyTaskTx.immediate(id, change, fence);
  }

  private holds(taskId: string, fence: Fence): boolean {
    const lease = this.stmt.leaseOf.get(taskId);
    return lease !== undefined && lease.owner === fence.nodeId && lease.token === fence.token;
  }

  // -- nodes, leases, commands (one node in practice; the same semantics as PostgreSQL) --------

  async heartbeat(node: NodeAnnouncement, leaseMs: number): Promise<HeldLease[]> {
    return this.db.transaction(() => {
      const now = Date.now();
      this.stmt.upsertNode.run(node.id, node.listen, node.capacity, now);
      this.stmt.pruneNodes.run(now - NODE_FORGOTTEN_AFTER_MS);
      return this.stmt.renewLeases.all(now + leaseMs, node.id, now).map((r) => ({ taskId: r.task_id, token: r.token }));
    }).immediate();
  }

  async claimTasks(nodeId: string, statuses: readonly string[], limit: number, leaseMs: number, taskId?: string): Promise<HeldLease[]> {
    if (statuses.length === 0 || limit <= 0) return [];
    return this.claimTx.immediate(nodeId, statuses, limit, leaseMs, taskId);
  }

  async reclaimLeases(nodeId: string, leaseMs: number): Promise<HeldLease[]> {
    return this.stmt.reclaim.all(Date.now() + leaseMs, nodeId).map((r) => ({ taskId: r.task_id, token: r.token }));
  }

  async removeNode(nodeId: string): Promise<void> {
    this.db.prepare('DELETE FROM nodes WHERE id = ?').run(nodeId);
  }

  async releaseLease(taskId: string, fence: Fence): Promise<void> {
    this.stmt.release.run(taskId, fence.nodeId, fence.token);
  }

  async leaseOwner(taskId: string): Promise<string | null> {
    return this.stmt.leaseOwner.get(taskId, Date.now())?.owner ?? null;
  }

  async listNodes(withinMs: number): Promise<NodeRecord[]> {
    const now = Date.now();
    return this.db.transaction(() =>
      this.stmt.liveNodes.all(now - withinMs).map((n) => ({
        id: n.id,
        listen: n.listen,
        capacity: n.capacity,
        heartbeatAt: new Date(n.heartbeat_at_ms).toISOString(),
        tasks: this.stmt.leasesOf.all(n.id, now).map((r) => r.task_id),
      })),
    )();
  }

  async load(statuses: readonly string[], withinMs: number): Promise<{ tasks: number; nodes: number }> {
    return {
      tasks: this.stmt.countByStatus.get(JSON.stringify(statuses))?.n ?? 0,
      nodes: this.stmt.countNodes.get(Date.now() - withinMs)?.n ?? 0,
    };
  }

  async sendCommand(taskId: string, kind: TaskCommandKind): Promise<void> {
    this.stmt.insertCommand.run(taskId, kind);
  }

  async takeCommands(nodeId: string): Promise<TaskCommand[]> {
    return this.stmt.takeCommands
      .all(nodeId, Date.now())
      .map((r) => ({ id: r.id, taskId: r.task_id, kind: r.kind as TaskCommandKind }))
      .sort((a, b) => a.id - b.id);
  }

  async listLogs(taskId: string, query: { offset: number; limit: number; level?: LogLevel }): Promise<{ total: number; logs: TaskLog[] }> {
    checkPage(query);
    return this.db.transaction(() => {
      if (query.level === undefined) {
        const total = this.stmt.countLogs.get(taskId)?.n ?? 0;
        return { total, logs: this.stmt.listLogs.all(taskId, query.limit, query.offset).map(parseLog) };
      }
      const total = this.stmt.countLogsAtLevel.get(taskId, query.level)?.n ?? 0;
      return { total, logs: this.stmt.listLogsAtLevel.all(taskId, query.level, query.limit, query.offset).map(parseLog) };
    })();
  }

  async createJob(job: Job): Promise<void> {
    this.stmt.insertJob.run(job.id, job.projectId, job.status, JSON.stringify(job));
  }

  async getJob(projectId: string, id: string): Promise<Job | null> {
    const row: Row<DataRow> = this.stmt.getJob.get(projectId, id);
    return row ? parseJob(row) : null;
  }

  /** Throws when the job does not exist in `job.projectId` (see updateTask). */
  async updateJob(job: Job): Promise<void> {
    const r = this.stmt.updateJob.run(job.status, JSON.stringify(job), job.id, job.projectId);
    if (r.changes === 0) throw new Error(`job ${job.id} not found in project ${job.projectId}`);
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    const r = this.stmt.insertAudit.run(entry.projectId, JSON.stringify(entry));
    const id = Number(r.lastInsertRowid);
    if (id > MAX_AUDIT_ENTRIES && id % 1000 === 0) this.stmt.trimAudit.run(id - MAX_AUDIT_ENTRIES);
  }

  async listAudit(projectId: string, query: { offset: number; limit: number }): Promise<{ total: number; entries: AuditEntry[] }> {
    checkPage(query);
    return this.db.transaction(() => ({
      total: this.stmt.countAudit.get(projectId)?.n ?? 0,
      entries: this.stmt.listAudit.all(projectId, query.limit, query.offset).map((r) => JSON.parse(r.data) as AuditEntry),
    }))();
  }

  /** Idempotent. The last connection to close checkpoints the WAL back into the main file. */
  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
