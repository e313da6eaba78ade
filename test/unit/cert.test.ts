import { describe, it, expect } from "vitest";
import { randomBytes, signKeyPair } from "../../src/crypto/sodium.js";
import {
  CERT_FIXED_SIZE,
  CERT_MIN_SIZE,
  EPH_FIXED_SIZE,
  EPH_MIN_SIZE,
  decodeCert,
  decodeEphemeral,
  encodeCert,
  encodeCertInto,
  encodeEphemeral,
  fingerprint,
  signCert,
  signEphemeral,
  verifyCert,
  verifyEphemeral,
  type CaCert,
  type Cert,
  type HostCert,
} from "../../src/wire/cert.js";
import { formatIp6, parseCidr, parseIp6 } from "../../src/ip/ip.js";
import { CertError } from "../../src/errors.js";

const NOW = 1_700_000_000;
const caKp = signKeyPair(Buffer.alloc(32, 1));
const otherCaKp = signKeyPair(Buffer.alloc(32, 2));
const hostKp = signKeyPair(Buffer.alloc(32, 3));
const userKp = signKeyPair(Buffer.alloc(32, 4));

function makeCa(kp = caKp, notBefore = NOW - 1000, notAfter = NOW + 100_000): CaCert {
  const c = signCert(
    {
      kind: "ca",
      name: "acme-ca",
      publicKey: kp.publicKey,
      issuer: kp.publicKey,
      groups: [],
      notBefore,
      notAfter,
    },
    kp.secretKey,
  );
  expect(c.kind).toBe("ca");
  return c as CaCert;
}

function makeHost(over: Partial<Omit<HostCert, "kind">> = {}, issuer = caKp): HostCert {
  return signCert(
    {
      kind: "host",
      name: "web1",
      publicKey: hostKp.publicKey,
      issuer: issuer.publicKey,
      groups: ["web"],
      notBefore: NOW - 100,
      notAfter: NOW + 10_000,
      ip4: "10.77.0.2",
      ip6: "fd77::2",
      subnets: [],
      ...over,
    },
    issuer.secretKey,
  ) as HostCert;
}

describe("certificate codec", () => {
  it("encodes a host cert in the documented exact size", () => {
    const c = makeHost();
    // fixed 76 + name 4 + ip4 4 + ip6 16 + groups (1 + 1+3) + subnets (1) + sig 64
    expect(c.raw.length).toBe(CERT_FIXED_SIZE + 4 + 4 + 16 + 5 + 1 + 64);
    expect(c.raw.length).toBe(170);
    const withNets = makeHost({ subnets: ["192.168.10.0/24", "2001:db8::/32"] });
    expect(withNets.raw.length).toBe(170 + 6 + 18);
    expect(withNets.subnets).toEqual(["192.168.10.0/24", "2001:db8::/32"]);
  });

  it("encodes CA and user certs in the exact size", () => {
    expect(makeCa().raw.length).toBe(CERT_FIXED_SIZE + 7 + 1 + 64);
    const u = signCert(
      {
        kind: "user",
        name: "alice",
        publicKey: userKp.publicKey,
        issuer: caKp.publicKey,
        groups: ["dev", "ops"],
        notBefore: NOW,
        notAfter: NOW + 1,
      },
      caKp.secretKey,
    );
    expect(u.raw.length).toBe(CERT_FIXED_SIZE + 5 + 1 + 4 + 4 + 64);
    expect(CERT_MIN_SIZE).toBe(142);
  });

  it("round-trips: decode(raw) equals the signed cert and re-encodes byte for byte", () => {
    for (const c of [makeCa(), makeHost(), makeHost({ ip4: null, ip6: null, groups: [] })] as Cert[]) {
      const d = decodeCert(c.raw);
      expect(d).toEqual(c);
      expect(encodeCert(d!).equals(c.raw)).toBe(true);
      const buf = Buffer.alloc(c.raw.length + 10);
      expect(encodeCertInto(d!, buf, 5)).toBe(c.raw.length);
      expect(buf.subarray(5, 5 + c.raw.length).equals(c.raw)).toBe(true);
    }
  });

  it("canonicalises addresses", () => {
    const c = makeHost({ ip6: "FD77:0:0:0:0:0:0:2", subnets: ["FD00::/8"] });
    expect(c.ip6).toBe("fd77::2");
    expect(c.subnets).toEqual(["fd00::/8"]);
  });

  it("rejects invalid fields when signing", () => {
    expect(() => makeHost({ name: "Web" })).toThrow(CertError);
    expect(() => makeHost({ name: "" })).toThrow(CertError);
    expect(() => makeHost({ name: "a".repeat(64) })).toThrow(CertError);
    expect(() => makeHost({ ip4: "10.0.0.256" })).toThrow(CertError);
    expect(() => makeHost({ ip4: "fd00::1" })).toThrow(CertError);
    expect(() => makeHost({ ip6: "10.0.0.1" })).toThrow(CertError);
    expect(() => makeHost({ subnets: ["10.0.0.1/8"] })).toThrow(/zero host bits/);
    expect(() => makeHost({ subnets: ["10.0.0.0/33"] })).toThrow(CertError);
    expect(() => makeHost({ subnets: ["10.0.0.0/8", "10.0.0.0/8"] })).toThrow(/duplicate/);
    expect(() => makeHost({ groups: ["a", "a"] })).toThrow(/duplicate/);
    expect(() => makeHost({ groups: Array.from({ length: 17 }, (_, i) => `g${i}`) })).toThrow(CertError);
    expect(() => makeHost({ notBefore: NOW, notAfter: NOW })).toThrow(CertError);
    // issuer key must match the signing key
    expect(() => makeHost({ issuer: otherCaKp.publicKey })).toThrow(/does not match/);
  });

  it("decode rejects truncation, trailing bytes and unknown versions", () => {
    const c = makeHost();
    expect(decodeCert(c.raw.subarray(0, c.raw.length - 1))).toBeNull();
    expect(decodeCert(Buffer.concat([c.raw, Buffer.alloc(1)]))).toBeNull();
    const v = Buffer.from(c.raw);
    v[0] = 2;
    expect(decodeCert(v)).toBeNull();
    const k = Buffer.from(c.raw);
    k[1] = 9;
    expect(decodeCert(k)).toBeNull();
    expect(decodeCert(Buffer.alloc(0))).toBeNull();
  });

  it("decode copies its input", () => {
    const c = makeHost();
    const buf = Buffer.from(c.raw);
    const d = decodeCert(buf)!;
    buf.fill(0);
    expect(d.name).toBe("web1");
    expect(d.publicKey.equals(hostKp.publicKey)).toBe(true);
  });
});

