/**
 * Accelerated reproduction of the directory daemon's memory figures (issue 12, "flat RSS"):
 * one directory and DIRLOAD_HOSTS hosts (default 6) on one LAN, every host re-registering
 * each second (`registration.refreshSec 1`), rotating its ephemeral key every 5 s and
 * rekeying its tunnel to the directory every 5 s, and looking up DIRLOAD_LOOKUPS addresses
 * per second that nobody owns (each a directory lookup). That is about 30 times the
 * directory work of the default soak. Prints the directory's `daemon.memory` (status) every
 * DIRLOAD_SAMPLE seconds for DIRLOAD_MINUTES (default 5). With DIRLOAD_SNAPSHOTS=1 the
 * directory runs with --heapsnapshot-signal=SIGUSR2 and gets a signal after warm-up and at
 * the end (files in DIRLOAD_OUT, default a temporary directory).
 *
 *   DIRLOAD_MINUTES=10 npx vite-node test/soak/dirload.ts
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { createLan, sleep, type Proc, type Topology } from "../netns/lib.js";
import {
  MINTUND,
  directoriesYaml,
  makeHost,
  makePki,
  startBare,
  waitRegistered,
  type RunningDaemon,
} from "../netns/mintun.js";

const minutes = Number(process.env.DIRLOAD_MINUTES ?? "5");
const nHosts = Number(process.env.DIRLOAD_HOSTS ?? "6");
const lookupsPerSec = Number(process.env.DIRLOAD_LOOKUPS ?? "2");
const sampleSec = Number(process.env.DIRLOAD_SAMPLE ?? "15");
const snapshots = process.env.DIRLOAD_SNAPSHOTS === "1";
if (process.getuid?.() !== 0) {
  console.error("dirload: needs root");
  process.exit(2);
}
const MiB = (n: number | undefined): string => ((n ?? 0) / 1048576).toFixed(1);
const stamp = (): string => new Date().toISOString().slice(11, 19);

let topo: Topology | undefined;
const daemons: RunningDaemon[] = [];
const procs: Proc[] = [];
let code = 0;
try {
  const hosts = Array.from({ length: nHosts }, (_, i) => `h${i + 1}`);
  topo = await createLan({ hosts: ["dir", ...hosts] });
  const pki = makePki();
  const out = process.env.DIRLOAD_OUT ?? pki.dir;
  fs.mkdirSync(out, { recursive: true });
  const timers =
    process.env.DIRLOAD_DEFAULT_TIMERS === "1"
      ? ""
      : "ephemeral:\n  lifetimeSec: 10\ntunnel:\n  rekeySec: 5\nregistration:\n  refreshSec: 1\n";
  const dirNs = topo.host("dir").ns;
  const dirFiles = makeHost(pki, "dir", "10.77.0.100", null);
  const nodeOptions = [
    ...(snapshots ? [`--heapsnapshot-signal=SIGUSR2`, `--diagnostic-dir=${out}`] : []),
    ...(process.env.DIRLOAD_NODE_OPTIONS ? [process.env.DIRLOAD_NODE_OPTIONS] : []),
  ];
  const dirEnv = nodeOptions.length ? { ...process.env, NODE_OPTIONS: nodeOptions.join(" ") } : undefined;
  const dir = await startBareEnv(out, pki, dirFiles, dirNs, dirEnv);
  daemons.push(dir);
  for (const [i, h] of hosts.entries()) {
    const d = await startBare(
      out,
      pki,
      makeHost(pki, h, `10.77.0.${i + 1}`, null),
      topo.host(h).ns,
      directoriesYaml(topo.host("dir").addr4) + timers,
    );
    await waitRegistered(d);
    daemons.push(d);
  }
  console.log(`[dirload ${stamp()}] dir pid ${dir.proc.pid}, ${nHosts} hosts, ${minutes} min, out ${out}`);
  // lookups of addresses nobody owns: ping one new overlay address per lookup, from host 1
  if (lookupsPerSec > 0)
    procs.push(
      topo
        .host(hosts[0]!)
        .ns.spawn("bash", [
          "-c",
          `i=0; end=$((SECONDS+${Math.ceil(minutes * 60)})); while [ $SECONDS -lt $end ]; do ` +
            `i=$(( (i+1) % 60000 )); ping -n -c1 -W0.2 10.77.$((200 + i/250)).$((i%250+1)) >/dev/null 2>&1; ` +
            `sleep ${(1 / lookupsPerSec).toFixed(3)}; done`,
        ]),
    );
  const statusPerSec = Number(process.env.DIRLOAD_STATUS ?? "0");
  let stopStatus = false;
  const statusLoop = (async () => {
    while (statusPerSec > 0 && !stopStatus) {
      await dir.status().catch(() => undefined);
      await sleep(1000 / statusPerSec);
    }
  })();
  const t0 = Date.now();
  const rows: string[] = [];
  let snapped = false;
  while (Date.now() - t0 < minutes * 60_000) {
    await sleep(sampleSec * 1000);
    if (!dir.proc.running) throw new Error("directory exited");
    const st = await dir.status();
    const m = st.daemon?.memory;
    const srv = st.directory?.server;
    const row =
      `t ${Math.round((Date.now() - t0) / 1000)} s rss ${MiB(m?.rss)} heapUsed ${MiB(m?.heapUsed)} ` +
      `heapTotal ${MiB(m?.heapTotal)} external ${MiB(m?.external)} arrayBuffers ${MiB(m?.arrayBuffers)} MiB, trims ${m?.trims ?? "-"} (${MiB(m?.trimmedBytes)} MiB back), gcs ${m?.gcs ?? "-"} (max ${m?.gcMaxMs ?? "-"} ms); ` +
      `stored ${st.events?.dirRecordsStored ?? "?"} served ${st.events?.dirRequestsServed ?? "?"} ` +
      `records ${srv?.records ?? "?"} tunnels ${st.tunnels.length}`;
    rows.push(row);
    if (process.env.DIRLOAD_SIGNAL) process.kill(dir.proc.pid, process.env.DIRLOAD_SIGNAL as NodeJS.Signals);
    console.log(`[dirload ${stamp()}] ${row}`);
    if (snapshots && !snapped && Date.now() - t0 > Number(process.env.DIRLOAD_SNAP_AT ?? "60") * 1000) {
      process.kill(dir.proc.pid, "SIGUSR2");
      snapped = true;
    }
  }
  stopStatus = true;
  await statusLoop;
  if (snapshots) {
    process.kill(dir.proc.pid, "SIGUSR2");
    await sleep(5000);
  }
  fs.writeFileSync(path.join(out, "dirload.txt"), rows.join("\n") + "\n");
} catch (e) {
  console.error(`dirload: ${(e as Error).stack ?? String(e)}`);
  code = 1;
} finally {
  for (const p of procs) await p.stop().catch(() => undefined);
  for (const d of daemons) await d.stop().catch(() => undefined);
  await topo?.cleanup().catch(() => undefined);
}
process.exit(code);

async function startBareEnv(
  out: string,
  pki: ReturnType<typeof makePki>,
  files: ReturnType<typeof makeHost>,
  ns: Topology["hosts"][string]["ns"],
  env: NodeJS.ProcessEnv | undefined,
): Promise<RunningDaemon> {
  const wrap = process.env.DIRLOAD_WRAP?.split(" ").filter(Boolean) ?? [];
  if (wrap.length) {
    // e.g. DIRLOAD_WRAP="heaptrack -o /var/tmp/x/ht": the daemon under a memory profiler
    const { writeConfig, RunningDaemon: RD } = await import("../netns/mintun.js");
    const { waitFor } = await import("../netns/lib.js");
    const spec = {
      host: files,
      ns,
      caFile: pki.caFile,
      listen: "0.0.0.0:7000",
      peers: [],
      extra: "directory:\n  serve: true\n  registerPerSec: 50\n",
    };
    const { file, socket } = writeConfig(out, spec);
    const proc = ns.spawn(wrap[0]!, [...wrap.slice(1), "node", MINTUND, "--config", file], {
      logFile: path.join(out, "dir.log"),
      env,
    });
    const d = new RD(spec, proc, socket);
    await waitFor(() => d.status().catch(() => null), { timeoutMs: 60_000, what: "wrapped directory" });
    return d;
  }
  if (!env) return startBare(out, pki, files, ns, "directory:\n  serve: true\n  registerPerSec: 50\n");
  const { startDaemon } = await import("../netns/mintun.js");
  return startDaemon(
    out,
    {
      host: files,
      ns,
      caFile: pki.caFile,
      listen: "0.0.0.0:7000",
      peers: [],
      extra: "directory:\n  serve: true\n  registerPerSec: 50\n",
      env,
    },
    false,
  );
}
