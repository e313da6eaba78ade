/**
 * NAT traversal on the wire (issue 17; docs/PROTOCOL.md section 8b): the rendezvous
 * notice a directory sends inside a host's tunnel, and the two outer packets that are
 * not tunnel packets: PUNCH (opens a NAT mapping, carries nothing) and RELAY (a sealed
 * tunnel datagram wrapped for a relay).
 *
 * DIR_NOTICE (frame 22) body, directory -> host, inside the host's tunnel to it:
 *
 *    0       1       2 ................ 33  34 ............. 41  42      43
 *   +-------+-------+--------------------+--------------------+-------+------------
 *   |version| kind  | peer host key (32) | relay token (8)    | count | candidates
 *   +-------+-------+--------------------+--------------------+-------+------------
 *
 *   kind 1 PUNCH     "peer is about to create a tunnel to you: send PUNCH to its candidates"
 *   kind 2 PEER      "the peer you looked up: its candidates, and how to reach it relayed"
 *   relay token      all zero: no relay; else the pair's token at this directory's relay
 *   count            0..NOTICE_MAX_CANDIDATES
 *   candidate        family (1: 4 or 6) | address (4 or 16) | port (u16, not 0)
 *
 * PUNCH (outer type 9), 16 bytes, sent to a candidate to open our NAT towards it:
 *
 *   | random (8) | type 9 | zero (7) |
 *
 * RELAY (outer type 10), host <-> relay, RELAY_HEADER_BYTES + one sealed datagram:
 *
 *   | relay token (8) | type 10 | zero (7) | tunnel datagram (CREATE/REPLY/DATA/..., 16..1452) |
 *
 * The relay forwards the whole datagram unchanged to the other host of the pair; what it
 * sees is the token, the type byte and the enclosed datagram's own header and ciphertext.
 * Decoders check the length first, never throw and return null.
 */
import { bytesToIpv6, formatIp4, parseIp } from "../ip/ip.js";

export const NOTICE_VERSION = 1;
export const NoticeKind = { Punch: 1, Peer: 2 } as const;
export type NoticeKindName = "punch" | "peer";
/** candidates per notice (the signed ones a host publishes, MAX_LOCAL_CANDIDATES, + the observed one, capped) */
export const NOTICE_MAX_CANDIDATES = 4;
export const NOTICE_OFFSET_KEY = 2;
export const NOTICE_OFFSET_TOKEN = 34;
export const NOTICE_OFFSET_COUNT = 42;
export const NOTICE_HEADER_BYTES = 43;
/** 43 + 4 x 19 = 119 */
export const NOTICE_MAX_BYTES = NOTICE_HEADER_BYTES + NOTICE_MAX_CANDIDATES * 19;
export const RELAY_TOKEN_BYTES = 8;

export const PUNCH_BYTES = 16;
export const RELAY_HEADER_BYTES = 16;
/** outer packet types (wire/packet.ts has the tunnel's 1..8) */
export const PUNCH_TYPE = 9;
export const RELAY_TYPE = 10;

export interface Candidate {
  ip: string;
  port: number;
}

export interface Notice {
  kind: NoticeKindName;
  peerKey: Buffer;
  /** null: no relay */
  token: Buffer | null;
  candidates: Candidate[];
}

export function noticeSize(n: Notice): number {
  let s = NOTICE_HEADER_BYTES;
  for (const c of n.candidates) s += c.ip.includes(":") ? 19 : 7;
  return s;
}

/** Throws RangeError on a notice the encoder must never be given (bad key, too many or bad candidates). */
export function encodeNotice(n: Notice): Buffer {
  if (n.peerKey.length !== 32) throw new RangeError("peer key must be 32 bytes");
  if (n.token && n.token.length !== RELAY_TOKEN_BYTES) throw new RangeError("relay token must be 8 bytes");
  if (n.candidates.length > NOTICE_MAX_CANDIDATES) throw new RangeError("too many candidates");
  const b = Buffer.alloc(noticeSize(n));
  b[0] = NOTICE_VERSION;
  b[1] = n.kind === "punch" ? NoticeKind.Punch : NoticeKind.Peer;
  n.peerKey.copy(b, NOTICE_OFFSET_KEY);
  if (n.token) n.token.copy(b, NOTICE_OFFSET_TOKEN);
  b[NOTICE_OFFSET_COUNT] = n.candidates.length;
  let o = NOTICE_HEADER_BYTES;
  for (const c of n.candidates) {
    const ip = parseIp(c.ip);
    if (!ip || !Number.isInteger(c.port) || c.port < 1 || c.port > 65535) {
      throw new RangeError(`bad candidate ${c.ip}:${c.port}`);
    }
    b[o] = ip.family;
    ip.bytes.copy(b, o + 1);
    b.writeUInt16BE(c.port, o + 1 + ip.bytes.length);
    o += 3 + ip.bytes.length;
  }
  return b;
}

