import { describe, expect, it } from "vitest";
import { PacketType } from "../../src/wire/packet.js";
import { addrToString } from "../../src/wire/addr.js";
import { ipv4, makeCa, SimNet, type Datagram } from "./harness.js";

function established() {
  const net = new SimNet();
  const ca = makeCa();
  const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
  const b = net.addHost(ca, "b", "198.51.100.2", 7000, "10.77.0.2", null);
  a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
  net.run();
  a.send(ipv4("10.77.0.1", "10.77.0.2", "hello"));
  net.run();
  b.take();
  b.send(ipv4("10.77.0.2", "10.77.0.1", "back"));
  net.run();
  a.take();
  const ta = [...a.engine.peers.values()][0]!.sendTunnel()!;
  const tb = [...b.engine.peers.values()][0]!.sendTunnel()!;
  return { net, a, b, ta, tb };
}

const tidOf = (d: Datagram) => d.data.subarray(0, 8).toString("hex");
const ctrOf = (d: Datagram) => d.data.readUInt32BE(12);

describe("mobility (0-RTT migration)", () => {
  it("the mover switches to the precomputed epoch and the peer follows within one packet", () => {
    const { net, a, b, ta, tb } = established();
    const before = net.log.slice();
    net.log.length = 0;
    net.moveHost(a, "203.0.113.9", 40000);
    expect(a.engine.migrate(net.now)).toBe(1);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "from the new network"));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["from the new network"]);
    expect(addrToString(tb.endpoint)).toBe("203.0.113.9:40000");
    b.send(ipv4("10.77.0.2", "10.77.0.1", "reply"));
    net.run();
    expect(a.take().map((p) => p.subarray(20).toString())).toEqual(["reply"]);
    expect(ta.migrations).toBe(1);
    expect(tb.migrations).toBe(1);
    expect(ta.cur!.tid).toBe(tb.cur!.tid);
    // unlinkable: no TID seen before the move is seen after it, and counters restarted
    const oldTids = new Set(before.filter((d) => d.data[8] === PacketType.Data).map(tidOf));
    const after = net.log.filter((d) => d.data[8] === PacketType.Data);
    expect(after.length).toBeGreaterThan(0);
    for (const d of after) expect(oldTids.has(tidOf(d))).toBe(false);
    expect(Math.max(...after.map(ctrOf))).toBeLessThan(5);
  });

  it("either side may move; two moves in a row work and rekey still works after", () => {
    const { net, a, b, ta } = established();
    net.moveHost(b, "198.51.100.77", 7000);
    b.engine.migrate(net.now);
    net.run();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "1"));
    net.run();
    expect(b.take()).toHaveLength(1);
    net.moveHost(a, "203.0.113.10", 7000);
    a.engine.migrate(net.now);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "2"));
    net.run();
    expect(b.take()).toHaveLength(1);
    expect(ta.migrations).toBe(2);
    net.advance(125_000, 1000);
    expect(ta.rekeys).toBeGreaterThanOrEqual(1);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "3"));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["3"]);
  });

  it("an old-epoch packet re-sent from a spoofed address does not move the endpoint", () => {
    const { net, a, b, tb } = established();
    // capture (and hold back) one DATA packet of the old epoch
    a.send(ipv4("10.77.0.1", "10.77.0.2", "held back"));
    const held = net.queue.shift()!;
    net.moveHost(a, "203.0.113.9", 40000);
    a.engine.migrate(net.now);
    net.run();
    expect(addrToString(tb.endpoint)).toBe("203.0.113.9:40000");
    // the attacker now sends the held packet from its own address
    const spoofed = { from: Buffer.from(held.from), to: held.to, data: held.data };
    spoofed.from.writeUInt32BE(0xc6336401, 4); // 198.51.100.1
    net.queue.push(spoofed);
    net.run();
    expect(addrToString(tb.endpoint)).toBe("203.0.113.9:40000");
    // and replaying it again is refused by the replay window
    net.queue.push({ ...spoofed, data: Buffer.from(held.data) });
    const replays = b.engine.drops.replay;
    net.run();
    expect(b.engine.drops.replay).toBe(replays + 1);
    // after the grace period the old TID is forgotten entirely
    net.advance(15_000, 1000);
    net.queue.push({ ...spoofed, data: Buffer.from(held.data) });
    const unknown = b.engine.drops.unknownTid;
    net.run();
    expect(b.engine.drops.unknownTid).toBe(unknown + 1);
  });

  it("a NAT rebinding (new source port, same TID) is followed after authentication only", () => {
    const { net, a, tb } = established();
    net.moveHost(a, "192.0.2.1", 41000); // same address, new port; a itself does not know
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    net.run();
    expect(addrToString(tb.endpoint)).toBe("192.0.2.1:41000");
    expect(tb.roams).toBe(1);
  });
});

describe("mobility with the route-source probe", () => {
  it("the first packet sent from a new address already uses the next epoch (no old TID leaks)", () => {
    const { net, a, b, ta, tb } = established();
    // a's engine can ask which local address the kernel would use, as the daemon does
    (a.engine.opts as { routeSource?: (d: Buffer, o: Buffer) => boolean }).routeSource = (_d, o) => {
      a.addr.copy(o);
      return true;
    };
    a.send(ipv4("10.77.0.1", "10.77.0.2", "before"));
    net.run();
    const oldTid = ta.cur!.tid;
    net.log.length = 0;
    net.moveHost(a, "203.0.113.9", 40000); // no migrate(): the address watcher has not noticed yet
    a.send(ipv4("10.77.0.1", "10.77.0.2", "after"));
    net.run();
    const fromNew = net.log.filter((d) => d.from.equals(a.addr));
    expect(fromNew.length).toBeGreaterThan(0);
    for (const d of fromNew) expect(d.data.latin1Slice(0, 8)).not.toBe(oldTid);
    expect(ta.migrations).toBe(1);
    expect(b.take().map((p) => p.subarray(20).toString())).toEqual(["before", "after"]);
    expect(addrToString(tb.endpoint)).toBe("203.0.113.9:40000");
    // the watcher firing later changes nothing more
    expect(a.engine.migrate(net.now)).toBe(0);
  });
});
