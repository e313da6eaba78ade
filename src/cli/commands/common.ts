/** Helpers shared by the key and certificate commands. */
import * as fs from "node:fs";
import * as path from "node:path";
import { CertError, UsageError } from "../../errors.js";
import {
  CERT_LABELS,
  LABEL_SECRET_KEY,
  armor,
  parseCertText,
  parsePublicKeyText,
  publicKeyOf,
  readCert,
  readSecretKey,
  writeCert,
} from "../../store/keyfile.js";
import { zero } from "../../crypto/sodium.js";
import { fingerprint, verifyCert, type CaCert, type Cert } from "../../wire/cert.js";
import { resolvePath, type Io } from "../cli.js";
import type { FlagSpec, ParsedArgs } from "../args.js";

export const SECONDS_PER_DAY = 86_400;
/** Certificates start this long before "now" to tolerate clock skew between hosts. */
export const CLOCK_SKEW_SEC = 300;

export const FORCE_FLAG: FlagSpec = { name: "force", type: "boolean", help: "overwrite existing files" };

export const KEY_PUB_FLAGS: FlagSpec[] = [
  {
    name: "key-pub",
    type: "string",
    metavar: "KEY",
    help: "subject's public key: a .pub file, a secret key file (public half is used), or base64",
  },
  { name: "key", type: "string", metavar: "FILE", help: "subject's secret key file (public half is used)" },
];

export const nowSec = (io: Io): number => Math.floor(io.now() / 1000);

export const iso = (sec: number): string => new Date(sec * 1000).toISOString();

/** Public key of the certificate subject from --key-pub or --key. */
export function subjectPublicKey(args: ParsedArgs, io: Io): Buffer {
  const keyPub = args.string("key-pub");
  const key = args.string("key");
  if (keyPub !== undefined && key !== undefined) throw new UsageError("give only one of --key-pub and --key");
  if (key !== undefined) return secretKeyFilePublic(resolvePath(io, key));
  if (keyPub === undefined) throw new UsageError("missing required flag --key-pub (or --key)");
  const file = resolvePath(io, keyPub);
  if (fs.existsSync(file)) {
    const data = fs.readFileSync(file);
    const isSecret = data.includes(`-----BEGIN ${LABEL_SECRET_KEY}-----`);
    const text = isSecret ? "" : data.toString("latin1");
    zero(data);
    if (isSecret) return secretKeyFilePublic(file); // permission check applies
    const pk = parsePublicKeyText(text);
    if (!pk) throw new CertError("EMALFORMED", `'${keyPub}' is not a mintun public or secret key file`);
    return pk;
  }
  const pk = parsePublicKeyText(keyPub);
  if (!pk)
    throw new UsageError(`--key-pub: '${keyPub}' is neither a key file nor a base64 Ed25519 public key`);
  return pk;
}

function secretKeyFilePublic(file: string): Buffer {
  const sk = readSecretKey(file);
  const pk = publicKeyOf(sk);
  zero(sk);
  return pk;
}

export interface LoadedCa {
  cert: CaCert;
  secretKey: Buffer;
  keyFile: string;
  certFile: string;
}

/**
 * `--ca` has one meaning in every command: the CA, named by its directory (as `mintun ca init
 * --dir` made it: ca.crt, and ca.key for signing) or by its certificate file (ca.crt; signing
 * then uses the ca.key beside it).
 */
export const CA_FLAG_HELP = "the CA: its directory (ca.crt, ca.key) or its ca.crt file";

export function caFlag(help: string = CA_FLAG_HELP, required = false): FlagSpec {
  return { name: "ca", type: "string", metavar: "CA", required, help };
}

