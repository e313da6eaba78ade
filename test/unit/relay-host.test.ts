/**
 * Relay hosts (issue 17): a relay that is not the directory. The pieces without a network:
 * the directory's RelayBroker (which offering host it picks, and what it tells it), the end
 * host's RelayVia (which relay path it uses, from where it takes relayed datagrams), the
 * relay host's RelayServer.addPair, and relayIn's accounting of RELAY datagrams nobody takes
 * (a counted drop, exactly once). The netns suite (test/netns/nat-relay.test.ts) runs the same
 * code through real symmetric NATs.
 */
import { describe, expect, it } from "vitest";
import { RelayBroker, OFFER_TTL_MS } from "../../src/directory/relaybroker.js";
import { RelayServer } from "../../src/directory/relay.js";
import { NatAgent } from "../../src/directory/nat.js";
import { RelayVia, VIA_BURST } from "../../src/directory/via.js";
import { newRelayPathDrops, relayIn } from "../../src/directory/relaypath.js";
import type { Engine, Output } from "../../src/tunnel/engine.js";
import type { Peer, Tunnel } from "../../src/tunnel/tunnel.js";
import type { UdpBatch } from "../../src/tunnel/io.js";
import { RELAY_VIA_INDEX, addrToString, relayAddr, tryEncodeAddr } from "../../src/wire/addr.js";
import { FrameType } from "../../src/wire/frames.js";
import { RELAY_HEADER_BYTES, writeRelayHeader } from "../../src/wire/nat.js";
import { decodePair, encodeOffer, encodePair, encodeVia } from "../../src/wire/relaynotice.js";

const A = (ip: string, port: number): Buffer => tryEncodeAddr(ip, port)!;
const key = (n: number): Buffer => Buffer.alloc(32, n);
const TOK = Buffer.from("0102030405060708", "hex");

interface StubTunnel {
  state: string;
  canSend: boolean;
  tid: string;
  endpoint: Buffer;
  peer: StubPeer;
}
interface StubPeer {
  name: string;
  hostCert: { publicKey: Buffer; name: string };
  eph: { notAfter: number } | null;
  endpoint: Buffer | null;
  t: StubTunnel | null;
  sendTunnel: () => StubTunnel | null;
}

function stubEngine() {
  const frames: { to: string; type: number; body: Buffer }[] = [];
  const opened: string[] = [];
  const peers = new Map<string, StubPeer>();
  const engine = {
    peers,
    sendFrame: (t: StubTunnel, type: number, body: Buffer) => frames.push({ to: t.peer.name, type, body }),
    openTunnel: (p: StubPeer) => {
      opened.push(p.name);
      return {};
    },
  };
  const addPeer = (
    name: string,
    k: Buffer,
    endpoint: Buffer | null,
    state: string | null = "established",
  ) => {
    const p: StubPeer = {
      name,
      hostCert: { publicKey: k, name },
      eph: { notAfter: 1e12 },
      endpoint,
      t: null,
      sendTunnel: () => p.t,
    };
    if (state && endpoint)
      p.t = { state, canSend: state === "established", tid: `tid-${name}`, endpoint, peer: p };
    peers.set(k.latin1Slice(0, 32), p);
    return p;
  };
  return { engine: engine as unknown as Engine, frames, opened, addPeer, peers };
}

describe("RelayBroker (directory side)", () => {
  it("picks an offering host that is listed, public and has a tunnel here, never one of the pair; tells it the pair", () => {
    const s = stubEngine();
    const pub = new Set<string>();
    const broker = new RelayBroker(s.engine, (k) => pub.has(k), new Set(["r1", "r2"]));
    const r1 = s.addPeer("r1", key(7), A("198.51.100.7", 7000));
    const r2 = s.addPeer("r2", key(8), A("198.51.100.8", 7000));
    s.addPeer("a", key(1), A("203.0.113.1", 4000));
    expect(broker.pick(key(1), key(2), 0)).toBeNull(); // no offers
    broker.onOffer(r1.t as unknown as Tunnel, encodeOffer(), 0, 2, 0);
    broker.onOffer(r2.t as unknown as Tunnel, Buffer.from([1, 4]), 0, 2, 0); // not an offer
    expect(broker.drops.relayBadOffer).toBe(1);
    const x = s.addPeer("x", key(5), A("198.51.100.5", 7000)); // a member host not in relay.hosts
    broker.onOffer(x.t as unknown as Tunnel, encodeOffer(), 0, 2, 0);
    pub.add(key(5).latin1Slice(0, 32));
    expect(broker.drops.relayOfferRefused).toBe(1);
    expect(broker.pick(key(1), key(2), 0)).toBeNull(); // r1 behind a NAT (not public)
    pub.add(key(7).latin1Slice(0, 32));
    const p = broker.pick(key(1), key(2), 10)!;
    expect(p.name).toBe("r1");
    expect(p.key.equals(key(7))).toBe(true);
    const f = s.frames.at(-1)!;
    expect(f).toMatchObject({ to: "r1", type: FrameType.DirNotice });
    const pair = decodePair(f.body, 0, f.body.length)!;
    expect(pair.a.equals(key(1)) && pair.b.equals(key(2)) && pair.token.equals(p.token)).toBe(true);
    broker.tick(10);
    expect(broker.state()).toEqual({ offering: 1, pairs: 1 }); // r1 (x's offer was refused)
    // the same pair keeps its relay and token (the relay is told again)
    expect(broker.pick(key(2), key(1), 20)!.token.equals(p.token)).toBe(true);
    expect(s.frames).toHaveLength(2);
    // a relay host is never picked for a pair it is in
    expect(broker.pick(key(7), key(1), 30)).toBeNull();
    // an offer expires; a relay host whose tunnel to the directory is gone is not used
    expect(broker.pick(key(3), key(4), OFFER_TTL_MS + 1)).toBeNull();
    broker.onOffer(r1.t as unknown as Tunnel, encodeOffer(), 0, 2, OFFER_TTL_MS + 2);
    r1.t = null;
    expect(broker.pick(key(3), key(4), OFFER_TTL_MS + 3)).toBeNull();
  });
});

