/**
 * Tunnel and key-epoch state. Transitions are driven by the engine
 * (engine.ts for the control path, inside.ts / outside.ts for data); this file
 * holds the state and the small operations on it.
 *
 * Tunnel states (initiator = the host that sent CREATE):
 *
 *   initiator:  creating --REPLY verified--> established --CLOSE/idle/timeout--> closed
 *                  |  \--STALE verified--> (replaced by a new creating tunnel)
 *                  \--no REPLY within CREATE_TIMEOUT--> closed
 *   responder:  (CREATE verified) replying --first DATA under the new key--> established --> closed
 *   either:     established --a newer tunnel with the same peer established--> closed ("superseded")
 *
 * While `creating`, the initiator sends CREATE packets (each self-contained:
 * HELLO + inner packets, sealed with k0). While `replying`, the responder sends
 * REPLY packets (its per-tunnel key in the header, sealed with the epoch-0
 * key) and still accepts CREATE packets under k0.
 *
 * Key epochs: `cur` is used to send and receive; after a rekey, `prev` is still
 * accepted on receive until `prevUntil`, then zeroed. A rekey responder holds
 * the new epoch in `next` (receive only) until the initiator's first packet
 * under it arrives.
 */
import type { DhKeyPair } from "../crypto/sodium.js";
import { zero } from "../crypto/sodium.js";
import { AeadKey, AeadSuite } from "../crypto/aead.js";
import type { EphemeralCert, HostCert } from "../wire/cert.js";
import { PacketType } from "../wire/packet.js";
import type { ConnTable } from "../conn/conns.js";
import type { SolveTicket } from "../dos/solver.js";
import { ReplayWindow } from "./replay.js";
import type { CounterBlock } from "./shared.js";

export type TunnelState = "creating" | "replying" | "established" | "closed";
export type Role = "initiator" | "responder";

const REPLAY_BYTES = ReplayWindow.bytesFor();

export class Epoch {
  sendCounter = 0;
  /**
   * Set when data-path workers send under this epoch too (src/tunnel/shared.ts): every
   * thread takes its counters in blocks from one shared cell, so no counter is used twice.
   */
  shared: CounterBlock | null = null;
  /** a data-path worker owns this epoch's receive side (replay window): this thread drops its DATA */
  rxElsewhere = false;
  readonly replay: ReplayWindow;
  /** 8-byte TID as a latin1 string (table key) */
  readonly tid: string;
  /** tid (8) | send key (32) | recv key (32) | chain key (32) | replay bitmap, one allocation; fields are views */
  private readonly mem: Buffer;
  readonly tidBuf: Buffer;
  readonly sendKey: Buffer;
  readonly recvKey: Buffer;
  readonly ck: Buffer;
  /** the send and receive keys with the tunnel's AEAD suite (crypto/aead.ts; contexts made on first use) */
  readonly tx: AeadKey;
  readonly rx: AeadKey;
  constructor(
    tid: Buffer,
    sendKey: Buffer,
    recvKey: Buffer,
    ck: Buffer,
    public readonly startedAt: number,
    public readonly number: number,
    suite: AeadSuite = AeadSuite.ChaCha20Poly1305,
  ) {
    // one backing store instead of four: an idle tunnel is mostly its epoch (docs/PERFORMANCE.md)
    // allocUnsafe takes small buffers from Node's shared pool (no backing store of their own);
    // every byte is written below
    const m = Buffer.allocUnsafe(104 + REPLAY_BYTES);
    // the replay bitmap lives after the keys (pool offsets are 8-byte aligned, 104 is too)
    m.fill(0, 104);
    this.replay = new ReplayWindow(
      undefined,
      new Uint32Array(m.buffer, m.byteOffset + 104, REPLAY_BYTES / 4),
    );
    tid.copy(m, 0, 0, 8);
    sendKey.copy(m, 8);
    recvKey.copy(m, 40);
    ck.copy(m, 72);
    zero(sendKey);
    zero(recvKey);
    zero(ck);
    this.mem = m;
    this.tidBuf = m.subarray(0, 8);
    this.sendKey = m.subarray(8, 40);
    this.recvKey = m.subarray(40, 72);
    this.ck = m.subarray(72, 104);
    this.tid = m.latin1Slice(0, 8);
    this.tx = new AeadKey(suite, this.sendKey, true);
    this.rx = new AeadKey(suite, this.recvKey, false);
  }
  erase(): void {
    this.tx.erase();
    this.rx.erase();
    zero(this.mem.subarray(8, 104));
  }
  /** give the OpenSSL contexts back (an idle tunnel); the keys stay and make new ones on use */
  release(): void {
    this.tx.release();
    this.rx.release();
  }
  get suite(): AeadSuite {
    return this.tx.suite;
  }
  /** The next send counter (-1: none left, do not send). seq: the caller's batch number. */
  nextCounter(seq: number): number {
    const s = this.shared;
    if (s === null) return this.sendCounter++;
    const n = s.take(seq);
    if (n >= this.sendCounter) this.sendCounter = n + 1;
    return n;
  }
}

