/**
 * What the command line prints, as a new user sees it: one line per error, the JSON outcome
 * once, the summary, wording of the common mistakes, and imports that fail before writing.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startRedis, stopAll } from '../helpers/redis-server.js';
import { ferry } from '../helpers/run-cli.js';

const stderrLines = (s: string): string[] => s.trim().split('\n').filter((l) => l !== '');

describe('ferry: what the command line prints', () => {
  after(stopAll);

  it('a wrong password: one line on stderr, "authentication failed for source host:port"', async () => {
    const source = await startRedis({ password: 'right' });
    const target = await startRedis({ password: 'right-too' });
    try {
      // Passwords from the environment: one given on the command line adds a warning line.
      const run = await ferry(['migrate', '--source', source.addr, '--target', target.addr], { FERRY_SOURCE_PASSWORD: 'wrong', FERRY_TARGET_PASSWORD: 'right-too' });
      assert.equal(run.code, 1);
      assert.deepEqual(stderrLines(run.stderr).length, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`^ferry: authentication failed for source 127\\.0\\.0\\.1:${source.port}: WRONGPASS`));
      assert.ok(!run.stderr.includes('wrong') || !/password.*wrong/.test(run.stderr.replace('WRONGPASS', '')), 'the password is not shown');
      const noPw = await ferry(['migrate', '--source', source.addr, '--target', target.addr], { FERRY_SOURCE_PASSWORD: 'right' });
      assert.equal(noPw.code, 1);
      assert.equal(stderrLines(noPw.stderr).length, 1, noPw.stderr);
      assert.match(noPw.stderr, new RegExp(`^ferry: authentication failed for target 127\\.0\\.0\\.1:${target.port}: it requires a password`));
      // With --log-level the JSON log is there too.
      const logged = await ferry(['migrate', '--source', source.addr, '--target', target.addr, '--log-level', 'error'], { FERRY_SOURCE_PASSWORD: 'wrong' });
      assert.ok(stderrLines(logged.stderr).some((l) => l.startsWith('{') && l.includes('migration failed')), logged.stderr);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('--json prints its final line once, with the summary; the text mode ends with a summary', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      await source.client().mset('a', '1', 'b', '2');
      await source.client().rpush('l', 'x', 'y');
      await source.client().hset('h', 'f', 'v');
      const run = await ferry(['migrate', '--source', source.addr, '--target', target.addr, '--json']);
      assert.equal(run.code, 0, run.stderr);
      const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { phase: string; summary?: Record<string, unknown> });
      assert.equal(lines.filter((l) => l.phase === 'done').length, 1, run.stdout);
      const last = lines.at(-1)!;
      assert.equal(last.phase, 'done');
      assert.deepEqual(last.summary?.keysByType, { string: 2, list: 1, hash: 1 });
      assert.equal(last.summary?.keys, 4);
      assert.equal(last.summary?.refusedWrites, 0);
      for (const field of ['durationMs', 'snapshotBytes', 'bytesPerSecond', 'keysPerSecond', 'refusedByCode', 'reconnects', 'fullResyncs']) assert.ok(field in last.summary!, field);

      const text = await ferry(['migrate', '--source', source.addr, '--target', target.addr, '--target-conflict', 'replace']);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stderr, /^done: 4 keys \((hash 1, list 1, string 2|string 2, hash 1, list 1)\) in [\d.]+ s$/m);
      assert.match(text.stderr, /^ {2}snapshot: .* in [\d.]+ s, .*\/s, [\d,]+ keys\/s$/m);
      assert.match(text.stderr, /^ {2}refused writes: none$/m);
      assert.match(text.stderr, /^ {2}source link: 0 reconnects, 0 full resyncs$/m);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('refused writes are counted by code in the summary (exit 2)', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      await source.client().set('k', 'v');
      await target.client().config('SET', 'maxmemory', '1');
      await target.client().config('SET', 'maxmemory-policy', 'noeviction');
      const run = await ferry(['migrate', '--source', source.addr, '--target', target.addr, '--json']);
      assert.equal(run.code, 2, run.stderr);
      const last = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { summary: { refusedWrites: number; refusedByCode: Record<string, number> } };
      assert.equal(last.summary.refusedWrites, 1);
      assert.deepEqual(last.summary.refusedByCode, { OOM: 1 });
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('--lanes 0 and other bad numbers are refused before connecting', async () => {
    for (const lanes of ['0', '-1', '2.5', 'many', '65']) {
      const run = await ferry(['migrate', '--source', '127.0.0.1:1', '--target', '127.0.0.1:2', '--lanes', lanes]);
      assert.equal(run.code, 1);
      assert.equal(run.stderr.trim(), `ferry: invalid --lanes "${lanes}": an integer from 1 to 64`);
    }
  });

  it('import: a missing file is said in plain words; a truncated RDB fails before anything is written', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      const missing = await ferry(['import', path.join(source.dir, 'no-such.rdb'), '--target', target.addr]);
      assert.equal(missing.code, 1);
      assert.equal(stderrLines(missing.stderr).length, 1, missing.stderr);
      assert.match(missing.stderr, /^ferry: .*no-such\.rdb: no such file or directory\n$/);
      assert.doesNotMatch(missing.stderr, /ENOENT|stat/);

      const pipe = source.client().pipeline();
      for (let i = 0; i < 5000; i++) pipe.set(`key:${i}`, `value-${i}-${'x'.repeat(50)}`);
      await pipe.exec();
      await source.client().save();
      const whole = readFileSync(path.join(source.dir, 'dump.rdb'));
      const cut = path.join(source.dir, 'cut.rdb');
      writeFileSync(cut, whole.subarray(0, Math.floor(whole.length * 0.8)));
      const run = await ferry(['import', cut, '--target', target.addr]);
      assert.equal(run.code, 1);
      assert.match(stderrLines(run.stderr).at(-1)!, /^ferry: .*cut\.rdb/);
      assert.equal(await target.client().dbsize(), 0, 'nothing was written');
    } finally {
      await source.stop();
      await target.stop();
    }
  });
});
