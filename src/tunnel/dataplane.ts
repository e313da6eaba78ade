/**
 * DataPlane: the established-tunnel data path of one data-path worker (dataPath.workers > 1,
 * docs/ARCHITECTURE.md "Many cores"). No I/O: batches in, an Output and messages to the main
 * thread out, like the engine. The engine on the main thread stays the only place where
 * tunnels are created, rekeyed, moved and closed; it hands this plane (by message, see
 * PlaneMsg) exactly what the fast path needs and takes back everything else:
 *
 *   send  (TUN queue -> UDP): a packet whose flow is installed (`flow`, a connection the
 *         engine opened and the peer answered, valid for `ttlMs`) is sealed as CONN_DATA
 *         under its tunnel's current epoch (`send`; counters from the shared cell,
 *         shared.ts) and sent from this thread's socket. Anything else (no flow, expired,
 *         TCP SYN/FIN/RST, fragments) is handed to the engine as a copy (`tun`).
 *   receive (UDP -> TUN queue): DATA under a TID this plane owns (`recv`: key, replay window,
 *         hard limit) is checked (limit, window), opened in place and accepted; inner packets
 *         of installed connections (`rxconn`, flow checked as the engine does) are written to
 *         this thread's TUN queue. A packet with any other frame is handed to the engine as
 *         authenticated plaintext (`frames`: already counted in this window, the engine does
 *         not check it again). A datagram under a TID this plane does not own goes to the
 *         engine untouched (`udp`): it owns that TID (next/move epochs, creation).
 *
 * The plane never changes tunnel state: a new source address of a current-epoch packet is
 * reported (`roam`) and followed here only for sending; counters and times go back in `stats`.
 */
import { zero } from "../crypto/sodium.js";
import { AeadKey, type AeadSuite } from "../crypto/aead.js";
import {
  Conn,
  ConnTable,
  FRAG_NONE,
  FlowScratch,
  flowHash,
  keyOfWire,
  matchesOut,
  parseFlow,
} from "../conn/conns.js";
import { ADDR_BYTES, addrEqual } from "../wire/addr.js";
import { FrameIterator, FrameType, writeFrameHeader } from "../wire/frames.js";
import { DATA_AD_BYTES, PacketType, writeTypeCounter } from "../wire/packet.js";
import { CONN_ID_BYTES } from "../wire/conn.js";
import { AEAD_TAG_BYTES, HEADER_BYTES } from "./constants.js";
import type { Output } from "./options.js";
import { CONN_DATA_HEADER_BYTES } from "./options.js";
import type { PacketBatch, UdpBatch } from "./io.js";
import { ReplayWindow, openData } from "./replay.js";
import { CounterBlock } from "./shared.js";

/** A flow's connection as the engine installs it (both directions use the same shape). */
export interface FlowMsg {
  slot: number;
  /** TX: the wire id the engine sends; RX: the table key of the received connection id */
  key: number;
  proto: number;
  family: 4 | 6;
  local: Uint8Array;
  remote: Uint8Array;
  lport: number;
  rport: number;
  ttlMs: number;
}

/** Messages main -> plane. Keys arrive in their own ArrayBuffers (transferred) and are zeroed after copy. */
export type PlaneMsg =
  | {
      k: "send";
      slot: number;
      tid: Uint8Array;
      /** the epoch's data suite (the AEAD the tunnel chose at creation, section 4b) */
      suite: AeadSuite;
      key: Uint8Array;
      ctrIdx: number;
      endpoint: Uint8Array;
      src: Uint8Array | null;
    }
  | {
      k: "recv";
      slot: number;
      tid: Uint8Array;
      suite: AeadSuite;
      key: Uint8Array;
      top: number;
      words: Uint32Array;
      rejectAt: number;
    }
  | { k: "unrecv"; tid: Uint8Array }
  /** a datagram this plane handed over before it held the epoch, sent back once it does */
  | { k: "again"; pkt: Uint8Array; src: Uint8Array }
  | { k: "endpoint"; slot: number; endpoint: Uint8Array; src: Uint8Array | null }
  | { k: "drop"; slot: number }
  | ({ k: "flow" } & FlowMsg)
  | ({ k: "rxconn" } & FlowMsg)
  | { k: "stop" };

/** Per-slot figures since the last report: [slot, lastRx, lastTx, rxPackets, rxBytes, txPackets, txBytes]. */
export const STAT_FIELDS = 7;

