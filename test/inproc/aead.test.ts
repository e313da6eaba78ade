/**
 * AEAD suites end to end in process (docs/PROTOCOL.md "AEAD suites"): both ends offering
 * AES-256-GCM use it (creation, data both ways, rekey, move); a mixed pair falls back to
 * ChaCha20-Poly1305 whichever side lacks it; the suite is bound into the keys and the
 * offer into the signed ephemeral certificate; contexts and keys are wiped when epochs go.
 * Each scenario runs with the addon's OpenSSL contexts and with the libsodium/node:crypto
 * fallback.
 */
import { afterAll, describe, expect, it } from "vitest";
import { AeadSuite, useNativeAead, type NativeAead } from "../../src/crypto/aead.js";
import { native } from "../../src/net/native.js";
import { snapshotOf } from "../../src/tunnel/snapshot.js";
import { verifyEphemeral, decodeEphemeral } from "../../src/wire/cert.js";
import { EPH_OFFSET_PROTOCOL } from "../../src/wire/cert.js";
import { deriveEstablished } from "../../src/tunnel/keys.js";
import { randomBytes } from "../../src/crypto/sodium.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";
import { ipv4, makeCa, SimNet, type SimHost } from "./harness.js";

const addon = native() as unknown as NativeAead;
afterAll(() => useNativeAead(addon));

const AES = AeadSuite.Aes256Gcm;
const CHACHA = AeadSuite.ChaCha20Poly1305;

function pair(sa: AeadSuite, sb: AeadSuite) {
  const net = new SimNet();
  const ca = makeCa();
  const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null, { aeadSuite: sa });
  const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null, { aeadSuite: sb });
  a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
  net.run();
  return { net, a, b };
}

const tunnelOf = (h: SimHost): Tunnel => h.engine.peers.values().next().value!.sendTunnel()!;

function exchange(net: SimNet, a: SimHost, b: SimHost, tag: string): string[] {
  a.send(ipv4("10.77.0.1", "10.77.0.2", `a-${tag}`));
  net.run();
  b.send(ipv4("10.77.0.2", "10.77.0.1", `b-${tag}`));
  net.run();
  return [...b.take(), ...a.take()].map((p) => p.subarray(20).toString());
}

