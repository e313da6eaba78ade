/**
 * Data-path workers in process (dataPath.workers = 2, docs/ARCHITECTURE.md "Many cores"):
 * each host is its engine (main thread) plus one DataPlane (the worker's data path), wired
 * as the daemon wires them but with messages delivered in order within the test, the TUN
 * split by flow (like a multi-queue TUN) and datagrams split by TID (like the kernel's
 * reuseport program). Traffic both ways, a rekey during it, replays, erasure.
 */
import { describe, expect, it } from "vitest";
import { ADDR_BYTES, addrToString } from "../../src/wire/addr.js";
import { PacketType } from "../../src/wire/packet.js";
import { onDatagram } from "../../src/tunnel/outside.js";
import { DataPlane, type MainMsg, type PlaneMsg } from "../../src/tunnel/dataplane.js";
import { Delegation } from "../../src/tunnel/delegation.js";
import { steerIndex } from "../../src/tunnel/shared.js";
import { AeadSuite } from "../../src/crypto/aead.js";
import { ipv4, makeCa, SimNet, type SimHost } from "./harness.js";

interface Split {
  h: SimHost;
  del: Delegation;
  plane: DataPlane;
  toPlane: PlaneMsg[];
  toMain: MainMsg[];
}

function split(net: SimNet, h: SimHost): Split {
  const toPlane: PlaneMsg[] = [];
  const toMain: MainMsg[] = [];
  const del = new Delegation(h.engine, 2, [{ index: 1, post: (m) => toPlane.push(m) }]);
  const out = {
    sendUdp(buf: Buffer, off: number, len: number, addr: Buffer, addrOff: number) {
      net.queue.push({
        from: h.addr,
        to: Buffer.from(addr.subarray(addrOff, addrOff + ADDR_BYTES)),
        data: Buffer.from(buf.subarray(off, off + len)),
      });
    },
    writeTun(buf: Buffer, off: number, len: number) {
      h.tunOut.push(Buffer.from(buf.subarray(off, off + len)));
    },
    flush() {},
  };
  const plane = new DataPlane(out, (m) => toMain.push(m), del.cells);
  return { h, del, plane, toPlane, toMain };
}

/** deliver messages both ways until none is left */
function pump(s: Split, now: number): void {
  while (s.toPlane.length > 0 || s.toMain.length > 0) {
    while (s.toPlane.length > 0) s.plane.onMessage(s.toPlane.shift()!, now);
    while (s.toMain.length > 0) s.del.onMessage(1, s.toMain.shift()!, now);
  }
}

function oneSlot(pkt: Buffer) {
  const headroom = 64;
  const buf = Buffer.alloc(headroom + pkt.length + 64);
  pkt.copy(buf, headroom);
  return { buf, slotSize: buf.length, headroom, lens: Uint32Array.of(pkt.length), count: 1 };
}

class World {
  readonly net = new SimNet();
  readonly ca = makeCa();
  readonly a: Split;
  readonly b: Split;
  readonly byAddr = new Map<string, Split>();
  /** datagrams each thread received: [main, plane] per host */
  readonly rx = new Map<string, [number, number]>();
  captured: { to: Buffer; from: Buffer; data: Buffer }[] = [];

  constructor(aeadSuite: AeadSuite = AeadSuite.ChaCha20Poly1305) {
    // a rekey every 10 s: many epochs, so TIDs steered to both threads (each 1 in 2) occur
    const opts = { rekeyAfterMs: 10_000, aeadSuite };
    const a = this.net.addHost(this.ca, "a", "192.0.2.1", 7000, "10.77.0.1", null, opts);
    const b = this.net.addHost(this.ca, "b", "192.0.2.2", 7000, "10.77.0.2", null, opts);
    this.a = split(this.net, a);
    this.b = split(this.net, b);
    for (const s of [this.a, this.b]) {
      this.byAddr.set(addrToString(s.h.addr), s);
      this.rx.set(s.h.name, [0, 0]);
    }
    a.engine.addPeer({ name: "b", endpoint: b.addr }, this.net.now);
    this.run();
  }

  /** An application sends: the multi-queue TUN picks the queue by flow (here: the UDP source port). */
  send(s: Split, pkt: Buffer): void {
    const now = this.net.now;
    const q = pkt.readUInt16BE(20) % 2;
    if (q === 0) {
      s.h.engine.handleTunBatch(oneSlot(pkt), now);
      s.del.afterBatch(now);
    } else s.plane.onTunBatch(oneSlot(pkt), now);
    pump(s, now);
  }

