import type { ChannelWrite, RefusalPolicy } from './batch-channel.js';
import type { WriteErrorLog } from './errors.js';
import { errorCode } from '../target/refusals.js';

export interface TargetRefusalsOptions {
  errors: WriteErrorLog;
  /** Passing refusals (OOM, LOADING...) are sent again until they pass (resume mode auto). */
  retryPassing: boolean;
  /** A write refused for good: 'skip' reports it and goes on, 'fail' stops there. */
  writeErrorPolicy: 'skip' | 'fail';
}

/**
 * What a migration does when its target refuses writes, for every channel of every shard (the
 * stream's and the snapshot's rebuilt keys): one write gate, so that while one refused batch
 * waits to be sent again nothing after it goes out anywhere; one write-error policy; one count
 * of the refusals that were retried, by error code (visible in the progress, so a test or an
 * operator can tell the target pushed back even when every write passed in the end).
 */
export class TargetRefusals implements RefusalPolicy {
  retryPassing: boolean;
  writeErrorPolicy: 'skip' | 'fail';
  private readonly holders = new Map<object, { since: number; attempts: number }>();
  private releaseWaiters: (() => void)[] = [];
  /** Passing refusals that were retried, by error code. */
  readonly retriedByCode = new Map<string, number>();

  constructor(private readonly options: TargetRefusalsOptions) {
    this.retryPassing = options.retryPassing;
    this.writeErrorPolicy = options.writeErrorPolicy;
  }

  get errors(): WriteErrorLog {
    return this.options.errors;
  }

  get held(): boolean {
    return this.holders.size > 0;
  }

  /** A write was refused under policy 'fail': channels stopped there, nothing will complete them. */
  stoppedByPolicy = false;

  refused(write: ChannelWrite, error: string): 'skip' | 'stop' {
    this.options.errors.record(write.db, write.key, write.name, error);
    if (this.writeErrorPolicy !== 'fail') return 'skip';
    this.stoppedByPolicy = true;
    return 'stop';
  }

  /** The target connection was lost: what was in flight will never be answered. */
  targetLost = false;

  /** Stopping now must not wait for writes: some are held by a refusal, or will never be answered. */
  get nothingToWaitFor(): boolean {
    return this.held || this.stoppedByPolicy || this.targetLost;
  }

  hold(holder: object, error: string, attempt: number): void {
    const code = errorCode(error);
    this.retriedByCode.set(code, (this.retriedByCode.get(code) ?? 0) + 1);
    let h = this.holders.get(holder);
    if (!h) this.holders.set(holder, (h = { since: Date.now(), attempts: 0 }));
    h.attempts = attempt;
    if (this.shouldLog()) {
      this.options.errors.logger.warn({ error, attempt, heldMs: Date.now() - h.since, retried: this.retriedCounts() }, 'the target refused a batch for a passing reason; every write after it waits until it passes');
    }
  }

  release(holder: object): void {
    const h = this.holders.get(holder);
    if (!h) return;
    this.holders.delete(holder);
    if (h.attempts > 1) this.options.errors.logger.warn({ attempts: h.attempts, heldMs: Date.now() - h.since }, 'the refused batch passed; writing goes on');
    if (this.holders.size === 0 && this.releaseWaiters.length > 0) {
      const waiters = this.releaseWaiters;
      this.releaseWaiters = [];
      for (const w of waiters) w();
    }
  }

  whenReleased(fn: () => void): void {
    if (!this.held) fn();
    else this.releaseWaiters.push(fn);
  }

  /**
   * A single write that is sent again on its own (a snapshot RESTORE: keys are independent, so
   * nothing else needs to wait for it): counted and logged like a held batch, without holding.
   */
  retrying(error: string, attempt: number): void {
    const code = errorCode(error);
    this.retriedByCode.set(code, (this.retriedByCode.get(code) ?? 0) + 1);
    if (this.shouldLog()) this.options.errors.logger.warn({ error, attempt, retried: this.retriedCounts() }, 'the target refused a snapshot write for a passing reason; sending it again');
  }

  private lastLogAt = 0;

  /** One line every few seconds at most: a long OOM must not flood the log (the counts say the rest). */
  private shouldLog(): boolean {
    const now = Date.now();
    if (now - this.lastLogAt < 5000) return false;
    this.lastLogAt = now;
    return true;
  }

  backoffMs(attempt: number): number {
    return Math.min(5000, 100 * 2 ** Math.min(attempt - 1, 6));
  }

  retriedCounts(): Record<string, number> {
    return Object.fromEntries(this.retriedByCode);
  }
}
