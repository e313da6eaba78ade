/**
 * Restart recovery at the protocol level (src/tunnel/engine.ts: stall probe, recovery,
 * supersede; docs/PROTOCOL.md section 5): two engines on the simulated network, one
 * killed (no CLOSE) and started again after RESTART_GAP_MS with the same key. Traffic
 * from one side only, one packet per tick, as a client's requests. Also: a peer that only
 * receives answers the probes (no new tunnel), and neither forged nor replayed packets nor
 * blocked answers make a host drop a working tunnel.
 */
import { describe, expect, it } from "vitest";
import { randomBytes } from "../../src/crypto/sodium.js";
import { PacketType } from "../../src/wire/packet.js";
import { ipv4, makeCa, SimNet, type SimHost } from "./harness.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";

const RESTART_GAP_MS = 1_000;
const LIMIT_MS = 5_000;
const STEP_MS = 250;
const IP: Record<string, string> = { a: "10.77.0.1", b: "10.77.0.2" };

function pair() {
  const net = new SimNet();
  const ca = makeCa();
  const a = net.addHost(ca, "a", "192.0.2.1", 7000, IP.a!, null);
  const b = net.addHost(ca, "b", "192.0.2.2", 7000, IP.b!, null);
  // static peers: each lists the other
  a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
  b.engine.addPeer({ name: "a", endpoint: a.addr }, net.now);
  net.run();
  return { net, a, b };
}

const other = (h: SimHost) => (h.name === "a" ? "b" : "a");
const pkt = (from: SimHost, seq: number) => ipv4(IP[from.name]!, IP[other(from)]!, `seq ${seq}`);
const tunnelsOf = (h: SimHost): Tunnel[] => [...h.engine.peers.values()].flatMap((p) => p.tunnels);

/** Establish a tunnel used both ways. */
function warm(net: SimNet, a: SimHost, b: SimHost): void {
  a.send(pkt(a, 0));
  net.run();
  b.send(pkt(b, 0));
  net.run();
  a.take();
  b.take();
  net.advance(2_000);
}

/**
 * Kill `victim`, start it again RESTART_GAP_MS later, while `sender` sends one packet
 * per tick to the other host. Returns ms from the kill to the first packet delivered
 * (Infinity if none within 40 s) and the restarted host.
 */
function restartAndMeasure(
  net: SimNet,
  hosts: Record<string, SimHost>,
  victim: "a" | "b",
  sender: "a" | "b",
): { ms: number; restarted: SimHost } {
  const old = hosts[victim]!;
  net.killHost(old);
  const t0 = net.now;
  let restarted: SimHost | null = null;
  let seq = 1;
  while (net.now - t0 < 40_000) {
    if (!restarted && net.now - t0 >= RESTART_GAP_MS) {
      restarted = net.restartHost(old);
      hosts[victim] = restarted;
      const o = hosts[victim === "a" ? "b" : "a"]!;
      restarted.engine.addPeer({ name: o.name, endpoint: o.addr }, net.now);
      net.run();
    }
    const s = hosts[sender]!;
    const r = hosts[sender === "a" ? "b" : "a"]!;
    if (s !== old) s.send(pkt(s, seq++)); // a killed daemon sends nothing
    net.run();
    if (r.take().length > 0 && r !== old) return { ms: net.now - t0, restarted: restarted! };
    net.advance(STEP_MS);
    if (r.take().length > 0 && r !== old) return { ms: net.now - t0, restarted: restarted! };
  }
  return { ms: Infinity, restarted: restarted! };
}

describe("restart recovery (static peers, in-process)", () => {
  it("the server restarts and only the client sends: a new tunnel within 5 s, the silent one superseded", () => {
    const { net, a, b } = pair();
    warm(net, a, b);
    const hosts = { a, b };
    const { ms } = restartAndMeasure(net, hosts, "b", "a");
    console.log(`in-process, server restart, client sends: ${ms} ms`);
    expect(ms).toBeLessThan(LIMIT_MS);
    const e = a.engine.events;
    expect(e.stallProbes).toBeGreaterThanOrEqual(2);
    expect(e.stallRecoveries).toBeGreaterThanOrEqual(1);
    expect(e.tunnelsSuperseded).toBe(1);
    net.advance(1_000);
    expect(tunnelsOf(a).map((t) => t.state)).toEqual(["established"]);
  });

  it("the client restarts and only the server sends: traffic flows again within 5 s", () => {
    const { net, a, b } = pair();
    warm(net, a, b);
    const hosts = { a, b };
    const { ms } = restartAndMeasure(net, hosts, "a", "b");
    console.log(`in-process, client restart, server sends: ${ms} ms`);
    expect(ms).toBeLessThan(LIMIT_MS);
    expect(b.engine.events.stallRecoveries).toBeGreaterThanOrEqual(1);
    net.advance(1_000);
    expect(tunnelsOf(b).map((t) => t.state)).toEqual(["established"]);
  });

  it("the client restarts and speaks first: the server supersedes its old tunnel at once", () => {
    const { net, a, b } = pair();
    warm(net, a, b);
    const hosts = { a, b };
    const { ms } = restartAndMeasure(net, hosts, "a", "a");
    expect(ms).toBeLessThan(LIMIT_MS);
    net.run();
    // b answers on the new tunnel, the old one (a lost it) is gone at b
    expect(b.engine.events.tunnelsSuperseded).toBe(1);
    expect(tunnelsOf(b).map((t) => t.state)).toEqual(["established"]);
    b.send(pkt(b, 99));
    net.run();
    expect(hosts.a.take().map((p) => p.subarray(20).toString())).toContain("seq 99");
    expect(b.engine.events.stallRecoveries).toBe(0);
  });
});

