/**
 * Scan-mode benchmark: Ferry's scan mode (SCAN + MEMORY USAGE + DUMP + PEXPIRETIME, RESTORE)
 * against Ferry in PSYNC mode and Redis's own replication, on the same data, in the same run.
 *
 *   npm run bench:scan                      # 1,000,000 mixed keys
 *   BENCH_KEYS=200000 npm run bench:scan    # smaller
 *   BENCH_PROFILE=/tmp/prof npm run bench:scan   # also one scan run under node --cpu-prof
 *
 * Each side runs BENCH_RUNS times (default 2), alternating, into a fresh empty server; the best
 * run of each counts. Everything runs on loopback.
 */
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import { RedisConnection } from '../src/resp/connection.js';
import { startRedis, stopAll } from '../test/helpers/redis-server.js';
import { ferryFull, field, info, loadMixedKeys, nativeReplication } from './common.js';
import type { RedisServer } from '../test/helpers/redis-server.js';

/** CPU seconds the server has used (user + sys), from INFO cpu. */
async function cpuSeconds(s: RedisServer): Promise<number> {
  const text = await info(s, 'cpu');
  return Number(field(text, 'used_cpu_user') ?? 0) + Number(field(text, 'used_cpu_sys') ?? 0);
}

const KEYS = Number(process.env.BENCH_KEYS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);

async function main(): Promise<void> {
  const source = await startRedis({ config: { 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '0' } });
  try {
    process.stdout.write(`loading ${KEYS.toLocaleString('en-US')} mixed keys...\n`);
    const connection = await RedisConnection.connect({ host: source.host, port: source.port });
    await loadMixedKeys(KEYS, async () => connection);
    connection.destroy('loaded');
    process.stdout.write(`load average before the runs: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);

    const best = { scan: Infinity, psync: Infinity, native: Infinity };
    let scanRss = 0;
    let copied = 0;
    let cpu = { source: 0, target: 0, seconds: Infinity };
    for (let i = 0; i < RUNS; i++) {
      const t1 = await startRedis();
      const sourceBefore = await cpuSeconds(source);
      const targetBefore = await cpuSeconds(t1);
      const scan = await ferryFull(source.addr, t1.addr, ['--source-mode', 'scan']);
      if (scan.seconds < cpu.seconds) cpu = { source: (await cpuSeconds(source)) - sourceBefore, target: (await cpuSeconds(t1)) - targetBefore, seconds: scan.seconds };
      copied = await t1.client().dbsize();
      await t1.stop();
      process.stdout.write(`scan run ${i + 1}: ${scan.seconds.toFixed(2)} s (${Math.round(KEYS / scan.seconds).toLocaleString('en-US')} keys/s), peak RSS ${scan.peakRssMb.toFixed(0)} MB, ${copied} keys on target\n`);
      best.scan = Math.min(best.scan, scan.seconds);
      scanRss = Math.max(scanRss, scan.peakRssMb);

      const t2 = await startRedis();
      const psync = await ferryFull(source.addr, t2.addr, ['--source-mode', 'psync']);
      await t2.stop();
      process.stdout.write(`psync run ${i + 1}: ${psync.seconds.toFixed(2)} s\n`);
      best.psync = Math.min(best.psync, psync.seconds);

      const replica = await startRedis();
      const native = await nativeReplication(source, replica);
      await replica.stop();
      process.stdout.write(`native run ${i + 1}: ${native.toFixed(2)} s\n`);
      best.native = Math.min(best.native, native);
    }
    if (process.env.BENCH_PROFILE) {
      mkdirSync(process.env.BENCH_PROFILE, { recursive: true });
      const t = await startRedis();
      const run = await ferryFull(source.addr, t.addr, ['--source-mode', 'scan'], ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]);
      await t.stop();
      process.stdout.write(`profiled scan run: ${run.seconds.toFixed(2)} s, profile in ${process.env.BENCH_PROFILE}\n`);
    }
    const rate = (s: number): string => `${Math.round(KEYS / s).toLocaleString('en-US')} keys/s`;
    const rows = [
      ['keys in source', KEYS.toLocaleString('en-US')],
      ['keys on target after a scan-mode run', copied.toLocaleString('en-US')],
      [`(a) Ferry scan mode, full (best of ${RUNS})`, `${best.scan.toFixed(2)} s, ${rate(best.scan)}`],
      [`(b) Ferry PSYNC mode, full (best of ${RUNS})`, `${best.psync.toFixed(2)} s, ${rate(best.psync)}`],
      [`(c) native replication (best of ${RUNS})`, `${best.native.toFixed(2)} s, ${rate(best.native)}`],
      ['ratio scan / PSYNC', (best.scan / best.psync).toFixed(2)],
      ['ratio scan / native', (best.scan / best.native).toFixed(2)],
      ['Ferry scan mode peak RSS (worst run)', `${scanRss.toFixed(0)} MB`],
      ['CPU of the best scan run: source redis-server', `${cpu.source.toFixed(2)} s (${((cpu.source / KEYS) * 1e6).toFixed(1)} µs/key)`],
      ['CPU of the best scan run: target redis-server', `${cpu.target.toFixed(2)} s (${((cpu.target / KEYS) * 1e6).toFixed(1)} µs/key)`],
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
