/**
 * FakeRouteManager: records route calls with the validation of LinuxRouteManager.
 * Moved out of src/net/route.ts: fakes live with the tests (test/fakes/), never in production files.
 */
import { checkDev, checkQlen, cidrFamily, type RouteManager } from "../../src/net/route.js";
import { PlatformError } from "../../src/errors.js";

export type RouteCall =
  | { op: "addAddress"; dev: string; cidr: string }
  | { op: "setMtu"; dev: string; mtu: number }
  | { op: "setUp"; dev: string }
  | { op: "setTxQueueLen"; dev: string; qlen: number }
  | { op: "addRoute"; dev: string; cidr: string }
  | { op: "delRoute"; dev: string; cidr: string }
  | { op: "flush"; dev: string };

/** Records calls (with the same argument validation as LinuxRouteManager); `failOn` makes an op reject. */
export class FakeRouteManager implements RouteManager {
  readonly calls: RouteCall[] = [];
  failOn: RouteCall["op"] | undefined;

  private async record(c: RouteCall): Promise<void> {
    checkDev(c.dev);
    if ("cidr" in c) cidrFamily(c.cidr);
    if (c.op === "setMtu" && (!Number.isInteger(c.mtu) || c.mtu < 68 || c.mtu > 65535))
      throw new PlatformError("EINVAL", `bad MTU ${c.mtu}`);
    if (c.op === "setTxQueueLen") checkQlen(c.qlen);
    this.calls.push(c);
    if (this.failOn === c.op) throw new PlatformError("EIPCMD", `fake: ${c.op} failed`);
  }

  addAddress(dev: string, cidr: string): Promise<void> {
    return this.record({ op: "addAddress", dev, cidr });
  }
  setMtu(dev: string, mtu: number): Promise<void> {
    return this.record({ op: "setMtu", dev, mtu });
  }
  setUp(dev: string): Promise<void> {
    return this.record({ op: "setUp", dev });
  }
  setTxQueueLen(dev: string, qlen: number): Promise<void> {
    return this.record({ op: "setTxQueueLen", dev, qlen });
  }
  addRoute(dev: string, cidr: string): Promise<void> {
    return this.record({ op: "addRoute", dev, cidr });
  }
  delRoute(dev: string, cidr: string): Promise<void> {
    return this.record({ op: "delRoute", dev, cidr });
  }
  flush(dev: string): Promise<void> {
    return this.record({ op: "flush", dev });
  }
  /** The settings one by one, in LinuxRouteManager.bringUp's order. */
  async bringUp(
    dev: string,
    cfg: { mtu: number; txqueuelen?: number; addresses: string[]; routes: string[] },
  ): Promise<void> {
    await this.setMtu(dev, cfg.mtu);
    if (cfg.txqueuelen !== undefined) await this.setTxQueueLen(dev, cfg.txqueuelen);
    for (const a of cfg.addresses) await this.addAddress(dev, a);
    await this.setUp(dev);
    for (const r of cfg.routes) await this.addRoute(dev, r);
  }
}
