/**
 * The engine's Output performed on the real devices, batched: consecutive UDP
 * sends from one buffer to one endpoint become one sendmmsg; consecutive TUN
 * writes from one buffer become one native writeMany call. `flush()` is called
 * by the engine at the end of every batch, before the slab is reused.
 */
import type { Output } from "../tunnel/engine.js";
import type { TunDevice } from "../net/tun.js";
import type { UdpBind } from "../net/udp.js";
import { ADDR_BYTES, addrEqual } from "../wire/addr.js";

const MAX_RUN = 256;

export class BatchOutput implements Output {
  private readonly uOffs = new Uint32Array(MAX_RUN);
  private readonly uLens = new Uint32Array(MAX_RUN);
  private uN = 0;
  private uBuf: Buffer | null = null;
  private readonly uAddr = Buffer.alloc(ADDR_BYTES);
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

  sendUdp(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number): void {
    if (this.uN > 0 && (buf !== this.uBuf || this.uN === MAX_RUN || !addrEqual(this.uAddr, 0, addr, addrOff)))
      this.flushUdp();
    if (this.uN === 0) {
      this.uBuf = buf;
      addr.copy(this.uAddr, 0, addrOff, addrOff + ADDR_BYTES);
    }
    this.uOffs[this.uN] = off;
    this.uLens[this.uN] = len;
    this.uN++;
  }

  writeTun(buf: Buffer, off: number, len: number): void {
    if (this.tN > 0 && (buf !== this.tBuf || this.tN === MAX_RUN)) this.flushTun();
    if (this.tN === 0) this.tBuf = buf;
    this.tOffs[this.tN] = off;
    this.tLens[this.tN] = len;
    this.tN++;
  }

  private flushUdp(): void {
    if (this.uN === 0) return;
    this.udp.sendMany(this.uBuf!, this.uOffs, this.uLens, this.uN, this.uAddr, 0);
    this.udpSendCalls++;
    this.uN = 0;
    this.uBuf = null;
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
