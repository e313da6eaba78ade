/**
 * The directory end to end: a directory and three hosts whose configs name only
 * the directory's endpoint (no peers). Hosts find each other by overlay address
 * through the directory; real ping (v4 and v6), curl against a real HTTP server
 * and iperf3 between all pairs. Then the directory is killed with SIGKILL and
 * restarted: its records survive (embedded file store), hosts re-register, and
 * lookups work again.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createLan,
  curlTimed,
  execCmd,
  firstPingMs,
  iperf3,
  pingStats,
  startHttpServer,
  type Topology,
  waitFor,
} from "./lib.js";
import {
  MINTUN,
  makeHost,
  makePki,
  directoriesYaml,
  startBare,
  type HostFiles,
  type Pki,
  type RunningDaemon,
} from "./mintun.js";
import type { Status } from "../../src/daemon/status.js";

const HOSTS = ["a", "b", "c"] as const;
const O4: Record<string, string> = { dir: "10.77.0.100", a: "10.77.0.1", b: "10.77.0.2", c: "10.77.0.3" };
const O6: Record<string, string> = { dir: "fd77::100", a: "fd77::1", b: "fd77::2", c: "fd77::3" };

const registered = (st: Status): boolean =>
  st.directory?.client?.directories.every((d) => d.registered) ?? false;

describe.skipIf(process.getuid?.() !== 0)("directory: hosts that know only the directory (netns)", () => {
  let topo: Topology;
  let pki: Pki;
  let work: string;
  let www: string;
  const daemons: Record<string, RunningDaemon> = {};
  const files: Record<string, HostFiles> = {};
  const etcDirs: string[] = [];

  const startDir = (): Promise<RunningDaemon> =>
    startBare(work, pki, files.dir!, topo.host("dir").ns, "directory:\n  serve: true\n  store: file\n");

  /** A host whose config names only the directory (and serves DNS for overlay names on its overlay address). */
  const startHost = async (h: string): Promise<void> => {
    daemons[h] = await startBare(
      work,
      pki,
      files[h]!,
      topo.host(h).ns,
      directoriesYaml(topo.host("dir").addr4) + "dns:\n  listen: overlay\n  domain: mesh.\n",
    );
    await waitFor(async () => registered(await daemons[h]!.status()), {
      timeoutMs: 10_000,
      what: `${h} registered`,
    });
  };

  beforeAll(async () => {
    topo = await createLan({ hosts: ["dir", ...HOSTS] });
    pki = makePki();
    work = pki.dir;
    for (const h of ["dir", ...HOSTS]) files[h] = makeHost(pki, h, O4[h]!, O6[h]!);
    daemons.dir = await startDir();
    for (const h of HOSTS) await startHost(h);
    // each host's resolver is its own daemon (DNS on its overlay address): unmodified apps use names
    for (const h of HOSTS) {
      const etc = path.join("/etc/netns", topo.host(h).ns.name);
      fs.mkdirSync(etc, { recursive: true });
      etcDirs.push(etc);
      fs.writeFileSync(path.join(etc, "resolv.conf"), `nameserver ${O4[h]}\noptions timeout:1 attempts:2\n`);
    }
    process.once("exit", () => etcDirs.forEach((e) => fs.rmSync(e, { recursive: true, force: true })));
    www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.writeFileSync(path.join(www, "f"), Buffer.alloc(64 * 1024, 7));
    for (const h of HOSTS) await startHttpServer(topo.host(h).ns, www, 8080);
  }, 90_000);

  afterAll(async () => {
    for (const d of Object.values(daemons)) await d.stop().catch(() => undefined);
    await topo?.cleanup();
    for (const e of etcDirs) fs.rmSync(e, { recursive: true, force: true });
    if (www) fs.rmSync(www, { recursive: true, force: true });
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("registers every host with the directory (observed address recorded)", async () => {
    const sd = await daemons.dir!.status();
    expect(sd.directory?.server?.records).toBe(3);
    for (const h of HOSTS) {
      const st = await daemons[h]!.status();
      expect(st.peers.filter((p) => p.configured)).toHaveLength(1); // the directory only
      expect(st.directory?.client?.directories[0]).toMatchObject({
        state: "up",
        registered: true,
        observed: `${topo.host(h).addr4}:7000`,
        name: "dir",
      });
    }
    // by name: a has never heard of c; the daemon asks the directory and verifies the record
    const rs = await execCmd("node", [MINTUN, "resolve", "c", "--json", "--socket", daemons.a!.socket]);
    expect(rs.code, rs.stderr).toBe(0);
    expect(JSON.parse(rs.stdout)).toMatchObject({ name: "c", ip4: O4.c, ip6: O6.c, source: "directory" });
    const none = await execCmd("node", [MINTUN, "resolve", "nosuchhost", "--socket", daemons.a!.socket]);
    expect(none.code).toBe(1);
    const ra = await execCmd("node", [MINTUN, "status", "--socket", daemons.a!.socket]);
    expect(ra.stdout).toMatch(/directories: 1, cached records 1/); // c's
    expect(ra.stdout).toMatch(/\d+\.\d+\.\d+\.\d+:7000 +dir +up +yes +/);
    const rd = await execCmd("node", [MINTUN, "status", "--socket", daemons.dir!.socket]);
    expect(rd.stdout).toMatch(/directory role: store file, 3 records/);
  });

  it("ping, curl and iperf3 work between all pairs by name, unknown hosts resolved through the directory (DNS)", async () => {
    const rates: string[] = [];
    for (const x of HOSTS)
      for (const y of HOSTS) {
        if (x === y) continue;
        const p = await pingStats(topo.host(x).ns, `${y}.mesh`, { count: 2, interval: 0.05 });
        expect(p.received, `ping ${x} -> ${y}.mesh`).toBe(2);
        const c = await curlTimed(topo.host(x).ns, `http://${y}.mesh:8080/f`);
        expect(c.code, `curl ${x} -> ${y}.mesh ${c.stderr}`).toBe(200);
      }
    for (const [x, y] of [
      ["b", "a"],
      ["c", "b"],
    ] as const) {
      const r = await iperf3(topo.host(x).ns, { ns: topo.host(y).ns, addr: `${y}.mesh` }, 1);
      rates.push(`${x}->${y}.mesh ${r.mbps.toFixed(0)} Mbit/s`);
      expect(r.mbps).toBeGreaterThan(1);
    }
    console.log(`directory overlay by name: iperf3 ${rates.join(", ")}`);
    // b had heard of a (a's tunnel to it), not of c: c's name came from the directory
    const sb = await daemons.b!.status();
    expect(sb.names?.lookups.directoryLookups).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it("ping (v4 and v6), curl and iperf3 work between all pairs, found by address", async () => {
    // fresh hosts (empty caches, no peers): every first packet to a peer is a TUN miss looked up by address
    for (const h of HOSTS) await daemons[h]!.stop();
    for (const h of HOSTS) await startHost(h);
    for (const h of HOSTS)
      expect((await daemons[h]!.status()).peers.filter((p) => !p.configured)).toEqual([]);
    for (const x of HOSTS)
      for (const y of HOSTS) {
        if (x === y) continue;
        const p4 = await pingStats(topo.host(x).ns, O4[y]!, { count: 3, interval: 0.05 });
        const p6 = await pingStats(topo.host(x).ns, O6[y]!, { count: 3, interval: 0.05 });
        expect(p4.received, `${x} -> ${y} v4`).toBeGreaterThanOrEqual(2);
        expect(p6.received, `${x} -> ${y} v6`).toBeGreaterThanOrEqual(2);
        const c = await curlTimed(topo.host(x).ns, `http://${O4[y]}:8080/f`);
        expect(c.code, `curl ${x} -> ${y}`).toBe(200);
        expect(c.bytes).toBe(64 * 1024);
      }
    const rates: string[] = [];
    for (const [x, y] of [
      ["a", "b"],
      ["b", "c"],
      ["c", "a"],
    ] as const) {
      const r = await iperf3(topo.host(x).ns, { ns: topo.host(y).ns, addr: O4[y]! }, 1);
      rates.push(`${x}->${y} ${r.mbps.toFixed(0)} Mbit/s`);
      expect(r.mbps).toBeGreaterThan(1);
    }
    console.log(`directory overlay iperf3: ${rates.join(", ")}`);
    const sa = await daemons.a!.status();
    expect(sa.events.dirLookups).toBeGreaterThanOrEqual(2);
    expect(sa.events.dirRecordsLearned).toBeGreaterThanOrEqual(2);
    expect(sa.drops.dirBadRecord).toBe(0);
    expect(sa.directory?.client?.cachedRecords).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it("kill -9 the directory and restart it: records survive, hosts re-register, lookups work", async () => {
    const before = await daemons.dir!.status();
    expect(before.directory?.server?.records).toBe(3);
    const stateFile = path.join(work, "state-dir", "directory.json");
    expect(fs.existsSync(stateFile)).toBe(true);
    daemons.dir!.proc.signal("SIGKILL");
    await daemons.dir!.proc.exited;
    const t0 = Date.now();
    daemons.dir = await startDir();
    const after = await daemons.dir.status();
    // loaded from the state file, before any host could register again
    expect(after.directory?.server?.records).toBe(3);
    expect(after.events.dirRecordsStored).toBe(0);
    // hosts notice (refresh unanswered), make a new tunnel (fresh directory key) and register again
    await waitFor(
      async () => {
        const st = await daemons.dir!.status();
        return (st.events.dirRecordsStored ?? 0) >= 3 ? st : null;
      },
      { timeoutMs: 40_000, what: "hosts registered again" },
    );
    console.log(`directory restart: hosts registered again after ${Date.now() - t0} ms`);
    // a host that restarts too (empty cache) finds the others through the restarted directory
    await daemons.c!.stop();
    await startHost("c");
    const p = await pingStats(topo.host("c").ns, O4.a!, { count: 3, interval: 0.1 });
    expect(p.received).toBeGreaterThanOrEqual(2);
    // a host crashes and restarts, and the other side speaks first: a's tunnel to b is gone on b's side;
    // a notices the silence (stall probe unanswered, or the directory re-lookup finds b's younger
    // key) and makes a new tunnel
    await pingStats(topo.host("a").ns, O4.b!, { count: 2, interval: 0.1 });
    daemons.b!.proc.signal("SIGKILL"); // no CLOSE reaches a
    await daemons.b!.proc.exited;
    await startHost("b");
    const t1 = Date.now();
    const back = await firstPingMs(topo.host("a").ns, O4.b!, { intervalMs: 100, timeoutMs: 15_000 });
    const sa = await daemons.a!.status();
    console.log(
      `peer restart: a reaches the restarted b after ${Date.now() - t1} ms (first reply seq ${back.seq}); ` +
        `a relookups ${sa.events.dirRelookups}, stale tunnels closed ${sa.events.dirStaleTunnels}, ` +
        `stall recoveries ${sa.events.stallRecoveries}`,
    );
    expect(sa.events.dirStaleTunnels + sa.events.stallRecoveries).toBeGreaterThanOrEqual(1);
    expect(back.seq * 100).toBeLessThan(8000);
  }, 90_000);
});
