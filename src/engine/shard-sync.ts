import type { Logger } from 'pino';
import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { restorableOn } from '../rdb/dump.js';
import type { StreamCommand } from '../resp/command-stream.js';
import { ReplicaLink, SyncRefusedError, TransientSourceError, type SyncStart } from '../source/replica-link.js';
import type { Target } from '../target/target.js';
import type { FlowControl } from '../target/flow-control.js';
import type { Throttle } from '../source/throttle.js';
import { RedisConnection } from '../resp/connection.js';
import type { DbMapper } from './db-map.js';
import { LagClock } from './lag-clock.js';
import type { TargetRefusals } from './refusal-policy.js';
import { SnapshotApplier } from './snapshot-applier.js';
import { emptyStreamStats, type Checkpoint, type SnapshotStats, type StreamStats } from './stats.js';
import type { StreamApplier } from './stream/stream-applier.js';

/** A failure that reconnecting cannot fix (the target is gone, the data cannot be read). */
export class FatalShardError extends Error {}

/** 'reconnecting': the link to the source was lost during the stream and is being re-established. */
export type ShardPhase = 'connecting' | 'snapshot' | 'incremental' | 'reconnecting' | 'done' | 'stopped' | 'failed';

export interface ShardSyncOptions {
  source: Endpoint;
  target: Target;
  method: 'full' | 'incremental';
  dbs: DbMapper;
  refusals: TargetRefusals;
  flow: FlowControl;
  snapshot: SnapshotStats;
  logger: Logger;
  rewriteAlways: boolean;
  maxPayloadBytes?: number;
  /** auto: reconnect forever and resume (PSYNC <replid> <offset>); manual: fail on the first loss. */
  resumeMode?: 'auto' | 'manual';
  throttle?: Throttle;
  /**
   * Removes what this shard wrote on the target, before a full resync that follows writes of its
   * own (src/engine/purge.ts): keys deleted on the source while the link was down must not survive.
   */
  purge?: () => Promise<void>;
  /** A checkpoint found on the target (a restart after a crash): resume from it. */
  resumeFrom?: Checkpoint | null;
  /** Where this shard's master is now (after a failover it is the promoted replica). */
  locate?: () => Promise<Endpoint>;
  /** An earlier attempt wrote to the target: a full sync purges first. */
  priorWrites?: boolean;
  /** Told once, when the first write of this shard reaches the target. */
  onFirstWrite?: () => void;
  /** No byte from the source for this long, in any stage, fails the link (like repl-timeout). */
  sourceTimeoutMs?: number;
  /**
   * 'refuse': a source that answers PSYNC with a full resync fails the shard (FatalShardError)
   * instead of being copied again: the reverse sync of a cutover must only follow new writes.
   */
  fullResync?: 'allow' | 'refuse';
  /** Builds the stream applier; `applied` must be called with each newly applied offset. */
  makeStreamApplier(stats: StreamStats, applied: (offset: number) => void): StreamApplier;
}

/**
 * One source master's replication: its own link, replication id, offsets, snapshot and
 * stream. A cluster source runs one of these per master, concurrently, into the same target.
 */
export class ShardSync {
  phase: ShardPhase = 'connecting';
  readonly stream: StreamStats = emptyStreamStats();
  readonly lag = new LagClock();
  replid: string | null = null;
  snapshotBytesTotal: number | null = null;
  private link: ReplicaLink | null = null;
  private sink: StreamApplier | null = null;
  private snapshotApplier: SnapshotApplier | null = null;
  private stopRequested = false;
  private onPhase: (shard: ShardSync) => void = () => undefined;
  /** Times the link was lost and re-established, and full resyncs after the first sync. */
  reconnects = 0;
  fullResyncs = 0;
  /** Whether anything has been written to the target (a later full sync must purge first). */
  private wroteSomething = false;
  private wakeBackoff: (() => void) | null = null;

