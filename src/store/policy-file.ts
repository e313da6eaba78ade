/**
 * The policy file: YAML in the language of src/conn/policy.ts, parsed strictly into a
 * compiled Policy (errors name the file, line and key path, with "did you mean").
 */
import * as path from "node:path";
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Node } from "yaml";
import { suggest } from "../text.js";
import { ConfigError } from "../errors.js";
import { readConfigText } from "../config/config.js";
import { describeYaml, YamlReader, type YamlValue } from "../config/yaml.js";
import { isValidGroup, isValidName } from "../wire/cert.js";
import {
  compileRanges,
  PROTO_NAMES,
  PROTO_NUMBERS,
  type Action,
  type Decision,
  type FromSelector,
  type Policy,
  type PolicyRule,
  type ProtoName,
  type ToSelector,
} from "../conn/policy.js";

type Value = YamlValue;
const describe = (v: Value | undefined): string => describeYaml(v, 40);

class Reader extends YamlReader {
  /** Policy files refuse aliases anywhere, values included. */
  override map(
    node: Value,
    key: string,
    allowed: readonly string[],
  ): Map<string, { key: Node; value: Value }> {
    return super.map(node, key, allowed, { noAliasValues: true });
  }

  /** A list, or a single scalar taken as a one-element list. */
  list(v: Value, key: string, keyNode: Node, what: string): Node[] {
    if (isSeq(v)) {
      if (v.items.length === 0) this.fail(`expected a non-empty list of ${what}`, v, key, keyNode);
      return v.items as Node[];
    }
    if (isScalar(v) && v.value !== null) return [v];
    return this.fail(`expected a list of ${what}, got ${describe(v)}`, v, key, keyNode);
  }

  str(v: Value, key: string, keyNode: Node, what: string): string {
    if (isAlias(v)) this.fail("YAML aliases are not supported", v, key, keyNode);
    if (!isScalar(v) || typeof v.value !== "string" || v.value === "")
      this.fail(`expected ${what}, got ${describe(v)}`, v, key, keyNode);
    return v.value;
  }
}

const TOP_KEYS = ["default", "rules"] as const;
const RULE_KEYS = ["name", "from", "to", "action"] as const;
const FROM_KEYS = ["users", "groups", "hosts", "hostGroups"] as const;
const TO_KEYS = ["hosts", "groups", "proto", "ports"] as const;
const ACTIONS: readonly Action[] = ["allow", "deny"];

function action(r: Reader, v: Value, key: string, keyNode: Node): Action {
  const s = r.str(v, key, keyNode, "allow or deny");
  if (!(ACTIONS as readonly string[]).includes(s))
    r.fail(`expected allow or deny, got '${s}'`, v, key, keyNode);
  return s as Action;
}

type NameKind = "user" | "group" | "host";

const NAME_WHAT: Record<NameKind, [string, string]> = {
  user: [
    "user names (1..63 chars of [a-z0-9.-])",
    "a user name (1..63 chars of [a-z0-9.-], starting with [a-z0-9])",
  ],
  host: [
    "host names (1..63 chars of [a-z0-9.-])",
    "a host name (1..63 chars of [a-z0-9.-], starting with [a-z0-9])",
  ],
  group: [
    "group names (1..32 chars of [a-z0-9_.-])",
    "a group name (1..32 chars of [a-z0-9_.-], starting with [a-z0-9])",
  ],
};

/** A set of names, and whether "*" was given (accepted only when `star`). */
function names(
  r: Reader,
  v: Value,
  key: string,
  keyNode: Node,
  kind: NameKind,
  star: boolean,
): { any: boolean; set: Set<string> } {
  const orStar = star ? ' or "*"' : "";
  const [plural, singular] = NAME_WHAT[kind];
  const items = r.list(v, key, keyNode, plural + orStar);
  const set = new Set<string>();
  let any = false;
  items.forEach((item, i) => {
    const k = isSeq(v) ? `${key}[${i}]` : key;
    const s = r.str(item, k, keyNode, singular + orStar);
    if (s === "*") {
      if (!star) r.fail(`"*" is not allowed here; to match any user write users: ["*"]`, item, k, keyNode);
      any = true;
      return;
    }
    if (!(kind === "group" ? isValidGroup(s) : isValidName(s)))
      r.fail(`expected ${singular}${orStar}, got '${s}'`, item, k, keyNode);
    set.add(s);
  });
  return { any, set };
}

