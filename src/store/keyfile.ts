/**
 * Key and certificate files: armored text, PEM-like.
 *
 *   -----BEGIN MINTUN ED25519 SECRET KEY-----
 *   <base64 of the 64-byte libsodium secret key (seed || public key), 64-char lines>
 *   -----END MINTUN ED25519 SECRET KEY-----
 *
 * Labels: "MINTUN ED25519 SECRET KEY", "MINTUN ED25519 PUBLIC KEY" (32 bytes),
 * "MINTUN CA CERTIFICATE", "MINTUN HOST CERTIFICATE", "MINTUN USER CERTIFICATE"
 * (the binary encoding of src/wire/cert.ts). Text outside the armor is ignored.
 *
 * Secret key files are written 0600 into a directory created 0700, via a temp file
 * and link/rename, and are refused on read when group or others have any access.
 * Secrets are never put into error messages; buffers holding them are zeroed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CertError } from "../errors.js";
import { decodeCert, type Cert, type CertKind } from "../wire/cert.js";
import { decodeRevocation, type RevocationList } from "../wire/revocation.js";
import {
  ED25519_PK_BYTES,
  ED25519_SEED_BYTES,
  ED25519_SK_BYTES,
  randomBytes,
  signKeyPair,
  zero,
} from "../crypto/sodium.js";

export const LABEL_SECRET_KEY = "MINTUN ED25519 SECRET KEY";
export const LABEL_PUBLIC_KEY = "MINTUN ED25519 PUBLIC KEY";
export const CERT_LABELS: Record<CertKind, string> = {
  ca: "MINTUN CA CERTIFICATE",
  host: "MINTUN HOST CERTIFICATE",
  user: "MINTUN USER CERTIFICATE",
};

/** Largest key/cert file we read (certificates are < 2 KiB). */
const MAX_FILE_BYTES = 64 * 1024;
/** Largest revocation list file: REV_MAX_SIZE (135,280 bytes) as base64 lines, with room. */
const MAX_REVOCATION_FILE_BYTES = 256 * 1024;
export const LABEL_REVOCATION = "MINTUN REVOCATION LIST";

// ---------------------------------------------------------------------------
// Armor, on bytes. Secret keys are encoded and decoded between Buffers only: no JS
// string ever holds a secret's base64 (strings are immutable and cannot be zeroed;
// they stay in the heap until the GC reuses the memory, and a regexp's last input
// stays reachable through RegExp.input). test/unit/secrets-heap.test.ts checks it
// with a heap snapshot.

const B64_CHARS = Buffer.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", "latin1");
const B64_PAD = 0x3d; // '='
const CR = 0x0d;
const LF = 0x0a;
/** byte -> 6-bit value, -1 for bytes that are not base64 digits */
const B64_VALUE = (() => {
  const t = new Int8Array(256).fill(-1);
  for (let i = 0; i < 64; i++) t[B64_CHARS[i]!] = i;
  return t;
})();
/** Base64 characters per armored line. */
const ARMOR_LINE = 64;

/** Base64 of `body` in lines of 64 characters, each ending in "\n", written into a new Buffer. */
function base64Lines(body: Buffer): Buffer {
  const chars = Math.ceil(body.length / 3) * 4;
  const out = Buffer.alloc(chars + Math.ceil(chars / ARMOR_LINE));
  let o = 0;
  let col = 0;
  const put = (c: number) => {
    out[o++] = c;
    if (++col === ARMOR_LINE) {
      out[o++] = LF;
      col = 0;
    }
  };
  for (let i = 0; i < body.length; i += 3) {
    const n = body.length - i;
    const v = (body[i]! << 16) | ((n > 1 ? body[i + 1]! : 0) << 8) | (n > 2 ? body[i + 2]! : 0);
    put(B64_CHARS[(v >> 18) & 63]!);
    put(B64_CHARS[(v >> 12) & 63]!);
    put(n > 1 ? B64_CHARS[(v >> 6) & 63]! : B64_PAD);
    put(n > 2 ? B64_CHARS[v & 63]! : B64_PAD);
  }
  if (col !== 0) out[o++] = LF;
  return out.subarray(0, o);
}

/**
 * Strict base64 decoding of buf[start, end), skipping CR and LF: only base64 digits,
 * a multiple of 4 characters, "=" padding only at the end. Null when invalid.
 */
