/**
 * `mintun user add`, `mintun user remove`, `mintun user list`: the OS users of this host
 * and the user identities (certificate + secret key) they connect under. The store is
 * STATE/users (default /var/lib/mintun/users); see src/store/users.ts and docs/IDENTITY.md.
 */
import * as path from "node:path";
import { CertError, MintunError, UsageError } from "../../errors.js";
import { loadConfig, DEFAULTS } from "../../config/config.js";
import { readCert, readSecretKey } from "../../store/keyfile.js";
import { zero } from "../../crypto/sodium.js";
import { fingerprint, verifyCert, type CaCert } from "../../wire/cert.js";
import {
  DEFAULT_PASSWD,
  UserStore,
  addUser,
  identityStatus,
  keyProblem,
  lookupOsUser,
  readPasswd,
  removeUser,
  usersDir,
} from "../../store/users.js";
import { resolvePath, type Command, type Io } from "../cli.js";
import type { FlagSpec, ParsedArgs } from "../args.js";
import { FORCE_FLAG, JSON_FLAG, caFlag, iso, loadCaCert, nowSec, printJson } from "./common.js";
import { table } from "./status.js";

/** What the commands take from the system; tests inject their own. */
export interface UserCommandDeps {
  /** Real uid of the caller (process.getuid). */
  getuid(): number;
  /** passwd(5) file used to resolve OS user names. */
  passwdFile: string;
}

const STATE_FLAGS: FlagSpec[] = [
  {
    name: "state",
    type: "string",
    metavar: "DIR",
    help: `the daemon's state directory; users are kept in DIR/users (default ${DEFAULTS.stateDir})`,
  },
  {
    name: "config",
    type: "string",
    metavar: "FILE",
    help: "take the state directory from this mintund config (its 'state' key)",
  },
];

const CA_FLAG: FlagSpec = caFlag("the CA the user certificate must verify against: its directory or ca.crt");

function storeDir(args: ParsedArgs, io: Io): string {
  const state = args.string("state");
  const config = args.string("config");
  if (state !== undefined && config !== undefined)
    throw new UsageError("give only one of --state and --config");
  if (config !== undefined) return usersDir(loadConfig(resolvePath(io, config)).stateDir);
  return usersDir(state !== undefined ? resolvePath(io, state) : DEFAULTS.stateDir);
}

function requireRoot(deps: UserCommandDeps, what: string): void {
  const uid = deps.getuid();
  if (uid !== 0)
    throw new MintunError(
      "EPERM",
      `'mintun user ${what}' must run as root (uid 0), not uid ${uid}: the user store holds ` +
        `secret keys and is readable by root only (try: sudo mintun user ${what} ...)`,
    );
}

const readCa = (io: Io, arg: string): CaCert => loadCaCert(io, arg);

function status(now: number, notBefore: number, notAfter: number): string {
  return now >= notAfter ? "EXPIRED" : now < notBefore ? "NOT-YET-VALID" : "ok";
}

