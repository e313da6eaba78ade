/**
 * UDP binds: the outside of the overlay. Batched with recvmmsg/sendmmsg in the addon.
 *
 * Buffer ownership rule: the same as for TUN (src/net/tun.ts). A received batch lives in a
 * slab owned by the bind (packet i at buf[i*slotSize + headroom, +lens[i]), its source
 * address record at addrs[i*20, +20)); both are valid only during onBatch and may be
 * modified in place. sendMany copies the caller's bytes to the kernel before returning.
 *
 * Address record, 20 bytes (ADDR_LEN), used for sources and destinations:
 *
 *    0        1        2        3        4 ...                  19
 *   +--------+--------+--------+--------+--------------------------+
 *   | family |   0    |  port (BE)      | address: IPv4 in 4..7,   |
 *   | 4 or 6 |        |                 | rest zero; IPv6 in 4..19 |
 *   +--------+--------+--------+--------+--------------------------+
 *
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are always represented as family 4.
 *
 * Offloads (Linux, on unless MINTUN_NO_GSO=1 or `offload: false`): sendMany sends runs of
 * equal-length packets as one UDP GSO message (UDP_SEGMENT), and the socket has UDP_GRO on,
 * so the kernel may hand over up to 64 datagrams as one; the addon splits those back into
 * slots. Neither changes what callers see: one slot per datagram, counts in datagrams.
 */
import { PlatformError } from "../errors.js";
import { parseIp } from "../ip/ip.js";
import { addrToString, decodeAddrRecord, tryEncodeAddr } from "../wire/addr.js";
import { native, nativeCall, startPoller, type NativePoller } from "./native.js";
import { MAX_ROUNDS_PER_WAKEUP, slabGeometry } from "./tun.js";
import type { UdpBatch } from "../tunnel/io.js";

export const ADDR_LEN = 20;
/** the addon's recvmmsg/sendmmsg chunk; also the largest `batch` a bind accepts */
export const MAX_UDP_BATCH = 256;
export const DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024;
/** largest UDP payload over IPv4: 65535 - 20 (IP) - 8 (UDP) */
export const MAX_UDP_PAYLOAD = 65507;
/**
 * GRO receive area: messages per recvmmsg, each up to 64 KiB (a coalesced message can
 * hold 64 datagrams). 16 keeps the area at 1 MiB per bind; the addon loops recvmmsg until
 * the batch is full, so uncoalesced traffic still fills a 64-packet batch per call.
 */
export const GRO_MESSAGES = 16;
/** header + per message 32 bytes of metadata + 64 KiB (layout in mintun_linux.c) */
const GRO_AREA_BYTES = 16 + GRO_MESSAGES * (32 + 65536);
/** largest packet length sent with GSO; the addon lowers it (or sets 0) on refusal */
const GSO_DEFAULT_LIMIT = 65000 / 2;
/** after this many refusals GSO stays off (each refusal costs one failed sendmmsg) */
const GSO_MAX_FALLBACKS = 8;

/** The addon's UDP calls with their offload arguments (optional, see mintun_linux.c). */

/** MINTUN_NO_GSO=1 turns UDP GSO and GRO off (for A/B measurements). */
export function offloadDefault(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.MINTUN_NO_GSO;
  return v === undefined || v === "" || v === "0";
}

/** a PacketBatch plus addrs: 20 bytes per packet i at i*20 (layout above); defined in ./types.ts */
export type { UdpBatch };

export interface UdpStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  txDropped: number;
  rxErrors: number;
  txErrors: number;
  /** GSO messages sent (each carried >= 2 of the txPackets) */
  gsoMessages: number;
  /** datagrams sent inside GSO messages (included in txPackets) */
  gsoSegments: number;
  /** times the kernel refused GSO and the packets went again without it */
  gsoFallbacks: number;
  /** packets not sent because their pinned source address was no longer the one to use (mobility) */
  txSrcGone: number;
  /** received messages that the kernel had coalesced (GRO) */
  rxGroMessages: number;
  /** datagrams split out of those (included in rxPackets) */
  rxGroSegments: number;
}