/** Messages plane -> main. */
export type MainMsg =
  | { k: "tun"; pkt: Uint8Array }
  | { k: "udp"; pkt: Uint8Array; src: Uint8Array }
  | { k: "frames"; slot: number; tid: Uint8Array; pt: Uint8Array; src: Uint8Array; len: number }
  | { k: "roam"; slot: number; tid: Uint8Array; src: Uint8Array }
  | { k: "stats"; slots: Float64Array; counters: PlaneCounters };

export function newPlaneCounters() {
  return {
    sealed: 0,
    opened: 0,
    /** inner packets / datagrams / plaintexts handed to the main thread */
    puntTun: 0,
    puntUdp: 0,
    puntFrames: 0,
    /** hand-overs refused because this second's budget was spent (counted, dropped) */
    puntDropped: 0,
    /** datagrams sent back by the engine (`again`) under an epoch this plane no longer holds */
    againDropped: 0,
    replay: 0,
    auth: 0,
    keyExpired: 0,
    malformed: 0,
    connFlow: 0,
    counterExhausted: 0,
    /** installed send flows and receive connections (each valid for its ttl) */
    flows: 0,
    rxConns: 0,
    sendSlots: 0,
    recvEpochs: 0,
  };
}
export type PlaneCounters = ReturnType<typeof newPlaneCounters>;

/** hand-overs per second before they are dropped (a flood of unknown traffic stays bounded) */
export const PUNT_BUDGET_PER_SEC = 50_000;

interface SendSlot {
  tid: Buffer;
  key: Buffer;
  aead: AeadKey;
  ctr: CounterBlock;
  endpoint: Buffer;
  src: Buffer | null;
  lastRx: number;
  lastTx: number;
  rxP: number;
  rxB: number;
  txP: number;
  txB: number;
  dirty: boolean;
}

interface RecvEpoch {
  slot: number;
  tid: Buffer;
  key: Buffer;
  aead: AeadKey;
  replay: ReplayWindow;
  rejectAt: number;
}

interface FlowEntry {
  c: Conn;
  slot: number;
  expires: number;
}

export class DataPlane {
  readonly counters = newPlaneCounters();
  private readonly slots = new Map<number, SendSlot>();
  private readonly recv = new Map<string, RecvEpoch>();
  private readonly txFlows = new Map<number, FlowEntry[]>();
  /** per slot: connection table key -> entry */
  private readonly rxConns = new Map<number, Map<number, FlowEntry>>();
  private readonly f = new FlowScratch();
  private readonly fIn = new FlowScratch();
  private readonly frames = new FrameIterator();
  private seq = 0;
  private puntSec = 0;
  private puntLeft = PUNT_BUDGET_PER_SEC;

  constructor(
    private readonly out: Output,
    private readonly post: (m: MainMsg, transfer?: ArrayBuffer[]) => void,
    private readonly cells: Int32Array,
  ) {}

  // ------------------------------------------------------------------ control (messages)

  onMessage(m: PlaneMsg, now: number): void {
    switch (m.k) {
      case "send": {
        const old = this.slots.get(m.slot);
        const key = Buffer.from(m.key); // a copy in this thread's heap; the message's bytes are zeroed
        zero(Buffer.from(m.key.buffer, m.key.byteOffset, m.key.byteLength));
        const s: SendSlot = old ?? {
          tid: Buffer.alloc(8),
          key,
          aead: new AeadKey(m.suite, key, true),
          ctr: new CounterBlock(this.cells, m.ctrIdx),
          endpoint: Buffer.alloc(ADDR_BYTES),
          src: null,
          lastRx: 0,
          lastTx: 0,
          rxP: 0,
          rxB: 0,
          txP: 0,
          txB: 0,
          dirty: false,
        };
        if (old) {
          eraseKey(old);
          old.key = key;
          old.aead = new AeadKey(m.suite, key, true);
          old.ctr = new CounterBlock(this.cells, m.ctrIdx);
        }
        Buffer.from(m.tid).copy(s.tid);
        Buffer.from(m.endpoint).copy(s.endpoint);
        s.src = m.src ? Buffer.from(m.src) : null;
        this.slots.set(m.slot, s);
        break;
      }
      case "recv": {
        const key = Buffer.from(m.key);
        zero(Buffer.from(m.key.buffer, m.key.byteOffset, m.key.byteLength));
        const tid = Buffer.from(m.tid);
        const replay = new ReplayWindow();
        replay.importState({ top: m.top, words: m.words });
        const k = tid.latin1Slice(0, 8);
        const old = this.recv.get(k);
        if (old) eraseKey(old);
        const aead = new AeadKey(m.suite, key, false);
        this.recv.set(k, { slot: m.slot, tid, key, aead, replay, rejectAt: m.rejectAt });
        break;
      }
      case "unrecv": {
        const k = Buffer.from(m.tid).latin1Slice(0, 8);
        const r = this.recv.get(k);
        if (r) {
          eraseKey(r);
          this.recv.delete(k);
        }
        break;
      }
      case "endpoint": {
        const s = this.slots.get(m.slot);
        if (s) {
          Buffer.from(m.endpoint).copy(s.endpoint);
          s.src = m.src ? Buffer.from(m.src) : null;
        }
        break;
      }
      case "drop":
        this.dropSlot(m.slot);
        break;
      case "again": {
        const b = Buffer.from(m.pkt.buffer, m.pkt.byteOffset, m.pkt.byteLength);
        this.onDatagram(b, 0, b.length, Buffer.from(m.src), 0, now, false);
        this.out.flush();
        break;
      }
      case "flow":
        this.installTx(m, now);
        break;
      case "rxconn":
        this.installRx(m, now);
        break;
      case "stop":
        this.eraseAll();
        break;
    }
    this.counters.sendSlots = this.slots.size;
    this.counters.recvEpochs = this.recv.size;
  }

