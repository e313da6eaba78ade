/**
 * Interface addresses, MTU and routes, set by running iproute2's `ip` (execFile, no shell).
 * Every argument is validated here first (so nothing reaches `ip` that it could read as an
 * option), and a failing command becomes PlatformError("EIPCMD") carrying its stderr.
 */
import { execFile } from "node:child_process";
import { PlatformError } from "../errors.js";
import { parseIp } from "../ip/ip.js";
import { isInterfaceName } from "../text.js";

export interface RouteManager {
  /** add (or keep) an address, e.g. "10.99.0.1/24" or "fd00::1/64" */
  addAddress(dev: string, cidr: string): Promise<void>;
  setMtu(dev: string, mtu: number): Promise<void>;
  setUp(dev: string): Promise<void>;
  /** `ip link set dev DEV txqueuelen N` */
  setTxQueueLen(dev: string, qlen: number): Promise<void>;
  /** add (or replace) a route to cidr through dev */
  addRoute(dev: string, cidr: string): Promise<void>;
  delRoute(dev: string, cidr: string): Promise<void>;
  /** remove every address and route of dev, both families */
  flush(dev: string): Promise<void>;
  /**
   * Bring a TUN up in one step: MTU, queue length, addresses, link up, routes, in that
   * order. The Linux implementation runs one `ip -batch` process instead of one per
   * setting (daemon start-up time is part of the time to the first packet). The daemon's
   * one bring-up path.
   */
  bringUp(
    dev: string,
    cfg: { mtu: number; txqueuelen?: number; addresses: string[]; routes: string[] },
  ): Promise<void>;
}

export function checkDev(dev: string): void {
  if (!isInterfaceName(dev)) throw new PlatformError("EINVAL", `bad interface name ${JSON.stringify(dev)}`);
}

export function checkQlen(qlen: number): void {
  if (!Number.isInteger(qlen) || qlen < 0 || qlen > 1_000_000)
    throw new PlatformError("EINVAL", `bad txqueuelen ${qlen}`);
}

/** "10.0.0.1/24" -> 4, "fd00::/64" -> 6; throws PlatformError("EINVAL") otherwise. */
export function cidrFamily(cidr: string): 4 | 6 {
  const slash = cidr.indexOf("/");
  const ip = slash === -1 ? cidr : cidr.slice(0, slash);
  const bits = slash === -1 ? undefined : cidr.slice(slash + 1);
  const family = parseIp(ip)?.family ?? 0;
  const max = family === 4 ? 32 : 128;
  if (family === 0 || (bits !== undefined && (!/^\d{1,3}$/.test(bits) || Number(bits) > max)))
    throw new PlatformError("EINVAL", `bad CIDR ${JSON.stringify(cidr)}`);
  return family;
}

export interface LinuxRouteManagerOptions {
  /** path of the ip binary (default "ip", found on PATH) */
  ipPath?: string;
  /** run every command in this network namespace (`ip -n NS`) */
  netns?: string;
  /** per-command timeout (default 10 s) */
  timeoutMs?: number;
}

export class LinuxRouteManager implements RouteManager {
  private readonly ipPath: string;
  private readonly prefix: string[];
  private readonly timeoutMs: number;

