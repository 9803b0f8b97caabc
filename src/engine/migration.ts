import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { discoverDeployment } from '../cluster/topology.js';
import type { Deployment } from '../cluster/topology-types.js';
import type { ClusterRouter } from '../cluster/router.js';
import { RedisConnection } from '../resp/connection.js';
import type { Reply } from '../resp/reply-decoder.js';
import { encodeCommand } from '../resp/encode.js';
import { keyspaceOf } from '../common/info.js';
import { slotOf } from '../common/slots.js';
import { FlowControl } from '../target/flow-control.js';
import { Throttle } from '../source/throttle.js';
import { checkNameOfCheckpoint, clusterFloorKey, clusterSlotPattern, parseCheckpoint, shardCheckpointKey } from './checkpoints.js';
import { DbMapper } from './db-map.js';
import { WriteErrorLog } from './errors.js';
import { openTarget, type OpenedTarget } from './open-target.js';
import { shardPurge } from './purge.js';
import { checkBacklog } from './backlog-check.js';
import { TargetRefusals } from './refusal-policy.js';
import { ShardSync } from './shard-sync.js';
import { emptySnapshotStats, emptyStreamStats, type Checkpoint, type MigrationPhase, type MigrationProgress, type ShardProgress, type StreamStats } from './stats.js';
import { ClusterStreamBackend } from './stream/cluster-backend.js';
import { StandaloneStreamBackend } from './stream/standalone-backend.js';
import { StreamApplier } from './stream/stream-applier.js';
import { PreflightError, preflight, type TargetConflictPolicy } from './preflight.js';
import { watchSwitchMaster } from '../source/sentinel-watch.js';
import { SyncRefusedError } from '../source/replica-link.js';
import { ScanConvergence, ScanSync } from './scan-sync.js';

export type MigrationMethod = 'full' | 'incremental';

export interface MigrationOptions {
  /** One endpoint, or the address list of a deployment (cluster nodes, or a master and its replicas). */
  source: Endpoint | Endpoint[];
  target: Endpoint | Endpoint[];
  method: MigrationMethod;
  /** Incremental only: finish (phase done) as soon as the target has applied all the source had. */
  untilSynced?: boolean;
  dbs?: DbMapper;
  dropFlush?: boolean;
  /** 'always' rebuilds every key with type commands instead of RESTORE (tests, odd targets). */
  rewrite?: 'auto' | 'always';
  /** Keys whose encoded value is larger are rebuilt with commands. Default 16 MiB. */
  maxPayloadBytes?: number;
  /** Pipelined connections to a standalone target. */
  lanes?: number;
  logger: Logger;
  /** How often progress is emitted and the source's offsets polled. */
  pollIntervalMs?: number;
  /** auto: a lost source link is re-established forever, resuming with PSYNC; manual (default): the first loss fails. */
  resumeMode?: 'auto' | 'manual';
  /** MB/s read from the source, all shards together; null or absent: unlimited. */
  bandwidthLimitMb?: number | null;
  /**
   * Exactly-once across restarts: the stream is applied in MULTI/EXEC transactions that also
   * write the checkpoint, `<checkpointKey>:<shard>` in db 0 of a standalone target, or per slot
   * on a cluster target (see ClusterStreamApplier). A run that finds checkpoints resumes from
   * them (PSYNC) instead of a full sync. They are removed when the migration ends (done or
   * stopped), kept when it crashes.
   */
  checkpointKey?: string;
  /**
   * What a write the target refuses for good (WRONGTYPE, a collision...) does: 'skip' (the
   * default) logs and counts it and goes on; 'fail' stops the migration on the first one.
   */
  writeErrorPolicy?: 'skip' | 'fail';
  /**
   * This migration (a task) has written to the target before, in an earlier run: a full sync
   * must first purge what it wrote, so that keys deleted on the source meanwhile do not survive.
   */
  priorWrites?: boolean;
  /** Bytes in flight between the source socket and the target's replies. Default 64 MiB. */
  flowBudgetBytes?: number;
  /** No byte from the source for this long, in any stage, fails the link. Default 60 s. */
  sourceTimeoutMs?: number;
  /** A target that leaves commands unanswered this long is lost. Default 60 s. */
  targetReplyTimeoutMs?: number;
  /** Called once the first write reaches the target (the task records that it has written). */
  onFirstWrite?: () => void;
  /**
   * Keys already on the target before a full sync: 'fail' refuses (naming the dbs and counts),
   * 'replace' writes over them, 'purge-first' empties the target first. Absent: no check (the
   * callers, CLI and service, always say). Source and target being one server is refused always.
   */
  targetConflict?: TargetConflictPolicy;
  /**
   * How the source is read: 'psync' joins it as a replica; 'scan' copies keys with SCAN + DUMP
   * and follows keyspace notifications (sources that refuse replication); 'auto' (the default)
   * uses PSYNC and falls back to scan when the source refuses it.
   */
  sourceMode?: 'auto' | 'psync' | 'scan';
  /**
   * Where each shard starts, by its master's `host:port` (a cutover: the other side's position
   * taken while writes were paused). `prefer: 'start'` uses it even when the target holds
   * checkpoints of this migration (a switch); 'checkpoint' only when it holds none (recovery).
   */
  startFrom?: { positions: ReadonlyMap<string, Checkpoint>; prefer: 'start' | 'checkpoint' };
  /** 'refuse': a source that cannot continue (PSYNC answered with a full resync) fails the shard. */
  fullResync?: 'allow' | 'refuse';
}

