/**
 * User identities on a host: which OS user (uid) connects under which user certificate
 * and secret key. See docs/IDENTITY.md.
 *
 * The store is a directory, by default STATE/users (/var/lib/mintun/users), mode 0700,
 * owned by the daemon's user (root). One file per OS user, named "<uid>.user", mode 0600:
 *
 *   # mintun user identity (written by `mintun user add`; do not edit)
 *   os-user: alice
 *   uid: 1000
 *   -----BEGIN MINTUN USER CERTIFICATE-----
 *   ...
 *   -----END MINTUN USER CERTIFICATE-----
 *   -----BEGIN MINTUN ED25519 SECRET KEY-----
 *   ...
 *   -----END MINTUN ED25519 SECRET KEY-----
 *
 * One file per user makes add, replace and remove single atomic operations (temp file +
 * rename / unlink); there is never a key without its certificate.
 *
 * Loading is skip-and-report: a bad entry (wrong mode, unparsable, key and certificate
 * not belonging together, not issued by the CA) is left out and described in
 * `UserStore.errors` (a UserStoreError naming the file), and every other user keeps
 * working; one broken file must not take every user's connections down. Problems with
 * the directory itself (not a directory, accessible by group/others, wrong owner,
 * unreadable) fail the whole load with a UserStoreError. A missing directory is an
 * empty store. Expired or not yet valid certificates are kept (`mintun user list`
 * marks them); callers check validity when they use an identity (identityStatus).
 *
 * OS users are resolved through /etc/passwd only (parsePasswd); users known only to
 * NSS (LDAP, sssd) are not found.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CertError, MintunError } from "../errors.js";
import {
  CERT_LABELS,
  LABEL_SECRET_KEY,
  armorBytes,
  dearmorBytes,
  publicKeyOf,
  syncDir,
  writeFileAtomic,
} from "./keyfile.js";
import { ED25519_SEED_BYTES, ED25519_SK_BYTES, signKeyPair, zero } from "../crypto/sodium.js";
import { decodeCert, verifyCert, type CaCert, type UserCert, type VerifyFailure } from "../wire/cert.js";

/** Subdirectory of the daemon's state directory (config key `state`). */
export const USERS_SUBDIR = "users";
export const DEFAULT_USERS_DIR = "/var/lib/mintun/users";
export const USER_FILE_SUFFIX = ".user";
export const DEFAULT_PASSWD = "/etc/passwd";
const MAX_USER_FILE_BYTES = 16 * 1024;
const USER_FILE_RE = /^(0|[1-9][0-9]{0,9})\.user$/;
const MAX_UID = 0xffffffff;

