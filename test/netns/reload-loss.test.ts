/**
 * A SIGHUP reload must not cost a packet: two daemons, a ping every 20 ms from a to b
 * across several reloads of a (each changing what test/netns/ops.test.ts changes: log
 * level, tunnel.rekeySec, an added peer, a restart-only key), every reply counted; then a
 * new 3-ping right after each of 6 more reloads, as ops.test.ts checks.
 *
 * What ops.test.ts saw ("a ping after SIGHUP lost one reply in 2 of 4 runs", no drop
 * counted) was iputils ping, not the daemon: with -c, once a reply has come ping waits
 * only twice the largest round trip after its last request (-W counts only while no reply
 * came). Right after a reload the daemon is briefly busy (it spawns systemd-notify for
 * RELOADING=1 and READY=1), a reply comes a few ms late, ping has exited, and the kernel
 * counts the reply (IcmpInEchoReps) that ping reports lost. The same happens without any
 * reload to 3-request bursts of a new flow. The second test failed 2 of 6 runs with plain
 * -c; pingStats' waitAll (-w deadline, replies to the first `count` requests) waits.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Status } from "../../src/daemon/status.js";
import { createLan, pingStats, sleep, waitFor, type Topology } from "./lib.js";
import {
  makeHost,
  makePki,
  startDaemon,
  writeConfig,
  type DaemonSpec,
  type RunningDaemon,
} from "./mintun.js";

const O4: Record<string, string> = { a: "10.77.0.1", b: "10.77.0.2" };
const RELOADS = 6;

describe.skipIf(process.getuid?.() !== 0)("reload keeps every packet (netns)", () => {
  let topo: Topology;
  let work: string;
  let specA: DaemonSpec;
  const d: Record<string, RunningDaemon> = {};

  beforeAll(async () => {
    topo = await createLan({ hosts: ["a", "b"] });
    const pki = makePki();
    work = pki.dir;
    const base = (h: string, other: string): DaemonSpec => ({
      host: makeHost(pki, h, O4[h]!, null),
      ns: topo.host(h).ns,
      caFile: pki.caFile,
      listen: "0.0.0.0:7000",
      peers: [{ name: other, endpoint: `${topo.host(other).addr4}:7000` }],
    });
    d.b = await startDaemon(work, base("b", "a"), false);
    // as in ops.test.ts: metrics on, and a notify socket (each reload spawns systemd-notify
    // twice; here nobody listens, so it fails and the daemon goes on)
    specA = {
      ...base("a", "b"),
      extra: "metrics:\n  listen: 127.0.0.1:9477\n",
      env: { ...process.env, NOTIFY_SOCKET: `${work}/no-listener.sock` },
    };
    d.a = await startDaemon(work, specA);
  }, 60_000);

  afterAll(async () => {
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await topo?.cleanup();
  });

  const reloadAndWait = async (): Promise<Status> => {
    const before = (await d.a!.status()).daemon?.reload?.at ?? 0;
    d.a!.proc.signal("SIGHUP");
    return waitFor(
      async () => {
        const s = await d.a!.status();
        return (s.daemon?.reload?.at ?? 0) > before ? s : null;
      },
      { timeoutMs: 10_000, what: "the reload to finish" },
    );
  };

  it(`${RELOADS} reloads under a 20 ms ping: no reply lost`, async () => {
    const ns = topo.host("a").ns;
    // the tunnel up first (its creation is not what is measured)
    const warm = await ns.exec("ping", ["-n", "-c", "3", "-i", "0.05", "-W", "2", O4.b!]);
    expect(warm.code, warm.stdout).toBe(0);
    const logFile = `${work}/reload-ping.log`;
    const ping = ns.spawn("ping", ["-D", "-n", "-i", "0.02", "-W", "2", O4.b!], { logFile });
    try {
      await sleep(1000);
      for (let i = 0; i < RELOADS; i++) {
        writeConfig(work, {
          ...specA,
          logLevel: i % 2 === 0 ? "debug" : "info",
          listen: i % 3 === 2 ? "0.0.0.0:7001" : specA.listen, // restart-only: reported, not applied
          peers: i % 2 === 0 ? [...specA.peers, { name: "c", endpoint: "10.201.0.99:7000" }] : specA.peers,
          extra: `${specA.extra}tunnel:\n  rekeySec: ${i % 2 === 0 ? 5 : 120}\n`,
        });
        const s = await reloadAndWait();
        expect(s.daemon!.reload!.ok, s.daemon!.reload!.error ?? "").toBe(true);
        await sleep(1500);
      }
      await sleep(1000);
    } finally {
      ping.signal("SIGINT");
      await waitFor(() => !ping.running || null, { timeoutMs: 5000, what: "ping to exit" });
    }
    const out = fs.readFileSync(logFile, "utf8");
    const m = out.match(/(\d+) packets transmitted, (\d+) received/);
    expect(m, out.slice(-500)).not.toBeNull();
    const sent = Number(m![1]);
    const seqs = new Set([...out.matchAll(/icmp_seq=(\d+)/g)].map((x) => Number(x[1])));
    const missing: number[] = [];
    for (let q = 1; q < sent; q++) if (!seqs.has(q)) missing.push(q);
    const st = await d.a!.status();
    // the reloads ran with rekeySec 5 for most of the run: rekeys happened during it
    expect(sent).toBeGreaterThan(300);
    expect(st.events.rekeys ?? 0).toBeGreaterThan(0);
    // the last request may still be in flight when ping is stopped: every earlier one answered
    expect({ missing, rekeys: st.events.rekeys ?? 0, drops: st.drops }).toMatchObject({ missing: [] });
  }, 90_000);

  it("a new ping right after each reload: every reply (ops.test.ts's check, repeated)", async () => {
    const ns = topo.host("a").ns;
    const lost: Record<string, unknown>[] = [];
    for (let i = 0; i < RELOADS; i++) {
      writeConfig(work, {
        ...specA,
        logLevel: i % 2 === 0 ? "debug" : "info",
        peers: i % 2 === 0 ? [...specA.peers, { name: "c", endpoint: "10.201.0.99:7000" }] : specA.peers,
        extra: `${specA.extra}tunnel:\n  rekeySec: ${i % 2 === 0 ? 60 : 120}\n`,
      });
      const s = await reloadAndWait();
      expect(s.daemon!.reload!.ok, s.daemon!.reload!.error ?? "").toBe(true);
      const before = { a: await d.a!.status(), b: await d.b!.status() };
      // waitAll: a reply a few ms late (the daemon spawns systemd-notify right after the
      // reload) is a reply; plain `ping -c` would stop listening at twice the fastest RTT
      const p = await pingStats(ns, O4.b!, { count: 3, interval: 0.05, waitAll: true });
      if (p.received !== 3) {
        const after = { a: await d.a!.status(), b: await d.b!.status() };
        const delta = (x: Record<string, number>, y: Record<string, number>) =>
          Object.fromEntries(
            Object.entries(y)
              .filter(([k, v]) => v !== (x[k] ?? 0))
              .map(([k, v]) => [k, v - (x[k] ?? 0)]),
          );
        lost.push({
          reload: i,
          sent: p.sent,
          received: p.received,
          applied: s.daemon!.reload!.applied,
          drops: { a: delta(before.a.drops, after.a.drops), b: delta(before.b.drops, after.b.drops) },
          events: { a: delta(before.a.events, after.a.events), b: delta(before.b.events, after.b.events) },
          devices: { a: after.a.devices, b: after.b.devices },
          tunnels: after.a.tunnels.map((t) => `${t.peer} ${t.state} ${t.session}`),
        });
      }
    }
    expect(lost).toEqual([]);
  }, 90_000);
});
