/**
 * One side of the comparison (source or target): its masters, a connection per (master, db)
 * opened on first use, slot routing for a cluster, and what each master can answer.
 *
 * Reads go to masters only: a replica may lag, and a verification must see what the
 * deployment has, not what a replica has received so far.
 */

import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { slotOf } from '../common/slots.js';
import { discoverDeployment, slotMapOf } from '../cluster/topology.js';
import type { Arg } from '../resp/encode.js';
import { ReplyError, type Reply } from '../resp/reply-decoder.js';
import { RedisConnection } from '../resp/connection.js';
import { asArray, asText, isUnknownCommand } from './replies.js';

/** What a master can answer; flags are switched off when the server says a command is unknown. */
export interface ServerCaps {
  readonly address: string;
  /** HPEXPIRETIME (7.4+; also Valkey 9): hash-field TTLs exist on this server. */
  hashFieldTtl: boolean;
  /** SMISMEMBER, ZMSCORE (6.2+): batched membership lookups, else one command per member. */
  smismember: boolean;
  zmscore: boolean;
  /** FUNCTION LIST (7.0+). */
  functions: boolean;
}

/** A connection with its db selected, that respects the connection's in-flight bounds. */
export class Conn {
  constructor(
    private readonly tc: RedisConnection,
    readonly caps: ServerCaps,
    readonly db: number,
  ) {}

  /**
   * Commands of all the keys being compared share the connection, so they are pipelined;
   * waiting for room first bounds what is buffered (RedisConnection leaves that to callers).
   */
  async call(args: readonly Arg[]): Promise<Reply> {
    if (this.tc.full) await this.tc.waitForRoom();
    return this.tc.call(args);
  }

  get address(): string {
    return this.caps.address;
  }
}

export type Role = 'source' | 'target';

const CONNECTION_NAME = 'ferry-verify';

export class Side {
  private readonly conns = new Map<string, Promise<Conn>>();
  private readonly opened: RedisConnection[] = [];
  private closed = false;

  private constructor(
    readonly role: Role,
    readonly masters: readonly Endpoint[],
    /** Master index per slot; null for a standalone server. */
    private readonly slotMap: Int32Array | null,
    private readonly caps: ServerCaps[],
  ) {}

  /** Discovers the deployment and reads each master's capabilities. */
  static async open(role: Role, endpoints: readonly Endpoint[]): Promise<Side> {
    // One-line errors that say which side failed, as the migration's own do.
    const dep = await discoverDeployment(endpoints).catch((e: unknown) => {
      throw new Error(`${role}: ${e instanceof Error ? e.message : String(e)}`);
    });
    const masters = dep.kind === 'cluster' ? dep.shards.map((s) => s.master) : [dep.master];
    const slotMap = dep.kind === 'cluster' ? slotMapOf(dep.shards) : null;
    const caps = masters.map((m) => ({
      address: describeEndpoint(m),
      hashFieldTtl: false,
      smismember: false,
      zmscore: false,
      functions: false,
    }));
    const side = new Side(role, masters, slotMap, caps);
    try {
      await Promise.all(masters.map((_, i) => side.probe(i)));
    } catch (e) {
      side.close();
      throw new Error(`${role}: ${e instanceof Error ? e.message : String(e)}`);
    }
    return side;
  }

  get cluster(): boolean {
    return this.slotMap !== null;
  }

  /** Index of the master that holds `key`. */
  masterOf(key: Buffer): number {
    if (this.slotMap === null) return 0;
    const slot = slotOf(key);
    const m = this.slotMap[slot] ?? -1;
    if (m < 0) throw new Error(`no ${this.role} master owns slot ${slot}`);
    return m;
  }

  /** The connection that answers for `key` in `db`. */
  connFor(db: number, key: Buffer): Promise<Conn> {
    return this.conn(this.masterOf(key), db);
  }

  conn(master: number, db: number): Promise<Conn> {
    if (this.closed) return Promise.reject(new Error(`${this.role} connections are closed`));
    if (this.slotMap !== null && db !== 0) {
      return Promise.reject(new Error(`a cluster has db 0 only, not db ${db} (${this.role})`));
    }
    const id = `${master}/${db}`;
    let c = this.conns.get(id);
    if (c === undefined) {
      c = this.connect(master, db);
      this.conns.set(id, c);
    }
    return c;
  }

