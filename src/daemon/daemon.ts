/**
 * Composition root of mintund: reads keys and certificates, opens the TUN and
 * the UDP socket, sets addresses and routes, wires the engine to them, runs
 * the coarse timer and serves the local API. It implements no protocol logic.
 */
import type * as http from "node:http";
import { readCert } from "../store/keyfile.js";
import { type Config, type LogLevel, effectiveConfig, restartRequired } from "../config/config.js";
import { MintunError } from "../errors.js";
import type { Logger } from "../log.js";
import { ApiServer } from "../api/server.js";
import type { Conn } from "../conn/conns.js";

import { TICK_MS } from "../tunnel/constants.js";
import { Engine, type DirectoryHooks } from "../tunnel/engine.js";
import type { HostCert } from "../wire/cert.js";
import type { RouteManager } from "../net/route.js";
import { LinuxTun, type TunDevice } from "../net/tun.js";
import type { UdpBind } from "../net/udp.js";
import { native } from "../net/native.js";
import { BatchOutput } from "./output.js";
import { spreadWriter, startWorkers, type DataWorkers } from "./workers.js";
import { RelayingOutput } from "../directory/relaypath.js";
import {
  checkAndOpen,
  loadHostKeys,
  makeEngine,
  overlayRoutes,
  reportStartup,
  resolvePeers,
  type DaemonDeps,
  dumpableNow,
  fileDigest,
} from "./bringup.js";

export type { DaemonDeps };
import { AddressWatcher } from "../net/watch.js";
import { TaskGuard } from "./tasks.js";
import { majorGc, MemoryTrim } from "./memory.js";
import {
  applyRevocation,
  applyTunnelOptions,
  readReloadInputs,
  syncOverlayRoutes,
  type ReloadInputs,
} from "./reload.js";
import { LoopDelay } from "./loopdelay.js";
import { DaemonLock } from "./lock.js";
import { EventRing, PeerHistory, PeerTotals, type Counts } from "./history.js";
import type { Observation } from "./metrics.js";
import { nullNotifier, type Notifier } from "./notify.js";
import { Directory } from "../directory/role.js";
import { buildStatus, whois, type NamesStatus, type ReloadStatus, type Status } from "./status.js";
import { DaemonIdentity } from "./identity.js";
import type { RecordCache } from "./records.js";
import { directoryAddresses, directoryNames, NameService, type NameAnswer } from "../names/names.js";
import { newDnsCounters, type DnsCounters } from "../names/dns.js";
import type { DnsServer } from "../names/server.js";
import { startDns } from "./dns.js";
import { certifiedSubnets, PeerSubnetRoutes, routeCmdOf, startGateway } from "../gateway/gateway.js";
import { isValidName } from "../wire/cert.js";
import { packageVersion } from "../version.js";
import { onStartupDone, startupMark } from "../startup.js";

/** `resolve` calls per second per unprivileged uid (each may cost a directory lookup). */
export const API_RESOLVE_PER_SEC = 2;

/** Samples for the web view's chart, once a second on the coarse tick (when metrics or the web view are on). */
export const SAMPLE_MS = 1000;
/** How often the TUN routes for peers' subnets are compared with the peers' certificates. */
export const SUBNET_SYNC_MS = 1000;

/** the version of the tree this runs from (dist/, or a bundle in the Debian package) */
function readVersion(): string {
  return packageVersion(import.meta.url);
}

