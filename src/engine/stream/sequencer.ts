import type { FlowControl } from '../../target/flow-control.js';
import type { StreamUnit } from './front-end.js';
import { OffsetTracker } from './offset-tracker.js';

/**
 * Where a stream's units are applied: one back end per target kind (src/engine/stream/
 * standalone-backend.ts, cluster-backend.ts). A back end keeps the source's order where it
 * matters (per connection, per slot) and calls `done` once every write of the unit is applied
 * or reported.
 */
export interface StreamBackend {
  /**
   * Hands a unit over. Returns a promise for a barrier (a unit that must run alone: a command
   * rewritten across cluster slots, a broadcast): no later unit is handed over before it
   * resolves. `sequencer.allBefore(unit.seq)` tells when every earlier unit is applied.
   */
  dispatch(unit: StreamUnit, done: () => void): void | Promise<void>;
  /** Resolves when everything handed over is done. */
  settle(): Promise<void>;
  /** Stops: what waits is dropped, nothing more is sent (the migration is stopping). */
  abandon(): void;
  /** The applied offset moved (a back end that records a floor checkpoint uses it). */
  applied?(offset: number, db: number): void;
}

/**
 * What a unit costs in memory beyond its command bytes (the unit, its piece and write objects,
 * the tracker's slot): charged to the flow budget too, so a stream of tiny commands holds a
 * bounded number of units, not 64 MiB worth of 30-byte commands.
 */
const UNIT_OVERHEAD_BYTES = 256;

interface Waiting {
  unit: StreamUnit;
  done: () => void;
}

/**
 * The one in-order sequencer of a stream: units are numbered in stream order, handed to the
 * back end, and the applied offset advances only over a gap-free prefix of done units (the
 * offset tracker). That offset — and nothing beyond it — is what the source is told (REPLCONF
 * ACK) and what checkpoints record. Every unit takes its bytes from the migration's flow control
 * until it is done; `submit` returns a promise when the budget is spent or a barrier runs, and
 * the replica link awaits it before reading on, which is how a slow or refusing target slows
 * the source.
 */
export class Sequencer {
  private readonly tracker: OffsetTracker;
  /** Units received while a barrier runs. */
  private readonly waiting: Waiting[] = [];
  private barrier: Promise<void> | null = null;
  private barrierResolved: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private unitsInFlight = 0;
  private bytesInFlight = 0;
  private abandoned = false;
  private settleWaiters: (() => void)[] = [];

  constructor(
    private readonly backend: StreamBackend,
    private readonly flow: FlowControl,
    onApplied: (offset: number, db: number) => void,
  ) {
    this.tracker = new OffsetTracker((offset, db) => {
      onApplied(offset, db);
      backend.applied?.(offset, db);
    });
  }

  /** Every unit numbered before `seq` is applied (a barrier waits for this). */
  allBefore(seq: number): Promise<void> {
    return this.tracker.allBefore(seq);
  }

  /** Units submitted and not yet done. */
  get outstanding(): number {
    return this.unitsInFlight;
  }

  submit(unit: StreamUnit): void | Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.abandoned) return;
    unit.seq = this.tracker.take(unit.endOffset, unit.dbAfter);
    unit.bytes += UNIT_OVERHEAD_BYTES;
    this.flow.take(unit.bytes);
    this.bytesInFlight += unit.bytes;
    this.unitsInFlight++;
    const done = (): void => this.done(unit);
    if (this.barrier !== null) {
      this.waiting.push({ unit, done });
      return this.barrierResolved;
    }
    this.dispatch(unit, done);
    if (this.barrier !== null) return this.barrierResolved;
    return this.flow.room();
  }

  private dispatch(unit: StreamUnit, done: () => void): void {
    if (unit.writes.length === 0) {
      done();
      return;
    }
    const barrier = this.backend.dispatch(unit, done);
    if (!barrier) return;
    this.barrier = barrier;
    this.barrierResolved = barrier.then(
      () => this.afterBarrier(),
      (e: Error) => {
        this.failure ??= e;
        throw e;
      },
    );
  }

  /** Hands over what arrived during the barrier, up to the next barrier. */
  private afterBarrier(): void | Promise<void> {
    this.barrier = null;
    while (this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      this.dispatch(next.unit, next.done);
      if (this.barrier !== null) return this.barrierResolved;
    }
  }

  private done(unit: StreamUnit): void {
    if (this.abandoned) return;
    this.unitsInFlight--;
    this.bytesInFlight -= unit.bytes;
    this.flow.give(unit.bytes);
    this.tracker.done(unit.seq);
    if (this.unitsInFlight === 0 && this.settleWaiters.length > 0) {
      const waiters = this.settleWaiters;
      this.settleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves when every unit submitted is done (applied, or reported under the policy). */
  async settle(): Promise<void> {
    // A lost target answers nothing more: the race ends the wait with its failure.
    if (this.unitsInFlight > 0) await Promise.race([new Promise<void>((resolve) => this.settleWaiters.push(resolve)), this.flow.whenFailed()]);
    await Promise.race([this.backend.settle(), this.flow.whenFailed()]);
  }

  /** Stops without waiting: units not done stay behind the applied offset (a resume sends them again). */
  abandon(): void {
    if (this.abandoned) return;
    this.abandoned = true;
    this.waiting.length = 0;
    this.backend.abandon();
    // Their bytes will never come back through done(): return them now.
    this.flow.give(this.bytesInFlight);
    this.bytesInFlight = 0;
    for (const w of this.settleWaiters.splice(0)) w();
  }
}
