/**
 * Real Redis Clusters for the tests, built from startRedis servers: every node on loopback,
 * in its own temp dir, killed with the process like any other test server.
 *
 * Building one is what `redis-cli --cluster create` does, minus the waiting: distinct config
 * epochs first (no collision dance afterwards), slots assigned before the nodes meet, replicas
 * attached once they know their master, then a poll until every node reports the same map.
 * The helpers here talk to the nodes directly and never use Ferry's own topology code, so a
 * bug there cannot hide behind the harness.
 */
import { Cluster } from 'ioredis';
import { atLeast, freePort, redisServerVersion, startRedis, type RedisServer } from './redis-server.js';

export const SLOTS = 16384;

export interface StartClusterOptions {
  /** Masters (default 3), each owning an even share of the slots. */
  masters?: number;
  /** Replicas per master (default 0). */
  replicasPerMaster?: number;
  /** requirepass on every node (and masterauth, so replicas can sync). */
  password?: string;
  /** Extra redis.conf directives for every node; they override the cluster defaults. */
  config?: Record<string, string>;
}

export interface RedisCluster {
  /** Every node: the initial masters first, then the replicas (replicas of master i at m + i, 2m + i, ...). */
  readonly nodes: RedisServer[];
  /** '127.0.0.1:p1,127.0.0.1:p2,...' of all nodes, in `nodes` order. */
  readonly addrs: string;
  readonly password: string | undefined;
  /** The current masters, as the cluster reports them (failovers change them), by first slot. */
  masters(): Promise<RedisServer[]>;
  /** A shared ioredis Cluster client (reads from masters), closed by stop(). */
  client(): Cluster;
  /** FLUSHALL on every master. */
  flushAll(): Promise<void>;
  stop(): Promise<void>;
}

const NODE_TIMEOUT_MS = 2000;
const STABLE_TIMEOUT_MS = 30_000;
const POLL_MS = 50;
const MIGRATE_BATCH = 100;
const MIGRATE_TIMEOUT_MS = 10_000;
const NODE_START_TRIES = 8;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// CLUSTER NODES, as the harness needs it (a parser of its own, independent of src/cluster)

interface NodeLine {
  id: string;
  port: number;
  flags: Set<string>;
  /** Master id for a replica, '-' for a master. */
  masterId: string;
  /** Owned slots as 'N' / 'N-M' tokens; migration markers ('[...]') kept apart. */
  slots: string[];
  migrating: string[];
}

function parseNodes(text: string): NodeLine[] {
  const out: NodeLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const f = line.split(' ');
    const addr = ((f[1] ?? '').split(',')[0] ?? '').split('@')[0] ?? '';
    const rest = f.slice(8);
    out.push({
      id: f[0] ?? '',
      port: Number(addr.slice(addr.lastIndexOf(':') + 1)),
      flags: new Set((f[2] ?? '').split(',')),
      masterId: f[3] ?? '-',
      slots: rest.filter((s) => !s.startsWith('[')),
      migrating: rest.filter((s) => s.startsWith('[')),
    });
  }
  return out;
}

async function clusterNodes(s: RedisServer): Promise<NodeLine[]> {
  return parseNodes(String(await s.client().call('CLUSTER', 'NODES')));
}

function infoField(info: string, field: string): string | undefined {
  const m = new RegExp(`^${field}:(.*)$`, 'm').exec(info);
  return m?.[1]?.trim();
}

async function myId(s: RedisServer): Promise<string> {
  const me = (await clusterNodes(s)).find((n) => n.flags.has('myself'));
  if (!me) throw new Error(`${s.addr}: CLUSTER NODES has no 'myself' line`);
  return me.id;
}

function firstSlot(n: NodeLine): number {
  const first = n.slots[0];
  return first === undefined ? SLOTS : Number(first.split('-')[0]);
}

/** Owner node id per slot, from one node's view. */
function slotOwners(lines: readonly NodeLine[]): (string | undefined)[] {
  const owners: (string | undefined)[] = new Array<string | undefined>(SLOTS).fill(undefined);
  for (const n of lines) {
    for (const s of n.slots) {
      const [a, b] = s.split('-');
      const start = Number(a);
      const end = b === undefined ? start : Number(b);
      for (let i = start; i <= end; i++) owners[i] = n.id;
    }
  }
  return owners;
}

// ---------------------------------------------------------------------------------------------
// Waiting for a stable cluster

interface NodeState {
  addr: string;
  ok: boolean;
  /** Canonical view of the whole cluster (ids, roles, masters, slots), for agreement. */
  view: string;
  problem: string | undefined;
}