/** Where the CA certificate and secret key of a --ca argument are: a directory or ca.crt. */
export function caPaths(io: Io, arg: string): { certFile: string; keyFile: string } {
  const p = resolvePath(io, arg);
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CertError(
      code === "ENOENT" || code === "ENOTDIR" ? "ENOENT" : "EIO",
      code === "ENOENT" || code === "ENOTDIR"
        ? `--ca '${arg}' does not exist (expected a CA directory with ca.crt, or a ca.crt file)`
        : `--ca '${arg}': ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (st.isDirectory()) return { certFile: path.join(p, "ca.crt"), keyFile: path.join(p, "ca.key") };
  if (st.isFile()) return { certFile: p, keyFile: path.join(path.dirname(p), "ca.key") };
  throw new CertError("ENOTFILE", `--ca '${arg}' is neither a directory nor a regular file`);
}

/** The CA certificate of a --ca argument ('-': read from stdin); must be a CA certificate. */
export function loadCaCert(io: Io, arg: string): CaCert {
  const certFile = arg === "-" ? "-" : caPaths(io, arg).certFile;
  const cert = readCertArg(io, certFile);
  if (cert.kind !== "ca") throw new CertError("EWRONGKIND", `'${certFile}' is a ${cert.kind} cert, not a CA`);
  return cert;
}

/** The CA of a --ca argument with its secret key; checks they belong together and the CA is valid now. */
export function loadCa(io: Io, arg: string): LoadedCa {
  const { keyFile, certFile } = caPaths(io, arg);
  const cert = readCert(certFile);
  if (cert.kind !== "ca") throw new CertError("EWRONGKIND", `'${certFile}' is a ${cert.kind} cert, not a CA`);
  const secretKey = readSecretKey(keyFile);
  if (!publicKeyOf(secretKey).equals(cert.publicKey)) {
    zero(secretKey);
    throw new CertError("EMISMATCH", `'${keyFile}' is not the secret key of '${certFile}'`);
  }
  const v = verifyCert(cert, cert, nowSec(io));
  if (!v.ok) {
    zero(secretKey);
    throw new CertError("ECAINVALID", `CA certificate '${certFile}' is not usable: ${v.reason}`);
  }
  return { cert, secretKey, keyFile, certFile };
}

/** At most this much is read from stdin for a '-' argument (key files and certificates are < 2 KiB). */
const MAX_STDIN_BYTES = 64 * 1024;

/** All of stdin for a '-' argument, at most 64 KiB. */
export function readStdin(io: Io): Buffer {
  let data: Buffer;
  try {
    data = io.readStdin ? io.readStdin() : fs.readFileSync(0);
  } catch (e) {
    throw new CertError("EIO", `cannot read standard input: ${(e as Error).message}`, { cause: e });
  }
  if (data.length > MAX_STDIN_BYTES) {
    zero(data);
    throw new CertError("EMALFORMED", `standard input is too large for a key or certificate`);
  }
  return data;
}

/** A certificate file argument; '-' reads it from stdin. */
export function readCertArg(io: Io, arg: string): Cert {
  if (arg === "-") return parseCertText(readStdin(io).toString("latin1"), "<stdin>");
  return readCert(resolvePath(io, arg));
}

/** Writes a certificate to a file argument, or to stdout for '-'. */
export function writeCertArg(io: Io, out: string, cert: Cert, force: boolean): void {
  if (out === "-") {
    io.stdout(armor(CERT_LABELS[cert.kind], cert.raw));
    return;
  }
  requireDir(out);
  writeCert(out, cert, { force });
}

/**
 * Output files go into an existing directory: a missing one is refused (a mistyped path
 * should not grow a tree), naming it and how to make it. `ca init --dir` and `enrol --dir`
 * create the one directory they are told to fill (0700); nothing else creates directories.
 */
export function requireDir(file: string): void {
  const dir = path.dirname(path.resolve(file));
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR")
      throw new CertError(
        "ENOENT",
        `directory '${dir}' does not exist (create it first, e.g. mkdir -m 700 '${dir}')`,
        { cause: e },
      );
    throw new CertError("EIO", `cannot use directory '${dir}': ${(e as Error).message}`, { cause: e });
  }
  if (!st.isDirectory()) throw new CertError("ENOTDIR", `'${dir}' is not a directory`);
}

/** Prints a JSON value (2-space indent, newline): the --json output of every command. */
export function printJson(io: Io, value: unknown): void {
  io.stdout(JSON.stringify(value, null, 2) + "\n");
}

export const JSON_FLAG: FlagSpec = { name: "json", type: "boolean", help: "print JSON on stdout" };

/** Describes a key in one line: fingerprint only, never key material beyond the public key. */
export function describeKey(pk: Buffer): string {
  return `${pk.toString("base64")} (fingerprint ${fingerprint(pk)})`;
}
