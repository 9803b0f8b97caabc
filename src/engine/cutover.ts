import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { slotTag } from '../common/slots.js';
import { discoverDeployment } from '../cluster/topology.js';
import { RedisConnection } from '../resp/connection.js';
import type { Reply } from '../resp/reply-decoder.js';
import { removeAllCheckpoints } from './checkpoint-cleanup.js';
import { describeHook, runSwitchHook, type HookResult, type SwitchAction, type SwitchHook } from './cutover-hook.js';
import type { Migration, MigrationOptions, ShardPosition } from './migration.js';
import type { Checkpoint, MigrationProgress } from './stats.js';

/**
 * Cutover: moving the clients from one side of a migration to the other without losing a write,
 * and back (DCS's ExchangeInstanceIp and RollbackExchangeInstanceIp). One procedure serves both
 * directions; `L` is the live side (clients write there), `P` the passive side that the
 * running migration M (L → P) feeds:
 *
 *  1. P must be able to continue a replica from "now": when it keeps no backlog (it never had a
 *     replica), one is created first by a short PSYNC (before any pause).
 *  2. Writes are paused on every master of L (CLIENT PAUSE <ms> WRITE, Redis 6.2+), and each
 *     master's master_repl_offset is read after the pause took effect.
 *  3. M must apply up to those offsets (the PINGs L sends after them are not waited for); past
 *     the drain timeout the pause is lifted and nothing has changed.
 *  4. M stops (its checkpoints stay, in case the switch is undone); each master of P marks its
 *     position (a write of its own in db 0, then master_replid/master_repl_offset, in one
 *     pipelined burst, so the db selected there is known); N (P → L) starts from those positions
 *     with PSYNC, and must get +CONTINUE (exchange: never a full copy into the old source).
 *  5. The hook moves the clients. Failure (or a timeout after which nothing moved): the pause is
 *     lifted, N stops, M resumes where it stopped (PSYNC), and clients never noticed.
 *  6. Success: L's client connections are closed (no write paused there may run after the
 *     switch), M's checkpoints are removed from P, the pause is lifted. N is the migration now.
 *
 * The pause is renewed while the procedure runs, so its timeout only bounds how long writes stay
 * paused if Ferry itself goes away; the procedure's own limits (drain, PSYNC, hook) bound it
 * otherwise.
 */

export type Direction = 'forward' | 'reverse';

export interface CutoverOptions {
  /** The task's source and target: forward is source → target, reverse target → source. */
  source: Endpoint[];
  target: Endpoint[];
  /** Builds the migration of a direction with the caller's options plus these. */
  build(direction: Direction, extra: Pick<MigrationOptions, 'startFrom' | 'fullResync'>): Migration;
  /** The checkpoint name of each direction (their checkpoints are removed after a switch). */
  checkpointName?(direction: Direction): string | undefined;
  /** The direction to start in (a recovered task that had switched: reverse). */
  direction?: Direction;
  /** Where the first migration starts when its target holds no checkpoint (recovery). */
  startFrom?: ReadonlyMap<string, Checkpoint>;
  logger: Logger;
  /** Lines for the task log (hook output, the steps' outcome). */
  log?(level: 'INFO' | 'WARN' | 'ERROR', code: string, message: string): void;
  taskId?: string;
  /** The write pause renews itself every third of this; if Ferry vanishes, writes resume after it. Default 5 s. */
  pauseTimeoutMs?: number;
  /** How long the running migration may take to apply what the paused side has. Default 10 s. */
  drainTimeoutMs?: number;
  /** How long the new direction may take to get +CONTINUE. Default 10 s. */
  linkTimeoutMs?: number;
}

export interface CutoverRequest {
  action: SwitchAction;
  hook: SwitchHook;
  exchangedIp?: string[];
  isExchangeDomain?: boolean;
  /** Told as soon as the hook has moved the clients (before the pause is lifted). */
  onSwitched?(direction: Direction, startFrom: [string, Checkpoint][]): void;
}

