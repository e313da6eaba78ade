/**
 * Longest-prefix routing of inner addresses to peers, and the source check
 * for packets that arrive from a peer (its certificate's addresses and subnets).
 *
 * IPv4 prefixes are matched on u32 numbers; IPv6 on the 16 address bytes.
 * Lookups allocate nothing. Tables are small (one entry per peer address or
 * subnet) and sorted by prefix length, longest first.
 */
import { parseCidr } from "../ip/ip.js";

export interface Prefix4 {
  net: number;
  mask: number;
  bits: number;
}
export interface Prefix6 {
  net: Buffer;
  bits: number;
}

/**
 * The table form of a CIDR (parsed by the one IP module, src/ip/ip.ts: strict, zero host
 * bits, a prefix length always given), or null when malformed.
 */
export function prefixOf(cidr: string): { v: 4; p: Prefix4 } | { v: 6; p: Prefix6 } | null {
  const c = parseCidr(cidr);
  if (!c) return null;
  if (c.family === 6) return { v: 6, p: { net: c.bytes, bits: c.prefix } };
  const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
  return { v: 4, p: { net: c.bytes.readUInt32BE(0), mask, bits: c.prefix } };
}

export function match6(p: Prefix6, buf: Buffer, off: number): boolean {
  let bits = p.bits;
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const m = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((buf[off + i]! & m) !== p.net[i]) return false;
  }
  return true;
}

/** A set of prefixes mapping to values; longest prefix wins. */
export class PrefixTable<T> {
  private v4: { p: Prefix4; value: T }[] = [];
  private v6: { p: Prefix6; value: T }[] = [];
  /** /32 host routes by address: one hash lookup however many peers (they are the longest prefix) */
  private host4 = new Map<number, T>();

  add(cidr: string, value: T): boolean {
    const c = prefixOf(cidr);
    if (!c) return false;
    if (c.v === 4 && c.p.bits === 32) {
      if (!this.host4.has(c.p.net)) this.host4.set(c.p.net, value);
      return true;
    }
    if (c.v === 4) {
      this.v4.push({ p: c.p, value });
      this.v4.sort((a, b) => b.p.bits - a.p.bits);
    } else {
      this.v6.push({ p: c.p, value });
      this.v6.sort((a, b) => b.p.bits - a.p.bits);
    }
    return true;
  }

  removeValue(value: T): void {
    for (const [k, v] of this.host4) if (v === value) this.host4.delete(k);
    this.v4 = this.v4.filter((e) => e.value !== value);
    this.v6 = this.v6.filter((e) => e.value !== value);
  }

  clear(): void {
    this.host4.clear();
    this.v4 = [];
    this.v6 = [];
  }

  lookup4(addr: number): T | undefined {
    const h = this.host4.get(addr);
    if (h !== undefined) return h;
    const t = this.v4;
    for (let i = 0; i < t.length; i++) {
      const e = t[i]!;
      if ((addr & e.p.mask) >>> 0 === e.p.net) return e.value;
    }
    return undefined;
  }

  lookup6(buf: Buffer, off: number): T | undefined {
    const t = this.v6;
    for (let i = 0; i < t.length; i++) {
      const e = t[i]!;
      if (match6(e.p, buf, off)) return e.value;
    }
    return undefined;
  }

  get size(): number {
    return this.host4.size + this.v4.length + this.v6.length;
  }
}
