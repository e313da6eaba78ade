/**
 * Property tests for the outer-packet, frame, address and IP codecs:
 * random bytes never throw (only null or a value), encode -> decode is a fixed
 * point, and encoded sizes are exact.
 */
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import "./seed.js";
import {
  AEAD_TAG_BYTES,
  FRAME_HEADER_BYTES,
  HEADER_BYTES,
  RECORD_REQUEST_BYTES,
} from "../../src/tunnel/constants.js";
import {
  PacketType,
  decodeRecordRequest,
  decodeRecordResponseHeader,
  decodeRecordBody,
  RECORD_AD_BYTES,
  decodeStaleHeader,
  decodeStaleBody,
  STALE_AD_BYTES,
  encodeRecordRequest,
  encodeRecordResponse,
  encodeStale,
  peekType,
  readCounter,
  tidKey,
  tidKeyOf,
  writeTid,
  writeTypeCounter,
} from "../../src/wire/packet.js";
import {
  FrameIterator,
  HELLO_AUTH_BYTES,
  REKEY_BODY_BYTES,
  decodeHello,
  decodeRekey,
  encodeHello,
  encodeRekey,
  writeFrame,
} from "../../src/wire/frames.js";
import { ADDR_BYTES, decodeAddrRecord, tryEncodeAddr } from "../../src/wire/addr.js";
import { bytesToIpv6, ipVersion, ipv6ToBytes } from "../../src/ip/ip.js";

const RUNS = { numRuns: 500 };

const bytes = (max = 200, min = 0) =>
  fc.uint8Array({ minLength: min, maxLength: max, size: "max" }).map((a) => Buffer.from(a));
const bytesN = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a));
const nonEmpty = (max: number) =>
  fc.uint8Array({ minLength: 1, maxLength: max, size: "max" }).map((a) => Buffer.from(a));
const tidArb = bytesN(8).map((b) => tidKeyOf(b));

/** A buffer plus a window [off, off+len) inside it, so decoders are exercised at an offset. */
const windowed = (max = 200) =>
  fc.tuple(bytes(max), fc.nat(), fc.nat()).map(([buf, a, b]) => {
    const off = buf.length === 0 ? 0 : a % (buf.length + 1);
    const len = b % (buf.length - off + 1);
    return { buf, off, len };
  });

/** Random bytes whose type byte is forced to `type` (so the decoder gets past its first check). */
const typed = (type: number, max = 200) =>
  windowed(max).map((w) => {
    if (w.len > 8) w.buf[w.off + 8] = type;
    return w;
  });

/**
 * Decoders get `len` but may touch only [off, off+len): give them the window
 * copied into a buffer that ends there and a poisoned copy past the end, and
 * require the same answer.
 */
function sameOnTruncatedBuffer<T>(
  w: { buf: Buffer; off: number; len: number },
  dec: (b: Buffer, o: number, l: number) => T,
): T {
  const exact = Buffer.from(w.buf.subarray(w.off, w.off + w.len));
  const a = dec(exact, 0, w.len);
  const padded = Buffer.concat([exact, Buffer.alloc(64, 0xa5)]);
  const b = dec(padded, 0, w.len);
  expect(b).toEqual(a);
  return a;
}

