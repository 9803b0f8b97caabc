/**
 * The applied offset when units complete out of order (a cluster target answers from several
 * nodes, a unit split over slots completes when its last part does): units are numbered in
 * stream order (0, 1, 2...), and the offset advances to a unit's end only when it and every
 * unit before it are complete. A ring of the outstanding units keeps this O(1) per unit.
 */
export class OffsetTracker {
  /** The number the next unit gets. */
  private next = 0;
  /** The first unit not complete yet: everything before it is applied. */
  private first = 0;
  private offsets = new Float64Array(1024);
  private dbs = new Int32Array(1024);
  private complete = new Uint8Array(1024);
  private barrierWaiters: { seq: number; resolve: () => void }[] = [];

  constructor(private readonly onAdvance: (offset: number, db: number) => void) {}

  /** Numbers a unit that ends at `offset`, after which the stream's source db is `db`. */
  take(offset: number, db: number): number {
    if (this.next - this.first === this.offsets.length) this.grow();
    const seq = this.next++;
    // Modulo, not a mask: unit numbers pass 2^31 in a long migration.
    const i = seq % this.offsets.length;
    this.offsets[i] = offset;
    this.dbs[i] = db;
    this.complete[i] = 0;
    return seq;
  }

  /** Units numbered and not yet behind the applied offset. */
  get outstanding(): number {
    return this.next - this.first;
  }

  /** Every unit before this number is complete. */
  get appliedSeq(): number {
    return this.first;
  }

  done(seq: number): void {
    if (seq < this.first || seq >= this.next) return; // already behind the offset
    const size = this.offsets.length;
    this.complete[seq % size] = 1;
    if (seq !== this.first) return;
    let last = -1;
    while (this.first < this.next && this.complete[this.first % size] === 1) {
      last = this.first % size;
      this.complete[last] = 0;
      this.first++;
    }
    if (last >= 0) {
      this.onAdvance(this.offsets[last]!, this.dbs[last]!);
      if (this.barrierWaiters.length > 0) this.wakeBarriers();
    }
  }

  /** Resolves when every unit numbered before `seq` is complete. */
  allBefore(seq: number): Promise<void> {
    if (this.first >= seq) return Promise.resolve();
    return new Promise((resolve) => this.barrierWaiters.push({ seq, resolve }));
  }

  private wakeBarriers(): void {
    const still: { seq: number; resolve: () => void }[] = [];
    for (const w of this.barrierWaiters) {
      if (this.first >= w.seq) w.resolve();
      else still.push(w);
    }
    this.barrierWaiters = still;
  }

  private grow(): void {
    const size = this.offsets.length;
    const offsets = new Float64Array(size * 2);
    const dbs = new Int32Array(size * 2);
    const complete = new Uint8Array(size * 2);
    for (let seq = this.first; seq < this.next; seq++) {
      offsets[seq % (size * 2)] = this.offsets[seq % size]!;
      dbs[seq % (size * 2)] = this.dbs[seq % size]!;
      complete[seq % (size * 2)] = this.complete[seq % size]!;
    }
    this.offsets = offsets;
    this.dbs = dbs;
    this.complete = complete;
  }
}
