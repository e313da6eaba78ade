/**
 * The daemon configuration: YAML, validated against a fixed schema.
 *
 * Every error is a ConfigError naming the file, the line, the key path (e.g.
 * "peers[1].endpoint") and what was expected. Unknown keys are rejected, with a
 * "did you mean" suggestion when one is close. Defaults are applied here; relative
 * paths are resolved against the directory of the config file. The documented
 * example with every key, its default and whether it reloads is config/host.yaml.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { isScalar, isSeq, parseDocument, type Node } from "yaml";
import { ConfigError } from "../errors.js";
import { describeYaml, YamlReader, type YamlValue } from "./yaml.js";
import { isValidName } from "../wire/cert.js";
import { parseCidr, parseIp } from "../ip/ip.js";
import { isInterfaceName } from "../text.js";
import { normalizeDomain } from "../names/dns.js";

export type LogLevel = "error" | "warn" | "info" | "debug";
export const LOG_LEVELS: readonly LogLevel[] = ["error", "warn", "info", "debug"];

export interface HostPort {
  host: string;
  port: number;
}

export interface PeerConfig {
  name: string;
  endpoint: HostPort;
  /** Absolute path of the peer's host certificate, when pinned locally. */
  cert?: string;
}

/**
 * The etcd cluster of a directory store. tls: CA bundle to verify the servers
 * (https:// endpoints), and optionally a client certificate and key; username
 * with the password read from passwordFile: etcd's own authentication.
 */
export interface EtcdConfig {
  endpoints: string[];
  prefix: string;
  tls: { ca: string; cert: string | null; key: string | null } | null;
  auth: { username: string; passwordFile: string } | null;
}

/** The directory role (docs/OPERATIONS.md "Running a directory"). */
export interface DirectoryServeConfig {
  serve: boolean;
  /** file: STATE/directory.json (default); etcd: shared by several directories */
  store: "file" | "etcd";
  etcd: EtcdConfig | null;
  maxRecords: number;
  /** per registering host */
  registerPerSec: number;
  lookupPerSec: number;
}

export interface DirectoryEntry {
  /** IP literal and port of a directory (its identity is learned from its record) */
  endpoint: HostPort;
}

export interface Config {
  /** Absolute path of the file this was loaded from. */
  file: string;
  /** Path to the CA certificate (required). */
  ca: string;
  host: { key: string; cert: string };
  /** "listen: 0.0.0.0:7000" or "[::]:7000"; address is an IP literal. */
  listen: { address: string; port: number };
  /** peerSubnets: route the subnets listed in verified peer certificates into the TUN (default true) */
  tun: { name: string; mtu: number; routes: string[]; peerSubnets: boolean };
  ephemeral: { lifetimeSec: number; minFirstPacket: number };
  /**
   * maxPerHost: tunnels one peer host may hold (its share of maxTunnels);
   * unconfirmedTimeoutSec: life of an accepted tunnel its creator never confirmed
   */
  tunnel: {
    rekeySec: number;
    keepaliveSec: number;
    idleTimeoutSec: number;
    maxTunnels: number;
    maxPerHost: number;
    unconfirmedTimeoutSec: number;
  };
  /** how often this host refreshes its registration with its directories (besides on key rotation) */
  registration: { refreshSec: number };
  /** denial-of-service defence (docs/PROTOCOL.md section 5a) */
  dos: {
    perSourcePerSec: number;
    perSourceBurst: number;
    puzzleAbovePerSec: number;
    baseDifficulty: number;
    maxDifficulty: number;
    /** creator side: the hardest puzzle worked on, and puzzles solved per peer per 10 s */
    maxSolveDifficulty: number;
    puzzleSolvesPerPeer: number;
  };
  peers: PeerConfig[];
  /** directories this host registers with and looks hosts up from, in order of preference */
  directories: DirectoryEntry[];
  /** this daemon serves as a directory (null: it does not) */
  directory: DirectoryServeConfig | null;
  api: { socket: string };
  /** YAML key "state". */
  stateDir: string;
  log: { level: LogLevel };
  /** Prometheus endpoint (GET /metrics); null = off (the default). */
  metrics: { listen: HostPort | null };
  /** Live web view; null = off (the default). Loopback addresses only. */
  web: { listen: HostPort | null };
  /** Connection policy file (docs/IDENTITY.md); null = every authenticated host may reach everything. */
  policy: string | null;
  /**
   * Per-user connections (docs/IDENTITY.md): what flows of OS users without an entry in
   * the user store, and flows whose owner is not proven, run as (default deny); asHost:
   * OS users and groups (names or numeric ids, "@group" or "group:NAME" for a group)
   * whose flows run as the host, like root's.
   */
  users: { unmapped: "host" | "deny"; asHost: string[] };
  /**
   * DNS for overlay names (docs/OPERATIONS.md "Names (DNS)"). listen: "overlay" = this
   * host's overlay addresses, port 53; an explicit address; or null = off (the default).
   * domain: normalized with the trailing dot, default "mesh.".
   */
  dns: { listen: "overlay" | HostPort | null; domain: string };
  /** Site-to-site gateway (docs/OPERATIONS.md "Site-to-site gateways"). */
  gateway: { forward: boolean; masquerade: boolean; lanInterface: string | null };
}

