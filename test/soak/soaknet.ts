/**
 * The soak network: a directory host and two hosts (a, b) on three LANs joined by the
 * userspace delay router, real mintund daemons, and three flows from a to b for the whole
 * run: ping every 50 ms, a rate-limited TCP stream and a UDP flow (iperf3). A sampler
 * reads every daemon's RSS (/proc/PID/status) and status (counters) at a fixed interval.
 *
 * Used twice with the same code and the same figures:
 * - test/netns/soak.test.ts: every timer shortened through config (about 90 s, each timer
 *   fires at least 10 times), asserted;
 * - test/soak/soak.ts (`npm run soak`): default timings for SOAK_MINUTES (default 30),
 *   printed and written to SOAK_OUT.
 *
 * Timers and the config key that shortens each (docs/OPERATIONS.md "Timers"):
 *   ephemeral-key rotation (lifetime/2) and ephemeral certificate validity  ephemeral.lifetimeSec
 *   rekey (initiator)                                                       tunnel.rekeySec
 *   keepalive                                                               tunnel.keepaliveSec
 *   idle close                                                              tunnel.idleTimeoutSec
 *   directory re-registration                                               registration.refreshSec
 *   record refresh of a looked-up peer (before its ephemeral cert expires)  ephemeral.lifetimeSec
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Status } from "../../src/daemon/status.js";
import { createRouted, sleep, type Proc, type Topology } from "../netns/lib.js";
import {
  directoriesYaml,
  makeHost,
  makePki,
  startBare,
  waitRegistered,
  type RunningDaemon,
} from "../netns/mintun.js";

export interface SoakTimings {
  /** ephemeral.lifetimeSec (rotation every half) */
  lifetimeSec: number;
  rekeySec: number;
  /** keepalive of the two hosts; the directory sends none, so its tunnels go idle */
  keepaliveSec: number;
  idleTimeoutSec: number;
  /** registration.refreshSec */
  refreshSec: number;
}

/** Config defaults (config/host.yaml). */
export const DEFAULT_TIMINGS: SoakTimings = {
  lifetimeSec: 300,
  rekeySec: 120,
  keepaliveSec: 25,
  idleTimeoutSec: 180,
  refreshSec: 10,
};

/** Every timer at least 10 times in 90 s. */
export const SHORT_TIMINGS: SoakTimings = {
  lifetimeSec: 10, // rotation every 5 s: 18
  rekeySec: 5, // 18 rekeys of the a-b tunnel
  keepaliveSec: 1,
  idleTimeoutSec: 3, // the directory's tunnels idle out between registrations
  refreshSec: 5, // 18 registrations per host
};

export interface SoakOptions {
  durationSec: number;
  timings: SoakTimings;
  /** each way, ms */
  delayMs: number;
  /** sampler interval, s */
  sampleSec: number;
  tcpMbit: number;
  udpMbit: number;
  /** directory for logs and the report (kept); default: a temp dir removed at the end */
  outDir?: string;
  progress?: (line: string) => void;
}

export interface DaemonFigures {
  name: string;
  exited: string | null;
  rssStartMiB: number;
  rssEndMiB: number;
  rssMaxMiB: number;
  unexpectedErrors: number;
  events: Record<string, number>;
  /** C heap trims (once a minute) and the RSS they gave back (status daemon.memory) */
  trims: number;
  trimmedMiB: number;
  trimMaxMs: number;
  /** full GCs run before the trims, and the longest (ms) */
  gcs: number;
  gcMaxMs: number;
  /** V8 heap in use at the end (not after a GC) */
  heapUsedMiB: number;
  /** median RSS of the first and of the last fifth of the samples after warm-up (the trend) */
  rssFirstFifthMiB: number;
  rssLastFifthMiB: number;
}

export interface SoakResult {
  durationSec: number;
  timings: SoakTimings;
  daemons: DaemonFigures[];
  /** timer name -> firings summed over the daemons where it runs */
  firings: Record<string, number>;
  ping: { sent: number; received: number; lossPct: number; maxGapMs: number; gapsOver1s: number };
  tcp: { mbps: number; bytes: number; retrans: number; error: string | null };
  udp: { mbps: number; lossPct: number; error: string | null };
  /** RSS growth per daemon from the first sample after warm-up to the largest after it */
  rssGrowthMiB: number;
}

const OVERLAY = { dir: "10.77.0.100", a: "10.77.0.1", b: "10.77.0.2" } as const;