/** Where one shard of a running migration stands (a cutover waits on these). */
export interface ShardPosition {
  /** The master followed, with its credentials. */
  endpoint: Endpoint;
  name: string;
  phase: ShardSync['phase'];
  replid: string | null;
  appliedOffset: number;
  receivedOffset: number;
  /** Write commands received from the source's stream so far. */
  writesSeen: number;
  /** The resume point at the applied offset (null before the stream began). */
  checkpoint: Checkpoint | null;
}

const list = (e: Endpoint | Endpoint[]): Endpoint[] => (Array.isArray(e) ? e : [e]);

/** The target could not be reached or logged in to. */
class TargetUnavailable extends Error {}

/**
 * One migration from a source deployment to a target deployment: one ShardSync per source
 * master (a standalone source has one), all writing into one Target. Emits 'progress'
 * (MigrationProgress) every poll interval and at each phase change. `run()` resolves when the
 * migration is done or stopped, and rejects with a one-line reason when it fails.
 */
export class Migration extends EventEmitter {
  private phase: MigrationPhase = 'connecting';
  private readonly snapshot = emptySnapshotStats();
  private readonly errors: WriteErrorLog;
  private shards: (ShardSync | ScanSync)[] = [];
  /** Why the shards run in scan mode; null: PSYNC. */
  private scanReason: string | null = null;
  private convergence: ScanConvergence | null = null;
  private monitors: Monitor[] = [];
  private target: OpenedTarget | null = null;
  private flow: FlowControl | null = null;
  private readonly refusals: TargetRefusals;
  private stopRequested = false;
  private synced = false;
  private failure: string | null = null;
  private targetLost: Error | null = null;
  private timer: NodeJS.Timeout | null = null;
  private syncedResolve: (() => void) | null = null;
  private readonly throttle: Throttle;
  private writeFailure: Error | null = null;
  /** Times the target was lost and reconnected (auto mode). */
  private targetReconnects = 0;
  private wakeRetry: (() => void) | null = null;
  /** The stop came from a cutover: the checkpoints stay, for a switch that may be undone. */
  private keepCheckpoints = false;

