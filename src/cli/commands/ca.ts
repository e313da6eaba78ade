/** `mintun ca init`, `mintun ca sign-host`, `mintun ca sign-user`. */
import * as fs from "node:fs";
import * as path from "node:path";
import { CertError, UsageError } from "../../errors.js";
import {
  CERT_LABELS,
  LABEL_SECRET_KEY,
  armor,
  writeBundle,
  writeCert,
  writeSecretKey,
} from "../../store/keyfile.js";
import { signKeyPair, zero } from "../../crypto/sodium.js";
import {
  fingerprint,
  isValidGroup,
  isValidName,
  signCert,
  MAX_GROUPS,
  MAX_SUBNETS,
  type CertFields,
} from "../../wire/cert.js";
import { parseCidr, parseIp4, parseIp6, formatIp4, formatIp6 } from "../../ip/ip.js";
import { resolvePath, type Command, type Io } from "../cli.js";
import type { ParsedArgs } from "../args.js";
import {
  CLOCK_SKEW_SEC,
  FORCE_FLAG,
  JSON_FLAG,
  KEY_PUB_FLAGS,
  caFlag,
  printJson,
  requireDir,
  writeCertArg,
  SECONDS_PER_DAY,
  iso,
  loadCa,
  nowSec,
  subjectPublicKey,
} from "./common.js";

function checkName(name: string): string {
  if (!isValidName(name))
    throw new UsageError(`--name '${name}': expected 1..63 chars of [a-z0-9.-] starting with [a-z0-9]`);
  return name;
}

function checkGroups(groups: string[]): string[] {
  if (groups.length > MAX_GROUPS) throw new UsageError(`--groups: at most ${MAX_GROUPS} groups`);
  for (const g of groups)
    if (!isValidGroup(g))
      throw new UsageError(
        `--groups: invalid group '${g}' (1..32 chars of [a-z0-9_.-] starting with [a-z0-9])`,
      );
  if (new Set(groups).size !== groups.length) throw new UsageError("--groups: duplicate group");
  return groups;
}

export const caInit: Command = {
  path: ["ca", "init"],
  summary: "create an organisation CA: DIR/ca.key (secret, 0600) and DIR/ca.crt",
  description:
    "Keep ca.key offline: it signs every host and user certificate. DIR is created (0700) when\n" +
    "it does not exist; it is what other commands take as --ca.",
  flags: [
    { name: "dir", type: "string", metavar: "DIR", required: true, help: "directory for ca.key and ca.crt" },
    { name: "name", type: "string", metavar: "NAME", default: "mintun-ca", help: "CA name" },
    daysFlag(3650),
    FORCE_FLAG,
    JSON_FLAG,
  ],
  run(args, io) {
    const dir = resolvePath(io, args.requireString("dir"));
    const name = checkName(args.requireString("name"));
    const force = args.bool("force");
    const keyFile = path.join(dir, "ca.key");
    const certFile = path.join(dir, "ca.crt");
    if (!force)
      for (const f of [keyFile, certFile])
        if (fs.existsSync(f))
          throw new CertError("EEXIST", `'${f}' already exists (use --force to overwrite)`);
    const now = nowSec(io);
    const kp = signKeyPair();
    try {
      const cert = signCert(
        {
          kind: "ca",
          name,
          publicKey: kp.publicKey,
          issuer: kp.publicKey,
          groups: [],
          notBefore: now - CLOCK_SKEW_SEC,
          notAfter: now + args.requireNumber("days") * SECONDS_PER_DAY,
        },
        kp.secretKey,
      );
      writeSecretKey(keyFile, kp.secretKey, { force });
      writeCert(certFile, cert, { force });
      if (args.bool("json"))
        return printJson(io, {
          name,
          fingerprint: fingerprint(cert.publicKey),
          notBefore: iso(cert.notBefore),
          notAfter: iso(cert.notAfter),
          certFile,
          keyFile,
        });
      io.stdout(
        `created CA '${name}' (fingerprint ${fingerprint(cert.publicKey)}), valid until ${iso(cert.notAfter)}\n` +
          `  certificate: ${certFile}\n  secret key:  ${keyFile} (keep it offline)\n`,
      );
    } finally {
      zero(kp.secretKey);
    }
  },
};

function daysFlag(def: number) {
  return {
    name: "days",
    type: "number",
    metavar: "N",
    default: def,
    min: 1,
    max: 36500,
    help: "validity in days",
  } as const;
}

