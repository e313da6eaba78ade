/**
 * Fail-fast answers for denied flows: given an inner packet this host SENT (source = a
 * local application, destination = the remote side), build the packet the local kernel
 * should receive as if the remote side had refused it. The daemon writes the result into
 * its TUN, so a denied `connect()` fails at once ("Connection refused") instead of
 * timing out. Pure: bytes in, bytes out, no I/O, never throws.
 *
 *   TCP (not itself a RST)   -> TCP RST from the remote port (RFC 9293 section 3.10.7.1,
 *                               "reset generation" for a segment arriving at a CLOSED port):
 *                                 offending ACK set:  <SEQ=SEG.ACK><CTL=RST>
 *                                 no ACK:             <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
 *                               where SEG.LEN = payload + SYN + FIN. Linux accepts the
 *                               first form only with SEQ = RCV.NXT (RFC 5961), which is
 *                               exactly the ACK the application's own segment carried.
 *   anything else, IPv4      -> ICMP destination unreachable (type 3), code 13
 *                               "communication administratively prohibited" (RFC 1812
 *                               section 5.2.7.1), quoting the original IP header and as
 *                               much of the datagram as fits in 576 bytes (RFC 1812 4.3.2.3;
 *                               never less than the header + 8 bytes when the packet has them).
 *   anything else, IPv6      -> ICMPv6 destination unreachable (type 1), code 1
 *                               "communication with destination administratively prohibited"
 *                               (RFC 4443 section 3.1), quoting as much as fits in 1280 bytes.
 *
 * null (nothing to send), following RFC 1122 3.2.2 / RFC 1812 4.3.2.7 / RFC 4443 2.4(e):
 *   - the packet is not a well-formed IPv4/IPv6 packet (header, lengths, IPv6 extension
 *     header chain, a TCP header that does not fit);
 *   - it is a TCP RST (never answer a reset);
 *   - it is an ICMP error (v4 types 3, 4, 5, 11, 12) or an ICMPv6 error (types < 128);
 *   - it is a non-first fragment (no transport header to answer);
 *   - its source is not one host: IPv4 0.0.0.0/8, 224.0.0.0/4 (multicast), 240.0.0.0/4 and
 *     255.255.255.255 (broadcast); IPv6 :: and ff00::/8 — or its destination is multicast
 *     or broadcast (IPv4 224.0.0.0/4 and 255.255.255.255, IPv6 ff00::/8).
 *
 * The answer's IP header has no options, TTL / hop limit 64, IPv4 ID 0 with DF set for
 * the RST; every checksum is filled in (IPv4 header, TCP and ICMPv6 over their
 * pseudo-headers, ICMP over its message).
 *
 * Layouts written here (offsets from the start of the answer):
 *
 *   IPv4 header (20)         0 ver/ihl=0x45  1 tos  2 total len  4 id  6 flags/frag
 *                            8 ttl  9 proto  10 checksum  12 src  16 dst
 *   IPv6 header (40)         0 ver/tc/flow=0x60000000  4 payload len  6 next hdr
 *                            7 hop limit  8 src (16)  24 dst (16)
 *   TCP header (20)          0 sport  2 dport  4 seq  8 ack  12 data offset=0x50
 *                            13 flags  14 window=0  16 checksum  18 urgent=0
 *   ICMP / ICMPv6 error (8)  0 type  1 code  2 checksum  4 unused=0  8 quoted packet
 */
import { walkV6, type V6Upper } from "./ip.js";
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

export const ICMP_DEST_UNREACH = 3;
/** RFC 1812: communication administratively prohibited */
export const ICMP_CODE_ADMIN_PROHIBITED = 13;
export const ICMPV6_DEST_UNREACH = 1;
/** RFC 4443: communication with destination administratively prohibited */
export const ICMPV6_CODE_ADMIN_PROHIBITED = 1;
/** RFC 1191: fragmentation needed and DF set (next-hop MTU in bytes 6-7) */
export const ICMP_CODE_FRAG_NEEDED = 4;
/** RFC 4443 3.2: packet too big (MTU in bytes 4-7) */
export const ICMPV6_PACKET_TOO_BIG = 2;

/** IPv4 ICMP error types that must never be answered with another error */
const ICMP_ERROR_TYPES = new Set([3, 4, 5, 11, 12]);

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

const IP4_HDR = 20;
const IP6_HDR = 40;
const TCP_HDR = 20;
const ICMP_HDR = 8;
/** the largest IPv4 ICMP error: 576 (RFC 1812 4.3.2.3) */
export const ICMP4_MAX_BYTES = 576;
/** the largest ICMPv6 error: the IPv6 minimum MTU, 1280 (RFC 4443 2.4(c)) */
export const ICMP6_MAX_BYTES = 1280;
const REPLY_TTL = 64;

/** One's complement sum of bytes [off, off+len) added to `sum` (not folded). */
export function sumWords(buf: Buffer, off: number, len: number, sum = 0): number {
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  return sum;
}

