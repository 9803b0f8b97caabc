/** Bounded concurrency for the verifier: how many keys are compared at once, and how many big ones. */

/**
 * Runs submitted tasks with at most `limit` running. submit() resolves once the task has
 * started, so a producer (a SCAN loop) that awaits it is held back while the pool is full:
 * the SCAN never runs ahead of the comparisons, which keeps memory bounded for any key count.
 * The first task failure is kept and rethrown by submit() and drain().
 */
export class TaskPool {
  private running = 0;
  private roomWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private failure: { error: unknown } | null = null;

  constructor(
    private readonly limit: number,
    private readonly signal?: AbortSignal,
  ) {}

  async submit(task: () => Promise<void>): Promise<void> {
    while (this.running >= this.limit && this.failure === null) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
    this.check();
    this.running++;
    task().then(
      () => this.finished(),
      (error: unknown) => {
        this.failure ??= { error };
        this.finished();
      },
    );
  }

  /** Resolves when every submitted task has finished; rejects with the first failure. */
  async drain(): Promise<void> {
    while (this.running > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.check();
  }

  private check(): void {
    if (this.failure !== null) throw this.failure.error;
    this.signal?.throwIfAborted();
  }

  private finished(): void {
    this.running--;
    // On failure wake every producer, so each one sees it and stops.
    const wake = this.failure !== null ? this.roomWaiters.splice(0) : this.roomWaiters.splice(0, 1);
    for (const w of wake) w();
    if (this.running === 0) for (const w of this.idleWaiters.splice(0)) w();
  }
}

/** A counting semaphore; acquire() resolves with its release function (idempotent). */
export class Semaphore {
  private free: number;
  private waiters: (() => void)[] = [];

  constructor(permits: number) {
    this.free = permits;
  }

  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Hand the permit straight to a waiter, so a stream of new acquirers cannot starve it.
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    };
  }
}

/** setTimeout as a promise that an abort cuts short (rejecting with the signal's reason). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
