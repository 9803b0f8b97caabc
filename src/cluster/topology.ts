/**
 * What an address list points at: a standalone server (its master, if we were given a
 * replica) or a Redis Cluster (every master with its slots and replicas).
 *
 * Discovery asks one node and believes it: the first address that answers wins, the others
 * are only fallbacks. CLUSTER SHARDS (7.0+) is preferred because it reports node health;
 * older servers (or ones that refuse it, e.g. by ACL) fall back to CLUSTER SLOTS and then to
 * CLUSTER NODES. Everything here speaks RESP2 through RedisConnection, so the replies are
 * flat arrays, never RESP3 maps.
 */

import { credentialsOf, describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { ReplyError, type Reply } from '../resp/reply-decoder.js';
import { RedisAuthError, RedisConnection } from '../resp/connection.js';
import { masterFromSentinels } from '../source/sentinel.js';
import type { Deployment, Shard, SlotRange } from './topology-types.js';

export const SLOT_COUNT = 16384;

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Replica → master hops followed for a standalone source (chained replication). */
const MAX_REPLICA_HOPS = 5;

export interface DiscoverOptions {
  /** Per node: TCP connect + AUTH, and then each discovery command. Default 10 s. */
  connectTimeoutMs?: number;
}

/** Discovery failed; the message names addresses and reasons, never credentials. */
export class TopologyError extends Error {
  override readonly name = 'TopologyError';
}

/** A node address as a reply reported it, before the input's credentials are attached. */
interface NodeAddr {
  host: string;
  port: number;
}

/** A shard as parsed from a reply: addresses only. */
export interface ParsedShard {
  id: string;
  master: NodeAddr;
  replicas: NodeAddr[];
  slots: SlotRange[];
}

// ---------------------------------------------------------------------------------------------
// Slot maps

/** Shard index per slot (16384 entries), -1 where no shard owns the slot. */
export function slotMapOf(shards: readonly Pick<Shard, 'slots'>[]): Int32Array {
  const map = new Int32Array(SLOT_COUNT).fill(-1);
  shards.forEach((shard, index) => {
    for (const [start, end] of shard.slots) {
      if (!validSlot(start) || !validSlot(end) || start > end) {
        throw new RangeError(`invalid slot range ${start}-${end}`);
      }
      map.fill(index, start, end + 1);
    }
  });
  return map;
}

/** Index of the shard that owns `slot`, or -1. For one-off lookups; hot paths use slotMapOf. */
export function shardIndexForSlot(shards: readonly Pick<Shard, 'slots'>[], slot: number): number {
  if (!validSlot(slot)) throw new RangeError(`invalid slot ${slot}`);
  for (let i = 0; i < shards.length; i++) {
    for (const [start, end] of (shards[i] as Pick<Shard, 'slots'>).slots) {
      if (slot >= start && slot <= end) return i;
    }
  }
  return -1;
}

function validSlot(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < SLOT_COUNT;
}

/** Sorted ranges with adjacent ones merged (CLUSTER SLOTS lists a master once per range). */
function mergeRanges(ranges: readonly SlotRange[]): SlotRange[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1] + 1) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reply helpers (RESP2 shapes)

function text(r: Reply | undefined): string {
  if (Buffer.isBuffer(r)) return r.toString('utf8');
  if (typeof r === 'number' || typeof r === 'bigint') return String(r);
  return '';
}

function int(r: Reply | undefined): number {
  if (typeof r === 'number') return r;
  if (typeof r === 'bigint') return Number(r);
  if (Buffer.isBuffer(r)) return Number(r.toString('latin1'));
  return Number.NaN;
}

function list(r: Reply | undefined): Reply[] {
  return Array.isArray(r) ? r : [];
}

/** A RESP2 flat [k, v, k, v] array (what RESP3 sends as a map) as a Map by key text. */
function flatMap(r: Reply | undefined): Map<string, Reply> {
  const out = new Map<string, Reply>();
  const a = list(r);
  for (let i = 0; i + 1 < a.length; i += 2) out.set(text(a[i]), a[i + 1] as Reply);
  return out;
}

