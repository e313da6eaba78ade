/**
 * Start-up trace: when each step of a daemon's start happened, in ms since the process
 * started (performance.now(), whose origin is the process start). No I/O here: the daemon
 * logs the marks at debug level once its first tunnel is up and, with
 * MINTUN_STARTUP_TRACE=FILE, appends them to FILE as one JSON line (docs/PERFORMANCE.md,
 * "Start-up"; test/bench reads those lines).
 *
 * Each step is kept once (its first time); after `first-tunnel` (or `done()`) a mark is a
 * single boolean test, so the calls in the engine's creation path cost nothing later.
 */
import { performance } from "node:perf_hooks";

/** the steps in start order (a step can be missing: no record fetch with a cached record) */
export const STARTUP_STEPS = [
  "node", // Node's own bootstrap done (performance.nodeTiming.bootstrapComplete)
  "entry", // bin/mintund runs (before the daemon code is loaded)
  "modules", // the daemon code and its packages are loaded: main() runs
  "config", // config file parsed, logger made
  "keys", // CA, host certificate and key read and verified
  "checks", // peers resolved, policy and users loaded, protocol self-test
  "devices", // UDP socket bound, TUN open with its addresses, MTU and routes
  "engine", // engine made, peers added (record requests sent, cached records installed)
  "ready", // API socket listening, readers started, READY=1 sent
  "record", // first peer record learned from the network
  "create", // first CREATE sent
  "first-tunnel", // first tunnel established (REPLY verified, or a CREATE accepted and confirmed)
] as const;
export type StartupStep = (typeof STARTUP_STEPS)[number];

const NETWORK_STEPS = new Set<StartupStep>(["record", "create", "first-tunnel"]);
const marks = new Map<StartupStep, number>();
/** CPU time (user + system, all threads) used until the first tunnel, in ms */
let cpuAtFirstTunnel: number | null = null;
let open = true;
let onFirstTunnel: (() => void) | null = null;

/** Note a step (its first time only). */
export function startupMark(step: StartupStep, at = performance.now()): void {
  if (!open || marks.has(step)) return;
  // the network steps count from the daemon's engine on (not the in-memory self-test's)
  if (NETWORK_STEPS.has(step) && !marks.has("engine")) return;
  marks.set(step, Math.round(at * 10) / 10);
  if (step === "first-tunnel") {
    const cu = process.cpuUsage();
    cpuAtFirstTunnel = Math.round((cu.user + cu.system) / 100) / 10;
    open = false;
    const cb = onFirstTunnel;
    onFirstTunnel = null;
    cb?.();
  }
}

/** The marks so far, in step order, plus the wall-clock time of the process start. */
export function startupMarks(): {
  origin: number;
  marks: Partial<Record<StartupStep | "launch" | "cpu", number>>;
} {
  const out: Partial<Record<StartupStep | "launch" | "cpu", number>> = {};
  for (const s of STARTUP_STEPS) {
    const v = marks.get(s);
    if (v !== undefined) out[s] = v;
  }
  // the process's CPU time until its first tunnel (less sensitive to a loaded machine)
  if (cpuAtFirstTunnel !== null) out.cpu = cpuAtFirstTunnel;
  return { origin: Math.round(performance.timeOrigin), marks: out };
}

/** Called once when the first tunnel is up (at once if it already is). */
export function onStartupDone(cb: () => void): void {
  if (!open) cb();
  else onFirstTunnel = cb;
}

let reported = false;
/** Stop noting; true the first time only (the trace is reported once per process). */
export function startupDone(): boolean {
  open = false;
  onFirstTunnel = null;
  if (reported) return false;
  reported = true;
  return true;
}

/** The node and entry marks: Node's bootstrap and bin/mintund's own start (globalThis.mintunEntryMs). */
export function startupMarkProcess(): void {
  const nt = performance.nodeTiming as { bootstrapComplete?: number };
  if (typeof nt.bootstrapComplete === "number" && nt.bootstrapComplete > 0)
    startupMark("node", nt.bootstrapComplete);
  const entry = (globalThis as { mintunEntryMs?: unknown }).mintunEntryMs;
  if (typeof entry === "number") startupMark("entry", entry);
}
