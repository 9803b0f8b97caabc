/**
 * Full-sync benchmark: Ferry against Redis's own replication on the same data, in the same run.
 *
 *   npm run bench                      # 1,000,000 keys
 *   BENCH_KEYS=200000 npm run bench    # smaller
 *
 * Steps: load a source with mixed keys (all types, ~20% with TTLs), then
 *   (a) time `ferry migrate --method full` into an empty target (a child process),
 *   (b) time a fresh redis-server doing REPLICAOF until its link is up and offsets match,
 *   (c) Ferry's peak RSS (VmHWM of the child),
 *   (d) the RDB parser's throughput over the saved snapshot (in this process).
 * Everything runs on loopback.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeCommand, type Arg } from '../src/resp/encode.js';
import { TargetConnection } from '../src/target/connection.js';
import { startRedis, stopAll, type RedisServer } from '../test/helpers/redis-server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const KEYS = Number(process.env.BENCH_KEYS ?? 1_000_000);

async function load(server: RedisServer, keys: number): Promise<void> {
  const c = await TargetConnection.connect({ host: server.host, port: server.port });
  const now = Date.now();
  let failures = 0;
  const onReply = (r: unknown): void => {
    if (r instanceof Error) failures++;
  };
  for (let i = 0; i < keys; i++) {
    const kind = i % 20;
    const key = `key:${i}`;
    let cmd: Arg[];
    if (kind < 10) cmd = ['SET', key, kind < 3 ? String(i) : `value-${i}-${'x'.repeat(kind * 10)}`];
    else if (kind < 12) cmd = ['RPUSH', key, ...Array.from({ length: 10 }, (_, j) => `item-${j}`)];
    else if (kind < 14) cmd = ['HSET', key, ...Array.from({ length: 10 }, (_, j) => [`f${j}`, `v${i}-${j}`]).flat()];
    else if (kind < 16) cmd = ['SADD', key, ...Array.from({ length: 10 }, (_, j) => `m${j * i}`)];
    else if (kind < 18) cmd = ['ZADD', key, ...Array.from({ length: 10 }, (_, j) => [j * 1.5, `m${j}`]).flat()];
    else if (kind < 19) cmd = ['XADD', key, '*', 'a', String(i), 'b', 'payload'];
    else cmd = ['SET', key, Buffer.alloc(1024, i % 256)];
    c.send(encodeCommand(cmd), onReply);
    if (i % 5 === 0) c.send(encodeCommand(['PEXPIREAT', key, now + 3_600_000 + i]), onReply);
    if (c.full) await c.waitForRoom();
  }
  await c.drain();
  c.close();
  if (failures) throw new Error(`${failures} load commands failed`);
}

async function info(server: RedisServer, section: string): Promise<string> {
  return server.client().info(section);
}

function field(text: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*)$`, 'm').exec(text)?.[1]?.trim();
}

async function ferryFull(source: RedisServer, target: RedisServer): Promise<{ seconds: number; peakRssMb: number }> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [path.join(root, 'dist/cli.js'), 'migrate', '--source', source.addr, '--target', target.addr, '--method', 'full'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let peakKb = 0;
  const sample = setInterval(() => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'latin1');
      const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
      if (hwm > peakKb) peakKb = hwm;
    } catch {
      /* exited */
    }
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(sample);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`ferry exited ${code}: ${stderr}`);
  return { seconds, peakRssMb: peakKb / 1024 };
}

async function nativeReplication(source: RedisServer, replica: RedisServer): Promise<number> {
  const started = process.hrtime.bigint();
  await replica.client().call('REPLICAOF', source.host, String(source.port));
  for (;;) {
    const r = await info(replica, 'replication');
    const s = await info(source, 'replication');
    if (field(r, 'master_link_status') === 'up' && field(r, 'slave_repl_offset') === field(s, 'master_repl_offset')) break;
    await new Promise((res) => setTimeout(res, 5));
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Runs bench/parse-rdb.ts in a fresh process, so the parser is measured on a clean heap. */
async function parserThroughput(file: string): Promise<{ payloadMBps: number; decodeMBps: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bench/parse-rdb.ts'), file], { stdio: ['ignore', 'pipe', 'inherit'], cwd: root });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`parse-rdb exited ${code}`);
  return JSON.parse(out) as { payloadMBps: number; decodeMBps: number };
}

async function main(): Promise<void> {
  const config = { 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '0' };
  const source = await startRedis({ config });
  try {
    process.stdout.write(`loading ${KEYS.toLocaleString('en-US')} mixed keys...\n`);
    await load(source, KEYS);
    await source.client().call('SAVE');
    const rdbFile = path.join(source.dir, 'dump.rdb');
    const rdbMb = statSync(rdbFile).size / 1024 / 1024;
    if (process.env.BENCH_KEEP_RDB) copyFileSync(rdbFile, process.env.BENCH_KEEP_RDB);
    if (process.env.BENCH_ONLY_RDB) return;
    const usedMemory = field(await info(source, 'memory'), 'used_memory_human');
    process.stdout.write(`source: ${KEYS} keys, RDB ${rdbMb.toFixed(1)} MB, used_memory ${usedMemory}\n`);

    // Each side runs RUNS times, alternating, into a fresh server; the best run of each counts
    // (the machine is small and shared, and the best run is the least disturbed one).
    const runs = Number(process.env.BENCH_RUNS ?? 2);
    let ferry = { seconds: Infinity, peakRssMb: 0 };
    let native = Infinity;
    let copied = 0;
    for (let i = 0; i < runs; i++) {
      const ferryTarget = await startRedis();
      const run = await ferryFull(source, ferryTarget);
      copied = await ferryTarget.client().dbsize();
      await ferryTarget.stop();
      process.stdout.write(`ferry run ${i + 1}: ${run.seconds.toFixed(2)} s, peak RSS ${run.peakRssMb.toFixed(0)} MB\n`);
      if (run.seconds < ferry.seconds) ferry = { seconds: run.seconds, peakRssMb: Math.max(run.peakRssMb, ferry.peakRssMb) };
      else ferry.peakRssMb = Math.max(run.peakRssMb, ferry.peakRssMb);

      const replica = await startRedis();
      const seconds = await nativeReplication(source, replica);
      await replica.stop();
      process.stdout.write(`native run ${i + 1}: ${seconds.toFixed(2)} s\n`);
      native = Math.min(native, seconds);
    }

    const parser = await parserThroughput(rdbFile);

    const rows = [
      ['keys in source', KEYS.toLocaleString('en-US')],
      ['keys on target after Ferry', copied.toLocaleString('en-US')],
      ['RDB size', `${rdbMb.toFixed(1)} MB`],
      [`(a) Ferry full migration (best of ${runs})`, `${ferry.seconds.toFixed(2)} s`],
      [`(b) native replication, REPLICAOF until in sync (best of ${runs})`, `${native.toFixed(2)} s`],
      ['ratio Ferry / native', (ferry.seconds / native).toFixed(2)],
      ['(c) Ferry peak RSS (worst run)', `${ferry.peakRssMb.toFixed(0)} MB`],
      ['(d) RDB parser, payload mode (RESTORE path), best of 4', `${parser.payloadMBps} MB/s`],
      ['(d) RDB parser, decode mode (every element), best of 4', `${parser.decodeMBps} MB/s`],
    ];
    process.stdout.write('\n| measure | value |\n|---|---|\n');
    for (const [k, v] of rows) process.stdout.write(`| ${k} | ${v} |\n`);
  } finally {
    await source.stop();
    await stopAll();
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
  process.exitCode = 1;
});
