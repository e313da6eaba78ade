/**
 * The split logic of the data path over several threads (docs/ARCHITECTURE.md "Many cores"):
 * TID steering (and that the kernel's reuseport program agrees with it), shared send
 * counters, the hand-over of a replay window, what a DataPlane does itself and what it
 * hands to the engine, bad input, and the dataPath config.
 */
import * as dgram from "node:dgram";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config.js";
import { ConfigError } from "../../src/errors.js";
import { LinuxUdp } from "../../src/net/udp.js";
import { SpreadTun, symmetricFlowHash } from "../../src/net/tunspread.js";
import { FakeTun } from "../fakes/tun.js";
import { DataPlane, PUNT_BUDGET_PER_SEC, type MainMsg } from "../../src/tunnel/dataplane.js";
import { ReplayWindow } from "../../src/tunnel/replay.js";
import { COUNTER_BLOCK, CounterBlock, steerIndex } from "../../src/tunnel/shared.js";
import type { UdpBatch } from "../../src/tunnel/io.js";
import { PacketType } from "../../src/wire/packet.js";
import { AeadSuite } from "../../src/crypto/aead.js";

const MIN = "ca: ca.crt\nhost:\n  key: host.key\n  cert: host.crt\n";

function cells(n = 4): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * n));
}

function plane() {
  const sent: Buffer[] = [];
  const tun: Buffer[] = [];
  const msgs: MainMsg[] = [];
  const out = {
    sendUdp: (b: Buffer, o: number, l: number) => void sent.push(Buffer.from(b.subarray(o, o + l))),
    writeTun: (b: Buffer, o: number, l: number) => void tun.push(Buffer.from(b.subarray(o, o + l))),
    flush: () => undefined,
  };
  const p = new DataPlane(out, (m) => msgs.push(m), cells());
  return { p, sent, tun, msgs };
}

function batchOf(pkts: Buffer[], headroom = 64) {
  const slotSize = 2048;
  const buf = Buffer.alloc(slotSize * Math.max(1, pkts.length));
  const lens = new Uint32Array(Math.max(1, pkts.length));
  pkts.forEach((p, i) => {
    p.copy(buf, i * slotSize + headroom);
    lens[i] = p.length;
  });
  return { buf, slotSize, headroom, lens, count: pkts.length };
}

function udpBatch(pkts: Buffer[]): UdpBatch {
  return { ...batchOf(pkts), addrs: Buffer.alloc(20 * Math.max(1, pkts.length), 0) };
}

/** IPv4 UDP 10.0.0.1:sport -> 10.0.0.2:5000 (or TCP with flags) */
function inner(sport: number, proto = 17, tcpFlags = 0x10): Buffer {
  const l4 = proto === 6 ? 20 : 8;
  const b = Buffer.alloc(20 + l4 + 10);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b[8] = 64;
  b[9] = proto;
  b.set([10, 0, 0, 1], 12);
  b.set([10, 0, 0, 2], 16);
  b.writeUInt16BE(sport, 20);
  b.writeUInt16BE(5000, 22);
  if (proto === 6) b[20 + 13] = tcpFlags;
  return b;
}

const TID = Buffer.from([1, 2, 3, 4, 5, 6, 7, 9]);

function install(p: DataPlane, now: number, proto = 17, ttlMs = 1000): void {
  p.onMessage(
    {
      k: "send",
      slot: 1,
      tid: new Uint8Array(TID),
      suite: AeadSuite.ChaCha20Poly1305,
      key: new Uint8Array(32).fill(7),
      ctrIdx: 0,
      endpoint: new Uint8Array([4, 0, 0x1b, 0x58, 192, 0, 2, 2, ...new Array(12).fill(0)]),
      src: null,
    },
    now,
  );
  const local = new Uint8Array(16);
  local.set([10, 0, 0, 1]);
  const remote = new Uint8Array(16);
  remote.set([10, 0, 0, 2]);
  p.onMessage(
    { k: "flow", slot: 1, key: 42, proto, family: 4, local, remote, lport: 40000, rport: 5000, ttlMs },
    now,
  );
}

