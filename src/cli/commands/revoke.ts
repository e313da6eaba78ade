/** `mintun ca revoke`: add to (or create, or re-issue) the CA's signed revocation list. */
import * as fs from "node:fs";
import * as path from "node:path";
import { CertError, UsageError } from "../../errors.js";
import { parsePublicKeyText, readCert, readRevocation, writeRevocation } from "../../store/keyfile.js";
import { zero } from "../../crypto/sodium.js";
import { fingerprint } from "../../wire/cert.js";
import {
  certDigest,
  compareEntries,
  signRevocation,
  verifyRevocation,
  MAX_REVOKED,
  type RevocationList,
  type RevokedEntry,
} from "../../wire/revocation.js";
import { resolvePath, type Command, type Io } from "../cli.js";
import type { ParsedArgs } from "../args.js";
import { SECONDS_PER_DAY, caFlag, caPaths, iso, loadCa, nowSec } from "./common.js";

/** Default file name of the list in the CA directory. */
export const REVOCATION_FILE = "revoked.crl";
const DEFAULT_NEXT_UPDATE_DAYS = 30;

function entryJson(e: RevokedEntry) {
  return {
    kind: e.kind,
    value: e.value.toString("hex"),
    ...(e.kind === "cert" ? {} : { fingerprint: fingerprint(e.value) }),
  };
}

function parseKeyArg(s: string, io: Io): Buffer {
  if (/^[0-9a-fA-F]{64}$/.test(s)) return Buffer.from(s, "hex");
  const file = resolvePath(io, s);
  if (fs.existsSync(file)) {
    const data = fs.readFileSync(file);
    if (data.includes("SECRET KEY")) {
      zero(data);
      throw new UsageError(`--key: '${s}' holds a secret key; give the public key (.pub) or its hex`);
    }
    const pk = parsePublicKeyText(data.toString("latin1"));
    if (pk) return pk;
    throw new UsageError(`--key: '${s}' is not a mintun public key file`);
  }
  const pk = parsePublicKeyText(s);
  if (!pk) throw new UsageError(`--key: '${s}' is neither 64 hex digits, base64 nor a public key file`);
  return pk;
}

/** The entries the flags ask for (may be none: then the list is only re-issued). */
function requestedEntries(args: ParsedArgs, io: Io, caPk: Buffer): RevokedEntry[] {
  const host = args.string("host-cert");
  const user = args.string("user-cert");
  const key = args.string("key");
  const given = [host, user, key].filter((x) => x !== undefined).length;
  if (given > 1) throw new UsageError("give one of --host-cert, --user-cert and --key");
  const onlyCert = args.bool("only-cert");
  const kindFlag = args.string("kind");
  if (kindFlag !== undefined && key === undefined) throw new UsageError("--kind goes with --key");
  if (onlyCert && key !== undefined) throw new UsageError("--only-cert goes with --host-cert or --user-cert");
  if (key !== undefined) {
    const kind = kindFlag ?? "host";
    if (kind !== "host" && kind !== "user")
      throw new UsageError(`--kind: expected host or user, got '${kind}'`);
    return [{ kind, value: parseKeyArg(key, io) }];
  }
  const file = host ?? user;
  if (file === undefined) return [];
  const want = host !== undefined ? "host" : "user";
  const cert = readCert(resolvePath(io, file));
  if (cert.kind !== want)
    throw new UsageError(
      `--${want}-cert: '${file}' is a ${cert.kind} certificate, not a ${want} certificate`,
    );
  if (!cert.issuer.equals(caPk))
    throw new CertError(
      "EWRONGISSUER",
      `'${file}' was not issued by this CA (issuer ${fingerprint(cert.issuer)})`,
    );
  return [onlyCert ? { kind: "cert", value: certDigest(cert) } : { kind: want, value: cert.publicKey }];
}

