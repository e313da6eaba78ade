import { describe, it, expect } from "vitest";
import fc from "fast-check";
import "../property/seed.js";
import { ReplayWindow } from "../../src/tunnel/replay.js";
import { REPLAY_WINDOW_PACKETS } from "../../src/tunnel/constants.js";

/**
 * Reference model: the set of accepted counters and the highest one. A counter
 * is acceptable when it is above the top, or within `size` of it (n > top - size)
 * and not seen.
 */
class Model {
  readonly seen = new Set<number>();
  top = -1;
  constructor(readonly size: number) {}
  check(n: number): boolean {
    if (n > this.top) return true;
    if (n <= this.top - this.size) return false;
    return !this.seen.has(n);
  }
  accept(n: number): boolean {
    if (!this.check(n)) return false;
    this.seen.add(n);
    if (n > this.top) this.top = n;
    return true;
  }
}

type Step = ["check" | "accept", number, boolean];

/** Table-driven: each row is a fresh window and a list of (op, counter, expected). */
const cases: { name: string; size?: number; steps: Step[] }[] = [
  {
    name: "first packet, counter 0",
    steps: [
      ["check", 0, true],
      ["accept", 0, true],
      ["check", 0, false],
      ["accept", 0, false],
    ],
  },
  {
    name: "first packet is a large counter; everything within the window below it is still fresh",
    steps: [
      ["accept", 10_000, true],
      ["check", 10_000 - 4095, true],
      ["check", 10_000 - 4096, false],
      ["accept", 9_999, true],
      ["accept", 9_999, false],
    ],
  },
  {
    name: "duplicates are refused, in order and out of order",
    steps: [
      ["accept", 1, true],
      ["accept", 2, true],
      ["accept", 3, true],
      ["accept", 2, false],
      ["accept", 1, false],
      ["accept", 3, false],
      ["accept", 0, true],
      ["accept", 0, false],
    ],
  },
  {
    name: "out of order inside the window",
    steps: [
      ["accept", 100, true],
      ["accept", 50, true],
      ["accept", 99, true],
      ["accept", 31, true],
      ["accept", 32, true],
      ["accept", 63, true],
      ["accept", 64, true],
      ["accept", 50, false],
      ["accept", 101, true],
      ["accept", 100, false],
    ],
  },
  {
    name: "exact window edge (4096): top - 4095 accepted, top - 4096 too old",
    steps: [
      ["accept", 5000, true],
      ["check", 5000 - 4096, false],
      ["accept", 5000 - 4096, false],
      ["accept", 5000 - 4095, true],
      ["accept", 5000 - 4095, false],
    ],
  },
  {
    name: "big jump beyond the window forgets everything older",
    steps: [
      ["accept", 1, true],
      ["accept", 2, true],
      ["accept", 1_000_000, true],
      ["check", 2, false],
      ["check", 1_000_000 - 4095, true],
      ["accept", 1_000_000 - 1, true],
      ["accept", 1_000_000 - 1, false],
      ["accept", 1_000_000 + 4096 * 3 + 17, true],
      ["check", 1_000_000, false],
    ],
  },
  {
    name: "jump of exactly one word and one window: stale bits of reused words are cleared",
    steps: [
      ["accept", 0, true],
      ["accept", 31, true],
      ["accept", 32, true],
      // 4096 + 32 * k reuses the words of 0 / 31 / 32 in the bitmap ring
      ["accept", 4096 + 32, true],
      ["check", 4096 + 31, true],
      ["check", 4096 + 0, true],
      ["accept", 4096 + 0, true],
      ["accept", 4096 + 31, true],
      ["accept", 4096 + 31, false],
    ],
  },
  {
    name: "bit 31 of a word (sign bit of a 32-bit int) is tracked like any other",
    steps: [
      ["accept", 31, true],
      ["accept", 31, false],
      ["accept", 63, true],
      ["accept", 63, false],
      ["accept", 2 ** 40 + 31, true],
      ["accept", 2 ** 40 + 31, false],
    ],
  },
  {
    name: "counters near 2^53",
    steps: [
      ["accept", 2 ** 53 - 2, true],
      ["accept", 2 ** 53 - 1, true],
      ["accept", 2 ** 53 - 2, false],
      ["accept", 2 ** 53 - 3, true],
      ["check", 2 ** 53 - 1 - 4096, false],
    ],
  },
  {
    name: "a negative counter (readCounter's 'not representable') is never accepted",
    steps: [
      ["check", -1, false],
      ["accept", -1, false],
      ["accept", 0, true],
      ["accept", -1, false],
    ],
  },
  {
    name: "smaller window (64): edge at top - 63",
    size: 64,
    steps: [
      ["accept", 200, true],
      ["check", 137, true],
      ["check", 136, false],
      ["accept", 137, true],
      ["accept", 137, false],
    ],
  },
];

