import { describe, expect, it } from "vitest";
import { ipv6ToBytes } from "../../src/ip/ip.js";
import { PacketType } from "../../src/wire/packet.js";
import { ipv4, ipv6, makeCa, SimNet, type SimHost } from "./harness.js";

function pair(opts: { bKnowsA?: boolean } = {}) {
  const net = new SimNet();
  const ca = makeCa();
  const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", "fd77::1");
  const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", "fd77::2");
  a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
  if (opts.bKnowsA) b.engine.addPeer({ name: "a", endpoint: a.addr }, net.now);
  net.run(); // record fetch
  return { net, ca, a, b };
}

function types(net: SimNet, from?: SimHost): number[] {
  return net.log.filter((d) => !from || d.from.equals(from.addr)).map((d) => d.data[8]!);
}

describe("tunnel creation (0-RTT)", () => {
  it("fetches the configured peer's record at start, then the first packet carries data", () => {
    const { net, a, b } = pair();
    expect(a.engine.events.recordsLearned).toBe(1);
    net.log.length = 0;
    a.send(ipv4("10.77.0.1", "10.77.0.2", "hello b"));
    // first datagram on the wire is a CREATE and b delivers the inner packet from it
    expect(net.queue[0]!.data[8]).toBe(PacketType.Create);
    net.run();
    const got = b.take();
    expect(got).toHaveLength(1);
    expect(got[0]!.subarray(20).toString()).toBe("hello b");
    expect(types(net)).toEqual([PacketType.Create, PacketType.Reply, PacketType.Data]);
    expect(a.engine.events.zeroRttPackets).toBe(1);
    const ta = a.engine.peers.values().next().value!.sendTunnel()!;
    const tb = b.engine.peers.values().next().value!.sendTunnel()!;
    expect(ta.state).toBe("established");
    expect(tb.state).toBe("established");
  });

  it("carries traffic both ways, IPv4 and IPv6, after creation", () => {
    const { net, a, b } = pair();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "ping"));
    net.run();
    b.take();
    b.send(ipv4("10.77.0.2", "10.77.0.1", "pong"));
    b.send(ipv6(ipv6ToBytes("fd77::2")!, ipv6ToBytes("fd77::1")!, "pong6"));
    net.run();
    const got = a.take().map((p) => p.subarray(p[0]! >> 4 === 4 ? 20 : 40).toString());
    expect(got).toEqual(["pong", "pong6"]);
    // responder's packets are DATA once it saw the creator's confirmation
    expect(types(net, b).slice(-2)).toEqual([PacketType.Data, PacketType.Data]);
  });

  it("recovers when the first packet is lost: the next one creates the tunnel", () => {
    const { net, a, b } = pair();
    let dropped = 0;
    net.filter = (d) => !(d.data[8] === PacketType.Create && dropped++ === 0);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "lost"));
    net.run();
    expect(b.take()).toHaveLength(0);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "second"));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["second"]);
    expect(b.engine.events.tunnelsAccepted).toBe(1);
  });

  it("when the REPLY is lost, further CREATEs are accepted on the same tunnel and answered", () => {
    const { net, a, b } = pair();
    let dropped = 0;
    net.filter = (d) => !(d.data[8] === PacketType.Reply && dropped++ === 0);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "one"));
    net.run();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "two"));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["one", "two"]);
    expect(b.engine.events.tunnelsAccepted).toBe(1);
    expect(a.engine.peers.values().next().value!.sendTunnel()!.state).toBe("established");
  });

  it("drops a replayed first packet and allocates no second tunnel", () => {
    const { net, a, b } = pair();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "once"));
    const create = Buffer.from(net.queue[0]!.data);
    net.run();
    expect(b.take()).toHaveLength(1);
    // replay from another address after the tunnel is gone
    const bt = b.engine.peers.values().next().value!.sendTunnel()!;
    b.engine.closeTunnel(bt, net.now, "test");
    net.queue.push({ from: Buffer.from(a.addr), to: b.addr, data: create });
    net.run();
    expect(b.take()).toHaveLength(0);
    expect(b.engine.drops.createReplay).toBe(1);
    expect(b.engine.events.tunnelsAccepted).toBe(1);
  });

  it("answers a CREATE under an expired ephemeral key with the fresh key; the creator retries once", () => {
    const { net, a, b } = pair();
    // b rotates twice (old key erased) while a holds the old record
    const oldId = b.engine.eph.current!.keyId;
    net.now += 400_000;
    b.engine.tick(net.now);
    b.engine.tick(net.now);
    expect(b.engine.eph.get(oldId, net.now)).toBeUndefined();
    // a's copy of b's record: force it to look fresh so a does not refetch first
    const pb = a.engine.peers.values().next().value!;
    pb.eph = { ...pb.eph!, notAfter: Math.floor(net.now / 1000) + 100 };
    a.send(ipv4("10.77.0.1", "10.77.0.2", "retry me"));
    net.run();
    expect(b.engine.drops.staleKey).toBe(1);
    expect(a.engine.events.staleRetries).toBe(1);
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["retry me"]);
    expect(pb.sendTunnel()!.state).toBe("established");
  });

  it("refuses a host whose certificate comes from another CA", () => {
    const net = new SimNet();
    const ca = makeCa();
    const evil = makeCa("evil");
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    const m = net.addHost(evil, "m", "192.0.2.9", 7000, "10.77.0.9", null);
    // m trusts b's CA for verifying b's record but holds a certificate from another CA
    (m.engine.opts as { ca: unknown }).ca = ca.cert;
    m.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    m.send(ipv4("10.77.0.9", "10.77.0.2", "let me in"));
    net.run();
    expect(b.take()).toHaveLength(0);
    expect(b.engine.drops.createHello).toBe(1);
    expect(b.engine.tunnelCount).toBe(0);
  });

  it("drops inner packets whose source the sending host does not own", () => {
    const { net, a, b } = pair();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "ok"));
    net.run();
    b.take();
    // a's engine refuses to send a spoofed source from its TUN
    a.send(ipv4("10.77.0.3", "10.77.0.2", "spoof"));
    net.run();
    expect(a.engine.drops.tunSrc).toBe(1);
    expect(b.take()).toHaveLength(0);
  });

  it("counts garbage datagrams by reason and never throws", () => {
    const { net, b } = pair();
    const junk = [Buffer.alloc(3), Buffer.alloc(40, 0xff), Buffer.from("0123456789abcdef" + "x".repeat(100))];
    for (const j of junk) net.queue.push({ from: Buffer.from(b.addr), to: b.addr, data: j });
    net.run();
    const d = b.engine.drops;
    expect(d.malformed + d.unknownTid + d.createShort + d.auth).toBeGreaterThanOrEqual(3);
  });
});

