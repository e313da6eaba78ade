/**
 * Site-to-site, end to end: host A (another site) reaches an unmodified HTTP
 * server on LAN host L, which runs no mintun, through gateway G whose host
 * certificate lists L's subnets (192.168.77.0/24, fd77:77::/64).
 *
 *   site 1 (10.201.1.0/24)          router            site 2 (10.201.2.0/24)
 *   a (10.77.0.1) ─┐                                ┌─ g (10.77.0.2) ── lan0 192.168.77.1
 *                  ├── sw0 ── r0 [delay router] r1 ─┤                        │
 *   r (10.77.0.3) ─┘                                                  l 192.168.77.10
 *                                                                 (python http.server, no mintun)
 *
 * A learns the subnets from G's verified certificate and routes them into its
 * TUN; G forwards (and, in the second part, masquerades). R's certificate lists
 * no subnet: unmodified, its own daemon refuses to send from the subnet; patched
 * to send anyway (test/tools/rogue-gateway.mjs), A drops what it sends and counts it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createLan,
  createRouted,
  curlTimed,
  execCmd,
  startHttpServer,
  waitFor,
  type Netns,
  type Proc,
  type Topology,
} from "./lib.js";
import {
  makeHost,
  makePki,
  MINTUN,
  startDaemon,
  waitRecords,
  writeConfig,
  type DaemonSpec,
  type HostFiles,
  type RunningDaemon,
} from "./mintun.js";

const ROGUE = fileURLToPath(new URL("../tools/rogue-gateway.mjs", import.meta.url));
const O4 = { a: "10.77.0.1", g: "10.77.0.2", r: "10.77.0.3" };
const O6 = { a: "fd77::1", g: "fd77::2", r: "fd77::3" };
const SUB4 = "192.168.77.0/24";
const SUB6 = "fd77:77::/64";
const L4 = "192.168.77.10";
const L6 = "fd77:77::10";
const G_LAN4 = "192.168.77.1";
const G_LAN6 = "fd77:77::1";
/** masquerade towards any interface but the TUN (lanInterface left out) */
const GW_MASQ_ALL = "gateway:\n  forward: true\n  masquerade: true\n";