export interface CutoverReport {
  action: SwitchAction;
  ok: boolean;
  /** The direction running now. */
  direction: Direction;
  /** How long writes were paused on the live side (ms), measured from the pause to its end. */
  pauseMs: number | null;
  /** Time taken by the drain (ms). */
  drainMs: number | null;
  /** Time from the drain's end to the new direction's PSYNC answer (stop, mark, connect; ms). */
  linkMs?: number | null;
  hook: (HookResult & { description: string }) | null;
  /** Why the switch did not happen (nothing changed for clients). */
  error: string | null;
  /** Where the new direction started, by master (recorded by the service for recovery). */
  startFrom: [string, Checkpoint][];
  /** The hook timed out but writes had reached the new side: the switch was completed. */
  completedAfterTimeout?: boolean;
}

/** The cutover is refused in the state the migration is in (not in sync, already switching...). */
export class CutoverStateError extends Error {}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A migration that can switch direction: what the worker and `ferry migrate --cutover-hook` run. */
export class Cutover extends EventEmitter {
  direction: Direction;
  private current: Migration;
  private readonly runs = new WeakMap<Migration, Promise<MigrationProgress>>();
  private switching: Promise<CutoverReport> | null = null;
  private stopRequested = false;

  constructor(private readonly options: CutoverOptions) {
    super();
    this.direction = options.direction ?? 'forward';
    this.current = this.start(this.direction, options.startFrom ? { startFrom: { positions: options.startFrom, prefer: 'checkpoint' } } : {});
  }

  get migration(): Migration {
    return this.current;
  }

  get busy(): boolean {
    return this.switching !== null;
  }

  progress(): MigrationProgress {
    return { ...this.current.progress(), direction: this.direction };
  }

  /** The reverse sync never copies the whole new side into the old one: it only continues. */
  private start(direction: Direction, extra: Pick<MigrationOptions, 'startFrom'>): Migration {
    const m = this.options.build(direction, { ...extra, fullResync: direction === 'reverse' ? 'refuse' : 'allow' });
    m.on('progress', (p: MigrationProgress) => {
      if (m === this.current && !this.switching) this.emit('progress', { ...p, direction });
    });
    const run = m.run();
    run.catch(() => undefined);
    this.runs.set(m, run);
    return m;
  }

  /** Runs until stopped (or failed), across switches. */
  async run(): Promise<MigrationProgress> {
    for (;;) {
      const m = this.current;
      let result: MigrationProgress | null = null;
      let error: unknown = null;
      try {
        result = await this.runs.get(m)!;
      } catch (e) {
        error = e;
      }
      while (this.switching) await this.switching.catch(() => undefined);
      if (this.current !== m) {
        if (this.stopRequested) this.current.stop();
        continue;
      }
      if (error) throw error;
      return { ...result!, direction: this.direction };
    }
  }

  setBandwidthLimit(limitMb: number | null): void {
    this.current.setBandwidthLimit(limitMb);
  }

  setResumeMode(mode: 'auto' | 'manual'): void {
    this.current.setResumeMode(mode);
  }

  stop(): void {
    this.stopRequested = true;
    if (!this.switching) this.current.stop();
  }

  /** Exchange (forward → reverse) or rollback (reverse → forward). Resolves with what happened. */
  switchOver(req: CutoverRequest): Promise<CutoverReport> {
    if (this.switching) return Promise.reject(new CutoverStateError('a cutover is already in progress'));
    const from: Direction = req.action === 'exchange' ? 'forward' : 'reverse';
    if (this.direction !== from) {
      return Promise.reject(new CutoverStateError(req.action === 'exchange' ? 'the clients are on the target already (exchanged): roll back first' : 'nothing to roll back: the clients are on the source'));
    }
    if (this.stopRequested) return Promise.reject(new CutoverStateError('the migration is stopping'));
    const p = this.procedure(req, from).finally(() => {
      this.switching = null;
      if (this.stopRequested) this.current.stop();
    });
    this.switching = p;
    return p;
  }

