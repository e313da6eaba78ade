/**
 * `mintun resolve NAME`: what the daemon knows about a host name (its own
 * certificate, its peers' verified certificates, or the directory's verified
 * record): overlay addresses, subnets, key fingerprint and when the answer expires.
 * Exit 1 when there is no such host or the daemon cannot ask.
 */
import { apiCall } from "../../api/client.js";
import type { NameAnswer } from "../../names/names.js";
import { UsageError } from "../../errors.js";
import { EXIT_FAILURE, type Command } from "../cli.js";
import { SOCKET_FLAG } from "./status.js";
import { duration } from "../format.js";

const SOURCE: Record<NameAnswer["source"], string> = {
  self: "this host",
  peer: "a peer's verified certificate",
  directory: "the directory (record verified against the CA)",
};

export function formatResolve(a: NameAnswer, now: number): string {
  const left = Math.round((a.expiresAt - now) / 1000);
  const rows: [string, string][] = [
    ["name", a.name],
    ["ip4", a.ip4 ?? "-"],
    ["ip6", a.ip6 ?? "-"],
    ["subnets", a.subnets.length ? a.subnets.join(" ") : "-"],
    ["key", a.key],
    [
      "expires",
      `${new Date(a.expiresAt).toISOString()} (${left >= 0 ? `in ${duration(left)}` : `${duration(-left)} ago`})`,
    ],
    ["from", SOURCE[a.source]],
  ];
  return rows.map(([k, v]) => `${(k + ":").padEnd(9)} ${v}\n`).join("");
}

export const resolve: Command = {
  path: ["resolve"],
  summary: "look a host up by name: overlay addresses, subnets, key fingerprint, record expiry",
  description:
    "NAME is a host name as in its certificate (web) or its DNS form (web.mesh).\n" +
    "Exit 1 if no such host exists or no directory answered.",
  positionals: [{ name: "NAME", help: "host name", required: true }],
  flags: [SOCKET_FLAG, { name: "json", type: "boolean", help: "print JSON" }],
  async run(args, io) {
    const name = args.positionals[0]!;
    if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/.test(name))
      throw new UsageError(`'${name}' is not a host name (letters, digits, '.' and '-')`);
    const a = (await apiCall(args.string("socket")!, "resolve", { name }, 10_000)) as NameAnswer | null;
    if (!a) {
      if (args.bool("json")) io.stdout("null\n");
      io.stderr(`mintun: ${name}: no such host\n`);
      return EXIT_FAILURE;
    }
    io.stdout(args.bool("json") ? JSON.stringify(a, null, 2) + "\n" : formatResolve(a, io.now()));
    return 0;
  },
};