  run(): void {
    const net = this.net;
    for (let n = 0; n < 10_000 && (net.queue.length > 0 || this.pending()); n++) {
      for (const s of [this.a, this.b]) pump(s, net.now);
      const d = net.queue.shift();
      if (!d) continue;
      this.captured.push(d);
      const s = this.byAddr.get(addrToString(d.to));
      if (!s) continue;
      const data = Buffer.from(d.data);
      const k = data.length >= 16 && data[8] === PacketType.Data ? steerIndex(data.subarray(0, 8), 2) : 0;
      this.rx.get(s.h.name)![k]++;
      if (k === 0) {
        onDatagram(s.h.engine, data, 0, data.length, d.from, 0, net.now);
        s.h.engine.flushOutput();
        s.del.afterBatch(net.now);
      } else {
        const b = { ...oneSlot(data), addrs: Buffer.from(d.from) };
        s.plane.onUdpBatch(b, net.now);
      }
    }
  }

  private pending(): boolean {
    return [this.a, this.b].some((s) => s.toMain.length + s.toPlane.length > 0);
  }

  advance(ms: number): void {
    const end = this.net.now + ms;
    while (this.net.now < end) {
      this.net.now = Math.min(end, this.net.now + 250);
      for (const s of [this.a, this.b]) {
        const r = s.plane.report();
        if (r) s.toMain.push(r);
        pump(s, this.net.now);
        s.h.engine.tick(this.net.now);
        s.del.sync(this.net.now);
      }
      this.run();
    }
  }
}

function udp(src: string, dst: string, sport: number, text: string): Buffer {
  const body = Buffer.alloc(8 + text.length);
  body.writeUInt16BE(sport, 0);
  body.writeUInt16BE(5000, 2);
  body.writeUInt16BE(body.length, 4);
  body.write(text, 8);
  return ipv4(src, dst, body, 17);
}

