/**
 * Minimal IPv4/IPv6 header access for the data path: version, addresses,
 * protocol. No allocation on the v4 path; v6 addresses are read as two
 * 64-bit halves split into four u32 words by the caller where needed.
 *
 * IPv4 header (RFC 791): version/IHL at 0, total length at 2, protocol at 9,
 * source at 12, destination at 16. IPv6 (RFC 8200): payload length at 4, next
 * header at 6, source at 8..24, destination at 24..40.
 */
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

/** Strict dotted quad ("10.0.0.1"; no leading zeros) -> 4 bytes, or null. */
export function parseIp4(s: string): Buffer | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

/** IPv6 text (any RFC 4291 form, no zone id) -> 16 bytes, or null. */
export function parseIp6(s: string): Buffer | null {
  if (s.length === 0 || s.length > 45) return null;
  let str = s;
  let tail: Buffer | null = null;
  // Embedded IPv4 in the last 32 bits.
  const lastColon = str.lastIndexOf(":");
  if (lastColon >= 0 && str.indexOf(".", lastColon) >= 0) {
    tail = parseIp4(str.slice(lastColon + 1));
    if (!tail) return null;
    str = str.slice(0, lastColon + 1) + "0:0";
  }
  const dbl = str.indexOf("::");
  if (dbl !== str.lastIndexOf("::")) return null;
  const parseGroups = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = parseGroups(str.slice(0, dbl));
    const rest = parseGroups(str.slice(dbl + 2));
    if (!head || !rest || head.length + rest.length > 7) return null;
    groups = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    const all = parseGroups(str);
    if (!all || all.length !== 8) return null;
    groups = all;
  }
  const out = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) out.writeUInt16BE(groups[i]!, i * 2);
  if (tail) tail.copy(out, 12);
  return out;
}

