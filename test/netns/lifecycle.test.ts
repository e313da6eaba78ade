/**
 * Certificate lifecycle with real daemons in network namespaces:
 *
 * 1. A peer whose host certificate expires while its tunnel is busy (a real ping every
 *    200 ms): the replies stop within a tick of notAfter, and the other end counts why
 *    (events.tunnelsCertExpired). The expired host then gets a renewed certificate
 *    (`mintun ca sign-host --seconds`, same key), `mintun reload` picks it up without a
 *    restart, and ping works again.
 * 2. A revoked host, the list distributed through the directory: `mintun ca revoke`, the
 *    list installed on the directory by `mintun reload`, and every host gets it by itself;
 *    the revoked host's tunnels close and ping to it stops. The time from the directory's
 *    reload to the last host having the list is measured (docs/OPERATIONS.md).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLan, execCmd, sleep, waitFor, type Topology } from "./lib.js";
import {
  MINTUN,
  directoriesYaml,
  makeHost,
  makePki,
  startBare,
  startDaemon,
  type HostFiles,
  type Pki,
  type RunningDaemon,
} from "./mintun.js";

const O4: Record<string, string> = { dir: "10.77.0.100", a: "10.77.0.1", b: "10.77.0.2", c: "10.77.0.3" };

async function mintun(...args: string[]): Promise<string> {
  const r = await execCmd("node", [MINTUN, ...args]);
  if (r.code !== 0) throw new Error(`mintun ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Reply times (unix ms) of a `ping -D` run. */
function replyTimes(out: string): number[] {
  return [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=\d+/gm)].map((m) => Number(m[1]) * 1000);
}

