// Network-namespace test library: namespaces, tracked processes, LAN and routed topologies
// (with the userspace delay router), and measurement helpers (ping, curl, iperf3, tcpdump).
//
// Safety: every command runs inside a namespace created here (`ip -n NS ...`,
// `ip netns exec NS ...`); the root namespace is never modified. Processes are tracked and
// stopped by PID; namespaces are deleted by name. A process-wide registry removes whatever is
// left at process exit (or SIGINT/SIGTERM), so a failed test leaves nothing behind.
import { execFile, execFileSync, spawn as spawnChild, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { formatIp6, ipv4ToNumber, numberToIpv4, parseIp4, parseIp6 } from "../../src/ip/ip.js";
import { flightsBefore, readIp4, readUdp } from "./pcap.js";

export const DELAY_ROUTER_PY = fileURLToPath(new URL("../tools/delay-router.py", import.meta.url));

const RUN_TAG = `mt${process.pid % 100000}`;
const RUN_DIR = join(tmpdir(), `mintun-netns-${process.pid}`);
const DEFAULT_EXEC_TIMEOUT_MS = 30_000;

// ------------------------------------------------------------------ small utilities

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface ExecResult {
  code: number; // exit code; -1 if killed by a signal or not started
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface ExecOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** execFile without a shell; never rejects. On timeout the child is SIGKILLed (by PID). */
export function execCmd(file: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeout = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout, killSignal: "SIGKILL", maxBuffer: 64 << 20, encoding: "utf8", env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ code: 0, signal: null, stdout, stderr, timedOut: false });
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: NodeJS.Signals | null };
        const code = typeof e.code === "number" ? e.code : -1;
        const extra = typeof e.code === "string" ? `${e.code}: ${e.message}` : "";
        resolve({
          code,
          signal: e.signal ?? null,
          stdout: stdout ?? "",
          stderr: (stderr ?? "") + extra,
          timedOut: e.killed === true && e.signal === "SIGKILL",
        });
      },
    );
  });
}

function describeFailure(file: string, args: readonly string[], r: ExecResult): string {
  const how = r.timedOut ? "timed out" : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const out = r.stdout.trim() ? `\nstdout: ${r.stdout.trim().slice(-2000)}` : "";
  return `\`${[file, ...args].join(" ")}\` failed (${how})\nstderr: ${r.stderr.trim().slice(-2000)}${out}`;
}

/** Like execCmd, but throws (with stderr and stdout in the message) unless the exit code is 0. */
export async function execOk(
  file: string,
  args: readonly string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const r = await execCmd(file, args, opts);
  if (r.code !== 0) throw new Error(describeFailure(file, args, r));
  return r;
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  what?: string;
}

/** Polls fn until it returns a truthy value (which is returned). Exceptions count as "not yet". */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const why = lastErr instanceof Error ? `: last error: ${lastErr.message}` : "";
      throw new Error(`waitFor(${opts.what ?? "condition"}) timed out after ${timeoutMs} ms${why}`);
    }
    await sleep(intervalMs);
  }
}

function runDir(): string {
  mkdirSync(RUN_DIR, { recursive: true });
  return RUN_DIR;
}

let logSeq = 0;
function defaultLogFile(ns: string, cmd: string): string {
  const base = cmd.split("/").pop() ?? "proc";
  return join(runDir(), `${ns}.${base}.${++logSeq}.log`);
}

function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ tracked processes

