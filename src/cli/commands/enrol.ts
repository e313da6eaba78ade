/** `mintun enrol`: install an enrolment bundle (`mintun ca sign-host --bundle`) on a host. */
import * as fs from "node:fs";
import * as path from "node:path";
import { CertError } from "../../errors.js";
import { parseBundle, publicKeyOf, readBundle, writeCert, writeSecretKey } from "../../store/keyfile.js";
import { zero } from "../../crypto/sodium.js";
import { fingerprint, verifyCert, type CaCert } from "../../wire/cert.js";
import { resolvePath, type Command } from "../cli.js";
import { FORCE_FLAG, JSON_FLAG, iso, nowSec, printJson, readStdin } from "./common.js";

export const enrol: Command = {
  path: ["enrol"],
  summary: "install an enrolment bundle: DIR/host.key (0600), DIR/host.crt and DIR/ca.crt",
  description:
    "FILE comes from 'mintun ca sign-host --bundle'. The certificate must verify against the CA\n" +
    "certificate in the bundle and belong to its secret key; nothing is written otherwise, and\n" +
    "nothing is overwritten without --force. A mintund config then names the three files.\n" +
    "DIR is created (0700) when it does not exist, as 'ca init --dir' does: it is the one\n" +
    "directory the command fills (keygen and ca sign-* refuse a missing directory instead).",
  examples: [
    "mintun enrol web.bundle",
    "mintun ca sign-host --bundle --out - ... | ssh root@web mintun enrol -",
  ],
  positionals: [{ name: "FILE", help: "enrolment bundle ('-': read it from stdin)", required: true }],
  flags: [
    { name: "dir", type: "string", metavar: "DIR", default: "/etc/mintun", help: "where the files go" },
    FORCE_FLAG,
    JSON_FLAG,
  ],
  run(args, io) {
    const arg = args.positionals[0]!;
    const file = arg === "-" ? "<stdin>" : resolvePath(io, arg);
    const dir = resolvePath(io, args.requireString("dir"));
    const force = args.bool("force");
    const b = arg === "-" ? parseBundle(readStdin(io), file) : readBundle(file);
    try {
      if (!publicKeyOf(b.secretKey).equals(b.cert.publicKey))
        throw new CertError("EMISMATCH", `'${file}': the secret key does not belong to the certificate`);
      const v = verifyCert(b.cert, b.ca as CaCert, nowSec(io));
      if (!v.ok) throw new CertError("EVERIFY", `'${file}': the certificate does not verify: ${v.reason}`);
      const out = {
        key: path.join(dir, "host.key"),
        cert: path.join(dir, "host.crt"),
        ca: path.join(dir, "ca.crt"),
      };
      if (!force)
        for (const f of Object.values(out))
          if (fs.existsSync(f))
            throw new CertError("EEXIST", `'${f}' already exists (use --force to overwrite)`);
      writeCert(out.ca, b.ca, { force });
      writeCert(out.cert, b.cert, { force });
      writeSecretKey(out.key, b.secretKey, { force });
      const c = b.cert;
      const addrs = [c.kind === "host" ? c.ip4 : null, c.kind === "host" ? c.ip6 : null]
        .filter(Boolean)
        .join(" ");
      if (args.bool("json"))
        return printJson(io, {
          name: c.name,
          ip4: c.kind === "host" ? c.ip4 : null,
          ip6: c.kind === "host" ? c.ip6 : null,
          fingerprint: fingerprint(c.publicKey),
          notAfter: iso(c.notAfter),
          ca: { name: b.ca.name, fingerprint: fingerprint(b.ca.publicKey) },
          wrote: out,
        });
      io.stdout(
        `enrolled host '${c.name}' ${addrs}, key fingerprint ${fingerprint(c.publicKey)}, valid until ${iso(c.notAfter)}\n` +
          `  CA '${b.ca.name}' (fingerprint ${fingerprint(b.ca.publicKey)})\n` +
          `  wrote ${out.key} (secret, 0600), ${out.cert}, ${out.ca}\n`,
      );
    } finally {
      zero(b.secretKey);
    }
  },
};
