/**
 * A forged STALE against a creation carrying 0-RTT data, from another
 * namespace against real mintund daemons (issue 15). b's ephemeral keys live
 * 30 s (a new one every 15 s); a learned b's first key and cannot refresh its
 * record (b drops a's RECORD_REQUESTs), so after b's rotation a still creates
 * under the older, valid key. The on-path attacker x reads a's CREATEs (a
 * capture of a's link), fetches b's newest ephemeral certificate itself (it is
 * public: any prober gets it) and answers each creation with a STALE carrying
 * it, from b's address, before b's REPLY arrives (a delay router holds every
 * packet between the sides 150 ms). a abandons the creation, which b had
 * accepted, and resends its 0-RTT datagrams under the newer key. A real
 * application on b counts deliveries per datagram: before the RETRY frame
 * (ee37db2) the resent ones were delivered twice.
 */
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { startCapture, waitFor, waitListening, type Capture } from "./lib.js";
import { RECEIVER, SENDER, countDeliveries, startAttackPair, type AttackPair } from "./deliveries.js";

const FORGE = fileURLToPath(new URL("../tools/forge-stale.mjs", import.meta.url));

describe.skipIf(process.getuid?.() !== 0)(
  "forged STALE against a creation carrying 0-RTT data (netns)",
  () => {
    let pair: AttackPair | undefined;
    let cap: Capture | null = null;

    afterAll(async () => {
      await pair?.cleanup(cap);
    });

    it("every datagram the application sent is delivered exactly once", async () => {
      pair = await startAttackPair({ delayMs: 150, bExtra: "ephemeral:\n  lifetimeSec: 30\n" });
      const { topo, work, d } = pair;
      const aIp = topo.host("a").addr4;
      const bIp = topo.host("b").addr4;
      const keyOfA = pair.records.peers[0]!.record!.keyId;
      // a keeps the record it has: b drops a's RECORD_REQUESTs (type 5 at payload byte 8)
      const bs = topo.host("b").ns;
      await bs.execOk("nft", ["add", "table", "ip", "mtrec"]);
      await bs.execOk("nft", [
        "add",
        "chain",
        "ip",
        "mtrec",
        "in",
        "{ type filter hook input priority 0 ; }",
      ]);
      await bs.execOk("nft", [
        "add",
        "rule",
        "ip",
        "mtrec",
        "in",
        ...["ip", "saddr", aIp, "udp", "dport", "7000", "@th,128,8", "5", "drop"],
      ]);
      // x, on a's link, sends as b: it holds b's address without answering ARP for it; its own
      // record requests (from its own address) still reach the real b: a rule ahead of the local
      // table routes them by the main table
      const xs = topo.host("x").ns;
      const xIp = topo.host("x").addr4;
      for (const k of ["all.arp_ignore", "eth0.arp_ignore"]) await xs.sysctl(`net.ipv4.conf.${k}`, 8);
      for (const k of ["all.arp_announce", "eth0.arp_announce"]) await xs.sysctl(`net.ipv4.conf.${k}`, 2);
      await xs.ip("rule", "add", "pref", "10", "from", xIp, "to", bIp, "lookup", "main");
      await xs.ip("rule", "add", "pref", "20", "lookup", "local");
      await xs.ip("rule", "del", "pref", "0");
      await xs.ip("addr", "add", `${bIp}/32`, "dev", "eth0");
      const recv = bs.spawn("python3", ["-c", RECEIVER, "10.77.0.2", "9000"]);
      await waitListening(bs, 9000, "u", recv);
      // b makes its second key (15 s after its start); a still holds the first, valid for 15 s more
      await waitFor(async () => ((await d.b!.status()).events.ephemeralRotations ?? 0) >= 2, {
        timeoutMs: 20_000,
        intervalMs: 200,
        what: "b's second ephemeral key",
      });
      expect((await d.a.status()).peers[0]!.record!.keyId).toBe(keyOfA);
      const file = path.join(work, "a.pcap");
      cap = await startCapture(topo.host("a").ns, "eth0", file, `udp and dst host ${bIp}`);
      const forger = xs.spawn("node", [FORGE, file, aIp, bIp, "7000", "5", xIp]);
      await forger.waitForLog(/^ready/m, 10_000); // the forger holds b's newest certificate
      const before = { a: await d.a.status(), b: await d.b.status() };
      // ids 0-9 leave within 100 ms, before any REPLY (300 ms round trip): 0-RTT, under b's older key
      await topo.host("a").ns.execOk("python3", ["-c", SENDER, "10.77.0.2", "9000"], { timeoutMs: 15_000 });
      await forger.exited;
      const after = { a: await d.a.status(), b: await d.b.status() };
      await recv.stop();
      const { counts, hist } = countDeliveries(recv.readLog());
      const diff = (h: "a" | "b", o: "drops" | "events", k: string) =>
        (after[h][o][k] ?? 0) - (before[h][o][k] ?? 0);
      const forged = JSON.parse(forger.readLog().trim().split("\n").pop()!) as {
        attempts: number;
        sent: number;
        newestKeyId: number | null;
      };
      console.log(
        `forged STALE: ${forged.sent} for ${forged.attempts} creations (a's key ${keyOfA}, forged with ${forged.newestKeyId}); ` +
          `deliveries per datagram: ` +
          [...hist.entries()]
            .sort((x, y) => x[0] - y[0])
            .map(([n, k]) => `${k} datagrams ${n}x`)
            .join(", ") +
          `; a: staleRetries +${diff("a", "events", "staleRetries")}; b: tunnelsAccepted +${diff("b", "events", "tunnelsAccepted")}, ` +
          `retryDuplicate +${diff("b", "drops", "retryDuplicate")}`,
      );
      // the attack happened: a abandoned a creation b had accepted and retried under the newer key ...
      expect(forged.sent).toBeGreaterThanOrEqual(1);
      expect(diff("a", "events", "staleRetries")).toBeGreaterThanOrEqual(1);
      expect(diff("b", "events", "tunnelsAccepted")).toBeGreaterThanOrEqual(2);
      // ... and every datagram reached the application exactly once
      expect([...counts.entries()].filter(([, n]) => n !== 1)).toEqual([]);
      expect(diff("b", "drops", "retryDuplicate")).toBeGreaterThanOrEqual(1);
    }, 60_000);
  },
);