export class Daemon {
  private timer: NodeJS.Timeout | null = null;
  /** a full GC and a C heap trim once a minute on the coarse timer (memory.ts: RSS stays flat) */
  private readonly memory = new MemoryTrim(() => native().mallocTrim(), Date.now(), { collect: majorGc() });
  private watcher: AddressWatcher | null = null;
  private closed = false;
  readonly startedAt: number;
  readonly version = readVersion();
  readonly events: EventRing;
  /** per-peer throughput for the web view's chart (bounded: history.ts); null: metrics and web off */
  history: PeerHistory | null = null;
  private readonly totals = new PeerTotals();
  private readonly servers: { what: string; srv: http.Server; url: string }[] = [];
  private notifier: Notifier = nullNotifier;
  private logLevelOverride: LogLevel | undefined;
  private routes: RouteManager | null = null;
  private identity: DaemonIdentity | null = null;
  /** configured peers' records on disk (records.ts) */
  records: RecordCache | null = null;
  private fileDigests: Record<string, string> = {};
  private reloadChain: Promise<unknown> = Promise.resolve();
  lastReload: ReloadStatus | null = null;
  readonly reloadCount = { ok: 0, failed: 0 };
  /** directory client and/or role (src/directory); null when neither is configured */
  directory: Directory | null = null;
  /** dataPath.workers > 1: the worker threads of the data path (workers.ts) */
  workers: DataWorkers | null = null;
  /** names for people: `mintun resolve` and DNS (src/names) */
  names!: NameService;
  private dns: DnsServer | null = null;
  private readonly dnsCounters: DnsCounters = newDnsCounters();
  private undoGateway: () => void = () => undefined;
  private subnetRoutes: PeerSubnetRoutes | null = null;
  private subnetTimer: NodeJS.Timeout | null = null;
  /** the API socket's lock (lock.ts), released last in close() */
  private lock: DaemonLock | null = null;
  /** guarded tasks: unexpected errors are counted and logged, the daemon goes on (tasks.ts) */
  readonly tasks: TaskGuard;
  /** event-loop delay (loopdelay.ts), status daemon.loopDelay */
  private readonly loopDelay = new LoopDelay();

  private constructor(
    public config: Config,
    readonly engine: Engine,
    readonly tun: TunDevice,
    readonly udp: UdpBind,
    readonly api: ApiServer,
    readonly log: Logger,
    private readonly now: () => number,
    events: EventRing,
  ) {
    this.startedAt = now();
    this.events = events;
    this.tasks = new TaskGuard(log.child("tasks"), now);
  }

