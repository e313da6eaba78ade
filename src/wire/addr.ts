/**
 * Underlay endpoint record: 20 bytes, the form in which UDP source and
 * destination addresses cross between the native addon and TypeScript.
 *
 *    0       1       2       3       4 ........................ 19
 *   +-------+-------+-------+-------+------------------------------+
 *   |family | zero  |  port (BE)    | address (IPv4 in 4..7, rest 0)|
 *   +-------+-------+-------+-------+------------------------------+
 *
 * family is 4 or 6; IPv4-mapped IPv6 addresses are always reported as 4.
 */
import { bytesToIpv6, ipv4ToNumber, ipv6ToBytes, numberToIpv4 } from "../ip/ip.js";

export const ADDR_BYTES = 20;

export function isIpv4(ip: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(ip) && ip.split(".").every((x) => Number(x) <= 255);
}

/** Encode ip:port into a 20-byte record. Returns null for a malformed address or port. */
export function tryEncodeAddr(ip: string, port: number, out?: Buffer, off = 0): Buffer | null {
  if (!Number.isInteger(port) || port < 0 || port > 65535) return null;
  const b = out ?? Buffer.alloc(ADDR_BYTES);
  b.fill(0, off, off + ADDR_BYTES);
  if (isIpv4(ip)) {
    b[off] = 4;
    b.writeUInt16BE(port, off + 2);
    b.writeUInt32BE(ipv4ToNumber(ip), off + 4);
    return b;
  }
  const v6 = ipv6ToBytes(ip);
  if (!v6) return null;
  // IPv4-mapped ::ffff:a.b.c.d -> family 4
  if (v6.readUInt32BE(0) === 0 && v6.readUInt32BE(4) === 0 && v6.readUInt32BE(8) === 0xffff) {
    b[off] = 4;
    b.writeUInt16BE(port, off + 2);
    v6.copy(b, off + 4, 12, 16);
    return b;
  }
  b[off] = 6;
  b.writeUInt16BE(port, off + 2);
  v6.copy(b, off + 4);
  return b;
}

export function decodeAddrRecord(buf: Buffer, off: number): { ip: string; port: number; family: 4 | 6 } {
  const fam = buf[off] === 6 ? 6 : 4;
  const port = buf.readUInt16BE(off + 2);
  const ip = fam === 4 ? numberToIpv4(buf.readUInt32BE(off + 4)) : bytesToIpv6(buf, off + 4);
  return { ip, port, family: fam };
}

/**
 * A relayed path as an endpoint record (issue 17): family RELAY_FAMILY, byte 1 the index of
 * the directory whose relay carries it (RELAY_VIA_INDEX: a relay host, found by the token),
 * bytes 4..11 the pair's relay token. The engine
 * treats it as any endpoint (tunnels move to and from it on authenticated packets); the
 * daemon's output wraps datagrams to it for the relay and never hands it to the kernel.
 */
export const RELAY_FAMILY = 0x52;
/** byte 1 of a relayed path through a relay host (not a directory): the token names the relay host */
export const RELAY_VIA_INDEX = 0xff;

export function relayAddr(dirIndex: number, token: Buffer): Buffer {
  const b = Buffer.alloc(ADDR_BYTES);
  b[0] = RELAY_FAMILY;
  b[1] = dirIndex;
  token.copy(b, 4, 0, 8);
  return b;
}

export function isRelayAddr(buf: Buffer, off = 0): boolean {
  return buf[off] === RELAY_FAMILY;
}

export function addrToString(buf: Buffer, off = 0): string {
  if (buf[off] === RELAY_FAMILY)
    return `relay:${buf[off + 1] === RELAY_VIA_INDEX ? "host" : buf[off + 1]}/${buf.toString("hex", off + 4, off + 12)}`;
  const a = decodeAddrRecord(buf, off);
  return a.family === 6 ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;
}

/** Compare two records without allocating. */
export function addrEqual(a: Buffer, aOff: number, b: Buffer, bOff: number): boolean {
  for (let i = 0; i < ADDR_BYTES; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}
