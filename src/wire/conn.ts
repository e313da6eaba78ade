/**
 * Connection frames: every inner flow rides a connection of its tunnel
 * (docs/PROTOCOL.md section 5d). Bodies of the frames CONN_OPEN (3),
 * CONN_DATA (4), CONN_DENY (5) and CONN_RESET (6).
 *
 * Connection ids on the wire: bit 31 says who opened the connection, seen
 * from the packet's sender: 0 = "I opened it", 1 = "you opened it". The
 * 31 low bits are chosen by the opener (1, 2, 3, ... per tunnel). A host
 * keys its table by (wire id XOR 2^31) on receive and sends its table key
 * as is, so one number names a connection at both ends.
 *
 * CONN_OPEN (sent by the opener, before the flow's first CONN_DATA):
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |0|                    connection id (31)                       |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     kind      |   protocol    |  family (4|6) |   reserved 0  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     opener's port (sport)     |   other side's port (dport)   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  opener's overlay address (4 or 16) | other side's (4 or 16)  |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   kind 1 (user) only:
 *   |     certificate length        |  user certificate ...         |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  authenticator (16): keyed BLAKE2b over the tunnel binding     |
 *   |  and every byte above (see src/conn/auth.ts)                   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 *   kind 0 = host identity, 1 = user identity. Ports are 0 for protocols
 *   without ports; for ICMP/ICMPv6 echo both are the echo identifier.
 *
 * CONN_DATA:  connection id (4) | one inner IPv4/IPv6 packet
 * CONN_DENY:  connection id (4) | reason (1)      the opener's flow is refused
 * CONN_RESET: connection id (4)                   "I hold no such connection"
 */
import { CERT_MAX_SIZE } from "./cert.js";

export const ConnKind = { Host: 0, User: 1 } as const;

export const CONN_ID_BYTES = 4;
/** bit 31 of a wire connection id: set when the packet's receiver opened the connection */
export const CONN_PEER_OPENED = 0x80000000;
export const CONN_ID_MAX = 0x7fffffff;
export const CONN_AUTH_BYTES = 16;
export const CONN_OPEN_FIXED_BYTES = 12;

export const DenyReason = {
  Policy: 1,
  BadCert: 2,
  BadAuth: 3,
  TableFull: 4,
  BadFlow: 5,
} as const;
export type DenyReason = (typeof DenyReason)[keyof typeof DenyReason];
export const DENY_REASON_NAMES: Record<number, string> = {
  1: "policy",
  2: "bad-certificate",
  3: "bad-authenticator",
  4: "table-full",
  5: "bad-flow",
};

export interface ConnOpen {
  /** wire id (bit 31 clear) */
  cid: number;
  kind: number;
  proto: number;
  family: 4 | 6;
  sport: number;
  dport: number;
  /** offsets into the frame buffer (no copies) */
  srcOff: number;
  dstOff: number;
  certOff: number;
  certLen: number;
  authOff: number;
  /** bytes covered by the authenticator: [bodyOff, authOff) */
  bodyOff: number;
}

export function connOpenSize(family: 4 | 6, certLen: number | null): number {
  const a = family === 4 ? 4 : 16;
  return CONN_OPEN_FIXED_BYTES + 2 * a + (certLen === null ? 0 : 2 + certLen + CONN_AUTH_BYTES);
}

/**
 * Write an OPEN body at buf[off]; addresses are copied from src/dst (4 or 16 bytes at
 * their offsets). The authenticator bytes (user kind) are left for the caller
 * (`authOff` = returned end - 16). Returns the end offset.
 */
export function writeConnOpen(
  buf: Buffer,
  off: number,
  cid: number,
  kind: number,
  proto: number,
  family: 4 | 6,
  sport: number,
  dport: number,
  src: Buffer,
  srcOff: number,
  dst: Buffer,
  dstOff: number,
  cert: Buffer | null,
): number {
  const a = family === 4 ? 4 : 16;
  buf.writeUInt32BE((cid & CONN_ID_MAX) >>> 0, off);
  buf[off + 4] = kind;
  buf[off + 5] = proto;
  buf[off + 6] = family;
  buf[off + 7] = 0;
  buf.writeUInt16BE(sport, off + 8);
  buf.writeUInt16BE(dport, off + 10);
  let o = off + CONN_OPEN_FIXED_BYTES;
  src.copy(buf, o, srcOff, srcOff + a);
  o += a;
  dst.copy(buf, o, dstOff, dstOff + a);
  o += a;
  if (cert) {
    buf.writeUInt16BE(cert.length, o);
    cert.copy(buf, o + 2);
    o += 2 + cert.length + CONN_AUTH_BYTES;
  }
  return o;
}

/** Parse an OPEN body; null when malformed (any length or field out of range). Never throws. */
export function readConnOpen(buf: Buffer, off: number, len: number): ConnOpen | null {
  if (len < CONN_OPEN_FIXED_BYTES + 8) return null;
  const cid = buf.readUInt32BE(off);
  if (cid & CONN_PEER_OPENED || cid === 0) return null;
  const kind = buf[off + 4]!;
  const family = buf[off + 6]!;
  if ((family !== 4 && family !== 6) || buf[off + 7] !== 0) return null;
  const a = family === 4 ? 4 : 16;
  const fixed = CONN_OPEN_FIXED_BYTES + 2 * a;
  const r: ConnOpen = {
    cid,
    kind,
    proto: buf[off + 5]!,
    family,
    sport: buf.readUInt16BE(off + 8),
    dport: buf.readUInt16BE(off + 10),
    srcOff: off + CONN_OPEN_FIXED_BYTES,
    dstOff: off + CONN_OPEN_FIXED_BYTES + a,
    certOff: 0,
    certLen: 0,
    authOff: 0,
    bodyOff: off,
  };
  if (kind === ConnKind.Host) return len === fixed ? r : null;
  if (kind !== ConnKind.User || len < fixed + 2) return null;
  const cl = buf.readUInt16BE(off + fixed);
  if (cl === 0 || cl > CERT_MAX_SIZE || fixed + 2 + cl + CONN_AUTH_BYTES !== len) return null;
  r.certOff = off + fixed + 2;
  r.certLen = cl;
  r.authOff = r.certOff + cl;
  return r;
}

export function encodeConnDeny(wireCid: number, reason: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(wireCid >>> 0, 0);
  b[4] = reason;
  return b;
}

export function encodeConnReset(wireCid: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(wireCid >>> 0, 0);
  return b;
}
