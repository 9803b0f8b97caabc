/**
 * compareServers for deployments where either side may be a Redis Cluster: every master of a
 * cluster is scanned, and each key is read on the master that owns its slot. The per-key
 * checks (type, value, TTL, stream groups and PELs, hash-field TTLs) are compareServers' own
 * (compareKeyPair), so a standalone pair compares exactly as compareServers would.
 *
 * A key map turns a source (db, key) into its target (db, key), e.g. a standalone db N that
 * lands on a cluster as prefix `dbN:`. Compare at rest: the slot map is read once, at the start.
 */
import calculateSlot from 'cluster-key-slot';
import type { Redis } from 'ioredis';
import {
  bkey,
  compareFunctions,
  compareKeyPair,
  keyspace,
  mayHaveFieldTtls,
  printableKey,
  scanKeys,
  type Difference,
  type HashTtlMode,
} from './compare.js';
import type { RedisCluster } from './redis-cluster.js';
import type { RedisServer } from './redis-server.js';

/** A standalone server or a cluster. */
export type CompareSide = RedisServer | RedisCluster;

export type KeyMap = (db: number, key: Buffer) => { db: number; key: Buffer };

export interface ClusterCompareOptions {
  /** Source dbs to compare; default: every db the source has keys in (a cluster has db 0 only). */
  dbs?: number[];
  /** Allowed PTTL difference, also for hash-field TTLs (default 2000 ms). */
  ttlToleranceMs?: number;
  /** Keys compared concurrently (default 32). */
  concurrency?: number;
  /** Source db -> target db; ignored when keyMap is given. */
  dbMap?: Record<number, number>;
  /**
   * Where a source key lives on the target. Target keys that no source key maps to are
   * reported as 'extra' (the map has no inverse, so they are not looked up on the source).
   */
  keyMap?: KeyMap;
}

function isCluster(side: CompareSide): side is RedisCluster {
  return 'nodes' in side;
}

/** One side, reduced to what the comparison needs. */
interface Side {
  cluster: boolean;
  /** The servers that hold data: the server, or the cluster's masters. */
  masters: RedisServer[];
  /** Dbs with keys on any master. */
  dbs: number[];
  mayHaveFieldTtls: boolean;
  /** The connection that can answer for `key` in `db`; undefined when the side cannot hold it. */
  reader(db: number, key: Buffer): Redis | undefined;
  scan(db: number): Promise<Map<string, Buffer>>;
}

