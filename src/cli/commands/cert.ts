/** `mintun cert show`. */
import { fingerprint, verifyCert, type Cert } from "../../wire/cert.js";
import type { Command } from "../cli.js";
import { UsageError } from "../../errors.js";
import { duration } from "../format.js";
import { caFlag, iso, loadCaCert, nowSec, readCertArg } from "./common.js";

export const certShow: Command = {
  path: ["cert", "show"],
  summary: "print a certificate; verify it against a CA with --ca",
  failure: "the certificate does not verify against --ca, or a file is missing or malformed",
  examples: [
    "mintun cert show /etc/mintun/host.crt --ca /etc/mintun/ca.crt",
    "mintun cert show - --json < web.crt",
  ],
  positionals: [{ name: "FILE", help: "certificate file ('-': read it from stdin)", required: true }],
  flags: [
    { name: "json", type: "boolean", help: "print JSON instead of text" },
    caFlag("verify against this CA: its directory or its ca.crt file"),
  ],
  run(args, io) {
    if (args.positionals[0] === "-" && args.string("ca") === "-")
      throw new UsageError("FILE and --ca cannot both be '-' (stdin)");
    const cert = readCertArg(io, args.positionals[0]!);
    const now = nowSec(io);
    const caPath = args.string("ca");
    let verification: string | null = null;
    let ok = true;
    if (caPath !== undefined) {
      const ca = loadCaCert(io, caPath);
      const v = verifyCert(cert, ca, now);
      ok = v.ok;
      verification = v.ok ? `ok (CA ${fingerprint(ca.publicKey)})` : `FAILED: ${v.reason}`;
    }
    const expired = now >= cert.notAfter;
    const notYet = now < cert.notBefore;
    if (args.bool("json")) {
      const j: Record<string, unknown> = {
        kind: cert.kind,
        name: cert.name,
        fingerprint: fingerprint(cert.publicKey),
        publicKey: cert.publicKey.toString("base64"),
        ...(cert.kind === "host" ? { ip4: cert.ip4, ip6: cert.ip6, subnets: cert.subnets } : {}),
        groups: cert.groups,
        notBefore: iso(cert.notBefore),
        notAfter: iso(cert.notAfter),
        expired,
        notYetValid: notYet,
        issuer: fingerprint(cert.issuer),
        selfSigned: cert.issuer.equals(cert.publicKey),
      };
      if (verification !== null) j.verified = ok;
      if (!ok && verification) j.verifyError = verification.replace(/^FAILED: /, "");
      io.stdout(JSON.stringify(j, null, 2) + "\n");
    } else {
      io.stdout(formatCert(cert, now) + (verification !== null ? `verified:    ${verification}\n` : ""));
    }
    return ok ? 0 : 1;
  },
};

export function formatCert(cert: Cert, now: number): string {
  const rows: [string, string][] = [
    ["kind", cert.kind],
    ["name", cert.name],
    ["fingerprint", fingerprint(cert.publicKey)],
    ["public key", cert.publicKey.toString("base64")],
  ];
  if (cert.kind === "host") {
    rows.push(["ip4", cert.ip4 ?? "-"], ["ip6", cert.ip6 ?? "-"]);
    rows.push(["subnets", cert.subnets.length ? cert.subnets.join(", ") : "-"]);
  }
  rows.push(["groups", cert.groups.length ? cert.groups.join(", ") : "-"]);
  rows.push(["not before", iso(cert.notBefore) + (now < cert.notBefore ? " (NOT YET VALID)" : "")]);
  rows.push([
    "not after",
    iso(cert.notAfter) + (now >= cert.notAfter ? " (EXPIRED)" : ` (in ${duration(cert.notAfter - now)})`),
  ]);
  rows.push([
    "issuer",
    cert.issuer.equals(cert.publicKey)
      ? `${fingerprint(cert.issuer)} (self-signed)`
      : fingerprint(cert.issuer),
  ]);
  return rows.map(([k, v]) => `${(k + ":").padEnd(12)} ${v}\n`).join("");
}
