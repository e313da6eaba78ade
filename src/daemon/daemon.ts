/**
 * Composition root of mintund: reads keys and certificates, opens the TUN and
 * the UDP socket, sets addresses and routes, wires the engine to them, runs
 * the coarse timer and serves the local API. It implements no protocol logic.
 */
import * as dns from "node:dns/promises";
import { publicKeyOf, readCert, readSecretKey } from "../crypto/keyfile.js";
import { equal, zero } from "../crypto/sodium.js";
import type { Config } from "../config/config.js";
import { ConfigError, CertError, MintunError } from "../errors.js";
import { selfTest } from "../tunnel/selftest.js";
import type { Logger } from "../log.js";
import { ApiServer } from "../api/server.js";
import { LinuxRouteManager, type RouteManager } from "../net/route.js";
import { LinuxTun, type TunDevice } from "../net/tun.js";
import { LinuxUdp, type UdpBind } from "../net/udp.js";
import { TICK_MS } from "../tunnel/constants.js";
import { Engine } from "../tunnel/engine.js";
import { isIpv4, tryEncodeAddr } from "../wire/addr.js";
import { type CaCert, type HostCert, verifyCert } from "../wire/cert.js";
import { BatchOutput } from "./output.js";
import { buildStatus } from "./status.js";

export interface DaemonDeps {
  openTun?: (name: string) => TunDevice;
  bindUdp?: (address: string, port: number) => UdpBind;
  routes?: RouteManager;
  now?: () => number;
}

export class Daemon {
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  readonly startedAt: number;

  private constructor(
    readonly config: Config,
    readonly engine: Engine,
    readonly tun: TunDevice,
    readonly udp: UdpBind,
    readonly api: ApiServer,
    readonly log: Logger,
    private readonly now: () => number,
  ) {
    this.startedAt = now();
  }