for (const backend of ["addon", "fallback"] as const)
  describe(`AEAD suites in process (${backend})`, () => {
    const use = () => useNativeAead(backend === "addon" ? addon : null);

    it("both offer AES-256-GCM: the tunnel uses it from the first REPLY through rekeys and a move", () => {
      use();
      const { net, a, b } = pair(AES, AES);
      expect(a.engine.eph.current!.cert.protocolVersion).toBe(2);
      expect(exchange(net, a, b, "0")).toEqual(["a-0", "b-0"]);
      const ta = tunnelOf(a);
      const tb = tunnelOf(b);
      expect([ta.suite, tb.suite, ta.cur!.suite, tb.cur!.suite]).toEqual([AES, AES, AES, AES]);
      const snap = snapshotOf(a.engine, net.now);
      expect(snap.tunnels[0]!.aead).toBe("aes-256-gcm");
      // rekey (120 s) under traffic
      let got = 0;
      for (let i = 0; i < 130; i++) {
        net.advance(1000);
        got += exchange(net, a, b, `${i}`).length;
      }
      expect(got).toBe(260);
      expect(ta.rekeys).toBeGreaterThanOrEqual(1);
      expect(ta.cur!.suite).toBe(AES);
      // move: the precomputed epoch keeps the suite
      net.moveHost(a, "203.0.113.9", 40000);
      expect(a.engine.migrate(net.now)).toBe(1);
      net.run();
      expect(exchange(net, a, b, "moved")).toEqual(["a-moved", "b-moved"]);
      expect(ta.migrations).toBe(1);
      expect(tunnelOf(b).cur!.suite).toBe(AES);
      expect(a.engine.drops.auth + b.engine.drops.auth).toBe(0);
    });

    for (const [sa, sb, who] of [
      [AES, CHACHA, "the responder does not offer AES-256-GCM"],
      [CHACHA, AES, "the creator does not prefer it"],
      [CHACHA, CHACHA, "neither does"],
    ] as const)
      it(`falls back to ChaCha20-Poly1305 when ${who}`, () => {
        use();
        const { net, a, b } = pair(sa, sb);
        expect(b.engine.eph.current!.cert.protocolVersion).toBe(sb === AES ? 2 : 1);
        expect(exchange(net, a, b, "x")).toEqual(["a-x", "b-x"]);
        expect([tunnelOf(a).suite, tunnelOf(b).suite]).toEqual([CHACHA, CHACHA]);
        expect(snapshotOf(b.engine, net.now).tunnels[0]!.aead).toBe("chacha20-poly1305");
        // the other direction (b creates) picks by the same rule
        const { net: n2, a: a2, b: b2 } = pair(sb, sa);
        expect(exchange(n2, a2, b2, "y")).toEqual(["a-y", "b-y"]);
        expect(tunnelOf(a2).suite).toBe(CHACHA);
      });

    it("an idle tunnel gives its cipher contexts back and makes new ones at the next packet", () => {
      use();
      const { net, a, b } = pair(AES, AES);
      exchange(net, a, b, "1");
      const handles = (h: SimHost) =>
        [tunnelOf(h).cur!.tx, tunnelOf(h).cur!.rx].map(
          (k) => (k as unknown as { handle: object | null }).handle,
        );
      if (backend === "addon") expect(handles(a).every((h) => h !== null)).toBe(true);
      net.advance(11_000); // nothing sent or received for more than AEAD_IDLE_RELEASE_MS (keepalive: 25 s)
      expect(handles(a)).toEqual([null, null]);
      expect(handles(b)).toEqual([null, null]);
      expect(exchange(net, a, b, "2")).toEqual(["a-2", "b-2"]);
      if (backend === "addon") expect(handles(a).every((h) => h !== null)).toBe(true);
      expect(a.engine.drops.auth + b.engine.drops.auth).toBe(0);
    });

    it("closing a tunnel frees every cipher context and zeroes the keys", () => {
      use();
      const { net, a, b } = pair(AES, AES);
      exchange(net, a, b, "z");
      const ta = tunnelOf(a);
      const e = ta.cur!;
      const handles = () => [e.tx, e.rx].map((k) => (k as unknown as { handle: object | null }).handle);
      if (backend === "addon") expect(handles().every((h) => h !== null)).toBe(true);
      a.engine.closeTunnel(ta, net.now, "test");
      expect(handles()).toEqual([null, null]);
      expect(e.sendKey.equals(Buffer.alloc(32))).toBe(true);
      expect(e.recvKey.equals(Buffer.alloc(32))).toBe(true);
    });
  });

describe("AEAD suite negotiation cannot be rewritten", () => {
  it("the offer is in the signed ephemeral certificate: a changed protocol byte fails verification", () => {
    const { net, b } = pair(AES, AES);
    const cert = b.engine.eph.current!.cert;
    expect(verifyEphemeral(cert, b.cert, Math.floor(net.now / 1000))).toEqual({ ok: true });
    const raw = Buffer.from(cert.raw);
    raw[EPH_OFFSET_PROTOCOL] = 1; // strip the AES-256-GCM offer
    const forged = decodeEphemeral(raw)!;
    expect(forged.protocolVersion).toBe(1);
    expect(verifyEphemeral(forged, b.cert, Math.floor(net.now / 1000))).toEqual({
      ok: false,
      reason: "bad-signature",
    });
  });

  it("the choice is bound into the tunnel secret: the same handshake gives unrelated keys per suite", () => {
    const [ck1, ss, ee] = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const c = deriveEstablished(Buffer.from(ck1), ss, ee, CHACHA);
    const g = deriveEstablished(Buffer.from(ck1), ss, ee, AES);
    expect(c.ck.equals(g.ck)).toBe(false);
    expect(c.i2r.equals(g.i2r)).toBe(false);
    expect(c.r2i.equals(g.r2i)).toBe(false);
    // ChaCha20-Poly1305 keys are what they were before suites existed (old peers interoperate)
    expect(deriveEstablished(Buffer.from(ck1), ss, ee).ck).toEqual(c.ck);
  });

  it("a responder that took AES-256-GCM never answers a ChaCha20-Poly1305 creator under AES keys", () => {
    // a creator that did not choose AES (no suite byte) is answered under ChaCha keys
    useNativeAead(addon);
    const { net, a, b } = pair(CHACHA, AES);
    a.send(ipv4("10.77.0.1", "10.77.0.2", "c"));
    net.run();
    expect(b.take()).toHaveLength(1);
    expect(tunnelOf(b).suite).toBe(CHACHA);
    expect(a.engine.drops.auth).toBe(0);
  });
});
