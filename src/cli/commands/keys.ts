/** `mintun keygen` and `mintun pubkey`. */
import * as fs from "node:fs";
import { CertError } from "../../errors.js";
import {
  parseSecretKey,
  publicKeyOf,
  readSecretKey,
  writePublicKey,
  writeSecretKey,
} from "../../store/keyfile.js";
import { signKeyPair, zero } from "../../crypto/sodium.js";
import { fingerprint } from "../../wire/cert.js";
import { resolvePath, type Command } from "../cli.js";
import { FORCE_FLAG, JSON_FLAG, printJson, readStdin, requireDir } from "./common.js";

/** "host.key" -> "host.pub"; anything else gets ".pub" appended. */
export function pubPathFor(secretPath: string): string {
  return secretPath.endsWith(".key") ? `${secretPath.slice(0, -4)}.pub` : `${secretPath}.pub`;
}

export const keygen: Command = {
  path: ["keygen"],
  summary: "generate an Ed25519 key pair: FILE (secret, 0600) and its .pub",
  description:
    "Prints the public key (base64) and its fingerprint; the secret key is only written to FILE.\n" +
    "The public key also goes to FILE with .key replaced by .pub (or .pub appended).\n" +
    "FILE's directory must exist (a mistyped path is refused, not created).",
  examples: ["mkdir -m 700 keys && mintun keygen --out keys/web.key"],
  flags: [
    {
      name: "out",
      type: "string",
      metavar: "FILE",
      required: true,
      help: "secret key file to write (its directory must exist)",
    },
    FORCE_FLAG,
    JSON_FLAG,
  ],
  run(args, io) {
    const out = resolvePath(io, args.requireString("out"));
    const pubOut = pubPathFor(out);
    const force = args.bool("force");
    requireDir(out);
    if (!force)
      for (const f of [out, pubOut])
        if (fs.existsSync(f))
          throw new CertError("EEXIST", `'${f}' already exists (use --force to overwrite)`);
    const kp = signKeyPair();
    try {
      writeSecretKey(out, kp.secretKey, { force });
      writePublicKey(pubOut, kp.publicKey, { force });
    } finally {
      zero(kp.secretKey);
    }
    if (args.bool("json"))
      return printJson(io, {
        publicKey: kp.publicKey.toString("base64"),
        fingerprint: fingerprint(kp.publicKey),
        secretKeyFile: out,
        publicKeyFile: pubOut,
      });
    io.stdout(
      `public key:  ${kp.publicKey.toString("base64")}\nfingerprint: ${fingerprint(kp.publicKey)}\n` +
        `wrote ${out} (secret, 0600) and ${pubOut}\n`,
    );
  },
};

export const pubkey: Command = {
  path: ["pubkey"],
  summary: "print the public key (base64) of a secret key file",
  flags: [
    {
      name: "key",
      type: "string",
      metavar: "FILE",
      required: true,
      help: "secret key file ('-': read it from stdin)",
    },
    JSON_FLAG,
  ],
  run(args, io) {
    const key = args.requireString("key");
    const sk = key === "-" ? parseSecretKey(readStdin(io), "<stdin>") : readSecretKey(resolvePath(io, key));
    const pk = publicKeyOf(sk);
    zero(sk);
    if (args.bool("json"))
      return printJson(io, { publicKey: pk.toString("base64"), fingerprint: fingerprint(pk) });
    io.stdout(`${pk.toString("base64")}\n`);
  },
};
