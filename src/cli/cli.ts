/**
 * The `mintun` command runner: a registry of commands (each a path of words such as
 * ["ca", "init"]), help output (`mintun help CMD`, `mintun CMD --help`), `--version`,
 * and the mapping of errors to exit codes (EXIT_CODES below; docs/CLI.md):
 *
 *   0  success
 *   1  MintunError (bad key file, failed verification, daemon not running, ...): "mintun: <message>"
 *   2  UsageError: "mintun: <message>" + "see 'mintun CMD --help'"
 *   70 unexpected exception (a bug): message and stack on stderr
 *
 * Commands may be given fully (Command) or lazily (LazyCommand: path and summary here,
 * the module with flags and run() imported only when that command runs or shows its
 * help), so a call loads the code of one command only (docs/PERFORMANCE.md, "CLI start").
 * To add a command, write a `Command` and add it to the tables in commands/index.ts
 * and commands/table.ts (a unit test checks the two agree).
 */
import * as path from "node:path";
import { MintunError, UsageError } from "../errors.js";
import { suggest } from "../text.js";
import { parseArgs, type FlagSpec, type ParsedArgs, type PositionalSpec } from "./args.js";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 70;

/** The exit codes of every command, as printed by `mintun help` and in each command's help. */
export const EXIT_CODES: readonly (readonly [number, string])[] = [
  [EXIT_OK, "success"],
  [EXIT_FAILURE, "failure: the command could not do its work (message on stderr)"],
  [EXIT_USAGE, "usage error: unknown command or flag, missing or bad argument"],
  [EXIT_INTERNAL, "internal error (a bug in mintun): message and stack on stderr"],
];

/** Everything a command may touch besides the filesystem; injectable for tests. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Wall clock in milliseconds. */
  now(): number;
  /** Relative paths in flags are resolved against this directory. */
  cwd: string;
  /** Environment (MINTUN_SOCKET, ...); process.env when absent. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Binary output ('-' as an output file); stdout(text) when absent. */
  stdoutBytes?(data: Buffer): void;
  /** All of standard input ('-' as an input file); reading fd 0 when absent. */
  readStdin?(): Buffer;
  /** Whether stdout is a terminal (secrets are not written to one). */
  stdoutIsTty?: boolean;
}

export interface Command {
  /** Words that select the command, e.g. ["ca", "sign-host"]. */
  path: readonly string[];
  /** One line for command lists. */
  summary: string;
  /** Longer help text (optional). */
  description?: string;
  flags?: readonly FlagSpec[];
  positionals?: readonly PositionalSpec[];
  /** What exit code 1 means for this command (shown under EXIT STATUS in its help). */
  failure?: string;
  /** Examples for the help text, one command line each. */
  examples?: readonly string[];
  /** Returns an exit code (default 0). Throw UsageError / MintunError for failures. */
  run(args: ParsedArgs, io: Io): number | void | Promise<number | void>;
}

/** A command whose module is imported only when it is used. */
export interface LazyCommand {
  path: readonly string[];
  summary: string;
  load(): Promise<Command>;
}

export type AnyCommand = Command | LazyCommand;

const isLazy = (c: AnyCommand): c is LazyCommand => "load" in c;

const registry: AnyCommand[] = [];

/** Adds a command to the global registry (used by runCli when no table is passed). */
export function registerCommand(cmd: AnyCommand): void {
  const key = cmd.path.join(" ");
  if (registry.some((c) => c.path.join(" ") === key)) throw new Error(`command '${key}' registered twice`);
  registry.push(cmd);
}

export function registeredCommands(): readonly AnyCommand[] {
  return registry;
}

export function processIo(): Io {
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    now: () => Date.now(),
    cwd: process.cwd(),
    env: process.env,
    stdoutBytes: (b) => void process.stdout.write(b),
    stdoutIsTty: process.stdout.isTTY === true,
  };
}

