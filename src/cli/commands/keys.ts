/** `mintun keygen` and `mintun pubkey`. */
import * as fs from "node:fs";
import { CertError } from "../../errors.js";
import { publicKeyOf, readSecretKey, writePublicKey, writeSecretKey } from "../../store/keyfile.js";
import { signKeyPair, zero } from "../../crypto/sodium.js";
import { fingerprint } from "../../wire/cert.js";
import { resolvePath, type Command } from "../cli.js";
import { FORCE_FLAG } from "./common.js";

/** "host.key" -> "host.pub"; anything else gets ".pub" appended. */
export function pubPathFor(secretPath: string): string {
  return secretPath.endsWith(".key") ? `${secretPath.slice(0, -4)}.pub` : `${secretPath}.pub`;
}

export const keygen: Command = {
  path: ["keygen"],
  summary: "generate an Ed25519 key pair: FILE (secret, 0600) and its .pub",
  description:
    "Prints the public key (base64) and its fingerprint; the secret key is only written to FILE.\n" +
    "The public key also goes to FILE with .key replaced by .pub (or .pub appended).",
  flags: [
    { name: "out", type: "string", metavar: "FILE", required: true, help: "secret key file to write" },
    FORCE_FLAG,
  ],
  run(args, io) {
    const out = resolvePath(io, args.requireString("out"));
    const pubOut = pubPathFor(out);
    const force = args.bool("force");
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
    io.stdout(
      `public key:  ${kp.publicKey.toString("base64")}\nfingerprint: ${fingerprint(kp.publicKey)}\n` +
        `wrote ${out} (secret, 0600) and ${pubOut}\n`,
    );
  },
};

export const pubkey: Command = {
  path: ["pubkey"],
  summary: "print the public key (base64) of a secret key file",
  flags: [{ name: "key", type: "string", metavar: "FILE", required: true, help: "secret key file" }],
  run(args, io) {
    const sk = readSecretKey(resolvePath(io, args.requireString("key")));
    const pk = publicKeyOf(sk);
    zero(sk);
    io.stdout(`${pk.toString("base64")}\n`);
  },
};