function timersYaml(t: SoakTimings, keepaliveSec: number): string {
  return (
    `ephemeral:\n  lifetimeSec: ${t.lifetimeSec}\n` +
    `tunnel:\n  rekeySec: ${t.rekeySec}\n  keepaliveSec: ${keepaliveSec}\n  idleTimeoutSec: ${t.idleTimeoutSec}\n` +
    `registration:\n  refreshSec: ${t.refreshSec}\n`
  );
}

function rssMiB(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Median of the first or last fifth of a series (at least one sample); 0 when empty. */
export function fifthMedian(xs: readonly number[], which: "first" | "last"): number {
  if (xs.length === 0) return 0;
  const n = Math.max(1, Math.floor(xs.length / 5));
  const part = [...(which === "first" ? xs.slice(0, n) : xs.slice(xs.length - n))].sort((a, b) => a - b);
  return part[Math.floor(part.length / 2)]!;
}

/** Largest interval between consecutive replies of `ping -D` output, and how many exceed 1 s. */
export function pingGaps(
  out: string,
  startedAt: number,
): { maxGapMs: number; gapsOver1s: number; received: number } {
  const ts = [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .* icmp_seq=\d+/gm)].map(
    (m) => Number(m[1]) * 1000,
  );
  let prev = startedAt;
  let maxGapMs = 0;
  let gapsOver1s = 0;
  for (const t of ts) {
    const g = t - prev;
    if (g > maxGapMs) maxGapMs = g;
    if (g > 1000) gapsOver1s++;
    prev = t;
  }
  return { maxGapMs, gapsOver1s, received: ts.length };
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second: number; bytes: number };
    sum_sent?: { retransmits?: number };
    sum?: { bits_per_second: number; lost_percent: number };
  };
}

