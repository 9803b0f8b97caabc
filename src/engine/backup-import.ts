import { EventEmitter } from 'node:events';
import { Transform } from 'node:stream';
import type { Logger } from 'pino';
import type { Endpoint } from '../common/endpoint.js';
import { discoverDeployment } from '../cluster/topology.js';
import { restorableOn } from '../rdb/dump.js';
import { backupParts, planBackup, type BackupFile } from '../import/backup.js';
import { readBackupPart } from '../import/read.js';
import type { BackupWarning } from '../import/errors.js';
import { FlowControl } from '../target/flow-control.js';
import { DbMapper } from './db-map.js';
import { WriteErrorLog } from './errors.js';
import { openTarget, type OpenedTarget } from './open-target.js';
import { TargetRefusals } from './refusal-policy.js';
import { SnapshotApplier } from './snapshot-applier.js';
import { emptySnapshotStats, emptyStreamStats, type WriteErrorsView } from './stats.js';
import { ClusterStreamBackend } from './stream/cluster-backend.js';
import { StandaloneStreamBackend } from './stream/standalone-backend.js';
import { StreamApplier } from './stream/stream-applier.js';

export interface BackupImportOptions {
  files: BackupFile[];
  target: Endpoint[];
  dbs?: DbMapper;
  logger: Logger;
  rewrite?: 'auto' | 'always';
  maxPayloadBytes?: number;
  /** Where zips from object stores are spooled (they need random access). */
  tempDir?: string;
  /**
   * Read the whole backup once before writing (every RDB structure and checksum, every AOF
   * command), so that a truncated or corrupt file fails with nothing written. 'auto' (the
   * default) does it when every file is local and they add up to at most 1 GiB (a few seconds
   * of parsing); 'never' skips it (the header checks of planning still apply).
   */
  validate?: 'auto' | 'always' | 'never';
}

/** Up to this size a local backup is read once in full before anything is written. */
const VALIDATE_LIMIT_BYTES = 1024 ** 3;

export interface BackupImportProgress {
  phase: 'planning' | 'importing' | 'done' | 'failed' | 'stopped';
  files: string[];
  currentFile: string | null;
  /** 0-100, from the bytes read of every file when their sizes are known. */
  progress: number;
  bytesRead: number;
  bytesTotal: number | null;
  keys: number;
  commands: number;
  warnings: BackupWarning[];
  errors: WriteErrorsView;
  failure: string | null;
}

/**
 * Loads backup files (RDB, AOF with or without preamble, multi-part AOF, zip, tar.gz; local or
 * from an object store) into a target, standalone or cluster: RDB entries go through the same
 * SnapshotApplier as a migration's snapshot, AOF commands through the same stream appliers.
 * The whole backup is checked up front where that can be known (formats, manifests, missing
 * parts), so a bad backup fails before anything is written.
 */
export class BackupImport extends EventEmitter {
  private readonly errors: WriteErrorLog;
  private readonly refusals: TargetRefusals;
  private readonly flow = new FlowControl();
  private readonly snapshot = emptySnapshotStats();
  private readonly stream = emptyStreamStats();
  private state: BackupImportProgress;
  private stopRequested = false;
  private partBytes = 0;
  private doneBytes = 0;

  constructor(private readonly options: BackupImportOptions) {
    super();
    this.errors = new WriteErrorLog(options.logger);
    // An import reports what the target refuses (a backup is not a live source to wait for).
    this.refusals = new TargetRefusals({ errors: this.errors, retryPassing: false, writeErrorPolicy: 'skip' });
    this.state = {
      phase: 'planning',
      files: options.files.map((f) => f.name),
      currentFile: null,
      progress: 0,
      bytesRead: 0,
      bytesTotal: null,
      keys: 0,
      commands: 0,
      warnings: [],
      errors: { count: 0, byCode: {}, recent: [] },
      failure: null,
    };
  }

  progress(): BackupImportProgress {
    const bytesRead = this.doneBytes + this.partBytes;
    const total = this.state.bytesTotal;
    return {
      ...this.state,
      bytesRead,
      progress: this.state.phase === 'done' ? 100 : total ? Math.min(99, Math.floor((100 * bytesRead) / total)) : 0,
      keys: this.snapshot.restored + this.snapshot.rewritten,
      commands: this.stream.commandsForwarded,
      warnings: [...this.state.warnings],
      errors: { count: this.errors.count, byCode: this.errors.countsByCode(), recent: [...this.errors.recent] },
    };
  }

  stop(): void {
    this.stopRequested = true;
  }

