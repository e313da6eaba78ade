/**
 * Core dumps off on a real daemon: mintund turns PR_SET_DUMPABLE off and RLIMIT_CORE to 0
 * at start (platform/linux/dumpable.c), before it reads a key. The daemon reports its own
 * prctl(PR_GET_DUMPABLE) in `mintun status --json` (daemon.dumpable), and the kernel shows
 * the limit in /proc/PID/limits; a test process started the same way keeps both on.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLan, type Topology } from "./lib.js";
import { makeHost, makePki, startDaemon, MINTUN, type RunningDaemon } from "./mintun.js";

describe.skipIf(process.getuid?.() !== 0)("core dumps off (netns, real daemon)", () => {
  let topo: Topology;
  let work: string;
  let d: RunningDaemon;

  beforeAll(async () => {
    topo = await createLan({ hosts: ["a"] });
    const pki = makePki();
    work = pki.dir;
    d = await startDaemon(
      work,
      {
        host: makeHost(pki, "a", "10.77.0.1", null),
        ns: topo.host("a").ns,
        caFile: pki.caFile,
        listen: "0.0.0.0:7000",
        peers: [],
      },
      false,
    );
  }, 60_000);

  afterAll(async () => {
    await d?.stop().catch(() => undefined);
    await topo?.cleanup();
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  it("the daemon is not dumpable and its core limit is 0", async () => {
    const st = await topo.host("a").ns.exec("node", [MINTUN, "status", "--json", "--socket", d.socket]);
    expect(st.code, st.stderr).toBe(0);
    const s = JSON.parse(st.stdout) as { daemon: { pid: number; dumpable?: number } };
    expect(s.daemon.dumpable).toBe(0);
    const limits = fs.readFileSync(`/proc/${s.daemon.pid}/limits`, "utf8");
    const core = /^Max core file size\s+(\S+)\s+(\S+)/m.exec(limits);
    expect(core?.slice(1)).toEqual(["0", "0"]);
    // the text status says so too
    const text = await topo.host("a").ns.exec("node", [MINTUN, "status", "--socket", d.socket]);
    expect(text.stdout).toContain("core dumps off");
    // control: this test process (not turned off) is dumpable, so the check can tell
    const mine = fs.readFileSync(`/proc/${process.pid}/limits`, "utf8");
    expect(/^Max core file size\s+0\s+0/m.test(mine)).toBe(false);
  }, 30_000);
});
