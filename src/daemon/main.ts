/**
 * mintund entry point: `mintund --config FILE [--log-level L]`, `mintund --version`.
 * Exit codes: 0 clean stop, 1 start-up error (printed as one line), 2 usage,
 * 3 (EXIT_RUNNING) another mintund serves the same api.socket (it is left untouched),
 * 70 invariant break (daemon/tasks.ts).
 * Signals: SIGTERM/SIGINT stop (STOPPING=1), SIGHUP reloads the config
 * (RELOADING=1 ... READY=1). Under systemd ($NOTIFY_SOCKET) READY=1 is sent
 * once the TUN has its addresses and routes (see notify.ts).
 */
import { loadConfig, type LogLevel, LOG_LEVELS } from "../config/config.js";
import { AlreadyRunningError, MintunError } from "../errors.js";
import { createLogger } from "../log-pino.js";
import { Daemon } from "./daemon.js";
import { SystemdNotifier } from "./notify.js";
import { errorFields } from "./tasks.js";
import { EXIT_RUNNING } from "./lock.js";
import { packageVersion } from "../version.js";
import { native } from "../net/native.js";
import { startupMark, startupMarkProcess } from "../startup.js";

const USAGE = `usage: mintund --config FILE [--log-level error|warn|info|debug]
       mintund --version | --help

Runs the mintun daemon: opens the TUN device, the UDP socket and the local API
socket named in the config file. One daemon per API socket: a second start
with the same api.socket exits with status 3 and leaves the first alone.
Stop with SIGTERM or SIGINT; SIGHUP re-reads the config file (peers, tunnel
timers, routes, log level; a bad file is refused and the running config stays). Under systemd, readiness is reported with
sd_notify sent from this process ($NOTIFY_SOCKET; the unit has NotifyAccess=main).
A --log-level given here wins over log.level in the file, also on reload.`;

function parse(argv: string[]): { config: string; level?: LogLevel } | null {
  let config: string | undefined;
  let level: LogLevel | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [k, inline] = a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, undefined];
    const val = () => inline ?? argv[++i];
    if (k === "--config" || k === "-c") config = val();
    else if (k === "--log-level") {
      const l = val();
      if (!l || !LOG_LEVELS.includes(l as LogLevel)) return null;
      level = l as LogLevel;
    } else if ((k === "--version" || k === "-V") && argv.length === 1) {
      process.stdout.write(`mintund ${packageVersion(import.meta.url)} (node ${process.version})\n`);
      process.exit(0);
    } else if (k === "--help" || k === "-h") {
      process.stdout.write(USAGE + "\n");
      process.exit(0);
    } else return null;
  }
  return config ? { config, level } : null;
}

async function main(): Promise<number> {
  startupMarkProcess();
  startupMark("modules");
  const args = parse(process.argv.slice(2));
  if (!args) {
    process.stderr.write(USAGE + "\n");
    return 2;
  }
  let daemon: Daemon;
  const cfg = loadConfig(args.config);
  const log = createLogger(args.level ?? cfg.log.level);
  startupMark("config");
  // before any key is read: no core dump, no /proc/PID/mem or ptrace for same-uid processes
  // (prctl PR_SET_DUMPABLE 0 and RLIMIT_CORE 0; the systemd units also set LimitCORE=0)
  try {
    native().setDumpable(false);
  } catch (e) {
    log.log("warn", "cannot turn core dumps off; keys could land in a core file", errorFields(e));
  }
  try {
    daemon = await Daemon.start(cfg, log, {
      notifier: SystemdNotifier.fromEnv(log.child("notify")),
      logLevelOverride: args.level,
    });
  } catch (e) {
    if (e instanceof AlreadyRunningError) {
      process.stderr.write(`mintund: ${e.message}\n`);
      return EXIT_RUNNING;
    }
    if (e instanceof MintunError) {
      process.stderr.write(`mintund: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  // an exception outside every guarded task is an invariant break (daemon/tasks.ts):
  // one fatal log line with its fields, then exit 70 (systemd restarts the unit)
  const fatal = (what: string) => (e: unknown) => {
    log.log("error", "fatal: unexpected error outside a guarded task; exiting", {
      what,
      ...errorFields(e),
    });
    process.exit(70);
  };
  process.on("uncaughtException", fatal("uncaughtException"));
  process.on("unhandledRejection", fatal("unhandledRejection"));
  const onHup = () => {
    log.log("info", "signal", { sig: "SIGHUP" });
    daemon.reload().catch((e: unknown) => daemon.tasks.fail("reload", e));
  };
  process.on("SIGHUP", onHup);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.log("info", "signal", { sig });
      process.off("SIGHUP", onHup);
      daemon.stop().then(resolve, resolve);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof MintunError) {
      process.stderr.write(`mintund: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(
      `mintund: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exitCode = 70;
  },
);