export interface UdpBind {
  readonly localPort: number;
  readonly localAddress: string;
  start(onBatch: (b: UdpBatch) => void): void;
  /**
   * send count packets (buf, offs[i], lens[i]) all to one destination given as a 20-byte address
   * record at addr[addrOff..+20]; sendmmsg; returns number sent. src (optional, 20-byte record):
   * send from exactly this local address, or not at all if it is gone.
   */
  sendMany(
    buf: Buffer,
    offs: Uint32Array,
    lens: Uint32Array,
    count: number,
    addr: Buffer,
    addrOff: number,
    src?: Buffer | null,
  ): number;
  send(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number): boolean;
  /**
   * One datagram that dies `ttl` routers away (IP TTL / IPv6 hop limit 1..255): a NAT
   * traversal punch that opens our own NAT without reaching the peer's. Optional.
   */
  sendTtl?(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number, ttl: number): boolean;
  stats(): UdpStats;
  /** idempotent */
  close(): void;
}

export interface UdpBindOptions {
  /** "0.0.0.0", "::" (dual stack), or a local address */
  address: string;
  /** 0 lets the kernel pick */
  port: number;
  slotSize?: number;
  headroom?: number;
  /** packets per batch (default 64, at most 256) */
  batch?: number;
  /** socket buffer sizes in bytes (default 4 MiB; SO_*BUFFORCE when permitted) */
  rcvbuf?: number;
  sndbuf?: number;
  /** UDP GSO + GRO (LinuxUdp; default on unless MINTUN_NO_GSO=1; the fake ignores it) */
  offload?: boolean;
}

// ---------- address records (codec in src/wire/addr.ts) ----------

/** Encode ip:port as a 20-byte record (IPv4-mapped IPv6 becomes family 4). Throws PlatformError("EINVAL"). */
export function encodeAddr(ip: string, port: number, out: Buffer = Buffer.alloc(ADDR_LEN), off = 0): Buffer {
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new PlatformError("EINVAL", `port ${String(port)} out of range [0, 65535]`);
  if (out.length < off + ADDR_LEN) throw new PlatformError("EINVAL", "encodeAddr: output buffer too small");
  if (parseIp(ip) === null) throw new PlatformError("EINVAL", `bad IP address ${JSON.stringify(ip)}`);
  return tryEncodeAddr(ip, port, out, off)!;
}

export const decodeAddr = decodeAddrRecord;

/** "ip:port" or "[ip6]:port", for maps and logs. */
export function addrKey(buf: Buffer, off: number): string {
  return addrToString(buf, off);
}

export function newStats(): UdpStats {
  return {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    txDropped: 0,
    rxErrors: 0,
    txErrors: 0,
    gsoMessages: 0,
    gsoSegments: 0,
    gsoFallbacks: 0,
    txSrcGone: 0,
    rxGroMessages: 0,
    rxGroSegments: 0,
  };
}

export function newBatch(slotSize: number, headroom: number, batch: number): UdpBatch {
  return {
    buf: Buffer.alloc(slotSize * batch),
    slotSize,
    headroom,
    lens: new Uint32Array(batch),
    count: 0,
    addrs: Buffer.alloc(ADDR_LEN * batch),
  };
}

// ---------- Linux ----------

export class LinuxUdp implements UdpBind {
  readonly localPort: number;
  readonly localAddress: string;
  /** socket family: 6 means dual stack unless bound to a specific IPv6 address */
  readonly family: 4 | 6;
  private readonly fd: number;
  private readonly batch: UdpBatch;
  private readonly max: number;
  private readonly st = newStats();
  /**
   * filled by the addon. send: [dropped, errors, bytes, gso messages, gso segments, next
   * gso limit, fallbacks]; receive: [truncated, gro messages, gro segments, left in area]
   */
  private readonly res = new Uint32Array(8);
  private readonly one = { offs: new Uint32Array(1), lens: new Uint32Array(1) };
  /** largest packet sent with GSO, 0 = GSO off */
  private gsoLimit: number;
  /** receive area for coalesced messages; undefined when GRO is off */
  private readonly groArea: Buffer | undefined;
  private drainScheduled = false;
  private poller: NativePoller | undefined;
  private onBatch: ((b: UdpBatch) => void) | undefined;
  private closed = false;

