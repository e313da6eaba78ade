/**
 * Tunnel creation, initiator side: the slow send path (no tunnel yet), CREATEs with
 * 0-RTT data, the unauthenticated answers taken only when plausible (STALE, PUZZLE), the
 * REPLY that establishes the tunnel, and what an established tunnel replaces (supersede,
 * simultaneous creations).
 */
import { aeadSeal, dh, dhKeyPair, randomBytes, zero } from "../crypto/sodium.js";
import { AeadSuite, openWith } from "../crypto/aead.js";
import { decodeEphemeral, verifyEphemeral } from "../wire/cert.js";
import { addrEqual } from "../wire/addr.js";
import { FrameType, encodeHello, writeFrame } from "../wire/frames.js";
import {
  CREATE_AD_BYTES,
  CREATE_OFFSET_KEY_ID,
  CREATE_OFFSET_PUB,
  MIN_CREATE_BYTES,
  PacketType,
  REPLY_AD_BYTES,
  REPLY_OFFSET_PUB,
  decodeStaleHeader,
  decodeStaleBody,
  STALE_AD_BYTES,
  decodePuzzle,
  SOLVED_AD_BYTES,
  SOLVED_OFFSET_COOKIE,
  SOLVED_OFFSET_DIFFICULTY,
  SOLVED_OFFSET_SOLUTION,
  SOLVED_OFFSET_WINDOW,
  readCounter,
  tidKeyOf,
  writeTypeCounter,
} from "../wire/packet.js";
import {
  AEAD_TAG_BYTES,
  CREATE_QUEUE_PACKETS,
  FRAME_HEADER_BYTES,
  MAX_UDP_PAYLOAD_BYTES,
  OLD_EPOCH_GRACE_MS,
  PROTOCOL_VERSION_AES_GCM,
} from "./constants.js";
import { MAX_DIFFICULTY, PUZZLE_WINDOW_MS } from "../dos/puzzle.js";
import { NO_SENDS, appendSend } from "./retry.js";
import {
  createTranscript,
  deriveCreate,
  deriveEstablished,
  helloAuth,
  sessionIdOf,
  staleKey,
} from "./keys.js";
import { Epoch, Peer, Tunnel, type QueuedPacket } from "./tunnel.js";
import { parseFlow, type Conn } from "../conn/conns.js";
import { connBinding } from "../conn/auth.js";
import { CONN_ID_BYTES } from "../wire/conn.js";
import { MAX_PENDING_PER_PEER } from "./options.js";
import { Accept } from "./accept.js";
import { startupMark } from "../startup.js";

export abstract class Create extends Accept {
  /** Start creating a tunnel without data (HELLO only), when the peer's record is known. */
  openTunnel(peer: Peer, now: number): Tunnel | null {
    const t = peer.sendTunnel();
    if (t) return t;
    if (!peer.eph || !peer.hostCert || !peer.endpoint || peer.eph.notAfter <= Math.floor(now / 1000)) {
      this.requestRecord(peer, now);
      return null;
    }
    const nt = this.startCreate(peer, now);
    if (nt) this.sendCreate(nt, null, now);
    return nt;
  }

  /**
   * Send path for packets that cannot be sealed in place: no tunnel yet, or
   * still creating, or a connection still to open. Copies what it keeps.
   * `looked`: see sendOnConn (the data path parsed the flow and looked it up).
   */
  sendSlow(peer: Peer, buf: Buffer, off: number, len: number, now: number, looked?: Conn | null): void {
    let t = peer.sendTunnel();
    if (t && t.canSend) {
      this.sendOnConn(t, buf, off, len, now, looked);
      return;
    }
    const nowSec = Math.floor(now / 1000);
    if (!t || t.state !== "creating") {
      if (!peer.eph || !peer.hostCert || peer.eph.notAfter <= nowSec || !peer.endpoint) {
        if (peer.pending.length >= MAX_PENDING_PER_PEER) this.drops.queueFull++;
        else peer.pending.push(Buffer.from(buf.subarray(off, off + len)));
        this.requestRecord(peer, now);
        return;
      }
      t = this.startCreate(peer, now);
      if (!t) return;
    }
    const c = t.create!;
    const q: QueuedPacket = { pkt: Buffer.from(buf.subarray(off, off + len)), sent: NO_SENDS };
    if (c.queue.length < CREATE_QUEUE_PACKETS) c.queue.push(q);
    this.sendCreate(t, q, now);
  }