describe("verifyCert", () => {
  const ca = makeCa();
  it("accepts a valid host cert and a CA against itself", () => {
    expect(verifyCert(makeHost(), ca, NOW)).toEqual({ ok: true });
    expect(verifyCert(ca, ca, NOW)).toEqual({ ok: true });
  });

  it("bad-signature on a tampered byte", () => {
    const c = makeHost();
    const raw = Buffer.from(c.raw);
    raw[CERT_FIXED_SIZE] = "x".charCodeAt(0); // name "web1" -> "xeb1"
    const t = decodeCert(raw)!;
    expect(t.name).toBe("xeb1");
    expect(verifyCert(t, ca, NOW)).toEqual({ ok: false, reason: "bad-signature" });
    const s = Buffer.from(c.raw);
    s[s.length - 1]! ^= 1;
    expect(verifyCert(decodeCert(s)!, ca, NOW)).toEqual({ ok: false, reason: "bad-signature" });
  });

  it("wrong-issuer for another CA", () => {
    const other = makeCa(otherCaKp);
    expect(verifyCert(makeHost(), other, NOW)).toEqual({ ok: false, reason: "wrong-issuer" });
    expect(verifyCert(makeHost({}, otherCaKp), ca, NOW)).toEqual({ ok: false, reason: "wrong-issuer" });
  });

  it("expired / not-yet-valid at the exact boundaries", () => {
    const c = makeHost({ notBefore: NOW, notAfter: NOW + 10 });
    expect(verifyCert(c, ca, NOW - 1)).toEqual({ ok: false, reason: "not-yet-valid" });
    expect(verifyCert(c, ca, NOW)).toEqual({ ok: true });
    expect(verifyCert(c, ca, NOW + 9)).toEqual({ ok: true });
    expect(verifyCert(c, ca, NOW + 10)).toEqual({ ok: false, reason: "expired" });
  });

  it("ca-expired / ca-not-yet-valid: a cert must lie within the CA's validity too", () => {
    const shortCa = makeCa(caKp, NOW - 10, NOW + 10);
    const c = makeHost({ notBefore: NOW - 1000, notAfter: NOW + 10_000 });
    expect(verifyCert(c, shortCa, NOW)).toEqual({ ok: true });
    expect(verifyCert(c, shortCa, NOW + 10)).toEqual({ ok: false, reason: "ca-expired" });
    expect(verifyCert(c, shortCa, NOW - 11)).toEqual({ ok: false, reason: "ca-not-yet-valid" });
  });

  it("ca-bad-signature when the CA cert is forged", () => {
    const forged = { ...ca, name: "evil", raw: Buffer.from(ca.raw) } as CaCert;
    forged.raw[CERT_FIXED_SIZE] = "e".charCodeAt(0);
    expect(verifyCert(makeHost(), forged, NOW)).toEqual({ ok: false, reason: "ca-bad-signature" });
  });

  it("the CA's self-signature, verified once per CA object, is checked again when its bytes change", () => {
    const c = makeCa();
    expect(verifyCert(makeHost(), c, NOW)).toEqual({ ok: true }); // remembered from here on
    c.raw[CERT_FIXED_SIZE] ^= 1; // the same object, its encoding altered in place
    expect(verifyCert(makeHost(), c, NOW)).toEqual({ ok: false, reason: "ca-bad-signature" });
    c.raw[CERT_FIXED_SIZE] ^= 1;
    expect(verifyCert(makeHost(), c, NOW)).toEqual({ ok: true });
    c.signature[0] ^= 1;
    expect(verifyCert(makeHost(), c, NOW)).toEqual({ ok: false, reason: "ca-bad-signature" });
  });

  it("wrong-kind: host cert used as CA, or a different CA cert", () => {
    const h = makeHost();
    expect(verifyCert(h, h as unknown as CaCert, NOW)).toEqual({ ok: false, reason: "wrong-kind" });
    expect(verifyCert(makeCa(otherCaKp), ca, NOW)).toEqual({ ok: false, reason: "wrong-kind" });
  });
});