export function formatIp4(b: Buffer, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** RFC 5952 canonical text: lowercase, no leading zeros, longest zero run (>=2) as "::". */
export function formatIp6(b: Buffer, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(off + i * 2));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** IPv6 text (a zone id "%eth0" is ignored) -> 16 bytes, or null when malformed. */
export function ipv6ToBytes(ip: string): Buffer | null {
  const pct = ip.indexOf("%");
  return parseIp6(pct >= 0 ? ip.slice(0, pct) : ip);
}

/** RFC 5952 text of 16 IPv6 bytes. */
export const bytesToIpv6 = formatIp6;

export function ipProtocol(buf: Buffer, off: number, version: 4 | 6): number {
  return version === 4 ? buf[off + 9]! : buf[off + 6]!;
}

// ---------------------------------------------------------------------------
// Addresses and prefixes as text (config, certificates, CLI, directory, status): one parser,
// one CIDR type, one containment test. Strict: dotted quads without leading zeros
// ("010.0.0.1" is refused, not read as octal or as 10), IPv6 in any RFC 4291 form without
// a zone, prefixes with zero host bits.

export interface ParsedIp {
  family: 4 | 6;
  bytes: Buffer;
  /** Canonical text form. */
  text: string;
}

export function parseIp(s: string): ParsedIp | null {
  if (s.includes(":")) {
    const bytes = parseIp6(s);
    return bytes ? { family: 6, bytes, text: formatIp6(bytes) } : null;
  }
  const bytes = parseIp4(s);
  return bytes ? { family: 4, bytes, text: formatIp4(bytes) } : null;
}

export interface ParsedCidr extends ParsedIp {
  prefix: number;
}

/**
 * "10.1.0.0/16" or "fd00::/8" -> parsed form with canonical `text`, or null when
 * malformed or when bits beyond the prefix are set (non-canonical network).
 */
export function parseCidr(s: string): ParsedCidr | null {
  const slash = s.indexOf("/");
  if (slash < 0) return null;
  const ip = parseIp(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
  const prefix = Number(p);
  if (prefix > ip.bytes.length * 8) return null;
  if (!hostBitsZero(ip.bytes, 0, ip.bytes.length, prefix)) return null;
  return { ...ip, prefix, text: `${ip.text}/${prefix}` };
}

export function hostBitsZero(b: Buffer, off: number, len: number, prefix: number): boolean {
  for (let i = 0; i < len; i++) {
    const bitsKept = Math.min(8, Math.max(0, prefix - i * 8));
    const mask = bitsKept === 8 ? 0 : 0xff >> bitsKept;
    if ((b[off + i]! & mask) !== 0) return false;
  }
  return true;
}

/**
 * Prefix length of `cidr` when it contains `ip` (same family), else -1. `cidr` is CIDR text
 * or parsed; `ip` is address text or its 4/16 bytes. Malformed input contains nothing.
 */
export function cidrContains(cidr: string | ParsedCidr, ip: string | Uint8Array): number {
  const c = typeof cidr === "string" ? parseCidr(cidr) : cidr;
  const a = typeof ip === "string" ? parseIp(ip)?.bytes : ip;
  if (!c || !a || c.bytes.length !== a.length) return -1;
  const full = c.prefix >> 3;
  for (let i = 0; i < full; i++) if (c.bytes[i] !== a[i]) return -1;
  const rest = c.prefix & 7;
  if (rest === 0) return c.prefix;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (c.bytes[full]! & mask) === (a[full]! & mask) ? c.prefix : -1;
}

/** IPv6 extension headers walked to reach the upper-layer header (RFC 8200 section 4) */
const V6_HOP_BY_HOP = 0;
const V6_ROUTING = 43;
const V6_FRAGMENT = 44;
const V6_AH = 51;
const V6_DEST_OPTS = 60;
/** more extension headers than this in one packet: refused as malformed (no real packet has them) */
export const V6_MAX_EXT_HEADERS = 8;

/** Where an IPv6 packet's upper-layer header is (walkV6); `frag` as in conn/conns.ts FRAG_*. */
export interface V6Upper {
  /** the upper-layer protocol after the extension headers */
  proto: number;
  /** offset of the upper-layer header in the buffer */
  l4: number;
  /** 0: not a fragment (or an atomic one), 1: the first fragment, 2: a later one (no upper-layer header) */
  frag: 0 | 1 | 2;
  /** the fragment header's identification (frag !== 0) */
  fragId: number;
}

/**
 * Walk the extension headers (hop-by-hop, routing, destination options, fragment, AH) of
 * the IPv6 packet at buf[off, end) to its upper-layer header, into `out`. False when the
 * chain runs past `end` or holds more than V6_MAX_EXT_HEADERS headers. A later fragment
 * stops the walk after its fragment header (what follows is payload, not a header).
 * The one walk of the code base: the flow parser (conn/conns.ts) and the reject path
 * (reject.ts) both use it.
 */
export function walkV6(buf: Buffer, off: number, end: number, out: V6Upper): boolean {
  let proto = buf[off + 6]!;
  let l4 = off + IPV6_HEADER;
  out.frag = 0;
  out.fragId = 0;
  for (let n = 0; ; n++) {
    if (
      proto !== V6_HOP_BY_HOP &&
      proto !== V6_ROUTING &&
      proto !== V6_FRAGMENT &&
      proto !== V6_AH &&
      proto !== V6_DEST_OPTS
    )
      break;
    if (n >= V6_MAX_EXT_HEADERS || l4 + 8 > end) return false;
    const next = buf[l4]!;
    if (proto === V6_FRAGMENT) {
      const fo = buf.readUInt16BE(l4 + 2);
      const later = (fo & 0xfff8) !== 0;
      if (later || (fo & 1) !== 0) {
        out.frag = later ? 2 : 1;
        out.fragId = buf.readUInt32BE(l4 + 4);
      }
      proto = next;
      l4 += 8;
      if (later) break;
      continue;
    }
    const hlen = proto === V6_AH ? (buf[l4 + 1]! + 2) * 4 : (buf[l4 + 1]! + 1) * 8;
    if (l4 + hlen > end) return false;
    proto = next;
    l4 += hlen;
  }
  out.proto = proto;
  out.l4 = l4;
  return true;
}
