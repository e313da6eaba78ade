/**
 * Event-loop delay of the daemon: how long the process could not run anything
 * (a packet batch, a timer, an API request) because something else held the
 * loop. A timer every RESOLUTION_MS measures how late it fires (Node 20's
 * perf_hooks histogram missed a synchronous 300-ms block in the unit test);
 * the largest lateness is folded once a second into cumulative counters, so
 * a reader compares two readings (status `daemon.loopDelay`, metric `mintun_loop_stalls_total`):
 *
 *   maxMs              largest delay since start
 *   lastSecMaxMs       largest delay in the last folded second
 *   over50ms/over200ms/over1000ms
 *                      seconds whose largest delay exceeded 50 / 200 / 1000 ms
 *
 * A stall longer than a second is one fold (the fold itself waits for the loop).
 * The probe is the only timer of its own (50 wake-ups a second, microseconds
 * each); the fold runs on the daemon's coarse tick (`tick`).
 */
import { performance } from "node:perf_hooks";

const RESOLUTION_MS = 20;
const FOLD_MS = 1000;
export const STALL_BOUNDS_MS = [50, 200, 1000] as const;

export interface LoopDelayStats {
  maxMs: number;
  lastSecMaxMs: number;
  over50ms: number;
  over200ms: number;
  over1000ms: number;
}

export class LoopDelay {
  private readonly probe: NodeJS.Timeout;
  private last = performance.now();
  private lastFold = this.last;
  /** largest lateness of the probe timer since the last fold, ms */
  private max = 0;
  private readonly s: LoopDelayStats = {
    maxMs: 0,
    lastSecMaxMs: 0,
    over50ms: 0,
    over200ms: 0,
    over1000ms: 0,
  };

  constructor() {
    this.probe = setInterval(() => this.sample(), RESOLUTION_MS);
    this.probe.unref();
  }

  /** On the daemon's coarse tick: fold once a second. */
  tick(): void {
    if (performance.now() - this.lastFold >= FOLD_MS) this.fold();
  }

  private sample(): void {
    const t = performance.now();
    const late = t - this.last - RESOLUTION_MS;
    this.last = t;
    if (late > this.max) this.max = late;
  }

  /** Take the last second into the counters (the pending lateness of the probe included). */
  fold(): void {
    this.sample();
    this.lastFold = this.last;
    const ms = Math.round(Math.max(0, this.max) * 10) / 10;
    this.max = 0;
    this.s.lastSecMaxMs = ms;
    if (ms > this.s.maxMs) this.s.maxMs = ms;
    if (ms > 50) this.s.over50ms++;
    if (ms > 200) this.s.over200ms++;
    if (ms > 1000) this.s.over1000ms++;
  }

  stats(): LoopDelayStats {
    return { ...this.s };
  }

  close(): void {
    clearInterval(this.probe);
  }
}