describe("rekey", () => {
  it("rekeys on schedule under traffic with a new TID, old keys zeroed, no packet lost", () => {
    const { net, a, b } = pair();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "first"));
    net.run();
    b.take();
    const ta = a.engine.peers.values().next().value!.sendTunnel()!;
    const oldEpoch = ta.cur!;
    const oldKey = oldEpoch.sendKey;
    const oldTid = oldEpoch.tid;
    let delivered = 0;
    for (let i = 0; i < 130; i++) {
      net.advance(1000);
      a.send(ipv4("10.77.0.1", "10.77.0.2", `p${i}`));
      b.send(ipv4("10.77.0.2", "10.77.0.1", `q${i}`));
      net.run();
      delivered += b.take().length;
      a.take();
    }
    expect(delivered).toBe(130);
    expect(ta.rekeys).toBeGreaterThanOrEqual(1);
    expect(ta.cur!.tid).not.toBe(oldTid);
    net.advance(15_000);
    expect(oldKey.equals(Buffer.alloc(32))).toBe(true);
    const tb = b.engine.peers.values().next().value!.sendTunnel()!;
    expect(tb.cur!.tid).toBe(ta.cur!.tid);
  });

  it("survives a lost REKEY and a lost REKEY_ACK", () => {
    const { net, a, b } = pair();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    net.run();
    b.take();
    let n = 0;
    // drop the next two DATA packets from each side, which carry REKEY / REKEY_ACK
    net.filter = (d) => !(d.data[8] === PacketType.Data && n++ < 2);
    net.advance(125_000, 500);
    net.filter = () => true;
    net.advance(5_000, 500);
    const ta = a.engine.peers.values().next().value!.sendTunnel()!;
    expect(ta.rekeys).toBeGreaterThanOrEqual(1);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "after"));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["after"]);
  });
});

