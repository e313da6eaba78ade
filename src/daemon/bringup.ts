/**
 * The daemon's start-up steps, in the order Daemon.start runs them: the host's keys
 * and certificates, the access control (policy, user store, identity mapper), the
 * devices (UDP socket, TUN with its addresses and routes: one bring-up path) and the
 * engine's options. Each step fails with a typed error and leaves nothing open.
 */
import * as crypto from "node:crypto";
import * as dns from "node:dns/promises";
import * as fs from "node:fs";
import { publicKeyOf, readCert, readRevocation, readSecretKey } from "../store/keyfile.js";
import { RevocationIndex, verifyRevocation, type RevocationList } from "../wire/revocation.js";
import { equal, zero } from "../crypto/sodium.js";
import type { Config } from "../config/config.js";
import { ConfigError, CertError } from "../errors.js";
import type { Logger } from "../log.js";
import { LinuxRouteManager, type RouteManager } from "../net/route.js";
import { LinuxTun, TUN_TX_QUEUE_LEN, type TunDevice } from "../net/tun.js";
import { LinuxUdp, type UdpBind } from "../net/udp.js";
import { preferredAeadSuite } from "../net/cpu.js";
import { Engine, type DirectoryHooks, type EngineOptions, type ReloadableOptions } from "../tunnel/engine.js";
import type { Output } from "../tunnel/engine.js";
import { RecordCache } from "./records.js";
import { localEndpoints } from "../net/localaddrs.js";
import { isRelayAddr } from "../wire/addr.js";
import { isIpv4, tryEncodeAddr } from "../wire/addr.js";
import { parseIp6 } from "../ip/ip.js";
import { type CaCert, type HostCert, verifyCert } from "../wire/cert.js";
import { native } from "../net/native.js";
import type { EventRing } from "./history.js";
import { DaemonIdentity } from "./identity.js";
import { LinuxIdentityLookup } from "../net/identity.js";
import { UserStore, usersDir } from "../store/users.js";
import type { Policy } from "../conn/policy.js";
import { loadPolicy } from "../store/policy-file.js";
import { WorkerSolver } from "./puzzle-worker.js";
import type { LogLevel } from "../config/config.js";
import type { Notifier } from "./notify.js";
import { MintunError } from "../errors.js";
import { selfTest } from "../tunnel/selftest.js";
import { startupDone, startupMark, startupMarks } from "../startup.js";
import { errorFields } from "./tasks.js";
import type { ExtraQueues } from "./workers.js";

export interface DaemonDeps {
  openTun?: (name: string) => TunDevice;
  bindUdp?: (address: string, port: number) => UdpBind;
  routes?: RouteManager;
  now?: () => number;
  /** sd_notify (READY=1 after the TUN is up, RELOADING=1, STOPPING=1) */
  notifier?: Notifier;
  /** a --log-level given on the command line wins over log.level, also on reload */
  logLevelOverride?: LogLevel;
}

export type ResolvedPeer = { name: string; endpoint: Buffer; cert?: HostCert };

/** The CA, this host's certificate and its secret key (the caller zeroes it), all checked. */
export function loadHostKeys(config: Config, nowSec: number): { ca: CaCert; hostCert: HostCert; sk: Buffer } {
  const ca = readCert(config.ca);
  if (ca.kind !== "ca")
    throw new CertError(
      "ECERTKIND",
      `${config.ca}: expected a CA certificate, found a ${ca.kind} certificate`,
    );
  const hostCert = readCert(config.host.cert);
  if (hostCert.kind !== "host")
    throw new CertError(
      "ECERTKIND",
      `${config.host.cert}: expected a host certificate, found a ${hostCert.kind} certificate`,
    );
  const sk = readSecretKey(config.host.key);
  if (!equal(publicKeyOf(sk), hostCert.publicKey))
    throw new CertError(
      "EKEYMISMATCH",
      `${config.host.key} is not the key of the certificate ${config.host.cert}`,
    );
  const v = verifyCert(hostCert, ca as CaCert, nowSec);
  if (!v.ok)
    throw new CertError(
      "ECERTINVALID",
      `${config.host.cert}: certificate does not verify against ${config.ca}: ${v.reason}`,
    );

  return { ca: ca as CaCert, hostCert: hostCert as HostCert, sk };
}

