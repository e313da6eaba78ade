/**
 * Operator commands that talk to the running daemon or check its inputs:
 * `mintun peers`, `mintun whois ADDR[:PORT]`, `mintun ping HOST`, `mintun reload`
 * (`mintun check-config FILE` is in check-config.ts).
 *
 * Exit codes (shell-friendly, as everywhere in mintun): 0 success; 1 failure
 * (daemon not reachable, address unknown, no ping reply, config invalid);
 * 2 usage.
 */
import { spawn } from "node:child_process";
import { apiCall } from "../../api/client.js";
import type { ReloadStatus, Status, WhoisAnswer, WhoisConn } from "../../daemon/status.js";
import { MintunError, UsageError } from "../../errors.js";
import { parseIp } from "../../ip/ip.js";
import { EXIT_FAILURE, type Command, type Io } from "../cli.js";
import { SOCKET_FLAG, table } from "./status.js";
import { bytes, recordText } from "../format.js";

const JSON_FLAG = { name: "json", type: "boolean", help: "print JSON" } as const;

const getStatus = (socket: string) => apiCall(socket, "status") as Promise<Status>;

/** The best tunnel state of a peer: established > replying > creating > closed. */
function peerState(s: Status, peer: string): string {
  const order = ["established", "replying", "creating", "closed"];
  const states = s.tunnels.filter((t) => t.peer === peer).map((t) => t.state);
  return order.find((o) => states.includes(o)) ?? "-";
}

export function formatPeers(s: Status): string {
  if (s.peers.length === 0) return "no peers\n";
  return table([
    ["NAME", "TUNNEL", "ADDRESSES", "ENDPOINT", "KEY", "RECORD", "RX", "TX"],
    ...s.peers.map((p) => {
      const ts = s.tunnels.filter((t) => t.peer === p.name);
      const rx = ts.reduce((a, t) => a + t.rxBytes, 0);
      const tx = ts.reduce((a, t) => a + t.txBytes, 0);
      return [
        p.name,
        peerState(s, p.name),
        [p.ip4, p.ip6, ...p.subnets].filter(Boolean).join(" ") || "-",
        p.endpoint ?? "-",
        p.key ?? "-",
        recordText(p),
        bytes(rx),
        bytes(tx),
      ];
    }),
  ]);
}

export const peers: Command = {
  path: ["peers"],
  summary: "list the daemon's peers: tunnel state, overlay addresses, endpoint, key, traffic",
  flags: [SOCKET_FLAG, JSON_FLAG],
  async run(args, io) {
    const s = await getStatus(args.string("socket")!);
    if (args.bool("json")) {
      io.stdout(
        JSON.stringify(
          s.peers.map((p) => ({ ...p, state: peerState(s, p.name) })),
          null,
          2,
        ) + "\n",
      );
    } else io.stdout(formatPeers(s));
  },
};

const PROTO_NAMES: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6" };

function identity(i: { name: string; groups: string[]; fingerprint: string }): string {
  return `${i.name} (groups ${i.groups.join(",") || "-"}, key ${i.fingerprint})`;
}

export function formatConn(c: WhoisConn): string {
  const proto = PROTO_NAMES[c.proto] ?? `proto ${c.proto}`;
  const arrow = c.direction === "out" ? `${c.local} -> ${c.remote}` : `${c.local} <- ${c.remote}`;
  const rows: [string, string][] = [
    [
      "conn",
      `${c.direction} ${proto} ${arrow} ${c.state}${c.denyReason ? ` (${c.denyReason})` : ""}, ` +
        `opened ${new Date(c.openedAt).toISOString()}`,
    ],
    ["  host", identity(c.peerHost)],
    ["  user", c.peerUser ? identity(c.peerUser) : "- (host identity)"],
  ];
  if (c.direction === "out")
    rows.push([
      "  local",
      c.localUser ? `${c.localUser.name} (uid ${c.localUser.uid})` : "- (host identity)",
    ]);
  rows.push(["  session", c.session], ["  packets", `rx ${c.rxPackets} tx ${c.txPackets}`]);
  return rows.map(([k, v]) => `${(k + ":").padEnd(10)} ${v}\n`).join("");
}