describe("header: type and counter", () => {
  it("writeTypeCounter / readCounter round trip for every type and counters in [0, 2^53)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.oneof(
          fc.maxSafeNat(),
          fc.integer({ min: 0, max: 0xffffffff }),
          fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 48, 2 ** 53 - 1),
        ),
        fc.integer({ min: 0, max: 8 }),
        (type, counter, off) => {
          const b = Buffer.alloc(off + HEADER_BYTES + 4, 0xee);
          writeTypeCounter(b, off, type, counter);
          expect(readCounter(b, off)).toBe(counter);
          expect(peekType(b, off, HEADER_BYTES)).toBe(type);
          expect(b[off + 8]).toBe(type);
          // nothing outside bytes 8..16 of the header is touched
          expect(b.subarray(0, off + 8).every((x) => x === 0xee)).toBe(true);
          expect(b.subarray(off + HEADER_BYTES).every((x) => x === 0xee)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("covers all 256 type bytes with the largest counter", () => {
    for (let type = 0; type < 256; type++) {
      const b = Buffer.alloc(HEADER_BYTES);
      writeTypeCounter(b, 0, type, 2 ** 53 - 1);
      expect(b[8]).toBe(type);
      expect(readCounter(b, 0)).toBe(2 ** 53 - 1);
    }
  });

  it("peekType is 0 below a header, else byte 8; never throws on random input", () => {
    fc.assert(
      fc.property(windowed(), ({ buf, off, len }) => {
        const t = peekType(buf, off, len);
        expect(t).toBe(len < HEADER_BYTES ? 0 : buf[off + 8]);
        if (len >= HEADER_BYTES) {
          const c = readCounter(buf, off);
          // the low 56 bits of bytes 8..16 when below 2^53; -1 (refused by the replay window) above
          const exact = buf.readBigUInt64BE(off + 8) & 0x00ffffffffffffffn;
          expect(c).toBe(exact < 2n ** 53n ? Number(exact) : -1);
        }
      }),
      RUNS,
    );
  });

  it("TID keys round trip through writeTid for any 8 bytes", () => {
    fc.assert(
      fc.property(bytesN(8), (tid) => {
        const k = tidKeyOf(tid);
        const b = Buffer.alloc(HEADER_BYTES);
        writeTid(b, 0, k);
        expect(b.subarray(0, 8)).toEqual(tid);
        expect(tidKey(b, 0)).toBe(k);
        expect(b.subarray(8).every((x) => x === 0)).toBe(true);
      }),
      RUNS,
    );
  });
});

describe("STALE", () => {
  it("random bytes never throw and only read inside the window", () => {
    fc.assert(
      fc.property(fc.oneof(windowed(), typed(PacketType.Stale)), (w) => {
        const h = sameOnTruncatedBuffer(w, decodeStaleHeader);
        if (h) {
          expect(w.len).toBeGreaterThanOrEqual(STALE_AD_BYTES + 2 + AEAD_TAG_BYTES);
          expect(w.buf[w.off + 8]).toBe(PacketType.Stale);
        }
        const e = sameOnTruncatedBuffer(w, decodeStaleBody);
        if (e) {
          expect(e.length).toBeGreaterThan(0);
          expect(w.len).toBeGreaterThanOrEqual(2 + e.length);
        }
      }),
      RUNS,
    );
  });

  it("encode -> decode is a fixed point with the exact size", () => {
    fc.assert(
      fc.property(
        tidArb,
        fc.integer({ min: 0, max: 0xffffffff }),
        nonEmpty(300),
        fc.integer({ min: 0, max: 600 }),
        (tid, keyId, eph, padTo) => {
          const pub = Buffer.alloc(32, 5);
          const b = encodeStale(tid, keyId, pub, eph, padTo);
          expect(b.length).toBe(Math.max(STALE_AD_BYTES + 2 + eph.length + AEAD_TAG_BYTES, padTo));
          expect(b[8]).toBe(PacketType.Stale);
          expect(b.subarray(STALE_AD_BYTES + 2 + eph.length).every((x) => x === 0)).toBe(true);
          expect(decodeStaleHeader(b, 0, b.length)).toEqual({ tid, keyId, pub });
          const bodyLen = b.length - STALE_AD_BYTES - AEAD_TAG_BYTES;
          expect(decodeStaleBody(b, STALE_AD_BYTES, bodyLen)).toEqual(eph);
          // also at an offset inside a larger buffer
          const big = Buffer.concat([Buffer.alloc(5, 9), b, Buffer.alloc(7, 9)]);
          expect(decodeStaleHeader(big, 5, b.length)).toEqual({ tid, keyId, pub });
          // one byte short of the certificate: refused
          expect(decodeStaleBody(b, STALE_AD_BYTES, 2 + eph.length - 1)).toBeNull();
        },
      ),
      RUNS,
    );
  });

  it("the decoded certificate is a copy, not a view of the datagram", () => {
    const b = encodeStale(tidKeyOf(Buffer.alloc(8, 1)), 7, Buffer.alloc(32), Buffer.from("cert"), 96);
    const e = decodeStaleBody(b, STALE_AD_BYTES, b.length - STALE_AD_BYTES - AEAD_TAG_BYTES)!;
    b.fill(0);
    expect(e.toString()).toBe("cert");
  });
});

describe("RECORD_REQUEST", () => {
  it("is exactly the requested size (never below header + key), the key at 16, zero padded", () => {
    fc.assert(
      fc.property(
        tidArb,
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 0, max: 2000 }),
        (tid, q, size) => {
          const pub = Buffer.from(q);
          const b = encodeRecordRequest(tid, pub, size);
          expect(b.length).toBe(Math.max(size, RECORD_AD_BYTES));
          expect(b[8]).toBe(PacketType.RecordRequest);
          expect(readCounter(b, 0)).toBe(0);
          expect(b.subarray(HEADER_BYTES, RECORD_AD_BYTES)).toEqual(pub);
          expect(b.subarray(RECORD_AD_BYTES).every((x) => x === 0)).toBe(true);
          expect(decodeRecordRequest(b, 0, b.length)).toEqual({ tid, pub });
        },
      ),
      RUNS,
    );
    expect(
      encodeRecordRequest(tidKeyOf(Buffer.alloc(8)), Buffer.alloc(32), RECORD_REQUEST_BYTES).length,
    ).toBe(800);
  });

  it("random bytes never throw; a request is at least header + key, of type 5", () => {
    fc.assert(
      fc.property(fc.oneof(windowed(), typed(PacketType.RecordRequest)), (w) => {
        const m = sameOnTruncatedBuffer(w, decodeRecordRequest);
        const isReq = w.len >= RECORD_AD_BYTES && w.buf[w.off + 8] === PacketType.RecordRequest;
        expect(m === null).toBe(!isReq);
        if (m) expect(m.tid).toBe(tidKey(w.buf, w.off));
      }),
      RUNS,
    );
  });
});

