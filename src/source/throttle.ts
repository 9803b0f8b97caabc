/**
 * The bandwidth limit: a token bucket shared by every replica link of one migration, so the
 * limit holds for the whole task (all shards together). Readers ask how long to wait after
 * taking in a chunk; a change of the limit takes effect at the next chunk (within a second).
 */
export class Throttle {
  private bytesPerSecond: number | null;
  private available = 0;
  private last = Date.now();

  constructor(limitMb: number | null = null) {
    this.bytesPerSecond = limitMb === null ? null : limitMb * 1024 * 1024;
  }

  setLimitMb(limitMb: number | null): void {
    this.bytesPerSecond = limitMb === null ? null : limitMb * 1024 * 1024;
    this.available = Math.min(this.available, this.burst());
  }

  get limitMb(): number | null {
    return this.bytesPerSecond === null ? null : this.bytesPerSecond / 1024 / 1024;
  }

  /** Accounts for `bytes` just read; returns how many ms the reader should pause. */
  consume(bytes: number): number {
    if (this.bytesPerSecond === null) return 0;
    const now = Date.now();
    this.available = Math.min(this.burst(), this.available + ((now - this.last) / 1000) * this.bytesPerSecond);
    this.last = now;
    this.available -= bytes;
    // A small debt is carried instead of paused for: timers cannot wait less than about a
    // millisecond, so pausing for every chunk at high limits would halve the rate.
    if (this.available >= -this.bytesPerSecond / 50) return 0;
    return Math.ceil((-this.available / this.bytesPerSecond) * 1000);
  }

  /** A tenth of a second of traffic may go at once: smooth, yet not a syscall per byte. */
  private burst(): number {
    return (this.bytesPerSecond ?? 0) / 10;
  }
}