export const DEFAULTS = {
  listen: { address: "0.0.0.0", port: 7000 },
  tun: { name: "mintun0", mtu: 1400 },
  ephemeral: { lifetimeSec: 300, minFirstPacket: 256 },
  tunnel: {
    rekeySec: 120,
    keepaliveSec: 25,
    idleTimeoutSec: 180,
    maxTunnels: 10_000,
    maxPerHost: 64,
    unconfirmedTimeoutSec: 10,
  },
  registration: { refreshSec: 10 },
  dos: {
    perSourcePerSec: 100,
    perSourceBurst: 200,
    puzzleAbovePerSec: 1000,
    baseDifficulty: 8,
    maxDifficulty: 20,
    maxSolveDifficulty: 20,
    puzzleSolvesPerPeer: 4,
  },
  api: { socket: "/run/mintun/mintund.sock" },
  stateDir: "/var/lib/mintun",
  log: { level: "info" as LogLevel },
  dns: { domain: "mesh." },
  directory: { maxRecords: 100_000, registerPerSec: 1, lookupPerSec: 200, etcdPrefix: "/mintun/directory/" },
} as const;

/** Numeric bounds (inclusive). */
export const LIMITS = {
  mtu: [1280, 9000],
  // the low ends exist for time-compressed tests (test/netns/soak.test.ts); production
  // values are minutes (docs/OPERATIONS.md "Timers")
  lifetimeSec: [10, 86_400],
  minFirstPacket: [64, 1400],
  rekeySec: [5, 86_400],
  keepaliveSec: [0, 3600],
  idleTimeoutSec: [3, 86_400],
  refreshSec: [1, 3600],
  maxTunnels: [1, 1_000_000],
  maxPerHost: [1, 1_000_000],
  unconfirmedTimeoutSec: [2, 3600],
  perSourcePerSec: [1, 1_000_000],
  perSourceBurst: [1, 1_000_000],
  puzzleAbovePerSec: [0, 10_000_000],
  baseDifficulty: [1, 20],
  maxDifficulty: [1, 20],
  maxSolveDifficulty: [0, 20],
  puzzleSolvesPerPeer: [1, 1000],
  maxRecords: [1, 10_000_000],
  registerPerSec: [1, 1000],
  lookupPerSec: [1, 1_000_000],
} as const satisfies Record<string, readonly [number, number]>;

/**
 * Keys whose change needs a daemon restart; everything else is applied on SIGHUP
 * (see restartRequired and config/host.yaml).
 */
export const RESTART_KEYS = [
  "ca",
  "host.key",
  "host.cert",
  "listen",
  "tun.name",
  "tun.mtu",
  "ephemeral.lifetimeSec",
  "ephemeral.minFirstPacket",
  "dos",
  "api.socket",
  "state",
  "metrics.listen",
  "web.listen",
  "dns",
  "gateway",
  "directories",
  "directory",
  "registration",
] as const;

type RestartKey = (typeof RESTART_KEYS)[number];

/**
 * Each restart-only key: how to read it, and how to keep the running value in the
 * effective config after a reload. One table, so that a key added to RESTART_KEYS is both
 * reported and kept (the compiler refuses a key missing here).
 */
const RESTART_FIELDS: Record<
  RestartKey,
  { get: (c: Config) => unknown; keep: (eff: Config, old: Config) => void }
