/**
 * Directory messages: the bodies of the DIR_REQUEST (20) and DIR_RESPONSE (21)
 * frames, which travel inside ordinary sealed tunnel packets (frames.ts) between
 * a host and a directory. Frame types 20..29 are reserved for the directory.
 *
 * DIR_REQUEST body:
 *
 *    0       1       2       3       4       5       6
 *   +-------+-------+-------+-------+-------+-------+---------------
 *   |version|  op   |       request id (u32, BE)    | query ...
 *   +-------+-------+-------+-------+-------+-------+---------------
 *
 *   op 1 REGISTER     ephLen (u16) | ephemeral certificate (EPH_MIN..EPH_MAX)
 *   op 2 ADDRESS      family (1: 4 or 6) | address (4 or 16)
 *                       the host whose certificate holds the address, else the
 *                       gateway whose certificate lists the longest subnet holding it
 *   op 3 SUBNET       family | address: only gateways (a certified subnet holds it)
 *   op 4 NAME         nameLen (u8, 1..63) | name (ASCII, certificate name rules)
 *   op 5 REVOCATION   have (u32: the number of the host's revocation list, 0 none) |
 *                       offset (u32: byte offset of the chunk wanted)
 *
 * DIR_RESPONSE body:
 *
 *    0       1       2       3       4       5       6       7
 *   +-------+-------+-------+-------+-------+-------+-------+---------
 *   |version|  op   |       request id (u32, BE)    |status | payload
 *   +-------+-------+-------+-------+-------+-------+-------+---------
 *
 *   status 0 OK         REGISTER: endpoint (the address the directory observed)
 *                       lookups:  record
 *                       REVOCATION: number (u32) | total (u32, bytes of the signed list) |
 *                         offset (u32) | chunk (min(REV_CHUNK_BYTES, total - offset) bytes);
 *                         NOT_FOUND when the directory holds no list newer than `have`
 *   status 1 NOT_FOUND, 2 REFUSED, 3 RATE_LIMITED, 4 UNAVAILABLE: no payload
 *
 *   record   = hostLen (u16) | host certificate | ephLen (u16) | ephemeral certificate | endpoint
 *   endpoint = family (u8: 0 none, 4, 6) | address (0, 4 or 16) | port (u16; absent for family 0)
 *
 * The certificates are signed (wire/cert.ts); the observed endpoint is not: it is
 * a hint for availability, and every tunnel made with it authenticates the host.
 * Decoding is exact (no trailing bytes) and bounded by the certificate size
 * limits; decoders never throw and return null.
 */
import { CERT_MAX_SIZE, CERT_MIN_SIZE, EPH_MAX_SIZE, EPH_MIN_SIZE, isValidName } from "./cert.js";
import { REV_MAX_SIZE, REV_MIN_SIZE } from "./revocation.js";
import { bytesToIpv6, formatIp4, parseIp } from "../ip/ip.js";

export const DIR_VERSION = 1;

export const DirOp = { Register: 1, Address: 2, Subnet: 3, Name: 4, Revocation: 5 } as const;
export type DirOpName = "register" | "address" | "subnet" | "name" | "revocation";
const OP_NAMES: readonly (DirOpName | null)[] = [null, "register", "address", "subnet", "name", "revocation"];
const OP_CODES: Record<DirOpName, number> = { register: 1, address: 2, subnet: 3, name: 4, revocation: 5 };
/** Bytes of a revocation list per REVOCATION answer (a 4096-entry list takes 133 answers). */
export const REV_CHUNK_BYTES = 1024;

export const DirStatus = { Ok: 0, NotFound: 1, Refused: 2, RateLimited: 3, Unavailable: 4 } as const;
export type DirStatusName = "ok" | "notFound" | "refused" | "rateLimited" | "unavailable";
const STATUS_NAMES: readonly DirStatusName[] = ["ok", "notFound", "refused", "rateLimited", "unavailable"];