async function nodeState(s: RedisServer, expectedNodes: number): Promise<NodeState> {
  try {
    const c = s.client();
    const [info, nodesText, repl] = await Promise.all([
      c.call('CLUSTER', 'INFO') as Promise<string>,
      c.call('CLUSTER', 'NODES') as Promise<string>,
      c.info('replication'),
    ]);
    const lines = parseNodes(String(nodesText));
    const view = lines
      .map((n) => `${n.id} ${n.flags.has('master') ? 'master' : 'replica'} ${n.masterId} ${n.slots.join(',')}`)
      .sort()
      .join('\n');
    const state = infoField(String(info), 'cluster_state');
    const me = lines.find((n) => n.flags.has('myself'));
    const problems: string[] = [];
    if (state !== 'ok') problems.push(`cluster_state:${state ?? '?'}`);
    if (lines.length !== expectedNodes) problems.push(`knows ${lines.length}/${expectedNodes} nodes`);
    const odd = lines.filter((n) => ['handshake', 'noaddr', 'fail', 'fail?'].some((f) => n.flags.has(f)));
    if (odd.length > 0) problems.push(`flags ${odd.map((n) => `${n.port}:${[...n.flags].join(',')}`).join(' ')}`);
    if (me && me.migrating.length > 0) problems.push(`slots in migration ${me.migrating.join(' ')}`);
    if (me?.flags.has('slave') && infoField(repl, 'master_link_status') !== 'up') {
      problems.push(`master_link_status:${infoField(repl, 'master_link_status') ?? '?'}`);
    }
    return { addr: s.addr, ok: problems.length === 0, view, problem: problems.join(', ') || undefined };
  } catch (err) {
    return { addr: s.addr, ok: false, view: '', problem: (err as Error).message };
  }
}

/**
 * Waits until every node says cluster_state:ok, knows every other node (none failing or in
 * handshake), has no slot in migration, every replica's link is up, and all nodes report the
 * same ids, roles, masters and slots.
 */