/** Exact: the candidates must end at `off + len`. */
export function decodeNotice(buf: Buffer, off: number, len: number): Notice | null {
  if (len < NOTICE_HEADER_BYTES || len > NOTICE_MAX_BYTES || off < 0 || off + len > buf.length) return null;
  if (buf[off] !== NOTICE_VERSION) return null;
  const k = buf[off + 1];
  const kind: NoticeKindName | null =
    k === NoticeKind.Punch ? "punch" : k === NoticeKind.Peer ? "peer" : null;
  if (!kind) return null;
  const count = buf[off + NOTICE_OFFSET_COUNT]!;
  if (count > NOTICE_MAX_CANDIDATES) return null;
  const end = off + len;
  let o = off + NOTICE_HEADER_BYTES;
  const candidates: Candidate[] = [];
  for (let i = 0; i < count; i++) {
    if (o >= end) return null;
    const fam = buf[o];
    const n = fam === 4 ? 4 : fam === 6 ? 16 : 0;
    if (n === 0 || o + 3 + n > end) return null;
    const port = buf.readUInt16BE(o + 1 + n);
    if (port === 0) return null;
    const ip = n === 4 ? formatIp4(buf.subarray(o + 1, o + 5)) : bytesToIpv6(buf, o + 1);
    candidates.push({ ip, port });
    o += 3 + n;
  }
  if (o !== end) return null;
  const token = Buffer.from(
    buf.subarray(off + NOTICE_OFFSET_TOKEN, off + NOTICE_OFFSET_TOKEN + RELAY_TOKEN_BYTES),
  );
  return {
    kind,
    peerKey: Buffer.from(buf.subarray(off + NOTICE_OFFSET_KEY, off + NOTICE_OFFSET_TOKEN)),
    token: token.every((x) => x === 0) ? null : token,
    candidates,
  };
}

/** A PUNCH datagram (16 bytes) into `buf` at `off`; `rand`: 8 random bytes. */
export function encodePunchInto(buf: Buffer, off: number, rand: Buffer): number {
  rand.copy(buf, off, 0, 8);
  buf.fill(0, off + 8, off + PUNCH_BYTES);
  buf[off + 8] = PUNCH_TYPE;
  return PUNCH_BYTES;
}

export function isPunch(buf: Buffer, off: number, len: number): boolean {
  if (len !== PUNCH_BYTES || off < 0 || off + len > buf.length || buf[off + 8] !== PUNCH_TYPE) return false;
  for (let i = 9; i < 16; i++) if (buf[off + i] !== 0) return false;
  return true;
}

/** Write a relay header for `token` at `off` (the enclosed datagram follows it). */
export function writeRelayHeader(buf: Buffer, off: number, token: Buffer): number {
  token.copy(buf, off, 0, RELAY_TOKEN_BYTES);
  buf.fill(0, off + 8, off + RELAY_HEADER_BYTES);
  buf[off + 8] = RELAY_TYPE;
  return RELAY_HEADER_BYTES;
}

/**
 * The token of a RELAY datagram (a view into buf), or null: wrong type, nonzero reserved
 * bytes, or an enclosed datagram shorter than a tunnel header or longer than `maxInner`.
 */
export function decodeRelayHeader(buf: Buffer, off: number, len: number, maxInner: number): Buffer | null {
  if (len < RELAY_HEADER_BYTES + 16 || len > RELAY_HEADER_BYTES + maxInner) return null;
  if (off < 0 || off + len > buf.length || buf[off + 8] !== RELAY_TYPE) return null;
  for (let i = 9; i < 16; i++) if (buf[off + i] !== 0) return null;
  const tok = buf.subarray(off, off + RELAY_TOKEN_BYTES);
  return tok.every((x) => x === 0) ? null : tok;
}