  private async connect(master: number, db: number): Promise<Conn> {
    const e = this.masters[master];
    const caps = this.caps[master];
    if (e === undefined || caps === undefined) throw new Error(`no ${this.role} master #${master}`);
    const tc = await RedisConnection.connect({
      host: e.host,
      port: e.port,
      ...(e.user !== undefined ? { user: e.user } : {}),
      ...(e.password !== undefined ? { password: e.password } : {}),
      ...(e.tls !== undefined ? { tls: e.tls } : {}),
      name: CONNECTION_NAME,
    });
    this.opened.push(tc);
    if (this.closed) tc.destroy('closed');
    // SELECT goes out before anything else on this connection, so every later command
    // (replies come back in order) runs in `db`.
    if (db !== 0) await tc.call(['SELECT', db]);
    return new Conn(tc, caps, db);
  }

  /**
   * Capabilities from COMMAND INFO (a nil entry: no such command), which also catches servers
   * whose version string says nothing (forks that report an old redis_version). Where COMMAND
   * INFO is refused (ACL, renamed), every optional command is assumed present: its first
   * "unknown command" error switches it off (see `unsupported`).
   */
  private async probe(master: number): Promise<void> {
    const c = await this.conn(master, 0);
    const caps = this.caps[master] as ServerCaps;
    const names = ['HPEXPIRETIME', 'SMISMEMBER', 'ZMSCORE', 'FUNCTION'] as const;
    let known: boolean[];
    try {
      const r = asArray(await c.call(['COMMAND', 'INFO', ...names]));
      known = names.map((_, i) => r[i] !== null && r[i] !== undefined);
    } catch (e) {
      if (!(e instanceof ReplyError)) throw e;
      known = names.map(() => true);
    }
    [caps.hashFieldTtl, caps.smismember, caps.zmscore, caps.functions] = known as [boolean, boolean, boolean, boolean];
  }

  /** Dbs that hold keys on any master (INFO keyspace); db 0 only for a cluster. */
  async keyspaceDbs(): Promise<number[]> {
    if (this.cluster) return [0];
    const c = await this.conn(0, 0);
    const info = asText(await c.call(['INFO', 'keyspace']));
    const dbs: number[] = [];
    for (const line of info.split('\r\n')) {
      const m = /^db(\d+):keys=(\d+)/.exec(line);
      if (m && Number(m[2]) > 0) dbs.push(Number(m[1]));
    }
    return dbs.sort((a, b) => a - b);
  }

  /**
   * Every db number the server has (CONFIG GET databases), to map target keys back to source
   * dbs that may be empty now. Where CONFIG is refused, 16 (the default) plus the dbs in use.
   */
  async dbNumbers(): Promise<number[]> {
    if (this.cluster) return [0];
    const c = await this.conn(0, 0);
    let count = 16;
    try {
      const r = asArray(await c.call(['CONFIG', 'GET', 'databases']));
      const n = r.length >= 2 ? Number(asText(r[1] as Reply)) : Number.NaN;
      if (Number.isInteger(n) && n > 0) count = n;
    } catch (e) {
      if (!(e instanceof ReplyError)) throw e;
    }
    const dbs = new Set<number>(Array.from({ length: count }, (_, i) => i));
    for (const db of await this.keyspaceDbs()) dbs.add(db);
    return [...dbs].sort((a, b) => a - b);
  }

  close(): void {
    this.closed = true;
    // Everything has been answered (or the run failed): no QUIT round trip needed.
    for (const tc of this.opened) tc.destroy('closed');
  }
}

/**
 * Runs `fn` (a command only newer servers have); on "unknown command" switches the capability
 * off and returns undefined, so the caller falls back for this and every later key.
 */
export async function unlessUnknown<T>(caps: ServerCaps, flag: 'hashFieldTtl' | 'smismember' | 'zmscore' | 'functions', fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    if (!isUnknownCommand(e)) throw e;
    caps[flag] = false;
    return undefined;
  }
}
