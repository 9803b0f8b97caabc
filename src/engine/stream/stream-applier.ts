import type { StreamCommand } from '../../resp/command-stream.js';
import type { FlowControl } from '../../target/flow-control.js';
import type { DbMapper } from '../db-map.js';
import type { StreamStats } from '../stats.js';
import { StreamFrontEnd, type FrontEndOptions } from './front-end.js';
import { Sequencer, type StreamBackend } from './sequencer.js';

/**
 * One source shard's command stream, applied to the target: the front end turns commands into
 * units, the sequencer numbers them and keeps the applied offset, the back end (standalone lane
 * or cluster slots) writes them. What `apply` returns is the back-pressure the replica link
 * awaits before it reads on.
 */
export class StreamApplier {
  private readonly frontEnd: StreamFrontEnd;
  private readonly sequencer: Sequencer;
  private readonly coalesce: boolean;
  /** The source db selected at the applied offset (part of a checkpoint). */
  selectedDbAtApplied = 0;

  constructor(
    dbs: DbMapper,
    stats: StreamStats,
    private readonly backend: StreamBackend & { attach?(sequencer: Sequencer): void },
    private readonly flow: FlowControl,
    onApplied: (offset: number) => void,
    options: FrontEndOptions = {},
  ) {
    this.frontEnd = new StreamFrontEnd(dbs, stats, options);
    this.coalesce = options.coalesce === true;
    this.sequencer = new Sequencer(backend, flow, (offset, db) => {
      this.selectedDbAtApplied = db;
      onApplied(offset);
    });
    backend.attach?.(this.sequencer);
  }

  /** Where the stream starts: db 0 after a full sync, the checkpoint's db after a resume. */
  startAt(db: number): void {
    this.selectedDbAtApplied = db;
    this.frontEnd.startAt(db);
  }

  apply(command: StreamCommand): void | Promise<void> {
    if (this.coalesce) {
      const closed = this.frontEnd.takeRunnable(command);
      if (closed === null) return;
      if (closed !== undefined) return this.sequencer.submit(closed);
      // Not runnable: the open run goes first, then the command on its own.
      const run = this.frontEnd.takeRun();
      if (run !== null) {
        const pending = this.sequencer.submit(run);
        if (pending) return pending.then(() => this.applyOne(command));
      }
    }
    return this.applyOne(command);
  }

  /**
   * The end of a receive chunk: the open run is handed over (a run never spans chunks, and a
   * burst's last commands must not wait for more data).
   */
  endOfChunk(): void | Promise<void> {
    if (!this.coalesce) return;
    const run = this.frontEnd.takeRun();
    if (run !== null) return this.sequencer.submit(run);
  }

  private applyOne(command: StreamCommand): void | Promise<void> {
    const unit = this.frontEnd.take(command);
    // Inside a source transaction nothing is handed over yet; reading on still waits for room.
    if (unit === null) return this.flow.room();
    return this.sequencer.submit(unit);
  }

  /** Units handed over and not applied yet. */
  get outstanding(): number {
    return this.sequencer.outstanding;
  }

  /**
   * The link broke or the migration stops. A source transaction cut in the middle is dropped
   * (the resumed stream sends it again); everything received before is applied and awaited, so
   * the applied offset is exact. `abandon`: stop without waiting (a stop while the target keeps
   * refusing): what is not applied stays behind the offset.
   */
  async interrupted(abandon = false): Promise<void> {
    // An open run holds whole commands received before the break: applied like the rest.
    if (!abandon) void Promise.resolve(this.endOfChunk()).catch(() => undefined);
    this.frontEnd.interrupted(this.selectedDbAtApplied);
    if (abandon) this.sequencer.abandon();
    else await this.sequencer.settle();
    this.frontEnd.interrupted(this.selectedDbAtApplied);
  }
}