describe("steering by TID", () => {
  it("is the TID's last byte mod n (0 with one thread)", () => {
    expect(steerIndex(Buffer.from([0, 0, 0, 0, 0, 0, 0, 5]), 2)).toBe(1);
    expect(steerIndex(Buffer.from([0, 0, 0, 0, 0, 0, 0, 6]), 2)).toBe(0);
    expect(steerIndex(Buffer.from([0, 0, 0, 0, 0, 0, 0, 7]), 3)).toBe(1);
    expect(steerIndex(Buffer.from([9, 9, 9, 9, 9, 9, 9, 9]), 1)).toBe(0);
  });

  it("the kernel's reuseport program sends each DATA datagram where steerIndex says, control to socket 0", async () => {
    const n = 3;
    const g = LinuxUdp.bindGroup({ address: "127.0.0.1", port: 0, offload: false }, n);
    const socks = [g.udp, ...g.fds.map((fd) => LinuxUdp.adopt(fd, g.family, "127.0.0.1", g.port, g.offload))];
    const got: number[][] = socks.map(() => []);
    socks.forEach((s, i) =>
      s.start((b) => {
        for (let k = 0; k < b.count; k++)
          got[i]!.push(
            b.buf[k * b.slotSize + b.headroom + 7]! | (b.buf[k * b.slotSize + b.headroom + 8]! << 8),
          );
      }),
    );
    const c = dgram.createSocket("udp4");
    const want: number[][] = socks.map(() => []);
    for (let last = 0; last < 12; last++)
      for (const type of [PacketType.Data, PacketType.Create]) {
        const d = Buffer.alloc(64);
        d[7] = last;
        d[8] = type;
        const to = type === PacketType.Data ? steerIndex(d.subarray(0, 8), n) : 0;
        want[to]!.push(last | (type << 8));
        await new Promise<void>((r) => c.send(d, g.port, "127.0.0.1", () => r()));
      }
    // a datagram too short for the program's loads goes to socket 0
    await new Promise<void>((r) => c.send(Buffer.from([1, 2, 3]), g.port, "127.0.0.1", () => r()));
    await new Promise((r) => setTimeout(r, 200));
    c.close();
    for (const s of socks) s.close();
    expect(got[1]).toEqual(want[1]);
    expect(got[2]).toEqual(want[2]);
    expect(got[0]!.length).toBe(want[0]!.length + 1);
  });
});

describe("TUN writes spread by flow (tunspread.ts)", () => {
  it("both directions of a flow hash alike; flows spread over the queues; one flow keeps one queue", () => {
    const swap = (p: Buffer) => {
      const q = Buffer.from(p);
      p.copy(q, 12, 16, 20);
      p.copy(q, 16, 12, 16);
      q.writeUInt16BE(p.readUInt16BE(22), 20);
      q.writeUInt16BE(p.readUInt16BE(20), 22);
      return q;
    };
    for (let sp = 40000; sp < 40050; sp++) {
      const p = inner(sp);
      expect(symmetricFlowHash(swap(p), 0, p.length)).toBe(symmetricFlowHash(p, 0, p.length));
    }
    const queues = [new FakeTun({ name: "q0" }), new FakeTun({ name: "q1" })];
    const w = new SpreadTun(queues);
    const pkts = Array.from({ length: 64 }, (_, i) => inner(40000 + (i % 16)));
    const buf = Buffer.concat(pkts);
    const offs = Uint32Array.from(pkts.map((_, i) => i * pkts[0]!.length));
    const lens = Uint32Array.from(pkts.map((p) => p.length));
    expect(w.writeMany(buf, offs, lens, 64)).toBe(64);
    const written = queues.map((q) => q.takeWritten());
    expect(written[0]!.length + written[1]!.length).toBe(64);
    expect(written[0]!.length).toBeGreaterThan(0);
    expect(written[1]!.length).toBeGreaterThan(0);
    const ports0 = new Set(written[0]!.map((p) => p.readUInt16BE(20)));
    for (const p of written[1]!) expect(ports0.has(p.readUInt16BE(20))).toBe(false);
  });
});