export function formatWhois(w: WhoisAnswer, port: number | null = null): string {
  const rows: [string, string][] = [
    ["address", w.address],
    ["host", w.kind === "self" ? `${w.name} (this host)` : w.name],
    ["key", w.key ?? "- (record not fetched yet)"],
    ["match", w.match],
  ];
  if (w.kind === "peer") rows.push(["endpoint", w.endpoint ?? "-"]);
  for (const t of w.tunnels)
    rows.push(["tunnel", `session ${t.session} ${t.state} epoch ${t.epoch} via ${t.endpoint}`]);
  if (w.kind === "peer" && w.tunnels.length === 0) rows.push(["tunnel", "none"]);
  let out = rows.map(([k, v]) => `${(k + ":").padEnd(10)} ${v}\n`).join("");
  if (w.conns) {
    if (w.conns.length === 0)
      out += `${"conn:".padEnd(10)} none with ${port === null ? w.address : `port ${port}`}\n`;
    for (const c of w.conns) out += formatConn(c);
    if (typeof w.connsOf === "number")
      out += `${"".padEnd(10)} (only connections of your own sockets, uid ${w.connsOf}; root sees all)\n`;
  }
  return out;
}

/**
 * ADDR or ADDR:PORT: "10.0.0.1", "10.0.0.1:443", "fd00::1", "[fd00::1]", "[fd00::1]:443".
 * Throws UsageError for anything else.
 */
export function parseWhoisTarget(s: string): { address: string; port: number | null } {
  let host = s;
  let portText: string | null = null;
  const bracket = /^\[([^\]]+)\](?::([^:]*))?$/.exec(s);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2] ?? null;
  } else if (s.split(":").length === 2) {
    [host, portText] = s.split(":") as [string, string];
  }
  const ip = parseIp(host);
  if (!ip || (bracket && !host.includes(":")))
    throw new UsageError(`'${s}' is not ADDR or ADDR:PORT (IPv6 with a port: [ADDR]:PORT)`);
  let port: number | null = null;
  if (portText !== null) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535)
      throw new UsageError(`'${s}': the port must be 0..65535`);
    port = Number(portText);
  }
  return { address: ip.text, port };
}

export const whois: Command = {
  path: ["whois"],
  summary: "who owns an overlay address, and with ADDR:PORT which host and user own that flow",
  description:
    "Answers from the daemon's verified certificates (its own and its peers') and its connections:\n" +
    "the host owning ADDR, and every connection whose remote end is ADDR (and PORT, when given),\n" +
    "with the remote host and user identity (name, groups, key fingerprint), the local user who\n" +
    "opened it (outgoing), and the tunnel session id (the same on both ends).\n" +
    "Any local user may ask. Exit 1 if no known host owns the address.",
  positionals: [
    { name: "ADDR[:PORT]", help: "overlay IPv4 or IPv6 address ([v6]:port with a port)", required: true },
  ],
  flags: [SOCKET_FLAG, JSON_FLAG],
  async run(args, io) {
    const target = args.positionals[0]!;
    const { address, port } = parseWhoisTarget(target);
    const params: Record<string, unknown> = port === null ? { address } : { address, port };
    const w = (await apiCall(args.string("socket")!, "whois", params)) as WhoisAnswer | null;
    if (!w) {
      if (args.bool("json")) io.stdout("null\n");
      io.stderr(`mintun: ${address}: no known host owns this address\n`);
      return EXIT_FAILURE;
    }
    io.stdout(args.bool("json") ? JSON.stringify(w, null, 2) + "\n" : formatWhois(w, port));
    return 0;
  },
};

export function formatReload(r: ReloadStatus): string {
  if (!r.ok) return `reload refused; the running configuration stays: ${r.error ?? "unknown error"}\n`;
  let out = `reloaded: ${r.applied.length ? r.applied.join("; ") : "nothing changed"}\n`;
  if (r.restartRequired.length)
    out += `changed but need a restart (left as they were): ${r.restartRequired.join(", ")}\n`;
  return out;
}

export const reload: Command = {
  path: ["reload"],
  summary: "make the daemon re-read its config (as SIGHUP does); needs root",
  description:
    "Asks mintund over its API socket to reload its configuration, policy and user store,\n" +
    "and prints what was applied. Needs root (or the daemon's own user): the daemon checks\n" +
    "the caller's socket credentials. Exit 1 if the reload was refused or not allowed.",
  flags: [SOCKET_FLAG, JSON_FLAG],
  async run(args, io) {
    const r = (await apiCall(args.string("socket")!, "reload", {}, 30_000)) as ReloadStatus;
    io.stdout(args.bool("json") ? JSON.stringify(r, null, 2) + "\n" : formatReload(r));
    return r.ok ? 0 : EXIT_FAILURE;
  },
};