describe("RECORD_RESPONSE", () => {
  it("returns null exactly when the answer would exceed maxLen; else exactly maxLen bytes", () => {
    fc.assert(
      fc.property(
        tidArb,
        nonEmpty(400),
        nonEmpty(300),
        fc.integer({ min: 0, max: 1000 }),
        (tid, host, eph, maxLen) => {
          const pub = Buffer.alloc(32, 9);
          const need = RECORD_AD_BYTES + 2 + host.length + 2 + eph.length + AEAD_TAG_BYTES;
          const b = encodeRecordResponse(tid, pub, host, eph, maxLen);
          if (need > maxLen) {
            expect(b).toBeNull();
            return;
          }
          expect(b).not.toBeNull();
          expect(b!.length).toBe(maxLen);
          expect(b![8]).toBe(PacketType.RecordResponse);
          expect(decodeRecordResponseHeader(b!, 0, b!.length)).toEqual({ tid, pub });
          expect(b!.subarray(need - AEAD_TAG_BYTES).every((x) => x === 0)).toBe(true);
          const body = b!.length - RECORD_AD_BYTES - AEAD_TAG_BYTES;
          expect(decodeRecordBody(b!, RECORD_AD_BYTES, body)).toEqual({ host, eph });
          // the smallest size that fits is `need`
          expect(encodeRecordResponse(tid, pub, host, eph, need)!.length).toBe(need);
          expect(encodeRecordResponse(tid, pub, host, eph, need - 1)).toBeNull();
        },
      ),
      RUNS,
    );
  });

  it("random bytes never throw and only read inside the window", () => {
    fc.assert(
      fc.property(fc.oneof(windowed(), typed(PacketType.RecordResponse)), (w) => {
        sameOnTruncatedBuffer(w, decodeRecordResponseHeader);
        const m = sameOnTruncatedBuffer(w, decodeRecordBody);
        if (m) {
          expect(m.host.length).toBeGreaterThan(0);
          expect(m.eph.length).toBeGreaterThan(0);
          expect(w.len).toBeGreaterThanOrEqual(4 + m.host.length + m.eph.length);
        }
      }),
      RUNS,
    );
  });

  it("bodies with lying lengths are refused, never read past len", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 4, max: 300 }),
        (hl, el, len) => {
          const b = Buffer.alloc(len);
          b.writeUInt16BE(hl, 0);
          if (2 + hl + 2 <= len) b.writeUInt16BE(el, 2 + hl);
          const ok = hl > 0 && el > 0 && 2 + hl + 2 + el <= len;
          const m = decodeRecordBody(b, 0, len);
          expect(m !== null).toBe(ok);
          if (m) {
            expect(m.host.length).toBe(hl);
            expect(m.eph.length).toBe(el);
          }
        },
      ),
      RUNS,
    );
  });
});

