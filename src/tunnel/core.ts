/**
 * The protocol engine's core: the whole tunnel protocol without I/O. It takes
 * packets and `now` (ms) and emits actions through an `Output` (UDP sends, TUN
 * writes) that the daemon performs; it never touches sockets or timers.
 *
 *   engine.ts   Engine = this core + the two batch entry points (no file cycle:
 *               inside.ts and outside.ts import this file, engine.ts imports all three)
 *   inside.ts   TUN -> UDP (seal), the send data path
 *   outside.ts  UDP -> TUN (open), the receive data path
 *   core.ts     tables, tunnel creation/acceptance, records, rekey, timers (control path)
 *
 * Only authenticated, non-replayed packets change tunnel state.
 */
import {
  aeadOpen,
  aeadSeal,
  dh,
  dhKeyPair,
  edPkToX,
  edSkToX,
  equal,
  randomBytes,
  zero,
  type DhKeyPair,
} from "../crypto/sodium.js";
import { type Logger, RateLimitedLog, nullLogger } from "../log.js";
import {
  type CaCert,
  type EphemeralCert,
  type HostCert,
  type UserCert,
  decodeCert,
  decodeEphemeral,
  fingerprint,
  verifyCert,
  verifyEphemeral,
} from "../wire/cert.js";
import { ADDR_BYTES, addrEqual, addrToString } from "../wire/addr.js";
import {
  FrameIterator,
  FrameType,
  decodeHello,
  decodeRekey,
  encodeHello,
  encodeRekey,
  writeFrame,
  writeFrameHeader,
} from "../wire/frames.js";
import {
  CREATE_AD_BYTES,
  CREATE_OFFSET_KEY_ID,
  CREATE_OFFSET_PUB,
  DATA_AD_BYTES,
  MIN_CREATE_BYTES,
  PacketType,
  REPLY_AD_BYTES,
  REPLY_OFFSET_PUB,
  decodeRecordRequest,
  decodeRecordResponseHeader,
  decodeRecordBody,
  RECORD_AD_BYTES,
  decodeStaleHeader,
  decodeStaleBody,
  STALE_AD_BYTES,
  decodePuzzle,
  encodePuzzle,
  SOLVED_AD_BYTES,
  SOLVED_OFFSET_COOKIE,
  SOLVED_OFFSET_DIFFICULTY,
  SOLVED_OFFSET_SOLUTION,
  SOLVED_OFFSET_WINDOW,
  encodeRecordRequest,
  encodeRecordResponse,
  encodeStale,
  readCounter,
  tidKey,
  tidKeyOf,
  writeTypeCounter,
} from "../wire/packet.js";
import {
  AEAD_TAG_BYTES,
  CONTROL_RETRANSMIT_MS,
  CREATE_QUEUE_PACKETS,
  CREATE_TIMEOUT_MS,
  FRAME_HEADER_BYTES,
  MAX_UDP_PAYLOAD_BYTES,
  OLD_EPOCH_GRACE_MS,
  PROBE_AFTER_MS,
  PROBE_RETRY_MS,
  PROBE_TRIES,
  RECORD_REQUEST_BYTES,
  RECOVERY_TIMEOUT_MS,
  RECORD_RETRY_MS,
  REKEY_AFTER_PACKETS,
  REPLY_KEY_LIFETIME_MS,
} from "./constants.js";
import { type Drops, type Events, newDrops, newEvents } from "./counters.js";
import { EphemeralKeys } from "./ephemeral.js";
import { CertCache } from "./certcache.js";
import { SourceBuckets } from "../dos/bucket.js";
import { LoadMeter } from "../dos/load.js";
import {
  COOKIE_BYTES,
  MAX_DIFFICULTY,
  PUZZLE_WINDOW_MS,
  PuzzleIssuer,
  SOLUTION_BYTES,
} from "../dos/puzzle.js";
import { InlineSolver, type PuzzleSolver } from "../dos/solver.js";
import { NO_SENDS, appendSend, retryDelivered } from "./retry.js";
import {
  createTranscript,
  deriveCreate,
  deriveEstablished,
  deriveMoveTid,
  deriveRekey,
  moveKeys,
  helloAuth,
  recordKey,
  sessionIdOf,
  staleKey,
} from "./keys.js";
import { ReplayWindow } from "./replay.js";
import { PrefixTable } from "./routing.js";
import { Epoch, Peer, Tunnel, type QueuedPacket } from "./tunnel.js";
import {
  CONN_DENIED,
  CONN_OPEN,
  CONN_OPEN_REPEAT,
  Conn,
  ConnTable,
  FlowScratch,
  keyOfWire,
  parseFlow,
  recheckDue,
  FRAG_FIRST,
  FRAG_LATER,
  type ConnIdentity,
  type LocalUser,
} from "../conn/conns.js";
import { UserKeyCache, connAuth, connBinding, userKeyOpener } from "../conn/auth.js";
import {
  CONN_AUTH_BYTES,
  CONN_ID_BYTES,
  ConnKind,
  DENY_REASON_NAMES,
  DenyReason,
  connOpenSize,
  encodeConnDeny,
  encodeConnReset,
  readConnOpen,
  writeConnOpen,
} from "../wire/conn.js";
import { evaluate, type Policy } from "../conn/policy.js";
import { synthReject } from "../ip/reject.js";
import { formatIp4, formatIp6 } from "../ip/ip.js";

/** Where the engine's actions go. Buffers passed are valid until `flush()` returns. */
export interface Output {
  /** src: the local address to send from (mobility pins it per tunnel), or the kernel's choice */
  sendUdp(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number, src?: Buffer | null): void;
  writeTun(buf: Buffer, off: number, len: number): void;
  flush(): void;
}

export interface EngineOptions {
  ca: CaCert;
  hostCert: HostCert;
  hostSecretKey: Buffer;
  ephemeralLifetimeMs: number;
  minFirstPacket: number;
  rekeyAfterMs: number;
  keepaliveMs: number;
  idleTimeoutMs: number;
  maxTunnels: number;
  /** tunnels one peer host may hold (its share of maxTunnels); default DEFAULT_MAX_PER_HOST */
  maxPerHost?: number;
  /**
   * An accepted tunnel whose creator never answered under the new key (it never saw a
   * REPLY, or never meant to) is closed after this long instead of idleTimeoutMs.
   */
  unconfirmedTimeoutMs?: number;
  maxReplayRecords?: number;
  /** underlay endpoints to publish in ephemeral certificates */
  endpoints: () => { ip: string; port: number }[];
  logger?: Logger;
  /** called when a new ephemeral certificate is made (for the directory, status) */
  onEphemeralRotated?: (cert: EphemeralCert) => void;
  onEvent?: (kind: string, fields: Record<string, unknown>) => void;
  /**
   * Which local address the kernel would send from to reach an endpoint (20-byte records);
   * false when unknown. A query of the environment, injected like the clock: with it, a
   * tunnel moves to its next epoch before its first packet from a new address.
   */
  routeSource?: (dst: Buffer, out: Buffer) => boolean;
  /** denial-of-service defence (src/dos/); defaults in DOS_DEFAULTS */
  dos?: Partial<DosOptions>;
  /** who opens each outbound flow (per-user connections); absent: every flow is the host's */
  identity?: ConnIdentity;
  /** connection policy for inbound flows (src/conn/policy.ts); absent or null: allow all */
  policy?: Policy | null;
  /**
   * Where puzzles get solved (src/dos/solver.ts). The daemon passes a WorkerSolver
   * (off the event loop); absent: an InlineSolver (tests, tools: synchronous).
   */
  solver?: PuzzleSolver;
}

/** One connection as whois reports it (both ends). */
export interface ConnInfo {
  direction: "in" | "out";
  proto: number;
  local: string;
  remote: string;
  peerHost: { name: string; groups: string[]; fingerprint: string };
  peerUser: { name: string; groups: string[]; fingerprint: string } | null;
  localUser: { uid: number; name: string; cert: string } | null;
  /** "out": uid of the local socket that opened it (also when it runs as the host); null: none found */
  ownerUid: number | null;
  session: string;
  state: "open" | "denied";
  denyReason: string | null;
  openedAt: number;
  lastUsed: number;
  rxPackets: number;
  txPackets: number;
}

