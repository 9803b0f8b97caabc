/**
 * The TaskStore on PostgreSQL (`pg`): what several Ferry nodes share. Same semantics as the
 * SQLite store (the same conformance tests run against both), plus what only matters with
 * several writers: leases claimed with `FOR UPDATE SKIP LOCKED`, fenced writes checked inside
 * the transaction that writes, times from the database's clock (nodes' clocks may disagree).
 *
 * Layout as in SQLite: a task is stored whole as JSON text (`data`), searched and sorted fields
 * are copied into indexed columns. Schema changes are numbered migrations recorded in
 * `schema_version`, applied in one transaction under an advisory lock, so nodes starting at
 * the same moment migrate once: the others wait for the lock and then find the versions applied.
 */
import pg from 'pg';
import type { AuditEntry, Job, LogLevel, Task, TaskLog } from './model.js';
import { MAX_AUDIT_ENTRIES, MAX_LOGS_PER_TASK, NODE_FORGOTTEN_AFTER_MS, checkPage, createdAtMs, likeSubstring } from './sqlite-store.js';
import { StaleLeaseError, type Fence, type HeldLease, type NodeAnnouncement, type NodeRecord, type TaskCommand, type TaskCommandKind, type TaskStore } from './store.js';

interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** Never edit a released migration; add the next number (see sqlite-store.ts). */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'tasks, task_logs, jobs',
    sql: `
      CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX tasks_by_project ON tasks (project_id, created_at_ms DESC, seq DESC);
      CREATE INDEX tasks_by_status ON tasks (status);
      CREATE TABLE task_logs (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        task_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        created_at TEXT NOT NULL,
        level TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        keywords TEXT NOT NULL
      );
      CREATE UNIQUE INDEX task_logs_by_task ON task_logs (task_id, seq);
      CREATE INDEX task_logs_by_task_level ON task_logs (task_id, level, seq);
      -- The last log sequence number per task: taking the next one locks this row only, so
      -- appends to one task are ordered without serialising every task's appends.
      CREATE TABLE task_log_seq (
        task_id TEXT PRIMARY KEY,
        n BIGINT NOT NULL
      );
      CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
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
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
        id TEXT PRIMARY KEY,
        listen TEXT NOT NULL,
        capacity INTEGER NOT NULL,
        heartbeat_at_ms BIGINT NOT NULL
      );
      CREATE TABLE task_leases (
        task_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        token BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL
      );
      CREATE INDEX task_leases_by_owner ON task_leases (owner, expires_at_ms);
      CREATE TABLE task_commands (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        task_id TEXT NOT NULL,
        kind TEXT NOT NULL
      );
      CREATE INDEX task_commands_by_task ON task_commands (task_id);
    `,
  },
];

export const PG_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** The database's clock, in ms since the epoch (clock_timestamp: the moment of the statement). */
const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';


interface LogRow {
  task_id: string;
  created_at: string;
  level: string;
  code: string;
  message: string;
  keywords: string;
}

function parseLog(row: LogRow): TaskLog {
  return { taskId: row.task_id, createdAt: row.created_at, level: row.level as LogLevel, code: row.code, message: row.message, keywords: JSON.parse(row.keywords) as string[] };
}

/** A schema name we put into SQL text ourselves: letters, digits, underscores only. */
function checkSchemaName(schema: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) throw new Error(`PostgreSQL schema name ${JSON.stringify(schema)}: letters, digits and _ only`);
  return schema;
}

/** The URL with its password replaced, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

export interface PgStoreOptions {
  /** Tables live in this schema (created if missing); default: the connection's search_path. */
  schema?: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
}

export class PgTaskStore implements TaskStore {
  /**
   * `lax`: connections with synchronous_commit off, for logs only. A log append then costs a
   * round trip instead of a WAL flush (~3 ms here, which would throttle a chatty task); what a
   * crash of PostgreSQL itself can lose is the last few log lines, never a lease or a status.
   */
  private constructor(
    private readonly pool: pg.Pool,
    private readonly lax: pg.Pool,
  ) {}

