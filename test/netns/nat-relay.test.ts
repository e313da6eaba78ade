/**
 * A relay that is not the directory (issue 17): two hosts behind symmetric NATs (nftables
 * `masquerade random,fully-random`, natnet.ts), a directory that does not relay, and a
 * public host r1 with `relay: { serve: true }`. The directory picks r1 for the pair; both
 * hosts create ordinary tunnels to r1, which forwards their sealed datagrams.
 *
 * - an unmodified curl by name works through r1, both ways; neither end's tunnel is direct;
 * - a capture at r1 holds no plaintext and no inner address;
 * - an attacker namespace on the public side replays a real relayed datagram (the token
 *   observed in the capture) and sends forged ones with it and with a guessed token: all are
 *   counted drops at r1, and nothing reaches the other host;
 * - r1's per-host byte bucket (shortened through config) limits what one host can send
 *   through it: counted drops, forwarded bytes within burst + rate x time.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { captureContains, curlTimed, execCmd, startCapture, startHttpServer, waitFor } from "./lib.js";
import { createNatNet, type NatNet } from "./natnet.js";
import { readUdp } from "./pcap.js";
import {
  MINTUN,
  makeHost,
  makePki,
  directoriesYaml,
  startBare,
  type Pki,
  type RunningDaemon,
} from "./mintun.js";
import type { Status } from "../../src/daemon/status.js";

const O4: Record<string, string> = { dir: "10.78.0.100", r1: "10.78.0.50", a1: "10.78.0.1", b1: "10.78.0.2" };
const RATE = 200_000;
const BURST = 400_000;
const root = process.getuid?.() === 0;

/** Sends each hex datagram of argv[3:] to argv[1]:argv[2], argv[0] times. */
const SENDER = `
import socket, sys
n, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(n):
    for h in sys.argv[4:]:
        s.sendto(bytes.fromhex(h), (host, port))
`;

