import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { describeEndpoint, type Endpoint } from '../common/endpoint.js';
import { restorableOn } from '../rdb/dump.js';
import { ReplicaLink, TransientSourceError, type SyncStart } from '../source/replica-link.js';
import { TargetConnection } from '../target/connection.js';
import { TargetWriter } from '../target/writer.js';
import { DbMapper } from './db-map.js';
import { WriteErrorLog } from './errors.js';
import { SnapshotApplier } from './snapshot-applier.js';
import { emptySnapshotStats, emptyStreamStats, type MigrationPhase, type MigrationProgress } from './stats.js';
import { StreamApplier } from './stream-applier.js';
import { LagClock } from './lag-clock.js';

export type MigrationMethod = 'full' | 'incremental';

export interface MigrationOptions {
  source: Endpoint;
  target: Endpoint;
  method: MigrationMethod;
  /** Incremental only: finish (phase done) as soon as the target has applied all the source had. */
  untilSynced?: boolean;
  dbs?: DbMapper;
  dropFlush?: boolean;
  /** 'always' rebuilds every key with type commands instead of RESTORE (tests, odd targets). */
  rewrite?: 'auto' | 'always';
  /** Keys whose encoded value is larger are rebuilt with commands. Default 16 MiB. */
  maxPayloadBytes?: number;
  /** Pipelined connections to the target during the snapshot. */
  lanes?: number;
  logger: Logger;
  /** How often progress is emitted and the source's offset polled. */
  pollIntervalMs?: number;
}

/**
 * One migration from one source to one target: snapshot, then (incremental) the command
 * stream until stopped. Emits 'progress' (MigrationProgress) every poll interval and at each
 * phase change. `run()` resolves when the migration is done or stopped, and rejects with a
 * one-line reason when it fails.
 */
export class Migration extends EventEmitter {
  private phase: MigrationPhase = 'connecting';
  private readonly snapshot = emptySnapshotStats();
  private readonly stream = emptyStreamStats();
  private readonly errors: WriteErrorLog;
  private readonly lag = new LagClock();
  private link: ReplicaLink | null = null;
  private writer: TargetWriter | null = null;
  private control: TargetConnection | null = null;
  private stopRequested = false;
  private failure: string | null = null;
  private replid: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private syncedResolve: (() => void) | null = null;

  constructor(private readonly options: MigrationOptions) {
    super();
    this.errors = new WriteErrorLog(options.logger);
  }

  progress(): MigrationProgress {
    if (this.link) this.snapshot.bytesRead = this.phase === 'snapshot' ? this.link.bytesReceived : this.snapshot.bytesRead;
    const applier = this.streamApplier;
    return {
      phase: this.phase,
      replid: this.replid,
      checkpoint:
        applier && this.link?.replid && (this.phase === 'incremental' || this.phase === 'stopped' || this.phase === 'done')
          ? { replid: this.link.replid, appliedOffset: this.link.appliedOffset, db: applier.selectedDbAtApplied }
          : null,
      snapshot: { ...this.snapshot },
      stream: { ...this.stream },
      errors: { count: this.errors.count, byCode: this.errors.countsByCode(), recent: [...this.errors.recent] },
      failure: this.failure,
    };
  }

  /** Ask the migration to stop: the stream is cut, what was sent is drained, run() resolves. */
  stop(): void {
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.options.logger.info('stop requested');
    this.link?.close();
    this.syncedResolve?.();
  }

  async run(): Promise<MigrationProgress> {
    const { logger } = this.options;
    const dbs = this.options.dbs ?? new DbMapper();
    try {
      this.writer = await TargetWriter.open(this.options.target, {
        lanes: this.options.lanes ?? 4,
        onConnectionLost: (error) => {
          this.targetLost ??= new Error(`lost the target: ${error.message}`);
          this.link?.close();
        },
      });
      logger.info({ target: this.writer.describe(), version: this.writer.info.version.join('.') }, 'connected to target');
      this.control = await TargetConnection.connect({ ...connectOptions(this.options.source), name: 'ferry-monitor' });
      this.snapshot.keysExpected = await this.sourceKeyCount();
      this.startPolling();

      for (let attempt = 1; ; attempt++) {
        try {
          await this.runLink(dbs);
          break;
        } catch (e) {
          if (this.targetLost) throw this.targetLost;
          if (this.stopRequested) break;
          if (!(e instanceof TransientSourceError) || this.phase !== 'connecting') throw e;
          const delay = Math.min(10_000, 250 * 2 ** Math.min(attempt, 6));
          logger.warn({ attempt, delayMs: delay, reason: e.message }, 'source not ready, retrying');
          await sleep(delay);
        }
      }
      await this.writer.drain();
      this.setPhase(this.stopRequested && !this.synced ? 'stopped' : 'done');
      return this.progress();
    } catch (e) {
      this.failure = e instanceof Error ? e.message : String(e);
      this.setPhase('failed');
      logger.error({ reason: this.failure }, 'migration failed');
      throw new Error(this.failure);
    } finally {
      if (this.timer) clearInterval(this.timer);
      this.link?.close();
      this.writer?.close();
      void this.control?.close().catch(() => undefined);
    }
  }

