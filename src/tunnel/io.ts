/**
 * Batches crossing the OS boundary (see src/net/tun.ts, src/net/udp.ts).
 *
 * Ownership rule: a batch's slab belongs to the device that filled it and is
 * valid only during the callback it was passed to. The receiver may modify
 * bytes in place (the engine seals and opens there) and must copy anything it
 * keeps. Packet i occupies buf[i*slotSize + headroom, +lens[i]).
 */
export interface PacketBatch {
  buf: Buffer;
  slotSize: number;
  headroom: number;
  lens: Uint32Array;
  count: number;
}

export interface UdpBatch extends PacketBatch {
  /** 20-byte address record per packet at i*20 (src/wire/addr.ts) */
  addrs: Buffer;
}
