// The netns library itself: a 3-host LAN, real ping/curl/iperf3/tcpdump, and cleanup that
// leaves no namespace and no process behind.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  captureContains,
  createLan,
  curlTimed,
  firstPingMs,
  iperf3,
  listNamespaces,
  pingStats,
  startCapture,
  startHttpServer,
  waitFor,
  type Topology,
} from "./lib.js";

const HOSTS = ["a", "b", "c"];

describe("netns lib: LAN of three hosts", () => {
  let lan: Topology;
  let work: string;

  beforeAll(async () => {
    lan = await createLan({ hosts: HOSTS, subnet4: "10.201.0.0/24", subnet6: "fd01::/64" });
    work = mkdtempSync(join(tmpdir(), "mt-lib-"));
  });

  afterAll(async () => {
    await lan?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it("assigns .1 .2 .3 and ::1 ::2 ::3 in separate namespaces", () => {
    expect(HOSTS.map((h) => lan.host(h).addr4)).toEqual(["10.201.0.1", "10.201.0.2", "10.201.0.3"]);
    expect(HOSTS.map((h) => lan.host(h).addr6)).toEqual(["fd01::1", "fd01::2", "fd01::3"]);
    expect(new Set(HOSTS.map((h) => lan.host(h).ns.name)).size).toBe(3);
  });

  it("pings between all pairs, v4 and v6", async () => {
    for (const x of HOSTS) {
      for (const y of HOSTS) {
        if (x === y) continue;
        for (const addr of [lan.host(y).addr4, lan.host(y).addr6]) {
          const s = await pingStats(lan.host(x).ns, addr, { count: 3, interval: 0.01 });
          expect(s.received, `${x} -> ${addr}`).toBe(3);
          expect(s.avgMs).toBeLessThan(20);
        }
      }
    }
    const first = await firstPingMs(lan.host("a").ns, lan.host("c").addr4);
    expect(first.seq).toBe(1);
    expect(first.ms).toBeLessThan(50);
  });

  it("does not reach an address nobody has", async () => {
    const s = await pingStats(lan.host("a").ns, "10.201.0.99", { count: 2, interval: 0.1, waitS: 1 });
    expect(s.received).toBe(0);
    expect(s.lossPct).toBe(100);
    expect(Number.isNaN(s.avgMs)).toBe(true);
  });

  it("serves a file over HTTP (curl, v4 and v6)", async () => {
    writeFileSync(join(work, "f"), Buffer.alloc(10_240, 1));
    const srv = await startHttpServer(lan.host("b").ns, work, 8080);
    try {
      const r = await curlTimed(lan.host("a").ns, `http://${lan.host("b").addr4}:8080/f`);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.code).toBe(200);
      expect(r.bytes).toBe(10_240);
      expect(r.totalMs).toBeGreaterThan(0);
      expect(r.connectMs).toBeLessThanOrEqual(r.totalMs);
      const r6 = await curlTimed(lan.host("c").ns, `http://[${lan.host("b").addr6}]:8080/f`);
      expect(r6.code).toBe(200);
      const missing = await curlTimed(lan.host("a").ns, `http://${lan.host("b").addr4}:8080/nope`);
      expect(missing.code).toBe(404);
      const refused = await curlTimed(lan.host("a").ns, `http://${lan.host("c").addr4}:8080/f`, {
        maxTimeS: 3,
      });
      expect(refused.code).toBe(0);
      expect(refused.exitCode).not.toBe(0);
    } finally {
      await srv.stop();
    }
    expect(srv.running).toBe(false);
  });

  it("runs iperf3 for 2 s on the bare LAN", async () => {
    const r = await iperf3(lan.host("a").ns, { ns: lan.host("c").ns, addr: lan.host("c").addr4 }, 2);
    expect(r.mbps).toBeGreaterThan(100);
    expect(r.bytes).toBeGreaterThan(0);
    expect(r.retrans).toBeGreaterThanOrEqual(0);
    expect(lan.tracked).toEqual([]); // the one-off server is gone
  });

  it("captures UDP with tcpdump and finds a marker in the pcap", async () => {
    const file = join(work, "cap.pcap");
    const cap = await startCapture(lan.host("b").ns, "eth0", file);
    const marker = Buffer.from(`mintun-marker-${process.pid}`);
    const send = `import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(${JSON.stringify(marker.toString())}.encode(), ("${lan.host("b").addr4}", 9999))`;
    await lan.host("a").ns.execOk("python3", ["-c", send]);
    await waitFor(() => captureContains(file, marker), { timeoutMs: 3000, what: "marker in pcap" });
    await cap.stop();
    expect(captureContains(file, marker)).toBe(true);
    expect(captureContains(file, Buffer.from("not-sent-anywhere"))).toBe(false);
  });

  it("errors carry the stderr of the failing ip command", async () => {
    await expect(lan.host("a").ns.ip("link", "set", "nonexistent0", "up")).rejects.toThrow(
      /nonexistent0|Cannot find device/,
    );
  });

  it("cleanup stops every tracked process and deletes every namespace", async () => {
    const names = lan.namespaces.map((n) => n.name);
    expect(names.length).toBe(4); // switch + 3 hosts
    const sleeper = lan.host("a").ns.spawn("sleep", ["60"]);
    const stubborn = lan.host("b").ns.spawn("bash", ["-c", "trap '' TERM; sleep 60 & wait; sleep 60"]);
    expect(lan.tracked.length).toBe(2);
    await lan.cleanup();
    expect(sleeper.running).toBe(false);
    expect(stubborn.running).toBe(false);
    expect(lan.tracked).toEqual([]);
    const left = await listNamespaces();
    expect(left.filter((n) => names.includes(n))).toEqual([]);
    for (const p of [sleeper.pid, stubborn.pid]) expect(() => process.kill(p, 0)).toThrow();
  });
});
