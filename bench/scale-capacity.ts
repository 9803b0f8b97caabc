/**
 * The capacity model of docs/scaling.md, measured: incremental throughput of one task and of
 * two at once (one worker process each), memory of a worker and of the node, and the load one
 * node puts on PostgreSQL (transactions per second, idle and with tasks).
 *
 *   npm run build && node --import tsx bench/scale-capacity.ts
 *
 * Env: BENCH_OPS (SETs per source, default 400000), BENCH_VALUE (bytes, default 64).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startRedis, stopAll, type RedisServer } from '../test/helpers/redis-server.js';
import { sdkClient, startService, type SdkResponse, type Service } from '../test/helpers/service.js';

const OPS = Number(process.env.BENCH_OPS ?? 400_000);
const VALUE = Number(process.env.BENCH_VALUE ?? 64);
const PG_URL = process.env.FERRY_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PROJECT = '0123456789abcdef0123456789abcdef';
const AK = 'FERRYBENCHAK00000001';
const SK = 'ferry-bench-secret-key-0000000000000001';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function field(info: string, name: string): number {
  return Number(new RegExp(`${name}[:=](\\d+)`).exec(info)?.[1] ?? NaN);
}

function children(pid: number): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        const s = readFileSync(`/proc/${n}/stat`, 'utf8');
        return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

function memKb(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  return Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

async function startTask(client: ReturnType<typeof sdkClient>, source: RedisServer, target: RedisServer): Promise<string> {
  const c = (await client.call('POST', '/v2/{project_id}/migration/instance', { data: { name: 'bench' } })) as SdkResponse;
  const id = String(c.instance_id);
  await client.call('POST', '/v2/{project_id}/migration/{task_id}/task', {
    pathParams: { task_id: id },
    data: { migration_method: 'incremental_migration', resume_mode: 'auto', target_conflict: 'replace', source_instance: { addrs: source.addr }, target_instance: { addrs: target.addr } },
  });
  for (const deadline = Date.now() + 60_000; ; ) {
    if (Date.now() > deadline) throw new Error(`task ${id} never reached INCRMIGEATING`);
    const t = (await client.call('GET', '/v2/{project_id}/migration-task/{task_id}', { pathParams: { task_id: id } })) as SdkResponse;
    if (t.status === 'INCRMIGEATING') return id;
    await sleep(100);
  }
}

/** redis-benchmark SETs on each source at once; the time until every target has applied them all. */
async function incremental(pairs: { source: RedisServer; target: RedisServer }[]): Promise<{ seconds: number; streamBytes: number }> {
  const before = await Promise.all(pairs.map(async (p) => ({ offset: field(await p.source.client().info('replication'), 'master_repl_offset'), sets: field(await p.target.client().info('commandstats'), 'cmdstat_set:calls') || 0 })));
  const t0 = Date.now();
  await Promise.all(
    pairs.map(
      (p) =>
        new Promise<void>((resolve, reject) => {
          const [host, port] = p.source.addr.split(':');
          const b = spawn('redis-benchmark', ['-h', host!, '-p', port!, '-t', 'set', '-n', String(OPS), '-P', '32', '-c', '4', '-r', '100000', '-d', String(VALUE), '-q'], { stdio: 'ignore' });
          b.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`redis-benchmark exited ${code}`))));
        }),
    ),
  );
  for (const deadline = Date.now() + 120_000; ; ) {
    if (Date.now() > deadline) throw new Error('the targets did not apply every SET within 120 s');
    const done = await Promise.all(pairs.map(async (p, i) => field(await p.target.client().info('commandstats'), 'cmdstat_set:calls') - before[i]!.sets >= OPS));
    if (done.every(Boolean)) break;
    await sleep(20);
  }
  const seconds = (Date.now() - t0) / 1000;
  let streamBytes = 0;
  for (const [i, p] of pairs.entries()) streamBytes += field(await p.source.client().info('replication'), 'master_repl_offset') - before[i]!.offset;
  return { seconds, streamBytes };
}

async function pgTransactions(seconds: number): Promise<number> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  const q = async (): Promise<number> => Number((await c.query<{ n: string }>('SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()')).rows[0]!.n);
  const a = await q();
  await sleep(seconds * 1000);
  const b = await q();
  await c.end();
  return (b - a - 2) / seconds;
}

async function main(): Promise<void> {
  console.log(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  // 1. One node on SQLite: throughput and memory.
  const sqlite = await startService({ credentials: [{ ak: AK, sk: SK, projectId: PROJECT }], addressPolicy: 'any' });
  const client = sdkClient(sqlite.endpoint, AK, SK, PROJECT);
  const pairs: { source: RedisServer; target: RedisServer }[] = [];
  for (let i = 0; i < 2; i++) pairs.push({ source: await startRedis({ config: { 'repl-backlog-size': '256mb' } }), target: await startRedis() });
  for (const p of pairs) await startTask(client, p.source, p.target);
  const workers = children(sqlite.pid());
  const idleRss = workers.map((w) => memKb(w, 'VmRSS'));
  const one = await incremental(pairs.slice(0, 1));
  console.log(`one task: ${OPS} SETs of ${VALUE} B in ${one.seconds.toFixed(2)} s = ${Math.round(OPS / one.seconds)} ops/s, ${(one.streamBytes / one.seconds / 1e6).toFixed(1)} MB/s of replication stream`);
  const two = await incremental(pairs);
  console.log(`two tasks at once: ${2 * OPS} SETs in ${two.seconds.toFixed(2)} s = ${Math.round((2 * OPS) / two.seconds)} ops/s together, ${(two.streamBytes / two.seconds / 1e6).toFixed(1)} MB/s`);
  console.log(`worker RSS idle: ${idleRss.map((k) => `${Math.round(k / 1024)} MB`).join(', ')}; peak (VmHWM) after the load: ${workers.map((w) => `${Math.round(memKb(w, 'VmHWM') / 1024)} MB`).join(', ')}`);
  console.log(`node (ferry serve) RSS: ${Math.round(memKb(sqlite.pid(), 'VmRSS') / 1024)} MB`);
  await sqlite.stop();
  sqlite.cleanup();

  // 2. One node on PostgreSQL: its transactions per second, idle and holding tasks.
  const schema = `ferry_bench_${process.pid}`;
  const keyDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-key-'));
  let node: Service | null = null;
  try {
    node = await startService({ credentials: [{ ak: AK, sk: SK, projectId: PROJECT }], addressPolicy: 'any', store: { postgres: PG_URL, schema }, secretKeyFile: path.join(keyDir, 'k') });
    await sleep(2000);
    console.log(`PostgreSQL transactions/s, one idle node (default 15 s lease): ${(await pgTransactions(10)).toFixed(1)}`);
    const c2 = sdkClient(node.endpoint, AK, SK, PROJECT);
    for (const p of pairs) await startTask(c2, p.source, p.target);
    await sleep(2000);
    console.log(`PostgreSQL transactions/s, one node running 2 idle incremental tasks: ${(await pgTransactions(10)).toFixed(1)}`);
  } finally {
    await node?.stop();
    node?.cleanup();
    rmSync(keyDir, { recursive: true, force: true });
    execFileSync('psql', [PG_URL, '-qAtc', `DROP SCHEMA IF EXISTS ${schema} CASCADE`]);
    await stopAll();
  }
}

await main();
