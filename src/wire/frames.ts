/**
 * Frames: the plaintext inside every sealed packet (CREATE, REPLY, DATA) is a
 * sequence of frames, then optional zero padding.
 *
 *    0                   1                   2
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-----------
 *   |     type      |        length (u16, BE)       | body ...
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-----------
 *
 * A type byte of 0 ends the frame list: everything after it is padding.
 *
 *   PADDING   0   (no header; rest of plaintext)
 *   IP        1   reserved (an inner packet without a connection: dropped, counted)
 *   HELLO     2   host authentication of the creator (only in CREATE):
 *                   certLen u16 | host certificate | auth (32)
 *   CONN_OPEN 3   a connection's flow and identity (src/wire/conn.ts)
 *   CONN_DATA 4   connection id u32 | one inner packet of that connection
 *   CONN_DENY 5   connection id u32 | reason u8
 *   CONN_RESET 6  connection id u32
 *   PROBE     15  empty; the receiver answers at once with a KEEPALIVE (stall probe)
 *   RETRY     7   n × (TID (8) | counter (8)): earlier CREATEs that carried the next
 *                 CONN_DATA (only in CREATE / CREATE_SOLVED; src/tunnel/retry.ts)
 *   CERT      8   the sender's renewed host certificate (same key; wire/cert.ts): the
 *                 receiver verifies it and replaces its cached one (tunnel/records.ts)
 *   KEEPALIVE 16  empty
 *   REKEY     17  seq u32 | new X25519 pub (32)
 *   REKEY_ACK 18  seq u32 | new X25519 pub (32)
 *   CLOSE     19  reason u8
 *   DIR_REQUEST  20  directory request (wire/directory.ts); 20..29 reserved for the directory
 *   DIR_RESPONSE 21  directory response (wire/directory.ts)
 */
import { FRAME_HEADER_BYTES } from "./constants.js";

export const FrameType = {
  Padding: 0,
  Ip: 1,
  Hello: 2,
  ConnOpen: 3,
  ConnData: 4,
  ConnDeny: 5,
  ConnReset: 6,
  Probe: 15,
  Retry: 7,
  Cert: 8,
  Keepalive: 16,
  Rekey: 17,
  RekeyAck: 18,
  Close: 19,
  DirRequest: 20,
  DirResponse: 21,
  /** directory -> host: rendezvous (wire/nat.ts) */
  DirNotice: 22,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const HELLO_AUTH_BYTES = 32;
export const REKEY_BODY_BYTES = 36;

/**
 * Allocation-free frame iteration. Usage:
 *   const it = frameIter; it.reset(buf, off, len);
 *   while (it.next()) { it.type, it.bodyOff, it.bodyLen }
 * `next()` returns false at the end, at padding, or on a malformed frame
 * (then `malformed` is true and the packet must be dropped whole).
 */
export class FrameIterator {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  end = 0;
  type = 0;
  bodyOff = 0;
  bodyLen = 0;
  malformed = false;

  reset(buf: Buffer, off: number, len: number): this {
    this.buf = buf;
    this.pos = off;
    this.end = off + len;
    this.malformed = false;
    return this;
  }

  next(): boolean {
    if (this.pos >= this.end) return false;
    const t = this.buf[this.pos]!;
    if (t === FrameType.Padding) return false;
    if (this.pos + FRAME_HEADER_BYTES > this.end) {
      this.malformed = true;
      return false;
    }
    const l = this.buf.readUInt16BE(this.pos + 1);
    const b = this.pos + FRAME_HEADER_BYTES;
    if (b + l > this.end) {
      this.malformed = true;
      return false;
    }
    this.type = t;
    this.bodyOff = b;
    this.bodyLen = l;
    this.pos = b + l;
    return true;
  }
}

/** Write a frame header; returns the offset of the body. */
export function writeFrameHeader(buf: Buffer, off: number, type: number, bodyLen: number): number {
  buf[off] = type;
  buf.writeUInt16BE(bodyLen, off + 1);
  return off + FRAME_HEADER_BYTES;
}

/** Encode a whole frame with a body copied in; returns the end offset. */
export function writeFrame(buf: Buffer, off: number, type: number, body: Buffer | null): number {
  const len = body ? body.length : 0;
  const b = writeFrameHeader(buf, off, type, len);
  if (body) body.copy(buf, b);
  return b + len;
}

export interface HelloBody {
  cert: Buffer;
  auth: Buffer;
  /** the AEAD suite the creator chose (crypto/aead.ts AeadSuite); 1 when the byte is absent */
  suite: number;
}

/** The suites a HELLO may name: 2 = AES-256-GCM (1, ChaCha20-Poly1305, is the absent byte). */
const HELLO_SUITES = new Set([2]);

/**
 * certLen u16 | host certificate | auth (32) [| suite u8]. The suite byte is present only
 * for a suite other than ChaCha20-Poly1305 (a HELLO without it is the original format).
 */
export function encodeHello(cert: Buffer, auth: Buffer, suite = 1): Buffer {
  const extra = suite === 1 ? 0 : 1;
  const b = Buffer.alloc(2 + cert.length + HELLO_AUTH_BYTES + extra);
  b.writeUInt16BE(cert.length, 0);
  cert.copy(b, 2);
  auth.copy(b, 2 + cert.length);
  if (extra) b[2 + cert.length + HELLO_AUTH_BYTES] = suite;
  return b;
}

export function decodeHello(buf: Buffer, off: number, len: number): HelloBody | null {
  if (len < 2 + HELLO_AUTH_BYTES) return null;
  const cl = buf.readUInt16BE(off);
  const base = 2 + cl + HELLO_AUTH_BYTES;
  if (cl === 0 || (base !== len && base + 1 !== len)) return null;
  const suite = base === len ? 1 : buf[off + base]!;
  // canonical: the byte is present only for a suite other than 1
  if (base !== len && !HELLO_SUITES.has(suite)) return null;
  return {
    cert: Buffer.from(buf.subarray(off + 2, off + 2 + cl)),
    auth: Buffer.from(buf.subarray(off + 2 + cl, off + base)),
    suite,
  };
}

export interface RekeyBody {
  seq: number;
  pub: Buffer;
}

export function encodeRekey(seq: number, pub: Buffer): Buffer {
  const b = Buffer.alloc(REKEY_BODY_BYTES);
  b.writeUInt32BE(seq >>> 0, 0);
  pub.copy(b, 4);
  return b;
}

export function decodeRekey(buf: Buffer, off: number, len: number): RekeyBody | null {
  if (len !== REKEY_BODY_BYTES) return null;
  return { seq: buf.readUInt32BE(off), pub: Buffer.from(buf.subarray(off + 4, off + 36)) };
}