  /**
   * Start a daemon. The first step is the lock of config.api.socket (lock.ts): a second
   * daemon for the same socket stops here with AlreadyRunningError and touches nothing.
   * The lock is held until close(), released last (after the socket is removed).
   */
  static async start(config: Config, log: Logger, deps: DaemonDeps = {}): Promise<Daemon> {
    const lock = DaemonLock.acquire(config.api.socket);
    try {
      const d = await Daemon.startLocked(config, log, deps);
      d.lock = lock;
      return d;
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  private static async startLocked(config: Config, log: Logger, deps: DaemonDeps): Promise<Daemon> {
    const now = deps.now ?? Date.now;
    const { ca, hostCert, sk } = loadHostKeys(config, Math.floor(now() / 1000));
    startupMark("keys");
    // peers: resolve endpoints before touching the system
    const peers = await resolvePeers(config);
    const { policy, identity, revocation, routes, udp, tun, queues } = await checkAndOpen(
      config,
      deps,
      { ca, hostCert },
      log,
      now,
    );
    startupMark("devices");
    const listenIp = config.listen.address;
    const events = new EventRing();
    const writer = queues && tun instanceof LinuxTun ? spreadWriter(tun, queues) : tun; // workers.ts
    const out = new RelayingOutput(new BatchOutput(udp, writer)); // relayed paths: src/directory/relaypath.ts
    let directory: Directory | null = null;
    const dirHooks: DirectoryHooks = {}; // filled by Directory.start
    const { engine, records } = makeEngine(config, {
      ...{ ca, hostCert, sk, identity, policy, revocation, udp, out, log, now, events, peers, dirHooks },
      onRotated: () => directory?.ephemeralRotated(now()),
    });
    startupMark("engine");
    try {
      directory =
        config.directory?.serve || config.directories.length > 0
          ? await Directory.start(config, engine, dirHooks, log.child("directory"), now, out)
          : null;
    } catch (e) {
      engine.close(now());
      tun.close();
      udp.close();
      throw e;
    }

    const api = new ApiServer(config.api.socket, log.child("api"));
    const d = new Daemon(config, engine, tun, udp, api, log, now, events);
    d.notifier = deps.notifier ?? nullNotifier;
    d.logLevelOverride = deps.logLevelOverride;
    d.routes = routes;
    d.records = records;
    d.identity = identity;
    d.fileDigests = { ca: fileDigest(config.ca), "host.cert": fileDigest(config.host.cert) };
    api.handle("status", () => d.status());
    api.handle("whois", (p, caller) => {
      const w = whois(d.status(), String(p.address ?? ""));
      if (!w) return null;
      const port = typeof p.port === "number" && Number.isInteger(p.port) ? p.port : null;
      // root sees every connection; anybody else only those of its own sockets
      const uid = caller.privileged ? null : (caller.cred?.uid ?? -1);
      const visible = uid === null ? undefined : (c: Conn) => uid >= 0 && identity.ownerUidOf(c) === uid;
      return { ...w, conns: engine.connsFor(w.address, port, visible), connsOf: uid === null ? "all" : uid };
    });
    api.handle("reload", () => d.reload(), { root: true });
    d.names = new NameService({
      self: hostCert as HostCert,
      peers: () => engine.peers.values(),
      directory: directory?.client ? directoryNames(directory.client) : undefined,
      directoryAddress: directory?.client ? directoryAddresses(directory.client) : undefined,
      now,
    });
    // resolve may spend the host's directory lookups: a small rate per uid
    api.handle("resolve", (p) => d.resolveName(String(p.name ?? "")), { perUidPerSec: API_RESOLVE_PER_SEC });
    // the readers first: a packet already queued on the TUN (the route is up) or a record
    // answer on the socket is handled while the API socket and the rest are set up
    d.directory = directory;
    const tasks = d.tasks;
    const w = (d.workers = queues ? startWorkers(d, engine, queues, log, now) : null); // workers.ts
    tun.start(tasks.wrap("tun.batch", (b) => (engine.handleTunBatch(b, now()), w?.afterBatch(now()))));
    udp.start(tasks.wrap("udp.batch", (b) => (engine.handleUdpBatch(b, now()), w?.afterBatch(now()))));
    try {
      await api.listen();
      await d.startObservers();
      await d.startSites(routes);
    } catch (e) {
      d.close();
      throw e;
    }
    d.timer = setInterval(() => {
      tasks.run("engine.tick", () => engine.tick(now()));
      if (w) tasks.run("workers.sync", () => w.tick(now()));
      if (directory) tasks.run("directory.tick", () => directory.tick(now()));
      tasks.run("memory.trim", () => d.memory.tick(now()));
      if (d.history?.due(now())) tasks.run("sampler", () => d.sample());
      tasks.run("records.sync", () => records.sync(engine.peers.values()));
      d.loopDelay.tick();
    }, TICK_MS);
    d.timer.unref();
    tasks.run("engine.tick", () => engine.tick(now()));
    // mobility: when our underlay addresses change, every tunnel moves at once (0-RTT). Its
    // `ip monitor` child (~20 ms of CPU to spawn) starts just after READY, behind the I/O
    // already queued (a first packet), not before it.
    setImmediate(() => {
      if (d.closed) return;
      d.watcher = new AddressWatcher(
        tasks.wrap("address.change", (addrs: string[]) => {
          const n = engine.migrate(now());
          directory?.addressChanged(now());
          log.log("info", "underlay addresses changed", { addresses: addrs, tunnelsMoved: n });
        }),
        { exclude: [tun.name] },
      );
      d.watcher.start();
    });
    events.push(now(), "daemon-ready", { host: hostCert.name, tun: tun.name, peers: peers.length });
    log.log("info", "mintund ready", {
      host: hostCert.name,
      tun: tun.name,
      listen: `${listenIp}:${udp.localPort}`,
      peers: peers.length,
      ...Object.fromEntries(d.servers.map((s) => [s.what, s.url])),
    });
    // the TUN has its addresses and routes, the sockets are open: now systemd may start dependents
    d.notifier.notify({ READY: "1", STATUS: d.statusLine() });
    startupMark("ready");
    // the start-up trace, once: when the first tunnel is up, or at stop (close)
    onStartupDone(() => reportStartup(log, hostCert.name));
    return d;
  }

  /**
   * Site-to-site and names: the gateway's forwarding and masquerade, TUN routes
   * for the subnets of peers' gateways (every SUBNET_SYNC_MS), the DNS listener.
   */
  private async startSites(routes: RouteManager): Promise<void> {
    const hc = this.engine.opts.hostCert;
    this.undoGateway = await startGateway(
      this.config.gateway,
      this.tun.name,
      hc.subnets,
      this.log.child("gateway"),
    );
    this.dns = await startDns(() => this.config, hc, this.names, this.now, this.dnsCounters, this.log);
    // tun.peerSubnets is read at every sync: a reload turns it on or off
    const sr = new PeerSubnetRoutes(
      this.tun.name,
      this.log.child("routes"),
      () => new Set(overlayRoutes(this.config, hc)),
      routeCmdOf(routes),
    );
    this.subnetRoutes = sr;
    const sync = (): void =>
      this.tasks.run("subnet.sync", () =>
        sr
          .sync(
            this.config.tun.peerSubnets
              ? certifiedSubnets(this.engine.peers.values(), this.now(), hc.subnets)
              : new Set(),
          )
          .catch((e: unknown) => this.tasks.fail("subnet.sync", e)),
      );
    sync();
    this.subnetTimer = setInterval(sync, SUBNET_SYNC_MS);
    this.subnetTimer.unref();
  }

  /**
   * `mintun resolve NAME`: NAME is a host name, or NAME.DOMAIN (the DNS form).
   * Null when no such host; ENODIRECTORY when only an unreachable directory could know.
   */
  async resolveName(raw: string): Promise<NameAnswer | null> {
    let name = raw.toLowerCase().replace(/\.$/, "");
    const dom = this.config.dns.domain.replace(/\.$/, "");
    if (name.endsWith(`.${dom}`)) name = name.slice(0, -(dom.length + 1));
    if (!isValidName(name))
      throw new MintunError("EBADNAME", `'${raw}' is not a host name (1..63 chars [a-z0-9.-])`);
    return this.names.resolve(name);
  }

  namesStatus(): NamesStatus {
    return {
      dns: {
        domain: this.config.dns.domain,
        listen: this.dns?.addresses() ?? [],
        counters: { ...this.dnsCounters, overload: this.dns?.overload ?? 0 },
      },
      lookups: { ...this.names.counters },
      subnetRoutes: this.subnetRoutes?.state() ?? { installed: [], shadowed: [] },
      gateway: { forward: this.config.gateway.forward, masquerade: this.config.gateway.masquerade },
    };
  }

  /** Metrics endpoint, web view and the 1 s sampler behind them, as configured. */
  private async startObservers(): Promise<void> {
    const m = this.config.metrics.listen;
    if (m) {
      // loaded only when configured: prom-client alone costs ~60 ms of start-up
      const { createRegistry, serveMetrics } = await import("./metrics.js");
      const reg = createRegistry(() => this.observe());
      const srv = await serveMetrics(reg, m.host, m.port);
      this.servers.push({ what: "metrics", srv, url: httpUrl(m.host, srv, "/metrics") });
    }
    const w = this.config.web.listen;
    if (w) {
      const { serveWeb } = await import("./web.js");
      const srv = await serveWeb(
        {
          state: () => ({
            now: this.now(),
            status: this.status(),
            events: this.events.list(),
            conns: this.engine.connGroups(200), // at most 200 groups listed
            users: this.identity?.certs() ?? [],
          }),
          history: () => this.history!.list(),
          onError: (e) => this.tasks.fail("web.request", e),
        },
        w.host,
        w.port,
      );
      this.servers.push({ what: "web", srv, url: httpUrl(w.host, srv, "/") });
    }
    if (!m && !w) return;
    this.history = new PeerHistory(600, 32, SAMPLE_MS / 1000);
    this.sample();
  }

  /** One history sample, from the coarse tick once it is due (every SAMPLE_MS). */
  private sample(): void {
    const o = this.observe();
    this.history?.sample(this.now(), o.perPeer, o.all);
  }

  /** One consistent reading of the state for metrics and the web view. */
  observe(): Observation {
    const status = this.status();
    const { perPeer, all } = this.totals.update(status.tunnels, new Set(status.peers.map((p) => p.name)));
    return {
      now: this.now(),
      status,
      perPeer,
      all,
      reloads: { ...this.reloadCount, lastOk: this.lastReload?.ok ?? true },
      startedAt: this.startedAt,
      version: this.version,
      users: this.identity?.certs() ?? [],
    };
  }

  /** Per-peer totals that survive closed tunnels (what the metrics export). */
  peerTotals(): Map<string, Counts> {
    return this.totals.update(this.status().tunnels).perPeer;
  }

  statusLine(): string {
    // counted on the engine, not through status(): sent at start, where a first full status
    // (every section built and compiled once) cost tens of ms before READY
    let established = 0;
    for (const p of this.engine.peers.values())
      for (const t of p.tunnels) if (t.state === "established") established++;
    const r = this.lastReload;
    return (
      `${established} tunnels established, ${this.engine.peers.size + this.engine.unresolved.size} peers` +
      (r && !r.ok ? `; last reload refused: ${r.error}` : "")
    );
  }

  status(): Status {
    const st = this.statusCore();
    if (this.names) st.names = this.namesStatus();
    if (this.directory) st.directory = this.directory.state();
    return st;
  }

  private statusCore(): Status {
    return buildStatus(this.engine, this.now(), {
      listen: `${this.config.listen.address}:${this.udp.localPort}`,
      tun: this.tun.name,
      startedAt: this.startedAt,
      devices: {
        tun: this.tun.stats(),
        udp: this.udp.stats(),
        ...(this.workers && { dataPath: this.workers.status() }),
      },
      counters: this.directory?.counters(),
      daemon: {
        pid: process.pid,
        version: this.version,
        config: this.config.file,
        logLevel: this.log.level(),
        metrics: this.servers.find((s) => s.what === "metrics")?.url ?? null,
        web: this.servers.find((s) => s.what === "web")?.url ?? null,
        reload: this.lastReload,
        unexpectedErrors: { total: this.tasks.total, byTask: { ...this.tasks.errors } },
        loopDelay: this.loopDelay.stats(),
        api: { ...this.api.limitStats },
        memory: this.memory.status(),
        dumpable: dumpableNow(),
      },
      connections: {
        open: this.engine.connCount(),
        users: this.identity?.size ?? 0,
        policy: this.config.policy,
        policyRules: this.engine.policy?.rules.length ?? 0,
        unmapped: this.config.users.unmapped,
        asHostUids: [...(this.identity?.asHost ?? [])].sort((a, b) => a - b),
        noOwner: this.identity?.stats.noOwner ?? 0,
        lookups: this.identity?.stats.lookups ?? 0,
        lookupMeanUs: this.identity?.stats.lookups
          ? Math.round((this.identity.stats.lookupUs / this.identity.stats.lookups) * 10) / 10
          : 0,
      },
    });
  }

  /**
   * SIGHUP: re-read the config file and apply what can change at run time
   * (peers, tunnel timers and limits, tun.routes, log level) without touching
   * tunnels that stay valid. A config that does not load (or whose peers do not
   * resolve) is refused as a whole: the error is logged and kept in the status,
   * and the running config stays. Keys that need a restart (RESTART_KEYS, and a
   * changed CA or host certificate file) are reported and left as they were.
   * Reloads run one at a time.
   */
  reload(): Promise<ReloadStatus> {
    const r = this.reloadChain.then(() => this.doReload());
    this.reloadChain = r.catch(() => undefined);
    return r;
  }

  private async doReload(): Promise<ReloadStatus> {
    const at = this.now();
    const log = this.log;
    this.notifier.notify({
      RELOADING: "1",
      MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n),
      STATUS: "reloading configuration",
    });
    let inputs: ReloadInputs;
    try {
      inputs = await readReloadInputs(this.config.file, this.config.stateDir, this.engine, at, log);
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      this.lastReload = { ok: false, at, error, restartRequired: [], applied: [] };
      this.reloadCount.failed++;
      this.events.push(at, "reload-refused", { error });
      log.log("error", "config reload refused; the running configuration stays", { error });
      this.notifier.notify({ READY: "1", STATUS: this.statusLine() });
      return this.lastReload;
    }
    const { next, peers, policy, revList, store } = inputs;
    const old = this.config;
    const restart: string[] = restartRequired(old, next);
    const applied: string[] = [];
    for (const k of ["ca", "host.cert"] as const) {
      const f = k === "ca" ? next.ca : next.host.cert;
      if (restart.includes(k)) continue;
      const digest = fileDigest(f);
      if (digest === this.fileDigests[k]) continue;
      // a renewed host certificate (same key, same addresses) is applied: peers get it in a
      // CERT frame now and in every later HELLO and record; the directories get it with a
      // new registration
      const why = k === "host.cert" ? this.renewOwnCert(f, at) : "the CA needs a restart";
      if (why === null) {
        this.fileDigests[k] = digest;
        applied.push(
          `host.cert renewed (valid until ${new Date(this.engine.opts.hostCert.notAfter * 1000).toISOString()})`,
        );
      } else restart.push(`${k} (file content: ${why})`);
    }
    if (!this.logLevelOverride && next.log.level !== old.log.level) {
      log.setLevel(next.log.level);
      applied.push(`log.level ${next.log.level}`);
    }
    applied.push(...applyTunnelOptions(this.engine, next, policy));
    applied.push(...applyRevocation(this.engine, revList, this.now()));
    if (this.identity) {
      this.identity.setStore(
        store,
        next.users.unmapped,
        Math.floor(at / 1000),
        this.engine.opts.ca,
        next.users.asHost,
      );
      applied.push(`users ${this.identity.size}`);
    }
    // open connections under the new policy and identities: refused ones are reset
    const id = this.identity;
    const rj = this.engine.rejudge(this.now(), id ? (c) => id.stillSame(c) : undefined);
    if (rj.reset || rj.reidentified)
      applied.push(`connections: ${rj.reset} reset by the policy, ${rj.reidentified} to be identified again`);
    for (const e of store.errors)
      log.log("error", "user store entry skipped", { file: e.file, error: e.message });
    store.clear();
    const pr = this.engine.setPeers(peers, this.now());
    if (pr.added.length || pr.removed.length)
      applied.push(
        `peers${pr.added.map((n) => ` +${n}`).join("")}${pr.removed.map((n) => ` -${n}`).join("")}`,
      );
    const routeErrors: string[] = [];
    if (this.routes) {
      const r = await syncOverlayRoutes(this.routes, this.tun.name, old, next, this.engine.opts.hostCert);
      applied.push(...r.applied);
      routeErrors.push(...r.errors);
    }
    // the effective config: the new one, except what needs a restart (config.ts RESTART_FIELDS)
    this.config = effectiveConfig(old, next);
    const ok = routeErrors.length === 0;
    this.lastReload = {
      ok,
      at,
      error: ok ? null : `routes: ${routeErrors.join("; ")}`,
      restartRequired: restart,
      applied,
    };
    if (ok) this.reloadCount.ok++;
    else this.reloadCount.failed++;
    this.events.push(at, "config-reloaded", { applied: applied.join(", ") || "nothing", restart });
    log.log(ok ? "info" : "error", "config reloaded", {
      applied,
      ...(restart.length ? { restartRequired: restart } : {}),
      ...(ok ? {} : { error: this.lastReload.error }),
    });
    if (restart.length)
      log.log("warn", "changed keys need a restart and were left unchanged", { keys: restart });
    this.notifier.notify({ READY: "1", STATUS: this.statusLine() });
    return this.lastReload;
  }

  /** Reads a changed host certificate file and hands it to the engine; why not, or null. */
  private renewOwnCert(file: string, now: number): string | null {
    let cert;
    try {
      cert = readCert(file);
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
    if (cert.kind !== "host") return `a ${cert.kind} certificate`;
    const why = this.engine.setHostCert(cert, now);
    if (why === null) this.directory?.client?.register(now);
    return why;
  }

  /** Idempotent. Resolves when the STOPPING=1 notification has been sent. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.notifier.notify({ STOPPING: "1", STATUS: "stopping" });
    this.close();
    await this.notifier.flush();
  }

  /** Idempotent. */
  close(): void {
    if (this.closed) return;
    reportStartup(this.log, this.engine.opts.hostCert.name);
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.loopDelay.close();
    if (this.subnetTimer) clearInterval(this.subnetTimer);
    this.subnetRoutes?.close();
    this.dns?.close();
    this.undoGateway();
    this.watcher?.close();
    for (const s of this.servers) {
      s.srv.close();
      s.srv.closeAllConnections();
    }
    this.tasks.run("records.sync", () => this.records?.sync(this.engine.peers.values()));
    this.workers?.close(); // keys zeroed in the workers too
    this.engine.close(this.now());
    this.identity?.close();
    void this.directory?.close();
    this.api.close();
    this.tun.close();
    this.udp.close();
    this.lock?.release();
    this.log.log("info", "mintund stopped");
  }
}

function httpUrl(host: string, srv: http.Server, p: string): string {
  const a = srv.address();
  const port = a && typeof a === "object" ? a.port : 0;
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}${p}`;
}