function base64Decode(buf: Buffer, start: number, end: number): Buffer | null {
  let chars = 0;
  let pad = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === CR || c === LF) continue;
    if (c === B64_PAD) pad++;
    else if (pad > 0 || B64_VALUE[c] === -1) return null; // a digit after padding, or not base64
    chars++;
  }
  if (chars % 4 !== 0 || pad > 2) return null;
  const out = Buffer.alloc((chars / 4) * 3 - pad);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = start; i < end && o < out.length; i++) {
    const c = buf[i]!;
    if (c === CR || c === LF || c === B64_PAD) continue;
    acc = ((acc << 6) | B64_VALUE[c]!) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  acc = 0;
  return out;
}

/** An armored block as bytes: its label (never secret), the decoded body, and where it ended. */
export interface ArmorBlock {
  label: string;
  body: Buffer;
  /** Offset just after the END line's closing dashes. */
  end: number;
}

const BEGIN = Buffer.from("-----BEGIN ", "latin1");
const END = Buffer.from("-----END ", "latin1");
const DASHES = Buffer.from("-----", "latin1");
const LABEL_RE = /^[A-Z0-9 ]+$/;

/** Armors `body` under `label` into a Buffer (the form used for secret keys). */
export function armorBytes(label: string, body: Buffer): Buffer {
  const lines = base64Lines(body);
  const out = Buffer.concat([
    Buffer.from(`-----BEGIN ${label}-----\n`, "latin1"),
    lines,
    Buffer.from(`-----END ${label}-----\n`, "latin1"),
  ]);
  zero(lines);
  return out;
}

/** Armor as text: only for public material (certificates, public keys, lists). */
export function armor(label: string, body: Buffer): string {
  return armorBytes(label, body).toString("latin1");
}

/**
 * Finds the first armored block at or after `from` in bytes; returns its label, decoded
 * body and end, or null (no block, mismatched labels, invalid base64). The body is
 * decoded from the bytes directly; the caller zeroes `buf` (and the body) when secret.
 */
export function dearmorBytes(buf: Buffer, from = 0): ArmorBlock | null {
  const b = buf.indexOf(BEGIN, from);
  if (b < 0) return null;
  const labelStart = b + BEGIN.length;
  const labelEnd = buf.indexOf(DASHES, labelStart);
  if (labelEnd < 0 || labelEnd - labelStart > 64) return null;
  const label = buf.toString("latin1", labelStart, labelEnd);
  if (!LABEL_RE.test(label)) return null;
  let p = labelEnd + DASHES.length;
  if (buf[p] === CR) p++;
  if (buf[p] !== LF) return null;
  p++;
  const e = buf.indexOf(END, p);
  if (e < 0) return null;
  const endLabelStart = e + END.length;
  const endLabelEnd = buf.indexOf(DASHES, endLabelStart);
  if (endLabelEnd < 0 || buf.toString("latin1", endLabelStart, endLabelEnd) !== label) return null;
  const body = base64Decode(buf, p, e);
  if (!body) return null;
  return { label, body, end: endLabelEnd + DASHES.length };
}

/** Finds the first armored block; returns its label and decoded body, or null. For public material. */
export function dearmor(text: string): { label: string; body: Buffer } | null {
  const r = dearmorBytes(Buffer.from(text, "latin1"));
  return r && { label: r.label, body: r.body };
}

/** Reads a small regular file through one fd; `check` sees its fstat before any byte is read. */
function readLimited(
  file: string,
  what: string,
  check?: (st: fs.Stats) => void,
  maxBytes = MAX_FILE_BYTES,
): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY);
  } catch (e) {
    throw fileError(e, file, what);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new CertError("ENOTFILE", `${what} '${file}' is not a regular file`);
    if (st.size > maxBytes) throw new CertError("EMALFORMED", `${what} '${file}' is too large`);
    check?.(st);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = fs.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return buf.subarray(0, n);
  } catch (e) {
    if (e instanceof CertError) throw e;
    throw fileError(e, file, what);
  } finally {
    fs.closeSync(fd);
  }
}

