/**
 * Restarts recover in seconds, whichever side restarted and however the peers
 * know each other (docs/PROTOCOL.md section 5, "stall probe and recovery"). Two real
 * daemons, a (the client) and b (the server), in namespaces; pings every 100 ms from
 * one side only, so the other only answers (as a server answers requests: the hard
 * case, where only the side that did not restart sends first). One daemon is killed
 * with SIGKILL (no CLOSE reaches the other) and started again at once; measured: the
 * time from the kill to the first echo reply after it. Cases: server restart and
 * client restart with requests from the client, and client restart with the server
 * speaking first; with static peers (`peers:`) and with a directory. Each must be
 * under RECOVERY_LIMIT_MS; the figures are printed and recorded in docs/OPERATIONS.md.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLan, pingStats, sleep, waitFor, type Proc, type Topology } from "./lib.js";
import {
  directoriesYaml,
  makeHost,
  makePki,
  startBare,
  startDaemon,
  type HostFiles,
  type Pki,
  type RunningDaemon,
} from "./mintun.js";

/** From the kill to the first answer: the bound, for a daemon that starts within STARTUP_BUDGET_MS. */
const RECOVERY_LIMIT_MS = 5_000;
/**
 * From the restarted daemon's "mintund ready" to the first answer: the protocol's share
 * (stall detection runs from the kill, then a record and a creation round trip).
 */
const AFTER_READY_LIMIT_MS = 2_500;
/**
 * The daemon's own start-up (Node, TUN, routes) is not the protocol's: on this 2-core
 * machine shared with other jobs it took 1.6-8 s. Beyond this budget the total bound
 * grows by the excess; the after-ready bound never does.
 */
const STARTUP_BUDGET_MS = RECOVERY_LIMIT_MS - AFTER_READY_LIMIT_MS;
const O4: Record<string, string> = { dir: "10.77.0.100", a: "10.77.0.1", b: "10.77.0.2" };

type Mode = "static" | "directory";

