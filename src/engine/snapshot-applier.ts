import type { Logger } from 'pino';
import type { KeyHeader, RdbEntry, WholeKeyEntry } from '../rdb/entries.js';
import { encodeRestore } from '../rdb/dump.js';
import { KeyRewriter, type Command } from '../rdb/rewrite.js';
import type { Lane, TargetWriter } from '../target/writer.js';
import type { WriteErrorLog } from './errors.js';
import type { SnapshotStats } from './stats.js';
import type { DbMapper } from './db-map.js';
import { printable } from '../common/printable.js';

const ABSTTL_REPLACE = ['ABSTTL', 'REPLACE'];
const REPLACE = ['REPLACE'];

/**
 * Applies snapshot entries to the target. Small keys become one RESTORE (raw payload,
 * absolute TTL, REPLACE); big or non-restorable keys are rebuilt by KeyRewriter on a single
 * lane so their commands stay in order. Returns a promise only when the chosen lane is full:
 * that is how a slow target slows the parser and, through it, the source socket.
 */
export class SnapshotApplier {
  private rewriter: KeyRewriter | null = null;
  private rewriteLane: Lane | null = null;
  private rewriteDb = 0;
  /** Set while skipping the chunks of a key that expired before it arrived. */
  private skippingKey = false;
  checksumVerified: boolean | null = null;

  constructor(
    private readonly writer: TargetWriter,
    private readonly stats: SnapshotStats,
    private readonly errors: WriteErrorLog,
    private readonly dbs: DbMapper,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  apply(entry: RdbEntry): void | Promise<void> {
    switch (entry.kind) {
      case 'key':
        return this.restore(entry);
      case 'key-begin':
        return this.beginRewrite(entry);
      case 'key-chunk':
        if (this.skippingKey || !this.rewriter) return;
        return this.sendRewrite(this.rewriter.chunk(entry.chunk), this.rewriter.key);
      case 'key-end':
        return this.endRewrite();
      case 'function':
        this.stats.functions++;
        return this.serverWide(['FUNCTION', 'LOAD', 'REPLACE', entry.code], 'FUNCTION LOAD');
      case 'aux':
        // Up to Redis 6.2 a replication snapshot carries the cached scripts, so that a later
        // EVALSHA in the stream finds its script on the target.
        if (entry.name === 'lua') return this.serverWide(['SCRIPT', 'LOAD', entry.value], 'SCRIPT LOAD');
        return;
      case 'module-aux':
        this.logger.warn({ module: entry.module }, 'module auxiliary data in the snapshot cannot be migrated; the module must be configured on the target');
        this.stats.skippedModuleAux++;
        return;
      case 'key-meta-skipped':
        this.stats.skippedKeyMeta++;
        this.logger.warn({ db: entry.db, key: printable(entry.key), classes: entry.classes }, 'module key metadata (KEY_META) cannot be migrated; the key is copied without it');
        return;
      case 'end':
        this.checksumVerified = entry.checksumVerified;
        return;
      case 'select-db':
      case 'resize-db':
        return;
    }
  }

  private isExpired(header: KeyHeader): boolean {
    return header.expireAtMs !== null && header.expireAtMs <= this.now();
  }

  private restore(entry: WholeKeyEntry): void | Promise<void> {
    this.stats.keys++;
    if (this.isExpired(entry)) {
      this.stats.expiredSkipped++;
      return;
    }
    const db = this.dbs.map(entry.db);
    if (db === null) {
      this.stats.filtered++;
      return;
    }
    const info = this.writer.info;
    const version = Math.min(entry.rdbVersion, info.format.rdbVersion);
    let ttl: number;
    let options: string[];
    if (info.supportsAbsTtl) {
      ttl = entry.expireAtMs ?? 0;
      if (entry.idleSeconds !== null) options = ['ABSTTL', 'REPLACE', 'IDLETIME', String(entry.idleSeconds)];
      else if (entry.lfuFreq !== null) options = ['ABSTTL', 'REPLACE', 'FREQ', String(entry.lfuFreq)];
      else options = ABSTTL_REPLACE;
    } else {
      ttl = entry.expireAtMs === null ? 0 : Math.max(1, entry.expireAtMs - this.now());
      options = REPLACE;
    }
    const command = encodeRestore(entry, ttl, version, options);
    const lane = this.writer.pickLane();
    lane.sendEncoded(db, command, (error) => {
      if (error) this.errors.record(db, entry.key, 'RESTORE', error);
      else this.stats.restored++;
    });
    if (lane.full) return lane.waitForRoom();
  }

  private beginRewrite(header: KeyHeader & { reason: string }): void | Promise<void> {
    this.stats.keys++;
    this.skippingKey = false;
    const db = this.dbs.map(header.db);
    if (this.isExpired(header) || db === null) {
      if (db === null) this.stats.filtered++;
      else this.stats.expiredSkipped++;
      this.skippingKey = true;
      this.rewriter = null;
      return;
    }
    this.rewriter = new KeyRewriter(header, { streamCounters: this.writer.info.version[0] >= 7 || this.writer.info.valkey });
    this.rewriteLane = this.writer.pickLane();
    this.rewriteDb = db;
    return this.sendRewrite(this.rewriter.begin(), header.key);
  }

  private endRewrite(): void | Promise<void> {
    const rewriter = this.rewriter;
    this.rewriter = null;
    if (this.skippingKey || !rewriter) {
      this.skippingKey = false;
      return;
    }
    if (rewriter.failure !== null) this.errors.record(this.rewriteDb, rewriter.key, 'rewrite', rewriter.failure);
    const pending = this.sendRewrite(rewriter.end(), rewriter.key);
    if (rewriter.failure === null) {
      const stats = this.stats;
      this.rewriteLane!.marker(() => stats.rewritten++);
    }
    return pending;
  }

  private sendRewrite(commands: Command[], key: Buffer): void | Promise<void> {
    const lane = this.rewriteLane!;
    const db = this.rewriteDb;
    for (const command of commands) {
      const name = String(command[0]);
      lane.send(db, command, (error) => {
        if (error) this.errors.record(db, key, name, error);
      });
    }
    if (lane.full) return lane.waitForRoom();
  }

  /** Functions and scripts belong to the server, not to a database. */
  private serverWide(args: Command, name: string): void | Promise<void> {
    const lane = this.writer.lanes[0]!;
    lane.send(0, args, (error) => {
      if (error) this.errors.record(0, null, name, error);
    });
    if (lane.full) return lane.waitForRoom();
  }
}
