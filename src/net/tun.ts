/**
 * TUN device: the kernel side of the overlay. Packets are IP datagrams (IFF_TUN|IFF_NO_PI).
 *
 * Buffer ownership rule (both directions):
 *  - Read: the device owns one slab. Packet i of a batch occupies
 *    buf[i*slotSize + headroom, +lens[i]). The slab and the batch object are valid only
 *    during onBatch; the receiver may modify the bytes in place (encrypt there, using the
 *    headroom for the tunnel header) but must copy anything it keeps.
 *  - Write: the caller owns buf; the bytes are copied to the kernel before writeMany returns.
 *
 * Work per wake-up is bounded (MAX_ROUNDS_PER_WAKEUP batches); the poll is level-triggered,
 * so packets left in the kernel queue are delivered on the next loop iteration.
 *
 * Offloads (Linux, on unless MINTUN_NO_TUN_OFFLOAD=1 or `offload: false`): the device is
 * opened with IFF_VNET_HDR and TSO4/TSO6 (+USO) so the kernel hands over TCP/UDP
 * "super-packets" of up to 64 KiB, which the addon splits back into MTU-sized packets with
 * valid checksums, one per slot; on write, runs of consecutive TCP segments of one flow are
 * coalesced into one super-packet per write. Neither changes what callers see: one slot per
 * IP packet, counts in IP packets (platform/linux/tun_offload.c).
 */
import { PlatformError } from "../errors.js";
import { isInterfaceName } from "../text.js";
import { native, nativeCall, startPoller, type NativePoller } from "./native.js";
import type { PacketBatch } from "../tunnel/io.js";

/** Packets in one slab (defined in ./types.ts, shared with the tunnel code): packet i occupies buf[i*slotSize + headroom, +lens[i]). */
export type { PacketBatch };

export interface TunStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  txDropped: number;
  rxErrors: number;
  txErrors: number;
  /** offload mode: super-packets read from the kernel and the packets cut from them */
  rxGsoPackets: number;
  rxGsoSegments: number;
  /** offload mode: super-packets written to the kernel and the packets merged into them (also in txPackets) */
  txCoalesced: number;
  txCoalescedSegments: number;
}

export interface TunDevice {
  readonly name: string;
  /** start delivering batches; onBatch is called synchronously from the poll callback, possibly several times per wake-up, bounded */
  start(onBatch: (b: PacketBatch) => void): void;
  /** write packets (buf, offs[i], lens[i]) for i < count in one native call; returns number written; EAGAIN/ENOBUFS drops counted in txDropped, never thrown */
  writeMany(buf: Buffer, offs: Uint32Array, lens: Uint32Array, count: number): number;
  write(buf: Buffer, off: number, len: number): boolean;
  stats(): TunStats;
  /** idempotent */
  close(): void;
}

export interface TunOptions {
  /** interface name, e.g. "mintun0"; the kernel picks one (tunN) if absent */
  name?: string;
  /** bytes per packet slot in the read slab (default 2048) */
  slotSize?: number;
  /** bytes left free before each packet read, for the tunnel header (default 64) */
  headroom?: number;
  /** packets per batch (default 64) */
  batch?: number;
  /** TSO/USO + coalescing via IFF_VNET_HDR (default: on unless env MINTUN_NO_TUN_OFFLOAD=1); falls back to plain if the kernel refuses */
  offload?: boolean;
}

/** Offloads requested by default: off only with MINTUN_NO_TUN_OFFLOAD=1 (A/B measurements, fallback). */
export function tunOffloadDefault(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.MINTUN_NO_TUN_OFFLOAD;
  return v === undefined || v === "" || v === "0";
}

export const DEFAULT_SLOT_SIZE = 2048;
export const DEFAULT_HEADROOM = 64;
export const DEFAULT_BATCH = 64;
/**
 * txqueuelen the daemon sets on its TUN (kernel default 500). Without offloads a single
 * TCP stream overflowed 500 packets at the TUN (each drop a retransmission; 2-5k drops
 * in 8 s, none at 1000 or 2000); with offloads the queue holds super-packets and did
 * not overflow either way (docs/ARCHITECTURE.md, measurements).
 */
export const TUN_TX_QUEUE_LEN = 1000;
/** batches delivered per poll wake-up before yielding to the event loop */
export const MAX_ROUNDS_PER_WAKEUP = 4;

