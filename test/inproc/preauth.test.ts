/**
 * Messages before authentication (issue 15), played as the attacker would: an
 * on-path observer reads a CREATE's TID and key id and forges a PUZZLE or a
 * STALE with the responder's source address; one authenticated host floods a
 * responder's tunnel table. The receiving application counts deliveries.
 */
import { describe, expect, it } from "vitest";
import {
  CREATE_OFFSET_KEY_ID,
  CREATE_OFFSET_PUB,
  PacketType,
  RECORD_AD_BYTES,
  STALE_AD_BYTES,
  decodeRecordRequest,
  encodePuzzle,
  encodeRecordResponse,
  encodeStale,
  tidKey,
} from "../../src/wire/packet.js";
import { aeadSeal, dh, dhKeyPair } from "../../src/crypto/sodium.js";
import { recordKey, staleKey } from "../../src/tunnel/keys.js";
import { signEphemeral } from "../../src/wire/cert.js";
import { PuzzleIssuer } from "../../src/dos/puzzle.js";
import { tryEncodeAddr } from "../../src/wire/addr.js";
import { ipv4, makeCa, makeHostCert, SimNet, type Datagram, type SimHost } from "./harness.js";

function pair(bOpts = {}) {
  const net = new SimNet();
  const ca = makeCa();
  const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
  const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null, bOpts);
  a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
  net.run();
  expect(a.engine.events.recordsLearned).toBe(1);
  return { net, ca, a, b };
}

/** One UDP datagram from an application on a to b, first of its flow: it travels 0-RTT. */
const DGRAM = "0-rtt datagram #1";
function sendFirst(a: SimHost): void {
  a.send(ipv4("10.77.0.1", "10.77.0.2", DGRAM));
}
function deliveries(b: SimHost): number {
  return b.take().filter((p) => p.subarray(20).toString() === DGRAM).length;
}

/** The attacker's view of the wire: the CREATE a sent (TID and key id are in the clear). */
function observedCreate(net: SimNet, a: SimHost): Datagram {
  const d = net.queue.find((x) => x.data[8] === PacketType.Create && x.from.equals(a.addr));
  expect(d).toBeDefined();
  return d!;
}

function forgedPuzzle(create: Datagram, difficulty: number, now: number): Datagram {
  const tid = tidKey(create.data, 0);
  const keyId = create.data.readUInt32BE(CREATE_OFFSET_KEY_ID);
  const p = encodePuzzle(tid, keyId, PuzzleIssuer.window(now), difficulty, Buffer.alloc(16, 7));
  // spoofed: from the address the CREATE went to
  return { from: create.to, to: create.from, data: p };
}

