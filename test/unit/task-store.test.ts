/**
 * The SQLite task store and the secret box: behaviour through the TaskStore interface, what the
 * file holds after a crash and a reopen, and that sealed passwords neither leak nor open with
 * the wrong key. Every test works in a temp dir of its own.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import Database from 'better-sqlite3';
import type { EncryptedSecret, Job, LogLevel, Task, TaskLog } from '../../src/tasks/model.js';
import { SecretBox, maskSecret } from '../../src/tasks/secrets.js';
import { MAX_LOGS_PER_TASK, SCHEMA_VERSION, SqliteTaskStore } from '../../src/tasks/sqlite-store.js';
import { StaleLeaseError, type TaskStore } from '../../src/tasks/store.js';
import pg from 'pg';
import { PG_SCHEMA_VERSION, PgTaskStore } from '../../src/tasks/pg-store.js';
import { freshPgStore, newSchema, pgSkip, pgUrl } from '../helpers/postgres.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-task-store-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

let dirCount = 0;
function tmpDir(): string {
  const dir = path.join(tmpRoot, String(dirCount++));
  fs.mkdirSync(dir);
  return dir;
}

const open: SqliteTaskStore[] = [];
/** A fresh store in a fresh dir; closed at the end even when a test fails half way. */
function freshStore(): { store: SqliteTaskStore; file: string } {
  const file = path.join(tmpDir(), 'tasks.db');
  const store = SqliteTaskStore.open(file);
  open.push(store);
  return { store, file };
}
after(async () => {
  for (const s of open) await s.close();
});

let clock = Date.parse('2024-01-01T00:00:00.000Z');
/** Distinct, increasing createdAt values unless the test gives one. */
function makeTask(over: Partial<Task> = {}): Task {
  const createdAt = new Date((clock += 1000)).toISOString();
  return {
    id: crypto.randomUUID(),
    projectId: 'p1',
    name: 'task',
    description: 'd',
    migrationType: 'online_migration',
    migrationMethod: null,
    resumeMode: 'auto',
    bandwidthLimitMb: null,
    networkType: null,
    vpcId: null,
    subnetId: null,
    securityGroupId: null,
    source: null,
    target: null,
    status: 'RUNNING',
    error: null,
    jobId: null,
    stats: null,
    createdAt,
    updatedAt: createdAt,
    stopRequested: false,
    ...over,
  };
}

function makeLog(taskId: string, i: number, level: LogLevel = 'INFO'): TaskLog {
  return { taskId, createdAt: new Date(clock + i).toISOString(), level, code: `c${i}`, message: `m${i}`, keywords: [`k${i}`, 'x'] };
}

function makeJob(over: Partial<Job> = {}): Job {
  return {
    id: crypto.randomUUID(),
    projectId: 'p1',
    type: 'CreateOnlineMigrationTask',
    status: 'INIT',
    beginTime: '1704067200000',
    endTime: '',
    failReason: null,
    entityId: null,
    ...over,
  };
}

/**
 * The conformance suite: what every TaskStore must do, run against SQLite and PostgreSQL.
 * `fresh` gives an empty store; `skip` is the reason when that store cannot be had here.
 */
