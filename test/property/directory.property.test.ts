/**
 * Property tests for the directory message codec (src/wire/directory.ts):
 * random bytes never throw (null or a value), encode -> decode -> encode is a
 * fixed point, encoded sizes are exact, and a decoded message re-encodes to
 * the same bytes (canonical). Plus the record store's tables.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import "./seed.js";
import {
  DIR_REQUEST_MAX_BYTES,
  DIR_RESPONSE_MAX_BYTES,
  type DirRequest,
  type DirResponse,
  decodeDirRequest,
  decodeDirResponse,
  dirRequestSize,
  dirResponseSize,
  encodeDirRequest,
  encodeDirResponse,
} from "../../src/wire/directory.js";
import { CERT_MAX_SIZE, CERT_MIN_SIZE, EPH_MAX_SIZE, EPH_MIN_SIZE } from "../../src/wire/cert.js";
import { formatIp4, formatIp6 } from "../../src/ip/ip.js";

const RUNS = { numRuns: 1000 };

const bytes = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
const ip4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => formatIp4(Buffer.from(a)));
const ip6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => formatIp6(Buffer.from(a)));
const ip = fc.oneof(ip4, ip6);
const endpoint = fc.option(fc.record({ ip, port: fc.integer({ min: 0, max: 65535 }) }), { nil: null });
const name = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,62}$/);
const id = fc.integer({ min: 0, max: 0xffffffff });

const request: fc.Arbitrary<DirRequest> = fc.oneof(
  fc.record({ op: fc.constant("register" as const), id, eph: bytes(EPH_MIN_SIZE, EPH_MAX_SIZE) }),
  fc.record({ op: fc.constantFrom("address" as const, "subnet" as const), id, ip }),
  fc.record({ op: fc.constant("name" as const), id, name }),
);

const response: fc.Arbitrary<DirResponse> = fc.oneof(
  fc.record({
    op: fc.constantFrom("register" as const, "address" as const, "subnet" as const, "name" as const),
    id,
    status: fc.constantFrom(
      "notFound" as const,
      "refused" as const,
      "rateLimited" as const,
      "unavailable" as const,
    ),
  }),
  fc.record({
    op: fc.constant("register" as const),
    id,
    status: fc.constant("ok" as const),
    observed: endpoint,
  }),
  fc.record({
    op: fc.constantFrom("address" as const, "subnet" as const, "name" as const),
    id,
    status: fc.constant("ok" as const),
    record: fc.record({
      host: bytes(CERT_MIN_SIZE, CERT_MAX_SIZE),
      eph: bytes(EPH_MIN_SIZE, EPH_MAX_SIZE),
      observed: endpoint,
    }),
  }),
);

/** Random bytes in a window of a larger buffer, with the version byte often right. */
const windowed = (max: number) =>
  fc.tuple(bytes(0, max), fc.nat(), fc.nat(), fc.boolean()).map(([buf, a, b, fix]) => {
    const off = buf.length === 0 ? 0 : a % (buf.length + 1);
    const len = b % (buf.length - off + 1);
    if (fix && len > 1) {
      buf[off] = 1;
      buf[off + 1] = (buf[off + 1]! % 5) as number;
    }
    return { buf, off, len };
  });

describe("directory codec (property)", () => {
  it("random bytes never throw: requests", () => {
    fc.assert(
      fc.property(windowed(400), ({ buf, off, len }) => {
        const m = decodeDirRequest(buf, off, len);
        if (m) expect(encodeDirRequest(m).equals(buf.subarray(off, off + len))).toBe(true);
      }),
      RUNS,
    );
  });

  it("random bytes never throw: responses", () => {
    fc.assert(
      fc.property(windowed(1600), ({ buf, off, len }) => {
        const m = decodeDirResponse(buf, off, len);
        if (m) expect(encodeDirResponse(m).equals(buf.subarray(off, off + len))).toBe(true);
      }),
      RUNS,
    );
  });

  it("request encode -> decode is a fixed point with the exact size", () => {
    fc.assert(
      fc.property(request, (r) => {
        const b = encodeDirRequest(r);
        expect(b.length).toBe(dirRequestSize(r));
        expect(b.length).toBeLessThanOrEqual(DIR_REQUEST_MAX_BYTES);
        const d = decodeDirRequest(b, 0, b.length);
        expect(d).toEqual(r);
        expect(encodeDirRequest(d!).equals(b)).toBe(true);
        // every truncation and one extra byte are refused
        expect(decodeDirRequest(b, 0, b.length - 1)).toBeNull();
        expect(decodeDirRequest(Buffer.concat([b, Buffer.alloc(1)]), 0, b.length + 1)).toBeNull();
      }),
      RUNS,
    );
  });

  it("response encode -> decode is a fixed point with the exact size", () => {
    fc.assert(
      fc.property(response, (r) => {
        const b = encodeDirResponse(r);
        expect(b.length).toBe(dirResponseSize(r));
        expect(b.length).toBeLessThanOrEqual(DIR_RESPONSE_MAX_BYTES);
        const d = decodeDirResponse(b, 0, b.length);
        expect(d).toEqual(r);
        expect(decodeDirResponse(b, 0, b.length - 1)).toBeNull();
        expect(decodeDirResponse(Buffer.concat([b, Buffer.alloc(1)]), 0, b.length + 1)).toBeNull();
      }),
      RUNS,
    );
  });

  it("exact sizes of the fixed forms", () => {
    expect(encodeDirRequest({ op: "address", id: 1, ip: "10.0.0.1" }).length).toBe(11);
    expect(encodeDirRequest({ op: "subnet", id: 1, ip: "fd00::1" }).length).toBe(23);
    expect(encodeDirRequest({ op: "name", id: 1, name: "web" }).length).toBe(10);
    expect(encodeDirResponse({ op: "name", id: 1, status: "notFound" }).length).toBe(7);
    expect(
      encodeDirResponse({ op: "register", id: 1, status: "ok", observed: { ip: "192.0.2.1", port: 7000 } })
        .length,
    ).toBe(14);
    expect(encodeDirResponse({ op: "register", id: 1, status: "ok", observed: null }).length).toBe(8);
    // the largest response fits in one tunnel packet: header 16 + frame header 3 + tag 16
    expect(16 + 3 + DIR_RESPONSE_MAX_BYTES + 16).toBeLessThanOrEqual(1452);
  });
});
