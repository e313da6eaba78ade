/**
 * Relay hosts on the wire (issue 17; docs/PROTOCOL.md section 8b "Relay hosts"): three more
 * DIR_NOTICE (frame 22) kinds, each inside an authenticated tunnel between a host and its
 * directory, for relays that are not the directory (`relay: { serve: true }` on any host).
 *
 *   kind 3 VIA    directory -> end host: "the pair's relay is host R"
 *
 *      0       1       2 ............ 33  34 ......... 41  42 ........... 73  74      75 ...
 *     +-------+-------+-----------------+----------------+------------------+-------+----------
 *     |version| 3     | peer host key   | relay token (8)| relay host key   |nameLen| relay name
 *     +-------+-------+-----------------+----------------+------------------+-------+----------
 *
 *   kind 4 PAIR   directory -> relay host: "forward token T between hosts A and B"
 *
 *      0       1       2 ............ 33  34 ......... 41  42 ........... 73
 *     +-------+-------+-----------------+----------------+------------------+
 *     |version| 4     | host key A (32) | relay token (8)| host key B (32)  |     74 bytes
 *     +-------+-------+-----------------+----------------+------------------+
 *
 *   kind 5 OFFER  relay host -> directory: "I serve as a relay"   | version | 5 |   2 bytes
 *
 * The relay name is what the end host looks the relay up by (1..63 bytes, certificate name
 * rules); the record it gets must carry the relay host key (else: not used). Decoding is
 * exact; a zero token, two equal keys in PAIR, a bad name: null. Decoders never throw.
 */
import { isValidName } from "./cert.js";
import { NOTICE_VERSION, RELAY_TOKEN_BYTES } from "./nat.js";

export const NoticeRelayKind = { Via: 3, Pair: 4, Offer: 5 } as const;
export const VIA_MIN_BYTES = 75 + 1;
export const VIA_MAX_BYTES = 75 + 63;
export const PAIR_BYTES = 74;
export const OFFER_BYTES = 2;

export interface ViaNotice {
  peerKey: Buffer;
  token: Buffer;
  relayKey: Buffer;
  relayName: string;
}

export interface PairNotice {
  a: Buffer;
  token: Buffer;
  b: Buffer;
}

/** The kind byte of a DIR_NOTICE body (0 when too short): which decoder it goes to. */
export function noticeKind(buf: Buffer, off: number, len: number): number {
  return len >= 2 && off >= 0 && off + 2 <= buf.length ? buf[off + 1]! : 0;
}

function nonZero(b: Buffer): boolean {
  return b.some((x) => x !== 0);
}

/** Throws RangeError on arguments the encoder must never be given. */
export function encodeVia(n: ViaNotice): Buffer {
  const name = Buffer.from(n.relayName, "ascii");
  if (n.peerKey.length !== 32 || n.relayKey.length !== 32) throw new RangeError("keys must be 32 bytes");
  if (n.token.length !== RELAY_TOKEN_BYTES || !nonZero(n.token)) throw new RangeError("bad relay token");
  if (!isValidName(n.relayName)) throw new RangeError("bad relay name");
  const b = Buffer.alloc(75 + name.length);
  b[0] = NOTICE_VERSION;
  b[1] = NoticeRelayKind.Via;
  n.peerKey.copy(b, 2);
  n.token.copy(b, 34);
  n.relayKey.copy(b, 42);
  b[74] = name.length;
  name.copy(b, 75);
  return b;
}

export function decodeVia(buf: Buffer, off: number, len: number): ViaNotice | null {
  if (len < VIA_MIN_BYTES || len > VIA_MAX_BYTES || off < 0 || off + len > buf.length) return null;
  if (buf[off] !== NOTICE_VERSION || buf[off + 1] !== NoticeRelayKind.Via) return null;
  if (buf[off + 74] !== len - 75) return null;
  const relayName = buf.toString("latin1", off + 75, off + len);
  const token = Buffer.from(buf.subarray(off + 34, off + 42));
  const peerKey = Buffer.from(buf.subarray(off + 2, off + 34));
  const relayKey = Buffer.from(buf.subarray(off + 42, off + 74));
  if (!isValidName(relayName) || !nonZero(token) || peerKey.equals(relayKey)) return null;
  return { peerKey, token, relayKey, relayName };
}

export function encodePair(n: PairNotice): Buffer {
  if (n.a.length !== 32 || n.b.length !== 32 || n.a.equals(n.b)) throw new RangeError("bad pair keys");
  if (n.token.length !== RELAY_TOKEN_BYTES || !nonZero(n.token)) throw new RangeError("bad relay token");
  const b = Buffer.alloc(PAIR_BYTES);
  b[0] = NOTICE_VERSION;
  b[1] = NoticeRelayKind.Pair;
  n.a.copy(b, 2);
  n.token.copy(b, 34);
  n.b.copy(b, 42);
  return b;
}

export function decodePair(buf: Buffer, off: number, len: number): PairNotice | null {
  if (len !== PAIR_BYTES || off < 0 || off + len > buf.length) return null;
  if (buf[off] !== NOTICE_VERSION || buf[off + 1] !== NoticeRelayKind.Pair) return null;
  const a = Buffer.from(buf.subarray(off + 2, off + 34));
  const token = Buffer.from(buf.subarray(off + 34, off + 42));
  const b = Buffer.from(buf.subarray(off + 42, off + 74));
  if (!nonZero(token) || a.equals(b)) return null;
  return { a, token, b };
}

export function encodeOffer(): Buffer {
  return Buffer.from([NOTICE_VERSION, NoticeRelayKind.Offer]);
}

export function isOffer(buf: Buffer, off: number, len: number): boolean {
  return (
    len === OFFER_BYTES &&
    off >= 0 &&
    off + len <= buf.length &&
    buf[off] === NOTICE_VERSION &&
    buf[off + 1] === NoticeRelayKind.Offer
  );
}