/** A problem with the user store or one of its entries; `file` is the path concerned. */
export class UserStoreError extends MintunError {
  constructor(
    code: string,
    message: string,
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

export interface UserIdentity {
  uid: number;
  /** OS user name recorded at `mintun user add` (informational: the uid is the key). */
  osUser: string;
  cert: UserCert;
  /** 64-byte libsodium Ed25519 secret key; zeroed by UserStore.clear(). */
  secretKey: Buffer;
  /** Absolute path of the entry file. */
  file: string;
}

export interface LoadOptions {
  /** When given, entries whose certificate is not issued by this CA are skipped and reported. */
  ca?: CaCert;
  /** Unix seconds for the CA check (default: now). */
  nowSec?: number;
}

/** "ok", or why the certificate cannot be used at `nowSec`. */
export function identityStatus(id: UserIdentity, nowSec: number): "ok" | "expired" | "not-yet-valid" {
  if (nowSec < id.cert.notBefore) return "not-yet-valid";
  if (nowSec >= id.cert.notAfter) return "expired";
  return "ok";
}

/** The users directory for a state directory. */
export function usersDir(stateDir: string): string {
  return path.join(stateDir, USERS_SUBDIR);
}

export function userFile(dir: string, uid: number): string {
  return path.join(dir, `${uid}${USER_FILE_SUFFIX}`);
}

const processEuid = (): number | undefined =>
  typeof process.geteuid === "function" ? process.geteuid() : undefined;

function modeText(m: number): string {
  return (m & 0o777).toString(8).padStart(4, "0");
}

/**
 * Checks the store directory: a directory, no access for group/others, owned by this
 * process's effective user. Returns false when it does not exist.
 */
function checkDir(dir: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return false;
    if (code === "EACCES")
      throw new UserStoreError("EACCES", `cannot read user store '${dir}': permission denied`, dir);
    throw new UserStoreError("EIO", `cannot read user store '${dir}': ${(e as Error).message}`, dir, {
      cause: e,
    });
  }
  if (!st.isDirectory()) throw new UserStoreError("ENOTDIR", `user store '${dir}' is not a directory`, dir);
  if ((st.mode & 0o077) !== 0)
    throw new UserStoreError(
      "EPERM",
      `permissions ${modeText(st.mode)} for user store '${dir}' are too open: it must not be ` +
        `accessible by group or others (run: chmod 700 '${dir}')`,
      dir,
    );
  const euid = processEuid();
  if (euid !== undefined && st.uid !== euid)
    throw new UserStoreError(
      "EPERM",
      `user store '${dir}' is owned by uid ${st.uid}, not by this process (uid ${euid})`,
      dir,
    );
  return true;
}

/** Reads one entry file; throws UserStoreError naming the file. */
export function readUserFile(file: string, opts: LoadOptions = {}): UserIdentity {
  const base = path.basename(file);
  const m = USER_FILE_RE.exec(base);
  const fileUid = m ? Number(m[1]) : NaN;
  if (!m || fileUid > MAX_UID)
    throw new UserStoreError("EMALFORMED", `'${file}': expected a file name <uid>.user`, file);
  let data: Buffer;
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ELOOP"
        ? "is a symbolic link"
        : code === "EACCES"
          ? "permission denied"
          : (e as Error).message;
    throw new UserStoreError(code ?? "EIO", `cannot read user entry '${file}': ${why}`, file, { cause: e });
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile())
      throw new UserStoreError("ENOTFILE", `user entry '${file}' is not a regular file`, file);
    if ((st.mode & 0o077) !== 0)
      throw new UserStoreError(
        "EPERM",
        `permissions ${modeText(st.mode)} for user entry '${file}' are too open: it holds a secret key ` +
          `(run: chmod 600 '${file}')`,
        file,
      );
    const euid = processEuid();
    if (euid !== undefined && st.uid !== euid)
      throw new UserStoreError(
        "EPERM",
        `user entry '${file}' is owned by uid ${st.uid}, not by this process (uid ${euid})`,
        file,
      );
    if (st.size > MAX_USER_FILE_BYTES)
      throw new UserStoreError("EMALFORMED", `user entry '${file}' is too large`, file);
    data = Buffer.alloc(st.size);
    let n = 0;
    while (n < data.length) {
      const r = fs.readSync(fd, data, n, data.length - n, n);
      if (r === 0) break;
      n += r;
    }
    data = data.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
  // Parsed as bytes: the secret key's base64 never becomes a JS string (strings cannot
  // be zeroed); the buffer is zeroed once parsed.
  try {
    return parseUserBytes(data, file, fileUid, opts);
  } finally {
    zero(data);
  }
}

function parseUserBytes(data: Buffer, file: string, fileUid: number, opts: LoadOptions): UserIdentity {
  function bad(msg: string): never {
    throw new UserStoreError("EMALFORMED", `user entry '${file}': ${msg}`, file);
  }
  const firstBlock = data.indexOf("-----BEGIN ");
  const header = data.toString("latin1", 0, firstBlock < 0 ? data.length : firstBlock);
  const fields = new Map<string, string>();
  for (const raw of header.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const mm = /^([a-z-]+):\s*(\S+)$/.exec(line);
    if (!mm) bad(`unexpected header line '${line.slice(0, 40)}'`);
    fields.set(mm[1]!, mm[2]!);
  }
  const osUser = fields.get("os-user");
  if (osUser === undefined || !isValidOsUserName(osUser)) bad("missing or invalid 'os-user:' line");
  const uidText = fields.get("uid");
  if (uidText === undefined || uidText !== String(fileUid))
    bad(`'uid:' line (${uidText ?? "missing"}) does not match the file name (uid ${fileUid})`);

  const certAt = data.indexOf(`-----BEGIN ${CERT_LABELS.user}-----`);
  if (certAt < 0) {
    if (
      data.indexOf(`-----BEGIN ${CERT_LABELS.host}-----`) >= 0 ||
      data.indexOf(`-----BEGIN ${CERT_LABELS.ca}-----`) >= 0
    )
      bad("holds a non-user certificate");
    bad("no user certificate");
  }
  const certBlock = dearmorBytes(data, certAt);
  const cert = certBlock && certBlock.label === CERT_LABELS.user ? decodeCert(certBlock.body) : null;
  if (!cert || cert.kind !== "user") bad("user certificate is malformed");

  const keyAt = data.indexOf(`-----BEGIN ${LABEL_SECRET_KEY}-----`);
  if (keyAt < 0) bad("no secret key");
  const keyBlock = dearmorBytes(data, keyAt);
  if (!keyBlock || keyBlock.label !== LABEL_SECRET_KEY || keyBlock.body.length !== ED25519_SK_BYTES) {
    if (keyBlock) zero(keyBlock.body);
    bad("secret key is malformed");
  }
  const sk = keyBlock.body;
  const problem = keyProblem(sk, cert);
  if (problem) {
    zero(sk);
    bad(problem);
  }
  if (opts.ca) {
    const v = verifyCert(cert, opts.ca, opts.nowSec ?? Math.floor(Date.now() / 1000));
    if (!v.ok && !isTimeFailure(v.reason)) {
      zero(sk);
      throw new UserStoreError(
        "ECERT",
        `user entry '${file}': certificate does not verify against the CA: ${v.reason}`,
        file,
      );
    }
  }
  return { uid: fileUid, osUser, cert, secretKey: sk, file };
}

