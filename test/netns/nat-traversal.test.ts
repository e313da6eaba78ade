/**
 * NAT traversal (issue 17) with real nftables NATs in router namespaces (natnet.ts):
 * hosts that know only the directory, on the public side, reach each other by name with
 * an unmodified curl against a real HTTP server.
 *
 * - two hosts behind the same NAT: the directory saw both at the NAT's public address,
 *   so each uses the other's signed local address (no hairpin through the NAT);
 * - two hosts behind separate endpoint-independent NATs (plain masquerade): the
 *   directory's rendezvous makes the target punch towards the creator while the 0-RTT
 *   CREATE goes out: direct path, first reply timed with 25 ms each way;
 * - symmetric NATs (masquerade random,fully-random): the directory relays; a capture
 *   at the relay shows no plaintext and no inner addresses; after the NAT turns
 *   endpoint-independent the tunnel moves to the direct path.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  captureContains,
  curlTimed,
  execCmd,
  firstPingMs,
  iperf3,
  startCapture,
  sleep,
  startHttpServer,
  waitFor,
  waitListening,
} from "./lib.js";
import { createNatNet, type NatNet, type NatSite } from "./natnet.js";
import {
  MINTUN,
  makeHost,
  makePki,
  directoriesYaml,
  startBare,
  type Pki,
  type RunningDaemon,
} from "./mintun.js";

/** utime + stime of a process, seconds (/proc/PID/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / 100;
}
import type { Status } from "../../src/daemon/status.js";

const O4: Record<string, string> = {
  dir: "10.77.0.100",
  a1: "10.77.0.1",
  a2: "10.77.0.2",
  b1: "10.77.0.3",
  p1: "10.77.0.4",
};
/** each way between sites; MINTUN_NAT_DELAY_MS=0 measures the relay without the delay router's pace */
const DELAY_MS = Number(process.env.MINTUN_NAT_DELAY_MS ?? 25);
const root = process.getuid?.() === 0;

/** One NAT world: the directory on the public side, hosts behind their sites' NATs. */
class World {
  net!: NatNet;
  pki!: Pki;
  www!: string;
  d: Record<string, RunningDaemon> = {};
  etc: string[] = [];

  async up(
    sites: NatSite[],
    delayMs: number,
    dirExtra = "",
    hostExtra = "",
    pub: string[] = [],
  ): Promise<void> {
    this.net = await createNatNet({ sites, public: ["dir", ...pub], delayMs });
    this.pki = makePki();
    this.www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.writeFileSync(path.join(this.www, "f"), Buffer.alloc(32 * 1024, 7));
    const dirIp = this.net.host("dir").addr4;
    this.d.dir = await startBare(
      this.pki.dir,
      this.pki,
      makeHost(this.pki, "dir", O4.dir!, null),
      this.net.host("dir").ns,
      "directory:\n  serve: true\n  store: file\n" + dirExtra,
    );
    const hosts = [...sites.flatMap((s) => s.hosts), ...pub];
    for (const h of hosts) {
      const ns = this.net.host(h).ns;
      this.d[h] = await startBare(
        this.pki.dir,
        this.pki,
        makeHost(this.pki, h, O4[h]!, null),
        ns,
        directoriesYaml(dirIp) + "dns:\n  listen: overlay\n  domain: mesh.\n" + hostExtra,
      );
      const etc = path.join("/etc/netns", ns.name);
      fs.mkdirSync(etc, { recursive: true });
      this.etc.push(etc);
      fs.writeFileSync(path.join(etc, "resolv.conf"), `nameserver ${O4[h]}\noptions timeout:1 attempts:2\n`);
      await startHttpServer(ns, this.www, 8080);
    }
    for (const h of hosts)
      await waitFor(async () => (await this.d[h]!.status()).directory?.client?.directories[0]?.registered, {
        timeoutMs: 15_000,
        what: `${h} registered`,
      });
  }

  status(h: string): Promise<Status> {
    return this.d[h]!.status();
  }

  /** The endpoint of h's established tunnel to `toName`, waiting up to 3 s for it (the responder's side is established on the creator's confirmation). */
  async endpointSoon(h: string, toName: string): Promise<string> {
    return waitFor(() => this.tunnelEndpoint(h, toName), {
      timeoutMs: 3000,
      intervalMs: 50,
      what: `${h}'s tunnel to ${toName}`,
    });
  }

  /** The endpoint of h's tunnel to the host with overlay address `to` (status). */
  async tunnelEndpoint(h: string, toName: string): Promise<string | null> {
    const st = await this.status(h);
    const t = st.tunnels.find((x) => x.peer === toName && x.state === "established");
    return t ? t.endpoint : null;
  }