  /** Connects, creates the schema when asked for one, and applies the migrations it lacks. */
  static async open(url: string, opts: PgStoreOptions = {}): Promise<PgTaskStore> {
    const schema = opts.schema === undefined ? undefined : checkSchemaName(opts.schema);
    const poolOf = (max: number, settings: string[]): pg.Pool => {
      const p = new pg.Pool({
        connectionString: url,
        max,
        ...(settings.length ? { options: settings.join(' ') } : {}),
        // A node that cannot reach its database must find out fast: its leases depend on it.
        connectionTimeoutMillis: 5000,
      });
      // An idle connection that breaks (the server restarted) must not crash the service; the
      // next query opens a new one.
      p.on('error', () => undefined);
      return p;
    };
    const searchPath = schema ? [`-c search_path=${schema}`] : [];
    const pool = poolOf(opts.poolSize ?? 10, searchPath);
    const lax = poolOf(2, [...searchPath, '-c synchronous_commit=off']);
    try {
      if (schema) await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`).catch((e: Error & { code?: string }) => {
        // Two nodes creating it at once: one of them gets a unique violation; the schema exists.
        if (e.code !== '23505' && e.code !== '42P06') throw e;
      });
      await migrate(pool, url);
    } catch (e) {
      await pool.end();
      await lax.end();
      throw new Error(`PostgreSQL store ${redactUrl(url)}: ${(e as Error).message}`);
    }
    return new PgTaskStore(pool, lax);
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query(begin);
      const out = await fn(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  async createTask(task: Task): Promise<void> {
    await this.pool.query('INSERT INTO tasks (id, project_id, name, status, created_at_ms, data) VALUES ($1, $2, $3, $4, $5, $6)', [
      task.id,
      task.projectId,
      task.name,
      task.status,
      createdAtMs(task),
      JSON.stringify(task),
    ]);
  }

  async getTask(projectId: string, id: string): Promise<Task | null> {
    const r = await this.pool.query<{ data: string }>('SELECT data FROM tasks WHERE project_id = $1 AND id = $2', [projectId, id]);
    return r.rows[0] ? (JSON.parse(r.rows[0].data) as Task) : null;
  }

  async getTaskById(id: string): Promise<Task | null> {
    const r = await this.pool.query<{ data: string }>('SELECT data FROM tasks WHERE id = $1', [id]);
    return r.rows[0] ? (JSON.parse(r.rows[0].data) as Task) : null;
  }

  /** The name filter is ILIKE: case-insensitive (for every letter, not only ASCII as in SQLite). */
  async listTasks(projectId: string, query: { offset: number; limit: number; name?: string }): Promise<{ total: number; tasks: Task[] }> {
    checkPage(query);
    const named = query.name !== undefined && query.name !== '';
    const where = named ? "project_id = $1 AND name ILIKE $2 ESCAPE '\\'" : 'project_id = $1';
    const args: unknown[] = named ? [projectId, likeSubstring(query.name!)] : [projectId];
    // One snapshot for the count and the page, so `total` matches it.
    return this.tx(async (c) => {
      const total = await c.query<{ n: string }>(`SELECT COUNT(*) AS n FROM tasks WHERE ${where}`, args);
      const rows = await c.query<{ data: string }>(
        `SELECT data FROM tasks WHERE ${where} ORDER BY created_at_ms DESC, seq DESC LIMIT $${args.length + 1} OFFSET $${args.length + 2}`,
        [...args, query.limit, query.offset],
      );
      return { total: Number(total.rows[0]!.n), tasks: rows.rows.map((r) => JSON.parse(r.data) as Task) };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  async listTasksByStatus(statuses: readonly string[]): Promise<Task[]> {
    if (statuses.length === 0) return [];
    const r = await this.pool.query<{ data: string }>('SELECT data FROM tasks WHERE status = ANY($1::text[]) ORDER BY seq', [statuses]);
    return r.rows.map((row) => JSON.parse(row.data) as Task);
  }

  async updateTask(task: Task): Promise<void> {
    const r = await this.pool.query('UPDATE tasks SET name = $1, status = $2, created_at_ms = $3, data = $4 WHERE id = $5 AND project_id = $6', [
      task.name,
      task.status,
      createdAtMs(task),
      JSON.stringify(task),
      task.id,
      task.projectId,
    ]);
    if (r.rowCount === 0) throw new Error(`task ${task.id} not found in project ${task.projectId}`);
  }

  async modifyTask(id: string, change: (task: Task) => boolean | void, fence?: Fence): Promise<Task | null> {
    return this.tx(async (c) => {
      // The task's row lock first: a claim takes it too (FOR UPDATE OF tasks) before it changes
      // the lease, so while we hold it the lease we check below cannot change hands.
      const r = await c.query<{ data: string }>('SELECT data FROM tasks WHERE id = $1 FOR UPDATE', [id]);
      if (fence && !(await holds(c, id, fence))) throw new StaleLeaseError(id, fence);
      if (!r.rows[0]) return null;
      const task = JSON.parse(r.rows[0].data) as Task;
      if (change(task) === false) return task;
      await c.query('UPDATE tasks SET name = $1, status = $2, created_at_ms = $3, data = $4 WHERE id = $5', [task.name, task.status, createdAtMs(task), JSON.stringify(task), id]);
      return task;
    });
  }

  async deleteTasks(projectId: string, ids: readonly string[]): Promise<string[]> {
    return this.tx(async (c) => {
      const deleted: string[] = [];
      for (const id of new Set(ids)) {
        const r = await c.query('DELETE FROM tasks WHERE project_id = $1 AND id = $2', [projectId, id]);
        if (r.rowCount === 0) continue;
        await c.query('DELETE FROM task_logs WHERE task_id = $1', [id]);
        await c.query('DELETE FROM task_log_seq WHERE task_id = $1', [id]);
        await c.query('DELETE FROM task_leases WHERE task_id = $1', [id]);
        await c.query('DELETE FROM task_commands WHERE task_id = $1', [id]);
        deleted.push(id);
      }
      return deleted;
    });
  }

  async appendLog(log: TaskLog, fence?: Fence): Promise<boolean> {
    // One statement, one round trip: check the fence, take the task's next sequence number,
    // insert, trim beyond the cap.
    const r = await this.lax.query<{ seq: string | null }>(
      `WITH ok AS (
         SELECT 1 WHERE $8::text IS NULL OR EXISTS (SELECT 1 FROM task_leases WHERE task_id = $1 AND owner = $8 AND token = $9)
       ), n AS (
         INSERT INTO task_log_seq (task_id, n) SELECT $1, 1 FROM ok
         ON CONFLICT (task_id) DO UPDATE SET n = task_log_seq.n + 1 RETURNING n
       ), ins AS (
         INSERT INTO task_logs (task_id, seq, created_at, level, code, message, keywords)
         SELECT $1, n.n, $2, $3, $4, $5, $6 FROM n RETURNING seq
       ), trimmed AS (
         DELETE FROM task_logs WHERE task_id = $1 AND seq <= (SELECT seq FROM ins) - $7
       )
       SELECT (SELECT seq FROM ins) AS seq`,
      [log.taskId, log.createdAt, log.level, log.code, log.message, JSON.stringify(log.keywords), MAX_LOGS_PER_TASK, fence?.nodeId ?? null, fence?.token ?? null],
    );
    return r.rows[0]?.seq !== null && r.rows[0]?.seq !== undefined;
  }

  async listLogs(taskId: string, query: { offset: number; limit: number; level?: LogLevel }): Promise<{ total: number; logs: TaskLog[] }> {
    checkPage(query);
    const where = query.level === undefined ? 'task_id = $1' : 'task_id = $1 AND level = $2';
    const args: unknown[] = query.level === undefined ? [taskId] : [taskId, query.level];
    return this.tx(async (c) => {
      const total = await c.query<{ n: string }>(`SELECT COUNT(*) AS n FROM task_logs WHERE ${where}`, args);
      const rows = await c.query<LogRow>(
        `SELECT task_id, created_at, level, code, message, keywords FROM task_logs WHERE ${where} ORDER BY seq LIMIT $${args.length + 1} OFFSET $${args.length + 2}`,
        [...args, query.limit, query.offset],
      );
      return { total: Number(total.rows[0]!.n), logs: rows.rows.map(parseLog) };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  async createJob(job: Job): Promise<void> {
    await this.pool.query('INSERT INTO jobs (id, project_id, status, data) VALUES ($1, $2, $3, $4)', [job.id, job.projectId, job.status, JSON.stringify(job)]);
  }

  async getJob(projectId: string, id: string): Promise<Job | null> {
    const r = await this.pool.query<{ data: string }>('SELECT data FROM jobs WHERE project_id = $1 AND id = $2', [projectId, id]);
    return r.rows[0] ? (JSON.parse(r.rows[0].data) as Job) : null;
  }

  async updateJob(job: Job): Promise<void> {
    const r = await this.pool.query('UPDATE jobs SET status = $1, data = $2 WHERE id = $3 AND project_id = $4', [job.status, JSON.stringify(job), job.id, job.projectId]);
    if (r.rowCount === 0) throw new Error(`job ${job.id} not found in project ${job.projectId}`);
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    const r = await this.pool.query<{ id: string }>('INSERT INTO audit_log (project_id, data) VALUES ($1, $2) RETURNING id', [entry.projectId, JSON.stringify(entry)]);
    const id = Number(r.rows[0]!.id);
    if (id > MAX_AUDIT_ENTRIES && id % 1000 === 0) await this.pool.query('DELETE FROM audit_log WHERE id <= $1', [id - MAX_AUDIT_ENTRIES]);
  }

  async listAudit(projectId: string, query: { offset: number; limit: number }): Promise<{ total: number; entries: AuditEntry[] }> {
    checkPage(query);
    return this.tx(async (c) => {
      const total = await c.query<{ n: string }>('SELECT COUNT(*) AS n FROM audit_log WHERE project_id = $1', [projectId]);
      const rows = await c.query<{ data: string }>('SELECT data FROM audit_log WHERE project_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3', [projectId, query.limit, query.offset]);
      return { total: Number(total.rows[0]!.n), entries: rows.rows.map((r) => JSON.parse(r.data) as AuditEntry) };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  // -- nodes, leases, commands ------------------------------------------------------------------

  async heartbeat(node: NodeAnnouncement, leaseMs: number): Promise<HeldLease[]> {
    await this.pool.query(
      `INSERT INTO nodes (id, listen, capacity, heartbeat_at_ms) VALUES ($1, $2, $3, ${NOW_MS})
       ON CONFLICT (id) DO UPDATE SET listen = EXCLUDED.listen, capacity = EXCLUDED.capacity, heartbeat_at_ms = EXCLUDED.heartbeat_at_ms`,
      [node.id, node.listen, node.capacity],
    );
    // Only unexpired leases are renewed: an expired one may be another node's by now.
    const r = await this.pool.query<{ task_id: string; token: string }>(
      `UPDATE task_leases SET expires_at_ms = ${NOW_MS} + $2 WHERE owner = $1 AND expires_at_ms >= ${NOW_MS} RETURNING task_id, token`,
      [node.id, leaseMs],
    );
    if (Math.random() < 0.01) await this.pool.query(`DELETE FROM nodes WHERE heartbeat_at_ms < ${NOW_MS} - $1`, [NODE_FORGOTTEN_AFTER_MS]);
    return r.rows.map((row) => ({ taskId: row.task_id, token: Number(row.token) }));
  }

  async claimTasks(nodeId: string, statuses: readonly string[], limit: number, leaseMs: number, taskId?: string): Promise<HeldLease[]> {
    if (statuses.length === 0 || limit <= 0) return [];
    // SKIP LOCKED: nodes claiming at once each take different tasks instead of queueing on the
    // same rows; the ON CONFLICT condition re-checks expiry on the row as it is when written.
    const r = await this.pool.query<{ task_id: string; token: string }>(
      `WITH candidates AS (
         SELECT t.id FROM tasks t LEFT JOIN task_leases l ON l.task_id = t.id
         WHERE t.status = ANY($1::text[]) AND (l.task_id IS NULL OR l.owner = '' OR l.expires_at_ms < ${NOW_MS})
           AND ($3::text IS NULL OR t.id = $3)
         ORDER BY t.seq LIMIT $4
         FOR UPDATE OF t SKIP LOCKED
       )
       INSERT INTO task_leases (task_id, owner, token, expires_at_ms)
       SELECT id, $2, 1, ${NOW_MS} + $5 FROM candidates
       ON CONFLICT (task_id) DO UPDATE SET owner = EXCLUDED.owner, token = task_leases.token + 1, expires_at_ms = EXCLUDED.expires_at_ms
         WHERE task_leases.owner = '' OR task_leases.expires_at_ms < EXCLUDED.expires_at_ms - $5
       RETURNING task_id, token`,
      [statuses, nodeId, taskId ?? null, limit, leaseMs],
    );
    // Commands queued for the previous owner are stale: the task's row (which the new owner
    // reads after this) says what they said, and a stale stop must not hit a later restart.
    if (r.rows.length > 0) await this.pool.query('DELETE FROM task_commands WHERE task_id = ANY($1::text[])', [r.rows.map((row) => row.task_id)]);
    return r.rows.map((row) => ({ taskId: row.task_id, token: Number(row.token) }));
  }

  async reclaimLeases(nodeId: string, leaseMs: number): Promise<HeldLease[]> {
    const r = await this.pool.query<{ task_id: string; token: string }>(
      `UPDATE task_leases SET token = token + 1, expires_at_ms = ${NOW_MS} + $2 WHERE owner = $1 RETURNING task_id, token`,
      [nodeId, leaseMs],
    );
    return r.rows.map((row) => ({ taskId: row.task_id, token: Number(row.token) }));
  }

  async removeNode(nodeId: string): Promise<void> {
    await this.pool.query('DELETE FROM nodes WHERE id = $1', [nodeId]);
  }

  async releaseLease(taskId: string, fence: Fence): Promise<void> {
    await this.pool.query("UPDATE task_leases SET owner = '', expires_at_ms = 0 WHERE task_id = $1 AND owner = $2 AND token = $3", [taskId, fence.nodeId, fence.token]);
  }

  async leaseOwner(taskId: string): Promise<string | null> {
    const r = await this.pool.query<{ owner: string }>(`SELECT owner FROM task_leases WHERE task_id = $1 AND owner <> '' AND expires_at_ms >= ${NOW_MS}`, [taskId]);
    return r.rows[0]?.owner ?? null;
  }

  async listNodes(withinMs: number): Promise<NodeRecord[]> {
    const r = await this.pool.query<{ id: string; listen: string; capacity: number; heartbeat_at_ms: string; tasks: string[] | null }>(
      `SELECT n.id, n.listen, n.capacity, n.heartbeat_at_ms,
              ARRAY(SELECT l.task_id FROM task_leases l WHERE l.owner = n.id AND l.expires_at_ms >= ${NOW_MS} ORDER BY l.task_id) AS tasks
       FROM nodes n WHERE n.heartbeat_at_ms >= ${NOW_MS} - $1 ORDER BY n.id`,
      [withinMs],
    );
    return r.rows.map((n) => ({ id: n.id, listen: n.listen, capacity: n.capacity, heartbeatAt: new Date(Number(n.heartbeat_at_ms)).toISOString(), tasks: n.tasks ?? [] }));
  }

  async load(statuses: readonly string[], withinMs: number): Promise<{ tasks: number; nodes: number }> {
    const r = await this.pool.query<{ tasks: string; nodes: string }>(
      `SELECT (SELECT COUNT(*) FROM tasks WHERE status = ANY($1::text[])) AS tasks,
              (SELECT COUNT(*) FROM nodes WHERE heartbeat_at_ms >= ${NOW_MS} - $2) AS nodes`,
      [statuses, withinMs],
    );
    return { tasks: Number(r.rows[0]!.tasks), nodes: Number(r.rows[0]!.nodes) };
  }

  async sendCommand(taskId: string, kind: TaskCommandKind): Promise<void> {
    await this.pool.query('INSERT INTO task_commands (task_id, kind) VALUES ($1, $2)', [taskId, kind]);
  }

  async takeCommands(nodeId: string): Promise<TaskCommand[]> {
    const r = await this.pool.query<{ id: string; task_id: string; kind: string }>(
      `DELETE FROM task_commands WHERE task_id IN (SELECT task_id FROM task_leases WHERE owner = $1 AND expires_at_ms >= ${NOW_MS}) RETURNING id, task_id, kind`,
      [nodeId],
    );
    return r.rows.map((row) => ({ id: Number(row.id), taskId: row.task_id, kind: row.kind as TaskCommandKind })).sort((a, b) => a.id - b.id);
  }

  /** Idempotent. */
  private closed = false;
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
    await this.lax.end();
  }
}

async function holds(c: pg.PoolClient, taskId: string, fence: Fence): Promise<boolean> {
  const r = await c.query<{ owner: string; token: string }>('SELECT owner, token FROM task_leases WHERE task_id = $1', [taskId]);
  const lease = r.rows[0];
  return lease !== undefined && lease.owner === fence.nodeId && Number(lease.token) === fence.token;
}

/**
 * Applies the missing migrations in one transaction, under a transaction-level advisory lock
 * keyed by the schema: a second node starting at once waits here, then sees them applied.
 */
async function migrate(pool: pg.Pool, url: string): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query("SELECT pg_advisory_xact_lock(hashtext('ferry-migrations:' || current_schema()))");
    await c.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)');
    const applied = new Set((await c.query<{ version: number }>('SELECT version FROM schema_version')).rows.map((r) => r.version));
    const newest = Math.max(0, ...applied);
    if (newest > PG_SCHEMA_VERSION) throw new Error(`task database ${redactUrl(url)} has schema version ${newest}, newer than this Ferry knows (${PG_SCHEMA_VERSION}): upgrade Ferry`);
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      await c.query(m.sql);
      await c.query('INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)', [m.version, m.description, new Date().toISOString()]);
    }
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}