/** Creation secrets of the initiator, erased when the REPLY arrives or creation fails. */
export interface CreateState {
  keyId: number;
  tI: DhKeyPair;
  ck1: Buffer;
  k0: Buffer;
  ss: Buffer;
  hello: Buffer;
  counter: number;
  minSize: number;
  /** inner packets sent 0-RTT (copies), resent after a stale-key answer or a puzzle */
  queue: QueuedPacket[];
  staleRetried: boolean;
  /** notBefore of the ephemeral key used: a STALE must carry a key at least this new */
  keyNotBefore: number;
  /** the responder's puzzle, solved; sent with every further CREATE of this attempt */
  puzzle?: { window: number; difficulty: number; cookie: Buffer; solution: Buffer };
  /** a puzzle of this attempt being solved off the event loop (src/dos/solver.ts) */
  solving: SolveTicket | null;
  /** the AEAD suite this creation asks for (named in the HELLO) */
  suite: AeadSuite;
}

/** An inner packet sent 0-RTT and the CREATE datagrams that carried it (src/tunnel/retry.ts). */
export interface QueuedPacket {
  pkt: Buffer;
  /** n × (TID | counter) of earlier sends, the body of the RETRY frame of the next one */
  sent: Buffer;
}

/** Responder's view of creation: the k0 receive key and its window, kept until confirmed. */
export interface AcceptState {
  k0: Buffer;
  replay: ReplayWindow;
  tR: Buffer; // responder per-tunnel public key, sent in every REPLY header
}

export interface PendingRekey {
  seq: number;
  kp: DhKeyPair;
  sentAt: number;
  firstSentAt: number;
}

export class Tunnel {
  state: TunnelState;
  cur: Epoch | null = null;
  prev: Epoch | null = null;
  prevUntil = 0;
  next: Epoch | null = null;
  /** precomputed epoch for the next move (receive-ready; becomes current when either end moves) */
  move: Epoch | null = null;
  /** the move epoch before first use: its TID (registered) and chain key only */
  movePending: { tid: string; ck: Buffer; number: number } | null = null;
  /**
   * The pending move of the epoch a rekey just replaced, kept receivable until
   * `crossUntil` (OLD_EPOCH_GRACE_MS): if the peer moved while our rekey was in flight,
   * its packets come under this TID and we follow the move (base.ts crossEpoch).
   */
  crossMove: { tid: string; ck: Buffer; number: number } | null = null;
  /** the crossing move epoch, made on first use (before the AEAD check; followed only after it) */
  crossEp: Epoch | null = null;
  crossUntil = 0;
  migrations = 0;
  /** local source address last used towards the peer (from the route-source probe) */
  src: Buffer | null = null;
  srcBatch = -1;
  create: CreateState | null = null;
  accept: AcceptState | null = null;
  rekey: PendingRekey | null = null;
  rekeySeq = 0;
  /** last REKEY answered (responder): seq and the ACK body to resend on duplicates */
  lastRekeyAck: { seq: number; body: Buffer } | null = null;
  /** current peer endpoint (20-byte record); moves only on authenticated packets */
  readonly endpoint: Buffer;
  readonly createdAt: number;
  lastRx = 0;
  lastTx = 0;
  /**
   * Stall probe (engine.tickStall): `lastRx` and `txPackets` as of the last tick that saw a
   * new authenticated packet, so the tick knows whether data was sent since; and the probe
   * in progress, if any (answered when lastRx moves past `rxAt`).
   */
  rxMark = 0;
  txAtRx = 0;
  probe: { rxAt: number; sentAt: number; sent: number } | null = null;
  lastRekeyAt = 0;
  establishedAt = 0;
  /**
   * Last round-trip sample, ms (-1: none yet): the creation handshake (initiator: CREATE to
   * REPLY; responder: REPLY to the first packet under the new key), then each rekey the
   * initiator of it saw answered without a retransmission. Status and the web view only.
   */
  rttMs = -1;
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  rekeys = 0;
  roams = 0;
  /** tick in which an endpoint probe was last answered (one answer per tick) */
  probeAnsweredTick = -1;
  /**
   * Tunnel session id (whois, status; never on the wire): H(ck; "session") of the first
   * epoch, so both ends show the same value and an application can bind its own
   * authentication to it (tcpcrypt's session id). "" until the tunnel has keys.
   */
  sessionId = "";
  /**
   * Connection binding: H(ck1; "mintun conn bind v1"), known to both ends from the
   * creation on (so 0-RTT connections can use it); user authenticators cover it.
   */
  connBind: Buffer | null = null;
  /**
   * The AEAD suite of every epoch of this tunnel (docs/PROTOCOL.md "AEAD suites"): the
   * creator's choice, named in its HELLO and bound into the tunnel secret; fixed for life.
   */
  suite: AeadSuite = AeadSuite.ChaCha20Poly1305;