> = {
  ca: { get: (c) => c.ca, keep: (e, o) => void (e.ca = o.ca) },
  "host.key": { get: (c) => c.host.key, keep: (e, o) => void (e.host = { ...e.host, key: o.host.key }) },
  "host.cert": { get: (c) => c.host.cert, keep: (e, o) => void (e.host = { ...e.host, cert: o.host.cert }) },
  listen: { get: (c) => c.listen, keep: (e, o) => void (e.listen = o.listen) },
  "tun.name": { get: (c) => c.tun.name, keep: (e, o) => void (e.tun = { ...e.tun, name: o.tun.name }) },
  "tun.mtu": { get: (c) => c.tun.mtu, keep: (e, o) => void (e.tun = { ...e.tun, mtu: o.tun.mtu }) },
  "ephemeral.lifetimeSec": {
    get: (c) => c.ephemeral.lifetimeSec,
    keep: (e, o) => void (e.ephemeral = { ...e.ephemeral, lifetimeSec: o.ephemeral.lifetimeSec }),
  },
  "ephemeral.minFirstPacket": {
    get: (c) => c.ephemeral.minFirstPacket,
    keep: (e, o) => void (e.ephemeral = { ...e.ephemeral, minFirstPacket: o.ephemeral.minFirstPacket }),
  },
  dos: { get: (c) => c.dos, keep: (e, o) => void (e.dos = o.dos) },
  "api.socket": {
    get: (c) => c.api.socket,
    keep: (e, o) => void (e.api = { ...e.api, socket: o.api.socket }),
  },
  state: { get: (c) => c.stateDir, keep: (e, o) => void (e.stateDir = o.stateDir) },
  "metrics.listen": {
    get: (c) => c.metrics.listen,
    keep: (e, o) => void (e.metrics = { ...e.metrics, listen: o.metrics.listen }),
  },
  "web.listen": {
    get: (c) => c.web.listen,
    keep: (e, o) => void (e.web = { ...e.web, listen: o.web.listen }),
  },
  dns: { get: (c) => c.dns, keep: (e, o) => void (e.dns = o.dns) },
  gateway: { get: (c) => c.gateway, keep: (e, o) => void (e.gateway = o.gateway) },
  directories: { get: (c) => c.directories, keep: (e, o) => void (e.directories = o.directories) },
  directory: { get: (c) => c.directory, keep: (e, o) => void (e.directory = o.directory) },
  registration: { get: (c) => c.registration, keep: (e, o) => void (e.registration = o.registration) },
};

/** Key paths (from RESTART_KEYS) that differ between two configs. */
export function restartRequired(a: Config, b: Config): string[] {
  const f = RESTART_FIELDS;
  return RESTART_KEYS.filter((k) => JSON.stringify(f[k].get(a)) !== JSON.stringify(f[k].get(b)));
}

/**
 * The configuration a daemon runs after reloading `next` while running `old`: `next`,
 * except every restart-only key, which keeps its running value (so the next reload still
 * reports it as needing a restart).
 */
export function effectiveConfig(old: Config, next: Config): Config {
  const eff: Config = { ...next };
  for (const k of RESTART_KEYS) RESTART_FIELDS[k].keep(eff, old);
  return eff;
}

/** Read a YAML file of ours (config, policy) as text; a missing or unreadable file is a ConfigError. */
export function readConfigText(file: string): { abs: string; text: string } {
  const abs = path.resolve(file);
  try {
    return { abs, text: fs.readFileSync(abs, "utf8") };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === "ENOENT" ? "file does not exist" : `cannot read: ${(e as Error).message}`,
      abs,
      undefined,
      undefined,
      { cause: e },
    );
  }
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const { abs, text } = readConfigText(file);
  return parseConfig(text, abs, env);
}

/**
 * Defaults that follow the systemd unit: under a unit with RuntimeDirectory= /
 * StateDirectory=, systemd passes the directories in $RUNTIME_DIRECTORY and
 * $STATE_DIRECTORY (colon-separated; the first is used), so each `mintund@NAME`
 * instance gets its own API socket (/run/mintun-NAME/mintund.sock) and state
 * (/var/lib/mintun/NAME) without saying so in its config. Outside systemd, and for
 * keys the file sets, nothing changes.
 */
export function systemdDefaults(env: NodeJS.ProcessEnv): { socket: string; stateDir: string } {
  const first = (v: string | undefined): string | null => {
    const d = v?.split(":")[0];
    return d && path.isAbsolute(d) ? d : null;
  };
  const run = first(env.RUNTIME_DIRECTORY);
  return {
    socket: run ? path.join(run, "mintund.sock") : DEFAULTS.api.socket,
    stateDir: first(env.STATE_DIRECTORY) ?? DEFAULTS.stateDir,
  };
}

