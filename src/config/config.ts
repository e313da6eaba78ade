/**
 * The daemon configuration: YAML, validated against a fixed schema.
 *
 * Every error is a ConfigError naming the file, the line, the key path (e.g.
 * "peers[1].endpoint") and what was expected. Unknown keys are rejected, with a
 * "did you mean" suggestion when one is close. Defaults are applied here; relative
 * paths are resolved against the directory of the config file. The documented
 * example with every key, its default and whether it reloads is config/host.yaml.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseDocument, type Node } from "yaml";
import { ConfigError } from "../errors.js";
import type { Config } from "./schema.js";
import { Reader } from "./values.js";
import {
  type Section,
  readAccess,
  readDataPath,
  readTrust,
  readDirectories,
  readDirectoryServe,
  readRelay,
  readNat,
  readDns,
  readGateway,
  readIdentity,
  readListen,
  readLocal,
  readPeers,
  readTimers,
  readTun,
  readViews,
} from "./sections.js";

export * from "./schema.js";
export { RESTART_KEYS, effectiveConfig, restartRequired } from "./restart.js";
export { isLoopback, parseHostPort } from "./values.js";
export { systemdDefaults } from "./sections.js";

/** Read a YAML file of ours (config, policy) as text; a missing or unreadable file is a ConfigError. */
export function readConfigText(file: string): { abs: string; text: string } {
  const abs = path.resolve(file);
  try {
    return { abs, text: fs.readFileSync(abs, "utf8") };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === "ENOENT" ? "file does not exist" : `cannot read: ${(e as Error).message}`,
      abs,
      undefined,
      undefined,
      { cause: e },
    );
  }
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const { abs, text } = readConfigText(file);
  return parseConfig(text, abs, env);
}

const TOP_KEYS = [
  "ca",
  "host",
  "listen",
  "tun",
  "ephemeral",
  "tunnel",
  "registration",
  "dos",
  "peers",
  "api",
  "state",
  "log",
  "metrics",
  "web",
  "policy",
  "trust",
  "users",
  "dns",
  "gateway",
  "directories",
  "directory",
  "relay",
  "nat",
  "dataPath",
];

/** Parses and validates config text. `fileName` is used in errors and to resolve relative paths. */
export function parseConfig(text: string, fileName: string, env: NodeJS.ProcessEnv = {}): Config {
  const file = path.resolve(fileName);
  const r: Reader = new Reader(file);
  const doc = parseDocument(text, { lineCounter: r.lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = r.lc.linePos(e.pos[0]).line;
    // The common trap: an unquoted "[v6]:port" is a YAML flow list.
    const m = /^(\s*)([A-Za-z]\w*):\s*\[[0-9A-Fa-f:.]*\]:/.exec(text.split("\n")[line - 1] ?? "");
    const hint = m ? `; quote IPv6 endpoints, e.g. ${m[2]}: "[::]:7000"` : "";
    throw new ConfigError(
      `YAML syntax: ${e.message}${hint}`,
      file,
      line,
      m && m[1] === "" ? m[2] : undefined,
      {
        cause: e,
      },
    );
  }
  const root = (doc.contents as Node | null) ?? null;
  const c: Section = { r, root, top: r.map(root, "", TOP_KEYS) };
  const { ca, host } = readIdentity(c);
  const listen = readListen(c);
  const tun = readTun(c);
  const { ephemeral, tunnel, dos, registration } = readTimers(c);
  const peers = readPeers(c);
  const { api, stateDir, level } = readLocal(c, env);
  const { metrics, web } = readViews(c);
  const { policy, users } = readAccess(c);
  const trust = readTrust(c);
  const dns = readDns(c);
  const gateway = readGateway(c);
  const directories = readDirectories(c);
  const directory = readDirectoryServe(c);
  const relay = readRelay(c, directory, directories);
  const nat = readNat(c);
  const dataPath = readDataPath(c);
  return {
    file,
    ca,
    host,
    listen,
    tun,
    ephemeral,
    tunnel,
    registration,
    dos,
    peers,
    directories,
    directory,
    relay,
    nat,
    api,
    stateDir,
    log: { level },
    metrics,
    web,
    policy,
    trust,
    users,
    dns,
    gateway,
    dataPath,
  };
}
