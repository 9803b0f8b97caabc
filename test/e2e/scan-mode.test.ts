/**
 * Scan mode: sources that refuse SYNC/PSYNC (started here with `rename-command SYNC ""` and
 * `rename-command PSYNC ""`, as managed services do) are copied with SCAN + DUMP and followed
 * through keyspace notifications, with verify-and-repair rounds until nothing differs.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { Migration, type MigrationOptions } from '../../src/engine/migration.js';
import type { MigrationProgress } from '../../src/engine/stats.js';
import { startRedis, stopAll, type RedisServer, type StartOptions } from '../helpers/redis-server.js';
import { populateAllTypes, populateBigKeys } from '../helpers/dataset.js';
import { compareServers, formatDifferences } from '../helpers/compare.js';
import { mixedLoad } from '../helpers/scan-load.js';

/** A source as managed services offer it: replication commands renamed away. */
const NO_SYNC: StartOptions['config'] = { 'rename-command SYNC': '""', 'rename-command PSYNC': '""' };

/** A logger that keeps its lines (and prints them when FERRY_TEST_LOG is set). */
function recordingLogger(): { logger: Logger; lines: { level: number; msg: string; reason?: string }[] } {
  const lines: { level: number; msg: string; reason?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
      if (process.env.FERRY_TEST_LOG) process.stderr.write(chunk);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

function endpoint(s: RedisServer) {
  return { host: s.host, port: s.port };
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function assertSame(source: RedisServer, target: RedisServer): Promise<void> {
  const diffs = await compareServers(source, target);
  assert.equal(diffs.length, 0, `target differs from source:\n${formatDifferences(diffs)}`);
}

describe('scan mode (sources that refuse SYNC/PSYNC)', () => {
  after(stopAll);

  it('auto mode falls back to scan on a source refusing PSYNC, says why, and copies the mixed dataset and big keys exactly', async () => {
    const source = await startRedis({ config: NO_SYNC });
    const target = await startRedis();
    try {
      await populateAllTypes(source);
      await populateBigKeys(source, { listElements: 20_000, stringBytes: 3 * 1024 * 1024, collectionSize: 20_000, db: 2 });
      const { logger, lines } = recordingLogger();
      const result = await new Migration({ source: endpoint(source), target: endpoint(target), method: 'full', logger, maxPayloadBytes: 256 * 1024 }).run();
      assert.equal(result.phase, 'done');
      assert.equal(result.errors.count, 0, JSON.stringify(result.errors.recent));
      assert.equal(result.sourceMode?.mode, 'scan');
      assert.match(result.sourceMode?.reason ?? '', /refused PSYNC: ERR unknown command/);
      const fallback = lines.find((l) => /falling back to scan mode/.test(l.msg));
      assert.ok(fallback, 'the fallback is logged');
      assert.match(fallback.reason ?? '', /PSYNC/);
      const shard = result.shards[0]!;
      assert.equal(shard.mode, 'scan');
      assert.ok((shard.scan?.keysScanned ?? 0) >= 100, `scanned ${shard.scan?.keysScanned}`);
      assert.ok((shard.scan?.keysChunked ?? 0) >= 4, `big keys read with type commands: ${shard.scan?.keysChunked}`);
      assert.ok(result.snapshot.functions >= 1, 'function libraries copied');
      await assertSame(source, target);
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
