import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { startCluster } from '../helpers/redis-cluster.js';
import { populateAllTypes } from '../helpers/dataset.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { compareClusters } from '../helpers/compare-cluster.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/cli.js');

function ferry(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function waitForAof(server: RedisServer): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const info = await server.client().info('persistence');
    if (/aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('ferry import and ferry verify', () => {
  after(stopAll);

  it('imports an RDB file, then verify says equal (exit 0) and finds a change (exit 3)', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      await populateAllTypes(source);
      await source.client().call('SAVE');
      const run = await ferry(['import', path.join(source.dir, 'dump.rdb'), '--target', target.addr]);
      assert.equal(run.code, 0, run.stderr);
      const diffs = await compareServers(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));
      const same = await ferry(['verify', '--source', source.addr, '--target', target.addr]);
      assert.equal(same.code, 0, same.stdout + same.stderr);
      assert.match(same.stdout, /^equal: /);
      await target.client(1).set('str:plain', 'tampered');
      const differs = await ferry(['verify', '--source', source.addr, '--target', target.addr, '--json']);
      assert.equal(differs.code, 3);
      const report = JSON.parse(differs.stdout) as { equal: boolean; differences: { key: string; kind: string }[] };
      assert.equal(report.equal, false);
      assert.ok(report.differences.some((d) => d.key === 'str:plain'), differs.stdout);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('imports a multi-part AOF directory and a tar.gz of it, into standalone and cluster targets', async () => {
    const source = await startRedis({ config: { appendonly: 'yes', appendfsync: 'always', 'aof-use-rdb-preamble': 'yes' } });
    const target = await startRedis();
    const cluster = await startCluster({ masters: 3 });
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'ferry-aof-'));
    try {
      const c = source.client();
      for (let i = 0; i < 200; i++) await c.set(`before:${i}`, String(i));
      await c.call('BGREWRITEAOF');
      await waitForAof(source);
      for (let i = 0; i < 100; i++) {
        await c.incr(`after:${i % 7}`);
        await c.rpush(`list:${i % 3}`, `e${i}`);
      }
      await c.multi().set('tx:a', '1').set('tx:b', '2').exec();
      const dir = path.join(source.dir, 'appendonlydir');
      const standalone = await ferry(['import', dir, '--target', target.addr]);
      assert.equal(standalone.code, 0, standalone.stderr);
      const diffs = await compareServers(source, target);
      assert.equal(diffs.length, 0, formatDifferences(diffs));

      const archive = path.join(tmp, 'backup.tar.gz');
      execFileSync('tar', ['czf', archive, '-C', source.dir, 'appendonlydir']);
      const intoCluster = await ferry(['import', archive, '--target', cluster.addrs]);
      assert.equal(intoCluster.code, 0, intoCluster.stderr);
      const clusterDiffs = await compareClusters(source, cluster);
      assert.equal(clusterDiffs.length, 0, formatDifferences(clusterDiffs));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      await source.stop();
      await target.stop();
      await cluster.stop();
    }
  });

  it('refuses a corrupt or unknown file before writing anything', async () => {
    const target = await startRedis();
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'ferry-bad-'));
    try {
      const bad = path.join(tmp, 'notes.txt');
      execFileSync('sh', ['-c', `printf 'hello world' > ${bad}`]);
      const run = await ferry(['import', bad, '--target', target.addr]);
      assert.equal(run.code, 1);
      assert.match(run.stderr, /ferry: .*notes\.txt/);
      assert.equal(await target.client().dbsize(), 0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      await target.stop();
    }
  });
});
