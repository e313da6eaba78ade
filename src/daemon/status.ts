/** Snapshot of the daemon's state for `mintun status` (JSON-serialisable). */
import { sumCounters } from "../directory/counters.js";
import type { MemoryStatus } from "./memory.js";
import type { LoopDelayStats } from "./loopdelay.js";
import type { DirectoryStatus } from "../directory/role.js";
import type { ConnInfo, Engine } from "../tunnel/engine.js";
import type { EngineSnapshot, PeerStatus, TunnelStatus } from "../tunnel/snapshot.js";

export type { EngineSnapshot, PeerStatus, RecordProblem, TunnelStatus } from "../tunnel/snapshot.js";
export { recordProblem } from "../tunnel/snapshot.js";
import { cidrContains, parseIp } from "../ip/ip.js";

/** Result of the last SIGHUP reload. */
export interface ReloadStatus {
  ok: boolean;
  /** wall clock, ms */
  at: number;
  /** the refusal (file:line (key): what was expected), when !ok */
  error: string | null;
  /** keys that changed but need a restart; they were left as they were */
  restartRequired: string[];
  /** what was applied, e.g. "peers +c -d", "log.level debug" */
  applied: string[];
}

/** The process around the engine (present when a Daemon builds the status). */
export interface DaemonInfo {
  pid: number;
  version: string;
  config: string;
  logLevel: string;
  metrics: string | null;
  web: string | null;
  reload: ReloadStatus | null;
  /** unexpected errors caught by the task guard (daemon/tasks.ts), per task; 0 in a healthy daemon */
  unexpectedErrors?: { total: number; byTask: Record<string, number> };
  /** event-loop delay: largest since start and in the last second, seconds with a stall over 50/200/1000 ms (loopdelay.ts) */
  loopDelay?: LoopDelayStats;
  /** local API limits per caller: connections refused (ELIMIT), requests refused (ERATELIMIT) */
  api?: { connsRefused: number; requestsLimited: number };
  /** process.memoryUsage() in bytes, and the C heap trims (src/daemon/memory.ts) */
  memory?: MemoryStatus;
  /**
   * prctl(PR_GET_DUMPABLE) of the daemon process: 0 = no core dump, no same-uid
   * /proc/PID/mem or ptrace (set at start by src/daemon/main.ts); null without the addon
   */
  dumpable?: number | null;
}

export interface Status {
  host: EngineSnapshot["host"];
  listen: string;
  tun: string;
  uptimeSec: number;
  ephemeral: EngineSnapshot["ephemeral"];
  tunnels: TunnelStatus[];
  peers: PeerStatus[];
  drops: Record<string, number>;
  events: Record<string, number>;
  dos: EngineSnapshot["dos"];
  devices: Record<string, unknown>;
  /**
   * The revocation list in force (trust.revocationList or a newer one from a directory):
   * its number, when the CA issued it and wants the next one (stale: past that), entries;
   * null when none
   */
  revocation?: {
    number: number;
    issued: string;
    nextUpdate: string;
    stale: boolean;
    entries: number;
  } | null;
  daemon?: DaemonInfo;
  /** per-user connections (present when a Daemon builds the status) */
  connections?: ConnectionsStatus;
  /** names, DNS and site-to-site routes (daemon only) */
  names?: NamesStatus;
  /** directory client (registrations, cached records) and role (stored records) */
  directory?: DirectoryStatus;
}

export interface ConnectionsStatus {
  /** connections held, both directions, all peers */
  open: number;
  /** OS users with an identity in the user store */
  users: number;
  /** policy file, null = none (every authenticated host may reach everything) */
  policy: string | null;
  policyRules: number;
  unmapped: "host" | "deny";
  /** OS uids whose flows run as the host besides root (users.asHost, resolved at load) */
  asHostUids: number[];
  /** TCP/UDP flows whose owner was not proven (no socket, lookup error): they followed unmapped */
  noOwner: number;
  /** OS identity lookups (new outbound TCP/UDP flows, SYNs, UDP rechecks) and their mean cost */
  lookups: number;
  lookupMeanUs: number;
}

export interface NamesStatus {
  /** "web.mesh." style domain, and where DNS listens (empty: off) */
  dns: { domain: string; listen: string[]; counters: Record<string, number> };
  lookups: Record<string, number>;
  /** subnets of peers routed into the TUN / left to an existing route */
  subnetRoutes: { installed: string[]; shadowed: string[] };
  gateway: { forward: boolean; masquerade: boolean };
}