/** Resolves a path given on the command line against io.cwd. */
export function resolvePath(io: Io, p: string): string {
  return path.resolve(io.cwd, p);
}

const flagLeft = (f: FlagSpec) =>
  f.type === "boolean" ? `--${f.name}` : `--${f.name} ${f.metavar ?? f.name.toUpperCase()}`;

function usageLine(cmd: Command): string {
  const parts = ["mintun", ...cmd.path];
  for (const f of cmd.flags ?? []) parts.push(f.required ? flagLeft(f) : `[${flagLeft(f)}]`);
  for (const p of cmd.positionals ?? []) parts.push(p.required ? p.name : `[${p.name}]`);
  return parts.join(" ");
}

function rowsText(rows: readonly (readonly [string, string])[], indent = "  "): string[] {
  const w = Math.max(0, ...rows.map((r) => r[0].length));
  return rows.map(([l, r]) => `${indent}${l.padEnd(w)}  ${r}`.trimEnd());
}

const indented = (text: string) => text.split("\n").map((l) => (l ? `  ${l}` : ""));

/**
 * Man-style help of one command: usage line, NAME, DESCRIPTION, ARGUMENTS, OPTIONS,
 * ENVIRONMENT (flags read from the environment), EXIT STATUS, EXAMPLES.
 */
export function commandHelp(cmd: Command): string {
  const name = ["mintun", ...cmd.path].join(" ");
  const lines = [`usage: ${usageLine(cmd)}`, "", "NAME", `  ${name} - ${cmd.summary}`];
  if (cmd.description) lines.push("", "DESCRIPTION", ...indented(cmd.description));
  if (cmd.positionals?.length) {
    lines.push("", "ARGUMENTS");
    lines.push(...rowsText(cmd.positionals.map((p) => [p.name, p.help + (p.required ? "" : " (optional)")])));
  }
  const rows: [string, string][] = [];
  for (const f of cmd.flags ?? []) {
    const def = f.default !== undefined && f.type !== "boolean" ? ` (default ${String(f.default)})` : "";
    const env = f.env ? ` (default $${f.env} when set${def ? `, else ${String(f.default)}` : ""})` : def;
    rows.push([flagLeft(f), `${f.help}${f.required ? " (required)" : ""}${env}`]);
  }
  rows.push(["-h, --help", "show this help"]);
  lines.push("", "OPTIONS", ...rowsText(rows));
  const envs = (cmd.flags ?? []).filter((f) => f.env);
  if (envs.length) {
    lines.push("", "ENVIRONMENT");
    lines.push(...rowsText(envs.map((f) => [f.env!, `used as --${f.name} when that flag is not given`])));
  }
  lines.push("", "EXIT STATUS");
  lines.push(
    ...rowsText(
      EXIT_CODES.map(([c, m]) => [
        String(c),
        c === EXIT_FAILURE && cmd.failure ? `failure: ${cmd.failure}` : m,
      ]),
    ),
  );
  if (cmd.examples?.length) lines.push("", "EXAMPLES", ...cmd.examples.map((e) => `  ${e}`));
  return lines.join("\n") + "\n";
}

/** The list of commands under a prefix (all of them for []), with the global options and exit codes. */
export function groupHelp(prefix: readonly string[], cmds: readonly AnyCommand[]): string {
  const under = cmds.filter((c) => prefix.every((w, i) => c.path[i] === w));
  const name = ["mintun", ...prefix].join(" ");
  const lines = [`usage: ${name} COMMAND [options]`, "", "COMMANDS"];
  lines.push(...rowsText(under.map((c) => [c.path.join(" "), c.summary])));
  if (prefix.length === 0) {
    lines.push(
      "",
      "GLOBAL OPTIONS",
      ...rowsText([
        ["-h, --help", "show help (also: mintun help COMMAND, mintun COMMAND --help)"],
        ["--version", "print the version"],
      ]),
      "",
      "CONVENTIONS",
      "  --json prints JSON on stdout (every command that prints); '-' as a file reads stdin or",
      "  writes stdout; --ca names the CA: a CA directory (ca.crt, and ca.key to sign) or its",
      "  ca.crt file; --socket (or $MINTUN_SOCKET) is the daemon's API socket.",
      "",
      "EXIT STATUS",
      ...rowsText(EXIT_CODES.map(([c, m]) => [String(c), m])),
    );
  }
  lines.push(
    "",
    `run '${name} COMMAND --help' or 'mintun help ${prefix.length ? prefix.join(" ") + " " : ""}COMMAND' for a command's help`,
  );
  return lines.join("\n") + "\n";
}

