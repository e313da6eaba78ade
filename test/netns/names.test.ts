/**
 * Names for people, end to end: real daemons in namespaces answer DNS for
 * `NAME.mesh.` on their overlay address; the client namespace's resolv.conf
 * (/etc/netns/NS/resolv.conf, bind-mounted by `ip netns exec`) names that
 * address, so an unmodified curl and glibc's getent resolve overlay names.
 * c-ares (Node's dns.Resolver) checks the exact answer codes; `mintun resolve`
 * asks the daemon over its API.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createLan,
  curlTimed,
  execCmd,
  iperf3,
  pingStats,
  captureContains,
  startCapture,
  startHttpServer,
  waitFor,
  type Topology,
} from "./lib.js";
import { makeHost, makePki, startDaemon, waitRecords, MINTUN, type RunningDaemon } from "./mintun.js";

const O4 = { web: "10.77.0.1", cl: "10.77.0.2" };
const O6 = { web: "fd77::1", cl: "fd77::2" };

/** A c-ares query from inside the namespace: {addrs} or {err: "ENOTFOUND" | "EREFUSED" | ...}. */
const CARES = `
const { Resolver } = require("node:dns").promises;
const [server, type, name] = process.argv.slice(1);
const r = new Resolver({ timeout: 1000, tries: 1 });
r.setServers([server]);
const t0 = Date.now();
r.resolve(name, type).then(
  (a) => console.log(JSON.stringify({ addrs: a, ms: Date.now() - t0 })),
  (e) => console.log(JSON.stringify({ err: e.code, ms: Date.now() - t0 })),
);`;

/** Random datagrams at the DNS port, then nothing: what a broken or hostile client sends. */
const GARBAGE = `
const dgram = require("node:dgram");
const [server, n] = process.argv.slice(1);
const s = dgram.createSocket("udp4");
let left = Number(n);
const next = () => {
  if (left-- <= 0) return s.close();
  const b = require("node:crypto").randomBytes(1 + Math.floor(Math.random() * 300));
  b[2] &= 0x7f; // a query, not a response: reaches the decoder
  s.send(b, 53, server, next);
};
next();`;

