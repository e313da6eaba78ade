/**
 * Every X25519 output (es, ss, ee, rekey DH) is a secret that must be zeroed
 * once the keys derived from it exist (docs/PROTOCOL.md section 4, step 7).
 * The crypto wrapper's `dh` is wrapped to remember every buffer it returns, so
 * the test can look at them after the engine is done.
 */
import { describe, it, expect, vi, beforeEach } from "vitest";
import { ipv4, makeCa, SimNet } from "../inproc/harness.js";
import { PacketType } from "../../src/wire/packet.js";

const dhOutputs: Buffer[] = [];

vi.mock("../../src/crypto/sodium.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../src/crypto/sodium.js")>();
  return {
    ...real,
    dh: (sk: Buffer, pk: Buffer): Buffer | null => {
      const out = real.dh(sk, pk);
      if (out) dhOutputs.push(out);
      return out;
    },
  };
});

const isZero = (b: Buffer) => b.every((x) => x === 0);

beforeEach(() => {
  dhOutputs.length = 0;
});

describe("DH outputs are erased", () => {
  it("after a complete creation, every DH output on both hosts is zero", () => {
    const net = new SimNet();
    const ca = makeCa();
    const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    dhOutputs.length = 0;
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    net.run();
    expect(b.take()).toHaveLength(1);
    expect(a.engine.peers.values().next().value!.sendTunnel()!.state).toBe("established");
    // es, ss on a; es, ss, ee on b; ee on a
    expect(dhOutputs.length).toBeGreaterThanOrEqual(6);
    // b keeps ss = DH(e_R, S_a) in its ephemeral key's cache (so a's next creation costs one
    // DH less) until that ephemeral key expires; everything else is zero now
    const cached = new Set([...b.engine.eph.current!.ss.values()]);
    expect(cached.size).toBe(1);
    dhOutputs.forEach((d, i) => expect(isZero(d) || cached.has(d), `dh output #${i}`).toBe(true));
    // when b's ephemeral key expires, the cached ss is erased too
    net.advance(310_000, 5000);
    dhOutputs.forEach((d, i) => expect(isZero(d), `dh output #${i} after expiry`).toBe(true));
  });

  it("after a rekey, the rekey DH outputs are zero", () => {
    const net = new SimNet();
    const ca = makeCa();
    const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    net.run();
    dhOutputs.length = 0;
    net.advance(125_000, 1000);
    const ta = a.engine.peers.values().next().value!.sendTunnel()!;
    expect(ta.rekeys).toBeGreaterThanOrEqual(1);
    expect(dhOutputs.length).toBeGreaterThanOrEqual(2);
    dhOutputs.forEach((d, i) => expect(isZero(d), `dh output #${i}`).toBe(true));
  });

  // A refused certificate must leave no DH output behind on the responder (once a bug: ss
  // was computed before the certificate check and not zeroed on that path).
  it("a CREATE refused for its certificate leaves no DH output behind", () => {
    const net = new SimNet();
    const ca = makeCa();
    const evil = makeCa("evil");
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    const m = net.addHost(evil, "m", "192.0.2.9", 7000, "10.77.0.9", null);
    (m.engine.opts as { ca: unknown }).ca = ca.cert;
    m.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    m.send(ipv4("10.77.0.9", "10.77.0.2", "let me in"));
    expect(net.queue[0]!.data[8]).toBe(PacketType.Create);
    // only b's processing of the CREATE is looked at
    dhOutputs.length = 0;
    net.run();
    expect(b.engine.drops.createHello).toBe(1);
    // only es: the certificate is checked before ss is computed
    expect(dhOutputs.length).toBe(1);
    dhOutputs.forEach((d, i) => expect(isZero(d), `dh output #${i}`).toBe(true));
  });
});