  static bind(opts: UdpBindOptions): LinuxUdp {
    const rec = encodeAddr(opts.address, opts.port);
    const g = slabGeometry(opts, MAX_UDP_BATCH);
    const rcv = opts.rcvbuf ?? DEFAULT_SOCKET_BUFFER;
    const snd = opts.sndbuf ?? DEFAULT_SOCKET_BUFFER;
    for (const v of [rcv, snd])
      if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff)
        throw new PlatformError("EINVAL", `socket buffer size ${v} out of range`);
    const addon = native();
    const off = opts.offload ?? offloadDefault();
    const r = nativeCall(`bind UDP ${addrKey(rec, 0)}`, () => addon.udpOpen(rec, rcv, snd, off ? 1 : 0));
    return new LinuxUdp(
      r.fd,
      r.family,
      decodeAddrRecord(rec, 0).ip,
      r.port,
      g.slotSize,
      g.headroom,
      g.batch,
      {
        gso: r.gso === 1,
        gro: r.gro === 1,
      },
    );
  }

  /**
   * n sockets on one port with SO_REUSEPORT and the TID steering program (docs/ARCHITECTURE.md
   * "Many cores"): socket 0 gets creation and control datagrams and the DATA of TIDs whose last
   * byte is 0 mod n; socket k the DATA of TIDs k mod n. Socket 0 is returned as a LinuxUdp, the
   * others as fds for LinuxUdp.adopt in other threads.
   */
  static bindGroup(
    opts: UdpBindOptions,
    n: number,
  ): { udp: LinuxUdp; fds: number[]; port: number; family: 4 | 6; offload: { gso: boolean; gro: boolean } } {
    const g = slabGeometry(opts, MAX_UDP_BATCH);
    const rcv = opts.rcvbuf ?? DEFAULT_SOCKET_BUFFER;
    const snd = opts.sndbuf ?? DEFAULT_SOCKET_BUFFER;
    const addon = native();
    const off = (opts.offload ?? offloadDefault()) ? 1 : 0;
    const fds: number[] = [];
    let port = opts.port;
    let first: { fd: number; port: number; family: 4 | 6; gso?: number; gro?: number } | undefined;
    try {
      for (let i = 0; i < n; i++) {
        const rec = encodeAddr(opts.address, port);
        const r = nativeCall(`bind UDP ${addrKey(rec, 0)} (SO_REUSEPORT ${i + 1}/${n})`, () =>
          addon.udpOpen(rec, rcv, snd, off, 1),
        );
        fds.push(r.fd);
        if (i === 0) {
          first = r;
          port = r.port;
        }
      }
      nativeCall("steer the SO_REUSEPORT group", () => addon.reuseportSteer(fds[0]!, n));
    } catch (e) {
      for (const fd of fds) addon.closeFd(fd);
      throw e;
    }
    const offload = { gso: first!.gso === 1, gro: first!.gro === 1 };
    const udp = new LinuxUdp(
      fds[0]!,
      first!.family,
      opts.address,
      port,
      g.slotSize,
      g.headroom,
      g.batch,
      offload,
    );
    return { udp, fds: fds.slice(1), port, family: first!.family, offload };
  }

  /** A socket of a group opened by bindGroup, used in another thread (fds are per process). */
  static adopt(
    fd: number,
    family: 4 | 6,
    address: string,
    port: number,
    offload: { gso: boolean; gro: boolean },
    opts: { slotSize?: number; headroom?: number; batch?: number } = {},
  ): LinuxUdp {
    const g = slabGeometry(opts, MAX_UDP_BATCH);
    return new LinuxUdp(fd, family, address, port, g.slotSize, g.headroom, g.batch, offload);
  }

  private constructor(
    fd: number,
    family: 4 | 6,
    address: string,
    port: number,
    slotSize: number,
    headroom: number,
    batch: number,
    offload: { gso: boolean; gro: boolean },
  ) {
    this.fd = fd;
    this.family = family;
    this.localAddress = address;
    this.localPort = port;
    this.max = batch;
    this.batch = newBatch(slotSize, headroom, batch);
    this.gsoLimit = offload.gso ? GSO_DEFAULT_LIMIT : 0;
    this.groArea = offload.gro ? Buffer.alloc(GRO_AREA_BYTES) : undefined;
  }

  /** whether sendMany currently uses GSO (and up to which length) and the socket has GRO on */
  offloads(): { gsoLimit: number; gro: boolean } {
    return { gsoLimit: this.gsoLimit, gro: this.groArea !== undefined };
  }

  start(onBatch: (b: UdpBatch) => void): void {
    this.poller = startPoller(`udp ${this.localPort}`, this.fd, this.closed, this.poller, this.onReadable);
    this.onBatch = onBatch;
  }

  unref(): void {
    this.poller?.unref();
  }

  ref(): void {
    this.poller?.ref();
  }

  private readonly onReadable = (status: number): void => {
    if (status < 0) {
      this.st.rxErrors++;
      return;
    }
    const addon = native();
    const b = this.batch;
    const res = this.res;
    for (let round = 0; round < MAX_ROUNDS_PER_WAKEUP && !this.closed; round++) {
      res.fill(0);
      const n = addon.udpRecv(
        this.fd,
        b.buf,
        b.slotSize,
        b.headroom,
        this.max,
        b.lens,
        b.addrs,
        res,
        this.groArea,
      );
      if (n < 0) {
        this.st.rxErrors++;
        return;
      }
      this.st.rxGroMessages += res[1]!;
      this.st.rxGroSegments += res[2]!;
      if (n === 0) return;
      let bytes = 0;
      for (let i = 0; i < n; i++) bytes += b.lens[i]!;
      this.st.rxPackets += n - res[0]!;
      this.st.rxErrors += res[0]!;
      this.st.rxBytes += bytes;
      b.count = n;
      const left = res[3]! !== 0;
      this.onBatch!(b);
      if (n < this.max) return; // then nothing is left in the GRO area either
      if (left && round === MAX_ROUNDS_PER_WAKEUP - 1) this.scheduleDrain();
    }
  };

  /**
   * Datagrams split out of a coalesced message that did not fit the batch stay in the GRO
   * area; the socket may be empty, so the poll would not wake for them: come back soon.
   */
  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => {
      this.drainScheduled = false;
      if (!this.closed && this.onBatch) this.onReadable(0);
    });
  }

  sendMany(
    buf: Buffer,
    offs: Uint32Array,
    lens: Uint32Array,
    count: number,
    addr: Buffer,
    addrOff: number,
    src?: Buffer | null,
  ): number {
    if (this.closed) {
      this.st.txErrors += count;
      return 0;
    }
    const res = this.res;
    res.fill(0);
    const lim = this.gsoLimit;
    const n = native().udpSend(this.fd, this.family, buf, offs, lens, count, addr, addrOff, res, lim, src);
    this.st.txSrcGone += res[7]!;
    this.st.txPackets += n;
    this.st.txBytes += res[2]!;
    this.st.txDropped += res[0]!;
    this.st.txErrors += res[1]!;
    if (lim > 0) {
      this.st.gsoMessages += res[3]!;
      this.st.gsoSegments += res[4]!;
      this.st.gsoFallbacks += res[6]!;
      this.gsoLimit = this.st.gsoFallbacks >= GSO_MAX_FALLBACKS ? 0 : res[5]!;
    }
    return n;
  }

  send(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number): boolean {
    this.one.offs[0] = off;
    this.one.lens[0] = len;
    return this.sendMany(buf, this.one.offs, this.one.lens, 1, addr, addrOff) === 1;
  }

  sendTtl(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number, ttl: number): boolean {
    if (this.closed) {
      this.st.txErrors++;
      return false;
    }
    this.one.offs[0] = off;
    this.one.lens[0] = len;
    const res = this.res;
    res.fill(0);
    const n = native().udpSend(
      this.fd,
      this.family,
      buf,
      this.one.offs,
      this.one.lens,
      1,
      addr,
      addrOff,
      res,
      0,
      null,
      ttl,
    );
    this.st.txPackets += n;
    this.st.txBytes += res[2]!;
    this.st.txDropped += res[0]!;
    this.st.txErrors += res[1]!;
    return n === 1;
  }

  stats(): UdpStats {
    return { ...this.st };
  }

  close(): void {
    if (this.release()) native().closeFd(this.fd);
  }

  /** Stop receiving and sending but leave the fd open (its owner, another thread, closes it). */
  release(): boolean {
    if (this.closed) return false;
    this.closed = true;
    this.poller?.close();
    this.poller = undefined;
    this.onBatch = undefined;
    return true;
  }
}