/** Default validity of host and user certificates. */
const SIGN_DEFAULT_DAYS = 365;
/** Shortest validity --seconds accepts (tests of expiry use tens of seconds). */
const MIN_VALID_SECONDS = 10;

/** after the kind's own flags: validity, output file, --force, --json */
const SIGN_TAIL_FLAGS = [
  {
    name: "days",
    type: "number",
    metavar: "N",
    min: 1,
    max: 36500,
    help: `validity in days (default ${SIGN_DEFAULT_DAYS})`,
  },
  {
    name: "seconds",
    type: "number",
    metavar: "N",
    min: MIN_VALID_SECONDS,
    max: 36500 * SECONDS_PER_DAY,
    help:
      "validity in seconds instead of --days (short-lived certificates, e.g. for tests); " +
      "notBefore is still now - 5 min",
  },
  {
    name: "out",
    type: "string",
    metavar: "FILE",
    required: true,
    help: "certificate (or bundle) file to write, in an existing directory; '-' for stdout",
  },
  FORCE_FLAG,
  { ...JSON_FLAG, help: "print what was written as JSON" },
] as const;

const SIGN_COMMON_FLAGS = [
  caFlag("the CA that signs: its directory (ca.key, ca.crt) or its ca.crt file (ca.key beside it)", true),
  { name: "name", type: "string", metavar: "NAME", required: true, help: "subject name" },
  ...KEY_PUB_FLAGS,
  { name: "groups", type: "list", metavar: "a,b", help: "comma-separated groups" },
] as const;

/** Validity from --days or --seconds (not both); default SIGN_DEFAULT_DAYS days. */
function validitySeconds(args: ParsedArgs): number {
  const days = args.number("days");
  const seconds = args.number("seconds");
  if (days !== undefined && seconds !== undefined)
    throw new UsageError("give only one of --days and --seconds");
  if (seconds !== undefined) return seconds;
  return (days ?? SIGN_DEFAULT_DAYS) * SECONDS_PER_DAY;
}

function signAndWrite(
  args: ParsedArgs,
  io: Io,
  make: (common: Omit<CertFields, "kind">) => CertFields,
  what: string,
  bundle = false,
): void {
  const name = checkName(args.requireString("name"));
  const groups = checkGroups(args.list("groups"));
  const outArg = args.requireString("out");
  const toStdout = outArg === "-";
  const out = toStdout ? "-" : resolvePath(io, outArg);
  const force = args.bool("force");
  const json = args.bool("json");
  if (toStdout && json) throw new UsageError("--json and --out - both print on stdout: give one");
  if (toStdout && bundle && io.stdoutIsTty)
    throw new UsageError("a bundle holds a secret key: not printed on a terminal (pipe it, or --out FILE)");
  if (!toStdout) {
    requireDir(out);
    if (!force && fs.existsSync(out))
      throw new CertError("EEXIST", `'${out}' already exists (use --force to overwrite)`);
  }
  if (bundle && (args.string("key-pub") !== undefined || args.string("key") !== undefined))
    throw new UsageError("--bundle makes a new key for the host: give no --key-pub or --key");
  // a bundle carries a fresh secret key for the host, made here
  const kp = bundle ? signKeyPair() : null;
  const publicKey = kp ? kp.publicKey : subjectPublicKey(args, io);
  let ca: ReturnType<typeof loadCa>;
  try {
    ca = loadCa(io, args.requireString("ca"));
  } catch (e) {
    if (kp) zero(kp.secretKey);
    throw e;
  }
  try {
    const now = nowSec(io);
    let notAfter = now + validitySeconds(args);
    if (notAfter > ca.cert.notAfter) {
      notAfter = ca.cert.notAfter;
      io.stderr(`mintun: note: validity shortened to the CA's expiry, ${iso(notAfter)}\n`);
    }
    const notBefore = Math.max(now - CLOCK_SKEW_SEC, ca.cert.notBefore);
    const cert = signCert(
      make({ name, publicKey, groups, notBefore, notAfter, issuer: ca.cert.publicKey }),
      ca.secretKey,
    );
    const summary = {
      kind: cert.kind,
      name,
      fingerprint: fingerprint(publicKey),
      notBefore: iso(cert.notBefore),
      notAfter: iso(cert.notAfter),
      ca: fingerprint(ca.cert.publicKey),
      out: toStdout ? null : out,
      bundle: kp !== null,
    };
    if (kp && toStdout) {
      const parts = [
        armor(LABEL_SECRET_KEY, kp.secretKey),
        armor(CERT_LABELS[cert.kind], cert.raw),
        armor(CERT_LABELS[ca.cert.kind], ca.cert.raw),
      ].join("");
      const text = Buffer.from(parts, "latin1");
      if (io.stdoutBytes) io.stdoutBytes(text);
      else io.stdout(parts);
      zero(text);
    } else if (toStdout) {
      writeCertArg(io, "-", cert, force);
    } else if (kp) {
      writeBundle(out, { secretKey: kp.secretKey, cert, ca: ca.cert }, { force });
      if (json) printJson(io, summary);
      else
        io.stdout(
          `wrote enrolment bundle ${out} (secret, 0600): a new key, the ${what} certificate and the CA certificate\n` +
            `  name: ${name}, key fingerprint ${fingerprint(publicKey)}, valid until ${iso(cert.notAfter)}\n` +
            `  on the host: mintun enrol ${path.basename(out)}  (then delete the bundle)\n`,
        );
    } else {
      writeCert(out, cert, { force });
      if (json) printJson(io, summary);
      else
        io.stdout(
          `wrote ${what} certificate ${out}\n  name: ${name}, key fingerprint ${fingerprint(publicKey)}, ` +
            `valid until ${iso(cert.notAfter)}\n`,
        );
    }
  } finally {
    zero(ca.secretKey);
    if (kp) zero(kp.secretKey);
  }
}

