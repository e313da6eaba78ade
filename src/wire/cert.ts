/**
 * Certificates: one binary codec for CA, host and user certificates, and one for
 * ephemeral (per-epoch X25519) certificates. Both are sent inside the first tunnel
 * packet, so they are compact (a typical host certificate is ~170 bytes).
 *
 * All integers are big-endian. Times are unix seconds as uint32 (valid until 2106).
 *
 * Certificate (CA / host / user), CERT_FIXED_SIZE + variable part + signature:
 *
 *   0       1       2       3       4
 *   +-------+-------+-------+-------+
 *   |version| kind  | flags |nameLen|   version = 1; kind 1=ca 2=host 3=user
 *   +-------+-------+-------+-------+   flags: bit0 ip4 present, bit1 ip6 present (host only)
 *   |          notBefore (u32)      |   4
 *   +-------------------------------+
 *   |          notAfter (u32)       |   8
 *   +-------------------------------+
 *   |   publicKey (Ed25519, 32)     |   12
 *   +-------------------------------+
 *   |   issuer (CA Ed25519 pk, 32)  |   44   (a CA: equal to publicKey)
 *   +-------------------------------+
 *   |   name (nameLen bytes ASCII)  |   76
 *   +-------------------------------+
 *   |   ip4 (4)      if flags bit0  |
 *   |   ip6 (16)     if flags bit1  |
 *   +-------------------------------+
 *   | groupCount (1) | per group: len (1) + ASCII                    |
 *   +--------------------------------------------------------------+
 *   | host only: subnetCount (1) | per subnet: family (1: 4 or 6),  |
 *   |            prefixLen (1), address (4 or 16, host bits zero)   |
 *   +--------------------------------------------------------------+
 *   |   signature (Ed25519, 64) over "mintun cert v1" || all bytes above |
 *   +--------------------------------------------------------------+
 *
 * Ephemeral certificate, EPH_FIXED_SIZE + endpoints + signature:
 *
 *   0       1       2               4
 *   +-------+-------+---------------+
 *   |version| proto | minFirstPacket|   version = 1; proto = protocol version (u8)
 *   +-------+-------+---------------+
 *   |          keyId (u32)          |   4
 *   |          notBefore (u32)      |   8
 *   |          notAfter (u32)       |   12
 *   |   hostKey (Ed25519 pk, 32)    |   16
 *   |   publicKey (X25519, 32)      |   48
 *   +-------+-----------------------+
 *   |epCount|                           80   (0..8)
 *   +-------+-----------------------+
 *   | per endpoint: family (1: 4 or 6), address (4 or 16), port (u16) |
 *   +--------------------------------------------------------------+
 *   |   signature (Ed25519, 64) over "mintun eph v1" || all bytes above |
 *   +--------------------------------------------------------------+
 *
 * Decoding is strict and canonical: exact length, no unknown flag bits, valid names,
 * no duplicate groups or subnets, host bits of subnets zero, notBefore < notAfter.
 * Hence encode(decode(b)) == b for every b that decodes. Decoders never throw.
 */
import { CertError } from "../errors.js";
import {
  ED25519_PK_BYTES,
  ED25519_SK_BYTES,
  SIG_BYTES,
  X25519_BYTES,
  equal,
  hash,
  sign,
  verify,
} from "../crypto/sodium.js";

export const CERT_VERSION = 1;
export const EPH_VERSION = 1;

export const CERT_KIND_CA = 1;
export const CERT_KIND_HOST = 2;
export const CERT_KIND_USER = 3;

export const CERT_FLAG_IP4 = 0x01;
export const CERT_FLAG_IP6 = 0x02;