describe("RelayVia (end host) and the relay host's pairs", () => {
  const setup = (server: RelayServer | null = null) => {
    const s = stubEngine();
    const nat = new NatAgent(s.engine, [A("203.0.113.100", 7000)], () => undefined);
    const lookups: string[] = [];
    let answer: StubPeer | null = null;
    let now = 0;
    const via = new RelayVia(
      s.engine,
      () => now,
      (name, k, _at, cb) => {
        lookups.push(name);
        cb(answer && answer.hostCert.publicKey.equals(k) ? (answer as unknown as Peer) : null);
      },
      (k, a, at) => nat.setRelay(k, a, at),
      server,
      (p) => p.name === "dir",
    );
    nat.via = via;
    return {
      s,
      nat,
      via,
      lookups,
      setAnswer: (p: StubPeer | null) => (answer = p),
      setNow: (x: number) => (now = x),
    };
  };
  const viaNotice = (relayName = "r1", relayKey = key(7)) =>
    encodeVia({ peerKey: key(2), token: TOK, relayKey, relayName });

  it("a VIA notice from no directory, or malformed, or over the rate, changes nothing", () => {
    const { via, lookups } = setup();
    const b = viaNotice();
    via.onVia(-1, b, 0, b.length, 0);
    via.onVia(0, b, 0, b.length - 1, 0);
    expect(via.drops.viaBadNotice).toBe(2);
    expect(lookups).toEqual([]);
    for (let i = 0; i < VIA_BURST + 5; i++) via.onVia(0, b, 0, b.length, 1);
    expect(via.drops.viaRateLimited).toBe(5);
  });

  it("the relay path goes to the relay host's tunnel only, and relayed datagrams are taken only from there", () => {
    const { s, nat, via, lookups, setAnswer } = setup();
    const b = viaNotice();
    const wrong = s.addPeer("r1", key(9), A("198.51.100.9", 7000), null); // a record with another key
    setAnswer(wrong);
    via.onVia(0, b, 0, b.length, 0);
    expect(lookups).toEqual(["r1"]);
    expect(via.drops.viaWrongRelay).toBe(1);
    expect(s.opened).toEqual([]);
    const path = relayAddr(RELAY_VIA_INDEX, TOK);
    expect(addrToString(path)).toBe("relay:host/0102030405060708");
    expect(nat.relayTarget(path, 0)).toBeNull(); // no tunnel to the relay host: nothing leaves
    // the right record: a tunnel is opened (from the tick, at most every second)
    const r1 = s.addPeer("r1", key(7), A("198.51.100.7", 7000), null);
    setAnswer(r1);
    via.tick(500);
    expect(s.opened).toEqual([]);
    via.tick(1000);
    expect(s.opened).toEqual(["r1"]);
    r1.t = { state: "established", canSend: true, tid: "x", endpoint: A("198.51.100.7", 7000), peer: r1 };
    const tgt = nat.relayTarget(path, 0)!;
    expect(addrToString(tgt.endpoint)).toBe("198.51.100.7:7000");
    expect(tgt.token.equals(TOK)).toBe(true);
    expect(nat.relaySource(TOK, A("198.51.100.7", 7000), 0)).toBe(RELAY_VIA_INDEX);
    expect(nat.relaySource(TOK, A("198.51.100.66", 7000), 0)).toBe(-1); // spoofed source
    expect(nat.relaySource(Buffer.alloc(8, 5), A("198.51.100.7", 7000), 0)).toBe(-1); // guessed token
    expect(nat.drops.natRelayUnknown).toBe(2);
  });

  it("PAIR notices: taken from a directory by a relay host only; the pair's token is replaced, not added", () => {
    const out: Output = { sendUdp: () => undefined, writeTun: () => undefined, flush: () => undefined };
    const plain = setup();
    const pb = encodePair({ a: key(1), token: TOK, b: key(2) });
    plain.via.onPair(0, pb, 0, pb.length, 0);
    expect(plain.via.drops.viaBadNotice).toBe(1); // not a relay host
    const s0 = stubEngine();
    const server = new RelayServer(s0.engine, out, {
      bytesPerSec: 1000,
      burstBytes: 2000,
      maxPairs: 4,
      idleMs: 1000,
    });
    const { via } = setup(server);
    via.onPair(-1, pb, 0, pb.length, 0);
    expect(via.drops.viaBadNotice).toBe(1); // from no directory
    via.onPair(0, pb, 0, pb.length, 0);
    const d = Buffer.alloc(RELAY_HEADER_BYTES + 32);
    writeRelayHeader(d, 0, TOK);
    expect(server.owns(d, 0, d.length)).toBe(true);
    const tok2 = Buffer.alloc(8, 9);
    const pb2 = encodePair({ a: key(2), token: tok2, b: key(1) });
    via.onPair(0, pb2, 0, pb2.length, 1);
    expect(server.owns(d, 0, d.length)).toBe(false);
    writeRelayHeader(d, 0, tok2);
    expect(server.owns(d, 0, d.length)).toBe(true);
    expect(server.state().pairs).toBe(1);
  });

  it("a relay host offers on each established directory tunnel, when new and every 20 s", () => {
    const out: Output = { sendUdp: () => undefined, writeTun: () => undefined, flush: () => undefined };
    const s0 = stubEngine();
    const server = new RelayServer(s0.engine, out, {
      bytesPerSec: 1000,
      burstBytes: 2000,
      maxPairs: 4,
      idleMs: 1,
    });
    const { s, via } = setup(server);
    s.addPeer("dir", key(100), A("203.0.113.100", 7000));
    s.addPeer("other", key(101), A("203.0.113.101", 7000));
    via.tick(0);
    via.tick(1000);
    via.tick(20_000);
    expect(s.frames.map((f) => `${f.to} ${f.body.toString("hex")}`)).toEqual(["dir 0105", "dir 0105"]);
  });
});