export const caRevoke: Command = {
  path: ["ca", "revoke"],
  summary: "revoke a host or user (its key or one certificate) in the CA's signed revocation list",
  description:
    `Adds the entry to --out (default CA_DIR/${REVOCATION_FILE}), creating it when missing, and signs\n` +
    "it again with a higher list number. Without --host-cert/--user-cert/--key the list is only\n" +
    "re-issued (new number and next-update). Hosts load it from trust.revocationList (reloads on\n" +
    "SIGHUP) and receive newer lists through the directory; see docs/OPERATIONS.md.",
  flags: [
    caFlag("the CA that signs the list: its directory (ca.key, ca.crt) or its ca.crt file", true),
    {
      name: "host-cert",
      type: "string",
      metavar: "FILE",
      help: "revoke this host's key (all its certificates)",
    },
    {
      name: "user-cert",
      type: "string",
      metavar: "FILE",
      help: "revoke this user's key (all its certificates)",
    },
    {
      name: "key",
      type: "string",
      metavar: "KEY",
      help: "revoke a key given as 64 hex digits, base64 or a .pub file (with --kind)",
    },
    { name: "kind", type: "string", metavar: "host|user", help: "what --key is (default host)" },
    {
      name: "only-cert",
      type: "boolean",
      help: "with --host-cert/--user-cert: revoke that one certificate, not the key",
    },
    {
      name: "next-update-days",
      type: "number",
      metavar: "N",
      default: DEFAULT_NEXT_UPDATE_DAYS,
      min: 1,
      max: 3650,
      help: "when a newer list is due (hosts report a list past it as stale)",
    },
    { name: "out", type: "string", metavar: "FILE", help: `list file (default CA_DIR/${REVOCATION_FILE})` },
    { name: "json", type: "boolean", help: "print JSON instead of text" },
  ],
  run(args, io) {
    const caArg = args.requireString("ca");
    const caDir = path.dirname(caPaths(io, caArg).certFile);
    const out =
      args.string("out") !== undefined
        ? resolvePath(io, args.string("out")!)
        : path.join(caDir, REVOCATION_FILE);
    const ca = loadCa(io, caArg);
    try {
      const now = nowSec(io);
      let old: RevocationList | null = null;
      if (fs.existsSync(out)) {
        old = readRevocation(out);
        const v = verifyRevocation(old, ca.cert);
        if (!v.ok)
          throw new CertError("EBADREVOCATION", `'${out}' is not this CA's revocation list: ${v.reason}`);
      }
      const adds = requestedEntries(args, io, ca.cert.publicKey);
      const before = old?.entries ?? [];
      const added = adds.filter((a) => !before.some((e) => compareEntries(e, a) === 0));
      if (before.length + added.length > MAX_REVOKED)
        throw new CertError("EFULL", `the list holds at most ${MAX_REVOKED} entries`);
      // the number only grows: above the old list's and above the clock, so a lost file
      // re-created later still wins over every list issued before
      const number = Math.max((old?.number ?? 0) + 1, now);
      const list = signRevocation(
        {
          number,
          issued: now,
          nextUpdate: now + args.requireNumber("next-update-days") * SECONDS_PER_DAY,
          issuer: ca.cert.publicKey,
          entries: [...before, ...added],
        },
        ca.secretKey,
      );
      writeRevocation(out, list, { force: true });
      if (args.bool("json")) {
        io.stdout(
          JSON.stringify(
            {
              file: out,
              number: list.number,
              issued: iso(list.issued),
              nextUpdate: iso(list.nextUpdate),
              issuer: fingerprint(list.issuer),
              added: added.map(entryJson),
              entries: list.entries.map(entryJson),
            },
            null,
            2,
          ) + "\n",
        );
      } else {
        const what = added.length
          ? added
              .map(
                (e) =>
                  `${e.kind} ${e.kind === "cert" ? e.value.toString("hex").slice(0, 16) : fingerprint(e.value)}`,
              )
              .join(", ")
          : adds.length
            ? "nothing new (already revoked)"
            : "nothing (re-issued)";
        io.stdout(
          `wrote revocation list ${out}\n  number ${list.number}, ${list.entries.length} entries, ` +
            `next update ${iso(list.nextUpdate)}\n  added: ${what}\n`,
        );
      }
    } finally {
      zero(ca.secretKey);
    }
  },
};