function conformance(kind: string, fresh: () => Promise<TaskStore>, skip: string | false): void {
  describe(`${kind}: tasks`, { skip }, () => {
    it('returns a task exactly as stored', async () => {
      const store = await fresh();
      const task = makeTask({
        source: { id: 'inst-1', addrs: '10.0.0.1:6379,10.0.0.2:6379', name: 'src', password: 'v1:abc' as EncryptedSecret },
        stats: {
          fullMigrationProgress: 42.5,
          lagBytes: null,
          sourceDbsize: 10,
          targetDbsize: 3,
          targetInputKbps: 1.5,
          targetOps: 7,
          isMigrating: true,
          keysMigrated: 3,
          writeErrors: 0,
          reconnects: 1,
          checkpoint: { replid: 'r'.repeat(40), appliedOffset: 12345, db: 2 },
        },
        stopRequested: true,
      });
      await store.createTask(task);
      assert.deepEqual(await store.getTask('p1', task.id), task);
      assert.deepEqual(await store.getTaskById(task.id), task);
      assert.equal(await store.getTask('p1', 'nope'), null);
      assert.equal(await store.getTaskById('nope'), null);
      await assert.rejects(store.createTask(task), /UNIQUE|unique/);
    });

    it('keeps projects apart: a task of project A is invisible to B', async () => {
      const store = await fresh();
      const a = makeTask({ projectId: 'A', name: 'shared' });
      await store.createTask(a);
      assert.equal(await store.getTask('B', a.id), null);
      assert.deepEqual(await store.listTasks('B', { offset: 0, limit: 10 }), { total: 0, tasks: [] });
      assert.deepEqual(await store.listTasks('B', { offset: 0, limit: 10, name: 'shared' }), { total: 0, tasks: [] });
      assert.deepEqual(await store.deleteTasks('B', [a.id]), []);
      await assert.rejects(store.updateTask({ ...a, projectId: 'B', status: 'FAILED' }), /not found in project B/);
      assert.deepEqual(await store.getTask('A', a.id), a, 'B could neither delete nor take over the task');
      assert.equal((await store.listTasks('A', { offset: 0, limit: 10 })).total, 1);
    });

    it('lists newest first, pages with offset/limit and counts all matches', async () => {
      const store = await fresh();
      const created: Task[] = [];
      for (let i = 0; i < 7; i++) created.push(makeTask({ name: `t${i}` }));
      // inserted out of order: the order comes from createdAt, not from insertion
      for (const t of [...created].reverse()) await store.createTask(t);
      await store.createTask(makeTask({ projectId: 'other' }));
      const newestFirst = [...created].reverse().map((t) => t.name);

      const all = await store.listTasks('p1', { offset: 0, limit: 100 });
      assert.equal(all.total, 7);
      assert.deepEqual(all.tasks.map((t) => t.name), newestFirst);

      const page = await store.listTasks('p1', { offset: 2, limit: 3 });
      assert.equal(page.total, 7);
      assert.deepEqual(page.tasks.map((t) => t.name), newestFirst.slice(2, 5));
      const tail = await store.listTasks('p1', { offset: 6, limit: 3 });
      assert.deepEqual(tail.tasks.map((t) => t.name), newestFirst.slice(6));
      const past = await store.listTasks('p1', { offset: 10, limit: 3 });
      assert.deepEqual(past, { total: 7, tasks: [] });
      assert.deepEqual((await store.listTasks('p1', { offset: 0, limit: 0 })).tasks, []);
    });

    it('breaks createdAt ties by creation order (newest created first)', async () => {
      const store = await fresh();
      const at = new Date(clock).toISOString();
      for (const name of ['first', 'second', 'third']) await store.createTask(makeTask({ name, createdAt: at }));
      const { tasks } = await store.listTasks('p1', { offset: 0, limit: 10 });
      assert.deepEqual(tasks.map((t) => t.name), ['third', 'second', 'first']);
    });

    it('orders by the instant, not the text, of createdAt', async () => {
      const store = await fresh();
      // 09:00+08:00 is 01:00Z: earlier than 02:00Z although it sorts after it as text
      await store.createTask(makeTask({ name: 'early', createdAt: '2024-05-01T09:00:00.000+08:00' }));
      await store.createTask(makeTask({ name: 'late', createdAt: '2024-05-01T02:00:00.000Z' }));
      const { tasks } = await store.listTasks('p1', { offset: 0, limit: 10 });
      assert.deepEqual(tasks.map((t) => t.name), ['late', 'early']);
      await assert.rejects(store.createTask(makeTask({ createdAt: 'yesterday' })), RangeError);
    });

    it('filters by name substring, with % _ and \\ matching only themselves', async () => {
      const store = await fresh();
      const names = ['a%b', 'a_b', 'axb', 'aXXb', 'a\\b', "x'; DROP TABLE tasks; --", 'Migrate-Prod', 'other'];
      for (const name of names) await store.createTask(makeTask({ name }));
      const names_ = async (name: string): Promise<string[]> => {
        const r = await store.listTasks('p1', { offset: 0, limit: 100, name });
        assert.equal(r.total, r.tasks.length);
        return r.tasks.map((t) => t.name).sort();
      };
      assert.deepEqual(await names_('%'), ['a%b']);
      assert.deepEqual(await names_('a%b'), ['a%b']);
      assert.deepEqual(await names_('_'), ['a_b']);
      assert.deepEqual(await names_('a_b'), ['a_b']);
      assert.deepEqual(await names_('\\'), ['a\\b']);
      assert.deepEqual(await names_('x'), ['aXXb', 'axb', "x'; DROP TABLE tasks; --"].sort());
      assert.deepEqual(await names_("'; DROP TABLE tasks; --"), ["x'; DROP TABLE tasks; --"]);
      assert.deepEqual(await names_('prod'), ['Migrate-Prod'], 'ASCII case-insensitive');
      assert.deepEqual(await names_('nothing'), []);
      assert.deepEqual(await names_(''), names.slice().sort(), 'an empty filter is no filter');
      // the filter pages and counts like the unfiltered list
      const page = await store.listTasks('p1', { offset: 1, limit: 1, name: 'a' });
      assert.equal(page.total, 7); // every name but 'other' has an a or A
      assert.equal(page.tasks.length, 1);
    });

    it('refuses a negative or fractional offset or limit (SQLite would read LIMIT -1 as "all")', async () => {
      const store = await fresh();
      await assert.rejects(store.listTasks('p1', { offset: 0, limit: -1 }), RangeError);
      await assert.rejects(store.listTasks('p1', { offset: -1, limit: 1 }), RangeError);
      await assert.rejects(store.listTasks('p1', { offset: 0.5, limit: 1 }), RangeError);
      await assert.rejects(store.listLogs('t', { offset: 0, limit: -1 }), RangeError);
    });

    it('updates a task in place (listing and the status index follow)', async () => {
      const store = await fresh();
      const t = makeTask({ name: 'before' });
      const u = makeTask({ name: 'untouched' });
      await store.createTask(t);
      await store.createTask(u);
      const changed: Task = { ...t, name: 'after', status: 'FULLMIGRATING', error: 'e', updatedAt: new Date().toISOString() };
      await store.updateTask(changed);
      assert.deepEqual(await store.getTask('p1', t.id), changed);
      assert.deepEqual(await store.getTask('p1', u.id), u);
      assert.deepEqual((await store.listTasks('p1', { offset: 0, limit: 10, name: 'after' })).tasks, [changed]);
      assert.equal((await store.listTasks('p1', { offset: 0, limit: 10, name: 'before' })).total, 0);
      assert.deepEqual(await store.listTasksByStatus(['FULLMIGRATING']), [changed]);
      await assert.rejects(store.updateTask(makeTask()), /not found/);
    });

    it('lists tasks by status across projects, in creation order', async () => {
      const store = await fresh();
      const a = makeTask({ projectId: 'A', status: 'FULLMIGRATING' });
      const b = makeTask({ projectId: 'B', status: 'INCRMIGEATING' });
      const c = makeTask({ projectId: 'A', status: 'SUCCESS' });
      const d = makeTask({ projectId: 'C', status: 'TERMINATING' });
      for (const t of [a, b, c, d]) await store.createTask(t);
      assert.deepEqual(
        (await store.listTasksByStatus(['FULLMIGRATING', 'INCRMIGEATING', 'TERMINATING'])).map((t) => t.id),
        [a.id, b.id, d.id],
      );
      assert.deepEqual(await store.listTasksByStatus(['SUCCESS']), [c]);
      assert.deepEqual(await store.listTasksByStatus([]), []);
      assert.deepEqual(await store.listTasksByStatus(["' OR 1=1 --"]), []);
    });

    it('deletes tasks of the project only, with their logs, and returns the ids deleted', async () => {
      const store = await fresh();
      const t1 = makeTask();
      const t2 = makeTask();
      const keep = makeTask();
      const foreign = makeTask({ projectId: 'other' });
      for (const t of [t1, t2, keep, foreign]) {
        await store.createTask(t);
        for (let i = 0; i < 3; i++) await store.appendLog(makeLog(t.id, i));
      }
      const deleted = await store.deleteTasks('p1', [t1.id, 'missing', t2.id, t1.id, foreign.id]);
      assert.deepEqual(deleted, [t1.id, t2.id]);
      assert.equal(await store.getTaskById(t1.id), null);
      assert.equal(await store.getTaskById(t2.id), null);
      assert.deepEqual(await store.listLogs(t1.id, { offset: 0, limit: 10 }), { total: 0, logs: [] });
      assert.deepEqual(await store.listLogs(t2.id, { offset: 0, limit: 10 }), { total: 0, logs: [] });
      assert.equal((await store.listLogs(keep.id, { offset: 0, limit: 10 })).total, 3);
      assert.equal((await store.listLogs(foreign.id, { offset: 0, limit: 10 })).total, 3, "another project's task keeps its logs");
      assert.deepEqual(await store.getTaskById(foreign.id), foreign);
      assert.deepEqual(await store.deleteTasks('p1', []), []);
    });
  });

  describe(`${kind}: logs and jobs`, { skip }, () => {
    it('returns logs oldest first, filtered by level, paged, with totals', async () => {
      const store = await fresh();
      const levels: LogLevel[] = ['INFO', 'WARN', 'INFO', 'ERROR', 'INFO', 'DEBUG', 'WARN'];
      const logs = levels.map((level, i) => makeLog('t1', i, level));
      for (const [i, log] of logs.entries()) {
        await store.appendLog(log);
        await store.appendLog(makeLog('t2', i)); // interleaved: must not show up in t1
      }
      assert.deepEqual(await store.listLogs('t1', { offset: 0, limit: 100 }), { total: 7, logs });
      assert.deepEqual(await store.listLogs('t1', { offset: 2, limit: 3 }), { total: 7, logs: logs.slice(2, 5) });
      const infos = logs.filter((l) => l.level === 'INFO');
      assert.deepEqual(await store.listLogs('t1', { offset: 0, limit: 100, level: 'INFO' }), { total: 3, logs: infos });
      assert.deepEqual(await store.listLogs('t1', { offset: 1, limit: 1, level: 'INFO' }), { total: 3, logs: [infos[1]] });
      assert.deepEqual(await store.listLogs('t1', { offset: 0, limit: 100, level: 'WARN' }), {
        total: 2,
        logs: logs.filter((l) => l.level === 'WARN'),
      });
      assert.deepEqual(await store.listLogs('nope', { offset: 0, limit: 10 }), { total: 0, logs: [] });
    });

    it(`keeps at most ${MAX_LOGS_PER_TASK} logs per task, dropping the oldest`, async () => {
      const store = await fresh();
      const extra = 5;
      for (let i = 0; i < MAX_LOGS_PER_TASK + extra; i++) await store.appendLog(makeLog('busy', i, i % 2 === 0 ? 'INFO' : 'WARN'));
      await store.appendLog(makeLog('quiet', 0));

      const first = await store.listLogs('busy', { offset: 0, limit: 2 });
      assert.equal(first.total, MAX_LOGS_PER_TASK);
      assert.deepEqual(first.logs.map((l) => l.message), [`m${extra}`, `m${extra + 1}`]);
      const last = await store.listLogs('busy', { offset: MAX_LOGS_PER_TASK - 1, limit: 10 });
      assert.deepEqual(last.logs.map((l) => l.message), [`m${MAX_LOGS_PER_TASK + extra - 1}`]);
      assert.equal((await store.listLogs('busy', { offset: 0, limit: 1, level: 'INFO' })).total, MAX_LOGS_PER_TASK / 2);
      assert.equal((await store.listLogs('quiet', { offset: 0, limit: 1 })).total, 1, 'the cap is per task');
    });

    it('creates, reads and updates jobs, per project', async () => {
      const store = await fresh();
      const job = makeJob();
      await store.createJob(job);
      assert.deepEqual(await store.getJob('p1', job.id), job);
      assert.equal(await store.getJob('other', job.id), null);
      assert.equal(await store.getJob('p1', 'nope'), null);
      const done: Job = { ...job, status: 'SUCCESS', endTime: '1704067260000', entityId: 'task-1' };
      await store.updateJob(done);
      assert.deepEqual(await store.getJob('p1', job.id), done);
      await assert.rejects(store.updateJob({ ...done, projectId: 'other', status: 'FAIL' }), /not found/);
      await assert.rejects(store.updateJob(makeJob()), /not found/);
      await assert.rejects(store.createJob(job), /UNIQUE|unique/);
      assert.deepEqual(await store.getJob('p1', job.id), done);
    });
  });
  leaseConformance(kind, fresh, skip);
}

