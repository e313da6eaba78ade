/**
 * SpreadTun: the TUN writes of one thread spread over the queues of a multi-queue TUN by a
 * symmetric flow hash (dataPath.workers > 1, docs/ARCHITECTURE.md "Many cores").
 *
 * Why: the kernel picks the queue of a packet it sends INTO the TUN (towards the daemon) from
 * the queue on which that flow's packets were last WRITTEN (tun "automq": a flow table keyed
 * by the kernel's flow hash, which is the same for both directions). If every thread wrote to
 * its own queue, the flows of a tunnel would all follow the thread that receives that tunnel
 * (one per epoch) and the sending side would not spread at all. Writing each packet to queue
 * (symmetric hash mod n) makes both directions of a flow use the queue the hash picks, so
 * flows spread over the threads evenly whoever received them. Order within a flow is kept
 * (one flow, one queue), and runs of a flow still coalesce per queue.
 */
import type { TunDevice, TunStats } from "./tun.js";
import { newStats } from "./tun.js";

const MAX = 256;

/** Symmetric hash of an IP packet's flow (addresses, protocol, ports): both directions agree. */
export function symmetricFlowHash(buf: Buffer, off: number, len: number): number {
  const v = len > 0 ? buf[off]! >> 4 : 0;
  let h = 0;
  let proto = 0;
  let l4 = -1;
  if (v === 4 && len >= 20) {
    h = buf.readUInt32BE(off + 12) ^ buf.readUInt32BE(off + 16);
    proto = buf[off + 9]!;
    const frag = buf.readUInt16BE(off + 6) & 0x3fff;
    if (frag === 0) l4 = off + (buf[off]! & 15) * 4;
  } else if (v === 6 && len >= 40) {
    for (let k = 8; k < 24; k += 4) h ^= buf.readUInt32BE(off + k) ^ buf.readUInt32BE(off + k + 16);
    proto = buf[off + 6]!;
    l4 = off + 40; // extension headers: ports not read (the flow still hashes by addresses)
  }
  if ((proto === 6 || proto === 17) && l4 >= 0 && l4 + 4 <= off + len)
    h ^= buf.readUInt16BE(l4) ^ buf.readUInt16BE(l4 + 2);
  h ^= proto;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class SpreadTun implements TunDevice {
  private readonly offs: Uint32Array[];
  private readonly lens: Uint32Array[];
  private readonly n: Uint32Array;

  /** queues[i] writes to queue i; the first is this thread's own (name, reading: elsewhere) */
  constructor(private readonly queues: TunDevice[]) {
    this.offs = queues.map(() => new Uint32Array(MAX));
    this.lens = queues.map(() => new Uint32Array(MAX));
    this.n = new Uint32Array(queues.length);
  }

  get name(): string {
    return this.queues[0]!.name;
  }

  start(): void {
    throw new Error("SpreadTun only writes; its queues are read by their own threads");
  }

  writeMany(buf: Buffer, offs: Uint32Array, lens: Uint32Array, count: number): number {
    const q = this.queues.length;
    let written = 0;
    for (let start = 0; start < count; start += MAX) {
      const end = Math.min(count, start + MAX);
      this.n.fill(0);
      for (let i = start; i < end; i++) {
        const k = symmetricFlowHash(buf, offs[i]!, lens[i]!) % q;
        const j = this.n[k]!++;
        this.offs[k]![j] = offs[i]!;
        this.lens[k]![j] = lens[i]!;
      }
      for (let k = 0; k < q; k++)
        if (this.n[k]! > 0)
          written += this.queues[k]!.writeMany(buf, this.offs[k]!, this.lens[k]!, this.n[k]!);
    }
    return written;
  }

  write(buf: Buffer, off: number, len: number): boolean {
    const k = symmetricFlowHash(buf, off, len) % this.queues.length;
    return this.queues[k]!.write(buf, off, len);
  }

  /** the writes of this thread (the reads are in the reading device's own stats) */
  stats(): TunStats {
    const s = newStats();
    for (const t of this.queues) {
      const x = t.stats();
      for (const k of Object.keys(s) as (keyof TunStats)[]) s[k] += x[k];
    }
    return s;
  }

  close(): void {
    // the queues are closed by their owners
  }
}