  /**
   * NAT traversal (issue 17): the peer's creation got no REPLY yet; resend what it sent
   * 0-RTT (each packet naming its earlier sends in a RETRY frame, so nothing is delivered
   * twice), to `endpoint` when given (the relay, or another candidate) or where it went.
   * The tunnel's endpoint still moves only on an authenticated packet. False: no creation
   * in progress.
   */
  retryCreation(peer: Peer, endpoint: Buffer | null, now: number): boolean {
    const t = peer.sendTunnel();
    if (!t || t.state !== "creating" || !t.create || t.create.solving) return false;
    if (endpoint) {
      endpoint.copy(t.endpoint, 0, 0, t.endpoint.length);
      if (peer.endpoint) endpoint.copy(peer.endpoint, 0, 0, peer.endpoint.length);
    }
    this.events.creationRetries++;
    this.resendQueue(t, t.create.queue, now);
    this.out.flush();
    return true;
  }

  protected startCreate(peer: Peer, now: number): Tunnel | null {
    if (this.tunnelCount >= this.opts.maxTunnels) {
      this.drops.tableFull++;
      return null;
    }
    const eph = peer.eph!;
    const tid = randomBytes(8);
    const tI = dhKeyPair();
    const es = dh(tI.secretKey, eph.publicKey);
    const ss = dh(this.hostX, eph.publicKey);
    if (!es || !ss) {
      this.drops.badRecord++;
      return null;
    }
    const h0 = createTranscript(tid, eph.keyId, tI.publicKey, eph.publicKey, peer.hostCert!.publicKey);
    const { ck1, k0 } = deriveCreate(h0, es);
    zero(es);
    const auth = helloAuth(ck1, ss, tI.publicKey);
    // AES-256-GCM when we prefer it and the peer's signed ephemeral certificate offers it
    const suite =
      this.opts.aeadSuite === AeadSuite.Aes256Gcm && eph.protocolVersion >= PROTOCOL_VERSION_AES_GCM
        ? AeadSuite.Aes256Gcm
        : AeadSuite.ChaCha20Poly1305;
    const t = new Tunnel("initiator", tidKeyOf(tid), peer, peer.endpoint!, now);
    t.connBind = connBinding(ck1);
    t.create = {
      keyId: eph.keyId,
      tI,
      ck1,
      k0,
      ss,
      hello: encodeHello(this.opts.hostCert.raw, auth, suite),
      suite,
      counter: 0,
      minSize: Math.max(eph.minFirstPacket, MIN_CREATE_BYTES),
      queue: [],
      staleRetried: false,
      keyNotBefore: eph.notBefore,
      solving: null,
    };
    this.addTunnel(t);
    this.events.tunnelsCreated++;
    return t;
  }

  /**
   * Build and send the CREATEs for one inner packet: HELLO, the packet's CONN_OPEN
   * (always, in creation: the responder may have lost an earlier one) and its
   * CONN_DATA, packed into as few datagrams as fit, each padded to the peer's minimum.
   */
  protected sendCreate(t: Tunnel, q: QueuedPacket | null, now: number): void {
    const c = t.create!;
    const frames: [number, Buffer][] = [[FrameType.Hello, c.hello]];
    let data = false;
    const pkt = q ? q.pkt : null;
    if (pkt) {
      const f = this.flow;
      const conn = parseFlow(pkt, 0, pkt.length, f)
        ? this.connForOut(t.peer, pkt, 0, pkt.length, f, now)
        : null;
      if (conn) {
        frames.push([FrameType.ConnOpen, this.openBody(t, conn)]);
        // a resend names the CREATEs that carried this packet before (src/tunnel/retry.ts)
        if (q!.sent.length > 0) frames.push([FrameType.Retry, q!.sent]);
        const d = Buffer.allocUnsafe(CONN_ID_BYTES + pkt.length);
        d.writeUInt32BE(conn.wireId, 0);
        pkt.copy(d, CONN_ID_BYTES);
        frames.push([FrameType.ConnData, d]);
        conn.txPackets++;
        conn.lastUsed = now;
        data = true;
      }
    }
    let cur: [number, Buffer][] = [];
    let size = SOLVED_AD_BYTES + AEAD_TAG_BYTES;
    for (let i = 0; i < frames.length; i++) {
      const fr = frames[i]!;
      const l = FRAME_HEADER_BYTES + fr[1].length;
      // a RETRY travels in the datagram of the data it names
      const need = fr[0] === FrameType.Retry ? l + FRAME_HEADER_BYTES + frames[i + 1]![1].length : l;
      if (cur.length > 0 && size + need > MAX_UDP_PAYLOAD_BYTES) {
        this.sendCreatePacket(t, cur, 0, now);
        cur = [];
        size = SOLVED_AD_BYTES + AEAD_TAG_BYTES;
      }
      cur.push(fr);
      size += l;
    }
    const n = this.sendCreatePacket(t, cur, data ? pkt!.length : 0, now);
    if (data) q!.sent = appendSend(q!.sent, t.tid, n);
  }