  async down(): Promise<void> {
    for (const x of Object.values(this.d)) await x.stop().catch(() => undefined);
    await this.net?.topo.cleanup();
    for (const e of this.etc) fs.rmSync(e, { recursive: true, force: true });
    if (this.www) fs.rmSync(this.www, { recursive: true, force: true });
    if (this.pki && !process.env.MINTUN_KEEP_LOGS) fs.rmSync(this.pki.dir, { recursive: true, force: true });
    else if (this.pki) console.log(`logs kept in ${this.pki.dir}`);
  }
}

describe.skipIf(!root)("NAT traversal: two hosts behind the same NAT (netns, nftables)", () => {
  const w = new World();
  beforeAll(() => w.up([{ name: "a", nat: "ei", hosts: ["a1", "a2"] }], 0), 90_000);
  afterAll(() => w.down());

  it("uses the signed local addresses, not the NAT's public one", async () => {
    const dirView = (await w.status("a1")).directory?.client?.directories[0];
    expect(dirView?.observed?.startsWith(`${w.net.router("a").addr4}:`)).toBe(true); // behind the NAT
    const c = await curlTimed(w.net.host("a1").ns, "http://a2.mesh:8080/f", { maxTimeS: 10 });
    expect(c.code, c.stderr).toBe(200);
    expect(await w.tunnelEndpoint("a1", "a2")).toBe(`${w.net.host("a2").addr4}:7000`);
    expect(await w.endpointSoon("a2", "a1")).toBe(`${w.net.host("a1").addr4}:7000`);
  }, 30_000);
});