/** '' and '?' mean "no usable address announced": use the host we are talking to. */
function hostOr(announced: string, connectedHost: string): string {
  return announced === '' || announced === '?' ? connectedHost : announced;
}

function badReply(what: string, detail: string): TopologyError {
  return new TopologyError(`unexpected ${what} reply: ${detail}`);
}

function checkPort(port: number, what: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw badReply(what, `port ${port}`);
  return port;
}

// ---------------------------------------------------------------------------------------------
// Parsers, exported for tests (fed real replies)

/**
 * CLUSTER SHARDS (7.0+), RESP2 form: [[ 'slots', [s, e, ...], 'nodes', [[k, v, ...], ...] ], ...].
 * Nodes marked health:failed are left out; a shard whose master failed (failover not done
 * yet) is an error, since there is nowhere to read or write its slots. Shards without slots
 * (empty masters) hold no keys and take no writes, so they are not part of the deployment.
 */
export function parseClusterShards(reply: Reply, connectedHost: string, useTls = false): ParsedShard[] {
  if (!Array.isArray(reply)) throw badReply('CLUSTER SHARDS', 'not an array');
  const out: ParsedShard[] = [];
  for (const entry of reply) {
    const shard = flatMap(entry);
    const flatSlots = list(shard.get('slots')).map(int);
    const slots: SlotRange[] = [];
    for (let i = 0; i + 1 < flatSlots.length; i += 2) slots.push([flatSlots[i] as number, flatSlots[i + 1] as number]);
    if (slots.length === 0) continue;
    let master: (NodeAddr & { id: string; failed: boolean }) | undefined;
    const replicas: NodeAddr[] = [];
    for (const n of list(shard.get('nodes'))) {
      const node = flatMap(n);
      const id = text(node.get('id'));
      const failed = text(node.get('health')) === 'failed';
      const role = text(node.get('role'));
      // With TLS a node announces `tls-port` (and `port` only when it also listens in plain).
      const portField = useTls && node.has('tls-port') ? 'tls-port' : 'port';
      if (!node.has(portField)) {
        throw new TopologyError(`cluster node ${id} only has a TLS port: connect with TLS (rediss:// or the TLS options)`);
      }
      // `endpoint` is what the cluster tells clients to use (ip, hostname or '?', per
      // cluster-preferred-endpoint-type); `ip` is the fallback when it is unknown.
      const endpoint = text(node.get('endpoint'));
      const ip = text(node.get('ip'));
      const host = hostOr(endpoint !== '' && endpoint !== '?' ? endpoint : ip, connectedHost);
      const addr: NodeAddr = { host, port: checkPort(int(node.get(portField)), 'CLUSTER SHARDS') };
      if (role === 'master') master = { ...addr, id, failed };
      else if (!failed) replicas.push(addr);
    }
    const range = slots.map(([s, e]) => (s === e ? `${s}` : `${s}-${e}`)).join(',');
    if (!master) throw new TopologyError(`cluster shard with slots ${range} has no master`);
    if (master.failed) {
      throw new TopologyError(
        `the master ${describeEndpoint(master)} of slots ${range} is marked failed (failover in progress?)`,
      );
    }
    out.push({ id: master.id, master: { host: master.host, port: master.port }, replicas, slots: mergeRanges(slots) });
  }
  return out;
}

/**
 * CLUSTER SLOTS (3.0+): [[start, end, [ip, port, id, ...], [replica ip, port, id, ...]...], ...],
 * one entry per contiguous range, so a master appears once per range it owns. The server
 * leaves out failed replicas (7.0+; older ones cannot be told apart here) and, on 7.0+, replicas
 * whose replication offset is still 0, i.e. of a master that has not replicated anything yet.
 */