  private log(level: 'INFO' | 'WARN' | 'ERROR', code: string, message: string): void {
    // The task log when there is one (the service), else the command's logger.
    if (this.options.log) this.options.log(level, code, message);
    else this.options.logger[level === 'INFO' ? 'info' : level === 'WARN' ? 'warn' : 'error']({ code }, message);
  }

  private async procedure(req: CutoverRequest, from: Direction): Promise<CutoverReport> {
    const o = this.options;
    const to: Direction = from === 'forward' ? 'reverse' : 'forward';
    const live = from === 'forward' ? o.source : o.target;
    const passive = from === 'forward' ? o.target : o.source;
    const report: CutoverReport = { action: req.action, ok: false, direction: from, pauseMs: null, drainMs: null, hook: null, error: null, startFrom: [] };
    const m = this.current;
    if (m.inScanMode) throw new CutoverStateError('the migration runs in scan mode (no replication offsets): a cutover needs PSYNC');
    const positions = m.shardPositions();
    if (positions.length === 0 || positions.some((s) => s.phase !== 'incremental')) {
      throw new CutoverStateError(`the migration is not in its incremental phase on every shard (${positions.map((s) => `${s.name}: ${s.phase}`).join(', ') || 'connecting'}): wait until it is in sync`);
    }
    const liveMasters = positions.map((s) => s.endpoint);

    // 1. The passive side's masters, and a backlog on each (before anything is paused).
    const passiveMasters = await mastersOf(passive);
    for (const pm of passiveMasters) {
      if (await ensureBacklog(pm.endpoint)) this.log('INFO', 'CUTOVER', `${describeEndpoint(pm.endpoint)} kept no replication backlog: created one (a short replica connection) so that the new direction can continue from the switch point`);
    }

    let pause: WritePause | null = null;
    let mStopped = false;
    const resumeM = new Map<string, Checkpoint>();
    let n: Migration | null = null;
    let switched = false;
    try {
      // 2. Pause writes on the live side.
      pause = await WritePause.start(liveMasters, o.pauseTimeoutMs ?? 5000);
      // 3. Drain: M applies everything the live side had when the pause took effect.
      const drainStart = Date.now();
      await waitDrained(m, pause.offsets, o.drainTimeoutMs ?? 10_000);
      report.drainMs = Date.now() - drainStart;

      // 4. M stops where it is; N starts from the passive side's position now.
      for (const s of m.shardPositions()) if (s.checkpoint) resumeM.set(s.name, s.checkpoint);
      m.stop({ keepCheckpoints: true });
      mStopped = true;
      await this.runs.get(m)!.catch(() => undefined);
      // Where M stands after its last applied unit (later than the above only by PINGs).
      for (const s of m.shardPositions()) if (s.checkpoint && s.checkpoint.replid === resumeM.get(s.name)?.replid) resumeM.set(s.name, s.checkpoint);
      const starts = new Map<string, Checkpoint>();
      for (const pm of passiveMasters) starts.set(describeEndpoint(pm.endpoint), await markPosition(pm.endpoint, pm.slot));
      report.startFrom = [...starts];
      n = this.start(to, { startFrom: { positions: starts, prefer: 'start' } });
      await waitLinked(n, this.runs.get(n)!, passiveMasters.length, req.action === 'exchange', o.linkTimeoutMs ?? 10_000);
      report.linkMs = Date.now() - drainStart - report.drainMs;

      // 5. The hook moves the clients.
      const hookResult = await runSwitchHook(req.hook, {
        action: req.action,
        taskId: o.taskId ?? '',
        fromAddrs: live.map(describeEndpoint).join(','),
        toAddrs: passive.map(describeEndpoint).join(','),
        exchangedIp: req.exchangedIp ?? [],
        isExchangeDomain: req.isExchangeDomain ?? false,
      });
      report.hook = { ...hookResult, description: describeHook(req.hook) };
      const out = hookResult.output.trim();
      this.log(hookResult.ok ? 'INFO' : 'WARN', 'CUTOVER_HOOK', `${req.action} hook (${describeHook(req.hook)}): ${hookResult.detail} in ${hookResult.durationMs} ms${out ? `; output: ${out}` : ''}`);
      if (!hookResult.ok) {
        // A hook that timed out may have moved some clients before it was killed: the new
        // side's stream says whether writes arrived there. Then the switch must complete.
        const moved = hookResult.timedOut && n.shardPositions().some((s) => s.writesSeen > 0);
        if (!moved) throw new Error(`the ${req.action} hook failed (${hookResult.detail})`);
        report.completedAfterTimeout = true;
        this.log('WARN', 'CUTOVER_HOOK', `the ${req.action} hook timed out, but writes have reached ${passive.map(describeEndpoint).join(',')}: clients moved, so the switch completes; check that every client moved`);
      }

      // 6. Switched: clients now write on the passive side. Nothing below undoes that.
      switched = true;
      this.current = n;
      this.direction = to;
      req.onSwitched?.(to, report.startFrom);
      for (const e of liveMasters) {
        await closeClients(e).catch((err: Error) => this.log('WARN', 'CUTOVER', `could not close the client connections of ${describeEndpoint(e)}: ${err.message}`));
      }
      report.pauseMs = await pause.release();
      pause = null;
      report.ok = true;
      report.direction = to;
      const name = o.checkpointName?.(from);
      if (name) await removeAllCheckpoints(passive, name).catch((err: Error) => this.log('WARN', 'CUTOVER', `could not remove the checkpoints of the ${from} sync: ${err.message}`));
      this.log('INFO', 'CUTOVER', `${req.action} done: clients on ${passive.map(describeEndpoint).join(',')}, writes paused ${report.pauseMs} ms (drain ${report.drainMs} ms, new direction connected in ${report.linkMs} ms, hook ${hookResult.durationMs} ms); the ${to} sync runs`);
      return report;
    } catch (e) {
      if (switched) {
        // After the hook: the switch stands; only the tidying failed.
        if (pause) report.pauseMs = await pause.release();
        report.ok = true;
        report.direction = to;
        this.log('WARN', 'CUTOVER', `${req.action} done, but: ${(e as Error).message}`);
        return report;
      }
      // Before the hook succeeded: clients stay where they were.
      report.error = (e as Error).message;
      if (pause) report.pauseMs = await pause.release();
      if (n) {
        n.stop();
        await this.runs.get(n)!.catch(() => undefined);
      }
      if (mStopped) {
        this.current = this.start(from, { startFrom: { positions: resumeM, prefer: 'start' } });
      }
      this.direction = from;
      this.log('ERROR', 'CUTOVER', `${req.action} failed, nothing changed for clients (still on ${live.map(describeEndpoint).join(',')}; writes paused ${report.pauseMs ?? 0} ms): ${report.error}`);
      return report;
    }
  }
}

