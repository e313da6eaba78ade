/**
 * The config file's sections, one reader each: parseConfig (config.ts) calls them in
 * order. Each takes the YAML reader and the top-level map and returns its part of the
 * Config, failing with a ConfigError that names file, line and key.
 */
import * as path from "node:path";
import { isScalar, isSeq, type Node } from "yaml";
import { isValidName } from "../wire/cert.js";
import { parseCidr } from "../ip/ip.js";
import { isInterfaceName } from "../text.js";
import { normalizeDomain } from "../names/dns.js";
import {
  DEFAULTS,
  LIMITS,
  LOG_LEVELS,
  type Config,
  type DirectoryEntry,
  type DirectoryServeConfig,
  type RelayConfig,
  type EtcdConfig,
  type HostPort,
  type LogLevel,
  type PeerConfig,
} from "./schema.js";
import { Reader, describe, isLoopback, parseHostPort, readBool, required, type Value } from "./values.js";

/** What every section reader gets: the reader, the document root and its top-level keys. */
export interface Section {
  r: Reader;
  root: Node | null;
  top: Map<string, { key: Node; value: Value }>;
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

/** The CA certificate and this host's key and certificate (required) */
export function readIdentity(c: Section): Pick<Config, "ca" | "host"> {
  const r: Reader = c.r;
  const { top, root } = c;
  const caE = required(r, top, "ca", "ca", root);
  const ca = r.path(caE.value, "ca", caE.key);

  const hostE = required(r, top, "host", "host", root);
  const hostM = r.map(hostE.value, "host", ["key", "cert"]);
  const hk = required(r, hostM, "key", "host.key", hostE.value);
  const hc = required(r, hostM, "cert", "host.cert", hostE.value);
  const host = { key: r.path(hk.value, "host.key", hk.key), cert: r.path(hc.value, "host.cert", hc.key) };
  return { ca, host };
}

/** `listen`: the UDP address:port (an IP literal) */
export function readListen(c: Section): Config["listen"] {
  const r: Reader = c.r;
  const { top } = c;
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
  return listen;
}

/** `tun`: device name, MTU, routes */
export function readTun(c: Section): Config["tun"] {
  const r: Reader = c.r;
  const { top } = c;
  const tunE = top.get("tun");
  const tunM = r.map(tunE?.value ?? null, "tun", ["name", "mtu", "routes", "peerSubnets"]);
  const tun = {
    name: DEFAULTS.tun.name as string,
    mtu: DEFAULTS.tun.mtu as number,
    routes: [] as string[],
    peerSubnets: true,
  };
  const tps = tunM.get("peerSubnets");
  if (tps && !r.isMissing(tps.value)) tun.peerSubnets = readBool(r, tps.value, "tun.peerSubnets");
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
  return tun;
}

/** The integer sections (timers and limits), each key within LIMITS */
export function readTimers(c: Section): Pick<Config, "ephemeral" | "tunnel" | "dos" | "registration"> {
  const r: Reader = c.r;
  const { top } = c;
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
  return { ephemeral, tunnel, dos, registration };
}

/** `peers`: static peers by name and endpoint */
export function readPeers(c: Section): PeerConfig[] {
  const r: Reader = c.r;
  const { top } = c;
  const peers: PeerConfig[] = [];
  const pe = top.get("peers");
  if (pe) {
    const seen = new Set<string>();
    r.seq(pe.value, "peers", pe.key).forEach((item, i) => {
      const base = `peers[${i}]`;
      const m = r.map(item, base, ["name", "endpoint", "cert"]);
      const ne = required(r, m, "name", `${base}.name`, item);
      const name = r.str(ne.value, `${base}.name`, ne.key);
      if (!isValidName(name))
        r.fail(`expected a host name of 1..63 chars [a-z0-9.-], got '${name}'`, ne.value, `${base}.name`);
      if (seen.has(name)) r.fail(`duplicate peer name '${name}'`, ne.value, `${base}.name`);
      seen.add(name);
      const ee = required(r, m, "endpoint", `${base}.endpoint`, item);
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
  return peers;
}

/** `api`, `state`, `log`: local files and logging (systemd directories by default) */
export function readLocal(
  c: Section,
  env: NodeJS.ProcessEnv,
): { api: Config["api"]; stateDir: string; level: LogLevel } {
  const r: Reader = c.r;
  const { top } = c;
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
  return { api, stateDir, level };
}

/** `metrics` and `web`: optional listeners (the web view on loopback only) */
export function readViews(c: Section): Pick<Config, "metrics" | "web"> {
  const r: Reader = c.r;
  const { top } = c;
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
  return { metrics, web };
}

/** `policy` and `users`: who may connect, and who runs as whom */
export function readAccess(c: Section): Pick<Config, "policy" | "users"> {
  const r: Reader = c.r;
  const { top } = c;
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
  return { policy, users: { unmapped, asHost } };
}

/** `trust`: the revocation list file */
export function readTrust(c: Section): Config["trust"] {
  const r: Reader = c.r;
  const { top } = c;
  const tm = r.map(top.get("trust")?.value ?? null, "trust", ["revocationList"]);
  const rl = tm.get("revocationList");
  const revocationList =
    rl && !r.isMissing(rl.value) ? r.path(rl.value, "trust.revocationList", rl.key) : null;
  return { revocationList };
}

/** `dns`: the name server for overlay names */
export function readDns(c: Section): Config["dns"] {
  const r: Reader = c.r;
  const { top } = c;
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
  return dns;
}

/** `gateway`: forwarding for subnets behind this host */
export function readGateway(c: Section): Config["gateway"] {
  const r: Reader = c.r;
  const { top } = c;
  const gwM = r.map(top.get("gateway")?.value ?? null, "gateway", ["forward", "masquerade", "lanInterface"]);
  const gateway: Config["gateway"] = { forward: false, masquerade: false, lanInterface: null };
  const gf = gwM.get("forward");
  if (gf && !r.isMissing(gf.value)) gateway.forward = readBool(r, gf.value, "gateway.forward");
  const gm = gwM.get("masquerade");
  if (gm && !r.isMissing(gm.value)) gateway.masquerade = readBool(r, gm.value, "gateway.masquerade");
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
  return gateway;
}

/** `dataPath`: the data path over several threads (docs/ARCHITECTURE.md "Many cores") */
export function readDataPath(c: Section): Config["dataPath"] {
  const r: Reader = c.r;
  const m = r.map(c.top.get("dataPath")?.value ?? null, "dataPath", ["workers"]);
  const w = m.get("workers");
  const workers =
    w && !r.isMissing(w.value)
      ? r.int(w.value, "dataPath.workers", w.key, LIMITS.workers)
      : DEFAULTS.dataPath.workers;
  return { workers };
}

/** `directories`: the directories this host registers with and asks */
export function readDirectories(c: Section): DirectoryEntry[] {
  const r: Reader = c.r;
  const { top } = c;
  const directories: DirectoryEntry[] = [];
  const dse = top.get("directories");
  if (dse) {
    const seen = new Set<string>();
    r.seq(dse.value, "directories", dse.key).forEach((item, i) => {
      const base = `directories[${i}]`;
      const m = r.map(item, base, ["endpoint"]);
      const ee = required(r, m, "endpoint", `${base}.endpoint`, item);
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
  return directories;
}

/** `directory`: serving the directory role (store, etcd, limits) */
export function readDirectoryServe(c: Section): DirectoryServeConfig | null {
  const r: Reader = c.r;
  const { top } = c;
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
        const ce = required(r, tm, "ca", "directory.etcd.tls.ca", te.value);
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
  return directory;
}

/**
 * `relay`: forwarding sealed datagrams between registered hosts (issue 17). A relay is a
 * directory, or a relay host that offers itself to its directories (it forwards to the
 * endpoints of the hosts' tunnels to it, and learns its pairs from a directory), so
 * `relay.serve: true` needs `directory.serve: true` or a `directories:` list.
 */
export function readRelay(
  c: Section,
  directory: DirectoryServeConfig | null,
  directories: readonly unknown[] = [],
): RelayConfig | null {
  const r: Reader = c.r;
  const e = c.top.get("relay");
  if (!e || r.isMissing(e.value)) return null;
  const m = r.map(e.value, "relay", ["serve", "bytesPerSec", "burstBytes", "maxPairs", "hosts"]);
  const se = m.get("serve");
  const serve = se && !r.isMissing(se.value) ? readBool(r, se.value, "relay.serve") : false;
  const int = (k: "bytesPerSec" | "burstBytes" | "maxPairs"): number => {
    const x = m.get(k);
    return x && !r.isMissing(x.value) ? r.int(x.value, `relay.${k}`, x.key, LIMITS[k]) : DEFAULTS.relay[k];
  };
  // on a directory: the relay hosts (certificate names) whose offers it takes
  const hosts: string[] = [];
  const he = m.get("hosts");
  if (he && !r.isMissing(he.value))
    r.seq(he.value, "relay.hosts", he.key).forEach((item, i) => {
      const name = r.str(item, `relay.hosts[${i}]`, he.key);
      if (!isValidName(name)) r.fail(`expected a host name, got '${name}'`, item, `relay.hosts[${i}]`);
      hosts.push(name);
    });
  if (hosts.length > 0 && !directory?.serve)
    r.fail(
      "relay.hosts needs directory.serve: true (a directory hands pairs to them)",
      he!.value,
      "relay.hosts",
    );
  const cfg: RelayConfig = {
    serve,
    bytesPerSec: int("bytesPerSec"),
    burstBytes: int("burstBytes"),
    maxPairs: int("maxPairs"),
    hosts,
  };
  if (serve && !directory?.serve && directories.length === 0)
    r.fail(
      "relay.serve needs directory.serve: true or a directories: list (a relay learns its pairs from a directory)",
      se!.value,
      "relay.serve",
    );
  if (cfg.burstBytes < cfg.bytesPerSec / 10) {
    const be = m.get("burstBytes");
    r.fail(
      `expected relay.burstBytes at least a tenth of bytesPerSec (${cfg.bytesPerSec / 10}), got ${cfg.burstBytes}`,
      be ? be.value : e.value,
      "relay.burstBytes",
    );
  }
  return cfg;
}

/** `nat`: NAT traversal on this host (docs/PROTOCOL.md 8b "Low-TTL punches"). */
export function readNat(c: Section): Config["nat"] {
  const r: Reader = c.r;
  const m = r.map(c.top.get("nat")?.value ?? null, "nat", ["punchTtl"]);
  const x = m.get("punchTtl");
  return {
    punchTtl:
      x && !r.isMissing(x.value)
        ? r.int(x.value, "nat.punchTtl", x.key, LIMITS.punchTtl)
        : DEFAULTS.nat.punchTtl,
  };
}
