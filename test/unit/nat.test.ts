/**
 * NAT traversal, the bounds and rules of each piece without a network (issue 17):
 * NatAgent (host side: what a notice can make a host send, relayed-path bookkeeping,
 * creation fallback), RelayServer (who may send through the relay, to where, how much)
 * and Rendezvous (when the directory sends notices, and how many). The engine is a stub
 * recording what it was asked to send; the netns suite (test/netns/nat-traversal.test.ts)
 * runs the same code through real nftables NATs.
 */
import { describe, expect, it } from "vitest";
import {
  NatAgent,
  NOTICE_BURST,
  PUNCH_MAX_PER_NOTICE,
  PROBE_AFTER_MS,
  RELAY_AFTER_MS,
  RETRY_AFTER_MS,
} from "../../src/directory/nat.js";
import { RelayServer } from "../../src/directory/relay.js";
import { Rendezvous, PAIR_MIN_INTERVAL_MS } from "../../src/directory/rendezvous.js";
import { makeRecord } from "../../src/directory/store.js";
import type { VerifiedRecord } from "../../src/directory/record.js";
import type { Engine, Output } from "../../src/tunnel/engine.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";
import { addrToString, relayAddr, tryEncodeAddr } from "../../src/wire/addr.js";
import { signEphemeral } from "../../src/wire/cert.js";
import { FrameType } from "../../src/wire/frames.js";
import {
  type Notice,
  PUNCH_BYTES,
  RELAY_HEADER_BYTES,
  decodeNotice,
  encodeNotice,
  writeRelayHeader,
} from "../../src/wire/nat.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { makeCa, makeHostCert } from "../inproc/harness.js";

const A = (ip: string, port: number): Buffer => tryEncodeAddr(ip, port)!;
const key = (n: number): Buffer => Buffer.alloc(32, n);
const DIR = A("203.0.113.1", 7000);

interface StubTunnel {
  state: string;
  canSend: boolean;
  tid: string;
  createdAt: number;
  endpoint: Buffer;
  lastRx: number;
  lastTx: number;
  peer?: { name: string };
}

function stubEngine() {
  const calls: string[] = [];
  const frames: { to: string; type: number; body: Buffer }[] = [];
  const peers = new Map<
    string,
    { name: string; hostCert: { publicKey: Buffer }; sendTunnel: () => StubTunnel | null }
  >();
  const engine = {
    peers,
    sendPunch: (ep: Buffer, ttl = 0) => calls.push(`punch ${addrToString(ep)}${ttl ? ` ttl ${ttl}` : ""}`),
    probeEndpoint: (_t: unknown, ep: Buffer) => calls.push(`probe ${addrToString(ep)}`),
    retryCreation: (p: { name: string }, ep: Buffer | null) =>
      calls.push(`retry ${p.name} ${ep ? addrToString(ep) : "same"}`),
    sendFrame: (t: { peer: { name: string } }, type: number, body: Buffer) =>
      frames.push({ to: t.peer.name, type, body }),
  };
  const addPeer = (name: string, k: Buffer, t: StubTunnel | null) => {
    if (t) t.peer = { name };
    return peers.set(k.latin1Slice(0, 32), { name, hostCert: { publicKey: k }, sendTunnel: () => t });
  };
  return { engine: engine as unknown as Engine, calls, frames, addPeer, peers };
}

const tunnel = (endpoint: Buffer, state = "established"): StubTunnel => ({
  state,
  canSend: state === "established",
  tid: "t1",
  createdAt: 0,
  endpoint,
  lastRx: 0,
  lastTx: 0,
});

const notice = (n: Partial<Notice>): Buffer =>
  encodeNotice({ kind: "punch", peerKey: key(9), token: null, candidates: [], ...n });