describe("stall probe: no false recovery, no tear-down without authenticated evidence", () => {
  it("a peer that only receives answers the probes: the tunnel stays, no new tunnel", () => {
    const { net, a, b } = pair();
    a.send(pkt(a, 0));
    net.run();
    for (let i = 1; i <= 80; i++) {
      a.send(pkt(a, i)); // one way: b never sends data
      net.advance(STEP_MS);
    }
    expect(b.take()).toHaveLength(81);
    expect(a.engine.events.stallProbes).toBeGreaterThan(0);
    expect(b.engine.events.probesAnswered).toBe(a.engine.events.stallProbes);
    expect(a.engine.events.stallRecoveries).toBe(0);
    expect(a.engine.events.tunnelsCreated).toBe(1);
    expect(b.engine.events.tunnelsAccepted).toBe(1);
    // probes are few: about one per PROBE_AFTER_MS of one-way sending
    expect(a.engine.events.stallProbes).toBeLessThanOrEqual(25);
  });

  it("forged and replayed packets change nothing: the working tunnel stays on both sides", () => {
    const { net, a, b } = pair();
    warm(net, a, b);
    // b also probes a few times so that PROBEs are among the recorded datagrams
    for (let i = 1; i <= 12; i++) {
      b.send(pkt(b, i));
      net.advance(STEP_MS);
    }
    const ta = tunnelsOf(a)[0]!;
    const tb = tunnelsOf(b)[0]!;
    const seen = net.log.slice();
    expect(seen.some((d) => d.data[8] === PacketType.Create)).toBe(true);
    const evil = Buffer.from([192, 0, 2, 66]);
    const inject = (to: SimHost, data: Buffer, from = to === a ? b.addr : a.addr) =>
      net.queue.push({ from: Buffer.from(from), to: Buffer.from(to.addr), data });
    for (let round = 0; round < 3; round++) {
      // every datagram seen so far, replayed to both hosts, from the genuine and another address
      for (const d of seen) {
        inject(a, Buffer.from(d.data));
        inject(b, Buffer.from(d.data));
        const spoofed = Buffer.from(d.from);
        evil.copy(spoofed, 4);
        inject(a, Buffer.from(d.data), spoofed);
      }
      // garbage under the live TIDs, every packet type; forged record answers
      for (let t = 0; t < 16; t++)
        for (const [h, tid] of [
          [a, tb.cur!.tidBuf],
          [b, ta.cur!.tidBuf],
        ] as const) {
          const g = randomBytes(200);
          tid.copy(g, 0);
          g[8] = t;
          inject(h, g);
        }
      net.run();
      net.advance(1_000);
    }
    for (const [h, t] of [
      [a, ta],
      [b, tb],
    ] as const) {
      expect(tunnelsOf(h)).toEqual([t]);
      expect(t.state).toBe("established");
      expect(h.engine.events.tunnelsSuperseded).toBe(0);
      expect(h.engine.events.tunnelsClosed).toBe(0);
      expect(h.engine.events.stallRecoveries).toBe(0);
    }
    a.send(pkt(a, 500));
    net.run();
    expect(b.take().map((p) => p.subarray(20).toString())).toContain("seq 500");
  });

  it("blocked answers (on-path drop) start a recovery but close nothing until a new tunnel is up", () => {
    const { net, a, b } = pair();
    warm(net, a, b);
    const ta = tunnelsOf(a)[0]!;
    net.filter = (d) => !d.from.equals(b.addr); // b's answers never arrive
    for (let i = 1; i <= 40; i++) {
      a.send(pkt(a, i));
      net.advance(STEP_MS);
    }
    expect(a.engine.events.stallRecoveries).toBeGreaterThanOrEqual(1);
    expect(ta.state).toBe("established");
    expect(tunnelsOf(a)).toContain(ta);
    expect(a.engine.events.tunnelsSuperseded).toBe(0);
    // the path heals: traffic both ways, on one established tunnel per side
    net.filter = () => true;
    for (let i = 41; i <= 60; i++) {
      a.send(pkt(a, i));
      b.send(pkt(b, i));
      net.advance(STEP_MS);
    }
    expect(a.take().length).toBeGreaterThan(0);
    expect(tunnelsOf(a).filter((t) => t.state === "established")).toHaveLength(1);
    expect(tunnelsOf(b).filter((t) => t.state === "established")).toHaveLength(1);
  });
});
