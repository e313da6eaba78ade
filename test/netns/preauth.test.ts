/**
 * Forged PUZZLEs against a real mintund (issue 15), end to end. An on-path
 * attacker in namespace x reads the CREATEs host a sends to b (a capture of a's
 * link: TID and key id are in the clear) and answers every creation attempt
 * with forged PUZZLEs from b's address: difficulty 24 and 255 (above the
 * creator's cap) and 20 (the cap: ~1M hashes). Meanwhile a pings c over an
 * established tunnel. Solving on the event loop stalled the whole daemon for
 * seconds per attempt; now the work runs in the solver's worker thread and the
 * ping never waits. The figure: a's event-loop delay (status daemon.loopDelay)
 * during the flood.
 *
 * Then two captures of a's link (static peers; through a directory), each with
 * a roam in the middle (a's underlay address changes, its tunnels move and it
 * registers the new endpoint): no UDP payload holds a host name, an overlay
 * address (v4 or v6 bytes), a host key, a certificate, its signature or the CA
 * key. Before the sealed records (ee37db2) the static capture showed b's name,
 * key, certificate and both overlay addresses, the directory capture the
 * directory's.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createLan,
  firstPingMs,
  pingStats,
  startCapture,
  waitFor,
  type Capture,
  type Netns,
  type Topology,
} from "./lib.js";
import {
  directoriesYaml,
  makeHost,
  makePki,
  startBare,
  startDaemon,
  waitRecords,
  waitRegistered,
  type HostFiles,
  type RunningDaemon,
} from "./mintun.js";
import { readUdp, type UdpRecord } from "./pcap.js";
import type { HostCert } from "../../src/wire/cert.js";

const FORGE = fileURLToPath(new URL("../tools/forge-puzzle.mjs", import.meta.url));
const SECONDS = 9;

/** IPv6 address as its 16 bytes (fd77::2 -> fd77 0000 ... 0002). */
function ip6Bytes(a: string): Buffer {
  const [head, tail] = a.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const words = [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return Buffer.from(words.map((w) => w.padStart(4, "0")).join(""), "hex");
}

/**
 * What identifies a host or its organisation, as bytes: name, host key, overlay
 * addresses (v4 and v6), the whole certificate, its signature, the CA key.
 */
function needlesOf(label: string, c: HostCert): [string, Buffer][] {
  const n: [string, Buffer][] = [
    [`${label} name`, Buffer.from(c.name)],
    [`${label} host key`, c.publicKey],
    [`${label} certificate`, c.raw],
    [`${label} certificate signature`, c.signature],
    ["CA key", c.issuer],
  ];
  if (c.ip4) n.push([`${label} overlay v4`, Buffer.from(c.ip4.split(".").map(Number))]);
  if (c.ip6) n.push([`${label} overlay v6`, ip6Bytes(c.ip6)]);
  return n;
}

/** The needles found in any UDP payload. */
function identifying(udp: UdpRecord[], needles: [string, Buffer][]): string[] {
  return [...new Set(needles.filter(([, n]) => udp.some((r) => r.payload.includes(n))).map(([w]) => w))];
}

/**
 * The host roams: its underlay address changes to `to` (another subnet on the same link)
 * mid-session; resolves once its daemon moved its tunnels (events.migrations).
 */
async function roam(ns: Netns, d: RunningDaemon, from: string, to: string): Promise<void> {
  const before = (await d.status()).events.migrations ?? 0;
  await ns.ip("addr", "add", `${to}/24`, "dev", "eth0");
  // everything else is reached through the new network's link, before the old address goes
  // (the daemon looks up its route to each peer when the address set changes)
  await ns.ip("route", "replace", "default", "dev", "eth0", "src", to);
  await ns.ip("addr", "del", `${from}/24`, "dev", "eth0");
  await waitFor(async () => ((await d.status()).events.migrations ?? 0) > before, {
    timeoutMs: 5000,
    intervalMs: 20,
    what: "migration",
  });
}

describe.skipIf(process.getuid?.() !== 0)("forged PUZZLEs while another tunnel carries a ping", () => {
  let topo: Topology;
  let work: string;
  let cap: Capture | null = null;
  const d: Record<string, RunningDaemon> = {};

  beforeAll(async () => {
    topo = await createLan({ hosts: ["a", "b", "c", "x"] });
    const pki = makePki();
    work = pki.dir;
    const O: Record<string, string> = { a: "10.77.0.1", b: "10.77.0.2", c: "10.77.0.3" };
    for (const h of ["b", "c", "a"]) {
      const peers =
        h === "a" ? ["b", "c"].map((p) => ({ name: p, endpoint: `${topo.host(p).addr4}:7000` })) : [];
      d[h] = await startDaemon(
        work,
        {
          host: makeHost(pki, h, O[h]!, null),
          ns: topo.host(h).ns,
          caFile: pki.caFile,
          listen: "0.0.0.0:7000",
          peers,
        },
        false,
      );
    }
    await waitRecords(d.a!);
  }, 60_000);

  afterAll(async () => {
    await cap?.stop().catch(() => undefined);
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await topo?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("the creator's event loop and a ping on another tunnel never wait; puzzles above the cap are counted drops", async () => {
    await firstPingMs(topo.host("a").ns, "10.77.0.3", { intervalMs: 50 });
    // b's daemon goes away: a's creations towards b stay in "creating" (5 s each), visible on the wire
    await d.b!.stop();
    const xs = topo.host("x").ns;
    const bIp = topo.host("b").addr4;
    // x spoofs b's address: it holds it without answering ARP for it
    await xs.sysctl("net.ipv4.conf.all.arp_ignore", 8);
    await xs.sysctl("net.ipv4.conf.eth0.arp_ignore", 8);
    await xs.sysctl("net.ipv4.conf.all.arp_announce", 2);
    await xs.sysctl("net.ipv4.conf.eth0.arp_announce", 2);
    await xs.ip("addr", "add", `${bIp}/32`, "dev", "eth0");
    await xs.exec("ping", ["-c", "1", "-W", "1", topo.host("a").addr4]);
    const file = path.join(work, "a.pcap");
    cap = await startCapture(topo.host("a").ns, "eth0", file, `udp and dst host ${bIp}`);
    const forger = xs.spawn("node", [
      FORGE,
      file,
      topo.host("a").addr4,
      bIp,
      "7000",
      String(SECONDS),
      "24,255,20",
    ]);
    await forger.waitForLog(/^ready/m, 10_000);
    // traffic towards b keeps a creating tunnels (a new TID each 5-s creation timeout)
    const toB = topo.host("a").ns.spawn("ping", ["-n", "-i", "0.5", "10.77.0.2"]);
    const before = await d.a!.status();
    // a's event-loop delay, read every 400 ms (each reading holds the largest delay of the last second)
    let polling = true;
    let loopMax = 0;
    const poll = (async () => {
      while (polling) {
        const l = (await d.a!.status()).daemon?.loopDelay;
        if (l) loopMax = Math.max(loopMax, l.lastSecMaxMs);
        await new Promise((r) => setTimeout(r, 400));
      }
    })();
    const p = await pingStats(topo.host("a").ns, "10.77.0.3", { count: 400, interval: 0.02, waitS: 3 });
    await forger.exited;
    polling = false;
    await poll;
    await toB.stop(1000);
    const after = await d.a!.status();
    const out = JSON.parse(forger.readLog().trim().split("\n").pop()!) as { attempts: number; sent: number };
    const diff = (k: string, o: "drops" | "events") => (after[o][k] ?? 0) - (before[o][k] ?? 0);
    const maxRtt = Math.max(...p.rtts);
    const ld = (st: typeof after) => st.daemon!.loopDelay!;
    const stalls = ld(after).over1000ms - ld(before).over1000ms;
    console.log(
      `forged PUZZLEs: ${out.sent} for ${out.attempts} creation attempts; ping a->c ${p.received}/${p.sent}, ` +
        `max rtt ${maxRtt.toFixed(1)} ms; a's event loop: largest delay ${loopMax} ms, ` +
        `seconds over 1 s +${stalls}, over 200 ms +${ld(after).over200ms - ld(before).over200ms}, over 50 ms +${ld(after).over50ms - ld(before).over50ms}; a: puzzleTooHard +${diff("puzzleTooHard", "drops")}, ` +
        `puzzlesQueued +${diff("puzzlesQueued", "events")}, puzzlesSolved +${diff("puzzlesSolved", "events")}`,
    );
    expect(out.attempts).toBeGreaterThanOrEqual(1);
    // the attacker's difficulty-20 puzzles were taken (and solved off the loop) ...
    expect(diff("puzzlesQueued", "events")).toBeGreaterThanOrEqual(1);
    // ... the harder ones dropped and counted, two per attempt
    expect(diff("puzzleTooHard", "drops")).toBeGreaterThanOrEqual(2 * out.attempts);
    expect(p.received).toBe(p.sent);
    // the ping is the end-to-end view (on the loop: 2967 ms); at load 12 on 2 cores one
    // reply took 219 ms while a's loop delay stayed at 59 ms: the bound is for the stall
    expect(maxRtt).toBeLessThan(500);
    // the solver thread works; the daemon's loop never waits for it (solving on the loop: 2948 ms;
    // the bound leaves room for a loaded 2-core machine, where the fixed daemon saw up to 152 ms)
    expect(stalls).toBe(0);
    expect(loopMax).toBeLessThan(500);
  }, 60_000);
});

describe.skipIf(process.getuid?.() !== 0)("nothing identifying in a capture (netns)", () => {
  let topo: Topology;
  let work: string;
  const d: Record<string, RunningDaemon> = {};

  afterAll(async () => {
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await topo?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("record fetch, tunnel creation, traffic and a roam between static peers: no host name, overlay address or certificate in any UDP payload", async () => {
    topo = await createLan({ hosts: ["a", "b"] });
    const pki = makePki();
    work = pki.dir;
    const hosts: Record<string, HostFiles> = {
      a: makeHost(pki, "alphasecret", "10.77.0.1", "fd77::1"),
      b: makeHost(pki, "bravosecret", "10.77.0.2", "fd77::2"),
    };
    // b also owns an address in the subnet a roams to (same link)
    await topo.host("b").ns.ip("addr", "add", "10.211.0.2/24", "dev", "eth0");
    const file = path.join(work, "all.pcap");
    const cap = await startCapture(topo.host("a").ns, "eth0", file, "udp");
    let roams = 0;
    try {
      d.b = await startDaemon(
        work,
        { host: hosts.b!, ns: topo.host("b").ns, caFile: pki.caFile, listen: "0.0.0.0:7000", peers: [] },
        false,
      );
      d.a = await startDaemon(work, {
        host: hosts.a!,
        ns: topo.host("a").ns,
        caFile: pki.caFile,
        listen: "0.0.0.0:7000",
        peers: [{ name: "bravosecret", endpoint: `${topo.host("b").addr4}:7000` }],
      });
      const ping = async () => {
        const p4 = await pingStats(topo.host("a").ns, "10.77.0.2", { count: 3, interval: 0.1 });
        const p6 = await pingStats(topo.host("a").ns, "fd77::2", { count: 3, interval: 0.1 });
        expect(p4.received).toBeGreaterThanOrEqual(2);
        expect(p6.received).toBeGreaterThanOrEqual(2);
      };
      await ping();
      // mid-session, a's underlay address changes: the tunnel moves (new TID, new keys)
      await roam(topo.host("a").ns, d.a, topo.host("a").addr4, "10.211.0.1");
      await ping();
      roams = (await d.b.status()).events.roams ?? 0;
    } finally {
      await cap.stop();
    }
    const udp = readUdp(file).filter((r) => r.sport === 7000 || r.dport === 7000);
    const types = new Set(udp.map((r) => r.payload[8]));
    // the capture holds the record fetch (5, 6), the creation (1, 2) and data (3) ...
    for (const t of [1, 2, 3, 5, 6]) expect(types.has(t), `packet type ${t} captured`).toBe(true);
    // ... on both underlay paths: b saw a's tunnel arrive from the new address
    const moved = udp.filter((r) => r.src === "10.211.0.1").length;
    expect(roams).toBeGreaterThanOrEqual(1);
    expect(moved).toBeGreaterThan(0);
    const found = identifying(udp, [
      ...needlesOf("a", hosts.a!.hostCert),
      ...needlesOf("b", hosts.b!.hostCert),
    ]);
    console.log(
      `capture: ${udp.length} datagrams on port 7000 (${moved} from the roamed address), types ${[...types].sort().join(",")}; ` +
        `identifying: ${found.join(", ") || "none"}`,
    );
    expect(found).toEqual([]);
  }, 60_000);
});

describe.skipIf(process.getuid?.() !== 0)(
  "nothing identifying in a capture, through a directory (netns)",
  () => {
    let topo: Topology;
    let work: string;
    const d: Record<string, RunningDaemon> = {};

    afterAll(async () => {
      for (const x of Object.values(d)) await x.stop().catch(() => undefined);
      await topo?.cleanup();
      if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    it("registration, lookup, creation, traffic, a roam and re-registration: no host name, overlay address or certificate in any UDP payload", async () => {
      topo = await createLan({ hosts: ["dir", "a", "b"] });
      const pki = makePki();
      work = pki.dir;
      const hosts: Record<string, HostFiles> = {
        dir: makeHost(pki, "dirsecret", "10.77.0.100", "fd77::100"),
        a: makeHost(pki, "alphasecret", "10.77.0.1", "fd77::1"),
        b: makeHost(pki, "bravosecret", "10.77.0.2", "fd77::2"),
      };
      for (const [h, ip] of [
        ["dir", "10.211.0.100"],
        ["b", "10.211.0.2"],
      ] as const)
        await topo.host(h).ns.ip("addr", "add", `${ip}/24`, "dev", "eth0");
      const file = path.join(work, "dir.pcap");
      const cap = await startCapture(topo.host("a").ns, "eth0", file, "udp");
      try {
        d.dir = await startBare(work, pki, hosts.dir!, topo.host("dir").ns, "directory:\n  serve: true\n");
        for (const h of ["a", "b"])
          d[h] = await startBare(
            work,
            pki,
            hosts[h]!,
            topo.host(h).ns,
            directoriesYaml(topo.host("dir").addr4),
          );
        await waitRegistered(d.a!);
        await waitRegistered(d.b!);
        const p = await pingStats(topo.host("a").ns, "10.77.0.2", { count: 4, interval: 0.2 });
        expect(p.received).toBeGreaterThanOrEqual(2);
        // a roams; its tunnels (to b and to the directory) move and it registers its new endpoint
        await roam(topo.host("a").ns, d.a!, topo.host("a").addr4, "10.211.0.1");
        await waitFor(
          async () =>
            (await d.a!.status()).directory?.client?.directories[0]?.observed?.startsWith("10.211.0.1:"),
          { timeoutMs: 10_000, what: "the directory saw a's new endpoint" },
        );
        const p2 = await pingStats(topo.host("a").ns, "fd77::2", { count: 4, interval: 0.2 });
        expect(p2.received).toBeGreaterThanOrEqual(2);
      } finally {
        await cap.stop();
      }
      const udp = readUdp(file).filter((r) => r.sport === 7000 || r.dport === 7000);
      const types = new Set(udp.map((r) => r.payload[8]));
      for (const t of [1, 2, 3, 5, 6]) expect(types.has(t), `packet type ${t} captured`).toBe(true);
      const moved = udp.filter((r) => r.src === "10.211.0.1").length;
      expect(moved).toBeGreaterThan(0);
      const found = identifying(
        udp,
        ["dir", "a", "b"].flatMap((h) => needlesOf(h, hosts[h]!.hostCert)),
      );
      console.log(
        `directory capture: ${udp.length} datagrams (${moved} from the roamed address), types ${[...types].sort().join(",")}; ` +
          `identifying: ${found.join(", ") || "none"}`,
      );
      expect(found).toEqual([]);
    }, 90_000);
  },
);