  private synced = false;
  private streamApplier: StreamApplier | null = null;
  /** Set when a target connection fails: the migration cannot go on (until resume exists). */
  private targetLost: Error | null = null;

  private async runLink(dbs: DbMapper): Promise<void> {
    const writer = this.writer!;
    const options = this.options;
    const forceRewrite = options.rewrite === 'always';
    const snapshotApplier = new SnapshotApplier(writer, this.snapshot, this.errors, dbs, options.logger);
    const link = new ReplicaLink(options.source, { snapshotOnly: options.method === 'full' });
    this.link = link;
    if (this.stopRequested) link.close();
    const streamApplier = (this.streamApplier = new StreamApplier(writer.lanes[0]!, dbs, this.stream, this.errors, (offset) => {
      link.acknowledge(offset);
      this.stream.appliedOffset = link.appliedOffset;
    }, { dropFlush: options.dropFlush }));

    const linkDone = link.run({
      parserOptions: {
        wantsPayload: (type, _version, magic) => !forceRewrite && restorableOn(type, magic, writer.info.format),
        maxPayloadBytes: options.maxPayloadBytes,
      },
      syncStarted: (start: SyncStart) => {
        this.replid = start.replid;
        this.stream.receivedOffset = this.stream.appliedOffset = start.offset;
        if (start.mode === 'full') {
          this.snapshot.bytesTotal = start.snapshotBytes;
          this.snapshot.startedAt = Date.now();
          this.setPhase('snapshot');
          options.logger.info({ replid: start.replid, offset: start.offset, framing: start.framing }, 'full sync started');
        } else {
          this.setPhase('incremental');
        }
      },
      snapshotEntry: (entry) => snapshotApplier.apply(entry),
      snapshotFinished: async () => {
        await writer.drain();
        this.snapshot.bytesRead = link.bytesReceived;
        this.snapshot.finishedAt = Date.now();
        if (snapshotApplier.checksumVerified === null) options.logger.warn('the snapshot carried no checksum; it was not verified');
        options.logger.info({ keys: this.snapshot.keys, ms: this.snapshot.finishedAt - (this.snapshot.startedAt ?? 0) }, 'snapshot applied');
        if (options.method === 'incremental') this.setPhase('incremental');
      },
      command: (command) => {
        this.lag.received(command.offsetAfter);
        return streamApplier.apply(command);
      },
    });

    if (options.method === 'incremental' && options.untilSynced) {
      const synced = new Promise<void>((resolve) => (this.syncedResolve = resolve));
      await Promise.race([linkDone, synced]);
      if (this.synced) {
        this.stopRequested = true;
        link.close();
      }
      await linkDone.catch((e) => {
        if (!link.wasClosedByUs) throw e;
      });
      if (this.targetLost) throw this.targetLost;
      return;
    }
    await linkDone.catch((e) => {
      if (!link.wasClosedByUs) throw e;
    });
    if (this.targetLost) throw this.targetLost;
    if (options.method === 'incremental' && !this.stopRequested) {
      throw new Error(`source ${describeEndpoint(options.source)} closed the replication link`);
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
    this.timer = setInterval(() => {
      void this.poll();
    }, interval);
  }

  private polling = false;

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      if (this.phase === 'incremental') {
        const sourceOffset = await this.sourceOffset();
        const applied = this.link?.appliedOffset ?? 0;
        this.stream.appliedOffset = applied;
        if (sourceOffset !== null) {
          this.stream.sourceOffset = sourceOffset;
          this.stream.lagBytes = Math.max(0, sourceOffset - applied);
          this.lag.applied(applied);
          this.stream.lagSeconds = this.stream.lagBytes === 0 ? 0 : this.lag.secondsBehind();
          if (this.stream.lagBytes === 0 && this.options.untilSynced) {
            this.synced = true;
            this.syncedResolve?.();
          }
        }
      }
      this.emit('progress', this.progress());
    } catch (e) {
      this.options.logger.debug({ err: (e as Error).message }, 'poll failed');
    } finally {
      this.polling = false;
    }
  }

  private async sourceOffset(): Promise<number | null> {
    const reply = await this.control?.call(['INFO', 'replication']);
    const m = Buffer.isBuffer(reply) ? /^master_repl_offset:(\d+)/m.exec(reply.toString('latin1')) : null;
    return m ? Number(m[1]) : null;
  }

  private async sourceKeyCount(): Promise<number | null> {
    try {
      const reply = await this.control?.call(['INFO', 'keyspace']);
      if (!Buffer.isBuffer(reply)) return null;
      let total = 0;
      for (const m of reply.toString('latin1').matchAll(/^db\d+:keys=(\d+)/gm)) total += Number(m[1]);
      return total;
    } catch {
      return null;
    }
  }
}

function connectOptions(e: Endpoint): { host: string; port: number; user?: string; password?: string } {
  return { host: e.host, port: e.port, user: e.user, password: e.password };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