  async run(): Promise<BackupImportProgress> {
    const { logger } = this.options;
    let target: OpenedTarget | null = null;
    let lost = null as Error | null;
    const timer = setInterval(() => this.emit('progress', this.progress()), 1000);
    try {
      const plan = await planBackup(this.options.files, { tempDir: this.options.tempDir });
      this.state.bytesTotal = plan.totalBytes;
      for (const w of plan.warnings) this.warn(w);
      if (this.shouldValidate(plan.totalBytes)) await this.validateAll();
      const deployment = await discoverDeployment(this.options.target).catch((e: Error) => {
        throw new Error(`target: ${e.message}`);
      });
      target = await openTarget(deployment, { user: this.options.target[0]!.user, password: this.options.target[0]!.password, tls: this.options.target[0]!.tls }, (e: Error) => {
        lost ??= e;
        this.flow.fail(e);
      });
      let dbs = this.options.dbs ?? new DbMapper();
      if (target.kind === 'cluster') dbs = dbs.withForcedDb(0);
      const t = target;
      const snapshotApplier = new SnapshotApplier(t, this.snapshot, this.refusals, dbs, logger, this.flow);
      const parser = {
        wantsPayload: (type: number, _v: number, magic: 'REDIS' | 'VALKEY') => this.options.rewrite !== 'always' && restorableOn(type, magic, t.info.format),
        maxPayloadBytes: this.options.maxPayloadBytes,
      };
      this.setPhase('importing');
      for await (const part of backupParts(this.options.files, { plan, tempDir: this.options.tempDir })) {
        if (this.stopRequested) break;
        this.state.currentFile = part.file;
        logger.info({ file: part.file, kind: part.kind }, 'importing');
        let sink: StreamApplier | null = null;
        let read = 0;
        // Counts the bytes as they are pulled (a pipe keeps the back-pressure).
        const counted = part.stream.pipe(
          new Transform({
            transform: (chunk: Buffer, _enc, done) => {
              read += chunk.length;
              this.partBytes = read;
              done(null, chunk);
            },
          }),
        );
        part.stream.on('error', (e) => counted.destroy(e));
        await readBackupPart(
          { ...part, stream: counted },
          {
            entry: (e) => {
              if (lost) throw lost;
              return snapshotApplier.apply(e);
            },
            // Each AOF file starts on db 0, like a fresh client: a fresh applier does that.
            beginCommands: () => {
              sink = this.commandSink(t, dbs);
            },
            commands: async (batch) => {
              if (lost) throw lost;
              for (const command of batch) {
                const pending = sink!.apply(command);
                if (pending) await pending;
              }
            },
            warning: (w) => this.warn(w),
          },
          { parser },
        );
        await snapshotApplier.settle();
        await (sink as StreamApplier | null)?.interrupted();
        await t.drain();
        this.doneBytes += read;
        this.partBytes = 0;
      }
      await t.drain();
      if (lost) throw lost;
      this.setPhase(this.stopRequested ? 'stopped' : 'done');
      return this.progress();
    } catch (e) {
      this.state.failure = lost ? `lost the target: ${lost.message}` : (e as Error).message;
      // A failure after writing began leaves part of the backup on the target: say how much.
      // Writes still in flight are awaited first, so the count is what the target acknowledged.
      if (this.state.phase === 'importing') {
        if (!lost) await target?.drain().catch(() => undefined);
        this.state.failure += ` (${this.writtenSoFar()})`;
      }
      this.setPhase('failed');
      logger.error({ reason: this.state.failure }, 'import failed');
      throw new Error(this.state.failure);
    } finally {
      clearInterval(timer);
      target?.close();
    }
  }

  private shouldValidate(totalBytes: number | null): boolean {
    const mode = this.options.validate ?? 'auto';
    if (mode !== 'auto') return mode === 'always';
    return this.options.files.every((f) => f.localPath !== undefined) && totalBytes !== null && totalBytes <= VALIDATE_LIMIT_BYTES;
  }

  /** One pass over every part that only parses: what fails here fails before any write. */
  private async validateAll(): Promise<void> {
    const started = Date.now();
    for await (const part of backupParts(this.options.files, { tempDir: this.options.tempDir })) {
      if (this.stopRequested) break;
      this.state.currentFile = part.file;
      await readBackupPart(
        part,
        { entry: () => undefined, commands: () => undefined, warning: () => undefined },
        { parser: { wantsPayload: () => true, maxPayloadBytes: this.options.maxPayloadBytes } },
      );
    }
    this.state.currentFile = null;
    this.options.logger.info({ ms: Date.now() - started }, 'backup validated: every file reads to its end');
  }

  /** What the target already holds from this import, in words. */
  private writtenSoFar(): string {
    const keys = this.snapshot.restored + this.snapshot.rewritten;
    const commands = this.stream.commandsForwarded;
    const files = this.state.files.length;
    if (keys === 0 && commands === 0) return 'nothing was written to the target';
    return `${keys.toLocaleString('en-US')} keys and ${commands.toLocaleString('en-US')} commands were written to the target before the failure, while reading ${this.state.currentFile ?? 'the backup'} (${files} file${files === 1 ? '' : 's'} given): the target holds part of the backup`;
  }

  /** AOF commands go through the same stream path as a migration's, without checkpoints. */
  private commandSink(target: OpenedTarget, dbs: DbMapper): StreamApplier {
    const backend = target.kind === 'standalone' ? new StandaloneStreamBackend(target.writer.lanes[0]!, this.refusals, null) : new ClusterStreamBackend(target.router, this.refusals, this.options.logger, null);
    return new StreamApplier(dbs, this.stream, backend, this.flow, () => undefined);
  }

  private warn(w: BackupWarning): void {
    this.state.warnings.push(w);
    if (this.state.warnings.length > 100) this.state.warnings.shift();
    this.options.logger.warn({ file: w.file, offset: w.offset, code: w.code }, w.message);
  }

  private setPhase(phase: BackupImportProgress['phase']): void {
    this.state.phase = phase;
    this.emit('progress', this.progress());
  }
}
