/**
 * In-memory UDP: FakeNetwork (a datagram network between binds) and FakeUdp (a UdpBind on it).
 * Moved out of src/net/udp.ts: fakes live with the tests (test/fakes/), never in production files.
 */
import {
  ADDR_LEN,
  addrKey,
  encodeAddr,
  MAX_UDP_BATCH,
  MAX_UDP_PAYLOAD,
  newBatch,
  newStats,
  type UdpBind,
  type UdpBindOptions,
  type UdpStats,
} from "../../src/net/udp.js";
import { PlatformError } from "../../src/errors.js";
import { decodeAddrRecord } from "../../src/wire/addr.js";
import { MAX_ROUNDS_PER_WAKEUP, slabGeometry } from "../../src/net/tun.js";
import type { UdpBatch } from "../../src/tunnel/io.js";

// ---------- in-memory network ----------

export interface FakeNetworkOptions {
  /**
   * Called for every datagram in flight with a private copy of its bytes (which it may
   * modify); returns how many copies to deliver: 0 drops, 1 delivers, 2+ duplicates.
   */
  filter?: (from: string, to: string, data: Buffer) => number;
  /** datagrams queued per bind before the network drops (like a full rcvbuf; default 4096) */
  queueLimit?: number;
  /** source address reported for a wildcard-bound sender (default loopback: 127.0.0.1 / ::1) */
  wildcardSource?: { v4: string; v6: string };
}

interface Queued {
  data: Buffer;
  from: Buffer;
}

/**
 * Datagram network between FakeUdp binds, keyed by "ip:port". Delivery is asynchronous
 * (setImmediate) and batched like LinuxUdp; `flush()` delivers synchronously. Models
 * what the compliance tests check of the kernel: wildcard and dual-stack binds,
 * EADDRINUSE, ephemeral ports, IPv4-mapped sources reported as family 4, truncation.
 */
export class FakeNetwork {
  filter: ((from: string, to: string, data: Buffer) => number) | undefined;
  readonly queueLimit: number;
  /** datagrams dropped for a full queue or no bind at the destination */
  dropped = 0;
  delivered = 0;
  private readonly binds = new Map<string, FakeUdp>();
  private nextPort = 32768;
  private readonly wildcardSource: { v4: Buffer; v6: Buffer };

  constructor(opts: FakeNetworkOptions = {}) {
    this.filter = opts.filter;
    this.queueLimit = opts.queueLimit ?? 4096;
    const ws = opts.wildcardSource ?? { v4: "127.0.0.1", v6: "::1" };
    this.wildcardSource = { v4: encodeAddr(ws.v4, 0), v6: encodeAddr(ws.v6, 0) };
  }

  bind(opts: UdpBindOptions): FakeUdp {
    const rec = encodeAddr(opts.address, opts.port);
    const g = slabGeometry(opts, MAX_UDP_BATCH);
    let port = opts.port;
    if (port === 0) {
      for (let i = 0; i < 28232 && port === 0; i++) {
        const p = this.nextPort;
        this.nextPort = p >= 60999 ? 32768 : p + 1;
        if (!this.conflicts(rec, p)) port = p;
      }
      if (port === 0) throw new PlatformError("EADDRINUSE", "no free ephemeral port");
    } else if (this.conflicts(rec, port)) {
      throw new PlatformError("EADDRINUSE", `bind UDP ${addrKey(rec, 0)}: Address already in use`);
    }
    rec.writeUInt16BE(port, 2);
    const b = new FakeUdp(this, rec, newBatch(g.slotSize, g.headroom, g.batch), g.batch);
    this.binds.set(addrKey(rec, 0), b);
    return b;
  }

  /** Deliver everything queued, synchronously (bounded); returns datagrams delivered. */
  flush(): number {
    let total = 0;
    for (let guard = 0; guard < 10_000; guard++) {
      let n = 0;
      for (const b of this.binds.values()) n += b.pump();
      if (n === 0) break;
      total += n;
    }
    return total;
  }

  private conflicts(rec: Buffer, port: number): boolean {
    const fam = rec[0];
    const wild = isWildcard(rec);
    for (const b of this.binds.values()) {
      if (b.localPort !== port) continue;
      const o = b.record;
      if (wild && isWildcard(o)) {
        if (fam === o[0] || fam === 6 || o[0] === 6) return true; // "::" is dual stack
      } else if (wild) {
        if (fam === 6 || fam === o[0]) return true;
      } else if (isWildcard(o)) {
        if (o[0] === 6 || fam === o[0]) return true;
      } else if (rec.compare(o, 4, 20, 4, 20) === 0 && fam === o[0]) {
        return true;
      }
    }
    return false;
  }

  /** @internal called by FakeUdp.sendMany; returns false if the socket cannot reach that family */
  route(from: FakeUdp, data: Buffer, to: Buffer, toOff: number): boolean {
    const fam = to[toOff];
    const src = from.record;
    if (fam !== 4 && fam !== 6) return false;
    if (src[0] === 4 && fam === 6) return false; // AF_INET socket, IPv6 destination
    if (src[0] === 6 && fam === 4 && !isWildcard(src)) return false; // bound to a specific IPv6 address
    let fromRec = src;
    if (isWildcard(src)) {
      fromRec = Buffer.from(fam === 4 ? this.wildcardSource.v4 : this.wildcardSource.v6);
      fromRec.writeUInt16BE(from.localPort, 2);
    }
    const toRec = Buffer.from(to.subarray(toOff, toOff + ADDR_LEN));
    const dst = this.lookup(toRec);
    const fromKey = addrKey(fromRec, 0);
    const copies = this.filter ? this.filter(fromKey, addrKey(toRec, 0), data) : 1;
    for (let i = 0; i < copies; i++) {
      if (!dst || !dst.enqueue(data, fromRec)) this.dropped++;
      else this.delivered++;
    }
    return true;
  }