export interface DosOptions {
  /** CREATE / RECORD_REQUEST per second per source address (IPv6: per /64) */
  perSourcePerSec: number;
  perSourceBurst: number;
  maxSources: number;
  /** offered creations per second above which CREATEs are answered with puzzles */
  puzzleAbovePerSec: number;
  baseDifficulty: number;
  maxDifficulty: number;
  /** puzzles stay on until the load stayed below half the threshold this long */
  calmMs: number;
  /** creator: the hardest PUZZLE it works on (harder ones: `puzzleTooHard`); at most MAX_DIFFICULTY */
  maxSolveDifficulty: number;
  /** creator: puzzles it solves per peer per 10-s puzzle window (more: `puzzleBusy`) */
  puzzleSolvesPerPeer: number;
}

export const DOS_DEFAULTS: DosOptions = {
  perSourcePerSec: 100,
  perSourceBurst: 200,
  maxSources: 65_536,
  puzzleAbovePerSec: 1000,
  baseDifficulty: 8,
  maxDifficulty: 20,
  calmMs: 5_000,
  maxSolveDifficulty: MAX_DIFFICULTY,
  puzzleSolvesPerPeer: 4,
};

/** KEEPALIVE body of an endpoint probe: please answer (probeEndpoint). */
const PROBE_BODY = Buffer.from([1]);

/** Default share of the tunnel table for one peer host. */
export const DEFAULT_MAX_PER_HOST = 64;
/** Default life of an accepted tunnel its creator never confirmed (2 × CREATE_TIMEOUT_MS). */
export const DEFAULT_UNCONFIRMED_TIMEOUT_MS = 10_000;

export interface PeerConfig {
  name: string;
  endpoint: Buffer | null;
  cert?: HostCert;
}

const MAX_PENDING_PER_PEER = 16;
/** CONN_DATA frame header + connection id before each inner packet */
export const CONN_DATA_HEADER_BYTES = FRAME_HEADER_BYTES + CONN_ID_BYTES;

export class EngineCore {
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
  private readonly hostSk: Buffer;
  readonly opts: EngineOptions;
  tunnelCount = 0;
  /** scratch buffers owned by the engine (data path) */
  readonly nonce = Buffer.alloc(12);
  readonly frames = new FrameIterator();
  readonly log: Logger;
  readonly rlog: RateLimitedLog;
  protected out: Output;
  private lastTick = 0;
  private reply: { kp: DhKeyPair; at: number } | null = null;
  /** incremented per batch / tick: the route-source probe runs once per tunnel per batch */
  protected batchSeq = 0;
  private readonly srcScratch = Buffer.alloc(ADDR_BYTES);
  readonly certs: CertCache;
  readonly buckets: SourceBuckets;
  readonly load: LoadMeter;
  readonly puzzles = new PuzzleIssuer();
  readonly solver: PuzzleSolver;
  private readonly dos: DosOptions;
  private lastSweep = 0;
  /** flow scratch for the send path and for the receive path */
  readonly flow = new FlowScratch();
  private readonly flowIn = new FlowScratch();
  readonly userKeys: UserKeyCache;
  policy: Policy | null;
  identity: ConnIdentity | null;
  /**
   * Directory hooks (src/directory/), null when no directory is configured:
   * a TUN packet with no route (copied by the hook if it keeps it), a
   * DIR_REQUEST/DIR_RESPONSE frame from an authenticated tunnel, and a tunnel
   * we created becoming established.
   */
  onMiss: ((buf: Buffer, off: number, len: number, now: number) => void) | null = null;
  onDirFrame: ((t: Tunnel, type: number, buf: Buffer, off: number, len: number, now: number) => void) | null =
    null;
  onTunnelUp: ((t: Tunnel, now: number) => void) | null = null;