export async function waitForCluster(nodes: readonly RedisServer[], timeoutMs = STABLE_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: NodeState[] = [];
  for (;;) {
    last = await Promise.all(nodes.map((n) => nodeState(n, nodes.length)));
    const views = new Set(last.map((s) => s.view));
    if (last.every((s) => s.ok) && views.size === 1) return;
    if (Date.now() > deadline) {
      const lines = last.map((s) => `  ${s.addr}: ${s.problem ?? 'ok'}`);
      if (views.size > 1) lines.push(`  the nodes disagree on the slot map (${views.size} different views)`);
      throw new Error(`cluster not stable after ${timeoutMs} ms:\n${lines.join('\n')}`);
    }
    await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// Starting

interface StartedNode {
  server: RedisServer;
  busPort: number;
}

/** Errors worth another try with fresh ports: a bind race on the data or the bus port. */
function portTrouble(err: unknown): boolean {
  return err instanceof Error && /could not bind|address already in use|port number too high|port too high/i.test(err.message);
}

async function startNode(opts: StartClusterOptions): Promise<StartedNode> {
  const version = redisServerVersion();
  // 7.0+ takes an explicit bus port, so it needs no room above the data port; before 7.0 the
  // bus is always port+10000, and a server with a data port above 55535 refuses to start:
  // that (and a taken bus port) is retried below with new ports.
  const busConfigurable = atLeast(version, 7, 0);
  let lastErr: unknown;
  for (let attempt = 0; attempt < NODE_START_TRIES; attempt++) {
    const busPort = busConfigurable ? await freePort() : 0;
    const config: Record<string, string> = {
      'cluster-enabled': 'yes',
      // relative to `dir`, i.e. inside the node's own temp dir
      'cluster-config-file': 'nodes.conf',
      'cluster-node-timeout': String(NODE_TIMEOUT_MS),
      // a replica's first sync (and an old master's after a failover) must not wait the
      // default 5 s for more replicas to join a diskless transfer
      'repl-diskless-sync-delay': '0',
      ...(busConfigurable ? { 'cluster-port': String(busPort) } : {}),
      ...(opts.password !== undefined ? { masterauth: confQuote(opts.password) } : {}),
      ...opts.config,
    };
    try {
      const server = await startRedis({ ...(opts.password !== undefined ? { password: opts.password } : {}), config });
      return { server, busPort: busConfigurable ? busPort : server.port + 10000 };
    } catch (err) {
      if (!portTrouble(err)) throw err;
      lastErr = err;
    }
  }
  throw new Error(`could not start a cluster node after ${NODE_START_TRIES} tries: ${String(lastErr)}`);
}

/** Double-quoted for redis.conf, as startRedis quotes requirepass (sdssplitargs escapes). */
function confQuote(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, 'utf8')) {
    if (b === 0x22) out += '\\"';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out + '"';
}

function slotShare(i: number, masters: number): [number, number] {
  return [Math.floor((i * SLOTS) / masters), Math.floor(((i + 1) * SLOTS) / masters) - 1];
}

export async function startCluster(opts: StartClusterOptions = {}): Promise<RedisCluster> {
  const m = opts.masters ?? 3;
  const r = opts.replicasPerMaster ?? 0;
  if (!Number.isInteger(m) || m < 1) throw new Error(`masters must be >= 1, got ${m}`);
  if (!Number.isInteger(r) || r < 0) throw new Error(`replicasPerMaster must be >= 0, got ${r}`);
  const version = redisServerVersion();
  const started: StartedNode[] = [];
  try {
    const results = await Promise.allSettled(Array.from({ length: m * (1 + r) }, () => startNode(opts)));
    for (const res of results) if (res.status === 'fulfilled') started.push(res.value);
    const failed = results.find((res): res is PromiseRejectedResult => res.status === 'rejected');
    if (failed) throw failed.reason;
    const nodes = started.map((n) => n.server);

    // Distinct epochs up front, as redis-cli does: equal epochs would be bumped one by one by
    // collision handling, which takes a while and makes the first failover slower.
    await Promise.all(nodes.map((n, i) => n.client().call('CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1))));
    await Promise.all(
      nodes.slice(0, m).map((n, i) => {
        const [start, end] = slotShare(i, m);
        if (atLeast(version, 7, 0)) return n.client().call('CLUSTER', 'ADDSLOTSRANGE', String(start), String(end));
        const slots: string[] = [];
        for (let s = start; s <= end; s++) slots.push(String(s));
        return n.client().call('CLUSTER', 'ADDSLOTS', ...slots);
      }),
    );
    // Everyone meets node 0; gossip spreads the rest. The bus port argument is 4.0+, and
    // needed on 7.0+ where the bus is not at port+10000.
    const first = started[0] as StartedNode;
    await Promise.all(
      started.slice(1).map((n) =>
        n.server
          .client()
          .call('CLUSTER', 'MEET', '127.0.0.1', String(first.server.port), ...(atLeast(version, 7, 0) ? [String(first.busPort)] : [])),
      ),
    );
    if (r > 0) {
      // CLUSTER REPLICATE needs the replica to know its master: wait for the handshakes.
      await waitUntil(async () => {
        const views = await Promise.all(nodes.map((n) => clusterNodes(n)));
        return views.every((v) => v.length === nodes.length && v.every((l) => !l.flags.has('handshake') && !l.flags.has('noaddr')));
      }, 'every node to know every other');
      const masterIds = await Promise.all(nodes.slice(0, m).map(myId));
      await Promise.all(
        nodes.slice(m).map((replica, j) => replica.client().call('CLUSTER', 'REPLICATE', masterIds[j % m] as string)),
      );
    }
    await waitForCluster(nodes);
    return makeCluster(nodes, opts.password);
  } catch (err) {
    await Promise.all(started.map((n) => n.server.stop()));
    throw err;
  }
}

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = STABLE_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

function makeCluster(nodes: RedisServer[], password: string | undefined): RedisCluster {
  let shared: Cluster | undefined;
  const byPort = new Map(nodes.map((n) => [n.port, n]));
  const cluster: RedisCluster = {
    nodes,
    addrs: nodes.map((n) => n.addr).join(','),
    password,
    async masters(): Promise<RedisServer[]> {
      const errors: string[] = [];
      // ask the nodes in turn: a test may have stopped some of them
      for (const n of nodes) {
        let lines: NodeLine[];
        try {
          lines = await clusterNodes(n);
        } catch (err) {
          errors.push(`${n.addr}: ${(err as Error).message}`);
          continue;
        }
        return lines
          .filter((l) => l.flags.has('master') && !l.flags.has('fail'))
          .sort((a, b) => firstSlot(a) - firstSlot(b))
          .map((l) => {
            const s = byPort.get(l.port);
            if (!s) throw new Error(`cluster reports a master on port ${l.port}, not one of ours`);
            return s;
          });
      }
      throw new Error(`no cluster node answered CLUSTER NODES:\n  ${errors.join('\n  ')}`);
    },
    client(): Cluster {
      if (!shared || shared.status === 'end') {
        shared = new Cluster(
          nodes.map((n) => ({ host: n.host, port: n.port })),
          {
            scaleReads: 'master',
            redisOptions: { ...(password !== undefined ? { password } : {}), maxRetriesPerRequest: 3 },
            // fail a test quickly on a dead cluster instead of retrying for minutes
            clusterRetryStrategy: (times: number) => (times > 20 ? null : 100),
            retryDelayOnClusterDown: 100,
            retryDelayOnTryAgain: 50,
            slotsRefreshTimeout: 2000,
          },
        );
        // errors surface as rejected commands; this only silences "Unhandled error event"
        shared.on('error', () => {});
      }
      return shared;
    },
    async flushAll(): Promise<void> {
      await Promise.all((await cluster.masters()).map((s) => s.client().flushall()));
    },
    async stop(): Promise<void> {
      shared?.disconnect();
      shared = undefined;
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
  return cluster;
}

// ---------------------------------------------------------------------------------------------
// Resharding and failover

/**
 * Moves `slots` to `toMaster` the way redis-cli --cluster reshard does, keys and all, so it
 * works under live writes: IMPORTING on the target, MIGRATING on the owner, MIGRATE in
 * batches until the slot is empty (new keys go to the target by ASK meanwhile), then SETSLOT
 * NODE on the target, the old owner and every other master. Slots already on `toMaster` are
 * skipped. Resolves once every node agrees on the new map.
 */
export async function moveSlots(cluster: RedisCluster, slots: readonly number[], toMaster: RedisServer): Promise<void> {
  const lines = await clusterNodes(toMaster);
  const me = lines.find((l) => l.flags.has('myself'));
  if (!me?.flags.has('master')) throw new Error(`moveSlots: ${toMaster.addr} is not a master`);
  const owners = slotOwners(lines);
  const byPort = new Map(cluster.nodes.map((n) => [n.port, n]));
  const serverById = new Map<string, RedisServer>();
  for (const l of lines) {
    const s = byPort.get(l.port);
    if (s) serverById.set(l.id, s);
  }
  const masters = await cluster.masters();
  const auth = cluster.password !== undefined ? ['AUTH', cluster.password] : [];
  const t = toMaster.client();

  for (const slot of slots) {
    if (!Number.isInteger(slot) || slot < 0 || slot >= SLOTS) throw new Error(`moveSlots: invalid slot ${slot}`);
    const ownerId = owners[slot];
    if (ownerId === undefined) throw new Error(`moveSlots: slot ${slot} has no owner`);
    if (ownerId === me.id) continue;
    const owner = serverById.get(ownerId);
    if (!owner) throw new Error(`moveSlots: the owner ${ownerId} of slot ${slot} is not one of our nodes`);
    const o = owner.client();
    const s = String(slot);
    await t.call('CLUSTER', 'SETSLOT', s, 'IMPORTING', ownerId);
    await o.call('CLUSTER', 'SETSLOT', s, 'MIGRATING', me.id);
    for (;;) {
      const keys = (await o.callBuffer('CLUSTER', 'GETKEYSINSLOT', s, String(MIGRATE_BATCH))) as Buffer[];
      if (keys.length === 0) break;
      // REPLACE: while a slot migrates, a key that still exists on the owner is written there,
      // so the owner's copy is always the newest one.
      await o.callBuffer(
        'MIGRATE', '127.0.0.1', String(toMaster.port), '', '0', String(MIGRATE_TIMEOUT_MS), ...auth, 'REPLACE', 'KEYS', ...keys,
      );
    }
    // Target first: from then on it serves the slot without ASKING, before the owner starts
    // answering MOVED for it.
    await t.call('CLUSTER', 'SETSLOT', s, 'NODE', me.id);
    await o.call('CLUSTER', 'SETSLOT', s, 'NODE', me.id);
    await Promise.all(
      masters.filter((m) => m !== toMaster && m !== owner).map((m) => m.client().call('CLUSTER', 'SETSLOT', s, 'NODE', me.id)),
    );
    owners[slot] = me.id;
  }
  await waitForCluster(cluster.nodes);
}

/**
 * A manual CLUSTER FAILOVER on `replica` (coordinated with its master, no data loss); resolves
 * once it is a master, its old master has become its replica, and the cluster is stable.
 */
export async function failover(cluster: RedisCluster, replica: RedisServer): Promise<void> {
  const c = replica.client();
  const role = infoField(await c.info('replication'), 'role');
  if (role !== 'slave') throw new Error(`failover: ${replica.addr} is not a replica (role:${role ?? '?'})`);
  await c.call('CLUSTER', 'FAILOVER');
  await waitUntil(async () => infoField(await c.info('replication'), 'role') === 'master', `${replica.addr} to become master`);
  await waitForCluster(cluster.nodes);
}