export const CERT_OFFSET_VERSION = 0;
export const CERT_OFFSET_KIND = 1;
export const CERT_OFFSET_FLAGS = 2;
export const CERT_OFFSET_NAME_LEN = 3;
export const CERT_OFFSET_NOT_BEFORE = 4;
export const CERT_OFFSET_NOT_AFTER = 8;
export const CERT_OFFSET_PUBLIC_KEY = 12;
export const CERT_OFFSET_ISSUER = 44;
export const CERT_OFFSET_NAME = 76;
/** Bytes before the name: version, kind, flags, nameLen, 2 times, 2 keys = 4+8+64. */
export const CERT_FIXED_SIZE = CERT_OFFSET_NAME;
/** Smallest possible certificate: fixed part + 1-byte name + group count + signature (user/ca). */
export const CERT_MIN_SIZE = CERT_FIXED_SIZE + 1 + 1 + SIG_BYTES;
/** Largest: 63-byte name, ip4+ip6, 16 groups of 32, 16 IPv6 subnets = 76+63+20+1+16*33+1+16*18+64. */
export const CERT_MAX_SIZE =
  CERT_FIXED_SIZE + 63 + 4 + 16 + 1 + 16 * (1 + 32) + 1 + 16 * (2 + 16) + SIG_BYTES;

export const EPH_OFFSET_VERSION = 0;
export const EPH_OFFSET_PROTOCOL = 1;
export const EPH_OFFSET_MIN_FIRST_PACKET = 2;
export const EPH_OFFSET_KEY_ID = 4;
export const EPH_OFFSET_NOT_BEFORE = 8;
export const EPH_OFFSET_NOT_AFTER = 12;
export const EPH_OFFSET_HOST_KEY = 16;
export const EPH_OFFSET_PUBLIC_KEY = 48;
export const EPH_OFFSET_ENDPOINT_COUNT = 80;
export const EPH_FIXED_SIZE = 81;
export const EPH_MIN_SIZE = EPH_FIXED_SIZE + SIG_BYTES; // 145, no endpoints
/** 8 IPv6 endpoints of 1 + 16 + 2 bytes. */
export const EPH_MAX_SIZE = EPH_FIXED_SIZE + 8 * 19 + SIG_BYTES;

export const MAX_NAME_LEN = 63;
export const MAX_GROUP_LEN = 32;
export const MAX_GROUPS = 16;
export const MAX_SUBNETS = 16;
export const MAX_ENDPOINTS = 8;

const CERT_DOMAIN = Buffer.from("mintun cert v1", "ascii");
const EPH_DOMAIN = Buffer.from("mintun eph v1", "ascii");

const NAME_RE = /^[a-z0-9][a-z0-9.-]*$/;
const GROUP_RE = /^[a-z0-9][a-z0-9_.-]*$/;
const U32_MAX = 0xffffffff;

export type CertKind = "ca" | "host" | "user";

export interface CertBase {
  kind: CertKind;
  name: string;
  publicKey: Buffer; // Ed25519, 32
  groups: string[];
  notBefore: number; // unix seconds
  notAfter: number;
  issuer: Buffer; // CA Ed25519 pk, 32; for a CA: itself
  signature: Buffer; // 64
  raw: Buffer; // full encoding including the signature
}
export interface HostCert extends CertBase {
  kind: "host";
  ip4: string | null;
  ip6: string | null;
  subnets: string[]; // canonical CIDRs, v4 or v6
}
export interface UserCert extends CertBase {
  kind: "user";
}
export interface CaCert extends CertBase {
  kind: "ca";
}
export type Cert = HostCert | UserCert | CaCert;
export type CertFields =
  | Omit<HostCert, "signature" | "raw">
  | Omit<UserCert, "signature" | "raw">
  | Omit<CaCert, "signature" | "raw">;

export interface Endpoint {
  ip: string;
  port: number;
}
export interface EphemeralCert {
  hostKey: Buffer; // Ed25519 pk of the host, 32
  keyId: number; // u32
  publicKey: Buffer; // X25519, 32
  notBefore: number;
  notAfter: number;
  endpoints: Endpoint[]; // 0..8
  protocolVersion: number; // u8
  minFirstPacket: number; // u16
  signature: Buffer;
  raw: Buffer;
}
export type EphemeralFields = Omit<EphemeralCert, "signature" | "raw">;