conformance('SqliteTaskStore', async () => freshStore().store, false);
conformance('PgTaskStore', freshPgStore, pgSkip);

describe('SqliteTaskStore: the file', () => {
  it('creates the parent directory of a new database', async () => {
    const file = path.join(tmpDir(), 'a', 'b', 'tasks.db');
    const store = SqliteTaskStore.open(file);
    open.push(store);
    assert.ok(fs.existsSync(file));
  });

  it('keeps a status update made just before the process is killed with SIGKILL', async () => {
    const file = path.join(tmpDir(), 'crash.db');
    const id = 'crash-task';
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/fixtures/task-store-crash.ts'), file, id], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal })),
    );
    assert.equal(signal, 'SIGKILL', `child should have killed itself (code ${code})\n${stderr}`);
    assert.equal(stdout, 'updated\n');
    // The WAL is still there: the child never closed, so what we read next comes from recovery.
    assert.ok(fs.statSync(`${file}-wal`).size > 0, 'the WAL was not checkpointed');

    const store = SqliteTaskStore.open(file);
    open.push(store);
    const task = await store.getTaskById(id);
    assert.equal(task?.status, 'FULLMIGRATING');
    assert.deepEqual((await store.listTasksByStatus(['FULLMIGRATING'])).map((t) => t.id), [id]);
    assert.deepEqual((await store.listLogs(id, { offset: 0, limit: 10 })).logs.map((l) => l.code), ['started']);
  });

  it('uses WAL, and applies each migration exactly once across reopens', async () => {
    const file = path.join(tmpDir(), 'reopen.db');
    const task = makeTask();
    let store = SqliteTaskStore.open(file);
    await store.createTask(task);
    await store.close();
    await store.close(); // idempotent
    for (let i = 0; i < 3; i++) {
      // a migration run twice would fail here: they CREATE without IF NOT EXISTS
      store = SqliteTaskStore.open(file);
      assert.deepEqual(await store.getTaskById(task.id), task);
      await store.close();
    }
    const db = new Database(file);
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      const versions = db.prepare<[], { version: number }>('SELECT version FROM schema_version ORDER BY version').all();
      assert.deepEqual(
        versions.map((v) => v.version),
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
    } finally {
      db.close();
    }
  });

  it('refuses a database written by a newer schema version', async () => {
    const file = path.join(tmpDir(), 'newer.db');
    await SqliteTaskStore.open(file).close();
    const db = new Database(file);
    db.prepare<[number, string, string]>('INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)').run(
      SCHEMA_VERSION + 1,
      'from the future',
      new Date().toISOString(),
    );
    db.close();
    assert.throws(() => SqliteTaskStore.open(file), /schema version \d+, newer than this Ferry knows/);
  });
});

