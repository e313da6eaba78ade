/**
 * Property tests for synthReject (src/ip/reject.ts): on random bytes and on random
 * but plausible IPv4/IPv6 packets it never throws, never touches the input or bytes
 * outside [off, off+len), and returns either null or a well-formed answer: a valid IP
 * header with the addresses swapped, a TCP RST or an ICMP/ICMPv6 unreachable with
 * correct checksums (checked with an independent reference sum), within the size limits,
 * and never itself answerable (no reject loops).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import "./seed.js";
import { synthReject } from "../../src/ip/reject.js";

const RUNS = { numRuns: 2000 };

function onesSum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) + (i + 1 < b.length ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const verifies = (b: Buffer) => onesSum(b) === 0xffff;

function pseudo(v: 4 | 6, src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  if (v === 4) {
    const p = Buffer.alloc(12);
    src.copy(p, 0);
    dst.copy(p, 4);
    p[9] = proto;
    p.writeUInt16BE(len, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  src.copy(p, 0);
  dst.copy(p, 16);
  p.writeUInt32BE(len, 32);
  p[39] = proto;
  return p;
}

/** Throws (via expect) unless `r` is a well-formed answer to the packet `p`. */
function checkAnswer(p: Buffer, r: Buffer): void {
  const v = (p[0]! >> 4 === 4 ? 4 : 6) as 4 | 6;
  expect(r[0]! >> 4).toBe(v);
  let src: Buffer, dst: Buffer, proto: number, l4: Buffer;
  if (v === 4) {
    expect(r[0]).toBe(0x45);
    expect(r.readUInt16BE(2)).toBe(r.length);
    expect(verifies(r.subarray(0, 20))).toBe(true);
    src = r.subarray(12, 16);
    dst = r.subarray(16, 20);
    expect(src.equals(p.subarray(16, 20))).toBe(true);
    expect(dst.equals(p.subarray(12, 16))).toBe(true);
    proto = r[9]!;
    l4 = r.subarray(20);
  } else {
    expect(r.readUInt32BE(0)).toBe(0x6000_0000);
    expect(r.readUInt16BE(4)).toBe(r.length - 40);
    src = r.subarray(8, 24);
    dst = r.subarray(24, 40);
    expect(src.equals(p.subarray(24, 40))).toBe(true);
    expect(dst.equals(p.subarray(8, 24))).toBe(true);
    proto = r[6]!;
    l4 = r.subarray(40);
  }
  if (proto === 6) {
    expect(l4.length).toBe(20);
    expect(l4[12]).toBe(0x50);
    expect(l4[13] === 0x04 || l4[13] === 0x14).toBe(true); // RST or RST+ACK
    expect(verifies(Buffer.concat([pseudo(v, src, dst, 6, 20), l4]))).toBe(true);
  } else if (v === 4) {
    expect(proto).toBe(1);
    expect(r.length).toBeLessThanOrEqual(576);
    expect([l4[0], l4[1]]).toEqual([3, 13]);
    expect(verifies(l4)).toBe(true);
    expect(p.subarray(0, l4.length - 8).equals(l4.subarray(8))).toBe(true); // a prefix of the packet
    const ihl = (p[0]! & 15) * 4;
    expect(l4.length - 8).toBeGreaterThanOrEqual(Math.min(ihl + 8, p.readUInt16BE(2)));
  } else {
    expect(proto).toBe(58);
    expect(r.length).toBeLessThanOrEqual(1280);
    expect([l4[0], l4[1]]).toEqual([1, 1]);
    expect(verifies(Buffer.concat([pseudo(6, src, dst, 58, l4.length), l4]))).toBe(true);
    expect(p.subarray(0, l4.length - 8).equals(l4.subarray(8))).toBe(true);
  }
  // an answer is never answered: no loops between two rejecting ends
  expect(synthReject(r, 0, r.length)).toBeNull();
}