/** Reference frame parser: list of [type, bodyOff, bodyLen] and whether the list is malformed. */
function refFrames(buf: Buffer, off: number, len: number): { frames: number[][]; malformed: boolean } {
  const frames: number[][] = [];
  let p = off;
  const end = off + len;
  for (;;) {
    if (p >= end || buf[p] === 0) return { frames, malformed: false };
    if (end - p < 3) return { frames, malformed: true };
    const l = buf[p + 1]! * 256 + buf[p + 2]!;
    if (end - p - 3 < l) return { frames, malformed: true };
    frames.push([buf[p]!, p + 3, l]);
    p += 3 + l;
  }
}

describe("FrameIterator", () => {
  const frameSoup = fc
    .array(
      fc.tuple(
        fc.integer({ min: 0, max: 255 }),
        fc.oneof(bytes(40), bytes(700, 250)),
        fc.integer({ min: -3, max: 3 }),
      ),
      {
        maxLength: 8,
      },
    )
    .map((fs) => {
      // well-formed frames, some with a lying length (delta != 0)
      const parts: Buffer[] = [];
      for (const [t, body, delta] of fs) {
        const h = Buffer.alloc(3);
        h[0] = t;
        h.writeUInt16BE(Math.max(0, body.length + delta), 1);
        parts.push(h, body);
      }
      return Buffer.concat(parts);
    });

  it("over random bytes: terminates, stays in bounds, and matches a reference parser", () => {
    const it = new FrameIterator();
    fc.assert(
      fc.property(
        fc.oneof(
          windowed(300),
          frameSoup.map((buf) => ({ buf, off: 0, len: buf.length })),
        ),
        ({ buf, off, len }) => {
          const ref = refFrames(buf, off, len);
          it.reset(buf, off, len);
          const got: number[][] = [];
          let lastPos = off;
          let steps = 0;
          while (it.next()) {
            expect(++steps).toBeLessThanOrEqual(len);
            expect(it.type).not.toBe(0);
            expect(it.bodyOff).toBeGreaterThanOrEqual(lastPos + FRAME_HEADER_BYTES);
            expect(it.bodyOff + it.bodyLen).toBeLessThanOrEqual(off + len);
            expect(it.pos).toBe(it.bodyOff + it.bodyLen);
            lastPos = it.pos;
            got.push([it.type, it.bodyOff, it.bodyLen]);
          }
          expect(got).toEqual(ref.frames);
          expect(it.malformed).toBe(ref.malformed);
          // stays finished
          expect(it.next()).toBe(false);
          expect(it.malformed).toBe(ref.malformed);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("reset clears a previous malformed flag", () => {
    const it = new FrameIterator();
    it.reset(Buffer.from([1, 0, 9]), 0, 3);
    expect(it.next()).toBe(false);
    expect(it.malformed).toBe(true);
    it.reset(Buffer.from([16, 0, 0]), 0, 3);
    expect(it.malformed).toBe(false);
    expect(it.next()).toBe(true);
    expect([it.type, it.bodyOff, it.bodyLen]).toEqual([16, 3, 0]);
    expect(it.next()).toBe(false);
    expect(it.malformed).toBe(false);
  });

  it("writeFrame then iterate is a fixed point for any list of non-padding frames", () => {
    const it = new FrameIterator();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 255 }), fc.oneof(bytes(100), bytes(1500, 250))), {
          maxLength: 6,
        }),
        fc.integer({ min: 0, max: 50 }),
        (frames, pad) => {
          const total = frames.reduce((n, [, b]) => n + FRAME_HEADER_BYTES + b.length, 0);
          const buf = Buffer.alloc(total + pad);
          let o = 0;
          for (const [t, b] of frames) o = writeFrame(buf, o, t, b);
          expect(o).toBe(total);
          it.reset(buf, 0, buf.length);
          const got: string[] = [];
          while (it.next())
            got.push(`${it.type}:${buf.toString("hex", it.bodyOff, it.bodyOff + it.bodyLen)}`);
          expect(it.malformed).toBe(false);
          expect(got).toEqual(frames.map(([t, b]) => `${t}:${b.toString("hex")}`));
        },
      ),
      RUNS,
    );
  });
});