  /** Seal and send one CREATE (or CREATE_SOLVED); returns its counter. */
  protected sendCreatePacket(t: Tunnel, frames: [number, Buffer][], ipBytes: number, now: number): number {
    const c = t.create!;
    let body = 0;
    for (const fr of frames) body += FRAME_HEADER_BYTES + fr[1].length;
    const z = c.puzzle;
    const adLen = z ? SOLVED_AD_BYTES : CREATE_AD_BYTES;
    const size = Math.max(adLen + body + AEAD_TAG_BYTES, c.minSize);
    const b = Buffer.alloc(size);
    b.latin1Write(t.tid, 0, 8);
    const n = c.counter++;
    writeTypeCounter(b, 0, z ? PacketType.CreateSolved : PacketType.Create, n);
    b.writeUInt32BE(c.keyId >>> 0, CREATE_OFFSET_KEY_ID);
    c.tI.publicKey.copy(b, CREATE_OFFSET_PUB);
    if (z) {
      b.writeUInt32BE(z.window >>> 0, SOLVED_OFFSET_WINDOW);
      b[SOLVED_OFFSET_DIFFICULTY] = z.difficulty;
      z.cookie.copy(b, SOLVED_OFFSET_COOKIE);
      z.solution.copy(b, SOLVED_OFFSET_SOLUTION);
    }
    let o = adLen;
    for (const fr of frames) o = writeFrame(b, o, fr[0], fr[1]);
    const plainLen = size - adLen - AEAD_TAG_BYTES;
    this.setNonceFrom(b, 0);
    aeadSeal(b.subarray(adLen), b.subarray(adLen, adLen + plainLen), b.subarray(0, adLen), this.nonce, c.k0);
    t.lastTx = now;
    t.txPackets++;
    if (ipBytes > 0) {
      t.txBytes += ipBytes;
      this.events.zeroRttPackets++;
    }
    this.events.createSent++;
    startupMark("create");
    this.out.sendUdp(b, 0, size, t.endpoint, 0);
    return n;
  }

  /**
   * A STALE names the TID and key id of a CREATE and carries a fresher signed
   * key. It is not authenticated (anyone who saw the CREATE can send one, with
   * either of the responder's public ephemeral certificates), so it is taken
   * only when plausible: for a creation still waiting for its first
   * authenticated answer, from the address that CREATE went to, naming the key
   * it used, carrying a different key of the same host that is no older, and
   * once per creation. The retry resends the 0-RTT packets with RETRY frames,
   * so a responder that did accept the first CREATE does not deliver them twice.
   */
  protected onStale(buf: Buffer, off: number, len: number, src: Buffer, srcOff: number, now: number): void {
    const m = decodeStaleHeader(buf, off, len);
    const t = m ? this.tids.get(m.tid) : undefined;
    const c = t?.create;
    if (!m || !t || t.state !== "creating" || !c || c.keyId !== m.keyId || !t.peer.hostCert) {
      this.drops.badRecord++;
      return;
    }
    if (!addrEqual(src, srcOff, t.endpoint, 0)) {
      this.drops.staleSource++;
      return;
    }
    // sealed to our T_I: open it (a forger who saw the CREATE can seal one too; this is privacy)
    const shared = dh(c.tI.secretKey, m.pub);
    const key = shared ? staleKey(shared, buf.subarray(off, off + 8), c.tI.publicKey, m.pub) : null;
    if (shared) zero(shared);
    const opened = key !== null && this.openInPlace(buf, off, len, STALE_AD_BYTES, key);
    if (key) zero(key);
    const raw = opened
      ? decodeStaleBody(buf, off + STALE_AD_BYTES, len - STALE_AD_BYTES - AEAD_TAG_BYTES)
      : null;
    if (!raw) {
      this.drops.badRecord++;
      return;
    }
    const eph = decodeEphemeral(raw);
    const v = eph ? verifyEphemeral(eph, t.peer.hostCert, Math.floor(now / 1000)) : null;
    if (!eph || !v?.ok || eph.keyId === m.keyId || eph.notBefore < c.keyNotBefore || c.staleRetried) {
      this.drops.badRecord++;
      return;
    }
    // a fresh signed key: retry once with it, resending what was sent 0-RTT
    const queue = c.queue.slice();
    const peer = t.peer;
    this.closeTunnel(t, now, "stale");
    peer.eph = eph;
    this.events.staleRetries++;
    const nt = this.startCreate(peer, now);
    if (!nt) return;
    nt.create!.staleRetried = true;
    this.resendQueue(nt, queue, now);
  }