describe('SecretBox', () => {
  it('round-trips, with a fresh IV every time, and never shows the plain text', () => {
    const box = SecretBox.loadOrCreate(tmpDir());
    for (const plain of ['', 'p', 'correct horse battery staple', 'pässwörd-密码-🔑', 'x'.repeat(10_000)]) {
      const a = box.seal(plain);
      const b = box.seal(plain);
      assert.match(a, /^v1:[A-Za-z0-9+/]+={0,2}$/);
      assert.notEqual(a, b, 'random IV: the same password seals differently');
      assert.notEqual(a.slice(3, 19), b.slice(3, 19), 'the IVs differ');
      if (plain.length >= 3) {
        assert.ok(!a.includes(plain), 'sealed text contains the plain text');
        assert.ok(!Buffer.from(a.slice(3), 'base64').includes(Buffer.from(plain)), 'ciphertext contains the plain bytes');
      }
      assert.equal(box.open(a), plain);
      assert.equal(box.open(b), plain);
    }
  });

  it('refuses tampered or malformed input with one clear error that does not echo it', () => {
    const box = SecretBox.loadOrCreate(tmpDir());
    const sealed = box.seal('hunter2-secret');
    const raw = Buffer.from(sealed.slice(3), 'base64');
    const flipped = (i: number): EncryptedSecret => {
      const copy = Buffer.from(raw);
      copy[i] = copy[i]! ^ 1;
      return `v1:${copy.toString('base64')}` as EncryptedSecret;
    };
    const bad: EncryptedSecret[] = [
      flipped(0), // IV
      flipped(12), // tag
      flipped(raw.length - 1), // ciphertext
      `v1:${raw.subarray(0, raw.length - 1).toString('base64')}` as EncryptedSecret, // truncated
      `v2:${raw.toString('base64')}` as EncryptedSecret, // unknown version
      raw.toString('base64') as EncryptedSecret, // no prefix
      'v1:' as EncryptedSecret,
      'v1:not*base64!' as EncryptedSecret,
      'hunter2-secret' as EncryptedSecret, // plain text stored by mistake
    ];
    for (const b of bad) {
      assert.throws(
        () => box.open(b),
        (err: unknown) => {
          assert.ok(err instanceof Error);
          assert.equal(err.message, 'stored secret cannot be decrypted: wrong key or corrupted');
          assert.ok(!err.message.includes('hunter2'));
          return true;
        },
      );
    }
  });

  it('cannot open with another key', () => {
    const sealed = SecretBox.loadOrCreate(tmpDir()).seal('s3cret');
    const other = SecretBox.loadOrCreate(tmpDir());
    assert.throws(() => other.open(sealed), /^Error: stored secret cannot be decrypted: wrong key or corrupted$/);
  });

  it('creates the key file once, 32 bytes, mode 0600, and reuses it', { skip: process.platform === 'win32' && 'POSIX modes' }, () => {
    const dir = path.join(tmpDir(), 'data'); // does not exist yet
    const box = SecretBox.loadOrCreate(dir);
    const keyPath = path.join(dir, 'secret.key');
    const st = fs.statSync(keyPath);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.size, 32);
    const key = fs.readFileSync(keyPath);
    const sealed = box.seal('kept across restarts');

    const again = SecretBox.loadOrCreate(dir);
    assert.deepEqual(fs.readFileSync(keyPath), key, 'the key was not replaced');
    assert.equal(again.open(sealed), 'kept across restarts');
    assert.deepEqual(fs.readdirSync(dir), ['secret.key'], 'no temporary file left behind');
  });

  it('refuses a key file of the wrong size instead of replacing it', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'secret.key'), 'short', { mode: 0o600 });
    assert.throws(() => SecretBox.loadOrCreate(dir), /holds 5 bytes, expected 32/);
    assert.equal(fs.readFileSync(path.join(dir, 'secret.key'), 'utf8'), 'short');
  });

  it('does not show its key when logged', () => {
    const dir = tmpDir();
    const box = SecretBox.loadOrCreate(dir);
    const key = fs.readFileSync(path.join(dir, 'secret.key'));
    const shown = `${JSON.stringify({ box })} ${inspect(box, { showHidden: true, depth: 5 })} ${String(box)}`;
    assert.ok(!shown.includes(key.toString('hex')) && !shown.includes(key.toString('base64')), shown);
  });

  it('masks secrets for API responses', () => {
    assert.equal(maskSecret(true), '********');
    assert.equal(maskSecret(false), null);
  });
});