function parsePort(r: Reader, item: Value, key: string, keyNode: Node): [number, number] {
  const expected = 'expected a port 1..65535 or a range "LOW-HIGH"';
  if (isScalar(item) && typeof item.value === "number") {
    const n = item.value;
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      r.fail(`${expected}, got ${describe(item)}`, item, key, keyNode);
    return [n, n];
  }
  if (isScalar(item) && typeof item.value === "string") {
    const m = /^\s*([0-9]{1,5})\s*(?:-\s*([0-9]{1,5})\s*)?$/.exec(item.value);
    if (m) {
      const lo = Number(m[1]);
      const hi = m[2] === undefined ? lo : Number(m[2]);
      if (lo >= 1 && hi <= 65535 && lo <= hi) return [lo, hi];
      if (lo > hi) r.fail(`range '${item.value}' is empty: LOW must not exceed HIGH`, item, key, keyNode);
    }
  }
  return r.fail(`${expected}, got ${describe(item)}`, item, key, keyNode);
}

function parseRule(r: Reader, node: Node, index: number): Omit<PolicyRule, "decision"> {
  const base = `rules[${index}]`;
  const line = r.line(node) ?? 1;
  if (r.isMissing(node) || (!isMap(node) && !isAlias(node)))
    r.fail(`expected a rule (a mapping with from, to, action), got ${describe(node)}`, node, base);
  const m = r.map(node, base, RULE_KEYS);

  const ne = m.get("name");
  let name: string | null = null;
  if (ne && !r.isMissing(ne.value)) {
    name = r.str(ne.value, `${base}.name`, ne.key, "a name (a non-empty string)");
    if (name.length > 100) r.fail("expected a name of at most 100 characters", ne.value, `${base}.name`);
  }

  const ae = m.get("action");
  if (!ae || r.isMissing(ae.value))
    r.fail(
      "required key is missing (expected action: allow or deny)",
      ae?.value ?? ae?.key ?? node,
      `${base}.action`,
    );
  const act = action(r, ae.value, `${base}.action`, ae.key);

  // from
  const fe = m.get("from");
  const fm = r.map(fe?.value ?? null, `${base}.from`, FROM_KEYS);
  const from: FromSelector = {
    any: fm.size === 0,
    anyUser: false,
    users: null,
    groups: null,
    anyHost: false,
    hosts: null,
    hostGroups: null,
  };
  for (const [k, e] of fm) {
    const key = `${base}.from.${k}`;
    if (k === "users") {
      const n = names(r, e.value, key, e.key, "user", true);
      from.anyUser = n.any;
      from.users = n.set.size ? n.set : null;
    } else if (k === "groups") {
      from.groups = names(r, e.value, key, e.key, "group", false).set;
    } else if (k === "hosts") {
      const n = names(r, e.value, key, e.key, "host", true);
      from.anyHost = n.any;
      from.hosts = n.set.size ? n.set : null;
    } else {
      from.hostGroups = names(r, e.value, key, e.key, "group", false).set;
    }
  }

  // to
  const te = m.get("to");
  const tm = r.map(te?.value ?? null, `${base}.to`, TO_KEYS);
  const to: ToSelector = { anyHost: false, hosts: null, groups: null, protos: null, ports: null };
  const th = tm.get("hosts");
  const tg = tm.get("groups");
  if (th) {
    const n = names(r, th.value, `${base}.to.hosts`, th.key, "host", true);
    to.hosts = n.set.size ? n.set : null;
    to.anyHost = n.any;
  }
  if (tg) to.groups = names(r, tg.value, `${base}.to.groups`, tg.key, "group", false).set;
  if (!th && !tg) to.anyHost = true; // no destination selector: any host

  let protoNames: Set<ProtoName> | null = null;
  const pe = tm.get("proto");
  if (pe) {
    const key = `${base}.to.proto`;
    const what = "tcp, udp, icmp or any";
    const set = new Set<ProtoName>();
    const items = r.list(pe.value, key, pe.key, `protocols (${what})`);
    items.forEach((item, i) => {
      const k = isSeq(pe.value) ? `${key}[${i}]` : key;
      const s = r.str(item, k, pe.key, what);
      if (!(PROTO_NAMES as readonly string[]).includes(s)) {
        const sug = suggest(s, PROTO_NAMES);
        r.fail(`expected ${what}, got '${s}'${sug ? ` (did you mean '${sug}'?)` : ""}`, item, k, pe.key);
      }
      set.add(s as ProtoName);
    });
    protoNames = set.has("any") ? null : set;
  }

  const po = tm.get("ports");
  if (po) {
    const key = `${base}.to.ports`;
    if (protoNames?.has("icmp"))
      r.fail(
        "ports apply to tcp and udp only; drop 'icmp' from proto or move the ports to another rule",
        pe?.value,
        `${base}.to.proto`,
        po.key,
      );
    const items = r.list(po.value, key, po.key, 'ports (1..65535 or "LOW-HIGH")');
    to.ports = compileRanges(
      items.map((item, i) => parsePort(r, item, isSeq(po.value) ? `${key}[${i}]` : key, po.key)),
    );
    if (!protoNames) protoNames = new Set(["tcp", "udp"]);
  }
  if (protoNames) {
    const table = new Uint8Array(256);
    for (const p of protoNames) if (p !== "any") for (const n of PROTO_NUMBERS[p]) table[n] = 1;
    to.protos = table;
  }
  return { index, line, name, action: act, from, to };
}