  /** Resend a creation's 0-RTT packets on tunnel t (each names its earlier sends), or a bare HELLO. */
  protected resendQueue(t: Tunnel, queue: QueuedPacket[], now: number): void {
    const c = t.create!;
    if (queue.length === 0) this.sendCreate(t, null, now);
    for (const q of queue) {
      if (c.queue !== queue && c.queue.length < CREATE_QUEUE_PACKETS) c.queue.push(q);
      this.sendCreate(t, q, now);
    }
  }

  /**
   * The responder is loaded and wants work before it spends a Diffie-Hellman
   * on us. A PUZZLE is unauthenticated, so it is taken only for a TID we are
   * creating, with the key id we used, from the address the CREATE went to,
   * once per attempt, at most `maxSolveDifficulty` (`puzzleTooHard`), at most
   * `puzzleSolvesPerPeer` per peer and puzzle window and while the solver has
   * room (`puzzleBusy`). The work runs in the solver (a worker thread in the
   * daemon); meanwhile this creation and every other tunnel go on. With the
   * solution we resend what we sent 0-RTT as CREATE_SOLVED, with RETRY frames.
   */
  protected onPuzzle(buf: Buffer, off: number, len: number, src: Buffer, srcOff: number, now: number): void {
    const m = decodePuzzle(buf, off, len);
    const t = m ? this.tids.get(m.tid) : undefined;
    const c = t?.create;
    if (!m || !t || t.state !== "creating" || !c || c.keyId !== m.keyId || c.puzzle || c.solving) {
      this.drops.puzzleBad++;
      return;
    }
    if (!addrEqual(src, srcOff, t.endpoint, 0)) {
      this.drops.puzzleBad++;
      return;
    }
    if (m.difficulty > Math.min(this.dos.maxSolveDifficulty, MAX_DIFFICULTY)) {
      this.drops.puzzleTooHard++;
      this.rlog.log(now, "warn", "puzzle", "puzzle refused (too hard)", () => ({
        peer: t.peer.name,
        difficulty: m.difficulty,
      }));
      return;
    }
    const peer = t.peer;
    const w = Math.floor(now / PUZZLE_WINDOW_MS);
    if (peer.puzzleWindow !== w) {
      peer.puzzleWindow = w;
      peer.puzzleSolves = 0;
    }
    if (peer.puzzleSolves >= this.dos.puzzleSolvesPerPeer) {
      this.drops.puzzleBusy++;
      return;
    }
    let sync = true;
    let answered = false;
    const ticket = this.solver.submit(
      { cookie: m.cookie, tid: Buffer.from(t.tid, "latin1"), tI: c.tI.publicKey, difficulty: m.difficulty },
      (sol, at) => {
        answered = true;
        if (c.solving) c.solving = null;
        this.onPuzzleSolved(t, c, m, sol, at);
        if (!sync) this.out.flush();
      },
    );
    sync = false;
    if (!ticket) {
      this.drops.puzzleBusy++;
      return;
    }
    peer.puzzleSolves++;
    this.events.puzzlesQueued++;
    if (!answered) c.solving = ticket;
  }

  protected onPuzzleSolved(
    t: Tunnel,
    c: NonNullable<Tunnel["create"]>,
    m: NonNullable<ReturnType<typeof decodePuzzle>>,
    sol: Buffer | null,
    now: number,
  ): void {
    // the creation may have got its REPLY, timed out or been replaced meanwhile
    if (t.state !== "creating" || t.create !== c || c.puzzle) return;
    if (!sol) {
      this.drops.puzzleUnsolved++;
      return;
    }
    c.puzzle = { window: m.window, difficulty: m.difficulty, cookie: m.cookie, solution: sol };
    this.events.puzzlesSolved++;
    this.resendQueue(t, c.queue, now);
  }

