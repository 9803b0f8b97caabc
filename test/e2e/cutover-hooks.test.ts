/**
 * The switch hook's contract (issue 14), on the engine's Cutover with real servers: a hook that
 * times out is killed with everything it started, and the switch is undone when nothing moved
 * but completed when writes reached the new side; a URL the address policy forbids is never
 * called.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { Cutover } from '../../src/engine/cutover.js';
import { runSwitchHook } from '../../src/engine/cutover-hook.js';
import { Migration } from '../../src/engine/migration.js';
import { makeAddressPolicy, setAddressPolicy } from '../../src/common/address-policy.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const logger = pino({ level: 'silent' });
const ep = (s: RedisServer) => [{ host: '127.0.0.1', port: s.port }];

function cutoverOf(source: RedisServer, target: RedisServer, lines: string[]): Cutover {
  return new Cutover({
    source: ep(source),
    target: ep(target),
    logger,
    log: (_l, _c, m) => lines.push(m),
    taskId: 'hooks',
    build: (d, extra) =>
      new Migration({ source: d === 'forward' ? ep(source) : ep(target), target: d === 'forward' ? ep(target) : ep(source), method: 'incremental', logger, targetConflict: 'replace', priorWrites: d === 'reverse', pollIntervalMs: 100, ...extra }),
  });
}

async function incremental(c: Cutover): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (c.progress().phase !== 'incremental' || c.progress().shards.some((s) => s.stream.lagBytes !== 0)) {
    if (Date.now() > deadline) assert.fail(`not in sync: ${JSON.stringify(c.progress().shards)}`);
    await sleep(50);
  }
}

describe('switch hooks', () => {
  after(stopAll);

  it('a hook that times out is killed with its children; nothing moved: undone, writes flow forward again', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-hooks-'));
    const lines: string[] = [];
    const c = cutoverOf(source, target, lines);
    const run = c.run();
    try {
      await source.client().set('a', '1');
      await incremental(c);
      const pidFile = path.join(dir, 'child.pid');
      const hook = path.join(dir, 'slow.sh');
      writeFileSync(hook, `#!/bin/sh\nsleep 30 &\necho $! > ${pidFile}\nwait\n`);
      chmodSync(hook, 0o755);
      const started = Date.now();
      const report = await c.switchOver({ action: 'exchange', hook: { command: hook, timeoutMs: 700 } });
      assert.equal(report.ok, false);
      assert.equal(report.hook?.timedOut, true);
      assert.match(report.error!, /hook failed \(timed out after 700 ms/);
      assert.ok(report.pauseMs! < 700 + 1000, `paused ${report.pauseMs} ms`);
      assert.ok(Date.now() - started < 5000);
      assert.equal(c.direction, 'forward');
      const child = Number(readFileSync(pidFile, 'utf8'));
      await sleep(100);
      // Gone, or a zombie waiting for whoever adopted it: not running any more.
      const state = existsSync(`/proc/${child}/stat`) ? readFileSync(`/proc/${child}/stat`, 'utf8').split(') ')[1]?.[0] : 'gone';
      assert.ok(state === 'gone' || state === 'Z', `the hook's own child was killed with it (state ${state})`);
      await source.client().set('b', '2');
      const deadline = Date.now() + 10_000;
      while ((await target.client().get('b')) !== '2') {
        if (Date.now() > deadline) assert.fail('the forward sync did not resume');
        await sleep(50);
      }
    } finally {
      c.stop();
      await run.catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      await source.stop();
      await target.stop();
    }
  });

  it('a hook that moved clients and then timed out: the switch completes (writes reached the new side) and the reverse sync carries them back', async () => {
    const source = await startRedis({ config: { 'repl-diskless-sync-delay': '0' } });
    const target = await startRedis();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-hooks-'));
    const lines: string[] = [];
    const c = cutoverOf(source, target, lines);
    const run = c.run();
    try {
      await source.client().set('a', '1');
      await incremental(c);
      // The hook "moves" a client (a write on the new side), then hangs.
      const hook = path.join(dir, 'hangs.sh');
      writeFileSync(hook, `#!/bin/sh\nexec sleep 30\n`);
      chmodSync(hook, 0o755);
      const moving = (async () => {
        await sleep(200);
        await target.client().set('moved-client', 'wrote-here');
      })();
      const report = await c.switchOver({ action: 'exchange', hook: { command: hook, timeoutMs: 800 } });
      await moving;
      assert.equal(report.ok, true, report.error ?? '');
      assert.equal(report.completedAfterTimeout, true);
      assert.equal(c.direction, 'reverse');
      assert.ok(lines.some((l) => /timed out, but writes have reached/.test(l)), lines.join('\n'));
      const deadline = Date.now() + 10_000;
      while ((await source.client().get('moved-client')) !== 'wrote-here') {
        if (Date.now() > deadline) assert.fail('the write made on the new side did not reach the source');
        await sleep(50);
      }
    } finally {
      c.stop();
      await run.catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      await source.stop();
      await target.stop();
    }
  });

  it('a URL hook outside the address policy is not called; a command gets only the FERRY_* environment and basics', async () => {
    let called = 0;
    const server = http.createServer((_req, res) => {
      called++;
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const ctx = { action: 'exchange' as const, taskId: 't', fromAddrs: 'a:1', toAddrs: 'b:2', exchangedIp: ['10.0.0.1', '10.0.0.2'], isExchangeDomain: true };
    try {
      setAddressPolicy(makeAddressPolicy({ mode: 'allow', allow: [`127.0.0.1/32:${port === 65535 ? 1 : port + 1}`], registered: [] }));
      const refused = await runSwitchHook({ url: `http://127.0.0.1:${port}/switch` }, ctx);
      assert.equal(refused.ok, false);
      assert.match(refused.detail, /not allowed by the service's address policy/);
      assert.equal(called, 0);
      setAddressPolicy(makeAddressPolicy({ mode: 'any', allow: [], registered: [] }));
      const allowed = await runSwitchHook({ url: `http://127.0.0.1:${port}/switch` }, ctx);
      assert.equal(allowed.ok, true, allowed.detail);
      assert.equal(called, 1);

      process.env.FERRY_SK = 'must-not-leak';
      const env = await runSwitchHook({ command: '/usr/bin/env' }, ctx);
      delete process.env.FERRY_SK;
      assert.equal(env.ok, true);
      const vars = Object.fromEntries(env.output.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      assert.equal(vars.FERRY_ACTION, 'exchange');
      assert.equal(vars.FERRY_FROM_ADDRS, 'a:1');
      assert.equal(vars.FERRY_TO_ADDRS, 'b:2');
      assert.equal(vars.FERRY_EXCHANGED_IP, '10.0.0.1,10.0.0.2');
      assert.equal(vars.FERRY_IS_EXCHANGE_DOMAIN, 'true');
      assert.equal(vars.FERRY_SK, undefined, 'the service environment is not passed on');
      assert.ok(Object.keys(vars).every((k) => k.startsWith('FERRY_') || ['PATH', 'HOME', 'LANG', 'TMPDIR', 'TZ'].includes(k)), Object.keys(vars).join(','));
      const missing = await runSwitchHook({ command: '/nonexistent/hook' }, ctx);
      assert.equal(missing.ok, false);
      assert.match(missing.detail, /could not start|ENOENT/);
      assert.ok(!existsSync('/nonexistent/hook'));
    } finally {
      server.close();
    }
  });
});