  private connOf(m: FlowMsg, mine: boolean, now: number): Conn {
    const c = new Conn(m.key, mine, m.proto, m.family, m.lport, m.rport, 0, now);
    c.local.set(m.local.subarray(0, 16));
    c.remote.set(m.remote.subarray(0, 16));
    c.setWords();
    return c;
  }

  private installTx(m: FlowMsg, now: number): void {
    const c = this.connOf(m, true, now);
    const both = Buffer.concat([c.local, c.remote]);
    const h = flowHash(both, m.proto, m.family, 0, m.lport, 16, m.rport);
    // the same lookup the engine's table uses (lookupOut): hash of the packet's flow
    const list = this.txFlows.get(h) ?? [];
    const e: FlowEntry = { c, slot: m.slot, expires: now + m.ttlMs };
    const i = list.findIndex((x) => sameFlow(x.c, c));
    if (i >= 0) list[i] = e;
    else list.push(e);
    this.txFlows.set(h, list);
    this.counters.flows = this.countFlows();
  }

  private installRx(m: FlowMsg, now: number): void {
    let t = this.rxConns.get(m.slot);
    if (!t) this.rxConns.set(m.slot, (t = new Map()));
    t.set(m.key, { c: this.connOf(m, false, now), slot: m.slot, expires: now + m.ttlMs });
    this.counters.rxConns = 0;
    for (const x of this.rxConns.values()) this.counters.rxConns += x.size;
  }

  private countFlows(): number {
    let n = 0;
    for (const l of this.txFlows.values()) n += l.length;
    return n;
  }

  private dropSlot(slot: number): void {
    const s = this.slots.get(slot);
    if (s) eraseKey(s);
    this.slots.delete(slot);
    for (const [k, r] of this.recv)
      if (r.slot === slot) {
        eraseKey(r);
        this.recv.delete(k);
      }
    this.rxConns.delete(slot);
    this.counters.rxConns = 0;
    for (const x of this.rxConns.values()) this.counters.rxConns += x.size;
    for (const [h, l] of this.txFlows) {
      const keep = l.filter((e) => e.slot !== slot);
      if (keep.length === 0) this.txFlows.delete(h);
      else this.txFlows.set(h, keep);
    }
    this.counters.flows = this.countFlows();
  }

  /** Zero every key (stop, shutdown). */
  eraseAll(): void {
    for (const s of this.slots.values()) eraseKey(s);
    for (const r of this.recv.values()) eraseKey(r);
    this.slots.clear();
    this.recv.clear();
    this.txFlows.clear();
    this.rxConns.clear();
  }

  // ------------------------------------------------------------------ hand-overs

  private puntOk(now: number): boolean {
    const sec = Math.floor(now / 1000);
    if (sec !== this.puntSec) {
      this.puntSec = sec;
      this.puntLeft = PUNT_BUDGET_PER_SEC;
    }
    if (this.puntLeft <= 0) {
      this.counters.puntDropped++;
      return false;
    }
    this.puntLeft--;
    return true;
  }

