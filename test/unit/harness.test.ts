/**
 * Tests of the test harness itself: real servers start and stop cleanly, the dataset builds what
 * it claims, and compareServers finds no difference in a faithful copy and each kind of
 * difference in a damaged one. The copy is a plain DUMP/RESTORE (not Ferry), so a failure here
 * is a harness bug, not a migration bug.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { compareServers, formatDifferences, type Difference } from '../helpers/compare.js';
import { applyLiveWrites, populateAllTypes, populateBigKeys, type PopulateReport } from '../helpers/dataset.js';
import {
  closedPort,
  rdbVersionFor,
  redisServerVersion,
  skipUnless,
  startRedis,
  type RedisServer,
} from '../helpers/redis-server.js';

/** Every db with keys, per INFO keyspace. */
async function dbsWithKeys(s: RedisServer): Promise<number[]> {
  const info = await s.client(0).info('keyspace');
  return [...info.matchAll(/^db(\d+):/gm)].map((m) => Number(m[1]));
}

/** FLUSHALL the target, then DUMP/RESTORE every key (with its TTL) and the functions into it. */
async function copyServer(src: RedisServer, dst: RedisServer): Promise<void> {
  await dst.client(0).flushall();
  for (const db of await dbsWithKeys(src)) {
    const sc = src.client(db);
    const dc = dst.client(db);
    let cursor = '0';
    do {
      const [next, keys] = await sc.scanBuffer(cursor, 'COUNT', 500);
      cursor = next.toString();
      for (const key of keys) {
        const [dump, pttl] = await Promise.all([sc.dumpBuffer(key), sc.pttl(key)]);
        if (dump === null) continue;
        await dc.restore(key, pttl > 0 ? pttl : 0, dump, 'REPLACE');
      }
    } while (cursor !== '0');
  }
  if (src.features.functions && dst.features.functions) {
    await dst.client(0).call('FUNCTION', 'FLUSH');
    const payload = (await src.client(0).callBuffer('FUNCTION', 'DUMP')) as Buffer;
    await dst.client(0).call('FUNCTION', 'RESTORE', payload);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

function assertNoDiffs(diffs: Difference[]): void {
  assert.equal(diffs.length, 0, formatDifferences(diffs));
}

function assertFound(diffs: Difference[], want: Partial<Difference>, note: string): void {
  const hit = diffs.find((d) => Object.entries(want).every(([k, v]) => d[k as keyof Difference] === v));
  assert.ok(hit, `${note}: expected ${JSON.stringify(want)} among ${formatDifferences(diffs)}`);
}

describe('redis-server helper', () => {
  let auth: RedisServer;
  const extra: Redis[] = [];

  before(async () => {
    const v = redisServerVersion();
    auth = await startRedis({
      password: 'p@ss "word"',
      aclUsers: [{ name: 'ferry', password: 'ferry pw', rules: v[0] > 6 || (v[0] === 6 && v[1] >= 2) ? '+@all ~* &*' : '+@all ~*' }],
    });
  });

  after(async () => {
    for (const c of extra) c.disconnect();
    await auth?.stop();
  });

  it('reports the version and RDB version of the binary', () => {
    assert.deepEqual(auth.version, redisServerVersion());
    assert.equal(auth.rdbVersion, rdbVersionFor(auth.version));
    assert.equal(auth.addr, `127.0.0.1:${auth.port}`);
    const table: [number[], number][] = [
      [[2, 2, 0], 1], [[2, 4, 0], 2], [[2, 6, 0], 6], [[3, 0, 7], 6], [[3, 2, 0], 7], [[4, 0, 14], 8],
      [[5, 0, 0], 9], [[6, 2, 14], 9], [[7, 0, 15], 10], [[7, 2, 5], 11], [[7, 4, 0], 12],
      [[8, 0, 2], 12], [[8, 4, 0], 12], [[8, 6, 0], 13],
    ];
    for (const [v, rdb] of table) assert.equal(rdbVersionFor(v), rdb, `redis ${v.join('.')}`);
  });

  it('authenticates the default user with the password and accepts the ACL user', async () => {
    assert.equal(await auth.client().ping(), 'PONG');
    const anon = new Redis({ host: '127.0.0.1', port: auth.port, enableReadyCheck: false, maxRetriesPerRequest: 0 });
    anon.on('error', () => {});
    extra.push(anon);
    await assert.rejects(anon.set('x', '1'), /NOAUTH|Authentication required/);
    const user = new Redis({ host: '127.0.0.1', port: auth.port, username: 'ferry', password: 'ferry pw', maxRetriesPerRequest: 0 });
    user.on('error', () => {});
    extra.push(user);
    assert.equal(await user.call('ACL', 'WHOAMI'), 'ferry');
  });

  it('fails fast with the log tail when the config is bad', async () => {
    await assert.rejects(startRedis({ config: { 'no-such-directive': 'yes' } }), /exited during startup[\s\S]*no-such-directive/);
  });

  it('gives a closed port that refuses connections', async () => {
    assert.ok(await refused(await closedPort()));
  });

  it('leaves no process, port or directory behind after stop()', async () => {
    const s = await startRedis();
    await s.client(3).set('k', 'v');
    const { pid, port, dir } = s;
    assert.ok(processAlive(pid));
    assert.ok(existsSync(dir));
    await s.stop();
    await s.stop(); // idempotent
    assert.equal(processAlive(pid), false, `redis pid ${pid} still alive`);
    assert.equal(existsSync(dir), false, `${dir} still exists`);
    assert.ok(await refused(port));
    assert.throws(() => s.client(), /stopped/);
  });

});

describe('dataset and compareServers', () => {
  let source: RedisServer;
  let target: RedisServer;
  let report: PopulateReport;

  before(async () => {
    [source, target] = await Promise.all([startRedis(), startRedis()]);
    report = await populateAllTypes(source);
  });

  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  /** Every test starts from a fresh faithful copy, so the tests do not depend on their order. */
  async function freshCopy(): Promise<void> {
    await copyServer(source, target);
  }

  it('builds every type in the expected encodings', async () => {
    assert.deepEqual(report.mismatches, [], report.mismatches.join('\n'));
    const encodings = new Set(Object.values(report.encodings));
    for (const e of ['int', 'embstr', 'raw', 'quicklist', 'intset', 'hashtable', 'skiplist', 'stream']) {
      assert.ok(encodings.has(e), `no ${e} key`);
    }
    assert.ok(encodings.has(source.features.listpackConfigNames ? 'listpack' : 'ziplist'));
    if (source.features.hashFieldTtl) assert.ok(encodings.has('listpackex'));
    for (const db of [0, 1, 15]) assert.equal(await source.client(db).dbsize(), report.keys / 3, `db ${db} is populated`);
    assert.ok(report.keys / 3 >= 35, `only ${report.keys / 3} keys per db`);
    // the dataset restored the thresholds it lowered: the source has the untouched target's values
    const n = source.features.listpackConfigNames ? 'listpack' : 'ziplist';
    for (const name of [`hash-max-${n}-entries`, `zset-max-${n}-entries`, 'set-max-intset-entries', 'list-compress-depth']) {
      assert.deepEqual(await source.client().config('GET', name), await target.client().config('GET', name), name);
    }
  });

  it('finds no difference in a DUMP/RESTORE copy', async () => {
    await freshCopy();
    assertNoDiffs(await compareServers(source, target));
    assertNoDiffs(await compareServers(target, source));
  });

  it('finds a missing key (binary name)', async () => {
    await freshCopy();
    const key = Buffer.from('bin:\r\n\0\xff', 'latin1');
    const [, keys] = await target.client(1).scanBuffer('0', 'MATCH', 'bin:*', 'COUNT', 10_000);
    const victim = keys.find((k) => k.subarray(0, key.length).equals(key));
    assert.ok(victim, 'binary key present');
    await target.client(1).del(victim);
    const diffs = await compareServers(source, target);
    assert.equal(diffs.length, 1, formatDifferences(diffs));
    assertFound(diffs, { db: 1, kind: 'missing' }, 'missing key');
    assert.match(diffs[0]?.key ?? '', /^bin:\\r\\n\\x00\\xff/);
  });

  it('finds an extra key, also in a db the source does not use', async () => {
    await freshCopy();
    await target.client(15).set('only-on-target', '1');
    await target.client(7).set('db7-only-on-target', '1');
    const diffs = await compareServers(source, target);
    assertFound(diffs, { db: 15, key: 'only-on-target', kind: 'extra' }, 'extra key');
    assertFound(diffs, { db: 7, key: 'db7-only-on-target', kind: 'extra' }, 'extra key in extra db');
    assert.equal(diffs.length, 2, formatDifferences(diffs));
  });

  it('finds a type difference', async () => {
    await freshCopy();
    await target.client(0).del('str:int');
    await target.client(0).rpush('str:int', '12345');
    assertFound(await compareServers(source, target), { key: 'str:int', kind: 'type' }, 'type');
  });

  it('finds a changed hash field', async () => {
    await freshCopy();
    await target.client(0).hset('hash:hashtable', 'f3', 'changed');
    const diffs = await compareServers(source, target);
    assert.equal(diffs.length, 1, formatDifferences(diffs));
    assertFound(diffs, { db: 0, key: 'hash:hashtable', kind: 'value' }, 'hash field');
  });

  it('finds a reordered list', async () => {
    await freshCopy();
    const c = target.client(15);
    const [x, y] = await Promise.all([c.lindex('list:quicklist', 1), c.lindex('list:quicklist', 2)]);
    await c.lset('list:quicklist', 1, y ?? '');
    await c.lset('list:quicklist', 2, x ?? '');
    const diffs = await compareServers(source, target);
    assert.equal(diffs.length, 1, formatDifferences(diffs));
    assertFound(diffs, { db: 15, key: 'list:quicklist', kind: 'value' }, 'list order');
    assert.match(diffs[0]?.detail ?? '', /element 1/);
  });

  it('finds a zset score off by 1e-9', async () => {
    await freshCopy();
    // score 1 + 1e-9 is representable (1e-9 >> 2^-52); -2.5e300 + 1e-9 would not be
    const c = target.client(0);
    const [member] = await c.zrangebyscore('zset:skiplist', 1, 1);
    assert.ok(member);
    await c.zincrby('zset:skiplist', '1e-9', member);
    assertFound(await compareServers(source, target), { key: 'zset:skiplist', kind: 'value' }, 'zset score');
  });

  it('finds a TTL off by 10 s and a lost TTL', async () => {
    await freshCopy();
    const c = target.client(0);
    await c.pexpire('ttl:1d', (await c.pttl('ttl:1d')) + 10_000);
    await c.persist('ttl:1h');
    const diffs = await compareServers(source, target);
    assertFound(diffs, { key: 'ttl:1d', kind: 'ttl' }, 'TTL +10 s');
    assertFound(diffs, { key: 'ttl:1h', kind: 'ttl' }, 'TTL removed');
    assert.equal(diffs.length, 2, formatDifferences(diffs));
    // and a TTL within tolerance is fine
    await freshCopy();
    await c.pexpire('ttl:1d', (await c.pttl('ttl:1d')) + 500);
    assertNoDiffs(await compareServers(source, target));
  });

  it('finds a missing pending entry (XACK)', async () => {
    await freshCopy();
    const c = target.client(0);
    const pending = (await c.xpending('stream', 'g1', '-', '+', 10)) as [string, string, number, number][];
    const first = pending[0];
    assert.ok(first, 'stream has pending entries');
    await c.xack('stream', 'g1', first[0]);
    const diffs = await compareServers(source, target);
    assertFound(diffs, { key: 'stream', kind: 'value' }, 'pending entry');
    assert.ok(diffs.some((d) => d.detail.includes(first[0])), formatDifferences(diffs));
  });

  it('finds stream group and entry differences', async () => {
    await freshCopy();
    const c = target.client(1);
    await c.xgroup('SETID', 'stream', 'g2', '$');
    await c.xadd('stream:drained', '*', 'new', 'entry');
    const diffs = await compareServers(source, target);
    assertFound(diffs, { db: 1, key: 'stream', kind: 'value' }, 'group last-delivered-id');
    assertFound(diffs, { db: 1, key: 'stream:drained', kind: 'value' }, 'stream entry');
  });

  it('finds a differing function library (7.0+)', async (t) => {
    if (skipUnless(t, source.features.functions, `FUNCTION needs Redis 7.0+, server is ${source.version.join('.')}`)) return;
    await freshCopy();
    await target.client().call('FUNCTION', 'DELETE', 'ferrylib');
    const diffs = await compareServers(source, target);
    assert.equal(diffs.length, 1, formatDifferences(diffs));
    assertFound(diffs, { key: 'ferrylib', kind: 'function' }, 'function');
  });

  it('finds a hash-field TTL difference (7.4+)', async (t) => {
    if (skipUnless(t, source.features.hashFieldTtl, `hash-field TTLs need Redis 7.4+, server is ${source.version.join('.')}`)) return;
    await freshCopy();
    await target.client(0).call('HPERSIST', 'hash:fttl:hashtable', 'FIELDS', '1', 'f0');
    assertFound(await compareServers(source, target), { key: 'hash:fttl:hashtable', kind: 'ttl' }, 'field TTL');
  });

  it('honours dbMap and dbs', async () => {
    await freshCopy();
    // move target db 15 to db 3: with dbMap {15: 3} it is equal again
    const c = target.client(15);
    await c.swapdb(15, 3);
    assert.ok((await compareServers(source, target)).length > 0);
    assertNoDiffs(await compareServers(source, target, { dbMap: { 15: 3 } }));
    assertNoDiffs(await compareServers(source, target, { dbs: [0, 1] }));
  });
});

describe('live writes and big keys', () => {
  let source: RedisServer;
  let target: RedisServer;

  before(async () => {
    [source, target] = await Promise.all([startRedis(), startRedis()]);
  });

  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it('applyLiveWrites is bounded, writes every op kind into dbs 0, 1, 15, and copies equal', async () => {
    await source.client(0).flushall();
    const r = await applyLiveWrites(source, { ops: 3000 });
    assert.equal(r.total, 3000);
    for (const op of ['incr', 'incrbyfloat', 'append', 'lpush', 'rpop', 'hincrby', 'sadd', 'srem', 'zincrby', 'xadd',
      'expire', 'pexpire', 'setex', 'del', 'multi', 'eval', 'select']) {
      assert.ok((r.byOp[op] ?? 0) > 0, `no ${op}`);
    }
    assert.deepEqual((await dbsWithKeys(source)).sort((a, b) => a - b), [0, 1, 15]);
    const timed = await applyLiveWrites(source, { durationMs: 300, prefix: 'timed:' });
    assert.ok(timed.elapsedMs < 2000 && timed.total > 0);
    await copyServer(source, target);
    assertNoDiffs(await compareServers(source, target));
  });

  it('compares the big keys in reasonable time and finds a change at their end', async () => {
    await source.client(0).flushall();
    const t0 = Date.now();
    const names = await populateBigKeys(source);
    const loaded = Date.now();
    assert.equal(await source.client().llen(names.list), 1_000_000);
    assert.equal(await source.client().strlen(names.string), 20 * 1024 * 1024);
    await copyServer(source, target);
    const t1 = Date.now();
    assertNoDiffs(await compareServers(source, target));
    const compared = Date.now() - t1;
    // the zset and set passed above; dropping them halves the second compare
    await Promise.all([source, target].map((s) => s.client().del(names.zset, names.set)));
    await target.client().lset(names.list, -1, 'changed');
    const last = (await target.client().getrangeBuffer(names.string, -1, -1))[0] ?? 0;
    await target.client().setrange(names.string, 20 * 1024 * 1024 - 1, Buffer.from([last ^ 0xff]));
    await target.client().hset(names.hash, 'field:199999', 'changed');
    const diffs = await compareServers(source, target);
    assertFound(diffs, { key: names.list, kind: 'value' }, 'last list element');
    assertFound(diffs, { key: names.string, kind: 'value' }, 'last string byte');
    assertFound(diffs, { key: names.hash, kind: 'value' }, 'last hash field');
    assert.equal(diffs.length, 3, formatDifferences(diffs));
    assert.ok(compared < 30_000, `compare took ${compared} ms`);
    console.log(`big keys: load ${loaded - t0} ms, compare ${compared} ms`);
  });
});

/**
 * The registry is checked in child processes, because stopAll() and dying take down every server
 * of the process: here that is only the child's own servers.
 */
// independent child processes: concurrently, to keep the file fast
describe('process-wide cleanup', { concurrency: true }, () => {
  const helperUrl = new URL('../helpers/redis-server.ts', import.meta.url).href;

  interface ChildRun {
    pids: number[];
    dirs: string[];
    code: number | null;
    signal: NodeJS.Signals | null;
    stderr: string;
  }

  /** Starts two servers in a child process, then ends it the way `mode` says. */
  function runChild(mode: 'stopAll' | 'throw' | 'sigterm' | 'sigkill' | 'forgot'): Promise<ChildRun> {
    const code = `
      import { startRedis, stopAll } from ${JSON.stringify(helperUrl)};
      const servers = [await startRedis(), await startRedis()];
      await servers[0].client().set('k', 'v');
      servers[0].client().disconnect();
      console.log(JSON.stringify({ pids: servers.map((s) => s.pid), dirs: servers.map((s) => s.dir) }));
      const mode = ${JSON.stringify(mode)};
      if (mode === 'stopAll') await stopAll();
      if (mode === 'throw') setTimeout(() => { throw new Error('boom'); }, 10);
      if (mode === 'sigterm') process.kill(process.pid, 'SIGTERM');
      if (mode === 'sigkill') process.kill(process.pid, 'SIGKILL');
      if (mode === 'sigterm' || mode === 'sigkill') setTimeout(() => {}, 5000);
    `;
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (!line) return reject(new Error(`child printed no pids (code ${code}, signal ${signal}): ${err}`));
        const { pids, dirs } = JSON.parse(line) as { pids: number[]; dirs: string[] };
        resolve({ pids, dirs, code, signal, stderr: err });
      });
    });
  }

  /** Polls: a SIGKILLed server stays visible to kill(pid, 0) until init has reaped it. */
  async function assertGone(run: ChildRun, waitMs = 3000): Promise<void> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const alive = run.pids.filter(processAlive);
      const dirs = run.dirs.filter((d) => existsSync(d));
      if (alive.length === 0 && dirs.length === 0) return;
      if (Date.now() > deadline) {
        assert.fail(`left behind: pids ${alive.join(',')} dirs ${dirs.join(',')} (child: ${run.code ?? run.signal}) ${run.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('stopAll() stops every server of the process', async () => {
    const run = await runChild('stopAll');
    assert.equal(run.code, 0, run.stderr);
    await assertGone(run);
  });

  it('kills the servers when the process ends without stopping them', async () => {
    const run = await runChild('forgot');
    assert.equal(run.code, 0, run.stderr);
    await assertGone(run);
  });

  it('kills the servers on an uncaught exception', async () => {
    const run = await runChild('throw');
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /boom/);
    await assertGone(run);
  });

  it('kills the servers on SIGTERM', async () => {
    const run = await runChild('sigterm');
    assert.equal(run.code, 128 + 15);
    await assertGone(run);
  });

  it('kills the servers even on SIGKILL (watchdog)', async () => {
    const run = await runChild('sigkill');
    assert.equal(run.signal, 'SIGKILL');
    await assertGone(run, 5000);
  });
});