export type VerifyFailure =
  | "wrong-kind" // cert or CA of an unexpected kind
  | "wrong-issuer" // cert not issued by this CA
  | "wrong-host" // ephemeral cert names another host key
  | "bad-signature"
  | "ca-bad-signature" // the CA certificate's self-signature is invalid
  | "expired"
  | "not-yet-valid"
  | "ca-expired"
  | "ca-not-yet-valid";
export type VerifyResult = { ok: true } | { ok: false; reason: VerifyFailure };

// ---------------------------------------------------------------------------
// Addresses (shared with config and CLI validation)

// Addresses are parsed and formatted by the one IP module (src/ip/ip.ts).
import {
  formatIp4,
  formatIp6,
  hostBitsZero,
  parseCidr,
  parseIp,
  parseIp4,
  parseIp6,
  type ParsedCidr,
  type ParsedIp,
} from "../ip/ip.js";

export function isValidName(s: string): boolean {
  return s.length >= 1 && s.length <= MAX_NAME_LEN && NAME_RE.test(s);
}

export function isValidGroup(s: string): boolean {
  return s.length >= 1 && s.length <= MAX_GROUP_LEN && GROUP_RE.test(s);
}

/** Short printable id of a public key: first 16 hex chars of BLAKE2b-256(pk). */
export function fingerprint(publicKey: Buffer): string {
  return hash([publicKey]).subarray(0, 8).toString("hex");
}

// ---------------------------------------------------------------------------
// Certificates

function kindCode(kind: CertKind): number {
  return kind === "ca" ? CERT_KIND_CA : kind === "host" ? CERT_KIND_HOST : CERT_KIND_USER;
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= U32_MAX;
}

function bad(msg: string): never {
  throw new CertError("EBADCERT", msg);
}

interface NormalizedHost {
  ip4: Buffer | null;
  ip6: Buffer | null;
  subnets: ParsedCidr[];
}

/** Checks every field (throws CertError) and returns the parsed addresses of a host cert. */
function checkCertFields(f: CertFields): NormalizedHost | null {
  if (f.kind !== "ca" && f.kind !== "host" && f.kind !== "user") bad(`unknown certificate kind`);
  if (!isValidName(f.name))
    bad(`invalid name '${f.name}': 1..${MAX_NAME_LEN} chars of [a-z0-9.-], starting with [a-z0-9]`);
  if (f.publicKey.length !== ED25519_PK_BYTES) bad("public key must be 32 bytes");
  if (f.issuer.length !== ED25519_PK_BYTES) bad("issuer key must be 32 bytes");
  if (f.kind === "ca" && !f.issuer.equals(f.publicKey)) bad("a CA certificate must be self-issued");
  if (!isU32(f.notBefore) || !isU32(f.notAfter)) bad("validity times must be uint32 unix seconds");
  if (f.notBefore >= f.notAfter) bad("notBefore must be before notAfter");
  if (f.groups.length > MAX_GROUPS) bad(`at most ${MAX_GROUPS} groups`);
  const seen = new Set<string>();
  for (const g of f.groups) {
    if (!isValidGroup(g))
      bad(`invalid group '${g}': 1..${MAX_GROUP_LEN} chars of [a-z0-9_.-], starting with [a-z0-9]`);
    if (seen.has(g)) bad(`duplicate group '${g}'`);
    seen.add(g);
  }
  if (f.kind !== "host") return null;
  const ip4 = f.ip4 === null ? null : parseIp4(f.ip4);
  if (f.ip4 !== null && !ip4) bad(`invalid IPv4 address '${f.ip4}'`);
  const ip6 = f.ip6 === null ? null : parseIp6(f.ip6);
  if (f.ip6 !== null && !ip6) bad(`invalid IPv6 address '${f.ip6}'`);
  if (f.subnets.length > MAX_SUBNETS) bad(`at most ${MAX_SUBNETS} subnets`);
  const subnets: ParsedCidr[] = [];
  const seenNets = new Set<string>();
  for (const s of f.subnets) {
    const c = parseCidr(s);
    if (!c) bad(`invalid subnet '${s}': expected a CIDR with zero host bits, e.g. 10.1.0.0/16`);
    if (seenNets.has(c.text)) bad(`duplicate subnet '${s}'`);
    seenNets.add(c.text);
    subnets.push(c);
  }
  return { ip4, ip6, subnets };
}

