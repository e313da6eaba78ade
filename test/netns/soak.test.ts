/**
 * Time-compressed soak: real daemons (a directory host and two hosts, all behind the
 * userspace delay router, 10 ms each way) with every timer shortened through config
 * (test/soak/soaknet.ts SHORT_TIMINGS), so that each fires at least 10 times in 90 s
 * while ping (every 50 ms), a TCP stream and a UDP flow run from a to b. The long run
 * with default timings is `npm run soak` (docs/PERFORMANCE.md "Soak").
 */
import { describe, expect, it } from "vitest";
import { formatSoak, pingGaps, runSoak, SHORT_TIMINGS } from "../soak/soaknet.js";

describe("pingGaps", () => {
  it("measures the largest interval between replies, from the start", () => {
    const out =
      "[1000.000000] 64 bytes from 10.77.0.2: icmp_seq=1 ttl=64 time=20 ms\n" +
      "[1000.050000] 64 bytes from 10.77.0.2: icmp_seq=2 ttl=64 time=20 ms\n" +
      "[1001.250000] 64 bytes from 10.77.0.2: icmp_seq=26 ttl=64 time=20 ms\n";
    const g = pingGaps(out, 999_900);
    expect(g.received).toBe(3);
    expect(g.maxGapMs).toBeCloseTo(1200, 0);
    expect(g.gapsOver1s).toBe(1);
  });
});

describe.skipIf(process.getuid?.() !== 0)(
  "soak: every timer fires 10+ times in 90 s (netns, real daemons)",
  () => {
    it("no exit, no ping gap over 1 s, bounded RSS, no unexpected error", { timeout: 180_000 }, async () => {
      const r = await runSoak({
        durationSec: 90,
        timings: SHORT_TIMINGS,
        delayMs: 10,
        sampleSec: 2,
        tcpMbit: 5,
        udpMbit: 1,
      });
      console.log(formatSoak(r));
      for (const d of r.daemons) {
        expect(d.exited, `daemon ${d.name}`).toBeNull();
        expect(d.unexpectedErrors, `daemon ${d.name} unexpected errors`).toBe(0);
        expect(d.trims, `daemon ${d.name} C heap trims (once a minute)`).toBeGreaterThanOrEqual(1);
      }
      // every shortened timer fired at least 10 times (per daemon where it runs once per daemon)
      const per = (name: string, k: string): number => r.daemons.find((d) => d.name === name)!.events[k] ?? 0;
      for (const n of ["dir", "a", "b"])
        expect(per(n, "ephemeralRotations"), `${n} rotations`).toBeGreaterThanOrEqual(10);
      expect(per("a", "rekeys") + per("b", "rekeys"), "rekeys of the a-b tunnel").toBeGreaterThanOrEqual(10);
      for (const n of ["a", "b"]) {
        expect(per(n, "dirRegistered"), `${n} registrations`).toBeGreaterThanOrEqual(10);
        expect(per(n, "tunnelsIdleClosed"), `${n} idle closes`).toBeGreaterThanOrEqual(10);
        expect(per(n, "keepalivesSent"), `${n} keepalives`).toBeGreaterThanOrEqual(10);
      }
      expect(r.ping.gapsOver1s).toBe(0);
      expect(r.ping.received).toBeGreaterThan(0.95 * r.ping.sent);
      expect(r.tcp.error).toBeNull();
      expect(r.tcp.bytes).toBeGreaterThan(0.8 * ((5e6 / 8) * 88));
      expect(r.udp.error).toBeNull();
      expect(r.udp.lossPct).toBeLessThan(5);
      // RSS after warm-up (the first 22 s) may move with the GC, but not grow without bound
      expect(r.rssGrowthMiB).toBeLessThan(24);
    });
  },
);
