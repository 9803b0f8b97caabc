import { ReplyError, type Reply } from '../resp/reply-decoder.js';
import { Fifo } from '../common/fifo.js';
import type { BatchCommand, BatchDone, BatchReply } from '../target/batch.js';
import { refusalKind } from '../target/refusals.js';

/** A command to apply, with what a report of its refusal names. */
export interface ChannelWrite extends BatchCommand {
  /** Upper-case command name, for reports. */
  readonly name: string;
  /** The key it writes, for reports (null for key-less commands). */
  readonly key: Buffer | null;
  /** A write standing for commands as received (a stream run, `count` of them): the same commands one write each, for reports and retries. */
  explode?(): ChannelWrite[];
}

/**
 * The writes of one unit of work that go through one channel (a whole stream unit on a
 * standalone target, the part of a unit in one slot on a cluster, a chunk of a rebuilt key).
 * A batch never splits a piece, so a source transaction stays atomic.
 */
export interface Piece<Tag = unknown> {
  writes: ChannelWrite[];
  /** Called once, when every write of the piece is applied or reported. */
  done(): void;
  /** What the checkpoint of a batch ending with this piece is made from. */
  tag: Tag;
  /** The replies of the piece's writes once applied (for callers that read them, e.g. RENAMENX's 0). */
  replies?(replies: readonly Reply[]): void;
}

/**
 * What a channel does when the target refuses a batch. One policy serves all the channels of a
 * migration, so a refused write stops every channel, not only its own.
 */
export interface RefusalPolicy {
  /** Send again what is refused for a passing reason (resume mode auto), instead of reporting it. */
  readonly retryPassing: boolean;
  /**
   * A write refused for good: report it. 'skip': it is dropped and the rest goes on; 'stop':
   * the channel stops there (the write-error policy is fail; the migration is ending).
   */
  refused(write: ChannelWrite, error: string): 'skip' | 'stop';
  /** A channel retries a passing refusal: hold every channel until it passes (see `held`). */
  hold(holder: object, error: string, attempt: number): void;
  release(holder: object): void;
  /** True while some channel holds: no channel starts a new batch. */
  readonly held: boolean;
  /** Channels waiting for the hold to end are woken through this. */
  whenReleased(fn: () => void): void;
  /** Pause before the n-th retry (1, 2, ...). */
  backoffMs(attempt: number): number;
}

export type Transport = (commands: BatchCommand[], done: BatchDone) => void;

export interface BatchChannelOptions<Tag> {
  transport: Transport;
  policy: RefusalPolicy;
  /** The checkpoint write that commits with a batch whose last piece carries `tag` (exactly-once), or null. */
  checkpoint?: (tag: Tag) => BatchCommand | null;
  maxBatchWrites?: number;
  maxBatchBytes?: number;
}

interface Batch<Tag> {
  pieces: Piece<Tag>[];
  /** The writes still in the batch (a write refused for good is taken out before the batch is sent again). */
  writes: { piece: Piece<Tag>; write: ChannelWrite }[];
  checkpoint: BatchCommand | null;
  attempt: number;
  holding: boolean;
  /** Some write holds several commands (replies and refusal indices count commands, not writes). */
  runs: boolean;
}

const DEFAULT_MAX_BATCH_WRITES = 2000;
const DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Applies pieces in order through one ordering domain of the target (a connection, or a slot)
 * as MULTI ... EXEC batches, with at most one batch in flight. That is what makes a refusal
 * safe: a batch is applied whole or not at all, and nothing behind a refused batch has been
 * sent yet, so sending it again (after a pause, when the refusal passes) keeps the source's
 * order. Pieces that arrive while a batch is in flight wait and form the next batch, so under
 * load batches grow and the round trip is paid once per batch, not per write.
 *
 * A write refused for good (WRONGTYPE when run, an unknown command when queued) is reported
 * through the policy; when it was refused at queue time the batch is sent again without it.
 */
export class BatchChannel<Tag = unknown> {
  /** A FIFO, not an array: under load tens of thousands of pieces wait, and Array#shift is O(n). */
  private readonly pending = new Fifo<Piece<Tag>>();
  private inflight: Batch<Tag> | null = null;
  private scheduled = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private readonly maxWrites: number;
  private readonly maxBytes: number;

  constructor(private readonly options: BatchChannelOptions<Tag>) {
    this.maxWrites = options.maxBatchWrites ?? DEFAULT_MAX_BATCH_WRITES;
    this.maxBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
  }

  /** Nothing waits and nothing is in flight. */
  get idle(): boolean {
    return this.inflight === null && this.pending.length === 0;
  }

  add(piece: Piece<Tag>): void {
    if (this.stopped) return;
    if (piece.writes.length === 0) {
      // Nothing to write; still in order behind what waits here.
      if (this.idle) piece.done();
      else this.pending.push(piece);
      return;
    }
    this.pending.push(piece);
    this.schedule();
  }

