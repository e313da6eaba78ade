// The userspace delay router (test/tools/delay-router.py) between two namespaces:
// added RTT, IPv4 + IPv6, full-MTU packets, TCP, loss, run-time changes.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRoutedPair,
  curlTimed,
  listNamespaces,
  pingStats,
  startHttpServer,
  type Host,
  type Topology,
} from "./lib.js";

describe("delay router", () => {
  let topo: Topology;
  let a: Host;
  let b: Host;
  let www: string;

  beforeAll(async () => {
    topo = await createRoutedPair({ delayMs: 25 });
    a = topo.host("a");
    b = topo.host("b");
    www = mkdtempSync(join(tmpdir(), "mt-www-"));
    writeFileSync(join(www, "f"), Buffer.alloc(200_000, 7));
  });

  afterAll(async () => {
    const names = topo ? topo.namespaces.map((n) => n.name) : [];
    await topo?.cleanup();
    rmSync(www, { recursive: true, force: true });
    const left = await listNamespaces();
    expect(left.filter((n) => names.includes(n))).toEqual([]);
  });

  it("is a router: hosts are on different subnets and reach each other through it", async () => {
    expect(a.addr4).toBe("10.201.1.1");
    expect(b.addr4).toBe("10.201.2.1");
    expect(a.gw4).toBe("10.201.1.254");
    const route = await a.ns.ip("route", "get", b.addr4);
    expect(route).toContain("via 10.201.1.254");
    // TTL: forwarded by the kernel on the way in (link -> TUN) and out (TUN -> link)
    const r = await a.ns.execOk("ping", ["-n", "-c", "1", "-W", "2", b.addr4]);
    expect(Number(/ttl=(\d+)/.exec(r.stdout)?.[1])).toBeLessThan(64);
  });

  it("adds 25 ms each way (IPv4)", async () => {
    const s = await pingStats(a.ns, b.addr4, { count: 10, interval: 0.05 });
    expect(s.received).toBe(10);
    expect(Math.min(...s.rtts)).toBeGreaterThanOrEqual(50);
    expect(s.avgMs).toBeLessThan(80);
  });

  it("adds 25 ms each way (IPv6)", async () => {
    const s = await pingStats(a.ns, b.addr6, { count: 10, interval: 0.05 });
    expect(s.received).toBe(10);
    expect(Math.min(...s.rtts)).toBeGreaterThanOrEqual(50);
    expect(s.avgMs).toBeLessThan(80);
  });

  it("forwards full 1500-byte packets unfragmented, v4 and v6", async () => {
    const s4 = await pingStats(a.ns, b.addr4, {
      count: 3,
      interval: 0.05,
      size: 1500 - 28,
      dontFragment: true,
    });
    expect(s4.received).toBe(3);
    const s6 = await pingStats(a.ns, b.addr6, {
      count: 3,
      interval: 0.05,
      size: 1500 - 48,
      dontFragment: true,
    });
    expect(s6.received).toBe(3);
    // one byte more does not fit the links
    const big = await a.ns.exec("ping", ["-n", "-c", "1", "-W", "1", "-M", "do", "-s", "1473", b.addr4]);
    expect(big.code).not.toBe(0);
  });

  it("carries TCP (curl of python3 http.server, v4 and v6)", async () => {
    const srv = await startHttpServer(b.ns, www, 8080);
    try {
      const r4 = await curlTimed(a.ns, `http://${b.addr4}:8080/f`);
      expect(r4.exitCode, r4.stderr).toBe(0);
      expect(r4.code).toBe(200);
      expect(r4.bytes).toBe(200_000);
      expect(r4.connectMs).toBeGreaterThanOrEqual(50); // SYN / SYN-ACK cross the router
      const r6 = await curlTimed(a.ns, `http://[${b.addr6}]:8080/f`);
      expect(r6.exitCode, r6.stderr).toBe(0);
      expect(r6.code).toBe(200);
      expect(r6.bytes).toBe(200_000);
    } finally {
      await srv.stop();
    }
  });

  it("changes delay at run time; 0 ms adds almost nothing", async () => {
    await topo.delayRouter!.set({ delayMs: 0 });
    const s = await pingStats(a.ns, b.addr4, { count: 10, interval: 0.02 });
    expect(s.received).toBe(10);
    expect(s.avgMs).toBeLessThan(5);
    const s6 = await pingStats(a.ns, b.addr6, { count: 10, interval: 0.02 });
    expect(s6.received).toBe(10);
    expect(s6.avgMs).toBeLessThan(5);
  });

  it("drops packets with 20% loss", async () => {
    await topo.delayRouter!.set({ delayMs: 0, lossPct: 20 });
    // each echo crosses the router twice: P(reply) = 0.64; 100 pings all answered ~ 1e-19
    const s = await pingStats(a.ns, b.addr4, { count: 100, interval: 0.01, waitS: 1 });
    expect(s.received).toBeLessThan(100);
    expect(s.received).toBeGreaterThan(30);
    await topo.delayRouter!.set({ lossPct: 0 });
    const ok = await pingStats(a.ns, b.addr4, { count: 20, interval: 0.01 });
    expect(ok.received).toBe(20);
  });

  it("cleanup removes the namespaces and stops the router", async () => {
    const dr = topo.delayRouter!;
    const names = topo.namespaces.map((n) => n.name);
    expect((await listNamespaces()).filter((n) => names.includes(n)).sort()).toEqual([...names].sort());
    await topo.cleanup();
    expect(dr.proc.running).toBe(false);
    expect(dr.stats().rx).toBeGreaterThan(0);
    expect((await listNamespaces()).filter((n) => names.includes(n))).toEqual([]);
    expect(topo.tracked).toEqual([]);
  });
});