function isTimeFailure(r: VerifyFailure): boolean {
  return r === "expired" || r === "not-yet-valid";
}

/**
 * Why a secret key does not belong to a certificate (null when it does): the public
 * half must derive from the seed, and be the certificate's key.
 */
export function keyProblem(sk: Buffer, cert: UserCert): string | null {
  if (sk.length !== ED25519_SK_BYTES) return "secret key must be 64 bytes";
  const seed = Buffer.from(sk.subarray(0, ED25519_SEED_BYTES));
  const kp = signKeyPair(seed);
  zero(seed);
  const intact = kp.publicKey.equals(sk.subarray(ED25519_SEED_BYTES));
  zero(kp.secretKey);
  if (!intact) return "secret key is corrupt (public half does not match)";
  if (!publicKeyOf(sk).equals(cert.publicKey))
    return "secret key is not the key of the certificate (public keys differ)";
  return null;
}

/** The identities of one host, by uid. */
export class UserStore {
  private constructor(
    readonly dir: string,
    readonly users: ReadonlyMap<number, UserIdentity>,
    /** Entries that were skipped, each naming its file. */
    readonly errors: readonly UserStoreError[],
  ) {}

  /**
   * Loads every "<uid>.user" file in `dir` (other names, e.g. temp files, are ignored).
   * Bad entries are skipped and reported in `errors`; directory problems throw
   * UserStoreError. A missing directory is an empty store.
   */
  static load(dir: string, opts: LoadOptions = {}): UserStore {
    const abs = path.resolve(dir);
    const users = new Map<number, UserIdentity>();
    const errors: UserStoreError[] = [];
    if (!checkDir(abs)) return new UserStore(abs, users, errors);
    let names: string[];
    try {
      names = fs.readdirSync(abs);
    } catch (e) {
      throw new UserStoreError("EIO", `cannot list user store '${abs}': ${(e as Error).message}`, abs, {
        cause: e,
      });
    }
    for (const name of names.sort()) {
      if (!USER_FILE_RE.test(name)) continue;
      const file = path.join(abs, name);
      try {
        const id = readUserFile(file, opts);
        users.set(id.uid, id);
      } catch (e) {
        if (e instanceof UserStoreError) errors.push(e);
        else if (e instanceof MintunError)
          errors.push(new UserStoreError(e.code, e.message, file, { cause: e }));
        else throw e;
      }
    }
    return new UserStore(abs, users, errors);
  }

  lookupByUid(uid: number): UserIdentity | undefined {
    return this.users.get(uid);
  }

  /** Entries recorded for an OS user name (normally zero or one). */
  lookupByOsUser(name: string): UserIdentity[] {
    return this.list().filter((u) => u.osUser === name);
  }

  /** All identities, by ascending uid. */
  list(): UserIdentity[] {
    return [...this.users.values()].sort((a, b) => a.uid - b.uid);
  }

  get size(): number {
    return this.users.size;
  }

  /** Zeroes every secret key held; the store must not be used afterwards. */
  clear(): void {
    for (const u of this.users.values()) zero(u.secretKey);
  }
}

/** The text of an entry file. */
export function formatUserFile(uid: number, osUser: string, cert: UserCert, sk: Buffer): Buffer {
  const head =
    `# mintun user identity (written by \`mintun user add\`; do not edit)\n` +
    `os-user: ${osUser}\nuid: ${uid}\n`;
  const keyArmor = armorBytes(LABEL_SECRET_KEY, sk);
  const out = Buffer.concat([Buffer.from(head, "latin1"), armorBytes(CERT_LABELS.user, cert.raw), keyArmor]);
  zero(keyArmor);
  return out;
}