/** A master of a side, and a slot it owns (for the position mark on a cluster). */
interface SideMaster {
  endpoint: Endpoint;
  slot: number | null;
}

async function mastersOf(side: Endpoint[]): Promise<SideMaster[]> {
  const d = await discoverDeployment(side, { connectTimeoutMs: 5000 });
  if (d.kind === 'standalone') return [{ endpoint: d.master, slot: null }];
  return d.shards.map((s) => ({ endpoint: s.master, slot: s.slots[0]![0] }));
}

async function connect(e: Endpoint, name: string): Promise<RedisConnection> {
  return RedisConnection.connect({ host: e.host, port: e.port, user: e.user, password: e.password, tls: e.tls, name, connectTimeoutMs: 5000, replyTimeoutMs: 10_000 });
}

function text(reply: Reply | undefined): string {
  return Buffer.isBuffer(reply) ? reply.toString('latin1') : typeof reply === 'string' ? reply : '';
}

function field(info: string, name: string): string | undefined {
  return new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

/**
 * Makes sure `e` keeps a replication backlog: a master that never had a replica has none, and
 * then PSYNC can only answer with a full resync. A replica connection that asks for a full sync
 * makes it create one (and a new replication id); the connection is dropped as soon as the
 * backlog exists. Resolves true when one had to be created.
 */
export async function ensureBacklog(e: Endpoint, timeoutMs = 10_000): Promise<boolean> {
  const c = await connect(e, 'ferry-cutover');
  let primer: RedisConnection | null = null;
  try {
    if (field(text(await c.call(['INFO', 'replication'])), 'repl_backlog_active') !== '0') return false;
    primer = await connect(e, 'ferry-cutover-backlog');
    primer.send(Buffer.from('*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n', 'latin1'));
    const deadline = Date.now() + timeoutMs;
    while (field(text(await c.call(['INFO', 'replication'])), 'repl_backlog_active') === '0') {
      if (Date.now() > deadline) throw new Error(`${describeEndpoint(e)} did not create a replication backlog within ${timeoutMs} ms`);
      await sleep(10);
    }
    return true;
  } finally {
    primer?.destroy('done');
    await c.close().catch(() => undefined);
  }
}

/**
 * Where `e`'s replication stream stands now, with a known db: a write of Ferry's own in db 0
 * (in a slot the master owns on a cluster), then INFO, in one burst — nothing runs between them
 * on the server, so the stream is in db 0 at the offset read.
 */
export async function markPosition(e: Endpoint, slot: number | null): Promise<Checkpoint> {
  const c = await connect(e, 'ferry-cutover');
  try {
    const key = slot === null ? '__ferry:cutover:mark' : `__ferry:cutover:mark:{${slotTag(slot)}}`;
    const set = c.call(['SET', key, String(Date.now())]);
    const del = c.call(['DEL', key]);
    const info = c.call(['INFO', 'replication']);
    await Promise.all([set, del]);
    const text_ = text(await info);
    const replid = field(text_, 'master_replid');
    const offset = Number(field(text_, 'master_repl_offset'));
    if (!replid || !Number.isFinite(offset)) throw new Error(`${describeEndpoint(e)} did not tell its replication offset`);
    return { replid, appliedOffset: offset, db: 0 };
  } finally {
    await c.close().catch(() => undefined);
  }
}

/**
 * Writes paused on a set of masters: `CLIENT PAUSE <ms> WRITE` (reads go on), renewed every
 * third of the timeout until released, and each master's offset once it took effect. Redis 6.2+
 * only: an older pause holds every command, Ferry's too, and cannot be lifted early, so the
 * writes it held would run on the old side after the switch, where nothing syncs from.
 */
export class WritePause {
  private renew: NodeJS.Timeout | null = null;
  private released: Promise<number> | null = null;

  private constructor(
    private readonly connections: RedisConnection[],
    readonly pausedAt: number,
    /** master_repl_offset and master_replid of each master (by host:port) once paused. */
    readonly offsets: Map<string, { replid: string; offset: number }>,
  ) {}

  static async start(masters: Endpoint[], timeoutMs: number): Promise<WritePause> {
    const connections: RedisConnection[] = [];
    try {
      for (const e of masters) {
        const c = await connect(e, 'ferry-cutover');
        connections.push(c);
        const version = (field(text(await c.call(['INFO', 'server'])), 'redis_version') ?? '0').split('.').map(Number);
        if (!(version[0]! > 6 || (version[0] === 6 && version[1]! >= 2))) {
          throw new Error(`${describeEndpoint(e)} runs Redis ${version.join('.')}: a cutover needs 6.2 or later (CLIENT PAUSE ... WRITE and CLIENT UNPAUSE; an older pause cannot be lifted early and would let the writes it held run on the old side after the switch)`);
        }
      }
    } catch (e) {
      for (const c of connections) c.destroy('failed');
      throw e;
    }
    const offsets = new Map<string, { replid: string; offset: number }>();
    // Every master paused at once (the pause is as long as the slowest shard's drain).
    const pausedAt = Date.now();
    const pause = new WritePause(connections, pausedAt, offsets);
    try {
      await Promise.all(
        connections.map(async (c, i) => {
          await c.call(['CLIENT', 'PAUSE', timeoutMs, 'WRITE']);
          const info = text(await c.call(['INFO', 'replication']));
          const replid = field(info, 'master_replid');
          const offset = Number(field(info, 'master_repl_offset'));
          if (!replid || !Number.isFinite(offset)) throw new Error(`${describeEndpoint(masters[i]!)} did not tell its replication offset`);
          offsets.set(describeEndpoint(masters[i]!), { replid, offset });
        }),
      );
    } catch (e) {
      await pause.release();
      throw e;
    }
    pause.renew = setInterval(() => {
      for (const c of connections) c.call(['CLIENT', 'PAUSE', timeoutMs, 'WRITE']).catch(() => undefined);
    }, Math.max(100, Math.floor(timeoutMs / 3)));
    return pause;
  }

  /** Lifts the pause (CLIENT UNPAUSE). Resolves with how long it lasted (ms). */
  release(): Promise<number> {
    this.released ??= (async () => {
      if (this.renew) clearInterval(this.renew);
      await Promise.all(this.connections.map((c) => c.call(['CLIENT', 'UNPAUSE']).catch(() => undefined)));
      const ms = Date.now() - this.pausedAt;
      for (const c of this.connections) await c.close().catch(() => undefined);
      return ms;
    })();
    return this.released;
  }
}

/** Resolves when every shard of `m` has applied up to its master's paused offset. */
async function waitDrained(m: Migration, offsets: Map<string, { replid: string; offset: number }>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const shards = m.shardPositions();
    const behind: string[] = [];
    for (const s of shards) {
      const want = offsets.get(s.name);
      if (!want) throw new Error(`no paused offset for ${s.name}`);
      if (s.phase !== 'incremental') throw new Error(`shard ${s.name} left the stream (${s.phase}) during the drain`);
      if (s.replid !== want.replid) throw new Error(`shard ${s.name} follows history ${s.replid}, its master is on ${want.replid} (a failover?)`);
      if (s.appliedOffset < want.offset) behind.push(`${s.name} ${want.offset - s.appliedOffset} bytes behind`);
    }
    if (behind.length === 0) return;
    if (Date.now() > deadline) throw new Error(`the target did not apply what the paused side had within ${timeoutMs} ms (drain timeout): ${behind.join(', ')}`);
    await sleep(2);
  }
}

