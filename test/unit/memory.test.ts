/**
 * The daemon's C heap trim (src/daemon/memory.ts, platform/linux/memtrim.c): the cause of
 * the directory's RSS creep in the 2-hour soak (docs/PERFORMANCE.md "Soak") and its fix.
 *
 * - the mechanism, in a child process with the real addon: C heap memory freed between
 *   long-lived allocations stays resident (glibc returns only the top of a heap), and
 *   mallocTrim() gives it back;
 * - MemoryTrim: once per interval on the coarse timer, counting what it gave back.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { GC_EVERY_TRIMS, MemoryTrim, TRIM_INTERVAL_MS } from "../../src/daemon/memory.js";
import { addonPath } from "../../src/net/native.js";

const ADDON = addonPath();

/**
 * A child that allocates 20 000 Buffers of 2 KiB outside the V8 heap (malloc), keeps one
 * in 64 and frees the rest (two full GCs), then optionally trims: the anonymous memory
 * (MiB) at each step.
 */
function fragment(trim: boolean): { base: number; peak: number; freed: number; end: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-memtrim-"));
  const script = path.join(dir, "frag.cjs");
  fs.writeFileSync(
    script,
    `const a = require(${JSON.stringify(ADDON)});
const fs = require("node:fs");
const anon = () => Number(fs.readFileSync("/proc/self/smaps_rollup", "utf8").match(/^Anonymous:\\s+(\\d+)/m)[1]) / 1024;
global.gc();
const base = anon();
const keep = [];
let drop = [];
for (let i = 0; i < 20000; i++) {
  const b = Buffer.allocUnsafeSlow(2048);
  b.fill(1);
  (i % 64 === 0 ? keep : drop).push(b);
}
const peak = anon();
drop = null;
global.gc();
global.gc();
const freed = anon();
if (${trim}) a.mallocTrim();
console.log(JSON.stringify({ base, peak, freed, end: anon(), kept: keep.length }));
`,
  );
  try {
    return JSON.parse(execFileSync(process.execPath, ["--expose-gc", script], { encoding: "utf8" })) as {
      base: number;
      peak: number;
      freed: number;
      end: number;
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!fs.existsSync(ADDON) || !fs.existsSync("/proc/self/smaps_rollup"))(
  "C heap memory freed at a low rate stays resident until trimmed (addon)",
  () => {
    it("without a trim the freed ~38 MiB stay in RSS; mallocTrim() returns them", () => {
      const no = fragment(false);
      const yes = fragment(true);
      // 20 000 x 2 KiB allocated, 63 of 64 freed: about 38 MiB no longer live
      expect(no.peak - no.base).toBeGreaterThan(30);
      expect(no.end - no.base, JSON.stringify(no)).toBeGreaterThan(25); // the creep: freed, still resident
      expect(yes.freed - yes.base, JSON.stringify(yes)).toBeGreaterThan(25);
      expect(yes.end - yes.base, JSON.stringify(yes)).toBeLessThan(12); // given back
    });
  },
);

describe("MemoryTrim", () => {
  it("trims once per interval on the coarse timer and counts what came back", () => {
    let rss = 100;
    let calls = 0;
    const m = new MemoryTrim(
      () => {
        calls++;
        rss -= 10;
        return true;
      },
      0,
      { rss: () => rss },
    );
    for (let t = 0; t < TRIM_INTERVAL_MS; t += 250) m.tick(t);
    expect(calls).toBe(0);
    for (let t = TRIM_INTERVAL_MS; t < 3 * TRIM_INTERVAL_MS; t += 250) m.tick(t);
    expect(calls).toBe(2);
    expect(m.trims).toBe(2);
    expect(m.trimmedBytes).toBe(20);
    const s = m.status();
    expect(s.trims).toBe(2);
    expect(s.trimMaxMs).toBeGreaterThanOrEqual(0);
    expect(s.rss).toBeGreaterThan(0);
    expect(s.heapUsed).toBeGreaterThan(0);
  });

  it("a clock that steps back trims at once rather than never", () => {
    let calls = 0;
    const m = new MemoryTrim(() => (calls++, true), 1_000_000, { rss: () => 0 });
    m.tick(10);
    expect(calls).toBe(1);
    m.tick(20);
    expect(calls).toBe(1);
  });
});

const BUILT = path.resolve("dist/daemon/memory.js"); // the built module (npm run build)

describe("majorGc: a full collection without --expose-gc at start", () => {
  it.skipIf(!fs.existsSync(BUILT))(
    "frees old-generation garbage that V8 leaves alone below its first limit",
    () => {
      // a child started without --expose-gc, like the daemon: Buffers that lived long enough
      // to be promoted, then dropped, keep their backing stores until a major GC
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-majorgc-"));
      const script = path.join(dir, "gc.mjs");
      fs.writeFileSync(
        script,
        `const { majorGc } = await import(${JSON.stringify(BUILT)});
const MiB = () => process.memoryUsage().arrayBuffers / 1048576;
const gc = majorGc();
let keep = [];
for (let i = 0; i < 4000; i++) keep.push(Buffer.allocUnsafeSlow(2048));
await new Promise((r) => setTimeout(r, 50));
const held = MiB();
keep = null;
await new Promise((r) => setTimeout(r, 50));
const dropped = MiB();
gc();
await new Promise((r) => setTimeout(r, 300)); // backing stores are released after the sweep
console.log(JSON.stringify({ type: typeof gc, held, dropped, after: MiB() }));
`,
      );
      try {
        const out = JSON.parse(
          execFileSync(process.execPath, [script], { encoding: "utf8" }).trim().split("\n").pop()!,
        ) as { type: string; held: number; dropped: number; after: number };
        expect(out.type, JSON.stringify(out)).toBe("function");
        expect(out.dropped, JSON.stringify(out)).toBeGreaterThan(6); // 8 MiB dead, still counted
        expect(out.after, JSON.stringify(out)).toBeLessThan(2); // collected
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it("MemoryTrim runs the collection before every GC_EVERY_TRIMS-th trim and reports its pause", () => {
    const order: string[] = [];
    const m = new MemoryTrim(() => (order.push("trim"), true), 0, {
      rss: () => 0,
      collect: () => void order.push("gc"),
    });
    for (let t = 0; t <= 2 * GC_EVERY_TRIMS * TRIM_INTERVAL_MS; t += 250) m.tick(t);
    const once = [...Array<string>(GC_EVERY_TRIMS - 1).fill("trim"), "gc", "trim"];
    expect(order).toEqual([...once, ...once]);
    expect(m.status().gcs).toBe(2);
    expect(m.status().gcMaxMs).toBeGreaterThanOrEqual(0);
  });
});
