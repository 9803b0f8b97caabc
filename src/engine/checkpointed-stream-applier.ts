import type { StreamCommand } from '../resp/command-stream.js';
import { encodeCommand } from '../resp/encode.js';
import { ReplyError, type Reply } from '../resp/reply-decoder.js';
import type { Lane } from '../target/writer.js';
import type { DbMapper } from './db-map.js';
import type { WriteErrorLog } from './errors.js';
import type { StreamSink } from './shard-sync.js';
import type { StreamStats } from './stats.js';

const MULTI = encodeCommand(['MULTI']);
const EXEC = encodeCommand(['EXEC']);
const DISCARD = encodeCommand(['DISCARD']);
const DROPPED = new Set(['ping', 'replconf']);
/** A batch is closed after this many commands even if the chunk goes on. */
const MAX_BATCH = 1000;

export interface CheckpointOptions {
  /** Where the checkpoint lives on the target (db 0). */
  key: Buffer;
  /** The replication id the offsets belong to (changes after a failover). */
  replid(): string | null;
  dropFlush?: boolean;
}

/** The checkpoint value: `<replid> <applied offset> <source db>`. */
export function formatCheckpoint(replid: string, offset: number, db: number): string {
  return `${replid} ${offset} ${db}`;
}

export function parseCheckpoint(text: string): { replid: string; appliedOffset: number; db: number } | null {
  const m = /^([0-9a-f]{40}) (\d+) (\d+)$/.exec(text.trim());
  return m ? { replid: m[1]!, appliedOffset: Number(m[2]), db: Number(m[3]) } : null;
}

interface Queued {
  name: string;
  key: Buffer | null;
  db: number;
  /** The command itself (absent for a SELECT the lane inserted), to resend an aborted batch. */
  encoded?: Buffer;
}

/** Queue-time refusals that pass with time: the batch is sent again after a pause. */
const TRANSIENT = /^(OOM|LOADING|BUSY|MASTERDOWN|TRYAGAIN|MISCONF)\b/;

/**
 * Exactly-once application of the command stream to a standalone target: the commands are
 * applied in batches, each one MULTI ... EXEC that also writes the checkpoint (replid, offset
 * after the batch, selected db) under `key`. The batch and its checkpoint commit together or
 * not at all, so after a crash the checkpoint read from the target says exactly which writes
 * are there: resuming with PSYNC <replid> <offset + 1> neither repeats nor skips one, even for
 * INCR, APPEND or LPUSH. The source's own MULTI/EXEC blocks are folded into a batch (they stay
 * atomic); a batch never ends inside one.
 */
export class CheckpointedStreamApplier implements StreamSink {
  private sourceDb = 0;
  private sourceInTransaction = false;
  private batchOpen = false;
  /** Commands queued in the open batch (a SELECT the lane inserted counts as one). */
  private batch: Queued[] = [];
  /** Offset and db at the last command boundary outside a source transaction. */
  private boundaryOffset = 0;
  private boundaryDb = 0;
  selectedDbAtApplied = 0;

  constructor(
    private readonly lane: Lane,
    private readonly dbs: DbMapper,
    private readonly stats: StreamStats,
    private readonly errors: WriteErrorLog,
    private readonly applied: (offset: number) => void,
    private readonly options: CheckpointOptions,
  ) {}

  /** Where the stream stands when it starts (full sync offset, or the resumed checkpoint). */
  startAt(offset: number, db: number): void {
    this.boundaryOffset = offset;
    this.boundaryDb = this.sourceDb = this.selectedDbAtApplied = db;
  }

  apply(command: StreamCommand): void | Promise<void> {
    const { name, args } = command;
    this.stats.receivedOffset = command.offsetAfter;
    if (DROPPED.has(name) || (name === 'publish' && args[1]?.toString('latin1') === '__sentinel__:hello') || (this.options.dropFlush && (name === 'flushall' || name === 'flushdb'))) {
      this.stats.commandsDropped++;
      return this.boundary(command.offsetAfter);
    }
    if (name === 'select') {
      this.sourceDb = Number(args[1]?.toString('latin1'));
      return this.boundary(command.offsetAfter);
    }
    if (name === 'multi') {
      this.sourceInTransaction = true;
      this.stats.transactions++;
      return;
    }
    if (name === 'exec') {
      this.sourceInTransaction = false;
      return this.boundary(command.offsetAfter);
    }
    const db = this.dbs.map(this.sourceDb);
    if (db === null) {
      this.stats.commandsDropped++;
      return this.boundary(command.offsetAfter);
    }
    if (this.blocked) return this.blocked.then(() => this.apply(command));
    this.open();
    this.stats.commandsForwarded++;
    const queued: Queued = { name: name.toUpperCase(), key: args[1] ?? null, db, encoded: command.raw };
    if (this.lane.sendEncoded(db, command.raw, (error) => this.queuedReply(error), false)) this.batch.push({ name: 'SELECT', key: null, db });
    this.batch.push(queued);
    return this.boundary(command.offsetAfter);
  }

  /** A batch aborted by a passing refusal (OOM...) is being sent again: everything waits. */
  private blocked: Promise<void> | null = null;
  private transientInBatch: string | null = null;

  private queuedReply(error: string | null): void {
    if (error && TRANSIENT.test(error)) this.transientInBatch ??= error;
  }