/** The connection policy and the identity mapper with the user store loaded. */
export function loadAccess(
  config: Config,
  hostCert: HostCert,
  ca: CaCert,
  log: Logger,
  now: () => number,
): { policy: Policy | null; identity: DaemonIdentity } {
  // connection policy and the user store: refused files stop the start (typed errors)
  const policy = config.policy ? loadPolicy(config.policy) : null;
  const store = UserStore.load(usersDir(config.stateDir));
  const identity = new DaemonIdentity(
    // no cache: a cached answer would hand a socket's identity to the next socket on its tuple
    new LinuxIdentityLookup({ ttlMs: 0 }),
    config.users.unmapped,
    log.child("identity"),
  );
  identity.setOwnAddresses(hostCert.ip4, hostCert.ip6);
  identity.setStore(store, config.users.unmapped, Math.floor(now() / 1000), ca, config.users.asHost);
  for (const e of store.errors)
    log.log("error", "user store entry skipped", { file: e.file, error: e.message });
  store.clear();

  return { policy, identity };
}

/** The UDP socket and the TUN, brought up with its addresses and routes (closed again on failure). */
export async function openDevices(
  config: Config,
  deps: DaemonDeps,
  hostCert: HostCert,
): Promise<{ routes: RouteManager; udp: UdpBind; tun: TunDevice; queues?: ExtraQueues }> {
  const routes = deps.routes ?? new LinuxRouteManager();
  const workers = config.dataPath.workers;
  let udp: UdpBind;
  let tun: TunDevice;
  let queues: ExtraQueues | undefined;
  if (workers > 1 && !deps.bindUdp && !deps.openTun) {
    ({ udp, tun, queues } = openQueues(config, workers));
  } else {
    udp = (deps.bindUdp ?? ((a, port) => LinuxUdp.bind({ address: a, port })))(
      config.listen.address,
      config.listen.port,
    );
    try {
      tun = (deps.openTun ?? ((name) => LinuxTun.open({ name })))(config.tun.name);
    } catch (e) {
      udp.close();
      throw e;
    }
  }
  const closeAll = () => {
    tun.close();
    udp.close();
    for (const fd of [...(queues?.tunFds ?? []), ...(queues?.udpFds ?? [])]) native().closeFd(fd);
  };
  try {
    const hc = hostCert;
    const addresses = [hc.ip4 ? `${hc.ip4}/32` : null, hc.ip6 ? `${hc.ip6}/128` : null].filter(
      (x): x is string => x !== null,
    );
    const rts = overlayRoutes(config, hc);
    await routes.bringUp(tun.name, {
      mtu: config.tun.mtu,
      txqueuelen: TUN_TX_QUEUE_LEN,
      addresses,
      routes: rts,
    });
  } catch (e) {
    closeAll();
    throw e;
  }

  return { routes, udp, tun, queues };
}

/**
 * dataPath.workers > 1: a multi-queue TUN and a SO_REUSEPORT group with the TID steering
 * program (docs/ARCHITECTURE.md "Many cores"); queue 0 and socket 0 for the main thread,
 * the rest for the workers (src/daemon/workers.ts).
 */
function openQueues(config: Config, n: number): { udp: UdpBind; tun: TunDevice; queues: ExtraQueues } {
  const g = LinuxUdp.bindGroup({ address: config.listen.address, port: config.listen.port }, n);
  try {
    const t = LinuxTun.openQueues({ name: config.tun.name }, n);
    const queues: ExtraQueues = {
      tunName: t.tun.name,
      tunOffload: t.offload,
      tunFds: t.fds,
      tunAllFds: t.allFds,
      udpFds: g.fds,
      family: g.family,
      address: config.listen.address,
      port: g.port,
      udpOffload: g.offload,
    };
    return { udp: g.udp, tun: t.tun, queues };
  } catch (e) {
    g.udp.close();
    for (const fd of g.fds) native().closeFd(fd);
    throw e;
  }
}