  private copyOut(buf: Buffer, off: number, len: number): Uint8Array<ArrayBuffer> {
    const u = new Uint8Array(new ArrayBuffer(len));
    u.set(buf.subarray(off, off + len));
    return u;
  }

  // ------------------------------------------------------------------ send path

  onTunBatch(b: PacketBatch, now: number): void {
    this.seq++;
    const buf = b.buf;
    for (let i = 0; i < b.count; i++) {
      const off = i * b.slotSize + b.headroom;
      const len = b.lens[i]!;
      const e = b.headroom >= 48 + CONN_DATA_HEADER_BYTES ? this.txEntry(buf, off, len, now) : null;
      const s = e === null ? undefined : this.slots.get(e.slot);
      if (e === null || s === undefined) {
        if (len > 0 && this.puntOk(now)) {
          const pkt = this.copyOut(buf, off, len);
          this.counters.puntTun++;
          this.post({ k: "tun", pkt }, [pkt.buffer]);
        }
        continue;
      }
      this.seal(s, e.c.wireId, buf, off, len, now);
    }
    this.out.flush();
  }

  /** The installed, unexpired flow of this packet, or null (then the engine decides). */
  private txEntry(buf: Buffer, off: number, len: number, now: number): FlowEntry | null {
    const f = this.f;
    if (len < 20 || !parseFlow(buf, off, len, f) || f.frag !== FRAG_NONE) return null;
    // TCP SYN, FIN and RST go through the engine (owner recheck of a new socket, close state)
    if (f.proto === 6 && (f.l4Off + 14 > off + len || (buf[f.l4Off + 13]! & 0x07) !== 0)) return null;
    const list = this.txFlows.get(flowHash(buf, f.proto, f.family, f.srcOff, f.sport, f.dstOff, f.dport));
    if (list === undefined) return null;
    for (let j = 0; j < list.length; j++) {
      const e = list[j]!;
      if (!matchesOut(e.c, buf, f)) continue;
      if (now >= e.expires) {
        list.splice(j, 1); // due for the engine's checks again
        return null;
      }
      return e;
    }
    return null;
  }

  private seal(s: SendSlot, wireId: number, buf: Buffer, off: number, len: number, now: number): void {
    const ctr = s.ctr.take(this.seq);
    if (ctr < 0) {
      this.counters.counterExhausted++;
      return;
    }
    const pt = off - CONN_DATA_HEADER_BYTES;
    writeFrameHeader(buf, pt, FrameType.ConnData, CONN_ID_BYTES + len);
    buf.writeUInt32BE(wireId, off - CONN_ID_BYTES);
    const start = pt - DATA_AD_BYTES;
    const tb = s.tid;
    for (let k = 0; k < 8; k++) buf[start + k] = tb[k]!;
    writeTypeCounter(buf, start, PacketType.Data, ctr);
    const plainLen = len + CONN_DATA_HEADER_BYTES;
    s.aead.seal(buf, start, pt, plainLen);
    this.out.sendUdp(buf, start, DATA_AD_BYTES + plainLen + AEAD_TAG_BYTES, s.endpoint, 0, s.src);
    this.counters.sealed++;
    s.txP++;
    s.txB += len;
    s.lastTx = now;
    s.dirty = true;
  }

  // ------------------------------------------------------------------ receive path

  onUdpBatch(b: UdpBatch, now: number): void {
    this.seq++;
    for (let i = 0; i < b.count; i++) {
      const len = b.lens[i]!;
      if (len === 0) continue;
      this.onDatagram(b.buf, i * b.slotSize + b.headroom, len, b.addrs, i * ADDR_BYTES, now);
    }
    this.out.flush();
  }