/** Nodes, leases, fencing and commands: the part of the store several nodes share. */
function leaseConformance(kind: string, fresh: () => Promise<TaskStore>, skip: string | false): void {
  const ACTIVE = ['FULLMIGRATING', 'INCRMIGEATING'];
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  describe(`${kind}: leases`, { skip }, () => {
    it('gives each task to one of several nodes claiming at once, oldest first', async () => {
      const store = await fresh();
      const tasks = Array.from({ length: 6 }, () => makeTask({ status: 'FULLMIGRATING' }));
      for (const t of tasks) await store.createTask(t);
      await store.createTask(makeTask({ status: 'SUCCESS' }));
      const claims = await Promise.all(['a', 'b', 'c'].map((n) => store.claimTasks(n, ACTIVE, 6, 10_000)));
      const ids = claims.flat().map((c) => c.taskId);
      assert.equal(ids.length, 6, 'every active task claimed, the finished one not');
      assert.equal(new Set(ids).size, 6, 'no task went to two nodes');
      assert.ok(claims.flat().every((c) => c.token === 1));
      assert.deepEqual(await store.claimTasks('d', ACTIVE, 6, 10_000), [], 'nothing left to claim');
      const limited = await fresh();
      for (const t of tasks) await limited.createTask(t);
      assert.deepEqual((await limited.claimTasks('a', ACTIVE, 2, 10_000)).map((c) => c.taskId), [tasks[0]!.id, tasks[1]!.id]);
      assert.deepEqual((await limited.claimTasks('b', ACTIVE, 6, 10_000, tasks[5]!.id)).map((c) => c.taskId), [tasks[5]!.id], 'one given task');
    });

    it('renews unexpired leases only; an expired lease goes to another node with the next token', async () => {
      const store = await fresh();
      const t = makeTask({ status: 'INCRMIGEATING' });
      await store.createTask(t);
      const [first] = await store.claimTasks('a', ACTIVE, 1, 300);
      assert.deepEqual(first, { taskId: t.id, token: 1 });
      assert.deepEqual(await store.heartbeat({ id: 'a', listen: '127.0.0.1:1', capacity: 4 }, 300), [{ taskId: t.id, token: 1 }]);
      assert.equal(await store.leaseOwner(t.id), 'a');
      assert.deepEqual(await store.claimTasks('b', ACTIVE, 1, 300), [], 'not while a holds it');
      await sleep(400);
      assert.equal(await store.leaseOwner(t.id), null);
      assert.deepEqual(await store.claimTasks('b', ACTIVE, 1, 10_000), [{ taskId: t.id, token: 2 }]);
      assert.deepEqual(await store.heartbeat({ id: 'a', listen: '127.0.0.1:1', capacity: 4 }, 300), [], 'a learns it lost the lease');
      assert.equal(await store.leaseOwner(t.id), 'b');
    });

    it('refuses writes and logs under a stale fence; the current owner and unfenced writers pass', async () => {
      const store = await fresh();
      const t = makeTask({ status: 'FULLMIGRATING' });
      await store.createTask(t);
      await store.claimTasks('a', ACTIVE, 1, 50);
      await sleep(100);
      const [b] = await store.claimTasks('b', ACTIVE, 1, 10_000);
      const stale = { nodeId: 'a', token: 1 };
      const current = { nodeId: 'b', token: b!.token };
      await assert.rejects(store.modifyTask(t.id, (x) => void (x.error = 'from a'), stale), StaleLeaseError);
      await assert.rejects(store.modifyTask(t.id, (x) => void (x.error = 'b, old token'), { nodeId: 'b', token: 1 }), StaleLeaseError);
      assert.equal(await store.appendLog(makeLog(t.id, 1), stale), false);
      assert.equal((await store.listLogs(t.id, { offset: 0, limit: 10 })).total, 0, 'the stale log was dropped');
      const written = await store.modifyTask(t.id, (x) => void (x.error = 'from b'), current);
      assert.equal(written?.error, 'from b');
      assert.equal(await store.appendLog(makeLog(t.id, 2), current), true);
      assert.equal((await store.getTaskById(t.id))?.error, 'from b');
      // An API call (no fence) on any node: atomic, and `false` writes nothing.
      await store.modifyTask(t.id, (x) => void (x.stopRequested = true));
      assert.equal((await store.getTaskById(t.id))?.stopRequested, true);
      await store.modifyTask(t.id, (x) => {
        x.name = 'not written';
        return false;
      });
      assert.equal((await store.getTaskById(t.id))?.name, t.name);
      assert.equal(await store.modifyTask('missing', () => undefined), null);
    });

    it('modifyTask is atomic under concurrent read-modify-write', async () => {
      const store = await fresh();
      const t = makeTask({ status: 'FULLMIGRATING', bandwidthLimitMb: 0 });
      await store.createTask(t);
      await Promise.all(Array.from({ length: 20 }, () => store.modifyTask(t.id, (x) => void (x.bandwidthLimitMb = (x.bandwidthLimitMb ?? 0) + 1))));
      assert.equal((await store.getTaskById(t.id))?.bandwidthLimitMb, 20);
    });

    it('releases (a stale fence does nothing) and keeps the token growing; a restarted node reclaims its own leases', async () => {
      const store = await fresh();
      const t = makeTask({ status: 'FULLMIGRATING' });
      await store.createTask(t);
      await store.claimTasks('a', ACTIVE, 1, 10_000);
      await store.releaseLease(t.id, { nodeId: 'a', token: 7 });
      assert.equal(await store.leaseOwner(t.id), 'a');
      await store.releaseLease(t.id, { nodeId: 'a', token: 1 });
      assert.equal(await store.leaseOwner(t.id), null);
      assert.deepEqual(await store.claimTasks('a', ACTIVE, 1, 10_000), [{ taskId: t.id, token: 2 }], 'the token never goes back');
      assert.deepEqual(await store.reclaimLeases('a', 10_000), [{ taskId: t.id, token: 3 }]);
      assert.deepEqual(await store.reclaimLeases('b', 10_000), []);
      await assert.rejects(store.modifyTask(t.id, () => undefined, { nodeId: 'a', token: 2 }), StaleLeaseError, 'the previous run is fenced off');
      assert.deepEqual(await store.deleteTasks('p1', [t.id]), [t.id]);
      assert.equal(await store.leaseOwner(t.id), null, 'the lease goes with the task');
    });

    it('lists live nodes with their tasks, counts the load, and routes commands to the owner', async () => {
      const store = await fresh();
      const t1 = makeTask({ status: 'FULLMIGRATING' });
      const t2 = makeTask({ status: 'FULLMIGRATING' });
      await store.createTask(t1);
      await store.createTask(t2);
      await store.heartbeat({ id: 'a', listen: '127.0.0.1:1001', capacity: 2 }, 10_000);
      await store.heartbeat({ id: 'b', listen: '[::1]:1002', capacity: 3 }, 10_000);
      await store.claimTasks('a', ACTIVE, 1, 10_000);
      await store.claimTasks('b', ACTIVE, 1, 10_000);
      const nodes = await store.listNodes(60_000);
      assert.deepEqual(nodes.map((n) => [n.id, n.listen, n.capacity, n.tasks]), [
        ['a', '127.0.0.1:1001', 2, [t1.id]],
        ['b', '[::1]:1002', 3, [t2.id]],
      ]);
      assert.ok(nodes.every((n) => Math.abs(Date.parse(n.heartbeatAt) - Date.now()) < 5000));
      assert.deepEqual(await store.load(ACTIVE, 60_000), { tasks: 2, nodes: 2 });
      await store.removeNode('a');
      assert.deepEqual((await store.listNodes(60_000)).map((n) => n.id), ['b'], 'a node that left is not listed');
      assert.deepEqual(await store.load(ACTIVE, 60_000), { tasks: 2, nodes: 1 });
      await sleep(60);
      assert.deepEqual((await store.listNodes(50)).length, 0, 'silent nodes are not listed');

      await store.sendCommand(t2.id, 'stop');
      await store.sendCommand(t2.id, 'update');
      assert.deepEqual(await store.takeCommands('a'), [], "a does not own t2: b's commands stay");
      assert.deepEqual((await store.takeCommands('b')).map((c) => [c.taskId, c.kind]), [[t2.id, 'stop'], [t2.id, 'update']]);
      assert.deepEqual(await store.takeCommands('b'), [], 'taken once');
      // A command left for an owner that died is dropped when another node claims the task.
      await store.sendCommand(t1.id, 'stop');
      await store.releaseLease(t1.id, { nodeId: 'a', token: 1 });
      await store.claimTasks('b', ACTIVE, 1, 10_000, t1.id);
      assert.deepEqual(await store.takeCommands('b'), [], "the previous owner's stale stop is gone");
    });
  });
}

describe('PgTaskStore: migrations', { skip: pgSkip }, () => {
  it('applies each migration once when several nodes open a new schema at the same moment', async () => {
    const schema = newSchema();
    const stores = await Promise.all([0, 1, 2, 3].map(() => PgTaskStore.open(pgUrl, { schema, poolSize: 2 })));
    try {
      const c = new pg.Client({ connectionString: pgUrl });
      await c.connect();
      try {
        const r = await c.query<{ version: number }>(`SELECT version FROM ${schema}.schema_version ORDER BY version`);
        assert.deepEqual(r.rows.map((x) => x.version), Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => i + 1));
        await c.query(`INSERT INTO ${schema}.schema_version (version, description, applied_at) VALUES (999, 'future', 'now')`);
      } finally {
        await c.end();
      }
      await assert.rejects(PgTaskStore.open(pgUrl, { schema }), /schema version 999, newer than this Ferry knows/);
      // and the URL's password never shows in that message
      await assert.rejects(PgTaskStore.open(pgUrl.replace('postgres@', 'postgres:hunter2@'), { schema }), (e: Error) => !e.message.includes('hunter2'));
    } finally {
      for (const s of stores) await s.close();
    }
  });
});
