/**
 * Tunnel creation, responder side: a CREATE or CREATE_SOLVED is checked in order of
 * cost (size, per-source rate, key id, load and puzzle, replay record, one X25519, HELLO),
 * then the tunnel is allocated within the host's share, its 0-RTT data delivered at most
 * once, and REPLY sent. A CREATE under a dead key gets a sealed STALE answer.
 */
import { dh, equal, randomBytes, zero } from "../crypto/sodium.js";
import { fingerprint } from "../wire/cert.js";
import { ADDR_BYTES, addrToString } from "../wire/addr.js";
import { FrameType, decodeHello } from "../wire/frames.js";
import {
  CREATE_AD_BYTES,
  CREATE_OFFSET_KEY_ID,
  CREATE_OFFSET_PUB,
  PacketType,
  STALE_AD_BYTES,
  encodePuzzle,
  SOLVED_AD_BYTES,
  SOLVED_OFFSET_COOKIE,
  SOLVED_OFFSET_DIFFICULTY,
  SOLVED_OFFSET_SOLUTION,
  SOLVED_OFFSET_WINDOW,
  encodeStale,
  readCounter,
  tidKey,
  writeTypeCounter,
} from "../wire/packet.js";
import { AEAD_TAG_BYTES } from "./constants.js";
import { COOKIE_BYTES, PuzzleIssuer, SOLUTION_BYTES } from "../dos/puzzle.js";
import { retryDelivered } from "./retry.js";
import {
  createTranscript,
  deriveCreate,
  deriveEstablished,
  helloAuth,
  sessionIdOf,
  staleKey,
} from "./keys.js";
import { ReplayWindow } from "./replay.js";
import { Epoch, Peer, Tunnel } from "./tunnel.js";
import { connBinding } from "../conn/auth.js";
import { DEFAULT_MAX_PER_HOST } from "./options.js";
import { Records } from "./records.js";

