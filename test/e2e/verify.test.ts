/**
 * verifyDeployments against real servers: copies made with DUMP/RESTORE must verify as equal,
 * and each injected difference must be found with the right kind (and nothing else).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Cluster, Redis } from 'ioredis';
import { parseEndpoint, type Endpoint } from '../../src/common/endpoint.js';
import { DbMapper } from '../../src/engine/db-map.js';
import { RedisConnection } from '../../src/resp/connection.js';
import { verifyDeployments, type Difference, type VerifyOptions, type VerifyReport } from '../../src/verify/index.js';
import { compareKeyPair } from '../../src/verify/compare-key.js';
import { Semaphore } from '../../src/verify/pool.js';
import { Conn } from '../../src/verify/sides.js';
import { startRedis, stopAll, type RedisServer } from '../helpers/redis-server.js';
import { startCluster, type RedisCluster } from '../helpers/redis-cluster.js';
import { populateAllTypes, populateBigKeys } from '../helpers/dataset.js';

type Side = RedisServer | RedisCluster;

function endpoints(side: Side): Endpoint[] {
  const addrs = 'nodes' in side ? side.addrs : side.addr;
  return addrs.split(',').map((a) => parseEndpoint(a, side.password !== undefined ? { password: side.password } : {}));
}

function verify(source: Side, target: Side, extra: Partial<VerifyOptions> = {}): Promise<VerifyReport> {
  return verifyDeployments({ source: endpoints(source), target: endpoints(target), roundDelayMs: 200, ...extra });
}

function describeReport(r: VerifyReport): string {
  return `${JSON.stringify(r.counts)}\n${r.differences.map((d) => `  db${d.db} ${d.kind} ${d.key}: ${d.detail}`).join('\n')}`;
}

function assertEqual(r: VerifyReport): void {
  assert.equal(r.equal, true, `expected no differences, got:\n${describeReport(r)}`);
}

function findDiff(r: VerifyReport, db: number, key: string, kind: Difference['kind']): Difference {
  const d = r.differences.find((x) => x.db === db && x.key === key && x.kind === kind);
  assert.ok(d, `no ${kind} difference for db${db} ${key} in:\n${describeReport(r)}`);
  return d;
}

async function dbsWithKeys(c: Redis): Promise<number[]> {
  const info = await c.info('keyspace');
  return [...info.matchAll(/^db(\d+):keys=/gm)].map((m) => Number(m[1]));
}

/** Copies one db with DUMP/PTTL/RESTORE, renaming with `prefix`. */
async function copyDb(from: Redis, to: Redis | Cluster, prefix = ''): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await from.scanBuffer(cursor, 'COUNT', 500);
    cursor = next.toString();
    await Promise.all(
      keys.map(async (key) => {
        const [payload, pttl] = await Promise.all([from.dumpBuffer(key), from.pttl(key)]);
        if (payload === null) return;
        await to.restore(Buffer.concat([Buffer.from(prefix), key]), pttl > 0 ? pttl : 0, payload, 'REPLACE');
        n++;
      }),
    );
  } while (cursor !== '0');
  return n;
}

/** Function libraries of `from` onto every master of `to`. */
async function copyFunctions(from: RedisServer, to: Side): Promise<void> {
  if (!from.features.functions) return;
  const dump = (await from.client().callBuffer('FUNCTION', 'DUMP')) as Buffer;
  const masters = 'nodes' in to ? await to.masters() : [to];
  await Promise.all(masters.map((m) => m.client().call('FUNCTION', 'RESTORE', dump, 'REPLACE')));
}

/** An exact copy of every db of a standalone server onto another standalone server. */
async function copyServer(from: RedisServer, to: RedisServer): Promise<void> {
  for (const db of await dbsWithKeys(from.client())) await copyDb(from.client(db), to.client(db));
  await copyFunctions(from, to);
}

type Resp = string | Resp[];

/** RESP2 encoding of nested arrays of bulk strings. */
function resp(v: Resp): string {
  if (typeof v === 'string') return `$${Buffer.byteLength(v)}\r\n${v}\r\n`;
  return `*${v.length}\r\n${v.map(resp).join('')}`;
}

