/**
 * In-process test network for protocol scenarios: engines connected by a
 * simulated datagram network with a fake clock. No sockets, no TUN. Packets
 * are queued and delivered by `run()`, so a test can drop, reorder, replay or
 * delay any of them.
 */
import { signKeyPair } from "../../src/crypto/sodium.js";
import type { CaCert, HostCert } from "../../src/wire/cert.js";
import { signCert } from "../../src/wire/cert.js";
import { ADDR_BYTES, addrToString, tryEncodeAddr } from "../../src/wire/addr.js";
import { Engine, type DirectoryHooks, type EngineOptions, type Output } from "../../src/tunnel/engine.js";
import { onDatagram } from "../../src/tunnel/outside.js";

export interface Ca {
  cert: CaCert;
  sk: Buffer;
}

export function makeCa(name = "test-ca", nowSec = Math.floor(Date.now() / 1000)): Ca {
  const kp = signKeyPair();
  const cert = signCert(
    {
      kind: "ca",
      name,
      publicKey: kp.publicKey,
      groups: [],
      notBefore: nowSec - 60,
      notAfter: nowSec + 86400,
      issuer: kp.publicKey,
    },
    kp.secretKey,
  ) as CaCert;
  return { cert, sk: kp.secretKey };
}

export function makeHostCert(
  ca: Ca,
  name: string,
  ip4: string | null,
  ip6: string | null,
  opts: { subnets?: string[]; nowSec?: number; notAfter?: number } = {},
): { cert: HostCert; sk: Buffer } {
  const nowSec = opts.nowSec ?? Math.floor(Date.now() / 1000);
  const kp = signKeyPair();
  const cert = signCert(
    {
      kind: "host",
      name,
      publicKey: kp.publicKey,
      groups: [],
      notBefore: nowSec - 60,
      notAfter: opts.notAfter ?? nowSec + 86400,
      issuer: ca.cert.publicKey,
      ip4,
      ip6,
      subnets: opts.subnets ?? [],
    },
    ca.sk,
  ) as HostCert;
  return { cert, sk: kp.secretKey };
}

export interface Datagram {
  from: Buffer;
  to: Buffer;
  data: Buffer;
}

export class SimHost implements Output {
  readonly engine: Engine;
  /** the engine's directory hooks (EngineOptions.directory): a test's directory fills them */
  readonly dirHooks: DirectoryHooks = {};
  readonly tunOut: Buffer[] = [];
  constructor(
    readonly net: SimNet,
    readonly name: string,
    public addr: Buffer,
    readonly cert: HostCert,
    /** the host's secret key (kept so that `SimNet.restartHost` can start it again) */
    readonly sk: Buffer,
    ca: CaCert,
    readonly opts: Partial<EngineOptions> = {},
  ) {
    const a = addrToString(addr).split(":");
    this.engine = new Engine(
      {
        ca,
        hostCert: cert,
        hostSecretKey: sk,
        ephemeralLifetimeMs: 300_000,
        minFirstPacket: 256,
        rekeyAfterMs: 120_000,
        keepaliveMs: 25_000,
        idleTimeoutMs: 180_000,
        maxTunnels: 1000,
        endpoints: () => [{ ip: a[0]!, port: Number(a[1]) }],
        directory: this.dirHooks,
        ...opts,
      },
      this,
      net.now,
    );
  }
  sendUdp(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number): void {
    this.net.queue.push({
      from: this.addr,
      to: Buffer.from(addr.subarray(addrOff, addrOff + ADDR_BYTES)),
      data: Buffer.from(buf.subarray(off, off + len)),
    });
  }
  writeTun(buf: Buffer, off: number, len: number): void {
    this.tunOut.push(Buffer.from(buf.subarray(off, off + len)));
  }
  flush(): void {}

  /** An application on this host sends `pkt` (it enters through the TUN). */
  send(pkt: Buffer): void {
    const headroom = 64;
    const slot = Buffer.alloc(headroom + pkt.length + 64);
    pkt.copy(slot, headroom);
    this.engine.handleTunBatch(
      { buf: slot, slotSize: slot.length, headroom, lens: Uint32Array.of(pkt.length), count: 1 },
      this.net.now,
    );
  }

