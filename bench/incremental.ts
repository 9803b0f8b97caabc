/**
 * Incremental stream: Ferry against Redis's own replication under the same write load, in the
 * same run.
 *
 *   npm run bench:incremental                 # redis-benchmark -n 1000000, 3 runs of each side
 *   BENCH_N=200000 BENCH_RUNS=2 npm run bench:incremental
 *   BENCH_VARIANTS=ferry-checkpoint,ferry,native   # which sides run (this order, alternating)
 *   BENCH_PROFILE=DIR                          # Ferry under node --cpu-prof, profiles in DIR
 *   BENCH_BASE_CLI=/other/checkout/dist/cli.js # variants base, base-checkpoint: another build, same run
 *
 * For each run, into a fresh empty target: the replica (Ferry `migrate --method incremental`
 * in a child process, or a fresh redis-server doing REPLICAOF) is attached and in its stream
 * phase first; then `redis-benchmark -t set,incr,lpush -n N -d 32 -P 32` runs on the source.
 * When it ends, a marker key is written on the source and the target polled for it (every
 * 2 ms): everything before the marker is then applied on the target.
 *   - source ops/s: what redis-benchmark reports (the source's own speed with this replica);
 *   - forwarded ops/s: 3N / (benchmark start → marker on the target);
 *   - catch-up: benchmark end → marker on the target.
 * After each run the target must equal the source on the keys the benchmark wrote.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startRedis, stopAll, type RedisServer } from '../test/helpers/redis-server.js';
import { field, info, root } from './common.js';

const N = Number(process.env.BENCH_N ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const VARIANTS = (process.env.BENCH_VARIANTS ?? 'ferry-checkpoint,native').split(',');
const PROFILE = process.env.BENCH_PROFILE;
const TESTS = ['set', 'incr', 'lpush'];

interface RunResult {
  sourceOpsPerSec: number;
  forwardedOpsPerSec: number;
  catchUpSeconds: number;
  peakRssMb: number;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Starts `ferry migrate --method incremental`; resolves once it reports the incremental phase. */
async function startFerry(source: RedisServer, target: RedisServer, checkpoint: boolean, run: number, cli: string): Promise<{ child: ChildProcess; peak: () => number; exited: Promise<number | null> }> {
  const nodeArgs = PROFILE ? ['--cpu-prof', '--cpu-prof-dir', PROFILE] : [];
  const args = ['migrate', '--source', source.addr, '--target', target.addr, '--method', 'incremental', '--json', ...(checkpoint ? ['--checkpoint', `bench${run}`] : [])];
  const child = spawn(process.execPath, [...nodeArgs, cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  let peakKb = 0;
  const sample = setInterval(() => {
    try {
      const hwm = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'latin1'))?.[1] ?? 0);
      if (hwm > peakKb) peakKb = hwm;
    } catch {
      clearInterval(sample);
    }
  }, 50);
  await new Promise<void>((resolve, reject) => {
    let buffered = '';
    const onData = (d: Buffer): void => {
      buffered += d.toString();
      if (/"phase":"incremental"/.test(buffered)) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve();
      }
      buffered = buffered.slice(-4096);
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => reject(new Error(`ferry exited ${code} before its stream phase: ${stderr}`)));
  });
  return { child, peak: () => peakKb / 1024, exited };
}

