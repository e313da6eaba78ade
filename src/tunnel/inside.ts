/**
 * Send data path: TUN -> UDP. One batch of inner packets read from the TUN is
 * sealed in place (the header is written into the slot's headroom, the tag
 * into its tailroom) and handed to the output as UDP sends; the output groups
 * consecutive sends to one endpoint into one sendmmsg.
 *
 * Per packet: version check, route lookup (destination -> peer), source check
 * (must be one of our addresses or subnets), connection lookup (flow hash),
 * then seal as CONN_DATA. Fragments, TCP SYNs and UDP packets whose connection is
 * due for an owner recheck (conns.ts recheckDue) take the slow path. A packet without an answered connection (a flow's
 * first packets carry CONN_OPEN) takes the slow path. Packets with no usable
 * tunnel go to the slow path (record fetch / 0-RTT creation), which copies.
 * Nothing here allocates on the established-tunnel path except the
 * subarray views sodium-native needs. A tunnel on a relayed path carries inner packets
 * up to RELAYED_MAX_INNER_BYTES; a larger one is dropped and answered locally with ICMP
 * "too big" (Connections.relayTooBig).
 */
import type { PacketBatch } from "./io.js";
import {
  CONN_OPEN,
  CONN_OPEN_REPEAT,
  FRAG_NONE,
  noteTcpClose,
  parseFlow,
  recheckDue,
  type Conn,
} from "../conn/conns.js";
import { CONN_DATA_HEADER_BYTES } from "./options.js";
import { RELAYED_MAX_INNER_BYTES } from "./constants.js";
import { RELAY_FAMILY } from "../wire/addr.js";
import type { EngineCore as Engine } from "./timers.js";

export function onTunBatch(engine: Engine, b: PacketBatch, now: number): void {
  const buf = b.buf;
  const lens = b.lens;
  const drops = engine.drops;
  const routes = engine.routes;
  const ours = engine.ours;
  const f = engine.flow;
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
      else if (!engine.dirHooks.miss?.(buf, off, len, now)) drops.noRoute++; // directory lookup (copies)
      continue;
    }
    // the packet's connection, if it has one that needs no OPEN any more
    const t = peer.sendTunnel();
    if (len > RELAYED_MAX_INNER_BYTES && t !== null && t.endpoint[0] === RELAY_FAMILY) {
      engine.relayTooBig(buf, off, len);
      continue;
    }
    const ct = peer.conns;
    let looked: Conn | null | undefined; // parsed and looked up here: not again on the slow path
    if (
      t !== null &&
      ct !== null &&
      t.canSend &&
      b.headroom >= 48 + CONN_DATA_HEADER_BYTES &&
      parseFlow(buf, off, len, f) &&
      f.frag === FRAG_NONE // fragments are tied to their first fragment's connection on the slow path
    ) {
      const c = ct.lookupOut(buf, f);
      if (
        c !== null &&
        c.state === CONN_OPEN &&
        (c.acked || !c.mine || c.txPackets >= CONN_OPEN_REPEAT) &&
        !recheckDue(c, buf, off, len, f, now) // a new socket on the tuple is identified on the slow path
      ) {
        if (c.proto === 6) noteTcpClose(c, buf, off, len, f, true); // FIN/RST: status shows it closed
        engine.sealConn(t, c, buf, off, len, now);
        continue;
      }
      looked = c;
    }
    engine.sendSlow(peer, buf, off, len, now, looked);
  }
}