  constructor(private readonly options: ShardSyncOptions) {
    if (options.priorWrites) this.wroteSomething = true;
    if (options.resumeFrom) {
      // Still 'connecting' (not yet 'incremental'): whether the source can continue from the
      // checkpoint, or a full resync follows, is known only from its PSYNC answer.
      this.resuming = true;
      this.replid = options.resumeFrom.replid;
      this.wroteSomething = true;
    }
  }

  /** Started from a checkpoint found on the target, and the source has not answered PSYNC yet. */
  private resuming = false;

  get name(): string {
    return describeEndpoint(this.options.source);
  }

  /** The master this shard follows now (with its credentials). */
  get endpoint(): Endpoint {
    return this.options.source;
  }

  /** Offset after the last command the target has applied (and everything before it). */
  get appliedOffset(): number {
    return this.link?.appliedOffset ?? this.options.resumeFrom?.appliedOffset ?? 0;
  }

  /** Offset after the last byte received from the source's stream. */
  get receivedOffset(): number {
    return this.link?.receivedOffset ?? 0;
  }

  /** Write commands handed to the target since the link began (PING, REPLCONF not counted). */
  get writesSeen(): number {
    return this.stream.commandsForwarded;
  }

  /** Bytes of the (last) snapshot taken in, frozen when the snapshot ends. */
  snapshotBytesRead: number | null = null;

  get bytesReceived(): number {
    return this.snapshotBytesRead ?? this.link?.bytesReceived ?? 0;
  }

  checkpoint(): Checkpoint | null {
    if (this.resuming && this.options.resumeFrom) return this.options.resumeFrom;
    if (!this.link?.replid || !this.sink || this.phase === 'snapshot' || this.phase === 'connecting') return null;
    return { replid: this.link.replid, appliedOffset: this.link.appliedOffset, db: this.sink.selectedDbAtApplied };
  }

  setResumeMode(mode: 'auto' | 'manual'): void {
    this.options.resumeMode = mode;
  }

  onPhaseChange(fn: (shard: ShardSync) => void): void {
    this.onPhase = fn;
  }

  /**
   * The master is known to have moved (Sentinel's +switch-master): the link is cut now, so the
   * usual reconnect (auto mode) asks where the master is and resumes there with PSYNC.
   */
  sourceMoved(): void {
    if (this.phase === 'incremental' || this.phase === 'snapshot') this.link?.close();
  }

  stop(): void {
    this.stopRequested = true;
    this.link?.close();
    this.wakeBackoff?.();
  }

  /** Whether a stop is waiting on a target that keeps refusing (then nothing more is awaited). */
  private get abandonOnStop(): boolean {
    return this.stopRequested && this.options.refusals.nothingToWaitFor;
  }

