/** `mintun status`: what the local daemon is doing, as a table or JSON. */
import { apiCall } from "../../api/client.js";
import type { Status } from "../../daemon/status.js";
import type { Command, Io } from "../cli.js";
import type { FlagSpec } from "../args.js";
import { ago, bytes, duration, durationMs, keyIdHex, recordText } from "../format.js";

export const DEFAULT_SOCKET = "/run/mintun/mintund.sock";

export const SOCKET_FLAG: FlagSpec = {
  name: "socket",
  type: "string",
  metavar: "PATH",
  default: DEFAULT_SOCKET,
  env: "MINTUN_SOCKET",
  help: "the daemon's API socket (api.socket in its config)",
};

export { bytes };

export function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return (
    rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join("  ")).join("\n") + "\n"
  );
}

/** dataPath.workers > 1 (docs/OPERATIONS.md "Many cores"): one line with each worker's counts. */
function dataPathLine(s: Status): string {
  type Dp = { workers: number; threads: { index: number; counters: Record<string, number> }[] };
  const dp = (s.devices as { dataPath?: Dp } | undefined)?.dataPath;
  if (!dp) return "";
  const w = dp.threads.map((t) => {
    const c = t.counters;
    const handed = (c.puntTun ?? 0) + (c.puntUdp ?? 0) + (c.puntFrames ?? 0);
    return `worker ${t.index}: sealed ${c.sealed ?? 0}, opened ${c.opened ?? 0}, handed over ${handed}`;
  });
  return `data path: ${dp.workers} threads; ${w.join("; ")}\n`;
}

export function formatStatus(s: Status): string {
  const h = s.host;
  let o = `host ${h.name} (key ${h.key})  ${[h.ip4, h.ip6, ...h.subnets].filter(Boolean).join(" ")}\n`;
  o += `listen ${s.listen}  tun ${s.tun}  up ${duration(s.uptimeSec)}  ephemeral keys: ${s.ephemeral
    .map((k) => `${keyIdHex(k.keyId)} (${duration(k.expiresInSec)} left)`)
    .join(", ")}\n${dataPathLine(s)}\n`;
  o += `tunnels: ${s.tunnels.length}\n`;
  if (s.tunnels.length > 0)
    o += table([
      [
        "PEER",
        "ROLE",
        "STATE",
        "PATH",
        "ENDPOINT",
        "AGE",
        "RTT",
        "EPOCH",
        "RX",
        "TX",
        "LAST RX",
        "REKEYED",
        "SESSION",
      ],
      ...s.tunnels.map((t) => [
        t.peer,
        t.role,
        t.state,
        t.path ?? "direct",
        t.endpoint,
        durationMs(t.ageMs),
        t.rttMs === undefined || t.rttMs < 0 ? "-" : durationMs(t.rttMs),
        String(t.epoch),
        `${t.rxPackets} pkts/${bytes(t.rxBytes)}`,
        `${t.txPackets} pkts/${bytes(t.txBytes)}`,
        ago(t.lastRxMsAgo),
        t.lastRekeyMsAgo < 0 ? "never" : ago(t.lastRekeyMsAgo),
        t.session,
      ]),
    ]);
  o += `\npeers: ${s.peers.length}\n`;
  if (s.peers.length > 0)
    o += table([
      ["NAME", "KEY", "ADDRESSES", "ENDPOINT", "RECORD"],
      ...s.peers.map((p) => [
        p.name,
        p.key ?? "-",
        [p.ip4, p.ip6, ...p.subnets].filter(Boolean).join(" ") || "-",
        p.endpoint ?? "-",
        recordText(p),
      ]),
    ]);
  const c = s.connections;
  if (c)
    o +=
      `\nconnections: ${c.open} open; users ${c.users} (others run as ${c.unmapped === "host" ? "the host" : "nobody: refused"}); ` +
      `policy ${c.policy ? `${c.policy} (${c.policyRules} rules)` : "none (all hosts allowed)"}; ` +
      `owner lookups ${c.lookups} (mean ${c.lookupMeanUs} µs), no owner ${c.noOwner ?? 0}` +
      (c.asHostUids?.length ? `; as the host: uids ${c.asHostUids.join(",")}` : "") +
      "\n";
  const drops = Object.entries(s.drops).filter(([, v]) => v > 0);
  o += `\ndrops: ${drops.length === 0 ? "none" : drops.map(([k, v]) => `${k}=${v}`).join(" ")}\n`;
  const ev = Object.entries(s.events).filter(([, v]) => v > 0);
  o += `events: ${ev.map(([k, v]) => `${k}=${v}`).join(" ")}\n`;
  const n = s.names;
  if (n) {
    const dc = Object.entries(n.dns.counters).filter(([, v]) => v > 0);
    o += `dns: ${n.dns.listen.length ? `${n.dns.domain} on ${n.dns.listen.join(" ")}` : "off"}`;
    o += dc.length ? `  ${dc.map(([k, v]) => `${k}=${v}`).join(" ")}\n` : "\n";
    const sr = n.subnetRoutes;
    if (sr.installed.length || sr.shadowed.length)
      o += `peer subnets routed: ${sr.installed.join(" ") || "-"}${sr.shadowed.length ? `; already routed here: ${sr.shadowed.join(" ")}` : ""}\n`;
    if (n.gateway.forward) o += `gateway: forwarding${n.gateway.masquerade ? ", masquerade" : ""}\n`;
  }
  o += directoryLines(s);
  const rv = s.revocation;
  if (rv)
    o +=
      `revocation list #${rv.number}: ${rv.entries} revoked, issued ${rv.issued}, next update ${rv.nextUpdate}` +
      `${rv.stale ? " (STALE: ask the CA for a newer list)" : ""}\n`;
  const d = s.daemon;
  if (d) {
    o += `\ndaemon: pid ${d.pid}, version ${d.version}, config ${d.config}, log ${d.logLevel}`;
    if (d.dumpable === 0) o += ", core dumps off";
    else if (typeof d.dumpable === "number") o += ", CORE DUMPS ON (keys could land in a core file)";
    o += `, metrics ${d.metrics ?? "off"}, web ${d.web ?? "off"}\n`;
    const r = d.reload;
    if (r)
      o +=
        `last reload ${new Date(r.at).toISOString()}: ${r.ok ? "applied" : `REFUSED: ${r.error}`}` +
        (r.applied.length ? `; applied: ${r.applied.join(", ")}` : "") +
        (r.restartRequired.length
          ? `; needs a restart (left unchanged): ${r.restartRequired.join(", ")}`
          : "") +
        "\n";
  }
  return o;
}