async function sideOf(side: CompareSide): Promise<Side> {
  const masters = isCluster(side) ? await side.masters() : [side];
  const spaces = await Promise.all(masters.map((m) => keyspace(m)));
  const dbs = [...new Set(spaces.flatMap((s) => [...s.keys()]))].sort((a, b) => a - b);
  const fieldTtls = spaces.some((s, i) => [...s.values()].some((db) => mayHaveFieldTtls(db, masters[i] as RedisServer)));
  if (!isCluster(side)) {
    return {
      cluster: false,
      masters,
      dbs,
      mayHaveFieldTtls: fieldTtls,
      reader: (db) => side.client(db),
      scan: (db) => scanKeys(side.client(db)),
    };
  }
  // slot -> owning master, from one node's CLUSTER SLOTS
  const byPort = new Map(side.nodes.map((n) => [n.port, n]));
  const owners: (RedisServer | undefined)[] = new Array<RedisServer | undefined>(16384).fill(undefined);
  const slots = (await (masters[0] as RedisServer).client().call('CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]]][];
  for (const [start, end, [, port]] of slots) {
    const owner = byPort.get(Number(port));
    for (let s = start; s <= end; s++) owners[s] = owner;
  }
  return {
    cluster: true,
    masters,
    dbs,
    mayHaveFieldTtls: fieldTtls,
    reader: (db, key) => (db === 0 ? owners[calculateSlot(key)]?.client(0) : undefined),
    async scan(db) {
      const out = new Map<string, Buffer>();
      if (db !== 0) return out;
      for (const m of await Promise.all(masters.map((s) => scanKeys(s.client(0))))) for (const [k, v] of m) out.set(k, v);
      return out;
    },
  };
}

async function inBatches<T>(items: readonly T[], size: number, fn: (x: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

export async function compareClusters(source: CompareSide, target: CompareSide, opts: ClusterCompareOptions = {}): Promise<Difference[]> {
  const concurrency = opts.concurrency ?? 32;
  const [src, tgt] = await Promise.all([sideOf(source), sideOf(target)]);
  const ttlMode: HashTtlMode = {
    source: (src.masters[0] as RedisServer).features.hashFieldTtl,
    target: (tgt.masters[0] as RedisServer).features.hashFieldTtl,
    needed: src.mayHaveFieldTtls || tgt.mayHaveFieldTtls,
    toleranceMs: opts.ttlToleranceMs ?? 2000,
  };
  const keyMap = opts.keyMap;
  const forward: KeyMap = keyMap ?? ((db, key) => ({ db: opts.dbMap?.[db] ?? db, key }));
  // Without a key map, a target key has a known source name: look it up there (as
  // compareServers does), so a key that appeared on the source meanwhile is no false 'extra'.
  const backward = (tdb: number): number | null => {
    if (keyMap) return null;
    const from = Object.entries(opts.dbMap ?? {}).find(([, to]) => to === tdb)?.[0];
    if (from !== undefined) return Number(from);
    return opts.dbMap?.[tdb] === undefined ? tdb : null;
  };
  const diffs: Difference[] = [];
  /** Target db -> target keys that some source key maps to. */
  const expected = new Map<number, Set<string>>();
  const srcDbs = opts.dbs ?? src.dbs;

  for (const db of srcDbs) {
    const keys = [...(await src.scan(db)).values()];
    await inBatches(keys, concurrency, async (key) => {
      const to = forward(db, key);
      let set = expected.get(to.db);
      if (!set) expected.set(to.db, (set = new Set()));
      set.add(bkey(to.key));
      const found = await compareKeyPair(src.reader(db, key), key, tgt.reader(to.db, to.key), to.key, ttlMode);
      const renamed = to.db !== db || !to.key.equals(key) ? ` [target db${to.db} "${printableKey(to.key)}"]` : '';
      for (const f of found) diffs.push({ db, key: printableKey(key), kind: f.kind, detail: f.detail + renamed });
    });
  }

  // The other direction: target keys that no source key accounts for. With `dbs`, only the
  // target dbs those source dbs map to are looked at.
  const tgtDbs = opts.dbs === undefined ? new Set([...tgt.dbs, ...expected.keys()]) : new Set(expected.keys());
  if (opts.dbs !== undefined && !keyMap) for (const db of opts.dbs) tgtDbs.add(forward(db, Buffer.alloc(0)).db);
  for (const tdb of [...tgtDbs].sort((a, b) => a - b)) {
    const seen = expected.get(tdb) ?? new Set<string>();
    const extra = [...(await tgt.scan(tdb)).entries()].filter(([name]) => !seen.has(name));
    await inBatches(extra, concurrency, async ([, key]) => {
      const sdb = backward(tdb);
      const found = await compareKeyPair(sdb === null ? undefined : src.reader(sdb, key), key, tgt.reader(tdb, key), key, ttlMode);
      const note = sdb === null || sdb !== tdb ? ` [target db${tdb}]` : '';
      for (const f of found) diffs.push({ db: sdb ?? tdb, key: printableKey(key), kind: f.kind, detail: f.detail + note });
    });
  }

  // Functions: a cluster needs its libraries on every master, so each target master is held
  // against the source (its first master, for a cluster source).
  const reference = src.masters[0] as RedisServer;
  for (const t of tgt.masters) {
    for (const d of await compareFunctions(reference, t)) {
      diffs.push(tgt.cluster ? { ...d, detail: `${d.detail} (target ${t.addr})` } : d);
    }
  }
  return diffs.sort((a, b) => a.db - b.db || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