describe("forged PUZZLE", () => {
  it("a retry after a forged PUZZLE does not deliver the 0-RTT datagram twice", () => {
    const { net, a, b } = pair();
    sendFirst(a);
    const create = observedCreate(net, a);
    // the forged PUZZLE reaches a before the responder's REPLY does
    net.queue.unshift(forgedPuzzle(create, 4, net.now));
    net.run();
    net.advance(2000);
    expect(a.engine.events.puzzlesSolved).toBe(1); // a did the work and resent as CREATE_SOLVED
    expect(net.log.some((d) => d.data[8] === PacketType.CreateSolved)).toBe(true);
    expect(deliveries(b)).toBe(1);
    expect(b.engine.drops.retryDuplicate).toBe(1);
    // the tunnel works
    a.send(ipv4("10.77.0.1", "10.77.0.2", "after"));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["after"]);
  });

  it("a genuine puzzle still gets the data through once (the CREATE it answers was not accepted)", () => {
    const { net, a, b } = pair({ dos: { puzzleAbovePerSec: 0, baseDifficulty: 6 } });
    sendFirst(a);
    net.run();
    expect(b.engine.events.puzzlesSent).toBe(1);
    expect(deliveries(b)).toBe(1);
    expect(b.engine.drops.retryDuplicate).toBe(0);
  });

  it("a PUZZLE above the creator's cap is a counted drop: no work, no resend", () => {
    const { net, a } = pair();
    sendFirst(a);
    const create = observedCreate(net, a);
    net.queue.unshift(forgedPuzzle(create, 21, net.now));
    net.queue.unshift(forgedPuzzle(create, 255, net.now));
    net.run();
    expect(a.engine.drops.puzzleTooHard).toBe(2);
    expect(a.engine.events.puzzlesQueued).toBe(0);
    expect(net.log.some((d) => d.data[8] === PacketType.CreateSolved)).toBe(false);
  });

  it("a PUZZLE from another address than the CREATE went to is dropped", () => {
    const { net, a } = pair();
    sendFirst(a);
    const p = forgedPuzzle(observedCreate(net, a), 4, net.now);
    p.from = tryEncodeAddr("198.51.100.9", 7000)!;
    net.queue.unshift(p);
    net.run();
    expect(a.engine.drops.puzzleBad).toBe(1);
    expect(a.engine.events.puzzlesQueued).toBe(0);
  });

  it("bounds the puzzles a creator solves per peer", () => {
    const { net, a, b } = pair();
    net.filter = (d) => !d.to.equals(b.addr); // b never answers
    net.now = (PuzzleIssuer.window(net.now) + 1) * 10_000; // start of a puzzle window
    const pb = [...a.engine.peers.values()][0]!;
    for (let i = 0; i < 10; i++) {
      a.send(ipv4("10.77.0.1", "10.77.0.2", `try ${i}`));
      const create = [...net.queue].reverse().find((x) => x.data[8] === PacketType.Create)!;
      net.queue.unshift(forgedPuzzle(create, 2, net.now));
      net.run();
      // the attempt fails; the next packet makes a new creation with a new TID
      a.engine.closeTunnel(pb.sendTunnel()!, net.now, "test");
    }
    // 4 per peer per 10-s window
    expect(a.engine.events.puzzlesSolved).toBe(4);
    expect(a.engine.drops.puzzleBusy).toBe(6);
  });
});

describe("forged STALE", () => {
  /** b rotated its key after a fetched the record: a creates under the older one, still valid. */
  function rotated() {
    const p = pair();
    p.b.engine.eph.rotate(p.net.now);
    const fresh = p.b.engine.eph.current!.cert;
    return { ...p, fresh };
  }

  /** The forger seals the STALE to the CREATE's T_I (public) with a key pair of its own. */
  function forgedStale(create: Datagram, ephRaw: Buffer): Datagram {
    const tid = tidKey(create.data, 0);
    const keyId = create.data.readUInt32BE(CREATE_OFFSET_KEY_ID);
    const tI = create.data.subarray(CREATE_OFFSET_PUB, CREATE_OFFSET_PUB + 32);
    const kp = dhKeyPair();
    const key = staleKey(dh(kp.secretKey, tI)!, create.data.subarray(0, 8), tI, kp.publicKey);
    const b = encodeStale(tid, keyId, kp.publicKey, ephRaw, 0);
    const nonce = Buffer.concat([Buffer.alloc(4), b.subarray(8, 16)]);
    const end = b.length - 16;
    aeadSeal(
      b.subarray(STALE_AD_BYTES),
      b.subarray(STALE_AD_BYTES, end),
      b.subarray(0, STALE_AD_BYTES),
      nonce,
      key,
    );
    return { from: create.to, to: create.from, data: b };
  }

  it("a retry after a forged STALE does not deliver the 0-RTT datagram twice", () => {
    const { net, a, b, fresh } = rotated();
    sendFirst(a);
    const create = observedCreate(net, a);
    net.queue.push(forgedStale(create, fresh.raw));
    net.run();
    net.advance(2000);
    expect(a.engine.events.staleRetries).toBe(1); // a abandoned the creation and retried
    expect(b.engine.events.tunnelsAccepted).toBe(2); // b accepted both creations
    expect(deliveries(b)).toBe(1);
    expect(b.engine.drops.retryDuplicate).toBe(1);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "after"));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["after"]);
  });

  it("a genuine STALE (the key is gone) still gets the data through once", () => {
    const { net, a, b } = pair();
    // b rotates and the key a knows expires (as after a long pause)
    const old = b.engine.eph.current!;
    b.engine.eph.rotate(net.now);
    old.notAfter = net.now;
    sendFirst(a);
    net.run();
    net.advance(1000);
    expect(a.engine.events.staleRetries).toBe(1);
    expect(deliveries(b)).toBe(1);
  });

  it("a STALE from another address than the CREATE went to is dropped", () => {
    const { net, a, fresh } = rotated();
    sendFirst(a);
    const s = forgedStale(observedCreate(net, a), fresh.raw);
    s.from = tryEncodeAddr("198.51.100.9", 7000)!;
    net.queue.unshift(s);
    net.run();
    expect(a.engine.events.staleRetries).toBe(0);
    expect(a.engine.drops.staleSource).toBe(1);
  });

  it("a STALE after the responder's authenticated REPLY is dropped", () => {
    const { net, a, b, fresh } = rotated();
    sendFirst(a);
    const create = observedCreate(net, a);
    net.run();
    expect(deliveries(b)).toBe(1);
    net.queue.push(forgedStale(create, fresh.raw));
    net.run();
    expect(a.engine.events.staleRetries).toBe(0);
    expect(deliveries(b)).toBe(0);
  });
});