  /** Resolves when the snapshot is done (full) or the shard is stopped; rejects on failure. */
  async run(): Promise<void> {
    const o = this.options;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.runLink();
        return;
      } catch (e) {
        if (this.stopRequested) return;
        const transient = e instanceof TransientSourceError;
        const reconnect = transient || (o.resumeMode === 'auto' && !(e instanceof FatalShardError) && !(e instanceof SyncRefusedError));
        if (!reconnect) {
          this.setPhase('failed');
          if (e instanceof SyncRefusedError) throw e; // auto source mode falls back to scan on it
          throw await this.diagnose(e as Error);
        }
        if (this.sink) await this.sink.interrupted(this.abandonOnStop).catch(() => undefined);
        if (this.phase !== 'connecting') {
          this.reconnects++;
          if (this.phase === 'incremental') this.setPhase('reconnecting');
          o.logger.warn({ shard: this.name, reconnects: this.reconnects, reason: (await this.diagnose(e as Error)).message }, 'lost the source; reconnecting');
        } else o.logger.warn({ shard: this.name, attempt, reason: (e as Error).message }, 'source not ready, retrying');
        await this.relocate();
        const delay = Math.min(10_000, 250 * 2 ** Math.min(attempt - 1, 6));
        await new Promise<void>((resolve) => {
          this.wakeBackoff = resolve;
          setTimeout(resolve, delay);
        });
        this.wakeBackoff = null;
        if (this.stopRequested) return;
      }
    }
  }

  /**
   * Before reconnecting, asks where the shard's master is: after a failover the promoted
   * replica carries the same history (PSYNC2), so the resume continues there with +CONTINUE.
   */
  private async relocate(): Promise<void> {
    if (!this.options.locate) return;
    try {
      const now = await this.options.locate();
      if (describeEndpoint(now) !== describeEndpoint(this.options.source)) {
        this.options.logger.warn({ shard: this.name, master: describeEndpoint(now) }, 'the source master changed (failover): following the new master');
        this.options.source = now;
      }
    } catch (e) {
      this.options.logger.debug({ shard: this.name, err: (e as Error).message }, 'could not locate the master; retrying the same address');
    }
  }

  /**
   * Why the link broke, in plain words, from a look at the source right after:
   * - a master that has become a replica: a failover happened;
   * - the source far ahead of what Ferry applied: it most likely dropped Ferry because its
   *   replica output buffer overflowed (the target, or the bandwidth limit, slower than the
   *   source's writes), so name the setting to raise.
   */
  private async diagnose(e: Error): Promise<Error> {
    const o = this.options.source;
    let probe: RedisConnection | null = null;
    try {
      probe = await RedisConnection.connect({ host: o.host, port: o.port, user: o.user, password: o.password, tls: o.tls, name: 'ferry-probe', connectTimeoutMs: 3000 });
      const reply = await probe.call(['INFO', 'replication']);
      const text = Buffer.isBuffer(reply) ? reply.toString('latin1') : '';
      if (/^role:slave/m.test(text)) {
        const host = /^master_host:(.*)$/m.exec(text)?.[1]?.trim();
        const port = /^master_port:(\d+)/m.exec(text)?.[1];
        return new Error(`source master ${this.name} failed over: it is now a replica of ${host}:${port}; the shard cannot continue without a new full sync`);
      }
      const sourceOffset = Number(/^master_repl_offset:(\d+)/m.exec(text)?.[1] ?? 0);
      const behind = sourceOffset - (this.link?.appliedOffset ?? sourceOffset);
      if (/closed by the source|ECONNRESET/.test(e.message) && (behind > 256 * 1024 || this.phase === 'snapshot')) {
        return new Error(
          `${e.message}: the source most likely dropped Ferry because its replica output buffer overflowed (Ferry was ${Math.round(behind / 1024)} KB behind: the target or the bandwidth limit is slower than the source's writes); raise "client-output-buffer-limit replica" on the source (default 256mb 64mb 60), raise bandwidth_limit_mb, or speed up the target`,
        );
      }
      return e;
    } catch {
      return e;
    } finally {
      void probe?.close().catch(() => undefined);
    }
  }

  private setPhase(phase: ShardPhase): void {
    if (this.phase === phase) return;
    this.phase = phase;
    this.onPhase(this);
  }

  private async runLink(): Promise<void> {
    const o = this.options;
    const target = o.target;
    const snapshotApplier = new SnapshotApplier(target, o.snapshot, o.refusals, o.dbs, o.logger, o.flow);
    this.snapshotApplier = snapshotApplier;
    // Resume where the target stands, when it stands somewhere in the source's history.
    const checkpoint = this.phase === 'reconnecting' || this.resuming ? this.checkpoint() : null;
    const link = new ReplicaLink(o.source, {
      snapshotOnly: o.method === 'full',
      throttle: o.throttle,
      idleTimeoutMs: o.sourceTimeoutMs,
      ...(checkpoint ? { resumeFrom: { replid: checkpoint.replid, offset: checkpoint.appliedOffset } } : {}),
    });
    this.link = link;
    if (this.stopRequested) link.close();
    // One stream applier for the whole life of the shard: its db and offsets carry over.
    this.sink ??= o.makeStreamApplier(this.stream, (offset) => {
      this.link?.acknowledge(offset);
      this.stream.appliedOffset = this.link?.appliedOffset ?? offset;
    });
    const sink = this.sink;
    let purgeFirst: Promise<void> | null = null;

    const done = link.run({
      parserOptions: {
        wantsPayload: (type, _version, magic) => !o.rewriteAlways && restorableOn(type, magic, target.info.format),
        maxPayloadBytes: o.maxPayloadBytes,
      },
      syncStarted: (start: SyncStart) => {
        if (start.mode === 'full' && o.fullResync === 'refuse') {
          throw new FatalShardError(`source ${this.name} cannot continue from offset ${checkpoint?.appliedOffset ?? '?'} of its history ${checkpoint?.replid ?? '?'} (it offered a full resync instead, which this sync must not do)`);
        }
        this.resuming = false;
        this.replid = start.replid;
        this.stream.receivedOffset = this.stream.appliedOffset = start.offset;
        if (start.mode === 'full') {
          if (this.wroteSomething) {
            this.fullResyncs++;
            o.logger.warn({ shard: this.name, fullResyncs: this.fullResyncs }, checkpoint ? 'the source could not continue from the checkpoint (backlog exceeded or another history): full resync' : 'full resync');
            if (o.purge) purgeFirst = o.purge();
          }
          this.snapshotBytesTotal = start.snapshotBytes;
          this.snapshotBytesRead = null;
          o.snapshot.startedAt ??= Date.now();
          o.logger.info({ shard: this.name, replid: start.replid, offset: start.offset, framing: start.framing }, 'full sync started');
          this.setPhase('snapshot');
        } else {
          o.logger.info({ shard: this.name, replid: start.replid, offset: start.offset }, 'resumed (+CONTINUE)');
          sink.startAt(checkpoint?.db ?? sink.selectedDbAtApplied);
          this.setPhase('incremental');
        }
      },
      snapshotEntry: (entry) => {
        this.wrote();
        if (purgeFirst) {
          const purge = purgeFirst;
          purgeFirst = null;
          return purge.then(() => snapshotApplier.apply(entry));
        }
        return snapshotApplier.apply(entry);
      },
      snapshotFinished: async () => {
        if (purgeFirst) await purgeFirst; // an empty snapshot: still purge
        this.snapshotBytesRead = link.bytesReceived;
        await snapshotApplier.settle();
        await target.drain();
        sink.startAt(0);
        if (snapshotApplier.checksumVerified === null) o.logger.warn({ shard: this.name }, 'the snapshot carried no checksum; it was not verified');
        o.logger.info({ shard: this.name }, 'snapshot applied');
        this.setPhase(o.method === 'incremental' ? 'incremental' : 'done');
      },
      command: (command) => {
        this.wrote();
        this.lag.received(command.offsetAfter);
        return sink.apply(command);
      },
      endOfChunk: () => sink.endOfChunk(),
    });
    try {
      await done;
    } catch (e) {
      if (link.wasClosedByUs && this.stopRequested) {
        // Stopping: what was received at a clean boundary is applied before the end.
        this.snapshotApplier?.abandon();
        await sink.interrupted(this.abandonOnStop).catch(() => undefined);
        return;
      }
      throw e;
    }
    if (o.method === 'incremental' && !this.stopRequested) {
      throw new Error(`source ${this.name} closed the replication link`);
    }
  }

  private wrote(): void {
    if (this.wroteSomething) return;
    this.wroteSomething = true;
    this.options.onFirstWrite?.();
  }

  /** Polls the source's own offset and works out the lag of this shard. */
  updateLag(sourceOffset: number | null): void {
    const applied = this.link?.appliedOffset ?? 0;
    this.stream.appliedOffset = applied;
    if (this.phase !== 'incremental' && this.phase !== 'reconnecting') {
      // A snapshot (a first sync, or a resync) is not a lag of 0: it is not known yet.
      this.stream.lagBytes = this.stream.lagSeconds = null;
      return;
    }
    if (sourceOffset === null) {
      // The source cannot be asked right now: the lag is unknown, not zero.
      this.stream.lagBytes = this.stream.lagSeconds = null;
      return;
    }
    this.stream.sourceOffset = sourceOffset;
    this.stream.lagBytes = Math.max(0, sourceOffset - applied);
    this.lag.applied(applied);
    this.stream.lagSeconds = this.stream.lagBytes === 0 ? 0 : this.lag.secondsBehind();
  }
}
