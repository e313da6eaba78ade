/**
 * The engine's Output performed on the real devices, batched: UDP sends from one
 * buffer to one endpoint are gathered into a run per endpoint (up to MAX_OPEN runs at
 * once, so traffic to several peers interleaved in one TUN batch still forms long runs)
 * and each run becomes one sendMany (one sendmmsg, where equal-length packets go out as
 * UDP GSO messages); consecutive TUN writes from one buffer become one native writeMany
 * call. `flush()` is called by the engine at the end of every batch, before the slab is
 * reused. Order is kept per endpoint (a run is sent before another one to the same
 * endpoint starts); runs to different endpoints go out in the order they were opened.
 */
import type { Output } from "../tunnel/engine.js";
import type { TunDevice } from "../net/tun.js";
import type { UdpBind } from "../net/udp.js";
import { ADDR_BYTES, addrEqual } from "../wire/addr.js";

const MAX_RUN = 256;
/** runs (endpoints) gathered at once; the oldest is sent when one more is needed */
const MAX_OPEN = 8;

interface Run {
  offs: Uint32Array;
  lens: Uint32Array;
  n: number;
  buf: Buffer | null;
  addr: Buffer;
  /** pinned source (mobility) or null; part of the run's key */
  src: Buffer | null;
  srcBuf: Buffer;
}

export class BatchOutput implements Output {
  /** runs[0..open) are open, oldest first; the rest are spare */
  private readonly runs: Run[] = Array.from({ length: MAX_OPEN }, () => ({
    offs: new Uint32Array(MAX_RUN),
    lens: new Uint32Array(MAX_RUN),
    n: 0,
    buf: null,
    addr: Buffer.alloc(ADDR_BYTES),
    src: null,
    srcBuf: Buffer.alloc(ADDR_BYTES),
  }));
  private open = 0;
  private readonly tOffs = new Uint32Array(MAX_RUN);
  private readonly tLens = new Uint32Array(MAX_RUN);
  private tN = 0;
  private tBuf: Buffer | null = null;
  udpSendCalls = 0;
  tunWriteCalls = 0;

  constructor(
    private readonly udp: UdpBind,
    private readonly tun: TunDevice,
  ) {}

  sendUdp(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number, src?: Buffer | null): void {
    let r: Run | undefined;
    for (let i = 0; i < this.open; i++) {
      const x = this.runs[i]!;
      if (addrEqual(x.addr, 0, addr, addrOff)) {
        const sameSrc = src ? x.src !== null && addrEqual(x.src, 0, src, 0) : x.src === null;
        if (x.buf === buf && x.n < MAX_RUN && sameSrc) r = x;
        else this.closeRun(i); // keeps this endpoint's order: its earlier packets go first
        break;
      }
    }
    if (r === undefined) {
      if (this.open === MAX_OPEN) this.closeRun(0);
      r = this.runs[this.open++]!;
      r.buf = buf;
      addr.copy(r.addr, 0, addrOff, addrOff + ADDR_BYTES);
      if (src) {
        src.copy(r.srcBuf, 0, 0, ADDR_BYTES);
        r.src = r.srcBuf;
      } else r.src = null;
    }
    r.offs[r.n] = off;
    r.lens[r.n] = len;
    r.n++;
  }

  /** At once, after what is queued for that endpoint (its order is kept). */
  sendUdpTtl(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number, ttl: number): void {
    for (let i = 0; i < this.open; i++)
      if (addrEqual(this.runs[i]!.addr, 0, addr, addrOff)) {
        this.closeRun(i);
        break;
      }
    if (this.udp.sendTtl) this.udp.sendTtl(buf, off, len, addr, addrOff, ttl);
    else this.udp.send(buf, off, len, addr, addrOff);
    this.udpSendCalls++;
  }

  writeTun(buf: Buffer, off: number, len: number): void {
    if (this.tN > 0 && (buf !== this.tBuf || this.tN === MAX_RUN)) this.flushTun();
    if (this.tN === 0) this.tBuf = buf;
    this.tOffs[this.tN] = off;
    this.tLens[this.tN] = len;
    this.tN++;
  }

  private sendRun(r: Run): void {
    this.udp.sendMany(r.buf!, r.offs, r.lens, r.n, r.addr, 0, r.src);
    this.udpSendCalls++;
    r.n = 0;
    r.buf = null;
  }

  /** send run i and move its record to the spare end */
  private closeRun(i: number): void {
    const r = this.runs[i]!;
    this.sendRun(r);
    this.runs.copyWithin(i, i + 1, this.open);
    this.runs[--this.open] = r;
  }

  private flushUdp(): void {
    for (let i = 0; i < this.open; i++) this.sendRun(this.runs[i]!);
    this.open = 0;
  }

  private flushTun(): void {
    if (this.tN === 0) return;
    this.tun.writeMany(this.tBuf!, this.tOffs, this.tLens, this.tN);
    this.tunWriteCalls++;
    this.tN = 0;
    this.tBuf = null;
  }

  flush(): void {
    this.flushUdp();
    this.flushTun();
  }
}