  /** Take what was written to this host's TUN. */
  take(): Buffer[] {
    return this.tunOut.splice(0);
  }
}

export class SimNet {
  now = Date.now();
  readonly queue: Datagram[] = [];
  readonly hosts = new Map<string, SimHost>();
  /** return false to drop a datagram */
  filter: (d: Datagram) => boolean = () => true;
  readonly log: Datagram[] = [];

  addHost(
    ca: Ca,
    name: string,
    ip: string,
    port: number,
    ip4: string | null,
    ip6: string | null,
    opts: Partial<EngineOptions> = {},
  ): SimHost {
    const { cert, sk } = makeHostCert(ca, name, ip4, ip6);
    const h = new SimHost(this, name, tryEncodeAddr(ip, port)!, cert, sk, ca.cert, opts);
    this.hosts.set(addrToString(h.addr), h);
    return h;
  }

  /** The host's daemon is killed (kill -9: nothing more is sent or received for it). */
  killHost(h: SimHost): void {
    if (this.hosts.get(addrToString(h.addr)) === h) this.hosts.delete(addrToString(h.addr));
  }

  /**
   * The host's daemon is killed and started again (same address, key and certificate, no
   * state: no tunnels, no ephemeral keys, no peers; the caller adds configured peers again).
   * Nothing is sent on the old engine's behalf (kill -9: no CLOSE).
   */
  restartHost(h: SimHost, opts: Partial<EngineOptions> = h.opts): SimHost {
    const n = new SimHost(this, h.name, h.addr, h.cert, h.sk, h.engine.opts.ca, opts);
    this.hosts.set(addrToString(h.addr), n);
    return n;
  }

  /** The host's underlay address changes (datagrams to the old one are lost from now on). */
  moveHost(h: SimHost, ip: string, port: number): void {
    this.hosts.delete(addrToString(h.addr));
    h.addr = tryEncodeAddr(ip, port)!;
    this.hosts.set(addrToString(h.addr), h);
  }

  /** Deliver queued datagrams (and those they cause) until quiet or `max`. Returns the number delivered. */
  run(max = 1000): number {
    let n = 0;
    while (this.queue.length > 0 && n < max) {
      const d = this.queue.shift()!;
      this.log.push(d);
      if (!this.filter(d)) continue;
      const h = this.hosts.get(addrToString(d.to));
      if (!h) continue;
      const copy = Buffer.from(d.data);
      onDatagram(h.engine, copy, 0, copy.length, d.from, 0, this.now);
      n++;
    }
    return n;
  }

  /** Advance the clock, ticking every engine each `step` ms. */
  advance(ms: number, step = 250): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now = Math.min(end, this.now + step);
      for (const h of this.hosts.values()) h.engine.tick(this.now);
      this.run();
    }
  }
}

/** A minimal IPv4 packet (protocol 17, UDP-like payload). */
export function ipv4(src: string, dst: string, payload: Buffer | string, proto = 17): Buffer {
  const p = typeof payload === "string" ? Buffer.from(payload) : payload;
  const b = Buffer.alloc(20 + p.length);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b[8] = 64;
  b[9] = proto;
  src.split(".").forEach((x, i) => (b[12 + i] = Number(x)));
  dst.split(".").forEach((x, i) => (b[16 + i] = Number(x)));
  p.copy(b, 20);
  return b;
}

/** A minimal IPv6 packet. */
export function ipv6(src: Buffer, dst: Buffer, payload: Buffer | string, next = 17): Buffer {
  const p = typeof payload === "string" ? Buffer.from(payload) : payload;
  const b = Buffer.alloc(40 + p.length);
  b[0] = 0x60;
  b.writeUInt16BE(p.length, 4);
  b[6] = next;
  b[7] = 64;
  src.copy(b, 8);
  dst.copy(b, 24);
  p.copy(b, 40);
  return b;
}