function fileError(e: unknown, file: string, what: string): CertError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return new CertError("ENOENT", `${what} '${file}' does not exist`, { cause: e });
  if (code === "EACCES") return new CertError("EACCES", `cannot read ${what} '${file}': permission denied`);
  if (code === "ENOTDIR")
    return new CertError(
      "ENOENT",
      `${what} '${file}' does not exist (a part of its path is not a directory)`,
      {
        cause: e,
      },
    );
  if (code === "EISDIR") return new CertError("ENOTFILE", `${what} '${file}' is a directory`, { cause: e });
  return new CertError("EIO", `cannot read ${what} '${file}': ${(e as Error).message}`, { cause: e });
}

/**
 * Reads a 64-byte Ed25519 secret key. Throws CertError (code ENOENT, EPERM for
 * permissions that are too open, EMALFORMED) naming the path, never the contents.
 */
export function readSecretKey(file: string): Buffer {
  const data = readLimited(file, "secret key file", (st) => {
    if ((st.mode & 0o077) === 0) return;
    const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
    throw new CertError(
      "EPERM",
      `permissions ${mode} for secret key file '${file}' are too open: it must not be accessible ` +
        `by group or others (run: chmod 600 '${file}')`,
    );
  });
  return parseSecretKey(data, file);
}

/**
 * Parses an armored secret key (a file's bytes or standard input, named `file` in errors);
 * zeroes `data`. The public half must be the one derived from the seed.
 */
export function parseSecretKey(data: Buffer, file: string): Buffer {
  const parsed = dearmorBytes(data);
  zero(data);
  if (!parsed || parsed.label !== LABEL_SECRET_KEY || parsed.body.length !== ED25519_SK_BYTES) {
    if (parsed) zero(parsed.body);
    throw new CertError("EMALFORMED", `'${file}' is not a mintun secret key (expected ${LABEL_SECRET_KEY})`);
  }
  const sk = parsed.body;
  // Integrity: the public half must be the one derived from the seed.
  const seed = Buffer.from(sk.subarray(0, ED25519_SEED_BYTES));
  const kp = signKeyPair(seed);
  zero(seed);
  const ok = kp.publicKey.equals(sk.subarray(ED25519_SEED_BYTES));
  zero(kp.secretKey);
  if (!ok) {
    zero(sk);
    throw new CertError("EMALFORMED", `secret key file '${file}' is corrupt (public half does not match)`);
  }
  return sk;
}

/** The public key (32 bytes) of a 64-byte libsodium Ed25519 secret key. */
export function publicKeyOf(sk: Buffer): Buffer {
  return Buffer.from(sk.subarray(ED25519_SEED_BYTES, ED25519_SK_BYTES));
}

export interface WriteOptions {
  /** Replace an existing file. Without it an existing file is an error (EEXIST). */
  force?: boolean;
}

/**
 * Writes `content` atomically into an existing directory: temp file (O_EXCL, `mode`) next to
 * `file`, fsync, then rename (`replace`) or link (no replace: the fs error EEXIST when `file`
 * exists, also when another writer got there first), then fsync of the directory. Throws the
 * fs error as it is (callers give it their own type); the temp file never stays behind.
 */
export function writeFileAtomic(file: string, content: Buffer, mode: number, replace: boolean): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
    fs.fchmodSync(fd, mode); // umask may have cleared bits we want (0644 for certs)
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    if (replace) fs.renameSync(tmp, file);
    else {
      fs.linkSync(tmp, file); // fails with EEXIST instead of replacing
      fs.unlinkSync(tmp);
    }
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(dir);
}

/** fsync a directory (after adding or removing an entry); best effort. */
export function syncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY);
    fs.fsyncSync(fd);
  } catch {
    // some filesystems refuse fsync on directories
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/** writeFileAtomic for key and certificate files: creates the directory (0700), CertErrors. */
function writeAtomic(file: string, content: Buffer, mode: number, opts: WriteOptions): void {
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new CertError("EIO", `cannot create directory '${dir}': ${(e as Error).message}`, { cause: e });
  }
  if (!opts.force && fs.existsSync(file))
    throw new CertError("EEXIST", `'${file}' already exists (use --force to overwrite)`);
  try {
    writeFileAtomic(file, content, mode, opts.force === true);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST")
      throw new CertError("EEXIST", `'${file}' already exists (use --force to overwrite)`, { cause: e });
    throw new CertError("EIO", `cannot write '${file}': ${(e as Error).message}`, { cause: e });
  }
}