function sizeOf(f: CertFields, h: NormalizedHost | null): number {
  let n = CERT_FIXED_SIZE + Buffer.byteLength(f.name, "ascii") + 1 + SIG_BYTES;
  for (const g of f.groups) n += 1 + g.length;
  if (h) {
    if (h.ip4) n += 4;
    if (h.ip6) n += 16;
    n += 1;
    for (const s of h.subnets) n += 2 + s.bytes.length;
  }
  return n;
}

/** Encoded size of a certificate with these fields (throws CertError if invalid). */
export function certSize(f: CertFields): number {
  return sizeOf(f, checkCertFields(f));
}

/** Writes the body (everything but the signature); returns the offset where the signature goes. */
function writeBody(f: CertFields, h: NormalizedHost | null, buf: Buffer, off: number): number {
  buf[off + CERT_OFFSET_VERSION] = CERT_VERSION;
  buf[off + CERT_OFFSET_KIND] = kindCode(f.kind);
  buf[off + CERT_OFFSET_FLAGS] = h ? (h.ip4 ? CERT_FLAG_IP4 : 0) | (h.ip6 ? CERT_FLAG_IP6 : 0) : 0;
  buf[off + CERT_OFFSET_NAME_LEN] = f.name.length;
  buf.writeUInt32BE(f.notBefore, off + CERT_OFFSET_NOT_BEFORE);
  buf.writeUInt32BE(f.notAfter, off + CERT_OFFSET_NOT_AFTER);
  f.publicKey.copy(buf, off + CERT_OFFSET_PUBLIC_KEY);
  f.issuer.copy(buf, off + CERT_OFFSET_ISSUER);
  let p = off + CERT_OFFSET_NAME;
  p += buf.write(f.name, p, "ascii");
  if (h?.ip4) p += h.ip4.copy(buf, p);
  if (h?.ip6) p += h.ip6.copy(buf, p);
  buf[p++] = f.groups.length;
  for (const g of f.groups) {
    buf[p++] = g.length;
    p += buf.write(g, p, "ascii");
  }
  if (h) {
    buf[p++] = h.subnets.length;
    for (const s of h.subnets) {
      buf[p++] = s.family;
      buf[p++] = s.prefix;
      p += s.bytes.copy(buf, p);
    }
  }
  return p;
}

/**
 * Encodes a signed certificate from its fields and signature into buf at off.
 * Returns the number of bytes written. Throws CertError on invalid fields or a
 * too-small buffer.
 */
export function encodeCertInto(cert: Cert, buf: Buffer, off: number): number {
  const h = checkCertFields(cert);
  const size = sizeOf(cert, h);
  if (cert.signature.length !== SIG_BYTES) bad("signature must be 64 bytes");
  if (off < 0 || buf.length - off < size) bad(`buffer too small for certificate (${size} bytes)`);
  const p = writeBody(cert, h, buf, off);
  cert.signature.copy(buf, p);
  return size;
}

export function encodeCert(cert: Cert): Buffer {
  const buf = Buffer.alloc(certSize(cert));
  encodeCertInto(cert, buf, 0);
  return buf;
}

/**
 * Signs a certificate. The issuer secret key is the 64-byte libsodium Ed25519 key
 * whose public half must equal `fields.issuer`. Address and CIDR strings in the
 * result are canonical (what decodeCert would return). Throws CertError.
 */