export function userCommands(deps: UserCommandDeps): Command[] {
  const userAdd: Command = {
    path: ["user", "add"],
    summary: "give an OS user a user identity (certificate + secret key) on this host (root)",
    description:
      "Copies the secret key and the user certificate into the user store (STATE/users/<uid>.user,\n" +
      "mode 0600, directory 0700). Connections opened by processes of OS_USER will run under\n" +
      "this identity. The certificate must be a user certificate (`mintun ca sign-user`) for\n" +
      "the key in --key; with --ca it must verify against that CA. OS_USER is looked up in\n" +
      "/etc/passwd.",
    positionals: [{ name: "OS_USER", help: "local user name (or uid) as in /etc/passwd", required: true }],
    flags: [
      { name: "key", type: "string", metavar: "FILE", required: true, help: "the user's secret key file" },
      { name: "cert", type: "string", metavar: "FILE", required: true, help: "the user's certificate" },
      CA_FLAG,
      ...STATE_FLAGS,
      { ...FORCE_FLAG, help: "replace an existing identity of this OS user" },
      JSON_FLAG,
    ],
    run(args, io) {
      requireRoot(deps, "add");
      const osName = args.positionals[0]!;
      const pw = lookupOsUser(readPasswd(deps.passwdFile), osName);
      if (!pw) throw new MintunError("ENOUSER", `unknown OS user '${osName}' (not in ${deps.passwdFile})`);
      const certArg = args.requireString("cert");
      const cert = readCert(resolvePath(io, certArg));
      if (cert.kind !== "user")
        throw new CertError(
          "EWRONGKIND",
          `'${certArg}' is a ${cert.kind} certificate, not a user certificate (issue one with 'mintun ca sign-user')`,
        );
      const now = nowSec(io);
      const caArg = args.string("ca");
      let verified = "not checked against a CA (give --ca to check)";
      if (caArg !== undefined) {
        const ca = readCa(io, caArg);
        const v = verifyCert(cert, ca, now);
        if (!v.ok)
          throw new CertError("EVERIFY", `'${certArg}' does not verify against CA '${caArg}': ${v.reason}`);
        verified = `verified against CA ${fingerprint(ca.publicKey)}`;
      } else if (now >= cert.notAfter) {
        throw new CertError("EEXPIRED", `'${certArg}' expired at ${iso(cert.notAfter)}`);
      } else if (now < cert.notBefore) {
        throw new CertError("ENOTYETVALID", `'${certArg}' is not valid before ${iso(cert.notBefore)}`);
      }
      const keyArg = args.requireString("key");
      const sk = readSecretKey(resolvePath(io, keyArg));
      try {
        const problem = keyProblem(sk, cert);
        if (problem)
          throw new CertError(
            "EMISMATCH",
            `'${keyArg}' does not belong to '${certArg}': the certificate is for key ` +
              `${fingerprint(cert.publicKey)}, the secret key is ${fingerprint(sk.subarray(32))}`,
          );
        const dir = storeDir(args, io);
        const file = addUser(
          dir,
          { uid: pw.uid, osUser: pw.name, cert, secretKey: sk },
          { force: args.bool("force") },
        );
        if (args.bool("json"))
          printJson(io, {
            uid: pw.uid,
            osUser: pw.name,
            name: cert.name,
            groups: cert.groups,
            fingerprint: fingerprint(cert.publicKey),
            notAfter: iso(cert.notAfter),
            verifiedBy: caArg !== undefined ? fingerprint(cert.issuer) : null,
            file,
          });
        else
          io.stdout(
            `OS user ${pw.name} (uid ${pw.uid}) now connects as user '${cert.name}'` +
              `${cert.groups.length ? ` (groups ${cert.groups.join(", ")})` : ""}\n` +
              `  key fingerprint ${fingerprint(cert.publicKey)}, valid until ${iso(cert.notAfter)}, ${verified}\n` +
              `  wrote ${file} (0600)\n`,
          );
        const store = UserStore.load(dir);
        try {
          const others = store
            .list()
            .filter((u) => u.uid !== pw.uid && u.cert.publicKey.equals(cert.publicKey));
          for (const o of others)
            io.stderr(`mintun: note: OS user ${o.osUser} (uid ${o.uid}) holds the same user key\n`);
        } finally {
          store.clear();
        }
      } finally {
        zero(sk);
      }
    },
  };

  const userRemove: Command = {
    path: ["user", "remove"],
    summary: "remove the user identity of an OS user from this host (root)",
    description:
      "OS_USER is looked up in /etc/passwd; a user that no longer exists there is found by the\n" +
      "name recorded in the store.",
    positionals: [{ name: "OS_USER", help: "local user name (or uid)", required: true }],
    flags: [...STATE_FLAGS, JSON_FLAG],
    run(args, io) {
      requireRoot(deps, "remove");
      const osName = args.positionals[0]!;
      const dir = storeDir(args, io);
      const pw = lookupOsUser(readPasswd(deps.passwdFile), osName);
      let uids: number[];
      if (pw) uids = [pw.uid];
      else {
        const store = UserStore.load(dir);
        uids = store.lookupByOsUser(osName).map((u) => u.uid);
        store.clear();
        if (uids.length === 0 && /^[0-9]{1,10}$/.test(osName)) uids = [Number(osName)];
      }
      const removed = uids.filter((uid) => removeUser(dir, uid));
      if (removed.length === 0)
        throw new MintunError("ENOENT", `OS user '${osName}' has no user identity in '${dir}'`);
      if (args.bool("json")) return printJson(io, { osUser: osName, removedUids: removed, dir });
      for (const uid of removed)
        io.stdout(`removed the user identity of ${osName} (uid ${uid}) from ${dir}\n`);
    },
  };

  const userList: Command = {
    path: ["user", "list"],
    summary: "list the OS users of this host that have a user identity",
    description:
      "Entries that cannot be used (bad permissions, malformed, key and certificate not\n" +
      "matching, or with --ca not issued by the CA) are reported on stderr; exit code 1 then.",
    flags: [
      { name: "json", type: "boolean", help: "print JSON instead of a table" },
      CA_FLAG,
      ...STATE_FLAGS,
    ],
    run(args, io) {
      const dir = storeDir(args, io);
      const caArg = args.string("ca");
      const ca = caArg !== undefined ? readCa(io, caArg) : undefined;
      const now = nowSec(io);
      const store = UserStore.load(dir, { ca, nowSec: now });
      try {
        const rows = store.list().map((u) => ({
          uid: u.uid,
          osUser: u.osUser,
          name: u.cert.name,
          groups: u.cert.groups,
          fingerprint: fingerprint(u.cert.publicKey),
          notBefore: iso(u.cert.notBefore),
          notAfter: iso(u.cert.notAfter),
          status: identityStatus(u, now),
          file: u.file,
        }));
        if (args.bool("json")) {
          const j = {
            dir: store.dir,
            users: rows.map((r) => ({ ...r, expired: r.status === "expired" })),
            errors: store.errors.map((e) => ({ file: e.file, code: e.code, message: e.message })),
          };
          io.stdout(JSON.stringify(j, null, 2) + "\n");
        } else if (rows.length === 0) {
          io.stdout(`no user identities in ${store.dir}\n`);
        } else {
          const t = [["UID", "OS USER", "CERT NAME", "GROUPS", "FINGERPRINT", "VALID UNTIL", "STATUS"]];
          for (const r of store.list())
            t.push([
              String(r.uid),
              r.osUser,
              r.cert.name,
              r.cert.groups.join(",") || "-",
              fingerprint(r.cert.publicKey),
              iso(r.cert.notAfter),
              status(now, r.cert.notBefore, r.cert.notAfter),
            ]);
          io.stdout(table(t));
        }
        for (const e of store.errors) io.stderr(`mintun: skipped ${path.basename(e.file)}: ${e.message}\n`);
        return store.errors.length > 0 ? 1 : 0;
      } finally {
        store.clear();
      }
    },
  };

  return [userAdd, userRemove, userList];
}

export const USER_COMMANDS: readonly Command[] = userCommands({
  getuid: () => (typeof process.getuid === "function" ? process.getuid() : -1),
  passwdFile: DEFAULT_PASSWD,
});