/** The directory client (directories, registration, cached records) and role (stored records). */
function directoryLines(s: Status): string {
  const dir = s.directory;
  if (!dir) return "";
  let o = "";
  const c = dir.client;
  if (c) {
    o += `\ndirectories: ${c.directories.length}, cached records ${c.cachedRecords}, negative ${c.negative}, lookups in flight ${c.inflight}, waiting targets ${c.pendingTargets}\n`;
    o += table([
      ["DIRECTORY", "NAME", "STATE", "REGISTERED", "OBSERVED", "LAST ANSWER"],
      ...c.directories.map((x) => [
        x.endpoint,
        x.name ?? "-",
        x.state,
        x.registered ? "yes" : "no",
        x.observed ?? "-",
        x.lastAnswerMsAgo === null ? "never" : ago(x.lastAnswerMsAgo),
      ]),
    ]);
  }
  if (dir.server)
    o += `directory role: store ${dir.server.store}, ${dir.server.records} records, ${dir.server.hosts} hosts seen\n`;
  const rh = dir.relayHosts;
  if (rh) o += `relay hosts: ${rh.offering} offering, ${rh.pairs} pairs handed out\n`;
  const r = dir.relay;
  if (r) {
    o += `relay: ${r.pairs} pairs, limit ${r.bytesPerSec} B/s per host (burst ${r.burstBytes})\n`;
    if (r.hosts.length > 0)
      o += table([
        ["RELAYED FOR", "PACKETS", "BYTES", "DROPPED"],
        ...r.hosts.map((h) => [h.name, String(h.packets), String(h.bytes), String(h.dropped)]),
      ]);
  }
  return o;
}

export const status: Command = {
  path: ["status"],
  summary: "show the daemon's tunnels, peers, counters and last reload",
  description: "Exit 0 when the daemon answered, 1 when it is not running or the last reload was refused.",
  flags: [SOCKET_FLAG, { name: "json", type: "boolean", help: "print the raw status as JSON" }],
  async run(args, io: Io) {
    const s = (await apiCall(args.string("socket")!, "status")) as Status;
    io.stdout(args.bool("json") ? JSON.stringify(s, null, 2) + "\n" : formatStatus(s));
    return s.daemon?.reload && !s.daemon.reload.ok ? 1 : 0;
  },
};
