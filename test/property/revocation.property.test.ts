import { describe, it, expect } from "vitest";
import fc from "fast-check";
import "./seed.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { signCert, type CaCert } from "../../src/wire/cert.js";
import {
  REV_ENTRY_SIZE,
  REV_HEADER_SIZE,
  REV_MAX_SIZE,
  REV_MIN_SIZE,
  decodeRevocation,
  encodeRevocation,
  revocationSize,
  signRevocation,
  verifyRevocation,
  type RevokedEntry,
} from "../../src/wire/revocation.js";
import {
  REV_CHUNK_BYTES,
  decodeDirRequest,
  decodeDirResponse,
  encodeDirRequest,
  encodeDirResponse,
  revChunkLength,
} from "../../src/wire/directory.js";

const caKp = signKeyPair(Buffer.alloc(32, 7));
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

const bytesArb = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const entryArb: fc.Arbitrary<RevokedEntry> = fc.record({
  kind: fc.constantFrom("host" as const, "user" as const, "cert" as const),
  value: bytesArb(32),
});
const fieldsArb = fc
  .record({
    number: fc.integer({ min: 0, max: 0xffffffff }),
    issued: fc.integer({ min: 0, max: 0xfffffffe }),
    span: fc.integer({ min: 1, max: 0xffffffff }),
    entries: fc.array(entryArb, { maxLength: 40 }),
  })
  .map((r) => ({
    number: r.number,
    issued: r.issued,
    nextUpdate: Math.min(0xffffffff, r.issued + r.span),
    issuer: caKp.publicKey,
    entries: r.entries,
  }));

describe("revocation list codec (property)", () => {
  it("random bytes never throw and decode only to canonical lists", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (a) => {
        const b = Buffer.from(a);
        const l = decodeRevocation(b);
        if (l) expect(encodeRevocation(l).equals(b)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it("random bodies behind a valid header never throw", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.uint8Array({ maxLength: 40 * 33 + 64 }), (n, tail) => {
        const b = Buffer.alloc(REV_HEADER_SIZE + tail.length);
        b[0] = 1;
        b.writeUInt16BE(n, 2);
        b.writeUInt32BE(10, 8);
        b.writeUInt32BE(20, 12);
        Buffer.from(tail).copy(b, REV_HEADER_SIZE);
        const l = decodeRevocation(b);
        if (l) {
          expect(encodeRevocation(l).equals(b)).toBe(true);
          expect(l.entries.length).toBe(n);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("sign -> encode -> decode is a fixed point with the exact size, and verifies", () => {
    fc.assert(
      fc.property(fieldsArb, (f) => {
        const l = signRevocation(f, caKp.secretKey);
        const distinct = new Set(f.entries.map((e) => `${e.kind}${e.value.toString("hex")}`)).size;
        expect(l.raw.length).toBe(revocationSize(distinct));
        expect(l.raw.length).toBe(REV_HEADER_SIZE + distinct * REV_ENTRY_SIZE + 64);
        const d = decodeRevocation(l.raw)!;
        expect(d).not.toBeNull();
        expect(encodeRevocation(d).equals(l.raw)).toBe(true);
        expect(verifyRevocation(d, ca)).toEqual({ ok: true });
      }),
      { numRuns: 200 },
    );
  });

  it("any one flipped bit of a signed list fails decoding or verification", () => {
    const l = signRevocation(
      {
        number: 5,
        issued: 100,
        nextUpdate: 200,
        issuer: caKp.publicKey,
        entries: [
          { kind: "host", value: Buffer.alloc(32, 1) },
          { kind: "user", value: Buffer.alloc(32, 2) },
        ],
      },
      caKp.secretKey,
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: l.raw.length * 8 - 1 }), (bit) => {
        const b = Buffer.from(l.raw);
        b[bit >> 3]! ^= 1 << (bit & 7);
        const d = decodeRevocation(b);
        if (d) expect(verifyRevocation(d, ca).ok).toBe(false);
      }),
      { numRuns: l.raw.length * 8 },
    );
  });

  it("sizes: bounds refuse before reading", () => {
    expect(decodeRevocation(Buffer.alloc(REV_MIN_SIZE - 1))).toBeNull();
    expect(decodeRevocation(Buffer.alloc(REV_MAX_SIZE + 1))).toBeNull();
  });
});

describe("directory REVOCATION messages (property)", () => {
  it("requests and chunk answers: encode -> decode is a fixed point; random bodies never throw", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: REV_MIN_SIZE, max: REV_MAX_SIZE }),
        fc.nat(),
        (id, have, total, k) => {
          const req = { op: "revocation" as const, id, have, offset: (k % 200) * REV_CHUNK_BYTES };
          expect(decodeDirRequest(encodeDirRequest(req), 0, 14)).toEqual(req);
          const offset = (k % Math.ceil(total / REV_CHUNK_BYTES)) * REV_CHUNK_BYTES;
          const n = revChunkLength(total, offset);
          expect(n).toBeGreaterThan(0);
          const res = {
            op: "revocation" as const,
            id,
            status: "ok" as const,
            number: have,
            total,
            offset,
            chunk: Buffer.alloc(n, 7),
          };
          const b = encodeDirResponse(res);
          expect(b.length).toBe(7 + 12 + n);
          expect(decodeDirResponse(b, 0, b.length)).toEqual(res);
        },
      ),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1100 }), (a) => {
        const b = Buffer.from(a);
        if (b.length > 1) b[1] = 5; // op REVOCATION
        if (b.length > 0) b[0] = 1;
        decodeDirRequest(b, 0, b.length);
        const r = decodeDirResponse(b, 0, b.length);
        if (r && "chunk" in r) expect(encodeDirResponse(r).equals(b)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