describe.skipIf(!root)(
  "NAT traversal: separate endpoint-independent NATs (netns, nftables, 25 ms each way)",
  () => {
    const w = new World();
    beforeAll(
      () =>
        w.up(
          [
            { name: "a", nat: "ei", hosts: ["a1"] },
            { name: "b", nat: "ei", hosts: ["b1"] },
          ],
          DELAY_MS,
          "relay:\n  serve: true\n",
          "",
          ["p1"],
        ),
      120_000,
    );
    afterAll(() => w.down());

    it("finds the direct path through both NATs by rendezvous; curl by name works both ways", async () => {
      // a public host first (no rendezvous needed), then the NATed one (punched)
      const direct = await firstPingMs(w.net.host("a1").ns, O4.p1!, { timeoutMs: 10_000 });
      const punched = await firstPingMs(w.net.host("a1").ns, O4.b1!, { timeoutMs: 10_000 });
      console.log(
        `NAT first reply (${DELAY_MS} ms each way, lookup + creation): public host ${direct.ms.toFixed(0)} ms, ` +
          `behind an endpoint-independent NAT (punched) ${punched.ms.toFixed(0)} ms`,
      );
      const bPublic = `${w.net.router("b").addr4}:`;
      expect((await w.endpointSoon("a1", "b1")).startsWith(bPublic)).toBe(true); // direct, through b's NAT
      expect((await w.endpointSoon("b1", "a1")).startsWith(`${w.net.router("a").addr4}:`)).toBe(true);
      const sd = await w.status("dir");
      expect(sd.events.rdvSent).toBeGreaterThanOrEqual(1);
      expect((await w.status("b1")).events.punchesSent).toBeGreaterThanOrEqual(1);
      expect((await w.status("a1")).events.natRelayFallbacks ?? 0).toBe(0);
      for (const [x, y] of [
        ["a1", "b1"],
        ["b1", "a1"],
      ] as const) {
        const c = await curlTimed(w.net.host(x).ns, `http://${y}.mesh:8080/f`, { maxTimeS: 10 });
        expect(c.code, `curl ${x} -> ${y}.mesh ${c.stderr}`).toBe(200);
      }
      expect(sd.directory?.relay?.hosts.length ?? 0).toBe(0); // nothing relayed
    }, 60_000);

    it("the direct path dies (both NATs turn symmetric): the tunnel moves to the relay and carries on", async () => {
      expect((await w.endpointSoon("a1", "b1")).startsWith("relay:")).toBe(false);
      await w.net.setNat("a", "sym");
      await w.net.setNat("b", "sym");
      const t0 = Date.now();
      const relayed = await waitFor(
        async () => {
          await curlTimed(w.net.host("a1").ns, "http://b1.mesh:8080/f", { maxTimeS: 3 });
          const [ea, eb] = [await w.tunnelEndpoint("a1", "b1"), await w.tunnelEndpoint("b1", "a1")];
          return ea?.startsWith("relay:") && eb?.startsWith("relay:") ? ea : null;
        },
        { timeoutMs: 40_000, intervalMs: 500, what: "the tunnel a1-b1 on the relay" },
      );
      console.log(`NAT: direct path dead -> ${relayed} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const c = await curlTimed(w.net.host("a1").ns, "http://b1.mesh:8080/f", { maxTimeS: 10 });
      expect(c.code, c.stderr).toBe(200);
      expect((await w.status("a1")).events.natToRelay).toBeGreaterThanOrEqual(1);
    }, 60_000);
  },
);

describe.skipIf(!root)(
  "NAT traversal: symmetric NATs, the directory relays (netns, nftables, 25 ms each way)",
  () => {
    const w = new World();
    beforeAll(
      () =>
        w.up(
          [
            { name: "a", nat: "sym", hosts: ["a1"] },
            { name: "b", nat: "sym", hosts: ["b1"] },
          ],
          DELAY_MS,
          // a limit far above what the test sends: the throughput figure is the relay's own
          "relay:\n  serve: true\n  bytesPerSec: 1000000000\n  burstBytes: 1000000000\n",
          "tunnel:\n  keepaliveSec: 2\n",
        ),
      120_000,
    );
    afterAll(() => w.down());

    it("relays sealed datagrams (no plaintext, no inner addresses at the relay), then moves to direct when the NATs allow", async () => {
      const relayed = await firstPingMs(w.net.host("a1").ns, O4.b1!, { timeoutMs: 10_000 });
      console.log(
        `NAT first reply, symmetric NATs (relayed, ${DELAY_MS} ms each way): ${relayed.ms.toFixed(0)} ms`,
      );
      expect((await w.endpointSoon("a1", "b1")).startsWith("relay:")).toBe(true);
      expect((await w.endpointSoon("b1", "a1")).startsWith("relay:")).toBe(true);
      // what the relay sees: a capture in its namespace while a marker file crosses
      const marker = Buffer.from("MINTUN-PLAINTEXT-MARKER-".repeat(4));
      fs.writeFileSync(path.join(w.www, "m"), Buffer.concat(Array.from({ length: 64 }, () => marker)));
      const pcap = path.join(w.pki.dir, "relay.pcap");
      const cap = await startCapture(w.net.host("dir").ns, "eth0", pcap);
      const c = await curlTimed(w.net.host("a1").ns, "http://b1.mesh:8080/m", { maxTimeS: 10 });
      const c2 = await curlTimed(w.net.host("b1").ns, "http://a1.mesh:8080/f", { maxTimeS: 10 });
      await cap.stop();
      expect(c.code, c.stderr).toBe(200);
      expect(c2.code, c2.stderr).toBe(200);
      expect(fs.statSync(pcap).size).toBeGreaterThan(64 * marker.length); // the file did cross the relay
      expect(captureContains(pcap, marker.subarray(0, 24))).toBe(false);
      for (const ip of [O4.a1!, O4.b1!]) {
        expect(captureContains(pcap, Buffer.from(ip.split(".").map(Number))), `inner ${ip}`).toBe(false);
      }
      const sd = await w.status("dir");
      const hosts = sd.directory?.relay?.hosts ?? [];
      expect(hosts.map((h) => h.name).sort()).toEqual(["a1", "b1"]);
      expect(hosts.every((h) => h.bytes > 0 && h.packets > 0)).toBe(true);
      expect(sd.events.relayPackets).toBeGreaterThan(0);
      const sa = await w.status("a1");
      expect(sa.events.natRelayFallbacks).toBeGreaterThanOrEqual(1);
      const text = await execCmd("node", [MINTUN, "status", "--socket", w.d.dir!.socket]);
      expect(text.stdout).toMatch(/relay: 1 pairs, limit 1000000000 B\/s per host/);
      expect(text.stdout).toMatch(/RELAYED FOR +PACKETS +BYTES +DROPPED\n(a1|b1) +\d+/);
      // relay throughput and its CPU per GB (one TCP stream through the relayed tunnel)
      const cpu0 = cpuSeconds(w.d.dir!.proc.pid);
      const bytes0 = (await w.status("dir")).events.relayBytes!;
      const ip = await iperf3(w.net.host("a1").ns, { ns: w.net.host("b1").ns, addr: O4.b1! }, 3);
      const cpu = cpuSeconds(w.d.dir!.proc.pid) - cpu0;
      const relayedGb = ((await w.status("dir")).events.relayBytes! - bytes0) / 1e9;
      console.log(
        `relay: iperf3 through the relay ${ip.mbps.toFixed(0)} Mbit/s (${DELAY_MS} ms each way), ` +
          `relay CPU ${cpu.toFixed(2)} s for ${(relayedGb * 1000).toFixed(0)} MB = ${(cpu / relayedGb).toFixed(1)} CPU-s/GB`,
      );
      expect(ip.mbps).toBeGreaterThan(1);
      // the NATs turn endpoint-independent: the next rendezvous finds the direct path
      await w.net.setNat("a", "ei");
      await w.net.setNat("b", "ei");
      const moved = await waitFor(
        async () => {
          await curlTimed(w.net.host("a1").ns, "http://b1.mesh:8080/f", { maxTimeS: 5 });
          const e = await w.tunnelEndpoint("a1", "b1");
          return e && !e.startsWith("relay:") ? e : null;
        },
        { timeoutMs: 60_000, intervalMs: 1000, what: "a1's tunnel to b1 moves to the direct path" },
      );
      expect(moved.startsWith(`${w.net.router("b").addr4}:`)).toBe(true);
      const c3 = await curlTimed(w.net.host("a1").ns, "http://b1.mesh:8080/f", { maxTimeS: 10 });
      expect(c3.code, c3.stderr).toBe(200);
      expect((await w.status("a1")).events.natUpgrades).toBeGreaterThanOrEqual(1);
    }, 170_000);
  },
);

// one line every 50 ms; prints "ok N MAXMS" if every line came back in order (MAXMS: the longest round trip)
const echoServer = (ip: string): string => `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("${ip}", 9000)); s.listen(1)
c, _ = s.accept()
while True:
    d = c.recv(4096)
    if not d: break
    c.sendall(d)
`;
const echoClient = (ip: string): string => `
import socket, sys, time
n = int(sys.argv[1]); c = socket.create_connection(("${ip}", 9000), timeout=20)
f = c.makefile("rb"); worst = 0
for i in range(n):
    t = time.time(); c.sendall(b"line %d\\n" % i)
    if f.readline() != b"line %d\\n" % i: print("mismatch", i); sys.exit(1)
    worst = max(worst, time.time() - t); time.sleep(0.05)
print("ok", n, int(worst * 1000))
`;

describe.skipIf(!root)("NAT traversal: the laptop roams from one NAT to another (netns, nftables)", () => {
  const w = new World();
  beforeAll(
    () =>
      w.up(
        [
          { name: "a", nat: "ei", hosts: ["a1"] },
          { name: "b", nat: "ei", hosts: ["b1"] },
          { name: "c", nat: "ei", hosts: [] },
        ],
        DELAY_MS,
        "relay:\n  serve: true\n",
      ),
    120_000,
  );
  afterAll(() => w.down());

  it("a TCP session to the NATed host continues across the roam", async () => {
    const a = w.net.host("a1").ns;
    const b = w.net.host("b1").ns;
    await w.net.attach("c", "a1", "eth1", 1); // the second network, not used yet
    const server = b.spawn("python3", ["-c", echoServer(O4.b1!)]);
    await waitListening(b, 9000, "t", server);
    const session = a.exec("python3", ["-c", echoClient(O4.b1!), "100"], { timeoutMs: 60_000 });
    await sleep(3000);
    const before = await w.endpointSoon("b1", "a1");
    expect(before.startsWith(`${w.net.router("a").addr4}:`)).toBe(true);
    // leave network a (link down: its routes go), join network c
    await a.ip("link", "set", "eth0", "down");
    await a.ip("route", "replace", "default", "via", "192.168.3.254", "dev", "eth1");
    const s = await session;
    await server.stop();
    const after = await w.endpointSoon("b1", "a1");
    const st = await w.status("a1");
    console.log(
      `NAT roam: TCP session ${s.stdout.trim()} (lines, longest round trip ms); b1's endpoint for a1 ${before} -> ${after}; ` +
        `a1 migrations ${st.events.migrations}, relay fallbacks ${st.events.natRelayFallbacks}, upgrades ${st.events.natUpgrades}`,
    );
    expect(s.code, s.stdout + s.stderr).toBe(0);
    expect(s.stdout).toMatch(/^ok 100/);
    // b1 follows a1 to network c's NAT: through the relay at once, then directly once the
    // unanswered entry a1's first packets left on b's NAT has expired (UPGRADE_SCHEDULE_MS)
    expect(after.startsWith(`${w.net.router("c").addr4}:`) || after.startsWith("relay:")).toBe(true);
    const t0 = Date.now();
    const direct = await waitFor(
      async () => {
        const e = await w.tunnelEndpoint("b1", "a1");
        return e?.startsWith(`${w.net.router("c").addr4}:`) ? e : null;
      },
      { timeoutMs: 70_000, intervalMs: 500, what: "b1's tunnel to a1 on the direct path through NAT c" },
    );
    console.log(`NAT roam: direct again ${direct} after ${((Date.now() - t0) / 1000).toFixed(0)} s more`);
    const c = await curlTimed(b, "http://a1.mesh:8080/f", { maxTimeS: 10 });
    expect(c.code, c.stderr).toBe(200);
  }, 170_000);
});