/** Calls synthReject on a window; the same answer with the window alone and poisoned bytes after it. */
function run(buf: Buffer, off: number, len: number): Buffer | null {
  const before = Buffer.from(buf);
  const r = synthReject(buf, off, len);
  expect(buf.equals(before)).toBe(true); // input untouched
  const exact = Buffer.from(buf.subarray(off, off + len));
  const padded = Buffer.concat([Buffer.alloc(3, 0x5a), exact, Buffer.alloc(64, 0xa5)]);
  const r2 = synthReject(padded, 3, len);
  expect(r2 === null ? null : r2.toString("hex")).toBe(r === null ? null : r.toString("hex"));
  if (r) checkAnswer(exact, r);
  return r;
}

const bytes = (max: number) => fc.uint8Array({ maxLength: max, size: "max" }).map((a) => Buffer.from(a));

/** Plausible packets: right version and lengths, random protocol, flags, addresses and payload. */
const plausible = fc
  .record({
    v: fc.constantFrom(4 as const, 6 as const),
    proto: fc.oneof(fc.constantFrom(1, 6, 17, 58, 0, 44, 60, 43, 51), fc.integer({ min: 0, max: 255 })),
    ihlWords: fc.integer({ min: 5, max: 15 }),
    frag: fc.oneof(fc.constant(0), fc.constant(0x4000), fc.integer({ min: 0, max: 0xffff })),
    addrs: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    unicast: fc.boolean(),
    body: bytes(1600),
    tcpFlags: fc.integer({ min: 0, max: 255 }),
    doff: fc.integer({ min: 0, max: 15 }),
    extra: fc.integer({ min: 0, max: 8 }),
  })
  .map((g) => {
    let p: Buffer;
    if (g.v === 4) {
      const hl = g.ihlWords * 4;
      p = Buffer.alloc(hl + g.body.length);
      p[0] = 0x40 | g.ihlWords;
      p.writeUInt16BE(Math.min(p.length, 0xffff), 2);
      p.writeUInt16BE(g.frag, 6);
      p[9] = g.proto;
      Buffer.from(g.addrs).copy(p, 12, 0, 8);
      if (g.unicast) {
        p[12] = 10;
        p[16] = 10;
      }
      g.body.copy(p, hl);
      if (g.proto === 6 && g.body.length >= 20) {
        p[hl + 12] = g.doff << 4;
        p[hl + 13] = g.tcpFlags;
      }
    } else {
      p = Buffer.alloc(40 + g.body.length);
      p[0] = 0x60;
      p.writeUInt16BE(g.body.length, 4);
      p[6] = g.proto;
      Buffer.from(g.addrs).copy(p, 8);
      if (g.unicast) {
        p[8] = 0xfd;
        p[24] = 0xfd;
      }
      g.body.copy(p, 40);
      if (g.proto === 6 && g.body.length >= 20) {
        p[52] = g.doff << 4;
        p[53] = g.tcpFlags;
      }
    }
    return Buffer.concat([p, Buffer.alloc(g.extra, 0xcc)]);
  });

const TCP_SYN_FLAG = 0x02;
const TCP_RST_FLAG = 0x04;

/** A well-formed unicast packet (10/8 or fd00::/8 addresses, no options, not a fragment). */
function packet(g: {
  v: 4 | 6;
  proto: number;
  body: Buffer;
  tcpFlags?: number;
  addrs?: Uint8Array;
  df?: boolean;
}) {
  const addrs = Buffer.from(g.addrs ?? Buffer.alloc(32, 7));
  const hl = g.v === 4 ? 20 : 40;
  const p = Buffer.alloc(hl + g.body.length);
  if (g.v === 4) {
    p[0] = 0x45;
    p.writeUInt16BE(p.length, 2);
    if (g.df) p.writeUInt16BE(0x4000, 6);
    p[9] = g.proto;
    addrs.copy(p, 12, 0, 8);
    p[12] = 10;
    p[16] = 10;
  } else {
    p[0] = 0x60;
    p.writeUInt16BE(g.body.length, 4);
    p[6] = g.proto;
    addrs.copy(p, 8);
    p[8] = 0xfd;
    p[24] = 0xfd;
  }
  g.body.copy(p, hl);
  if (g.proto === 6) {
    p[hl + 12] = 5 << 4;
    p[hl + 13] = g.tcpFlags ?? 0;
  }
  return p;
}