/** Writes a 64-byte Ed25519 secret key, mode 0600. */
export function writeSecretKey(file: string, sk: Buffer, opts: WriteOptions = {}): void {
  if (sk.length !== ED25519_SK_BYTES) throw new CertError("EINVAL", "secret key must be 64 bytes");
  const text = armorBytes(LABEL_SECRET_KEY, sk);
  try {
    writeAtomic(file, text, 0o600, opts);
  } finally {
    zero(text);
  }
}

export function writePublicKey(file: string, pk: Buffer, opts: WriteOptions = {}): void {
  if (pk.length !== ED25519_PK_BYTES) throw new CertError("EINVAL", "public key must be 32 bytes");
  writeAtomic(file, Buffer.from(armor(LABEL_PUBLIC_KEY, pk), "latin1"), 0o644, opts);
}

/**
 * Parses a public key given as an armored public key, an armored secret key (the
 * public half is taken, the secret zeroed), or a bare base64 string of 32 bytes.
 * Returns null when it is none of these.
 */
export function parsePublicKeyText(text: string): Buffer | null {
  const parsed = dearmor(text);
  if (parsed) {
    if (parsed.label === LABEL_PUBLIC_KEY && parsed.body.length === ED25519_PK_BYTES) return parsed.body;
    if (parsed.label === LABEL_SECRET_KEY && parsed.body.length === ED25519_SK_BYTES) {
      const pk = publicKeyOf(parsed.body);
      zero(parsed.body);
      return pk;
    }
    zero(parsed.body);
    return null;
  }
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t)) return null;
  const b = Buffer.from(t, "base64");
  return b.length === ED25519_PK_BYTES ? b : null;
}

/** Reads a public key file (armored public key or bare base64). */
export function readPublicKey(file: string): Buffer {
  const data = readLimited(file, "public key file");
  if (data.indexOf(`-----BEGIN ${LABEL_SECRET_KEY}-----`) >= 0) {
    zero(data);
    throw new CertError("EMALFORMED", `'${file}' is a secret key, not a public key`);
  }
  const pk = parsePublicKeyText(data.toString("latin1"));
  if (!pk) throw new CertError("EMALFORMED", `'${file}' is not a mintun public key`);
  return pk;
}

/** Parses an armored certificate; the label must match the decoded kind. */
export function parseCertText(text: string, file: string): Cert {
  return parseCertBlock(dearmor(text), file);
}

/** A certificate from a dearmored block; the label must match the decoded kind. */
export function parseCertBlock(parsed: { label: string; body: Buffer } | null, file: string): Cert {
  const kinds = Object.entries(CERT_LABELS).find(([, l]) => l === parsed?.label);
  if (!parsed || !kinds) throw new CertError("EMALFORMED", `'${file}' is not a mintun certificate file`);
  const cert = decodeCert(parsed.body);
  if (!cert) throw new CertError("EMALFORMED", `'${file}': certificate is malformed`);
  if (cert.kind !== kinds[0])
    throw new CertError(
      "EMALFORMED",
      `'${file}': armor says ${parsed.label} but it holds a ${cert.kind} cert`,
    );
  return cert;
}

export function readCert(file: string): Cert {
  return parseCertText(readLimited(file, "certificate file").toString("latin1"), file);
}

/** Writes a certificate, mode 0644. */
export function writeCert(file: string, cert: Cert, opts: WriteOptions = {}): void {
  writeAtomic(file, Buffer.from(armor(CERT_LABELS[cert.kind], cert.raw), "latin1"), 0o644, opts);
}

/**
 * An enrolment bundle (`mintun ca sign-host --bundle`, `mintun enrol`): one 0600 text
 * file with the host's secret key, its host certificate and the CA certificate, each
 * armored as in their own files, in that order.
 */
export interface Bundle {
  secretKey: Buffer;
  cert: Cert;
  ca: Cert;
}

/** Writes an enrolment bundle, mode 0600 (it holds a secret key). */
export function writeBundle(file: string, b: Bundle, opts: WriteOptions = {}): void {
  if (b.secretKey.length !== ED25519_SK_BYTES) throw new CertError("EINVAL", "secret key must be 64 bytes");
  const key = armorBytes(LABEL_SECRET_KEY, b.secretKey);
  const text = Buffer.concat([
    key,
    armorBytes(CERT_LABELS[b.cert.kind], b.cert.raw),
    armorBytes(CERT_LABELS[b.ca.kind], b.ca.raw),
  ]);
  zero(key);
  try {
    writeAtomic(file, text, 0o600, opts);
  } finally {
    zero(text);
  }
}