const HOSTNAME_RE =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/**
 * "host:port" or "[v6]:port" -> HostPort (IP literals in canonical form), or null.
 * With ipOnly the host must be an IP literal.
 */
export function parseHostPort(s: string, ipOnly = false): HostPort | null {
  let host: string;
  let portStr: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0 || s[close + 1] !== ":") return null;
    host = s.slice(1, close);
    portStr = s.slice(close + 2);
    const ip = parseIp(host);
    if (!ip || ip.family !== 6) return null;
    host = ip.text;
  } else {
    const colon = s.lastIndexOf(":");
    if (colon <= 0) return null;
    host = s.slice(0, colon);
    portStr = s.slice(colon + 1);
    if (host.includes(":")) return null; // bare IPv6 needs brackets
    const ip = parseIp(host);
    if (ip) host = ip.text;
    else if (ipOnly || !HOSTNAME_RE.test(host) || /^[0-9.]+$/.test(host)) return null;
  }
  if (!/^[1-9][0-9]{0,4}$/.test(portStr)) return null;
  const port = Number(portStr);
  if (port > 65535) return null;
  return { host, port };
}

type Value = YamlValue;
const describe = (v: Value | undefined): string => describeYaml(v);

class Reader extends YamlReader {
  readonly dir: string;
  constructor(file: string) {
    super(file);
    this.dir = path.dirname(file);
  }

  str(v: Value, key: string, keyNode: Node): string {
    if (!isScalar(v) || typeof v.value !== "string" || v.value === "")
      this.fail(`expected a non-empty string, got ${describe(v)}`, v, key, keyNode);
    return v.value;
  }

  int(v: Value, key: string, keyNode: Node, [min, max]: readonly [number, number]): number {
    if (!isScalar(v) || typeof v.value !== "number" || !Number.isInteger(v.value))
      this.fail(`expected an integer in ${min}..${max}, got ${describe(v)}`, v, key, keyNode);
    if (v.value < min || v.value > max)
      this.fail(`expected an integer in ${min}..${max}, got ${v.value}`, v, key, keyNode);
    return v.value;
  }

  path(v: Value, key: string, keyNode: Node): string {
    return path.resolve(this.dir, this.str(v, key, keyNode));
  }

  seq(v: Value, key: string, keyNode: Node): Node[] {
    if (this.isMissing(v)) return [];
    if (!isSeq(v)) this.fail(`expected a list, got ${describe(v)}`, v, key, keyNode);
    return v.items as Node[];
  }
}

const TOP_KEYS = [
  "ca",
  "host",
  "listen",
  "tun",
  "ephemeral",
  "tunnel",
  "registration",
  "dos",
  "peers",
  "api",
  "state",
  "log",
  "metrics",
  "web",
  "policy",
  "users",
  "dns",
  "gateway",
  "directories",
  "directory",
];

/** 127.0.0.0/8 or ::1 (canonical text from parseHostPort). */
export function isLoopback(ip: string): boolean {
  return ip === "::1" || /^127\./.test(ip);
}