export function buildStatus(
  e: Engine,
  now: number,
  extra: {
    listen: string;
    tun: string;
    startedAt: number;
    devices: Record<string, unknown>;
    daemon?: DaemonInfo;
    connections?: ConnectionsStatus;
    /** counters other modules keep (the directory's), summed by key with the engine's */
    counters?: { drops: Record<string, number>; events: Record<string, number> };
  },
): Status {
  const snap = e.snapshot(now);
  return {
    host: snap.host,
    listen: extra.listen,
    tun: extra.tun,
    uptimeSec: Math.round((now - extra.startedAt) / 1000),
    ephemeral: snap.ephemeral,
    tunnels: snap.tunnels,
    peers: snap.peers,
    drops: sumCounters(snap.drops, extra.counters?.drops ?? {}),
    events: sumCounters(snap.events, extra.counters?.events ?? {}),
    dos: snap.dos,
    devices: extra.devices,
    revocation: e.revocation
      ? {
          number: e.revocation.list.number,
          issued: new Date(e.revocation.list.issued * 1000).toISOString(),
          nextUpdate: new Date(e.revocation.list.nextUpdate * 1000).toISOString(),
          stale: now / 1000 >= e.revocation.list.nextUpdate,
          entries: e.revocation.list.entries.length,
        }
      : null,
    ...(extra.daemon ? { daemon: extra.daemon } : {}),
    ...(extra.connections ? { connections: extra.connections } : {}),
  };
}

export interface WhoisAnswer {
  address: string;
  /** "self" when the address is this host's own */
  kind: "peer" | "self";
  name: string;
  key: string | null;
  /** the certified address or subnet that matched */
  match: string;
  endpoint: string | null;
  tunnels: { session: string; state: string; endpoint: string; epoch: number }[];
  /**
   * The connections (inner flows) whose remote end is this address (and port, when the
   * request named one), from engine.connsFor; absent from daemons without connections.
   */
  conns?: WhoisConn[];
  /** whose connections `conns` lists: "all" (root asked) or the uid of the unprivileged caller */
  connsOf?: "all" | number;
}

/** One connection in a whois answer: the engine's ConnInfo (tunnel/engine.ts). */
export type WhoisConn = ConnInfo;

/**
 * Which host owns an overlay address: the longest certified prefix (own
 * addresses, then peers' ip4/ip6/subnets) that contains it, or null.
 */
export function whois(s: Status, address: string): WhoisAnswer | null {
  const ip = parseIp(address);
  if (!ip) return null;
  const owners: {
    name: string;
    kind: "peer" | "self";
    key: string | null;
    endpoint: string | null;
    nets: string[];
  }[] = [
    {
      name: s.host.name,
      kind: "self",
      key: s.host.key,
      endpoint: null,
      nets: [s.host.ip4 && `${s.host.ip4}/32`, s.host.ip6 && `${s.host.ip6}/128`, ...s.host.subnets].filter(
        (x): x is string => !!x,
      ),
    },
    ...s.peers.map((p) => ({
      name: p.name,
      kind: "peer" as const,
      key: p.key,
      endpoint: p.endpoint,
      nets: [p.ip4 && `${p.ip4}/32`, p.ip6 && `${p.ip6}/128`, ...p.subnets].filter((x): x is string => !!x),
    })),
  ];
  let best: { o: (typeof owners)[number]; net: string; len: number } | null = null;
  for (const o of owners)
    for (const net of o.nets) {
      const len = cidrContains(net, ip.bytes);
      if (len >= 0 && (!best || len > best.len)) best = { o, net, len };
    }
  if (!best) return null;
  const { o, net } = best;
  return {
    address: ip.text,
    kind: o.kind,
    name: o.name,
    key: o.key,
    match: net.endsWith("/32") || net.endsWith("/128") ? net.slice(0, net.lastIndexOf("/")) : net,
    endpoint: o.endpoint,
    tunnels:
      o.kind === "self"
        ? []
        : s.tunnels
            .filter((t) => t.peer === o.name)
            .map((t) => ({ session: t.session, state: t.state, endpoint: t.endpoint, epoch: t.epoch })),
  };
}