const isHelp = (a: string) => a === "--help" || a === "-h";

/** "mintun 0.1.0 (node v20.20.2)" */
export function versionLine(version: string): string {
  return `mintun ${version} (node ${process.version})\n`;
}

export interface RunOptions {
  /** Printed by --version; read lazily (the package file) only when asked. */
  version?: () => string;
}

/** Runs the CLI on argv (without "node" and the script); returns the exit code. */
export async function runCli(
  argvIn: readonly string[],
  io: Io,
  commands: readonly AnyCommand[] = registry,
  opts: RunOptions = {},
): Promise<number> {
  let argv = argvIn;
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-V")) {
    io.stdout(versionLine(opts.version?.() ?? "unknown"));
    return EXIT_OK;
  }
  // `mintun help [WORDS...]` is `mintun WORDS... --help`
  const helpWord = argv[0] === "help" && !commands.some((c) => c.path[0] === "help");
  if (helpWord) argv = [...argv.slice(1), "--help"];
  // Longest run of leading words that is a prefix of some command path.
  let n = 0;
  while (
    n < argv.length &&
    !argv[n]!.startsWith("-") &&
    commands.some((c) => c.path.length > n && argv.slice(0, n + 1).every((w, i) => c.path[i] === w))
  )
    n++;
  const words = argv.slice(0, n);
  const found = commands.find((c) => c.path.length === n && words.every((w, i) => c.path[i] === w));
  const shown = ["mintun", ...words].join(" ");
  try {
    if (!found) {
      const next = argv[n];
      if (argv.slice(n).some(isHelp) && (next === undefined || next.startsWith("-"))) {
        io.stdout(groupHelp(words, commands));
        return EXIT_OK;
      }
      if (next === undefined || next.startsWith("-")) {
        if (next === "--version" && n === 0) throw new UsageError("--version takes no other arguments");
        io.stderr(groupHelp(words, commands));
        return EXIT_USAGE;
      }
      const options = new Set(
        commands.filter((c) => words.every((w, i) => c.path[i] === w)).map((c) => c.path[n]!),
      );
      const s = suggest(next, options);
      throw new UsageError(
        `unknown command '${[...words, next].join(" ")}'${s ? ` (did you mean '${s}'?)` : ""}`,
      );
    }
    const cmd = isLazy(found) ? { ...(await found.load()), path: found.path, summary: found.summary } : found;
    const rest = argv.slice(n);
    const dd = rest.indexOf("--");
    if ((dd < 0 ? rest : rest.slice(0, dd)).some(isHelp)) {
      io.stdout(commandHelp(cmd));
      return EXIT_OK;
    }
    const args = parseArgs(rest, cmd.flags ?? [], cmd.positionals ?? [], io.env ?? process.env);
    const code = await cmd.run(args, io);
    return code ?? EXIT_OK;
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`mintun: ${e.message}\nsee '${shown} --help'\n`);
      return EXIT_USAGE;
    }
    if (e instanceof MintunError) {
      io.stderr(`mintun: ${e.message}\n`);
      return EXIT_FAILURE;
    }
    const err = e as Error;
    io.stderr(`mintun: internal error: ${err?.stack ?? String(e)}\n`);
    return EXIT_INTERNAL;
  }
}
