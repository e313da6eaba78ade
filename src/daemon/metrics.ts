/**
 * Prometheus metrics (prom-client), collected on scrape: every value is read
 * from the engine's counters, the tunnels and the devices when /metrics is
 * requested, so the data path does no metrics work at all. The meaning of
 * each metric is in docs/OPERATIONS.md ("Metrics").
 *
 * Served by a plain node:http server on `metrics.listen` (off by default).
 */
import * as http from "node:http";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { listen } from "./listen.js";
import type { Counts } from "./history.js";
import type { UserCertInfo } from "./identity.js";
import type { Status } from "./status.js";
import type { TunStats } from "../net/tun.js";
import type { UdpStats } from "../net/udp.js";

export interface Observation {
  /** when it was read (ms): timestamps of tunnels are derived from their ages */
  now?: number;
  status: Status;
  perPeer: Map<string, Counts>;
  all: Counts;
  reloads: { ok: number; failed: number; lastOk: boolean };
  startedAt: number;
  version: string;
  /** the local users' certificates (user store), when the daemon has one */
  users?: readonly UserCertInfo[];
}

/** Names of every mintun-specific metric (tests and docs check them). */
export const METRIC_NAMES = [
  "mintun_info",
  "mintun_start_time_seconds",
  "mintun_tunnels",
  "mintun_peers",
  "mintun_peers_with_record",
  "mintun_ephemeral_keys",
  "mintun_rx_bytes_total",
  "mintun_tx_bytes_total",
  "mintun_rx_packets_total",
  "mintun_tx_packets_total",
  "mintun_peer_rx_bytes_total",
  "mintun_peer_tx_bytes_total",
  "mintun_peer_rx_packets_total",
  "mintun_peer_tx_packets_total",
  "mintun_peer_certificate_expiry_timestamp_seconds",
  "mintun_peer_last_handshake_timestamp_seconds",
  "mintun_peer_last_rekey_timestamp_seconds",
  "mintun_certificate_expiry_timestamp_seconds",
  "mintun_user_certificate_expiry_timestamp_seconds",
  "mintun_drops_total",
  "mintun_events_total",
  "mintun_unexpected_errors_total",
  "mintun_loop_stalls_total",
  "mintun_rekeys_total",
  "mintun_roams_total",
  "mintun_device_bytes_total",
  "mintun_device_packets_total",
  "mintun_device_errors_total",
  "mintun_device_dropped_packets_total",
  "mintun_device_offload_messages_total",
  "mintun_device_offload_segments_total",
  "mintun_device_offload_fallbacks_total",
  "mintun_dos_puzzling",
  "mintun_dos_puzzle_difficulty_bits",
  "mintun_dos_offered_creates_total",
  "mintun_dos_sources",
  "mintun_config_reloads_total",
  "mintun_config_last_reload_successful",
  "mintun_directories",
  "mintun_directory_up",
  "mintun_directory_last_answer_timestamp_seconds",
  "mintun_directory_cached_records",
  "mintun_directory_records",
  "mintun_relay_pairs",
  "mintun_relay_bytes_total",
  "mintun_relay_packets_total",
  "mintun_relay_dropped_packets_total",
  "mintun_dns_responses_total",
  "mintun_dns_dropped_total",
  "mintun_name_lookups_total",
  "mintun_peer_subnet_routes",
] as const;

const DNS_RCODES = ["noerror", "nxdomain", "servfail", "refused", "notimp", "formerr"] as const;

const TUNNEL_STATES = ["creating", "replying", "established", "closed"];

/** "unknownTid" -> "unknown_tid", "no-record" -> "no_record": label values in snake_case. */
export function snake(s: string): string {
  return s
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .toLowerCase();
}

/**
 * Where each device counter goes (one metric per meaning): bytes, packets, errors, dropped
 * packets and offload work, each with its own unit, told apart by labels.
 */
type DeviceCounter = readonly [metric: string, label: "direction" | "reason" | "kind" | null, value: string];
export const DEVICE_COUNTERS: Readonly<Record<keyof TunStats | keyof UdpStats, DeviceCounter>> = {
  rxBytes: ["mintun_device_bytes_total", "direction", "rx"],
  txBytes: ["mintun_device_bytes_total", "direction", "tx"],
  rxPackets: ["mintun_device_packets_total", "direction", "rx"],
  txPackets: ["mintun_device_packets_total", "direction", "tx"],
  rxErrors: ["mintun_device_errors_total", "direction", "rx"],
  txErrors: ["mintun_device_errors_total", "direction", "tx"],
  txDropped: ["mintun_device_dropped_packets_total", "reason", "tx_dropped"],
  txSrcGone: ["mintun_device_dropped_packets_total", "reason", "source_address_gone"],
  rxGsoPackets: ["mintun_device_offload_messages_total", "kind", "rx_gso"],
  rxGsoSegments: ["mintun_device_offload_segments_total", "kind", "rx_gso"],
  txCoalesced: ["mintun_device_offload_messages_total", "kind", "tx_coalesced"],
  txCoalescedSegments: ["mintun_device_offload_segments_total", "kind", "tx_coalesced"],
  gsoMessages: ["mintun_device_offload_messages_total", "kind", "tx_gso"],
  gsoSegments: ["mintun_device_offload_segments_total", "kind", "tx_gso"],
  rxGroMessages: ["mintun_device_offload_messages_total", "kind", "rx_gro"],
  rxGroSegments: ["mintun_device_offload_segments_total", "kind", "rx_gro"],
  gsoFallbacks: ["mintun_device_offload_fallbacks_total", null, ""],
};

