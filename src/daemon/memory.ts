/**
 * The daemon's memory: `process.memoryUsage()` for status, and the periodic trim of the C
 * heap (glibc malloc_trim through the addon, platform/linux/memtrim.c).
 *
 * Why the trim: a daemon whose allocations come and go at a low rate keeps, in glibc's
 * arenas, the pages freed between long-lived allocations resident; RSS then creeps
 * (the directory of the 2-hour soak: +7.6 MiB, linear) although nothing is live:
 * docs/PERFORMANCE.md "Soak". Every TRIM_INTERVAL_MS the coarse timer calls `tick`,
 * which trims once and remembers what it gave back (RSS before minus after).
 *
 * Why a major GC first: the daemon's heap is small (about 12 MiB) and its old generation
 * grows slowly (directory records and tunnel state replaced every few minutes die old), so V8
 * reaches its first old-generation limit only after hours; until then dead Buffers keep
 * their backing stores (`external`) and the heap keeps dead objects, and RSS creeps (the
 * directory of the second 2-hour soak: heapUsed 10.1 -> 12.3 MiB, external 4.7 -> 7.0 MiB,
 * all of it garbage: a heap snapshot's forced GC took external back to its start). One full
 * collection every GC_EVERY_TRIMS trims, just before the trim, keeps both flat; its pause
 * is in status as gcMaxMs.
 */
import { performance } from "node:perf_hooks";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { missingLaunchSettings } from "./launch.js";

/** How often the C heap is trimmed (a call takes about 1 ms; 13 ms after tens of MiB were freed). */
export const TRIM_INTERVAL_MS = 60_000;
/**
 * How often a full GC runs before the trim: every tenth trim. A forced full collection is
 * not incremental: the event loop waits for it (15-40 ms on the daemon's heap here), so it
 * runs rarely; the garbage it collects accumulates at about 2 MiB an hour.
 */
export const GC_EVERY_TRIMS = 10;

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
  /** full (major) garbage collections run before a trim (every GC_EVERY_TRIMS-th), and the longest, ms */
  gcs: number;
  gcMaxMs: number;
  /** launch settings (launch.ts) this process was started without, e.g. `node bin/mintund` by hand; [] as shipped */
  launchMissing: string[];
}

/**
 * V8's full collection as a function, without starting node with --expose-gc: the flag is
 * set at run time and `gc` read from a new context (the documented effect of the flag).
 * null when the runtime does not offer it; the trim then runs alone.
 */
export function majorGc(): (() => void) | null {
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc: unknown = vm.runInNewContext("gc");
    return typeof gc === "function" ? () => (gc as () => void)() : null;
  } catch {
    return null;
  }
}

export class MemoryTrim {
  trims = 0;
  trimmedBytes = 0;
  trimMaxMs = 0;
  gcs = 0;
  gcMaxMs = 0;
  private last: number;
  private readonly launchMissing: string[];

  private readonly rss: () => number;
  private readonly intervalMs: number;
  private readonly collect: (() => void) | null;

  /**
   * `trim` releases freed C heap memory (the addon's mallocTrim); `rss` reads the current RSS;
   * `collect` is a full GC run before every GC_EVERY_TRIMS-th trim (majorGc()), null or absent: trim only.
   */
  constructor(
    private readonly trim: () => boolean,
    now: number,
    opts: {
      rss?: () => number;
      intervalMs?: number;
      collect?: (() => void) | null;
      launchMissing?: string[];
    } = {},
  ) {
    this.last = now;
    this.rss = opts.rss ?? (() => process.memoryUsage.rss());
    this.intervalMs = opts.intervalMs ?? TRIM_INTERVAL_MS;
    this.collect = opts.collect ?? null;
    this.launchMissing = opts.launchMissing ?? missingLaunchSettings();
  }

  /** Called on the coarse timer: trims when the interval has passed. */
  tick(now: number): void {
    if (now - this.last < this.intervalMs && now >= this.last) return;
    this.last = now;
    const before = this.rss();
    if (this.collect && this.trims % GC_EVERY_TRIMS === GC_EVERY_TRIMS - 1) {
      const g0 = performance.now();
      this.collect();
      this.gcMaxMs = Math.max(this.gcMaxMs, Math.round((performance.now() - g0) * 100) / 100);
      this.gcs++;
    }
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
      gcs: this.gcs,
      gcMaxMs: this.gcMaxMs,
      launchMissing: [...this.launchMissing],
    };
  }
}