export const DIR_OFFSET_VERSION = 0;
export const DIR_OFFSET_OP = 1;
export const DIR_OFFSET_ID = 2;
export const DIR_REQUEST_HEADER_BYTES = 6;
export const DIR_OFFSET_STATUS = 6;
export const DIR_RESPONSE_HEADER_BYTES = 7;
export const MAX_DIR_NAME_LEN = 63;
/** endpoint: family + 16 + port */
export const DIR_ENDPOINT_MAX_BYTES = 1 + 16 + 2;
/** Largest request: REGISTER with the largest ephemeral certificate = 6 + 2 + EPH_MAX_SIZE. */
export const DIR_REQUEST_MAX_BYTES = DIR_REQUEST_HEADER_BYTES + 2 + EPH_MAX_SIZE;
/** Largest response: a record with the largest certificates = 7 + 2 + CERT_MAX + 2 + EPH_MAX + 19. */
export const DIR_RESPONSE_MAX_BYTES =
  DIR_RESPONSE_HEADER_BYTES + 2 + CERT_MAX_SIZE + 2 + EPH_MAX_SIZE + DIR_ENDPOINT_MAX_BYTES;

export interface DirEndpoint {
  ip: string;
  port: number;
}

export type DirRequest =
  | { op: "register"; id: number; eph: Buffer }
  | { op: "address" | "subnet"; id: number; ip: string }
  | { op: "name"; id: number; name: string }
  | { op: "revocation"; id: number; have: number; offset: number };

/** A record as carried: raw certificates (verified by whoever uses them) and the observed endpoint. */
export interface WireRecord {
  host: Buffer;
  eph: Buffer;
  observed: DirEndpoint | null;
}

export type DirResponse =
  | { op: DirOpName; id: number; status: Exclude<DirStatusName, "ok"> }
  | { op: "register"; id: number; status: "ok"; observed: DirEndpoint | null }
  | { op: "address" | "subnet" | "name"; id: number; status: "ok"; record: WireRecord }
  | {
      op: "revocation";
      id: number;
      status: "ok";
      number: number;
      total: number;
      offset: number;
      chunk: Buffer;
    };

// ------------------------------------------------------------------ endpoints and addresses

function endpointSize(ep: DirEndpoint | null): number {
  if (!ep) return 1;
  return ep.ip.includes(":") ? 19 : 7;
}

function writeEndpoint(buf: Buffer, off: number, ep: DirEndpoint | null): number {
  if (!ep) {
    buf[off] = 0;
    return off + 1;
  }
  const ip = parseIp(ep.ip);
  if (!ip) throw new RangeError(`bad endpoint address ${ep.ip}`);
  buf[off] = ip.family;
  ip.bytes.copy(buf, off + 1);
  buf.writeUInt16BE(ep.port, off + 1 + ip.bytes.length);
  return off + 3 + ip.bytes.length;
}

/** Reads an endpoint that must end exactly at `end`. */
function readEndpoint(buf: Buffer, off: number, end: number): DirEndpoint | null | undefined {
  if (off >= end) return undefined;
  const fam = buf[off]!;
  if (fam === 0) return off + 1 === end ? null : undefined;
  const n = fam === 4 ? 4 : fam === 6 ? 16 : 0;
  if (n === 0 || off + 1 + n + 2 !== end) return undefined;
  const ip = n === 4 ? formatIp4(buf.subarray(off + 1, off + 5)) : bytesToIpv6(buf, off + 1);
  return { ip, port: buf.readUInt16BE(off + 1 + n) };
}

function readIp(buf: Buffer, off: number, end: number): string | null {
  if (off >= end) return null;
  const fam = buf[off]!;
  const n = fam === 4 ? 4 : fam === 6 ? 16 : 0;
  if (n === 0 || off + 1 + n !== end) return null;
  return n === 4 ? formatIp4(buf.subarray(off + 1, off + 5)) : bytesToIpv6(buf, off + 1);
}

// ------------------------------------------------------------------ requests

export function dirRequestSize(r: DirRequest): number {
  switch (r.op) {
    case "register":
      return DIR_REQUEST_HEADER_BYTES + 2 + r.eph.length;
    case "address":
    case "subnet":
      return DIR_REQUEST_HEADER_BYTES + (r.ip.includes(":") ? 17 : 5);
    case "name":
      return DIR_REQUEST_HEADER_BYTES + 1 + r.name.length;
    case "revocation":
      return DIR_REQUEST_HEADER_BYTES + 8;
  }
}