  private lookup(to: Buffer): FakeUdp | undefined {
    const exact = this.binds.get(addrKey(to, 0));
    if (exact) return exact;
    const port = to.readUInt16BE(2);
    if (to[0] === 4) {
      const w4 = this.binds.get(`0.0.0.0:${port}`);
      if (w4) return w4;
    }
    return this.binds.get(`[::]:${port}`);
  }

  /** @internal */
  unbind(b: FakeUdp): void {
    const k = addrKey(b.record, 0);
    if (this.binds.get(k) === b) this.binds.delete(k);
  }
}

function isWildcard(rec: Buffer): boolean {
  for (let i = 4; i < 20; i++) if (rec[i] !== 0) return false;
  return true;
}

export class FakeUdp implements UdpBind {
  readonly localPort: number;
  readonly localAddress: string;
  /** @internal the bound address record (port filled in) */
  readonly record: Buffer;
  private readonly st = newStats();
  private readonly queue: Queued[] = [];
  private onBatch: ((b: UdpBatch) => void) | undefined;
  private scheduled = false;
  private closed = false;

  /** @internal use FakeNetwork.bind */
  constructor(
    private readonly net: FakeNetwork,
    record: Buffer,
    private readonly batch: UdpBatch,
    private readonly max: number,
  ) {
    this.record = record;
    this.localPort = record.readUInt16BE(2);
    this.localAddress = decodeAddrRecord(record, 0).ip;
  }

  start(onBatch: (b: UdpBatch) => void): void {
    if (this.closed) throw new PlatformError("EBADF", `udp ${this.localPort}: start after close`);
    if (this.onBatch) throw new PlatformError("EBUSY", `udp ${this.localPort}: already started`);
    this.onBatch = onBatch;
    this.schedule();
  }

  /** @internal */
  enqueue(data: Buffer, from: Buffer): boolean {
    if (this.closed || this.queue.length >= this.net.queueLimit) return false;
    this.queue.push({ data, from });
    this.schedule();
    return true;
  }

  /** Deliver queued datagrams as one poll wake-up would; returns datagrams delivered. */
  pump(): number {
    if (!this.onBatch || this.closed) return 0;
    const b = this.batch;
    let delivered = 0;
    for (let round = 0; round < MAX_ROUNDS_PER_WAKEUP && this.queue.length > 0 && !this.closed; round++) {
      let n = 0;
      while (n < this.max && this.queue.length > 0) {
        const q = this.queue.shift()!;
        const space = b.slotSize - b.headroom;
        if (q.data.length > space) {
          b.lens[n] = 0; // truncated: reported empty, like the addon
          this.st.rxErrors++;
        } else {
          q.data.copy(b.buf, n * b.slotSize + b.headroom);
          b.lens[n] = q.data.length;
          this.st.rxPackets++;
          this.st.rxBytes += q.data.length;
        }
        q.from.copy(b.addrs, n * ADDR_LEN, 0, ADDR_LEN);
        n++;
      }
      b.count = n;
      delivered += n;
      this.onBatch(b);
    }
    if (this.queue.length > 0) this.schedule();
    return delivered;
  }

  private schedule(): void {
    if (this.scheduled || !this.onBatch || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  sendMany(
    buf: Buffer,
    offs: Uint32Array,
    lens: Uint32Array,
    count: number,
    addr: Buffer,
    addrOff: number,
  ): number {
    if (this.closed) {
      this.st.txErrors += count;
      return 0;
    }
    if (count > offs.length || count > lens.length || addrOff + ADDR_LEN > addr.length)
      throw new PlatformError("EINVAL", "sendMany: bad count or address record");
    if (addr[addrOff] !== 4 && addr[addrOff] !== 6)
      throw new PlatformError("EINVAL", "sendMany: bad address family");
    for (let i = 0; i < count; i++)
      if (offs[i]! + lens[i]! > buf.length)
        throw new PlatformError("EINVAL", "sendMany: packet outside buffer");
    let n = 0;
    for (let i = 0; i < count; i++) {
      const off = offs[i]!;
      const len = lens[i]!;
      if (
        len > MAX_UDP_PAYLOAD ||
        !this.net.route(this, Buffer.from(buf.subarray(off, off + len)), addr, addrOff)
      ) {
        this.st.txErrors++;
        continue;
      }
      this.st.txPackets++;
      this.st.txBytes += len;
      n++;
    }
    return n;
  }

  send(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number): boolean {
    return this.sendMany(buf, Uint32Array.of(off), Uint32Array.of(len), 1, addr, addrOff) === 1;
  }

  stats(): UdpStats {
    return { ...this.st };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onBatch = undefined;
    this.queue.length = 0;
    this.net.unbind(this);
  }
}