export const caSignHost: Command = {
  path: ["ca", "sign-host"],
  summary: "issue a host certificate (or with --bundle an enrolment bundle)",
  description:
    "With --bundle, a new key pair is made for the host and --out gets one file (0600) with its\n" +
    "secret key, the certificate and the CA certificate: copy it to the host and run\n" +
    "'mintun enrol FILE' there (one file, one command; the secret key crosses the copy).",
  flags: [
    ...SIGN_COMMON_FLAGS,
    { name: "ip4", type: "string", metavar: "ADDR", help: "overlay IPv4 address" },
    { name: "ip6", type: "string", metavar: "ADDR", help: "overlay IPv6 address" },
    { name: "subnets", type: "list", metavar: "CIDR,CIDR", help: "subnets this host may route" },
    {
      name: "bundle",
      type: "boolean",
      help: "write an enrolment bundle to --out instead: a new host key, the certificate and ca.crt (0600)",
    },
    ...SIGN_TAIL_FLAGS,
  ],
  run(args, io) {
    const ip4s = args.string("ip4");
    const ip6s = args.string("ip6");
    const ip4 = ip4s === undefined ? null : parseIp4(ip4s);
    if (ip4s !== undefined && !ip4) throw new UsageError(`--ip4: invalid IPv4 address '${ip4s}'`);
    const ip6 = ip6s === undefined ? null : parseIp6(ip6s);
    if (ip6s !== undefined && !ip6) throw new UsageError(`--ip6: invalid IPv6 address '${ip6s}'`);
    const subnetArgs = args.list("subnets");
    if (subnetArgs.length > MAX_SUBNETS) throw new UsageError(`--subnets: at most ${MAX_SUBNETS}`);
    const subnets = subnetArgs.map((s) => {
      const c = parseCidr(s);
      if (!c)
        throw new UsageError(`--subnets: '${s}' is not a network CIDR (e.g. 10.1.0.0/16, host bits zero)`);
      return c.text;
    });
    if (new Set(subnets).size !== subnets.length) throw new UsageError("--subnets: duplicate subnet");
    signAndWrite(
      args,
      io,
      (c) => ({
        ...c,
        kind: "host",
        ip4: ip4 ? formatIp4(ip4) : null,
        ip6: ip6 ? formatIp6(ip6) : null,
        subnets,
      }),
      "host",
      args.bool("bundle"),
    );
  },
};

export const caSignUser: Command = {
  path: ["ca", "sign-user"],
  summary: "issue a user certificate",
  flags: [...SIGN_COMMON_FLAGS, ...SIGN_TAIL_FLAGS],
  run(args, io) {
    signAndWrite(args, io, (c) => ({ ...c, kind: "user" }), "user");
  },
};
