import type { Logger } from 'pino';
import type { KeyHeader, RdbEntry, WholeKeyEntry } from '../rdb/entries.js';
import { encodeRestore } from '../rdb/dump.js';
import { KeyRewriter, type Command } from '../rdb/rewrite.js';
import type { KeyRoute, Target } from '../target/target.js';
import { encodeCommand } from '../resp/encode.js';
import type { WriteErrorLog } from './errors.js';
import type { SnapshotStats } from './stats.js';
import type { DbMapper } from './db-map.js';
import { printable } from '../common/printable.js';

const ABSTTL_REPLACE = ['ABSTTL', 'REPLACE'];
const ABSTTL = ['ABSTTL'];
const REPLACE = ['REPLACE'];
const NONE: string[] = [];

/**
 * Applies snapshot entries to the target. Small keys become one RESTORE (raw payload,
 * absolute TTL, REPLACE); big or non-restorable keys are rebuilt by KeyRewriter on a single
 * lane so their commands stay in order. Returns a promise only when the chosen lane is full:
 * that is how a slow target slows the parser and, through it, the source socket.
 */
export class SnapshotApplier {
  private rewriter: KeyRewriter | null = null;
  private rewriteRoute: KeyRoute | null = null;
  private rewriteDb = 0;
  /** Set while skipping the chunks of a key that expired before it arrived. */
  private skippingKey = false;
  checksumVerified: boolean | null = null;

  constructor(
    private readonly target: Target,
    private readonly stats: SnapshotStats,
    private readonly errors: WriteErrorLog,
    private readonly dbs: DbMapper,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * `done` (whole keys and key-end only) is called once the key's last write is answered, or at
   * once when the key is skipped: scan mode orders the copies of one key by it.
   */
  apply(entry: RdbEntry, done?: (error: string | null) => void): void | Promise<void> {
    switch (entry.kind) {
      case 'key':
        return this.restore(entry, done);
      case 'key-begin':
        return this.beginRewrite(entry);
      case 'key-chunk':
        if (this.skippingKey || !this.rewriter) return;
        return this.sendRewrite(this.rewriter.chunk(entry.chunk), this.rewriter.key);
      case 'key-end':
        return this.endRewrite(done);
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

  private restore(entry: WholeKeyEntry, done?: (error: string | null) => void): void | Promise<void> {
    this.stats.keys++;
    if (this.isExpired(entry)) {
      this.stats.expiredSkipped++;
      return done?.(null);
    }
    const place = this.dbs.placement(entry.db);
    if (place === null) {
      this.stats.filtered++;
      return done?.(null);
    }
    const db = place.db;
    const info = this.target.info;
    const version = Math.min(entry.rdbVersion, info.format.rdbVersion);
    let ttl: number;
    let options: string[];
    if (info.supportsAbsTtl) {
      ttl = entry.expireAtMs ?? 0;
      const base = place.replace ? ABSTTL_REPLACE : ABSTTL;
      if (entry.idleSeconds !== null) options = [...base, 'IDLETIME', String(entry.idleSeconds)];
      else if (entry.lfuFreq !== null) options = [...base, 'FREQ', String(entry.lfuFreq)];
      else options = base;
    } else {
      ttl = entry.expireAtMs === null ? 0 : Math.max(1, entry.expireAtMs - this.now());
      options = place.replace ? REPLACE : NONE;
    }
    const command = encodeRestore(entry, ttl, version, options, place.prefix);
    const route = this.target.route(db, place.prefix ? Buffer.concat([place.prefix, entry.key]) : entry.key);
    route.send(command, (error) => {
      if (error) this.errors.record(db, this.targetKey(place.prefix, entry.key), 'RESTORE', collisionHint(error, place.replace));
      else this.stats.restored++;
      done?.(error);
    });
    if (route.full) return route.waitForRoom();
  }

  private targetKey(prefix: Buffer | null, key: Buffer): Buffer {
    return prefix ? Buffer.concat([prefix, key]) : key;
  }

  private beginRewrite(header: KeyHeader & { reason: string }): void | Promise<void> {
    this.stats.keys++;
    this.skippingKey = false;
    const place = this.dbs.placement(header.db);
    if (this.isExpired(header) || place === null) {
      if (place === null) this.stats.filtered++;
      else this.stats.expiredSkipped++;
      this.skippingKey = true;
      this.rewriter = null;
      return;
    }
    const key = this.targetKey(place.prefix, header.key);
    const info = this.target.info;
    this.rewriter = new KeyRewriter({ ...header, key }, { streamCounters: info.version[0] >= 7 || info.valkey, replace: place.replace });
    this.rewriteRoute = this.target.route(place.db, key);
    this.rewriteDb = place.db;
    return this.sendRewrite(this.rewriter.begin(), key);
  }

  private endRewrite(done?: (error: string | null) => void): void | Promise<void> {
    const rewriter = this.rewriter;
    this.rewriter = null;
    if (this.skippingKey || !rewriter) {
      this.skippingKey = false;
      return done?.(null);
    }
    if (rewriter.failure !== null) this.errors.record(this.rewriteDb, rewriter.key, 'rewrite', rewriter.failure);
    const commands = rewriter.end();
    const last = commands.length - 1;
    return this.sendRewrite(commands, rewriter.key, (i, error, reply) => {
      if (i === last) done?.(error ?? rewriter.failure);
      if (i !== last || rewriter.failure !== null || error) return;
      // RENAMENX answers 0 when the name is taken: a key of another merged database.
      if (rewriter.renamedWith === 'RENAMENX' && reply === 0) {
        this.errors.record(this.rewriteDb, rewriter.key, 'RENAMENX', collisionHint('BUSYKEY Target key name already exists.', false));
      } else this.stats.rewritten++;
    });
  }

  private sendRewrite(commands: Command[], key: Buffer, after?: (index: number, error: string | null, reply: unknown) => void): void | Promise<void> {
    const route = this.rewriteRoute!;
    const db = this.rewriteDb;
    commands.forEach((command, i) => {
      const name = String(command[0]);
      route.send(encodeCommand(command), (error, reply) => {
        if (error) this.errors.record(db, key, name, error);
        after?.(i, error, reply);
      });
    });
    if (route.full) return route.waitForRoom();
  }

  /** Functions and scripts belong to the server (every master of a cluster), not to a database. */
  private serverWide(args: Command, name: string): void {
    this.target.broadcast(encodeCommand(args), (error) => {
      if (error) this.errors.record(0, null, name, error);
    });
  }
}

/** BUSYKEY on a write without REPLACE means two source databases hold the same key name. */
function collisionHint(error: string, replace: boolean): string {
  return !replace && error.startsWith('BUSYKEY') ? `${error} (key collision: the same name exists in another source database merged into this one)` : error;
}
