/**
 * Revocation list: which host keys, user keys and single certificates the CA has
 * withdrawn before their notAfter. Signed by the CA (Ed25519), so it can travel by
 * file, through the directory, or through any other untrusted channel: whoever
 * carries it can withhold it, never forge or shorten it.
 *
 * All integers are big-endian; times are unix seconds as uint32.
 *
 *   0       1       2       3       4
 *   +-------+-------+-------+-------+
 *   |version| flags |  count (u16)  |   version = 1; flags = 0; count 0..MAX_REVOKED
 *   +-------+-------+-------+-------+
 *   |        number (u32)           |   4   list number: each new list of a CA is higher
 *   +-------------------------------+
 *   |        issued (u32)           |   8   when the CA signed it
 *   +-------------------------------+
 *   |        nextUpdate (u32)       |   12  a newer list is due by then (issued < nextUpdate)
 *   +-------------------------------+
 *   |   issuer (CA Ed25519 pk, 32)  |   16
 *   +-------------------------------+
 *   | count entries of 33 bytes:     |   48
 *   |   kind (1) | value (32)        |   kind 2 host key, 3 user key (Ed25519 pk),
 *   |                               |        4 certificate (BLAKE2b-256 of its encoding)
 *   +-------------------------------+   entries strictly ascending by (kind, value)
 *   | signature (Ed25519, 64) over "mintun revocation v1" || all bytes above |
 *   +-------------------------------+
 *
 * A key entry revokes every certificate of that key (the host or user needs a new
 * key); a certificate entry revokes one certificate (a renewal of the same key
 * with another certificate stays valid).
 *
 * Which list wins: the one with the higher `number`, when it verifies against the CA.
 * A directory or a peer cannot sign, so it can only hand out a list the CA made; a
 * host never replaces its list with one of a lower or equal number, so nobody but
 * the CA can take an entry back (un-revoke) — the CA can, by issuing a higher list
 * without it.
 *
 * Decoding is strict and canonical (exact length, flags 0, sorted and unique
 * entries, issued < nextUpdate): encode(decode(b)) == b for every b that decodes.
 * Decoders never throw.
 */
import { CertError } from "../errors.js";
import {
  ED25519_PK_BYTES,
  ED25519_SK_BYTES,
  SIG_BYTES,
  equal,
  hash,
  sign,
  verify,
} from "../crypto/sodium.js";
import type { CaCert, Cert } from "./cert.js";

export const REVOCATION_VERSION = 1;

export const REV_OFFSET_VERSION = 0;
export const REV_OFFSET_FLAGS = 1;
export const REV_OFFSET_COUNT = 2;
export const REV_OFFSET_NUMBER = 4;
export const REV_OFFSET_ISSUED = 8;
export const REV_OFFSET_NEXT_UPDATE = 12;
export const REV_OFFSET_ISSUER = 16;
export const REV_OFFSET_ENTRIES = 48;
/** Header before the entries: 4 + 3 u32 + issuer = 48. */
export const REV_HEADER_SIZE = REV_OFFSET_ENTRIES;
/** One entry: kind (1) + key or certificate hash (32). */
export const REV_ENTRY_SIZE = 33;
/** Entries in one list (a list is at most 48 + 4096 * 33 + 64 = 135,280 bytes). */
export const MAX_REVOKED = 4096;
export const REV_MIN_SIZE = REV_HEADER_SIZE + SIG_BYTES;
export const REV_MAX_SIZE = REV_HEADER_SIZE + MAX_REVOKED * REV_ENTRY_SIZE + SIG_BYTES;

export const REV_KIND_HOST = 2;
export const REV_KIND_USER = 3;
export const REV_KIND_CERT = 4;
export type RevokedKind = "host" | "user" | "cert";

const DOMAIN = Buffer.from("mintun revocation v1", "ascii");
const U32_MAX = 0xffffffff;

export interface RevokedEntry {
  kind: RevokedKind;
  /** Ed25519 public key (host, user) or BLAKE2b-256 of the certificate's encoding (cert). */
  value: Buffer;
}

export interface RevocationFields {
  number: number;
  issued: number;
  nextUpdate: number;
  issuer: Buffer;
  entries: RevokedEntry[];
}

export interface RevocationList extends RevocationFields {
  signature: Buffer;
  /** Full encoding including the signature. */
  raw: Buffer;
}

