/**
 * Topology discovery against real clusters and standalone servers, and the cluster harness
 * itself (resharding, failover, cross-deployment comparison). The clusters are small (3
 * masters, one of them with a replica each) and shared by the tests, which run in order:
 * the resharding and failover tests change the topology the later ones see.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import calculateSlot from 'cluster-key-slot';
import type { Cluster } from 'ioredis';
import type { Endpoint } from '../../src/common/endpoint.js';
import {
  discoverDeployment,
  parseClusterNodes,
  parseClusterShards,
  parseClusterSlots,
  shardIndexForSlot,
  slotMapOf,
  TopologyError,
  type ParsedShard,
} from '../../src/cluster/topology.js';
import type { Deployment, Shard } from '../../src/cluster/topology-types.js';
import type { Reply } from '../../src/resp/reply-decoder.js';
import { RedisConnection } from '../../src/resp/connection.js';
import { compareClusters } from '../helpers/compare-cluster.js';
import { formatDifferences, printableKey, type Difference } from '../helpers/compare.js';
import { populateAllTypes } from '../helpers/dataset.js';
import { failover, moveSlots, startCluster, type RedisCluster } from '../helpers/redis-cluster.js';
import { closedPort, startRedis, type RedisServer } from '../helpers/redis-server.js';

const PASSWORD = 'cluster "pw"';

function ep(s: RedisServer, password?: string): Endpoint {
  return password === undefined ? { host: s.host, port: s.port } : { host: s.host, port: s.port, password };
}

function clusterOf(d: Deployment): Shard[] {
  assert.equal(d.kind, 'cluster');
  if (d.kind !== 'cluster') throw new Error('unreachable');
  return [...d.shards].sort((a, b) => (a.slots[0]?.[0] ?? 0) - (b.slots[0]?.[0] ?? 0));
}

/** Shards without ids or credentials, sorted, for comparing parsers and views. */
function shape(shards: readonly (Shard | ParsedShard)[]): string {
  return JSON.stringify(
    [...shards]
      .map((s) => ({
        master: `${s.master.host}:${s.master.port}`,
        replicas: s.replicas.map((r) => `${r.host}:${r.port}`).sort(),
        slots: s.slots,
      }))
      .sort((a, b) => (a.slots[0]?.[0] ?? 0) - (b.slots[0]?.[0] ?? 0)),
  );
}

