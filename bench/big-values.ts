/**
 * Big values: a source holding incompressible 256 KB strings, Ferry's full migration against
 * native replication of the same data, in the same run, alternating.
 *
 *   npm run bench:big-values                   # 400 MB of 256 KB values, 3 runs of each
 *   BENCH_MB=200 BENCH_RUNS=2 npm run bench:big-values
 *   BENCH_PROFILE=DIR                          # one more Ferry run under node --cpu-prof
 *
 * MB/s = RDB bytes / wall time from spawn to exit (Ferry) or from REPLICAOF to in sync (native).
 */
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import { RedisConnection } from '../src/resp/connection.js';
import { encodeCommand } from '../src/resp/encode.js';
import { startRedis, stopAll } from '../test/helpers/redis-server.js';
import { ferryFull, nativeReplication } from './common.js';

const MB = Number(process.env.BENCH_MB ?? 400);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const VALUE_BYTES = 256 * 1024;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const source = await startRedis({ config: { 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '0' } });
  try {
    const c = await RedisConnection.connect({ host: source.host, port: source.port });
    const count = Math.round((MB * 1024 * 1024) / VALUE_BYTES);
    for (let i = 0; i < count; i++) {
      c.send(encodeCommand(['SET', `v:${i}`, randomBytes(VALUE_BYTES)]));
      if (c.full) await c.waitForRoom();
    }
    await c.drain();
    c.destroy('loaded');
    await source.client().call('SAVE');
    const rdbMb = statSync(path.join(source.dir, 'dump.rdb')).size / 1024 / 1024;
    const ferry: number[] = [];
    const native: number[] = [];
    const base: number[] = [];
    let peak = 0;
    for (let i = 0; i < RUNS; i++) {
      const t = await startRedis();
      const r = await ferryFull(source.addr, t.addr);
      await t.stop();
      ferry.push(r.seconds);
      peak = Math.max(peak, r.peakRssMb);
      const replica = await startRedis();
      const n = await nativeReplication(source, replica);
      await replica.stop();
      native.push(n);
      if (process.env.BENCH_BASE_CLI) {
        const tb = await startRedis();
        const b = await ferryFull(source.addr, tb.addr, [], [], process.env.BENCH_BASE_CLI);
        await tb.stop();
        base.push(b.seconds);
        process.stdout.write(`run ${i + 1}: base build ${b.seconds.toFixed(2)} s (${(rdbMb / b.seconds).toFixed(0)} MB/s)\n`);
      }
      process.stdout.write(`run ${i + 1}: ferry ${r.seconds.toFixed(2)} s (${(rdbMb / r.seconds).toFixed(0)} MB/s, peak RSS ${r.peakRssMb.toFixed(0)} MB), native ${n.toFixed(2)} s (${(rdbMb / n).toFixed(0)} MB/s)\n`);
    }
    if (process.env.BENCH_PROFILE) {
      const t = await startRedis();
      await ferryFull(source.addr, t.addr, [], ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE]);
      await t.stop();
    }
    const rate = (s: number): string => `${(rdbMb / s).toFixed(0)} MB/s`;
    process.stdout.write('\n| measure | value |\n|---|---|\n');
    process.stdout.write(`| data | ${count} values of 256 KB, RDB ${rdbMb.toFixed(0)} MB |\n`);
    process.stdout.write(`| Ferry full migration, best / median of ${RUNS} | ${rate(Math.min(...ferry))} / ${rate(median(ferry))} |\n`);
    process.stdout.write(`| native replication, best / median of ${RUNS} | ${rate(Math.min(...native))} / ${rate(median(native))} |\n`);
    process.stdout.write(`| ratio Ferry / native time (best / median) | ${(Math.min(...ferry) / Math.min(...native)).toFixed(2)} / ${(median(ferry) / median(native)).toFixed(2)} |\n`);
    process.stdout.write(`| Ferry peak RSS (worst run) | ${peak.toFixed(0)} MB |\n`);
    if (base.length) process.stdout.write(`| base build (BENCH_BASE_CLI), best / median | ${rate(Math.min(...base))} / ${rate(median(base))} |\n`);
  } finally {
    await source.stop();
    await stopAll();
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
  process.exitCode = 1;
});
