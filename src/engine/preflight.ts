/**
 * Checks made once both ends are known and before anything is written:
 *
 * - the source and the target are different servers: an incremental migration of a server into
 *   itself replays its own stream forever (each write comes back as a new write), and one into
 *   a replica of the source fights the replication. Compared by address, `run_id`, replication
 *   id (a replica shares its master's) and, for clusters, node ids.
 * - a full sync into a target that already holds keys happens only when asked: `fail` (the
 *   default of the CLI and the service) refuses and says how many keys are in which dbs,
 *   `replace` writes over them (keys of the same name are replaced, others stay), `purge-first`
 *   empties the target first.
 */
import type { Logger } from 'pino';
import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import type { Deployment } from '../cluster/topology-types.js';
import { RedisConnection } from '../resp/connection.js';
import { encodeCommand } from '../resp/encode.js';
import type { Target } from '../target/target.js';

export type TargetConflictPolicy = 'fail' | 'replace' | 'purge-first';
export const TARGET_CONFLICT_POLICIES: readonly TargetConflictPolicy[] = ['fail', 'replace', 'purge-first'];

/** A refusal before the migration starts; its message is the whole story, in one line. */
export class PreflightError extends Error {
  override readonly name = 'PreflightError';
}

interface NodeFacts {
  where: string;
  runId: string | null;
  replid: string | null;
  nodeId: string | null;
  /** Keys per db (INFO keyspace); null when the server would not say. */
  keyspace: Map<number, number> | null;
}

function field(info: string, name: string): string | null {
  const m = new RegExp(`^${name}:(\\S+)`, 'm').exec(info);
  return m ? m[1]! : null;
}

async function facts(e: Endpoint, nodeId: string | null, wantKeys: boolean): Promise<NodeFacts> {
  const where = describeEndpoint(e);
  const c = await RedisConnection.connect({ host: e.host, port: e.port, user: e.user, password: e.password, tls: e.tls, name: 'ferry-preflight', connectTimeoutMs: 5000 });
  try {
    const text = async (args: string[]): Promise<string | null> => {
      const r = await c.call(args).catch(() => null);
      return Buffer.isBuffer(r) ? r.toString('latin1') : null;
    };
    const server = await text(['INFO', 'server']);
    const replication = await text(['INFO', 'replication']);
    let keyspace: Map<number, number> | null = null;
    if (wantKeys) {
      const ks = await text(['INFO', 'keyspace']);
      if (ks !== null) {
        keyspace = new Map();
        for (const m of ks.matchAll(/^db(\d+):keys=(\d+)/gm)) keyspace.set(Number(m[1]), Number(m[2]));
      }
    }
    return { where, runId: server && field(server, 'run_id'), replid: replication && field(replication, 'master_replid'), nodeId, keyspace };
  } finally {
    c.destroy('preflight done');
  }
}

function nodesOf(d: Deployment): { endpoint: Endpoint; id: string | null }[] {
  return d.kind === 'standalone' ? [{ endpoint: d.master, id: null }] : d.shards.map((s) => ({ endpoint: s.master, id: s.id }));
}

/** Refuses when any source master and any target master are one server or one replication history. */
function checkDistinct(source: NodeFacts[], target: NodeFacts[], logger: Logger): void {
  for (const s of source) {
    for (const t of target) {
      const same = (why: string): never => {
        throw new PreflightError(`source and target are the same server (${why}): a migration into itself would replay its own writes forever; refusing before anything is written`);
      };
      if (s.where === t.where) same(`both are ${s.where}`);
      if (s.runId && s.runId === t.runId) same(`${s.where} and ${t.where} have the same run_id ${s.runId}`);
      if (s.nodeId && s.nodeId === t.nodeId) same(`${s.where} and ${t.where} are the same cluster node ${s.nodeId}`);
      if (s.replid && s.replid === t.replid) {
        throw new PreflightError(
          `the target ${t.where} shares the replication history of the source ${s.where} (replication id ${s.replid}): one is a replica of the other; refusing before anything is written`,
        );
      }
    }
  }
  const unknown = [...source, ...target].filter((n) => n.runId === null).map((n) => n.where);
  if (unknown.length > 0) logger.warn({ nodes: unknown }, 'INFO server was refused: the same-server check used addresses and node ids only');
}

function describeKeys(nodes: NodeFacts[]): { total: number; text: string } {
  const perDb = new Map<number, number>();
  for (const n of nodes) for (const [db, keys] of n.keyspace ?? []) perDb.set(db, (perDb.get(db) ?? 0) + keys);
  const dbs = [...perDb.entries()].filter(([, k]) => k > 0).sort((a, b) => a[0] - b[0]);
  const total = dbs.reduce((n, [, k]) => n + k, 0);
  return { total, text: dbs.map(([db, k]) => `db${db}: ${k}`).join(', ') };
}

export interface PreflightOptions {
  source: Deployment;
  target: Deployment;
  /** The opened target (for purge-first). */
  opened: Target;
  /**
   * What to do with keys already on the target; null skips the check (a restarted attempt or a
   * resume from checkpoints: the keys there are this migration's own).
   */
  conflict: TargetConflictPolicy | null;
  logger: Logger;
}

export async function preflight(opts: PreflightOptions): Promise<void> {
  const { logger } = opts;
  const wantKeys = opts.conflict !== null && opts.conflict !== 'replace';
  const gather = async (d: Deployment, keys: boolean, side: string): Promise<NodeFacts[]> => {
    try {
      return await Promise.all(nodesOf(d).map((n) => facts(n.endpoint, n.id, keys)));
    } catch (e) {
      throw new PreflightError(`${side}: cannot check the server before the migration: ${(e as Error).message}`);
    }
  };
  const [sourceFacts, targetFacts] = await Promise.all([gather(opts.source, false, 'source'), gather(opts.target, wantKeys, 'target')]);
  checkDistinct(sourceFacts, targetFacts, logger);
  if (!wantKeys) return;

  if (targetFacts.some((n) => n.keyspace === null)) {
    throw new PreflightError('cannot tell whether the target is empty (INFO keyspace was refused); choose a target conflict policy: replace or purge-first');
  }
  const { total, text } = describeKeys(targetFacts);
  if (total === 0) return;
  if (opts.conflict === 'fail') {
    throw new PreflightError(
      `the target is not empty: ${total} keys (${text}); refusing to overwrite them. Choose what to do: target conflict policy "replace" (write over keys of the same name, keep the others) or "purge-first" (empty the target first)`,
    );
  }
  logger.warn({ keys: total, dbs: text }, 'target conflict policy purge-first: emptying the target before the full sync');
  await new Promise<void>((resolve, reject) =>
    opts.opened.broadcast(encodeCommand(['FLUSHALL']), (e) => (e ? reject(new PreflightError(`purging the target failed: ${e}`)) : resolve())),
  );
}
