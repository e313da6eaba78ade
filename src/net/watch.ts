/**
 * Underlay address watching: tells the daemon when the host's own addresses
 * (other than loopback and our TUN) change, so tunnels can move at once.
 *
 * Two sources, whichever is first: `ip -o monitor address route` (netlink
 * notifications relayed by iproute2; a line means "look now", after a short
 * settle delay because an address change is often a delete plus an add), and
 * polling os.networkInterfaces() (getifaddrs) every `pollMs` as the fallback
 * when `ip` is missing or dies. The callback gets the new address list and
 * runs only when the set really changed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as os from "node:os";

export interface AddressWatcherOptions {
  /** interfaces to ignore besides loopback (our TUN) */
  exclude: string[];
  pollMs?: number;
  settleMs?: number;
  /** use `ip monitor` for prompt notification (default true) */
  monitor?: boolean;
  /** injectable for tests */
  list?: () => string[];
}

/** Sorted "dev addr" strings of the host's non-loopback, non-excluded addresses. */
export function underlayAddresses(exclude: string[]): string[] {
  const out: string[] = [];
  for (const [dev, addrs] of Object.entries(os.networkInterfaces())) {
    if (exclude.includes(dev) || !addrs) continue;
    for (const a of addrs) {
      if (a.internal) continue;
      if (a.family === "IPv6" && a.address.startsWith("fe80:")) continue; // link-local: not an endpoint
      out.push(`${dev} ${a.address}`);
    }
  }
  return out.sort();
}

export class AddressWatcher {
  private last: string;
  private poll: NodeJS.Timeout | null = null;
  private settle: NodeJS.Timeout | null = null;
  private child: ChildProcess | null = null;
  private closed = false;
  changes = 0;

  constructor(
    private readonly onChange: (addrs: string[]) => void,
    private readonly opts: AddressWatcherOptions,
  ) {
    this.last = this.snapshot().join(",");
  }

  private snapshot(): string[] {
    return this.opts.list ? this.opts.list() : underlayAddresses(this.opts.exclude);
  }

  start(): void {
    this.poll = setInterval(() => this.check(), this.opts.pollMs ?? 1000);
    this.poll.unref();
    if (this.opts.monitor !== false) this.startMonitor();
  }

  private startMonitor(): void {
    let c: ChildProcess;
    try {
      c = spawn("ip", ["-o", "monitor", "address", "route"], { stdio: ["ignore", "pipe", "ignore"] });
    } catch {
      return; // polling still works
    }
    c.on("error", () => undefined);
    c.stdout?.on("data", () => this.soon());
    c.on("exit", () => {
      if (this.child === c) this.child = null;
    });
    c.unref();
    (c.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    this.child = c;
  }

  private soon(): void {
    if (this.settle || this.closed) return;
    this.settle = setTimeout(() => {
      this.settle = null;
      this.check();
    }, this.opts.settleMs ?? 50);
    this.settle.unref();
  }

  /** Compare with the last snapshot; call onChange when different. */
  check(): boolean {
    if (this.closed) return false;
    const now = this.snapshot();
    const key = now.join(",");
    if (key === this.last) return false;
    this.last = key;
    this.changes++;
    this.onChange(now);
    return true;
  }

  /** Idempotent. */
  close(): void {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    if (this.settle) clearTimeout(this.settle);
    this.poll = this.settle = null;
    if (this.child?.pid) {
      try {
        process.kill(this.child.pid);
      } catch {
        /* gone */
      }
    }
    this.child = null;
  }
}