/** redis-benchmark on the source; the ops/s it reports for each test. */
async function redisBenchmark(source: RedisServer): Promise<number[]> {
  const child = spawn('redis-benchmark', ['-h', source.host, '-p', String(source.port), '-t', TESTS.join(','), '-n', String(N), '-d', '32', '-P', '32', '--csv'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`redis-benchmark exited ${code}`);
  // "test","rps",...; LPUSH also reports nothing else with -t set,incr,lpush.
  return TESTS.map((t) => {
    const line = out.split('\n').find((l) => l.toLowerCase().startsWith(`"${t}"`));
    if (!line) throw new Error(`no ${t} line in redis-benchmark output: ${out}`);
    return Number(JSON.parse(`[${line}]`)[1]);
  });
}

async function oneRun(source: RedisServer, variant: string, run: number): Promise<RunResult> {
  await source.client().call('FLUSHALL');
  const target = await startRedis();
  let ferry: Awaited<ReturnType<typeof startFerry>> | null = null;
  try {
    if (variant === 'native') {
      await target.client().call('REPLICAOF', source.host, String(source.port));
      for (;;) {
        const r = await info(target, 'replication');
        if (field(r, 'master_link_status') === 'up') break;
        await sleep(5);
      }
    } else {
      const base = variant.startsWith('base');
      if (base && !process.env.BENCH_BASE_CLI) throw new Error(`variant ${variant} needs BENCH_BASE_CLI`);
      ferry = await startFerry(source, target, variant.endsWith('-checkpoint'), run, base ? process.env.BENCH_BASE_CLI! : path.join(root, 'dist/cli.js'));
    }
    const marker = `bench:marker:${run}:${Date.now()}`;
    const started = process.hrtime.bigint();
    const rps = await redisBenchmark(source);
    const benchEnded = process.hrtime.bigint();
    await source.client().set(marker, '1');
    const t = target.client();
    while ((await t.exists(marker)) !== 1) await sleep(2);
    const seen = process.hrtime.bigint();
    // The benchmark's keys must have arrived intact (no -r: one key per test).
    const s = source.client();
    for (const [a, b] of [
      [await s.get('counter:__rand_int__'), await t.get('counter:__rand_int__')],
      [String(await s.llen('mylist')), String(await t.llen('mylist'))],
      [await s.get('key:__rand_int__'), await t.get('key:__rand_int__')],
    ]) {
      if (a !== b) throw new Error(`${variant}: target differs from source (${a} / ${b})`);
    }
    // Source speed: the ops of the three tests over the sum of their times.
    const sourceOpsPerSec = (3 * N) / rps.reduce((sum, r) => sum + N / r, 0);
    const result: RunResult = {
      sourceOpsPerSec,
      forwardedOpsPerSec: (3 * N) / (Number(seen - started) / 1e9),
      catchUpSeconds: Number(seen - benchEnded) / 1e9,
      peakRssMb: ferry ? ferry.peak() : 0,
    };
    return result;
  } finally {
    if (ferry) {
      ferry.child.kill('SIGTERM');
      await ferry.exited;
    }
    await target.stop();
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const source = await startRedis({
    config: { 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '0', 'repl-backlog-size': '512mb', 'client-output-buffer-limit': 'replica 0 0 0', save: '""', appendonly: 'no' },
  });
  const results = new Map<string, RunResult[]>(VARIANTS.map((v) => [v, []]));
  try {
    for (let i = 0; i < RUNS; i++) {
      for (const variant of VARIANTS) {
        const r = await oneRun(source, variant, i);
        results.get(variant)!.push(r);
        process.stdout.write(
          `${variant} run ${i + 1}: source ${Math.round(r.sourceOpsPerSec)} ops/s, forwarded ${Math.round(r.forwardedOpsPerSec)} ops/s, catch-up ${r.catchUpSeconds.toFixed(2)} s${r.peakRssMb ? `, peak RSS ${r.peakRssMb.toFixed(0)} MB` : ''}\n`,
        );
      }
    }
  } finally {
    await source.stop();
    await stopAll();
  }
  const native = results.get('native');
  const nativeSource = native ? median(native.map((r) => r.sourceOpsPerSec)) : null;
  process.stdout.write(`\nredis-benchmark -t ${TESTS.join(',')} -n ${N} -d 32 -P 32, ${RUNS} alternating runs of each side\n\n`);
  process.stdout.write('| side | source ops/s best / median | forwarded ops/s best / median | catch-up s best / median | source speed vs native (median) | peak RSS |\n|---|---|---|---|---|---|\n');
  for (const [variant, rs] of results) {
    const src = rs.map((r) => r.sourceOpsPerSec);
    const fwd = rs.map((r) => r.forwardedOpsPerSec);
    const cu = rs.map((r) => r.catchUpSeconds);
    const vs = nativeSource ? (median(src) / nativeSource).toFixed(2) : '-';
    const rss = rs.some((r) => r.peakRssMb) ? `${Math.max(...rs.map((r) => r.peakRssMb)).toFixed(0)} MB` : '-';
    process.stdout.write(
      `| ${variant} | ${Math.round(Math.max(...src))} / ${Math.round(median(src))} | ${Math.round(Math.max(...fwd))} / ${Math.round(median(fwd))} | ${Math.min(...cu).toFixed(2)} / ${median(cu).toFixed(2)} | ${vs} | ${rss} |\n`,
    );
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
  process.exitCode = 1;
});