/**
 * Packets synthReject must answer, by kind: TCP segments without RST, UDP, ICMP / ICMPv6
 * queries (not errors), and any other upper-layer protocol (IPv6: not an extension header).
 */
const answerable = fc
  .record({
    v: fc.constantFrom(4 as const, 6 as const),
    kind: fc.constantFrom("tcp", "udp", "icmp", "other"),
    tcpFlags: fc.integer({ min: 0, max: 255 }).map((f) => f & ~TCP_RST_FLAG),
    icmpType: fc.constantFrom(0, 8, 13, 14, 15, 16, 17, 18),
    icmp6Type: fc.integer({ min: 128, max: 255 }),
    other: fc.integer({ min: 0, max: 255 }).filter((x) => ![0, 1, 6, 43, 44, 51, 58, 60].includes(x)),
    addrs: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    df: fc.boolean(),
    body: bytes(600),
  })
  .map((g) => {
    const proto =
      g.kind === "tcp" ? 6 : g.kind === "udp" ? 17 : g.kind === "icmp" ? (g.v === 4 ? 1 : 58) : g.other;
    const min = g.kind === "tcp" ? 20 : g.kind === "udp" || g.kind === "icmp" ? 8 : 0;
    const body = g.body.length >= min ? g.body : Buffer.concat([g.body, Buffer.alloc(min - g.body.length)]);
    if (g.kind === "icmp") body[0] = g.v === 4 ? g.icmpType : g.icmp6Type;
    return packet({ v: g.v, proto, body, tcpFlags: g.tcpFlags, addrs: g.addrs, df: g.df });
  });

describe("synthReject properties", () => {
  it("random bytes at random offsets: never throws; null or a well-formed answer", () => {
    fc.assert(
      fc.property(bytes(300), fc.nat(), fc.nat(), (buf, a, b) => {
        const off = buf.length === 0 ? 0 : a % (buf.length + 1);
        const len = b % (buf.length - off + 1);
        run(buf, off, len);
      }),
      RUNS,
    );
  });

  it("random bytes with an IP version nibble: never throws; null or a well-formed answer", () => {
    fc.assert(
      fc.property(bytes(300), fc.constantFrom(0x45, 0x46, 0x4f, 0x60), (buf, first) => {
        if (buf.length) buf[0] = first;
        if (buf.length >= 4 && first !== 0x60) buf.writeUInt16BE(buf.length, 2);
        if (buf.length >= 40 && first === 0x60) buf.writeUInt16BE(buf.length - 40, 4);
        run(buf, 0, buf.length);
      }),
      RUNS,
    );
  });

  it("plausible packets: never throws; null or a well-formed answer", () => {
    fc.assert(
      fc.property(plausible, (p) => {
        run(p, 0, p.length);
      }),
      RUNS,
    );
  });

  it("answerable packets (unicast, first fragment, TCP without RST, UDP, ICMP queries, other protocols) are always answered", () => {
    // each kind at least once, whatever the seed
    for (const p of [
      packet({ v: 4, proto: 6, tcpFlags: TCP_SYN_FLAG, body: Buffer.alloc(20) }),
      packet({ v: 4, proto: 17, body: Buffer.alloc(8) }),
      packet({ v: 4, proto: 1, body: Buffer.from([8, 0, 0, 0, 0, 1, 0, 1]) }),
      packet({ v: 4, proto: 47, body: Buffer.alloc(0) }),
      packet({ v: 6, proto: 6, tcpFlags: TCP_SYN_FLAG, body: Buffer.alloc(20) }),
      packet({ v: 6, proto: 17, body: Buffer.alloc(8) }),
      packet({ v: 6, proto: 58, body: Buffer.from([128, 0, 0, 0, 0, 1, 0, 1]) }),
    ])
      expect(run(p, 0, p.length), p.toString("hex")).not.toBeNull();
    fc.assert(
      fc.property(answerable, (p) => {
        expect(run(p, 0, p.length)).not.toBeNull();
      }),
      RUNS,
    );
  });

  it("truncating a packet never produces a malformed answer", () => {
    fc.assert(
      fc.property(plausible, fc.nat(), (p, cut) => {
        run(p, 0, cut % (p.length + 1));
      }),
      { numRuns: 1000 },
    );
  });
});
