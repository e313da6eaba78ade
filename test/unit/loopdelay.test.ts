import { afterEach, describe, expect, it } from "vitest";
import { LoopDelay } from "../../src/daemon/loopdelay.js";

let ld: LoopDelay | null = null;
afterEach(() => {
  ld?.close();
  ld = null;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("event-loop delay counters (status daemon.loopDelay)", () => {
  it("a 300-ms block is one second over 50 and 200 ms, not over 1000 ms", async () => {
    ld = new LoopDelay();
    await sleep(50);
    ld.fold();
    const before = ld.stats();
    busy(300);
    await sleep(30); // the histogram's timer fires late once
    ld.fold();
    const s = ld.stats();
    expect(s.lastSecMaxMs).toBeGreaterThan(250);
    expect(s.maxMs).toBeGreaterThanOrEqual(s.lastSecMaxMs);
    expect(s.over50ms - before.over50ms).toBe(1);
    expect(s.over200ms - before.over200ms).toBe(1);
    expect(s.over1000ms - before.over1000ms).toBe(0);
  });

  it("an idle loop counts no stall", async () => {
    ld = new LoopDelay();
    await sleep(50);
    ld.fold();
    const before = ld.stats();
    await sleep(100);
    ld.fold();
    expect(ld.stats().over200ms).toBe(before.over200ms);
    expect(ld.stats().lastSecMaxMs).toBeLessThan(200);
  });
});
