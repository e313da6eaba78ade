/**
 * Send data path: TUN -> UDP. One batch of inner packets read from the TUN is
 * sealed in place (the header is written into the slot's headroom, the tag
 * into its tailroom) and handed to the output as UDP sends; the output groups
 * consecutive sends to one endpoint into one sendmmsg.
 *
 * Per packet: version check, route lookup (destination -> peer), source check
 * (must be one of our addresses or subnets), then seal. Packets with no usable
 * tunnel go to the slow path (record fetch / 0-RTT creation), which copies.
 * Nothing here allocates on the established-tunnel path except the
 * subarray views sodium-native needs.
 */
import type { PacketBatch } from "../net/types.js";
import { FRAME_HEADER_BYTES } from "./constants.js";
import type { Engine } from "./engine.js";

export function onTunBatch(engine: Engine, b: PacketBatch, now: number): void {
  const buf = b.buf;
  const lens = b.lens;
  const drops = engine.drops;
  const routes = engine.routes;
  const ours = engine.ours;
  for (let i = 0; i < b.count; i++) {
    const off = i * b.slotSize + b.headroom;
    const len = lens[i]!;
    const v = len >= 20 ? buf[off]! >> 4 : 0;
    let peer;
    if (v === 4 && buf.readUInt16BE(off + 2) === len) {
      peer = routes.lookup4(buf.readUInt32BE(off + 16));
      if (peer !== undefined && ours.lookup4(buf.readUInt32BE(off + 12)) === undefined) {
        drops.tunSrc++;
        continue;
      }
    } else if (v === 6 && len >= 40 && buf.readUInt16BE(off + 4) + 40 === len) {
      peer = routes.lookup6(buf, off + 24);
      if (peer !== undefined && ours.lookup6(buf, off + 8) === undefined) {
        drops.tunSrc++;
        continue;
      }
    } else {
      drops.tunMalformed++;
      continue;
    }
    if (peer === undefined) {
      // 224.0.0.0/4 and ff00::/8: kernel chatter, not an unroutable unicast
      if ((v === 4 && buf[off + 16]! >= 224) || (v === 6 && buf[off + 24] === 0xff)) drops.tunMulticast++;
      else if (engine.onMiss !== null)
        engine.onMiss(buf, off, len, now); // directory lookup (copies)
      else drops.noRoute++;
      continue;
    }
    const t = peer.sendTunnel();
    if (t !== null && t.canSend && b.headroom >= 48 + FRAME_HEADER_BYTES)
      engine.sealIp(t, buf, off, len, now);
    else engine.sendSlow(peer, buf, off, len, now);
  }
}