describe("relayIn: RELAY datagrams nobody takes", () => {
  const batch = (dgrams: Buffer[], src: Buffer): UdpBatch => {
    const slot = 2048;
    const buf = Buffer.alloc(slot * dgrams.length);
    const addrs = Buffer.alloc(20 * dgrams.length);
    const lens = new Uint32Array(dgrams.length);
    dgrams.forEach((d, i) => {
      d.copy(buf, i * slot);
      src.copy(addrs, i * 20);
      lens[i] = d.length;
    });
    return { buf, addrs, lens, count: dgrams.length, slotSize: slot, headroom: 0 } as unknown as UdpBatch;
  };
  const relayDgram = (tok: Buffer, reserved = 0): Buffer => {
    const d = Buffer.alloc(RELAY_HEADER_BYTES + 40, 0xaa);
    writeRelayHeader(d, 0, tok);
    d[12] = reserved;
    return d;
  };

  it("are counted drops, once each, whatever this host runs (failed before: uncounted or counted twice)", () => {
    const src = A("192.0.2.66", 5555);
    // neither a relay nor an agent here
    const drops = newRelayPathDrops();
    const b1 = batch([relayDgram(TOK)], src);
    relayIn(b1, null, null, drops, 0);
    expect(b1.lens[0]).toBe(0);
    expect(drops.relayNotOurs).toBe(1);
    // an agent, a malformed RELAY (nonzero reserved byte)
    const s = stubEngine();
    const nat = new NatAgent(s.engine, [A("203.0.113.100", 7000)], () => undefined);
    const b2 = batch([relayDgram(TOK, 1)], src);
    relayIn(b2, null, nat, drops, 0);
    expect(b2.lens[0]).toBe(0);
    expect(drops.relayNotOurs).toBe(2);
    // a relay and an agent, a token neither holds: the agent counts it, the relay does not too
    const out: Output = { sendUdp: () => undefined, writeTun: () => undefined, flush: () => undefined };
    const server = new RelayServer(s.engine, out, {
      bytesPerSec: 1000,
      burstBytes: 2000,
      maxPairs: 4,
      idleMs: 1,
    });
    const b3 = batch([relayDgram(TOK)], src);
    relayIn(b3, server, nat, drops, 0);
    expect(b3.lens[0]).toBe(0);
    expect(nat.drops.natRelayUnknown + server.drops.relayUnknown + drops.relayNotOurs - 2).toBe(1);
  });
});