  /** The end of what the socket delivered: commit what is batched. */
  chunkEnd(): void | Promise<void> {
    if (this.blocked) return this.blocked.then(() => this.chunkEnd());
    if (!this.sourceInTransaction) this.commit();
    if (this.lane.full) return this.lane.waitForRoom();
  }

  private boundary(offset: number): void | Promise<void> {
    if (this.sourceInTransaction) return;
    this.boundaryOffset = offset;
    this.boundaryDb = this.sourceDb;
    if (this.batch.length >= MAX_BATCH) {
      this.commit();
      if (this.lane.full) return this.lane.waitForRoom();
    }
  }

  private open(): void {
    if (this.batchOpen) return;
    this.batchOpen = true;
    this.batch = [];
    this.lane.sendRaw(MULTI);
  }

  /** EXEC the batch with the checkpoint of its last boundary; or, when empty, just advance. */
  private commit(): void {
    const offset = this.boundaryOffset;
    const db = this.boundaryDb;
    const replid = this.options.replid();
    if (!this.batchOpen) {
      // Nothing to write (PINGs, SELECTs): the offset advances once all before is answered.
      if (offset > this.stats.appliedOffset) this.lane.marker(() => this.advance(offset, db));
      return;
    }
    const batch = this.batch;
    this.batch = [];
    this.batchOpen = false;
    const checkpoint = replid === null ? null : encodeCommand(['SET', this.options.key, formatCheckpoint(replid, offset, db)]);
    if (checkpoint) {
      if (this.lane.sendEncoded(0, checkpoint, undefined, false)) batch.push({ name: 'SELECT', key: null, db: 0 });
      batch.push({ name: 'SET', key: this.options.key, db: 0 });
    }
    this.lane.sendRaw(EXEC, (error, reply) => {
      const transient = this.transientInBatch;
      this.transientInBatch = null;
      if (error && transient) {
        // The target refused a command for a passing reason (OOM...): nothing of the batch
        // was applied; send it again, whole, after a pause, and hold everything behind it.
        this.lane.forgetDb();
        this.blocked = this.resend(batch, checkpoint, transient).then(() => {
          this.blocked = null;
          this.advance(offset, db);
        });
        return;
      }
      if (error) {
        // EXECABORT: a command was refused when queued, and the whole batch with it.
        this.lane.forgetDb();
        this.errors.record(batch[0]?.db ?? 0, batch.find((q) => q.key)?.key ?? null, `EXEC (${batch.length} commands)`, error);
      } else if (Array.isArray(reply)) this.reportErrors(batch, reply);
      this.advance(offset, db);
    });
  }

  private async resend(batch: Queued[], checkpoint: Buffer | null, firstError: string): Promise<void> {
    let error = firstError;
    for (let attempt = 1; ; attempt++) {
      this.errors.logger.warn({ error, commands: batch.length, attempt }, 'the target refused a batch for a passing reason; retrying');
      await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(attempt - 1, 6))));
      await this.lane.drain();
      this.lane.forgetDb();
      this.lane.sendRaw(MULTI);
      const resent: Queued[] = [];
      let refused: string | null = null;
      for (const q of batch) {
        if (!q.encoded) continue;
        if (this.lane.sendEncoded(q.db, q.encoded, (e) => {
          if (e && TRANSIENT.test(e)) refused ??= e;
        }, false)) resent.push({ name: 'SELECT', key: null, db: q.db });
        resent.push(q);
      }
      if (checkpoint) {
        if (this.lane.sendEncoded(0, checkpoint, undefined, false)) resent.push({ name: 'SELECT', key: null, db: 0 });
        resent.push({ name: 'SET', key: this.options.key, db: 0 });
      }
      const outcome = await new Promise<{ error: string | null; reply: Reply | undefined }>((resolve) => this.lane.sendRaw(EXEC, (e, reply) => resolve({ error: e, reply })));
      if (outcome.error && refused) {
        error = refused;
        continue;
      }
      if (outcome.error) this.errors.record(resent[0]?.db ?? 0, resent.find((q) => q.key)?.key ?? null, `EXEC (${resent.length} commands)`, outcome.error);
      else if (Array.isArray(outcome.reply)) this.reportErrors(resent, outcome.reply);
      return;
    }
  }

  private reportErrors(batch: Queued[], replies: Reply[]): void {
    replies.forEach((r, i) => {
      if (r instanceof ReplyError) {
        const q = batch[i];
        this.errors.record(q?.db ?? 0, q?.key ?? null, q?.name ?? 'EXEC', r.message);
      }
    });
  }

  private advance(offset: number, db: number): void {
    this.selectedDbAtApplied = db;
    this.applied(offset);
  }

  /**
   * The link broke or the migration stops: a batch at a clean boundary is committed; one cut
   * inside a source transaction is discarded (the resumed stream sends it again).
   */
  async interrupted(): Promise<void> {
    if (this.sourceInTransaction) {
      if (this.batchOpen) this.lane.sendRaw(DISCARD);
      this.batchOpen = false;
      this.batch = [];
      this.sourceInTransaction = false;
      this.lane.forgetDb();
    } else this.commit();
    await this.lane.drain();
    this.sourceDb = this.selectedDbAtApplied;
  }
}