export function signCert(fields: CertFields, issuerSecretKey: Buffer): Cert {
  const h = checkCertFields(fields);
  if (issuerSecretKey.length !== ED25519_SK_BYTES) bad("issuer secret key must be 64 bytes");
  if (!issuerSecretKey.subarray(32).equals(fields.issuer))
    bad("issuer secret key does not match the issuer public key");
  const raw = Buffer.alloc(sizeOf(fields, h));
  const sigOff = writeBody(fields, h, raw, 0);
  const signature = sign(Buffer.concat([CERT_DOMAIN, raw.subarray(0, sigOff)]), issuerSecretKey);
  signature.copy(raw, sigOff);
  const cert = decodeCert(raw);
  if (!cert) bad("internal: signed certificate does not decode");
  return cert;
}

/** Decodes a certificate; null on any malformed or non-canonical input. Never throws. */
export function decodeCert(input: Buffer): Cert | null {
  if (input.length < CERT_MIN_SIZE || input.length > CERT_MAX_SIZE) return null;
  const buf = Buffer.from(input); // own copy: callers may reuse packet buffers
  const end = buf.length - SIG_BYTES; // body end
  if (buf[CERT_OFFSET_VERSION] !== CERT_VERSION) return null;
  const kindByte = buf[CERT_OFFSET_KIND];
  const kind: CertKind | null =
    kindByte === CERT_KIND_CA
      ? "ca"
      : kindByte === CERT_KIND_HOST
        ? "host"
        : kindByte === CERT_KIND_USER
          ? "user"
          : null;
  if (!kind) return null;
  const flags = buf[CERT_OFFSET_FLAGS]!;
  if (kind === "host" ? (flags & ~(CERT_FLAG_IP4 | CERT_FLAG_IP6)) !== 0 : flags !== 0) return null;
  const nameLen = buf[CERT_OFFSET_NAME_LEN]!;
  const notBefore = buf.readUInt32BE(CERT_OFFSET_NOT_BEFORE);
  const notAfter = buf.readUInt32BE(CERT_OFFSET_NOT_AFTER);
  if (notBefore >= notAfter) return null;
  const publicKey = buf.subarray(CERT_OFFSET_PUBLIC_KEY, CERT_OFFSET_PUBLIC_KEY + ED25519_PK_BYTES);
  const issuer = buf.subarray(CERT_OFFSET_ISSUER, CERT_OFFSET_ISSUER + ED25519_PK_BYTES);
  if (kind === "ca" && !publicKey.equals(issuer)) return null;
  let p = CERT_OFFSET_NAME;
  if (nameLen < 1 || nameLen > MAX_NAME_LEN || p + nameLen > end) return null;
  const name = buf.toString("latin1", p, p + nameLen);
  if (!NAME_RE.test(name)) return null;
  p += nameLen;
  let ip4: string | null = null;
  let ip6: string | null = null;
  if (flags & CERT_FLAG_IP4) {
    if (p + 4 > end) return null;
    ip4 = formatIp4(buf, p);
    p += 4;
  }
  if (flags & CERT_FLAG_IP6) {
    if (p + 16 > end) return null;
    ip6 = formatIp6(buf, p);
    p += 16;
  }
  if (p + 1 > end) return null;
  const groupCount = buf[p++]!;
  if (groupCount > MAX_GROUPS) return null;
  const groups: string[] = [];
  for (let i = 0; i < groupCount; i++) {
    if (p + 1 > end) return null;
    const len = buf[p++]!;
    if (len < 1 || len > MAX_GROUP_LEN || p + len > end) return null;
    const g = buf.toString("latin1", p, p + len);
    if (!GROUP_RE.test(g) || groups.includes(g)) return null;
    groups.push(g);
    p += len;
  }
  const subnets: string[] = [];
  if (kind === "host") {
    if (p + 1 > end) return null;
    const count = buf[p++]!;
    if (count > MAX_SUBNETS) return null;
    for (let i = 0; i < count; i++) {
      if (p + 2 > end) return null;
      const family = buf[p]!;
      const prefix = buf[p + 1]!;
      const alen = family === 4 ? 4 : family === 6 ? 16 : 0;
      if (alen === 0 || prefix > alen * 8 || p + 2 + alen > end) return null;
      if (!hostBitsZero(buf, p + 2, alen, prefix)) return null;
      const text = `${alen === 4 ? formatIp4(buf, p + 2) : formatIp6(buf, p + 2)}/${prefix}`;
      if (subnets.includes(text)) return null;
      subnets.push(text);
      p += 2 + alen;
    }
  }
  if (p !== end) return null;
  const signature = buf.subarray(end);
  const base = { name, publicKey, groups, notBefore, notAfter, issuer, signature, raw: buf };
  if (kind === "host") return { kind, ...base, ip4, ip6, subnets };
  return { kind, ...base };
}