describe("HELLO and REKEY bodies", () => {
  it("decodeHello: random bytes never throw; accepted only when lengths add up exactly", () => {
    fc.assert(
      fc.property(windowed(200), (w) => {
        const h = sameOnTruncatedBuffer(w, decodeHello);
        if (h) {
          expect(h.auth.length).toBe(HELLO_AUTH_BYTES);
          expect(h.cert.length).toBeGreaterThan(0);
          // the suite byte is there only for suite 2 (AES-256-GCM); canonical: re-encodes equal
          expect(2 + h.cert.length + HELLO_AUTH_BYTES + (h.suite === 1 ? 0 : 1)).toBe(w.len);
          expect([1, 2]).toContain(h.suite);
          expect(encodeHello(h.cert, h.auth, h.suite)).toEqual(w.buf.subarray(w.off, w.off + w.len));
        }
      }),
      RUNS,
    );
  });

  it("encodeHello -> decodeHello is a fixed point with the exact size, for both suites", () => {
    fc.assert(
      fc.property(nonEmpty(600), bytesN(32), fc.constantFrom(1, 2), (cert, auth, suite) => {
        const b = encodeHello(cert, auth, suite);
        expect(b.length).toBe(2 + cert.length + HELLO_AUTH_BYTES + (suite === 1 ? 0 : 1));
        expect(decodeHello(b, 0, b.length)).toEqual({ cert, auth, suite });
        // one byte short: a suite-2 HELLO turns into a suite-1 one only by dropping its suite
        // byte, which the AEAD around it and the key derivation (keys.ts) refuse
        const short = decodeHello(b, 0, b.length - 1);
        if (suite === 1) expect(short).toBeNull();
        else expect(short).toEqual({ cert, auth, suite: 1 });
        for (const extra of [0, 1, 3, 0xff]) {
          const longer = Buffer.concat([b, Buffer.from([extra])]);
          expect(decodeHello(longer, 0, longer.length)).toBeNull();
        }
      }),
      RUNS,
    );
  });

  it("decodeRekey: random bytes never throw; only 36-byte bodies decode", () => {
    fc.assert(
      fc.property(windowed(80), (w) => {
        const r = sameOnTruncatedBuffer(w, decodeRekey);
        expect(r !== null).toBe(w.len === REKEY_BODY_BYTES);
      }),
      RUNS,
    );
  });

  it("encodeRekey -> decodeRekey is a fixed point", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), bytesN(32), (seq, pub) => {
        const b = encodeRekey(seq, pub);
        expect(b.length).toBe(REKEY_BODY_BYTES);
        expect(decodeRekey(b, 0, b.length)).toEqual({ seq, pub });
      }),
      RUNS,
    );
  });
});

