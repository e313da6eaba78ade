/**
 * Delegation: the main thread's side of the data-path workers (dataPath.workers > 1,
 * docs/ARCHITECTURE.md "Many cores"). The engine keeps every decision; this class tells
 * the planes (src/tunnel/dataplane.ts, one per worker) what they may do on their own and
 * feeds what they hand back into the engine. No I/O: messages go out through `post`.
 *
 * What is delegated, per established tunnel (a "slot"):
 *  - its current epoch's send key and TID, to every plane, with a shared counter cell
 *    (shared.ts; the engine's own sends use the same cell from then on);
 *  - the receive side (key + replay window, handed over with its state) of its current
 *    and previous epochs, to the ONE plane its TID steers to (steerIndex; 0 = kept here).
 *    The engine's copy is marked rxElsewhere and drops DATA under it from then on, so no
 *    counter is accepted twice;
 *  - flows: a connection the engine just carried on its fast path (the same conditions as
 *    inside.ts) is installed in the plane that handed the packet over, for ttlMs; then the
 *    plane hands one packet back and the engine checks again (UDP owner recheck every
 *    100 ms, as on the main thread).
 * sync() brings the planes up to date (rekey, move, roam, close): called on every tick
 * and after every batch whose engine events changed.
 */
import {
  CONN_OPEN,
  CONN_OPEN_REPEAT,
  FlowScratch,
  keyOfWire,
  parseFlow,
  UDP_RECHECK_MS,
  type Conn,
} from "../conn/conns.js";
import { ADDR_BYTES, addrEqual } from "../wire/addr.js";
import { FrameIterator, FrameType } from "../wire/frames.js";
import { CONN_ID_BYTES } from "../wire/conn.js";
import { PacketType } from "../wire/packet.js";
import { rejectAfterMs } from "./constants.js";
import type { Engine } from "./engine.js";
import type { PacketBatch, UdpBatch } from "./io.js";
import type { MainMsg, PlaneCounters, PlaneMsg } from "./dataplane.js";
import { newPlaneCounters, STAT_FIELDS } from "./dataplane.js";
import { COUNTER_CELLS, CounterBlock, steerIndex } from "./shared.js";
import type { Epoch, Tunnel } from "./tunnel.js";

/** how long an installed flow is used before the engine sees one of its packets again (non-UDP) */
export const FLOW_TTL_MS = 1_000;

interface Rec {
  slot: number;
  t: Tunnel;
  sendTid: string;
  endpoint: Buffer;
  src: Buffer | null;
  /** receive epochs handed to planes: tid -> plane index */
  recv: Map<string, number>;
}

/** A plane as the main thread sees it: index (1..n-1) and its message port. */
export interface PlanePort {
  index: number;
  post(m: PlaneMsg, transfer?: ArrayBuffer[]): void;
}

export class Delegation {
  private readonly recs = new Map<Tunnel, Rec>();
  private readonly bySlot = new Map<number, Rec>();
  private nextSlot = 1;
  private nextCell = 0;
  private lastEvents = -1;
  private readonly f = new FlowScratch();
  private readonly tunBatch: PacketBatch;
  private readonly udpBatch: UdpBatch;
  private readonly it = new FrameIterator();
  /** the last counters each plane reported (index 1..n-1) */
  readonly planeCounters: PlaneCounters[];
  /** messages handled per kind (status) */
  readonly handled = { tun: 0, udp: 0, again: 0, frames: 0, roam: 0, stats: 0, stale: 0 };

  constructor(
    private readonly engine: Engine,
    readonly n: number,
    private readonly planes: PlanePort[],
    readonly cells: Int32Array = new Int32Array(new SharedArrayBuffer(4 * COUNTER_CELLS)),
  ) {
    this.tunBatch = {
      buf: Buffer.alloc(2048),
      slotSize: 2048,
      headroom: 64,
      lens: new Uint32Array(1),
      count: 1,
    };
    this.udpBatch = {
      ...this.tunBatch,
      buf: Buffer.alloc(2048),
      lens: new Uint32Array(1),
      addrs: Buffer.alloc(20),
    };
    this.planeCounters = Array.from({ length: n }, () => newPlaneCounters());
  }