describe("ephemeral certificates", () => {
  const host = makeHost();
  const eph = (over: Partial<Parameters<typeof signEphemeral>[0]> = {}, sk = hostKp.secretKey) =>
    signEphemeral(
      {
        hostKey: hostKp.publicKey,
        keyId: 0xdeadbeef,
        publicKey: randomBytes(32),
        notBefore: NOW - 1,
        notAfter: NOW + 300,
        endpoints: [
          { ip: "192.0.2.1", port: 7000 },
          { ip: "2001:db8::1", port: 7001 },
        ],
        protocolVersion: 1,
        minFirstPacket: 256,
        ...over,
      },
      sk,
    );

  it("has the exact size and round-trips", () => {
    const e = eph();
    expect(e.raw.length).toBe(EPH_FIXED_SIZE + (1 + 4 + 2) + (1 + 16 + 2) + 64);
    expect(eph({ endpoints: [] }).raw.length).toBe(EPH_MIN_SIZE);
    const d = decodeEphemeral(e.raw)!;
    expect(d).toEqual(e);
    expect(encodeEphemeral(d).equals(e.raw)).toBe(true);
    expect(d.keyId).toBe(0xdeadbeef);
  });

  it("verifies and reports each failure", () => {
    const e = eph();
    expect(verifyEphemeral(e, host, NOW)).toEqual({ ok: true });
    expect(verifyEphemeral(e, host, NOW - 2)).toEqual({ ok: false, reason: "not-yet-valid" });
    expect(verifyEphemeral(e, host, NOW + 300)).toEqual({ ok: false, reason: "expired" });
    const other = makeHost({ publicKey: userKp.publicKey });
    expect(verifyEphemeral(e, other, NOW)).toEqual({ ok: false, reason: "wrong-host" });
    const raw = Buffer.from(e.raw);
    raw[4]! ^= 0xff; // keyId
    expect(verifyEphemeral(decodeEphemeral(raw)!, host, NOW)).toEqual({ ok: false, reason: "bad-signature" });
    expect(verifyEphemeral(e, makeCa() as unknown as HostCert, NOW)).toEqual({
      ok: false,
      reason: "wrong-kind",
    });
  });

  it("rejects bad fields and a key that is not the host's", () => {
    expect(() =>
      eph({ endpoints: Array.from({ length: 9 }, () => ({ ip: "10.0.0.1", port: 1 })) }),
    ).toThrow();
    expect(() => eph({ endpoints: [{ ip: "10.0.0.1", port: 0 }] })).toThrow();
    expect(() => eph({ minFirstPacket: 70000 })).toThrow();
    expect(() => eph({}, userKp.secretKey)).toThrow(/does not match/);
  });

  it("decode rejects port 0, bad family, truncation", () => {
    const e = eph({ endpoints: [{ ip: "192.0.2.1", port: 7000 }] });
    const p0 = Buffer.from(e.raw);
    p0.writeUInt16BE(0, EPH_FIXED_SIZE + 5);
    expect(decodeEphemeral(p0)).toBeNull();
    const fam = Buffer.from(e.raw);
    fam[EPH_FIXED_SIZE] = 5;
    expect(decodeEphemeral(fam)).toBeNull();
    expect(decodeEphemeral(e.raw.subarray(1))).toBeNull();
  });
});

describe("helpers", () => {
  it("fingerprint is 16 hex chars and stable", () => {
    expect(fingerprint(hostKp.publicKey)).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprint(hostKp.publicKey)).toBe(fingerprint(Buffer.from(hostKp.publicKey)));
    expect(fingerprint(hostKp.publicKey)).not.toBe(fingerprint(userKp.publicKey));
  });

  it("formats IPv6 per RFC 5952", () => {
    const f = (s: string) => formatIp6(parseIp6(s)!);
    expect(f("2001:0db8:0000:0000:0001:0000:0000:0001")).toBe("2001:db8::1:0:0:1");
    expect(f("::")).toBe("::");
    expect(f("::1")).toBe("::1");
    expect(f("1:0:2:3:4:5:6:7")).toBe("1:0:2:3:4:5:6:7");
    expect(f("::ffff:1.2.3.4")).toBe("::ffff:102:304");
    expect(parseIp6("1::2::3")).toBeNull();
    expect(parseIp6("1:2:3:4:5:6:7:8:9")).toBeNull();
    expect(parseCidr("10.1.0.0/16")?.text).toBe("10.1.0.0/16");
    expect(parseCidr("10.1.0.1/16")).toBeNull();
    expect(parseCidr("0.0.0.0/0")?.text).toBe("0.0.0.0/0");
  });
});
