/**
 * Shared reading of our YAML files (mintund config, policy): line numbers for
 * every error, "did you mean" for unknown keys, typed ConfigError naming file,
 * line and key. Each file format extends YamlReader with its own value readers.
 */
import { LineCounter, isAlias, isMap, isScalar, isSeq, type Node, type Pair } from "yaml";
import { ConfigError } from "../errors.js";
import { suggest } from "../text.js";

export type YamlValue = Node | null;

/** "a mapping", "'text'", "number 3", ... for "expected X, got Y" messages; long strings cut at maxLen. */
export function describeYaml(v: YamlValue | undefined, maxLen = Infinity): string {
  if (v === null || v === undefined) return "nothing";
  if (isMap(v)) return "a mapping";
  if (isSeq(v)) return "a list";
  if (isScalar(v)) {
    if (v.value === null) return "nothing";
    if (typeof v.value === "string")
      return `'${v.value.length > maxLen ? `${v.value.slice(0, maxLen)}...` : v.value}'`;
    return `${typeof v.value} ${String(v.value)}`;
  }
  return "an unsupported value";
}

export class YamlReader {
  readonly lc = new LineCounter();
  constructor(readonly file: string) {}

  line(node: YamlValue | undefined, fallback?: YamlValue): number | undefined {
    const r = node?.range ?? fallback?.range;
    return r ? this.lc.linePos(r[0]).line : undefined;
  }

  fail(message: string, node: YamlValue | undefined, key: string | undefined, fallback?: YamlValue): never {
    throw new ConfigError(message, this.file, this.line(node, fallback) ?? 1, key);
  }

  isMissing(v: YamlValue | undefined): boolean {
    return v === undefined || v === null || (isScalar(v) && v.value === null);
  }

  /**
   * A mapping's entries, every key checked against `allowed`; `key` is the path of the map.
   * Missing / null is an empty map. With noAliasValues, an alias as a value is refused too.
   */
  map(
    node: YamlValue,
    key: string,
    allowed: readonly string[],
    opts: { noAliasValues?: boolean } = {},
  ): Map<string, { key: Node; value: YamlValue }> {
    const out = new Map<string, { key: Node; value: YamlValue }>();
    if (this.isMissing(node)) return out;
    if (isAlias(node)) this.fail("YAML aliases are not supported", node, key || undefined);
    if (!isMap(node)) this.fail(`expected a mapping, got ${describeYaml(node)}`, node, key || undefined);
    for (const pair of node.items as Pair<unknown, unknown>[]) {
      const k = (pair.key as Node | null) ?? null;
      if (!isScalar(k) || typeof k.value !== "string")
        this.fail("expected a string key", k, key || undefined, node as Node);
      const name = k.value;
      const full = key ? `${key}.${name}` : name;
      if (!allowed.includes(name)) {
        const s = suggest(name, allowed);
        this.fail(
          `unknown key '${name}'${s ? ` (did you mean '${s}'?)` : ""}; expected one of: ${allowed.join(", ")}`,
          k,
          full,
        );
      }
      const value = (pair.value as Node | null) ?? null;
      if (opts.noAliasValues && isAlias(value)) this.fail("YAML aliases are not supported", value, full);
      out.set(name, { key: k, value });
    }
    return out;
  }
}
