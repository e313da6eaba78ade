/**
 * Site-to-site: what a gateway host changes in its (network namespace's) kernel,
 * and the TUN routes every host installs for the subnets of its peers' gateways.
 *
 * Gateway (config `gateway: { forward, masquerade, lanInterface }`), for a host
 * whose certificate lists subnets (the engine already accepts inner packets to
 * them and sends from them: they are in its `ours` table):
 *   - forward: net.ipv4.ip_forward=1 if the certificate lists an IPv4 subnet,
 *     net.ipv6.conf.all.forwarding=1 if it lists an IPv6 one; the previous values
 *     are restored on shutdown.
 *   - masquerade: one nftables table `inet mintun_<tun>` with a postrouting NAT
 *     chain, `iifname TUN [oifname LAN] masquerade`, so LAN hosts need no route
 *     back to the overlay; the table is deleted on shutdown (and replaced at start,
 *     should a crashed run have left it).
 *
 * Every host: PeerSubnetRoutes adds `ip route add SUBNET dev TUN` for each subnet
 * listed in a verified peer certificate (`add`, not `replace`: a route the host
 * already has for that exact prefix, e.g. its own LAN, is kept, and the subnet is
 * reported as shadowed), and deletes the routes it added when the peer goes.
 */
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { PlatformError } from "../errors.js";
import type { Logger } from "../log.js";
import { cidrFamily, LinuxRouteManager, type RouteManager } from "../net/route.js";

const FORWARD_V4 = "/proc/sys/net/ipv4/ip_forward";
const FORWARD_V6 = "/proc/sys/net/ipv6/conf/all/forwarding";

/**
 * Turn on forwarding for the families asked for; returns a function that restores the
 * previous values. Only the families of the certified subnets: IPv6 forwarding makes
 * Linux ignore router advertisements (unless accept_ra=2), which a gateway that
 * configures its own IPv6 underlay address by SLAAC would notice.
 */
