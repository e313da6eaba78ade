/**
 * In-memory TUN (FakeTun): the TunDevice the in-process tests drive.
 * Moved out of src/net/tun.ts: fakes live with the tests (test/fakes/), never in production files.
 */
import {
  MAX_ROUNDS_PER_WAKEUP,
  newStats,
  slabGeometry,
  type TunDevice,
  type TunOptions,
  type TunStats,
} from "../../src/net/tun.js";
import { PlatformError } from "../../src/errors.js";
import { isInterfaceName } from "../../src/text.js";
import type { PacketBatch } from "../../src/tunnel/io.js";

export interface FakeTunOptions extends TunOptions {
  /** packets the fake "kernel" accepts from writeMany before it reports drops (default unlimited) */
  txCapacity?: number;
  /** packets queued toward the device before the fake "kernel" drops (like txqueuelen, default 500) */
  rxQueueLimit?: number;
}

/**
 * In-memory TUN for tests. `inject` plays the kernel sending packets out of the interface
 * (delivered to onBatch on a later event-loop turn, batched and bounded like LinuxTun);
 * `takeWritten` returns what the device wrote "to the kernel". Like the kernel, it
 * rejects writes that are not IPv4/IPv6 (txErrors).
 */
export class FakeTun implements TunDevice {
  readonly name: string;
  private readonly batch: PacketBatch;
  private readonly max: number;
  private readonly st = newStats();
  private readonly rxQueue: Buffer[] = [];
  private written: Buffer[] = [];
  private readonly txCapacity: number;
  private readonly rxQueueLimit: number;
  private onBatch: ((b: PacketBatch) => void) | undefined;
  private scheduled = false;
  private closed = false;
  /** packets dropped because rxQueueLimit was reached (the kernel's tx_dropped on the interface) */
  kernelDropped = 0;

  constructor(opts: FakeTunOptions = {}) {
    if (opts.name !== undefined && !isInterfaceName(opts.name))
      throw new PlatformError("EINVAL", `bad interface name ${JSON.stringify(opts.name)}`);
    const g = slabGeometry(opts, 1024);
    this.name = opts.name ?? "faketun0";
    this.max = g.batch;
    this.txCapacity = opts.txCapacity ?? Infinity;
    this.rxQueueLimit = opts.rxQueueLimit ?? 500;
    this.batch = {
      buf: Buffer.alloc(g.slotSize * g.batch),
      slotSize: g.slotSize,
      headroom: g.headroom,
      lens: new Uint32Array(g.batch),
      count: 0,
    };
  }

  start(onBatch: (b: PacketBatch) => void): void {
    if (this.closed) throw new PlatformError("EBADF", `${this.name}: start after close`);
    if (this.onBatch) throw new PlatformError("EBUSY", `${this.name}: already started`);
    this.onBatch = onBatch;
    this.schedule();
  }

  /** The kernel routes packets out of this interface (bytes are copied). */
  inject(...packets: Uint8Array[]): void {
    if (this.closed) return;
    for (const p of packets) {
      if (this.rxQueue.length >= this.rxQueueLimit) this.kernelDropped++;
      else this.rxQueue.push(Buffer.from(p));
    }
    this.schedule();
  }

  /** Packets written to the kernel since the last call (copies, oldest first). */
  takeWritten(): Buffer[] {
    const w = this.written;
    this.written = [];
    return w;
  }

  /** Deliver pending packets now, as one poll wake-up would; returns packets delivered. */
  pump(): number {
    if (!this.onBatch || this.closed) return 0;
    const b = this.batch;
    let delivered = 0;
    for (let round = 0; round < MAX_ROUNDS_PER_WAKEUP && this.rxQueue.length > 0 && !this.closed; round++) {
      let n = 0;
      while (n < this.max && this.rxQueue.length > 0) {
        const p = this.rxQueue.shift()!;
        const space = b.slotSize - b.headroom;
        const len = Math.min(p.length, space);
        p.copy(b.buf, n * b.slotSize + b.headroom, 0, len);
        b.lens[n] = len;
        this.st.rxBytes += len;
        n++;
      }
      this.st.rxPackets += n;
      b.count = n;
      delivered += n;
      this.onBatch(b);
    }
    if (this.rxQueue.length > 0) this.schedule();
    return delivered;
  }

  private schedule(): void {
    if (this.scheduled || !this.onBatch || this.rxQueue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  writeMany(buf: Buffer, offs: Uint32Array, lens: Uint32Array, count: number): number {
    if (this.closed) {
      this.st.txErrors += count;
      return 0;
    }
    if (count > offs.length || count > lens.length)
      throw new PlatformError("EINVAL", "writeMany: count exceeds offs/lens");
    for (let i = 0; i < count; i++) {
      if (offs[i]! + lens[i]! > buf.length)
        throw new PlatformError("EINVAL", "writeMany: packet outside buffer");
    }
    let n = 0;
    for (let i = 0; i < count; i++) {
      const off = offs[i]!;
      const len = lens[i]!;
      const version = len > 0 ? buf[off]! >> 4 : 0;
      if (version !== 4 && version !== 6) {
        this.st.txErrors++; // the kernel answers EINVAL
      } else if (this.written.length >= this.txCapacity) {
        this.st.txDropped++;
      } else {
        this.written.push(Buffer.from(buf.subarray(off, off + len)));
        this.st.txPackets++;
        this.st.txBytes += len;
        n++;
      }
    }
    return n;
  }

  write(buf: Buffer, off: number, len: number): boolean {
    return this.writeMany(buf, Uint32Array.of(off), Uint32Array.of(len), 1) === 1;
  }

  stats(): TunStats {
    return { ...this.st };
  }

  close(): void {
    this.closed = true;
    this.onBatch = undefined;
    this.rxQueue.length = 0;
  }
}