function inValidity(nb: number, na: number, now: number): "expired" | "not-yet-valid" | null {
  if (now < nb) return "not-yet-valid";
  if (now >= na) return "expired";
  return null;
}

function certSignatureOk(cert: Cert, key: Buffer): boolean {
  const raw = cert.raw;
  if (raw.length < SIG_BYTES) return false;
  const body = raw.subarray(0, raw.length - SIG_BYTES);
  return verify(cert.signature, Buffer.concat([CERT_DOMAIN, body]), key);
}

/**
 * The trusted CA's self-signature, verified once per CA object: a CA whose signature
 * verified is remembered with copies of the bytes the check used (encoding, key,
 * signature); any of them changed and it is verified again. Every verifyCert checked it
 * before: one Ed25519 verification more on each certificate check of the creation path
 * (issue 19, first packets).
 */
const caSelfOk = new WeakMap<CaCert, { raw: Buffer; pk: Buffer; sig: Buffer }>();
function caSelfSignatureOk(ca: CaCert): boolean {
  const s = caSelfOk.get(ca);
  if (s && s.raw.equals(ca.raw) && s.pk.equals(ca.publicKey) && s.sig.equals(ca.signature)) return true;
  if (!certSignatureOk(ca, ca.publicKey)) return false;
  caSelfOk.set(ca, {
    raw: Buffer.from(ca.raw),
    pk: Buffer.from(ca.publicKey),
    sig: Buffer.from(ca.signature),
  });
  return true;
}

/**
 * Verifies `cert` against the trusted CA certificate at time `nowSec`: the CA must be
 * a valid self-signed CA cert; host and user certs must be issued by the CA's key, carry
 * a valid signature, and lie within both their own and the CA's validity. A CA cert
 * verifies against itself only. Cheap checks run before signatures.
 * Validity is the half-open interval [notBefore, notAfter).
 */
export function verifyCert(cert: Cert, ca: CaCert, nowSec: number): VerifyResult {
  if (ca.kind !== "ca") return { ok: false, reason: "wrong-kind" };
  if (cert.kind === "ca" && !equal(cert.publicKey, ca.publicKey)) return { ok: false, reason: "wrong-kind" };
  if (!equal(cert.issuer, ca.publicKey)) return { ok: false, reason: "wrong-issuer" };
  const caTime = inValidity(ca.notBefore, ca.notAfter, nowSec);
  if (caTime) return { ok: false, reason: caTime === "expired" ? "ca-expired" : "ca-not-yet-valid" };
  const t = inValidity(cert.notBefore, cert.notAfter, nowSec);
  if (t) return { ok: false, reason: t };
  if (!equal(ca.issuer, ca.publicKey) || !caSelfSignatureOk(ca))
    return { ok: false, reason: "ca-bad-signature" };
  if (cert !== ca && !certSignatureOk(cert, ca.publicKey)) return { ok: false, reason: "bad-signature" };
  return { ok: true };
}

// ---------------------------------------------------------------------------
// Ephemeral certificates

interface NormalizedEndpoint {
  ip: ParsedIp;
  port: number;
}