describe("NatAgent (host side)", () => {
  it("a notice from no directory, or one that does not decode, makes nothing happen", () => {
    const s = stubEngine();
    const nat = new NatAgent(s.engine, [DIR], () => undefined);
    const b = notice({ candidates: [{ ip: "198.51.100.9", port: 4000 }] });
    nat.onNotice(-1, b, 0, b.length, 0);
    nat.onNotice(0, b, 0, b.length - 1, 0);
    nat.tick(1000);
    expect(s.calls).toEqual([]);
    expect(nat.drops.natBadNotice).toBe(2);
  });

  it("a PUNCH notice makes at most as many bytes of punches as its own tunnel packet had", () => {
    const s = stubEngine();
    const nat = new NatAgent(s.engine, [DIR], () => undefined);
    const cands = [1, 2, 3, 4].map((i) => ({ ip: `198.51.100.${i}`, port: 4000 + i }));
    const b = notice({ candidates: cands });
    nat.onNotice(0, b, 0, b.length, 0);
    expect(s.calls).toEqual(cands.map((c) => `punch ${c.ip}:${c.port} ttl 2`)); // round 1 at once, low TTL
    for (let i = 1; i <= 5; i++) nat.tick(i * 250);
    expect(s.calls.slice(4)).toEqual(["punch 198.51.100.1:4001", "punch 198.51.100.2:4002"]); // then full TTL
    expect(s.calls.every((c) => c.startsWith("punch 198.51.100."))).toBe(true);
    // the notice's DATA packet: 16 header + 3 frame header + notice + 16 tag
    expect(s.calls.length * PUNCH_BYTES).toBeLessThanOrEqual(b.length + 35);
    expect(s.calls.length).toBe(Math.floor((b.length + 35) / PUNCH_BYTES)); // 106 bytes: 6 punches
    // IPv6 candidates make a larger notice: the cap of 8 then holds
    const s6 = stubEngine();
    const nat6 = new NatAgent(s6.engine, [DIR], () => undefined);
    const b6 = notice({ candidates: [1, 2, 3, 4].map((i) => ({ ip: `2001:db8::${i}`, port: 4000 })) });
    nat6.onNotice(0, b6, 0, b6.length, 0);
    for (let i = 1; i <= 5; i++) nat6.tick(i * 250);
    expect(s6.calls).toHaveLength(PUNCH_MAX_PER_NOTICE);
  });

  it("a flood of notices (a lying directory) is cut at the notice rate", () => {
    const s = stubEngine();
    const nat = new NatAgent(s.engine, [DIR], () => undefined);
    const b = notice({ candidates: [{ ip: "192.0.2.77", port: 9 }] });
    for (let i = 0; i < 1000; i++) nat.onNotice(0, b, 0, b.length, 5000);
    for (let i = 1; i <= 4; i++) nat.tick(5000 + i * 250);
    expect(nat.events.natPunchNotices).toBe(NOTICE_BURST);
    expect(nat.drops.natNoticeRateLimited).toBe(1000 - NOTICE_BURST);
    expect(s.calls.length).toBeLessThanOrEqual(NOTICE_BURST * 3);
  });

  it("relayed datagrams are taken only with a token from a notice, from that directory's endpoint", () => {
    const s = stubEngine();
    const nat = new NatAgent(s.engine, [A("203.0.113.2", 7000), DIR], () => undefined);
    const tok = Buffer.from("0102030405060708", "hex");
    expect(nat.relaySource(tok, DIR, 0)).toBe(-1); // unknown token
    const b = notice({ kind: "peer", token: tok });
    nat.onNotice(1, b, 0, b.length, 0);
    expect(nat.relaySource(tok, DIR, 0)).toBe(1);
    expect(nat.relaySource(tok, A("203.0.113.2", 7000), 0)).toBe(-1); // another directory
    expect(nat.relaySource(tok, A("198.51.100.1", 7000), 0)).toBe(-1); // anybody else
    expect(nat.drops.natRelayUnknown).toBe(3);
    const target = nat.relayTarget(relayAddr(1, tok), 0)!;
    expect(addrToString(target.endpoint)).toBe("203.0.113.1:7000");
    expect(target.token.equals(tok)).toBe(true);
    expect(nat.relayTarget(relayAddr(7, tok), 0)).toBeNull();
  });

  it("creation: resent once directly, then through the relay; a relayed tunnel probes its direct candidates", () => {
    const s = stubEngine();
    const looked: string[] = [];
    const nat = new NatAgent(s.engine, [DIR], (p) => looked.push(p.name), undefined, { punchTtl: 0 });
    const t = tunnel(A("198.51.100.7", 7000), "creating");
    s.addPeer("b", key(9), t);
    const tok = Buffer.alloc(8, 5);
    const b = notice({ kind: "peer", token: tok, candidates: [{ ip: "198.51.100.7", port: 7000 }] });
    nat.onNotice(0, b, 0, b.length, 0);
    nat.tick(RETRY_AFTER_MS - 1);
    expect(s.calls).toEqual([]);
    nat.tick(RETRY_AFTER_MS);
    nat.tick(RELAY_AFTER_MS);
    nat.tick(RELAY_AFTER_MS + 5000);
    expect(s.calls).toEqual(["retry b same", `retry b relay:0/${tok.toString("hex")}`]);
    expect(nat.events.natRelayFallbacks).toBe(1);
    // established on the relay: a fresh notice (or the upgrade timer) probes the direct candidate
    t.state = "established";
    t.canSend = true;
    relayAddr(0, tok).copy(t.endpoint);
    s.calls.length = 0;
    nat.onNotice(0, b, 0, b.length, 20_000);
    expect(s.calls).toEqual(["probe 198.51.100.7:7000"]);
    // the upgrade schedule: look the peer up again after 5 s, 5 s, then 35 s (a stale NAT entry expires)
    const at: number[] = [];
    for (let now = 30_000; now <= 115_000; now += 250) {
      const n = looked.length;
      nat.tick(now);
      if (looked.length > n) at.push(now - 30_000);
    }
    expect(at).toEqual([5_000, 10_000, 45_000, 80_000]);
    // back on a direct path: the move is counted
    A("198.51.100.7", 7000).copy(t.endpoint);
    nat.tick(115_250);
    expect(nat.events.natUpgrades).toBe(1);
    // the direct path goes silent while we send: one probe through the relay
    t.lastTx = 130_000;
    t.lastRx = 120_000;
    s.calls.length = 0;
    nat.tick(130_000);
    nat.tick(130_250);
    expect(s.calls).toEqual([`probe relay:0/${tok.toString("hex")}`]);
  });

  it("an upgrade attempt to a peer behind no NAT (no notice comes) probes the endpoint its answer gives", () => {
    const s = stubEngine();
    const answers: ((r: VerifiedRecord, now: number) => void)[] = [];
    const nat = new NatAgent(s.engine, [DIR], (_p, _now, answered) => answers.push(answered));
    const tok = Buffer.alloc(8, 5);
    const t = tunnel(relayAddr(0, tok));
    s.addPeer("b", key(9), t);
    const rec = (observed: { ip: string; port: number }, signed: { ip: string; port: number }[]) =>
      ({
        observed,
        eph: { endpoints: signed },
        endpoint: A(observed.ip, observed.port),
      }) as unknown as VerifiedRecord;
    // the notice that gave the relay (no direct candidates: nothing to punch or probe)
    const n = notice({ kind: "peer", token: tok, candidates: [] });
    nat.onNotice(0, n, 0, n.length, 0);
    for (let now = 0; now <= 10_000; now += 250) nat.tick(now);
    expect(s.calls).toEqual([]);
    expect(answers).toHaveLength(2); // the schedule's attempts at 5 s and 10 s
    // behind a NAT (seen at an address it did not sign): the notice will come; nothing here
    answers[0]!(rec({ ip: "198.51.100.7", port: 41000 }, [{ ip: "10.0.0.7", port: 7000 }]), 5_100);
    expect(s.calls).toEqual([]);
    // behind no NAT (seen at the address it signed): probed at once, full TTL
    answers[1]!(rec({ ip: "198.51.100.9", port: 7000 }, [{ ip: "198.51.100.9", port: 7000 }]), 10_100);
    expect(s.calls).toEqual(["probe 198.51.100.9:7000"]);
    expect(nat.events.natPublicProbes).toBe(1);
    // an answer that comes after the tunnel left the relay probes nothing
    A("198.51.100.9", 7000).copy(t.endpoint);
    s.calls.length = 0;
    answers[1]!(rec({ ip: "198.51.100.9", port: 7000 }, [{ ip: "198.51.100.9", port: 7000 }]), 10_200);
    expect(s.calls).toEqual([]);
  });

  it("an upgrade attempt: low-TTL punches from both ends at once, the probes PROBE_AFTER_MS later", () => {
    const s = stubEngine();
    const nat = new NatAgent(s.engine, [DIR], () => undefined);
    const tok = Buffer.alloc(8, 5);
    const t = tunnel(relayAddr(0, tok));
    s.addPeer("b", key(9), t);
    const cands = [
      { ip: "198.51.100.7", port: 7000 },
      { ip: "10.0.0.7", port: 7000 },
    ];
    // the looking-up end (PEER): punches its own NAT open, then probes
    const peer = notice({ kind: "peer", token: tok, candidates: cands });
    nat.onNotice(0, peer, 0, peer.length, 10_000);
    expect(s.calls).toEqual(["punch 198.51.100.7:7000 ttl 2", "punch 10.0.0.7:7000 ttl 2"]);
    nat.tick(10_000 + PROBE_AFTER_MS - 1);
    expect(s.calls).toHaveLength(2);
    nat.tick(10_000 + PROBE_AFTER_MS);
    expect(s.calls.slice(2)).toEqual(["probe 198.51.100.7:7000", "probe 10.0.0.7:7000"]);
    // the target end (PUNCH): one low-TTL round only (no full-TTL punch that could reach the
    // peer's NAT before the peer's own packets left it), then the probes
    s.calls.length = 0;
    const punch = notice({ kind: "punch", token: tok, candidates: cands });
    nat.onNotice(0, punch, 0, punch.length, 20_000);
    for (let now = 20_250; now <= 22_000; now += 250) nat.tick(now);
    expect(s.calls).toEqual([
      "punch 198.51.100.7:7000 ttl 2",
      "punch 10.0.0.7:7000 ttl 2",
      "probe 198.51.100.7:7000",
      "probe 10.0.0.7:7000",
    ]);
    // the tunnel left the relay before the probes were due: none go out
    s.calls.length = 0;
    nat.onNotice(0, peer, 0, peer.length, 30_000);
    A("198.51.100.7", 7000).copy(t.endpoint);
    for (let now = 30_250; now <= 32_000; now += 250) nat.tick(now);
    expect(s.calls.filter((c) => c.startsWith("probe"))).toEqual([]);
  });

  it("an attempt the peer started counts as ours: both ends keep one upgrade schedule", () => {
    const s = stubEngine();
    const looked: number[] = [];
    const nat = new NatAgent(s.engine, [DIR], (_p, now) => looked.push(now));
    const tok = Buffer.alloc(8, 5);
    s.addPeer("b", key(9), tunnel(relayAddr(0, tok)));
    // the notice of the creation, then the tunnel is on the relay: attempts would be 5 s, 10 s, 45 s later
    const peer = notice({ kind: "peer", token: tok, candidates: [{ ip: "198.51.100.7", port: 7000 }] });
    nat.onNotice(0, peer, 0, peer.length, 0);
    for (let now = 0; now < 4_000; now += 250) nat.tick(now);
    // the peer's own first attempt reaches us at 4 s (a PUNCH notice): our next is 5 s after it
    const punch = notice({ kind: "punch", token: tok, candidates: [{ ip: "198.51.100.7", port: 7000 }] });
    nat.onNotice(0, punch, 0, punch.length, 4_000);
    for (let now = 4_000; now <= 60_000; now += 250) nat.tick(now);
    expect(looked).toEqual([9_000, 44_000]);
  });
});