/**
 * A loopback stand-in that answers each command (an array of bulk strings) with the raw RESP
 * `answer` returns: for replies no local redis-server can give (a newer version's commands).
 */
async function fakeRedis(answer: (args: Buffer[]) => string): Promise<{ port: number; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        // *N\r\n then N times $len\r\n<bytes>\r\n; stop at an incomplete command
        let pos = buf.indexOf('\r\n');
        if (pos < 0 || buf[0] !== 0x2a) return;
        const n = Number(buf.toString('latin1', 1, pos));
        pos += 2;
        const args: Buffer[] = [];
        for (let i = 0; i < n; i++) {
          const eol = buf.indexOf('\r\n', pos);
          if (eol < 0) return;
          const len = Number(buf.toString('latin1', pos + 1, eol));
          if (buf.length < eol + 2 + len + 2) return;
          args.push(buf.subarray(eol + 2, eol + 2 + len));
          pos = eol + 2 + len + 2;
        }
        buf = buf.subarray(pos);
        sock.write(answer(args));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  assert.ok(addr !== null && typeof addr === 'object');
  return {
    port: addr.port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe('verifyDeployments', () => {
  after(stopAll);

  describe('standalone, every type and big keys', () => {
    let source: RedisServer;
    let target: RedisServer;

    before(async () => {
      [source, target] = await Promise.all([startRedis(), startRedis()]);
      await populateAllTypes(source);
      // Big enough for every chunked path: 5 MB string, 20k-element list, 50k set/hash/zset.
      await populateBigKeys(source, { listElements: 20_000, stringBytes: 5 * 1024 * 1024, collectionSize: 50_000 });
      await copyServer(source, target);
    });

    it('finds an exact copy equal', async () => {
      const progress: string[] = [];
      const r = await verify(source, target, { onProgress: (p) => progress.push(p.phase) });
      assertEqual(r);
      const info = await source.client().info('keyspace');
      const keys = [...info.matchAll(/keys=(\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
      assert.equal(r.keysChecked, keys);
      assert.equal(r.rounds, 1);
      assert.ok(progress.includes('source-keys') && progress.includes('target-keys') && progress.at(-1) === 'done', progress.join(','));
    });

    it("leaves Ferry's own checkpoint keys on the target out of the comparison", async () => {
      // A migration with checkpoints keeps them on the target until its task is deleted.
      const t = target.client(0);
      await t.hset('__ferry:checkpoint:task-1:0', 'offset', '12345', 'replid', 'x'.repeat(40));
      await t.set('__ferry:checkpoint:task-1:floor', '1');
      try {
        assertEqual(await verify(source, target));
      } finally {
        await t.del('__ferry:checkpoint:task-1:0', '__ferry:checkpoint:task-1:floor');
      }
    });

    it('finds each injected difference, with the right kind and nothing else', async () => {
      const t = target.client(0);
      // zset score off by 1e-9
      const zmember = (await source.client(0).zrange('zset:small', 0, -1, 'WITHSCORES')).find((_, i, a) => a[i + 1] === '1' && i % 2 === 0);
      assert.ok(zmember !== undefined);
      await t.zadd('zset:small', '1.000000001', zmember);
      // a pending entry acknowledged on the target only
      const pending = (await t.xpending('stream', 'g1', '-', '+', 10)) as [string, string, number, number][];
      const acked = pending[0]?.[0];
      assert.ok(acked !== undefined);
      await t.xack('stream', 'g1', acked);
      // TTL 10 s shorter
      await t.pexpire('ttl:1h', (await source.client(0).pttl('ttl:1h')) - 10_000);
      await t.del('str:embstr');
      await target.client(15).set('only:on:target', 'x');
      // two list elements swapped
      const [e0, e1] = (await t.lrange('list:small', 0, 1)) as [string, string];
      await t.lset('list:small', 0, e1);
      await t.lset('list:small', 1, e0);
      await t.hset('hash:small', 'name', 'changed');
      await t.setrange('big:string', 3_000_000, 'Q');
      await t.smove('big:set', 'tmp:set', 'm:123');
      await t.sadd('big:set', 'm:not-in-source');
      await t.del('tmp:set');
      await t.hset('big:hash', 'field:4321', 'changed');
      await t.del('str:int');
      await t.rpush('str:int', 'now a list');
      if (target.features.functions) await t.call('FUNCTION', 'DELETE', 'ferrylib');

      const r = await verify(source, target);
      assert.equal(r.equal, false);
      assert.match(findDiff(r, 0, 'zset:small', 'value').detail, /score of "m0:1:db0": 1 vs 1\.000000001/);
      assert.match(findDiff(r, 0, 'stream', 'value').detail, new RegExp(`pending entry ${acked}`));
      assert.match(findDiff(r, 0, 'ttl:1h', 'ttl').detail, /^pttl \d+ vs \d+$/);
      findDiff(r, 0, 'str:embstr', 'missing');
      findDiff(r, 15, 'only:on:target', 'extra');
      assert.match(findDiff(r, 0, 'list:small', 'value').detail, /^list element 0: /);
      assert.match(findDiff(r, 0, 'hash:small', 'value').detail, /hash field "name": "hash-in-db0" vs "changed"/);
      assert.match(findDiff(r, 0, 'big:string', 'value').detail, /^string byte 3000000: /);
      assert.match(findDiff(r, 0, 'big:set', 'value').detail, /set member "m:123" missing on target/);
      assert.match(findDiff(r, 0, 'big:hash', 'value').detail, /hash field "field:4321": "value:4321" vs "changed"/);
      assert.equal(findDiff(r, 0, 'str:int', 'type').detail, 'string vs list');
      const functions = target.features.functions ? 1 : 0;
      if (functions) assert.equal(findDiff(r, -1, 'ferrylib', 'function').detail, 'library missing on target');
      assert.deepEqual(
        r.counts,
        { missing: 1, extra: 1, type: 1, value: 7, ttl: 1, 'field-ttl': 0, function: functions },
        describeReport(r),
      );
      // maxReported cuts the list, not the counts
      const few = await verify(source, target, { maxReported: 2 });
      assert.equal(few.differences.length, 2);
      assert.equal(few.counts.value, 7);
    });
  });

  describe('rounds', () => {
    let source: RedisServer;
    let target: RedisServer;

    before(async () => {
      [source, target] = await Promise.all([startRedis(), startRedis()]);
      await populateAllTypes(source, { dbs: [0, 3] });
      await copyServer(source, target);
    });

    it('reports nothing while identical writes go on to both servers', async () => {
      const a = source.newClient(0);
      const b = target.newClient(0);
      const stop = new AbortController();
      let ops = 0;
      // Every write goes to the source, and LAG_MS later to the target, as a migration's
      // stream would apply it. During round 1 the target falls behind (its writes are held
      // back, as during a migration's catch-up), so every key written then differs in round 1;
      // it catches up in the pause before round 2. Spread over KEYS keys, well under 1 % of
      // them are in flux at any time after that, so a key differing in every one of 4 rounds
      // is as good as impossible.
      const LAG_MS = 20;
      const KEYS = 1000;
      const commands = (n: number, i: number): [string, ...(string | number)[]][] => [
        ['INCR', `live:counter:${n}`],
        ['LPUSH', `live:list:${n}`, `e${i}`],
        ['HSET', `live:hash:${n}`, `f${i % 10}`, `v${i}`],
        ['ZADD', `live:zset:${n}`, i / 7, `m${i % 10}`],
        ['SADD', `live:set:${n}`, `m${i % 50}`],
        // an absolute expiry, as a replication stream carries it: a late relative EX would not be the same TTL
        ['SET', `live:ex:${n}`, `v${i}`, 'PXAT', Date.now() + 3_600_000],
        ['XADD', `live:stream:${n}`, `${i + 1}-1`, 'i', String(i)],
      ];
      // every live key exists on both sides before the verification starts
      for (const c of [a, b]) {
        const p = c.pipeline();
        for (let n = 0; n < KEYS; n++) for (const cmd of commands(n, 0)) p.call(...cmd);
        await p.exec();
      }
      const queue: { due: number; cmd: [string, ...(string | number)[]] }[] = [];
      let held = false;
      const writer = (async () => {
        for (let i = 1; !stop.signal.aborted; i++) {
          const n = (i * 7919) % KEYS;
          const all = commands(n, i);
          const cmd = all[i % all.length] as [string, ...(string | number)[]];
          await a.call(...cmd);
          queue.push({ due: Date.now() + LAG_MS, cmd });
          ops++;
          if (i % 2 === 0) await new Promise((r) => setTimeout(r, 1));
        }
      })();
      const applier = (async () => {
        while (!stop.signal.aborted || queue.length > 0) {
          const next = held ? undefined : queue.shift();
          if (next === undefined) {
            await new Promise((r) => setTimeout(r, 1));
            continue;
          }
          const wait = next.due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          await b.call(...next.cmd);
        }
      })();
      try {
        await new Promise((r) => setTimeout(r, 100));
        let round1 = -1;
        held = true;
        const r = await verify(source, target, {
          rounds: 4,
          onProgress: (p) => {
            if (p.phase === 'waiting' && p.round === 2) {
              round1 = p.differingKeys;
              held = false;
            }
          },
        });
        assertEqual(r);
        assert.ok(round1 > 0, `no key differed in round 1 (${ops} writes): the test proves nothing`);
        assert.ok(r.rounds >= 2);
      } finally {
        stop.abort();
        held = false;
        await writer;
        await applier;
        a.disconnect();
        b.disconnect();
      }
    });

    it('drops a key that differs in round 1 only', async () => {
      const t = target.client(3);
      const original = await t.get('str:raw');
      assert.ok(original !== null);
      await t.set('str:raw', 'changed');

      const once = await verify(source, target);
      assert.equal(findDiff(once, 3, 'str:raw', 'value').detail, `string length ${original.length} vs 7`);

      let fixed: Promise<unknown> | undefined;
      const r = await verify(source, target, {
        rounds: 2,
        roundDelayMs: 500,
        onProgress: (p) => {
          if (p.phase === 'waiting') fixed ??= t.set('str:raw', original);
        },
      });
      await fixed;
      assert.ok(fixed !== undefined, 'round 2 never started');
      assertEqual(r);
      assert.equal(r.rounds, 2);
    });

    it('keeps a key that differs in every round', async () => {
      const t = target.client(0);
      await t.hset('hash:small', 'int', '43');
      try {
        const r = await verify(source, target, { rounds: 3, roundDelayMs: 100 });
        assert.equal(r.rounds, 3);
        assert.equal(r.counts.value, 1, describeReport(r));
        assert.match(findDiff(r, 0, 'hash:small', 'value').detail, /hash field "int": "42" vs "43"/);
      } finally {
        await t.hset('hash:small', 'int', '42');
      }
    });
  });

  it('maps db 1 to prefix db1: in db 0, both ways', async () => {
    const [source, target] = await Promise.all([startRedis(), startRedis()]);
    await populateAllTypes(source, { dbs: [0, 1] });
    await copyDb(source.client(0), target.client(0));
    await copyDb(source.client(1), target.client(0), 'db1:');
    await copyFunctions(source, target);
    // only dbs 0 and 1 are migrated: nothing on the source maps to target db 5
    const dbs = new DbMapper({ only: new Set([0, 1]), mapping: new Map([[1, 0]]), prefixes: new Map([[1, Buffer.from('db1:')]]) });

    assertEqual(await verify(source, target, { dbs }));

    await target.client(0).set('db1:ghost', 'x');
    await target.client(0).del('db1:str:raw');
    await target.client(5).set('stray', 'x');
    await source.client(5).set('not-migrated', 'x');
    const r = await verify(source, target, { dbs });
    // a target key mapped back to its source db and name
    assert.match(findDiff(r, 1, 'ghost', 'extra').detail, /^string only on target \[target db 0 "db1:ghost"\]$/);
    assert.match(findDiff(r, 1, 'str:raw', 'missing').detail, /^string missing on target \[target db 0 "db1:str:raw"\]$/);
    // one that cannot be mapped back: reported under the target db
    assert.match(findDiff(r, 5, 'stray', 'extra').detail, /no migrated source db maps to target db 5/);
    assert.deepEqual(r.counts, { missing: 1, extra: 2, type: 0, value: 0, ttl: 0, 'field-ttl': 0, function: 0 }, describeReport(r));
  });

  it('verifies clusters: every master scanned, keys read where their slot lives', async () => {
    const seed = await startRedis();
    await populateAllTypes(seed, { dbs: [0] });
    await populateBigKeys(seed, { listElements: 2000, stringBytes: 300_000, collectionSize: 12_000 });
    const [cs, ct] = await Promise.all([startCluster({ masters: 3 }), startCluster({ masters: 3 })]);
    for (const c of [cs, ct]) {
      await copyDb(seed.client(0), c.client());
      await copyFunctions(seed, c);
    }

    // standalone to cluster, cluster to cluster, cluster to standalone
    assertEqual(await verify(seed, ct));
    const both = await verify(cs, ct, { onProgress: () => {} });
    assertEqual(both);
    assertEqual(await verify(cs, seed));
    const total = (await Promise.all((await cs.masters()).map((m) => m.client().dbsize()))).reduce((s, n) => s + n, 0);
    assert.equal(both.keysChecked, total);

    const t = ct.client();
    await t.del('hash:small');
    await t.set('extra:key', 'x');
    await t.zadd('big:zset', '0.5', 'member:77');
    const masters = await ct.masters();
    if (seed.features.functions) await (masters[1] as RedisServer).client().call('FUNCTION', 'DELETE', 'ferrylib');
    const r = await verify(cs, ct);
    findDiff(r, 0, 'hash:small', 'missing');
    findDiff(r, 0, 'extra:key', 'extra');
    assert.match(findDiff(r, 0, 'big:zset', 'value').detail, /score of "member:77": 77\.25 vs 0\.5/);
    const functions = seed.features.functions ? 1 : 0;
    if (functions) assert.match(findDiff(r, -1, 'ferrylib', 'function').detail, /library missing on target \(target master 127\.0\.0\.1:\d+\)/);
    assert.deepEqual(r.counts, { missing: 1, extra: 1, type: 0, value: 1, ttl: 0, 'field-ttl': 0, function: functions }, describeReport(r));
  });

  it('compares big sets and zsets member by member where SMISMEMBER and ZMSCORE are missing', async () => {
    const [source, target] = await Promise.all([
      startRedis(),
      // as on a pre-6.2 server, or one with the commands renamed away
      startRedis({ args: ['--rename-command', 'SMISMEMBER', '', '--rename-command', 'ZMSCORE', ''] }),
    ]);
    await populateBigKeys(source, { listElements: 10, stringBytes: 10, collectionSize: 12_000 });
    await copyServer(source, target);
    assertEqual(await verify(source, target));

    const t = target.client(0);
    await t.zadd('big:zset', '1e-9', 'member:0');
    await t.srem('big:set', 'm:11999');
    const r = await verify(source, target);
    assert.match(findDiff(r, 0, 'big:zset', 'value').detail, /^score of "member:0": 0 vs 1e-9$/);
    assert.match(findDiff(r, 0, 'big:set', 'value').detail, /^set size 12000 vs 11999; set member "m:11999" missing on target$/);
    assert.equal(r.counts.value, 2, describeReport(r));
  });

  it('compares hash-field TTLs (a stand-in server, since HPEXPIRETIME needs 7.4+)', async () => {
    // source: a expires at 1_000_000, b never, c at 5_000_000
    const sourceTimes: Record<string, number> = { a: 1_000_000, b: -1, c: 5_000_000 };
    // target: a within the tolerance, b gained a TTL, c 4 s off
    const targetTimes: Record<string, number> = { a: 1_001_500, b: 9_000_000, c: 5_004_000 };
    const hashServer = (times: Record<string, number> | null) =>
      fakeRedis((args) => {
        const cmd = args[0]?.toString().toUpperCase();
        if (cmd === 'TYPE') return '+hash\r\n';
        if (cmd === 'PTTL') return ':-1\r\n';
        if (cmd === 'HLEN') return ':3\r\n';
        if (cmd === 'HSCAN') return resp(['0', ['a', '1', 'b', '2', 'c', '3']]);
        if (cmd === 'HPEXPIRETIME' && times !== null) {
          return `*${args.length - 4}\r\n` + args.slice(4).map((f) => `:${times[f.toString()] ?? -2}\r\n`).join('');
        }
        return `-ERR unknown command '${cmd}'\r\n`;
      });
    const servers = await Promise.all([hashServer(sourceTimes), hashServer(targetTimes), hashServer(null)]);
    const conns: RedisConnection[] = [];
    const conn = async (port: number, hashFieldTtl: boolean): Promise<Conn> => {
      const tc = await RedisConnection.connect({ host: '127.0.0.1', port });
      conns.push(tc);
      return new Conn(tc, { address: `127.0.0.1:${port}`, hashFieldTtl, smismember: true, zmscore: true, functions: false }, 0);
    };
    try {
      const ctx = { ttlToleranceMs: 2000, heavy: new Semaphore(1) };
      const key = Buffer.from('h');
      const [s, t] = await Promise.all([conn(servers[0]!.port, true), conn(servers[1]!.port, true)]);
      assert.deepEqual(await compareKeyPair({ s, sk: key, t, tk: key }, ctx), [
        { kind: 'field-ttl', detail: 'field "b" expire time (none) vs 9000000; field "c" expire time 5000000 vs 5004000' },
      ]);
      // a target that turns out not to know HPEXPIRETIME: switched off, the source's TTLs reported
      const old = await conn(servers[2]!.port, true);
      assert.deepEqual(await compareKeyPair({ s, sk: key, t: old, tk: key }, ctx), [
        { kind: 'field-ttl', detail: 'field "a" expire time 1000000 vs (target has no field TTLs); field "c" expire time 5000000 vs (target has no field TTLs)' },
      ]);
      assert.equal(old.caps.hashFieldTtl, false);
    } finally {
      for (const c of conns) c.destroy();
      for (const srv of servers) srv.close();
    }
  });

  it('stops on abort', async () => {
    const [source, target] = await Promise.all([startRedis(), startRedis()]);
    await populateAllTypes(source, { dbs: [0] });
    const ac = new AbortController();
    ac.abort(new Error('stop now'));
    await assert.rejects(verify(source, target, { signal: ac.signal }), /stop now/);
    const late = new AbortController();
    const run = verify(source, target, { rounds: 2, roundDelayMs: 10_000, signal: late.signal, onProgress: (p) => p.phase === 'waiting' && late.abort(new Error('aborted while waiting')) });
    await assert.rejects(run, /aborted while waiting/);

    // a server that stops answering (here: SCAN) cannot hold an aborted run
    const stuck = await fakeRedis((args) => {
      const cmd = args.map((a) => a.toString()).join(' ').toUpperCase();
      if (cmd === 'INFO CLUSTER') return resp('cluster_enabled:0\r\n');
      if (cmd === 'INFO REPLICATION') return resp('role:master\r\n');
      if (cmd === 'INFO KEYSPACE') return resp('db0:keys=1,expires=0\r\n');
      if (cmd.startsWith('CLIENT SETNAME')) return '+OK\r\n';
      if (cmd.startsWith('COMMAND INFO')) return `*${args.length - 2}\r\n` + '*-1\r\n'.repeat(args.length - 2);
      return cmd.startsWith('SCAN') ? '' : `-ERR unknown command '${cmd}'\r\n`;
    });
    try {
      const hung = new AbortController();
      const at = { host: '127.0.0.1', port: stuck.port };
      const started = Date.now();
      setTimeout(() => hung.abort(new Error('gave up on a stuck server')), 300);
      await assert.rejects(verifyDeployments({ source: [at], target: [at], signal: hung.signal }), /gave up on a stuck server/);
      assert.ok(Date.now() - started < 5000);
    } finally {
      stuck.close();
    }
  });
});
