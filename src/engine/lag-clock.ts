/**
 * Turns byte offsets into time: remembers when each stretch of the stream arrived, so the
 * lag in seconds is the age of the oldest byte received but not yet applied on the target.
 */
export class LagClock {
  private readonly samples: { offset: number; at: number }[] = [];
  private lastSampleAt = 0;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly sampleEveryMs = 50,
  ) {}

  received(offset: number): void {
    const t = this.now();
    if (t - this.lastSampleAt < this.sampleEveryMs && this.samples.length > 0) {
      this.samples[this.samples.length - 1]!.offset = offset;
      return;
    }
    this.samples.push({ offset, at: t });
    this.lastSampleAt = t;
  }

  applied(offset: number): void {
    while (this.samples.length > 0 && this.samples[0]!.offset <= offset) this.samples.shift();
  }

  secondsBehind(): number {
    const oldest = this.samples[0];
    return oldest ? (this.now() - oldest.at) / 1000 : 0;
  }
}
