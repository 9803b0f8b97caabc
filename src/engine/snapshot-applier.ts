import type { Logger } from 'pino';
import type { KeyHeader, RdbEntry, WholeKeyEntry } from '../rdb/entries.js';
import { encodeRestore } from '../rdb/dump.js';
import { KeyRewriter, type Command } from '../rdb/rewrite.js';
import type { KeyRoute, Target } from '../target/target.js';
import type { FlowControl } from '../target/flow-control.js';
import { refusalKind } from '../target/refusals.js';
import { encodeCommand } from '../resp/encode.js';
import type { Reply } from '../resp/reply-decoder.js';
import { BatchChannel } from './batch-channel.js';
import type { WriteErrorLog } from './errors.js';
import type { TargetRefusals } from './refusal-policy.js';
import type { SnapshotStats } from './stats.js';
import type { DbMapper } from './db-map.js';
import { printable } from '../common/printable.js';

const ABSTTL_REPLACE = ['ABSTTL', 'REPLACE'];
const ABSTTL = ['ABSTTL'];
const REPLACE = ['REPLACE'];
const NONE: string[] = [];

/**
 * What a write in flight costs beyond its command bytes (its callbacks, the connection's entry,
 * the parser's chunk its key still points into): charged to the flow budget too. Without it a
 * snapshot of small keys had its whole keyspace in flight when the target was slower than the
 * parser (64 MiB of 60-byte RESTOREs is a million keys): 500-700 MB of RSS on a busy machine.
 */
const KEY_OVERHEAD_BYTES = 1024;

/**
 * Keys being rebuilt at once, at most. Each holds a batch channel, a rewriter, its decoded
 * elements and its encoded commands, far more than the bytes the flow budget sees: without a
 * bound, 200k small keys rebuilt against a busy target reached 1 GB of RSS.
 */
const MAX_KEYS_REBUILDING = 256;

/**
 * Applies snapshot entries to the target. Small keys become one RESTORE (raw payload,
 * absolute TTL, REPLACE), pipelined over the routes; a RESTORE refused for a passing reason
 * (OOM...) is sent again on its own (keys are independent, and each is written once). Big or
 * non-restorable keys are rebuilt by KeyRewriter through one BatchChannel per key, so their
 * commands stay in order even when the target refuses some: a refused batch is sent again
 * before anything after it. Every write takes its bytes from the flow control until it is
 * answered for good; `apply` returns a promise when the budget is spent, which is how a slow
 * target slows the parser and, through it, the source socket.
 */
export class SnapshotApplier {
  private rewriter: KeyRewriter | null = null;
  private rewriteChannel: BatchChannel<null> | null = null;
  private rewriteDb = 0;
  /** Writes sent and not answered for good (retries included). */
  private outstanding = 0;
  private settleWaiters: (() => void)[] = [];
  private rewriteType = '';
  /** Set while skipping the chunks of a key that expired before it arrived. */
  private skippingKey = false;
  /** Keys handed to their channel and not finished yet (see MAX_KEYS_REBUILDING). */
  private rebuilding = 0;
  private rebuildWaiters: (() => void)[] = [];
  checksumVerified: boolean | null = null;

  constructor(
    private readonly target: Target,
    private readonly stats: SnapshotStats,
    private readonly refusals: TargetRefusals,
    private readonly dbs: DbMapper,
    private readonly logger: Logger,
    private readonly flow: FlowControl,
    private readonly now: () => number = Date.now,
  ) {
    // A lost target finishes no key any more: whoever waits for a rebuild slot goes on (and
    // meets the failure at its next flow.room()).
    flow.whenFailed().catch(() => this.wakeRebuildWaiters());
  }

  private get errors(): WriteErrorLog {
    return this.refusals.errors;
  }