describe.skipIf(process.getuid?.() !== 0)(
  "site-to-site gateway (netns, real daemons, LAN host without mintun)",
  () => {
    let topo: Topology;
    let work: string;
    let www: string;
    let l: Netns;
    let lServer: Proc;
    const files: Record<string, HostFiles> = {};
    const daemons: Record<string, RunningDaemon> = {};
    let caFile: string;
    const MARKER = "MINTUN-SITE-" + Math.random().toString(36).slice(2);

    const spec = (h: "a" | "g" | "r", extra = ""): DaemonSpec => ({
      host: files[h]!,
      ns: topo.host(h).ns,
      caFile,
      listen: "0.0.0.0:7000",
      peers: (["a", "g", "r"] as const)
        .filter((x) => x !== h)
        .map((x) => ({ name: x, endpoint: `${topo.host(x).addr4}:7000` })),
      extra,
    });
    const GW_FORWARD = "gateway:\n  forward: true\n";
    const GW_MASQ = "gateway:\n  forward: true\n  masquerade: true\n  lanInterface: lan0\n";

    const drops = async (h: string) => (await daemons[h]!.status()).drops;
    /** curl from a given source address; the HTTP status (0: no answer) */
    const curlFrom = async (ns: Netns, src: string, url: string, maxTimeS: number) => {
      const r = await ns.exec(
        "curl",
        [
          "-sS",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "--interface",
          src,
          "--max-time",
          String(maxTimeS),
          url,
        ],
        {
          timeoutMs: (maxTimeS + 5) * 1000,
        },
      );
      return Number(r.stdout.trim() || 0);
    };
    const sysctl = async (ns: Netns, f: string) => (await ns.execOk("cat", [f])).stdout.trim();
    /** client addresses python's http.server logged, in order */
    const clients = () =>
      lServer
        .readLog()
        .split("\n")
        .map((x) => /^(\S+) - - \[/.exec(x)?.[1])
        .filter((x): x is string => x !== undefined);

    beforeAll(async () => {
      // two sites: a and r on one LAN, g on another, joined by a router (the lib's delay router)
      topo = await createRouted({ sides: [{ hosts: ["a", "r"] }, { hosts: ["g"] }] });
      // the gateway's LAN: a veth g:lan0 <-> l:eth0, and L with no route to the overlay (yet)
      l = await topo.addNs("l");
      const g = topo.host("g").ns;
      await g.ip("link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", l.name);
      await g.sysctl("net.ipv6.conf.lan0.accept_dad", 0);
      await l.sysctl("net.ipv6.conf.eth0.accept_dad", 0);
      await g.ip("addr", "add", `${G_LAN4}/24`, "dev", "lan0");
      await g.ip("-6", "addr", "add", `${G_LAN6}/64`, "dev", "lan0", "nodad");
      await l.ip("addr", "add", `${L4}/24`, "dev", "eth0");
      await l.ip("-6", "addr", "add", `${L6}/64`, "dev", "eth0", "nodad");
      await g.ip("link", "set", "lan0", "up");
      await l.ip("link", "set", "eth0", "up");

      const pki = makePki();
      work = pki.dir;
      caFile = pki.caFile;
      files.a = makeHost(pki, "a", O4.a, O6.a);
      files.g = makeHost(pki, "g", O4.g, O6.g, [SUB4, SUB6]);
      files.r = makeHost(pki, "r", O4.r, O6.r); // lists no subnet
      daemons.g = await startDaemon(work, spec("g", GW_FORWARD), false);
      daemons.a = await startDaemon(work, spec("a"), false);
      daemons.r = await startDaemon(work, spec("r"), false);
      for (const d of Object.values(daemons)) await waitRecords(d);

      www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
      fs.writeFileSync(path.join(www, "index.html"), `<html>${MARKER}</html>\n`);
      lServer = await startHttpServer(l, www, 8080);
      await startHttpServer(topo.host("a").ns, www, 8081);
    }, 90_000);

    afterAll(async () => {
      for (const d of Object.values(daemons)) await d.stop().catch(() => undefined);
      await topo?.cleanup();
      if (www) fs.rmSync(www, { recursive: true, force: true });
      if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
    });

    it("the gateway turned forwarding on; A routed G's certified subnets into its TUN", async () => {
      const g = topo.host("g").ns;
      expect(await sysctl(g, "/proc/sys/net/ipv4/ip_forward")).toBe("1");
      expect(await sysctl(g, "/proc/sys/net/ipv6/conf/all/forwarding")).toBe("1");
      const st = await waitFor(
        async () => {
          const s = await daemons.a!.status();
          return s.names!.subnetRoutes.installed.length === 2 ? s : null;
        },
        { timeoutMs: 5000, what: "a's routes to g's subnets" },
      );
      expect(st.names!.subnetRoutes.installed).toEqual([SUB4, SUB6].sort());
      const routes = await topo.host("a").ns.ip("-4", "route", "show", SUB4);
      expect(routes).toMatch(/192\.168\.77\.0\/24 dev mt0/);
      const txt = await execCmd("node", [MINTUN, "status", "--socket", daemons.a!.socket]);
      expect(txt.stdout).toContain(`peer subnets routed: ${[SUB4, SUB6].sort().join(" ")}`);
      const gtxt = await execCmd("node", [MINTUN, "status", "--socket", daemons.g!.socket]);
      expect(gtxt.stdout).toContain("gateway: forwarding");
      // r's certificate lists no subnet: nothing routes to r but its own addresses
      expect(st.peers.find((p) => p.name === "r")!.subnets).toEqual([]);
    });

    it("with a return route on L: curl from A reaches L by its LAN address (v4 and v6), L sees A's overlay address", async () => {
      await l.ip("route", "add", "10.77.0.0/16", "via", G_LAN4);
      await l.ip("-6", "route", "add", "fd77::/64", "via", G_LAN6);
      try {
        const r4 = await curlTimed(topo.host("a").ns, `http://${L4}:8080/index.html`, { maxTimeS: 10 });
        expect(r4.stderr).toBe("");
        expect(r4.code).toBe(200);
        const r6 = await curlTimed(topo.host("a").ns, `http://[${L6}]:8080/index.html`, { maxTimeS: 10 });
        expect(r6.code).toBe(200);
        const seen = clients();
        expect(seen.slice(-2)).toEqual([`::ffff:${O4.a}`, O6.a]);
        console.log(`a -> l through g: v4 ${r4.totalMs.toFixed(1)} ms, v6 ${r6.totalMs.toFixed(1)} ms`);
      } finally {
        await l.ip("route", "del", "10.77.0.0/16", "via", G_LAN4);
        await l.ip("-6", "route", "del", "fd77::/64", "via", G_LAN6);
      }
    });

    it("without a return route and without masquerade, L's replies have nowhere to go", async () => {
      const r = await curlTimed(topo.host("a").ns, `http://${L4}:8080/index.html`, { maxTimeS: 2 });
      expect(r.code).toBe(0);
    });

    it("with masquerade: A reaches L, which sees the gateway's LAN address; stop removes the rule and restores forwarding", async () => {
      await daemons.g!.stop();
      const g = topo.host("g").ns;
      expect(await sysctl(g, "/proc/sys/net/ipv4/ip_forward")).toBe("0"); // restored
      daemons.g = await startDaemon(work, spec("g", GW_MASQ), false);
      await waitRecords(daemons.g);
      const tables = await g.execOk("nft", ["list", "table", "inet", "mintun_mt0"]);
      expect(tables.stdout).toMatch(/iifname "mt0" oifname "lan0" masquerade/);
      // a's tunnel to the old g is stale: the first attempts re-create it
      const r = await waitFor(
        async () => {
          const c = await curlTimed(topo.host("a").ns, `http://${L4}:8080/index.html`, { maxTimeS: 3 });
          return c.code === 200 ? c : null;
        },
        { timeoutMs: 20_000, intervalMs: 200, what: "curl a -> l with masquerade" },
      );
      expect(r.code).toBe(200);
      const r6 = await curlTimed(topo.host("a").ns, `http://[${L6}]:8080/index.html`, { maxTimeS: 10 });
      expect(r6.code).toBe(200);
      expect(clients().slice(-2)).toEqual([`::ffff:${G_LAN4}`, G_LAN6]);
      await daemons.g!.stop();
      const left = await g.exec("nft", ["list", "table", "inet", "mintun_mt0"]);
      expect(left.code).not.toBe(0); // table removed at shutdown
      expect(await sysctl(g, "/proc/sys/net/ipv4/ip_forward")).toBe("0");
      daemons.g = await startDaemon(work, spec("g", GW_FORWARD), false);
    });

    it("a host whose certificate lists no subnet cannot announce it: its own daemon refuses, a patched one is dropped by A", async () => {
      const rns = topo.host("r").ns;
      // control: r reaches a's server from its overlay address
      const ok = await curlTimed(rns, `http://${O4.a}:8081/index.html`, { maxTimeS: 10 });
      expect(ok.code).toBe(200);
      // r pretends to be in the subnet: an address of it on r's TUN, used as the source
      await rns.ip("addr", "add", "192.168.77.99/32", "dev", "mt0");
      const rBefore = (await drops("r")).tunSrc!;
      expect(await curlFrom(rns, "192.168.77.99", `http://${O4.a}:8081/index.html`, 2)).toBe(0);
      expect((await drops("r")).tunSrc!).toBeGreaterThan(rBefore); // refused before sealing
      // the modified daemon sends from the subnet anyway; a checks the certificate and drops
      await daemons.r!.stop();
      const { file } = writeConfig(work, spec("r"));
      const rogue = rns.spawn("node", [ROGUE, file, SUB4], { logFile: path.join(work, "rogue.log") });
      await rogue.waitForLog(/rogue ready/, 15_000);
      await rns.ip("addr", "replace", "192.168.77.99/32", "dev", "mt0");
      const aBefore = (await drops("a")).innerSrc!;
      expect(await curlFrom(rns, "192.168.77.99", `http://${O4.a}:8081/index.html`, 3)).toBe(0);
      const aAfter = (await drops("a")).innerSrc!;
      expect(aAfter).toBeGreaterThan(aBefore);
      // and the same rogue, from its certified address, is served: the drop was about the source
      expect(await curlFrom(rns, O4.r, `http://${O4.a}:8081/index.html`, 10)).toBe(200);
      console.log(`forged source: a dropped ${aAfter - aBefore} inner packets (innerSrc)`);
      await rogue.stop();
    });
  },
);

describe.skipIf(process.getuid?.() !== 0)("site-to-site through the directory (netns)", () => {
  let topo: Topology;
  let work: string;
  let www: string;
  let l: Netns;
  const daemons: Record<string, RunningDaemon> = {};

  beforeAll(async () => {
    topo = await createLan({ hosts: ["dir", "a", "g"] });
    l = await topo.addNs("l");
    const g = topo.host("g").ns;
    await g.ip("link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", l.name);
    await g.ip("addr", "add", `${G_LAN4}/24`, "dev", "lan0");
    await l.ip("addr", "add", `${L4}/24`, "dev", "eth0");
    await g.ip("link", "set", "lan0", "up");
    await l.ip("link", "set", "eth0", "up");
    const pki = makePki();
    work = pki.dir;
    const dirEp = `directories:\n  - endpoint: "${topo.host("dir").addr4}:7000"\n`;
    const base = (h: string, host: HostFiles, extra: string, tunRoutes?: string[]): DaemonSpec => ({
      host,
      ns: topo.host(h).ns,
      caFile: pki.caFile,
      listen: "0.0.0.0:7000",
      peers: [],
      extra,
      tunRoutes,
    });
    daemons.dir = await startDaemon(
      work,
      base("dir", makeHost(pki, "dir", "10.77.0.100", null), "directory:\n  serve: true\n"),
      false,
    );
    daemons.g = await startDaemon(
      work,
      base("g", makeHost(pki, "g", O4.g, null, [SUB4]), dirEp + GW_MASQ_ALL),
      false,
    );
    // a names only the directory, and routes the remote site's subnet into its TUN
    daemons.a = await startDaemon(
      work,
      base("a", makeHost(pki, "a", O4.a, null), dirEp, ["10.77.0.0/16", SUB4]),
      false,
    );
    for (const h of ["g", "a"])
      await waitFor(
        async () =>
          (await daemons[h]!.status()).directory?.client?.directories.every((d) => d.registered) ?? false,
        { timeoutMs: 10_000, what: `${h} registered` },
      );
    www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.writeFileSync(path.join(www, "index.html"), "behind the gateway\n");
    await startHttpServer(l, www, 8080);
  }, 90_000);

  afterAll(async () => {
    for (const d of Object.values(daemons)) await d.stop().catch(() => undefined);
    await topo?.cleanup();
    if (www) fs.rmSync(www, { recursive: true, force: true });
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  it("a finds the gateway by the LAN address it wants (the directory's subnet answer) and reaches L", async () => {
    expect((await daemons.a!.status()).peers.some((p) => p.name === "g")).toBe(false);
    const r = await curlTimed(topo.host("a").ns, `http://${L4}:8080/index.html`, { maxTimeS: 10 });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(200);
    const st = await daemons.a!.status();
    expect(st.peers.find((p) => p.name === "g")?.subnets).toEqual([SUB4]);
    // g's certificate lists only an IPv4 subnet: IPv6 forwarding (which would make it ignore
    // router advertisements) stays off
    const g = topo.host("g").ns;
    expect((await g.execOk("cat", ["/proc/sys/net/ipv4/ip_forward"])).stdout.trim()).toBe("1");
    expect((await g.execOk("cat", ["/proc/sys/net/ipv6/conf/all/forwarding"])).stdout.trim()).toBe("0");
    console.log(`first curl a -> l via a directory lookup of ${L4}: ${r.totalMs.toFixed(1)} ms`);
  });
});
