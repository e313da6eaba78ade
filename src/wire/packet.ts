/**
 * Outer packet codec: the only bytes an observer sees.
 *
 * Every UDP payload starts with the same 16-byte header:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                      tunnel id (TID), 8 bytes                 |
 *   +                                                               +
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |     type      |          counter (56 bits, big-endian)        |
 *   +-+-+-+-+-+-+-+-+                                               +
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The 8 bytes at offset 8 ("N") are also the last 8 bytes of the AEAD nonce
 * (the first 4 are zero), so a (key, N) pair is never reused.
 *
 * Then, by type:
 *   CREATE  (1): keyId u32 | creator per-tunnel X25519 pub (32) | AEAD ciphertext+tag
 *                associated data = bytes [0, 52)
 *   REPLY   (2): responder per-tunnel X25519 pub (32) | AEAD ciphertext+tag
 *                associated data = bytes [0, 48)
 *   DATA    (3): AEAD ciphertext+tag; associated data = bytes [0, 16)
 *   STALE   (4): keyId u32 (the one that was refused) | responder's one-time X25519 pub R (32) |
 *                AEAD ciphertext+tag of (ephLen u16 | ephemeral certificate | zero padding), key
 *                H(X25519(r, T_I); "mintun/1 stale" | TID | T_I | R), associated data = bytes [0, 52)
 *                (the certificate is signed by the host key; no larger than the CREATE it answers)
 *   RECORD_REQUEST  (5): requester's one-time X25519 pub Q (32) | zero padding to RECORD_REQUEST_BYTES (counter 0)
 *   RECORD_RESPONSE (6): responder's one-time X25519 pub R (32) | AEAD ciphertext+tag of
 *                (hostLen u16 | host certificate | ephLen u16 | ephemeral certificate | zero padding),
 *                key H(X25519(r, Q); "mintun/1 record" | TID | Q | R), associated data = bytes [0, 48)
 *                (no larger than the request; TID echoes the request)
 *   PUZZLE  (7): keyId u32 (echo) | window u32 | difficulty u8 | cookie (16)      -- 41 bytes, counter 0
 *   CREATE_SOLVED (8): as CREATE, then window u32 | difficulty u8 | cookie (16) | solution (8),
 *                then AEAD ciphertext+tag; associated data = bytes [0, 81)
 */
import { AEAD_TAG_BYTES, HEADER_BYTES } from "./constants.js";

export const PacketType = {
  Create: 1,
  Reply: 2,
  Data: 3,
  Stale: 4,
  RecordRequest: 5,
  RecordResponse: 6,
  Puzzle: 7,
  CreateSolved: 8,
} as const;
export type PacketType = (typeof PacketType)[keyof typeof PacketType];

export const OFFSET_TID = 0;
export const OFFSET_TYPE = 8;
export const OFFSET_COUNTER = 8; // 56-bit counter occupies bytes 9..15, type byte 8
export const CREATE_OFFSET_KEY_ID = 16;
export const CREATE_OFFSET_PUB = 20;
export const CREATE_AD_BYTES = 52;
export const SOLVED_OFFSET_WINDOW = 52;
export const SOLVED_OFFSET_DIFFICULTY = 56;
export const SOLVED_OFFSET_COOKIE = 57;
export const SOLVED_OFFSET_SOLUTION = 73;
export const SOLVED_AD_BYTES = 81;
export const PUZZLE_BYTES = 41;
export const REPLY_OFFSET_PUB = 16;
export const REPLY_AD_BYTES = 48;
export const DATA_AD_BYTES = HEADER_BYTES;

/** Smallest valid size of each sealed type (header + extra + tag). */
export const MIN_CREATE_BYTES = CREATE_AD_BYTES + AEAD_TAG_BYTES;
export const MIN_REPLY_BYTES = REPLY_AD_BYTES + AEAD_TAG_BYTES;
export const MIN_DATA_BYTES = DATA_AD_BYTES + AEAD_TAG_BYTES;

const TWO_32 = 2 ** 32;

/** Type byte of a packet at buf[off]; 0 when too short to have a header. */
export function peekType(buf: Buffer, off: number, len: number): number {
  return len < HEADER_BYTES ? 0 : buf[off + OFFSET_TYPE]!;
}

/**
 * Read the 56-bit counter. Senders keep counters below 2^53 (COUNTER_MAX); a
 * larger value cannot be represented exactly and is returned as -1, which the
 * replay window refuses.
 */