describe("tunnel table shares", () => {
  it("one host flooding creations cannot fill the table; unconfirmed tunnels expire fast", () => {
    const net = new SimNet();
    const ca = makeCa();
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null, { maxTunnels: 20, maxPerHost: 4 });
    const x = net.addHost(ca, "x", "192.0.2.66", 7000, "10.77.0.66", null);
    const c = net.addHost(ca, "c", "192.0.2.3", 7000, "10.77.0.3", null);
    x.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    c.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    // x (a member of the organisation, or a stolen host key) creates tunnel after tunnel and
    // never confirms one: it drops every REPLY and forgets its side at once
    net.filter = (d) => !(d.to.equals(x.addr) && d.data[8] === PacketType.Reply);
    const px = [...x.engine.peers.values()][0]!;
    for (let i = 0; i < 50; i++) {
      const t = x.engine.openTunnel(px, net.now)!;
      expect(t).not.toBeNull();
      net.run();
      x.engine.closeTunnel(t, net.now, "test");
    }
    expect(b.engine.events.tunnelsAccepted).toBe(50);
    expect(b.engine.tunnelCount).toBeLessThanOrEqual(4);
    expect(b.engine.events.unconfirmedReplaced).toBeGreaterThanOrEqual(46);
    // another host still creates its tunnel
    c.send(ipv4("10.77.0.3", "10.77.0.2", "from c"));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["from c"]);
    expect(b.engine.drops.tableFull).toBe(0);
    // x's half-open tunnels are gone after the unconfirmed timeout (10 s), not the idle one (180 s)
    net.advance(11_000);
    const bx = [...b.engine.peers.values()].find((p) => p.name === "x")!;
    expect(bx.tunnels.filter((t) => t.state !== "closed")).toHaveLength(0);
    expect(b.engine.events.unconfirmedExpired).toBeGreaterThanOrEqual(1);
    // c's confirmed tunnel stays
    const bc = [...b.engine.peers.values()].find((p) => p.name === "c")!;
    expect(bc.sendTunnel()?.state).toBe("established");
  });
});

describe("duplicated, replayed and reordered copies", () => {
  /** The network delivers every datagram twice, the copy after everything queued behind it. */
  function duplicating(net: SimNet): void {
    const copies = new WeakSet<Datagram>();
    net.filter = (d) => {
      if (!copies.has(d)) {
        const c = { from: Buffer.from(d.from), to: Buffer.from(d.to), data: Buffer.from(d.data) };
        copies.add(c);
        net.queue.push(c);
      }
      return true;
    };
  }

  it("record fetch, creation with 0-RTT data, REPLY and DATA all twice: each inner packet once, one tunnel", () => {
    const net = new SimNet();
    const ca = makeCa();
    const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    duplicating(net);
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    const sent = ["0rtt-1", "0rtt-2", "0rtt-3"];
    for (const m of sent) a.send(ipv4("10.77.0.1", "10.77.0.2", m));
    net.run();
    for (const m of ["data-1", "data-2", "data-3"]) a.send(ipv4("10.77.0.1", "10.77.0.2", m));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual([...sent, "data-1", "data-2", "data-3"]);
    // a duplicated RECORD_REQUEST is answered again (stateless, never larger than the request)
    const count = (t: number) => net.log.filter((d) => d.data[8] === t).length;
    expect(count(PacketType.RecordRequest)).toBe(2);
    expect(count(PacketType.RecordResponse)).toBe(4);
    expect(net.log.filter((d) => d.data[8] === PacketType.Reply).length).toBeGreaterThanOrEqual(2);
    expect(a.engine.events.recordsLearned).toBeLessThanOrEqual(2);
    expect(a.engine.events.tunnelsCreated).toBe(1);
    expect(b.engine.events.tunnelsAccepted).toBe(1);
    // the copies died at the replay windows (k0's for CREATEs, the epoch's for DATA)
    expect(b.engine.drops.replay).toBeGreaterThanOrEqual(6);
    expect(a.engine.peers.values().next().value!.sendTunnel()!.state).toBe("established");
  });

  it("a forged PUZZLE delivered twice: the creator solves it once, the data arrives once", () => {
    const { net, a, b } = pair();
    sendFirst(a);
    const create = observedCreate(net, a);
    const p = forgedPuzzle(create, 4, net.now);
    net.queue.unshift(p, { ...p, data: Buffer.from(p.data) });
    net.run();
    net.advance(2000);
    expect(a.engine.events.puzzlesSolved).toBe(1);
    expect(deliveries(b)).toBe(1);
  });
});