  get slots(): number {
    return this.recs.size;
  }

  /** After a batch: sync only when something that matters may have changed. */
  afterBatch(now: number): void {
    const ev = this.engine.events;
    const sum =
      ev.rekeys + ev.migrations + ev.roams + ev.tunnelsClosed + ev.tunnelsCreated + ev.tunnelsAccepted;
    if (sum !== this.lastEvents) this.sync(now);
  }

  sync(_now: number): void {
    const ev = this.engine.events;
    this.lastEvents =
      ev.rekeys + ev.migrations + ev.roams + ev.tunnelsClosed + ev.tunnelsCreated + ev.tunnelsAccepted;
    const live = new Set<Tunnel>();
    for (const p of this.engine.peers.values())
      for (const t of p.tunnels) {
        if (t.state !== "established" || t.cur === null) continue;
        // a relayed path (family 0x52) is wrapped by the main thread's output only
        if (t.endpoint[0] !== 4 && t.endpoint[0] !== 6) continue;
        live.add(t);
        this.syncTunnel(t);
      }
    for (const [t, r] of this.recs) if (!live.has(t)) this.drop(r);
  }

  private syncTunnel(t: Tunnel): void {
    let r = this.recs.get(t);
    if (r === undefined) {
      r = {
        slot: this.nextSlot++,
        t,
        sendTid: "",
        endpoint: Buffer.alloc(ADDR_BYTES),
        src: null,
        recv: new Map(),
      };
      this.recs.set(t, r);
      this.bySlot.set(r.slot, r);
    }
    const e = t.cur!;
    if (r.sendTid !== e.tid) {
      if (e.shared === null) {
        const idx = this.nextCell;
        this.nextCell = (this.nextCell + 1) % this.cells.length;
        e.shared = CounterBlock.init(this.cells, idx, e.sendCounter);
      }
      for (const pl of this.planes) {
        const key = copyAb(e.sendKey);
        pl.post(
          {
            k: "send",
            slot: r.slot,
            tid: new Uint8Array(e.tidBuf),
            suite: e.suite,
            key,
            ctrIdx: e.shared.idx,
            endpoint: new Uint8Array(t.endpoint),
            src: t.src ? new Uint8Array(t.src) : null,
          },
          [key.buffer],
        );
      }
      r.sendTid = e.tid;
      t.endpoint.copy(r.endpoint);
      r.src = t.src ? Buffer.from(t.src) : null;
    } else if (!addrEqual(r.endpoint, 0, t.endpoint, 0) || !sameSrc(r.src, t.src)) {
      t.endpoint.copy(r.endpoint);
      r.src = t.src ? Buffer.from(t.src) : null;
      for (const pl of this.planes)
        pl.post({
          k: "endpoint",
          slot: r.slot,
          endpoint: new Uint8Array(t.endpoint),
          src: t.src ? new Uint8Array(t.src) : null,
        });
    }
    // receive sides: current and previous epochs to the plane their TID steers to
    const keep = new Set<string>();
    for (const x of [t.cur, t.prev]) {
      if (x === null) continue;
      keep.add(x.tid);
      const k = steerIndex(x.tidBuf, this.n);
      if (k === 0 || x.rxElsewhere || r.recv.has(x.tid)) continue;
      this.handOver(r, x, k);
    }
    for (const [tid, k] of r.recv)
      if (!keep.has(tid)) {
        r.recv.delete(tid);
        this.plane(k)?.post({ k: "unrecv", tid: new Uint8Array(Buffer.from(tid, "latin1")) });
      }
  }

  private handOver(r: Rec, e: Epoch, k: number): void {
    const pl = this.plane(k);
    if (pl === undefined) return;
    const st = e.replay.exportState();
    const key = copyAb(e.recvKey);
    e.rxElsewhere = true; // from here on only plane k accepts counters of this epoch
    r.recv.set(e.tid, k);
    pl.post(
      {
        k: "recv",
        slot: r.slot,
        tid: new Uint8Array(e.tidBuf),
        suite: e.suite,
        key,
        top: st.top,
        words: st.words,
        rejectAt: e.startedAt + rejectAfterMs(this.engine.opts.rekeyAfterMs),
      },
      [key.buffer],
    );
  }