  constructor(opts: LinuxRouteManagerOptions = {}) {
    this.ipPath = opts.ipPath ?? "ip";
    if (opts.netns !== undefined) checkDev(opts.netns); // same charset rule is fine for ns names
    this.prefix = opts.netns !== undefined ? ["-n", opts.netns] : [];
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** Run `ip [-n ns] args...`; resolves with stdout, rejects with PlatformError("EIPCMD") quoting stderr. */
  run(args: string[]): Promise<string> {
    const argv = [...this.prefix, ...args];
    return new Promise((resolve, reject) => {
      execFile(
        this.ipPath,
        argv,
        { timeout: this.timeoutMs, encoding: "utf8", maxBuffer: 1 << 20 },
        (err, stdout, stderr) => {
          if (!err) return resolve(stdout);
          const detail = stderr.trim() || err.message;
          reject(new PlatformError("EIPCMD", `${this.ipPath} ${argv.join(" ")}: ${detail}`, { cause: err }));
        },
      );
    });
  }

  async bringUp(
    dev: string,
    cfg: { mtu: number; txqueuelen?: number; addresses: string[]; routes: string[] },
  ): Promise<void> {
    checkDev(dev);
    if (!Number.isInteger(cfg.mtu) || cfg.mtu < 68 || cfg.mtu > 65535)
      throw new PlatformError("EINVAL", `bad MTU ${cfg.mtu}`);
    if (cfg.txqueuelen !== undefined) checkQlen(cfg.txqueuelen);
    const lines = [
      `link set dev ${dev} mtu ${cfg.mtu}${cfg.txqueuelen !== undefined ? ` txqueuelen ${cfg.txqueuelen}` : ""}`,
    ];
    for (const a of cfg.addresses) {
      const fam = cidrFamily(a);
      lines.push(`addr replace ${a} dev ${dev}${fam === 6 ? " nodad" : ""}`); // family from the address (no -4/-6 in batch lines)
    }
    lines.push(`link set dev ${dev} up`);
    for (const r of cfg.routes) lines.push(`route replace ${r} dev ${dev}`);
    const argv = [...this.prefix, "-batch", "-"];
    await new Promise<void>((resolve, reject) => {
      const c = execFile(
        this.ipPath,
        argv,
        { timeout: this.timeoutMs, encoding: "utf8" },
        (err, _out, stderr) => {
          if (!err) return resolve();
          reject(
            new PlatformError(
              "EIPCMD",
              `${this.ipPath} ${argv.join(" ")} <<< ${lines.join("; ")}: ${stderr.trim() || err.message}`,
              {
                cause: err,
              },
            ),
          );
        },
      );
      c.stdin?.end(lines.join("\n") + "\n");
    });
  }

  async addAddress(dev: string, cidr: string): Promise<void> {
    checkDev(dev);
    const fam = cidrFamily(cidr);
    // "replace" is idempotent; nodad: the tunnel interface has no duplicates to detect
    await this.run([`-${fam}`, "addr", "replace", cidr, "dev", dev, ...(fam === 6 ? ["nodad"] : [])]);
  }

  async setMtu(dev: string, mtu: number): Promise<void> {
    checkDev(dev);
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535)
      throw new PlatformError("EINVAL", `bad MTU ${mtu}`);
    await this.run(["link", "set", "dev", dev, "mtu", String(mtu)]);
  }

  async setUp(dev: string): Promise<void> {
    checkDev(dev);
    await this.run(["link", "set", "dev", dev, "up"]);
  }

  async setTxQueueLen(dev: string, qlen: number): Promise<void> {
    checkDev(dev);
    checkQlen(qlen);
    await this.run(["link", "set", "dev", dev, "txqueuelen", String(qlen)]);
  }

  async addRoute(dev: string, cidr: string): Promise<void> {
    checkDev(dev);
    const fam = cidrFamily(cidr);
    await this.run([`-${fam}`, "route", "replace", cidr, "dev", dev]);
  }

  async delRoute(dev: string, cidr: string): Promise<void> {
    checkDev(dev);
    const fam = cidrFamily(cidr);
    await this.run([`-${fam}`, "route", "del", cidr, "dev", dev]);
  }

  async flush(dev: string): Promise<void> {
    checkDev(dev);
    await this.run(["addr", "flush", "dev", dev]);
    for (const fam of ["-4", "-6"]) {
      // a namespace that never had a route of that family has no main table yet: nothing to flush
      await this.run([fam, "route", "flush", "dev", dev]).catch((e: PlatformError) => {
        if (!e.message.includes("FIB table does not exist")) throw e;
      });
    }
  }
}