/**
 * Reads an enrolment bundle. Throws CertError naming the path (never the contents):
 * EMALFORMED unless it holds exactly a secret key, a host certificate and a CA
 * certificate; EPERM when it is readable by group or others.
 */
export function readBundle(file: string): Bundle {
  const data = readLimited(file, "enrolment bundle", (st) => {
    if ((st.mode & 0o077) !== 0)
      throw new CertError(
        "EPERM",
        `enrolment bundle '${file}' holds a secret key but is readable by others (chmod 600 '${file}')`,
      );
  });
  return parseBundle(data, file);
}

/** Parses an enrolment bundle (a file's bytes or standard input, named `file` in errors); zeroes `data`. */
export function parseBundle(data: Buffer, file: string): Bundle {
  // three armored blocks, parsed from the bytes (the secret key never becomes a string)
  const blocks: ArmorBlock[] = [];
  let count = 0;
  for (let at = 0, b = dearmorBytes(data); b; b = dearmorBytes(data, at)) {
    at = b.end;
    count++;
    if (blocks.length < 3) blocks.push(b);
    else zero(b.body);
  }
  const trailingBegin = data.indexOf(BEGIN, blocks[blocks.length - 1]?.end ?? 0) >= 0;
  zero(data);
  const bad = (why: string) =>
    new CertError("EMALFORMED", `'${file}' is not a mintun enrolment bundle: ${why}`);
  if (count !== 3 || trailingBegin) {
    for (const b of blocks) zero(b.body);
    throw bad(`expected 3 armored blocks, found ${count}${trailingBegin ? " and a broken one" : ""}`);
  }
  const sk = blocks[0]!;
  if (sk.label !== LABEL_SECRET_KEY || sk.body.length !== ED25519_SK_BYTES) {
    zero(sk.body);
    throw bad("the first block is not a secret key");
  }
  // integrity, as readSecretKey: the public half must be the one derived from the seed
  const seed = Buffer.from(sk.body.subarray(0, ED25519_SEED_BYTES));
  const kp = signKeyPair(seed);
  zero(seed);
  const intact = kp.publicKey.equals(sk.body.subarray(ED25519_SEED_BYTES));
  zero(kp.secretKey);
  if (!intact) {
    zero(sk.body);
    throw bad("the secret key is corrupt (public half does not match)");
  }
  let cert: Cert;
  let ca: Cert;
  try {
    cert = parseCertBlock(blocks[1]!, file);
    ca = parseCertBlock(blocks[2]!, file);
  } catch (e) {
    zero(sk.body);
    throw e;
  }
  if (cert.kind !== "host" || ca.kind !== "ca") {
    zero(sk.body);
    throw bad(`expected a host and a CA certificate, found ${cert.kind} and ${ca.kind}`);
  }
  return { secretKey: sk.body, cert, ca };
}

/**
 * Reads a revocation list file (armored "MINTUN REVOCATION LIST", src/wire/revocation.ts).
 * Only decodes it: the caller verifies it against its CA. Throws CertError naming the path.
 */
export function readRevocation(file: string): RevocationList {
  const text = readLimited(file, "revocation list", undefined, MAX_REVOCATION_FILE_BYTES).toString("latin1");
  const parsed = dearmor(text);
  if (!parsed || parsed.label !== LABEL_REVOCATION)
    throw new CertError(
      "EMALFORMED",
      `'${file}' is not a mintun revocation list (expected ${LABEL_REVOCATION})`,
    );
  const list = decodeRevocation(parsed.body);
  if (!list) throw new CertError("EMALFORMED", `'${file}': revocation list is malformed`);
  return list;
}

/** Writes a revocation list, mode 0644 (it is public; its signature protects it). */
export function writeRevocation(file: string, list: RevocationList, opts: WriteOptions = {}): void {
  writeAtomic(file, Buffer.from(armor(LABEL_REVOCATION, list.raw), "latin1"), 0o644, opts);
}
