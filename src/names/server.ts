/**
 * The DNS listener: UDP and TCP on each configured address (by default this
 * host's overlay addresses, port 53), answering with answerQuery (dns.ts).
 *
 * Bounds: at most MAX_INFLIGHT UDP queries wait for an answer (more are
 * dropped and counted), at most MAX_TCP_CONNECTIONS TCP connections, each
 * closed after TCP_IDLE_MS without a complete query or when it sends more than
 * MAX_QUERY_BYTES + 2 bytes of unanswered data.
 */
import * as dgram from "node:dgram";
import * as net from "node:net";
import { PlatformError } from "../errors.js";
import type { Logger } from "../log.js";
import { answerQuery, MAX_QUERY_BYTES, type DnsContext } from "./dns.js";

export const MAX_INFLIGHT = 1024;
export const MAX_TCP_CONNECTIONS = 64;
export const TCP_IDLE_MS = 10_000;

export interface DnsListen {
  host: string;
  port: number;
}

export class DnsServer {
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: net.Server[] = [];
  private readonly conns = new Set<net.Socket>();
  private inflight = 0;
  /** queries dropped because MAX_INFLIGHT were waiting */
  overload = 0;
  private closed = false;

  constructor(
    private readonly ctx: DnsContext,
    private readonly log: Logger,
  ) {}

  /** Bind UDP and TCP on every address; a failure closes what was opened and throws PlatformError. */
  async listen(addrs: DnsListen[]): Promise<void> {
    try {
      for (const a of addrs) {
        await this.listenUdp(a);
        await this.listenTcp(a);
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** "ip:port" of every UDP socket (after listen). */
  addresses(): string[] {
    return this.udp.map((s) => {
      const a = s.address();
      return a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    });
  }

  private listenUdp(a: DnsListen): Promise<void> {
    const s = dgram.createSocket({ type: a.host.includes(":") ? "udp6" : "udp4" });
    this.udp.push(s);
    s.on("message", (msg, rinfo) => {
      if (this.inflight >= MAX_INFLIGHT) {
        this.overload++;
        return;
      }
      this.inflight++;
      void answerQuery(msg, this.ctx).then((r) => {
        this.inflight--;
        if (r && !this.closed) s.send(r, rinfo.port, rinfo.address, () => undefined);
      });
    });
    return new Promise((resolve, reject) => {
      s.once("error", (e) => reject(bindError("udp", a, e)));
      s.bind(a.port, a.host, () => {
        s.removeAllListeners("error");
        s.on("error", (e) => this.log.log("warn", "DNS UDP socket error", { error: e.message }));
        resolve();
      });
    });
  }

  private listenTcp(a: DnsListen): Promise<void> {
    const srv = net.createServer((c) => this.onTcp(c));
    srv.maxConnections = MAX_TCP_CONNECTIONS;
    this.tcp.push(srv);
    return new Promise((resolve, reject) => {
      srv.once("error", (e) => reject(bindError("tcp", a, e)));
      srv.listen(a.port, a.host, () => {
        srv.removeAllListeners("error");
        srv.on("error", (e) => this.log.log("warn", "DNS TCP server error", { error: e.message }));
        resolve();
      });
    });
  }

  /** RFC 1035 4.2.2: each message is preceded by a two-byte length. */
  private onTcp(c: net.Socket): void {
    this.conns.add(c);
    c.setTimeout(TCP_IDLE_MS, () => c.destroy());
    let buf: Buffer = Buffer.alloc(0);
    let busy = false;
    const pump = (): void => {
      if (busy || buf.length < 2) return;
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) return;
      const msg = Buffer.from(buf.subarray(2, 2 + len));
      buf = buf.subarray(2 + len);
      busy = true;
      void answerQuery(msg, this.ctx).then((r) => {
        busy = false;
        if (!r) return void c.destroy();
        if (c.destroyed) return;
        const head = Buffer.alloc(2);
        head.writeUInt16BE(r.length);
        c.write(Buffer.concat([head, r]));
        pump();
      });
    };
    c.on("data", (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (buf.length > MAX_QUERY_BYTES + 2) {
        this.ctx.counters.malformed++;
        c.destroy();
        return;
      }
      pump();
    });
    c.on("error", () => c.destroy());
    c.on("close", () => this.conns.delete(c));
  }

  /** Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.udp) s.close();
    for (const t of this.tcp) t.close();
    for (const c of this.conns) c.destroy();
    this.conns.clear();
  }
}

function bindError(proto: string, a: DnsListen, e: Error): PlatformError {
  const code = (e as NodeJS.ErrnoException).code ?? "EDNSBIND";
  return new PlatformError(
    code,
    `DNS: cannot listen on ${proto} ${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}: ${e.message}`,
    { cause: e },
  );
}

/** The addresses `dns.listen` names: "overlay" = this host's overlay addresses, port 53. */
export function dnsListenAddrs(
  listen: "overlay" | DnsListen,
  overlay: { ip4: string | null; ip6: string | null },
): DnsListen[] {
  if (listen !== "overlay") return [listen];
  return [overlay.ip4, overlay.ip6]
    .filter((x): x is string => x !== null)
    .map((host) => ({ host, port: 53 }));
}