  static async start(config: Config, log: Logger, deps: DaemonDeps = {}): Promise<Daemon> {
    const now = deps.now ?? Date.now;
    const ca = readCert(config.ca);
    if (ca.kind !== "ca")
      throw new CertError(
        "ECERTKIND",
        `${config.ca}: expected a CA certificate, found a ${ca.kind} certificate`,
      );
    const hostCert = readCert(config.host.cert);
    if (hostCert.kind !== "host")
      throw new CertError(
        "ECERTKIND",
        `${config.host.cert}: expected a host certificate, found a ${hostCert.kind} certificate`,
      );
    const sk = readSecretKey(config.host.key);
    if (!equal(publicKeyOf(sk), hostCert.publicKey))
      throw new CertError(
        "EKEYMISMATCH",
        `${config.host.key} is not the key of the certificate ${config.host.cert}`,
      );
    const v = verifyCert(hostCert, ca as CaCert, Math.floor(now() / 1000));
    if (!v.ok)
      throw new CertError(
        "ECERTINVALID",
        `${config.host.cert}: certificate does not verify against ${config.ca}: ${v.reason}`,
      );

    // peers: resolve endpoints before touching the system
    const peers: { name: string; endpoint: Buffer; cert?: HostCert }[] = [];
    for (const [i, p] of config.peers.entries()) {
      let ip = p.endpoint.host;
      if (!isIpv4(ip) && !ip.includes(":")) {
        try {
          ip = (await dns.lookup(ip)).address;
        } catch (e) {
          throw new ConfigError(
            `cannot resolve '${p.endpoint.host}'`,
            config.file,
            undefined,
            `peers[${i}].endpoint`,
            { cause: e },
          );
        }
      }
      const ep = tryEncodeAddr(ip, p.endpoint.port);
      if (!ep)
        throw new ConfigError(
          `bad endpoint '${ip}:${p.endpoint.port}'`,
          config.file,
          undefined,
          `peers[${i}].endpoint`,
        );
      const pc = p.cert ? readCert(p.cert) : undefined;
      if (pc && pc.kind !== "host") throw new CertError("ECERTKIND", `${p.cert}: not a host certificate`);
      peers.push({ name: p.name, endpoint: ep, cert: pc as HostCert | undefined });
    }

    const st = selfTest(now());
    if (!st.ok) throw new MintunError("ESELFTEST", `protocol self-test failed: ${st.why}`);

    const routes = deps.routes ?? new LinuxRouteManager();
    const udp = (deps.bindUdp ?? ((a, port) => LinuxUdp.bind({ address: a, port })))(
      config.listen.address,
      config.listen.port,
    );
    let tun: TunDevice;
    try {
      tun = (deps.openTun ?? ((name) => LinuxTun.open({ name })))(config.tun.name);
    } catch (e) {
      udp.close();
      throw e;
    }
    try {
      await routes.setMtu(tun.name, config.tun.mtu);
      const hc = hostCert as HostCert;
      if (hc.ip4) await routes.addAddress(tun.name, `${hc.ip4}/32`);
      if (hc.ip6) await routes.addAddress(tun.name, `${hc.ip6}/128`);
      await routes.setUp(tun.name);
      for (const r of overlayRoutes(config, hc)) await routes.addRoute(tun.name, r);
    } catch (e) {
      tun.close();
      udp.close();
      throw e;
    }

    const listenIp = config.listen.address;
    const out = new BatchOutput(udp, tun);
    const engine = new Engine(
      {
        ca: ca as CaCert,
        hostCert: hostCert as HostCert,
        hostSecretKey: sk,
        ephemeralLifetimeMs: config.ephemeral.lifetimeSec * 1000,
        minFirstPacket: config.ephemeral.minFirstPacket,
        rekeyAfterMs: config.tunnel.rekeySec * 1000,
        keepaliveMs: config.tunnel.keepaliveSec * 1000,
        idleTimeoutMs: config.tunnel.idleTimeoutSec * 1000,
        maxTunnels: config.tunnel.maxTunnels,
        endpoints: () =>
          listenIp === "0.0.0.0" || listenIp === "::" ? [] : [{ ip: listenIp, port: udp.localPort }],
        logger: log.child("engine"),
      },
      out,
      now(),
    );
    zero(sk);
    for (const p of peers) engine.addPeer(p, now());

    const api = new ApiServer(config.api.socket, log.child("api"));
    const d = new Daemon(config, engine, tun, udp, api, log, now);
    api.handle("status", () => d.status());
    try {
      await api.listen();
    } catch (e) {
      d.close();
      throw e;
    }
    tun.start((b) => engine.handleTunBatch(b, now()));
    udp.start((b) => engine.handleUdpBatch(b, now()));
    d.timer = setInterval(() => engine.tick(now()), TICK_MS);
    d.timer.unref();
    engine.tick(now());
    log.log("info", "mintund ready", {
      host: hostCert.name,
      tun: tun.name,
      listen: `${listenIp}:${udp.localPort}`,
      peers: peers.length,
    });
    return d;
  }

  status(): unknown {
    return buildStatus(this.engine, this.now(), {
      listen: `${this.config.listen.address}:${this.udp.localPort}`,
      tun: this.tun.name,
      startedAt: this.startedAt,
      devices: { tun: this.tun.stats(), udp: this.udp.stats() },
    });
  }

  /** Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.engine.close(this.now());
    this.api.close();
    this.tun.close();
    this.udp.close();
    this.log.log("info", "mintund stopped");
  }
}

/** Routes into the TUN: configured, or the /16 and /64 around our own overlay addresses. */
export function overlayRoutes(config: Config, hc: HostCert): string[] {
  if (config.tun.routes.length > 0) return config.tun.routes;
  const r: string[] = [];
  if (hc.ip4) {
    const p = hc.ip4.split(".");
    r.push(`${p[0]}.${p[1]}.0.0/16`);
  }
  // the first four groups of the expanded address form the /64
  if (hc.ip6) r.push(`${expand6(hc.ip6).slice(0, 4).join(":")}::/64`);
  return r;
}

function expand6(ip: string): string[] {
  const [h, t] = ip.split("::");
  const head = h ? h.split(":") : [];
  const tail = t !== undefined && t ? t.split(":") : [];
  const mid = ip.includes("::") ? Array<string>(8 - head.length - tail.length).fill("0") : [];
  return [...head, ...mid, ...tail];
}
