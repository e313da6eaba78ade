/**
 * A small argument parser for the `mintun` CLI (no dependency).
 *
 *   --flag value | --flag=value     string, number and list flags
 *   --flag                          boolean flags (no value; "--flag=true|false" also accepted)
 *   --                              everything after it is positional
 *   -h, --help                      handled by the runner before parsing
 *   -                               a positional or value like any other ("-" = stdin/stdout)
 *
 * A flag with `env` takes that environment variable's value when it is not given
 * (MINTUN_SOCKET for --socket), before its default.
 *
 * Unknown flags, missing values, repeated flags, bad numbers and missing required
 * flags or positionals throw UsageError (exit code 2).
 */
import { UsageError } from "../errors.js";
import { suggest } from "../text.js";

export type FlagType = "string" | "number" | "boolean" | "list";

export interface FlagSpec {
  /** Without the leading "--". */
  name: string;
  type: FlagType;
  help: string;
  /** Placeholder in usage lines, e.g. "DIR". */
  metavar?: string;
  required?: boolean;
  default?: string | number | boolean;
  /** Environment variable used when the flag is not given (before `default`). */
  env?: string;
  /** For number flags: inclusive bounds. */
  min?: number;
  max?: number;
}

export interface PositionalSpec {
  name: string;
  help: string;
  required?: boolean;
}

type FlagValue = string | number | boolean | string[];

export class ParsedArgs {
  constructor(
    private readonly values: ReadonlyMap<string, FlagValue>,
    readonly positionals: readonly string[],
  ) {}

  has(name: string): boolean {
    return this.values.has(name);
  }

  string(name: string): string | undefined {
    const v = this.values.get(name);
    return typeof v === "string" ? v : undefined;
  }

  requireString(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw new UsageError(`missing required flag --${name}`);
    return v;
  }

  number(name: string): number | undefined {
    const v = this.values.get(name);
    return typeof v === "number" ? v : undefined;
  }

  requireNumber(name: string): number {
    const v = this.number(name);
    if (v === undefined) throw new UsageError(`missing required flag --${name}`);
    return v;
  }

  bool(name: string): boolean {
    return this.values.get(name) === true;
  }

  list(name: string): string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : [];
  }
}

function convert(spec: FlagSpec, raw: string): FlagValue {
  switch (spec.type) {
    case "string":
      return raw;
    case "list":
      return raw
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
    case "number": {
      if (!/^-?[0-9]+$/.test(raw)) throw new UsageError(`--${spec.name} expects an integer, got '${raw}'`);
      const n = Number(raw);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max))
        throw new UsageError(`--${spec.name} must be between ${spec.min ?? "-inf"} and ${spec.max ?? "inf"}`);
      return n;
    }
    case "boolean":
      if (raw === "true") return true;
      if (raw === "false") return false;
      throw new UsageError(`--${spec.name} takes no value (or =true/=false), got '${raw}'`);
  }
}

export function parseArgs(
  argv: readonly string[],
  flags: readonly FlagSpec[],
  positionals: readonly PositionalSpec[] = [],
  env: Readonly<Record<string, string | undefined>> = {},
): ParsedArgs {
  const byName = new Map(flags.map((f) => [f.name, f]));
  const values = new Map<string, FlagValue>();
  const pos: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      pos.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      pos.push(a);
      continue;
    }
    if (!a.startsWith("--")) throw new UsageError(`unknown flag '${a}' (flags are spelled --name)`);
    const eq = a.indexOf("=");
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (!spec) {
      const s = suggest(name, byName.keys());
      throw new UsageError(`unknown flag --${name}${s ? ` (did you mean --${s}?)` : ""}`);
    }
    if (values.has(name)) throw new UsageError(`flag --${name} given more than once`);
    let raw: string;
    if (eq >= 0) raw = a.slice(eq + 1);
    else if (spec.type === "boolean") raw = "true";
    else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("--") && next.length > 2))
        throw new UsageError(`flag --${name} needs a value${spec.metavar ? ` (${spec.metavar})` : ""}`);
      raw = next;
      i++;
    }
    values.set(name, convert(spec, raw));
  }
  for (const f of flags) {
    if (values.has(f.name)) continue;
    const fromEnv = f.env !== undefined ? env[f.env] : undefined;
    if (fromEnv !== undefined && fromEnv !== "") {
      try {
        values.set(f.name, convert(f, fromEnv));
      } catch (e) {
        throw new UsageError(`$${f.env} (for --${f.name}): ${(e as Error).message}`);
      }
      continue;
    }
    if (f.required) throw new UsageError(`missing required flag --${f.name}`);
    if (f.default !== undefined) values.set(f.name, f.default);
  }
  const required = positionals.filter((p) => p.required).length;
  if (pos.length < required) throw new UsageError(`missing argument ${positionals[pos.length]!.name}`);
  if (pos.length > positionals.length)
    throw new UsageError(`unexpected argument '${pos[positionals.length]}'`);
  return new ParsedArgs(values, pos);
}