export type RevocationVerifyFailure = "wrong-issuer" | "bad-signature";

function kindCode(k: RevokedKind): number {
  return k === "host" ? REV_KIND_HOST : k === "user" ? REV_KIND_USER : REV_KIND_CERT;
}

function kindName(c: number): RevokedKind | null {
  return c === REV_KIND_HOST ? "host" : c === REV_KIND_USER ? "user" : c === REV_KIND_CERT ? "cert" : null;
}

/** Orders entries as the encoding does: by kind code, then value bytes. */
export function compareEntries(a: RevokedEntry, b: RevokedEntry): number {
  return kindCode(a.kind) - kindCode(b.kind) || Buffer.compare(a.value, b.value);
}

/** The revocation value of a certificate itself (kind "cert"): BLAKE2b-256 of its encoding. */
export function certDigest(cert: Cert): Buffer {
  return hash([cert.raw]);
}

function bad(msg: string): never {
  throw new CertError("EBADREVOCATION", msg);
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= U32_MAX;
}

/** Checks fields; returns the entries sorted and de-duplicated (the canonical order). */
function normalize(f: RevocationFields): RevokedEntry[] {
  if (!isU32(f.number) || !isU32(f.issued) || !isU32(f.nextUpdate))
    bad("number and times must be uint32 (unix seconds)");
  if (f.issued >= f.nextUpdate) bad("nextUpdate must be after issued");
  if (f.issuer.length !== ED25519_PK_BYTES) bad("issuer key must be 32 bytes");
  const sorted = [...f.entries].sort(compareEntries);
  const out: RevokedEntry[] = [];
  for (const e of sorted) {
    if (kindName(kindCode(e.kind)) !== e.kind) bad(`unknown entry kind '${String(e.kind)}'`);
    if (e.value.length !== 32) bad("an entry's key or certificate hash must be 32 bytes");
    const last = out[out.length - 1];
    if (last && compareEntries(last, e) === 0) continue;
    out.push({ kind: e.kind, value: Buffer.from(e.value) });
  }
  if (out.length > MAX_REVOKED) bad(`at most ${MAX_REVOKED} entries in one list`);
  return out;
}

function writeBody(f: RevocationFields, entries: RevokedEntry[], buf: Buffer): number {
  buf[REV_OFFSET_VERSION] = REVOCATION_VERSION;
  buf[REV_OFFSET_FLAGS] = 0;
  buf.writeUInt16BE(entries.length, REV_OFFSET_COUNT);
  buf.writeUInt32BE(f.number, REV_OFFSET_NUMBER);
  buf.writeUInt32BE(f.issued, REV_OFFSET_ISSUED);
  buf.writeUInt32BE(f.nextUpdate, REV_OFFSET_NEXT_UPDATE);
  f.issuer.copy(buf, REV_OFFSET_ISSUER);
  let p = REV_OFFSET_ENTRIES;
  for (const e of entries) {
    buf[p] = kindCode(e.kind);
    e.value.copy(buf, p + 1);
    p += REV_ENTRY_SIZE;
  }
  return p;
}

/** Encoded size of a list with `count` entries. */
export function revocationSize(count: number): number {
  return REV_HEADER_SIZE + count * REV_ENTRY_SIZE + SIG_BYTES;
}

/**
 * Signs a revocation list with the CA's 64-byte Ed25519 secret key (whose public
 * half must be `fields.issuer`). Entries are sorted and duplicates dropped. Throws CertError.
 */
export function signRevocation(fields: RevocationFields, caSecretKey: Buffer): RevocationList {
  const entries = normalize(fields);
  if (caSecretKey.length !== ED25519_SK_BYTES) bad("CA secret key must be 64 bytes");
  if (!caSecretKey.subarray(32).equals(fields.issuer)) bad("CA secret key does not match the issuer key");
  const raw = Buffer.alloc(revocationSize(entries.length));
  const sigOff = writeBody(fields, entries, raw);
  sign(Buffer.concat([DOMAIN, raw.subarray(0, sigOff)]), caSecretKey).copy(raw, sigOff);
  const list = decodeRevocation(raw);
  if (!list) bad("internal: signed revocation list does not decode");
  return list;
}