describe("shared send counters", () => {
  it("two threads on one cell never get the same counter; a batch's leftover block is skipped", () => {
    const c = cells();
    const a = CounterBlock.init(c, 0, 0);
    const b = new CounterBlock(c, 0);
    const seen = new Set<number>();
    for (let batch = 0; batch < 50; batch++)
      for (const x of [a, b])
        for (let i = 0; i < (batch % 7) * 13 + 1; i++) {
          const n = x.take(batch);
          expect(seen.has(n)).toBe(false);
          seen.add(n);
        }
    // a new batch takes a new block: the gap between two threads stays a few blocks
    const n1 = a.take(1000);
    const n2 = b.take(1000);
    expect(Math.abs(n1 - n2)).toBeLessThanOrEqual(COUNTER_BLOCK);
  });

  it("a block the other threads left far behind is not used on (a send outside a batch)", () => {
    const c = cells();
    const main = CounterBlock.init(c, 3, 0);
    const worker = new CounterBlock(c, 3);
    const first = main.take(1);
    for (let b = 0; b < 20; b++) for (let i = 0; i < COUNTER_BLOCK; i++) worker.take(100 + b);
    const later = main.take(1); // same batch number: without the lag check it would be first + 1
    expect(later).toBeGreaterThan(first + 15 * COUNTER_BLOCK);
  });

  it("init starts past the counters the epoch used and never lowers a cell", () => {
    const c = cells();
    const a = CounterBlock.init(c, 1, 130);
    expect(a.take(1)).toBe(192); // ceil(130 / 64) * 64
    const again = CounterBlock.init(c, 1, 0); // a reused cell keeps rising
    expect(again.take(1)).toBeGreaterThan(192);
  });

  it("answers -1 once the cell's 2^31 blocks are used (nothing is sent, no wrap)", () => {
    const c = cells();
    Atomics.store(c, 2, 0x7fffffff);
    const a = new CounterBlock(c, 2);
    expect(a.take(1)).toBe(-1);
    expect(a.take(2)).toBe(-1);
  });
});

describe("replay window hand-over", () => {
  it("the receiving thread refuses exactly what the old owner accepted", () => {
    const w = new ReplayWindow();
    for (const n of [0, 1, 5, 900, 2000, 2100]) w.accept(n);
    const w2 = new ReplayWindow();
    expect(w2.importState(w.exportState())).toBe(true);
    for (const n of [0, 1, 5, 900, 2000, 2100]) expect(w2.check(n)).toBe(false);
    for (const n of [901, 1000, 2101, 5000]) expect(w2.check(n)).toBe(true);
    expect(w2.check(2)).toBe(false); // older than the window
    expect(new ReplayWindow(64).importState(w.exportState())).toBe(false); // another size: refused
  });
});

