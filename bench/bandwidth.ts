/**
 * The bandwidth limit: the achieved rate of a full sync against the limit, for several limits.
 *
 *   npm run bench:bandwidth      # limits 5, 20, 100 MB/s over ~300 MB of incompressible data
 *
 * Rate = snapshot bytes read from the source / time from the first to the last byte, measured
 * in-process by the engine (Migration progress), so start-up and connection time do not count.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Migration } from '../src/engine/migration.js';
import { startRedis, stopAll } from '../test/helpers/redis-server.js';

/** 0 stands for no limit: what Ferry reaches on its own with this data, for reference. */
const LIMITS = (process.env.BENCH_LIMITS ?? '5,20,100,0').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);

async function main(): Promise<void> {
  const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
  try {
    // Enough data for SECONDS at the highest limit; values do not compress (the RDB is LZF'd).
    const totalMb = Math.min(200, Math.max(...LIMITS.map((l) => l || 200))) * SECONDS;
    const c = source.client();
    const valueBytes = 256 * 1024;
    for (let i = 0; i < (totalMb * 1024 * 1024) / valueBytes; i++) await c.set(`v:${i}`, randomBytes(valueBytes));
    const rows: string[][] = [];
    for (const limit of LIMITS) {
      const target = await startRedis();
      const m = new Migration({
        source: { host: source.host, port: source.port },
        target: { host: target.host, port: target.port },
        method: 'full',
        logger: pino({ level: 'silent' }),
        bandwidthLimitMb: limit || null,
      });
      // Only the first SECONDS: stop then, and measure bytes over the snapshot's own time.
      const timer = setTimeout(() => m.stop(), SECONDS * 1000);
      const started = Date.now();
      const result = await m.run().catch(() => m.progress());
      clearTimeout(timer);
      const elapsed = ((result.snapshot.finishedAt ?? Date.now()) - (result.snapshot.startedAt ?? started)) / 1000;
      const rate = result.snapshot.bytesRead / 1024 / 1024 / elapsed;
      rows.push([limit ? `${limit} MB/s` : 'none', `${rate.toFixed(2)} MB/s`, limit ? `${(((rate - limit) / limit) * 100).toFixed(1)}%` : '']);
      await target.stop();
    }
    process.stdout.write('\n| limit | achieved | deviation |\n|---|---|---|\n');
    for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
  } finally {
    await source.stop();
    await stopAll();
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack}\n`);
  process.exitCode = 1;
});