export function newStats(): TunStats {
  return {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    txDropped: 0,
    rxErrors: 0,
    txErrors: 0,
    rxGsoPackets: 0,
    rxGsoSegments: 0,
    txCoalesced: 0,
    txCoalescedSegments: 0,
  };
}

/** Validate slab geometry shared by TUN and UDP. */
export function slabGeometry(
  opts: { slotSize?: number; headroom?: number; batch?: number },
  maxBatch: number,
): { slotSize: number; headroom: number; batch: number } {
  const slotSize = opts.slotSize ?? DEFAULT_SLOT_SIZE;
  const headroom = opts.headroom ?? DEFAULT_HEADROOM;
  const batch = opts.batch ?? DEFAULT_BATCH;
  if (!Number.isInteger(slotSize) || slotSize < 64 || slotSize > 65536 + 1024)
    throw new PlatformError("EINVAL", `slotSize ${slotSize} out of range [64, 66560]`);
  if (!Number.isInteger(headroom) || headroom < 0 || headroom >= slotSize)
    throw new PlatformError("EINVAL", `headroom ${headroom} must be in [0, slotSize)`);
  if (!Number.isInteger(batch) || batch < 1 || batch > maxBatch)
    throw new PlatformError("EINVAL", `batch ${batch} out of range [1, ${maxBatch}]`);
  return { slotSize, headroom, batch };
}

export class LinuxTun implements TunDevice {
  readonly name: string;
  private readonly fd: number;
  private readonly batch: PacketBatch;
  private readonly max: number;
  private readonly st = newStats();
  /** [dropped, errors, bytes, super-packets, their segments] added by the addon */
  private readonly res = new Uint32Array(5);
  /** read side, offload mode: [malformed, super-packets, segments] added by the addon */
  private readonly rres = new Uint32Array(3);
  /** offload mode only: addon-owned state of a partly split super-packet / coalescing area */
  private readonly rScratch: Buffer | undefined;
  private readonly wScratch: Buffer | undefined;
  private readonly one = { offs: new Uint32Array(1), lens: new Uint32Array(1) };
  private poller: NativePoller | undefined;
  private onBatch: ((b: PacketBatch) => void) | undefined;
  private closed = false;
  private drainScheduled = false;
  /** TUN_F_* offload flags in effect (0: plain IFF_TUN|IFF_NO_PI, one packet per read/write) */
  readonly offload: number;

  /** Open (or create) a TUN interface. Needs CAP_NET_ADMIN; the interface is left down. */
  static open(opts: TunOptions = {}): LinuxTun {
    const name = opts.name ?? "";
    if (name !== "" && !isInterfaceName(name))
      throw new PlatformError("EINVAL", `bad interface name ${JSON.stringify(name)}`);
    const g = slabGeometry(opts, 1024);
    const addon = native();
    const want = (opts.offload ?? tunOffloadDefault()) && addon.TUN_SCRATCH_BYTES !== undefined;
    const r = nativeCall(`open TUN ${name || "(kernel-named)"}`, () => addon.tunOpen(name, want));
    return new LinuxTun(
      r.fd,
      r.name,
      g.slotSize,
      g.headroom,
      g.batch,
      r.offload ?? 0,
      addon.TUN_SCRATCH_BYTES ?? 0,
    );
  }

  /**
   * n queues of one multi-queue TUN (IFF_MULTI_QUEUE; docs/ARCHITECTURE.md "Many cores"): the
   * kernel spreads the packets it routes into the interface over the queues by flow hash.
   * Queue 0 is returned as a LinuxTun; the others as fds for LinuxTun.adopt in other threads.
   */
  static openQueues(
    opts: TunOptions,
    n: number,
  ): { tun: LinuxTun; fds: number[]; allFds: number[]; offload: number } {
    const name = opts.name ?? "";
    if (name !== "" && !isInterfaceName(name))
      throw new PlatformError("EINVAL", `bad interface name ${JSON.stringify(name)}`);
    const g = slabGeometry(opts, 1024);
    const addon = native();
    const want = (opts.offload ?? tunOffloadDefault()) && addon.TUN_SCRATCH_BYTES !== undefined;
    const r = nativeCall(`open TUN ${name || "(kernel-named)"} (${n} queues)`, () =>
      addon.tunOpenQueues(name, n, want),
    );
    const sb = addon.TUN_SCRATCH_BYTES ?? 0;
    const tun = new LinuxTun(r.fds[0]!, r.name, g.slotSize, g.headroom, g.batch, r.offload, sb);
    return { tun, fds: r.fds.slice(1), allFds: r.fds, offload: r.offload };
  }