describe("DataPlane", () => {
  it("seals an installed flow itself and hands everything else to the engine", () => {
    const { p, sent, msgs } = plane();
    const now = 1_000_000;
    p.onTunBatch(batchOf([inner(40000)]), now); // nothing installed yet
    expect(msgs.map((m) => m.k)).toEqual(["tun"]);
    install(p, now);
    msgs.length = 0;
    p.onTunBatch(batchOf([inner(40000), inner(40001), inner(40000, 6, 0x02)]), now);
    expect(sent).toHaveLength(1); // the installed flow
    expect(sent[0]!.subarray(0, 8).equals(TID)).toBe(true);
    expect(sent[0]![8]).toBe(PacketType.Data);
    expect(p.counters.sealed).toBe(1);
    // another flow, and a TCP SYN (owner recheck on the engine) go to the engine
    expect(msgs.map((m) => m.k)).toEqual(["tun", "tun"]);
  });

  it("an installed flow expires after its ttl: the next packet goes through the engine again", () => {
    const { p, sent, msgs } = plane();
    install(p, 0, 17, 100);
    p.onTunBatch(batchOf([inner(40000)]), 50);
    expect(sent).toHaveLength(1);
    p.onTunBatch(batchOf([inner(40000)]), 150);
    expect(sent).toHaveLength(1);
    expect(msgs.filter((m) => m.k === "tun")).toHaveLength(1);
  });

  it("hands DATA under a TID it does not own, and non-DATA, to the engine untouched", () => {
    const { p, msgs } = plane();
    const d = Buffer.alloc(80, 3);
    d[8] = PacketType.Data;
    const c = Buffer.alloc(80, 4);
    c[8] = PacketType.Create;
    p.onUdpBatch(udpBatch([d, c]), 0);
    expect(msgs.map((m) => m.k)).toEqual(["udp", "udp"]);
    expect(Buffer.from((msgs[0] as { pkt: Uint8Array }).pkt).equals(d)).toBe(true);
  });

  it("refuses forged DATA under a TID it owns (counted, nothing handed on or written)", () => {
    const { p, msgs, tun } = plane();
    p.onMessage(
      {
        k: "recv",
        slot: 1,
        tid: new Uint8Array(TID),
        suite: AeadSuite.ChaCha20Poly1305,
        key: new Uint8Array(32).fill(9),
        top: -1,
        words: new ReplayWindow().exportState().words,
        rejectAt: 1e15,
      },
      0,
    );
    const d = Buffer.alloc(100, 1);
    TID.copy(d, 0);
    d[8] = PacketType.Data;
    p.onUdpBatch(udpBatch([d]), 0);
    expect(p.counters.auth).toBe(1);
    expect(msgs).toHaveLength(0);
    expect(tun).toHaveLength(0);
  });

  it("keeps hand-overs within a budget per second (a flood costs counted drops)", () => {
    const { p, msgs } = plane();
    const pkts = Array.from({ length: 256 }, () => inner(1));
    for (let i = 0; i < Math.ceil(PUNT_BUDGET_PER_SEC / 256) + 4; i++) p.onTunBatch(batchOf(pkts), 5_000);
    expect(msgs).toHaveLength(PUNT_BUDGET_PER_SEC);
    expect(p.counters.puntDropped).toBeGreaterThan(0);
  });

  it("never throws on random bytes from either side", () => {
    const { p } = plane();
    install(p, 0);
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 200 }), { maxLength: 8 }), (arr) => {
        const bufs = arr.map((u) => Buffer.from(u));
        p.onUdpBatch(udpBatch(bufs), 10);
        p.onTunBatch(batchOf(bufs), 10);
      }),
      { numRuns: 300 },
    );
  });
});

describe("dataPath config", () => {
  it("defaults to 1 (the single-thread data path) and takes 1..16", () => {
    expect(parseConfig(MIN, "/etc/m.yaml").dataPath).toEqual({ workers: 1 });
    expect(parseConfig(`${MIN}dataPath:\n  workers: 4\n`, "/etc/m.yaml").dataPath.workers).toBe(4);
  });

  it("refuses bad values with a typed error naming file, line and key", () => {
    for (const bad of ["0", "17", "two", "1.5"]) {
      let e: unknown;
      try {
        parseConfig(`${MIN}dataPath:\n  workers: ${bad}\n`, "/etc/m.yaml");
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).key).toBe("dataPath.workers");
      expect((e as ConfigError).line).toBe(6);
    }
    let e: unknown;
    try {
      parseConfig(`${MIN}dataPath:\n  worker: 2\n`, "/etc/m.yaml");
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(ConfigError);
    expect(String((e as Error).message)).toMatch(/did you mean 'workers'/);
  });
});