export class Proc {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private done = false;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(
    readonly ns: Netns,
    readonly argv: readonly string[],
    readonly logFile: string,
    child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new Error(`spawn ${argv.join(" ")} in ${ns.name}: no pid`);
    this.pid = child.pid;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.done = true;
        this.exitInfo = { code, signal };
        resolve({ code, signal });
      });
    });
  }

  get running(): boolean {
    return !this.done;
  }

  get exitStatus(): { code: number | null; signal: NodeJS.Signals | null } | null {
    return this.exitInfo;
  }

  readLog(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }

  /** Waits until the log (stdout+stderr) matches re; fails early if the process exits. */
  async waitForLog(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return waitFor(
      () => {
        const m = this.readLog().match(re);
        if (m) return m;
        if (this.done) {
          throw new Error(
            `${this.argv[0]} exited (${JSON.stringify(this.exitInfo)}); log: ${this.readLog().slice(-1500)}`,
          );
        }
        return null;
      },
      { timeoutMs, intervalMs: 20, what: `${this.argv.join(" ")} log ${re}` },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\nlog ${this.logFile}:\n${this.readLog().slice(-1500)}`);
    });
  }

  /** SIGTERM, wait up to graceMs, then SIGKILL; by PID. Idempotent. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.done) return;
    try {
      process.kill(this.pid, "SIGTERM");
    } catch {
      // already gone
    }
    const t = sleep(graceMs).then(() => "timeout" as const);
    if ((await Promise.race([this.exited, t])) === "timeout" && !this.done) {
      try {
        process.kill(this.pid, "SIGKILL");
      } catch {
        // already gone
      }
      await Promise.race([this.exited, sleep(2000)]);
    }
    this.ns.untrack(this);
  }

  /** Sends a signal by PID (e.g. SIGUSR1, SIGHUP). */
  signal(sig: NodeJS.Signals): void {
    if (!this.done) process.kill(this.pid, sig);
  }

  /** Synchronous best-effort kill (exit handler). */
  killSync(): void {
    if (this.done || !pidAlive(this.pid)) return;
    try {
      process.kill(this.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

// ------------------------------------------------------------------ namespaces

const registry = new Set<Netns>();
let exitHooked = false;

function syncCleanupAll(): void {
  for (const ns of [...registry]) ns.destroySync();
  for (const u of [...osUsers]) deleteOsUserSync(u);
  if (process.env.NETNS_KEEP_LOGS !== "1") {
    try {
      rmSync(RUN_DIR, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on("exit", syncCleanupAll);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const h = (): void => {
      syncCleanupAll();
      process.removeListener(sig, h);
      // nobody else handles it: restore the default action (terminate)
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, h);
  }
}

export interface SpawnOptions {
  logFile?: string;
  env?: NodeJS.ProcessEnv;
}

export class Netns {
  private readonly procs = new Set<Proc>();
  private destroyed = false;

  private constructor(readonly name: string) {}

  /** Creates namespace `mt<pid%100000>-<name>` with lo up. */
  static async create(name: string): Promise<Netns> {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad namespace name ${JSON.stringify(name)}`);
    hookExit();
    const full = `${RUN_TAG}-${name}`;
    await execOk("ip", ["netns", "add", full]);
    const ns = new Netns(full);
    registry.add(ns);
    await ns.ip("link", "set", "lo", "up");
    return ns;
  }

  /** Runs cmd inside the namespace (no shell). Never rejects; see ExecResult. */
  exec(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return execCmd("ip", ["netns", "exec", this.name, cmd, ...args], opts);
  }

  /** Like exec, but throws with stderr unless the exit code is 0. */
  execOk(cmd: string, args: readonly string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return execOk("ip", ["netns", "exec", this.name, cmd, ...args], opts);
  }

  /** `ip -n NS args...`; throws with ip's stderr on failure. Returns stdout. */
  async ip(...args: string[]): Promise<string> {
    return (await execOk("ip", ["-n", this.name, ...args])).stdout;
  }

  async sysctl(key: string, value: string | number): Promise<void> {
    await this.execOk("sysctl", ["-q", "-w", `${key}=${value}`]);
  }

  /** Starts a tracked background process; stdout+stderr go to logFile (default: per-run tmp dir). */
  spawn(cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): Proc {
    if (this.destroyed) throw new Error(`netns ${this.name} destroyed`);
    const logFile = opts.logFile ?? defaultLogFile(this.name, cmd);
    const fd = openSync(logFile, "a");
    let child: ChildProcess;
    try {
      // `ip netns exec` execs the command (no fork), so child.pid is the command's pid
      child = spawnChild("ip", ["netns", "exec", this.name, cmd, ...args], {
        stdio: ["ignore", fd, fd],
        env: opts.env ?? process.env,
      });
    } finally {
      closeSync(fd);
    }
    const p = new Proc(this, [cmd, ...args], logFile, child);
    this.procs.add(p);
    child.once("error", () => undefined);
    return p;
  }

  /** @internal */
  untrack(p: Proc): void {
    this.procs.delete(p);
  }

  get tracked(): Proc[] {
    return [...this.procs].filter((p) => p.running);
  }

  /** PIDs of all processes inside the namespace (ours or not). */
  async pids(): Promise<number[]> {
    const r = await execCmd("ip", ["netns", "pids", this.name]);
    return r.stdout
      .split(/\s+/)
      .filter(Boolean)
      .map((s) => Number(s));
  }

  /** Stops tracked processes, kills anything else left inside (by PID), deletes the namespace. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await Promise.all([...this.procs].map((p) => p.stop(2000)));
    for (let i = 0; i < 20; i++) {
      const left = await this.pids();
      if (left.length === 0) break;
      for (const pid of left) {
        try {
          process.kill(pid, i < 10 ? "SIGTERM" : "SIGKILL");
        } catch {
          // gone
        }
      }
      await sleep(100);
    }
    const r = await execCmd("ip", ["netns", "del", this.name]);
    this.destroyed = true;
    registry.delete(this);
    if (r.code !== 0 && !/No such file/.test(r.stderr))
      throw new Error(describeFailure("ip", ["netns", "del", this.name], r));
  }

  /** Synchronous best effort (process exit). */
  destroySync(): void {
    if (this.destroyed) return;
    for (const p of this.procs) p.killSync();
    try {
      const out = execFileSync("ip", ["netns", "pids", this.name], { encoding: "utf8", stdio: "pipe" });
      for (const pid of out.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // gone
        }
      }
    } catch {
      // namespace already gone
    }
    try {
      execFileSync("ip", ["netns", "del", this.name], { stdio: "pipe" });
    } catch {
      // best effort
    }
    this.destroyed = true;
    registry.delete(this);
  }
}