function checkEphemeralFields(f: EphemeralFields): NormalizedEndpoint[] {
  if (f.hostKey.length !== ED25519_PK_BYTES) bad("host key must be 32 bytes");
  if (f.publicKey.length !== X25519_BYTES) bad("ephemeral public key must be 32 bytes");
  if (!isU32(f.keyId)) bad("keyId must be a uint32");
  if (!isU32(f.notBefore) || !isU32(f.notAfter)) bad("validity times must be uint32 unix seconds");
  if (f.notBefore >= f.notAfter) bad("notBefore must be before notAfter");
  if (!Number.isInteger(f.protocolVersion) || f.protocolVersion < 0 || f.protocolVersion > 0xff)
    bad("protocolVersion must be a uint8");
  if (!Number.isInteger(f.minFirstPacket) || f.minFirstPacket < 0 || f.minFirstPacket > 0xffff)
    bad("minFirstPacket must be a uint16");
  if (f.endpoints.length > MAX_ENDPOINTS) bad(`at most ${MAX_ENDPOINTS} endpoints`);
  return f.endpoints.map((e) => {
    const ip = parseIp(e.ip);
    if (!ip) bad(`invalid endpoint address '${e.ip}'`);
    if (!Number.isInteger(e.port) || e.port < 1 || e.port > 0xffff) bad(`invalid endpoint port ${e.port}`);
    return { ip, port: e.port };
  });
}

function ephSize(eps: NormalizedEndpoint[]): number {
  let n = EPH_FIXED_SIZE + SIG_BYTES;
  for (const e of eps) n += 1 + e.ip.bytes.length + 2;
  return n;
}

export function ephemeralSize(f: EphemeralFields): number {
  return ephSize(checkEphemeralFields(f));
}

function writeEphBody(f: EphemeralFields, eps: NormalizedEndpoint[], buf: Buffer, off: number): number {
  buf[off + EPH_OFFSET_VERSION] = EPH_VERSION;
  buf[off + EPH_OFFSET_PROTOCOL] = f.protocolVersion;
  buf.writeUInt16BE(f.minFirstPacket, off + EPH_OFFSET_MIN_FIRST_PACKET);
  buf.writeUInt32BE(f.keyId, off + EPH_OFFSET_KEY_ID);
  buf.writeUInt32BE(f.notBefore, off + EPH_OFFSET_NOT_BEFORE);
  buf.writeUInt32BE(f.notAfter, off + EPH_OFFSET_NOT_AFTER);
  f.hostKey.copy(buf, off + EPH_OFFSET_HOST_KEY);
  f.publicKey.copy(buf, off + EPH_OFFSET_PUBLIC_KEY);
  buf[off + EPH_OFFSET_ENDPOINT_COUNT] = eps.length;
  let p = off + EPH_FIXED_SIZE;
  for (const e of eps) {
    buf[p++] = e.ip.family;
    p += e.ip.bytes.copy(buf, p);
    buf.writeUInt16BE(e.port, p);
    p += 2;
  }
  return p;
}

/** Encodes a signed ephemeral certificate into buf at off; returns bytes written. Throws CertError. */
export function encodeEphemeralInto(e: EphemeralCert, buf: Buffer, off: number): number {
  const eps = checkEphemeralFields(e);
  const size = ephSize(eps);
  if (e.signature.length !== SIG_BYTES) bad("signature must be 64 bytes");
  if (off < 0 || buf.length - off < size) bad(`buffer too small for ephemeral certificate (${size} bytes)`);
  const p = writeEphBody(e, eps, buf, off);
  e.signature.copy(buf, p);
  return size;
}

export function encodeEphemeral(e: EphemeralCert): Buffer {
  const buf = Buffer.alloc(ephemeralSize(e));
  encodeEphemeralInto(e, buf, 0);
  return buf;
}

