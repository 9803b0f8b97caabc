/**
 * Signatures of mutating requests seen within the signing window. A signed request stays valid
 * for ±15 minutes around its X-Sdk-Date; without this, one captured POST could be sent again and
 * again in that window (each copy creating a task). A signature is remembered until its date
 * leaves the window, so a repeat is refused for as long as it could otherwise be accepted.
 *
 * In memory: a service restart forgets it (a replay then needs the restart to fall inside the
 * capture's window). Memory is bounded by the rate limit per access key and by `maxEntries`.
 */
export class ReplayCache {
  private readonly seen = new Map<string, number>();
  private lastSweep = 0;

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries = 1_000_000,
  ) {}

  /**
   * Records `signature` (made at `signedAt`); false when it was already recorded and is still
   * within the window, i.e. the request is a replay.
   */
  remember(key: string, signedAt: number, now = Date.now()): boolean {
    this.sweep(now);
    const until = this.seen.get(key);
    if (until !== undefined && until > now) return false;
    if (this.seen.size >= this.maxEntries) {
      // Full even after sweeping: drop the oldest entries (Map keeps insertion order). They are
      // the nearest to leaving the window anyway.
      const drop = Math.ceil(this.maxEntries / 10);
      let i = 0;
      for (const k of this.seen.keys()) {
        if (i++ >= drop) break;
        this.seen.delete(k);
      }
    }
    this.seen.set(key, signedAt + this.windowMs);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 10_000) return;
    this.lastSweep = now;
    for (const [k, until] of this.seen) if (until <= now) this.seen.delete(k);
  }
}