/** Namespaces created by this process and not yet destroyed. */
export function liveNamespaces(): string[] {
  return [...registry].map((n) => n.name);
}

/** All namespace names in the kernel's list (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const r = await execOk("ip", ["netns", "list"]);
  return r.stdout
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((s): s is string => Boolean(s));
}

/** Namespace prefix of this process: `mt<pid%100000>-`. */
export const NS_PREFIX = `${RUN_TAG}-`;

// ------------------------------------------------------------------ addressing

// the one IP module (src/ip/ip.ts) parses and formats; only the subnet arithmetic is here
function parse4(a: string): number {
  if (!parseIp4(a)) throw new Error(`bad IPv4 ${a}`);
  return ipv4ToNumber(a);
}
function parse6(a: string): bigint {
  const b = parseIp6(a);
  if (!b) throw new Error(`bad IPv6 ${a}`);
  return BigInt(`0x${b.toString("hex")}`);
}
function format6(n: bigint): string {
  return formatIp6(Buffer.from(n.toString(16).padStart(32, "0"), "hex"));
}

interface Subnet {
  hostAddr(i: number): string; // i-th address after the network address
  prefix: number;
  size: bigint;
}
function subnet(cidr: string): Subnet {
  const [addr, len] = cidr.split("/");
  const prefix = Number(len);
  if (!addr || !Number.isInteger(prefix)) throw new Error(`bad subnet ${cidr}`);
  if (addr.includes(":")) {
    const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(128 - prefix);
    const net = parse6(addr) & mask;
    return { prefix, size: 1n << BigInt(128 - prefix), hostAddr: (i) => format6(net + BigInt(i)) };
  }
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const net = (parse4(addr) & mask) >>> 0;
  return { prefix, size: 1n << BigInt(32 - prefix), hostAddr: (i) => numberToIpv4((net + i) >>> 0) };
}

// ------------------------------------------------------------------ topologies

export interface Host {
  name: string;
  ns: Netns;
  /** underlay interface in the host namespace */
  dev: string;
  addr4: string;
  addr6: string;
  prefix4: number;
  prefix6: number;
  /** gateway (the router) in routed topologies */
  gw4?: string;
  gw6?: string;
}

let topoSeq = 0;

export class Topology {
  readonly namespaces: Netns[] = [];
  readonly hosts: Record<string, Host> = {};
  readonly switches: Netns[] = [];
  router?: Netns;
  readonly routerLinks: string[] = [];
  delayRouter?: DelayRouter;

  constructor(readonly id: string) {}

  host(name: string): Host {
    const h = this.hosts[name];
    if (!h) throw new Error(`no host ${name} in topology ${this.id}`);
    return h;
  }

  async addNs(name: string): Promise<Netns> {
    const ns = await Netns.create(`${this.id}-${name}`);
    this.namespaces.push(ns);
    return ns;
  }

  /** Running processes tracked in any namespace of this topology. */
  get tracked(): Proc[] {
    return this.namespaces.flatMap((n) => n.tracked);
  }

  /** Stops everything and deletes all namespaces. Idempotent; reports the first error after trying all. */
  async cleanup(): Promise<void> {
    let first: unknown;
    if (this.delayRouter) await this.delayRouter.stop().catch((e: unknown) => (first ??= e));
    for (const ns of [...this.namespaces].reverse()) {
      await ns.destroy().catch((e: unknown) => (first ??= e));
    }
    this.namespaces.length = 0;
    if (first) throw first;
  }
}

function checkHostName(h: string): void {
  if (!/^[a-z0-9]{1,10}$/.test(h)) throw new Error(`host name ${JSON.stringify(h)}: use 1-10 of [a-z0-9]`);
}

export async function makeSwitch(topo: Topology, swName: string): Promise<Netns> {
  const sw = await topo.addNs(swName);
  topo.switches.push(sw);
  await sw.ip("link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0");
  await sw.ip("link", "set", "br0", "up");
  return sw;
}

/** veth: `swPort` in the switch (enslaved to br0), `dev` in the other namespace. */
export async function plug(sw: Netns, swPort: string, other: Netns, dev: string, mtu: number): Promise<void> {
  await sw.ip(
    "link",
    "add",
    swPort,
    "mtu",
    String(mtu),
    "type",
    "veth",
    "peer",
    "name",
    dev,
    "mtu",
    String(mtu),
    "netns",
    other.name,
  );
  await sw.ip("link", "set", swPort, "master", "br0");
  await sw.ip("link", "set", swPort, "up");
}

export async function addrUp(
  ns: Netns,
  dev: string,
  a4: string,
  p4: number,
  a6: string,
  p6: number,
): Promise<void> {
  await ns.sysctl(`net.ipv6.conf.${dev}.accept_dad`, 0);
  await ns.ip("addr", "add", `${a4}/${p4}`, "dev", dev);
  await ns.ip("-6", "addr", "add", `${a6}/${p6}`, "dev", dev, "nodad");
  await ns.ip("link", "set", dev, "up");
}