/** Resolves a peer name or overlay address to { address, owner } from the status. */
export function resolveTarget(
  whoisOf: (s: Status, address: string) => WhoisAnswer | null,
  s: Status,
  host: string,
  family: 4 | 6 | null,
): { address: string; w: WhoisAnswer } {
  let address: string | null = null;
  const ip = parseIp(host);
  if (ip) address = ip.text;
  else {
    const p = s.peers.find((x) => x.name === host);
    const self = s.host.name === host ? s.host : null;
    const o = p ?? self;
    if (!o) throw new MintunError("ENOHOST", `'${host}' is neither a peer of this daemon nor an address`);
    address = family === 6 ? o.ip6 : family === 4 ? o.ip4 : (o.ip4 ?? o.ip6);
    if (!address)
      throw new MintunError(
        "ENOADDR",
        p && !p.key
          ? `peer '${host}' has no known overlay address yet (its record was not fetched)`
          : `'${host}' has no overlay IPv${family ?? 4} address`,
      );
  }
  const w = whoisOf(s, address);
  if (!w) throw new MintunError("ENOHOST", `${address}: no known host owns this address`);
  return { address, w };
}

/** The summary lines of iputils ping: "3 packets transmitted, 3 received", "rtt min/avg/max/mdev = ..." */
export function parsePingSummary(out: string): {
  transmitted: number | null;
  received: number | null;
  rttMs: { min: number; avg: number; max: number; mdev: number } | null;
} {
  const c = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  const r = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out);
  return {
    transmitted: c ? Number(c[1]) : null,
    received: c ? Number(c[2]) : null,
    rttMs: r ? { min: Number(r[1]), avg: Number(r[2]), max: Number(r[3]), mdev: Number(r[4]) } : null,
  };
}

/** Runs ping; its output goes to io as it comes, or (capture) is returned whole. */
function runPing(args: string[], io: Io, capture = false): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn("ping", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    c.stdout.setEncoding("utf8");
    c.stderr.setEncoding("utf8");
    c.stdout.on("data", (d: string) => (capture ? (out += d) : io.stdout(d)));
    c.stderr.on("data", (d: string) => (capture ? (out += d) : io.stderr(d)));
    c.on("error", (e) => reject(new MintunError("ENOPING", `cannot run ping: ${e.message}`, { cause: e })));
    c.on("close", (code) => resolve({ code: code ?? EXIT_FAILURE, out }));
  });
}

export const ping: Command = {
  path: ["ping"],
  summary: "ping a peer over the overlay (by name or overlay address) and show the tunnel that carried it",
  description:
    "Runs the system ping against the peer's overlay address (IPv4 unless --ipv6 or only IPv6 is certified).\n" +
    "Exit 0 when replies came back, 1 when none did or the host is unknown.",
  positionals: [{ name: "HOST", help: "peer name or overlay address", required: true }],
  flags: [
    SOCKET_FLAG,
    { name: "count", type: "number", metavar: "N", default: 3, min: 1, max: 1000, help: "echo requests" },
    {
      name: "interval-ms",
      type: "number",
      metavar: "MS",
      default: 200,
      min: 2,
      max: 60_000,
      help: "milliseconds between requests (below 200 needs root)",
    },
    { name: "timeout", type: "number", metavar: "SEC", default: 2, min: 1, max: 60, help: "wait per reply" },
    { name: "ipv6", type: "boolean", help: "use the peer's overlay IPv6 address" },
    {
      ...JSON_FLAG,
      help: "print one JSON object at the end (ping's counts and round-trip times, the tunnels)",
    },
  ],
  async run(args, io) {
    const socket = args.string("socket")!;
    const host = args.positionals[0]!;
    // the owner lookup is loaded for ping only (whois asks the daemon)
    const { whois: whoisOf } = await import("../../daemon/status.js");
    const { address, w } = resolveTarget(
      whoisOf,
      await getStatus(socket),
      host,
      args.bool("ipv6") ? 6 : null,
    );
    const json = args.bool("json");
    if (!json) io.stdout(`mintun ping ${w.name}${w.kind === "self" ? " (this host)" : ""} at ${address}\n`);
    const { code, out } = await runPing(
      [
        "-n",
        "-c",
        String(args.number("count")),
        "-i",
        String(args.number("interval-ms")! / 1000),
        "-W",
        String(args.number("timeout")),
        address,
      ],
      io,
      json,
    );
    const tunnels = w.kind === "peer" ? (whoisOf(await getStatus(socket), address)?.tunnels ?? []) : [];
    if (json) {
      io.stdout(
        JSON.stringify(
          {
            host: w.name,
            self: w.kind === "self",
            address,
            ...parsePingSummary(out),
            tunnels,
            ok: code === 0,
          },
          null,
          2,
        ) + "\n",
      );
    } else if (w.kind === "peer") {
      const ts = tunnels;
      io.stdout(
        ts.length
          ? ts
              .map((t) => `carried by tunnel ${t.session} (${t.state}, epoch ${t.epoch}) to ${t.endpoint}\n`)
              .join("")
          : `no tunnel to ${w.name}\n`,
      );
    }
    return code === 0 ? 0 : EXIT_FAILURE;
  },
};