describe("underlay address records", () => {
  it("decodeAddrRecord never throws on 20 random bytes and its text re-encodes to the same record", () => {
    fc.assert(
      fc.property(bytesN(ADDR_BYTES), (rec) => {
        const a = decodeAddrRecord(rec, 0);
        expect([4, 6]).toContain(a.family);
        expect(a.port).toBe(rec.readUInt16BE(2));
        const again = tryEncodeAddr(a.ip, a.port);
        expect(again).not.toBeNull();
        // the canonical part of the record survives (family byte other than 6 reads as 4,
        // an IPv4-mapped v6 record is reported as 4)
        const d = decodeAddrRecord(again!, 0);
        expect(d.port).toBe(a.port);
        if (a.family === 4) {
          expect(again!.subarray(4, 8)).toEqual(rec.subarray(4, 8));
          expect(again![0]).toBe(4);
        } else {
          const mapped =
            rec.readUInt32BE(4) === 0 && rec.readUInt32BE(8) === 0 && rec.readUInt32BE(12) === 0xffff;
          if (!mapped) expect(again!.subarray(4)).toEqual(rec.subarray(4));
        }
      }),
      RUNS,
    );
  });

  it("tryEncodeAddr with random strings and ports returns null or a well-formed record", () => {
    const chars = fc.constantFrom(..."0123456789abcdefABCDEF:.%/ xg-".split(""));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.array(chars, { maxLength: 45 }).map((a) => a.join("")),
        ),
        fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.double()),
        (ip, port) => {
          const r = tryEncodeAddr(ip, port);
          if (r === null) return;
          expect(r.length).toBe(ADDR_BYTES);
          expect([4, 6]).toContain(r[0]);
          expect(r[1]).toBe(0);
          expect(r.readUInt16BE(2)).toBe(port);
          if (r[0] === 4) expect(r.subarray(8).every((x) => x === 0)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("writes into a caller buffer at an offset without touching its neighbours", () => {
    const out = Buffer.alloc(30, 0xcc);
    expect(tryEncodeAddr("192.0.2.7", 7000, out, 5)).toBe(out);
    expect(out.subarray(5, 25).toString("hex")).toBe("04001b58c0000207" + "00".repeat(12));
    expect(out.subarray(0, 5).every((x) => x === 0xcc)).toBe(true);
    expect(out.subarray(25).every((x) => x === 0xcc)).toBe(true);
    expect(tryEncodeAddr("2001:db8::1", 443)!.toString("hex")).toBe(
      "060001bb20010db8000000000000000000000001",
    );
    expect(tryEncodeAddr("::ffff:10.1.2.3", 1)!.toString("hex")).toBe("040000010a010203" + "00".repeat(12));
    expect(tryEncodeAddr("1.2.3.4", 65536)).toBeNull();
    expect(tryEncodeAddr("1.2.3.4", 1.5)).toBeNull();
    expect(tryEncodeAddr("1.2.3.256", 1)).toBeNull();
  });
});

describe("IP header helpers", () => {
  it("ipVersion never throws and answers 4/6 only for consistent headers", () => {
    const v4ish = fc.tuple(bytes(80), fc.integer({ min: 0, max: 15 })).map(([b, ihl]) => {
      if (b.length > 0) b[0] = 0x40 | ihl;
      if (b.length >= 4 && ihl % 2 === 0) b.writeUInt16BE(b.length, 2);
      return { buf: b, off: 0, len: b.length };
    });
    const v6ish = bytes(100).map((b) => {
      if (b.length > 0) b[0] = 0x60 | (b[0]! & 0x0f);
      if (b.length >= 6 && b[1]! % 2 === 0) b.writeUInt16BE(Math.max(0, b.length - 40), 4);
      return { buf: b, off: 0, len: b.length };
    });
    fc.assert(
      fc.property(fc.oneof(windowed(100), v4ish, v6ish), (w) => {
        const v = sameOnTruncatedBuffer(w, ipVersion);
        const { buf, off, len } = w;
        if (v === 4) {
          expect(buf[off]! >> 4).toBe(4);
          expect(len).toBeGreaterThanOrEqual(20);
          expect((buf[off]! & 15) * 4).toBeGreaterThanOrEqual(20);
          expect((buf[off]! & 15) * 4).toBeLessThanOrEqual(len);
          expect(buf.readUInt16BE(off + 2)).toBe(len);
        } else if (v === 6) {
          expect(buf[off]! >> 4).toBe(6);
          expect(buf.readUInt16BE(off + 4) + 40).toBe(len);
        } else {
          expect(v).toBe(0);
          // a consistent header is never refused
          const nib = len > 0 ? buf[off]! >> 4 : 0;
          if (nib === 4 && len >= 20) {
            const ihl = (buf[off]! & 15) * 4;
            expect(ihl >= 20 && ihl <= len && buf.readUInt16BE(off + 2) === len).toBe(false);
          }
          if (nib === 6 && len >= 40) expect(buf.readUInt16BE(off + 4) + 40 === len).toBe(false);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("ipv6ToBytes never throws on random strings and returns null or 16 bytes", () => {
    const chars = fc.constantFrom(..."0123456789abcdefABCDEFxg:.%".split(""));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.array(chars, { maxLength: 50 }).map((a) => a.join("")),
        ),
        (s) => {
          const b = ipv6ToBytes(s);
          if (b !== null) expect(b.length).toBe(16);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("bytesToIpv6 -> ipv6ToBytes round trips every 16-byte address", () => {
    // bias towards zero groups so that '::' compression is exercised
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    const addr = fc.oneof(
      bytesN(16),
      fc.array(group, { minLength: 8, maxLength: 8 }).map((gs) => {
        const b = Buffer.alloc(16);
        gs.forEach((g, i) => b.writeUInt16BE(g, i * 2));
        return b;
      }),
    );
    fc.assert(
      fc.property(addr, (b) => {
        const s = bytesToIpv6(b);
        expect(ipv6ToBytes(s)).toEqual(b);
        // RFC 5952: lower case, no leading zeros, at most one '::', not for a single zero group
        expect(s).toMatch(/^[0-9a-f:]+$/);
        expect(s.split("::").length).toBeLessThanOrEqual(2);
        expect(s).not.toMatch(/(^|:)0[0-9a-f]/);
        // canonical text is a fixed point
        expect(bytesToIpv6(ipv6ToBytes(s)!)).toBe(s);
      }),
      { numRuns: 1000 },
    );
  });

  it("parses the usual textual forms", () => {
    const hex = (s: string) => ipv6ToBytes(s)?.toString("hex") ?? null;
    expect(hex("::")).toBe("00".repeat(16));
    expect(hex("::1")).toBe("00".repeat(15) + "01");
    expect(hex("fe80::1%eth0")).toBe("fe80" + "00".repeat(13) + "01");
    expect(hex("2001:DB8:0:0:1:0:0:1")).toBe("20010db8000000000001000000000001");
    expect(hex("::ffff:192.0.2.1")).toBe("00".repeat(10) + "ffffc0000201");
    expect(hex("1:2:3:4:5:6:7:8")).toBe("00010002000300040005000600070008");
    for (const bad of [
      "",
      ":",
      ":::",
      "1::2::3",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "12345::",
      "g::",
      "::1.2.3",
    ])
      expect(hex(bad), bad).toBeNull();
    expect(bytesToIpv6(ipv6ToBytes("2001:db8:0:0:1:0:0:1")!)).toBe("2001:db8::1:0:0:1");
    expect(bytesToIpv6(ipv6ToBytes("2001:db8:0:1:1:1:1:1")!)).toBe("2001:db8:0:1:1:1:1:1");
  });

  // Regression test (was a bug, fixed; src/ip/ip.ts:61-63): the embedded dotted-quad tail of an IPv6 address is
  // not validated: each part goes through `+part` (ipv4ToNumber), so letters, empty
  // parts, signs, hex and values > 255 are accepted and silently become other bytes
  // ("::256.0.0.1" -> ::0.0.0.1, "::a.b.c.d" -> ::, "::-1.2.3.4" -> ::ff02:304).
  // tryEncodeAddr (src/wire/addr.ts:31) and routing parseCidr inherit it.
  it("ipv6ToBytes refuses a malformed embedded IPv4 tail", () => {
    for (const bad of ["::a.b.c.d", "::256.0.0.1", "::1..2.3", "::-1.2.3.4", "::0x1.2.3.4", ":: 1.2.3.4"])
      expect(ipv6ToBytes(bad), bad).toBeNull();
  });

  // Regression test (was a bug, fixed; src/ip/ip.ts:72-73): '::' must stand for at least one zero group
  // (RFC 4291 2.2), but with eight explicit groups it is accepted as standing for none.
  it("ipv6ToBytes refuses '::' next to eight explicit groups", () => {
    expect(ipv6ToBytes("1:2:3:4:5:6:7:8::")).toBeNull();
    expect(ipv6ToBytes("::1:2:3:4:5:6:7:8")).toBeNull();
  });
});