function readIperf(file: string): IperfJson | null {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as IperfJson;
  } catch {
    return null;
  }
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const say = o.progress ?? (() => undefined);
  const keepOut = o.outDir !== undefined;
  let topo: Topology | undefined;
  let pkiDir: string | undefined;
  const d: Record<"dir" | "a" | "b", RunningDaemon | undefined> = {
    dir: undefined,
    a: undefined,
    b: undefined,
  };
  const procs: Proc[] = [];
  try {
    topo = await createRouted({
      sides: [{ hosts: ["dir"] }, { hosts: ["a"] }, { hosts: ["b"] }],
      delayMs: o.delayMs,
    });
    const pki = makePki();
    pkiDir = pki.dir;
    const out = o.outDir ?? pki.dir;
    fs.mkdirSync(out, { recursive: true });
    const files = {
      dir: makeHost(pki, "dir", OVERLAY.dir, null),
      a: makeHost(pki, "a", OVERLAY.a, null),
      b: makeHost(pki, "b", OVERLAY.b, null),
    };
    const t = o.timings;
    d.dir = await startBare(
      out,
      pki,
      files.dir,
      topo.host("dir").ns,
      "directory:\n  serve: true\n  registerPerSec: 5\n" + timersYaml(t, 0),
    );
    for (const h of ["a", "b"] as const) {
      d[h] = await startBare(
        out,
        pki,
        files[h],
        topo.host(h).ns,
        directoriesYaml(topo.host("dir").addr4) + timersYaml(t, t.keepaliveSec),
      );
      await waitRegistered(d[h]!);
    }
    const daemons = (["dir", "a", "b"] as const).map((n) => ({ n, d: d[n]! }));
    say(
      `daemons up (pids ${daemons.map((x) => `${x.n}=${x.d.proc.pid}`).join(" ")}), flows for ${o.durationSec} s`,
    );

    // flows a -> b over the overlay
    const nsA = topo.host("a").ns;
    const nsB = topo.host("b").ns;
    const dur = o.durationSec;
    procs.push(
      nsB.spawn("iperf3", ["-s", "-1", "-p", "5201"], { logFile: path.join(out, "iperf-tcp-server.log") }),
    );
    procs.push(
      nsB.spawn("iperf3", ["-s", "-1", "-p", "5202"], { logFile: path.join(out, "iperf-udp-server.log") }),
    );
    await sleep(500);
    const pingLog = path.join(out, "ping.log");
    const pingStart = Date.now();
    const ping = nsA.spawn("ping", ["-D", "-n", "-i", "0.05", "-W", "1", "-w", String(dur), OVERLAY.b], {
      logFile: pingLog,
    });
    procs.push(ping);
    const iperfArgs = (port: number, extra: string[]): string[] => [
      "-c",
      OVERLAY.b,
      "-p",
      String(port),
      "-t",
      String(Math.max(1, dur - 2)),
      "-i",
      "0",
      "-J",
      "--connect-timeout",
      "5000",
      ...extra,
    ];
    const tcpFile = path.join(out, "iperf-tcp.json");
    const udpFile = path.join(out, "iperf-udp.json");
    const tcp = nsA.spawn("iperf3", iperfArgs(5201, ["-b", `${o.tcpMbit}M`]), { logFile: tcpFile });
    const udp = nsA.spawn("iperf3", iperfArgs(5202, ["-u", "-b", `${o.udpMbit}M`, "-l", "1200"]), {
      logFile: udpFile,
    });
    procs.push(tcp, udp);

    // sampler
    const warmupMs = Math.min(60_000, (dur * 1000) / 4);
    const rss = new Map<string, { start: number | null; end: number; max: number; samples: number[] }>();
    for (const x of daemons) rss.set(x.n, { start: null, end: 0, max: 0, samples: [] });
    const last = new Map<string, Status>();
    const t0 = Date.now();
    let nextReport = t0 + 60_000;
    while (Date.now() - t0 < dur * 1000 + 1000) {
      await sleep(Math.min(o.sampleSec * 1000, Math.max(100, t0 + dur * 1000 + 1000 - Date.now())));
      const since = Date.now() - t0;
      for (const x of daemons) {
        if (!x.d.proc.running) continue;
        const r = rssMiB(x.d.proc.pid);
        const s = rss.get(x.n)!;
        if (r !== null) {
          s.end = r;
          if (since >= warmupMs) {
            if (s.start === null) s.start = r;
            s.max = Math.max(s.max, r);
            s.samples.push(r);
          }
        }
        try {
          last.set(x.n, await x.d.status());
        } catch {
          // a daemon that stopped answering shows as exited or with stale counters
        }
      }
      if (Date.now() >= nextReport) {
        nextReport += 60_000;
        say(
          `${Math.round(since / 1000)} s: ` +
            daemons
              .map((x) => {
                const s = rss.get(x.n)!;
                const st = last.get(x.n);
                const m = st?.daemon?.memory;
                const mib = (n: number | undefined): string => ((n ?? 0) / 1048576).toFixed(1);
                return (
                  `${x.n} ${x.d.proc.running ? "up" : "EXITED"} rss ${s.end.toFixed(1)} MiB ` +
                  `(heap ${mib(m?.heapUsed)}, external ${mib(m?.external)}) unexpected ${st?.daemon?.unexpectedErrors?.total ?? "?"}`
                );
              })
              .join(", "),
        );
      }
    }
    await Promise.race([Promise.all([ping.exited, tcp.exited, udp.exited]), sleep(30_000)]);

    const figures: DaemonFigures[] = daemons.map((x) => {
      const s = rss.get(x.n)!;
      const st = last.get(x.n);
      const ex = x.d.proc.exitStatus;
      return {
        name: x.n,
        exited: ex ? `code ${ex.code} signal ${ex.signal}` : null,
        rssStartMiB: s.start ?? s.end,
        rssEndMiB: s.end,
        rssMaxMiB: s.max,
        unexpectedErrors: st?.daemon?.unexpectedErrors?.total ?? -1,
        events: { ...(st?.events ?? {}) },
        trims: st?.daemon?.memory?.trims ?? -1,
        trimmedMiB: (st?.daemon?.memory?.trimmedBytes ?? 0) / 1048576,
        trimMaxMs: st?.daemon?.memory?.trimMaxMs ?? -1,
        gcs: st?.daemon?.memory?.gcs ?? -1,
        gcMaxMs: st?.daemon?.memory?.gcMaxMs ?? -1,
        heapUsedMiB: (st?.daemon?.memory?.heapUsed ?? 0) / 1048576,
        rssFirstFifthMiB: fifthMedian(s.samples, "first"),
        rssLastFifthMiB: fifthMedian(s.samples, "last"),
      };
    });
    const sum = (names: string[], k: string): number =>
      figures.filter((f) => names.includes(f.name)).reduce((a, f) => a + (f.events[k] ?? 0), 0);
    const all = ["dir", "a", "b"];
    const firings: Record<string, number> = {
      ephemeralRotations: sum(all, "ephemeralRotations"),
      rekeys: sum(all, "rekeys"),
      keepalivesSent: sum(["a", "b"], "keepalivesSent"),
      tunnelsIdleClosed: sum(all, "tunnelsIdleClosed"),
      dirRegistered: sum(["a", "b"], "dirRegistered"),
      dirRecordsLearned: sum(["a", "b"], "dirRecordsLearned"),
    };
    const pingText = fs.readFileSync(pingLog, "utf8");
    const gaps = pingGaps(pingText, pingStart);
    const sent = Number(/(\d+) packets transmitted/.exec(pingText)?.[1] ?? NaN);
    const tj = readIperf(tcpFile);
    const uj = readIperf(udpFile);
    const result: SoakResult = {
      durationSec: dur,
      timings: t,
      daemons: figures,
      firings,
      ping: {
        sent,
        received: gaps.received,
        lossPct: sent ? (100 * (sent - gaps.received)) / sent : 100,
        maxGapMs: gaps.maxGapMs,
        gapsOver1s: gaps.gapsOver1s,
      },
      tcp: {
        mbps: (tj?.end?.sum_received?.bits_per_second ?? 0) / 1e6,
        bytes: tj?.end?.sum_received?.bytes ?? 0,
        retrans: tj?.end?.sum_sent?.retransmits ?? 0,
        error: tj === null ? "no iperf3 output" : (tj.error ?? null),
      },
      udp: {
        mbps: (uj?.end?.sum?.bits_per_second ?? 0) / 1e6,
        lossPct: uj?.end?.sum?.lost_percent ?? 100,
        error: uj === null ? "no iperf3 output" : (uj.error ?? null),
      },
      rssGrowthMiB: Math.max(...figures.map((f) => f.rssMaxMiB - f.rssStartMiB)),
    };
    if (keepOut) fs.writeFileSync(path.join(out, "report.txt"), formatSoak(result) + "\n");
    return result;
  } finally {
    for (const p of procs) await p.stop().catch(() => undefined);
    for (const x of Object.values(d)) await x?.stop().catch(() => undefined);
    await topo?.cleanup().catch(() => undefined);
    if (pkiDir && !keepOut) fs.rmSync(pkiDir, { recursive: true, force: true });
  }
}