  constructor(private readonly options: MigrationOptions) {
    super();
    this.errors = new WriteErrorLog(options.logger, 100, (e) => {
      if (this.options.writeErrorPolicy !== 'fail' || this.writeFailure) return;
      this.writeFailure = new Error(`the target refused a write (policy: fail): ${e.command} ${e.key ?? ''} in db ${e.db}: ${e.error}`);
      this.flow?.fail(this.writeFailure);
      for (const s of this.shards) s.stop();
      this.syncedResolve?.();
    });
    this.throttle = new Throttle(options.bandwidthLimitMb ?? null);
    this.refusals = new TargetRefusals({ errors: this.errors, retryPassing: options.resumeMode === 'auto', writeErrorPolicy: options.writeErrorPolicy ?? 'skip' });
    if (options.checkpointKey !== undefined) checkNameOfCheckpoint(options.checkpointKey);
    if (options.sourceMode === 'scan') this.scanReason = 'source mode scan was asked for';
  }

  /** Switches between reconnecting forever (auto) and failing on the first loss (manual). */
  setResumeMode(mode: 'auto' | 'manual'): void {
    this.options.resumeMode = mode;
    for (const s of this.shards) s.setResumeMode(mode);
    // In auto mode a write refused for a passing reason (OOM, LOADING...) is sent again, in order.
    this.refusals.retryPassing = mode === 'auto';
  }

  /** Changes the bandwidth limit of a running migration (effective from the next chunk read). */
  setBandwidthLimit(limitMb: number | null): void {
    this.throttle.setLimitMb(limitMb);
    this.options.logger.info({ limitMb }, 'bandwidth limit changed');
  }

  progress(): MigrationProgress {
    const shards: ShardProgress[] = this.shards.map((s) => ({ source: s.name, phase: s.phase, replid: s.replid, checkpoint: s.checkpoint(), stream: { ...s.stream }, reconnects: s.reconnects, fullResyncs: s.fullResyncs, ...(s instanceof ScanSync ? s.modeProgress() : { mode: 'psync' as const }) }));
    this.snapshot.bytesRead = this.shards.reduce((n, s) => n + s.bytesReceived, 0);
    const totals = this.shards.length === 1 ? { ...this.shards[0]!.stream } : sumStreams(this.shards.map((s) => s.stream));
    const known = this.shards.map((s) => s.snapshotBytesTotal);
    this.snapshot.bytesTotal = known.length > 0 && known.every((b) => b !== null) ? known.reduce((a, b) => a! + b!, 0) : null;
    return {
      phase: this.phase,
      replid: this.shards[0]?.replid ?? null,
      checkpoint: shards[0]?.checkpoint ?? null,
      shards,
      snapshot: { ...this.snapshot },
      stream: totals,
      reconnects: this.targetReconnects + this.shards.reduce((n, s) => n + s.reconnects, 0),
      fullResyncs: this.shards.reduce((n, s) => n + s.fullResyncs, 0),
      errors: { count: this.errors.count, byCode: this.errors.countsByCode(), recent: [...this.errors.recent], retriedByCode: this.refusals.retriedCounts() },
      failure: this.failure,
      sourceMode: { mode: this.scanReason === null ? 'psync' : 'scan', reason: this.scanReason },
    };
  }

  /**
   * Every PSYNC shard's position, in shard order; empty before the shards exist (connecting)
   * and in scan mode, which has no offsets.
   */
  shardPositions(): ShardPosition[] {
    return this.shards.flatMap((s) =>
      s instanceof ShardSync ? [{ endpoint: s.endpoint, name: s.name, phase: s.phase, replid: s.replid, appliedOffset: s.appliedOffset, receivedOffset: s.receivedOffset, writesSeen: s.writesSeen, checkpoint: s.checkpoint() }] : [],
    );
  }

  /** Scan mode (no replication offsets: no cutover). */
  get inScanMode(): boolean {
    return this.scanReason !== null;
  }

  /**
   * Ask the migration to stop: the streams are cut, what was sent is drained, run() resolves.
   * `keepCheckpoints`: leave them on the target (a cutover stops one direction and may resume it).
   */
  stop(opts: { keepCheckpoints?: boolean } = {}): void {
    if (opts.keepCheckpoints) this.keepCheckpoints = true;
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.options.logger.info('stop requested');
    for (const s of this.shards) s.stop();
    this.syncedResolve?.();
    this.wakeRetry?.();
    // A stop while the target keeps refusing must not wait for it.
    if (this.refusals.nothingToWaitFor) this.flow?.fail(new Error('stopped'));
  }