/** The engine's options from the config and what the earlier steps made. */
export function engineOptions(
  config: Config,
  x: {
    ca: CaCert;
    hostCert: HostCert;
    sk: Buffer;
    identity: DaemonIdentity;
    policy: Policy | null;
    udp: UdpBind;
    log: Logger;
    now: () => number;
    events: EventRing;
    onRotated: () => void;
    dirHooks: DirectoryHooks;
  },
): EngineOptions {
  const { udp, now, events } = x;
  const listenIp = config.listen.address;
  return {
    ca: x.ca,
    hostCert: x.hostCert,
    hostSecretKey: x.sk,
    ephemeralLifetimeMs: config.ephemeral.lifetimeSec * 1000,
    minFirstPacket: config.ephemeral.minFirstPacket,
    maxReplayRecords: config.ephemeral.replayRecords,
    maxReplayPerHost: config.ephemeral.replayPerHost,
    // AES-256-GCM where the CPU has AES instructions (docs/PERFORMANCE.md "CPU per byte")
    aeadSuite: preferredAeadSuite(),
    ...reloadableOptions(config),
    solver: new WorkerSolver(now),
    // signed candidates: the listen address, or on a wildcard the host's own addresses (NAT traversal)
    endpoints: () =>
      localEndpoints(listenIp, udp.localPort, {
        devs: [config.tun.name],
        addrs: [x.hostCert.ip4, x.hostCert.ip6].filter((a): a is string => a !== null),
      }),
    logger: x.log.child("engine"),
    // a relayed path (wire/addr.ts relayAddr) has no kernel route: never probed
    routeSource: (dst, out) => !isRelayAddr(dst) && native().routeSource(dst, out),
    dos: config.dos,
    onEvent: (kind, fields) => events.push(now(), kind, fields),
    identity: x.identity,
    policy: x.policy,
    onEphemeralRotated: x.onRotated,
    directory: x.dirHooks,
  };
}

/** The engine options a reload applies (Engine.reconfigure): timers and table limits. */
export function reloadableOptions(config: Config): ReloadableOptions {
  return {
    rekeyAfterMs: config.tunnel.rekeySec * 1000,
    keepaliveMs: config.tunnel.keepaliveSec * 1000,
    idleTimeoutMs: config.tunnel.idleTimeoutSec * 1000,
    maxTunnels: config.tunnel.maxTunnels,
    maxPerHost: config.tunnel.maxPerHost,
    unconfirmedTimeoutMs: config.tunnel.unconfirmedTimeoutSec * 1000,
  };
}

/** The configured peers with their endpoints resolved (DNS) and pinned certificates read. */
export async function resolvePeers(config: Config): Promise<ResolvedPeer[]> {
  const peers: ResolvedPeer[] = [];
  for (const [i, p] of config.peers.entries()) {
    let ip = p.endpoint.host;
    if (!isIpv4(ip) && !ip.includes(":")) {
      try {
        ip = (await dns.lookup(ip)).address;
      } catch (e) {
        throw new ConfigError(
          `cannot resolve '${p.endpoint.host}'`,
          config.file,
          undefined,
          `peers[${i}].endpoint`,
          { cause: e },
        );
      }
    }
    const ep = tryEncodeAddr(ip, p.endpoint.port);
    if (!ep)
      throw new ConfigError(
        `bad endpoint '${ip}:${p.endpoint.port}'`,
        config.file,
        undefined,
        `peers[${i}].endpoint`,
      );
    const pc = p.cert ? readCert(p.cert) : undefined;
    if (pc && pc.kind !== "host") throw new CertError("ECERTKIND", `${p.cert}: not a host certificate`);
    peers.push({ name: p.name, endpoint: ep, cert: pc as HostCert | undefined });
  }
  return peers;
}

/** Routes into the TUN: configured, or the /16 and /64 around our own overlay addresses. */
export function overlayRoutes(config: Config, hc: HostCert): string[] {
  if (config.tun.routes.length > 0) return config.tun.routes;
  const r: string[] = [];
  if (hc.ip4) {
    const p = hc.ip4.split(".");
    r.push(`${p[0]}.${p[1]}.0.0/16`);
  }
  // the first four groups of the expanded address form the /64
  const b6 = hc.ip6 ? parseIp6(hc.ip6) : null;
  if (b6) r.push(`${[0, 2, 4, 6].map((o) => b6.readUInt16BE(o).toString(16)).join(":")}::/64`);
  return r;
}

/** sha256 of a file (reload: did the CA or host certificate file change?), "unreadable" when it cannot be read. */
export const fileDigest = (f: string): string => {
  try {
    return crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex");
  } catch {
    return "unreadable";
  }
};

/** prctl(PR_GET_DUMPABLE) of this process, or null when the native addon is not there. */
export function dumpableNow(): number | null {
  try {
    return native().getDumpable();
  } catch {
    return null;
  }
}

/**
 * Reads the revocation list file and checks it is the CA's (CertError otherwise: the start
 * or the reload is refused). A list past its nextUpdate is used, with a warning: an old
 * list still revokes what it names.
 */
export function loadRevocationList(file: string, ca: CaCert, nowSec: number, log: Logger): RevocationList {
  const list = readRevocation(file);
  const v = verifyRevocation(list, ca);
  if (!v.ok)
    throw new CertError(
      "EBADREVOCATION",
      `${file}: revocation list does not verify against the CA: ${v.reason}`,
    );
  if (nowSec >= list.nextUpdate)
    log.log("warn", "revocation list is past its next update: ask the CA for a newer one", {
      file,
      number: list.number,
      nextUpdate: new Date(list.nextUpdate * 1000).toISOString(),
    });
  return list;
}