export function enableForwarding(families: { v4: boolean; v6: boolean }): () => void {
  const prev: [string, string][] = [];
  const files = [...(families.v4 ? [FORWARD_V4] : []), ...(families.v6 ? [FORWARD_V6] : [])];
  for (const f of files) {
    try {
      const old = fs.readFileSync(f, "utf8").trim();
      if (old !== "1") {
        fs.writeFileSync(f, "1\n");
        prev.push([f, old]);
      }
    } catch (e) {
      // IPv6 may be disabled in this kernel: v4 forwarding alone still serves v4 subnets
      if (f === FORWARD_V6 && (e as NodeJS.ErrnoException).code === "ENOENT") continue;
      for (const [pf, pv] of prev) fs.writeFileSync(pf, pv + "\n");
      throw new PlatformError(
        (e as NodeJS.ErrnoException).code ?? "ESYSCTL",
        `gateway.forward: cannot enable forwarding (${f}): ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  return () => {
    for (const [f, v] of prev) {
      try {
        fs.writeFileSync(f, v + "\n");
      } catch {
        // best effort at shutdown
      }
    }
  };
}

/** nftables table name for a TUN: letters, digits and underscores only. */
export function masqueradeTable(tun: string): string {
  return `mintun_${tun.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

/** The nft script that (re)creates the masquerade table. Interface names are checked by config. */
export function masqueradeScript(tun: string, lanInterface: string | null): string {
  const t = masqueradeTable(tun);
  const out = lanInterface ? `oifname "${lanInterface}"` : `oifname != "${tun}"`;
  return [
    `table inet ${t} {}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    iifname "${tun}" ${out} masquerade`,
    `  }`,
    `}`,
    "",
  ].join("\n");
}

function runNft(script: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = execFile("nft", ["-f", "-"], { timeout: timeoutMs, encoding: "utf8" }, (err, _o, stderr) => {
      if (!err) return resolve();
      reject(new PlatformError("ENFT", `nft -f - <<< ${script.trim()}: ${stderr.trim() || err.message}`));
    });
    c.stdin?.end(script);
  });
}

/** Installs the masquerade table; the returned function removes it (synchronously, for shutdown). */
export async function installMasquerade(tun: string, lanInterface: string | null): Promise<() => void> {
  await runNft(masqueradeScript(tun, lanInterface));
  const t = masqueradeTable(tun);
  return () => {
    try {
      execFileSync("nft", ["delete", "table", "inet", t], { stdio: "pipe", timeout: 5000 });
    } catch {
      // already gone
    }
  };
}

/** Runs `ip -FAMILY route add|del CIDR dev DEV`; rejects with the command's stderr. */
export type RouteCmd = (op: "add" | "del", dev: string, cidr: string) => Promise<void>;

export const ipRouteCmd: RouteCmd = (op, dev, cidr) =>
  new Promise((resolve, reject) => {
    const fam = cidrFamily(cidr);
    const argv = [`-${fam}`, "route", op, cidr, "dev", dev];
    execFile("ip", argv, { timeout: 10_000, encoding: "utf8" }, (err, _o, stderr) => {
      if (!err) return resolve();
      reject(new PlatformError("EIPCMD", `ip ${argv.join(" ")}: ${stderr.trim() || err.message}`));
    });
  });

export interface SubnetRouteState {
  /** subnets routed into the TUN because a peer's certificate lists them */
  installed: string[];
  /** subnets of peers that a route of this host already covers (kept as it was) */
  shadowed: string[];
}

/**
 * Keeps one TUN route per subnet listed in a verified peer certificate.
 * `sync(wanted)` is cheap when nothing changed (a set comparison) and runs at
 * most one `ip` command at a time.
 */
export class PeerSubnetRoutes {
  private readonly installed = new Set<string>();
  private readonly shadowed = new Set<string>();
  /** prefixes whose `ip route add` failed for another reason: not retried until they leave and return */
  private readonly failed = new Set<string>();
  private busy = false;
  private closed = false;

  constructor(
    private readonly dev: string,
    private readonly log: Logger,
    /** subnets already routed into the TUN by config (tun.routes, the overlay routes) */
    private readonly configured: () => ReadonlySet<string>,
    private readonly cmd: RouteCmd = ipRouteCmd,
  ) {}

  state(): SubnetRouteState {
    return { installed: [...this.installed].sort(), shadowed: [...this.shadowed].sort() };
  }

  async sync(wanted: ReadonlySet<string>): Promise<void> {
    if (this.busy || this.closed) return;
    this.busy = true;
    try {
      const conf = this.configured();
      for (const s of wanted) {
        if (this.installed.has(s) || this.shadowed.has(s) || this.failed.has(s) || conf.has(s)) continue;
        try {
          await this.cmd("add", this.dev, s);
          this.installed.add(s);
          this.log.log("info", "route to a peer's subnet added", { subnet: s, dev: this.dev });
        } catch (e) {
          const msg = (e as Error).message;
          if (/File exists/.test(msg)) {
            this.shadowed.add(s);
            this.log.log("warn", "a peer's subnet is already routed on this host; route left as it is", {
              subnet: s,
            });
          } else {
            this.failed.add(s);
            this.log.log("error", "cannot route a peer's subnet", { subnet: s, error: msg });
          }
        }
      }
      for (const s of [...this.installed])
        if (!wanted.has(s) || conf.has(s)) {
          this.installed.delete(s);
          if (conf.has(s)) continue; // config now owns the route
          await this.cmd("del", this.dev, s).catch(() => undefined);
          this.log.log("info", "route to a peer's subnet removed", { subnet: s });
        }
      for (const set of [this.shadowed, this.failed])
        for (const s of [...set]) if (!wanted.has(s)) set.delete(s);
    } finally {
      this.busy = false;
    }
  }

  /** Removes the routes it added (shutdown; the TUN's removal would drop them anyway). Idempotent. */
  close(): void {
    this.closed = true;
    this.installed.clear();
  }
}

export interface GatewayConfig {
  forward: boolean;
  masquerade: boolean;
  lanInterface: string | null;
}

/**
 * Applies `gateway:` at start-up; returns the function that undoes it (shutdown).
 * A gateway whose certificate lists no subnet forwards nothing of the overlay's:
 * that is logged, not refused (its certificate may be renewed with subnets).
 */
export async function startGateway(
  cfg: GatewayConfig,
  tun: string,
  subnets: readonly string[],
  log: Logger,
): Promise<() => void> {
  if (!cfg.forward) return () => undefined;
  const v4 = subnets.some((s) => cidrFamily(s) === 4);
  const v6 = subnets.some((s) => cidrFamily(s) === 6);
  if (!v4 && !v6)
    log.log(
      "warn",
      "gateway.forward is on but this host's certificate lists no subnets: forwarding left off",
      {},
    );
  const restore = enableForwarding({ v4, v6 });
  let unmasq: () => void = () => undefined;
  if (cfg.masquerade) {
    try {
      unmasq = await installMasquerade(tun, cfg.lanInterface);
    } catch (e) {
      restore();
      throw e;
    }
  }
  log.log("info", "gateway: forwarding on", {
    subnets,
    families: [v4 ? "ipv4" : null, v6 ? "ipv6" : null].filter(Boolean),
    masquerade: cfg.masquerade ? (cfg.lanInterface ?? `all but ${tun}`) : "off",
  });
  return () => {
    unmasq();
    restore();
  };
}

/**
 * `ip route add|del` through the daemon's RouteManager: the Linux one runs `ip`
 * (with its namespace and validation); another (the fake) records add/delRoute.
 */
export function routeCmdOf(routes: RouteManager): RouteCmd {
  if (routes instanceof LinuxRouteManager)
    return (op, dev, cidr) =>
      routes.run([`-${cidrFamily(cidr)}`, "route", op, cidr, "dev", dev]).then(() => undefined);
  return (op, dev, cidr) => (op === "add" ? routes.addRoute(dev, cidr) : routes.delRoute(dev, cidr));
}

/**
 * The subnets listed in peers' verified, unexpired host certificates, except this
 * host's own (a second gateway for our site must not pull our LAN into the TUN).
 */
export function certifiedSubnets(
  peers: Iterable<{ hostCert: { subnets: string[]; notAfter: number } | null }>,
  nowMs: number,
  own: readonly string[] = [],
): Set<string> {
  const want = new Set<string>();
  const nowSec = nowMs / 1000;
  for (const p of peers)
    if (p.hostCert && p.hostCert.notAfter > nowSec)
      for (const s of p.hostCert.subnets) if (!own.includes(s)) want.add(s);
  return want;
}
