/**
 * Minimal IPv4/IPv6 header access for the data path: version, addresses,
 * protocol. No allocation on the v4 path; v6 addresses are read as two
 * 64-bit halves split into four u32 words by the caller where needed.
 *
 * IPv4 header (RFC 791): version/IHL at 0, total length at 2, protocol at 9,
 * source at 12, destination at 16. IPv6 (RFC 8200): payload length at 4, next
 * header at 6, source at 8..24, destination at 24..40.
 */
import { isIPv6 } from "node:net";

export const IPV4_HEADER_MIN = 20;
export const IPV6_HEADER = 40;

/** 4 or 6 when the bytes hold a plausible IP header of that version, else 0. */
export function ipVersion(buf: Buffer, off: number, len: number): 0 | 4 | 6 {
  if (len < 1) return 0;
  const v = buf[off]! >> 4;
  if (v === 4) {
    if (len < IPV4_HEADER_MIN) return 0;
    const ihl = (buf[off]! & 0x0f) * 4;
    if (ihl < IPV4_HEADER_MIN || ihl > len) return 0;
    if (buf.readUInt16BE(off + 2) !== len) return 0;
    return 4;
  }
  if (v === 6) {
    if (len < IPV6_HEADER) return 0;
    if (buf.readUInt16BE(off + 4) + IPV6_HEADER !== len) return 0;
    return 6;
  }
  return 0;
}

export function v4Src(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + 12);
}
export function v4Dst(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + 16);
}
/** Offset of the IPv6 source (8) or destination (24) address. */
export const V6_SRC = 8;
export const V6_DST = 24;

export function ipv4ToNumber(ip: string): number {
  const p = ip.split(".");
  return ((+p[0]! << 24) | (+p[1]! << 16) | (+p[2]! << 8) | +p[3]!) >>> 0;
}

export function numberToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Expand an IPv6 address string to its 16 bytes. Returns null when malformed. */
export function ipv6ToBytes(ip: string): Buffer | null {
  let s = ip;
  const pct = s.indexOf("%");
  if (pct >= 0) s = s.slice(0, pct);
  // strict syntax first (embedded IPv4 tail, "::" standing for at least one group)
  if (!isIPv6(s)) return null;
  const out = Buffer.alloc(16);
  // embedded IPv4 tail
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(":");
  if (s.indexOf(".", lastColon) >= 0) {
    const v4 = s.slice(lastColon + 1).split(".");
    if (v4.length !== 4) return null;
    const n = ipv4ToNumber(v4.join("."));
    tail = [(n >>> 16) & 0xffff, n & 0xffff];
    s = s.slice(0, lastColon + 1) + "0:0";
    tail = tail.length ? tail : [];
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const back = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const groups = halves.length === 2 ? 8 - head.length - back.length : 0;
  if (groups < 0 || (halves.length === 1 && head.length !== 8)) return null;
  const all = [...head, ...Array<string>(groups).fill("0"), ...back];
  if (all.length !== 8) return null;
  for (let i = 0; i < 8; i++) {
    const g = all[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    out.writeUInt16BE(parseInt(g, 16), i * 2);
  }
  if (tail.length === 2) {
    out.writeUInt16BE(tail[0]!, 12);
    out.writeUInt16BE(tail[1]!, 14);
  }
  return out;
}

/** Canonical-ish text of 16 IPv6 bytes (RFC 5952 zero compression). */
export function bytesToIpv6(b: Buffer, off = 0): string {
  const g: string[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(off + i * 2).toString(16));
  // longest run of zeros
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] === "0") {
      let j = i;
      while (j < 8 && g[j] === "0") j++;
      if (j - i > bestLen) {
        best = i;
        bestLen = j - i;
      }
      i = j;
    } else i++;
  }
  if (best < 0) return g.join(":");
  return `${g.slice(0, best).join(":")}::${g.slice(best + bestLen).join(":")}`;
}

export function ipProtocol(buf: Buffer, off: number, version: 4 | 6): number {
  return version === 4 ? buf[off + 9]! : buf[off + 6]!;
}