/** Resolves when every shard of `n` has its PSYNC answer (exchange: +CONTINUE only). */
async function waitLinked(n: Migration, run: Promise<MigrationProgress>, shards: number, continueOnly: boolean, timeoutMs: number): Promise<void> {
  let failed: Error | null = null;
  run.catch((e: Error) => (failed = e));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (failed) throw new Error(`the new direction could not start: ${(failed as Error).message}`);
    const p: ShardPosition[] = n.shardPositions();
    if (p.length === shards && p.every((s) => s.phase !== 'connecting')) {
      const full = p.find((s) => s.phase !== 'incremental');
      if (continueOnly && full) throw new Error(`${full.name} could not continue from the switch point (${full.phase})`);
      return;
    }
    if (Date.now() > deadline) throw new Error(`the new direction did not connect within ${timeoutMs} ms`);
    await sleep(2);
  }
}

/**
 * Closes every client connection of `e` but Ferry's own and replicas: a write that a client
 * sent during the pause must not run on the old side after the switch; its client sees the
 * connection drop and retries where the hook pointed it.
 */
export async function closeClients(e: Endpoint): Promise<number> {
  const c = await connect(e, 'ferry-cutover');
  try {
    const list = text(await c.call(['CLIENT', 'LIST']));
    const ids: string[] = [];
    for (const line of list.split('\n')) {
      const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1];
      const name = /(?:^|\s)name=(\S*)/.exec(line)?.[1] ?? '';
      const flags = /(?:^|\s)flags=(\S*)/.exec(line)?.[1] ?? '';
      // Ferry's own (named ferry-*), replicas and masters, Sentinel's links to the master.
      if (!id || name.startsWith('ferry') || name.startsWith('sentinel-') || /[SM]/.test(flags)) continue;
      ids.push(id);
    }
    await Promise.all(ids.map((id) => c.call(['CLIENT', 'KILL', 'ID', id]).catch(() => undefined)));
    return ids.length;
  } finally {
    await c.close().catch(() => undefined);
  }
}
