import { describe, it, expect } from "vitest";
import fc from "fast-check";
import "./seed.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import {
  CERT_MAX_SIZE,
  decodeCert,
  decodeEphemeral,
  EPH_OFFSET_PROTOCOL,
  encodeCert,
  encodeEphemeral,
  signCert,
  signEphemeral,
  verifyCert,
  verifyEphemeral,
  type CaCert,
  type CertFields,
  type HostCert,
} from "../../src/wire/cert.js";
import { formatIp4, formatIp6 } from "../../src/ip/ip.js";

const caKp = signKeyPair(Buffer.alloc(32, 7));
const hostKp = signKeyPair(Buffer.alloc(32, 8));
const NOW = 1_700_000_000;
const ca = signCert(
  {
    kind: "ca",
    name: "ca",
    publicKey: caKp.publicKey,
    issuer: caKp.publicKey,
    groups: [],
    notBefore: 0,
    notAfter: 0xffffffff,
  },
  caKp.secretKey,
) as CaCert;

const alnum = "abcdefghijklmnopqrstuvwxyz0123456789".split("");
const nameArb = fc
  .tuple(fc.constantFrom(...alnum), fc.array(fc.constantFrom(...alnum, ".", "-"), { maxLength: 62 }))
  .map(([a, b]) => a + b.join(""));
const groupArb = fc
  .tuple(fc.constantFrom(...alnum), fc.array(fc.constantFrom(...alnum, ".", "-", "_"), { maxLength: 31 }))
  .map(([a, b]) => a + b.join(""));
const bytesArb = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const ip4Arb = bytesArb(4).map((b) => formatIp4(b));
const ip6Arb = bytesArb(16).map((b) => formatIp6(b));
/** A network CIDR: random address masked to a random prefix. */
const cidrArb = fc
  .oneof(
    fc.tuple(bytesArb(4), fc.integer({ min: 0, max: 32 })),
    fc.tuple(bytesArb(16), fc.integer({ min: 0, max: 128 })),
  )
  .map(([b, prefix]) => {
    for (let i = 0; i < b.length; i++) {
      const keep = Math.min(8, Math.max(0, prefix - i * 8));
      b[i]! &= keep === 8 ? 0xff : (0xff << (8 - keep)) & 0xff;
    }
    return `${b.length === 4 ? formatIp4(b) : formatIp6(b)}/${prefix}`;
  });
const timesArb = fc
  .tuple(fc.integer({ min: 0, max: 0xfffffffe }), fc.integer({ min: 1, max: 0xffffffff }))
  .map(([a, d]) => [a, Math.min(0xffffffff, a + d)] as const)
  .filter(([a, b]) => a < b);

const hostFieldsArb = fc.record({
  name: nameArb,
  groups: fc.uniqueArray(groupArb, { maxLength: 16 }),
  times: timesArb,
  ip4: fc.option(ip4Arb, { nil: null }),
  ip6: fc.option(ip6Arb, { nil: null }),
  subnets: fc.uniqueArray(cidrArb, { maxLength: 16 }),
  kind: fc.constantFrom("host", "user") as fc.Arbitrary<"host" | "user">,
});

type HostFields = typeof hostFieldsArb extends fc.Arbitrary<infer T> ? T : never;

function fields(r: HostFields): CertFields {
  const common = {
    name: r.name,
    publicKey: hostKp.publicKey,
    issuer: caKp.publicKey,
    groups: r.groups,
    notBefore: r.times[0],
    notAfter: r.times[1],
  };
  return r.kind === "host"
    ? { ...common, kind: "host", ip4: r.ip4, ip6: r.ip6, subnets: r.subnets }
    : { ...common, kind: "user" };
}

