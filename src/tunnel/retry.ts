/**
 * At-most-once delivery of 0-RTT data across creation retries
 * (docs/PROTOCOL.md "Retries").
 *
 * The creator resends the inner packets it sent 0-RTT when a PUZZLE or a STALE
 * answers its CREATE. Both answers are unauthenticated, so the responder may
 * well have accepted the first CREATE already. Each resent inner packet
 * therefore travels with a RETRY frame, in the same datagram just before its
 * CONN_DATA, naming every earlier CREATE datagram that carried it:
 *
 *   RETRY (frame 7): n × ( TID (8) | counter (8, BE) ),  1 ≤ n ≤ MAX_RETRY_ENTRIES
 *
 * The RETRY is inside the sealed part (k0 of the new attempt), so only the
 * creator can write it. The responder, after the HELLO verified, looks each
 * (TID, counter) up: when the TID is a creation it accepted from the same
 * host and that creation's k0 window has seen the counter (or the creation is
 * already confirmed and its window gone), the data was delivered: the
 * datagram's CONN_DATA frames are dropped (`retryDuplicate`), its other frames
 * (HELLO, CONN_OPEN) are processed as usual. When the earlier datagram never
 * arrived (lost, or answered with a PUZZLE), the data is delivered now.
 */
import { FrameIterator, FrameType } from "../wire/frames.js";
import type { Peer, Tunnel } from "./tunnel.js";

export const RETRY_ENTRY_BYTES = 16;
/**
 * Sends of one inner packet: the first CREATE, one puzzle retry, one stale
 * retry and a puzzle retry of that; the last names the three before it.
 */
export const MAX_RETRY_ENTRIES = 3;

export const NO_SENDS: Buffer = Buffer.alloc(0);

/** `sent` with one more (TID, counter) appended, keeping the newest MAX_RETRY_ENTRIES. */
export function appendSend(sent: Buffer, tid: string, counter: number): Buffer {
  const keep = Math.min(sent.length, (MAX_RETRY_ENTRIES - 1) * RETRY_ENTRY_BYTES);
  const b = Buffer.alloc(keep + RETRY_ENTRY_BYTES);
  sent.copy(b, 0, sent.length - keep);
  b.latin1Write(tid, keep, 8);
  b.writeBigUInt64BE(BigInt(counter), keep + 8);
  return b;
}

const scan = new FrameIterator();

/**
 * Whether a verified creation datagram (plaintext frames at [off, off+len)) is
 * a retry of data this host already delivered: its RETRY frame names a
 * creation from `peer` whose k0 window saw that counter.
 */
export function retryDelivered(
  tids: Map<string, Tunnel>,
  peer: Peer,
  buf: Buffer,
  off: number,
  len: number,
): boolean {
  const it = scan.reset(buf, off, len);
  while (it.next()) {
    if (it.type !== FrameType.Retry) continue;
    if (it.bodyLen === 0 || it.bodyLen % RETRY_ENTRY_BYTES !== 0) return false;
    for (let o = it.bodyOff; o < it.bodyOff + it.bodyLen; o += RETRY_ENTRY_BYTES) {
      const t = tids.get(buf.latin1Slice(o, o + 8));
      if (!t || t.role !== "responder" || t.peer !== peer || t.state === "closed") continue;
      const hi = buf.readUInt32BE(o + 8);
      const n = hi >= 0x200000 ? -1 : hi * 2 ** 32 + buf.readUInt32BE(o + 12);
      // no window left: the creator confirmed that creation, so it had its REPLY: delivered
      if (!t.accept || !t.accept.replay.check(n)) return true;
    }
    return false;
  }
  return false;
}