/**
 * Waits until dev is operationally up and has a usable (non-tentative) IPv6 link-local
 * address. The kernel's linkwatch applies carrier changes up to 1 s late, and until then
 * IPv6 neighbour solicitations from a router are not sent (no link-local source), which
 * shows up as a ~1 s stall of the first forwarded IPv6 packets.
 */
export async function waitLinkReady(ns: Netns, dev: string, timeoutMs = 5000): Promise<void> {
  await waitFor(
    async () => {
      const link = await ns.ip("-o", "link", "show", "dev", dev);
      if (!/state (UP|UNKNOWN)/.test(link) || /NO-CARRIER/.test(link)) return false;
      const a = await ns.ip("-o", "-6", "addr", "show", "dev", dev, "scope", "link");
      return /fe80::/.test(a) && !/tentative/.test(a);
    },
    { timeoutMs, intervalMs: 25, what: `${dev} ready in ${ns.name}` },
  );
}

async function waitAllLinks(topo: Topology): Promise<void> {
  const waits: Promise<void>[] = Object.values(topo.hosts).map((h) => waitLinkReady(h.ns, h.dev));
  if (topo.router) for (const l of topo.routerLinks) waits.push(waitLinkReady(topo.router, l));
  await Promise.all(waits);
}

export interface LanOptions {
  hosts: string[];
  subnet4?: string; // default 10.201.0.0/24
  subnet6?: string; // default fd01::/64
  mtu?: number; // default 1500
}

/** A bridge namespace ("sw") with a veth to each host namespace; host i gets .(i+1) / ::(i+1). */
export async function createLan(opts: LanOptions): Promise<Topology> {
  const topo = new Topology(`${++topoSeq}`);
  try {
    const s4 = subnet(opts.subnet4 ?? "10.201.0.0/24");
    const s6 = subnet(opts.subnet6 ?? "fd01::/64");
    const mtu = opts.mtu ?? 1500;
    const sw = await makeSwitch(topo, "sw");
    let i = 0;
    for (const h of opts.hosts) {
      checkHostName(h);
      if (topo.hosts[h]) throw new Error(`duplicate host ${h}`);
      i++;
      const ns = await topo.addNs(h);
      await plug(sw, `p-${h}`, ns, "eth0", mtu);
      const host: Host = {
        name: h,
        ns,
        dev: "eth0",
        addr4: s4.hostAddr(i),
        addr6: s6.hostAddr(i),
        prefix4: s4.prefix,
        prefix6: s6.prefix,
      };
      await addrUp(ns, "eth0", host.addr4, host.prefix4, host.addr6, host.prefix6);
      topo.hosts[h] = host;
    }
    await waitAllLinks(topo);
    return topo;
  } catch (e) {
    await topo.cleanup().catch(() => undefined);
    throw e;
  }
}

export interface SideOptions {
  hosts: string[];
  subnet4?: string; // default 10.201.<side+1>.0/24
  subnet6?: string; // default fd01:<side+1>::/64
}

export interface RoutedOptions {
  sides: SideOptions[];
  delayMs?: number; // each way, default 0
  lossPct?: number; // each way, default 0
  mtu?: number; // link MTU, default 1500
}

/**
 * Hosts on two or more LANs (one bridge namespace per side) joined by a router namespace
 * that runs the delay router: every packet between sides is held delayMs (per direction)
 * and dropped with lossPct. Hosts get .1, .2, ... (and ::1, ::2, ...); the router is the
 * last-but-one address of each subnet, capped at .254 / ::fe, and is every host's default
 * route (v4 and v6).
 */
