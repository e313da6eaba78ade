/**
 * What the directory costs in round trips, with 25 ms added each way by the
 * userspace delay router between three sides (directory | a | b): the first
 * packet to a never-seen host waits one lookup round trip to the directory,
 * then creates the tunnel with data on its first packet (about 2 RTT in all);
 * later contacts use the cached record and the tunnel (about 1 RTT).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRouted,
  curlTimed,
  firstPingMs,
  pingStats,
  roundTrips,
  startHttpServer,
  type Topology,
} from "./lib.js";
import {
  directoriesYaml,
  makeHost,
  makePki,
  startBare,
  waitRegistered,
  type RunningDaemon,
} from "./mintun.js";

const DELAY_MS = 25;
const RTT = 2 * DELAY_MS;

describe.skipIf(process.getuid?.() !== 0)("directory latency with 25 ms each way (netns)", () => {
  let topo: Topology;
  let work: string;
  let www: string;
  const d: Record<string, RunningDaemon> = {};

  beforeAll(async () => {
    topo = await createRouted({
      sides: [{ hosts: ["dir"] }, { hosts: ["a"] }, { hosts: ["b"] }],
      delayMs: DELAY_MS,
    });
    const pki = makePki();
    work = pki.dir;
    const files = {
      dir: makeHost(pki, "dir", "10.77.0.100", null),
      a: makeHost(pki, "a", "10.77.0.1", null),
      b: makeHost(pki, "b", "10.77.0.2", null),
    };
    d.dir = await startBare(work, pki, files.dir, topo.host("dir").ns, "directory:\n  serve: true\n");
    for (const h of ["a", "b"] as const) {
      d[h] = await startBare(work, pki, files[h], topo.host(h).ns, directoriesYaml(topo.host("dir").addr4));
      await waitRegistered(d[h]);
    }
    www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.writeFileSync(path.join(www, "f"), Buffer.alloc(10240, 7));
    await startHttpServer(topo.host("b").ns, www, 8080);
  }, 90_000);

  afterAll(async () => {
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await topo?.cleanup();
    if (www) fs.rmSync(www, { recursive: true, force: true });
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("first contact = one lookup RTT + 0-RTT creation; later contacts = no extra RTT", async () => {
    const before = await d.a!.status();
    expect(before.peers.some((p) => p.name === "b")).toBe(false); // never seen
    const bare = await pingStats(topo.host("a").ns, topo.host("b").addr4, { count: 5, interval: 0.05 });
    // round trips counted on the wire (a to the directory and to b) until the answer
    // reaches a's TUN: load makes each trip slower (a first contact took 2 RTT + 50 ms on a
    // loaded 2-core CI machine, over the old bound of 2.9 RTT) but cannot add or remove one
    const rounds = <T>(answer: string, fn: () => Promise<T>) =>
      roundTrips(
        topo.host("a").ns,
        {
          dev: topo.host("a").dev,
          addr: topo.host("a").addr4,
          peers: [topo.host("dir").addr4, topo.host("b").addr4],
          tun: "mt0",
          answerFrom: "10.77.0.2",
          answer,
          minRttMs: RTT,
          dir: work,
        },
        fn,
      );
    const ping1 = () => firstPingMs(topo.host("a").ns, "10.77.0.2", { intervalMs: 1000 });
    const { value: first, rounds: firstRounds, trace: firstTrace } = await rounds("icmp", ping1);
    const { value: later, rounds: laterRounds, trace: laterTrace } = await rounds("icmp", ping1);
    const warm = await pingStats(topo.host("a").ns, "10.77.0.2", { count: 10, interval: 0.05 });
    const c = await rounds("tcp", () => curlTimed(topo.host("a").ns, "http://10.77.0.2:8080/f"));
    const curl = c.value;
    const sa = await d.a!.status();
    console.log(
      `directory latency (RTT ${RTT} ms, underlay ping ${bare.avgMs.toFixed(1)} ms): ` +
        `first contact ${first.ms.toFixed(1)} ms = ${(first.ms / RTT).toFixed(2)} RTT (seq ${first.seq}, ${firstRounds} round trips), ` +
        `later contact ${later.ms.toFixed(1)} ms = ${(later.ms / RTT).toFixed(2)} RTT (${laterRounds}), ` +
        `warm ping ${warm.avgMs.toFixed(1)} ms, curl (TCP+HTTP, 2 RTT) ${curl.totalMs.toFixed(1)} ms; ` +
        `lookups ${sa.events.dirLookups}, 0-RTT packets ${sa.events.zeroRttPackets}`,
    );
    expect(first.seq).toBe(1); // the first packet waited for the lookup and was not lost
    expect(first.ms).toBeGreaterThan(1.5 * RTT); // a lookup round trip really happened
    // one lookup + the 0-RTT creation = 2 round trips; asking b for its record first would make 3
    expect(firstRounds, firstTrace.join("\n")).toBe(2);
    expect(sa.events.dirLookups).toBe(1);
    expect(later.seq).toBe(1);
    expect(laterRounds, laterTrace.join("\n")).toBe(1);
    expect(curl.code).toBe(200);
    // the SYN-ACK after one round trip on the cached record and tunnel
    expect(c.rounds, c.trace.join("\n")).toBe(1);
    expect(curl.totalMs).toBeGreaterThan(2 * RTT - 1); // TCP handshake + request
    expect(sa.events.dirLookups).toBe(1);
    expect(sa.events.zeroRttPackets).toBeGreaterThanOrEqual(1);
  });
});