function assertFullCoverage(shards: readonly Shard[]): void {
  const map = slotMapOf(shards);
  const unowned = map.indexOf(-1);
  assert.equal(unowned, -1, `slot ${unowned} is not owned by any shard`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function rawReply(s: RedisServer, args: string[], password?: string): Promise<Reply> {
  const conn = await RedisConnection.connect({ host: s.host, port: s.port, ...(password !== undefined ? { password } : {}) });
  try {
    return await conn.call(args);
  } finally {
    await conn.close();
  }
}

/** A reply with every '127.0.0.1' bulk string emptied, as a node that does not know its address answers. */
function blankHosts(r: Reply): Reply {
  if (Buffer.isBuffer(r)) return r.toString() === '127.0.0.1' ? Buffer.alloc(0) : r;
  return Array.isArray(r) ? r.map(blankHosts) : r;
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Every key of a cluster (scanned on each master), for DUMP/RESTORE copies. */
async function clusterKeys(c: RedisCluster): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const m of await c.masters()) {
    let cursor = '0';
    do {
      const [next, keys] = await m.client().scanBuffer(cursor, 'COUNT', 500);
      cursor = next.toString();
      out.push(...keys);
    } while (cursor !== '0');
  }
  return out;
}

/** DUMP/RESTORE (with TTL) through the clients: no MIGRATE, no Ferry. */
async function copyKey(from: { dumpBuffer(k: Buffer): Promise<Buffer | null>; pttl(k: Buffer): Promise<number> }, key: Buffer, to: Cluster, toKey: Buffer): Promise<void> {
  const [dump, pttl] = await Promise.all([from.dumpBuffer(key), from.pttl(key)]);
  if (dump === null) return;
  await to.restore(toKey, pttl > 0 ? pttl : 0, dump, 'REPLACE');
}

function assertFound(diffs: Difference[], want: Partial<Difference>, note: string): void {
  const hit = diffs.find((d) => Object.entries(want).every(([k, v]) => d[k as keyof Difference] === v));
  assert.ok(hit, `${note}: expected ${JSON.stringify(want)} among ${formatDifferences(diffs)}`);
}

describe('cluster topology discovery', () => {
  let plain: RedisCluster; // 3 masters
  let replicated: RedisCluster; // 3 masters + 3 replicas
  let secured: RedisCluster; // 3 masters, requirepass
  let standalone: RedisServer;
  let replica: RedisServer;
  let orphan: RedisServer; // a replica of a closed port

  before(async () => {
    [plain, replicated, secured, standalone, replica, orphan] = await Promise.all([
      startCluster(),
      startCluster({ replicasPerMaster: 1 }),
      startCluster({ password: PASSWORD }),
      // no 5 s wait for more replicas before the first (diskless) sync
      startRedis({ config: { 'repl-diskless-sync-delay': '0' } }),
      startRedis(),
      startRedis(),
    ]);
    await replica.client().call('REPLICAOF', '127.0.0.1', String(standalone.port));
    await orphan.client().call('REPLICAOF', '127.0.0.1', String(await closedPort()));
  });

  after(async () => {
    await Promise.all([plain, replicated, secured, standalone, replica, orphan].map((x) => x?.stop()));
  });

  it('discovers a 3-master cluster from any one node', async () => {
    const masters = await plain.masters();
    const views = await Promise.all(plain.nodes.map(async (n) => clusterOf(await discoverDeployment([ep(n)]))));
    for (const shards of views) {
      assert.equal(shards.length, 3);
      assertFullCoverage(shards);
      assert.deepEqual(shards.map((s) => s.master.port).sort(), masters.map((m) => m.port).sort());
      for (const s of shards) {
        assert.match(s.id, /^[0-9a-f]{40}$/);
        assert.equal(s.master.host, '127.0.0.1');
        assert.deepEqual(s.replicas, []);
        assert.equal(s.master.password, undefined);
      }
      assert.equal(shape(shards), shape(views[0] as Shard[]));
    }
    // the initial layout: master i owns the i-th third of the slots
    const first = views[0] as Shard[];
    assert.deepEqual(first.map((s) => s.slots), [[[0, 5460]], [[5461, 10921]], [[10922, 16383]]]);
  });

  it('skips a closed first address, and names every address when none answers', async () => {
    const closed = await closedPort();
    const shards = clusterOf(await discoverDeployment([{ host: '127.0.0.1', port: closed }, ep(plain.nodes[1] as RedisServer)]));
    assert.equal(shards.length, 3);
    const closed2 = await closedPort();
    await assert.rejects(
      discoverDeployment([
        { host: '127.0.0.1', port: closed, password: 'hunter2' },
        { host: '127.0.0.1', port: closed2, password: 'hunter2' },
      ], { connectTimeoutMs: 2000 }),
      (err: Error) => {
        assert.ok(err instanceof TopologyError, String(err));
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${closed}\\b.*ECONNREFUSED`));
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${closed2}\\b.*ECONNREFUSED`));
        assert.doesNotMatch(err.message, /hunter2/);
        return true;
      },
    );
    await assert.rejects(discoverDeployment([]), TopologyError);
  });

  it('lists the replicas of a 3+3 cluster, also when asked through a replica', async () => {
    const [m0, m1, m2, r0, r1, r2] = replicated.nodes as [RedisServer, RedisServer, RedisServer, RedisServer, RedisServer, RedisServer];
    for (const via of [m0, r2]) {
      const shards = clusterOf(await discoverDeployment([ep(via)]));
      assertFullCoverage(shards);
      assert.deepEqual(
        shards.map((s) => [s.master.port, s.replicas.map((r) => r.port)]),
        [[m0.port, [r0.port]], [m1.port, [r1.port]], [m2.port, [r2.port]]],
      );
    }
  });

  it('maps a key to the shard whose master holds it (slotMapOf, shardIndexForSlot)', async () => {
    const shards = clusterOf(await discoverDeployment([ep(plain.nodes[2] as RedisServer)]));
    const map = slotMapOf(shards);
    assert.equal(map.length, 16384);
    const c = plain.client();
    for (const key of ['foo', 'bar', '{user1}:a', 'x\r\n\0y']) {
      await c.set(key, `v-${key}`);
      const slot = calculateSlot(key);
      const i = shardIndexForSlot(shards, slot);
      assert.equal(map[slot], i);
      const shard = shards[i] as Shard;
      const owner = plain.nodes.find((n) => n.port === shard.master.port) as RedisServer;
      assert.equal(await owner.client().get(key), `v-${key}`, `key ${printableKey(Buffer.from(key))} on its shard's master`);
    }
    assert.equal(calculateSlot('foo'), 12182); // the reference vector, so the map above means something
    assert.equal(shardIndexForSlot([{ slots: [[0, 10]] }], 11), -1);
    assert.throws(() => shardIndexForSlot(shards, 16384), RangeError);
    const partial = slotMapOf([{ slots: [[0, 1], [5, 5]] }, { slots: [[3, 3]] }]);
    assert.deepEqual([...partial.subarray(0, 7)], [0, 0, -1, 1, -1, 0, -1]);
  });

  it('parses CLUSTER SHARDS, SLOTS and NODES replies into the same shards', async () => {
    // CLUSTER SLOTS hides replicas whose replication offset is still 0 (nothing written yet):
    // give every shard a write, and wait until the replicas show.
    const c = replicated.client();
    for (const key of ['{a}', '{b}', '{c}', '{d}', '{e}', '{f}', '{g}']) await c.set(key, '1');
    await waitFor(async () => {
      const views = await Promise.all(replicated.nodes.map((n) => rawReply(n, ['CLUSTER', 'SLOTS']) as Promise<Reply[][]>));
      return views.every((entries) => entries.every((e) => e.length >= 4));
    }, 'CLUSTER SLOTS to list the replicas');
    for (const cluster of [plain, replicated]) {
      for (const node of [cluster.nodes[0] as RedisServer, cluster.nodes[cluster.nodes.length - 1] as RedisServer]) {
        const [shardsReply, slotsReply, nodesReply] = await Promise.all([
          rawReply(node, ['CLUSTER', 'SHARDS']),
          rawReply(node, ['CLUSTER', 'SLOTS']),
          rawReply(node, ['CLUSTER', 'NODES']),
        ]);
        const fromShards = parseClusterShards(shardsReply, 'unused');
        const fromSlots = parseClusterSlots(slotsReply, 'unused');
        const fromNodes = parseClusterNodes(nodesReply, 'unused');
        assert.equal(shape(fromSlots), shape(fromShards), `SLOTS vs SHARDS on ${node.addr}`);
        assert.equal(shape(fromNodes), shape(fromShards), `NODES vs SHARDS on ${node.addr}`);
        const ids = (xs: ParsedShard[]): string[] => xs.map((s) => s.id).sort();
        assert.deepEqual(ids(fromSlots), ids(fromShards));
        assert.deepEqual(ids(fromNodes), ids(fromShards));
        // an empty address means "the host you are connected to"
        const blankShards = parseClusterShards(blankHosts(shardsReply), 'connected.example');
        const blankSlots = parseClusterSlots(blankHosts(slotsReply), 'connected.example');
        const blankNodes = parseClusterNodes(String(nodesReply).replaceAll('127.0.0.1:', ':'), 'connected.example');
        for (const parsed of [blankShards, blankSlots, blankNodes]) {
          assert.equal(shape(parsed), shape(fromShards).replaceAll('127.0.0.1', 'connected.example'));
        }
      }
    }
  });

  it('falls back to CLUSTER SLOTS, then CLUSTER NODES, when the newer commands are refused', async () => {
    // ACL denials stand in for an old server's "unknown subcommand": both are error replies
    const users: [string, string][] = [
      ['no-shards', '-cluster|shards'],
      ['nodes-only', '-cluster|shards -cluster|slots'],
      ['nothing', '-cluster|shards -cluster|slots -cluster|nodes'],
    ];
    for (const n of plain.nodes) {
      for (const [name, deny] of users) await n.client().call('ACL', 'SETUSER', name, 'on', '>pw', '~*', '+@all', ...deny.split(' '));
    }
    const via = plain.nodes[0] as RedisServer;
    const expected = shape(clusterOf(await discoverDeployment([ep(via)])));
    for (const [name] of users.slice(0, 2)) {
      const shards = clusterOf(await discoverDeployment([{ ...ep(via), user: name, password: 'pw' }]));
      assert.equal(shape(shards), expected, `as ${name}`);
      assert.equal(shards[0]?.master.user, name);
    }
    await assert.rejects(discoverDeployment([{ ...ep(via), user: 'nothing', password: 'pw' }]), (err: Error) => {
      assert.ok(err instanceof TopologyError, String(err));
      assert.match(err.message, /CLUSTER SHARDS: .*CLUSTER SLOTS: .*CLUSTER NODES: /);
      return true;
    });
  });

  it('discovers a standalone server, and follows a replica to its master', async () => {
    assert.deepEqual(await discoverDeployment([ep(standalone)]), { kind: 'standalone', master: ep(standalone) });
    await waitFor(async () => /master_link_status:up/.test(await replica.client().info('replication')), 'the replica link');
    assert.deepEqual(await discoverDeployment([ep(replica)]), { kind: 'standalone', master: ep(standalone) });
    // the first address that answers decides, even if a later one is the master itself
    assert.deepEqual(
      await discoverDeployment([{ host: '127.0.0.1', port: await closedPort() }, ep(replica), ep(standalone)]),
      { kind: 'standalone', master: ep(standalone) },
    );
  });

  it("follows a standalone replica itself when its master is unreachable (it has the same history)", async () => {
    assert.deepEqual(await discoverDeployment([ep(orphan)], { connectTimeoutMs: 2000 }), { kind: 'standalone', master: ep(orphan) });
  });

  it('discovers a password-protected cluster and gives the credentials to every node', async () => {
    const via = secured.nodes[1] as RedisServer;
    const shards = clusterOf(await discoverDeployment([{ ...ep(via), user: 'default', password: PASSWORD }]));
    assert.equal(shards.length, 3);
    for (const s of shards) {
      assert.equal(s.master.password, PASSWORD);
      assert.equal(s.master.user, 'default');
    }
    for (const bad of [{ ...ep(via), password: 'bad-secret-123' }, ep(via)]) {
      await assert.rejects(discoverDeployment([bad]), (err: Error) => {
        assert.ok(err instanceof TopologyError, String(err));
        assert.match(err.message, /WRONGPASS|NOAUTH|invalid password|Authentication required/i);
        assert.doesNotMatch(err.message, /cluster "pw"|bad-secret-123/);
        return true;
      });
    }
  });

  it('moves slots with their keys under live writes, also with a password (MIGRATE AUTH)', async () => {
    for (const cluster of [plain, secured]) {
      const pw = cluster.password;
      const [m0, m1] = (await cluster.masters()) as [RedisServer, RedisServer];
      const c = cluster.client();
      // keys in the slots that move, written before and during the move
      const moving = Array.from({ length: 200 }, (_, i) => 5461 + i);
      const movingSet = new Set(moving);
      const last = new Map<string, string>();
      for (let i = 0; i < 3000; i++) {
        const k = `pre:${i}`;
        if (movingSet.has(calculateSlot(k))) {
          await c.set(k, `v${i}`);
          last.set(k, `v${i}`);
        }
      }
      assert.ok(last.size > 20, `only ${last.size} keys in the moving slots`);
      let stop = false;
      const writer = (async () => {
        for (let i = 0; !stop; i++) {
          const k = `live:${i % 400}`;
          await c.set(k, String(i));
          last.set(k, String(i));
        }
      })();
      try {
        await moveSlots(cluster, moving, m0);
      } finally {
        stop = true;
        await writer;
      }
      const shards = clusterOf(await discoverDeployment([{ ...ep(m1), ...(pw !== undefined ? { password: pw } : {}) }]));
      assertFullCoverage(shards);
      const to = shards.find((s) => s.master.port === m0.port) as Shard;
      const from = shards.find((s) => s.master.port === m1.port) as Shard;
      assert.deepEqual(to.slots, [[0, 5660]]);
      assert.deepEqual(from.slots, [[5661, 10921]]);
      const map = slotMapOf(shards);
      for (const slot of moving) assert.equal(map[slot], shards.indexOf(to));
      for (const [k, v] of last) assert.equal(await c.get(k), v, `key ${k} after the move`);
      // the moved keys really are on the new master now
      const movedKey = [...last.keys()].find((k) => k.startsWith('pre:')) as string;
      assert.equal(await m0.client().get(movedKey), last.get(movedKey));
    }
  });

  it('sees the promoted replica as master after a failover', async () => {
    const [m0, , , r0] = replicated.nodes as RedisServer[] as [RedisServer, RedisServer, RedisServer, RedisServer];
    await failover(replicated, r0);
    assert.ok((await replicated.masters()).includes(r0));
    assert.ok(!(await replicated.masters()).includes(m0));
    const shards = clusterOf(await discoverDeployment([ep(m0)]));
    const first = shards[0] as Shard;
    assert.deepEqual(first.slots, [[0, 5460]]);
    assert.equal(first.master.port, r0.port);
    assert.deepEqual(first.replicas.map((r) => r.port), [m0.port]);
  });

  it('compareClusters: none on a DUMP/RESTORE copy cluster to cluster, and each injected difference', async () => {
    const src = plain;
    const dst = replicated;
    await Promise.all([src.flushAll(), dst.flushAll()]);
    const s = src.client();
    const bin = Buffer.from('bin:\r\n\0\xff', 'latin1');
    await s.set(bin, Buffer.from([0, 1, 2, 0xff]));
    await s.set('ttl:key', 'v', 'PX', 3_600_000);
    await s.rpush('list', 'a', 'b', 'c');
    await s.sadd('set', 'x', 'y');
    await s.zadd('zset', 1, 'one', 2.5, 'two');
    await s.hset('hash', { f1: 'v1', f2: 'v2' });
    await s.xadd('stream', '1-1', 'f', 'v');
    await s.xadd('stream', '2-1', 'g', 'w');
    await s.xgroup('CREATE', 'stream', 'grp', '0');
    await s.xreadgroup('GROUP', 'grp', 'alice', 'COUNT', 1, 'STREAMS', 'stream', '>');
    for (let i = 0; i < 200; i++) await s.set(`k:${i}`, String(i));
    const d = dst.client();
    for (const key of await clusterKeys(src)) await copyKey(s, key, d, key);
    assert.deepEqual(await compareClusters(src, dst), [], 'faithful copy');
    assert.deepEqual(await compareClusters(dst, src), [], 'faithful copy, reversed');

    await d.hset('hash', 'f2', 'changed');
    await d.del('k:7');
    await d.set('only:target', '1');
    await d.pexpire('k:9', 3_600_000);
    await d.xack('stream', 'grp', '1-1');
    const diffs = await compareClusters(src, dst);
    assertFound(diffs, { db: 0, key: 'hash', kind: 'value' }, 'changed hash field');
    assertFound(diffs, { db: 0, key: 'k:7', kind: 'missing' }, 'deleted key');
    assertFound(diffs, { db: 0, key: 'only:target', kind: 'extra' }, 'extra key');
    assertFound(diffs, { db: 0, key: 'k:9', kind: 'ttl' }, 'added TTL');
    assertFound(diffs, { db: 0, key: 'stream', kind: 'value' }, 'acked PEL entry');
    assert.deepEqual([...new Set(diffs.map((x) => x.key))].sort(), ['hash', 'k:7', 'k:9', 'only:target', 'stream'], formatDifferences(diffs));
  });

  it('compareClusters: standalone to cluster with db -> prefix mapping', async () => {
    const src = standalone;
    const dst = secured;
    await dst.flushAll();
    await populateAllTypes(src, { dbs: [0, 1] });
    const prefix = (db: number, key: Buffer): { db: number; key: Buffer } => ({ db: 0, key: Buffer.concat([Buffer.from(`db${db}:`), key]) });
    const d = dst.client();
    for (const db of [0, 1]) {
      const c = src.client(db);
      let cursor = '0';
      do {
        const [next, keys] = await c.scanBuffer(cursor, 'COUNT', 500);
        cursor = next.toString();
        for (const key of keys) await copyKey(c, key, d, prefix(db, key).key);
      } while (cursor !== '0');
    }
    if (src.features.functions) {
      const payload = (await src.client().callBuffer('FUNCTION', 'DUMP')) as Buffer;
      for (const m of await dst.masters()) await m.client().call('FUNCTION', 'RESTORE', payload, 'REPLACE');
    }
    const clean = await compareClusters(src, dst, { keyMap: prefix });
    assert.deepEqual(clean, [], formatDifferences(clean));

    // the same data without the mapping: every key differs by name
    const unmapped = await compareClusters(src, dst);
    assert.ok(unmapped.some((x) => x.kind === 'missing' && x.db === 1), 'db1 keys cannot exist on a cluster');
    assert.ok(unmapped.some((x) => x.kind === 'extra'), 'prefixed keys are extra without the map');

    const someKey = (await src.client(1).scanBuffer('0', 'COUNT', 100))[1][0] as Buffer;
    await d.del(prefix(1, someKey).key);
    await d.set(Buffer.from('stray'), 'x');
    if (src.features.functions) await ((await dst.masters())[2] as RedisServer).client().call('FUNCTION', 'FLUSH');
    const diffs = await compareClusters(src, dst, { keyMap: prefix });
    assertFound(diffs, { db: 1, key: printableKey(someKey), kind: 'missing' }, 'deleted prefixed key');
    assertFound(diffs, { db: 0, key: 'stray', kind: 'extra' }, 'key no source key maps to');
    if (src.features.functions) assertFound(diffs, { db: -1, kind: 'function' }, 'library missing on one master');
    assert.equal(diffs.length, src.features.functions ? 3 : 2, formatDifferences(diffs));
  });
});
