/**
 * The one byte budget for everything between the source socket and the target's replies: every
 * write the engine hands to a target (a snapshot RESTORE, a rewrite chunk, a stream unit) takes
 * its size from the budget and gives it back when the target has answered it for good (applied,
 * or reported). Writers that find the budget spent wait (`waitForRoom`), which stops them reading
 * their source socket: TCP then slows the source. Standalone lanes and the cluster router share
 * it, so a stalled target node holds at most the budget, not whatever the source sends.
 *
 * A single write larger than the budget is let through when the budget has room at all, so
 * memory stays within the budget plus the largest write.
 */
export class FlowControl {
  private used = 0;
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  /** The most ever taken at once, for tests and benchmarks. */
  peak = 0;

  constructor(readonly budgetBytes = DEFAULT_FLOW_BUDGET) {}

  /** Bytes taken and not yet given back. */
  get inFlight(): number {
    return this.used;
  }

  get full(): boolean {
    return this.used >= this.budgetBytes;
  }

  take(bytes: number): void {
    this.used += bytes;
    if (this.used > this.peak) this.peak = this.used;
  }

  give(bytes: number): void {
    this.used -= bytes;
    if (this.used < 0) this.used = 0;
    if (!this.full && this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.resolve();
    }
  }

  /** Resolves when the budget has room; rejects once the flow has failed (the target is gone). */
  waitForRoom(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.full) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** `undefined` when there is room, else the promise to await (the hot path allocates nothing). */
  room(): Promise<void> | undefined {
    return this.full || this.failure ? this.waitForRoom() : undefined;
  }

  private failedWaiters: ((e: Error) => void)[] = [];

  /**
   * Rejects once the flow has failed (the target is gone): whoever waits for writes to be
   * answered races this, since those answers will never come.
   */
  whenFailed(): Promise<never> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<never>((_, reject) => this.failedWaiters.push(reject));
  }

  /** Wakes every waiter with `error`: nothing will be given back any more. */
  fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    for (const w of this.failedWaiters.splice(0)) w(error);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error);
  }
}

/** 64 MiB: enough to keep a fast target busy, small enough for a few hundred MB of RSS in all. */
export const DEFAULT_FLOW_BUDGET = 64 * 1024 * 1024;
