import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { closedPort, startRedis, stopAll } from '../helpers/redis-server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/cli.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function ferry(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ferry ${args.join(' ')} timed out\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('ferry migrate (command line)', () => {
  after(stopAll);

  it('runs a full migration with --json and exits 0', async () => {
    const source = await startRedis({ password: 'pw-source' });
    const target = await startRedis();
    try {
      await source.client().mset('a', '1', 'b', '2');
      await source.client(2).set('c', '3');
      const run = await ferry(['migrate', '--source', source.addr, '--target', target.addr, '--method', 'full_amount_migration', '--json'], {
        FERRY_SOURCE_PASSWORD: 'pw-source',
      });
      assert.equal(run.code, 0, run.stderr);
      const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { phase: string; snapshot: { keys: number } });
      const last = lines.at(-1)!;
      assert.equal(last.phase, 'done');
      assert.equal(last.snapshot.keys, 3);
      assert.equal(await target.client(2).get('c'), '3');
      assert.ok(!run.stdout.includes('pw-source') && !run.stderr.includes('pw-source'), 'the password never appears');
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('runs an incremental migration with --until-synced and exits 0', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      await source.client().set('k', 'v');
      const run = await ferry(['migrate', '--source', `redis://${source.addr}`, '--target', target.addr, '--method', 'incremental', '--until-synced']);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(await target.client().get('k'), 'v');
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('stops an incremental migration cleanly on SIGINT and exits 0', async () => {
    const source = await startRedis();
    const target = await startRedis();
    try {
      await source.client().set('k', 'v');
      const child = spawn(process.execPath, [cli, 'migrate', '--source', source.addr, '--target', target.addr, '--method', 'incremental', '--json'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const deadline = Date.now() + 20_000;
      while (!stdout.includes('"phase":"incremental"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await source.client().set('later', 'write');
      for (let i = 0; i < 50 && (await target.client().get('later')) !== 'write'; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(await target.client().get('later'), 'write', 'a write after the snapshot arrives within seconds');
      child.kill('SIGINT');
      assert.equal(await exited, 0);
      assert.match(stdout.trim().split('\n').at(-1)!, /"phase":"stopped"/);
    } finally {
      await source.stop();
      await target.stop();
    }
  });

  it('exits non-zero with a one-line reason when the source is unreachable', async () => {
    const target = await startRedis();
    try {
      const port = await closedPort();
      const run = await ferry(['migrate', '--source', `127.0.0.1:${port}`, '--target', target.addr]);
      assert.equal(run.code, 1);
      assert.match(run.stderr, new RegExp(`ferry: .*127\\.0\\.0\\.1:${port}.*ECONNREFUSED`));
    } finally {
      await target.stop();
    }
  });

  it('rejects a bad --method and a bad address with a clear message', async () => {
    const bad = await ferry(['migrate', '--source', '127.0.0.1:1', '--target', '127.0.0.1:2', '--method', 'sideways']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid --method "sideways"/);
    const addr = await ferry(['migrate', '--source', 'nonsense', '--target', '127.0.0.1:2']);
    assert.equal(addr.code, 1);
    assert.match(addr.stderr, /invalid address "nonsense"/);
  });
});