export function parseClusterSlots(reply: Reply, connectedHost: string): ParsedShard[] {
  if (!Array.isArray(reply)) throw badReply('CLUSTER SLOTS', 'not an array');
  const byMaster = new Map<string, ParsedShard>();
  for (const entry of reply) {
    const e = list(entry);
    const start = int(e[0]);
    const end = int(e[1]);
    if (!validSlot(start) || !validSlot(end)) throw badReply('CLUSTER SLOTS', `slot range ${start}-${end}`);
    const nodes = e.slice(2).map((n) => {
      const a = list(n);
      return {
        host: hostOr(text(a[0]), connectedHost),
        port: checkPort(int(a[1]), 'CLUSTER SLOTS'),
        // ids are there since 4.0; before, the address is the identity
        id: text(a[2]),
      };
    });
    const m = nodes[0];
    if (!m) throw badReply('CLUSTER SLOTS', `no master for slots ${start}-${end}`);
    const key = m.id !== '' ? m.id : `${m.host}:${m.port}`;
    let shard = byMaster.get(key);
    if (!shard) {
      shard = {
        id: m.id,
        master: { host: m.host, port: m.port },
        replicas: nodes.slice(1).map(({ host, port }) => ({ host, port })),
        slots: [],
      };
      byMaster.set(key, shard);
    }
    shard.slots.push([start, end]);
  }
  for (const s of byMaster.values()) s.slots = mergeRanges(s.slots);
  return [...byMaster.values()];
}

/**
 * CLUSTER NODES: one line per node,
 * `id ip:port@cport[,hostname] flags master-id ping pong epoch link slot...`
 * (`ip:port` alone before 4.0). Slots in migration (`[N->-id]`, `[N-<-id]`) are not ownership
 * and are ignored. Nodes flagged fail, handshake or noaddr are left out.
 */