export function readCounter(buf: Buffer, off: number): number {
  const hi = buf.readUInt32BE(off + OFFSET_COUNTER) & 0x00ffffff;
  if (hi >= 0x200000) return -1;
  return hi * TWO_32 + buf.readUInt32BE(off + OFFSET_COUNTER + 4);
}

/** Write type and counter (counter < 2^53). */
export function writeTypeCounter(buf: Buffer, off: number, type: number, counter: number): void {
  const hi = Math.floor(counter / TWO_32);
  buf.writeUInt32BE((((type & 0xff) << 24) | (hi & 0x00ffffff)) >>> 0, off + OFFSET_COUNTER);
  buf.writeUInt32BE(counter >>> 0, off + OFFSET_COUNTER + 4);
}

/**
 * TIDs are 8 random bytes. In tables they are keyed by a JS string of the 8
 * bytes (latin1), which V8 stores compactly and hashes quickly.
 */
export function tidKey(buf: Buffer, off: number): string {
  return buf.latin1Slice(off, off + 8);
}

export function tidKeyOf(tid: Buffer): string {
  return tid.latin1Slice(0, 8);
}

export function writeTid(buf: Buffer, off: number, tidKeyStr: string): void {
  buf.latin1Write(tidKeyStr, off, 8);
}

// ---------------------------------------------------------------- STALE

/** Associated data of a sealed STALE: header, the refused key id and the responder's one-time key. */
export const STALE_AD_BYTES = HEADER_BYTES + 4 + 32;

/**
 * STALE before sealing: header (TID of the CREATE, counter set by the sender) |
 * keyId u32 (the refused one) | R, the responder's one-time key (32) |
 * plaintext: ephLen u16 | ephemeral certificate | zero padding | room for the
 * tag (16). The caller seals bytes [STALE_AD_BYTES, len - 16) in place with
 * H(X25519(r, T_I); "mintun/1 stale" | TID | T_I | R). At least `padTo` bytes.
 */
export function encodeStale(tid: string, keyId: number, pub: Buffer, eph: Buffer, padTo: number): Buffer {
  const len = Math.max(STALE_AD_BYTES + 2 + eph.length + AEAD_TAG_BYTES, padTo);
  const b = Buffer.alloc(len);
  writeTid(b, 0, tid);
  writeTypeCounter(b, 0, PacketType.Stale, 0);
  b.writeUInt32BE(keyId >>> 0, HEADER_BYTES);
  pub.copy(b, HEADER_BYTES + 4, 0, 32);
  b.writeUInt16BE(eph.length, STALE_AD_BYTES);
  eph.copy(b, STALE_AD_BYTES + 2);
  return b;
}

export interface StaleHeader {
  tid: string;
  keyId: number;
  pub: Buffer;
}

/** The clear part of a STALE: the CREATE's TID, the refused key id, the responder's one-time key. */
export function decodeStaleHeader(buf: Buffer, off: number, len: number): StaleHeader | null {
  if (len < STALE_AD_BYTES + 2 + AEAD_TAG_BYTES || buf[off + OFFSET_TYPE] !== PacketType.Stale) return null;
  return {
    tid: tidKey(buf, off),
    keyId: buf.readUInt32BE(off + HEADER_BYTES),
    pub: Buffer.from(buf.subarray(off + HEADER_BYTES + 4, off + STALE_AD_BYTES)),
  };
}

/** The opened plaintext of a STALE at [off, off+len): the ephemeral certificate (a copy). */
export function decodeStaleBody(buf: Buffer, off: number, len: number): Buffer | null {
  if (len < 2) return null;
  const ephLen = buf.readUInt16BE(off);
  if (ephLen === 0 || 2 + ephLen > len) return null;
  return Buffer.from(buf.subarray(off + 2, off + 2 + ephLen));
}

// ---------------------------------------------------------------- RECORD_REQUEST / RESPONSE

/** Requester's one-time X25519 key in RECORD_REQUEST, responder's in RECORD_RESPONSE. */
export const RECORD_OFFSET_PUB = HEADER_BYTES;
/** Associated data of a sealed RECORD_RESPONSE: header and the responder's key. */
export const RECORD_AD_BYTES = HEADER_BYTES + 32;

/** RECORD_REQUEST: header (counter 0) | Q, the requester's one-time X25519 key | zero padding to `size`. */
export function encodeRecordRequest(tid: string, pub: Buffer, size: number): Buffer {
  const b = Buffer.alloc(Math.max(size, RECORD_AD_BYTES));
  writeTid(b, 0, tid);
  writeTypeCounter(b, 0, PacketType.RecordRequest, 0);
  pub.copy(b, RECORD_OFFSET_PUB, 0, 32);
  return b;
}