/** Writes a signed list into buf at off; returns bytes written. Throws CertError. */
export function encodeRevocationInto(list: RevocationList, buf: Buffer, off: number): number {
  const entries = normalize(list);
  if (list.signature.length !== SIG_BYTES) bad("signature must be 64 bytes");
  const size = revocationSize(entries.length);
  if (off < 0 || buf.length - off < size) bad(`buffer too small for revocation list (${size} bytes)`);
  const body = Buffer.alloc(size);
  const p = writeBody(list, entries, body);
  list.signature.copy(body, p);
  body.copy(buf, off);
  return size;
}

export function encodeRevocation(list: RevocationList): Buffer {
  const buf = Buffer.alloc(revocationSize(normalize(list).length));
  encodeRevocationInto(list, buf, 0);
  return buf;
}

/** Decodes a revocation list; null on any malformed or non-canonical input. Never throws. */
export function decodeRevocation(input: Buffer): RevocationList | null {
  if (input.length < REV_MIN_SIZE || input.length > REV_MAX_SIZE) return null;
  if (input[REV_OFFSET_VERSION] !== REVOCATION_VERSION || input[REV_OFFSET_FLAGS] !== 0) return null;
  const count = input.readUInt16BE(REV_OFFSET_COUNT);
  if (count > MAX_REVOKED || input.length !== revocationSize(count)) return null;
  const buf = Buffer.from(input); // own copy: callers may reuse packet buffers
  const issued = buf.readUInt32BE(REV_OFFSET_ISSUED);
  const nextUpdate = buf.readUInt32BE(REV_OFFSET_NEXT_UPDATE);
  if (issued >= nextUpdate) return null;
  const entries: RevokedEntry[] = [];
  let p = REV_OFFSET_ENTRIES;
  for (let i = 0; i < count; i++) {
    const kind = kindName(buf[p]!);
    if (!kind) return null;
    const e = { kind, value: buf.subarray(p + 1, p + REV_ENTRY_SIZE) };
    const last = entries[entries.length - 1];
    if (last && compareEntries(last, e) >= 0) return null; // sorted, unique
    entries.push(e);
    p += REV_ENTRY_SIZE;
  }
  return {
    number: buf.readUInt32BE(REV_OFFSET_NUMBER),
    issued,
    nextUpdate,
    issuer: buf.subarray(REV_OFFSET_ISSUER, REV_OFFSET_ISSUER + ED25519_PK_BYTES),
    entries,
    signature: buf.subarray(p),
    raw: buf,
  };
}

/** Checks the list is the CA's: issued by its key, signature valid. Times are not judged here. */
export function verifyRevocation(
  list: RevocationList,
  ca: CaCert,
): { ok: true } | { ok: false; reason: RevocationVerifyFailure } {
  if (!equal(list.issuer, ca.publicKey)) return { ok: false, reason: "wrong-issuer" };
  const body = list.raw.subarray(0, list.raw.length - SIG_BYTES);
  if (!verify(list.signature, Buffer.concat([DOMAIN, body]), ca.publicKey))
    return { ok: false, reason: "bad-signature" };
  return { ok: true };
}

/**
 * A verified list, indexed for lookups. `revoked(cert)` is what tunnel creation,
 * connection setup and the timer ask.
 */
export class RevocationIndex {
  private readonly keys = new Set<string>();
  private readonly certs = new Set<string>();

  constructor(readonly list: RevocationList) {
    for (const e of list.entries) {
      const hex = e.value.toString("hex");
      if (e.kind === "cert") this.certs.add(hex);
      else this.keys.add(`${e.kind}:${hex}`);
    }
  }

  get number(): number {
    return this.list.number;
  }

  /** Whether this host or user certificate is revoked (by its key or by itself). */
  revoked(cert: Cert): boolean {
    if (cert.kind === "ca") return false;
    if (this.keys.has(`${cert.kind}:${cert.publicKey.toString("hex")}`)) return true;
    return this.certs.size > 0 && this.certs.has(certDigest(cert).toString("hex"));
  }

  /** Whether a host or user key is revoked as a key (all its certificates). */
  keyRevoked(kind: "host" | "user", publicKey: Buffer): boolean {
    return this.keys.has(`${kind}:${publicKey.toString("hex")}`);
  }
}

/**
 * Whether `next` may replace `current`: it must verify against the CA and carry a
 * higher number. Never un-revokes on anyone's word but the CA's.
 */
export function isNewerRevocation(current: RevocationList | null, next: RevocationList): boolean {
  return current === null || next.number > current.number;
}