export function parseClusterNodes(reply: Reply | string, connectedHost: string): ParsedShard[] {
  const body = typeof reply === 'string' ? reply : text(reply);
  interface Line {
    id: string;
    addr: NodeAddr;
    flags: Set<string>;
    masterId: string;
    slots: SlotRange[];
  }
  const lines: Line[] = [];
  for (const raw of body.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const f = line.split(' ');
    if (f.length < 8) throw badReply('CLUSTER NODES', `short line "${line}"`);
    const [id, addrField, flagField, masterId] = f as [string, string, string, string];
    const flags = new Set(flagField.split(','));
    if (flags.has('handshake') || flags.has('noaddr')) continue;
    // ip:port@cport,hostname → ip:port; the ip may be an IPv6 address with colons
    const hostPort = (addrField.split(',')[0] as string).split('@')[0] as string;
    const colon = hostPort.lastIndexOf(':');
    if (colon < 0) throw badReply('CLUSTER NODES', `address "${addrField}"`);
    const host = hostOr(hostPort.slice(0, colon).replace(/^\[|\]$/g, ''), connectedHost);
    const port = checkPort(Number(hostPort.slice(colon + 1)), 'CLUSTER NODES');
    const slots: SlotRange[] = [];
    for (const s of f.slice(8)) {
      if (s.startsWith('[')) continue;
      const m = /^(\d+)(?:-(\d+))?$/.exec(s);
      if (!m) throw badReply('CLUSTER NODES', `slot "${s}"`);
      const start = Number(m[1]);
      const end = m[2] === undefined ? start : Number(m[2]);
      if (!validSlot(start) || !validSlot(end)) throw badReply('CLUSTER NODES', `slot "${s}"`);
      slots.push([start, end]);
    }
    lines.push({ id, addr: { host, port }, flags, masterId, slots });
  }
  const out: ParsedShard[] = [];
  for (const l of lines) {
    if (!l.flags.has('master') || l.slots.length === 0) continue;
    if (l.flags.has('fail')) {
      throw new TopologyError(`the master ${describeEndpoint(l.addr)} of a shard is marked failed (failover in progress?)`);
    }
    const replicas = lines
      .filter((r) => r.masterId === l.id && (r.flags.has('slave') || r.flags.has('replica')) && !r.flags.has('fail'))
      .map((r) => r.addr);
    out.push({ id: l.id, master: l.addr, replicas, slots: mergeRanges(l.slots) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Talking to nodes

/** What every node of a deployment shares with the address it was found from: login and TLS. */
type Credentials = ReturnType<typeof credentialsOf>;

function withCredentials(a: NodeAddr, cred: Credentials): Endpoint {
  return { host: a.host, port: a.port, ...cred };
}

class Node {
  private constructor(
    private readonly conn: RedisConnection,
    private readonly timeoutMs: number,
  ) {}

  static async open(e: Endpoint, timeoutMs: number): Promise<Node> {
    const conn = await RedisConnection.connect({
      host: e.host,
      port: e.port,
      ...credentialsOf(e),
      name: 'ferry-discovery',
      connectTimeoutMs: timeoutMs,
    });
    return new Node(conn, timeoutMs);
  }

  /**
   * A command with a deadline: something that accepts TCP and then never answers (a stuck
   * server, a non-Redis port) must fail discovery, not hang it.
   */
  async call(args: string[]): Promise<Reply> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.conn.destroy(`timed out after ${this.timeoutMs} ms waiting for ${args.slice(0, 2).join(' ')}`);
        // a plain Error: another address may still answer, unlike a TopologyError verdict
        reject(new Error(`${this.conn.address} did not answer ${args.slice(0, 2).join(' ')} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([this.conn.call(args), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async info(section: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const line of text(await this.call(['INFO', section])).split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0 && !line.startsWith('#')) out.set(line.slice(0, i), line.slice(i + 1));
    }
    return out;
  }

  close(): void {
    // QUIT would wait for a reply we do not need; nothing is pending at this point.
    this.conn.destroy('closed');
  }
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Shards from the best command the node understands. */
async function clusterShards(node: Node, host: string, useTls: boolean): Promise<ParsedShard[]> {
  const refusals: string[] = [];
  // CLUSTER SLOTS and NODES already report the port of the kind of connection asking (TLS or not).
  const attempts: [string[], (r: Reply) => ParsedShard[]][] = [
    [['CLUSTER', 'SHARDS'], (r) => parseClusterShards(r, host, useTls)],
    [['CLUSTER', 'SLOTS'], (r) => parseClusterSlots(r, host)],
    [['CLUSTER', 'NODES'], (r) => parseClusterNodes(r, host)],
  ];
  for (const [args, parse] of attempts) {
    try {
      return parse(await node.call(args));
    } catch (err) {
      // Only a refusal (unknown subcommand on an old server, an ACL denial) moves on to the
      // next form; a dead connection or a topology verdict (failed master) is final.
      if (!(err instanceof ReplyError)) throw err;
      refusals.push(`${args.join(' ')}: ${err.message}`);
    }
  }
  throw new TopologyError(`cannot read the cluster topology: ${refusals.join('; ')}`);
}

/** The master of a standalone replica, following chained replicas. */
async function followToMaster(first: Node, start: Endpoint, timeoutMs: number): Promise<Endpoint> {
  const cred = credentialsOf(start);
  let node = first;
  let here: Endpoint = start;
  const seen = new Set<string>([describeEndpoint(start)]);
  try {
    for (let hop = 0; ; hop++) {
      const repl = await node.info('replication');
      const role = repl.get('role');
      // No role line: not a Redis we know how to read (a proxy, a stand-in); take it as it is
      // and let the replication handshake speak for it.
      if (role === 'master' || role === undefined || role === '') return here;
      if (role !== 'slave') throw new TopologyError(`${describeEndpoint(here)} reports an unknown role "${role}"`);
      const masterHost = repl.get('master_host') ?? '';
      const masterPort = Number(repl.get('master_port'));
      if (masterHost === '' || !Number.isInteger(masterPort) || masterPort < 1 || masterPort > 65535) {
        throw new TopologyError(`${describeEndpoint(here)} is a replica but reports no master address`);
      }
      const next: Endpoint = { host: masterHost, port: masterPort, ...cred };
      const label = describeEndpoint(next);
      if (seen.has(label) || hop >= MAX_REPLICA_HOPS) {
        throw new TopologyError(`${describeEndpoint(start)} is a replica whose chain of masters does not end at a master (via ${label})`);
      }
      seen.add(label);
      let opened: Node;
      try {
        opened = await Node.open(next, timeoutMs);
      } catch {
        // The master is down (or not reachable from here): follow the replica itself, which
        // carries the same history; it answers -NOMASTERLINK until it is linked again, and the
        // replica link waits for that.
        return here;
      }
      if (node !== first) node.close();
      node = opened;
      here = next;
    }
  } finally {
    if (node !== first) node.close();
  }
}

/**
 * Finds out what `addrs` is. The credentials of each input endpoint are used to log in to it,
 * and those of the endpoint that answered are given to every discovered node.
 */
export async function discoverDeployment(addrs: readonly Endpoint[], opts: DiscoverOptions = {}): Promise<Deployment> {
  if (addrs.length === 0) throw new TopologyError('no address given');
  const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  // Sentinels say where the master is now; from there on it is a standalone deployment.
  if (addrs[0]!.sentinel) addrs = [await masterFromSentinels(addrs, Math.min(timeoutMs, 5000))];
  const failures: string[] = [];
  for (const addr of addrs) {
    let node: Node;
    try {
      node = await Node.open(addr, timeoutMs);
    } catch (err) {
      // A refused password is a verdict: every node of the deployment would refuse it too.
      if (err instanceof RedisAuthError) throw new TopologyError(err.message);
      failures.push(`${describeEndpoint(addr)}: ${reason(err)}`);
      continue;
    }
    try {
      const cluster = await node.info('cluster');
      const cred = credentialsOf(addr);
      if (cluster.get('cluster_enabled') === '1') {
        const parsed = await clusterShards(node, addr.host, addr.tls !== undefined);
        if (parsed.length === 0) throw new TopologyError(`${describeEndpoint(addr)} is a cluster node, but no master owns any slot`);
        // by first slot: the same cluster gives the same shard order whichever node answered
        parsed.sort((a, b) => (a.slots[0]?.[0] ?? 0) - (b.slots[0]?.[0] ?? 0));
        const shards: Shard[] = parsed.map((s) => ({
          id: s.id,
          master: withCredentials(s.master, cred),
          replicas: s.replicas.map((r) => withCredentials(r, cred)),
          slots: s.slots,
        }));
        return { kind: 'cluster', shards };
      }
      const self: Endpoint = { host: addr.host, port: addr.port, ...cred };
      return { kind: 'standalone', master: await followToMaster(node, self, timeoutMs) };
    } catch (err) {
      // A node that answers but whose topology is unusable (a replica of a dead master, a
      // failed shard) is a verdict, not a reason to ask the next address: they would tell
      // the same story, and a silent fallback could pick another deployment.
      if (err instanceof TopologyError) throw err;
      if (err instanceof ReplyError && /^NOAUTH/.test(err.message)) {
        throw new TopologyError(`authentication failed for ${describeEndpoint(addr)}: it requires a password (${err.message})`);
      }
      failures.push(`${describeEndpoint(addr)}: ${reason(err)}`);
    } finally {
      node.close();
    }
  }
  // One address: its own reason says it all; several: each one's.
  if (failures.length === 1) {
    const [only] = failures as [string];
    const address = describeEndpoint(addrs[0]!);
    const why = only.slice(address.length + 2);
    throw new TopologyError(why.includes(address) ? why : only);
  }
  throw new TopologyError(`no address answered (${failures.join('; ')})`);
}
