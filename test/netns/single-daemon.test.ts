/**
 * One daemon per API socket, with real processes: a second mintund whose config
 * names the same api.socket (its own TUN name and UDP port, as two template
 * instances sharing a runtime directory would) must refuse with exit status 3 and
 * the message "another mintund (pid N) is serving PATH", and leave the first alone:
 * `mintun status` still answers from the first, the socket is still there after the
 * second has exited, and traffic through the first still flows.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLan, pingStats, type Topology } from "./lib.js";
import {
  makeHost,
  makePki,
  startDaemon,
  writeConfig,
  MINTUN,
  MINTUND,
  type RunningDaemon,
} from "./mintun.js";

const O4: Record<string, string> = { a: "10.77.0.1", b: "10.77.0.2" };

describe.skipIf(process.getuid?.() !== 0)("one mintund per API socket (netns, real daemons)", () => {
  let topo: Topology;
  let work: string;
  const d: Record<string, RunningDaemon> = {};

  beforeAll(async () => {
    topo = await createLan({ hosts: ["a", "b"] });
    const pki = makePki();
    work = pki.dir;
    for (const h of ["b", "a"]) {
      const other = h === "a" ? "b" : "a";
      d[h] = await startDaemon(
        work,
        {
          host: makeHost(pki, h, O4[h]!, null),
          ns: topo.host(h).ns,
          caFile: pki.caFile,
          listen: "0.0.0.0:7000",
          peers: [{ name: other, endpoint: `${topo.host(other).addr4}:7000` }],
        },
        false,
      );
    }
  }, 60_000);

  afterAll(async () => {
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await topo?.cleanup();
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  it("a second mintund on the same socket refuses (exit 3) and the first keeps serving", async () => {
    const first = d.a!;
    const sock = first.socket;
    const inode = fs.statSync(sock).ino;
    // same host, same api.socket; its own TUN and port so that only the socket collides
    const dir2 = path.join(work, "second");
    fs.mkdirSync(dir2, { recursive: true });
    const second = writeConfig(dir2, { ...first.spec, listen: "0.0.0.0:7001" });
    const cfg = fs.readFileSync(second.file, "utf8");
    fs.writeFileSync(
      second.file,
      cfg.replace(/socket: .*/, `socket: ${sock}`).replace("name: mt0", "name: mt1"),
    );
    const ns = topo.host("a").ns;
    const t0 = Date.now();
    const r = await ns.exec("node", [MINTUND, "--config", second.file], { timeoutMs: 15_000 });
    console.log(`second mintund: exit ${r.code} after ${Date.now() - t0} ms: ${r.stderr.trim()}`);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`mintund: another mintund (pid ${first.proc.pid}) is serving ${sock}`);
    // the first is untouched: same socket file, still answering, still forwarding
    expect(first.proc.running).toBe(true);
    expect(fs.statSync(sock).ino).toBe(inode);
    const st = await ns.exec("node", [MINTUN, "status", "--socket", sock]);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toContain("a");
    expect((await first.status()).daemon?.pid).toBe(first.proc.pid);
    const p = await pingStats(ns, O4.b!, { count: 3, interval: 0.1 });
    expect(p.received).toBe(3);
    // the second made no TUN of its own
    const links = await ns.exec("ip", ["-o", "link", "show"]);
    expect(links.stdout).not.toMatch(/^\d+: mt1:/m);
  });
});
