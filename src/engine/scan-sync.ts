/**
 * Scan mode: the counterpart of ShardSync for sources that refuse SYNC/PSYNC (managed services,
 * proxies). One ScanSync per source master; one ScanConvergence per migration runs the
 * verify-and-repair rounds over the whole deployment.
 *
 *   subscribe (PSUBSCRIBE __keyspace@*__:*, before anything is read)
 *     → full phase: SCAN every db, each key DUMP (+ PEXPIRETIME) → RESTORE ... ABSTTL REPLACE
 *     → incremental: each notified key is read again (DUMP/RESTORE, or DEL when gone)
 *     → convergence: rounds of verify (src/verify) that re-copy every key that differs,
 *       until a round finds nothing; lost notifications are looked for (dropped subscription,
 *       FLUSHDB/FLUSHALL/SWAPDB in INFO commandstats, INFO keyspace drift) and each asks for
 *       a round.
 *
 * Lag (stream.lagBytes) is the number of keys waiting to be copied, plus one while a round is
 * owed or the last one found differences: 0 means converged, as "lag 0" does in PSYNC mode.
 */
import type { Logger } from 'pino';
import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { discoverDeployment } from '../cluster/topology.js';
import { slotOf } from '../common/slots.js';
import { restorableOn } from '../rdb/dump.js';
import { RedisConnection } from '../resp/connection.js';
import { encodeCommand } from '../resp/encode.js';
import type { Reply } from '../resp/reply-decoder.js';
import { probeSource, type SourceCaps } from '../source/scan/capabilities.js';
import { SourceKeyReader } from '../source/scan/key-reader.js';
import { enableNotifications, KeyspaceSubscriber, type NotificationSetup } from '../source/scan/keyspace-notifications.js';
import type { Throttle } from '../source/throttle.js';
import type { FlowControl } from '../target/flow-control.js';
import type { OpenedTarget } from './open-target.js';
import type { TargetRefusals } from './refusal-policy.js';
import { verifyDeployments } from '../verify/index.js';
import type { DbMapper } from './db-map.js';
import type { WriteErrorLog } from './errors.js';
import { KeyCopier } from './scan-copier.js';
import type { ShardPhase } from './shard-sync.js';
import { emptyStreamStats, type Checkpoint, type RepairRound, type ScanStats, type ShardProgress, type SnapshotStats, type StreamStats } from './stats.js';

/** Scan mode cannot run on this source at all (no SCAN, notifications required but refused). */
export class ScanModeError extends Error {}

export interface ScanSyncOptions {
  source: Endpoint;
  target: OpenedTarget;
  method: 'full' | 'incremental';
  dbs: DbMapper;
  errors: WriteErrorLog;
  /** The migration's refusal policy and flow control, shared with every other writer. */
  refusals: TargetRefusals;
  flow: FlowControl;
  snapshot: SnapshotStats;
  logger: Logger;
  rewriteAlways: boolean;
  /** Keys larger than this (MEMORY USAGE) are copied with type commands. Default 16 MiB. */
  maxPayloadBytes?: number;
  resumeMode?: 'auto' | 'manual';
  throttle?: Throttle;
  convergence: ScanConvergence;
  /** Why scan mode runs, for stats and logs. */
  reason: string;
  /** Pipelined source connections for DUMP. Default 4. */
  readerConnections?: number;
  /** How often commandstats and the subscription are checked. Default 500 ms. */
  pollIntervalMs?: number;
}

const ROUNDS_KEPT = 10;
/** Repairs of one key in consecutive rounds before it is reported as an error instead. */
const MAX_REPAIRS = 3;
const WATCHED_COMMANDS = ['flushdb', 'flushall', 'swapdb'];
const FUNCTION_COMMANDS = ['function|load', 'function|delete', 'function|flush', 'function|restore'];

