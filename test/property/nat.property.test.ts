/**
 * Property tests for the NAT traversal codecs (src/wire/nat.ts): random bytes never throw
 * (null or a value), encode -> decode -> encode is a fixed point with exact sizes, and the
 * PUNCH / RELAY headers accept only their exact form. Plus the relay endpoint record
 * (src/wire/addr.ts) round trip.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import "./seed.js";
import {
  NOTICE_HEADER_BYTES,
  NOTICE_MAX_BYTES,
  NOTICE_MAX_CANDIDATES,
  PUNCH_BYTES,
  RELAY_HEADER_BYTES,
  type Notice,
  decodeNotice,
  decodeRelayHeader,
  encodeNotice,
  encodePunchInto,
  isPunch,
  noticeSize,
  writeRelayHeader,
} from "../../src/wire/nat.js";
import { addrToString, isRelayAddr, relayAddr } from "../../src/wire/addr.js";
import { formatIp4, formatIp6 } from "../../src/ip/ip.js";

const RUNS = { numRuns: 1000 };
const bytes = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
const ip4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => formatIp4(Buffer.from(a)));
const ip6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => formatIp6(Buffer.from(a)));
const cand = fc.record({ ip: fc.oneof(ip4, ip6), port: fc.integer({ min: 1, max: 65535 }) });
const token = bytes(8, 8).filter((t) => t.some((x) => x !== 0));
const notice: fc.Arbitrary<Notice> = fc.record({
  kind: fc.constantFrom("punch" as const, "peer" as const),
  peerKey: bytes(32, 32),
  token: fc.option(token, { nil: null }),
  candidates: fc.array(cand, { maxLength: NOTICE_MAX_CANDIDATES }),
});

describe("NAT codecs (property)", () => {
  it("random bytes never throw: decodeNotice, isPunch, decodeRelayHeader", () => {
    fc.assert(
      fc.property(bytes(0, 200), fc.nat(8), (b, off) => {
        const o = Math.min(off, b.length);
        const n = decodeNotice(b, o, b.length - o);
        if (n) {
          expect(n.candidates.length).toBeLessThanOrEqual(NOTICE_MAX_CANDIDATES);
          expect(encodeNotice(n).equals(b.subarray(o))).toBe(true); // canonical
        }
        isPunch(b, o, b.length - o);
        const t = decodeRelayHeader(b, o, b.length - o, 1452);
        if (t) expect(t.length).toBe(8);
      }),
      { numRuns: 5000 },
    );
  });

  it("notice: encode -> decode -> encode is a fixed point, exact sizes", () => {
    fc.assert(
      fc.property(notice, (n) => {
        const b = encodeNotice(n);
        expect(b.length).toBe(noticeSize(n));
        expect(b.length).toBeGreaterThanOrEqual(NOTICE_HEADER_BYTES);
        expect(b.length).toBeLessThanOrEqual(NOTICE_MAX_BYTES);
        const d = decodeNotice(b, 0, b.length)!;
        expect(d).not.toBeNull();
        expect(d.kind).toBe(n.kind);
        expect(d.peerKey.equals(n.peerKey)).toBe(true);
        expect(d.token === null ? null : d.token.toString("hex")).toBe(
          n.token ? n.token.toString("hex") : null,
        );
        expect(encodeNotice(d).equals(b)).toBe(true);
        // any truncation or extension is refused
        expect(decodeNotice(b, 0, b.length - 1)).toBeNull();
        expect(decodeNotice(Buffer.concat([b, Buffer.alloc(1)]), 0, b.length + 1)).toBeNull();
      }),
      RUNS,
    );
  });

  it("notice: bit flips decode to null or to a canonical notice", () => {
    fc.assert(
      fc.property(notice, fc.nat(), fc.integer({ min: 0, max: 7 }), (n, i, bit) => {
        const b = encodeNotice(n);
        b[i % b.length]! ^= 1 << bit;
        const d = decodeNotice(b, 0, b.length);
        if (d) expect(encodeNotice(d).equals(b)).toBe(true);
      }),
      RUNS,
    );
  });

  it("PUNCH is exactly 16 bytes of its form; RELAY wraps 16..max bytes under a nonzero token", () => {
    fc.assert(
      fc.property(bytes(8, 8), token, bytes(16, 1452), (rand, tok, inner) => {
        const p = Buffer.alloc(PUNCH_BYTES);
        expect(encodePunchInto(p, 0, rand)).toBe(PUNCH_BYTES);
        expect(isPunch(p, 0, PUNCH_BYTES)).toBe(true);
        expect(isPunch(Buffer.concat([p, Buffer.alloc(1)]), 0, PUNCH_BYTES + 1)).toBe(false);
        const r = Buffer.alloc(RELAY_HEADER_BYTES + inner.length);
        writeRelayHeader(r, 0, tok);
        inner.copy(r, RELAY_HEADER_BYTES);
        expect(decodeRelayHeader(r, 0, r.length, 1452)!.equals(tok)).toBe(true);
        expect(decodeRelayHeader(r, 0, r.length, inner.length - 1)).toBeNull(); // over the bound
        r[12] = 1; // reserved bytes must be zero
        expect(decodeRelayHeader(r, 0, r.length, 1452)).toBeNull();
        const a = relayAddr(3, tok);
        expect(isRelayAddr(a)).toBe(true);
        expect(addrToString(a)).toBe(`relay:3/${tok.toString("hex")}`);
      }),
      RUNS,
    );
    expect(decodeRelayHeader(Buffer.alloc(40), 0, 40, 1452)).toBeNull(); // zero token, wrong type
  });

  it("the encoder refuses what it must never be given (typed RangeError)", () => {
    const ok: Notice = { kind: "punch", peerKey: Buffer.alloc(32, 1), token: null, candidates: [] };
    expect(() => encodeNotice({ ...ok, peerKey: Buffer.alloc(31) })).toThrow(RangeError);
    expect(() => encodeNotice({ ...ok, candidates: [{ ip: "1.2.3.4", port: 0 }] })).toThrow(RangeError);
    expect(() =>
      encodeNotice({ ...ok, candidates: Array.from({ length: 5 }, () => ({ ip: "1.2.3.4", port: 1 })) }),
    ).toThrow(RangeError);
  });
});