describe.skipIf(!root)(
  "NAT traversal: a relay host that is not the directory (netns, symmetric NATs)",
  () => {
    let net: NatNet;
    let pki: Pki;
    let www: string;
    const d: Record<string, RunningDaemon> = {};
    const etc: string[] = [];
    const st = (h: string): Promise<Status> => d[h]!.status();
    const endpoint = async (h: string, to: string): Promise<string | null> =>
      (await st(h)).tunnels.find((t) => t.peer === to && t.state === "established")?.endpoint ?? null;

    beforeAll(async () => {
      net = await createNatNet({
        sites: [
          { name: "a", nat: "sym", hosts: ["a1"] },
          { name: "b", nat: "sym", hosts: ["b1"] },
        ],
        public: ["dir", "r1", "x1"],
      });
      pki = makePki();
      www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
      fs.writeFileSync(path.join(www, "f"), Buffer.alloc(32 * 1024, 7));
      fs.writeFileSync(path.join(www, "big"), Buffer.alloc(4 * 1024 * 1024, 9));
      const dirIp = net.host("dir").addr4;
      // the directory does not relay: it has to hand the pair to r1
      d.dir = await startBare(
        pki.dir,
        pki,
        makeHost(pki, "dir", O4.dir!, null),
        net.host("dir").ns,
        "directory:\n  serve: true\n  store: file\nrelay:\n  hosts: [r1]\n",
      );
      const extra: Record<string, string> = {
        r1:
          `relay:\n  serve: true\n  bytesPerSec: ${RATE}\n  burstBytes: ${BURST}\n` +
          "metrics:\n  listen: 127.0.0.1:9477\n",
        a1: "",
        b1: "",
      };
      for (const h of ["r1", "a1", "b1"]) {
        const ns = net.host(h).ns;
        d[h] = await startBare(
          pki.dir,
          pki,
          makeHost(pki, h, O4[h]!, null),
          ns,
          directoriesYaml(dirIp) + "dns:\n  listen: overlay\n  domain: mesh.\n" + extra[h],
        );
        const e = path.join("/etc/netns", ns.name);
        fs.mkdirSync(e, { recursive: true });
        etc.push(e);
        fs.writeFileSync(path.join(e, "resolv.conf"), `nameserver ${O4[h]}\noptions timeout:1 attempts:2\n`);
        if (h !== "r1") await startHttpServer(ns, www, 8080);
      }
      for (const h of ["r1", "a1", "b1"])
        await waitFor(async () => (await st(h)).directory?.client?.directories[0]?.registered, {
          timeoutMs: 15_000,
          what: `${h} registered`,
        });
      // r1 offers itself once its directory tunnel is up
      await waitFor(async () => ((await st("dir")).events.relayOffers ?? 0) > 0, {
        timeoutMs: 10_000,
        what: "r1's relay offer at the directory",
      });
    }, 120_000);

    afterAll(async () => {
      for (const x of Object.values(d)) await x.stop().catch(() => undefined);
      await net?.topo.cleanup();
      for (const e of etc) fs.rmSync(e, { recursive: true, force: true });
      if (www) fs.rmSync(www, { recursive: true, force: true });
      if (pki && !process.env.MINTUN_KEEP_LOGS) fs.rmSync(pki.dir, { recursive: true, force: true });
      else if (pki) console.log(`logs kept in ${pki.dir}`);
    });

    it("curl by name crosses r1; r1 sees no plaintext and no inner address; forged RELAY datagrams are counted drops", async () => {
      const a = net.host("a1").ns;
      const b = net.host("b1").ns;
      const c0 = await waitFor(
        async () => {
          const c = await curlTimed(a, "http://b1.mesh:8080/f", { maxTimeS: 5 });
          return c.code === 200 ? c : null;
        },
        { timeoutMs: 30_000, intervalMs: 500, what: "curl a1 -> b1.mesh through the relay host" },
      );
      expect(c0.code).toBe(200);
      const ea = await waitFor(() => endpoint("a1", "b1"), { timeoutMs: 3000, what: "a1's tunnel to b1" });
      const eb = await waitFor(() => endpoint("b1", "a1"), { timeoutMs: 3000, what: "b1's tunnel to a1" });
      expect(ea.startsWith("relay:host/")).toBe(true);
      expect(eb).toBe(ea); // one token for the pair
      // both ends reach r1 through tunnels of their own (from behind their NATs)
      const r1Addr = `${net.host("r1").addr4}:7000`;
      expect(await endpoint("a1", "r1")).toBe(r1Addr);
      expect(await endpoint("b1", "r1")).toBe(r1Addr);
      const sdir = await st("dir");
      expect(sdir.directory?.relay ?? null).toBeNull(); // the directory relays nothing
      expect(sdir.directory?.relayHosts).toEqual({ offering: 1, pairs: 1 });
      const dtext = await execCmd("node", [MINTUN, "status", "--socket", d.dir!.socket]);
      expect(dtext.stdout).toMatch(/relay hosts: 1 offering, 1 pairs handed out/);
      expect(sdir.events.relayHostPairs).toBeGreaterThanOrEqual(1);
      expect((await st("a1")).events.viaNotices).toBeGreaterThanOrEqual(1);

      // what r1 sees while a marker file crosses, both ways
      const marker = Buffer.from("MINTUN-PLAINTEXT-MARKER-".repeat(4));
      fs.writeFileSync(path.join(www, "m"), Buffer.concat(Array.from({ length: 64 }, () => marker)));
      const pcap = path.join(pki.dir, "relay-host.pcap");
      const cap = await startCapture(net.host("r1").ns, "eth0", pcap);
      const c1 = await curlTimed(a, "http://b1.mesh:8080/m", { maxTimeS: 10 });
      const c2 = await curlTimed(b, "http://a1.mesh:8080/m", { maxTimeS: 10 });
      await cap.stop();
      expect(c1.code, c1.stderr).toBe(200);
      expect(c2.code, c2.stderr).toBe(200);
      expect(fs.statSync(pcap).size).toBeGreaterThan(2 * 64 * marker.length);
      expect(captureContains(pcap, marker.subarray(0, 24))).toBe(false);
      for (const ip of [O4.a1!, O4.b1!]) {
        expect(captureContains(pcap, Buffer.from(ip.split(".").map(Number))), `inner ${ip}`).toBe(false);
      }
      const s1 = await st("r1");
      const hosts = s1.directory?.relay?.hosts ?? [];
      expect(hosts.map((h) => h.name).sort()).toEqual(["a1", "b1"]);
      expect(hosts.every((h) => h.packets > 0 && h.bytes > 0)).toBe(true);
      const text = await execCmd("node", [MINTUN, "status", "--socket", d.r1!.socket]);
      expect(text.stdout).toMatch(new RegExp(`relay: 1 pairs, limit ${RATE} B/s per host`));
      const metrics = (await net.host("r1").ns.execOk("curl", ["-sS", "http://127.0.0.1:9477/metrics"]))
        .stdout;
      expect(metrics).toMatch(/mintun_relay_bytes_total\{host="a1"\} [1-9]/);

      // the attacker (x1, public side): a real relayed datagram from the capture, replayed from
      // its own address; a forged one with the observed token; one with a guessed token
      const tokenHex = ea.slice("relay:host/".length);
      const relayed = readUdp(pcap).find(
        (r) => r.dport === 7000 && r.payload.subarray(0, 8).toString("hex") === tokenHex,
      );
      expect(relayed, "a relayed datagram in the capture").toBeDefined();
      const forged = Buffer.alloc(16 + 80, 0x41);
      Buffer.from(tokenHex, "hex").copy(forged, 0);
      forged.fill(0, 8, 16);
      forged[8] = 10;
      const guessed = Buffer.from(forged);
      guessed.fill(0x5a, 0, 8);
      const [r0, b0] = [await st("r1"), await st("b1")];
      const sum = (s: Status, ks: string[]) => ks.reduce((n, k) => n + (s.drops[k] ?? 0), 0);
      const deliveryDrops = ["auth", "unknownTid", "replay", "malformed", "natRelayUnknown", "relayNotOurs"];
      const x = net.host("x1").ns;
      await x.execOk("python3", [
        "-c",
        SENDER,
        "5",
        net.host("r1").addr4,
        "7000",
        relayed!.payload.toString("hex"),
        forged.toString("hex"),
        guessed.toString("hex"),
      ]);
      const r2 = await waitFor(
        async () => {
          const s = await st("r1");
          return (s.drops.relaySource ?? 0) - (r0.drops.relaySource ?? 0) >= 10 &&
            (s.drops.natRelayUnknown ?? 0) - (r0.drops.natRelayUnknown ?? 0) >= 5
            ? s
            : null;
        },
        { timeoutMs: 5000, what: "the forged datagrams counted at r1" },
      );
      expect((r2.drops.relaySource ?? 0) - (r0.drops.relaySource ?? 0)).toBe(10); // observed token, wrong source
      expect((r2.drops.natRelayUnknown ?? 0) - (r0.drops.natRelayUnknown ?? 0)).toBe(5); // guessed token
      expect(sum(await st("b1"), deliveryDrops)).toBe(sum(b0, deliveryDrops)); // nothing reached b1
      const c3 = await curlTimed(a, "http://b1.mesh:8080/f", { maxTimeS: 10 });
      expect(c3.code, c3.stderr).toBe(200); // and the pair still works
    }, 120_000);

    it("r1's per-host byte bucket limits what one host sends through it (counted drops)", async () => {
      const a = net.host("a1").ns;
      const before = (await st("r1")).directory!.relay!.hosts.find((h) => h.name === "b1")!;
      const t0 = Date.now();
      // b1 sends 4 MiB to a1 through r1: far beyond 400 kB burst + 200 kB/s for 4 s
      const c = await curlTimed(a, "http://b1.mesh:8080/big", { maxTimeS: 4 });
      const secs = (Date.now() - t0) / 1000;
      const s = await st("r1");
      const after = s.directory!.relay!.hosts.find((h) => h.name === "b1")!;
      const sent = after.bytes - before.bytes;
      console.log(
        `relay host bucket: curl exit ${c.exitCode} after ${c.bytes} B; b1 sent ${sent} B through r1 in ${secs.toFixed(1)} s ` +
          `(limit ${RATE} B/s, burst ${BURST} B), ${after.dropped - before.dropped} datagrams refused`,
      );
      // 4 MiB cannot cross in 4 s at 200 kB/s: curl times out (28) part-way
      expect(c.exitCode).toBe(28);
      expect(c.bytes).toBeLessThan(4 * 1024 * 1024);
      expect(after.dropped - before.dropped).toBeGreaterThan(0);
      expect(s.drops.relayRateLimited).toBeGreaterThan(0);
      expect(sent).toBeLessThanOrEqual(BURST + RATE * (secs + 1));
      expect(sent).toBeGreaterThan(RATE); // but it was not cut off
    }, 60_000);
  },
);