  onReply(t: Tunnel, buf: Buffer, off: number, len: number, src: Buffer, srcOff: number, now: number): void {
    if (len < REPLY_AD_BYTES + AEAD_TAG_BYTES) {
      this.drops.malformed++;
      return;
    }
    if (t.role !== "initiator") {
      this.drops.unknownTid++;
      return;
    }
    const n = readCounter(buf, off);
    const ptOff = off + REPLY_AD_BYTES;
    const plainLen = len - REPLY_AD_BYTES - AEAD_TAG_BYTES;
    if (t.state === "creating") {
      const c = t.create!;
      const tR = buf.subarray(off + REPLY_OFFSET_PUB, off + REPLY_OFFSET_PUB + 32);
      const ee = dh(c.tI.secretKey, tR);
      if (!ee) {
        this.drops.auth++;
        return;
      }
      const keys = deriveEstablished(c.ck1, c.ss, ee, c.suite);
      zero(ee);
      if (!openWith(c.suite, keys.r2i, buf, off, ptOff, len - REPLY_AD_BYTES)) {
        zero(keys.ck);
        zero(keys.i2r);
        zero(keys.r2i);
        this.drops.auth++;
        return;
      }
      t.sessionId = sessionIdOf(keys.ck);
      t.suite = c.suite;
      t.cur = new Epoch(buf.subarray(off, off + 8), keys.i2r, keys.r2i, keys.ck, now, 0, c.suite);
      t.cur.replay.accept(n);
      t.eraseCreate();
      t.state = "established";
      startupMark("first-tunnel");
      this.prepareMove(t, now);
      t.establishedAt = now;
      t.lastRekeyAt = now;
      t.rttMs = now - t.createdAt;
      this.onAuthenticated(t, src, srcOff, len, now);
      this.log.log("info", "tunnel established", { peer: t.peer.name, rttMs: now - t.createdAt });
      this.dirHooks.tunnelUp?.(t, now);
      this.opts.onEvent?.("tunnel-established", { peer: t.peer.name, ms: now - t.createdAt });
      this.deliverFrames(t, this.frames.reset(buf, ptOff, plainLen), now);
      // confirm: our first packet under the new key lets the responder stop sending REPLY
      this.sendControl(t, FrameType.Keepalive, null, now);
      this.supersede(t, now);
      this.closeDuplicates(t.peer, t, now);
      return;
    }
    // REPLY after we are established: the responder has not seen our confirmation yet
    const e = t.cur;
    if (!e || !e.replay.check(n)) {
      this.drops.replay++;
      return;
    }
    if (!e.rx.open(buf, off, ptOff, len - REPLY_AD_BYTES)) {
      this.drops.auth++;
      return;
    }
    e.replay.accept(n);
    this.onAuthenticated(t, src, srcOff, len, now);
    this.deliverFrames(t, this.frames.reset(buf, ptOff, plainLen), now);
    this.sendControl(t, FrameType.Keepalive, null, now);
  }

  /**
   * The responder's side of a creation is confirmed (the creator's first packet under the
   * new key verified: outside.ts moved it from replying to established).
   */
  onConfirmed(t: Tunnel, now: number): void {
    this.supersede(t, now);
  }

  /**
   * A tunnel `nt` just became established: close the peer's tunnels that were already
   * established before `nt` was created. The peer made (or answered) a new tunnel while
   * an older one stood, which it does only when it no longer holds or hears the older one
   * (it restarted, or our stall recovery made `nt`). Evidence is authenticated: `nt`'s
   * REPLY or its confirmation verified under keys only the peer's host key could agree.
   * Two hosts creating at once (closeDuplicates) never match: neither tunnel was
   * established before the other was created.
   *
   *   established (older) --newer tunnel with the same peer established--> closed "superseded"
   */
  protected supersede(nt: Tunnel, now: number): void {
    const p = nt.peer;
    for (const x of p.tunnels.slice()) {
      if (x === nt || x.state !== "established" || x.establishedAt >= nt.createdAt) continue;
      // best effort: if the peer still holds it, it closes it too
      this.sendControl(x, FrameType.Close, Buffer.from([0]), now);
      this.events.tunnelsSuperseded++;
      this.closeTunnel(x, now, "superseded");
    }
    if (p.recovering !== 0) {
      this.log.log("info", "peer recovered: new tunnel established", {
        peer: p.name,
        ms: now - p.recovering,
      });
      p.recovering = 0;
    }
  }

  /** Both hosts created a tunnel to each other at once: keep the one the lower host key created. */
  protected closeDuplicates(peer: Peer, _t: Tunnel, now: number): void {
    const est = peer.tunnels.filter((x) => x.state === "established" || x.state === "replying");
    if (est.length < 2) return;
    const weCreateWinner = Buffer.compare(this.hostPk, peer.hostCert!.publicKey) < 0;
    for (const x of est) {
      const keep = (x.role === "initiator") === weCreateWinner;
      if (!keep && est.some((y) => y !== x)) {
        // let in-flight packets drain: mark it to idle out soon rather than closing now
        x.lastRx = Math.min(x.lastRx, now - this.opts.idleTimeoutMs + OLD_EPOCH_GRACE_MS);
      }
    }
  }
}