/** Encode a request at buf[off..]; returns the end offset. Throws RangeError on a local bug (bad input). */
export function encodeDirRequestInto(r: DirRequest, buf: Buffer, off: number): number {
  buf[off + DIR_OFFSET_VERSION] = DIR_VERSION;
  buf[off + DIR_OFFSET_OP] = OP_CODES[r.op];
  buf.writeUInt32BE(r.id >>> 0, off + DIR_OFFSET_ID);
  let o = off + DIR_REQUEST_HEADER_BYTES;
  switch (r.op) {
    case "register":
      if (r.eph.length < EPH_MIN_SIZE || r.eph.length > EPH_MAX_SIZE) throw new RangeError("eph size");
      buf.writeUInt16BE(r.eph.length, o);
      r.eph.copy(buf, o + 2);
      return o + 2 + r.eph.length;
    case "address":
    case "subnet": {
      const ip = parseIp(r.ip);
      if (!ip) throw new RangeError(`bad address ${r.ip}`);
      buf[o] = ip.family;
      ip.bytes.copy(buf, o + 1);
      return o + 1 + ip.bytes.length;
    }
    case "name":
      if (!isValidName(r.name) || r.name.length > MAX_DIR_NAME_LEN) throw new RangeError("bad name");
      buf[o++] = r.name.length;
      buf.write(r.name, o, "ascii");
      return o + r.name.length;
    case "revocation":
      buf.writeUInt32BE(r.have >>> 0, o);
      buf.writeUInt32BE(r.offset >>> 0, o + 4);
      return o + 8;
  }
}

export function encodeDirRequest(r: DirRequest): Buffer {
  const b = Buffer.alloc(dirRequestSize(r));
  encodeDirRequestInto(r, b, 0);
  return b;
}

export function decodeDirRequest(buf: Buffer, off: number, len: number): DirRequest | null {
  if (len < DIR_REQUEST_HEADER_BYTES || len > DIR_REQUEST_MAX_BYTES || off + len > buf.length) return null;
  if (buf[off + DIR_OFFSET_VERSION] !== DIR_VERSION) return null;
  const op = OP_NAMES[buf[off + DIR_OFFSET_OP]!];
  if (!op) return null;
  const id = buf.readUInt32BE(off + DIR_OFFSET_ID);
  const o = off + DIR_REQUEST_HEADER_BYTES;
  const end = off + len;
  switch (op) {
    case "register": {
      if (o + 2 > end) return null;
      const n = buf.readUInt16BE(o);
      if (n < EPH_MIN_SIZE || n > EPH_MAX_SIZE || o + 2 + n !== end) return null;
      return { op, id, eph: Buffer.from(buf.subarray(o + 2, end)) };
    }
    case "address":
    case "subnet": {
      const ip = readIp(buf, o, end);
      return ip === null ? null : { op, id, ip };
    }
    case "name": {
      if (o >= end) return null;
      const n = buf[o]!;
      if (n < 1 || n > MAX_DIR_NAME_LEN || o + 1 + n !== end) return null;
      const name = buf.toString("latin1", o + 1, end);
      return isValidName(name) ? { op, id, name } : null;
    }
    case "revocation":
      if (o + 8 !== end) return null;
      return { op, id, have: buf.readUInt32BE(o), offset: buf.readUInt32BE(o + 4) };
  }
}

/** Length of the chunk at `offset` of a list of `total` bytes (0: no such chunk). */
export function revChunkLength(total: number, offset: number): number {
  if (total < REV_MIN_SIZE || total > REV_MAX_SIZE || offset >= total || offset % REV_CHUNK_BYTES !== 0)
    return 0;
  return Math.min(REV_CHUNK_BYTES, total - offset);
}

// ------------------------------------------------------------------ responses

export function dirResponseSize(r: DirResponse): number {
  if (r.status !== "ok") return DIR_RESPONSE_HEADER_BYTES;
  if ("observed" in r) return DIR_RESPONSE_HEADER_BYTES + endpointSize(r.observed);
  if ("chunk" in r) return DIR_RESPONSE_HEADER_BYTES + 12 + r.chunk.length;
  const rec = r.record;
  return DIR_RESPONSE_HEADER_BYTES + 4 + rec.host.length + rec.eph.length + endpointSize(rec.observed);
}

