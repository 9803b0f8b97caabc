import type { StreamCommand } from '../resp/command-stream.js';
import { encodeCommand } from '../resp/encode.js';
import { ReplyError, type Reply } from '../resp/reply-decoder.js';
import type { Lane } from '../target/writer.js';
import type { DbMapper } from './db-map.js';
import type { WriteErrorLog } from './errors.js';
import type { StreamStats } from './stats.js';
import { OffsetTracker } from './offset-tracker.js';

export interface StreamApplierOptions {
  /** Drop FLUSHALL / FLUSHDB instead of forwarding them. */
  dropFlush?: boolean;
}

/** Replication chatter: never forwarded, but its bytes still count for the offset. */
const DROPPED = new Set(['ping', 'replconf']);

const MULTI = encodeCommand(['MULTI']);
const DISCARD = encodeCommand(['DISCARD']);
const EXEC = encodeCommand(['EXEC']);

/**
 * Applies the source's command stream to the target, in order, on one lane.
 *
 * Offsets: a command's `offsetAfter` becomes the applied offset when the target has answered
 * it and every command before it. Inside MULTI...EXEC nothing advances until EXEC is
 * answered, so a checkpoint never falls inside a transaction. Dropped commands (PING,
 * REPLCONF) advance it through a lane marker, after everything sent before them.
 */
export class StreamApplier {
  /** The source database the stream has selected. */
  private sourceDb = 0;
  private inTransaction = false;
  /** Commands queued in the open transaction, to name keys when EXEC reports errors. */
  private queued: { name: string; key: Buffer | null; db: number }[] = [];
  private transactionDb = 0;

  constructor(
    private readonly lane: Lane,
    private readonly dbs: DbMapper,
    private readonly stats: StreamStats,
    private readonly errors: WriteErrorLog,
    private readonly onApplied: (offset: number) => void,
    private readonly options: StreamApplierOptions = {},
  ) {}

  /** The source database selected at the applied offset (part of a checkpoint). */
  selectedDbAtApplied = 0;

  /**
   * The applied offset advances over commands in stream order only: a write the target refused
   * for a passing reason (OOM...) is retried later, and what follows it must not be
   * acknowledged before it.
   */
  private readonly tracker = new OffsetTracker((offset, db) => {
    this.selectedDbAtApplied = db;
    this.onApplied(offset);
  });

  apply(command: StreamCommand): void | Promise<void> {
    const { name, args } = command;
    this.stats.receivedOffset = command.offsetAfter;

    if (DROPPED.has(name) || this.isSentinelChatter(command) || (this.options.dropFlush && (name === 'flushall' || name === 'flushdb'))) {
      this.stats.commandsDropped++;
      return this.advanceWhenApplied(command.offsetAfter);
    }
    if (name === 'select') {
      // Not forwarded as is: the lane sends SELECT (mapped) before the next command that
      // needs it, which inside MULTI means inside the transaction, where the source had it.
      this.sourceDb = Number(args[1]?.toString('latin1'));
      return this.advanceWhenApplied(command.offsetAfter);
    }
    if (name === 'multi') {
      this.inTransaction = true;
      this.queued = [];
      this.transactionDb = this.dbs.map(this.sourceDb) ?? 0;
      this.lane.sendRaw(MULTI, (error) => {
        if (error) this.errors.record(this.transactionDb, null, 'MULTI', error);
      });
      return this.roomOrNothing();
    }
    if (name === 'exec') return this.exec(command.offsetAfter);

    const db = this.dbs.map(this.sourceDb);
    if (db === null) {
      this.stats.commandsDropped++;
      return this.advanceWhenApplied(command.offsetAfter);
    }
    this.stats.commandsForwarded++;
    const key = args.length > 1 ? args[1]! : null;
    const upper = name.toUpperCase();
    if (this.inTransaction) {
      this.queued.push({ name: upper, key, db });
      this.lane.sendEncoded(
        db,
        command.raw,
        (error) => {
          // Only queue-time refusals arrive here (the command is not queued; EXEC will abort).
          if (error) this.errors.record(db, key, upper, error);
        },
        false,
      );
      return this.roomOrNothing();
    }
    const done = this.tracker.take(command.offsetAfter, this.sourceDb);
    this.lane.sendEncoded(db, command.raw, (error) => {
      if (error) this.errors.record(db, key, upper, error);
      done();
    });
    return this.roomOrNothing();
  }

  private exec(offset: number): void | Promise<void> {
    this.inTransaction = false;
    this.stats.transactions++;
    const queued = this.queued;
    this.queued = [];
    const lane = this.lane;
    const done = this.tracker.take(offset, this.sourceDb);
    lane.sendRaw(EXEC, (error, reply) => {
      if (error) {
        lane.forgetDb();
        this.errors.record(this.transactionDb, queued[0]?.key ?? null, `EXEC (${queued.length} commands)`, error);
      } else if (Array.isArray(reply)) {
        reply.forEach((r: Reply, i) => {
          if (r instanceof ReplyError) {
            const c = queued[i];
            this.errors.record(c?.db ?? this.transactionDb, c?.key ?? null, c?.name ?? 'EXEC', r.message);
          }
        });
      }
      done();
    });
    return this.roomOrNothing();
  }

  /**
   * The source link broke: a transaction cut in the middle is discarded on the target (its
   * commands were never applied, and the resumed stream sends them again), everything sent is
   * awaited, and the stream's db goes back to what it was at the applied offset.
   */
  async interrupted(): Promise<void> {
    if (this.inTransaction) {
      this.lane.sendRaw(DISCARD);
      this.inTransaction = false;
      this.queued = [];
    }
    this.lane.forgetDb();
    await this.lane.drain();
    this.sourceDb = this.selectedDbAtApplied;
  }

  /** PUBLISH __sentinel__:hello is Sentinel's own traffic, meaningless on the target. */
  private isSentinelChatter(command: StreamCommand): boolean {
    return command.name === 'publish' && command.args[1]?.toString('latin1') === '__sentinel__:hello';
  }

  private advanceWhenApplied(offset: number): void | Promise<void> {
    if (this.inTransaction) return;
    this.tracker.take(offset, this.sourceDb)();
  }

  private roomOrNothing(): void | Promise<void> {
    if (this.lane.full) return this.lane.waitForRoom();
  }
}