/** Fold a 32-bit+ one's complement sum to 16 bits and complement it (RFC 1071). */
export function foldChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** scratch of the IPv6 extension header walk (single-threaded) */
const v6w: V6Upper = { proto: 0, l4: 0, frag: 0, fragId: 0 };

/** Parsed facts about the offending packet; null from parse() when malformed. */
interface Offending {
  version: 4 | 6;
  /** the packet's own length (IPv4 total length / 40 + IPv6 payload length), <= len */
  pktLen: number;
  /** upper-layer protocol and its offset from the packet start (-1 when not reached) */
  proto: number;
  l4: number;
}

function parse(pkt: Buffer, off: number, len: number): Offending | null {
  if (len < 1) return null;
  const v = pkt[off]! >> 4;
  if (v === 4) {
    if (len < IP4_HDR) return null;
    const ihl = (pkt[off]! & 0x0f) * 4;
    const total = pkt.readUInt16BE(off + 2);
    if (ihl < IP4_HDR || total < ihl || total > len) return null;
    const src0 = pkt[off + 12]!;
    const dst0 = pkt[off + 16]!;
    if (src0 === 0 || src0 >= 224) return null; // this-network, multicast, reserved, broadcast
    if ((dst0 >= 224 && dst0 < 240) || pkt.readUInt32BE(off + 16) === 0xffffffff) return null;
    const fragOff = pkt.readUInt16BE(off + 6) & 0x1fff;
    if (fragOff !== 0) return null; // a later fragment: no transport header
    return { version: 4, pktLen: total, proto: pkt[off + 9]!, l4: ihl };
  }
  if (v === 6) {
    if (len < IP6_HDR) return null;
    const total = IP6_HDR + pkt.readUInt16BE(off + 4);
    if (total > len) return null;
    if (pkt[off + 8]! === 0xff || pkt[off + 24]! === 0xff) return null; // multicast source or destination
    let zero = true;
    for (let i = 8; i < 24 && zero; i++) zero = pkt[off + i]! === 0;
    if (zero) return null; // unspecified source
    // the upper-layer protocol after the extension headers; a later fragment has none
    if (!walkV6(pkt, off, off + total, v6w) || v6w.frag === 2) return null;
    return { version: 6, pktLen: total, proto: v6w.proto, l4: v6w.l4 - off };
  }
  return null;
}

/**
 * The packet the local kernel should receive to fail the flow of `pkt[off, off+len)`
 * at once, or null when nothing may be answered (see the file comment). Allocates the
 * answer; meant for denied flows, not for every packet.
 */
export function synthReject(pkt: Buffer, off: number, len: number): Buffer | null {
  if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > pkt.length)
    return null;
  const o = parse(pkt, off, len);
  if (!o) return null;
  if (o.proto === IPPROTO_TCP) return tcpReset(pkt, off, o);
  const ptype = o.l4 < o.pktLen ? pkt[off + o.l4]! : -1; // ICMP type byte, if present
  if (o.version === 4) {
    if (o.proto === IPPROTO_ICMP && (ptype < 0 || ICMP_ERROR_TYPES.has(ptype))) return null;
    return icmp4Unreachable(pkt, off, o);
  }
  if (o.proto === IPPROTO_ICMPV6 && ptype < 128) return null; // an error (or truncated)
  return icmp6Unreachable(pkt, off, o);
}

/** Writes the answer's IP header (addresses swapped) at 0; returns the transport offset. */
function writeIpHeader(out: Buffer, pkt: Buffer, off: number, v: 4 | 6, proto: number, tos: number): number {
  if (v === 4) {
    out[0] = 0x45;
    out[1] = tos;
    out.writeUInt16BE(out.length, 2);
    out.writeUInt16BE(0, 4); // id
    out.writeUInt16BE(proto === IPPROTO_TCP ? 0x4000 : 0, 6); // DF for the RST
    out[8] = REPLY_TTL;
    out[9] = proto;
    pkt.copy(out, 12, off + 16, off + 20); // src = the offending destination
    pkt.copy(out, 16, off + 12, off + 16); // dst = the offending source
    out.writeUInt16BE(foldChecksum(sumWords(out, 0, IP4_HDR)), 10);
    return IP4_HDR;
  }
  out.writeUInt32BE(0x60000000, 0);
  out.writeUInt16BE(out.length - IP6_HDR, 4);
  out[6] = proto;
  out[7] = REPLY_TTL;
  pkt.copy(out, 8, off + 24, off + 40);
  pkt.copy(out, 24, off + 8, off + 24);
  return IP6_HDR;
}

/** Pseudo-header sum of the answer in `out` (addresses already written). */
function pseudoSum(out: Buffer, v: 4 | 6, proto: number, l4len: number): number {
  return v === 4 ? sumWords(out, 12, 8, proto + l4len) : sumWords(out, 8, 32, proto + l4len);
}

