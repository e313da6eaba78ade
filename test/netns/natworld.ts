/**
 * One NAT world for the NAT traversal tests (issue 17): real nftables NATs (natnet.ts),
 * the directory (and relay) on the public side, mintund hosts behind their sites' NATs
 * that know only the directory, each with an HTTP server on :8080 and resolving names of
 * the mesh through its own daemon's DNS. `down()` stops the daemons and servers by PID
 * and deletes the namespaces the world created.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll } from "vitest";
import * as os from "node:os";
import * as path from "node:path";
import type { Status } from "../../src/daemon/status.js";
import { startHttpServer, waitFor } from "./lib.js";
import { createNatNet, type NatNet, type NatSite } from "./natnet.js";
import { makeHost, makePki, startDaemon, type Pki, type RunningDaemon } from "./mintun.js";

/** Overlay addresses of the hosts the tests use. */
export const O4: Record<string, string> = {
  dir: "10.77.0.100",
  a1: "10.77.0.1",
  a2: "10.77.0.2",
  b1: "10.77.0.3",
  p1: "10.77.0.4",
};

/** utime + stime of a process, seconds (/proc/PID/stat, clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

export interface WorldOptions {
  sites: NatSite[];
  /** each way between sites (the delay router) */
  delayMs: number;
  /** appended to the directory's config (relay: ...) */
  dirExtra?: string;
  /** appended to every host's config */
  hostExtra?: string;
  /** hosts with a daemon on the public side */
  pub?: string[];
  /** namespaces on the public side without a daemon (an attacker) */
  bare?: string[];
  /** IPv6 underlay: NAT66 at the sites, the directory reached at its IPv6 address */
  v6?: boolean;
}

export class World {
  net!: NatNet;
  pki!: Pki;
  www!: string;
  d: Record<string, RunningDaemon> = {};
  etc: string[] = [];

  async up(o: WorldOptions): Promise<void> {
    const pub = o.pub ?? [];
    this.net = await createNatNet({
      sites: o.sites,
      public: ["dir", ...pub, ...(o.bare ?? [])],
      delayMs: o.delayMs,
      v6: o.v6 ?? false,
    });
    this.pki = makePki();
    this.www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.writeFileSync(path.join(this.www, "f"), Buffer.alloc(32 * 1024, 7));
    const dirHost = this.net.host("dir");
    const dirEp = o.v6 ? `[${dirHost.addr6}]:7000` : `${dirHost.addr4}:7000`;
    const listen = o.v6 ? "[::]:7000" : "0.0.0.0:7000";
    const start = (h: string, ip: string, extra: string): Promise<RunningDaemon> =>
      startDaemon(
        this.pki.dir,
        {
          host: makeHost(this.pki, h, ip, null),
          ns: this.net.host(h).ns,
          caFile: this.pki.caFile,
          listen,
          peers: [],
          extra,
        },
        false,
      );
    this.d.dir = await start(
      "dir",
      O4.dir!,
      "directory:\n  serve: true\n  store: file\n" + (o.dirExtra ?? ""),
    );
    const hosts = [...o.sites.flatMap((s) => s.hosts), ...pub];
    for (const h of hosts) {
      const ns = this.net.host(h).ns;
      this.d[h] = await start(
        h,
        O4[h]!,
        `directories:\n  - endpoint: "${dirEp}"\n` +
          "dns:\n  listen: overlay\n  domain: mesh.\n" +
          (o.hostExtra ?? ""),
      );
      const etc = path.join("/etc/netns", ns.name);
      fs.mkdirSync(etc, { recursive: true });
      this.etc.push(etc);
      fs.writeFileSync(path.join(etc, "resolv.conf"), `nameserver ${O4[h]}\noptions timeout:1 attempts:2\n`);
      await startHttpServer(ns, this.www, 8080);
    }
    for (const h of hosts)
      await waitFor(async () => (await this.d[h]!.status()).directory?.client?.directories[0]?.registered, {
        timeoutMs: 15_000,
        what: `${h} registered`,
      });
  }

  status(h: string): Promise<Status> {
    return this.d[h]!.status();
  }

  /** The endpoint of h's established tunnel to `toName`, waiting up to 3 s for it (the responder's side is established on the creator's confirmation). */
  async endpointSoon(h: string, toName: string): Promise<string> {
    return waitFor(() => this.tunnelEndpoint(h, toName), {
      timeoutMs: 3000,
      intervalMs: 50,
      what: `${h}'s tunnel to ${toName}`,
    });
  }

  /** The endpoint of h's established tunnel to host `toName` (status), or null. */
  async tunnelEndpoint(h: string, toName: string): Promise<string | null> {
    const st = await this.status(h);
    const t = st.tunnels.find((x) => x.peer === toName && x.state === "established");
    return t ? t.endpoint : null;
  }

  async down(): Promise<void> {
    for (const x of Object.values(this.d)) await x.stop().catch(() => undefined);
    await this.net?.topo.cleanup();
    for (const e of this.etc) fs.rmSync(e, { recursive: true, force: true });
    if (this.www) fs.rmSync(this.www, { recursive: true, force: true });
    if (this.pki && !process.env.MINTUN_KEEP_LOGS) fs.rmSync(this.pki.dir, { recursive: true, force: true });
    else if (this.pki) console.log(`logs kept in ${this.pki.dir}`);
  }
}

/** A World for one describe block: up before its tests (within `upMs`), down after them. */
export function suiteWorld(o: WorldOptions, upMs = 120_000): World {
  const w = new World();
  beforeAll(() => w.up(o), upMs);
  afterAll(() => w.down());
  return w;
}