export abstract class Accept extends Records {
  /**
   * A CREATE (or CREATE_SOLVED, `solved`) for a TID we may not know. Checks in
   * order of cost: size, per-source rate, ephemeral key id, load (puzzle
   * instead of work), puzzle solution, replay record, then the first X25519.
   */
  onCreate(
    buf: Buffer,
    off: number,
    len: number,
    src: Buffer,
    srcOff: number,
    now: number,
    solved = false,
  ): void {
    const adLen = solved ? SOLVED_AD_BYTES : CREATE_AD_BYTES;
    const tid = tidKey(buf, off);
    const existing = this.tids.get(tid);
    if (existing) {
      this.onCreateExisting(existing, buf, off, len, now, src, srcOff, adLen);
      return;
    }
    if (len < adLen + AEAD_TAG_BYTES || len < this.opts.minFirstPacket) {
      this.drops.createShort++;
      return;
    }
    if (!this.buckets.take(src, srcOff, now)) {
      this.drops.rateLimited++;
      return;
    }
    const keyId = buf.readUInt32BE(off + CREATE_OFFSET_KEY_ID);
    const k = this.eph.get(keyId, now);
    if (!k) {
      // one counter per datagram: answered with the fresh key, or not (answer would be larger)
      if (this.sendStale(buf, off, len, src, srcOff, now)) this.drops.staleKey++;
      else this.drops.noAmplify++;
      return;
    }
    this.load.offer(now);
    const tidBuf = buf.subarray(off, off + 8);
    const tIView = buf.subarray(off + CREATE_OFFSET_PUB, off + CREATE_OFFSET_PUB + 32);
    if (solved) {
      const r = this.puzzles.check(
        src,
        srcOff,
        tidBuf,
        tIView,
        buf.readUInt32BE(off + SOLVED_OFFSET_WINDOW),
        buf[off + SOLVED_OFFSET_DIFFICULTY]!,
        buf.subarray(off + SOLVED_OFFSET_COOKIE, off + SOLVED_OFFSET_COOKIE + COOKIE_BYTES),
        buf.subarray(off + SOLVED_OFFSET_SOLUTION, off + SOLVED_OFFSET_SOLUTION + SOLUTION_BYTES),
        now,
      );
      if (r !== "ok") {
        this.drops.puzzleBad++;
        return;
      }
      this.events.puzzlesAccepted++;
    } else if (this.load.puzzling) {
      // stateless: a cookie over (source, TID, window, difficulty); 41 bytes, smaller than any CREATE
      const w = PuzzleIssuer.window(now);
      const d = this.load.difficulty;
      const cookie = this.puzzles.cookie(src, srcOff, tidBuf, w, d, now)!;
      const p = encodePuzzle(tid, keyId, w, d, cookie);
      this.drops.puzzled++;
      this.events.puzzlesSent++;
      this.out.sendUdp(p, 0, p.length, src, srcOff);
      return;
    }
    // a copy: the slab is the device's again after this batch (a PUZZLE answer needs none)
    const tI = Buffer.from(tIView);
    // the replay record's key for T_I, and below the creator host's: made once per creation
    const tIKey = tI.latin1Slice(0, 32);
    if (this.eph.isReplay(k, tIKey)) {
      this.drops.createReplay++;
      return;
    }
    if (this.tunnelCount >= this.opts.maxTunnels) {
      this.drops.tableFull++;
      return;
    }
    const es = dh(k.secretKey, tI);
    if (!es) {
      this.drops.auth++;
      return;
    }
    const h0 = createTranscript(tidBuf, keyId, tI, k.publicKey, this.hostPk);
    const { ck1, k0 } = deriveCreate(h0, es);
    zero(es);
    const plainLen = len - adLen - AEAD_TAG_BYTES;
    const ptOff = off + adLen;
    if (!this.openInPlace(buf, off, len, adLen, k0)) {
      zero(ck1);
      zero(k0);
      this.drops.auth++;
      return;
    }
    // first frame must be HELLO
    const it = this.frames.reset(buf, ptOff, plainLen);
    if (!it.next() || it.type !== FrameType.Hello) {
      zero(ck1);
      zero(k0);
      this.drops.createHello++;
      return;
    }
    const hello = decodeHello(buf, it.bodyOff, it.bodyLen);
    const v = hello ? this.certs.verifyHost(hello.cert, Math.floor(now / 1000)) : null;
    if (!hello || !v || !v.ok || equal(v.cert.publicKey, this.hostPk)) {
      zero(ck1);
      zero(k0);
      if (v && !v.ok && v.reason === "revoked") {
        this.drops.revoked++;
        this.events.tunnelsRevoked++;
      } else this.drops.createHello++;
      this.rlog.log(now, "warn", "create-hello", "creation refused: certificate", () => ({
        from: addrToString(src, srcOff),
        reason: !v ? "malformed" : !v.ok ? v.reason : "our own key",
      }));
      return;
    }
    const cert = v.cert;
    const hostKey = cert.publicKey.latin1Slice(0, cert.publicKey.length);
    const ss = this.eph.ssFor(k, cert.publicKey, hostKey);
    if (!ss) {
      zero(ck1);
      zero(k0);
      this.drops.createHello++;
      return;
    }
    const expect = helloAuth(ck1, ss, tI);
    if (!equal(expect, hello.auth)) {
      zero(ck1);
      zero(k0);
      this.drops.createHello++;
      return;
    }
    const seen = this.eph.remember(k, tIKey, hostKey);
    if (seen !== "ok") {
      zero(ck1);
      zero(k0);
      if (seen === "hostFull") this.drops.replayShareFull++;
      else this.drops.createReplay++;
      return;
    }
    // verified: allocate state, within this host's share of the table
    const peer = this.peerForCert(cert, src, srcOff, now);
    if (!this.takeHostShare(peer, now)) {
      zero(ck1);
      zero(k0);
      this.drops.hostShareFull++;
      return;
    }
    const t = new Tunnel("responder", tid, peer, src.subarray(srcOff, srcOff + ADDR_BYTES), now);
    const tR = this.replyKey(now);
    const ee = dh(tR.secretKey, tI);
    if (!ee) {
      zero(ck1);
      zero(k0);
      this.drops.auth++;
      return;
    }
    const keys = deriveEstablished(ck1, ss, ee);
    zero(ee);
    t.connBind = connBinding(ck1);
    zero(ck1);
    t.sessionId = sessionIdOf(keys.ck);
    t.cur = new Epoch(buf.subarray(off, off + 8), keys.r2i, keys.i2r, keys.ck, now, 0);
    this.prepareMove(t, now);
    t.accept = { k0, replay: new ReplayWindow(), tR: tR.publicKey };
    t.accept.replay.accept(readCounter(buf, off));
    t.lastRekeyAt = now;
    t.lastRx = now;
    t.rxPackets++;
    peer.lastSeen = now;
    this.addTunnel(t);
    this.events.tunnelsAccepted++;
    this.opts.onEvent?.("tunnel-accepted", { peer: peer.name, from: addrToString(src, srcOff) });
    if (this.log.enabled("info"))
      this.log.log("info", "tunnel accepted", {
        peer: peer.name,
        key: fingerprint(cert.publicKey),
        from: addrToString(src, srcOff),
      });
    // deliver the 0-RTT inner packets that follow HELLO, unless a retry of delivered ones
    this.deliverFrames(t, it, now, retryDelivered(this.tids, peer, buf, ptOff, plainLen));
    // answer at once so the creator moves to the new key
    this.sendEmpty(t, now);
  }

