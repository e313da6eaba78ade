/**
 * Both ends move at once: a and b change their underlay addresses at the same
 * moment, so each one's move announcement goes to the other's old address and
 * is lost. Both register their new address with the directory (their tunnels
 * to it move too); the side that keeps sending and hears nothing looks its
 * peer up again, verifies the record, moves the tunnel's endpoint to the new
 * address, and traffic resumes. Prints the recovery time.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLan, pingStats, type Topology, waitFor } from "./lib.js";
import {
  directoriesYaml,
  makeHost,
  makePki,
  startBare,
  waitRegistered,
  type RunningDaemon,
} from "./mintun.js";

describe.skipIf(process.getuid?.() !== 0)("directory: both ends move at once (netns)", () => {
  let topo: Topology;
  let work: string;
  const d: Record<string, RunningDaemon> = {};

  beforeAll(async () => {
    topo = await createLan({ hosts: ["dir", "a", "b"] });
    // one link: every host reaches every address on it directly (on-link default routes)
    for (const h of ["dir", "a", "b"]) await topo.host(h).ns.ip("route", "add", "default", "dev", "eth0");
    const pki = makePki();
    work = pki.dir;
    d.dir = await startBare(
      work,
      pki,
      makeHost(pki, "dir", "10.77.0.100", null),
      topo.host("dir").ns,
      "directory:\n  serve: true\n",
    );
    for (const [h, ip] of [
      ["a", "10.77.0.1"],
      ["b", "10.77.0.2"],
    ] as const) {
      d[h] = await startBare(
        work,
        pki,
        makeHost(pki, h, ip, null),
        topo.host(h).ns,
        directoriesYaml(topo.host("dir").addr4),
      );
      await waitRegistered(d[h]);
    }
  }, 60_000);

  afterAll(async () => {
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await topo?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  async function move(h: string, from: string, to: string): Promise<void> {
    const ns = topo.host(h).ns;
    await ns.ip("addr", "add", `${to}/24`, "dev", "eth0");
    await ns.ip("addr", "del", `${from}/24`, "dev", "eth0");
    await ns.ip("route", "replace", "default", "dev", "eth0", "src", to);
  }

  /** a and b do not hear each other (silently: input dropped), the directory still hears both */
  async function deafen(on: boolean): Promise<void> {
    const peers = { a: [topo.host("b").addr4, "10.212.0.2"], b: [topo.host("a").addr4, "10.211.0.1"] };
    for (const [h, from] of Object.entries(peers)) {
      const ns = topo.host(h).ns;
      if (!on) {
        await ns.execOk("nft", ["delete", "table", "ip", "mtdeaf"]);
        continue;
      }
      await ns.execOk("nft", ["add", "table", "ip", "mtdeaf"]);
      await ns.execOk("nft", [
        "add",
        "chain",
        "ip",
        "mtdeaf",
        "in",
        "{ type filter hook input priority 0 ; }",
      ]);
      await ns.execOk("nft", [
        "add",
        "rule",
        "ip",
        "mtdeaf",
        "in",
        "ip",
        "saddr",
        `{ ${from.join(", ")} }`,
        "drop",
      ]);
    }
  }

  it("traffic resumes after a re-lookup through the directory", { timeout: 60_000 }, async () => {
    const warm = await pingStats(topo.host("a").ns, "10.77.0.2", { count: 3, interval: 0.1 });
    expect(warm.received).toBeGreaterThanOrEqual(2);
    const ping = topo.host("a").ns.spawn("ping", ["-n", "-D", "-i", "0.1", "-c", "150", "10.77.0.2"]);
    await waitFor(() => /icmp_seq=5 /.test(ping.readLog()), { timeoutMs: 5000, what: "ping running" });
    const m0 = { a: (await d.a!.status()).events.migrations, b: (await d.b!.status()).events.migrations };
    // "at once" by construction: each one's move announcement is lost whatever the order and
    // timing of the two moves (racing two sequences of `ip` commands let a's announcement reach
    // b before b moved on a loaded machine: traffic resumed in 231 ms without any re-lookup)
    await deafen(true);
    await Promise.all([
      move("a", topo.host("a").addr4, "10.211.0.1"),
      move("b", topo.host("b").addr4, "10.212.0.2"),
    ]);
    // both noticed their move and told the directory, which they still reach
    for (const h of ["a", "b"] as const)
      await waitFor(
        async () => {
          const s = await d[h]!.status();
          return s.events.migrations > m0[h] && s.directory?.client?.directories[0]?.registered;
        },
        { timeoutMs: 10_000, what: `${h} moved and registered` },
      );
    const t0 = Date.now() / 1000;
    await deafen(false);
    // the first reply once they can hear each other again
    const m = await waitFor(
      () => {
        for (const x of ping.readLog().matchAll(/^\[(\d+\.\d+)\].*icmp_seq=(\d+)/gm))
          if (Number(x[1]) > t0) return Number(x[1]);
        return null;
      },
      { timeoutMs: 20_000, intervalMs: 50, what: "ping replies after both moved" },
    );
    await ping.stop(1000);
    const recovery = m - t0;
    const sa = await d.a!.status();
    const sb = await d.b!.status();
    const ta = sa.tunnels.find((t) => t.peer === "b");
    console.log(
      `both ends moved at once: traffic resumed after ${(recovery * 1000).toFixed(0)} ms ` +
        `(a relookups ${sa.events.dirRelookups}, b relookups ${sb.events.dirRelookups}, ` +
        `a migrations ${sa.events.migrations}, b migrations ${sb.events.migrations}); a's tunnel to b now at ${ta?.endpoint}`,
    );
    expect(sa.events.dirRelookups + sb.events.dirRelookups).toBeGreaterThanOrEqual(1);
    expect(ta?.endpoint).toBe("10.212.0.2:7000");
    expect(recovery).toBeLessThan(10);
    const after = await pingStats(topo.host("b").ns, "10.77.0.1", { count: 3, interval: 0.1 });
    expect(after.received).toBeGreaterThanOrEqual(2);
  });
});
