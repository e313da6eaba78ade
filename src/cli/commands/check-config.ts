/** `mintun check-config FILE`: validate a mintund config and the files it names. */
import { loadConfig, RESTART_KEYS } from "../../config/config.js";
import { hostRights } from "../../conn/policy.js";
import { loadPolicy } from "../../store/policy-file.js";
import {
  publicKeyOf,
  readCert as readCertFile,
  readSecretKey as readSecretKeyFile,
} from "../../store/keyfile.js";
import { zero } from "../../crypto/sodium.js";
import { CertError, MintunError } from "../../errors.js";
import { fingerprint, verifyCert } from "../../wire/cert.js";
import { EXIT_FAILURE, resolvePath, type Command, type Io } from "../cli.js";
import { JSON_FLAG, printJson } from "./common.js";

export const checkConfig: Command = {
  path: ["check-config"],
  summary: "validate a mintund config file (and the key and certificate files it names)",
  description:
    "Errors name the file, the line, the key and what was expected; exit 1 on any error.\n" +
    "Without --syntax-only, also reads the CA, host key and certificate and checks that\n" +
    "they belong together and verify now.",
  positionals: [{ name: "FILE", help: "config file", required: true }],
  flags: [
    { name: "syntax-only", type: "boolean", help: "do not read the key and certificate files" },
    {
      ...JSON_FLAG,
      help: "print JSON: {ok: true, ...summary} or, on a config error, {ok: false, code, error}",
    },
  ],
  run(args, io) {
    const file = resolvePath(io, args.positionals[0]!);
    if (!args.bool("json")) return check(file, args.bool("syntax-only"), io, false);
    try {
      return check(file, args.bool("syntax-only"), io, true);
    } catch (e) {
      if (!(e instanceof MintunError)) throw e;
      printJson(io, { file, ok: false, code: e.code, error: e.message });
      return EXIT_FAILURE;
    }
  },
};

function check(file: string, syntaxOnly: boolean, io: Io, json: boolean): number {
  {
    const c = loadConfig(file);
    const notes: string[] = [];
    if (!syntaxOnly) {
      // name the config key in file errors
      const keyed = <T>(key: string, f: () => T): T => {
        try {
          return f();
        } catch (e) {
          if (e instanceof MintunError)
            throw new CertError(e.code, `${file} (${key}): ${e.message}`, { cause: e });
          throw e;
        }
      };
      const readCert = (key: string, f: string) => keyed(key, () => readCertFile(f));
      const readSecretKey = (key: string, f: string) => keyed(key, () => readSecretKeyFile(f));
      const ca = readCert("ca", c.ca);
      if (ca.kind !== "ca")
        throw new CertError("ECERTKIND", `${c.ca} (ca): expected a CA certificate, got ${ca.kind}`);
      const hc = readCert("host.cert", c.host.cert);
      if (hc.kind !== "host")
        throw new CertError(
          "ECERTKIND",
          `${c.host.cert} (host.cert): expected a host certificate, got ${hc.kind}`,
        );
      const sk = readSecretKey("host.key", c.host.key);
      const pk = publicKeyOf(sk);
      zero(sk);
      if (!pk.equals(hc.publicKey))
        throw new CertError("EKEYMISMATCH", `${c.host.key} (host.key) is not the key of ${c.host.cert}`);
      const v = verifyCert(hc, ca, Math.floor(io.now() / 1000));
      if (!v.ok)
        throw new CertError(
          "ECERTINVALID",
          `${c.host.cert} (host.cert) does not verify against ${c.ca}: ${v.reason}`,
        );
      const days = Math.floor((hc.notAfter - io.now() / 1000) / 86400);
      notes.push(`host '${hc.name}' (${fingerprint(hc.publicKey)}), certificate valid ${days} more days`);
      if (days < 30) notes.push(`warning: the host certificate expires in ${days} days`);
      for (const [i, p] of c.peers.entries())
        if (p.cert && readCert(`peers[${i}].cert`, p.cert).kind !== "host")
          throw new CertError("ECERTKIND", `${p.cert} (peers[${i}].cert): not a host certificate`);
    }
    // the policy file is checked in every mode (it is configuration, not a secret)
    if (c.policy) {
      const pol = loadPolicy(c.policy);
      notes.push(
        `policy ${c.policy}: ${pol.rules.length} rules, default ${pol.default}; users without an identity run as ${c.users.unmapped === "host" ? "the host" : "nobody (refused)"}`,
      );
      if (c.users.unmapped === "host") {
        const hr = hostRights(pol);
        const what = hr.rules
          .map((r) => `rules[${r.index}] (line ${r.line}${r.name ? `, "${r.name}"` : ""})`)
          .concat(hr.byDefault ? ["the default (allow)"] : []);
        if (what.length > 0)
          notes.push(
            `warning: users.unmapped is host and the policy grants host rights (${what.join(", ")}): ` +
              `every OS user without an identity, and every flow whose owner is not proven, gets them ` +
              `(set users.unmapped: deny and list services in users.asHost)`,
          );
      }
    } else if (c.users.unmapped === "host")
      notes.push(
        "warning: users.unmapped is host: every OS user without an identity, and every flow whose owner " +
          "is not proven, acts as this host wherever a peer's policy grants host rights " +
          "(set users.unmapped: deny and list services in users.asHost)",
      );
    if (c.users.asHost.length > 0)
      notes.push(`acting as the host besides root: ${c.users.asHost.join(", ")}`);
    const hp = (x: { host: string; port: number } | null) =>
      x ? `${x.host.includes(":") ? `[${x.host}]` : x.host}:${x.port}` : "off";
    if (json) {
      printJson(io, {
        file,
        ok: true,
        notes,
        peers: c.peers.length,
        listen: hp({ host: c.listen.address, port: c.listen.port }),
        tun: c.tun.name,
        metrics: hp(c.metrics.listen),
        web: hp(c.web.listen),
        log: c.log.level,
        directories: c.directories.length,
        directoryRole: c.directory ? { store: c.directory.store } : null,
        restartKeys: RESTART_KEYS,
      });
      return 0;
    }
    io.stdout(
      `${file}: ok\n` +
        notes.map((n) => `  ${n}\n`).join("") +
        `  ${c.peers.length} peers, listen ${hp({ host: c.listen.address, port: c.listen.port })}, tun ${c.tun.name}, ` +
        `metrics ${hp(c.metrics.listen)}, web ${hp(c.web.listen)}, log ${c.log.level}\n` +
        `  ${c.directories.length} directories, directory role ${c.directory ? `on (store ${c.directory.store})` : "off"}\n` +
        `  keys that need a restart when changed: ${RESTART_KEYS.join(", ")}\n`,
    );
    return 0;
  }
}
