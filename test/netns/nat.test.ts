/**
 * A client behind a real NAT (nftables masquerade in a router namespace): the
 * tunnel is created through it, the server reaches the client back through
 * the mapping, and when the NAT rebinds (its conntrack table flushed, so the
 * client's next packet gets a new public port) the server follows the
 * authenticated packets to the new port.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns, pingStats, sleep, waitFor } from "./lib.js";
import { makeHost, makePki, startDaemon, waitRecords, type RunningDaemon } from "./mintun.js";

describe.skipIf(process.getuid?.() !== 0)("through a NAT (nftables masquerade)", () => {
  const ns: Record<string, Netns> = {};
  let work: string;
  const d: Record<string, RunningDaemon> = {};

  beforeAll(async () => {
    for (const n of ["a", "r", "b"]) ns[n] = await Netns.create(`nat${n}`);
    // a (192.168.7.2) -- r (192.168.7.1 | 10.201.9.1) -- b (10.201.9.2)
    await ns.a!.ip("link", "add", "eth0", "type", "veth", "peer", "name", "lan", "netns", ns.r!.name);
    await ns.b!.ip("link", "add", "eth0", "type", "veth", "peer", "name", "wan", "netns", ns.r!.name);
    await ns.a!.ip("addr", "add", "192.168.7.2/24", "dev", "eth0");
    await ns.r!.ip("addr", "add", "192.168.7.1/24", "dev", "lan");
    await ns.r!.ip("addr", "add", "10.201.9.1/24", "dev", "wan");
    await ns.b!.ip("addr", "add", "10.201.9.2/24", "dev", "eth0");
    for (const [n, devs] of [
      ["a", ["eth0"]],
      ["r", ["lan", "wan"]],
      ["b", ["eth0"]],
    ] as const)
      for (const dev of devs) await ns[n]!.ip("link", "set", dev, "up");
    await ns.a!.ip("route", "add", "default", "via", "192.168.7.1");
    await ns.r!.sysctl("net.ipv4.ip_forward", "1");
    const rules = [
      "add table ip nat",
      "add chain ip nat post { type nat hook postrouting priority 100 ; }",
      'add rule ip nat post oifname "wan" masquerade random',
    ];
    for (const r of rules) await ns.r!.execOk("nft", r.split(" "));
    const pki = makePki();
    work = pki.dir;
    d.b = await startDaemon(
      work,
      {
        host: makeHost(pki, "b", "10.77.0.2", null),
        ns: ns.b!,
        caFile: pki.caFile,
        listen: "0.0.0.0:7000",
        peers: [],
      },
      false,
    );
    d.a = await startDaemon(
      work,
      {
        host: makeHost(pki, "a", "10.77.0.1", null),
        ns: ns.a!,
        caFile: pki.caFile,
        listen: "0.0.0.0:7000",
        peers: [{ name: "b", endpoint: "10.201.9.2:7000" }],
        extra: "tunnel:\n  keepaliveSec: 2\n  idleTimeoutSec: 30\n",
      },
      false,
    );
    await waitRecords(d.a);
  }, 60_000);

  afterAll(async () => {
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    for (const n of Object.values(ns)) await n.destroy().catch(() => undefined);
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("creates the tunnel through the NAT, keeps the mapping, and follows a rebinding", async () => {
    expect((await pingStats(ns.a!, "10.77.0.2", { count: 3 })).received).toBe(3);
    const s1 = await d.b!.status();
    const ep1 = s1.tunnels[0]!.endpoint;
    expect(ep1.startsWith("10.201.9.1:")).toBe(true); // the NAT's public address, a mapped port
    // the server can reach the client back (the keepalives hold the mapping)
    await sleep(3000);
    expect((await pingStats(ns.b!, "10.77.0.1", { count: 3 })).received).toBe(3);
    // the NAT forgets its mappings: the client's next packet leaves from a new public port
    await ns.r!.execOk("conntrack", ["-F"]);
    await ns.r!.execOk("nft", ["flush", "ruleset"]);
    for (const r of [
      "add table ip nat",
      "add chain ip nat post { type nat hook postrouting priority 100 ; }",
      'add rule ip nat post oifname "wan" meta l4proto udp masquerade to :40000-40100',
      'add rule ip nat post oifname "wan" masquerade',
    ])
      await ns.r!.execOk("nft", r.split(" "));
    const r2 = await pingStats(ns.a!, "10.77.0.2", { count: 5 });
    const s2 = await waitFor(
      async () => {
        const s = await d.b!.status();
        return s.tunnels[0]!.endpoint !== ep1 ? s : null;
      },
      { timeoutMs: 5000, what: "b follows the rebinding" },
    );
    const ep2 = s2.tunnels[0]!.endpoint;
    console.log(`NAT: tunnel endpoint at b ${ep1} -> ${ep2} after rebinding; roams ${s2.tunnels[0]!.roams}`);
    expect(r2.received).toBeGreaterThanOrEqual(4);
    expect(Number(ep2.split(":")[1])).toBeGreaterThanOrEqual(40000);
    expect(s2.tunnels[0]!.roams).toBeGreaterThanOrEqual(1);
    expect((await pingStats(ns.b!, "10.77.0.1", { count: 3 })).received).toBe(3);
  });
});
