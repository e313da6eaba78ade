/**
 * The foundation end to end: real mintund daemons in network namespaces, real
 * TUN devices and kernel, real ping / curl / iperf3, a packet capture.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpuHasAes } from "../../src/net/cpu.js";
import {
  createLan,
  curlTimed,
  iperf3,
  pingStats,
  startCapture,
  captureContains,
  startHttpServer,
  type Topology,
  execCmd,
  sleep,
  waitFor,
} from "./lib.js";
import {
  makeHost,
  makePki,
  startDaemon,
  waitRecords,
  MINTUN,
  type HostFiles,
  type RunningDaemon,
} from "./mintun.js";

const HOSTS = ["a", "b", "c"] as const;
const FORGE = fileURLToPath(new URL("../tools/forge-create.mjs", import.meta.url));
const O4: Record<string, string> = { a: "10.77.0.1", b: "10.77.0.2", c: "10.77.0.3" };
const O6: Record<string, string> = { a: "fd77::1", b: "fd77::2", c: "fd77::3" };

describe.skipIf(process.getuid?.() !== 0)("overlay of three hosts (netns, real daemons)", () => {
  let topo: Topology;
  let work: string;
  const daemons: Record<string, RunningDaemon> = {};
  const files: Record<string, HostFiles> = {};
  let www: string;
  const MARKER = "MINTUN-PLAINTEXT-MARKER-" + Math.random().toString(36).slice(2);

  beforeAll(async () => {
    topo = await createLan({ hosts: [...HOSTS] });
    const pki = makePki();
    work = pki.dir;
    for (const h of HOSTS) files[h] = makeHost(pki, h, O4[h]!, O6[h]!);
    // b first (the server side), then the others; every host lists the two others
    for (const h of ["b", "a", "c"]) {
      daemons[h] = await startDaemon(
        work,
        {
          host: files[h]!,
          ns: topo.host(h).ns,
          caFile: pki.caFile,
          listen: "0.0.0.0:7000",
          peers: HOSTS.filter((x) => x !== h).map((x) => ({
            name: x,
            endpoint: `${topo.host(x).addr4}:7000`,
          })),
          // rekey often so that the suite sees one (default 120 s)
          extra: "tunnel:\n  rekeySec: 10\n",
          logLevel: process.env.MINTUN_LOG ?? "info",
        },
        false,
      );
    }
    for (const h of HOSTS) await waitRecords(daemons[h]!);
    www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.writeFileSync(path.join(www, "index.html"), `<html>${MARKER}</html>\n`);
    fs.writeFileSync(path.join(www, "big.bin"), Buffer.alloc(2 << 20, MARKER));
    await startHttpServer(topo.host("b").ns, www, 8080);
  }, 90_000);

  afterAll(async () => {
    for (const d of Object.values(daemons)) await d.stop().catch(() => undefined);
    await topo?.cleanup();
    if (www) fs.rmSync(www, { recursive: true, force: true });
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  it("pings every pair over IPv4 and IPv6", async () => {
    for (const from of HOSTS)
      for (const to of HOSTS) {
        if (from === to) continue;
        const r4 = await pingStats(topo.host(from).ns, O4[to]!, { count: 3, interval: 0.05 });
        const r6 = await pingStats(topo.host(from).ns, O6[to]!, { count: 3, interval: 0.05 });
        expect(r4.received, `${from} -> ${to} v4`).toBe(3);
        expect(r6.received, `${from} -> ${to} v6`).toBe(3);
      }
  });

  it("serves HTTP through the overlay (curl, v4 and v6) and the capture shows no plaintext", async () => {
    const cap = await startCapture(topo.host("b").ns, "eth0", path.join(work, "b.pcap"), "udp port 7000");
    const r = await curlTimed(topo.host("a").ns, `http://${O4.b}:8080/index.html`);
    const r6 = await curlTimed(topo.host("c").ns, `http://[${O6.b}]:8080/big.bin`);
    await cap.stop();
    expect(r.code).toBe(200);
    expect(r6.code).toBe(200);
    expect(r6.bytes).toBe(2 << 20);
    const pcap = fs.readFileSync(cap.file);
    expect(pcap.length).toBeGreaterThan(1000); // the capture saw the tunnel traffic
    expect(captureContains(cap.file, Buffer.from(MARKER))).toBe(false);
    console.log(`curl a->b ${r.totalMs.toFixed(1)} ms; 2 MiB c->b over v6 ${r6.totalMs.toFixed(1)} ms`);
  });

  it("the same capture method does see the marker on the bare underlay (control)", async () => {
    const cap = await startCapture(topo.host("a").ns, "eth0", path.join(work, "bare.pcap"), "tcp port 8080");
    const r = await curlTimed(topo.host("a").ns, `http://${topo.host("b").addr4}:8080/index.html`);
    await cap.stop();
    expect(r.code).toBe(200);
    expect(captureContains(cap.file, Buffer.from(MARKER))).toBe(true);
  });

  it("carries iperf3 TCP for a few seconds", async () => {
    const r = await iperf3(topo.host("a").ns, { ns: topo.host("b").ns, addr: O4.b! }, 3);
    console.log(`iperf3 a->b over mintun: ${r.mbps.toFixed(0)} Mbit/s, ${r.retrans} retransmits`);
    expect(r.mbps).toBeGreaterThan(0);
  });

  it("mintun status shows established tunnels with traffic", async () => {
    const r = await execCmd("node", [MINTUN, "status", "--socket", daemons.a!.socket]);
    expect(r.code, r.stderr).toBe(0);
    console.log(r.stdout);
    const s = await daemons.a!.status();
    const tb = s.tunnels.find((t) => t.peer === "b");
    expect(tb?.state).toBe("established");
    expect(tb!.txBytes).toBeGreaterThan(1000);
    expect(r.stdout).toMatch(/b\s+\S+\s+established/);
    // the data suite (docs/PROTOCOL.md 4b): AES-256-GCM on both ends where the CPU has AES
    const want = cpuHasAes() ? "aes-256-gcm" : "chacha20-poly1305";
    expect(tb!.aead).toBe(want);
    const ta = (await daemons.b!.status()).tunnels.find((t) => t.peer === "a");
    expect(ta!.aead).toBe(want);
  });

  it("counts and drops garbage datagrams, and keeps working", async () => {
    const before = await daemons.b!.status();
    const script = `
      const d = require("node:dgram").createSocket("udp4");
      const crypto = require("node:crypto");
      let n = 0;
      const send = () => { if (n++ >= 300) return d.close();
        const len = [3, 20, 68, 300, 1400][n % 5];
        d.send(crypto.randomBytes(len), 7000, "${topo.host("b").addr4}", send); };
      send();`;
    const r = await topo.host("c").ns.exec("node", ["-e", script]);
    expect(r.code, r.stderr).toBe(0);
    const after = await daemons.b!.status();
    const sum = (s: typeof before) => Object.values(s.drops).reduce((x, y) => x + y, 0);
    expect(sum(after) - sum(before)).toBeGreaterThanOrEqual(290);
    expect((await pingStats(topo.host("c").ns, O4.b!, { count: 2 })).received).toBe(2);
  });

  it("refuses, at the first packet, a host whose certificate another CA signed", async () => {
    const evil = makePki("evil-ca");
    const before = await daemons.b!.status();
    const r = await topo
      .host("c")
      .ns.exec("node", [
        FORGE,
        path.join(work, "test-ca.crt"),
        evil.caFile,
        path.join(evil.dir, "evil-ca.key"),
        "b",
        topo.host("b").addr4,
        "7000",
        "10.77.0.3",
        "10.77.0.2",
      ]);
    fs.rmSync(evil.dir, { recursive: true, force: true });
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout.trim()) as {
      recordLearned: number;
      createSent: number;
      tunnelState: string;
    };
    // the forger got b's record and sent a real CREATE; b refused it and allocated nothing
    expect(res.recordLearned).toBe(1);
    expect(res.createSent).toBeGreaterThanOrEqual(1);
    expect(res.tunnelState).toBe("creating");
    const after = await daemons.b!.status();
    expect(after.drops.createHello - before.drops.createHello).toBeGreaterThanOrEqual(1);
    expect(after.events.tunnelsAccepted).toBe(before.events.tunnelsAccepted);
    expect(after.peers.map((p) => p.name)).not.toContain("forged");
  });

  it("rekeys on schedule (every 10 s here) without losing packets", async () => {
    // keep a ping stream running until a's tunnel to b has rekeyed at least once
    const ping = topo.host("a").ns.spawn("ping", ["-n", "-i", "0.2", "-c", "80", O4.b!]);
    const st = await waitFor(
      async () => {
        const s = await daemons.a!.status();
        const t = s.tunnels.find((x) => x.peer === "b" && x.state === "established");
        return t && t.rekeys >= 1 ? s : null;
      },
      { timeoutMs: 15_000, intervalMs: 200, what: "a rekey of a->b" },
    );
    await sleep(1000);
    await ping.stop();
    const log = ping.readLog();
    const sent = (log.match(/icmp_seq=/g) ?? []).length;
    const t = st.tunnels.find((x) => x.peer === "b")!;
    console.log(`rekeyed: epoch ${t.epoch}, ${t.rekeys} rekeys; ${sent} pings answered during the run`);
    expect(t.epoch).toBeGreaterThanOrEqual(1);
    expect(t.aead).toBe(cpuHasAes() ? "aes-256-gcm" : "chacha20-poly1305"); // rekeys keep the suite
    // every echo request sent got its reply: compare the highest seq with the count answered
    const seqs = [...log.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
    expect(seqs.length).toBe(Math.max(...seqs));
  });

  it("refuses a daemon whose certificate another CA signed, with a clear error", async () => {
    const evil = makePki("evil-ca");
    const e = makeHost(evil, "evil", "10.77.0.9", null);
    const bad = await startDaemon(work, {
      host: e,
      ns: topo.host("c").ns,
      caFile: path.join(work, "test-ca.crt"),
      listen: "0.0.0.0:7009",
      peers: [],
    }).catch((err: Error) => err);
    expect(bad).toBeInstanceOf(Error);
    expect(String((bad as Error).message)).toMatch(/does not verify against/);
    fs.rmSync(evil.dir, { recursive: true, force: true });
  });
});
