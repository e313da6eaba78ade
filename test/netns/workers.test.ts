/**
 * The data path over two threads per daemon (dataPath.workers: 2, docs/ARCHITECTURE.md
 * "Many cores"): real daemons in namespaces with a multi-queue TUN and a SO_REUSEPORT group
 * steered by TID; ping, curl and iperf3 -P 4 through it, with a rekey (rekeySec: 5) firing
 * during the iperf3 run.
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
  startHttpServer,
  type Proc,
  type Topology,
} from "./lib.js";
import { MINTUN, makeHost, makePki, startDaemon, waitRecords, type RunningDaemon } from "./mintun.js";
import { cpuHasAes } from "../../src/net/cpu.js";

const O4: Record<string, string> = { a: "10.77.0.1", b: "10.77.0.2" };
const O6: Record<string, string> = { a: "fd77::1", b: "fd77::2" };

interface DataPathStatus {
  workers: number;
  slots: number;
  handled: Record<string, number>;
  threads: { index: number; counters: Record<string, number> }[];
}

async function dataPath(d: RunningDaemon): Promise<DataPathStatus> {
  const st = await d.status();
  return (st.devices as { dataPath: DataPathStatus }).dataPath;
}

function planeSum(s: DataPathStatus, k: string): number {
  return s.threads.reduce((n, t) => n + (t.counters[k] ?? 0), 0);
}

describe.skipIf(process.getuid?.() !== 0)("data path over 2 threads per daemon (netns, real daemons)", () => {
  let topo: Topology;
  let work: string;
  let www: string;
  let http: Proc | undefined;
  const daemons: Record<string, RunningDaemon> = {};

  beforeAll(async () => {
    topo = await createLan({ hosts: ["a", "b"], subnet4: "10.203.0.0/24", subnet6: "fd03::/64" });
    const pki = makePki();
    work = pki.dir;
    for (const h of ["b", "a"]) {
      const other = h === "a" ? "b" : "a";
      daemons[h] = await startDaemon(
        work,
        {
          host: makeHost(pki, h, O4[h]!, O6[h]!),
          ns: topo.host(h).ns,
          caFile: pki.caFile,
          listen: "0.0.0.0:7000",
          peers: [{ name: other, endpoint: `${topo.host(other).addr4}:7000` }],
          // the shortest rekey the config takes, so that one fires during iperf3
          extra: "tunnel:\n  rekeySec: 5\ndataPath:\n  workers: 2\n",
          logLevel: process.env.MINTUN_LOG ?? "info",
        },
        false,
      );
    }
    for (const h of ["a", "b"]) await waitRecords(daemons[h]!);
    www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.writeFileSync(path.join(www, "big.bin"), Buffer.alloc(2 << 20, "workers"));
    http = await startHttpServer(topo.host("b").ns, www, 8080);
  }, 90_000);

  afterAll(async () => {
    await http?.stop().catch(() => undefined);
    for (const d of Object.values(daemons)) await d.stop().catch(() => undefined);
    await topo?.cleanup();
    if (www) fs.rmSync(www, { recursive: true, force: true });
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  it("status shows the data path over 2 threads (one worker with its counters)", async () => {
    for (const h of ["a", "b"]) {
      const s = await dataPath(daemons[h]!);
      expect(s.workers).toBe(2);
      expect(s.threads).toHaveLength(1);
    }
  });

  it("pings over IPv4 and IPv6", async () => {
    const r4 = await pingStats(topo.host("a").ns, O4.b!, { count: 5, interval: 0.05 });
    const r6 = await pingStats(topo.host("a").ns, O6.b!, { count: 5, interval: 0.05 });
    expect(r4.received).toBe(5);
    expect(r6.received).toBe(5);
  });

  it("serves 2 MiB over HTTP (curl)", async () => {
    const r = await curlTimed(topo.host("a").ns, `http://${O4.b}:8080/big.bin`);
    expect(r.code).toBe(200);
    expect(r.bytes).toBe(2 << 20);
  });

  it("carries iperf3 -P 4 both ways while a rekey fires, with the worker threads sealing", async () => {
    const before = await daemons.a!.status();
    const rekeys0 = before.events.rekeys ?? 0;
    const up = await iperf3(topo.host("a").ns, { ns: topo.host("b").ns, addr: O4.b! }, 6, { parallel: 4 });
    const down = await iperf3(topo.host("a").ns, { ns: topo.host("b").ns, addr: O4.b! }, 3, {
      parallel: 4,
      reverse: true,
    });
    const after = await daemons.a!.status();
    const sa = await dataPath(daemons.a!);
    const sb = await dataPath(daemons.b!);
    console.log(
      `iperf3 -P 4 a->b ${up.mbps.toFixed(0)} Mbit/s (${up.retrans} retr), b->a ${down.mbps.toFixed(0)} Mbit/s; ` +
        `rekeys ${rekeys0} -> ${after.events.rekeys}; a worker ${JSON.stringify(sa.threads[0]!.counters)}; ` +
        `b worker ${JSON.stringify(sb.threads[0]!.counters)}; a handled ${JSON.stringify(sa.handled)}`,
    );
    expect(up.mbps).toBeGreaterThan(1);
    expect(down.mbps).toBeGreaterThan(1);
    expect(after.events.rekeys ?? 0).toBeGreaterThan(rekeys0); // the shortened rekey fired during traffic
    // the workers carried part of the traffic (4 flows each way: the TUN queue is picked per flow)
    expect(planeSum(sa, "sealed") + planeSum(sb, "sealed")).toBeGreaterThan(1000);
    for (const s of [sa, sb]) expect(planeSum(s, "auth")).toBe(0);
    // the workers seal with the tunnel's own suite (AES-256-GCM where the CPU has AES): the
    // peers' main threads opened what the workers sealed, with no AEAD failure
    const want = cpuHasAes() ? "aes-256-gcm" : "chacha20-poly1305";
    expect(after.tunnels.find((t) => t.peer === "b")!.aead).toBe(want);
    for (const d of [after, await daemons.b!.status()]) expect(d.drops?.auth ?? 0).toBe(0);
    // traffic after the rekey
    const r = await pingStats(topo.host("b").ns, O4.a!, { count: 3, interval: 0.05 });
    expect(r.received).toBe(3);
    // the text status shows the threads and each worker's counts
    const txt = await execCmd("node", [MINTUN, "status", "--socket", daemons.a!.socket]);
    expect(txt.code, txt.stderr).toBe(0);
    expect(txt.stdout).toMatch(
      /data path: 2 threads; worker 1: sealed [1-9]\d*, opened \d+, handed over \d+/,
    );
  }, 60_000);
});
