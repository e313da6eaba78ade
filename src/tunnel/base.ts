/**
 * The engine's state and the layer every handler uses: the tables (tunnels by TID,
 * peers, routes), the sealed send and open of established tunnels, the tunnel table
 * (add, close) and the epochs of a tunnel (switch on rekey, move on an address change).
 *
 * The engine is one class built in layers, each file extending the one below and
 * importing only downward (no file cycle):
 *
 *   base.ts         EngineBase   state, seal/open, tunnel table, epochs and moves
 *   connections.ts  Connections  per-user connections: CONN_OPEN/DENY/RESET, whois
 *   records.ts      Records      peers, signed records (RECORD_REQUEST/RESPONSE), directory helpers
 *   accept.ts       Accept       creation, responder side (CREATE, CREATE_SOLVED, STALE answers)
 *   create.ts       Create       creation, initiator side (CREATE, PUZZLE, STALE, REPLY, supersede)
 *   control.ts      Control      control frames and packets (dispatch), rekey
 *   timers.ts       EngineCore   the coarse tick and what it drives (timeouts, rekey, keepalive,
 *                                stall probe, recovery), close
 *   engine.ts       Engine       EngineCore + the batch data paths (inside.ts, outside.ts)
 *
 * The two upward calls (a verified packet's frames, a record for a recovering peer)
 * are abstract methods declared in the lower layer. The whole protocol runs without
 * I/O: packets and `now` (ms) in, actions out through an `Output`.
 * Only authenticated, non-replayed packets change tunnel state.
 */
import { aeadOpen, aeadSeal, dhKeyPair, edSkToX, zero, type DhKeyPair } from "../crypto/sodium.js";
import { AeadSuite } from "../crypto/aead.js";
import { type Logger, RateLimitedLog, nullLogger } from "../log.js";
import { ADDR_BYTES, addrEqual, addrToString } from "../wire/addr.js";
import { FrameIterator, FrameType, writeFrame, writeFrameHeader } from "../wire/frames.js";
import {
  DATA_AD_BYTES,
  PacketType,
  REPLY_AD_BYTES,
  REPLY_OFFSET_PUB,
  writeTypeCounter,
} from "../wire/packet.js";
import {
  AEAD_TAG_BYTES,
  FRAME_HEADER_BYTES,
  OLD_EPOCH_GRACE_MS,
  REPLY_KEY_LIFETIME_MS,
} from "./constants.js";
import { type Drops, type Events, newDrops, newEvents } from "./counters.js";
import { EphemeralKeys } from "./ephemeral.js";
import { CertCache } from "./certcache.js";
import { SourceBuckets } from "../dos/bucket.js";
import { LoadMeter } from "../dos/load.js";
import { PuzzleIssuer } from "../dos/puzzle.js";
import { InlineSolver, type PuzzleSolver } from "../dos/solver.js";
import { deriveMoveTid, moveKeys } from "./keys.js";
import { PrefixTable } from "./routing.js";
import { Epoch, Peer, Tunnel } from "./tunnel.js";
import { Conn, FlowScratch, type ConnIdentity } from "../conn/conns.js";
import { UserKeyCache } from "../conn/auth.js";
import { CONN_ID_BYTES } from "../wire/conn.js";
import { type Policy } from "../conn/policy.js";
import { type Cert } from "../wire/cert.js";
import { type RevocationIndex } from "../wire/revocation.js";
import {
  type Output,
  type ReloadableOptions,
  type DirectoryHooks,
  type EngineOptions,
  type DosOptions,
  CONN_DATA_HEADER_BYTES,
  DEFAULT_REPLAY_PER_HOST,
  DOS_DEFAULTS,
} from "./options.js";

