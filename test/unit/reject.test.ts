/**
 * Synthesized rejects for denied flows (src/ip/reject.ts): every field of the TCP RST
 * and the ICMP / ICMPv6 unreachable answers, checksums verified with an independent
 * reference (a plain RFC 1071 sum over a freshly concatenated pseudo-header + message,
 * which must come out as 0xffff), the cases that must not be answered, and, when tcpdump
 * is installed, tcpdump's own checksum verdicts on the answers written to a pcap file.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { synthReject, synthTooBig } from "../../src/ip/reject.js";

// ------------------------------------------------------------------ reference helpers

/** RFC 1071 one's complement sum of the whole buffer, folded, not complemented. */
function onesSum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) + (i + 1 < b.length ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
/** A message whose checksum field is right sums (with its checksum) to 0xffff. */
const verifies = (b: Buffer) => onesSum(b) === 0xffff;

function pseudo4(src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  const p = Buffer.alloc(12);
  src.copy(p, 0);
  dst.copy(p, 4);
  p[9] = proto;
  p.writeUInt16BE(len, 10);
  return p;
}
function pseudo6(src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  const p = Buffer.alloc(40);
  src.copy(p, 0);
  dst.copy(p, 16);
  p.writeUInt32BE(len, 32);
  p[39] = proto;
  return p;
}

const ip4 = (s: string) => Buffer.from(s.split(".").map(Number));
function ip6(s: string): Buffer {
  const [head, tail] = s.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const words = [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(parseInt(w, 16), i * 2));
  return b;
}

const A4 = "10.77.0.1"; // the local application
const B4 = "10.77.0.2"; // the remote side
const A6 = "fd77::1";
const B6 = "fd77::2";

function v4(
  proto: number,
  l4: Buffer,
  o: { src?: string; dst?: string; options?: Buffer; frag?: number } = {},
) {
  const opt = o.options ?? Buffer.alloc(0);
  const hl = 20 + opt.length;
  const b = Buffer.alloc(hl + l4.length);
  b[0] = 0x40 | (hl / 4);
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(0x1234, 4);
  b.writeUInt16BE(o.frag ?? 0x4000, 6);
  b[8] = 63;
  b[9] = proto;
  ip4(o.src ?? A4).copy(b, 12);
  ip4(o.dst ?? B4).copy(b, 16);
  opt.copy(b, 20);
  b.writeUInt16BE(~onesSum(b.subarray(0, hl)) & 0xffff, 10);
  l4.copy(b, hl);
  return b;
}

/** IPv6 packet; ext: extension headers as [nextHeaderCode, body] where body includes its length byte. */
function v6(proto: number, l4: Buffer, o: { src?: string; dst?: string; ext?: [number, Buffer][] } = {}) {
  const ext = o.ext ?? [];
  const chain: Buffer[] = [];
  const first = ext.length ? ext[0]![0] : proto;
  ext.forEach(([, body], i) => {
    const h = Buffer.from(body);
    h[0] = i + 1 < ext.length ? ext[i + 1]![0] : proto;
    chain.push(h);
  });
  const payload = Buffer.concat([...chain, l4]);
  const b = Buffer.alloc(40 + payload.length);
  b.writeUInt32BE(0x6000_0000, 0);
  b.writeUInt16BE(payload.length, 4);
  b[6] = first;
  b[7] = 64;
  ip6(o.src ?? A6).copy(b, 8);
  ip6(o.dst ?? B6).copy(b, 24);
  payload.copy(b, 40);
  return b;
}

const FIN = 0x01,
  SYN = 0x02,
  RST = 0x04,
  PSH = 0x08,
  ACK = 0x10;

function tcp(o: {
  sport?: number;
  dport?: number;
  seq: number;
  ack?: number;
  flags: number;
  data?: number;
  opts?: number;
}) {
  const optLen = o.opts ?? 0;
  const b = Buffer.alloc(20 + optLen + (o.data ?? 0), 0x61);
  b.writeUInt16BE(o.sport ?? 43210, 0);
  b.writeUInt16BE(o.dport ?? 8080, 2);
  b.writeUInt32BE(o.seq >>> 0, 4);
  b.writeUInt32BE((o.ack ?? 0) >>> 0, 8);
  b[12] = ((20 + optLen) / 4) << 4;
  b[13] = o.flags;
  b.writeUInt16BE(64240, 14);
  b.writeUInt16BE(0xbeef, 16); // checksum of the offending segment is never looked at
  b.writeUInt16BE(0, 18);
  b.fill(1, 20, 20 + optLen); // NOP options
  return b;
}
const udp = (len: number) => {
  const b = Buffer.alloc(8 + len, 0x75);
  b.writeUInt16BE(5353, 0);
  b.writeUInt16BE(53, 2);
  b.writeUInt16BE(8 + len, 4);
  b.writeUInt16BE(0, 6);
  return b;
};
const icmpMsg = (type: number, code = 0, len = 56) => {
  const b = Buffer.alloc(8 + len, 0x69);
  b[0] = type;
  b[1] = code;
  b.writeUInt16BE(0, 2);
  b.writeUInt16BE(~onesSum(b) & 0xffff, 2); // (ICMPv6 would need the pseudo-header; never checked here)
  return b;
};

const reject = (p: Buffer) => synthReject(p, 0, p.length);

// ------------------------------------------------------------------ field checks

function checkIp4Header(r: Buffer, proto: number) {
  expect(r[0]).toBe(0x45); // version 4, no options
  expect(r.readUInt16BE(2)).toBe(r.length);
  expect(r[8]).toBe(64);
  expect(r[9]).toBe(proto);
  expect([...r.subarray(12, 16)]).toEqual([...ip4(B4)]); // from the remote side
  expect([...r.subarray(16, 20)]).toEqual([...ip4(A4)]); // to the application
  expect(r.readUInt16BE(6) & 0x1fff).toBe(0); // not a fragment
  expect(r.readUInt16BE(6) & 0x2000).toBe(0); // no more fragments
  expect(verifies(r.subarray(0, 20))).toBe(true);
}

function checkIp6Header(r: Buffer, proto: number) {
  expect(r.readUInt32BE(0)).toBe(0x6000_0000);
  expect(r.readUInt16BE(4)).toBe(r.length - 40);
  expect(r[6]).toBe(proto);
  expect(r[7]).toBe(64);
  expect(r.subarray(8, 24).equals(ip6(B6))).toBe(true);
  expect(r.subarray(24, 40).equals(ip6(A6))).toBe(true);
}

function checkTcp4(r: Buffer) {
  checkIp4Header(r, 6);
  expect(r.length).toBe(40);
  const t = r.subarray(20);
  expect(verifies(Buffer.concat([pseudo4(ip4(B4), ip4(A4), 6, 20), t]))).toBe(true);
  return t;
}
function checkTcp6(r: Buffer) {
  checkIp6Header(r, 6);
  expect(r.length).toBe(60);
  const t = r.subarray(40);
  expect(verifies(Buffer.concat([pseudo6(ip6(B6), ip6(A6), 6, 20), t]))).toBe(true);
  return t;
}
function checkRstFields(t: Buffer, want: { seq: number; ack: number; flags: number }) {
  expect(t.readUInt16BE(0)).toBe(8080); // from the port the application called
  expect(t.readUInt16BE(2)).toBe(43210); // to the application's port
  expect(t.readUInt32BE(4)).toBe(want.seq >>> 0);
  expect(t.readUInt32BE(8)).toBe(want.ack >>> 0);
  expect(t[12]).toBe(0x50); // data offset 5, no options
  expect(t[13]).toBe(want.flags);
  expect(t.readUInt16BE(14)).toBe(0); // window
  expect(t.readUInt16BE(18)).toBe(0); // urgent pointer
}

// ------------------------------------------------------------------ TCP

describe("synthReject: TCP RST", () => {
  it("answers a SYN (no ACK) with RST+ACK, seq 0, ack = ISN + 1 (IPv4)", () => {
    const r = reject(v4(6, tcp({ seq: 1_000_000, flags: SYN, opts: 20 })))!;
    expect(r).not.toBeNull();
    checkRstFields(checkTcp4(r), { seq: 0, ack: 1_000_001, flags: RST | ACK });
    expect(r.readUInt16BE(6)).toBe(0x4000); // DF, id 0
    expect(r.readUInt16BE(4)).toBe(0);
  });

  it("answers a segment with ACK with a bare RST whose seq is that ACK (IPv4, payload)", () => {
    const r = reject(v4(6, tcp({ seq: 77, ack: 0xdeadbeef, flags: PSH | ACK, data: 100 })))!;
    checkRstFields(checkTcp4(r), { seq: 0xdeadbeef, ack: 0, flags: RST });
  });

  it("counts payload, SYN and FIN in the ack of a RST+ACK, modulo 2^32", () => {
    const r1 = reject(v4(6, tcp({ seq: 5000, flags: FIN, data: 10 })))!;
    checkRstFields(checkTcp4(r1), { seq: 0, ack: 5011, flags: RST | ACK });
    const r2 = reject(v4(6, tcp({ seq: 0xffffffff, flags: SYN | FIN, data: 3 })))!;
    checkRstFields(checkTcp4(r2), { seq: 0, ack: 4, flags: RST | ACK }); // 0xffffffff + 5 wraps
    const r3 = reject(v4(6, tcp({ seq: 42, flags: 0 })))!; // no flags, no payload
    checkRstFields(checkTcp4(r3), { seq: 0, ack: 42, flags: RST | ACK });
  });

  it("skips IPv4 options and TCP options to find ports and payload", () => {
    const opts = Buffer.from([0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00]); // router alert, NOPs, EOL
    const p = v4(6, tcp({ seq: 9, flags: SYN, opts: 12, data: 7 }), { options: opts });
    expect(p[0]).toBe(0x47);
    const r = reject(p)!;
    checkRstFields(checkTcp4(r), { seq: 0, ack: 9 + 7 + 1, flags: RST | ACK });
  });

  it("never answers a RST (with or without ACK)", () => {
    expect(reject(v4(6, tcp({ seq: 1, flags: RST })))).toBeNull();
    expect(reject(v4(6, tcp({ seq: 1, ack: 2, flags: RST | ACK })))).toBeNull();
    expect(reject(v6(6, tcp({ seq: 1, flags: RST })))).toBeNull();
  });

  it("answers IPv6 SYN and ACK segments, pseudo-header checksum", () => {
    const r = reject(v6(6, tcp({ seq: 0x7fffffff, flags: SYN })))!;
    checkRstFields(checkTcp6(r), { seq: 0, ack: 0x80000000, flags: RST | ACK });
    const r2 = reject(v6(6, tcp({ seq: 1, ack: 123456, flags: ACK, data: 1000 })))!;
    checkRstFields(checkTcp6(r2), { seq: 123456, ack: 0, flags: RST });
  });

  it("walks IPv6 extension headers (hop-by-hop, destination options, first fragment)", () => {
    const hbh = Buffer.from([0, 0, 1, 4, 0, 0, 0, 0]); // next, len 0, PadN
    const dst = Buffer.alloc(16);
    dst[1] = 1; // 16 bytes
    dst[2] = 1;
    dst[3] = 12;
    const frag = Buffer.from([0, 0, 0x00, 0x01, 0, 0, 0, 7]); // offset 0, M=1
    const p = v6(6, tcp({ seq: 10, flags: SYN }), {
      ext: [
        [0, hbh],
        [60, dst],
        [44, frag],
      ],
    });
    checkRstFields(checkTcp6(reject(p)!), { seq: 0, ack: 11, flags: RST | ACK });
  });

  it("returns null for a TCP header that does not fit", () => {
    const short = v4(6, tcp({ seq: 1, flags: SYN }).subarray(0, 19));
    expect(reject(short)).toBeNull();
    const t = tcp({ seq: 1, flags: SYN });
    t[12] = 0xf0; // data offset 60 > 20 bytes present
    expect(reject(v4(6, t))).toBeNull();
    t[12] = 0x40; // data offset 16 < 20
    expect(reject(v4(6, t))).toBeNull();
  });
});

// ------------------------------------------------------------------ ICMP

describe("synthReject: ICMP unreachable, administratively prohibited", () => {
  function checkIcmp4(r: Buffer, p: Buffer, quoteLen: number) {
    checkIp4Header(r, 1);
    expect(r[1]).toBe(0xc0);
    expect(r.length).toBe(28 + quoteLen);
    const m = r.subarray(20);
    expect(m[0]).toBe(3);
    expect(m[1]).toBe(13);
    expect(m.readUInt32BE(4)).toBe(0);
    expect(m.subarray(8).equals(p.subarray(0, quoteLen))).toBe(true);
    expect(verifies(m)).toBe(true);
  }
  function checkIcmp6(r: Buffer, p: Buffer, quoteLen: number) {
    checkIp6Header(r, 58);
    expect(r.length).toBe(48 + quoteLen);
    const m = r.subarray(40);
    expect(m[0]).toBe(1);
    expect(m[1]).toBe(1);
    expect(m.readUInt32BE(4)).toBe(0);
    expect(m.subarray(8).equals(p.subarray(0, quoteLen))).toBe(true);
    expect(verifies(Buffer.concat([pseudo6(ip6(B6), ip6(A6), 58, m.length), m]))).toBe(true);
  }

  it("IPv4 UDP: quotes the whole small datagram", () => {
    const p = v4(17, udp(30));
    checkIcmp4(reject(p)!, p, p.length);
  });

  it("IPv4: quotes at most 576 - 28 bytes of a large datagram (RFC 1812), at least header + 8", () => {
    const p = v4(17, udp(1400));
    const r = reject(p)!;
    expect(r.length).toBe(576);
    checkIcmp4(r, p, 548);
    const opts = Buffer.alloc(40, 1); // the largest IPv4 header, 60 bytes
    const p2 = v4(17, udp(0), { options: opts });
    checkIcmp4(reject(p2)!, p2, 68);
  });

  it("IPv4 ICMP echo and other protocols get an unreachable; ICMP errors never do", () => {
    const echo = v4(1, icmpMsg(8));
    checkIcmp4(reject(echo)!, echo, echo.length);
    const gre = v4(47, Buffer.alloc(24, 7));
    checkIcmp4(reject(gre)!, gre, gre.length);
    for (const t of [3, 4, 5, 11, 12]) expect(reject(v4(1, icmpMsg(t, 1))), `type ${t}`).toBeNull();
    expect(reject(v4(1, Buffer.alloc(0)))).toBeNull(); // no ICMP type byte: cannot tell
  });

  it("IPv6 UDP: quotes the whole small datagram, at most 1280 - 48 bytes of a large one", () => {
    const p = v6(17, udp(100));
    checkIcmp6(reject(p)!, p, p.length);
    const big = v6(17, udp(1452));
    const r = reject(big)!;
    expect(r.length).toBe(1280);
    checkIcmp6(r, big, 1232);
  });

  it("ICMPv6 echo gets an unreachable; ICMPv6 errors (types < 128) never do", () => {
    const echo = v6(58, icmpMsg(128));
    checkIcmp6(reject(echo)!, echo, echo.length);
    for (const t of [1, 2, 3, 4, 100, 127]) expect(reject(v6(58, icmpMsg(t))), `type ${t}`).toBeNull();
    expect(reject(v6(58, Buffer.alloc(0)))).toBeNull();
    // an error behind an extension header is still an error
    expect(reject(v6(58, icmpMsg(1), { ext: [[60, Buffer.from([0, 0, 1, 4, 0, 0, 0, 0])]] }))).toBeNull();
  });
});

// ------------------------------------------------------------------ never answered

describe("synthReject: nothing to answer", () => {
  it("multicast, broadcast, unspecified sources and multicast/broadcast destinations", () => {
    const l4 = udp(8);
    for (const src of ["224.0.0.251", "239.1.2.3", "255.255.255.255", "0.0.0.0", "240.0.0.1"])
      expect(reject(v4(17, l4, { src })), src).toBeNull();
    for (const dst of ["224.0.0.251", "239.255.255.250", "255.255.255.255"])
      expect(reject(v4(17, l4, { dst })), dst).toBeNull();
    expect(reject(v4(6, tcp({ seq: 1, flags: SYN }), { dst: "224.0.0.1" }))).toBeNull();
    for (const src of ["::", "ff02::1"]) expect(reject(v6(17, l4, { src })), src).toBeNull();
    for (const dst of ["ff02::1", "ff05::1:3"]) expect(reject(v6(17, l4, { dst })), dst).toBeNull();
    // control: the same packets between unicast hosts are answered
    expect(reject(v4(17, l4))).not.toBeNull();
    expect(reject(v6(17, l4))).not.toBeNull();
  });

  it("non-first fragments (IPv4 offset, IPv6 fragment header offset)", () => {
    expect(reject(v4(17, udp(16), { frag: 0x0003 }))).toBeNull(); // offset 24 bytes
    expect(reject(v4(6, tcp({ seq: 1, flags: SYN }), { frag: 0x2001 }))).toBeNull();
    expect(reject(v4(17, udp(16), { frag: 0x2000 }))).not.toBeNull(); // first fragment, MF
    const later = Buffer.from([0, 0, 0x00, 0x08, 0, 0, 0, 7]); // offset 1 (8 bytes)
    expect(reject(v6(17, udp(16), { ext: [[44, later]] }))).toBeNull();
  });

  it("malformed packets", () => {
    const p = v4(17, udp(16));
    expect(reject(Buffer.alloc(0))).toBeNull();
    expect(synthReject(p, 0, 19)).toBeNull(); // shorter than a header
    expect(synthReject(p, 0, p.length - 1)).toBeNull(); // total length beyond the bytes
    const bad = Buffer.from(p);
    bad[0] = 0x44; // IHL 16 bytes
    expect(reject(bad)).toBeNull();
    bad[0] = 0x55; // version 5
    expect(reject(bad)).toBeNull();
    const q = v6(17, udp(16));
    expect(synthReject(q, 0, 39)).toBeNull();
    expect(synthReject(q, 0, q.length - 1)).toBeNull();
    const loop = v6(17, udp(16), {
      ext: Array.from({ length: 9 }, () => [60, Buffer.alloc(8)] as [number, Buffer]),
    });
    expect(reject(loop)).toBeNull(); // more extension headers than any real packet
    const cut = v6(17, Buffer.alloc(0), { ext: [[0, Buffer.from([0, 5, 0, 0, 0, 0, 0, 0])]] }); // claims 48 bytes
    expect(reject(cut)).toBeNull();
    expect(synthReject(p, -1, 10)).toBeNull();
    expect(synthReject(p, 0, p.length + 1)).toBeNull();
    expect(synthReject(p, 1.5, 10)).toBeNull();
  });

  it("reads the packet at an offset and ignores bytes after its own length", () => {
    for (const p of [
      v4(6, tcp({ seq: 3, flags: SYN })),
      v4(17, udp(40)),
      v6(17, udp(40)),
      v6(6, tcp({ seq: 3, flags: SYN })),
    ]) {
      const framed = Buffer.concat([Buffer.alloc(13, 0xee), p, Buffer.alloc(9, 0xdd)]);
      const r = synthReject(framed, 13, p.length + 9)!;
      expect(r).not.toBeNull();
      expect(r.equals(reject(p)!)).toBe(true);
    }
  });
});

// ------------------------------------------------------------------ cross-check with tcpdump

function tcpdumpPath(): string | null {
  for (const p of ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"]) if (fs.existsSync(p)) return p;
  return null;
}

describe.skipIf(!tcpdumpPath())("synthReject: tcpdump agrees with the checksums", () => {
  it("tcpdump -vv reports every checksum correct", () => {
    const pkts = [
      reject(v4(6, tcp({ seq: 1_000_000, flags: SYN })))!,
      reject(v4(6, tcp({ seq: 5, ack: 0x12345678, flags: ACK, data: 33 })))!,
      reject(v6(6, tcp({ seq: 9, flags: SYN })))!,
      reject(v4(17, udp(1000)))!,
      reject(v6(17, udp(333)))!,
      reject(v4(1, icmpMsg(8)))!,
    ];
    // control: tcpdump does flag a broken checksum in this setup
    const broken = Buffer.from(pkts[5]!);
    broken[22] ^= 0x01;
    pkts.push(broken);
    // pcap, LINKTYPE_RAW (101): raw IPv4/IPv6 packets
    const parts: Buffer[] = [];
    const gh = Buffer.alloc(24);
    gh.writeUInt32LE(0xa1b2c3d4, 0);
    gh.writeUInt16LE(2, 4);
    gh.writeUInt16LE(4, 6);
    gh.writeUInt32LE(65535, 16);
    gh.writeUInt32LE(101, 20);
    parts.push(gh);
    for (const p of pkts) {
      const rh = Buffer.alloc(16);
      rh.writeUInt32LE(p.length, 8);
      rh.writeUInt32LE(p.length, 12);
      parts.push(rh, p);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-reject-"));
    const file = path.join(dir, "rejects.pcap");
    fs.writeFileSync(file, Buffer.concat(parts));
    try {
      const out = execFileSync(tcpdumpPath()!, ["-n", "-vv", "-r", file], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
      const lines = out;
      // tcpdump says "bad cksum" (IPv4 header), "incorrect" (TCP), "wrong icmp cksum", "bad icmp6 cksum"
      const [good, last] = [
        lines.slice(0, lines.lastIndexOf("\n00:00")),
        lines.slice(lines.lastIndexOf("\n00:00")),
      ];
      expect(good).not.toMatch(/bad cksum|incorrect|wrong|bad icmp/i);
      expect(last).toMatch(/wrong icmp cksum/);
      // TCP: "cksum 0x.... (correct)" for each of the three RSTs
      expect((lines.match(/cksum 0x[0-9a-f]+ \(correct\)/g) ?? []).length).toBe(3);
      expect(lines).toMatch(/Flags \[R\.\], cksum 0x[0-9a-f]+ \(correct\), seq 0, ack 1000001/);
      expect(lines).toMatch(/Flags \[R\], cksum 0x[0-9a-f]+ \(correct\), seq 305419896/);
      expect(lines).toMatch(/ICMP host 10\.77\.0\.2 unreachable - admin prohibited/);
      expect(lines).toMatch(/destination unreachable.*unreachable prohibited/);
      expect(lines).toMatch(/icmp6 sum ok/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("synthTooBig: the path MTU of a relayed tunnel (ICMP frag needed / ICMPv6 packet too big)", () => {
  it("IPv4 TCP: type 3 code 4 from the destination, next-hop MTU in bytes 6-7, the packet quoted", () => {
    const pkt = v4(6, tcp({ seq: 1, ack: 2, flags: ACK | PSH, data: 1360 }));
    const r = synthTooBig(pkt, 0, pkt.length, 1397)!;
    expect(r.subarray(12, 16).equals(ip4(B4))).toBe(true);
    expect(r.subarray(16, 20).equals(ip4(A4))).toBe(true);
    expect([r[20], r[21], r.readUInt16BE(26)]).toEqual([3, 4, 1397]);
    expect(verifies(r.subarray(0, 20))).toBe(true);
    expect(verifies(r.subarray(20))).toBe(true);
    expect(r.subarray(28).equals(pkt.subarray(0, r.length - 28))).toBe(true);
  });

  it("IPv6: type 2 code 0, MTU in bytes 4-7, checksum over the pseudo-header, at most 1280 bytes", () => {
    const pkt = v6(17, udp(1392));
    const r = synthTooBig(pkt, 0, pkt.length, 1397)!;
    expect(r.length).toBe(1280);
    expect([r[6], r[40], r[41], r.readUInt32BE(44)]).toEqual([58, 2, 0, 1397]);
    expect(r.subarray(8, 24).equals(ip6(B6))).toBe(true);
    const icmp = r.subarray(40);
    expect(verifies(Buffer.concat([pseudo6(ip6(B6), ip6(A6), 58, icmp.length), icmp]))).toBe(true);
  });

  it("nothing for an ICMP error, a later fragment or a malformed packet", () => {
    const err = Buffer.alloc(8 + 28);
    err[0] = 3; // destination unreachable
    expect(synthTooBig(v4(1, err), 0, 20 + err.length, 1397)).toBeNull();
    const later = v4(17, udp(1392), { frag: 0x2000 | 100 });
    expect(synthTooBig(later, 0, later.length, 1397)).toBeNull();
    expect(synthTooBig(Buffer.alloc(10), 0, 10, 1397)).toBeNull();
  });
});