describe.skipIf(process.getuid?.() !== 0)("names: DNS and mintun resolve (netns, real daemons)", () => {
  let topo: Topology;
  let work: string;
  let www: string;
  const daemons: Record<string, RunningDaemon> = {};
  const etcDirs: string[] = [];
  const MARKER = "MINTUN-NAMES-" + Math.random().toString(36).slice(2);

  beforeAll(async () => {
    topo = await createLan({ hosts: ["web", "cl"] });
    const pki = makePki();
    work = pki.dir;
    for (const h of ["web", "cl"] as const) {
      const other = h === "web" ? "cl" : "web";
      daemons[h] = await startDaemon(
        work,
        {
          host: makeHost(pki, h, O4[h], O6[h]),
          ns: topo.host(h).ns,
          caFile: pki.caFile,
          listen: "0.0.0.0:7000",
          peers: [{ name: other, endpoint: `${topo.host(other).addr4}:7000` }],
          extra: "dns:\n  listen: overlay\n  domain: mesh.\nmetrics:\n  listen: 127.0.0.1:9477\n",
        },
        false,
      );
    }
    for (const d of Object.values(daemons)) await waitRecords(d);
    // the client namespace's resolver is its own daemon (an unmodified app sees only resolv.conf)
    const etc = path.join("/etc/netns", topo.host("cl").ns.name);
    fs.mkdirSync(etc, { recursive: true });
    etcDirs.push(etc);
    process.once("exit", () => fs.rmSync(etc, { recursive: true, force: true })); // also after a crash
    fs.writeFileSync(path.join(etc, "resolv.conf"), `nameserver ${O4.cl}\noptions timeout:1 attempts:2\n`);
    www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.writeFileSync(path.join(www, "index.html"), `<html>${MARKER}</html>\n`);
    await startHttpServer(topo.host("web").ns, www, 8080);
  }, 60_000);

  afterAll(async () => {
    for (const d of Object.values(daemons)) await d.stop().catch(() => undefined);
    await topo?.cleanup();
    for (const d of etcDirs) fs.rmSync(d, { recursive: true, force: true });
    if (www) fs.rmSync(www, { recursive: true, force: true });
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  const cl = () => topo.host("cl").ns;
  const cares = async (server: string, type: string, name: string) => {
    const r = await cl().execOk("node", ["-e", CARES, server, type, name], { timeoutMs: 10_000 });
    return JSON.parse(r.stdout) as { addrs?: string[]; err?: string; ms: number };
  };

  it("an unmodified curl reaches a host by name (v4 and v6)", async () => {
    const r4 = await curlTimed(cl(), "http://web.mesh:8080/index.html", { maxTimeS: 10 });
    expect(r4.stderr).toBe("");
    expect(r4.code).toBe(200);
    const r6 = await cl().exec("curl", ["-6", "-sS", "--max-time", "10", "http://web.mesh:8080/index.html"]);
    expect(r6.stderr).toBe("");
    expect(r6.stdout).toContain(MARKER);
    // and through the tunnel: the server saw the client's overlay addresses
    const st = await daemons.web!.status();
    expect(st.tunnels.some((t) => t.peer === "cl" && t.rxPackets > 0)).toBe(true);
    console.log(`curl http://web.mesh:8080/ ${r4.totalMs.toFixed(1)} ms (name lookup included)`);
  });

  it("getent (glibc) shows the overlay addresses and names them back; an unknown name fails fast", async () => {
    const v4 = await cl().execOk("getent", ["ahostsv4", "web.mesh"]);
    expect(v4.stdout.split(/\s+/)[0]).toBe(O4.web);
    const v6 = await cl().execOk("getent", ["ahostsv6", "web.mesh"]);
    expect(v6.stdout.split(/\s+/)[0]).toBe(O6.web);
    const self = await cl().execOk("getent", ["ahostsv4", "cl.mesh"]);
    expect(self.stdout.split(/\s+/)[0]).toBe(O4.cl);
    // reverse (PTR): glibc asks in-addr.arpa / ip6.arpa
    const ptr4 = await cl().execOk("getent", ["hosts", O4.web]);
    expect(ptr4.stdout.trim().split(/\s+/)).toEqual([O4.web, "web.mesh"]);
    const ptr6 = await cl().execOk("getent", ["hosts", O6.web]);
    expect(ptr6.stdout.trim().split(/\s+/)).toEqual([O6.web, "web.mesh"]);
    expect((await cl().exec("getent", ["hosts", "10.77.0.99"])).code).toBe(2); // overlay, no host
    const t0 = Date.now();
    const nx = await cl().exec("getent", ["hosts", "nosuchhost.mesh"]);
    const ms = Date.now() - t0;
    expect(nx.code).toBe(2); // "key not found"
    expect(ms).toBeLessThan(1000); // an answer (NXDOMAIN), not a timeout (timeout:1 attempts:2)
    console.log(`getent for an unknown name: exit 2 after ${ms} ms`);
  });

  it("answers over TCP too (glibc with options use-vc)", async () => {
    const conf = path.join(etcDirs[0]!, "resolv.conf");
    const before = fs.readFileSync(conf, "utf8");
    // rewritten in place: `ip netns exec` bind-mounts this file at every exec
    fs.writeFileSync(conf, `nameserver ${O4.cl}\noptions use-vc timeout:1 attempts:1\n`);
    const cap = await startCapture(cl(), "lo", path.join(work, "dns-tcp.pcap"), "tcp port 53");
    try {
      const v4 = await cl().execOk("getent", ["ahostsv4", "web.mesh"]);
      expect(v4.stdout.split(/\s+/)[0]).toBe(O4.web);
      expect((await cl().exec("getent", ["hosts", "nosuchhost.mesh"])).code).toBe(2);
    } finally {
      await cap.stop();
      fs.writeFileSync(conf, before);
    }
    // the question went over TCP (and was answered there: the capture holds both directions)
    expect(captureContains(cap.file, Buffer.from("\x03web\x04mesh\x00", "latin1"))).toBe(true);
    expect(captureContains(cap.file, Buffer.from(O4.web.split(".").map(Number)))).toBe(true);
  });

  it("answers with exact codes: NXDOMAIN, REFUSED outside the domain, A/AAAA over the overlay", async () => {
    const before = (await daemons.cl!.status()).names!.dns.counters;
    const nx = await cares(O4.cl, "A", "nosuchhost.mesh");
    expect(nx.err).toBe("ENOTFOUND"); // c-ares: NXDOMAIN
    const out = await cares(O4.cl, "A", "example.com");
    expect(out.err).toBe("EREFUSED");
    const rev = await cares(O4.cl, "PTR", "1.0.77.10.in-addr.arpa");
    expect(rev.addrs).toEqual(["web.mesh"]);
    const notOverlay = await cares(O4.cl, "PTR", "1.2.0.192.in-addr.arpa");
    expect(notOverlay.err).toBe("EREFUSED");
    const a = await cares(O4.cl, "A", "WEB.Mesh");
    expect(a.addrs).toEqual([O4.web]);
    // the peer's DNS answers over the tunnel too (web's daemon, on web's overlay address)
    const aaaa = await cares(O4.web, "AAAA", "cl.mesh");
    expect(aaaa.addrs).toEqual([O6.cl]);
    const after = (await daemons.cl!.status()).names!.dns.counters;
    expect(after.nxdomain! - before.nxdomain!).toBeGreaterThanOrEqual(1);
    expect(after.refused! - before.refused!).toBeGreaterThanOrEqual(1);
  });

  it("drops garbage without crashing and keeps answering", async () => {
    const before = (await daemons.cl!.status()).names!.dns.counters;
    await cl().execOk("node", ["-e", GARBAGE, O4.cl, "300"], { timeoutMs: 20_000 });
    // the next query is answered within c-ares's 1 s timeout (no retry): before the
    // decoder stopped allocating for header counts that cannot fit (dns.ts countsFit),
    // the 300 datagrams kept the daemon busy for over a second and this query timed out
    const a = await cares(O4.cl, "A", "web.mesh");
    expect(a.addrs).toEqual([O4.web]);
    const after = (await daemons.cl!.status()).names!.dns.counters;
    console.log(
      `after 300 garbage datagrams: answer in ${a.ms} ms, malformed +${after.malformed! - before.malformed!}`,
    );
    // most random datagrams do not decode; the rest get FORMERR/NOTIMP/REFUSED/NXDOMAIN answers
    expect(after.malformed! - before.malformed!).toBeGreaterThan(100);
    expect(daemons.cl!.proc.running).toBe(true);
    // and Prometheus sees the same counters
    const m = (await cl().execOk("curl", ["-sS", "http://127.0.0.1:9477/metrics"])).stdout;
    const dropped = Number(/^mintun_dns_dropped_total\{reason="malformed"\} (\d+)$/m.exec(m)?.[1]);
    expect(dropped).toBe(after.malformed);
    expect(m).toMatch(/^mintun_dns_responses_total\{rcode="noerror"\} [1-9]\d*$/m);
    expect(m).toMatch(/^mintun_name_lookups_total\{result="peer"\} [1-9]\d*$/m);
  });

  it("mintun resolve prints the verified record; unknown names exit 1", async () => {
    const sock = daemons.cl!.socket;
    const ok = await execCmd("node", [MINTUN, "resolve", "web", "--socket", sock]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`ip4: +${O4.web.replace(/\./g, "\\.")}`));
    expect(ok.stdout).toMatch(/ip6: +fd77::1/);
    expect(ok.stdout).toMatch(/key: +[0-9a-f]{16}/);
    const js = await execCmd("node", [MINTUN, "resolve", "web.mesh.", "--json", "--socket", sock]);
    expect(js.code).toBe(0);
    const a = JSON.parse(js.stdout) as { name: string; ip4: string; expiresAt: number; source: string };
    expect(a).toMatchObject({ name: "web", ip4: O4.web, source: "peer" });
    expect(a.expiresAt).toBeGreaterThan(Date.now());
    const nx = await execCmd("node", [MINTUN, "resolve", "nosuchhost", "--socket", sock]);
    expect(nx.code).toBe(1);
    expect(nx.stderr).toContain("nosuchhost: no such host");
    const st = await execCmd("node", [MINTUN, "status", "--socket", sock]);
    expect(st.stdout).toMatch(/^dns: mesh\. on 10\.77\.0\.2:53 \[fd77::2\]:53 .*nxdomain=\d+/m);
    const down = await execCmd("node", [MINTUN, "resolve", "web", "--socket", path.join(work, "none.sock")]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("mintund is not running");
  });
});

describe.skipIf(process.getuid?.() !== 0)("names through the directory (netns, real daemons)", () => {
  let topo: Topology;
  let work: string;
  let www: string;
  const daemons: Record<string, RunningDaemon> = {};
  const etcDirs: string[] = [];
  const D4 = { dir: "10.77.0.100", web: "10.77.0.1", cl: "10.77.0.2", gw: "10.77.0.3", db: "10.77.0.4" };

  beforeAll(async () => {
    topo = await createLan({ hosts: ["dir", "web", "cl", "gw", "db"] });
    const pki = makePki();
    work = pki.dir;
    const host = (h: keyof typeof D4, subnets: string[] = []) =>
      makeHost(pki, h, D4[h], `fd77::${D4[h].split(".")[3]}`, subnets);
    daemons.dir = await startDaemon(
      work,
      {
        host: host("dir"),
        ns: topo.host("dir").ns,
        caFile: pki.caFile,
        listen: "0.0.0.0:7000",
        peers: [],
        extra: "directory:\n  serve: true\n  store: file\n",
      },
      false,
    );
    // hosts whose configs name only the directory
    for (const h of ["web", "gw", "cl", "db"] as const)
      daemons[h] = await startDaemon(
        work,
        {
          host: host(h, h === "gw" ? ["192.168.88.0/24"] : []),
          ns: topo.host(h).ns,
          caFile: pki.caFile,
          listen: "0.0.0.0:7000",
          peers: [],
          extra:
            `directories:\n  - endpoint: "${topo.host("dir").addr4}:7000"\n` + "dns:\n  listen: overlay\n",
        },
        false,
      );
    for (const h of ["web", "gw", "cl", "db"])
      await waitFor(
        async () =>
          (await daemons[h]!.status()).directory?.client?.directories.every((d) => d.registered) ?? false,
        { timeoutMs: 10_000, what: `${h} registered` },
      );
    // every host resolves overlay names with its own daemon
    for (const h of ["web", "gw", "cl"] as const) {
      const etc = path.join("/etc/netns", topo.host(h).ns.name);
      fs.mkdirSync(etc, { recursive: true });
      etcDirs.push(etc);
      process.once("exit", () => fs.rmSync(etc, { recursive: true, force: true })); // also after a crash
      fs.writeFileSync(path.join(etc, "resolv.conf"), `nameserver ${D4[h]}\noptions timeout:3 attempts:1\n`);
    }
    www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.writeFileSync(path.join(www, "index.html"), "by name through the directory\n");
    for (const h of ["web", "gw", "cl"]) await startHttpServer(topo.host(h).ns, www, 8080);
  }, 90_000);

  afterAll(async () => {
    for (const d of Object.values(daemons)) await d.stop().catch(() => undefined);
    await topo?.cleanup();
    for (const d of etcDirs) fs.rmSync(d, { recursive: true, force: true });
    if (www) fs.rmSync(www, { recursive: true, force: true });
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  const cl = () => topo.host("cl").ns;

  it("curl by name reaches a host cl has never heard of (name -> directory -> tunnel)", async () => {
    expect((await daemons.cl!.status()).peers.some((p) => p.name === "web")).toBe(false);
    const r = await curlTimed(cl(), "http://web.mesh:8080/index.html", { maxTimeS: 10 });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(200);
    const st = await daemons.cl!.status();
    expect(st.names!.lookups.directoryLookups).toBeGreaterThanOrEqual(1);
    console.log(`first curl by name through the directory: ${r.totalMs.toFixed(1)} ms`);
    const again = await curlTimed(cl(), "http://web.mesh:8080/index.html", { maxTimeS: 10 });
    expect(again.code).toBe(200);
    console.log(`second (cached): ${again.totalMs.toFixed(1)} ms`);
  });

  it("reverse lookups of overlay addresses no local certificate holds ask the directory", async () => {
    expect((await daemons.cl!.status()).peers.some((p) => p.name === "db")).toBe(false);
    const r = await cl().execOk("getent", ["hosts", D4.db]);
    expect(r.stdout.trim().split(/\s+/)).toEqual([D4.db, "db.mesh"]);
    expect((await cl().exec("getent", ["hosts", "10.77.0.99"])).code).toBe(2); // the directory: nobody
  });

  it("mintun resolve shows the directory's verified record, with a gateway's subnets", async () => {
    const sock = daemons.cl!.socket;
    const r = await execCmd("node", [MINTUN, "resolve", "gw", "--json", "--socket", sock]);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toMatchObject({
      name: "gw",
      ip4: D4.gw,
      subnets: ["192.168.88.0/24"],
      source: "directory",
    });
    // looking the gateway up made it a known peer: its certified subnet is now routed into cl's TUN
    await waitFor(
      async () => (await daemons.cl!.status()).names!.subnetRoutes.installed.includes("192.168.88.0/24"),
      { timeoutMs: 5000, what: "cl's route to gw's subnet" },
    );
    expect(await topo.host("cl").ns.ip("-4", "route", "show", "192.168.88.0/24")).toMatch(/dev mt0/);
    const nx = await execCmd("node", [MINTUN, "resolve", "nobody", "--socket", sock]);
    expect(nx.code).toBe(1);
    expect(nx.stderr).toContain("no such host");
    const g = await cl().exec("getent", ["hosts", "nobody.mesh"]);
    expect(g.code).toBe(2);
  });

  it("ping, curl and iperf3 between all pairs, by name (configs name only the directory)", async () => {
    const hosts = ["web", "gw", "cl"] as const;
    for (const x of hosts)
      for (const y of hosts) {
        if (x === y) continue;
        const p = await pingStats(topo.host(x).ns, `${y}.mesh`, { count: 3, interval: 0.05 });
        expect(p.received, `ping ${x} -> ${y}.mesh`).toBeGreaterThanOrEqual(2);
        const c = await curlTimed(topo.host(x).ns, `http://${y}.mesh:8080/index.html`, { maxTimeS: 10 });
        expect(c.code, `curl ${x} -> ${y}.mesh`).toBe(200);
      }
    const rates: string[] = [];
    for (const [x, y] of [
      ["web", "gw"],
      ["gw", "cl"],
      ["cl", "web"],
    ] as const) {
      const r = await iperf3(topo.host(x).ns, { ns: topo.host(y).ns, addr: `${y}.mesh` }, 1);
      expect(r.mbps).toBeGreaterThan(1);
      rates.push(`${x}->${y}.mesh ${r.mbps.toFixed(0)} Mbit/s`);
    }
    console.log(`by name through the directory: ${rates.join(", ")}`);
  });

  it("SERVFAIL (not NXDOMAIN) when no directory answers; known names still resolve", async () => {
    await daemons.dir!.stop();
    const r = await cl().execOk("node", ["-e", CARES_SLOW, D4.cl, "A", "neverasked.mesh"], {
      timeoutMs: 20_000,
    });
    expect(JSON.parse(r.stdout)).toMatchObject({ err: "ESERVFAIL" });
    const cached = await cl().execOk("node", ["-e", CARES_SLOW, D4.cl, "A", "web.mesh"], {
      timeoutMs: 20_000,
    });
    expect(JSON.parse(cached.stdout)).toMatchObject({ addrs: [D4.web] });
    const res = await execCmd("node", [MINTUN, "resolve", "neverasked2", "--socket", daemons.cl!.socket]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/directory/);
    expect((await daemons.cl!.status()).names!.dns.counters.servfail).toBeGreaterThanOrEqual(1);
  });
});

/** Like CARES with a longer timeout: the daemon asks the directory (and waits for it) before answering. */
const CARES_SLOW = CARES.replace("timeout: 1000", "timeout: 8000");
