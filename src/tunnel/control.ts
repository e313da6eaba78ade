/**
 * Control: the dispatch of control packets (everything but DATA) and of control frames
 * inside verified packets, and the rekey exchange (REKEY / REKEY_ACK).
 */
import { dh, dhKeyPair, randomBytes, zero } from "../crypto/sodium.js";
import { FrameType, decodeRekey, encodeRekey } from "../wire/frames.js";
import { PacketType, tidKey } from "../wire/packet.js";
import { PUNCH_TYPE, encodePunchInto, isPunch, PUNCH_BYTES } from "../wire/nat.js";
import { deriveRekey } from "./keys.js";
import { Epoch, Tunnel } from "./tunnel.js";
import { PROBE_BODY } from "./options.js";
import { Create } from "./create.js";

export abstract class Control extends Create {
  /** Everything but DATA: creation, replies, stale-key answers, records. */
  onControlPacket(
    type: number,
    buf: Buffer,
    off: number,
    len: number,
    src: Buffer,
    srcOff: number,
    now: number,
  ): void {
    switch (type) {
      case PacketType.Create:
        this.onCreate(buf, off, len, src, srcOff, now);
        return;
      case PacketType.CreateSolved:
        this.onCreate(buf, off, len, src, srcOff, now, true);
        return;
      case PacketType.Puzzle:
        this.onPuzzle(buf, off, len, src, srcOff, now);
        return;
      case PacketType.Reply: {
        const t = this.tids.get(tidKey(buf, off));
        if (t) this.onReply(t, buf, off, len, src, srcOff, now);
        else this.drops.unknownTid++;
        return;
      }
      case PacketType.Stale:
        this.onStale(buf, off, len, src, srcOff, now);
        return;
      case PacketType.RecordRequest:
        this.onRecordRequest(buf, off, len, src, srcOff, now);
        return;
      case PacketType.RecordResponse:
        this.onRecordResponse(buf, off, len, now);
        return;
      case PUNCH_TYPE:
        // a peer opening its NAT towards us (rendezvous): carries nothing, answered with nothing
        if (isPunch(buf, off, len)) this.events.punchesReceived++;
        else this.drops.malformed++;
        return;
      default:
        this.drops.malformed++;
    }
  }

  /**
   * NAT traversal (issue 17): one PUNCH (16 bytes, nothing in it) to `endpoint`, so that our
   * NAT lets the peer's packets from there in. The caller bounds how many (src/directory/nat.ts).
   * `ttl` > 0: the punch dies that many routers away (past our NAT, before the peer's),
   * where the output can set it (Output.sendUdpTtl); counted in punchesLowTtl too.
   */
  sendPunch(endpoint: Buffer, ttl = 0): void {
    const b = Buffer.allocUnsafe(PUNCH_BYTES);
    encodePunchInto(b, 0, randomBytes(8));
    this.events.punchesSent++;
    if (ttl > 0 && this.out.sendUdpTtl) {
      this.events.punchesLowTtl++;
      this.out.sendUdpTtl(b, 0, PUNCH_BYTES, endpoint, 0, ttl);
    } else this.out.sendUdp(b, 0, PUNCH_BYTES, endpoint, 0);
  }

  protected onControlFrame(
    t: Tunnel,
    type: number,
    buf: Buffer,
    off: number,
    len: number,
    now: number,
  ): void {
    switch (type) {
      case FrameType.Keepalive:
        // a probe (probeEndpoint) asks for an answer: at most one per tick
        if (len === 1 && buf[off] === PROBE_BODY[0] && t.probeAnsweredTick !== this.lastTick) {
          t.probeAnsweredTick = this.lastTick;
          this.sendControl(t, FrameType.Keepalive, null, now);
        }
        return;
      case FrameType.Hello: // repeated HELLO in later CREATEs: already authenticated
      case FrameType.Retry: // read before delivery (retryDelivered)
        return;
      case FrameType.Probe:
        // the peer heard nothing from us for a while: show we hold the tunnel (one answer per
        // authenticated, non-replayed PROBE; never a PROBE in answer, so no loop)
        this.events.probesAnswered++;
        this.sendControl(t, FrameType.Keepalive, null, now);
        return;
      case FrameType.ConnOpen:
        this.onConnOpen(t, buf, off, len, now);
        return;
      case FrameType.Cert:
        this.onPeerCert(t, buf, off, len, now);
        return;
      case FrameType.ConnDeny:
        this.onConnDeny(t, buf, off, len, now);
        return;
      case FrameType.ConnReset:
        this.onConnReset(t, buf, off, len);
        return;
      case FrameType.Ip: // an inner packet outside any connection
        this.drops.noConn++;
        return;
      case FrameType.Rekey: {
        const r = decodeRekey(buf, off, len);
        if (r) this.onRekey(t, r.seq, r.pub, now);
        else this.drops.badFrames++;
        return;
      }
      case FrameType.RekeyAck: {
        const r = decodeRekey(buf, off, len);
        if (r) this.onRekeyAck(t, r.seq, r.pub, now);
        else this.drops.badFrames++;
        return;
      }
      case FrameType.Close:
        this.log.log("info", "peer closed tunnel", { peer: t.peer.name });
        this.closeTunnel(t, now, "peer-close");
        return;
      case FrameType.DirRequest:
      case FrameType.DirResponse:
      case FrameType.DirNotice:
        if (!this.dirHooks.frame?.(t, type, buf, off, len, now)) this.drops.badFrames++;
        return;
      default:
        this.drops.badFrames++;
    }
  }

