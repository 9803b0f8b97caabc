/**
 * Cluster-to-cluster full sync: Ferry (3 source masters → 3 target masters) against native
 * replication of the same data shard by shard (one fresh replica per source master, all at
 * once), in the same run.
 *
 *   npm run bench:cluster                      # 600,000 keys
 *   BENCH_KEYS=100000 npm run bench:cluster
 */
import { slotOf } from '../src/common/slots.js';
import { RedisConnection } from '../src/resp/connection.js';
import { startRedis, stopAll } from '../test/helpers/redis-server.js';
import { startCluster } from '../test/helpers/redis-cluster.js';
import { discoverDeployment, slotMapOf } from '../src/cluster/topology.js';
import { ferryFull, loadMixedKeys, nativeReplication } from './common.js';

const KEYS = Number(process.env.BENCH_KEYS ?? 600_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);

async function main(): Promise<void> {
  const config = { 'repl-diskless-sync': 'yes', 'repl-diskless-sync-delay': '0' };
  const source = await startCluster({ masters: 3, config });
  try {
    const masters = await source.masters();
    // Route each key to its slot's master ourselves, from the cluster's own slot map.
    const deployment = await discoverDeployment([{ host: masters[0]!.host, port: masters[0]!.port }]);
    if (deployment.kind !== 'cluster') throw new Error('the source is not a cluster');
    const owner = slotMapOf(deployment.shards);
    const connections = await Promise.all(deployment.shards.map((s) => RedisConnection.connect({ host: s.master.host, port: s.master.port })));
    process.stdout.write(`loading ${KEYS.toLocaleString('en-US')} mixed keys into a 3-master cluster...\n`);
    await loadMixedKeys(KEYS, async (key) => connections[owner[slotOf(Buffer.from(key))]!]!);
    for (const c of connections) c.destroy('loaded');

    const ferryTimes: number[] = [];
    const nativeTimes: number[] = [];
    let peakRssMb = 0;
    for (let i = 0; i < RUNS; i++) {
      const target = await startCluster({ masters: 3 });
      const run = await ferryFull(source.addrs, target.addrs);
      const copied = (await Promise.all((await target.masters()).map((m) => m.client().dbsize()))).reduce((a, b) => a + b, 0);
      await target.stop();
      if (copied !== KEYS) throw new Error(`target holds ${copied} keys, expected ${KEYS}`);
      process.stdout.write(`ferry run ${i + 1}: ${run.seconds.toFixed(2)} s, peak RSS ${run.peakRssMb.toFixed(0)} MB\n`);
      ferryTimes.push(run.seconds);
      peakRssMb = Math.max(peakRssMb, run.peakRssMb);

      const replicas = await Promise.all(masters.map(() => startRedis()));
      const started = Date.now();
      await Promise.all(masters.map((m, j) => nativeReplication(m, replicas[j]!)));
      const seconds = (Date.now() - started) / 1000;
      await Promise.all(replicas.map((r) => r.stop()));
      process.stdout.write(`native run ${i + 1}: ${seconds.toFixed(2)} s\n`);
      nativeTimes.push(seconds);
    }
    const best = (xs: number[]): number => Math.min(...xs);
    const med = (xs: number[]): number => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    const rows = [
      ['keys in the source cluster (3 masters)', KEYS.toLocaleString('en-US')],
      [`(a) Ferry cluster → cluster full migration, best / median of ${RUNS}`, `${best(ferryTimes).toFixed(2)} s / ${med(ferryTimes).toFixed(2)} s`],
      [`(b) native replication, one replica per source master, concurrently, best / median of ${RUNS}`, `${best(nativeTimes).toFixed(2)} s / ${med(nativeTimes).toFixed(2)} s`],
      ['ratio Ferry / native (best / median)', `${(best(ferryTimes) / best(nativeTimes)).toFixed(2)} / ${(med(ferryTimes) / med(nativeTimes)).toFixed(2)}`],
      ['Ferry peak RSS (worst run)', `${peakRssMb.toFixed(0)} MB`],
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
