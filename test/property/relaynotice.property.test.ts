/**
 * Property tests for the relay host notices (src/wire/relaynotice.ts): random bytes never
 * throw (null or a value); encode -> decode -> encode is a fixed point; OFFER is exactly
 * two bytes.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import "./seed.js";
import {
  PAIR_BYTES,
  VIA_MAX_BYTES,
  decodePair,
  decodeVia,
  encodePair,
  encodeVia,
  isOffer,
  noticeKind,
} from "../../src/wire/relaynotice.js";

const RUNS = { numRuns: 1000 };
const bytes = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
const token = bytes(8, 8).filter((t) => t.some((x) => x !== 0));
const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/);

describe("relay host notices", () => {
  it("random bytes: every decoder returns null or a value, never throws", () => {
    fc.assert(
      fc.property(bytes(0, VIA_MAX_BYTES + 4), fc.nat(8), (b, off) => {
        const o = Math.min(off, b.length);
        const len = b.length - o;
        const v = decodeVia(b, o, len);
        const p = decodePair(b, o, len);
        if (v) expect(encodeVia(v).equals(b.subarray(o, o + len))).toBe(true);
        if (p) expect(encodePair(p).equals(b.subarray(o, o + len))).toBe(true);
        expect(typeof isOffer(b, o, len)).toBe("boolean");
        expect(noticeKind(b, o, len)).toBeGreaterThanOrEqual(0);
      }),
      RUNS,
    );
  });

  it("VIA and PAIR round-trip exactly; one byte more or less is refused", () => {
    fc.assert(
      fc.property(bytes(32, 32), token, bytes(32, 32), name, (k1, t, k2, n) => {
        fc.pre(!k1.equals(k2));
        const v = encodeVia({ peerKey: k1, token: t, relayKey: k2, relayName: n });
        expect(v.length).toBe(75 + n.length);
        const dv = decodeVia(v, 0, v.length)!;
        expect(encodeVia(dv).equals(v)).toBe(true);
        expect(decodeVia(v, 0, v.length - 1)).toBeNull();
        expect(decodeVia(Buffer.concat([v, Buffer.from([0x61])]), 0, v.length + 1)).toBeNull();
        const p = encodePair({ a: k1, token: t, b: k2 });
        expect(p.length).toBe(PAIR_BYTES);
        expect(encodePair(decodePair(p, 0, p.length)!).equals(p)).toBe(true);
        expect(decodePair(p, 0, p.length - 1)).toBeNull();
      }),
      RUNS,
    );
  });
});