export function decodeRecordRequest(
  buf: Buffer,
  off: number,
  len: number,
): { tid: string; pub: Buffer } | null {
  if (len < RECORD_AD_BYTES || buf[off + OFFSET_TYPE] !== PacketType.RecordRequest) return null;
  return {
    tid: tidKey(buf, off),
    pub: Buffer.from(buf.subarray(off + RECORD_OFFSET_PUB, off + RECORD_OFFSET_PUB + 32)),
  };
}

/**
 * RECORD_RESPONSE before sealing: header (TID echoed, counter 0) | R, the
 * responder's one-time key | plaintext: hostLen u16 | host | ephLen u16 | eph |
 * zero padding | room for the tag (16). The caller seals bytes
 * [RECORD_AD_BYTES, maxLen - 16) in place. null when it would not fit in
 * `maxLen` (the size of the request).
 */
export function encodeRecordResponse(
  tid: string,
  pub: Buffer,
  host: Buffer,
  eph: Buffer,
  maxLen: number,
): Buffer | null {
  const need = RECORD_AD_BYTES + 2 + host.length + 2 + eph.length + AEAD_TAG_BYTES;
  if (need > maxLen) return null;
  const b = Buffer.alloc(maxLen);
  writeTid(b, 0, tid);
  writeTypeCounter(b, 0, PacketType.RecordResponse, 0);
  pub.copy(b, RECORD_OFFSET_PUB, 0, 32);
  let o = RECORD_AD_BYTES;
  b.writeUInt16BE(host.length, o);
  host.copy(b, o + 2);
  o += 2 + host.length;
  b.writeUInt16BE(eph.length, o);
  eph.copy(b, o + 2);
  return b;
}

/** The clear part of a RECORD_RESPONSE: TID and the responder's one-time key. */
export function decodeRecordResponseHeader(
  buf: Buffer,
  off: number,
  len: number,
): { tid: string; pub: Buffer } | null {
  if (len < RECORD_AD_BYTES + 4 + AEAD_TAG_BYTES || buf[off + OFFSET_TYPE] !== PacketType.RecordResponse)
    return null;
  return {
    tid: tidKey(buf, off),
    pub: Buffer.from(buf.subarray(off + RECORD_OFFSET_PUB, off + RECORD_OFFSET_PUB + 32)),
  };
}

export interface RecordBody {
  host: Buffer;
  eph: Buffer;
}

/** The opened plaintext of a RECORD_RESPONSE at [off, off+len): the two certificates. */
export function decodeRecordBody(buf: Buffer, off: number, len: number): RecordBody | null {
  if (len < 4) return null;
  let o = off;
  const end = off + len;
  const hl = buf.readUInt16BE(o);
  o += 2;
  if (hl === 0 || o + hl + 2 > end) return null;
  const host = Buffer.from(buf.subarray(o, o + hl));
  o += hl;
  const el = buf.readUInt16BE(o);
  o += 2;
  if (el === 0 || o + el > end) return null;
  const eph = Buffer.from(buf.subarray(o, o + el));
  return { host, eph };
}

// ---------------------------------------------------------------- PUZZLE

export interface PuzzleMsg {
  tid: string;
  keyId: number;
  window: number;
  difficulty: number;
  cookie: Buffer;
}

export function encodePuzzle(
  tid: string,
  keyId: number,
  window: number,
  difficulty: number,
  cookie: Buffer,
): Buffer {
  const b = Buffer.alloc(PUZZLE_BYTES);
  writeTid(b, 0, tid);
  writeTypeCounter(b, 0, PacketType.Puzzle, 0);
  b.writeUInt32BE(keyId >>> 0, 16);
  b.writeUInt32BE(window >>> 0, 20);
  b[24] = difficulty;
  cookie.copy(b, 25, 0, 16);
  return b;
}

export function decodePuzzle(buf: Buffer, off: number, len: number): PuzzleMsg | null {
  if (len !== PUZZLE_BYTES || buf[off + OFFSET_TYPE] !== PacketType.Puzzle) return null;
  return {
    tid: tidKey(buf, off),
    keyId: buf.readUInt32BE(off + 16),
    window: buf.readUInt32BE(off + 20),
    difficulty: buf[off + 24]!,
    cookie: Buffer.from(buf.subarray(off + 25, off + 41)),
  };
}