export function formatSoak(r: SoakResult): string {
  const t = r.timings;
  const lines = [
    `soak ${r.durationSec} s; timings: ephemeral.lifetimeSec ${t.lifetimeSec}, tunnel.rekeySec ${t.rekeySec}, ` +
      `keepaliveSec ${t.keepaliveSec}, idleTimeoutSec ${t.idleTimeoutSec}, registration.refreshSec ${t.refreshSec}`,
    `timer firings: ` +
      Object.entries(r.firings)
        .map(([k, v]) => `${k} ${v}`)
        .join(", "),
    `ping a->b every 50 ms: ${r.ping.received}/${r.ping.sent} replies (${r.ping.lossPct.toFixed(2)}% loss), ` +
      `largest gap ${r.ping.maxGapMs.toFixed(0)} ms, gaps over 1 s: ${r.ping.gapsOver1s}`,
    `tcp a->b: ${r.tcp.mbps.toFixed(2)} Mbit/s, ${(r.tcp.bytes / 1e6).toFixed(1)} MB, ${r.tcp.retrans} retransmits` +
      (r.tcp.error ? `, error: ${r.tcp.error}` : ""),
    `udp a->b: ${r.udp.mbps.toFixed(2)} Mbit/s, ${r.udp.lossPct.toFixed(2)}% lost` +
      (r.udp.error ? `, error: ${r.udp.error}` : ""),
  ];
  for (const f of r.daemons)
    lines.push(
      `daemon ${f.name}: ${f.exited ? `EXITED (${f.exited})` : "running"}, RSS after warm-up ${f.rssStartMiB.toFixed(1)} MiB, ` +
        `max ${f.rssMaxMiB.toFixed(1)}, end ${f.rssEndMiB.toFixed(1)} (V8 heap used ${f.heapUsedMiB.toFixed(1)}; ` +
        `${f.trims} trims gave back ${f.trimmedMiB.toFixed(1)} MiB, longest ${f.trimMaxMs} ms; ` +
        `${f.gcs} full GCs, longest ${f.gcMaxMs} ms); RSS median first fifth ${f.rssFirstFifthMiB.toFixed(1)}, ` +
        `last fifth ${f.rssLastFifthMiB.toFixed(1)} MiB; unexpected errors ${f.unexpectedErrors}`,
    );
  lines.push(`largest RSS growth after warm-up: ${r.rssGrowthMiB.toFixed(1)} MiB`);
  return lines.join("\n");
}