/** Parses and compiles policy text. Throws ConfigError (file, line, key, expectation). */
export function parsePolicy(text: string, fileName: string): Policy {
  const file = path.resolve(fileName);
  const r: Reader = new Reader(file);
  const doc = parseDocument(text, { lineCounter: r.lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = r.lc.linePos(e.pos[0]).line;
    // The common trap: an unquoted wildcard is YAML alias syntax.
    const star = /(^|[\s[{,:-])\*(\s*($|[\]},#]))/.test(text.split("\n")[line - 1] ?? "");
    throw new ConfigError(
      `YAML syntax: ${e.message.split("\n")[0]}${star ? '; quote the wildcard: "*"' : ""}`,
      file,
      line,
      undefined,
      { cause: e },
    );
  }
  const root = (doc.contents as Node | null) ?? null;
  if (r.isMissing(root))
    r.fail(
      "the policy is empty: expected a mapping with 'rules' (and optionally 'default')",
      root,
      undefined,
    );
  const top = r.map(root, "", TOP_KEYS);

  let def: Action = "deny";
  const de = top.get("default");
  if (de && !r.isMissing(de.value)) def = action(r, de.value, "default", de.key);

  const re = top.get("rules");
  if (!re) r.fail("required key is missing: rules (a list; rules: [] for none)", root, "rules");
  if (!r.isMissing(re.value) && !isSeq(re.value))
    r.fail(`expected a list of rules, got ${describe(re.value)}`, re.value, "rules", re.key);
  const items = isSeq(re.value) ? (re.value.items as Node[]) : [];
  const rules: PolicyRule[] = items.map((item, i) => {
    const rule = parseRule(r, item ?? null, i);
    const label = `rules[${i}] (line ${rule.line}${rule.name ? `, "${rule.name}"` : ""})`;
    return Object.freeze({
      ...rule,
      decision: Object.freeze({
        action: rule.action,
        rule: i,
        reason: `${label}: ${rule.action}`,
      }) as Decision,
    });
  });
  const defLine = de ? ` (line ${r.line(de.key)})` : " (built-in)";
  return Object.freeze({
    file,
    default: def,
    rules: Object.freeze(rules),
    defaultDecision: Object.freeze({
      action: def,
      rule: null,
      reason: `no rule matched: default ${def}${defLine}`,
    }) as Decision,
  });
}

/** Reads and parses a policy file. Throws ConfigError. */
export function loadPolicy(file: string): Policy {
  const { abs, text } = readConfigText(file);
  return parsePolicy(text, abs);
}
