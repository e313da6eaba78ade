import { describe, expect, it } from "vitest";
import { PacketType } from "../../src/wire/packet.js";
import { ipv4, makeCa, SimNet } from "./harness.js";
import { LoadMeter } from "../../src/dos/load.js";
import { SourceBuckets } from "../../src/dos/bucket.js";
import { solve, workOk, PuzzleIssuer } from "../../src/dos/puzzle.js";
import { tryEncodeAddr } from "../../src/wire/addr.js";

function loadedPair(puzzleAbovePerSec: number) {
  const net = new SimNet();
  const ca = makeCa();
  const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
  const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null, {
    dos: { puzzleAbovePerSec, baseDifficulty: 10 },
  });
  a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
  net.run();
  return { net, a, b };
}

describe("puzzles under load", () => {
  it("without load there is no puzzle and no extra round trip", () => {
    const { net, a, b } = loadedPair(1000);
    net.log.length = 0;
    a.send(ipv4("10.77.0.1", "10.77.0.2", "hi"));
    net.run();
    expect(net.log.map((d) => d.data[8])).toEqual([PacketType.Create, PacketType.Reply, PacketType.Data]);
    expect(b.take()).toHaveLength(1);
    expect(b.engine.events.puzzlesSent).toBe(0);
  });

  it("a loaded responder answers with a stateless puzzle; the creator solves it and gets its tunnel", () => {
    const { net, a, b } = loadedPair(0); // any creation rate counts as load
    net.log.length = 0;
    a.send(ipv4("10.77.0.1", "10.77.0.2", "first"));
    net.run();
    const types = net.log.map((d) => d.data[8]);
    expect(types.slice(0, 4)).toEqual([
      PacketType.Create,
      PacketType.Puzzle,
      PacketType.CreateSolved,
      PacketType.Reply,
    ]);
    // the puzzle is no larger than the CREATE it answers, and b kept no state for it
    expect(net.log[1]!.data.length).toBeLessThan(net.log[0]!.data.length);
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["first"]);
    expect(b.engine.events.puzzlesSent).toBe(1);
    expect(b.engine.events.puzzlesAccepted).toBe(1);
    expect(a.engine.events.puzzlesSolved).toBe(1);
    expect(b.engine.load.difficulty).toBeGreaterThanOrEqual(10);
  });

  it("refuses a forged or reused solution before any Diffie-Hellman", () => {
    const { net, a, b } = loadedPair(0);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    // run until the solved CREATE is queued, capture it
    net.run(2);
    const solved = net.queue.find((d) => d.data[8] === PacketType.CreateSolved)!;
    expect(solved).toBeDefined();
    const copy = Buffer.from(solved.data);
    net.run();
    expect(b.engine.tunnelCount).toBe(1);
    const bt = [...b.engine.peers.values()][0]!.sendTunnel()!;
    b.engine.closeTunnel(bt, net.now, "test");
    // replay of the solved CREATE: the cookie was used
    net.queue.push({ from: solved.from, to: solved.to, data: Buffer.from(copy) });
    // a tampered solution
    const bad = Buffer.from(copy);
    bad[73] ^= 0xff;
    bad.writeUInt32BE(0, 0); // other TID so it is not an existing tunnel
    net.queue.push({ from: solved.from, to: solved.to, data: bad });
    const authBefore = b.engine.drops.auth;
    net.run();
    expect(b.engine.drops.puzzleBad).toBe(2);
    expect(b.engine.drops.auth).toBe(authBefore);
    expect(b.engine.tunnelCount).toBe(0);
  });

  it("rate-limits CREATEs per source address", () => {
    const { net, b } = loadedPair(1e9);
    const junk = Buffer.alloc(300);
    junk[8] = PacketType.Create;
    const src = tryEncodeAddr("198.51.100.7", 4444)!;
    for (let i = 0; i < 500; i++) {
      const d = Buffer.from(junk);
      d.writeUInt32BE(i, 0);
      net.queue.push({ from: src, to: b.addr, data: d });
    }
    net.run(1000);
    expect(b.engine.drops.rateLimited).toBe(300); // burst of 200
  });
});

describe("dos parts", () => {
  it("solve finds work that workOk accepts; a wrong difficulty fails", () => {
    const cookie = Buffer.alloc(16, 1);
    const tid = Buffer.alloc(8, 2);
    const tI = Buffer.alloc(32, 3);
    const s = solve(cookie, tid, tI, 12)!;
    expect(workOk(cookie, tid, tI, s, 12)).toBe(true);
    expect(workOk(cookie, tid, Buffer.alloc(32, 4), s, 12)).toBe(false);
    expect(solve(cookie, tid, tI, 30)).toBeNull(); // over MAX_DIFFICULTY
  });

  it("cookies depend on source, TID, window and difficulty, and expire after two windows", () => {
    const p = new PuzzleIssuer();
    const now = 1_700_000_000_000;
    const a = tryEncodeAddr("192.0.2.1", 1)!;
    const b = tryEncodeAddr("192.0.2.2", 1)!;
    const tid = Buffer.alloc(8, 9);
    const w = PuzzleIssuer.window(now);
    const c1 = p.cookie(a, 0, tid, w, 8, now)!;
    expect(p.cookie(a, 0, tid, w, 8, now)!.equals(c1)).toBe(true);
    expect(p.cookie(b, 0, tid, w, 8, now)!.equals(c1)).toBe(false);
    expect(p.cookie(a, 0, tid, w, 9, now)!.equals(c1)).toBe(false);
    expect(p.cookie(a, 0, tid, w, 8, now + 10_000)).not.toBeNull(); // previous window still accepted
    expect(p.cookie(a, 0, tid, w, 8, now + 20_000)).toBeNull();
  });

  it("load meter: on above the threshold, difficulty grows with load, off only after calm", () => {
    const m = new LoadMeter({ highPerSec: 100, baseDifficulty: 8, maxDifficulty: 20, calmMs: 5000 });
    let t = 1000;
    for (let i = 0; i < 50; i++) m.offer(t);
    m.tick((t += 1000));
    expect(m.puzzling).toBe(false);
    for (let i = 0; i < 850; i++) m.offer(t);
    expect(m.puzzling).toBe(true); // reacts within the second
    m.tick((t += 1000));
    expect(m.difficulty).toBe(8 + 3); // 850/100 -> 3 doublings
    m.tick((t += 1000)); // quiet second
    expect(m.puzzling).toBe(true);
    for (let i = 0; i < 6; i++) m.tick((t += 1000));
    expect(m.puzzling).toBe(false);
    expect(m.maxReached).toBe(11);
  });

  it("source buckets key IPv6 by /64 and stay bounded", () => {
    const s = new SourceBuckets(1, 2, 10);
    const x = tryEncodeAddr("2001:db8:1:2::1", 1)!;
    const y = tryEncodeAddr("2001:db8:1:2::ffff", 9)!;
    expect(s.take(x, 0, 0)).toBe(true);
    expect(s.take(y, 0, 0)).toBe(true);
    expect(s.take(x, 0, 0)).toBe(false); // same /64
    for (let i = 0; i < 50; i++) s.take(tryEncodeAddr(`10.0.0.${i}`, 1)!, 0, 0);
    expect(s.size).toBeLessThanOrEqual(10);
  });
});