  constructor(opts: EngineOptions, out: Output, now: number) {
    this.hostSk = Buffer.alloc(opts.hostSecretKey.length);
    opts.hostSecretKey.copy(this.hostSk);
    this.opts = { ...opts, hostSecretKey: this.hostSk };
    this.out = out;
    this.log = opts.logger ?? nullLogger;
    this.rlog = new RateLimitedLog(this.log);
    this.hostPk = opts.hostCert.publicKey;
    this.hostX = edSkToX(this.hostSk);
    this.certs = new CertCache(opts.ca);
    this.userKeys = new UserKeyCache(opts.ca, this.hostX, this.hostPk);
    this.policy = opts.policy ?? null;
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
  private replyKey(now: number): DhKeyPair {
    const r = this.reply;
    if (r && now - r.at < REPLY_KEY_LIFETIME_MS && now >= r.at) return r.kp;
    if (r) zero(r.kp.secretKey);
    const kp = dhKeyPair();
    this.reply = { kp, at: now };
    return kp;
  }

  setOutput(out: Output): void {
    this.out = out;
  }

  // ------------------------------------------------------------------ peers

  /** Add a configured peer. With a certificate its routes are known at once; the record is fetched. */
  addPeer(pc: PeerConfig, now: number): Peer {
    const p = new Peer(pc.name, pc.endpoint, true);
    if (pc.cert) {
      const v = verifyCert(pc.cert, this.opts.ca, Math.floor(now / 1000));
      if (v.ok && pc.cert.kind === "host") this.learnHost(p, pc.cert);
    }
    if (!p.hostCert) this.unresolved.set(pc.name, p);
    else this.peers.set(p.hostCert.publicKey.latin1Slice(0, 32), p);
    this.requestRecord(p, now);
    return p;
  }

  /**
   * Reconcile the configured peers with a new list (config reload): peers that
   * stay keep their tunnels (an endpoint change applies to new packets only
   * after the peer authenticates from it, or at once when no tunnel exists);
   * new peers are added and their records fetched; removed peers' tunnels are
   * closed. Peers learned from incoming tunnels are not touched.
   */
  setPeers(list: PeerConfig[], now: number): { added: string[]; removed: string[]; kept: string[] } {
    const want = new Map(list.map((p) => [p.name, p]));
    const res = { added: [] as string[], removed: [] as string[], kept: [] as string[] };
    for (const p of [...this.peers.values(), ...this.unresolved.values()]) {
      if (!p.configured || p.anyName) continue; // directories are not in the peers list
      const w = want.get(p.name);
      if (!w) {
        for (const t of p.tunnels.slice()) {
          if (t.state === "established") this.sendControl(t, FrameType.Close, Buffer.from([0]), now);
          this.closeTunnel(t, now, "removed from config");
        }
        this.routes.removeValue(p);
        if (p.hostCert) this.peers.delete(p.hostCert.publicKey.latin1Slice(0, 32));
        this.unresolved.delete(p.name);
        res.removed.push(p.name);
        continue;
      }
      want.delete(p.name);
      if (w.endpoint && p.tunnels.length === 0) p.endpoint = Buffer.from(w.endpoint);
      res.kept.push(p.name);
    }
    for (const w of want.values()) {
      this.addPeer(w, now);
      res.added.push(w.name);
    }
    this.out.flush();
    return res;
  }

  private learnHost(p: Peer, cert: HostCert): void {
    if (p.hostCert) this.routes.removeValue(p);
    p.hostCert = cert;
    p.hostX = edPkToX(cert.publicKey);
    p.name = cert.name;
    if (cert.ip4) this.routes.add(`${cert.ip4}/32`, p);
    if (cert.ip6) this.routes.add(`${cert.ip6}/128`, p);
    for (const s of cert.subnets) this.routes.add(s, p);
  }

  private peerForCert(cert: HostCert, src: Buffer, srcOff: number): Peer {
    const key = cert.publicKey.latin1Slice(0, 32);
    let p = this.peers.get(key);
    if (p) return p;
    // a configured peer waiting for its record, with this name
    p = this.unresolved.get(cert.name);
    if (p) this.unresolved.delete(cert.name);
    else p = new Peer(cert.name, src.subarray(srcOff, srcOff + ADDR_BYTES), false);
    this.learnHost(p, cert);
    this.peers.set(key, p);
    return p;
  }

  // ------------------------------------------------------------------ records

  requestRecord(p: Peer, now: number): void {
    if (!p.endpoint) return;
    if (p.recordReq && now - p.recordReq.sentAt < RECORD_RETRY_MS * Math.min(8, 2 ** p.recordReq.attempts))
      return;
    const tid = randomBytes(8);
    // a one-time key: the answer comes sealed to it (no certificate in the clear)
    const q = dhKeyPair();
    const req = encodeRecordRequest(tidKeyOf(tid), q.publicKey, RECORD_REQUEST_BYTES);
    if (p.recordReq) zero(p.recordReq.q.secretKey);
    p.recordReq = { tid: tidKeyOf(tid), sentAt: now, attempts: (p.recordReq?.attempts ?? 0) + 1, q };
    this.events.recordRequestsSent++;
    this.out.sendUdp(req, 0, req.length, p.endpoint, 0);
  }

  private onRecordRequest(
    buf: Buffer,
    off: number,
    len: number,
    src: Buffer,
    srcOff: number,
    now: number,
  ): void {
    const m = decodeRecordRequest(buf, off, len);
    const k = this.eph.current;
    if (!m || !k) {
      this.drops.malformed++;
      return;
    }
    if (!this.buckets.take(src, srcOff, now)) {
      this.drops.rateLimited++;
      return;
    }
    // sealed to the requester's one-time key with our reply key (one X25519, after the rate limit)
    const r = this.replyKey(now);
    const resp = encodeRecordResponse(m.tid, r.publicKey, this.opts.hostCert.raw, k.cert.raw, len);
    if (!resp) {
      this.drops.noAmplify++;
      return;
    }
    const shared = dh(r.secretKey, m.pub);
    if (!shared) {
      this.drops.auth++;
      return;
    }
    // a random counter, hence nonce: a replayed request within the reply key's second gets
    // the same key, and the certificate may have changed meanwhile
    writeTypeCounter(resp, 0, PacketType.RecordResponse, randomBytes(6).readUIntBE(0, 6));
    const key = recordKey(shared, buf.subarray(off, off + 8), m.pub, r.publicKey);
    zero(shared);
    this.sealInPlace(resp, RECORD_AD_BYTES, key);
    this.events.recordResponsesSent++;
    this.out.sendUdp(resp, 0, resp.length, src, srcOff);
  }

  private onRecordResponse(buf: Buffer, off: number, len: number, now: number): void {
    const h = decodeRecordResponseHeader(buf, off, len);
    if (!h) {
      this.drops.malformed++;
      return;
    }
    let peer: Peer | null = null;
    for (const p of this.unresolved.values()) if (p.recordReq?.tid === h.tid) peer = p;
    if (!peer) for (const p of this.peers.values()) if (p.recordReq?.tid === h.tid) peer = p;
    if (!peer) {
      this.drops.badRecord++;
      return;
    }
    const q = peer.recordReq!.q;
    const shared = dh(q.secretKey, h.pub);
    if (!shared) {
      this.drops.auth++;
      return;
    }
    const key = recordKey(shared, buf.subarray(off, off + 8), q.publicKey, h.pub);
    zero(shared);
    const opened = this.openInPlace(buf, off, len, RECORD_AD_BYTES, key);
    zero(key);
    if (!opened) {
      this.drops.auth++;
      return;
    }
    const m = decodeRecordBody(buf, off + RECORD_AD_BYTES, len - RECORD_AD_BYTES - AEAD_TAG_BYTES);
    if (!m) {
      this.drops.badRecord++;
      return;
    }
    const nowSec = Math.floor(now / 1000);
    const cert = decodeCert(m.host);
    const eph = decodeEphemeral(m.eph);
    if (!cert || cert.kind !== "host" || !eph) {
      this.drops.badRecord++;
      return;
    }
    const vc = verifyCert(cert, this.opts.ca, nowSec);
    const ve = verifyEphemeral(eph, cert, nowSec);
    const known = peer.hostCert;
    const nameOk = cert.name === peer.name || (peer.anyName && !known && !equal(cert.publicKey, this.hostPk));
    if (!vc.ok || !ve.ok || !nameOk || (known && !equal(known.publicKey, cert.publicKey))) {
      this.drops.badRecord++;
      this.rlog.log(now, "warn", "bad-record", "record refused", () => ({
        peer: peer.name,
        cert: vc.ok ? "ok" : vc.reason,
        eph: ve.ok ? "ok" : ve.reason,
        name: cert.name,
      }));
      return;
    }
    zero(peer.recordReq!.q.secretKey);
    peer.recordReq = null;
    peer.recordFetchedAt = now;
    if (!known) {
      this.unresolved.delete(peer.name);
      this.learnHost(peer, cert);
      this.peers.set(cert.publicKey.latin1Slice(0, 32), peer);
    }
    this.setEph(peer, eph);
    this.events.recordsLearned++;
    this.log.log("debug", "record learned", { peer: peer.name, keyId: eph.keyId });
    this.flushPending(peer, now);
    if (peer.recovering !== 0) this.recoverCreate(peer, now);
  }

  private setEph(peer: Peer, eph: EphemeralCert): void {
    if (peer.eph && peer.eph.notAfter > eph.notAfter) return; // keep the newer
    peer.eph = eph;
  }

  private flushPending(peer: Peer, now: number): void {
    if (peer.pending.length === 0) return;
    const q = peer.pending;
    peer.pending = [];
    for (const pkt of q) this.sendSlow(peer, pkt, 0, pkt.length, now);
  }

  // ------------------------------------------------------------------ directory helpers

  /**
   * A peer known only by its endpoint (a directory): its identity is learned
   * from its record (RECORD_REQUEST), whatever name its certificate carries.
   */
  addEndpointPeer(label: string, endpoint: Buffer, now: number): Peer {
    const p = new Peer(label, endpoint, true);
    p.anyName = true;
    this.unresolved.set(label, p);
    this.requestRecord(p, now);
    return p;
  }

  /**
   * Install a service record the caller has verified (directory lookup): the
   * host's routes, its ephemeral key and endpoint; queued packets are sent
   * (0-RTT creation). An existing peer keeps its tunnels and their endpoints.
   */
  learnRecord(cert: HostCert, eph: EphemeralCert, endpoint: Buffer, now: number): Peer {
    const key = cert.publicKey.latin1Slice(0, 32);
    let p = this.peers.get(key);
    if (!p) {
      p = this.unresolved.get(cert.name);
      if (p && !p.anyName) this.unresolved.delete(cert.name);
      else p = new Peer(cert.name, endpoint, false);
      this.learnHost(p, cert);
      this.peers.set(key, p);
    } else if (p.tunnels.length === 0 || !p.endpoint) p.endpoint = Buffer.from(endpoint);
    this.setEph(p, eph);
    p.lastSeen = Math.max(p.lastSeen, now);
    this.flushPending(p, now);
    return p;
  }

  /**
   * Someone unauthenticated (a directory's observed address) says the peer of a
   * silent tunnel is elsewhere now. The tunnel does not move: one probe (a
   * KEEPALIVE that asks for an answer, sealed as usual) goes to that endpoint,
   * and the endpoint follows only when an authenticated, current packet comes
   * back from there (onAuthenticated), as for any roam.
   */
  probeEndpoint(t: Tunnel, endpoint: Buffer, now: number): void {
    if (!t.canSend || addrEqual(t.endpoint, 0, endpoint, 0)) return;
    const keep = Buffer.from(t.endpoint);
    endpoint.copy(t.endpoint, 0, 0, ADDR_BYTES);
    this.sendControl(t, FrameType.Keepalive, PROBE_BODY, now);
    keep.copy(t.endpoint);
    this.events.endpointProbes++;
    this.out.flush();
    this.rlog.log(now, "info", "probe", "probing a peer endpoint from the directory", () => ({
      peer: t.peer.name,
      to: addrToString(endpoint),
    }));
  }

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

  // ------------------------------------------------------------------ creation (initiator)

  /**
   * Send path for packets that cannot be sealed in place: no tunnel yet, or
   * still creating. Copies what it keeps.
   */
  sendSlow(peer: Peer, buf: Buffer, off: number, len: number, now: number): void {
    let t = peer.sendTunnel();
    if (t && t.canSend) {
      this.sendOnConn(t, buf, off, len, now);
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

  private startCreate(peer: Peer, now: number): Tunnel | null {
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
    const t = new Tunnel("initiator", tidKeyOf(tid), peer, peer.endpoint!, now);
    t.connBind = connBinding(ck1);
    t.create = {
      keyId: eph.keyId,
      tI,
      ck1,
      k0,
      ss,
      hello: encodeHello(this.opts.hostCert.raw, auth),
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

  private addTunnel(t: Tunnel): void {
    this.tids.set(t.tid, t);
    t.peer.tunnels.push(t);
    this.tunnelCount++;
  }

  /**
   * Build and send the CREATEs for one inner packet: HELLO, the packet's CONN_OPEN
   * (always, in creation: the responder may have lost an earlier one) and its
   * CONN_DATA, packed into as few datagrams as fit, each padded to the peer's minimum.
   */
  private sendCreate(t: Tunnel, q: QueuedPacket | null, now: number): void {
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
  private sendCreatePacket(t: Tunnel, frames: [number, Buffer][], ipBytes: number, now: number): number {
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
    this.out.sendUdp(b, 0, size, t.endpoint, 0);
    return n;
  }

  // ------------------------------------------------------------------ creation (responder)

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
    const tI = Buffer.from(buf.subarray(off + CREATE_OFFSET_PUB, off + CREATE_OFFSET_PUB + 32));
    if (solved) {
      const r = this.puzzles.check(
        src,
        srcOff,
        tidBuf,
        tI,
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
    if (this.eph.isReplay(k, tI)) {
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
      this.drops.createHello++;
      this.rlog.log(now, "warn", "create-hello", "creation refused: certificate", () => ({
        from: addrToString(src, srcOff),
        reason: !v ? "malformed" : !v.ok ? v.reason : "our own key",
      }));
      return;
    }
    const cert = v.cert;
    const ss = this.eph.ssFor(k, cert.publicKey);
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
    if (this.eph.remember(k, tI) !== "ok") {
      zero(ck1);
      zero(k0);
      this.drops.createReplay++;
      return;
    }
    // verified: allocate state, within this host's share of the table
    const peer = this.peerForCert(cert, src, srcOff);
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

  private onCreateExisting(
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
  private sendStale(
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
   * A STALE names the TID and key id of a CREATE and carries a fresher signed
   * key. It is not authenticated (anyone who saw the CREATE can send one, with
   * either of the responder's public ephemeral certificates), so it is taken
   * only when plausible: for a creation still waiting for its first
   * authenticated answer, from the address that CREATE went to, naming the key
   * it used, carrying a different key of the same host that is no older, and
   * once per creation. The retry resends the 0-RTT packets with RETRY frames,
   * so a responder that did accept the first CREATE does not deliver them twice.
   */
  private onStale(buf: Buffer, off: number, len: number, src: Buffer, srcOff: number, now: number): void {
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
  private resendQueue(t: Tunnel, queue: QueuedPacket[], now: number): void {
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
  private onPuzzle(buf: Buffer, off: number, len: number, src: Buffer, srcOff: number, now: number): void {
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

  private onPuzzleSolved(
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

  /**
   * Room for one more tunnel of `peer` (its share of the table): below
   * maxPerHost, or after closing its oldest tunnel that was never confirmed.
   */
  private takeHostShare(peer: Peer, now: number): boolean {
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

  // ------------------------------------------------------------------ REPLY (initiator)

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
      const keys = deriveEstablished(c.ck1, c.ss, ee);
      zero(ee);
      if (!this.openInPlace(buf, off, len, REPLY_AD_BYTES, keys.r2i)) {
        zero(keys.ck);
        zero(keys.i2r);
        zero(keys.r2i);
        this.drops.auth++;
        return;
      }
      t.sessionId = sessionIdOf(keys.ck);
      t.cur = new Epoch(buf.subarray(off, off + 8), keys.i2r, keys.r2i, keys.ck, now, 0);
      t.cur.replay.accept(n);
      t.eraseCreate();
      t.state = "established";
      this.prepareMove(t, now);
      t.establishedAt = now;
      t.lastRekeyAt = now;
      this.onAuthenticated(t, src, srcOff, len, now);
      this.log.log("info", "tunnel established", { peer: t.peer.name, rttMs: now - t.createdAt });
      this.onTunnelUp?.(t, now);
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
    if (!this.openInPlace(buf, off, len, REPLY_AD_BYTES, e.recvKey)) {
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
  private supersede(nt: Tunnel, now: number): void {
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

  /**
   * Stall probe of the tunnel in use (called from the tick while it is established):
   *
   *   quiet --data sent since the last authenticated packet, none for PROBE_AFTER_MS--> probing (PROBE)
   *   probing --any authenticated packet (lastRx moved)--> quiet
   *   probing --PROBE_RETRY_MS, fewer than PROBE_TRIES sent--> probing (PROBE again)
   *   probing --PROBE_RETRY_MS after the last PROBE--> quiet, and the peer's recovery starts
   *
   * Only the absence of authenticated packets drives it: nothing an attacker sends can
   * start or advance it, and it tears nothing down (see startRecovery).
   */
  private tickStall(t: Tunnel, now: number): void {
    if (t.lastRx !== t.rxMark) {
      t.rxMark = t.lastRx;
      t.txAtRx = t.txPackets;
    }
    const pr = t.probe;
    if (pr !== null) {
      if (t.lastRx !== pr.rxAt) {
        t.probe = null; // answered (or other traffic arrived): the peer holds the tunnel
        return;
      }
      if (now - pr.sentAt < PROBE_RETRY_MS) return;
      if (pr.sent < PROBE_TRIES) {
        pr.sent++;
        pr.sentAt = now;
        this.events.stallProbes++;
        this.sendControl(t, FrameType.Probe, null, now);
        return;
      }
      t.probe = null;
      this.startRecovery(t.peer, now);
      return;
    }
    if (t.txPackets > t.txAtRx && now - t.lastRx >= PROBE_AFTER_MS) {
      t.probe = { rxAt: t.lastRx, sentAt: now, sent: 1 };
      this.events.stallProbes++;
      this.sendControl(t, FrameType.Probe, null, now);
    }
  }

  /**
   * The peer did not answer PROBE_TRIES probes on the tunnel in use: most likely it
   * restarted and lost the tunnel (static peers and directory peers alike). Recovery:
   *
   *   none --probes unanswered--> fetching: RECORD_REQUEST to the peer (signed host and
   *                               ephemeral certificates; repeated by the next unanswered probes)
   *   fetching --verified record--> creating: a new tunnel 0-RTT (HELLO) under the fresh key,
   *                               beside the silent one, which stays in use meanwhile
   *   creating --REPLY verified--> none: the new tunnel supersedes the silent one
   *   fetching/creating --RECOVERY_TIMEOUT_MS--> none (unanswered probes start it again)
   *   fetching --an authenticated packet on the silent tunnel--> none (it was alive)
   *
   * Nothing is closed until a new tunnel is established (authenticated), so neither a
   * forged packet nor a lost one can make us drop a working tunnel.
   */
  private startRecovery(p: Peer, now: number): void {
    if (p.recovering === 0 || now - p.recovering >= RECOVERY_TIMEOUT_MS) {
      p.recovering = now;
      this.events.stallRecoveries++;
      this.rlog.log(
        now,
        "info",
        "recover",
        "peer silent: fetching its record to re-create the tunnel",
        () => ({
          peer: p.name,
        }),
      );
    }
    for (const t of p.tunnels) if (t.state === "creating") return; // a new tunnel is on its way
    // ask again at once if the last request is a retry interval old (no backoff while recovering)
    if (p.recordReq) p.recordReq.attempts = 0;
    this.requestRecord(p, now);
  }

  /** A verified record arrived for a recovering peer: create the new tunnel (HELLO, 0-RTT). */
  private recoverCreate(p: Peer, now: number): void {
    const cur = p.sendTunnel();
    if (
      now - p.recovering >= RECOVERY_TIMEOUT_MS ||
      (cur?.state === "established" && cur.lastRx > p.recovering)
    ) {
      p.recovering = 0; // given up, or the silent tunnel spoke again (it was a path outage)
      return;
    }
    for (const t of p.tunnels) if (t.state === "creating") return;
    if (!p.eph || !p.hostCert || !p.endpoint || p.eph.notAfter <= Math.floor(now / 1000)) return;
    const nt = this.startCreate(p, now);
    if (nt) this.sendCreate(nt, null, now);
  }

  /** Both hosts created a tunnel to each other at once: keep the one the lower host key created. */
  private closeDuplicates(peer: Peer, _t: Tunnel, now: number): void {
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

  // ------------------------------------------------------------------ sealed send

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

  setNonceFrom(buf: Buffer, off: number): void {
    const n = this.nonce;
    n.writeUInt32BE(0, 0);
    buf.copy(n, 4, off + 8, off + 16);
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
  private sealAndSend(t: Tunnel, buf: Buffer, pt: number, plainLen: number, now: number): void {
    if (t.srcBatch !== this.batchSeq && t.state === "established") this.checkSource(t, now);
    const e = t.cur!;
    const type = t.sendType;
    const start = pt - (type === PacketType.Reply ? REPLY_AD_BYTES : DATA_AD_BYTES);
    e.tidBuf.copy(buf, start);
    writeTypeCounter(buf, start, type, e.sendCounter++);
    if (type === PacketType.Reply) t.accept!.tR.copy(buf, start + REPLY_OFFSET_PUB);
    this.setNonceFrom(buf, start);
    aeadSeal(
      buf.subarray(pt, pt + plainLen + AEAD_TAG_BYTES),
      buf.subarray(pt, pt + plainLen),
      buf.subarray(start, pt),
      this.nonce,
      e.sendKey,
    );
    t.lastTx = now;
    this.out.sendUdp(buf, start, pt + plainLen + AEAD_TAG_BYTES - start, t.endpoint, 0, t.src);
  }

  private sendEmpty(t: Tunnel, now: number): void {
    this.sendControl(t, FrameType.Padding, null, now);
  }

  // ------------------------------------------------------------------ receive helpers

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

  // ------------------------------------------------------------------ connections (send)

  /** Established or replying tunnel: find or open the packet's connection and send it (copies). */
  private sendOnConn(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    const f = this.flow;
    if (!parseFlow(buf, off, len, f)) {
      this.drops.tunMalformed++;
      return;
    }
    const c = this.connForOut(t.peer, buf, off, len, f, now);
    if (c === null) return;
    let open = c.mine && !c.acked && c.txPackets < CONN_OPEN_REPEAT ? this.openBody(t, c) : null;
    const dataLen = CONN_DATA_HEADER_BYTES + len;
    if (
      open &&
      REPLY_AD_BYTES + FRAME_HEADER_BYTES + open.length + dataLen + AEAD_TAG_BYTES > MAX_UDP_PAYLOAD_BYTES
    ) {
      // no room for both: OPEN alone first (same order on the wire)
      this.sendControl(t, FrameType.ConnOpen, open, now);
      open = null;
    }
    const openLen = open ? FRAME_HEADER_BYTES + open.length : 0;
    const b = Buffer.allocUnsafe(64 + openLen + dataLen + AEAD_TAG_BYTES);
    let o = 64;
    if (open) o = writeFrame(b, o, FrameType.ConnOpen, open);
    buf.copy(b, o + CONN_DATA_HEADER_BYTES, off, off + len);
    this.sealConn(t, c, b, o + CONN_DATA_HEADER_BYTES, len, now, 64);
  }

  /**
   * The connection of an outbound packet (flow parsed into f): the existing one,
   * or a new one under the identity of whoever owns the flow. null when the
   * packet must not be sent; then a reject has been written to the TUN.
   */
  private connForOut(
    peer: Peer,
    buf: Buffer,
    off: number,
    len: number,
    f: FlowScratch,
    now: number,
  ): Conn | null {
    const ct = (peer.conns ??= new ConnTable());
    if (f.frag === FRAG_LATER) {
      // no ports to identify it by: it goes where its first fragment went, or nowhere
      const fc = ct.fragmentConn(buf, f, now);
      if (fc === null || fc.state !== CONN_OPEN) {
        this.drops.fragOrphan++;
        return null;
      }
      return fc;
    }
    let c = ct.lookupOut(buf, f);
    let who: LocalUser | null | "deny" | undefined;
    if (c !== null && recheckDue(c, buf, off, len, f, now)) {
      // a new TCP socket (SYN) or a UDP socket that may have replaced another on this tuple
      who = this.identity ? this.identity.identify(f, buf) : null;
      const sock = this.identity?.lastSocket ?? 0;
      const same = who === "deny" ? c.state !== CONN_OPEN : (who?.uid ?? null) === c.localUid;
      if (sock === c.sock && same) c.checkedAt = now;
      else {
        this.events.connsReidentified++;
        ct.remove(c);
        c = null;
      }
    }
    if (c !== null) {
      if (c.state === CONN_OPEN) {
        if (f.frag === FRAG_FIRST) ct.tieFragment(buf, f, c, now);
        return c;
      }
      this.drops.connDenied++;
      this.rejectLocal(buf, off, len);
      return null;
    }
    if (who === undefined) who = this.identity ? this.identity.identify(f, buf) : null;
    if (who === "deny") {
      this.drops.connLocalDeny++;
      this.rejectLocal(buf, off, len);
      return null;
    }
    c = ct.openMine(buf, f, now);
    if (c === null) {
      this.drops.connTableFull++;
      this.rejectLocal(buf, off, len);
      return null;
    }
    c.sock = this.identity?.lastSocket ?? 0;
    c.ownerUid = this.identity?.lastUid ?? -1;
    c.checkedAt = now;
    if (f.frag === FRAG_FIRST) ct.tieFragment(buf, f, c, now);
    if (who) {
      c.localUid = who.uid;
      c.localName = who.osUser;
      c.localCert = who.cert;
      c.localUser = who;
    }
    c.probe = Buffer.from(buf.subarray(off, off + len));
    this.events.connsOpened++;
    return c;
  }

  /** The OPEN body of a connection for tunnel t (cached per tunnel binding until answered). */
  private openBody(t: Tunnel, c: Conn): Buffer {
    if (c.openBody !== null && c.openBind === t.connBind) return c.openBody;
    const who = c.localUser;
    const cert = who ? who.cert.raw : null;
    const b = Buffer.alloc(connOpenSize(c.family, cert ? cert.length : null));
    const end = writeConnOpen(
      b,
      0,
      c.cid,
      who ? ConnKind.User : ConnKind.Host,
      c.proto,
      c.family,
      c.lport,
      c.rport,
      c.local,
      0,
      c.remote,
      0,
      cert,
    );
    if (who) {
      const k = this.userKeyFor(t.peer, who);
      if (k && t.connBind)
        connAuth(k, t.connBind, b, 0, end - CONN_AUTH_BYTES).copy(b, end - CONN_AUTH_BYTES);
    }
    c.openBody = b;
    c.openBind = t.connBind;
    return b;
  }

  /** K_u for a local user towards a peer host, computed once per (user key, peer). */
  private userKeyFor(peer: Peer, who: LocalUser): Buffer | null {
    const m = (peer.userKeys ??= new Map());
    const id = who.cert.publicKey.latin1Slice(0, 32);
    let k = m.get(id);
    if (k === undefined) {
      if (!peer.hostX || !peer.hostCert) return null;
      const nk = userKeyOpener(who.x, who.cert.publicKey, peer.hostX, peer.hostCert.publicKey);
      if (!nk) return null;
      m.set(id, nk);
      k = nk;
    }
    return k;
  }

  /** Tell the local application at once: TCP RST or ICMP unreachable, as if from the destination. */
  private rejectLocal(buf: Buffer, off: number, len: number): void {
    const r = synthReject(buf, off, len);
    if (r) this.out.writeTun(r, 0, r.length);
  }

  // ------------------------------------------------------------------ connections (receive)

  /** CONN_DATA: the packet must carry exactly its connection's flow; then it goes to the TUN. */
  deliverConn(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    if (len < CONN_ID_BYTES + 20) {
      this.drops.badFrames++;
      return;
    }
    const wire = buf.readUInt32BE(off);
    const ct = t.peer.conns;
    const c = ct === null ? undefined : ct.byKey.get(keyOfWire(wire));
    if (c === undefined) {
      this.drops.noConn++;
      this.sendConnReset(t, wire, now);
      return;
    }
    if (c.state !== CONN_OPEN) {
      this.drops.connDenied++;
      if (!c.mine && now - c.lastDenySent >= CONTROL_RETRANSMIT_MS) {
        c.lastDenySent = now;
        this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(c.wireId, c.denyReason), now);
      }
      return;
    }
    const f = this.flowIn;
    const p = off + CONN_ID_BYTES;
    if (!parseFlow(buf, p, len - CONN_ID_BYTES, f) || !ConnTable.matchesIn(c, buf, f)) {
      this.drops.connFlow++;
      return;
    }
    if (!c.acked) {
      c.acked = true;
      c.probe = null;
      c.openBody = null;
      c.openBind = null;
    }
    c.rxPackets++;
    c.lastUsed = now;
    this.out.writeTun(buf, p, len - CONN_ID_BYTES);
  }

  private sendConnReset(t: Tunnel, wire: number, now: number): void {
    const p = t.peer;
    if (p.resetBudget <= 0) return;
    p.resetBudget--;
    this.sendControl(t, FrameType.ConnReset, encodeConnReset(keyOfWire(wire)), now);
  }

  /**
   * CONN_OPEN from the peer: check the flow belongs to the two hosts, authenticate
   * the user (cached K_u: one keyed hash), decide by policy, remember the answer.
   */
  private onConnOpen(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    const o = readConnOpen(buf, off, len);
    if (o === null) {
      this.drops.badFrames++;
      return;
    }
    const peer = t.peer;
    const ct = (peer.conns ??= new ConnTable());
    const key = keyOfWire(o.cid);
    const ex = ct.byKey.get(key);
    if (ex !== undefined) {
      // the same OPEN again (repeated with the first packets, or a resent CREATE): nothing new
      if (
        ex.proto === o.proto &&
        ex.rport === o.sport &&
        ex.lport === o.dport &&
        sameBytes(ex.remote, buf, o.srcOff, o.family)
      )
        return;
      // the peer reuses the id (it restarted): its new connection replaces the old one
      ct.remove(ex);
    }
    // the opener's address must be the peer's, the other side ours
    const v4 = o.family === 4;
    if (
      (v4 ? this.routes.lookup4(buf.readUInt32BE(o.srcOff)) : this.routes.lookup6(buf, o.srcOff)) !== peer
    ) {
      this.drops.innerSrc++;
      this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(key, DenyReason.BadFlow), now);
      return;
    }
    if (
      (v4 ? this.ours.lookup4(buf.readUInt32BE(o.dstOff)) : this.ours.lookup6(buf, o.dstOff)) === undefined
    ) {
      this.drops.innerDst++;
      this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(key, DenyReason.BadFlow), now);
      return;
    }
    // a new connection of the peer on a flow we hold under another id: a new socket there
    // (its host identified it afresh); the old connection and its identity go
    const same = ct.findFlow(o.proto, o.family, buf, o.dstOff, o.dport, o.srcOff, o.sport, false);
    if (same !== null) {
      ct.remove(same);
      this.events.connsReidentified++;
    }
    let reason = 0;
    let user: { cert: UserCert; fingerprint: string } | null = null;
    let why = "";
    if (o.kind === ConnKind.User) {
      const v = this.userKeys.lookup(buf.subarray(o.certOff, o.certOff + o.certLen), Math.floor(now / 1000));
      if (!v.ok) {
        reason = DenyReason.BadCert;
        why = v.reason;
        this.drops.connBadCert++;
      } else if (
        !t.connBind ||
        !equal(
          connAuth(v.k, t.connBind, buf, o.bodyOff, o.authOff),
          buf.subarray(o.authOff, o.authOff + CONN_AUTH_BYTES),
        )
      ) {
        reason = DenyReason.BadAuth;
        why = "authenticator";
        this.drops.connBadAuth++;
      } else {
        user = { cert: v.cert, fingerprint: fingerprint(v.cert.publicKey) };
        if (v.cached) this.events.userAuthCached++;
        else this.events.userAuthFull++;
      }
    }
    const c = ct.openTheirs(o.cid, o.proto, o.family, buf, o.srcOff, o.sport, o.dstOff, o.dport, now);
    if (c === null) {
      this.drops.connTableFull++;
      this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(key, DenyReason.TableFull), now);
      return;
    }
    c.peerUser = user;
    c.sessionId = t.sessionId;
    if (reason === 0 && this.policy !== null) {
      const hc = peer.hostCert!;
      const me = this.opts.hostCert;
      const d = evaluate(this.policy, {
        user: user ? { name: user.cert.name, groups: user.cert.groups } : undefined,
        host: { name: hc.name, groups: hc.groups },
        dstHost: me.name,
        dstGroups: me.groups,
        proto: o.proto,
        dport: o.proto === 6 || o.proto === 17 ? o.dport : undefined,
      });
      if (d.action === "deny") {
        reason = DenyReason.Policy;
        why = d.reason;
      }
    }
    if (reason !== 0) {
      c.state = CONN_DENIED;
      c.deniedAt = now;
      c.denyReason = reason;
      c.lastDenySent = now;
      this.events.connsDenied++;
      this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(c.wireId, reason), now);
      this.rlog.log(now, "info", "conn-denied", "connection refused", () => ({
        peer: peer.name,
        user: user ? user.cert.name : o.kind === ConnKind.User ? "(unverified)" : null,
        flow: describeConn(c),
        reason: DENY_REASON_NAMES[reason],
        why,
      }));
      return;
    }
    this.events.connsAccepted++;
    if (this.log.enabled("debug"))
      this.log.log("debug", "connection accepted", {
        peer: peer.name,
        user: user ? user.cert.name : null,
        flow: describeConn(c),
      });
  }

  /**
   * After a reload, judge every open connection again.
   *   theirs (the peer opened it): the current policy, as at its OPEN. No longer allowed:
   *     denied (CONN_DENY to the peer, counted in drops.connPolicyReset); the next packet
   *     either way gets the reject path's answer (TCP RST, ICMP administratively
   *     prohibited) in its own host, as for a refused OPEN.
   *   mine (opened here): `mineStill(c)` (the daemon: its owner still maps to the same
   *     identity under the new user store, users.unmapped and users.asHost). When not,
   *     it is forgotten: its next packet is identified afresh (and refused, or opened
   *     under the new identity and judged by the peer).
   * Still allowed: nothing changes. Counted in events.connsRejudged.
   */
  rejudge(
    now: number,
    mineStill?: (c: Conn) => boolean,
  ): { kept: number; reset: number; reidentified: number } {
    let kept = 0;
    let reset = 0;
    let reidentified = 0;
    const me = this.opts.hostCert;
    for (const peer of this.peers.values()) {
      const ct = peer.conns;
      if (ct === null) continue;
      for (const c of [...ct.byKey.values()]) {
        if (c.state !== CONN_OPEN) continue;
        this.events.connsRejudged++;
        if (c.mine) {
          if (mineStill === undefined || mineStill(c)) kept++;
          else {
            ct.remove(c);
            reidentified++;
          }
          continue;
        }
        const hc = peer.hostCert;
        if (this.policy === null || !hc) {
          kept++;
          continue;
        }
        const u = c.peerUser;
        const d = evaluate(this.policy, {
          user: u ? { name: u.cert.name, groups: u.cert.groups } : undefined,
          host: { name: hc.name, groups: hc.groups },
          dstHost: me.name,
          dstGroups: me.groups,
          proto: c.proto,
          dport: c.proto === 6 || c.proto === 17 ? c.lport : undefined,
        });
        if (d.action === "allow") {
          kept++;
          continue;
        }
        this.drops.connPolicyReset++;
        reset++;
        this.resetTheirs(peer, c, DenyReason.Policy, d.reason, now);
      }
    }
    return { kept, reset, reidentified };
  }

  /** An open connection the peer opened is refused from now on: denied, CONN_DENY, logged. */
  private resetTheirs(peer: Peer, c: Conn, reason: number, why: string, now: number): void {
    c.state = CONN_DENIED;
    c.deniedAt = now;
    c.denyReason = reason;
    c.lastDenySent = now;
    const t = peer.sendTunnel();
    if (t !== null && t.canSend)
      this.sendControl(t, FrameType.ConnDeny, encodeConnDeny(c.wireId, reason), now);
    this.rlog.log(now, "info", "conn-rejudged", "open connection refused", () => ({
      peer: peer.name,
      user: c.peerUser ? c.peerUser.cert.name : null,
      flow: describeConn(c),
      reason: DENY_REASON_NAMES[reason],
      why,
    }));
  }

  /**
   * Connections that outlived their user certificate (from the coarse tick): one the peer
   * opened is refused (bad-certificate, drops.connCertExpired, the next packet gets the
   * reject); one opened here is forgotten, so its next packet is identified afresh (an
   * expired identity is refused locally, never replaced by the host).
   */
  private expireUserConns(peer: Peer, ct: ConnTable, now: number): void {
    const nowSec = now / 1000;
    for (const c of [...ct.byKey.values()]) {
      if (c.state !== CONN_OPEN) continue;
      const cert = c.mine ? c.localCert : (c.peerUser?.cert ?? null);
      if (cert === null || (nowSec < cert.notAfter && nowSec >= cert.notBefore)) continue;
      this.drops.connCertExpired++;
      if (c.mine) ct.remove(c);
      else this.resetTheirs(peer, c, DenyReason.BadCert, "user certificate expired", now);
    }
  }

  /** CONN_DENY: the peer refused a connection we opened; answer the application at once. */
  private onConnDeny(t: Tunnel, buf: Buffer, off: number, len: number, now: number): void {
    if (len !== 5) {
      this.drops.badFrames++;
      return;
    }
    const c = t.peer.conns?.byKey.get(keyOfWire(buf.readUInt32BE(off)));
    if (c === undefined || !c.mine || c.state !== CONN_OPEN) return;
    c.state = CONN_DENIED;
    c.deniedAt = now;
    c.denyReason = buf[off + 4]!;
    this.events.connsRefused++;
    if (c.probe) this.rejectLocal(c.probe, 0, c.probe.length);
    c.probe = null;
    c.openBody = null;
    this.rlog.log(now, "info", "conn-refused", "connection refused by peer", () => ({
      peer: t.peer.name,
      user: c.localName,
      flow: describeConn(c),
      reason: DENY_REASON_NAMES[c.denyReason] ?? String(c.denyReason),
    }));
  }

  /** CONN_RESET: the peer holds no such connection; forget it (the next packet opens a new one). */
  private onConnReset(t: Tunnel, buf: Buffer, off: number, len: number): void {
    if (len !== 4) {
      this.drops.badFrames++;
      return;
    }
    const ct = t.peer.conns;
    const c = ct?.byKey.get(keyOfWire(buf.readUInt32BE(off)));
    if (c === undefined || ct == null) return;
    ct.remove(c);
    this.events.connResets++;
  }

  /**
   * whois: the connections whose remote side is addr (and port, when given), on every
   * peer; `visible` (the API caller's view) may hide some.
   */
  connsFor(addr: string, port: number | null, visible?: (c: Conn) => boolean): ConnInfo[] {
    const out: ConnInfo[] = [];
    for (const p of this.peers.values()) {
      const ct = p.conns;
      if (ct === null || !p.hostCert) continue;
      for (const c of ct.byKey.values()) {
        if (ipString(c.remote, c.family) !== addr) continue;
        if (port !== null && c.rport !== port) continue;
        if (visible !== undefined && !visible(c)) continue;
        out.push(this.connInfo(p, c));
      }
    }
    return out;
  }

  private connInfo(p: Peer, c: Conn): ConnInfo {
    const hc = p.hostCert!;
    const u = c.peerUser;
    return {
      direction: c.mine ? "out" : "in",
      proto: c.proto,
      local: endpointString(c.local, c.family, c.lport),
      remote: endpointString(c.remote, c.family, c.rport),
      peerHost: { name: hc.name, groups: [...hc.groups], fingerprint: fingerprint(hc.publicKey) },
      peerUser: u ? { name: u.cert.name, groups: [...u.cert.groups], fingerprint: u.fingerprint } : null,
      localUser:
        c.localUid !== null
          ? { uid: c.localUid, name: c.localName ?? String(c.localUid), cert: c.localCert?.name ?? "" }
          : null,
      ownerUid: c.mine && c.ownerUid >= 0 ? c.ownerUid : null,
      session: c.sessionId || (p.sendTunnel()?.sessionId ?? ""),
      state: c.state === CONN_OPEN ? "open" : "denied",
      denyReason: c.state === CONN_OPEN ? null : (DENY_REASON_NAMES[c.denyReason] ?? String(c.denyReason)),
      openedAt: c.openedAt,
      lastUsed: c.lastUsed,
      rxPackets: c.rxPackets,
      txPackets: c.txPackets,
    };
  }

  /** Every connection (status). */
  connCount(): number {
    let n = 0;
    for (const p of this.peers.values()) n += p.conns?.size ?? 0;
    return n;
  }

  private onControlFrame(t: Tunnel, type: number, buf: Buffer, off: number, len: number, now: number): void {
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
        if (this.onDirFrame !== null) this.onDirFrame(t, type, buf, off, len, now);
        else this.drops.badFrames++;
        return;
      default:
        this.drops.badFrames++;
    }
  }

  // ------------------------------------------------------------------ rekey

  startRekey(t: Tunnel, now: number): void {
    if (t.rekey || t.role !== "initiator" || t.state !== "established") return;
    const kp = dhKeyPair();
    t.rekey = { seq: ++t.rekeySeq, kp, sentAt: now, firstSentAt: now };
    this.sendControl(t, FrameType.Rekey, encodeRekey(t.rekey.seq, kp.publicKey), now);
  }

  private onRekey(t: Tunnel, seq: number, pub: Buffer, now: number): void {
    if (t.role !== "responder") {
      this.drops.badFrames++;
      return;
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
    t.next = new Epoch(nk.tid, nk.r2i, nk.i2r, nk.ck, now, base.number + 1);
    this.tids.set(t.next.tid, t);
    const body = encodeRekey(seq, kp.publicKey);
    t.lastRekeyAck = { seq, body };
    this.sendControl(t, FrameType.RekeyAck, body, now);
  }

  private onRekeyAck(t: Tunnel, seq: number, pub: Buffer, now: number): void {
    const r = t.rekey;
    if (!r || r.seq !== seq) return; // duplicate or stale ack
    const d = dh(r.kp.secretKey, pub);
    zero(r.kp.secretKey);
    t.rekey = null;
    if (!d) {
      this.drops.badFrames++;
      return;
    }
    const base = t.cur!;
    const nk = deriveRekey(base.ck, d);
    zero(d);
    const e = new Epoch(nk.tid, nk.i2r, nk.r2i, nk.ck, now, base.number + 1);
    this.tids.set(e.tid, t);
    this.switchEpoch(t, e, now);
    // announce the new epoch at once so the responder switches too
    this.sendControl(t, FrameType.Keepalive, null, now);
  }

  /** Make `e` current; the old current epoch stays receivable for a grace period. */
  switchEpoch(t: Tunnel, e: Epoch, now: number): void {
    const moved = e === t.move;
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
        ? new Epoch(tid, k.i2r, k.r2i, p.ck, now, p.number)
        : new Epoch(tid, k.r2i, k.i2r, p.ck, now, p.number);
    t.movePending = null; // its chain key now lives (copied) in the epoch and was zeroed here
    return t.move;
  }

  private dropPendingMove(t: Tunnel): void {
    const p = t.movePending;
    if (!p) return;
    if (t.cur?.tid !== p.tid && t.prev?.tid !== p.tid && t.next?.tid !== p.tid) this.tids.delete(p.tid);
    zero(p.ck);
    t.movePending = null;
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
  private moveNow(t: Tunnel, now: number): boolean {
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
  private checkSource(t: Tunnel, now: number): boolean {
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

  retireEpoch(t: Tunnel, e: Epoch): void {
    if (e.tid !== t.tid || t.state === "closed") this.tids.delete(e.tid);
    else if (t.cur?.tid !== e.tid && t.next?.tid !== e.tid) this.tids.delete(e.tid);
    e.erase();
    if (t.prev === e) t.prev = null;
    if (t.next === e) t.next = null;
    if (t.move === e) t.move = null;
  }

  // ------------------------------------------------------------------ entry points
  // (the batch entry points are in engine.ts)

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
      default:
        this.drops.malformed++;
    }
  }

  // ------------------------------------------------------------------ close, timers

  closeTunnel(t: Tunnel, _now: number, reason: string): void {
    if (t.state === "closed") return;
    for (const e of [t.cur, t.prev, t.next, t.move]) if (e) this.tids.delete(e.tid);
    if (t.movePending) this.tids.delete(t.movePending.tid);
    this.tids.delete(t.tid);
    t.eraseAll();
    const i = t.peer.tunnels.indexOf(t);
    if (i >= 0) t.peer.tunnels.splice(i, 1);
    this.tunnelCount--;
    this.events.tunnelsClosed++;
    this.log.log(reason === "shutdown" ? "debug" : "info", "tunnel closed", { peer: t.peer.name, reason });
    this.opts.onEvent?.("tunnel-closed", { peer: t.peer.name, reason });
  }

  /**
   * Seal `msg` in place under a one-time `key` (then zeroed): the first `adBytes` (header with
   * its random counter, which is also the nonce) are associated data, the rest up to the
   * tag is the plaintext. RECORD_RESPONSE and STALE are sealed this way.
   */
  private sealInPlace(msg: Buffer, adBytes: number, key: Buffer): void {
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

  /** Coarse timer: call every TICK_MS. */
  tick(now: number): void {
    this.lastTick = now;
    this.batchSeq++;
    this.load.tick(now);
    if (now - this.lastSweep >= 5000) {
      this.buckets.sweep(now);
      this.lastSweep = now;
    }
    if (this.eph.tick(now)) {
      this.events.ephemeralRotations++;
      this.opts.onEphemeralRotated?.(this.eph.current!.cert);
    }
    const nowSec = now / 1000;
    for (const p of [...this.peers.values(), ...this.unresolved.values()]) {
      const inUse = p.sendTunnel();
      for (const t of p.tunnels.slice()) this.tickTunnel(t, now, t === inUse);
      if (p.recovering !== 0 && now - p.recovering >= RECOVERY_TIMEOUT_MS) p.recovering = 0;
      p.resetBudget = 16;
      if (p.conns !== null && now - p.lastConnSweep >= 5000) {
        p.lastConnSweep = now;
        p.conns.sweep(now);
        this.expireUserConns(p, p.conns, now);
      }
      if (p.configured) {
        const e = p.eph;
        const due = !e || nowSec >= e.notBefore + (e.notAfter - e.notBefore) / 2;
        if (due) this.requestRecord(p, now);
      }
      if (!p.configured && p.tunnels.length === 0 && now - p.lastSeen > this.opts.idleTimeoutMs) {
        this.routes.removeValue(p);
        if (p.hostCert) this.peers.delete(p.hostCert.publicKey.latin1Slice(0, 32));
      }
    }
    this.out.flush();
  }

  private tickTunnel(t: Tunnel, now: number, inUse: boolean): void {
    switch (t.state) {
      case "creating":
        if (now - t.createdAt > CREATE_TIMEOUT_MS) this.closeTunnel(t, now, "create-timeout");
        return;
      case "replying":
      case "established":
        // never confirmed by its creator: half-open state, short-lived
        const unconfirmedMs = this.opts.unconfirmedTimeoutMs ?? DEFAULT_UNCONFIRMED_TIMEOUT_MS;
        if (t.state === "replying" && now - t.createdAt > unconfirmedMs) {
          this.closeTunnel(t, now, "unconfirmed");
          this.events.unconfirmedExpired++;
          return;
        }
        if (now - t.lastRx > this.opts.idleTimeoutMs) {
          this.events.tunnelsIdleClosed++;
          this.closeTunnel(t, now, "idle");
          return;
        }
        if (t.prev && now >= t.prevUntil) this.retireEpoch(t, t.prev);
        if (t.rekey && now - t.rekey.sentAt >= CONTROL_RETRANSMIT_MS) {
          t.rekey.sentAt = now;
          this.sendControl(t, FrameType.Rekey, encodeRekey(t.rekey.seq, t.rekey.kp.publicKey), now);
        }
        if (
          t.role === "initiator" &&
          t.state === "established" &&
          (now - t.lastRekeyAt >= this.opts.rekeyAfterMs || t.cur!.sendCounter >= REKEY_AFTER_PACKETS)
        )
          this.startRekey(t, now);
        if (this.opts.keepaliveMs > 0 && now - t.lastTx >= this.opts.keepaliveMs) {
          this.events.keepalivesSent++;
          this.sendControl(t, FrameType.Keepalive, null, now);
        }
        if (inUse && t.state === "established") this.tickStall(t, now);
        return;
      case "closed":
        return;
    }
  }

  /** Send CLOSE on every tunnel (best effort) and erase all secrets. */
  close(now: number): void {
    for (const p of [...this.peers.values(), ...this.unresolved.values()]) {
      for (const t of p.tunnels.slice()) {
        if (t.canSend && t.state === "established")
          this.sendControl(t, FrameType.Close, Buffer.from([0]), now);
        this.closeTunnel(t, now, "shutdown");
      }
      p.conns?.clear();
      if (p.userKeys) for (const k of p.userKeys.values()) zero(k);
      p.userKeys = null;
    }
    this.userKeys.clear();
    this.out.flush();
    this.eph.close();
    this.puzzles.close();
    this.solver.close();
    if (this.reply) zero(this.reply.kp.secretKey);
    this.reply = null;
    zero(this.hostX);
    zero(this.hostSk);
  }

  get lastTickAt(): number {
    return this.lastTick;
  }
}

function ipString(b: Buffer, family: 4 | 6): string {
  return family === 4 ? formatIp4(b, 0) : formatIp6(b, 0);
}

function endpointString(b: Buffer, family: 4 | 6, port: number): string {
  return family === 4 ? `${ipString(b, 4)}:${port}` : `[${ipString(b, 6)}]:${port}`;
}

function describeConn(c: Conn): string {
  const l = endpointString(c.local, c.family, c.lport);
  const r = endpointString(c.remote, c.family, c.rport);
  return `${c.proto} ${c.mine ? `${l} -> ${r}` : `${r} -> ${l}`}`;
}

function sameBytes(a: Buffer, buf: Buffer, off: number, family: 4 | 6): boolean {
  return a.compare(buf, off, off + (family === 4 ? 4 : 16), 0, family === 4 ? 4 : 16) === 0;
}
