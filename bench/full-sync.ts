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
import { copyFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { RedisConnection } from '../src/resp/connection.js';
import { startRedis, stopAll } from '../test/helpers/redis-server.js';
import { ferryFull, field, info, loadMixedKeys, nativeReplication, parserThroughput } from './common.js';
const KEYS = Number(process.env.BENCH_KEYS ?? 1_000_000);

async function main(): Promise<void> {
  const config = { 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '0' };
  const source = await startRedis({ config });
  try {
    process.stdout.write(`loading ${KEYS.toLocaleString('en-US')} mixed keys...\n`);
    const connection = await RedisConnection.connect({ host: source.host, port: source.port });
    await loadMixedKeys(KEYS, async () => connection);
    connection.destroy('loaded');
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
    const rewrite = Boolean(process.env.BENCH_REWRITE);
    const ferryTimes: number[] = [];
    const nativeTimes: number[] = [];
    const rewriteTimes: number[] = [];
    const baseTimes: number[] = [];
    let peakRssMb = 0;
    let rewritePeakRssMb = 0;
    let copied = 0;
    for (let i = 0; i < runs; i++) {
      const ferryTarget = await startRedis();
      const run = await ferryFull(source.addr, ferryTarget.addr);
      copied = await ferryTarget.client().dbsize();
      await ferryTarget.stop();
      if (copied !== KEYS) throw new Error(`target holds ${copied} keys, expected ${KEYS}`);
      process.stdout.write(`ferry run ${i + 1}: ${run.seconds.toFixed(2)} s, peak RSS ${run.peakRssMb.toFixed(0)} MB\n`);
      ferryTimes.push(run.seconds);
      peakRssMb = Math.max(peakRssMb, run.peakRssMb);

      const replica = await startRedis();
      const seconds = await nativeReplication(source, replica);
      await replica.stop();
      process.stdout.write(`native run ${i + 1}: ${seconds.toFixed(2)} s\n`);
      nativeTimes.push(seconds);

      if (process.env.BENCH_BASE_CLI) {
        // Another build of Ferry (BENCH_BASE_CLI=/other/checkout/dist/cli.js), in the same run: before/after.
        const t = await startRedis();
        const r = await ferryFull(source.addr, t.addr, [], [], process.env.BENCH_BASE_CLI);
        await t.stop();
        process.stdout.write(`base run ${i + 1}: ${r.seconds.toFixed(2)} s, peak RSS ${r.peakRssMb.toFixed(0)} MB\n`);
        baseTimes.push(r.seconds);
      }

      if (rewrite) {
        // The rebuild path: every key decoded and rebuilt with type commands (--rewrite).
        const t = await startRedis();
        const r = await ferryFull(source.addr, t.addr, ['--rewrite']);
        const n = await t.client().dbsize();
        await t.stop();
        if (n !== KEYS) throw new Error(`rewrite: target holds ${n} keys, expected ${KEYS}`);
        process.stdout.write(`ferry --rewrite run ${i + 1}: ${r.seconds.toFixed(2)} s (${(rdbMb / r.seconds).toFixed(1)} MB/s), peak RSS ${r.peakRssMb.toFixed(0)} MB\n`);
        rewriteTimes.push(r.seconds);
        rewritePeakRssMb = Math.max(rewritePeakRssMb, r.peakRssMb);
        if (process.env.BENCH_BASE_CLI) {
          const t2 = await startRedis();
          const b = await ferryFull(source.addr, t2.addr, ['--rewrite'], [], process.env.BENCH_BASE_CLI);
          await t2.stop();
          process.stdout.write(`base --rewrite run ${i + 1}: ${b.seconds.toFixed(2)} s (${(rdbMb / b.seconds).toFixed(1)} MB/s), peak RSS ${b.peakRssMb.toFixed(0)} MB\n`);
        }
      }
    }

    const parser = await parserThroughput(rdbFile);
    const best = (xs: number[]): number => Math.min(...xs);
    const med = (xs: number[]): number => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    const rows = [
      ['keys in source', KEYS.toLocaleString('en-US')],
      ['keys on target after Ferry', copied.toLocaleString('en-US')],
      ['RDB size', `${rdbMb.toFixed(1)} MB`],
      [`(a) Ferry full migration, best / median of ${runs}`, `${best(ferryTimes).toFixed(2)} s / ${med(ferryTimes).toFixed(2)} s`],
      [`(b) native replication, REPLICAOF until in sync, best / median of ${runs}`, `${best(nativeTimes).toFixed(2)} s / ${med(nativeTimes).toFixed(2)} s`],
      ['ratio Ferry / native (best / median)', `${(best(ferryTimes) / best(nativeTimes)).toFixed(2)} / ${(med(ferryTimes) / med(nativeTimes)).toFixed(2)}`],
      ['(c) Ferry peak RSS (worst run)', `${peakRssMb.toFixed(0)} MB`],
      ...(baseTimes.length
        ? [[`base build (BENCH_BASE_CLI), best / median of ${runs}`, `${best(baseTimes).toFixed(2)} s / ${med(baseTimes).toFixed(2)} s (ratio to native ${(best(baseTimes) / best(nativeTimes)).toFixed(2)} / ${(med(baseTimes) / med(nativeTimes)).toFixed(2)})`]]
        : []),
      ...(rewrite
        ? [
            [`(e) rebuild path (--rewrite), best / median of ${runs}`, `${best(rewriteTimes).toFixed(2)} s / ${med(rewriteTimes).toFixed(2)} s = ${(rdbMb / best(rewriteTimes)).toFixed(1)} / ${(rdbMb / med(rewriteTimes)).toFixed(1)} MB/s of RDB`],
            ['(e) rebuild path peak RSS (worst run)', `${rewritePeakRssMb.toFixed(0)} MB`],
          ]
        : []),
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