  private drop(r: Rec): void {
    this.recs.delete(r.t);
    this.bySlot.delete(r.slot);
    for (const pl of this.planes) pl.post({ k: "drop", slot: r.slot });
  }

  private plane(k: number): PlanePort | undefined {
    return this.planes.find((p) => p.index === k);
  }

  // ------------------------------------------------------------------ what planes hand back

  onMessage(from: number, m: MainMsg, now: number): void {
    switch (m.k) {
      case "tun":
        this.handled.tun++;
        this.onTun(from, m.pkt, now);
        break;
      case "udp": {
        this.handled.udp++;
        // DATA under an epoch a plane owns now (it handed this over before the epoch reached
        // it): back to that plane, which judges it with the window; never accepted here
        const k = this.ownerOf(m.pkt);
        if (k !== undefined) {
          this.handled.again++;
          this.plane(k)?.post({ k: "again", pkt: m.pkt, src: m.src }, [
            m.pkt.buffer as ArrayBuffer,
            m.src.buffer as ArrayBuffer,
          ]);
          return;
        }
        const b = this.udpBatch;
        if (m.pkt.length > b.buf.length - b.headroom) return;
        b.buf.set(m.pkt, b.headroom);
        b.lens[0] = m.pkt.length;
        b.addrs.set(m.src.subarray(0, ADDR_BYTES));
        this.engine.handleUdpBatch(b, now);
        this.afterBatch(now);
        break;
      }
      case "frames":
        this.handled.frames++;
        this.onFrames(from, m.slot, m.tid, m.pt, m.src, m.len, now);
        break;
      case "roam": {
        this.handled.roam++;
        const r = this.bySlot.get(m.slot);
        if (r === undefined || r.t.state !== "established" || r.t.cur === null) return;
        if (!Buffer.from(m.tid).equals(r.t.cur.tidBuf)) return; // only current-epoch packets move the endpoint
        this.engine.onAuthenticated(r.t, Buffer.from(m.src), 0, 0, now, true);
        this.sync(now);
        break;
      }
      case "stats":
        this.handled.stats++;
        this.onStats(from, m.slots, m.counters);
        break;
    }
  }

  /** The plane that owns the epoch of this DATA datagram's TID, if a plane does. */
  private ownerOf(pkt: Uint8Array): number | undefined {
    if (pkt.length < 16 || pkt[8] !== PacketType.Data) return undefined;
    const tid = Buffer.from(pkt.buffer, pkt.byteOffset, 8).latin1Slice(0, 8);
    const t = this.engine.tids.get(tid);
    return t === undefined ? undefined : this.recs.get(t)?.recv.get(tid);
  }

  private onTun(from: number, pkt: Uint8Array, now: number): void {
    const b = this.tunBatch;
    if (pkt.length > b.buf.length - b.headroom - 64) return;
    b.buf.set(pkt, b.headroom);
    b.lens[0] = pkt.length;
    this.engine.handleTunBatch(b, now); // seals in place: pkt keeps the original bytes
    this.afterBatch(now);
    this.installTx(from, Buffer.from(pkt.buffer, pkt.byteOffset, pkt.length));
  }