describe("certificate decoders (property)", () => {
  it("random bytes never throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1200 }), (a) => {
        const b = Buffer.from(a);
        const c = decodeCert(b);
        const e = decodeEphemeral(b);
        expect(c === null || typeof c === "object").toBe(true);
        expect(e === null || typeof e === "object").toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it("mutated valid encodings never throw and, when they decode, re-encode to themselves", () => {
    const base = signCert(
      {
        kind: "host",
        name: "web1",
        publicKey: hostKp.publicKey,
        issuer: caKp.publicKey,
        groups: ["a", "b"],
        notBefore: 1,
        notAfter: 2,
        ip4: "10.0.0.1",
        ip6: "fd00::1",
        subnets: ["10.1.0.0/16", "fd01::/64"],
      },
      caKp.secretKey,
    );
    fc.assert(
      fc.property(
        fc.nat(base.raw.length - 1),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: -3, max: 3 }),
        (i, v, dl) => {
          const b = Buffer.from(base.raw);
          b[i] = v;
          const m = dl >= 0 ? Buffer.concat([b, Buffer.alloc(dl)]) : b.subarray(0, b.length + dl);
          const d = decodeCert(m);
          if (d) expect(encodeCert(d).equals(m)).toBe(true);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("encode -> decode is a fixed point for arbitrary valid fields", () => {
    fc.assert(
      fc.property(hostFieldsArb, (r) => {
        const c = signCert(fields(r), caKp.secretKey);
        expect(c.raw.length).toBeLessThanOrEqual(CERT_MAX_SIZE);
        const d = decodeCert(c.raw);
        expect(d).toEqual(c);
        expect(encodeCert(d!).equals(c.raw)).toBe(true);
        if (c.kind === "host" && r.kind === "host") {
          expect(c.ip4).toBe(r.ip4);
          expect(c.ip6).toBe(r.ip6);
          expect(c.subnets).toEqual(r.subnets);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("a random bit flip in a signed cert never verifies", () => {
    fc.assert(
      fc.property(hostFieldsArb, fc.nat(), fc.nat(7), (r, pos, bit) => {
        const c = signCert(fields(r), caKp.secretKey);
        const raw = Buffer.from(c.raw);
        raw[pos % raw.length]! ^= 1 << bit;
        const d = decodeCert(raw);
        if (d === null) return;
        const now = Math.max(d.notBefore, Math.min(d.notAfter - 1, NOW));
        expect(verifyCert(d, ca, now).ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  /** host certificate "h" on hostKp, valid for all time, signed by the CA */
  const hostH = (): HostCert =>
    signCert(
      {
        kind: "host",
        name: "h",
        publicKey: hostKp.publicKey,
        issuer: caKp.publicKey,
        groups: [],
        notBefore: 0,
        notAfter: 0xffffffff,
        ip4: null,
        ip6: null,
        subnets: [],
      },
      caKp.secretKey,
    ) as HostCert;

  it("ephemeral: round trip and bit flips", () => {
    const host = hostH();
    const epArb = fc.record({ ip: fc.oneof(ip4Arb, ip6Arb), port: fc.integer({ min: 1, max: 65535 }) });
    fc.assert(
      fc.property(
        fc.record({
          keyId: fc.nat({ max: 0xffffffff }),
          publicKey: bytesArb(32),
          times: timesArb,
          endpoints: fc.array(epArb, { maxLength: 8 }),
          protocolVersion: fc.integer({ min: 0, max: 255 }),
          minFirstPacket: fc.integer({ min: 0, max: 65535 }),
        }),
        fc.nat(),
        fc.nat(7),
        (r, pos, bit) => {
          const e = signEphemeral(
            { ...r, hostKey: hostKp.publicKey, notBefore: r.times[0], notAfter: r.times[1] },
            hostKp.secretKey,
          );
          const d = decodeEphemeral(e.raw);
          expect(d).toEqual(e);
          expect(encodeEphemeral(d!).equals(e.raw)).toBe(true);
          expect(verifyEphemeral(d!, host, r.times[0])).toEqual({ ok: true });
          const raw = Buffer.from(e.raw);
          raw[pos % raw.length]! ^= 1 << bit;
          const f = decodeEphemeral(raw);
          if (f)
            expect(verifyEphemeral(f, host, Math.max(f.notBefore, Math.min(f.notAfter - 1, NOW))).ok).toBe(
              false,
            );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("ephemeral: the suite offer (protocol byte, docs/PROTOCOL.md 4b) cannot be rewritten", () => {
    const host = hostH();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), (p, q) => {
        fc.pre(p !== q);
        const e = signEphemeral(
          {
            hostKey: hostKp.publicKey,
            keyId: 7,
            publicKey: Buffer.alloc(32, 9),
            notBefore: NOW - 10,
            notAfter: NOW + 300,
            endpoints: [],
            protocolVersion: p,
            minFirstPacket: 256,
          },
          hostKp.secretKey,
        );
        const raw = Buffer.from(e.raw);
        raw[EPH_OFFSET_PROTOCOL] = q;
        const f = decodeEphemeral(raw)!;
        expect(f.protocolVersion).toBe(q); // any value decodes (old hosts ignore it) ...
        expect(verifyEphemeral(f, host, NOW)).toEqual({ ok: false, reason: "bad-signature" }); // ... none verifies
      }),
      { numRuns: 200 },
    );
  });
});