/** Parses and validates config text. `fileName` is used in errors and to resolve relative paths. */
export function parseConfig(text: string, fileName: string, env: NodeJS.ProcessEnv = {}): Config {
  const file = path.resolve(fileName);
  const r: Reader = new Reader(file);
  const doc = parseDocument(text, { lineCounter: r.lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = r.lc.linePos(e.pos[0]).line;
    // The common trap: an unquoted "[v6]:port" is a YAML flow list.
    const m = /^(\s*)([A-Za-z]\w*):\s*\[[0-9A-Fa-f:.]*\]:/.exec(text.split("\n")[line - 1] ?? "");
    const hint = m ? `; quote IPv6 endpoints, e.g. ${m[2]}: "[::]:7000"` : "";
    throw new ConfigError(
      `YAML syntax: ${e.message}${hint}`,
      file,
      line,
      m && m[1] === "" ? m[2] : undefined,
      {
        cause: e,
      },
    );
  }
  const root = (doc.contents as Node | null) ?? null;
  const top = r.map(root, "", TOP_KEYS);
  const bool = (v: Value, key: string): boolean => {
    if (!isScalar(v) || typeof v.value !== "boolean")
      r.fail(`expected true or false, got ${describe(v)}`, v, key);
    return v.value;
  };

  const required = (
    m: Map<string, { key: Node; value: Value }>,
    name: string,
    full: string,
    parent: Value,
  ) => {
    const e = m.get(name);
    if (!e || r.isMissing(e.value)) r.fail("required key is missing", e?.value ?? e?.key ?? parent, full);
    return e as { key: Node; value: Node };
  };

  const caE = required(top, "ca", "ca", root);
  const ca = r.path(caE.value, "ca", caE.key);

  const hostE = required(top, "host", "host", root);
  const hostM = r.map(hostE.value, "host", ["key", "cert"]);
  const hk = required(hostM, "key", "host.key", hostE.value);
  const hc = required(hostM, "cert", "host.cert", hostE.value);
  const host = { key: r.path(hk.value, "host.key", hk.key), cert: r.path(hc.value, "host.cert", hc.key) };

  let listen: { address: string; port: number } = { ...DEFAULTS.listen };
  const le = top.get("listen");
  if (le && !r.isMissing(le.value)) {
    const v = le.value;
    if (isSeq(v))
      r.fail(`expected address:port; quote IPv6 addresses, e.g. listen: "[::]:7000"`, v, "listen");
    const s = r.str(v, "listen", le.key);
    const hp = parseHostPort(s, true);
    if (!hp)
      r.fail(
        `expected address:port with an IP address (e.g. 0.0.0.0:7000 or [::]:7000), got '${s}'`,
        v,
        "listen",
      );
    listen = { address: hp.host, port: hp.port };
  }

  const tunE = top.get("tun");
  const tunM = r.map(tunE?.value ?? null, "tun", ["name", "mtu", "routes", "peerSubnets"]);
  const tun = {
    name: DEFAULTS.tun.name as string,
    mtu: DEFAULTS.tun.mtu as number,
    routes: [] as string[],
    peerSubnets: true,
  };
  const tps = tunM.get("peerSubnets");
  if (tps && !r.isMissing(tps.value)) tun.peerSubnets = bool(tps.value, "tun.peerSubnets");
  const tn = tunM.get("name");
  if (tn && !r.isMissing(tn.value)) {
    tun.name = r.str(tn.value, "tun.name", tn.key);
    if (!isInterfaceName(tun.name))
      r.fail(
        `expected an interface name of 1..15 chars [A-Za-z0-9_.-], got '${tun.name}'`,
        tn.value,
        "tun.name",
      );
  }
  const tm = tunM.get("mtu");
  if (tm && !r.isMissing(tm.value)) tun.mtu = r.int(tm.value, "tun.mtu", tm.key, LIMITS.mtu);
  const tr = tunM.get("routes");
  if (tr) {
    r.seq(tr.value, "tun.routes", tr.key).forEach((item, i) => {
      const key = `tun.routes[${i}]`;
      const s = r.str(item, key, tr.key);
      const c = parseCidr(s);
      if (!c) r.fail(`expected a CIDR with zero host bits (e.g. 10.77.0.0/16), got '${s}'`, item, key);
      tun.routes.push(c.text);
    });
  }

  const intSection = <K extends string>(
    name: string,
    defaults: Record<K, number>,
    limits: Record<NoInfer<K>, readonly [number, number]>,
  ): Record<K, number> => {
    const keys = Object.keys(defaults) as K[];
    const m = r.map(top.get(name)?.value ?? null, name, keys);
    const out = { ...defaults };
    for (const k of keys) {
      const e = m.get(k);
      if (e && !r.isMissing(e.value)) out[k] = r.int(e.value, `${name}.${k}`, e.key, limits[k]);
    }
    return out;
  };
  const ephemeral = intSection("ephemeral", DEFAULTS.ephemeral, LIMITS);
  const tunnel = intSection("tunnel", DEFAULTS.tunnel, LIMITS);
  const dos = intSection("dos", DEFAULTS.dos, LIMITS);
  const registration = intSection("registration", DEFAULTS.registration, LIMITS);
  if (tunnel.keepaliveSec !== 0 && tunnel.idleTimeoutSec <= tunnel.keepaliveSec) {
    const e = r
      .map(top.get("tunnel")?.value ?? null, "tunnel", Object.keys(DEFAULTS.tunnel))
      .get("idleTimeoutSec");
    r.fail(
      `expected idleTimeoutSec (${tunnel.idleTimeoutSec}) greater than keepaliveSec (${tunnel.keepaliveSec})`,
      e?.value ?? top.get("tunnel")?.key,
      "tunnel.idleTimeoutSec",
    );
  }

  const peers: PeerConfig[] = [];
  const pe = top.get("peers");
  if (pe) {
    const seen = new Set<string>();
    r.seq(pe.value, "peers", pe.key).forEach((item, i) => {
      const base = `peers[${i}]`;
      const m = r.map(item, base, ["name", "endpoint", "cert"]);
      const ne = required(m, "name", `${base}.name`, item);
      const name = r.str(ne.value, `${base}.name`, ne.key);
      if (!isValidName(name))
        r.fail(`expected a host name of 1..63 chars [a-z0-9.-], got '${name}'`, ne.value, `${base}.name`);
      if (seen.has(name)) r.fail(`duplicate peer name '${name}'`, ne.value, `${base}.name`);
      seen.add(name);
      const ee = required(m, "endpoint", `${base}.endpoint`, item);
      const es = isScalar(ee.value) ? String(ee.value.value) : null;
      const endpoint = es === null ? null : parseHostPort(es);
      if (!endpoint)
        r.fail(
          `expected host:port (e.g. 192.0.2.1:7000, "[2001:db8::1]:7000" or gw.example.com:7000), got ${describe(ee.value)}`,
          ee.value,
          `${base}.endpoint`,
        );
      const peer: PeerConfig = { name, endpoint };
      const ce = m.get("cert");
      if (ce && !r.isMissing(ce.value)) peer.cert = r.path(ce.value, `${base}.cert`, ce.key);
      peers.push(peer);
    });
  }

  const sysd = systemdDefaults(env);
  const apiM = r.map(top.get("api")?.value ?? null, "api", ["socket"]);
  const sock = apiM.get("socket");
  const api = {
    socket: sock && !r.isMissing(sock.value) ? r.path(sock.value, "api.socket", sock.key) : sysd.socket,
  };

  const st = top.get("state");
  const stateDir = st && !r.isMissing(st.value) ? r.path(st.value, "state", st.key) : sysd.stateDir;

  const logM = r.map(top.get("log")?.value ?? null, "log", ["level"]);
  const lv = logM.get("level");
  let level: LogLevel = DEFAULTS.log.level;
  if (lv && !r.isMissing(lv.value)) {
    const s = r.str(lv.value, "log.level", lv.key);
    if (!(LOG_LEVELS as readonly string[]).includes(s))
      r.fail(`expected one of ${LOG_LEVELS.join(", ")}, got '${s}'`, lv.value, "log.level");
    level = s as LogLevel;
  }

  /** `section: { listen: "ip:port" }`, off when absent or `listen: off`. */
  const listenSection = (name: string, loopbackOnly: boolean): { listen: HostPort | null } => {
    const m = r.map(top.get(name)?.value ?? null, name, ["listen"]);
    const e = m.get("listen");
    if (!e || r.isMissing(e.value)) return { listen: null };
    const v = e.value;
    if (isScalar(v) && (v.value === false || v.value === "off")) return { listen: null };
    if (isSeq(v))
      r.fail(`expected address:port; quote IPv6 addresses, e.g. "[::1]:9477"`, v, `${name}.listen`);
    const s = r.str(v, `${name}.listen`, e.key);
    const hp = parseHostPort(s, true);
    if (!hp)
      r.fail(
        `expected address:port with an IP address (e.g. 127.0.0.1:9477 or "[::1]:9477"), or off; got '${s}'`,
        v,
        `${name}.listen`,
      );
    if (loopbackOnly && !isLoopback(hp.host))
      r.fail(
        `expected a loopback address (127.0.0.0/8 or ::1): the ${name} view has no authentication; got '${s}'`,
        v,
        `${name}.listen`,
      );
    return { listen: hp };
  };
  const metrics = listenSection("metrics", false);
  const web = listenSection("web", true);

  const pol = top.get("policy");
  const policy = pol && !r.isMissing(pol.value) ? r.path(pol.value, "policy", pol.key) : null;
  const usersM = r.map(top.get("users")?.value ?? null, "users", ["unmapped", "asHost"]);
  const um = usersM.get("unmapped");
  let unmapped: "host" | "deny" = "deny";
  if (um && !r.isMissing(um.value)) {
    const s = r.str(um.value, "users.unmapped", um.key);
    if (s !== "host" && s !== "deny") r.fail(`expected host or deny, got '${s}'`, um.value, "users.unmapped");
    unmapped = s;
  }
  const asHost: string[] = [];
  const ah = usersM.get("asHost");
  if (ah) {
    r.seq(ah.value, "users.asHost", ah.key).forEach((item, i) => {
      const key = `users.asHost[${i}]`;
      const v =
        isScalar(item) && typeof item.value === "number" ? String(item.value) : r.str(item, key, ah.key);
      if (!/^(@|group:)?[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/.test(v))
        r.fail(`expected an OS user or group name (group: "@name" or "group:name"), got '${v}'`, item, key);
      asHost.push(v);
    });
  }

  const dnsM = r.map(top.get("dns")?.value ?? null, "dns", ["listen", "domain"]);
  const dns: Config["dns"] = { listen: null, domain: DEFAULTS.dns.domain };
  const dl = dnsM.get("listen");
  if (dl && !r.isMissing(dl.value)) {
    const v = dl.value;
    if (isScalar(v) && (v.value === false || v.value === "off")) dns.listen = null;
    else if (isScalar(v) && v.value === "overlay") dns.listen = "overlay";
    else {
      if (isSeq(v))
        r.fail(`expected overlay, off or address:port; quote IPv6, e.g. "[fd77::1]:53"`, v, "dns.listen");
      const s = r.str(v, "dns.listen", dl.key);
      const hp = parseHostPort(s, true);
      if (!hp)
        r.fail(
          `expected overlay (this host's overlay addresses, port 53), off, or address:port with an IP address; got '${s}'`,
          v,
          "dns.listen",
        );
      dns.listen = hp;
    }
  }
  const dd = dnsM.get("domain");
  if (dd && !r.isMissing(dd.value)) {
    const s = r.str(dd.value, "dns.domain", dd.key);
    const d = normalizeDomain(s);
    if (!d)
      r.fail(
        `expected a domain name of labels [a-z0-9-] (e.g. mesh. or corp.example.), got '${s}'`,
        dd.value,
        "dns.domain",
      );
    dns.domain = d;
  }

  const gwM = r.map(top.get("gateway")?.value ?? null, "gateway", ["forward", "masquerade", "lanInterface"]);
  const gateway: Config["gateway"] = { forward: false, masquerade: false, lanInterface: null };
  const gf = gwM.get("forward");
  if (gf && !r.isMissing(gf.value)) gateway.forward = bool(gf.value, "gateway.forward");
  const gm = gwM.get("masquerade");
  if (gm && !r.isMissing(gm.value)) gateway.masquerade = bool(gm.value, "gateway.masquerade");
  const gl = gwM.get("lanInterface");
  if (gl && !r.isMissing(gl.value)) {
    const s = r.str(gl.value, "gateway.lanInterface", gl.key);
    if (!isInterfaceName(s))
      r.fail(
        `expected an interface name of 1..15 chars [A-Za-z0-9_.-], got '${s}'`,
        gl.value,
        "gateway.lanInterface",
      );
    gateway.lanInterface = s;
  }
  if (gateway.masquerade && !gateway.forward)
    r.fail(
      "masquerade needs forward: true (a gateway that does not forward has nothing to masquerade)",
      gm?.value,
      "gateway.masquerade",
    );

  const directories: DirectoryEntry[] = [];
  const dse = top.get("directories");
  if (dse) {
    const seen = new Set<string>();
    r.seq(dse.value, "directories", dse.key).forEach((item, i) => {
      const base = `directories[${i}]`;
      const m = r.map(item, base, ["endpoint"]);
      const ee = required(m, "endpoint", `${base}.endpoint`, item);
      const es = isScalar(ee.value) ? String(ee.value.value) : null;
      const endpoint = es === null ? null : parseHostPort(es, true);
      if (!endpoint)
        r.fail(
          `expected IP:port of a directory (e.g. 192.0.2.10:7000 or "[2001:db8::10]:7000"), got ${describe(ee.value)}`,
          ee.value,
          `${base}.endpoint`,
        );
      const k = `${endpoint.host}:${endpoint.port}`;
      if (seen.has(k)) r.fail(`duplicate directory endpoint '${k}'`, ee.value, `${base}.endpoint`);
      seen.add(k);
      directories.push({ endpoint });
    });
  }
  if (directories.length > 8)
    r.fail(`expected at most 8 directories, got ${directories.length}`, dse?.value, "directories");

  let directory: DirectoryServeConfig | null = null;
  const dre = top.get("directory");
  if (dre && !r.isMissing(dre.value)) {
    const m = r.map(dre.value, "directory", [
      "serve",
      "store",
      "etcd",
      "maxRecords",
      "registerPerSec",
      "lookupPerSec",
    ]);
    const bool = (k: string): boolean => {
      const e = m.get(k);
      if (!e || r.isMissing(e.value)) return false;
      if (!isScalar(e.value) || typeof e.value.value !== "boolean")
        r.fail(`expected true or false, got ${describe(e.value)}`, e.value, `directory.${k}`);
      return e.value.value;
    };
    const int = (k: "maxRecords" | "registerPerSec" | "lookupPerSec"): number => {
      const e = m.get(k);
      return e && !r.isMissing(e.value)
        ? r.int(e.value, `directory.${k}`, e.key, LIMITS[k])
        : DEFAULTS.directory[k];
    };
    let store: "file" | "etcd" = "file";
    const se = m.get("store");
    if (se && !r.isMissing(se.value)) {
      const v = r.str(se.value, "directory.store", se.key);
      if (v !== "file" && v !== "etcd")
        r.fail(`expected 'file' or 'etcd', got '${v}'`, se.value, "directory.store");
      store = v;
    }
    let etcd: DirectoryServeConfig["etcd"] = null;
    const ee = m.get("etcd");
    if (ee && !r.isMissing(ee.value)) {
      const em = r.map(ee.value, "directory.etcd", [
        "endpoints",
        "prefix",
        "tls",
        "username",
        "passwordFile",
      ]);
      const eps = em.get("endpoints");
      const endpoints: string[] = [];
      if (eps)
        r.seq(eps.value, "directory.etcd.endpoints", eps.key).forEach((item, i) => {
          const k = `directory.etcd.endpoints[${i}]`;
          const v = r.str(item, k, eps.key);
          const hp = /^https?:\/\/(.+)$/.exec(v);
          if (!hp || !parseHostPort(hp[1]!.replace(/\/$/, "")))
            r.fail(`expected an etcd client URL (e.g. http://127.0.0.1:2379), got '${v}'`, item, k);
          endpoints.push(v);
        });
      const pe = em.get("prefix");
      const prefix =
        pe && !r.isMissing(pe.value)
          ? r.str(pe.value, "directory.etcd.prefix", pe.key)
          : DEFAULTS.directory.etcdPrefix;
      let tls: EtcdConfig["tls"] = null;
      const te = em.get("tls");
      if (te && !r.isMissing(te.value)) {
        const tm = r.map(te.value, "directory.etcd.tls", ["ca", "cert", "key"]);
        const ce = required(tm, "ca", "directory.etcd.tls.ca", te.value);
        const opt = (k: "cert" | "key"): string | null => {
          const e = tm.get(k);
          return e && !r.isMissing(e.value) ? r.path(e.value, `directory.etcd.tls.${k}`, e.key) : null;
        };
        tls = { ca: r.path(ce.value, "directory.etcd.tls.ca", ce.key), cert: opt("cert"), key: opt("key") };
        if ((tls.cert === null) !== (tls.key === null))
          r.fail(
            "expected both cert and key (a client certificate) or neither",
            te.value,
            "directory.etcd.tls",
          );
      }
      let auth: EtcdConfig["auth"] = null;
      const ue = em.get("username");
      const pfe = em.get("passwordFile");
      if ((ue && !r.isMissing(ue.value)) || (pfe && !r.isMissing(pfe.value))) {
        if (!ue || r.isMissing(ue.value) || !pfe || r.isMissing(pfe.value))
          r.fail("expected both username and passwordFile", ee.value, "directory.etcd.username");
        auth = {
          username: r.str(ue!.value, "directory.etcd.username", ue!.key),
          passwordFile: r.path(pfe!.value, "directory.etcd.passwordFile", pfe!.key),
        };
      }
      etcd = { endpoints, prefix, tls, auth };
    }
    if (store === "etcd" && (!etcd || etcd.endpoints.length === 0))
      r.fail(
        "expected directory.etcd.endpoints (at least one URL) with store: etcd",
        ee?.value ?? se?.value ?? dre.value,
        "directory.etcd.endpoints",
      );
    const serve = bool("serve");
    if (serve)
      directory = {
        serve,
        store,
        etcd,
        maxRecords: int("maxRecords"),
        registerPerSec: int("registerPerSec"),
        lookupPerSec: int("lookupPerSec"),
      };
  }

  return {
    file,
    ca,
    host,
    listen,
    tun,
    ephemeral,
    tunnel,
    registration,
    dos,
    peers,
    directories,
    directory,
    api,
    stateDir,
    log: { level },
    metrics,
    web,
    policy,
    users: { unmapped, asHost },
    dns,
    gateway,
  };
}
