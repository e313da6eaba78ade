/**
 * Receive data path: UDP -> TUN. Each datagram of a batch is classified by its
 * type byte; DATA packets (the common case) are checked against the replay
 * window, opened in place and their inner packets written to the TUN straight
 * from the UDP slab. Everything else goes to the engine's control path.
 *
 * Order of checks (cheap first): size, type, TID lookup, replay window, AEAD.
 * Only after the AEAD verified and the counter was accepted does anything
 * change (endpoint, timers, epoch switch).
 */
import type { UdpBatch } from "./io.js";
import { DATA_AD_BYTES, PacketType, tidKey } from "../wire/packet.js";
import { AEAD_TAG_BYTES, HEADER_BYTES, rejectAfterMs } from "./constants.js";
import type { EngineCore as Engine } from "./timers.js";
import { openData } from "./replay.js";
import { startupMark } from "../startup.js";

const ADDR_REC = 20;

export function onUdpBatch(engine: Engine, b: UdpBatch, now: number): void {
  const buf = b.buf;
  const addrs = b.addrs;
  for (let i = 0; i < b.count; i++) {
    // 0: taken before the engine (a datagram the relay forwarded: src/directory/relaypath.ts)
    if (b.lens[i] === 0) continue;
    onDatagram(engine, buf, i * b.slotSize + b.headroom, b.lens[i]!, addrs, i * ADDR_REC, now);
  }
}

export function onDatagram(
  engine: Engine,
  buf: Buffer,
  off: number,
  len: number,
  src: Buffer,
  srcOff: number,
  now: number,
): void {
  if (len < HEADER_BYTES) {
    engine.drops.malformed++;
    return;
  }
  const type = buf[off + 8]!;
  if (type === PacketType.Data) {
    onData(engine, buf, off, len, src, srcOff, now);
    return;
  }
  engine.onControlPacket(type, buf, off, len, src, srcOff, now);
}

function onData(
  engine: Engine,
  buf: Buffer,
  off: number,
  len: number,
  src: Buffer,
  srcOff: number,
  now: number,
): void {
  const drops = engine.drops;
  if (len < DATA_AD_BYTES + AEAD_TAG_BYTES) {
    drops.malformed++;
    return;
  }
  const hint = engine.rxTidHint;
  const tid = hint !== null && sameTid(buf, off, hint.tidBuf) ? hint.tid : tidKey(buf, off);
  const t = engine.tids.get(tid);
  if (t === undefined) {
    drops.unknownTid++;
    return;
  }
  const e =
    t.cur !== null && t.cur.tid === tid
      ? t.cur
      : t.movePending !== null && t.movePending.tid === tid
        ? engine.moveEpoch(t, now)
        : t.move !== null && t.move.tid === tid
          ? t.move
          : t.next !== null && t.next.tid === tid
            ? t.next
            : (t.crossMove !== null && t.crossMove.tid === tid) ||
                (t.crossEp !== null && t.crossEp.tid === tid)
              ? engine.crossEpoch(t, now)
              : t.prev;
  if (e === null || e.tid !== tid) {
    drops.noKey++;
    return;
  }
  if (e.rxElsewhere) {
    drops.otherThread++; // a data-path worker holds this epoch's replay window (shared.ts)
    return;
  }
  // both ends refuse an epoch past its hard limit (the tick closes its tunnel)
  if (now - e.startedAt >= rejectAfterMs(engine.opts.rekeyAfterMs)) {
    drops.keyExpired++;
    return;
  }
  if (!openData(e.replay, e.rx, buf, off, len, drops)) return;
  const ptOff = off + DATA_AD_BYTES;
  const plainLen = len - DATA_AD_BYTES - AEAD_TAG_BYTES;
  engine.rxTidHint = e;
  // state changes only from here on
  if (t.state === "replying" && e === t.cur) {
    // the creator uses the new key: creation is confirmed
    t.state = "established";
    startupMark("first-tunnel");
    t.establishedAt = now;
    t.rttMs = now - t.createdAt;
    t.eraseAccept();
    engine.onConfirmed(t, now);
  } else if (e === t.next || e === t.move) {
    // the peer rekeyed or moved: follow it
    engine.switchEpoch(t, e, now);
  } else if (e === t.crossEp) {
    // the peer moved while our rekey was in flight: follow the move (base.ts followCross)
    engine.followCross(t, e, now);
  }
  engine.onAuthenticated(t, src, srcOff, len, now, e === t.cur);
  engine.deliverFrames(t, engine.frames.reset(buf, ptOff, plainLen), now);
}

function sameTid(buf: Buffer, off: number, tb: Buffer): boolean {
  return (
    buf[off] === tb[0] &&
    buf[off + 1] === tb[1] &&
    buf[off + 2] === tb[2] &&
    buf[off + 3] === tb[3] &&
    buf[off + 4] === tb[4] &&
    buf[off + 5] === tb[5] &&
    buf[off + 6] === tb[6] &&
    buf[off + 7] === tb[7]
  );
}