/** A registry whose collectors call `observe()` (cached for 200 ms, so one scrape reads the state once). */
export function createRegistry(observe: () => Observation, withDefaults = true): Registry {
  const reg = new Registry();
  let cache: { at: number; o: Observation } | null = null;
  const o = (): Observation => {
    const now = Date.now();
    if (!cache || now - cache.at > 200 || now < cache.at) cache = { at: now, o: observe() };
    return cache.o;
  };
  const registers = [reg];
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        fill(this);
      },
    });
  const counter = (name: string, help: string, labelNames: string[], fill: (c: Counter) => void) =>
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        fill(this);
      },
    });

  gauge(
    "mintun_info",
    "constant 1, labelled with this host's name and the daemon version",
    ["host", "version"],
    (g) => g.set({ host: o().status.host.name, version: o().version }, 1),
  );
  gauge("mintun_start_time_seconds", "daemon start time, unix seconds", [], (g) =>
    g.set(o().startedAt / 1000),
  );
  gauge("mintun_tunnels", "tunnels held now, by state", ["state"], (g) => {
    const by: Record<string, number> = Object.fromEntries(TUNNEL_STATES.map((s) => [s, 0]));
    for (const t of o().status.tunnels) by[t.state] = (by[t.state] ?? 0) + 1;
    for (const [state, n] of Object.entries(by)) g.set({ state }, n);
  });
  gauge("mintun_peers", "peers known (configured or learned from incoming tunnels)", [], (g) =>
    g.set(o().status.peers.length),
  );
  gauge(
    "mintun_peers_with_record",
    "peers whose current ephemeral record is held (0-RTT possible)",
    [],
    (g) => g.set(o().status.peers.filter((p) => p.record !== null).length),
  );
  gauge("mintun_ephemeral_keys", "own ephemeral keys currently published or still accepted", [], (g) =>
    g.set(o().status.ephemeral.length),
  );
  const nowSec = () => (o().now ?? Date.now()) / 1000;
  const dirs = [
    ["rx_bytes", "rxBytes", "inner bytes received through tunnels"],
    ["tx_bytes", "txBytes", "inner bytes sent through tunnels"],
    ["rx_packets", "rxPackets", "packets received through tunnels"],
    ["tx_packets", "txPackets", "packets sent through tunnels"],
  ] as const;
  for (const [n, k, help] of dirs) {
    counter(`mintun_${n}_total`, `${help}, all peers`, [], (c) => c.inc(o().all[k]));
    counter(`mintun_peer_${n}_total`, `${help}, per peer (series end when the peer goes)`, ["peer"], (c) => {
      for (const [peer, v] of o().perPeer) c.inc({ peer }, v[k]);
    });
  }
  gauge(
    "mintun_certificate_expiry_timestamp_seconds",
    "when this host's certificate (kind host) and the CA certificate (kind ca) expire, unix seconds",
    ["kind"],
    (g) => {
      const h = o().status.host;
      if (h.certNotAfter !== undefined) g.set({ kind: "host" }, h.certNotAfter);
      if (h.caNotAfter !== undefined) g.set({ kind: "ca" }, h.caNotAfter);
    },
  );
  gauge(
    "mintun_peer_certificate_expiry_timestamp_seconds",
    "when each peer's host certificate expires, unix seconds (peers whose certificate is known)",
    ["peer"],
    (g) => {
      for (const p of o().status.peers)
        if (typeof p.certNotAfter === "number") g.set({ peer: p.name }, p.certNotAfter);
    },
  );
  gauge(
    "mintun_user_certificate_expiry_timestamp_seconds",
    "when each local user's certificate (user store) expires, unix seconds (series end when the user is removed)",
    ["user", "uid"],
    (g) => {
      for (const u of o().users ?? []) g.set({ user: u.name, uid: String(u.uid) }, u.notAfter);
    },
  );
  gauge(
    "mintun_peer_last_handshake_timestamp_seconds",
    "when the newest tunnel to each peer was created, unix seconds (peers with a tunnel)",
    ["peer"],
    (g) => {
      const by = new Map<string, number>();
      for (const t of o().status.tunnels)
        by.set(t.peer, Math.max(by.get(t.peer) ?? 0, nowSec() - t.ageMs / 1000));
      for (const [peer, at] of by) g.set({ peer }, Math.round(at));
    },
  );
  gauge(
    "mintun_peer_last_rekey_timestamp_seconds",
    "when a tunnel to each peer last rekeyed, unix seconds (peers with a rekeyed tunnel)",
    ["peer"],
    (g) => {
      const by = new Map<string, number>();
      for (const t of o().status.tunnels)
        if (t.lastRekeyMsAgo >= 0)
          by.set(t.peer, Math.max(by.get(t.peer) ?? 0, nowSec() - t.lastRekeyMsAgo / 1000));
      for (const [peer, at] of by) g.set({ peer }, Math.round(at));
    },
  );
  counter("mintun_drops_total", "datagrams and packets dropped, by reason", ["reason"], (c) => {
    for (const [reason, v] of Object.entries(o().status.drops)) c.inc({ reason: snake(reason) }, v);
  });
  // rekeys and roams have their own counters (one metric per meaning)
  counter(
    "mintun_events_total",
    "protocol events, by kind (rekeys and roams: their own counters)",
    ["event"],
    (c) => {
      for (const [event, v] of Object.entries(o().status.events))
        if (event !== "rekeys" && event !== "roams") c.inc({ event: snake(event) }, v);
    },
  );
  counter(
    "mintun_unexpected_errors_total",
    "unexpected errors caught in a periodic task or a data-path batch (a bug; the daemon went on), by task",
    ["task"],
    (c) => {
      for (const [task, v] of Object.entries(o().status.daemon?.unexpectedErrors?.byTask ?? {}))
        c.inc({ task: snake(task) }, v);
    },
  );
  counter(
    "mintun_loop_stalls_total",
    "seconds in which the event loop was held longer than the bound (ms), by bound",
    ["over_ms"],
    (c) => {
      const l = o().status.daemon?.loopDelay;
      if (!l) return;
      c.inc({ over_ms: "50" }, l.over50ms);
      c.inc({ over_ms: "200" }, l.over200ms);
      c.inc({ over_ms: "1000" }, l.over1000ms);
    },
  );
  counter("mintun_rekeys_total", "tunnel rekeys completed", [], (c) => c.inc(o().status.events.rekeys ?? 0));
  counter("mintun_roams_total", "tunnel endpoint changes (a peer migrated to a new address)", [], (c) =>
    c.inc(o().status.events.roams ?? 0),
  );
  const deviceHelp: Record<string, [string, string[]]> = {
    mintun_device_bytes_total: [
      "bytes through the TUN and UDP devices, by direction",
      ["device", "direction"],
    ],
    mintun_device_packets_total: [
      "packets through the TUN and UDP devices, by direction",
      ["device", "direction"],
    ],
    mintun_device_errors_total: [
      "read and write errors of the devices, by direction",
      ["device", "direction"],
    ],
    mintun_device_dropped_packets_total: [
      "packets the devices did not send, by reason",
      ["device", "reason"],
    ],
    mintun_device_offload_messages_total: [
      "offload super-packets: TUN GSO reads and coalesced writes, UDP GSO sends and GRO receives, by kind",
      ["device", "kind"],
    ],
    mintun_device_offload_segments_total: [
      "packets carried inside those super-packets, by kind",
      ["device", "kind"],
    ],
    mintun_device_offload_fallbacks_total: [
      "times the kernel refused UDP GSO and packets went again without it",
      ["device"],
    ],
  };
  for (const [name, [help, labels]] of Object.entries(deviceHelp))
    counter(name, help, labels, (c) => {
      for (const [device, st] of Object.entries(o().status.devices))
        for (const [stat, v] of Object.entries((st ?? {}) as Record<string, unknown>)) {
          const m = (DEVICE_COUNTERS as Record<string, DeviceCounter | undefined>)[stat];
          if (!m || m[0] !== name || typeof v !== "number") continue;
          c.inc(m[1] ? { device, [m[1]]: m[2] } : { device }, v);
        }
    });
  gauge("mintun_dos_puzzling", "1 while creations must carry a solved puzzle (under load)", [], (g) =>
    g.set(o().status.dos?.puzzling ? 1 : 0),
  );
  gauge("mintun_dos_puzzle_difficulty_bits", "current puzzle difficulty", [], (g) =>
    g.set(o().status.dos?.difficulty ?? 0),
  );
  counter(
    "mintun_dos_offered_creates_total",
    "tunnel creations offered to the load meter (CREATEs for unknown tunnels past the cheap checks)",
    [],
    (c) => c.inc(o().status.dos?.offeredCreates ?? 0),
  );
  gauge("mintun_dos_sources", "underlay sources with a rate-limit bucket", [], (g) =>
    g.set(o().status.dos?.sources ?? 0),
  );
  gauge(
    "mintun_directories",
    "configured directories, by state (no-record, connecting, up)",
    ["state"],
    (g) => {
      const by: Record<string, number> = { "no-record": 0, connecting: 0, up: 0 };
      for (const d of o().status.directory?.client?.directories ?? []) by[d.state]!++;
      for (const [state, n] of Object.entries(by)) g.set({ state: snake(state) }, n);
    },
  );
  gauge(
    "mintun_directory_up",
    "1 for each configured directory that is up, 0 otherwise",
    ["directory"],
    (g) => {
      for (const d of o().status.directory?.client?.directories ?? [])
        g.set({ directory: d.name ?? d.endpoint }, d.state === "up" ? 1 : 0);
    },
  );
  gauge(
    "mintun_directory_last_answer_timestamp_seconds",
    "when each directory last answered, unix seconds (directories that answered)",
    ["directory"],
    (g) => {
      for (const d of o().status.directory?.client?.directories ?? [])
        if (d.lastAnswerMsAgo !== null)
          g.set({ directory: d.name ?? d.endpoint }, Math.round(nowSec() - d.lastAnswerMsAgo / 1000));
    },
  );
  gauge("mintun_directory_cached_records", "verified records from directories held in the cache", [], (g) =>
    g.set(o().status.directory?.client?.cachedRecords ?? 0),
  );
  gauge("mintun_directory_records", "records stored by this directory (directory role)", [], (g) =>
    g.set(o().status.directory?.server?.records ?? 0),
  );
  gauge("mintun_relay_pairs", "host pairs holding a relay token (relay role)", [], (g) =>
    g.set(o().status.directory?.relay?.pairs ?? 0),
  );
  for (const [name, help, field] of [
    ["mintun_relay_bytes_total", "bytes this relay forwarded, by sending host (the 20 largest)", "bytes"],
    [
      "mintun_relay_packets_total",
      "datagrams this relay forwarded, by sending host (the 20 largest)",
      "packets",
    ],
    [
      "mintun_relay_dropped_packets_total",
      "datagrams this relay refused, by sending host (rate, no peer)",
      "dropped",
    ],
  ] as const)
    counter(name, help, ["host"], (c) => {
      for (const h of o().status.directory?.relay?.hosts ?? []) c.inc({ host: h.name }, h[field]);
    });
  counter("mintun_dns_responses_total", "DNS answers for overlay names, by rcode", ["rcode"], (c) => {
    const k = o().status.names?.dns.counters ?? {};
    for (const rcode of DNS_RCODES) c.inc({ rcode }, k[rcode] ?? 0);
  });
  counter(
    "mintun_dns_dropped_total",
    "DNS queries dropped without an answer: malformed, or over the in-flight bound",
    ["reason"],
    (c) => {
      const k = o().status.names?.dns.counters ?? {};
      c.inc({ reason: "malformed" }, k.malformed ?? 0);
      c.inc({ reason: "overload" }, k.overload ?? 0);
    },
  );
  counter(
    "mintun_name_lookups_total",
    "name lookups (DNS, mintun resolve), by where the answer came from",
    ["result"],
    (c) => {
      for (const [result, v] of Object.entries(o().status.names?.lookups ?? {}))
        if (result !== "lookups") c.inc({ result: snake(result) }, v);
    },
  );
  gauge("mintun_peer_subnet_routes", "TUN routes for subnets in peers' certificates", [], (g) =>
    g.set(o().status.names?.subnetRoutes.installed.length ?? 0),
  );
  counter("mintun_config_reloads_total", "configuration reloads (SIGHUP), by result", ["result"], (c) => {
    c.inc({ result: "ok" }, o().reloads.ok);
    c.inc({ result: "failed" }, o().reloads.failed);
  });
  gauge(
    "mintun_config_last_reload_successful",
    "1 if the last reload was applied (or none happened)",
    [],
    (g) => g.set(o().reloads.lastOk ? 1 : 0),
  );
  if (withDefaults) collectDefaultMetrics({ register: reg });
  return reg;
}

/** Starts an HTTP server answering GET /metrics from `reg`; resolves once listening. */
export async function serveMetrics(reg: Registry, host: string, port: number): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" || (url !== "/metrics" && url !== "/")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found; try /metrics\n");
      return;
    }
    if (url === "/") {
      res.writeHead(200, { "content-type": "text/plain" }).end("mintund metrics: /metrics\n");
      return;
    }
    reg.metrics().then(
      (text) => res.writeHead(200, { "content-type": reg.contentType }).end(text),
      (e: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(e)}\n`),
    );
  });
  await listen(srv, host, port, "metrics");
  return srv;
}