  /** Resolves when every write sent is answered for good (applied, or reported); rejects if the target is lost first. */
  settle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return Promise.race([new Promise<void>((resolve) => this.settleWaiters.push(resolve)), this.flow.whenFailed()]);
  }

  /** The migration stops: a rebuilt key's channel sends nothing more, and nobody waits for it. */
  abandon(): void {
    this.rewriteChannel?.abandon();
    this.wakeRebuildWaiters();
    for (const w of this.settleWaiters.splice(0)) w();
  }

  private began(bytes: number): void {
    this.outstanding++;
    this.flow.take(bytes + KEY_OVERHEAD_BYTES);
  }

  private ended(bytes: number): void {
    this.flow.give(bytes + KEY_OVERHEAD_BYTES);
    if (--this.outstanding === 0 && this.settleWaiters.length > 0) for (const w of this.settleWaiters.splice(0)) w();
  }

  /**
   * One write on `route`; a passing refusal is sent again after a pause while the policy says
   * so; `done` gets the final verdict.
   */
  private sendRetrying(route: KeyRoute, command: Buffer, done: (error: string | null, reply: Reply | undefined) => void, attempt = 1): void {
    route.send(command, (error, reply) => {
      if (error !== null && this.refusals.retryPassing && refusalKind(error) === 'passing') {
        this.refusals.retrying(error, attempt);
        setTimeout(() => this.sendRetrying(route, command, done, attempt + 1), this.refusals.backoffMs(attempt));
        return;
      }
      done(error, reply);
    });
  }

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
    this.began(command.length);
    const logical = entry.logical;
    this.sendRetrying(route, command, (error) => {
      if (error) this.errors.record(db, this.targetKey(place.prefix, entry.key), 'RESTORE', collisionHint(error, place.replace));
      else {
        this.stats.restored++;
        this.countType(logical);
      }
      this.ended(command.length);
      done?.(error);
    });
    return this.flow.room();
  }

  private countType(logical: string): void {
    const byType = (this.stats.keysByType ??= {});
    byType[logical] = (byType[logical] ?? 0) + 1;
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
    const route = this.target.route(place.db, key);
    this.rewriteChannel = new BatchChannel<null>({ transport: (commands, done) => route.sendBatch(commands.map((c) => c.encoded), done), policy: this.refusals });
    this.rewriteDb = place.db;
    this.rewriteType = header.logical;
    this.rebuilding++;
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
    const db = this.rewriteDb;
    const logical = this.rewriteType;
    let lastError: string | null = null;
    let applied = false;
    const finished = (): void => {
      this.rebuildFinished();
      done?.(applied ? (lastError ?? rewriter.failure) : 'the target refused the rebuilt key (reported)');
    };
    const pressure = this.sendRewrite(commands, rewriter.key, (replies) => {
      applied = true;
      const last = replies[replies.length - 1];
      if (last instanceof Error) lastError = last.message;
      if (rewriter.failure !== null) return;
      if (last instanceof Error) return; // reported with its key already
      // RENAMENX answers 0 when the name is taken: a key of another merged database.
      if (rewriter.renamedWith === 'RENAMENX' && last === 0) {
        this.errors.record(db, rewriter.key, 'RENAMENX', collisionHint('BUSYKEY Target key name already exists.', false));
      } else {
        this.stats.rewritten++;
        this.countType(logical);
      }
    }, finished);
    if (this.rebuilding < MAX_KEYS_REBUILDING) return pressure;
    // Too many keys in the making: the next entry waits until one is finished.
    const slot = new Promise<void>((resolve) => this.rebuildWaiters.push(resolve));
    return pressure ? Promise.all([pressure, slot]).then(() => undefined) : slot;
  }

  private rebuildFinished(): void {
    this.rebuilding--;
    if (this.rebuilding < MAX_KEYS_REBUILDING) this.wakeRebuildWaiters();
  }

  private wakeRebuildWaiters(): void {
    if (this.rebuildWaiters.length === 0) return;
    const waiters = this.rebuildWaiters;
    this.rebuildWaiters = [];
    for (const w of waiters) w();
  }

  /** A group of a rebuilt key's commands, in order behind the key's earlier groups. */
  private sendRewrite(commands: Command[], key: Buffer, replies?: (replies: readonly Reply[]) => void, finished?: () => void): void | Promise<void> {
    if (commands.length === 0) return finished?.();
    const db = this.rewriteDb;
    const writes = commands.map((command) => ({ db, encoded: encodeCommand(command), name: String(command[0]).toUpperCase(), key }));
    const bytes = writes.reduce((n, w) => n + w.encoded.length, 0);
    this.began(bytes);
    this.rewriteChannel!.add({
      writes,
      tag: null,
      replies,
      done: () => {
        this.ended(bytes);
        finished?.();
      },
    });
    return this.flow.room();
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
