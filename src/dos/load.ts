/**
 * Load meter with hysteresis for the creation path. The signal is the rate of
 * creation attempts offered (CREATEs for unknown TIDs that passed the cheap
 * checks), measured over one-second buckets. Puzzles switch on above
 * `highPerSec` and off only after the rate stayed below half of it for
 * `calmMs`; the difficulty grows by one bit per doubling of the rate above
 * the threshold, from `baseDifficulty` up to `maxDifficulty`.
 */
export interface LoadOptions {
  highPerSec: number;
  baseDifficulty: number;
  maxDifficulty: number;
  calmMs: number;
}

export class LoadMeter {
  private bucketStart = 0;
  private count = 0;
  /** offered creations per second, last complete second */
  rate = 0;
  /** offered creations since start (a counter: rates are PromQL's job) */
  offered = 0;
  puzzling = false;
  difficulty = 0;
  private calmSince = 0;
  /** highest difficulty demanded so far (for status and benchmarks) */
  maxReached = 0;
  /** forced on (tests, operators) */
  force = false;

  constructor(readonly opts: LoadOptions) {}

  /** One offered creation attempt. */
  offer(now: number): void {
    this.roll(now);
    this.count++;
    this.offered++;
    // react within the second: do not wait for the bucket to close under a sudden flood
    if (!this.puzzling && this.count > this.opts.highPerSec) this.update(now, this.count);
  }

  private roll(now: number): void {
    if (now - this.bucketStart >= 1000) {
      const elapsed = now - this.bucketStart;
      this.rate = elapsed >= 2000 ? 0 : this.count;
      this.count = 0;
      this.bucketStart = now;
      this.update(now, this.rate);
    }
  }

  tick(now: number): void {
    this.roll(now);
  }

  private update(now: number, rate: number): void {
    const o = this.opts;
    if (this.force || rate > o.highPerSec) {
      this.puzzling = true;
      this.calmSince = 0;
      const over = Math.max(1, rate / o.highPerSec);
      this.difficulty = Math.min(o.maxDifficulty, o.baseDifficulty + Math.floor(Math.log2(over)));
      this.maxReached = Math.max(this.maxReached, this.difficulty);
    } else if (this.puzzling) {
      if (rate < o.highPerSec / 2) {
        if (!this.calmSince) this.calmSince = now;
        if (now - this.calmSince >= o.calmMs) {
          this.puzzling = false;
          this.difficulty = 0;
        }
      } else this.calmSince = 0;
    }
  }
}
