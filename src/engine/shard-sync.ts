import type { Logger } from 'pino';
import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { restorableOn } from '../rdb/dump.js';
import type { StreamCommand } from '../resp/command-stream.js';
import { ReplicaLink, TransientSourceError, type SyncStart } from '../source/replica-link.js';
import type { Target } from '../target/target.js';
import { TargetConnection } from '../target/connection.js';
import type { DbMapper } from './db-map.js';
import type { WriteErrorLog } from './errors.js';
import { LagClock } from './lag-clock.js';
import { SnapshotApplier } from './snapshot-applier.js';
import { emptyStreamStats, type Checkpoint, type SnapshotStats, type StreamStats } from './stats.js';

export type ShardPhase = 'connecting' | 'snapshot' | 'incremental' | 'done' | 'stopped' | 'failed';

/** What applies one shard's command stream to the target (standalone lane or cluster router). */
export interface StreamSink {
  apply(command: StreamCommand): void | Promise<void>;
  /** The source db selected at the applied offset (for the checkpoint). */
  readonly selectedDbAtApplied: number;
}

export interface ShardSyncOptions {
  source: Endpoint;
  target: Target;
  method: 'full' | 'incremental';
  dbs: DbMapper;
  errors: WriteErrorLog;
  snapshot: SnapshotStats;
  logger: Logger;
  rewriteAlways: boolean;
  maxPayloadBytes?: number;
  /** Builds the stream applier; `applied` must be called with each newly applied offset. */
  makeStreamSink(stats: StreamStats, applied: (offset: number) => void): StreamSink;
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
  private sink: StreamSink | null = null;
  private stopRequested = false;
  private onPhase: (shard: ShardSync) => void = () => undefined;

  constructor(private readonly options: ShardSyncOptions) {}

  get name(): string {
    return describeEndpoint(this.options.source);
  }

  get bytesReceived(): number {
    return this.link?.bytesReceived ?? 0;
  }

  checkpoint(): Checkpoint | null {
    if (!this.link?.replid || !this.sink || this.phase === 'snapshot' || this.phase === 'connecting') return null;
    return { replid: this.link.replid, appliedOffset: this.link.appliedOffset, db: this.sink.selectedDbAtApplied };
  }

  onPhaseChange(fn: (shard: ShardSync) => void): void {
    this.onPhase = fn;
  }

  stop(): void {
    this.stopRequested = true;
    this.link?.close();
  }

  /** Resolves when the snapshot is done (full) or the shard is stopped; rejects on failure. */
  async run(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.runLink();
        return;
      } catch (e) {
        if (this.stopRequested) return;
        if (!(e instanceof TransientSourceError) || this.phase !== 'connecting') {
          this.setPhase('failed');
          throw (await this.explainFailover()) ?? e;
        }
        const delay = Math.min(10_000, 250 * 2 ** Math.min(attempt, 6));
        this.options.logger.warn({ shard: this.name, attempt, delayMs: delay, reason: e.message }, 'source not ready, retrying');
        await new Promise((r) => setTimeout(r, delay));
        if (this.stopRequested) return;
      }
    }
  }

  /**
   * When the link breaks, a master that has become a replica means a failover happened: say
   * so plainly (following the new master without a full resync is the resilience work's job).
   */
  private async explainFailover(): Promise<Error | null> {
    const o = this.options.source;
    let probe: TargetConnection | null = null;
    try {
      probe = await TargetConnection.connect({ host: o.host, port: o.port, user: o.user, password: o.password, name: 'ferry-probe', connectTimeoutMs: 3000 });
      const reply = await probe.call(['INFO', 'replication']);
      const text = Buffer.isBuffer(reply) ? reply.toString('latin1') : '';
      if (/^role:slave/m.test(text)) {
        const host = /^master_host:(.*)$/m.exec(text)?.[1]?.trim();
        const port = /^master_port:(\d+)/m.exec(text)?.[1];
        return new Error(`source master ${this.name} failed over: it is now a replica of ${host}:${port}; the shard cannot continue without a new full sync`);
      }
      return null;
    } catch {
      return null;
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
    const snapshotApplier = new SnapshotApplier(target, o.snapshot, o.errors, o.dbs, o.logger);
    const link = new ReplicaLink(o.source, { snapshotOnly: o.method === 'full' });
    this.link = link;
    if (this.stopRequested) link.close();
    const sink = o.makeStreamSink(this.stream, (offset) => {
      link.acknowledge(offset);
      this.stream.appliedOffset = link.appliedOffset;
    });
    this.sink = sink;

    const done = link.run({
      parserOptions: {
        wantsPayload: (type, _version, magic) => !o.rewriteAlways && restorableOn(type, magic, target.info.format),
        maxPayloadBytes: o.maxPayloadBytes,
      },
      syncStarted: (start: SyncStart) => {
        this.replid = start.replid;
        this.stream.receivedOffset = this.stream.appliedOffset = start.offset;
        if (start.mode === 'full') {
          this.snapshotBytesTotal = start.snapshotBytes;
          o.snapshot.startedAt ??= Date.now();
          o.logger.info({ shard: this.name, replid: start.replid, offset: start.offset, framing: start.framing }, 'full sync started');
          this.setPhase('snapshot');
        } else this.setPhase('incremental');
      },
      snapshotEntry: (entry) => snapshotApplier.apply(entry),
      snapshotFinished: async () => {
        await target.drain();
        if (snapshotApplier.checksumVerified === null) o.logger.warn({ shard: this.name }, 'the snapshot carried no checksum; it was not verified');
        o.logger.info({ shard: this.name }, 'snapshot applied');
        this.setPhase(o.method === 'incremental' ? 'incremental' : 'done');
      },
      command: (command) => {
        this.lag.received(command.offsetAfter);
        return sink.apply(command);
      },
    });
    try {
      await done;
    } catch (e) {
      if (link.wasClosedByUs) return;
      throw e;
    }
    if (o.method === 'incremental' && !this.stopRequested) {
      throw new Error(`source ${this.name} closed the replication link`);
    }
  }

  /** Polls the source's own offset and works out the lag of this shard. */
  updateLag(sourceOffset: number | null): void {
    const applied = this.link?.appliedOffset ?? 0;
    this.stream.appliedOffset = applied;
    if (sourceOffset === null || this.phase !== 'incremental') return;
    this.stream.sourceOffset = sourceOffset;
    this.stream.lagBytes = Math.max(0, sourceOffset - applied);
    this.lag.applied(applied);
    this.stream.lagSeconds = this.stream.lagBytes === 0 ? 0 : this.lag.secondsBehind();
  }
}