describe.skipIf(process.getuid?.() !== 0)("certificate lifecycle (netns, real daemons)", () => {
  let topo: Topology;
  let pki: Pki;
  let work: string;
  const d: Record<string, RunningDaemon> = {};
  const files: Record<string, HostFiles> = {};
  /** b's certificate signed again with the same key, valid for `seconds` (over b.cert) */
  const signB = (seconds: number) =>
    mintun(
      "ca",
      "sign-host",
      "--ca",
      work,
      "--name",
      "b",
      "--key",
      files.b!.key,
      "--ip4",
      O4.b!,
      "--seconds",
      String(seconds),
      "--out",
      files.b!.cert,
      "--force",
    );

  beforeAll(async () => {
    topo = await createLan({ hosts: ["dir", "a", "b", "c"] });
    pki = makePki("ca"); // ca.crt and ca.key: a CA directory the CLI can use
    work = pki.dir;
    for (const h of ["dir", "a", "b", "c"]) files[h] = makeHost(pki, h, O4[h]!, null);
  }, 60_000);

  afterAll(async () => {
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await topo?.cleanup();
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  it("a peer whose certificate expires while busy: ping stops at notAfter, counted; renewal on reload", async () => {
    const VALID_S = 25;
    const b = files.b!;
    await signB(VALID_S);
    const notAfterMs = JSON.parse(await mintun("cert", "show", b.cert, "--json")).notAfter;
    const expiresAt = Date.parse(notAfterMs);
    const peerOf = (h: string) => (h === "a" ? "b" : "a");
    for (const h of ["b", "a"])
      d[h] = await startDaemon(
        work,
        {
          host: files[h]!,
          ns: topo.host(h).ns,
          caFile: pki.caFile,
          listen: "0.0.0.0:7000",
          peers: [{ name: peerOf(h), endpoint: `${topo.host(peerOf(h)).addr4}:7000` }],
        },
        h === "a",
      );
    try {
      await lifecycle(expiresAt);
    } finally {
      for (const h of ["a", "b"]) {
        await d[h]?.stop();
        delete d[h];
      }
    }
  }, 90_000);

  async function lifecycle(expiresAt: number): Promise<void> {
    const na = topo.host("a").ns;
    const left = expiresAt - Date.now();
    expect(left).toBeGreaterThan(5_000);
    // busy: a ping every 200 ms until 6 s past the expiry
    const count = Math.ceil((left + 6_000) / 200);
    const ping = await na.exec("ping", ["-n", "-D", "-i", "0.2", "-W", "1", "-c", String(count), O4.b!], {
      timeoutMs: left + 20_000,
    });
    const replies = replyTimes(ping.stdout);
    expect(replies.length).toBeGreaterThan(10);
    const last = replies[replies.length - 1]!;
    console.log(
      `last reply ${((last - expiresAt) / 1000).toFixed(2)} s from notAfter; ${replies.length} replies`,
    );
    expect(last).toBeGreaterThan(expiresAt - 1_500); // it worked until the expiry
    expect(last).toBeLessThan(expiresAt + 1_500); // and stopped within a tick (plus ping spacing)
    const sa = await d.a!.status();
    expect(sa.events.tunnelsCertExpired).toBeGreaterThanOrEqual(1);
    expect(sa.tunnels.filter((t) => t.state === "established")).toHaveLength(0);

    // renewal: the same key signed again, picked up by a reload (no restart)
    await signB(600);
    const t0 = Date.now();
    const rl = await topo.host("b").ns.exec("node", [MINTUN, "reload", "--json", "--socket", d.b!.socket]);
    expect(rl.code, rl.stderr + rl.stdout).toBe(0);
    expect(rl.stdout).toContain("host.cert renewed");
    await waitFor(
      async () => {
        const r = await na.exec("ping", ["-n", "-c", "1", "-W", "1", O4.b!]);
        return r.code === 0;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: "ping to b after its renewal" },
    );
    console.log(`ping works again ${Date.now() - t0} ms after b's reload`);
    const sa2 = await d.a!.status();
    expect(sa2.events.peerCertsRenewed).toBeGreaterThanOrEqual(1);
    expect(sa2.peers.find((p) => p.name === "b")?.record).not.toBeNull();
  }

  it("a revoked host: the list reaches every host through the directory, its tunnels close", async () => {
    d.dir = await startBare(
      work,
      pki,
      files.dir!,
      topo.host("dir").ns,
      "directory:\n  serve: true\n  store: file\n",
    );
    for (const h of ["a", "b", "c"])
      d[h] = await startBare(work, pki, files[h]!, topo.host(h).ns, directoriesYaml(topo.host("dir").addr4));
    for (const h of ["a", "b", "c"])
      await waitFor(async () => (await d[h]!.status()).directory?.client?.directories[0]?.registered, {
        timeoutMs: 15_000,
        what: `${h} registered`,
      });
    const na = topo.host("a").ns;
    const nc = topo.host("c").ns;
    for (const ns of [na, nc]) {
      const r = await ns.exec("ping", ["-n", "-c", "3", "-i", "0.2", "-W", "2", O4.b!]);
      expect(r.code, r.stdout).toBe(0);
    }
    // the CA revokes b; the operator installs the list on the directory host only
    const crl = path.join(work, "revoked.crl");
    const rv = JSON.parse(
      await mintun("ca", "revoke", "--ca", work, "--host-cert", files.b!.cert, "--out", crl, "--json"),
    );
    expect(rv.added[0].kind).toBe("host");
    const dirCfg = path.join(work, "dir.yaml");
    fs.appendFileSync(dirCfg, `trust:\n  revocationList: ${crl}\n`);
    const t0 = Date.now();
    const rl = await topo.host("dir").ns.exec("node", [MINTUN, "reload", "--socket", d.dir.socket]);
    expect(rl.code, rl.stderr + rl.stdout).toBe(0);
    const got: Record<string, number> = {};
    await waitFor(
      async () => {
        // (b itself is cut off: the directory closed its tunnel as soon as it had the list)
        for (const h of ["a", "c"]) {
          if (got[h] !== undefined) continue;
          const st = await d[h]!.status();
          if (st.revocation?.number === rv.number) got[h] = Date.now() - t0;
        }
        return Object.keys(got).length === 2;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: "every host has the revocation list" },
    );
    expect((await d.dir.status()).events.tunnelsRevoked).toBeGreaterThanOrEqual(1);
    const worst = Math.max(...Object.values(got));
    console.log(`revocation list on every host after ${worst} ms (${JSON.stringify(got)})`);
    expect(worst).toBeLessThan(13_000); // DIR_REVOCATION_POLL_MS (10 s) + a round trip + ticks
    for (const [h, ns] of [
      ["a", na],
      ["c", nc],
    ] as const) {
      const st = await d[h]!.status();
      expect(st.events.tunnelsRevoked, h).toBeGreaterThanOrEqual(1);
      expect(st.tunnels.filter((t) => t.state !== "closed" && t.peer === "b")).toHaveLength(0);
      const r = await ns.exec("ping", ["-n", "-c", "3", "-i", "0.3", "-W", "1", O4.b!]);
      expect(r.stdout, h).toMatch(/ 0 received/);
    }
    // and a to c still works
    const ok = await na.exec("ping", ["-n", "-c", "2", "-i", "0.2", "-W", "2", O4.c!]);
    expect(ok.code, ok.stdout).toBe(0);
    await sleep(0);
  }, 120_000);
});