  protected onCreateExisting(
    t: Tunnel,
    buf: Buffer,
    off: number,
    len: number,
    now: number,
    src: Buffer,
    srcOff: number,
    adLen: number,
  ): void {
    const a = t.accept;
    if (!a || len < adLen + AEAD_TAG_BYTES) {
      this.drops.unknownTid++;
      return;
    }
    const n = readCounter(buf, off);
    if (!a.replay.check(n)) {
      this.drops.replay++;
      return;
    }
    const ptOff = off + adLen;
    const plainLen = len - adLen - AEAD_TAG_BYTES;
    if (!this.openInPlace(buf, off, len, adLen, a.k0)) {
      this.drops.auth++;
      return;
    }
    a.replay.accept(n);
    this.onAuthenticated(t, src, srcOff, len, now);
    const dup = retryDelivered(this.tids, t.peer, buf, ptOff, plainLen);
    this.deliverFrames(t, this.frames.reset(buf, ptOff, plainLen), now, dup);
    // the creator has not seen our REPLY yet
    if (t.state === "replying") this.sendEmpty(t, now);
  }

  /**
   * Answer a CREATE (at buf[off, off+len)) under a dead key with the current
   * signed key, sealed to the CREATE's T_I (the certificate names our host key:
   * not in the clear), if that is no larger than the CREATE. One X25519, after
   * the per-source rate limit.
   */
  protected sendStale(
    buf: Buffer,
    off: number,
    len: number,
    src: Buffer,
    srcOff: number,
    now: number,
  ): boolean {
    const k = this.eph.current;
    if (!k || STALE_AD_BYTES + 2 + k.cert.raw.length + AEAD_TAG_BYTES > len) return false;
    const r = this.replyKey(now);
    const tI = buf.subarray(off + CREATE_OFFSET_PUB, off + CREATE_OFFSET_PUB + 32);
    const shared = dh(r.secretKey, tI);
    if (!shared) return false;
    const b = encodeStale(
      tidKey(buf, off),
      buf.readUInt32BE(off + CREATE_OFFSET_KEY_ID),
      r.publicKey,
      k.cert.raw,
      0,
    );
    // random counter, hence nonce: a replayed CREATE within the reply key's second meets the same key
    writeTypeCounter(b, 0, PacketType.Stale, randomBytes(6).readUIntBE(0, 6));
    const key = staleKey(shared, buf.subarray(off, off + 8), tI, r.publicKey);
    zero(shared);
    this.sealInPlace(b, STALE_AD_BYTES, key);
    this.events.staleAnswersSent++;
    this.out.sendUdp(b, 0, b.length, src, srcOff);
    return true;
  }

  /**
   * Room for one more tunnel of `peer` (its share of the table): below
   * maxPerHost, or after closing its oldest tunnel that was never confirmed.
   */
  protected takeHostShare(peer: Peer, now: number): boolean {
    let live = 0;
    let oldest: Tunnel | null = null;
    for (const x of peer.tunnels) {
      if (x.state === "closed") continue;
      live++;
      if (x.state === "replying" && (!oldest || x.createdAt < oldest.createdAt)) oldest = x;
    }
    if (live < (this.opts.maxPerHost ?? DEFAULT_MAX_PER_HOST)) return true;
    if (!oldest) return false;
    this.closeTunnel(oldest, now, "replaced");
    this.events.unconfirmedReplaced++;
    return true;
  }
}
