/** Helpers shared by the key and certificate commands. */
import * as fs from "node:fs";
import * as path from "node:path";
import { CertError, UsageError } from "../../errors.js";
import {
  LABEL_SECRET_KEY,
  parsePublicKeyText,
  publicKeyOf,
  readCert,
  readSecretKey,
} from "../../store/keyfile.js";
import { zero } from "../../crypto/sodium.js";
import { fingerprint, verifyCert, type CaCert } from "../../wire/cert.js";
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

/** Loads DIR/ca.key and DIR/ca.crt and checks they belong together and the CA is valid now. */
export function loadCa(dir: string, io: Io): LoadedCa {
  const keyFile = path.join(dir, "ca.key");
  const certFile = path.join(dir, "ca.crt");
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

/** Describes a key in one line: fingerprint only, never key material beyond the public key. */
export function describeKey(pk: Buffer): string {
  return `${pk.toString("base64")} (fingerprint ${fingerprint(pk)})`;
}
