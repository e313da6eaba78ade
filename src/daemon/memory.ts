/**
 * The daemon's memory: `process.memoryUsage()` for status, and the periodic trim of the C
 * heap (glibc malloc_trim through the addon, platform/linux/memtrim.c).
 *
 * Why the trim: a daemon whose allocations come and go at a low rate keeps, in glibc's
 * arenas, the pages freed between long-lived allocations resident; RSS then creeps
 * (the directory of the 2-hour soak: +7.6 MiB, linear) although nothing is live:
 * docs/PERFORMANCE.md "Soak". Every TRIM_INTERVAL_MS the coarse timer calls `tick`,
 * which trims once and remembers what it gave back (RSS before minus after).
 */
import { performance } from "node:perf_hooks";

/** How often the C heap is trimmed (a call takes about 1 ms; 13 ms after tens of MiB were freed). */
export const TRIM_INTERVAL_MS = 60_000;

export interface MemoryStatus {
  /** bytes: process.memoryUsage() at the time of the call */
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** malloc_trim calls, and RSS they gave back in all (bytes) */
  trims: number;
  trimmedBytes: number;
  /** the longest trim so far, ms (the event loop waits for it) */
  trimMaxMs: number;
}

export class MemoryTrim {
  trims = 0;
  trimmedBytes = 0;
  trimMaxMs = 0;
  private last: number;

  /** `trim` releases freed C heap memory (the addon's mallocTrim); `rss` reads the current RSS. */
  constructor(
    private readonly trim: () => boolean,
    now: number,
    private readonly rss: () => number = () => process.memoryUsage.rss(),
    private readonly intervalMs = TRIM_INTERVAL_MS,
  ) {
    this.last = now;
  }

  /** Called on the coarse timer: trims when the interval has passed. */
  tick(now: number): void {
    if (now - this.last < this.intervalMs && now >= this.last) return;
    this.last = now;
    const before = this.rss();
    const t0 = performance.now();
    this.trim();
    this.trimMaxMs = Math.max(this.trimMaxMs, Math.round((performance.now() - t0) * 100) / 100);
    this.trims++;
    this.trimmedBytes += Math.max(0, before - this.rss());
  }

  status(): MemoryStatus {
    const m = process.memoryUsage();
    return {
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      trims: this.trims,
      trimmedBytes: this.trimmedBytes,
      trimMaxMs: this.trimMaxMs,
    };
  }
}