  async run(): Promise<MigrationProgress> {
    const { logger } = this.options;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.runOnce(attempt > 1);
      } catch (e) {
        const reason = e instanceof Error ? e.message : String(e);
        if (e instanceof SyncRefusedError && (this.options.sourceMode ?? 'auto') === 'auto' && this.scanReason === null && !this.stopRequested) {
          this.scanReason = `the source refuses replication (${reason})`;
          logger.warn({ reason }, 'the source refuses SYNC/PSYNC: falling back to scan mode (source mode auto)');
          this.shards = [];
          continue;
        }
        if (this.stopRequested && /stopped before start/.test(reason)) {
          this.setPhase('stopped');
          return this.progress();
        }
        // Once running, a target that does not answer yet (restarting) is waited for too.
        const targetGone = !this.writeFailure && (this.targetLost !== null || (attempt > 1 && e instanceof TargetUnavailable));
        if (!targetGone || this.options.resumeMode !== 'auto' || this.stopRequested) {
          this.failure = reason;
          this.setPhase('failed');
          logger.error({ reason }, 'migration failed');
          throw e instanceof PreflightError ? e : new Error(reason);
        }
        // The target went away (restart, network): wait for it, then start again. With
        // checkpoints on the target the shards resume exactly where the target stands;
        // without, they resync (purging first).
        this.targetReconnects++;
        logger.warn({ reason, attempt }, 'lost the target; reconnecting');
        this.targetLost = null;
        this.refusals.targetLost = false;
        this.shards = [];
        this.setPhase('connecting');
        await new Promise<void>((resolve) => {
          this.wakeRetry = resolve;
          setTimeout(resolve, Math.min(10_000, 500 * 2 ** Math.min(attempt - 1, 5)));
        });
        this.wakeRetry = null;
        if (this.stopRequested) {
          this.setPhase('stopped');
          return this.progress();
        }
      }
    }
  }

  /** One attempt: connects, runs every shard, returns when done or stopped, throws on failure. */
  private async runOnce(restarted: boolean): Promise<MigrationProgress> {
    const { logger } = this.options;
    let watch: { close(): void } | null = null;
    try {
      const sourceList = list(this.options.source);
      const targetList = list(this.options.target);
      const source = await discoverDeployment(sourceList, { connectTimeoutMs: Math.min(10_000, this.options.sourceTimeoutMs ?? 10_000) }).catch((e: Error) => {
        throw new Error(`source: ${e.message}`);
      });
      const unavailable = (e: Error): never => {
        throw new TargetUnavailable(`target: ${e.message}`);
      };
      const targetDeployment = await discoverDeployment(targetList, { connectTimeoutMs: Math.min(10_000, this.options.targetReplyTimeoutMs ?? 10_000) }).catch(unavailable);
      const flow = new FlowControl(this.options.flowBudgetBytes);
      this.flow = flow;
      const target = await openTarget(targetDeployment, { user: targetList[0]!.user, password: targetList[0]!.password, tls: targetList[0]!.tls }, (error) => {
        this.targetLost ??= new Error(`lost the target: ${error.message}`);
        this.refusals.targetLost = true;
        flow.fail(this.targetLost);
        for (const s of this.shards) s.stop();
        this.syncedResolve?.();
      }, this.options.lanes ?? 4, this.options.targetReplyTimeoutMs).catch(unavailable);
      this.target = target;
      logger.info({ source: source.kind, target: target.kind, version: target.info.version.join('.') }, 'connected');

      const masters = source.kind === 'standalone' ? [source.master] : source.shards.map((s) => s.master);
      let dbs = this.options.dbs ?? new DbMapper();
      if (target.kind === 'cluster') dbs = dbs.withForcedDb(0);
      this.monitors = masters.map((m) => new Monitor(m));
      const keyspace = await this.sourceKeyspace();
      this.snapshot.keysExpected = keyspace.keys;
      dbs.noteSourceDbs(keyspace.dbs);
      if (this.stopRequested) throw new Error('stopped before start');

      // What a shard removes before a full resync over its own earlier writes (src/engine/purge.ts).
      const purges = masters.map((m, i) => shardPurge(target, dbs, keyspace.dbs, source.kind === 'cluster' ? source.shards[i]!.slots : null, logger, describeEndpoint(m)));
      const checkpoints = this.startPositions(masters, await this.readCheckpoints(target, masters));
      // How long Ferry may be away before a resync is needed: a warning when under a minute
      // (runs alongside the start, it needs a second of the source's writes to measure).
      if (this.options.method === 'incremental' && !restarted) for (const m of masters) void checkBacklog(m, logger);
      const priorWrites = restarted || this.options.priorWrites === true;
      // Before anything is written (src/engine/preflight.ts). A restarted attempt, a task that
      // wrote before, or a resume from checkpoints finds its own keys on the target: no conflict check then.
      await preflight({ source, target: targetDeployment, opened: target, conflict: priorWrites || checkpoints.some((c) => c !== null) ? null : (this.options.targetConflict ?? null), logger });
      this.shards = masters.map((master, i) => this.makeShard(master, i, target, flow, dbs, purges[i]!, checkpoints[i] ?? null, locator(source, sourceList, i), priorWrites));
      for (const s of this.shards) s.onPhaseChange(() => this.updatePhase());
      this.startPolling();
      if (sourceList[0]!.sentinel && this.options.resumeMode === 'auto') {
        watch = watchSwitchMaster(sourceList, (m) => {
          logger.warn({ master: describeEndpoint(m) }, 'Sentinel announced a new master (+switch-master): moving the link there');
          for (const s of this.shards) s.sourceMoved();
        });
      }

      const runs = this.shards.map((s) =>
        s.run().catch((e: Error) => {
          // One shard failing ends the migration: stop the others, report this one.
          for (const other of this.shards) if (other !== s) other.stop();
          if (e instanceof SyncRefusedError) throw e;
          throw new Error(this.shards.length > 1 ? `shard ${s.name}: ${e.message}` : e.message);
        }),
      );
      const all = Promise.all(runs);
      if (this.options.method === 'incremental' && this.options.untilSynced) {
        const synced = new Promise<void>((resolve) => (this.syncedResolve = resolve));
        await Promise.race([all, synced]);
        if (this.synced) this.stop();
      }
      await all;
      if (this.writeFailure) throw this.writeFailure;
      if (this.targetLost) throw this.targetLost;
      if (this.options.method === 'incremental' && !this.stopRequested) throw new Error('the replication ended without being stopped');
      await target.drain();
      if (!this.keepCheckpoints) await this.removeCheckpoints(target, masters);
      this.setPhase(this.stopRequested && !this.synced ? 'stopped' : 'done');
      return this.progress();
    } catch (e) {
      if (this.targetLost) throw this.targetLost;
      throw e;
    } finally {
      if (this.timer) clearInterval(this.timer);
      watch?.close();
      for (const s of this.shards) s.stop();
      this.target?.close();
      for (const m of this.monitors) m.close();
    }
  }

  /** Per source shard, by its place (shards are ordered by slot): stable across failovers. */
  private checkpointKeyOf(index: number): Buffer | null {
    return this.options.checkpointKey ? shardCheckpointKey(this.options.checkpointKey, index) : null;
  }

  /** The checkpoints found, or the positions a cutover gives (options.startFrom). */
  private startPositions(masters: Endpoint[], found: (Checkpoint | null)[]): (Checkpoint | null)[] {
    const start = this.options.startFrom;
    if (!start) return found;
    return masters.map((m, i) => {
      const given = start.positions.get(describeEndpoint(m)) ?? null;
      if (given && (start.prefer === 'start' || !found[i])) {
        // The slot checkpoints of an earlier run describe another position: not used.
        if (this.clusterSlotCheckpoints[i]) this.clusterSlotCheckpoints[i] = new Map();
        return given;
      }
      return found[i] ?? null;
    });
  }

  /** Per-slot checkpoints found on a cluster target, per shard (see ClusterStreamBackend). */
  private clusterSlotCheckpoints: Map<number, number>[] = [];

  /** Checkpoints left on the target by an earlier run that did not end (a crash). */
  private async readCheckpoints(target: OpenedTarget, masters: Endpoint[]): Promise<(Checkpoint | null)[]> {
    if (!this.options.checkpointKey) return [];
    if (target.kind === 'cluster') return this.readClusterCheckpoints(target.router, masters);
    const lane = target.writer.lanes[0]!;
    return Promise.all(
      masters.map(async (m, i) => {
        const reply = await lane.call(0, ['GET', this.checkpointKeyOf(i)!]);
        const found = Buffer.isBuffer(reply) ? parseCheckpoint(reply.toString('latin1')) : null;
        if (found) this.options.logger.info({ shard: describeEndpoint(m), ...found }, 'found a checkpoint on the target: resuming from it');
        return found;
      }),
    );
  }

  private async readClusterCheckpoints(router: ClusterRouter, masters: Endpoint[]): Promise<(Checkpoint | null)[]> {
    const out: (Checkpoint | null)[] = [];
    this.clusterSlotCheckpoints = [];
    for (let i = 0; i < masters.length; i++) {
      const prefix = this.checkpointKeyOf(i)!;
      const floorKey = clusterFloorKey(prefix);
      const floorReply = await router.call(slotOf(floorKey), ['GET', floorKey]);
      const floor = Buffer.isBuffer(floorReply) ? parseCheckpoint(floorReply.toString('latin1')) : null;
      const slots = new Map<number, number>();
      if (floor) {
        for (const key of await scanMasters(router, clusterSlotPattern(prefix))) {
          const v = await router.call(slotOf(key), ['GET', key]);
          const cp = Buffer.isBuffer(v) ? parseCheckpoint(v.toString('latin1')) : null;
          if (cp) slots.set(slotOf(key), cp.appliedOffset);
        }
        this.options.logger.info({ shard: describeEndpoint(masters[i]!), ...floor, slots: slots.size }, 'found checkpoints on the target: resuming from them');
      }
      this.clusterSlotCheckpoints[i] = slots;
      out.push(floor);
    }
    return out;
  }

  private async removeCheckpoints(target: OpenedTarget, masters: Endpoint[]): Promise<void> {
    if (!this.options.checkpointKey) return;
    await removeCheckpoints(target, this.options.checkpointKey, masters.length);
  }

  private makeShard(master: Endpoint, index: number, target: OpenedTarget, flow: FlowControl, dbs: DbMapper, purge: () => Promise<void>, resumeFrom: Checkpoint | null, locate: () => Promise<Endpoint>, priorWrites: boolean): ShardSync | ScanSync {
    const o = this.options;
    if (this.scanReason !== null) {
      if (index === 0) this.convergence = new ScanConvergence({ source: list(o.source), target: list(o.target), targetHandle: target, dbs: o.dbs, logger: o.logger, errors: this.errors });
      const reason = this.scanReason;
      return new ScanSync({ source: master, target, method: o.method, dbs, errors: this.errors, refusals: this.refusals, flow, snapshot: this.snapshot, logger: o.logger, rewriteAlways: o.rewrite === 'always', maxPayloadBytes: o.maxPayloadBytes, resumeMode: o.resumeMode ?? 'manual', throttle: this.throttle, convergence: this.convergence!, reason });
    }
    const checkpointKey = this.checkpointKeyOf(index);
    let shard: ShardSync | null = null;
    const replid = (): string | null => shard?.replid ?? null;
    shard = new ShardSync({
      resumeFrom,
      locate,
      priorWrites,
      resumeMode: o.resumeMode ?? 'manual',
      throttle: this.throttle,
      purge,
      source: master,
      target,
      method: o.method,
      dbs,
      refusals: this.refusals,
      flow,
      snapshot: this.snapshot,
      logger: o.logger,
      rewriteAlways: o.rewrite === 'always',
      maxPayloadBytes: o.maxPayloadBytes,
      sourceTimeoutMs: o.sourceTimeoutMs,
      onFirstWrite: o.onFirstWrite,
      fullResync: o.fullResync,
      makeStreamApplier: (stats, applied) => {
        const backend =
          target.kind === 'cluster'
            ? new ClusterStreamBackend(target.router, this.refusals, o.logger, checkpointKey ? { prefix: checkpointKey, replid, slots: this.clusterSlotCheckpoints[index] ?? new Map<number, number>() } : null)
            : new StandaloneStreamBackend(target.writer.lanes[index % target.writer.lanes.length]!, this.refusals, checkpointKey ? { key: checkpointKey, replid } : null);
        return new StreamApplier(dbs, stats, backend, flow, applied, { dropFlush: o.dropFlush, coalesce: target.kind !== 'cluster' });
      },
    });
    return shard;
  }

  /** The slowest shard sets the phase: snapshot until every shard has finished its own. */
  private updatePhase(): void {
    const phases = this.shards.map((s) => s.phase);
    if (phases.includes('failed')) return;
    if (phases.includes('snapshot') || (phases.includes('connecting') && phases.some((p) => p !== 'connecting'))) this.setPhase('snapshot');
    else if (phases.every((p) => p === 'incremental' || p === 'reconnecting')) this.setPhase('incremental');
    if (this.snapshot.finishedAt === null && phases.every((p) => p === 'incremental' || p === 'reconnecting' || p === 'done')) {
      this.snapshot.finishedAt = Date.now();
    }
  }

  private setPhase(phase: MigrationPhase): void {
    if (this.phase === phase) return;
    this.phase = phase;
    this.options.logger.info({ phase }, 'phase');
    this.emit('progress', this.progress());
  }

  private startPolling(): void {
    const interval = this.options.pollIntervalMs ?? 1000;
    this.timer = setInterval(() => void this.poll(), interval);
  }

  private polling = false;

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      if (this.phase === 'incremental') {
        const offsets = await Promise.all(this.monitors.map((m) => sourceOffset(m)));
        this.shards.forEach((s, i) => s.updateLag(offsets[i] ?? null));
        if (this.options.untilSynced && this.shards.every((s) => s.phase === 'incremental' && s.stream.lagBytes === 0)) {
          this.synced = true;
          this.syncedResolve?.();
        }
      }
      this.emit('progress', this.progress());
    } catch (e) {
      this.options.logger.debug({ err: (e as Error).message }, 'poll failed');
    } finally {
      this.polling = false;
    }
  }

  private async sourceKeyspace(): Promise<{ keys: number | null; dbs: number[] }> {
    let keys = 0;
    const dbs = new Set<number>();
    for (const m of this.monitors) {
      try {
        const reply = await m.call(['INFO', 'keyspace']);
        if (!Buffer.isBuffer(reply)) continue;
        const found = keyspaceOf(reply.toString('latin1'));
        keys += found.keys;
        for (const db of found.dbs) dbs.add(db);
      } catch {
        return { keys: null, dbs: [...dbs] };
      }
    }
    return { keys, dbs: [...dbs] };
  }
}