/** Signs an ephemeral certificate with the host's 64-byte Ed25519 secret key. Throws CertError. */
export function signEphemeral(fields: EphemeralFields, hostSecretKey: Buffer): EphemeralCert {
  const eps = checkEphemeralFields(fields);
  if (hostSecretKey.length !== ED25519_SK_BYTES) bad("host secret key must be 64 bytes");
  if (!hostSecretKey.subarray(32).equals(fields.hostKey)) bad("host secret key does not match hostKey");
  const raw = Buffer.alloc(ephSize(eps));
  const sigOff = writeEphBody(fields, eps, raw, 0);
  sign(Buffer.concat([EPH_DOMAIN, raw.subarray(0, sigOff)]), hostSecretKey).copy(raw, sigOff);
  const e = decodeEphemeral(raw);
  if (!e) bad("internal: signed ephemeral certificate does not decode");
  return e;
}

/** Decodes an ephemeral certificate; null on any malformed input. Never throws. */
export function decodeEphemeral(input: Buffer): EphemeralCert | null {
  if (input.length < EPH_MIN_SIZE || input.length > EPH_MAX_SIZE) return null;
  const buf = Buffer.from(input);
  const end = buf.length - SIG_BYTES;
  if (buf[EPH_OFFSET_VERSION] !== EPH_VERSION) return null;
  const notBefore = buf.readUInt32BE(EPH_OFFSET_NOT_BEFORE);
  const notAfter = buf.readUInt32BE(EPH_OFFSET_NOT_AFTER);
  if (notBefore >= notAfter) return null;
  const count = buf[EPH_OFFSET_ENDPOINT_COUNT]!;
  if (count > MAX_ENDPOINTS) return null;
  const endpoints: Endpoint[] = [];
  let p = EPH_FIXED_SIZE;
  for (let i = 0; i < count; i++) {
    if (p + 1 > end) return null;
    const family = buf[p]!;
    const alen = family === 4 ? 4 : family === 6 ? 16 : 0;
    if (alen === 0 || p + 1 + alen + 2 > end) return null;
    const ip = alen === 4 ? formatIp4(buf, p + 1) : formatIp6(buf, p + 1);
    const port = buf.readUInt16BE(p + 1 + alen);
    if (port === 0) return null;
    endpoints.push({ ip, port });
    p += 1 + alen + 2;
  }
  if (p !== end) return null;
  return {
    hostKey: buf.subarray(EPH_OFFSET_HOST_KEY, EPH_OFFSET_HOST_KEY + ED25519_PK_BYTES),
    keyId: buf.readUInt32BE(EPH_OFFSET_KEY_ID),
    publicKey: buf.subarray(EPH_OFFSET_PUBLIC_KEY, EPH_OFFSET_PUBLIC_KEY + X25519_BYTES),
    notBefore,
    notAfter,
    endpoints,
    protocolVersion: buf[EPH_OFFSET_PROTOCOL]!,
    minFirstPacket: buf.readUInt16BE(EPH_OFFSET_MIN_FIRST_PACKET),
    signature: buf.subarray(end),
    raw: buf,
  };
}

/**
 * Verifies an ephemeral certificate against the host certificate it claims: the
 * host key must match, `nowSec` must lie in [notBefore, notAfter), and the signature
 * must be the host key's. The host certificate itself is checked with verifyCert.
 */
export function verifyEphemeral(e: EphemeralCert, host: HostCert, nowSec: number): VerifyResult {
  if (host.kind !== "host") return { ok: false, reason: "wrong-kind" };
  if (!equal(e.hostKey, host.publicKey)) return { ok: false, reason: "wrong-host" };
  const t = inValidity(e.notBefore, e.notAfter, nowSec);
  if (t) return { ok: false, reason: t };
  if (e.raw.length < EPH_MIN_SIZE) return { ok: false, reason: "bad-signature" };
  const body = e.raw.subarray(0, e.raw.length - SIG_BYTES);
  if (!verify(e.signature, Buffer.concat([EPH_DOMAIN, body]), host.publicKey))
    return { ok: false, reason: "bad-signature" };
  return { ok: true };
}