/**
 * The checks before taking traffic (policy, users, revocation list, protocol self-test),
 * run while the devices open: the UDP socket and TUN first, then `ip -batch` sets the
 * TUN's addresses and routes in its own process during the checks (start-up time,
 * docs/PERFORMANCE.md "Start-up"). A refused check closes what was opened.
 */
export async function checkAndOpen(
  config: Config,
  deps: DaemonDeps,
  keys: { ca: CaCert; hostCert: HostCert },
  log: Logger,
  now: () => number,
): Promise<{
  policy: Policy | null;
  identity: DaemonIdentity;
  revocation: RevocationList | null;
  routes: RouteManager;
  udp: UdpBind;
  tun: TunDevice;
  queues?: ExtraQueues;
}> {
  const { ca, hostCert } = keys;
  const opening = openDevices(config, deps, hostCert);
  let access: { policy: Policy | null; identity: DaemonIdentity } | null = null;
  let revocation: RevocationList | null;
  try {
    // connection policy and the user store: refused files stop the start (typed errors)
    access = loadAccess(config, hostCert, ca, log, now);
    revocation = config.trust.revocationList
      ? loadRevocationList(config.trust.revocationList, ca, Math.floor(now() / 1000), log)
      : null;
    const st = selfTest(now());
    if (!st.ok) throw new MintunError("ESELFTEST", `protocol self-test failed: ${st.why}`);
  } catch (e) {
    access?.identity.close();
    await opening.then(
      (dev) => {
        dev.tun.close();
        dev.udp.close();
        for (const fd of [...(dev.queues?.tunFds ?? []), ...(dev.queues?.udpFds ?? [])]) native().closeFd(fd);
      },
      () => undefined,
    );
    throw e;
  }
  startupMark("checks");
  try {
    return { ...access, revocation, ...(await opening) };
  } catch (e) {
    access.identity.close();
    throw e;
  }
}

/**
 * The start-up trace (src/startup.ts), once per process: debug line `startup`; with
 * MINTUN_STARTUP_TRACE=FILE also one JSON line appended to FILE (test/bench/run.sh reads
 * them; docs/OPERATIONS.md "Logs"). MINTUN_STARTUP_LAUNCH_MS: when the caller launched
 * us (epoch ms), written as the negative mark `launch`.
 */
export function reportStartup(log: Logger, host: string): void {
  if (!startupDone()) return;
  const { origin, marks } = startupMarks();
  const launchMs = Number(process.env.MINTUN_STARTUP_LAUNCH_MS);
  if (Number.isFinite(launchMs) && launchMs > 0 && launchMs <= origin) marks.launch = launchMs - origin;
  log.log("debug", "startup", { origin, ...marks });
  const file = process.env.MINTUN_STARTUP_TRACE;
  if (!file) return;
  try {
    fs.appendFileSync(file, JSON.stringify({ host, origin, ...marks }) + "\n", { mode: 0o644 });
  } catch (e) {
    log.log("warn", "cannot write the start-up trace", { file, ...errorFields(e) });
  }
}

/**
 * The engine on the opened devices: the revocation list, the configured peers (their
 * record requests sent) and the records cached from the last run (records.ts: verified
 * again, so the first CREATE needs no record round trip). Zeroes `sk` (the engine keeps
 * its own copy).
 */
export function makeEngine(
  config: Config,
  x: Parameters<typeof engineOptions>[1] & {
    revocation: RevocationList | null;
    /** the engine's output (BatchOutput, wrapped for relayed paths: directory/relaypath.ts) */
    out: Output;
    peers: ResolvedPeer[];
  },
): { engine: Engine; records: RecordCache } {
  const { now, log, hostCert } = x;
  const engine = new Engine(engineOptions(config, x), x.out, now());
  zero(x.sk);
  if (x.revocation) {
    engine.setRevocation(new RevocationIndex(x.revocation), now());
    if (engine.revocation!.revoked(hostCert))
      log.log("error", "this host's own certificate is revoked: peers will refuse it", {
        list: config.trust.revocationList,
      });
  }
  for (const p of x.peers) engine.addPeer(p, now());
  const records = RecordCache.forState(config.stateDir, log.child("records"));
  records.install(engine, x.peers, x.ca, now());
  return { engine, records };
}