describe("forged and replayed RECORD_RESPONSE", () => {
  it("an on-path forger seals answers to the request's public key: refused; the genuine one is learned once", () => {
    const net = new SimNet();
    const ca = makeCa();
    const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    const req = net.queue.find((d) => d.data[8] === PacketType.RecordRequest)!;
    const r = decodeRecordRequest(req.data, 0, req.data.length)!;
    const nowSec = Math.floor(net.now / 1000);
    /** A RECORD_RESPONSE the forger seals to the request's Q with a key of its own. */
    const forge = (host: Buffer, eph: Buffer): Datagram => {
      const kp = dhKeyPair();
      const m = encodeRecordResponse(r.tid, kp.publicKey, host, eph, req.data.length)!;
      const key = recordKey(dh(kp.secretKey, r.pub)!, m.subarray(0, 8), r.pub, kp.publicKey);
      const nonce = Buffer.concat([Buffer.alloc(4), m.subarray(8, 16)]);
      aeadSeal(
        m.subarray(RECORD_AD_BYTES),
        m.subarray(RECORD_AD_BYTES, m.length - 16),
        m.subarray(0, RECORD_AD_BYTES),
        nonce,
        key,
      );
      return { from: req.to, to: req.from, data: m };
    };
    const ephFor = (hostKey: Buffer, sk: Buffer) =>
      signEphemeral(
        {
          hostKey,
          keyId: 1,
          publicKey: dhKeyPair().publicKey,
          notBefore: nowSec - 1,
          notAfter: nowSec + 300,
          endpoints: [{ ip: "198.51.100.9", port: 7000 }],
          protocolVersion: 1,
          minFirstPacket: 256,
        },
        sk,
      ).raw;
    // a host "b" of another CA, with its own (valid) ephemeral certificate
    const other = makeHostCert(makeCa("other-ca"), "b", "10.77.0.2", null);
    const mallory = makeHostCert(ca, "mallory", "10.77.0.66", null); // a member of the organisation
    const forged = [
      forge(other.cert.raw, ephFor(other.cert.publicKey, other.sk)),
      // b's real (public) certificate with an ephemeral key b never signed
      forge(b.cert.raw, ephFor(mallory.cert.publicKey, mallory.sk)),
      // another member's genuine record under b's name
      forge(mallory.cert.raw, ephFor(mallory.cert.publicKey, mallory.sk)),
    ];
    net.queue.unshift(...forged);
    net.run();
    expect(a.engine.drops.badRecord).toBe(3);
    expect(a.engine.events.recordsLearned).toBe(1); // the genuine answer, after the forgeries
    const genuine = net.log.find((d) => d.data[8] === PacketType.RecordResponse && d.from.equals(b.addr))!;
    // replayed (no request pending) and duplicated forgeries: nothing
    net.queue.push({ ...genuine, data: Buffer.from(genuine.data) }, ...forged);
    net.run();
    expect(a.engine.events.recordsLearned).toBe(1);
    expect(a.engine.drops.badRecord).toBe(7);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "hello"));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["hello"]);
  });
});