describe.skipIf(process.getuid?.() !== 0)(
  "restart recovery: kill -9 and restart (netns, real daemons)",
  () => {
    let topo: Topology;
    let pki: Pki;
    let work: string;
    const files: Record<string, HostFiles> = {};
    const d: Record<string, RunningDaemon> = {};
    const results: string[] = [];

    const start = async (h: "a" | "b", mode: Mode): Promise<RunningDaemon> => {
      if (mode === "directory")
        return startBare(work, pki, files[h]!, topo.host(h).ns, directoriesYaml(topo.host("dir").addr4));
      const other = h === "a" ? "b" : "a";
      return startDaemon(
        work,
        {
          host: files[h]!,
          ns: topo.host(h).ns,
          caFile: pki.caFile,
          listen: "0.0.0.0:7000",
          peers: [{ name: other, endpoint: `${topo.host(other).addr4}:7000` }],
        },
        false,
      );
    };

    /** `ping -D -i 0.1` from h to the other host; reply receive times (epoch ms) from its log. */
    const pinger = (h: "a" | "b"): { proc: Proc; replies: () => number[] } => {
      const to = h === "a" ? O4.b! : O4.a!;
      const proc = topo.host(h).ns.spawn("ping", ["-n", "-D", "-i", "0.1", to]);
      const replies = (): number[] =>
        [...proc.readLog().matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=/gm)].map((m) =>
          Math.round(Number(m[1]) * 1000),
        );
      return { proc, replies };
    };

    /**
     * Kill `victim` with SIGKILL, start it again at once, and measure the time from the
     * kill to the first echo reply of pings sent by `from` only (one-way initiation: the
     * other side only answers, as a server answers requests).
     */
    const measure = async (
      mode: Mode,
      victim: "a" | "b",
      from: "a" | "b",
    ): Promise<{ ms: number; startup: number; afterReady: number }> => {
      const to = from === "a" ? O4.b! : O4.a!;
      // a tunnel in use before the kill
      await waitFor(
        async () => (await pingStats(topo.host(from).ns, to, { count: 1, waitS: 2 })).received === 1,
        {
          timeoutMs: 15_000,
          what: `${from} -> ${to} before the kill`,
        },
      );
      const ping = pinger(from);
      try {
        await sleep(500);
        const tKill = Date.now();
        d[victim]!.proc.signal("SIGKILL");
        await d[victim]!.proc.exited;
        d[victim] = await start(victim, mode);
        // when the restarted daemon was ready (its log line's time), relative to the kill
        const readyAt = [
          ...d[victim]!.proc.readLog().matchAll(/^\{.*"time":"([^"]+)".*"msg":"mintund ready"/gm),
        ]
          .map((m) => Date.parse(m[1]!))
          .filter((t) => t > tKill)[0];
        expect(readyAt, "the restarted daemon logged mintund ready").toBeDefined();
        const startup = readyAt! - tKill;
        const first = (): number | null => {
          const r = ping.replies().find((t) => t > tKill + 50);
          return r === undefined ? null : r - tKill;
        };
        const ms = await waitFor(first, {
          timeoutMs: 40_000,
          intervalMs: 100,
          what: `replies to ${from} after restarting ${victim} (${mode})`,
        }).catch(() => Infinity);
        const sa = await d.a!.status();
        const sb = await d.b!.status();
        const ev = (s: typeof sa): string =>
          `stall probes ${s.events.stallProbes}, recoveries ${s.events.stallRecoveries}, ` +
          `superseded ${s.events.tunnelsSuperseded}`;
        const afterReady = ms - startup;
        const line =
          `${mode} peers, ${victim === "b" ? "server (b)" : "client (a)"} restart, pings ${from}->${from === "a" ? "b" : "a"}: ` +
          `${ms} ms after the kill, ${afterReady} ms after the restarted daemon was ready (start-up ${startup} ms); ` +
          `a: ${ev(sa)}; b: ${ev(sb)}`;
        results.push(line);
        console.log(line);
        return { ms, startup, afterReady };
      } finally {
        await ping.proc.stop(1000);
      }
    };

    beforeAll(async () => {
      topo = await createLan({ hosts: ["dir", "a", "b"] });
      pki = makePki();
      work = pki.dir;
      for (const h of ["dir", "a", "b"]) files[h] = makeHost(pki, h, O4[h]!, null);
    }, 60_000);

    afterAll(async () => {
      for (const x of Object.values(d)) await x.stop().catch(() => undefined);
      await topo?.cleanup();
      if (results.length)
        console.log(`restart recovery (kill -9, immediate restart):\n  ${results.join("\n  ")}`);
      if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
    });

    for (const mode of ["static", "directory"] as const)
      describe(`${mode} peers`, () => {
        beforeAll(async () => {
          if (mode === "directory")
            d.dir = await startBare(
              work,
              pki,
              files.dir!,
              topo.host("dir").ns,
              "directory:\n  serve: true\n",
            );
          d.b = await start("b", mode);
          d.a = await start("a", mode);
        }, 60_000);
        afterAll(async () => {
          for (const k of ["a", "b", "dir"]) {
            await d[k]?.stop().catch(() => undefined);
            delete d[k];
          }
        });

        // the client a sends requests to the server b; the last case has the server speak first
        for (const [victim, from] of [
          ["b", "a"],
          ["a", "a"],
          ["a", "b"],
        ] as const)
          it(`${victim === "b" ? "server" : "client"} restart, traffic from ${from === "a" ? "the client" : "the server"}: flows again within ${RECOVERY_LIMIT_MS} ms`, async () => {
            const r = await measure(mode, victim, from);
            expect(r.afterReady).toBeLessThan(AFTER_READY_LIMIT_MS);
            expect(r.ms).toBeLessThan(RECOVERY_LIMIT_MS + Math.max(0, r.startup - STARTUP_BUDGET_MS));
          }, 90_000);
      });
  },
);