  /** The flow of this packet, if the engine's fast path (inside.ts) would carry it now. */
  private installTx(from: number, buf: Buffer): void {
    const f = this.f;
    const len = buf.length;
    if (!parseFlow(buf, 0, len, f) || f.frag !== 0) return;
    const eng = this.engine;
    const v = buf[0]! >> 4;
    const peer =
      v === 4 ? eng.routes.lookup4(buf.readUInt32BE(16)) : v === 6 ? eng.routes.lookup6(buf, 24) : undefined;
    if (peer === undefined) return;
    const ours = v === 4 ? eng.ours.lookup4(buf.readUInt32BE(12)) : eng.ours.lookup6(buf, 8);
    if (ours === undefined) return;
    const t = peer.sendTunnel();
    const r = t === null ? undefined : this.recs.get(t);
    if (t === null || r === undefined || !t.canSend || peer.conns === null) return;
    const c = peer.conns.lookupOut(buf, f);
    if (c === null || c.state !== CONN_OPEN || !(c.acked || !c.mine || c.txPackets >= CONN_OPEN_REPEAT))
      return;
    const ttl = c.mine && c.proto === 17 ? UDP_RECHECK_MS : FLOW_TTL_MS;
    this.plane(from)?.post({ k: "flow", ...flowMsg(r.slot, c, c.wireId, ttl) });
  }

  private onFrames(
    from: number,
    slot: number,
    tid: Uint8Array,
    pt: Uint8Array,
    src: Uint8Array,
    len: number,
    now: number,
  ): void {
    const r = this.bySlot.get(slot);
    const t = r?.t;
    if (r === undefined || t === undefined || t.state !== "established" || t.cur === null) {
      this.handled.stale++;
      return;
    }
    const buf = Buffer.from(pt.buffer, pt.byteOffset, pt.length);
    const current = Buffer.from(tid).equals(t.cur.tidBuf);
    this.engine.onAuthenticated(t, Buffer.from(src), 0, len, now, current);
    const bodies: number[] = [];
    const it = this.it.reset(buf, 0, buf.length);
    while (it.next())
      if (it.type === FrameType.ConnData && it.bodyLen >= CONN_ID_BYTES) bodies.push(it.bodyOff);
    this.engine.deliverFrames(t, this.engine.frames.reset(buf, 0, buf.length), now);
    this.engine.flushOutput();
    // connections that the engine just delivered to: the plane may deliver them itself now
    const ct = t.peer.conns;
    if (ct !== null)
      for (const off of bodies) {
        const c = ct.byKey.get(keyOfWire(buf.readUInt32BE(off)));
        if (c === undefined || c.state !== CONN_OPEN) continue;
        this.plane(from)?.post({ k: "rxconn", ...flowMsg(r.slot, c, c.key, FLOW_TTL_MS) });
      }
    this.afterBatch(now);
  }

  private onStats(from: number, rows: Float64Array, counters: PlaneCounters): void {
    if (from > 0 && from < this.planeCounters.length) this.planeCounters[from] = counters;
    for (let i = 0; i + STAT_FIELDS <= rows.length; i += STAT_FIELDS) {
      const r = this.bySlot.get(rows[i]!);
      if (r === undefined) continue;
      const t = r.t;
      if (rows[i + 1]! > t.lastRx) t.lastRx = rows[i + 1]!;
      if (rows[i + 2]! > t.lastTx) t.lastTx = rows[i + 2]!;
      t.rxPackets += rows[i + 3]!;
      t.rxBytes += rows[i + 4]!;
      t.txPackets += rows[i + 5]!;
      t.txBytes += rows[i + 6]!;
    }
  }

  /** Stop: every plane zeroes its keys; the engine takes every epoch back for sending. */
  stop(): void {
    for (const pl of this.planes) pl.post({ k: "stop" });
    this.recs.clear();
    this.bySlot.clear();
  }
}

function flowMsg(slot: number, c: Conn, key: number, ttlMs: number) {
  return {
    slot,
    key,
    proto: c.proto,
    family: c.family,
    local: new Uint8Array(c.local),
    remote: new Uint8Array(c.remote),
    lport: c.lport,
    rport: c.rport,
    ttlMs,
  };
}

/** A key copied into an ArrayBuffer of its own (transferred to the plane, so no copy stays here). */
function copyAb(k: Buffer): Uint8Array<ArrayBuffer> {
  const u = new Uint8Array(new ArrayBuffer(k.length));
  u.set(k);
  return u;
}

function sameSrc(a: Buffer | null, b: Buffer | null): boolean {
  if (a === null || b === null) return a === b;
  return addrEqual(a, 0, b, 0);
}