/** Creates the store directory (0700) if needed and checks it. */
export function ensureStoreDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new UserStoreError("EIO", `cannot create user store '${dir}': ${(e as Error).message}`, dir, {
      cause: e,
    });
  }
  checkDir(dir);
}

export interface AddUserOptions {
  /** Replace an existing entry for this uid. */
  force?: boolean;
}

/**
 * Writes the entry for `uid` atomically (temp file 0600 + link or rename). Checks that
 * the key belongs to the certificate. Returns the file written.
 */
export function addUser(
  dir: string,
  entry: { uid: number; osUser: string; cert: UserCert; secretKey: Buffer },
  opts: AddUserOptions = {},
): string {
  const abs = path.resolve(dir);
  if (!Number.isInteger(entry.uid) || entry.uid < 0 || entry.uid > MAX_UID)
    throw new UserStoreError("EINVAL", `invalid uid ${entry.uid}`, abs);
  if (!isValidOsUserName(entry.osUser))
    throw new UserStoreError("EINVAL", `invalid OS user name '${entry.osUser}'`, abs);
  const problem = keyProblem(entry.secretKey, entry.cert);
  if (problem) throw new CertError("EMISMATCH", problem);
  ensureStoreDir(abs);
  const file = userFile(abs, entry.uid);
  if (!opts.force && fs.existsSync(file))
    throw new UserStoreError(
      "EEXIST",
      `OS user ${entry.osUser} (uid ${entry.uid}) already has an identity in '${file}' (use --force to replace it)`,
      file,
    );
  const content = formatUserFile(entry.uid, entry.osUser, entry.cert, entry.secretKey);
  try {
    writeFileAtomic(file, content, 0o600, opts.force === true); // link: EEXIST instead of replacing a concurrent add
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST")
      throw new UserStoreError("EEXIST", `'${file}' already exists (use --force to replace it)`, file, {
        cause: e,
      });
    throw new UserStoreError("EIO", `cannot write '${file}': ${(e as Error).message}`, file, { cause: e });
  } finally {
    zero(content);
  }
  return file;
}

/** Removes the entry for `uid`; returns false when there was none. */
export function removeUser(dir: string, uid: number): boolean {
  const abs = path.resolve(dir);
  if (!checkDir(abs)) return false;
  const file = userFile(abs, uid);
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw new UserStoreError("EIO", `cannot remove '${file}': ${(e as Error).message}`, file, { cause: e });
  }
  syncDir(abs);
  return true;
}

// ---------------------------------------------------------------------------
// /etc/passwd

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** POSIX portable user names plus what useradd accepts ('$' at the end for machine accounts). */
const OS_USER_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}\$?$/;

export function isValidOsUserName(s: string): boolean {
  return OS_USER_RE.test(s) && s !== "." && s !== "..";
}

/**
 * Parses passwd(5) text: name:password:uid:gid:gecos:home:shell. Comment lines, blank
 * lines, NIS "+"/"-" lines and malformed lines are skipped; the first entry of a name wins
 * (as getpwnam does).
 */
export function parsePasswd(text: string): Map<string, PasswdEntry> {
  const out = new Map<string, PasswdEntry>();
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line === "" || line.startsWith("#") || line.startsWith("+") || line.startsWith("-")) continue;
    const f = line.split(":");
    if (f.length !== 7) continue;
    const [name, , uidS, gidS, , home, shell] = f as [string, string, string, string, string, string, string];
    if (!isValidOsUserName(name) || !/^[0-9]{1,10}$/.test(uidS) || !/^[0-9]{1,10}$/.test(gidS)) continue;
    const uid = Number(uidS);
    const gid = Number(gidS);
    if (uid > MAX_UID || gid > MAX_UID || out.has(name)) continue;
    out.set(name, { name, uid, gid, home, shell });
  }
  return out;
}

/** Reads and parses a passwd file; throws MintunError when it cannot be read. */
export function readPasswd(file = DEFAULT_PASSWD): Map<string, PasswdEntry> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new MintunError("EIO", `cannot read '${file}': ${(e as Error).message}`, { cause: e });
  }
  return parsePasswd(text);
}

/** An OS user by name (or by decimal uid), or undefined. */
export function lookupOsUser(users: Map<string, PasswdEntry>, nameOrUid: string): PasswdEntry | undefined {
  const byName = users.get(nameOrUid);
  if (byName) return byName;
  if (/^[0-9]{1,10}$/.test(nameOrUid)) {
    const uid = Number(nameOrUid);
    for (const u of users.values()) if (u.uid === uid) return u;
  }
  return undefined;
}