export async function createRouted(opts: RoutedOptions): Promise<Topology> {
  const topo = new Topology(`${++topoSeq}`);
  try {
    if (opts.sides.length < 2) throw new Error("createRouted needs at least two sides");
    const mtu = opts.mtu ?? 1500;
    const router = await topo.addNs("router");
    topo.router = router;
    await router.sysctl("net.ipv4.conf.all.rp_filter", 0);
    await router.sysctl("net.ipv4.conf.default.rp_filter", 0);
    const links: string[] = [];
    const seen = new Set<string>();
    for (const [si, side] of opts.sides.entries()) {
      const s4 = subnet(side.subnet4 ?? `10.201.${si + 1}.0/24`);
      const s6 = subnet(side.subnet6 ?? `fd01:${si + 1}::/64`);
      const rIdx = Number(s4.size - 2n < 254n ? s4.size - 2n : 254n);
      const gw4 = s4.hostAddr(rIdx);
      const gw6 = s6.hostAddr(0xfe);
      const sw = await makeSwitch(topo, `sw${si}`);
      const link = `r${si}`;
      await plug(sw, "p-router", router, link, mtu);
      await addrUp(router, link, gw4, s4.prefix, gw6, s6.prefix);
      links.push(link);
      topo.routerLinks.push(link);
      let i = 0;
      for (const h of side.hosts) {
        checkHostName(h);
        if (seen.has(h)) throw new Error(`duplicate host ${h}`);
        seen.add(h);
        i++;
        if (i >= rIdx) throw new Error(`subnet ${side.subnet4} too small`);
        const ns = await topo.addNs(h);
        await plug(sw, `p-${h}`, ns, "eth0", mtu);
        const host: Host = {
          name: h,
          ns,
          dev: "eth0",
          addr4: s4.hostAddr(i),
          addr6: s6.hostAddr(i),
          prefix4: s4.prefix,
          prefix6: s6.prefix,
          gw4,
          gw6,
        };
        await addrUp(ns, "eth0", host.addr4, host.prefix4, host.addr6, host.prefix6);
        await ns.ip("route", "add", "default", "via", gw4);
        await ns.ip("-6", "route", "add", "default", "via", gw6);
        topo.hosts[h] = host;
      }
    }
    await waitAllLinks(topo);
    topo.delayRouter = await startDelayRouter(router, links, {
      delayMs: opts.delayMs ?? 0,
      lossPct: opts.lossPct ?? 0,
    });
    return topo;
  } catch (e) {
    await topo.cleanup().catch(() => undefined);
    throw e;
  }
}

export interface RoutedPairOptions {
  a?: string[]; // hosts on side 0, default ["a"]
  b?: string[]; // hosts on side 1, default ["b"]
  delayMs?: number;
  lossPct?: number;
  mtu?: number;
}

/** Two sides (10.201.1.0/24 + fd01:1::/64, 10.201.2.0/24 + fd01:2::/64) joined by the delay router. */
export function createRoutedPair(opts: RoutedPairOptions = {}): Promise<Topology> {
  return createRouted({
    sides: [{ hosts: opts.a ?? ["a"] }, { hosts: opts.b ?? ["b"] }],
    delayMs: opts.delayMs,
    lossPct: opts.lossPct,
    mtu: opts.mtu,
  });
}

// ------------------------------------------------------------------ delay router

export interface Impairment {
  delayMs: number;
  lossPct: number;
}

export class DelayRouter {
  private applied = 0;
  private stopped = false;

  constructor(
    readonly ns: Netns,
    readonly links: readonly string[],
    readonly tuns: readonly string[],
    readonly proc: Proc,
    readonly controlFile: string,
    private readonly rules: string[][],
    public current: Impairment,
  ) {}

  /** Changes delay/loss at run time (SIGUSR1 + control file); resolves once the script applied it. */
  async set(imp: Partial<Impairment>): Promise<void> {
    const next = { ...this.current, ...imp };
    writeFileSync(this.controlFile, JSON.stringify(next));
    const want = ++this.applied;
    this.proc.signal("SIGUSR1");
    await waitFor(
      () => {
        const lines = this.proc.readLog().match(/^applied .*$/gm) ?? [];
        if (lines.length >= want) {
          const last = lines[want - 1]!;
          if (last.includes("error=")) throw new Error(last);
          return true;
        }
        return false;
      },
      { timeoutMs: 5000, intervalMs: 10, what: "delay router applied" },
    );
    this.current = next;
  }

  /** Counters printed by the script on exit (after stop()). */
  stats(): Record<string, number> {
    const m = this.proc.readLog().match(/^stats (.*)$/m);
    const out: Record<string, number> = {};
    for (const kv of m?.[1]?.split(" ") ?? []) {
      const [k, v] = kv.split("=");
      if (k && v) out[k] = Number(v);
    }
    return out;
  }