/**
 * Finds a source shard's current master: for a standalone source, whatever the address list
 * resolves to now (a promoted replica, when the list names it); for a cluster, the master that
 * owns the shard's first slot now.
 */
function locator(initial: Deployment, addrs: Endpoint[], index: number): () => Promise<Endpoint> {
  return async () => {
    const now = await discoverDeployment(addrs, { connectTimeoutMs: 3000 });
    if (initial.kind === 'standalone' || now.kind === 'standalone') {
      if (now.kind !== 'standalone') throw new Error('the source became a cluster');
      return now.master;
    }
    const slot = initial.shards[index]!.slots[0]![0];
    const owner = now.shards.find((s) => s.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!owner) throw new Error(`no master owns slot ${slot} now`);
    return owner.master;
  };
}

/** Every key matching `pattern` on every master of a cluster target. */
async function scanMasters(router: ClusterRouter, pattern: Buffer): Promise<Buffer[]> {
  const keys: Buffer[] = [];
  for (const master of router.masters()) {
    let cursor = '0';
    do {
      const reply = await new Promise<Reply | undefined>((resolve, reject) =>
        router.sendToMaster(master, encodeCommand(['SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000]), (e, r) => (e ? reject(new Error(e)) : resolve(r))),
      );
      if (!Array.isArray(reply) || !Buffer.isBuffer(reply[0]) || !Array.isArray(reply[1])) break;
      cursor = reply[0].toString('latin1');
      for (const k of reply[1]) if (Buffer.isBuffer(k)) keys.push(k);
    } while (cursor !== '0');
  }
  return keys;
}

/**
 * Removes a migration's checkpoints from the target: when it ends for good (done, or stopped or
 * deleted by the user), never when it merely dies (its next run resumes from them).
 */
export async function removeCheckpoints(target: OpenedTarget, name: string, shards: number): Promise<void> {
  if (target.kind === 'standalone') {
    const keys = Array.from({ length: shards }, (_v, i) => shardCheckpointKey(name, i));
    await target.writer.lanes[0]!.call(0, ['DEL', ...keys]);
    return;
  }
  for (let i = 0; i < shards; i++) {
    const prefix = shardCheckpointKey(name, i);
    const keys = [clusterFloorKey(prefix), ...(await scanMasters(target.router, clusterSlotPattern(prefix)))];
    for (const key of keys) await target.router.call(slotOf(key), ['DEL', key]);
  }
}

/** The source's own offset; null when it cannot be asked now (the lag is then unknown, never 0). */
async function sourceOffset(monitor: Monitor): Promise<number | null> {
  try {
    const reply = await monitor.call(['INFO', 'replication']);
    const m = Buffer.isBuffer(reply) ? /^master_repl_offset:(\d+)/m.exec(reply.toString('latin1')) : null;
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** A connection to a source master for INFO polling, re-opened after it breaks. */
class Monitor {
  private connection: Promise<RedisConnection> | null = null;

  constructor(private readonly endpoint: Endpoint) {}

  async call(args: string[]): Promise<Reply> {
    this.connection ??= RedisConnection.connect({ ...this.endpoint, name: 'ferry-monitor', connectTimeoutMs: 2000 });
    const pending = this.connection;
    try {
      const c = await pending;
      if (c.error) throw c.error;
      return await c.call(args);
    } catch (e) {
      if (this.connection === pending) this.connection = null;
      void pending.then((c) => c.destroy('replaced'), () => undefined);
      throw e;
    }
  }

  close(): void {
    void this.connection?.then((c) => c.close(), () => undefined).catch(() => undefined);
  }
}

/** Totals over shards: counts and lags add up; offsets are per shard (see `shards`). */
function sumStreams(streams: StreamStats[]): StreamStats {
  const total = emptyStreamStats();
  for (const s of streams) {
    total.receivedOffset += s.receivedOffset;
    total.appliedOffset += s.appliedOffset;
    total.lagBytes = s.lagBytes === null ? total.lagBytes : (total.lagBytes ?? 0) + s.lagBytes;
    total.lagSeconds = s.lagSeconds === null ? total.lagSeconds : Math.max(total.lagSeconds ?? 0, s.lagSeconds);
    total.commandsForwarded += s.commandsForwarded;
    total.commandsDropped += s.commandsDropped;
    total.transactions += s.transactions;
  }
  total.sourceOffset = streams.every((s) => s.sourceOffset !== null) ? streams.reduce((n, s) => n + s.sourceOffset!, 0) : null;
  return total;
}
