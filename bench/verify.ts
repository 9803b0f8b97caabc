/**
 * `ferry verify` against the migration it checks, on the same data in the same run.
 *
 *   npm run bench:verify                      # 200,000 mixed keys, 3 alternating runs
 *   BENCH_KEYS=100000 BENCH_RUNS=2 npm run bench:verify
 *   BENCH_PROFILE=DIR                         # verify under node --cpu-prof, profiles in DIR
 *
 * Loads a source with the mixed keys of bench/common.ts, then alternating: (a) `ferry migrate
 * --method full` into a fresh target, timed from spawn to exit; (b) `ferry verify` of source
 * against that target, timed the same way (it must find 0 differences). The ratio verify /
 * migration is what the issue asks to bring to 1 or below.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { RedisConnection } from '../src/resp/connection.js';
import { startRedis, stopAll } from '../test/helpers/redis-server.js';
import { ferryFull, field, info, loadMixedKeys, root } from './common.js';
import type { RedisServer } from '../test/helpers/redis-server.js';

/** CPU seconds the server has used so far (user + sys, from INFO cpu). */
async function cpuOf(server: RedisServer): Promise<number> {
  const text = await info(server, 'cpu');
  return Number(field(text, 'used_cpu_user') ?? 0) + Number(field(text, 'used_cpu_sys') ?? 0);
}

const KEYS = Number(process.env.BENCH_KEYS ?? 200_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PROFILE = process.env.BENCH_PROFILE;

async function verify(source: string, target: string): Promise<number> {
  const started = process.hrtime.bigint();
  const nodeArgs = PROFILE ? ['--cpu-prof', '--cpu-prof-dir', PROFILE] : [];
  const child = spawn(process.execPath, [...nodeArgs, path.join(root, 'dist/cli.js'), 'verify', '--source', source, '--target', target, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`ferry verify exited ${code}: ${out.slice(-2000)}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const source = await startRedis({ config: { 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '0' } });
  try {
    const c = await RedisConnection.connect({ host: source.host, port: source.port });
    await loadMixedKeys(KEYS, async () => c);
    c.destroy('loaded');
    const migrations: number[] = [];
    const verifies: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const target = await startRedis();
      const m = await ferryFull(source.addr, target.addr);
      const [s0, t0] = [await cpuOf(source), await cpuOf(target)];
      const v = await verify(source.addr, target.addr);
      const [s1, t1] = [await cpuOf(source), await cpuOf(target)];
      await target.stop();
      migrations.push(m.seconds);
      verifies.push(v);
      process.stdout.write(`run ${i + 1}: migration ${m.seconds.toFixed(2)} s, verify ${v.toFixed(2)} s (server CPU during verify: source ${(s1 - s0).toFixed(2)} s, target ${(t1 - t0).toFixed(2)} s)\n`);
    }
    process.stdout.write('\n| measure | value |\n|---|---|\n');
    process.stdout.write(`| keys | ${KEYS.toLocaleString('en-US')} |\n`);
    process.stdout.write(`| ferry migrate --method full, best / median of ${RUNS} | ${Math.min(...migrations).toFixed(2)} s / ${median(migrations).toFixed(2)} s |\n`);
    process.stdout.write(`| ferry verify, best / median of ${RUNS} | ${Math.min(...verifies).toFixed(2)} s / ${median(verifies).toFixed(2)} s |\n`);
    process.stdout.write(`| ratio verify / migration (best / median) | ${(Math.min(...verifies) / Math.min(...migrations)).toFixed(2)} / ${(median(verifies) / median(migrations)).toFixed(2)} |\n`);
  } finally {
    await source.stop();
    await stopAll();
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
  process.exitCode = 1;
});