/** `cmdstat_<name>:calls=N` counts from INFO commandstats. */
function commandCalls(info: string, names: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const name of names) {
    const m = new RegExp(`^cmdstat_${name.replace('|', '\\|')}:calls=(\\d+)`, 'm').exec(info);
    out.set(name, m ? Number(m[1]) : 0);
  }
  return out;
}

/** Per db: keys and keys with a TTL, from INFO keyspace. */
function keyspaceCounts(info: string): Map<number, { keys: number; expires: number }> {
  const out = new Map<number, { keys: number; expires: number }>();
  for (const m of info.matchAll(/^db(\d+):keys=(\d+),expires=(\d+)/gm)) out.set(Number(m[1]), { keys: Number(m[2]), expires: Number(m[3]) });
  return out;
}

/** The copier's queue is empty, or `ms` have passed. */
async function settled(copier: KeyCopier | null, ms: number): Promise<void> {
  if (!copier) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([copier.idle(), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

function sleep(ms: number, wake?: (w: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    wake?.(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

export class ScanSync {
  phase: ShardPhase = 'connecting';
  readonly stream: StreamStats = emptyStreamStats();
  readonly replid = null;
  readonly snapshotBytesTotal = null;
  reconnects = 0;
  readonly fullResyncs = 0;
  copier: KeyCopier | null = null;
  private reader: SourceKeyReader | null = null;
  private control: RedisConnection | null = null;
  private subscriber: KeyspaceSubscriber | null = null;
  private caps: SourceCaps | null = null;
  private setup: NotificationSetup | null = null;
  private stopRequested = false;
  private onPhase: (s: ScanSync) => void = () => undefined;
  private wakeLoop: (() => void) | null = null;
  private sourceError: Error | null = null;
  private subscriptionGone: string | null = null;
  private watched: Map<string, number> | null = null;
  private functionCalls: Map<string, number> | null = null;
  private notifications = 0;
  private subscriptionLosses = 0;
  private resubscribeFailures = 0;
  private bytesBefore = 0;
  /** Counters of earlier attempts (a restart makes a new copier). */
  private earlier = { scanned: 0, copied: 0, recopied: 0, repaired: 0, deleted: 0, chunked: 0, overflows: 0 };

  constructor(private readonly options: ScanSyncOptions) {
    options.convergence.register(this);
  }

  get name(): string {
    return describeEndpoint(this.options.source);
  }

  get bytesReceived(): number {
    return this.bytesBefore + (this.reader?.bytesRead ?? 0);
  }

  /** Scan mode has no replication offset to resume from: a restart scans again. */
  checkpoint(): Checkpoint | null {
    return null;
  }

  setResumeMode(mode: 'auto' | 'manual'): void {
    this.options.resumeMode = mode;
  }

  onPhaseChange(fn: (s: ScanSync) => void): void {
    this.onPhase = fn;
  }

  /**
   * Sentinel announced a new master: nothing to cut here (scan mode has no replica link); the
   * reader's connections follow the address on their next reconnect.
   */
  sourceMoved(): void {}

  stop(): void {
    this.stopRequested = true;
    this.copier?.stop();
    this.options.convergence.stop();
    this.wakeLoop?.();
  }

  private setPhase(phase: ShardPhase): void {
    if (this.phase === phase) return;
    this.phase = phase;
    this.onPhase(this);
  }

  /** Keys waiting, plus one while the deployment is not known to be converged. */
  updateLag(_sourceOffset?: number | null): void {
    if (this.phase !== 'incremental' && this.phase !== 'reconnecting') return;
    const waiting = this.copier?.waiting ?? 0;
    const lag = this.phase === 'reconnecting' ? null : waiting + (this.options.convergence.unconverged ? 1 : 0);
    this.stream.lagBytes = lag;
    this.stream.lagSeconds = lag === 0 ? 0 : null;
    const c = this.counts();
    this.stream.commandsForwarded = c.copied + c.deleted;
  }

  private counts(): ScanSync['earlier'] {
    const now = this.copier?.counts;
    const e = this.earlier;
    if (!now) return { ...e };
    return {
      scanned: e.scanned + now.scanned,
      copied: e.copied + now.copied,
      recopied: e.recopied + now.recopied,
      repaired: e.repaired + now.repaired,
      deleted: e.deleted + now.deleted,
      chunked: e.chunked + now.chunked,
      overflows: e.overflows + now.overflows,
    };
  }

  scanStats(): ScanStats {
    const c = this.counts();
    const setup = this.setup?.state;
    return {
      keysScanned: c.scanned,
      keysCopied: c.copied,
      keysRecopied: c.recopied,
      keysRepaired: c.repaired,
      keysDeleted: c.deleted,
      keysChunked: c.chunked,
      notifications: this.notifications,
      keysWaiting: this.copier?.waiting ?? 0,
      dirtyOverflows: c.overflows,
      subscriptionLosses: this.subscriptionLosses,
      notificationSetup: setup === 'enabled' || setup === 'already' || setup === 'unknown' ? setup : 'off',
      rounds: this.options.convergence.rounds.map((r) => ({ ...r })),
    };
  }

  /** The fields ShardProgress gains in scan mode. */
  modeProgress(): Pick<ShardProgress, 'mode' | 'modeReason' | 'scan'> {
    return { mode: 'scan', modeReason: this.options.reason, scan: this.scanStats() };
  }

  /** Every notification published before the call has been seen. */
  async subscriberBarrier(): Promise<void> {
    await this.subscriber?.barrier().catch(() => undefined);
  }

  /** Resolves when the full phase is done (full) or the shard is stopped; rejects on failure. */
  async run(): Promise<void> {
    const o = this.options;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.runOnce();
        return;
      } catch (e) {
        if (this.stopRequested) return;
        if (e instanceof ScanModeError || o.resumeMode !== 'auto') {
          this.setPhase('failed');
          throw e;
        }
        this.reconnects++;
        o.logger.warn({ shard: this.name, attempt, reason: (e as Error).message }, 'scan mode: lost the source; starting the shard again');
        if (this.phase === 'incremental') this.setPhase('reconnecting');
        await sleep(Math.min(10_000, 250 * 2 ** Math.min(attempt - 1, 6)), (w) => (this.wakeLoop = w));
        if (this.stopRequested) return;
      }
    }
  }

  private async runOnce(): Promise<void> {
    const o = this.options;
    this.sourceError = null;
    this.subscriptionGone = null;
    try {
      await this.open();
      if (this.stopRequested) return;
      const copier = this.copier!;
      if (this.phase !== 'reconnecting' || !this.options.convergence.started) {
        await this.fullPhase(copier);
        if (this.stopRequested) return;
        if (o.method === 'full') {
          this.setPhase('done');
          return;
        }
      } else {
        // A restart while incremental: what changed meanwhile is found by a round.
        this.options.convergence.require(`the source ${this.name} was reconnected`);
      }
      this.setPhase('incremental');
      this.options.convergence.shardReady();
      await this.incremental();
    } finally {
      await this.close();
    }
  }

  /** Connects, checks what the source allows, subscribes, then opens the readers. */
  private async open(): Promise<void> {
    const o = this.options;
    const where = this.name;
    this.control = await RedisConnection.connect({ ...o.source, name: 'ferry-scan-control' });
    const caps = (this.caps = await probeSource(this.control));
    if (!caps.scan) throw new ScanModeError(`source ${where} refuses SCAN: scan mode cannot list its keys`);
    if (!caps.dump) o.logger.warn({ shard: where }, 'the source refuses DUMP: every key is copied with type commands (slower)');
    if (!caps.memoryUsage) o.logger.warn({ shard: where }, `the source refuses MEMORY USAGE: keys are DUMPed whole whatever their size`);

    // Subscribed before the first key is read, so that no change made during the scan is missed.
    this.setup = await enableNotifications(this.control, where);
    const setup = this.setup;
    if (setup.state === 'refused') {
      if (o.method === 'incremental') throw new ScanModeError(setup.reason);
      o.logger.warn({ shard: where, reason: setup.reason }, 'keyspace notifications are off: keys changed during the scan may be copied in an older state');
    } else if (setup.state === 'unknown') {
      o.logger.warn({ shard: where, reason: setup.reason }, 'cannot check notify-keyspace-events: it must contain K and A (e.g. "KA"), otherwise changes are only caught by repair rounds');
    } else if (setup.state === 'enabled') {
      o.logger.info({ shard: where, previous: setup.previous }, 'enabled keyspace notifications on the source (the old value is restored at the end)');
    }

    this.reader = await SourceKeyReader.open(
      {
        endpoint: o.source,
        caps,
        connections: o.readerConnections ?? 4,
        maxWholeBytes: o.maxPayloadBytes ?? 16 * 1024 * 1024,
        restorable: (type) => !o.rewriteAlways && restorableOn(type, caps.valkey && caps.version[0] >= 9 ? 'VALKEY' : 'REDIS', o.target.info.format),
        throttle: o.throttle ?? null,
      },
      (e) => this.lost(e),
    );
    await this.reader.prepare();
    this.copier = new KeyCopier({
      reader: this.reader,
      target: o.target,
      dbs: o.dbs,
      errors: o.errors,
      refusals: o.refusals,
      flow: o.flow,
      stats: o.snapshot,
      logger: o.logger,
      onOverflow: () => this.options.convergence.require(`the set of changed keys of ${where} overflowed`),
      onSourceLost: (e) => this.lost(e),
    });
    if (setup.state !== 'refused') await this.subscribe();
    await this.readCommandStats();
  }

  /** `again`: after a loss; a failure is then the caller's to retry, not a reason to give up. */
  private async subscribe(again = false): Promise<void> {
    const copier = this.copier!;
    try {
      this.subscriber = await KeyspaceSubscriber.open(
        this.options.source,
        (db, key) => {
          this.notifications++;
          copier.notify(db, key);
        },
        (reason) => {
          this.subscriptionLosses++;
          this.subscriptionGone = reason;
          this.wakeLoop?.();
        },
      );
    } catch (e) {
      if (again) throw e;
      if (this.options.method === 'incremental') throw new ScanModeError((e as Error).message);
      this.options.logger.warn({ shard: this.name, reason: (e as Error).message }, 'no keyspace notifications: keys changed during the scan may be copied in an older state');
    }
  }

  private lost(e: Error): void {
    this.sourceError ??= e;
    this.copier?.stop();
    this.wakeLoop?.();
  }

  private async fullPhase(copier: KeyCopier): Promise<void> {
    const o = this.options;
    this.setPhase('snapshot');
    o.snapshot.startedAt ??= Date.now();
    await this.copyFunctions('REPLACE');
    const info = await this.control!.call(['INFO', 'keyspace']);
    const dbs = [...keyspaceCounts(Buffer.isBuffer(info) ? info.toString('latin1') : '').keys()].filter((db) => o.dbs.placement(db) !== null);
    o.logger.info({ shard: this.name, dbs, reason: o.reason }, 'scan mode: full phase started');
    const shard = this;
    const signal = {
      failed: false,
      get stopped(): boolean {
        return this.failed || shard.stopRequested;
      },
    };
    const scanDb = async (db: number): Promise<void> => {
      await this.reader!.scan(db, async (keys) => {
        for (const key of keys) {
          if (this.sourceError) throw this.sourceError;
          const wait = copier.copy(db, key, 'scan');
          if (wait) await wait;
        }
      }, signal);
    };
    // Several dbs at once (each SCAN cursor is sequential), at most 4.
    const queue = [...dbs];
    const workers = Array.from({ length: Math.min(4, queue.length) }, async () => {
      for (let db = queue.shift(); db !== undefined; db = queue.shift()) await scanDb(db);
    });
    try {
      await Promise.all(workers);
    } catch (e) {
      signal.failed = true;
      throw e;
    }
    if (o.method === 'full') {
      // What was notified during the scan is copied; later writes are not waited for (under a
      // steady write load the set of changed keys would never empty).
      this.subscriber?.close();
      this.subscriber = null;
      await copier.idle();
    } else await settled(copier, 5000);
    if (this.sourceError) throw this.sourceError;
    await o.target.drain();
    o.logger.info({ shard: this.name, ...copier.counts }, 'scan mode: full phase applied');
  }

  /** FUNCTION DUMP → FUNCTION RESTORE on every target master (REPLACE at first, FLUSH to mirror later changes). */
  async copyFunctions(policy: 'REPLACE' | 'FLUSH'): Promise<void> {
    if (!this.caps?.functionDump || !this.control) return;
    const payload = await this.control.call(['FUNCTION', 'DUMP']);
    if (!Buffer.isBuffer(payload)) return;
    const libraries = Number(((await this.control.call(['FUNCTION', 'LIST'])) as Reply[] | null)?.length ?? 0);
    if (libraries === 0 && policy === 'REPLACE') return;
    this.options.snapshot.functions += libraries;
    await new Promise<void>((resolve) =>
      this.options.target.broadcast(encodeCommand(['FUNCTION', 'RESTORE', payload, policy]), (error) => {
        if (error) this.options.errors.record(0, null, 'FUNCTION RESTORE', error);
        resolve();
      }),
    );
  }

  /** FLUSHDB, FLUSHALL, SWAPDB and FUNCTION changes emit no per-key notification: count them. */
  private async readCommandStats(): Promise<void> {
    if (!this.caps?.commandStats || !this.control) return;
    const reply = await this.control.call(['INFO', 'commandstats']);
    const text = Buffer.isBuffer(reply) ? reply.toString('latin1') : '';
    const watched = commandCalls(text, WATCHED_COMMANDS);
    const functions = commandCalls(text, FUNCTION_COMMANDS);
    const changed = (before: Map<string, number> | null, now: Map<string, number>): string[] =>
      before ? [...now].filter(([name, calls]) => before.get(name) !== calls).map(([name]) => name.toUpperCase()) : [];
    const flushes = changed(this.watched, watched);
    const fns = changed(this.functionCalls, functions);
    this.watched = watched;
    this.functionCalls = functions;
    if (flushes.length > 0) this.options.convergence.require(`${flushes.join(', ')} ran on ${this.name} (no per-key notifications)`);
    if (fns.length > 0) {
      this.options.logger.info({ shard: this.name, commands: fns }, 'the source changed its function libraries: copying them again');
      await this.copyFunctions('FLUSH');
    }
  }

  private async incremental(): Promise<void> {
    const o = this.options;
    const interval = o.pollIntervalMs ?? 500;
    while (!this.stopRequested) {
      await sleep(interval, (w) => (this.wakeLoop = w));
      this.wakeLoop = null;
      if (this.stopRequested) return;
      if (this.sourceError) throw this.sourceError;
      if (this.subscriptionGone !== null) {
        const reason = this.subscriptionGone;
        o.logger.warn({ shard: this.name, reason }, 'lost the keyspace subscription: subscribing again, then a repair round finds what was missed');
        this.subscriber?.close();
        this.subscriber = null;
        this.subscriptionGone = null;
        try {
          await this.subscribe(true);
        } catch (e) {
          // Logged on the 1st, 2nd, 4th, 8th... failure in a row, not twice a second.
          const n = ++this.resubscribeFailures;
          if ((n & (n - 1)) === 0) o.logger.warn({ shard: this.name, failures: n, err: (e as Error).message }, 'could not subscribe again; retrying');
          this.subscriptionGone = reason;
          continue;
        }
        this.resubscribeFailures = 0;
        o.convergence.require(`the keyspace subscription to ${this.name} was lost (${reason})`);
      }
      await this.readCommandStats();
      this.updateLag();
    }
  }

  /** INFO keyspace of this master (for drift checks). */
  async keyspace(): Promise<Map<number, { keys: number; expires: number }> | null> {
    try {
      const r = await this.control?.call(['INFO', 'keyspace']);
      return Buffer.isBuffer(r) ? keyspaceCounts(r.toString('latin1')) : null;
    } catch {
      return null;
    }
  }

  private async close(): Promise<void> {
    const c = this.copier?.counts;
    if (c) for (const k of Object.keys(this.earlier) as (keyof ScanSync['earlier'])[]) this.earlier[k] += c[k];
    this.bytesBefore += this.reader?.bytesRead ?? 0;
    this.copier?.stop();
    this.subscriber?.close();
    this.subscriber = null;
    this.reader?.close();
    this.reader = null;
    const setup = this.setup;
    if (setup?.state === 'enabled' && this.control && !this.control.error) {
      await this.control.call(['CONFIG', 'SET', 'notify-keyspace-events', setup.previous]).then(
        () => this.options.logger.info({ shard: this.name, value: setup.previous }, 'restored notify-keyspace-events on the source'),
        (e: Error) => this.options.logger.warn({ shard: this.name, err: e.message }, 'could not restore notify-keyspace-events on the source'),
      );
    }
    this.setup = setup?.state === 'enabled' ? { state: 'already' } : setup;
    void this.control?.close().catch(() => undefined);
    this.control = null;
  }
}

export interface ScanConvergenceOptions {
  source: Endpoint[];
  target: Endpoint[];
  targetHandle: OpenedTarget;
  dbs: DbMapper | undefined;
  logger: Logger;
  errors: WriteErrorLog;
  /** A routine round after this long without one. Default 10 minutes. */
  repairIntervalMs?: number;
}

/**
 * Verify-and-repair rounds over the whole deployment (every master of a cluster source), run
 * once every shard has finished its full phase: round 1 of src/verify compares every key both
 * ways; each key that differs is re-copied by the shard that owns it. A difference for a key
 * that is already queued, or was notified during the round, is no finding (it is being copied);
 * anything else was missed (a lost notification, a flush) and counts. Rounds follow each
 * other until one finds nothing; then one runs every repairIntervalMs, or when a shard asks.
 */
export class ScanConvergence {
  private readonly shards: ScanSync[] = [];
  private ready = 0;
  private needed: string | null = 'the first round after the full phase';
  private lastFound = 0;
  private runningRequired = false;
  private stopped = false;
  private wake: (() => void) | null = null;
  private abort: AbortController | null = null;
  private loop: Promise<void> | null = null;
  private slotShard: Int32Array | null = null;
  private lastDrift: string | null = null;
  readonly rounds: RepairRound[] = [];
  private roundNo = 0;
  /** Keys found differing in consecutive rounds, and how many rounds in a row. */
  private repeats = new Map<string, number>();
  /** Keys that still differ after repeated repairs: reported once as errors, then left alone. */
  private readonly unrepairable = new Set<string>();

  constructor(private readonly o: ScanConvergenceOptions) {}

  register(shard: ScanSync): void {
    this.shards.push(shard);
  }

  get started(): boolean {
    return this.loop !== null;
  }

  /** True while a round is owed, runs because one was owed, or the last one found keys. */
  get unconverged(): boolean {
    return this.needed !== null || this.runningRequired || this.lastFound > 0;
  }

  /** A shard finished its full phase; rounds start when all have. */
  shardReady(): void {
    this.ready++;
    if (this.ready >= this.shards.length && !this.loop && !this.stopped) {
      this.loop = this.run().catch((e: Error) => this.o.logger.error({ err: e.message }, 'scan mode: the repair rounds stopped'));
    }
  }

  require(reason: string): void {
    if (this.needed === null) {
      this.needed = reason;
      this.o.logger.info({ reason }, 'scan mode: a repair round is needed');
    }
    this.wake?.();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort(new Error('stopped'));
    this.wake?.();
  }

  private async run(): Promise<void> {
    let nextRoutine = Date.now() + (this.o.repairIntervalMs ?? 600_000);
    while (!this.stopped) {
      const owed = this.needed ?? (this.lastFound > 0 ? `the last round found ${this.lastFound} differing keys` : null);
      const due = owed ?? (Date.now() >= nextRoutine ? 'the periodic check' : null);
      if (due === null) {
        await sleep(1000, (w) => (this.wake = w));
        this.wake = null;
        await this.checkDrift();
        continue;
      }
      // Let the copies of what was just found (or notified) settle first (not forever: under
      // a steady write load something is always being copied).
      await Promise.all(this.shards.map((s) => settled(s.copier, 5000)));
      if (this.stopped) return;
      this.runningRequired = owed !== null;
      this.needed = null;
      await this.round(due);
      this.runningRequired = false;
      nextRoutine = Date.now() + (this.o.repairIntervalMs ?? 600_000);
    }
  }

  private async shardOf(key: Buffer): Promise<ScanSync> {
    if (this.shards.length === 1) return this.shards[0]!;
    if (!this.slotShard) {
      const dep = await discoverDeployment(this.o.source);
      const map = new Int32Array(16384).fill(0);
      if (dep.kind === 'cluster') {
        for (const shard of dep.shards) {
          const i = this.shards.findIndex((s) => s.name === describeEndpoint(shard.master));
          for (const [a, b] of shard.slots) for (let slot = a; slot <= b; slot++) map[slot] = Math.max(0, i);
        }
      }
      this.slotShard = map;
    }
    return this.shards[this.slotShard[slotOf(key)]!]!;
  }

  private async round(reason: string): Promise<void> {
    const record: RepairRound = { round: ++this.roundNo, reason, startedAt: Date.now(), finishedAt: null, keysChecked: 0, found: 0 };
    this.rounds.push(record);
    if (this.rounds.length > ROUNDS_KEPT) this.rounds.shift();
    this.o.logger.info({ round: record.round, reason }, 'scan mode: verify-and-repair round started');
    for (const s of this.shards) s.copier?.roundStarted();
    let functionsDiffer = false;
    const repeats = new Map<string, number>();
    this.abort = new AbortController();
    try {
      const report = await verifyDeployments({
        source: this.o.source,
        target: this.o.target,
        ...(this.o.dbs ? { dbs: this.o.dbs } : {}),
        rounds: 1,
        maxReported: 0,
        signal: this.abort.signal,
        onDifference: async (d, src) => {
          if (!src) {
            if (d.kind === 'function') functionsDiffer = true;
            return;
          }
          const shard = await this.shardOf(src.key);
          const copier = shard.copier;
          if (!copier) return;
          // A difference for a key notified meanwhile is a copy on its way, not a finding.
          await shard.subscriberBarrier();
          if (!copier.isPending(src.db, src.key) && !copier.touchedDuringRound(src.db, src.key)) {
            const id = `${src.db}:${src.key.toString('latin1')}`;
            if (this.unrepairable.has(id)) return;
            const times = (this.repeats.get(id) ?? 0) + 1;
            if (times > MAX_REPAIRS) {
              // Copied again and again and still different: something the copy cannot carry.
              if (this.unrepairable.size < 10_000) this.unrepairable.add(id);
              this.o.errors.record(src.db, src.key, 'repair', `the key still differs after ${MAX_REPAIRS} repairs: ${d.detail}`);
              return;
            }
            if (repeats.size < 10_000) repeats.set(id, times);
            record.found++;
            this.o.logger.debug({ db: src.db, kind: d.kind, detail: d.detail }, 'scan mode: repairing a key');
          }
          await copier.copy(src.db, Buffer.from(src.key), 'repair');
        },
      });
      record.keysChecked = report.keysChecked;
      this.repeats = repeats;
      if (functionsDiffer) {
        record.found++;
        await this.shards[0]?.copyFunctions('FLUSH');
      }
      await Promise.all(this.shards.map((s) => settled(s.copier, 5000)));
      this.lastFound = record.found;
      record.finishedAt = Date.now();
      this.o.logger.info({ round: record.round, keysChecked: record.keysChecked, found: record.found, ms: record.finishedAt - record.startedAt }, 'scan mode: verify-and-repair round done');
    } catch (e) {
      if (this.stopped) return;
      this.o.logger.warn({ round: record.round, err: (e as Error).message }, 'scan mode: the repair round failed; it will run again');
      this.needed ??= `the last round failed: ${(e as Error).message}`;
      await sleep(2000, (w) => (this.wake = w));
    } finally {
      // Past TOUCHED_LIMIT changed keys a difference cannot be told from a copy on its way:
      // such a round proves nothing, so another one follows (after a pause: the load is heavy).
      const inconclusive = this.shards.map((s) => s.copier?.roundEnded() ?? false).some(Boolean);
      if (inconclusive && !this.stopped) {
        this.needed ??= 'the last round was inconclusive (too many keys changed during it)';
        await sleep(5000, (w) => (this.wake = w));
      }
      this.abort = null;
    }
  }

  /**
   * When nothing waits, the keys without a TTL must be as many on the target as on the source
   * (keys with one may linger, expired, on either side): when not, something was missed.
   */
  private async checkDrift(): Promise<void> {
    if (this.shards.some((s) => s.phase !== 'incremental' || (s.copier?.waiting ?? 1) > 0) || this.needed !== null) return;
    const dbs = this.o.dbs;
    const source = new Map<number, number>();
    for (const s of this.shards) {
      const ks = await s.keyspace();
      if (!ks) return;
      for (const [db, c] of ks) {
        const place = dbs ? dbs.placement(db) : { db, prefix: null };
        if (!place) continue;
        const tdb = this.o.targetHandle.kind === 'cluster' ? 0 : place.db;
        source.set(tdb, (source.get(tdb) ?? 0) + c.keys - c.expires);
      }
    }
    const target = await targetKeyspace(this.o.targetHandle);
    if (!target) return;
    // A target db that a source db maps to, holding keys the source db no longer has (flushed, swapped away).
    for (const db of target.keys()) {
      const place = dbs ? dbs.placement(db) : { db };
      if (place && (this.o.targetHandle.kind === 'cluster' ? 0 : place.db) === db && !source.has(db)) source.set(db, 0);
    }
    const drift: string[] = [];
    for (const [db, n] of source) {
      const t = target.get(db);
      const persistent = t ? t.keys - t.expires : 0;
      if (persistent !== n) drift.push(`db${db}: ${n} persistent keys on the source, ${persistent} on the target`);
    }
    const text = drift.length ? drift.join('; ') : null;
    if (text !== null && text !== this.lastDrift) this.require(`keyspace drift (${text})`);
    this.lastDrift = text;
  }
}

/** INFO keyspace summed over the target's masters. */
async function targetKeyspace(target: OpenedTarget): Promise<Map<number, { keys: number; expires: number }> | null> {
  const replies: Reply[] = [];
  try {
    if (target.kind === 'standalone') replies.push((await target.writer.lanes[0]!.call(0, ['INFO', 'keyspace'])) ?? null);
    else {
      for (const m of target.router.masters()) {
        replies.push(
          await new Promise<Reply>((resolve, reject) =>
            target.router.sendToMaster(m, encodeCommand(['INFO', 'keyspace']), (e, r) => (e ? reject(new Error(e)) : resolve(r ?? null))),
          ),
        );
      }
    }
  } catch {
    return null;
  }
  const out = new Map<number, { keys: number; expires: number }>();
  for (const r of replies) {
    if (!Buffer.isBuffer(r)) return null;
    for (const [db, c] of keyspaceCounts(r.toString('latin1'))) {
      const t = out.get(db) ?? { keys: 0, expires: 0 };
      t.keys += c.keys;
      t.expires += c.expires;
      out.set(db, t);
    }
  }
  return out;
}