  constructor(
    public readonly role: Role,
    public readonly tid: string,
    public readonly peer: Peer,
    endpoint: Buffer,
    now: number,
  ) {
    this.state = role === "initiator" ? "creating" : "replying";
    this.endpoint = Buffer.allocUnsafe(endpoint.length);
    endpoint.copy(this.endpoint);
    this.createdAt = now;
    this.lastRx = now;
  }

  /** Packet type used for sealed sends in the current state. */
  get sendType(): number {
    return this.state === "replying" ? PacketType.Reply : PacketType.Data;
  }

  get canSend(): boolean {
    return (this.state === "established" || this.state === "replying") && this.cur !== null;
  }

  eraseCreate(): void {
    const c = this.create;
    if (!c) return;
    zero(c.tI.secretKey);
    zero(c.ck1);
    zero(c.k0);
    zero(c.ss);
    c.queue.length = 0;
    c.solving?.cancel();
    c.solving = null;
    this.create = null;
  }

  eraseAccept(): void {
    if (!this.accept) return;
    zero(this.accept.k0);
    this.accept = null;
  }

  /** Erase every secret this tunnel holds. Idempotent. */
  eraseAll(): void {
    this.eraseCreate();
    this.eraseAccept();
    this.cur?.erase();
    this.prev?.erase();
    this.next?.erase();
    this.move?.erase();
    if (this.movePending) zero(this.movePending.ck);
    this.movePending = null;
    if (this.crossMove) zero(this.crossMove.ck);
    this.crossMove = null;
    this.crossEp?.erase();
    this.crossEp = null;
    if (this.rekey) zero(this.rekey.kp.secretKey);
    this.rekey = null;
    this.cur = this.prev = this.next = this.move = null;
    zero(this.connBind);
    this.state = "closed";
  }
}

/**
 * A remote host. Known from configuration (name + endpoint, record fetched
 * from the host itself) or learned from a verified CREATE.
 */
export class Peer {
  hostCert: HostCert | null = null;
  /** X25519 form of the host key, for ss */
  hostX: Buffer | null = null;
  eph: EphemeralCert | null = null;
  /** where to send: configured, from the record, or the last authenticated source */
  endpoint: Buffer | null;
  tunnels: Tunnel[] = [];
  /** inner packets waiting for a record (copies) */
  pending: Buffer[] = [];
  /** the record request in flight: its TID and our one-time key (secret zeroed when answered or replaced) */
  recordReq: { tid: string; sentAt: number; attempts: number; q: DhKeyPair } | null = null;
  recordFetchedAt = 0;
  /** why the last record answered was refused (records.ts; null once one is accepted): for status */
  recordRefused: string | null = null;
  lastSeen = 0;
  /** connections with this host (src/conn/conns.ts), both directions, over any of its tunnels */
  conns: ConnTable | null = null;
  /** opener side K_u per local user key (src/conn/auth.ts) */
  userKeys: Map<string, Buffer> | null = null;
  /** CONN_RESET answers left this tick */
  resetBudget = 16;
  lastConnSweep = 0;
  /**
   * Recovery in progress since (ms; 0 = none): the tunnel in use went unanswered, the
   * peer's record is being fetched and a new tunnel created beside the silent one
   * (engine.startRecovery).
   */
  recovering = 0;
  /** a peer known only by its endpoint (a directory): its record may carry any name */
  anyName = false;
  /** puzzles handed to the solver for this peer in the current puzzle window (creator side) */
  puzzleWindow = -1;
  puzzleSolves = 0;

  constructor(
    public name: string,
    endpoint: Buffer | null,
    public readonly configured: boolean,
  ) {
    this.endpoint = endpoint ? Buffer.from(endpoint) : null;
  }

  /** The tunnel to send on: an established one (newest first), else a replying one, else a creating one. */
  sendTunnel(): Tunnel | null {
    let best: Tunnel | null = null;
    for (const t of this.tunnels) {
      if (t.state === "closed") continue;
      if (!best || rank(t) > rank(best) || (rank(t) === rank(best) && t.createdAt > best.createdAt)) best = t;
    }
    return best;
  }
}

function rank(t: Tunnel): number {
  switch (t.state) {
    case "established":
      return 3;
    case "replying":
      return 2;
    case "creating":
      return 1;
    case "closed":
      return 0;
  }
}