  /**
   * Rekey, started by either end when its own limit is reached (the initiator at
   * tunnel.rekeySec or REKEY_AFTER_PACKETS, the responder RESPONDER_REKEY_DELAY_MS later):
   *
   *   starter   --REKEY(seq, A')-->    answerer: B' fresh, next epoch from DH(b', A'),
   *             <--REKEY_ACK(seq, B')--          receivable in `next` until used
   *   starter: derives the same epoch, switches sending at once (KEEPALIVE announces it)
   *   answerer: switches when the first packet under the new TID arrives
   *
   * Crossing REKEYs (both limits at once): the initiator's wins — the responder abandons
   * its own and answers; the initiator ignores the responder's (it will answer ours).
   * Epoch keys are by role (i2r / r2i), whoever started.
   */
  startRekey(t: Tunnel, now: number): void {
    if (t.rekey || t.state !== "established") return;
    const kp = dhKeyPair();
    t.rekey = { seq: ++t.rekeySeq, kp, sentAt: now, firstSentAt: now };
    if (t.role === "responder") this.events.responderRekeys++;
    this.sendControl(t, FrameType.Rekey, encodeRekey(t.rekey.seq, kp.publicKey), now);
  }

  protected onRekey(t: Tunnel, seq: number, pub: Buffer, now: number): void {
    if (t.rekey) {
      if (t.role === "initiator") return; // ours wins; the peer answers it
      zero(t.rekey.kp.secretKey); // theirs wins
      t.rekey = null;
    }
    if (t.lastRekeyAck && t.lastRekeyAck.seq === seq) {
      this.sendControl(t, FrameType.RekeyAck, t.lastRekeyAck.body, now);
      return;
    }
    if (t.lastRekeyAck && seq < t.lastRekeyAck.seq) return;
    const base = t.cur!;
    const kp = dhKeyPair();
    const d = dh(kp.secretKey, pub);
    zero(kp.secretKey);
    if (!d) {
      this.drops.badFrames++;
      return;
    }
    const nk = deriveRekey(base.ck, d);
    zero(d);
    if (t.next) this.retireEpoch(t, t.next);
    t.next =
      t.role === "initiator"
        ? new Epoch(nk.tid, nk.i2r, nk.r2i, nk.ck, now, base.number + 1, t.suite)
        : new Epoch(nk.tid, nk.r2i, nk.i2r, nk.ck, now, base.number + 1, t.suite);
    this.tids.set(t.next.tid, t);
    const body = encodeRekey(seq, kp.publicKey);
    t.lastRekeyAck = { seq, body };
    this.sendControl(t, FrameType.RekeyAck, body, now);
  }

  protected onRekeyAck(t: Tunnel, seq: number, pub: Buffer, now: number): void {
    const r = t.rekey;
    if (!r || r.seq !== seq) return; // duplicate or stale ack
    const d = dh(r.kp.secretKey, pub);
    zero(r.kp.secretKey);
    t.rekey = null;
    if (r.sentAt === r.firstSentAt) t.rttMs = now - r.sentAt; // not retransmitted: one round trip
    if (!d) {
      this.drops.badFrames++;
      return;
    }
    const base = t.cur!;
    const nk = deriveRekey(base.ck, d);
    zero(d);
    const e =
      t.role === "initiator"
        ? new Epoch(nk.tid, nk.i2r, nk.r2i, nk.ck, now, base.number + 1, t.suite)
        : new Epoch(nk.tid, nk.r2i, nk.i2r, nk.ck, now, base.number + 1, t.suite);
    this.tids.set(e.tid, t);
    this.switchEpoch(t, e, now);
    // announce the new epoch at once so the peer switches too
    this.sendControl(t, FrameType.Keepalive, null, now);
  }
}