describe("RelayServer (directory side)", () => {
  const setup = (bytesPerSec = 1_000_000, burstBytes = 2_000_000) => {
    const s = stubEngine();
    const ea = A("198.51.100.1", 40000);
    const eb = A("198.51.100.2", 50000);
    s.addPeer("a", key(1), tunnel(ea));
    s.addPeer("b", key(2), tunnel(eb));
    const sent: string[] = [];
    const out: Output = {
      sendUdp: (_b, _o, len, addr) => void sent.push(`${addrToString(addr)} ${len}`),
      writeTun: () => undefined,
      flush: () => undefined,
    };
    const r = new RelayServer(s.engine, out, { bytesPerSec, burstBytes, maxPairs: 4, idleMs: 1000 });
    return { s, r, ea, eb, sent };
  };
  const dgram = (tok: Buffer, inner: number): Buffer => {
    const b = Buffer.alloc(RELAY_HEADER_BYTES + inner, 0xaa);
    writeRelayHeader(b, 0, tok);
    return b;
  };

  it("forwards between the two hosts' tunnel endpoints only", () => {
    const { s, r, ea, eb, sent } = setup();
    const tok = r.pairFor(key(1), key(2), 0);
    expect(r.pairFor(key(2), key(1), 0).equals(tok)).toBe(true); // one token per pair
    const d = dgram(tok, 100);
    r.forward(d, 0, d.length, ea, 0, 1);
    r.forward(d, 0, d.length, eb, 0, 2);
    r.forward(d, 0, d.length, A("192.0.2.66", 40000), 0, 3); // spoofed or stale source
    const other = dgram(Buffer.alloc(8, 3), 100);
    r.forward(other, 0, other.length, ea, 0, 4); // no such pair
    expect(sent).toEqual(["198.51.100.2:50000 116", "198.51.100.1:40000 116"]);
    expect(r.drops).toMatchObject({ relaySource: 1, relayUnknown: 1 });
    expect(r.events).toMatchObject({ relayPackets: 2, relayBytes: 232, relayPairs: 1 });
    expect(
      r
        .state()
        .hosts.map((h) => `${h.name} ${h.packets} ${h.bytes}`)
        .sort(),
    ).toEqual(["a 1 116", "b 1 116"]);
    // the other host has no tunnel to the directory now: nothing to send to
    s.peers.get(key(2).latin1Slice(0, 32))!.sendTunnel = () => null;
    r.forward(d, 0, d.length, ea, 0, 5);
    expect(r.drops.relayNoPeer).toBe(1);
  });

  it("a host over its byte rate gets counted drops; the bucket refills", () => {
    const { r, ea, sent } = setup(1000, 1500);
    const tok = r.pairFor(key(1), key(2), 0);
    const d = dgram(tok, 1200);
    r.forward(d, 0, d.length, ea, 0, 0);
    r.forward(d, 0, d.length, ea, 0, 10);
    expect(sent).toHaveLength(1);
    expect(r.drops.relayRateLimited).toBe(1);
    r.forward(d, 0, d.length, ea, 0, 1500);
    expect(sent).toHaveLength(2);
    expect(r.state().hosts[0]).toMatchObject({ name: "a", packets: 2, dropped: 1 });
  });

  it("pairs are bounded and forgotten when idle", () => {
    const { r } = setup();
    const t1 = r.pairFor(key(1), key(2), 0);
    for (let i = 3; i < 8; i++) r.pairFor(key(1), key(i), i);
    expect(r.state().pairs).toBe(4);
    expect(r.owns(dgram(t1, 20), 0, 36)).toBe(false); // the oldest was evicted
    r.tick(20_000);
    expect(r.state().pairs).toBe(0);
  });
});