  /** A queue opened by openQueues in another thread (fds are per process): this thread reads and writes it. */
  static adopt(fd: number, name: string, offload: number, opts: TunOptions = {}): LinuxTun {
    const g = slabGeometry(opts, 1024);
    return new LinuxTun(fd, name, g.slotSize, g.headroom, g.batch, offload, native().TUN_SCRATCH_BYTES ?? 0);
  }

  private constructor(
    fd: number,
    name: string,
    slotSize: number,
    headroom: number,
    batch: number,
    offload: number,
    scratchBytes: number,
  ) {
    this.fd = fd;
    this.name = name;
    this.max = batch;
    this.offload = offload;
    if (offload !== 0) {
      this.rScratch = Buffer.alloc(scratchBytes);
      this.wScratch = Buffer.alloc(scratchBytes);
    }
    this.batch = {
      buf: Buffer.allocUnsafe(slotSize * batch),
      slotSize,
      headroom,
      lens: new Uint32Array(batch),
      count: 0,
    };
  }

  start(onBatch: (b: PacketBatch) => void): void {
    this.poller = startPoller(this.name, this.fd, this.closed, this.poller, this.onReadable);
    this.onBatch = onBatch;
  }

  /** Let the process exit while the device is open (the poll handle stops keeping the loop alive). */
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
    const rs = this.rScratch;
    const rres = this.rres;
    for (let round = 0; round < MAX_ROUNDS_PER_WAKEUP && !this.closed; round++) {
      let n: number;
      if (rs) {
        rres[0] = 0;
        rres[1] = 0;
        rres[2] = 0;
        n = addon.tunRead(this.fd, b.buf, b.slotSize, b.headroom, this.max, b.lens, rs, rres);
        this.st.rxErrors += rres[0]!;
        this.st.rxGsoPackets += rres[1]!;
        this.st.rxGsoSegments += rres[2]!;
      } else {
        n = addon.tunRead(this.fd, b.buf, b.slotSize, b.headroom, this.max, b.lens);
      }
      if (n < 0) {
        this.st.rxErrors++;
        return;
      }
      if (n === 0) return;
      let bytes = 0;
      for (let i = 0; i < n; i++) bytes += b.lens[i]!;
      this.st.rxPackets += n;
      this.st.rxBytes += bytes;
      b.count = n;
      this.onBatch!(b);
      if (n < this.max) return;
    }
    // Segments of a super-packet may be left in the scratch area with the kernel queue
    // already empty: the poll would not fire for them, so come back on the next turn.
    if (rs && !this.closed && !this.drainScheduled && rs.readUInt32LE(0) !== 0) {
      this.drainScheduled = true;
      setImmediate(this.drain);
    }
  };

  private readonly drain = (): void => {
    this.drainScheduled = false;
    if (!this.closed && this.onBatch) this.onReadable(0);
  };

  writeMany(buf: Buffer, offs: Uint32Array, lens: Uint32Array, count: number): number {
    if (this.closed) {
      this.st.txErrors += count;
      return 0;
    }
    const res = this.res;
    res.fill(0);
    const addon = native();
    const n = this.wScratch
      ? addon.tunWrite(this.fd, buf, offs, lens, count, res, this.wScratch)
      : addon.tunWrite(this.fd, buf, offs, lens, count, res);
    this.st.txPackets += n;
    this.st.txBytes += res[2]!;
    this.st.txDropped += res[0]!;
    this.st.txErrors += res[1]!;
    this.st.txCoalesced += res[3]!;
    this.st.txCoalescedSegments += res[4]!;
    return n;
  }

  write(buf: Buffer, off: number, len: number): boolean {
    this.one.offs[0] = off;
    this.one.lens[0] = len;
    return this.writeMany(buf, this.one.offs, this.one.lens, 1) === 1;
  }

  stats(): TunStats {
    return { ...this.st };
  }

  close(): void {
    if (this.release()) native().closeFd(this.fd);
  }

  /** Stop reading and writing but leave the fd open (its owner, another thread, closes it). */
  release(): boolean {
    if (this.closed) return false;
    this.closed = true;
    this.poller?.close();
    this.poller = undefined;
    this.onBatch = undefined;
    return true;
  }
}
