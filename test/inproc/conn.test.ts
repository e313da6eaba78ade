/**
 * Per-user connections in process: user authentication in the flow's first
 * packet, the receiver's cached per-user DH, policy with fast refusal, flow
 * matching (no packet rides another user's connection), resets.
 */
import { describe, expect, it } from "vitest";
import { edSkToX, signKeyPair } from "../../src/crypto/sodium.js";
import { parsePolicy } from "../../src/store/policy-file.js";
import type { ConnIdentity, FlowScratch, LocalUser } from "../../src/conn/conns.js";
import { signCert, type UserCert } from "../../src/wire/cert.js";
import { PacketType } from "../../src/wire/packet.js";
import { ipv4, makeCa, SimNet, type Ca } from "./harness.js";

function makeUser(ca: Ca, name: string, uid: number, groups: string[] = [], validSec = 86400): LocalUser {
  const kp = signKeyPair();
  const nowSec = Math.floor(Date.now() / 1000);
  const cert = signCert(
    {
      kind: "user",
      name,
      publicKey: kp.publicKey,
      groups,
      notBefore: nowSec - 60,
      notAfter: nowSec + validSec,
      issuer: ca.cert.publicKey,
    },
    ca.sk,
  ) as UserCert;
  return { uid, osUser: name, cert, x: edSkToX(kp.secretKey) };
}

/** A UDP packet: ports in the first 4 payload bytes. */
function udp(src: string, dst: string, sport: number, dport: number, text: string): Buffer {
  const p = Buffer.alloc(8 + text.length);
  p.writeUInt16BE(sport, 0);
  p.writeUInt16BE(dport, 2);
  p.writeUInt16BE(p.length, 4);
  p.write(text, 8);
  return ipv4(src, dst, p, 17);
}

const POLICY = `
rules:
  - from: { users: [alice] }
    to: { proto: udp, ports: [80] }
    action: allow
  - from: { hosts: [a] }
    to: { proto: udp, ports: [53] }
    action: allow
`;

/** The fake OS identity mapper: the source port says who owns the socket. */
class PortIdentity implements ConnIdentity {
  readonly byPort = new Map<number, LocalUser | "deny">();
  /** the socket (inode) that holds a port; absent: none */
  readonly sockByPort = new Map<number, number>();
  lastSocket = 0;
  calls = 0;
  identify(f: FlowScratch): LocalUser | null | "deny" {
    this.calls++;
    this.lastSocket = this.sockByPort.get(f.sport) ?? 0;
    return this.byPort.get(f.sport) ?? null;
  }
}

function setup() {
  const net = new SimNet();
  const ca = makeCa();
  const id = new PortIdentity();
  const alice = makeUser(ca, "alice", 1001, ["dev"]);
  const bob = makeUser(ca, "bob", 1002);
  for (const p of [1111, 1112]) id.byPort.set(p, alice);
  id.byPort.set(2222, bob);
  id.byPort.set(3333, "deny");
  const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null, { identity: id });
  const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null, {
    policy: parsePolicy(POLICY, "policy.yaml"),
  });
  a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
  net.run();
  return { net, ca, id, alice, bob, a, b };
}

const text = (p: Buffer) => p.subarray(28).toString();