describe("replay record shares", () => {
  /**
   * x (a member, or a stolen host key) creates tunnel after tunnel under b's current
   * ephemeral key and never confirms one; c fetched b's record before and creates next,
   * under the same key. b remembers every creator key (T_I) under that key to refuse
   * replays: 40 at most here, each host's share 10 (replayShare = 40: no share).
   */
  function flood(replayShare: number) {
    const net = new SimNet();
    const ca = makeCa();
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null, {
      maxReplayRecords: 40,
      maxReplayPerHost: replayShare,
    });
    const x = net.addHost(ca, "x", "192.0.2.66", 7000, "10.77.0.66", null);
    const c = net.addHost(ca, "c", "192.0.2.3", 7000, "10.77.0.3", null);
    x.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    c.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    net.filter = (d) => !(d.to.equals(x.addr) && d.data[8] === PacketType.Reply);
    const px = [...x.engine.peers.values()][0]!;
    for (let i = 0; i < 50; i++) {
      const t = x.engine.openTunnel(px, net.now)!;
      net.run();
      x.engine.closeTunnel(t, net.now, "test");
    }
    c.send(ipv4("10.77.0.3", "10.77.0.2", "from c"));
    net.run();
    return { b, got: b.take().map((p) => p.subarray(20).toString()) };
  }

  it("one host cannot fill an ephemeral key's replay record: another host still creates under that key", () => {
    const { b, got } = flood(10);
    expect(got).toEqual(["from c"]);
    expect(b.engine.drops.replayShareFull).toBe(40);
    expect(b.engine.drops.createReplay).toBe(0);
    expect(b.engine.eph.current!.seen.size).toBe(11);
  });

  it("without a share (the defence off) the same flood locks the other host out", () => {
    const { b, got } = flood(40);
    expect(got).toEqual([]);
    expect(b.engine.drops.createReplay).toBe(11);
    expect(b.engine.drops.replayShareFull).toBe(0);
  });
});

describe("nothing identifying in the clear", () => {
  it("a record fetch and a tunnel creation show no host name, overlay address or host key in any datagram", () => {
    const net = new SimNet();
    const ca = makeCa();
    const a = net.addHost(ca, "alpha-secret-name", "192.0.2.1", 7000, "10.77.0.1", "fd77::1");
    const b = net.addHost(ca, "bravo-secret-name", "192.0.2.2", 7000, "10.77.0.2", "fd77::2");
    a.engine.addPeer({ name: "bravo-secret-name", endpoint: b.addr }, net.now);
    net.run();
    expect(a.engine.events.recordsLearned).toBe(1);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "hello"));
    net.run();
    expect(b.take()).toHaveLength(1);
    const types = new Set(net.log.map((d) => d.data[8]));
    expect(types).toEqual(
      new Set([
        PacketType.RecordRequest,
        PacketType.RecordResponse,
        PacketType.Create,
        PacketType.Reply,
        PacketType.Data,
      ]),
    );
    const needles: [string, Buffer][] = [];
    for (const h of [a, b]) {
      needles.push([`${h.name} name`, Buffer.from(h.name)]);
      needles.push([`${h.name} host key`, h.cert.publicKey]);
      needles.push([`${h.name} overlay v4`, Buffer.from(h.cert.ip4!.split(".").map(Number))]);
      needles.push([
        `${h.name} overlay v6`,
        Buffer.from(`fd77${"0".repeat(27)}${h.name === a.name ? 1 : 2}`, "hex"),
      ]);
    }
    const found = needles.filter(([, n]) => net.log.some((d) => d.data.includes(n))).map(([w]) => w);
    expect(found).toEqual([]);
  });

  it("a STALE (creation under an expired key) does not show the responder's host key either", () => {
    const { net, a, b } = pair();
    const old = b.engine.eph.current!;
    b.engine.eph.rotate(net.now);
    old.notAfter = net.now;
    net.log.length = 0;
    sendFirst(a);
    net.run();
    expect(net.log.some((d) => d.data[8] === PacketType.Stale)).toBe(true);
    expect(a.engine.events.staleRetries).toBe(1);
    expect(deliveries(b)).toBe(1);
    expect(net.log.some((d) => d.data.includes(b.cert.publicKey))).toBe(false);
  });
});