describe("Rendezvous (directory side)", () => {
  const ca = makeCa();
  const nowSec = Math.floor(Date.now() / 1000);
  const record = (
    name: string,
    observed: { ip: string; port: number },
    signed: { ip: string; port: number }[],
  ) => {
    const h = makeHostCert(ca, name, null, null);
    const eph = signEphemeral(
      {
        hostKey: h.cert.publicKey,
        keyId: 1,
        publicKey: signKeyPair().publicKey.subarray(0, 32),
        notBefore: nowSec - 1,
        notAfter: nowSec + 300,
        endpoints: signed,
        protocolVersion: 1,
        minFirstPacket: 256,
      },
      h.sk,
    );
    return makeRecord(h.cert.raw, eph.raw, observed)!;
  };
  const requester = (k: Buffer, ep: Buffer) =>
    ({ peer: { name: "a", hostCert: { publicKey: k } }, endpoint: ep }) as unknown as Tunnel;

  it("a NATed target gets PUNCH with the requester's candidates, the requester PEER; same token", () => {
    const s = stubEngine();
    const relay = new RelayServer(
      s.engine,
      { sendUdp: () => undefined, writeTun: () => undefined, flush: () => undefined },
      {
        bytesPerSec: 1e6,
        burstBytes: 2e6,
        maxPairs: 10,
        idleMs: 1000,
      },
    );
    const rdv = new Rendezvous(s.engine, relay);
    const r = record("b", { ip: "198.51.100.2", port: 50000 }, [{ ip: "192.168.2.1", port: 7000 }]);
    const bk = Buffer.from(r.key, "hex");
    s.addPeer("b", bk, tunnel(A("198.51.100.2", 50000)));
    rdv.registered(key(1), [{ ip: "192.168.1.1", port: 7000 }]);
    rdv.onLookup(requester(key(1), A("198.51.100.1", 40000)), r, 1000);
    expect(s.frames.map((f) => `${f.to} ${f.type}`)).toEqual([
      `b ${FrameType.DirNotice}`,
      `a ${FrameType.DirNotice}`,
    ]);
    const toB = decodeNotice(s.frames[0]!.body, 0, s.frames[0]!.body.length)!;
    const toA = decodeNotice(s.frames[1]!.body, 0, s.frames[1]!.body.length)!;
    expect(toB.kind).toBe("punch");
    expect(toB.peerKey.equals(key(1))).toBe(true);
    expect(toB.candidates).toEqual([
      { ip: "198.51.100.1", port: 40000 }, // observed first
      { ip: "192.168.1.1", port: 7000 },
    ]);
    expect(toA.kind).toBe("peer");
    expect(toA.candidates[0]).toEqual({ ip: "198.51.100.2", port: 50000 });
    expect(toA.token!.equals(toB.token!)).toBe(true);
    // the same pair again within the interval: nothing; after it: again
    rdv.onLookup(requester(key(1), A("198.51.100.1", 40000)), r, 1000 + PAIR_MIN_INTERVAL_MS - 1);
    expect(s.frames).toHaveLength(2);
    rdv.onLookup(requester(key(1), A("198.51.100.1", 40000)), r, 1000 + PAIR_MIN_INTERVAL_MS);
    expect(s.frames).toHaveLength(4);
  });

  it("no notices for a host reachable as it is, or one with no tunnel here; a requester is rate-limited", () => {
    const s = stubEngine();
    const rdv = new Rendezvous(s.engine, null, { perSec: 5, burst: 10, maxHosts: 100 });
    const pub = record("p", { ip: "198.51.100.9", port: 7000 }, [{ ip: "198.51.100.9", port: 7000 }]);
    s.addPeer("p", Buffer.from(pub.key, "hex"), tunnel(A("198.51.100.9", 7000)));
    rdv.onLookup(requester(key(1), A("198.51.100.1", 40000)), pub, 0);
    const gone = record("g", { ip: "198.51.100.8", port: 1234 }, []);
    rdv.onLookup(requester(key(1), A("198.51.100.1", 40000)), gone, 0);
    expect(s.frames).toHaveLength(0);
    expect(rdv.events.rdvSkipped).toBe(1);
    for (let i = 0; i < 30; i++) {
      const r = record(`h${i}`, { ip: "198.51.100.3", port: 1000 + i }, []);
      s.addPeer(`h${i}`, Buffer.from(r.key, "hex"), tunnel(A("198.51.100.3", 1000 + i)));
      rdv.onLookup(requester(key(1), A("198.51.100.1", 40000)), r, 0);
    }
    expect(rdv.events.rdvSent).toBe(10);
    expect(rdv.drops.rdvRateLimited).toBe(20);
    expect(s.frames).toHaveLength(20);
    // no relay configured: notices carry no token
    expect(decodeNotice(s.frames[0]!.body, 0, s.frames[0]!.body.length)!.token).toBeNull();
  });
});