describe("data-path workers (2 per host, in process)", () => {
  // both data suites: a plane seals and opens with the epoch's own suite (section 4b)
  it.each([
    ["ChaCha20-Poly1305", AeadSuite.ChaCha20Poly1305],
    ["AES-256-GCM", AeadSuite.Aes256Gcm],
  ] as const)(
    "carry traffic both ways on both threads, through a rekey, with no packet lost (%s)",
    (_, suite) => {
      const w = new World(suite);
      const { a, b } = w;
      let sentAB = 0;
      let sentBA = 0;
      const got = { a: 0, b: 0 };
      const oldTids = new Set<string>();
      // b learns a from a's first packet (the tunnel a creates)
      w.send(a, udp("10.77.0.1", "10.77.0.2", 39999, "hello"));
      w.run();
      expect(b.h.take()).toHaveLength(1);
      for (let i = 0; i < 140; i++) {
        // 8 flows each way, 4 packets each, every second (ports 40000..40007: both TUN queues;
        // the first packet of a UDP flow every 100 ms goes through the engine: owner recheck)
        for (let r = 0; r < 4; r++)
          for (let f = 0; f < 8; f++) {
            w.send(a, udp("10.77.0.1", "10.77.0.2", 40000 + f, `a${i}.${f}.${r}`));
            w.send(b, udp("10.77.0.2", "10.77.0.1", 40000 + f, `b${i}.${f}.${r}`));
            sentAB++;
            sentBA++;
          }
        w.run();
        const gb = b.h.take().length;
        const ga = a.h.take().length;
        got.b += gb;
        got.a += ga;
        const t = a.h.engine.peers.values().next().value!.sendTunnel()!;
        if (t.cur) oldTids.add(t.cur.tid);
        w.advance(1000);
      }
      const ta = a.h.engine.peers.values().next().value!.sendTunnel()!;
      expect(ta.cur!.suite).toBe(suite);
      expect(ta.rekeys).toBeGreaterThanOrEqual(10); // rekeyAfter 10 s, during the traffic
      expect(oldTids.size).toBeGreaterThanOrEqual(10);
      // all delivered (the first flow packets of each thread go through the engine, so none is lost)
      expect(got.b).toBe(sentAB);
      expect(got.a).toBe(sentBA);
      // the work was split: both planes sealed and opened, and both main threads did too
      for (const s of [a, b]) {
        expect(s.plane.counters.sealed).toBeGreaterThan(100);
        expect(s.plane.counters.auth).toBe(0);
        expect(s.plane.counters.replay).toBe(0);
        const [main, plane] = w.rx.get(s.h.name)!;
        expect(main).toBeGreaterThan(0);
        expect(plane).toBeGreaterThan(0);
      }
      // at least one side's plane opened DATA itself (the epoch's TID steered to it)
      expect(a.plane.counters.opened + b.plane.counters.opened).toBeGreaterThan(100);
      // the engines' figures include the planes' (reported every tick)
      expect(ta.txPackets).toBeGreaterThanOrEqual(sentAB);
    },
  );

  it("a replayed datagram is refused by whichever thread owns its epoch, and never delivered twice", () => {
    // TIDs are random: take a world whose epoch steers to the plane (1 in 2 per try)
    let w = new World();
    for (let i = 0; i < 30; i++) {
      w.send(w.a, udp("10.77.0.1", "10.77.0.2", 40000, "probe"));
      w.run();
      w.advance(300);
      const t = w.b.h.engine.peers.values().next().value!.sendTunnel()!;
      if (t.cur!.rxElsewhere) break;
      w = new World();
    }
    const { a, b } = w;
    b.h.take();
    w.captured = [];
    for (let i = 0; i < 20; i++)
      for (let f = 0; f < 4; f++) w.send(a, udp("10.77.0.1", "10.77.0.2", 40000 + f, `x${i}`));
    w.run();
    w.advance(500);
    expect(b.h.take()).toHaveLength(80);
    const toB = w.captured.filter((d) => d.to.equals(b.h.addr) && d.data[8] === PacketType.Data);
    expect(toB.length).toBeGreaterThan(0);
    const before = b.plane.counters.replay + b.h.engine.drops.replay;
    for (const d of toB) w.net.queue.push({ ...d, data: Buffer.from(d.data) });
    w.run();
    expect(b.h.take()).toHaveLength(0);
    const after = b.plane.counters.replay + b.h.engine.drops.replay;
    expect(after - before).toBe(toB.length);
    // a DATA of an epoch the plane owns that reaches the engine anyway (handed back while the
    // epoch moved) is dropped there: one window per epoch, never two
    const t = b.h.engine.peers.values().next().value!.sendTunnel()!;
    expect(t.cur!.rxElsewhere).toBe(true);
    const owned = toB.filter((x) => x.data.subarray(0, 8).equals(t.cur!.tidBuf));
    expect(owned.length).toBeGreaterThan(0);
    const n0 = b.h.engine.drops.otherThread;
    for (const d of owned)
      onDatagram(b.h.engine, Buffer.from(d.data), 0, d.data.length, d.from, 0, w.net.now);
    b.h.engine.flushOutput();
    expect(b.h.engine.drops.otherThread).toBe(n0 + owned.length);
    expect(b.h.take()).toHaveLength(0);

    // a datagram the plane handed to the engine before the epoch reached it comes back to
    // the plane (`again`): delivered once, and refused by the plane's window the second time
    w.send(a, udp("10.77.0.1", "10.77.0.2", 40000, "late"));
    const late = w.net.queue.splice(0).find((d) => d.data.subarray(0, 8).equals(t.cur!.tidBuf))!;
    expect(late).toBeDefined();
    const hand = () =>
      b.toMain.push({ k: "udp", pkt: new Uint8Array(late.data), src: new Uint8Array(late.from) });
    const again0 = b.del.handled.again;
    hand();
    pump(b, w.net.now);
    expect(b.h.take().map((p) => p.subarray(28).toString())).toEqual(["late"]);
    const r0 = b.plane.counters.replay;
    hand();
    pump(b, w.net.now);
    expect(b.h.take()).toHaveLength(0);
    expect(b.plane.counters.replay).toBe(r0 + 1);
    expect(b.del.handled.again).toBe(again0 + 2);
  });

  it("keys handed to a plane are zeroed there when the tunnel closes or the plane stops", () => {
    const w = new World();
    const { a } = w;
    for (let f = 0; f < 4; f++) w.send(a, udp("10.77.0.1", "10.77.0.2", 40000 + f, "k"));
    w.run();
    w.advance(300);
    expect(a.plane.counters.sendSlots).toBe(1);
    const slots = (a.plane as unknown as { slots: Map<number, { key: Buffer }> }).slots;
    const key = [...slots.values()][0]!.key;
    expect(key.equals(Buffer.alloc(32))).toBe(false);
    const t = a.h.engine.peers.values().next().value!.sendTunnel()!;
    a.h.engine.closeTunnel(t, w.net.now, "test");
    a.del.sync(w.net.now);
    pump(a, w.net.now);
    expect(key.equals(Buffer.alloc(32))).toBe(true);
    expect(a.plane.counters.sendSlots).toBe(0);
  });
});