function tcpReset(pkt: Buffer, off: number, o: Offending): Buffer | null {
  const t = off + o.l4;
  const segLen = o.pktLen - o.l4;
  if (segLen < TCP_HDR) return null;
  const doff = (pkt[t + 12]! >> 4) * 4;
  if (doff < TCP_HDR || doff > segLen) return null;
  const flags = pkt[t + 13]!;
  if (flags & TCP_RST) return null;
  const hl = o.version === 4 ? IP4_HDR : IP6_HDR;
  const out = Buffer.alloc(hl + TCP_HDR);
  writeIpHeader(out, pkt, off, o.version, IPPROTO_TCP, 0);
  pkt.copy(out, hl, t + 2, t + 4); // sport = the offending dport
  pkt.copy(out, hl + 2, t, t + 2);
  if (flags & TCP_ACK) {
    pkt.copy(out, hl + 4, t + 8, t + 12); // seq = SEG.ACK, ack 0
    out[hl + 13] = TCP_RST;
  } else {
    const segData = segLen - doff + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0);
    out.writeUInt32BE((pkt.readUInt32BE(t + 4) + segData) >>> 0, hl + 8); // seq 0, ack = SEG.SEQ + SEG.LEN
    out[hl + 13] = TCP_RST | TCP_ACK;
  }
  out[hl + 12] = (TCP_HDR / 4) << 4;
  const sum = pseudoSum(out, o.version, IPPROTO_TCP, TCP_HDR);
  out.writeUInt16BE(foldChecksum(sumWords(out, hl, TCP_HDR, sum)), hl + 16);
  return out;
}

/**
 * "Packet too big" for `pkt[off, off+len)`, a packet this host sent that the path cannot
 * carry (a relayed tunnel path, src/tunnel/inside.ts): ICMP destination unreachable code 4
 * "fragmentation needed" with next-hop MTU `mtu` (RFC 1191) for IPv4, ICMPv6 type 2
 * "packet too big" with MTU `mtu` (RFC 4443 3.2) for IPv6, from the packet's destination,
 * so the local kernel lowers its path MTU towards it and TCP its segment size. Null when
 * nothing may be answered (as synthReject: malformed, multicast, an ICMP error, a later
 * fragment).
 */
export function synthTooBig(pkt: Buffer, off: number, len: number, mtu: number): Buffer | null {
  if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > pkt.length)
    return null;
  const o = parse(pkt, off, len);
  if (!o) return null;
  const ptype = o.l4 < o.pktLen ? pkt[off + o.l4]! : -1;
  if (o.version === 4) {
    if (o.proto === IPPROTO_ICMP && (ptype < 0 || ICMP_ERROR_TYPES.has(ptype))) return null;
    return icmp4Unreachable(pkt, off, o, ICMP_CODE_FRAG_NEEDED, mtu & 0xffff);
  }
  if (o.proto === IPPROTO_ICMPV6 && ptype < 128) return null;
  return icmp6Unreachable(pkt, off, o, ICMPV6_PACKET_TOO_BIG, 0, mtu >>> 0);
}

function icmp4Unreachable(
  pkt: Buffer,
  off: number,
  o: Offending,
  code = ICMP_CODE_ADMIN_PROHIBITED,
  mtu = 0,
): Buffer {
  // 548 bytes of room always hold the minimum quote (an IP header of at most 60 + 8)
  const quote = Math.min(o.pktLen, ICMP4_MAX_BYTES - IP4_HDR - ICMP_HDR);
  const out = Buffer.alloc(IP4_HDR + ICMP_HDR + quote);
  writeIpHeader(out, pkt, off, 4, IPPROTO_ICMP, 0xc0); // precedence "internetwork control", as Linux
  out[IP4_HDR] = ICMP_DEST_UNREACH;
  out[IP4_HDR + 1] = code;
  out.writeUInt16BE(mtu, IP4_HDR + 6); // next-hop MTU (code 4), else unused (0)
  pkt.copy(out, IP4_HDR + ICMP_HDR, off, off + quote);
  out.writeUInt16BE(foldChecksum(sumWords(out, IP4_HDR, ICMP_HDR + quote)), IP4_HDR + 2);
  return out;
}

function icmp6Unreachable(
  pkt: Buffer,
  off: number,
  o: Offending,
  type = ICMPV6_DEST_UNREACH,
  code = ICMPV6_CODE_ADMIN_PROHIBITED,
  mtu = 0,
): Buffer {
  const quote = Math.min(o.pktLen, ICMP6_MAX_BYTES - IP6_HDR - ICMP_HDR);
  const out = Buffer.alloc(IP6_HDR + ICMP_HDR + quote);
  writeIpHeader(out, pkt, off, 6, IPPROTO_ICMPV6, 0);
  out[IP6_HDR] = type;
  out[IP6_HDR + 1] = code;
  out.writeUInt32BE(mtu, IP6_HDR + 4); // MTU (packet too big), else unused (0)
  pkt.copy(out, IP6_HDR + ICMP_HDR, off, off + quote);
  const sum = pseudoSum(out, 6, IPPROTO_ICMPV6, ICMP_HDR + quote);
  out.writeUInt16BE(foldChecksum(sumWords(out, IP6_HDR, ICMP_HDR + quote, sum)), IP6_HDR + 2);
  return out;
}