  /** Stops the script (its TUNs and their routes vanish) and deletes the rules it was given. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.proc.stop();
    for (const r of this.rules)
      await execCmd("ip", ["-n", this.ns.name, ...r.map((x) => (x === "add" ? "del" : x))]);
    rmSync(this.controlFile, { force: true });
  }
}

/**
 * Turns `ns` into a delaying router between `links` (interfaces already in ns, with addresses):
 * forwarding on, rp_filter off, delay-router.py owning TUN `dr<i>` per link, and for each link
 * `ip [-6] rule add iif LINK lookup 100+i` with `default dev dr<i>` in table 100+i.
 */
export async function startDelayRouter(
  ns: Netns,
  links: readonly string[],
  imp: Partial<Impairment> = {},
): Promise<DelayRouter> {
  if (links.length < 2) throw new Error("delay router needs at least two links");
  const current: Impairment = { delayMs: imp.delayMs ?? 0, lossPct: imp.lossPct ?? 0 };
  await ns.sysctl("net.ipv4.ip_forward", 1);
  await ns.sysctl("net.ipv6.conf.all.forwarding", 1);
  await ns.sysctl("net.ipv4.conf.all.rp_filter", 0);
  await ns.sysctl("net.ipv4.conf.default.rp_filter", 0);
  await ns.sysctl("net.ipv4.conf.all.send_redirects", 0);
  for (const l of links) await ns.sysctl(`net.ipv4.conf.${l}.rp_filter`, 0);
  const tuns = links.map((_, i) => `dr${i}`);
  const controlFile = join(runDir(), `${ns.name}.delay-router.json`);
  writeFileSync(controlFile, JSON.stringify(current));
  const proc = ns.spawn("python3", [
    "-u",
    DELAY_ROUTER_PY,
    ...tuns.flatMap((t) => ["--tun", t]),
    "--delay-ms",
    String(current.delayMs),
    "--loss-pct",
    String(current.lossPct),
    "--control",
    controlFile,
  ]);
  const rules: string[][] = [];
  const dr = new DelayRouter(ns, links, tuns, proc, controlFile, rules, current);
  try {
    await proc.waitForLog(/^ready/m, 10_000);
    for (const [i, link] of links.entries()) {
      const table = String(100 + i);
      await ns.sysctl(`net.ipv4.conf.${tuns[i]}.rp_filter`, 0);
      for (const fam of ["-4", "-6"]) {
        await ns.ip(fam, "route", "add", "default", "dev", tuns[i]!, "table", table);
        const rule = [fam, "rule", "add", "iif", link, "lookup", table, "pref", String(1000 + i)];
        await ns.ip(...rule);
        rules.push(rule);
      }
    }
  } catch (e) {
    await dr.stop().catch(() => undefined);
    throw e;
  }
  return dr;
}

// ------------------------------------------------------------------ measurements

export interface PingStats {
  sent: number;
  received: number;
  lossPct: number;
  avgMs: number; // NaN if no reply
  rtts: number[];
}

export interface PingOptions {
  count?: number; // default 10
  interval?: number; // seconds, default 0.05 (root may go below 0.2)
  size?: number; // payload bytes (-s)
  dontFragment?: boolean; // -M do
  waitS?: number; // -W, default 2
  /**
   * Wait for every reply (up to count * interval + waitS): iputils ping with -c alone stops
   * listening twice the largest round trip after its last request once one reply came
   * (-W counts only while none came), so a reply a few ms later than the others is
   * reported lost although it arrived (the kernel's IcmpInEchoReps counts it). With this,
   * ping runs with -w (deadline) and only replies to the first `count` requests count.
   * Default true (a CI run lost "1 of 2" this way in directory.test.ts); false: plain -c.
   */
  waitAll?: boolean;
}

/** `ping -n -c count -i interval addr` (v4 or v6 by address) inside ns. */
export async function pingStats(ns: Netns, addr: string, opts: PingOptions = {}): Promise<PingStats> {
  const count = opts.count ?? 10;
  const interval = opts.interval ?? 0.05;
  const waitS = opts.waitS ?? 2;
  const waitAll = opts.waitAll ?? true;
  const args = ["-n", "-c", String(count), "-i", String(interval), "-W", String(waitS)];
  const deadline = Math.ceil(count * interval + waitS);
  if (waitAll) args.push("-w", String(deadline));
  if (opts.size !== undefined) args.push("-s", String(opts.size));
  if (opts.dontFragment) args.push("-M", "do");
  args.push(addr);
  const timeoutMs = (count * interval + waitS + 10) * 1000;
  const r = await ns.exec("ping", args, { timeoutMs });
  const m = r.stdout.match(/(\d+) packets transmitted, (\d+) received/);
  if (!m) throw new Error(`ping ${addr} in ${ns.name}: no summary\n${r.stdout}\n${r.stderr}`);
  const replies = [...r.stdout.matchAll(/^\d+ bytes from .*icmp_seq=(\d+).* time=([\d.]+) ms$/gm)]
    .filter((x) => !x[0].includes("DUP!"))
    // with -w, ping sends beyond count while replies are outstanding: those do not count
    .filter((x) => !waitAll || Number(x[1]) <= count);
  const rtts = replies.map((x) => Number(x[2]));
  const sent = waitAll ? count : Number(m[1]);
  const received = waitAll ? new Set(replies.map((x) => x[1])).size : Number(m[2]);
  return {
    sent,
    received,
    lossPct: sent ? (100 * (sent - received)) / sent : 100,
    avgMs: rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : NaN,
    rtts,
  };
}

/**
 * Pings every intervalMs until the first reply; returns ms from the first echo request to
 * that reply ((seq-1)*interval + rtt), as anchors.sh does. Runs without -c/-w so that ICMP
 * errors before the path exists do not end ping early.
 */
export async function firstPingMs(
  ns: Netns,
  addr: string,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<{ ms: number; seq: number }> {
  const intervalMs = opts.intervalMs ?? 10;
  const p = ns.spawn("ping", ["-n", "-i", String(intervalMs / 1000), addr]);
  try {
    const m = await p.waitForLog(/icmp_seq=(\d+).* time=([\d.]+) ms/, opts.timeoutMs ?? 10_000);
    const seq = Number(m[1]);
    return { ms: (seq - 1) * intervalMs + Number(m[2]), seq };
  } finally {
    await p.stop(1000);
  }
}

/** Resolves once something listens on TCP ("t") or UDP ("u") `port` in ns; throws if `proc` exits first. */
export async function waitListening(ns: Netns, port: number, proto: "t" | "u", proc?: Proc): Promise<void> {
  await waitFor(
    async () => {
      if (proc && !proc.running) throw new Error(`exited early: ${proc.readLog().slice(-1000)}`);
      const r = await ns.exec("ss", [`-Hln${proto}`, `sport = :${port}`]);
      return r.code === 0 && r.stdout.trim().length > 0;
    },
    { timeoutMs: 10_000, intervalMs: 25, what: `port ${port} listening in ${ns.name}` },
  );
}

/** `python3 -m http.server PORT --bind :: --directory DIR` (dual stack); resolves once listening. */
export async function startHttpServer(ns: Netns, dir: string, port = 8080): Promise<Proc> {
  const p = ns.spawn("python3", ["-m", "http.server", String(port), "--bind", "::", "--directory", dir]);
  try {
    await waitListening(ns, port, "t", p);
  } catch (e) {
    await p.stop();
    throw e;
  }
  return p;
}

export interface CurlResult {
  code: number; // HTTP status, 0 if no response
  totalMs: number;
  connectMs: number;
  bytes: number;
  exitCode: number; // curl's exit code (0 = ok)
  stderr: string;
}

/** `curl -s -o /dev/null -w ...` inside ns. Does not throw on failure: check code/exitCode. */
export async function curlTimed(
  ns: Netns,
  url: string,
  opts: { maxTimeS?: number } = {},
): Promise<CurlResult> {
  const maxTime = opts.maxTimeS ?? 20;
  const r = await ns.exec(
    "curl",
    [
      "-g",
      "-sS",
      "-o",
      "/dev/null",
      "--max-time",
      String(maxTime),
      "-w",
      "%{http_code} %{time_total} %{time_connect} %{size_download}",
      url,
    ],
    { timeoutMs: (maxTime + 5) * 1000 },
  );
  const [code, total, connect, bytes] = r.stdout.trim().split(/\s+/).map(Number);
  return {
    code: code ?? 0,
    totalMs: (total ?? NaN) * 1000,
    connectMs: (connect ?? NaN) * 1000,
    bytes: bytes ?? 0,
    exitCode: r.code,
    stderr: r.stderr,
  };
}

export interface IperfResult {
  mbps: number; // receiver rate
  retrans: number;
  bytes: number;
}

export interface IperfOptions {
  port?: number; // default 5201
  parallel?: number; // -P
  reverse?: boolean; // -R
}

/** iperf3 TCP client in `client` against a one-off server (`iperf3 -s -1`) in server.ns. */
export async function iperf3(
  client: Netns,
  server: { ns: Netns; addr: string },
  seconds: number,
  opts: IperfOptions = {},
): Promise<IperfResult> {
  const port = opts.port ?? 5201;
  const srv = server.ns.spawn("iperf3", ["-s", "-1", "-p", String(port)]);
  try {
    await waitListening(server.ns, port, "t", srv);
    const args = [
      "-c",
      server.addr,
      "-p",
      String(port),
      "-t",
      String(seconds),
      "-J",
      "--connect-timeout",
      "5000",
    ];
    if (opts.parallel) args.push("-P", String(opts.parallel));
    if (opts.reverse) args.push("-R");
    const r = await client.exec("iperf3", args, { timeoutMs: (seconds + 30) * 1000 });
    let j: {
      error?: string;
      end?: {
        sum_received?: { bits_per_second: number; bytes: number };
        sum_sent?: { retransmits?: number };
      };
    };
    try {
      j = JSON.parse(r.stdout) as typeof j;
    } catch {
      throw new Error(`iperf3 -c ${server.addr}: ${describeFailure("iperf3", args, r)}`);
    }
    const rx = j.end?.sum_received;
    if (r.code !== 0 || j.error || !rx)
      throw new Error(`iperf3 -c ${server.addr}: ${j.error ?? describeFailure("iperf3", args, r)}`);
    return { mbps: rx.bits_per_second / 1e6, retrans: j.end?.sum_sent?.retransmits ?? 0, bytes: rx.bytes };
  } finally {
    await Promise.race([srv.exited, sleep(2000)]);
    await srv.stop();
  }
}

export interface Capture {
  file: string;
  proc: Proc;
  stop(): Promise<void>;
}

/** tcpdump -i dev -U -s 0 -w file (filter default "udp"); resolves once tcpdump is listening. */
export async function startCapture(ns: Netns, dev: string, file: string, filter = "udp"): Promise<Capture> {
  const proc = ns.spawn("tcpdump", [
    "-i",
    dev,
    "-n",
    "-U",
    // without immediate mode, packets wait in a TPACKET_V3 block until it times out and are
    // lost if tcpdump is stopped first ("received by filter" but not "captured")
    "--immediate-mode",
    "-s",
    "0",
    "-Z",
    "root",
    "-w",
    file,
    ...filter.split(" "),
  ]);
  await proc.waitForLog(/listening on/, 10_000).catch(async (e: unknown) => {
    await proc.stop();
    throw e;
  });
  return { file, proc, stop: () => proc.stop() };
}

export interface RoundTripOptions {
  /** the measuring host's underlay interface and address */
  dev: string;
  addr: string;
  /** underlay addresses of the hosts it talks to (peers, directories) */
  peers: string[];
  /** its TUN device and the overlay address the answer comes from */
  tun: string;
  answerFrom: string;
  /** tcpdump filter for request and answer on the TUN, and-ed with the host (default: any packet) */
  answer?: string;
  /** the least round-trip time of the underlay (twice the delay router's delay) */
  minRttMs: number;
  /** where the capture files go */
  dir: string;
}

let rtSeq = 0;

/**
 * Runs fn while capturing the underlay and the TUN of one host, and counts the
 * round trips between the application's first packet to `answerFrom` entering the
 * TUN and the first answer coming out of it: the flights of datagrams the host sent
 * to `peers` in between that a datagram from a peer followed (flightsBefore). A
 * count of events on the wire, not a duration: CPU contention makes trips slower
 * but cannot add or remove one. `trace` lists the datagrams of the window.
 */
export async function roundTrips<T>(
  ns: Netns,
  o: RoundTripOptions,
  fn: () => Promise<T>,
): Promise<{ value: T; rounds: number; trace: string[] }> {
  const n = rtSeq++;
  const under = await startCapture(ns, o.dev, join(o.dir, `rt${n}-underlay.pcap`), "udp");
  let tun: Capture;
  try {
    const filter = `host ${o.answerFrom}` + (o.answer ? ` and ${o.answer}` : "");
    tun = await startCapture(ns, o.tun, join(o.dir, `rt${n}-tun.pcap`), filter);
  } catch (e) {
    await under.stop();
    throw e;
  }
  let value: T;
  try {
    value = await fn();
  } finally {
    await tun.stop();
    await under.stop();
  }
  const inner = readIp4(tun.file);
  const requestTs = inner.find((p) => p.dst === o.answerFrom)?.ts;
  const answerTs = inner.find((p) => p.src === o.answerFrom && p.ts >= (requestTs ?? Infinity))?.ts;
  if (requestTs === undefined || answerTs === undefined)
    throw new Error(`roundTrips: no request to / answer from ${o.answerFrom} on ${o.tun}`);
  const recs = readUdp(under.file);
  const ms = (t: number) => `+${((t - requestTs) * 1000).toFixed(1)} ms`;
  const trace = [`${ms(requestTs)} request on ${o.tun}`]
    .concat(
      recs
        .filter((r) => r.ts >= requestTs && r.ts < answerTs)
        .map(
          (r) =>
            `${ms(r.ts)} ${r.src}:${r.sport} > ${r.dst}:${r.dport} type ${r.payload[8]} len ${r.payload.length}`,
        ),
    )
    .concat(`${ms(answerTs)} answer on ${o.tun}`);
  return {
    value,
    rounds: flightsBefore(recs, o.addr, o.peers, answerTs, requestTs, o.minRttMs / 1000),
    trace,
  };
}

/** True if the capture file's bytes contain needle (e.g. a plaintext marker). */
export function captureContains(file: string, needle: Buffer): boolean {
  return readFileSync(file).includes(needle);
}

// ------------------------------------------------------------------ OS users

const osUsers = new Set<string>();

/** An OS user made by this process for a test: name, uid, gid (from `id`). */
export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/**
 * `useradd -M -s /usr/sbin/nologin NAME` (no home, no login shell). The user is deleted by
 * deleteOsUser, and at the latest when this process exits. Names must be unique per run
 * (e.g. `mta${process.pid}`) and at most 32 characters. Root only; /etc/passwd is shared by
 * every namespace, so the user exists on every test host.
 */
export async function createOsUser(name: string): Promise<OsUser> {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name)) throw new Error(`bad OS user name '${name}'`);
  hookExit();
  osUsers.add(name);
  await execOk("useradd", ["-M", "-s", "/usr/sbin/nologin", name]);
  const uid = Number((await execOk("id", ["-u", name])).stdout.trim());
  const gid = Number((await execOk("id", ["-g", name])).stdout.trim());
  return { name, uid, gid };
}

/** `userdel NAME` (its processes are the caller's to stop first). Idempotent. */
export async function deleteOsUser(name: string): Promise<void> {
  if (!osUsers.has(name)) return;
  const r = await execCmd("userdel", [name]);
  // 6: no such user (already gone)
  if (r.code !== 0 && r.code !== 6) throw new Error(`userdel ${name} failed: ${r.stderr.trim()}`);
  osUsers.delete(name);
}

function deleteOsUserSync(name: string): void {
  try {
    execFileSync("userdel", [name], { stdio: "ignore", timeout: 10_000 });
  } catch {
    // best effort (already gone)
  }
  osUsers.delete(name);
}