describe("timers", () => {
  it("sends keepalives on an idle tunnel and closes it when the peer goes silent", () => {
    const { net, a, b } = pair();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    net.run();
    net.advance(60_000, 1000);
    expect(a.engine.events.keepalivesSent).toBeGreaterThan(0);
    expect(a.engine.tunnelCount).toBe(1);
    // b disappears
    net.filter = (d) => !d.from.equals(b.addr);
    net.advance(200_000, 1000);
    expect(a.engine.tunnelCount).toBe(0);
  });
});

describe("config reload of peers", () => {
  it("keeps tunnels of peers that stay, closes removed ones, adds new ones", () => {
    const net = new SimNet();
    const ca = makeCa();
    const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    const c = net.addHost(ca, "c", "192.0.2.3", 7000, "10.77.0.3", null);
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    a.engine.addPeer({ name: "c", endpoint: c.addr }, net.now);
    net.run();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "to b"));
    a.send(ipv4("10.77.0.1", "10.77.0.3", "to c"));
    net.run();
    expect(a.engine.tunnelCount).toBe(2);
    const tb = [...a.engine.peers.values()].find((p) => p.name === "b")!.sendTunnel()!;
    const r = a.engine.setPeers([{ name: "b", endpoint: b.addr }], net.now);
    net.run();
    expect(r).toEqual({ added: [], removed: ["c"], kept: ["b"] });
    expect(a.engine.tunnelCount).toBe(1);
    expect([...a.engine.peers.values()].find((p) => p.name === "b")!.sendTunnel()).toBe(tb);
    // c got a CLOSE and dropped its side too
    expect(c.engine.tunnelCount).toBe(0);
    // traffic to c is now unroutable; adding c back fetches its record and works again
    a.send(ipv4("10.77.0.1", "10.77.0.3", "no route"));
    expect(a.engine.drops.noRoute).toBe(1);
    const r2 = a.engine.setPeers(
      [
        { name: "b", endpoint: b.addr },
        { name: "c", endpoint: c.addr },
      ],
      net.now,
    );
    expect(r2.added).toEqual(["c"]);
    net.run();
    a.send(ipv4("10.77.0.1", "10.77.0.3", "back"));
    net.run();
    expect(c.take().map((p) => p.subarray(20).toString())).toEqual(["to c", "back"]);
  });
});

describe("session id", () => {
  it("both ends of a tunnel show the same session id, different tunnels different ones", () => {
    const net = new SimNet();
    const ca = makeCa();
    const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    const c = net.addHost(ca, "c", "192.0.2.3", 7000, "10.77.0.3", null);
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    a.engine.addPeer({ name: "c", endpoint: c.addr }, net.now);
    net.run();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    a.send(ipv4("10.77.0.1", "10.77.0.3", "y"));
    net.run();
    const ab = [...a.engine.peers.values()].find((p) => p.name === "b")!.sendTunnel()!;
    const ac = [...a.engine.peers.values()].find((p) => p.name === "c")!.sendTunnel()!;
    const ba = [...b.engine.peers.values()][0]!.sendTunnel()!;
    expect(ab.sessionId).toMatch(/^[0-9a-f]{16}$/);
    expect(ba.sessionId).toBe(ab.sessionId);
    expect(ac.sessionId).not.toBe(ab.sessionId);
  });
});