describe("ReplayWindow (table)", () => {
  it("default window is REPLAY_WINDOW_PACKETS packets", () => {
    const w = new ReplayWindow();
    expect(w.accept(REPLAY_WINDOW_PACKETS + 10)).toBe(true);
    expect(w.check(11)).toBe(true); // top - (window - 1)
    expect(w.check(10)).toBe(false); // top - window: too old
  });

  for (const c of cases) {
    it(c.name, () => {
      const w = new ReplayWindow(c.size ?? 4096);
      for (const [op, n, want] of c.steps) {
        const got = op === "check" ? w.check(n) : w.accept(n);
        expect(got, `${op}(${n})`).toBe(want);
      }
    });
  }

  it("check never changes the window", () => {
    const w = new ReplayWindow(4096);
    for (let i = 0; i < 100; i++) expect(w.check(i * 1000)).toBe(true);
    expect(w.top).toBe(-1);
    w.accept(5);
    expect(w.check(1_000_000)).toBe(true);
    expect(w.top).toBe(5);
    expect(w.accept(4)).toBe(true);
  });

  it("accepts every counter of a full window in reverse order exactly once", () => {
    const w = new ReplayWindow(4096);
    const top = 123_456;
    for (let n = top; n > top - 4096; n--) expect(w.accept(n)).toBe(true);
    for (let n = top; n > top - 4096; n--) expect(w.check(n)).toBe(false);
    expect(w.check(top - 4096)).toBe(false);
    expect(w.check(top + 1)).toBe(true);
  });
});

describe("ReplayWindow (property, against a Set + top model)", () => {
  const sizes = fc.constantFrom(32, 64, 128, 4096);

  it("random sequences: check and accept agree with the model", () => {
    fc.assert(
      fc.property(
        sizes,
        fc.array(
          fc.oneof(
            fc.tuple(fc.constant("rel" as const), fc.integer({ min: -300, max: 40 }), fc.boolean()),
            fc.tuple(fc.constant("rel" as const), fc.integer({ min: -5000, max: 5000 }), fc.boolean()),
            fc.tuple(fc.constant("abs" as const), fc.nat({ max: 2 ** 20 }), fc.boolean()),
          ),
          { maxLength: 300 },
        ),
        (size, ops) => {
          const w = new ReplayWindow(size);
          const m = new Model(size);
          for (const [kind, v, doAccept] of ops) {
            const n = kind === "abs" ? v : Math.max(0, m.top + v);
            if (doAccept) expect(w.accept(n), `accept(${n}) top=${m.top}`).toBe(m.accept(n));
            else expect(w.check(n), `check(${n}) top=${m.top}`).toBe(m.check(n));
            expect(w.top).toBe(m.top);
          }
          // every counter near the top and near the window edge agrees at the end
          const edge = m.top - size;
          for (const n0 of [edge - 40, m.top - 40])
            for (let n = Math.max(0, n0); n <= n0 + 80; n++)
              expect(w.check(n), `final check(${n})`).toBe(m.check(n));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("dense shuffled arrivals around a moving top agree with the model", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 9000 }), { minLength: 100, maxLength: 2000 }), (ns) => {
        const w = new ReplayWindow(4096);
        const m = new Model(4096);
        for (const n of ns) expect(w.accept(n), `accept(${n})`).toBe(m.accept(n));
      }),
      { numRuns: 100 },
    );
  });
});