  private onDatagram(
    buf: Buffer,
    off: number,
    len: number,
    src: Buffer,
    srcOff: number,
    now: number,
    mayHandOver = true,
  ): void {
    const r =
      len >= HEADER_BYTES && buf[off + 8] === PacketType.Data
        ? this.recv.get(buf.latin1Slice(off, off + 8))
        : undefined;
    if (r === undefined) {
      // not ours to judge: the engine holds this TID (or it is control, or garbage)
      if (!mayHandOver) {
        this.counters.againDropped++; // sent back, but the epoch is gone here meanwhile
        return;
      }
      if (this.puntOk(now)) {
        const pkt = this.copyOut(buf, off, len);
        const s = this.copyOut(src, srcOff, ADDR_BYTES);
        this.counters.puntUdp++;
        this.post({ k: "udp", pkt, src: s }, [pkt.buffer, s.buffer]);
      }
      return;
    }
    const c = this.counters;
    if (len < DATA_AD_BYTES + AEAD_TAG_BYTES) {
      c.malformed++;
      return;
    }
    if (now >= r.rejectAt) {
      c.keyExpired++;
      return;
    }
    if (!openData(r.replay, r.aead, buf, off, len, c)) return;
    const ptOff = off + DATA_AD_BYTES;
    c.opened++;
    // authenticated and accepted from here on
    const s = this.slots.get(r.slot);
    const plainLen = len - DATA_AD_BYTES - AEAD_TAG_BYTES;
    if (s !== undefined) {
      s.lastRx = now;
      s.rxP++;
      s.rxB += len;
      s.dirty = true;
      if (eq8(s.tid, r.tid) && !addrEqual(s.endpoint, 0, src, srcOff)) {
        src.copy(s.endpoint, 0, srcOff, srcOff + ADDR_BYTES); // answer where the peer is now
        this.post({
          k: "roam",
          slot: r.slot,
          tid: new Uint8Array(r.tid),
          src: this.copyOut(src, srcOff, ADDR_BYTES),
        });
      }
    }
    if (plainLen === 0) return; // keepalive padding
    if (!this.deliverHere(r.slot, buf, ptOff, plainLen, now)) {
      if (!this.puntOk(now)) return;
      const pt = this.copyOut(buf, ptOff, plainLen);
      const sc = this.copyOut(src, srcOff, ADDR_BYTES);
      c.puntFrames++;
      this.post({ k: "frames", slot: r.slot, tid: new Uint8Array(r.tid), pt, src: sc, len }, [
        pt.buffer,
        sc.buffer,
      ]);
    }
  }

  /**
   * Deliver the frames here if every one is CONN_DATA of an installed, unexpired
   * connection whose flow it carries (as the engine's deliverConn checks); otherwise
   * deliver nothing and answer false (the engine gets the whole plaintext).
   */
  private deliverHere(slot: number, buf: Buffer, off: number, len: number, now: number): boolean {
    const conns = this.rxConns.get(slot);
    if (conns === undefined) return false;
    const it = this.frames.reset(buf, off, len);
    while (it.next()) {
      if (it.type !== FrameType.ConnData || it.bodyLen < CONN_ID_BYTES + 20) return false;
      const e = conns.get(keyOfWire(buf.readUInt32BE(it.bodyOff)));
      if (e === undefined || now >= e.expires) return false;
      const p = it.bodyOff + CONN_ID_BYTES;
      const f = this.fIn;
      if (!parseFlow(buf, p, it.bodyLen - CONN_ID_BYTES, f) || f.frag !== FRAG_NONE) return false;
      if (f.proto === 6 && (buf[f.l4Off + 13]! & 0x07) !== 0) return false; // SYN/FIN/RST: the engine notes them
      if (!ConnTable.matchesIn(e.c, buf, f)) {
        this.counters.connFlow++;
        return false;
      }
    }
    if (it.malformed) return false;
    // second pass: all frames passed, write them
    const it2 = this.frames.reset(buf, off, len);
    while (it2.next()) this.out.writeTun(buf, it2.bodyOff + CONN_ID_BYTES, it2.bodyLen - CONN_ID_BYTES);
    return true;
  }

  // ------------------------------------------------------------------ reports

  /** Figures of the slots that changed since the last call (and the counters), or null. */
  report(): MainMsg | null {
    const rows: number[] = [];
    for (const [slot, s] of this.slots) {
      if (!s.dirty) continue;
      rows.push(slot, s.lastRx, s.lastTx, s.rxP, s.rxB, s.txP, s.txB);
      s.rxP = s.rxB = s.txP = s.txB = 0;
      s.dirty = false;
    }
    return { k: "stats", slots: Float64Array.from(rows), counters: { ...this.counters } };
  }
}

function eq8(a: Buffer, b: Buffer): boolean {
  for (let k = 0; k < 8; k++) if (a[k] !== b[k]) return false;
  return true;
}

function sameFlow(a: Conn, b: Conn): boolean {
  return (
    a.proto === b.proto &&
    a.family === b.family &&
    a.lport === b.lport &&
    a.rport === b.rport &&
    a.local.equals(b.local) &&
    a.remote.equals(b.remote)
  );
}

/** Free the key's cipher context (OpenSSL wipes its schedule), then zero the key bytes. */
function eraseKey(k: { key: Buffer; aead: AeadKey }): void {
  k.aead.erase();
  zero(k.key);
}