describe("per-user connections", () => {
  it("authenticates alice in the flow's first packet (0-RTT) and whois names her on both ends", () => {
    const { net, a, b } = setup();
    net.log.length = 0;
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "hi from alice"));
    expect(net.queue[0]!.data[8]).toBe(PacketType.Create); // one datagram: HELLO + OPEN + DATA
    net.run();
    expect(b.take().map(text)).toEqual(["hi from alice"]);
    expect(b.engine.events.connsAccepted).toBe(1);
    expect(b.engine.events.userAuthFull).toBe(1);
    const inB = b.engine.connsFor("10.77.0.1", 1111);
    expect(inB).toHaveLength(1);
    expect(inB[0]!.direction).toBe("in");
    expect(inB[0]!.peerUser?.name).toBe("alice");
    expect(inB[0]!.peerUser?.groups).toEqual(["dev"]);
    expect(inB[0]!.peerHost.name).toBe("a");
    const outA = a.engine.connsFor("10.77.0.2", 80);
    expect(outA).toHaveLength(1);
    expect(outA[0]!.direction).toBe("out");
    expect(outA[0]!.localUser?.uid).toBe(1001);
    expect(outA[0]!.session).toBe(inB[0]!.session);
    expect(outA[0]!.session).toMatch(/^[0-9a-f]{16}$/);
  });

  it("a user's later connections cost a MAC: the receiver's DH result is cached", () => {
    const { net, a, b } = setup();
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "one"));
    net.run();
    a.send(udp("10.77.0.1", "10.77.0.2", 1112, 80, "two"));
    net.run();
    expect(b.take().map(text)).toEqual(["one", "two"]);
    expect(b.engine.events.userAuthFull).toBe(1);
    expect(b.engine.events.userAuthCached).toBe(1);
  });

  it("replies ride the opener's connection; once answered no OPEN is repeated", () => {
    const { net, a, b, id } = setup();
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "q"));
    net.run();
    expect(b.take().map(text)).toEqual(["q"]);
    b.send(udp("10.77.0.2", "10.77.0.1", 80, 1111, "answer"));
    net.run();
    expect(a.take().map(text)).toEqual(["answer"]);
    expect(b.engine.events.connsOpened).toBe(0); // the reply opened nothing new
    const calls = id.calls;
    net.log.length = 0;
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "again"));
    expect(net.queue[0]!.data.length).toBe(16 + 3 + 4 + 28 + 5 + 16); // CONN_DATA only
    net.run();
    expect(b.take().map(text)).toEqual(["again"]);
    expect(id.calls).toBe(calls); // no identity lookup for a known flow
  });

  it("refuses bob by policy within one round trip: the application gets an ICMP unreachable", () => {
    const { net, a, b } = setup();
    a.send(udp("10.77.0.1", "10.77.0.2", 2222, 80, "bob here"));
    net.run();
    expect(b.take()).toEqual([]);
    expect(b.engine.events.connsDenied).toBe(1);
    expect(a.engine.events.connsRefused).toBe(1);
    const rej = a.take();
    expect(rej).toHaveLength(1);
    // ICMP type 3 code 13 from the destination to bob's socket address
    expect(rej[0]![9]).toBe(1);
    expect(rej[0]!.subarray(12, 16)).toEqual(Buffer.from([10, 77, 0, 2]));
    expect(rej[0]!.subarray(16, 20)).toEqual(Buffer.from([10, 77, 0, 1]));
    expect(rej[0]![20]).toBe(3);
    expect(rej[0]![21]).toBe(13);
    // later packets of the refused flow are answered locally, nothing is sent
    net.log.length = 0;
    a.send(udp("10.77.0.1", "10.77.0.2", 2222, 80, "bob again"));
    expect(net.queue).toHaveLength(0);
    expect(a.take()).toHaveLength(1);
    expect(a.engine.drops.connDenied).toBe(1);
  });

  it("host-identity flows follow the host rules; an OS user refused locally never leaves", () => {
    const { net, a, b } = setup();
    a.send(udp("10.77.0.1", "10.77.0.2", 5555, 53, "dns"));
    a.send(udp("10.77.0.1", "10.77.0.2", 5556, 80, "web as host"));
    net.run();
    expect(b.take().map(text)).toEqual(["dns"]);
    expect(b.engine.events.connsDenied).toBe(1);
    const sent = net.log.length;
    a.send(udp("10.77.0.1", "10.77.0.2", 3333, 53, "unmapped"));
    expect(net.queue).toHaveLength(0);
    expect(net.log.length).toBe(sent);
    expect(a.engine.drops.connLocalDeny).toBe(1);
  });

  it("refuses a user certificate from another CA and a wrong authenticator", () => {
    const { net, a, b, id } = setup();
    const rogue = makeUser(makeCa("rogue"), "alice", 1003);
    id.byPort.set(4444, rogue);
    const other = makeUser(makeCa("x"), "carol", 1004);
    const alice = id.byPort.get(1111) as LocalUser;
    // alice's certificate with another user's key: the authenticator cannot match
    id.byPort.set(4445, { ...alice, x: other.x });
    a.send(udp("10.77.0.1", "10.77.0.2", 4444, 80, "forged"));
    a.send(udp("10.77.0.1", "10.77.0.2", 4445, 80, "wrong key"));
    net.run();
    expect(b.take()).toEqual([]);
    expect(b.engine.drops.connBadCert).toBe(1);
    expect(b.engine.drops.connBadAuth).toBe(1);
    expect(a.engine.events.connsRefused).toBe(2);
    expect(a.take()).toHaveLength(2); // both applications told at once
  });

  it("drops a packet smuggled onto another user's connection", () => {
    const { net, a, b } = setup();
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "alice"));
    net.run();
    b.take();
    const peer = a.engine.peers.values().next().value!;
    const t = peer.sendTunnel()!;
    const aliceConn = [...peer.conns!.byKey.values()][0]!;
    // bob's packet (another flow) sealed on alice's connection id
    const pkt = udp("10.77.0.1", "10.77.0.2", 2222, 80, "smuggled");
    const buf = Buffer.alloc(64 + pkt.length + 16);
    pkt.copy(buf, 64);
    a.engine.sealConn(t, aliceConn, buf, 64, pkt.length, net.now);
    net.run();
    expect(b.take()).toEqual([]);
    expect(b.engine.drops.connFlow).toBe(1);
  });

  it("a connection the peer forgot is reset and opened again by the next packet", () => {
    const { net, a, b } = setup();
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "first"));
    net.run();
    b.send(udp("10.77.0.2", "10.77.0.1", 80, 1111, "ack"));
    net.run();
    b.take();
    a.take();
    b.engine.peers.values().next().value!.conns!.clear(); // b forgets (restart, expiry)
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "lost"));
    net.run();
    expect(b.take()).toEqual([]);
    expect(b.engine.drops.noConn).toBe(1);
    expect(a.engine.events.connResets).toBe(1);
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "reopened"));
    net.run();
    expect(b.take().map(text)).toEqual(["reopened"]);
    expect(b.engine.connsFor("10.77.0.1", 1111)[0]!.peerUser?.name).toBe("alice");
  });

  it("a later fragment rides its first fragment's connection; an orphan is refused and counted", () => {
    const { net, a, b } = setup();
    const first = udp("10.77.0.1", "10.77.0.2", 1111, 80, "first part");
    first.writeUInt16BE(0x4242, 4);
    first.writeUInt16BE(0x2000, 6); // MF, offset 0
    a.send(first);
    net.run();
    expect(b.take().map(text)).toEqual(["first part"]);
    const later = ipv4("10.77.0.1", "10.77.0.2", "later part", 17);
    later.writeUInt16BE(0x4242, 4);
    later.writeUInt16BE(3, 6); // offset 24 bytes, last
    a.send(later);
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["later part"]);
    expect(a.engine.connCount()).toBe(1); // no connection of its own (it has no ports to be identified by)
    const orphan = ipv4("10.77.0.1", "10.77.0.2", "orphan", 17);
    orphan.writeUInt16BE(0x4343, 4);
    orphan.writeUInt16BE(3, 6);
    a.send(orphan);
    net.run();
    expect(b.take()).toEqual([]);
    expect(a.engine.drops.fragOrphan).toBe(1);
    expect(a.engine.connCount()).toBe(1);
  });

  it("a UDP socket that replaced another on the same tuple is identified afresh (bob cannot ride alice's)", () => {
    const { net, a, b, id, bob } = setup();
    id.sockByPort.set(1111, 501);
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "alice"));
    net.run();
    b.send(udp("10.77.0.2", "10.77.0.1", 80, 1111, "answer"));
    net.run();
    expect(b.take().map(text)).toEqual(["alice"]);
    // alice's socket closes; bob binds port 1111 and sends to the same address and port
    id.byPort.set(1111, bob);
    id.sockByPort.set(1111, 502);
    net.advance(150, 150);
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "bob on alice's tuple"));
    net.run();
    expect(b.take()).toEqual([]); // refused by policy as bob
    expect(a.engine.events.connsReidentified).toBe(1);
    const out = a.engine.connsFor("10.77.0.2", 80);
    expect(out.map((c) => [c.localUser?.uid, c.state])).toEqual([[1002, "denied"]]);
    const inB = b.engine.connsFor("10.77.0.1", 1111);
    expect(inB.map((c) => [c.peerUser?.name, c.state])).toEqual([["bob", "denied"]]); // alice's is gone
  });

  it("a TCP SYN from another socket on a held tuple opens a new connection under its owner", () => {
    const { net, a, id, bob } = setup();
    const tcp = (sport: number, flags: number) => {
      const p = Buffer.alloc(20);
      p.writeUInt16BE(sport, 0);
      p.writeUInt16BE(80, 2);
      p[12] = 5 << 4;
      p[13] = flags;
      return ipv4("10.77.0.1", "10.77.0.2", p, 6);
    };
    id.sockByPort.set(1111, 601);
    a.send(tcp(1111, 0x02));
    net.run();
    a.send(tcp(1111, 0x02)); // the same socket retransmits its SYN: same connection
    net.run();
    expect(a.engine.connCount()).toBe(1);
    expect(a.engine.events.connsReidentified).toBe(0);
    id.byPort.set(1111, bob);
    id.sockByPort.set(1111, 602);
    a.send(tcp(1111, 0x02));
    net.run();
    expect(a.engine.events.connsReidentified).toBe(1);
    expect(a.engine.connsFor("10.77.0.2", 80).map((c) => c.localUser?.uid)).toEqual([1002]);
  });

  it("a policy reload re-judges open connections: refused ones are reset (next packet answered), others continue", () => {
    const { net, a, b } = setup();
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "alice 1")); // allowed: alice udp 80
    a.send(udp("10.77.0.1", "10.77.0.2", 4444, 53, "host 1")); // allowed: host a udp 53
    net.run();
    expect(b.take().map(text)).toEqual(["alice 1", "host 1"]);
    a.take();
    b.engine.policy = parsePolicy(POLICY.replace("users: [alice]", "users: [nobody-here]"), "policy.yaml");
    expect(b.engine.rejudge(net.now)).toEqual({ kept: 1, reset: 1, reidentified: 0 });
    expect(b.engine.drops.connPolicyReset).toBe(1);
    net.run(); // the CONN_DENY reaches a
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "alice 2"));
    a.send(udp("10.77.0.1", "10.77.0.2", 4444, 53, "host 2"));
    net.run();
    expect(b.take().map(text)).toEqual(["host 2"]);
    // alice's application got ICMP administratively prohibited: when the CONN_DENY came (her
    // first packet, never answered, was still kept) and for her next packet
    const back = a.take();
    expect(back).toHaveLength(2);
    for (const p of back) expect([p[9], p[20], p[21]]).toEqual([1, 3, 13]);
    // the peer's own side: b's answer on the reset connection is refused in b as well
    b.send(udp("10.77.0.2", "10.77.0.1", 80, 1111, "late answer"));
    net.run();
    expect(a.take()).toEqual([]);
    const rb = b.take(); // the reject written to b's TUN for its application
    expect(rb.map((p) => [p[9], p[20], p[21]])).toEqual([[1, 3, 13]]);
  });

  it("a reload on the opener re-identifies connections whose identity changed (mineStill)", () => {
    const { net, a, b, id, bob } = setup();
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "alice 1"));
    net.run();
    expect(b.take().map(text)).toEqual(["alice 1"]);
    id.byPort.set(1111, bob); // the store now maps that socket's owner to bob
    expect(a.engine.rejudge(net.now, () => false)).toEqual({ kept: 0, reset: 0, reidentified: 1 });
    a.send(udp("10.77.0.1", "10.77.0.2", 1111, 80, "alice 2"));
    net.run();
    expect(b.take()).toEqual([]); // now bob's: refused by b's policy
    expect(b.engine.connsFor("10.77.0.1", 1111).map((c) => [c.peerUser?.name, c.state])).toEqual([
      ["bob", "denied"],
    ]);
  });

  it("a connection that outlives its user certificate is refused on both ends (coarse tick)", () => {
    const { net, a, b, ca, id } = setup();
    const brief = makeUser(ca, "alice", 1001, ["dev"], 3); // valid 2-3 s from now
    id.byPort.set(1113, brief);
    a.send(udp("10.77.0.1", "10.77.0.2", 1113, 80, "while valid"));
    net.run();
    expect(b.take().map(text)).toEqual(["while valid"]);
    net.advance(11_000);
    expect(b.engine.drops.connCertExpired).toBe(1);
    expect(a.engine.drops.connCertExpired).toBe(1);
    expect(b.engine.connsFor("10.77.0.1", 1113).map((c) => [c.state, c.denyReason])).toEqual([
      ["denied", "bad-certificate"],
    ]);
    a.send(udp("10.77.0.1", "10.77.0.2", 1113, 80, "after expiry"));
    net.run();
    expect(b.take()).toEqual([]);
  });
});