export abstract class EngineBase {
  /** CONN_DATA of a verified packet (connections.ts) */
  abstract deliverConn(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void;
  /** any other frame of a verified packet (control.ts) */
  protected abstract onControlFrame(
    t: Tunnel,
    type: number,
    buf: Buffer,
    off: number,
    len: number,
    now: number,
  ): void;

  readonly drops: Drops = newDrops();
  readonly events: Events = newEvents();
  /** every TID in use (creation TIDs and epoch TIDs) -> tunnel */
  readonly tids = new Map<string, Tunnel>();
  /** peers by host public key (latin1) */
  readonly peers = new Map<string, Peer>();
  /** configured peers whose host key is not known yet (waiting for a record), by name */
  readonly unresolved = new Map<string, Peer>();
  /** inner destination -> peer, from verified host certificates */
  readonly routes = new PrefixTable<Peer>();
  /** our own overlay addresses and subnets */
  readonly ours = new PrefixTable<true>();
  readonly eph: EphemeralKeys;
  readonly hostPk: Buffer;
  readonly hostX: Buffer;
  /**
   * The engine's own copy of the host's Ed25519 secret key (signs every
   * ephemeral certificate, also at rotation long after start-up). Secrets have
   * one owner: the caller keeps (and may zero) the buffer it passed, this copy
   * is zeroed in close() and nowhere else.
   */
  protected readonly hostSk: Buffer;
  readonly opts: EngineOptions;
  tunnelCount = 0;
  /** scratch buffers owned by the engine (data path) */
  readonly nonce = Buffer.alloc(12);
  readonly frames = new FrameIterator();
  readonly log: Logger;
  readonly rlog: RateLimitedLog;
  protected out: Output;
  protected lastTick = 0;
  protected reply: { kp: DhKeyPair; at: number } | null = null;
  /** incremented per batch / tick: the route-source probe runs once per tunnel per batch */
  protected batchSeq = 0;
  protected readonly srcScratch = Buffer.alloc(ADDR_BYTES);
  /**
   * The epoch of the last DATA packet that opened (outside.ts): a packet under the same TID
   * reuses its TID string instead of making one (no allocation per packet). Only the string
   * is reused: the table lookup and every check still run per packet.
   */
  rxTidHint: Epoch | null = null;
  readonly certs: CertCache;
  readonly buckets: SourceBuckets;
  readonly load: LoadMeter;
  readonly puzzles = new PuzzleIssuer();
  readonly solver: PuzzleSolver;
  protected readonly dos: DosOptions;
  protected lastSweep = 0;
  /** flow scratch for the send path and for the receive path */
  readonly flow = new FlowScratch();
  protected readonly flowIn = new FlowScratch();
  readonly userKeys: UserKeyCache;
  /**
   * The CA's revocation list in force (trust.revocationList, or a newer one from the
   * directory): checked at creation (HELLO, records), at CONN_OPEN, and by the tick on
   * every peer and connection; installed by setRevocation (timers.ts).
   */
  revocation: RevocationIndex | null = null;
  policy: Policy | null;
  identity: ConnIdentity | null;
  /** the directory's hooks (options.ts DirectoryHooks), fixed at construction */
  readonly dirHooks: DirectoryHooks;

  constructor(opts: EngineOptions, out: Output, now: number) {
    this.hostSk = Buffer.alloc(opts.hostSecretKey.length);
    opts.hostSecretKey.copy(this.hostSk);
    this.opts = { ...opts, hostSecretKey: this.hostSk };
    this.out = out;
    this.log = opts.logger ?? nullLogger;
    this.rlog = new RateLimitedLog(this.log);
    this.hostPk = opts.hostCert.publicKey;
    this.hostX = edSkToX(this.hostSk);
    const revoked = (c: Cert) => this.revocation !== null && this.revocation.revoked(c);
    this.certs = new CertCache(opts.ca, undefined, revoked);
    this.userKeys = new UserKeyCache(opts.ca, this.hostX, this.hostPk, undefined, revoked);
    this.policy = opts.policy ?? null;
    this.dirHooks = opts.directory ?? {};
    this.identity = opts.identity ?? null;
    const dos = { ...DOS_DEFAULTS, ...opts.dos };
    this.dos = dos;
    this.solver = opts.solver ?? new InlineSolver(() => this.lastTick);
    this.buckets = new SourceBuckets(dos.perSourcePerSec, dos.perSourceBurst, dos.maxSources);
    this.load = new LoadMeter({
      highPerSec: dos.puzzleAbovePerSec,
      baseDifficulty: dos.baseDifficulty,
      maxDifficulty: dos.maxDifficulty,
      calmMs: dos.calmMs,
    });
    const hc = opts.hostCert;
    if (hc.ip4) this.ours.add(`${hc.ip4}/32`, true);
    if (hc.ip6) this.ours.add(`${hc.ip6}/128`, true);
    for (const s of hc.subnets) this.ours.add(s, true);
    this.eph = new EphemeralKeys({
      hostPublicKey: this.hostPk,
      hostSecretKey: this.hostSk,
      lifetimeMs: opts.ephemeralLifetimeMs,
      minFirstPacket: opts.minFirstPacket,
      endpoints: opts.endpoints,
      maxReplayRecords: opts.maxReplayRecords ?? 100_000,
      maxReplayPerHost: opts.maxReplayPerHost ?? DEFAULT_REPLAY_PER_HOST,
      aesGcm: opts.aeadSuite === AeadSuite.Aes256Gcm,
    });
    const k = this.eph.rotate(now);
    this.events.ephemeralRotations++;
    opts.onEphemeralRotated?.(k.cert);
  }

  /**
   * The responder's per-tunnel X25519 key (T_R), shared by the tunnels accepted
   * within one REPLY_KEY_LIFETIME_MS and then zeroed: a fresh key per tunnel
   * would cost a third X25519 per creation. Each tunnel's ee = DH(t_R, T_I)
   * still differs (T_I is fresh per tunnel), and t_R lives far shorter than
   * the ephemeral key e_R that the tunnel secret also depends on, so the
   * forward-secrecy window is unchanged (docs/PROTOCOL.md section 4).
   */
  protected replyKey(now: number): DhKeyPair {
    const r = this.reply;
    if (r && now - r.at < REPLY_KEY_LIFETIME_MS && now >= r.at) return r.kp;
    if (r) zero(r.kp.secretKey);
    const kp = dhKeyPair();
    this.reply = { kp, at: now };
    return kp;
  }

  /**
   * A reload: new timers and table limits (applied from the next tick on; nothing
   * already open is closed by a lower limit) and the connection policy. Returns the
   * option names that changed.
   */
  reconfigure(next: ReloadableOptions, policy: Policy | null): (keyof ReloadableOptions)[] {
    const changed: (keyof ReloadableOptions)[] = [];
    const o = this.opts as ReloadableOptions;
    for (const k of Object.keys(next) as (keyof ReloadableOptions)[])
      if (o[k] !== next[k]) {
        o[k] = next[k] as number;
        changed.push(k);
      }
    this.policy = policy;
    return changed;
  }

  setOutput(out: Output): void {
    this.out = out;
  }

  /** Send one control frame on a tunnel that can send, and flush (called outside batches). */
  sendFrame(t: Tunnel, type: number, body: Buffer, now: number): boolean {
    if (!t.canSend) return false;
    this.sendControl(t, type, body, now);
    this.out.flush();
    return true;
  }

  flushOutput(): void {
    this.out.flush();
  }

  protected addTunnel(t: Tunnel): void {
    this.tids.set(t.tid, t);
    t.peer.tunnels.push(t);
    this.tunnelCount++;
  }

  /**
   * Open a sealed packet in place: the nonce is taken from its header, the
   * associated data is bytes [off, off+adLen), the plaintext replaces the
   * ciphertext at off+adLen. False (never throws) when authentication fails.
   */
  openInPlace(buf: Buffer, off: number, len: number, adLen: number, key: Buffer): boolean {
    this.setNonceFrom(buf, off);
    const ptOff = off + adLen;
    return aeadOpen(
      buf.subarray(ptOff, off + len - AEAD_TAG_BYTES),
      buf.subarray(ptOff, off + len),
      buf.subarray(off, ptOff),
      this.nonce,
      key,
    );
  }

  /** The 12-byte nonce of the packet at off: 4 zero bytes, then its type byte and counter. */
  setNonceFrom(buf: Buffer, off: number): void {
    // byte stores: Buffer.copy costs more than the 12 bytes it moves (small packets)
    const n = this.nonce;
    n[0] = n[1] = n[2] = n[3] = 0;
    n[4] = buf[off + 8]!;
    n[5] = buf[off + 9]!;
    n[6] = buf[off + 10]!;
    n[7] = buf[off + 11]!;
    n[8] = buf[off + 12]!;
    n[9] = buf[off + 13]!;
    n[10] = buf[off + 14]!;
    n[11] = buf[off + 15]!;
  }

  /**
   * Seal one inner packet that sits at buf[off, off+len) as a CONN_DATA frame, in place,
   * and send it: 7 bytes of frame header and connection id go right before the packet,
   * the tunnel header (up to 48 bytes) before the plaintext start `pt` (default: the
   * frame header; earlier when frames such as CONN_OPEN precede it), the tag after it.
   */
  sealConn(
    t: Tunnel,
    c: Conn,
    buf: Buffer,
    off: number,
    len: number,
    now: number,
    pt = off - CONN_DATA_HEADER_BYTES,
  ): void {
    writeFrameHeader(buf, off - CONN_DATA_HEADER_BYTES, FrameType.ConnData, CONN_ID_BYTES + len);
    buf.writeUInt32BE(c.wireId, off - CONN_ID_BYTES);
    this.sealAndSend(t, buf, pt, off + len - pt, now);
    c.txPackets++;
    c.lastUsed = now;
    t.txPackets++;
    t.txBytes += len;
  }

  /** Send a sealed packet holding one control frame (or nothing, for REPLY). */
  sendControl(t: Tunnel, type: number, body: Buffer | null, now: number): void {
    if (!t.canSend) return;
    const plainLen = type === FrameType.Padding ? 0 : FRAME_HEADER_BYTES + (body ? body.length : 0);
    const b = Buffer.alloc(REPLY_AD_BYTES + plainLen + AEAD_TAG_BYTES);
    if (plainLen > 0) writeFrame(b, REPLY_AD_BYTES, type, body);
    this.sealAndSend(t, b, REPLY_AD_BYTES, plainLen, now);
  }

  /**
   * The one sealed-send path of an established or replying tunnel: the plaintext is
   * at buf[pt, pt+plainLen) with room for the header before it (48 bytes) and the tag
   * after it (16). Moves the tunnel first if its local source changed (once per batch),
   * writes TID, type, counter (and T_R while replying) in place, seals, and sends.
   */
  protected sealAndSend(t: Tunnel, buf: Buffer, pt: number, plainLen: number, now: number): void {
    if (t.srcBatch !== this.batchSeq && t.state === "established") this.checkSource(t, now);
    const e = t.cur!;
    const type = t.sendType;
    const start = pt - (type === PacketType.Reply ? REPLY_AD_BYTES : DATA_AD_BYTES);
    const ctr = e.nextCounter(this.batchSeq);
    if (ctr < 0) {
      this.drops.counterExhausted++;
      return;
    }
    const tb = e.tidBuf;
    for (let k = 0; k < 8; k++) buf[start + k] = tb[k]!;
    writeTypeCounter(buf, start, type, ctr);
    if (type === PacketType.Reply) t.accept!.tR.copy(buf, start + REPLY_OFFSET_PUB);
    e.tx.seal(buf, start, pt, plainLen);
    t.lastTx = now;
    this.out.sendUdp(buf, start, pt + plainLen + AEAD_TAG_BYTES - start, t.endpoint, 0, t.src);
  }

  protected sendEmpty(t: Tunnel, now: number): void {
    this.sendControl(t, FrameType.Padding, null, now);
  }

  /**
   * Seal `msg` in place under a one-time `key` (then zeroed): the first `adBytes` (header with
   * its random counter, which is also the nonce) are associated data, the rest up to the
   * tag is the plaintext. RECORD_RESPONSE and STALE are sealed this way.
   */
  protected sealInPlace(msg: Buffer, adBytes: number, key: Buffer): void {
    const plainLen = msg.length - adBytes - AEAD_TAG_BYTES;
    this.setNonceFrom(msg, 0);
    aeadSeal(
      msg.subarray(adBytes),
      msg.subarray(adBytes, adBytes + plainLen),
      msg.subarray(0, adBytes),
      this.nonce,
      key,
    );
    zero(key);
  }

  /** Called after a packet of t verified and passed the replay check. */
  /**
   * Called after a packet of t verified and passed the replay check. The
   * endpoint follows the source only for packets of the current epoch: a
   * delayed or replayed packet of an older epoch (in flight before a move, or
   * re-sent by an attacker from a spoofed address) cannot pull it back.
   */
  onAuthenticated(t: Tunnel, src: Buffer, srcOff: number, len: number, now: number, current = true): void {
    t.lastRx = now;
    t.rxPackets++;
    t.rxBytes += len;
    if (current && !addrEqual(t.endpoint, 0, src, srcOff)) {
      src.copy(t.endpoint, 0, srcOff, srcOff + ADDR_BYTES);
      t.roams++;
      this.events.roams++;
      const pe = t.peer.endpoint;
      if (pe) src.copy(pe, 0, srcOff, srcOff + ADDR_BYTES);
      else t.peer.endpoint = Buffer.from(src.subarray(srcOff, srcOff + ADDR_BYTES));
      this.rlog.log(now, "info", "roam", "peer endpoint moved", () => ({
        peer: t.peer.name,
        to: addrToString(src, srcOff),
      }));
    }
  }

  /**
   * Walk verified frames: inner packets to the TUN, control frames to their handlers.
   * `retry`: the datagram resends data already delivered (src/tunnel/retry.ts): inner
   * packets are dropped, control frames still processed.
   */
  deliverFrames(t: Tunnel, it: FrameIterator, now: number, retry = false): void {
    const buf = it.buf;
    while (it.next()) {
      if (it.type === FrameType.ConnData) {
        if (retry) this.drops.retryDuplicate++;
        else this.deliverConn(t, buf, it.bodyOff, it.bodyLen, now);
      } else this.onControlFrame(t, it.type, buf, it.bodyOff, it.bodyLen, now);
    }
    if (it.malformed) this.drops.badFrames++;
  }

  closeTunnel(t: Tunnel, _now: number, reason: string): void {
    if (t.state === "closed") return;
    for (const e of [t.cur, t.prev, t.next, t.move]) if (e) this.tids.delete(e.tid);
    if (t.movePending) this.tids.delete(t.movePending.tid);
    if (t.crossMove) this.tids.delete(t.crossMove.tid);
    if (t.crossEp) this.tids.delete(t.crossEp.tid);
    this.tids.delete(t.tid);
    this.rxTidHint = null; // holds no closed tunnel's epoch
    t.eraseAll();
    const i = t.peer.tunnels.indexOf(t);
    if (i >= 0) t.peer.tunnels.splice(i, 1);
    this.tunnelCount--;
    this.events.tunnelsClosed++;
    this.log.log(reason === "shutdown" ? "debug" : "info", "tunnel closed", { peer: t.peer.name, reason });
    this.opts.onEvent?.("tunnel-closed", { peer: t.peer.name, reason });
  }

  /** Make `e` current; the old current epoch stays receivable for a grace period. */
  switchEpoch(t: Tunnel, e: Epoch, now: number): void {
    const moved = e === t.move;
    if (t.crossEp !== e) this.dropCrossMove(t);
    if (!moved && t.movePending) {
      // a rekey: the peer may have moved meanwhile (under the move of the epoch we leave);
      // keep that TID receivable for the grace period (crossEpoch)
      t.crossMove = t.movePending;
      t.crossUntil = now + OLD_EPOCH_GRACE_MS;
      t.movePending = null;
    }
    if (t.prev) this.retireEpoch(t, t.prev);
    t.prev = t.cur;
    t.prevUntil = now + OLD_EPOCH_GRACE_MS;
    t.cur = e;
    if (t.next === e) t.next = null;
    if (t.move === e) t.move = null;
    if (moved) {
      // a rekey in flight was based on the epoch we just left: drop it, the schedule restarts
      if (t.next) this.retireEpoch(t, t.next);
      if (t.rekey) zero(t.rekey.kp.secretKey);
      t.rekey = null;
      t.lastRekeyAck = null;
      t.migrations++;
      this.events.migrations++;
    } else {
      t.rekeys++;
      this.events.rekeys++;
    }
    t.lastRekeyAt = now;
    this.prepareMove(t, now);
    this.log.log("debug", moved ? "moved to next epoch" : "rekeyed", { peer: t.peer.name, epoch: e.number });
  }

  /**
   * Register the TID the tunnel moves to when either end changes address. Only the
   * TID and the move chain key are kept (an idle tunnel stays small); the epoch's keys
   * and replay window are made when it is first used (`moveEpoch`).
   */
  prepareMove(t: Tunnel, _now: number): void {
    const c = t.cur;
    if (!c) return;
    if (t.move) this.retireEpoch(t, t.move);
    this.dropPendingMove(t);
    const m = deriveMoveTid(c.ck);
    t.movePending = { tid: m.tid.latin1Slice(0, 8), ck: m.ck, number: c.number + 1 };
    this.tids.set(t.movePending.tid, t);
  }

  /** The move epoch, made from the pending move on first use. */
  moveEpoch(t: Tunnel, now: number): Epoch | null {
    if (t.move) return t.move;
    const p = t.movePending;
    if (!p) return null;
    const k = moveKeys(p.ck);
    const tid = Buffer.from(p.tid, "latin1");
    t.move =
      t.role === "initiator"
        ? new Epoch(tid, k.i2r, k.r2i, p.ck, now, p.number, t.suite)
        : new Epoch(tid, k.r2i, k.i2r, p.ck, now, p.number, t.suite);
    t.movePending = null; // its chain key now lives (copied) in the epoch and was zeroed here
    return t.move;
  }

  /**
   * A rekey and a move crossed: the peer moved (under the move epoch of the epoch we
   * rekeyed away from) before it saw our rekey, or after answering it. The crossing epoch
   * is made here on first use of its TID (like moveEpoch, before the AEAD check: nothing
   * else changes); followCross switches to it once a packet under it verified.
   */
  crossEpoch(t: Tunnel, now: number): Epoch | null {
    if (t.crossEp) return t.crossEp;
    const p = t.crossMove;
    if (!p) return null;
    const k = moveKeys(p.ck);
    const tid = Buffer.from(p.tid, "latin1");
    t.crossEp =
      t.role === "initiator"
        ? new Epoch(tid, k.i2r, k.r2i, p.ck, now, p.number, t.suite)
        : new Epoch(tid, k.r2i, k.i2r, p.ck, now, p.number, t.suite);
    t.crossMove = null; // its chain key now lives (copied) in the epoch
    return t.crossEp;
  }

  /**
   * An authenticated packet under the crossing move epoch: the move wins over our rekey.
   * The epoch becomes current as a move (the rekeyed epoch stays receivable for the grace
   * period, its own pending move is dropped), so both ends end on the same epoch instead
   * of each on one the other does not hold.
   */
  followCross(t: Tunnel, e: Epoch, now: number): void {
    if (t.crossEp !== e) return;
    t.crossEp = null;
    if (t.move) this.retireEpoch(t, t.move);
    this.dropPendingMove(t);
    t.move = e;
    this.events.rekeyMoveCrossed++;
    this.switchEpoch(t, e, now);
  }

  protected dropCrossMove(t: Tunnel): void {
    const p = t.crossMove;
    const e = t.crossEp;
    const tid = p?.tid ?? e?.tid;
    if (tid === undefined) return;
    if (t.cur?.tid !== tid && t.prev?.tid !== tid && t.next?.tid !== tid && t.move?.tid !== tid)
      this.tids.delete(tid);
    if (p) zero(p.ck);
    e?.erase();
    t.crossMove = null;
    t.crossEp = null;
  }

  protected dropPendingMove(t: Tunnel): void {
    const p = t.movePending;
    if (!p) return;
    if (t.cur?.tid !== p.tid && t.prev?.tid !== p.tid && t.next?.tid !== p.tid) this.tids.delete(p.tid);
    zero(p.ck);
    t.movePending = null;
  }

  retireEpoch(t: Tunnel, e: Epoch): void {
    if (this.rxTidHint === e) this.rxTidHint = null;
    if (e.tid !== t.tid || t.state === "closed") this.tids.delete(e.tid);
    else if (t.cur?.tid !== e.tid && t.next?.tid !== e.tid) this.tids.delete(e.tid);
    e.erase();
    if (t.prev === e) t.prev = null;
    if (t.next === e) t.next = null;
    if (t.move === e) t.move = null;
  }

  /**
   * Our underlay address changed: every established tunnel switches to its
   * precomputed move epoch (new TID, new keys, counters from 0) and sends at
   * once from the new address, so the peer follows within one packet and
   * nothing visible links the old path to the new one.
   */
  migrate(now: number): number {
    let n = 0;
    this.batchSeq++;
    for (const p of this.peers.values())
      for (const t of p.tunnels) {
        if (t.state !== "established" || (!t.move && !t.movePending)) continue;
        // with a route-source probe only tunnels whose source address changed move
        if (this.opts.routeSource ? !this.checkSource(t, now) : !this.moveNow(t, now)) continue;
        this.sendControl(t, FrameType.Keepalive, null, now);
        n++;
      }
    this.out.flush();
    if (n > 0) this.log.log("info", "underlay address changed: tunnels moved", { tunnels: n });
    return n;
  }

  /** Switch to the move epoch now (this end moved). False when there is none. */
  protected moveNow(t: Tunnel, now: number): boolean {
    const m = this.moveEpoch(t, now);
    if (!m) return false;
    this.switchEpoch(t, m, now);
    return true;
  }

  /**
   * Before the first sealed send of a batch on an established tunnel: ask
   * which local address the kernel will send from. If it changed since the
   * last send, move the tunnel to its next epoch first, so that no packet
   * with the old TID ever leaves from the new address (the address watcher
   * alone would leave a window of its detection delay). Returns true when the
   * tunnel moved.
   */
  protected checkSource(t: Tunnel, now: number): boolean {
    t.srcBatch = this.batchSeq;
    const probe = this.opts.routeSource;
    if (!probe || !probe(t.endpoint, this.srcScratch)) return false;
    if (t.src === null) {
      t.src = Buffer.from(this.srcScratch);
      return false;
    }
    if (addrEqual(t.src, 0, this.srcScratch, 0)) return false;
    this.srcScratch.copy(t.src);
    if (!this.moveNow(t, now)) return false;
    this.rlog.log(now, "info", "move", "local address changed: tunnel moved", () => ({
      peer: t.peer.name,
      from: addrToString(this.srcScratch).replace(/:0$/, ""),
    }));
    return true;
  }

  get lastTickAt(): number {
    return this.lastTick;
  }
}