export function encodeDirResponseInto(r: DirResponse, buf: Buffer, off: number): number {
  buf[off + DIR_OFFSET_VERSION] = DIR_VERSION;
  buf[off + DIR_OFFSET_OP] = OP_CODES[r.op];
  buf.writeUInt32BE(r.id >>> 0, off + DIR_OFFSET_ID);
  buf[off + DIR_OFFSET_STATUS] = STATUS_NAMES.indexOf(r.status);
  const o = off + DIR_RESPONSE_HEADER_BYTES;
  if (r.status !== "ok") return o;
  if ("observed" in r) return writeEndpoint(buf, o, r.observed);
  if ("chunk" in r) {
    if (revChunkLength(r.total, r.offset) !== r.chunk.length) throw new RangeError("revocation chunk");
    buf.writeUInt32BE(r.number >>> 0, o);
    buf.writeUInt32BE(r.total, o + 4);
    buf.writeUInt32BE(r.offset, o + 8);
    r.chunk.copy(buf, o + 12);
    return o + 12 + r.chunk.length;
  }
  const { host, eph, observed } = r.record;
  if (host.length < CERT_MIN_SIZE || host.length > CERT_MAX_SIZE) throw new RangeError("host cert size");
  if (eph.length < EPH_MIN_SIZE || eph.length > EPH_MAX_SIZE) throw new RangeError("eph size");
  buf.writeUInt16BE(host.length, o);
  host.copy(buf, o + 2);
  let p = o + 2 + host.length;
  buf.writeUInt16BE(eph.length, p);
  eph.copy(buf, p + 2);
  p += 2 + eph.length;
  return writeEndpoint(buf, p, observed);
}

export function encodeDirResponse(r: DirResponse): Buffer {
  const b = Buffer.alloc(dirResponseSize(r));
  encodeDirResponseInto(r, b, 0);
  return b;
}

export function decodeDirResponse(buf: Buffer, off: number, len: number): DirResponse | null {
  if (len < DIR_RESPONSE_HEADER_BYTES || len > DIR_RESPONSE_MAX_BYTES || off + len > buf.length) return null;
  if (buf[off + DIR_OFFSET_VERSION] !== DIR_VERSION) return null;
  const op = OP_NAMES[buf[off + DIR_OFFSET_OP]!];
  const status = STATUS_NAMES[buf[off + DIR_OFFSET_STATUS]!];
  if (!op || !status) return null;
  const id = buf.readUInt32BE(off + DIR_OFFSET_ID);
  const o = off + DIR_RESPONSE_HEADER_BYTES;
  const end = off + len;
  if (status !== "ok") return o === end ? { op, id, status } : null;
  if (op === "register") {
    const observed = readEndpoint(buf, o, end);
    return observed === undefined ? null : { op, id, status, observed };
  }
  if (op === "revocation") {
    if (o + 12 > end) return null;
    const total = buf.readUInt32BE(o + 4);
    const offset = buf.readUInt32BE(o + 8);
    const n = revChunkLength(total, offset);
    if (n === 0 || o + 12 + n !== end) return null;
    return {
      op,
      id,
      status,
      number: buf.readUInt32BE(o),
      total,
      offset,
      chunk: Buffer.from(buf.subarray(o + 12, end)),
    };
  }
  if (o + 2 > end) return null;
  const hl = buf.readUInt16BE(o);
  if (hl < CERT_MIN_SIZE || hl > CERT_MAX_SIZE || o + 2 + hl + 2 > end) return null;
  const p = o + 2 + hl;
  const el = buf.readUInt16BE(p);
  if (el < EPH_MIN_SIZE || el > EPH_MAX_SIZE || p + 2 + el > end) return null;
  const observed = readEndpoint(buf, p + 2 + el, end);
  if (observed === undefined) return null;
  return {
    op,
    id,
    status,
    record: {
      host: Buffer.from(buf.subarray(o + 2, p)),
      eph: Buffer.from(buf.subarray(p + 2, p + 2 + el)),
      observed,
    },
  };
}
