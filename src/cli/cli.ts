/**
 * The `mintun` command runner: a registry of commands (each a path of words such as
 * ["ca", "init"]), help output, and the mapping of errors to exit codes:
 *
 *   0  success
 *   1  MintunError (bad key file, failed verification, ...): "mintun: <message>"
 *   2  UsageError: "mintun: <message>" + "see 'mintun CMD --help'"
 *   70 unexpected exception (a bug): message and stack on stderr
 *
 * To add a command, write a `Command` and add it to the table in commands/index.ts
 * (or call registerCommand at start-up).
 */
import * as path from "node:path";
import { MintunError, UsageError } from "../errors.js";
import { suggest } from "../text.js";
import { parseArgs, type FlagSpec, type ParsedArgs, type PositionalSpec } from "./args.js";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 70;

/** Everything a command may touch besides the filesystem; injectable for tests. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Wall clock in milliseconds. */
  now(): number;
  /** Relative paths in flags are resolved against this directory. */
  cwd: string;
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
  /** Returns an exit code (default 0). Throw UsageError / MintunError for failures. */
  run(args: ParsedArgs, io: Io): number | void | Promise<number | void>;
}

const registry: Command[] = [];

/** Adds a command to the global registry (used by runCli when no table is passed). */
export function registerCommand(cmd: Command): void {
  const key = cmd.path.join(" ");
  if (registry.some((c) => c.path.join(" ") === key)) throw new Error(`command '${key}' registered twice`);
  registry.push(cmd);
}

export function registeredCommands(): readonly Command[] {
  return registry;
}

export function processIo(): Io {
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    now: () => Date.now(),
    cwd: process.cwd(),
  };
}

/** Resolves a path given on the command line against io.cwd. */
export function resolvePath(io: Io, p: string): string {
  return path.resolve(io.cwd, p);
}

function usageLine(cmd: Command): string {
  const parts = ["mintun", ...cmd.path];
  for (const f of cmd.flags ?? []) {
    const v = f.type === "boolean" ? `--${f.name}` : `--${f.name} ${f.metavar ?? f.name.toUpperCase()}`;
    parts.push(f.required ? v : `[${v}]`);
  }
  for (const p of cmd.positionals ?? []) parts.push(p.required ? p.name : `[${p.name}]`);
  return parts.join(" ");
}

export function commandHelp(cmd: Command): string {
  const lines = [`usage: ${usageLine(cmd)}`, "", cmd.summary];
  if (cmd.description) lines.push("", cmd.description);
  const rows: [string, string][] = [];
  for (const p of cmd.positionals ?? []) rows.push([p.name, p.help]);
  for (const f of cmd.flags ?? []) {
    const left = f.type === "boolean" ? `--${f.name}` : `--${f.name} ${f.metavar ?? f.name.toUpperCase()}`;
    const def = f.default !== undefined && f.type !== "boolean" ? ` (default ${String(f.default)})` : "";
    rows.push([left, `${f.help}${f.required ? " (required)" : ""}${def}`]);
  }
  rows.push(["-h, --help", "show this help"]);
  const w = Math.max(...rows.map((r) => r[0].length));
  lines.push("", "options:");
  for (const [l, r] of rows) lines.push(`  ${l.padEnd(w)}  ${r}`);
  return lines.join("\n") + "\n";
}

function groupHelp(prefix: readonly string[], cmds: readonly Command[]): string {
  const under = cmds.filter((c) => prefix.every((w, i) => c.path[i] === w));
  const name = ["mintun", ...prefix].join(" ");
  const w = Math.max(0, ...under.map((c) => c.path.join(" ").length));
  const lines = [`usage: ${name} COMMAND [options]`, "", "commands:"];
  for (const c of under) lines.push(`  ${c.path.join(" ").padEnd(w)}  ${c.summary}`);
  lines.push("", `run '${name} COMMAND --help' for a command's options`);
  return lines.join("\n") + "\n";
}

const isHelp = (a: string) => a === "--help" || a === "-h";

/** Runs the CLI on argv (without "node" and the script); returns the exit code. */
export async function runCli(
  argv: readonly string[],
  io: Io,
  commands: readonly Command[] = registry,
): Promise<number> {
  // Longest run of leading words that is a prefix of some command path.
  let n = 0;
  while (
    n < argv.length &&
    !argv[n]!.startsWith("-") &&
    commands.some((c) => c.path.length > n && argv.slice(0, n + 1).every((w, i) => c.path[i] === w))
  )
    n++;
  const words = argv.slice(0, n);
  const cmd = commands.find((c) => c.path.length === n && words.every((w, i) => c.path[i] === w));
  const shown = ["mintun", ...words].join(" ");
  try {
    if (!cmd) {
      if (argv.slice(n).some(isHelp)) {
        io.stdout(groupHelp(words, commands));
        return EXIT_OK;
      }
      const next = argv[n];
      if (next === undefined || next.startsWith("-")) {
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
    const rest = argv.slice(n);
    const dd = rest.indexOf("--");
    if ((dd < 0 ? rest : rest.slice(0, dd)).some(isHelp)) {
      io.stdout(commandHelp(cmd));
      return EXIT_OK;
    }
    const args = parseArgs(rest, cmd.flags ?? [], cmd.positionals ?? []);
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