  /** Resolves when the channel is idle (or stopped). */
  settle(): Promise<void> {
    if (this.idle || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops what waits and stops retrying: nothing more is sent (the migration is stopping). */
  abandon(): void {
    this.stopped = true;
    if (this.inflight?.holding) this.options.policy.release(this);
    this.pending.takeAll();
    this.wakeIdle();
  }

  /** Forms the next batch once the current tick's pieces are in (one batch per burst, not per write). */
  private schedule(): void {
    if (this.scheduled || this.inflight !== null) return;
    this.scheduled = true;
    process.nextTick(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.inflight !== null || this.stopped) return;
    // Pieces with nothing to write that reached the head are done in order.
    while (this.pending.length > 0 && this.pending.peek()!.writes.length === 0) this.pending.shift()!.done();
    if (this.pending.length === 0) return this.wakeIdle();
    const policy = this.options.policy;
    if (policy.held) {
      policy.whenReleased(() => this.schedule());
      return;
    }
    const batch: Batch<Tag> = { pieces: [], writes: [], checkpoint: null, attempt: 0, holding: false, runs: false };
    let bytes = 0;
    let commands = 0;
    while (this.pending.length > 0) {
      const next = this.pending.peek()!;
      let size = 0;
      let count = 0;
      let runs = false;
      for (const w of next.writes) {
        size += w.encoded.length;
        count += w.count ?? 1;
        if (w.explode) runs = true;
      }
      if (batch.pieces.length > 0 && (commands + count > this.maxWrites || bytes + size > this.maxBytes)) break;
      this.pending.shift();
      batch.pieces.push(next);
      for (const write of next.writes) batch.writes.push({ piece: next, write });
      if (runs) batch.runs = true;
      bytes += size;
      commands += count;
    }
    batch.checkpoint = this.options.checkpoint?.(batch.pieces[batch.pieces.length - 1]!.tag) ?? null;
    this.send(batch);
  }

  private send(batch: Batch<Tag>): void {
    this.inflight = batch;
    const commands: BatchCommand[] = batch.writes.map((w) => w.write);
    if (batch.checkpoint) commands.push(batch.checkpoint);
    this.options.transport(commands, (reply) => this.answered(batch, reply));
  }

  private answered(batch: Batch<Tag>, reply: BatchReply): void {
    if (this.stopped || reply.applied === false && reply.lost) return; // the loss is handled by whoever watches the target
    const policy = this.options.policy;
    if (batch.runs) {
      // The common case: every command applied, nobody reads the replies.
      if (reply.applied && !reply.replies.some((r) => r instanceof ReplyError) && !batch.pieces.some((p) => p.replies)) return this.finish(batch);
      // Anything else is handled command by command, as if each had come alone.
      this.explode(batch);
    }
    if (reply.applied) {
      for (let i = 0; i < batch.writes.length; i++) {
        const r = reply.replies[i];
        if (r instanceof ReplyError && policy.refused(batch.writes[i]!.write, r.message) === 'stop') return this.stop();
      }
      if (batch.pieces.some((p) => p.replies)) {
        const byPiece = new Map<Piece<Tag>, Reply[]>();
        batch.writes.forEach(({ piece }, i) => {
          let list = byPiece.get(piece);
          if (!list) byPiece.set(piece, (list = []));
          list.push(reply.replies[i] ?? null);
        });
        for (const piece of batch.pieces) piece.replies?.(byPiece.get(piece) ?? []);
      }
      return this.finish(batch);
    }
    const refusedAt = reply.refusedAt !== null && reply.refusedAt < batch.writes.length ? reply.refusedAt : null;
    if (refusalKind(reply.error) === 'passing') {
      if (policy.retryPassing) {
        batch.attempt++;
        if (!batch.holding) batch.holding = true;
        policy.hold(this, reply.error, batch.attempt);
        setTimeout(() => {
          if (!this.stopped) this.send(batch);
        }, policy.backoffMs(batch.attempt));
        return;
      }
      // Not retried: every write of the batch is refused, each reported with its key.
      for (const { write } of batch.writes) if (policy.refused(write, reply.error) === 'stop') return this.stop();
      return this.finish(batch);
    }
    if (refusedAt !== null) {
      // One write cannot be queued at all: report it, send the rest again without it.
      const [{ write }] = batch.writes.splice(refusedAt, 1);
      if (policy.refused(write!, reply.error) === 'stop') return this.stop();
      if (batch.writes.length === 0) return this.finish(batch);
      this.send(batch);
      return;
    }
    // Refused as a whole with no culprit (EXECABORT for another reason): report every write.
    for (const { write } of batch.writes) if (policy.refused(write, reply.error) === 'stop') return this.stop();
    this.finish(batch);
  }

  /** Replaces every run of the batch by its commands, one write each (indices then match replies). */
  private explode(batch: Batch<Tag>): void {
    const writes: Batch<Tag>['writes'] = [];
    for (const w of batch.writes) {
      if (w.write.explode) for (const write of w.write.explode()) writes.push({ piece: w.piece, write });
      else writes.push(w);
    }
    batch.writes = writes;
    batch.runs = false;
  }

  private finish(batch: Batch<Tag>): void {
    this.inflight = null;
    if (batch.holding) this.options.policy.release(this);
    for (const piece of batch.pieces) piece.done();
    if (this.pending.length > 0) this.schedule();
    else this.wakeIdle();
  }

  private stop(): void {
    const holding = this.inflight?.holding ?? false;
    this.inflight = null;
    this.stopped = true;
    this.pending.takeAll();
    if (holding) this.options.policy.release(this);
    this.wakeIdle();
  }

  private wakeIdle(): void {
    if (this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
