/**
 * Connection policy: which users, groups and hosts may reach which overlay hosts,
 * protocols and ports. Checked by the receiving host for each new flow. The language
 * (documented with examples in docs/IDENTITY.md and config/policy.yaml):
 *
 *   default: deny                 # allow | deny; default deny
 *   rules:                        # required (may be []); first match wins
 *     - name: web for devs        # optional, shown in decisions and logs
 *       from:                     # optional; absent or {} = any source
 *         users: [alice]          # user certificate names          } a flow matches
 *         groups: [dev]           # groups of the user certificate  } `from` if ANY
 *         hosts: [laptop1]        # source host names               } listed selector
 *         hostGroups: [office]    # groups of the source host cert  } matches
 *       to:                       # optional; absent or {} = anything
 *         hosts: [web1]           # destination host names          } any of; both absent
 *         groups: [web]           # groups of the destination host  } = any destination
 *         proto: tcp              # tcp | udp | icmp | any, or a list; default any
 *         ports: [80, 443, "8000-8100"]   # destination ports (tcp/udp only); default all
 *       action: allow             # allow | deny (required)
 *
 * "*" in users means "any flow that carries a user identity"; in hosts (from or to) it
 * means any host. `users` and `groups` never match a flow without a user identity (a
 * host-only flow: kernel-originated traffic, ICMP, processes of OS users without an
 * identity); `hosts` and `hostGroups` match every flow from that host, with or without
 * a user. `icmp` covers ICMP and ICMPv6. A rule with ports and no proto means tcp and udp.
 *
 * Defaults: with no policy file every authenticated host may reach everything
 * (evaluate(null, ...) allows). With a policy, a flow no rule matches gets `default`
 * (deny unless `default: allow`), whether or not it carries a user identity.
 *
 * Parsing is strict: unknown keys, wrong types, bad names or port ranges raise a
 * ConfigError naming the file, line and key path (e.g. "rules[1].to.ports[2]").
 * Rules are compiled once: names into Sets, ports into sorted merged ranges,
 * protocols into a lookup table, reasons into strings, so evaluate allocates only
 * its result and never throws.
 */
import * as path from "node:path";
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Node } from "yaml";
import { suggest } from "../cli/args.js";
import { ConfigError } from "../errors.js";
import { readConfigText } from "../config/config.js";
import { describeYaml, YamlReader, type YamlValue } from "../config/yaml.js";
import { isValidGroup, isValidName } from "../wire/cert.js";

export type Action = "allow" | "deny";

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;
/** IP protocol numbers evaluate is used with (others are handled too: see `proto`). */
export type Proto = typeof PROTO_TCP | typeof PROTO_UDP | typeof PROTO_ICMP | typeof PROTO_ICMPV6;

export const PROTO_NAMES = ["tcp", "udp", "icmp", "any"] as const;
export type ProtoName = (typeof PROTO_NAMES)[number];
const PROTO_NUMBERS: Record<Exclude<ProtoName, "any">, readonly number[]> = {
  tcp: [PROTO_TCP],
  udp: [PROTO_UDP],
  icmp: [PROTO_ICMP, PROTO_ICMPV6],
};

/** An authenticated identity as policy sees it: a certificate's name and groups. */
export interface Principal {
  name: string;
  groups: readonly string[];
}

export interface Flow {
  /** The user identity the flow runs under; absent for host-only flows. */
  user?: Principal;
  /** The source host (always authenticated by its host certificate). */
  host: Principal;
  /** Name of the overlay host the flow is addressed to. */
  dstHost: string;
  /** Groups of that host's certificate, for `to.groups` (default none). */
  dstGroups?: readonly string[];
  /** IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6; others match only proto-less rules). */
  proto: number;
  /** Destination port (tcp, udp). */
  dport?: number;
}

export interface Decision {
  action: Action;
  /** Index into policy.rules of the rule that decided, or null for the default. */
  rule: number | null;
  reason: string;
}

interface FromSelector {
  /** No selector given: every source matches. */
  any: boolean;
  anyUser: boolean;
  users: ReadonlySet<string> | null;
  groups: ReadonlySet<string> | null;
  anyHost: boolean;
  hosts: ReadonlySet<string> | null;
  hostGroups: ReadonlySet<string> | null;
}

interface ToSelector {
  /** No hosts/groups given, or hosts "*": every destination matches. */
  anyHost: boolean;
  hosts: ReadonlySet<string> | null;
  groups: ReadonlySet<string> | null;
  /** 256-entry table indexed by protocol number; null = any protocol. */
  protos: Uint8Array | null;
  /** Sorted, merged, inclusive [lo, hi] pairs; null = every port (and port-less flows). */
  ports: Uint32Array | null;
}

export interface PolicyRule {
  /** Position in `rules` (0-based). */
  index: number;
  /** Line of the rule in the policy file. */
  line: number;
  name: string | null;
  action: Action;
  from: FromSelector;
  to: ToSelector;
  /** Precomputed decision for a match. */
  decision: Decision;
}

export interface Policy {
  /** Absolute path of the file (for messages). */
  file: string;
  default: Action;
  rules: readonly PolicyRule[];
  /** Precomputed decision when no rule matches. */
  defaultDecision: Decision;
}

/** The decision when there is no policy file. */
export const NO_POLICY_DECISION: Decision = Object.freeze({
  action: "allow",
  rule: null,
  reason: "no policy: every authenticated host is allowed",
}) as Decision;

// ---------------------------------------------------------------------------
// Evaluation

function hasAny(set: ReadonlySet<string> | null, values: readonly string[] | undefined): boolean {
  if (set === null || !Array.isArray(values)) return false;
  for (let i = 0; i < values.length; i++) if (set.has(values[i]!)) return true;
  return false;
}

function fromMatches(f: FromSelector, flow: Flow): boolean {
  if (f.any) return true;
  const host = flow.host;
  if (host !== undefined && host !== null) {
    if (f.anyHost || (f.hosts !== null && f.hosts.has(host.name))) return true;
    if (hasAny(f.hostGroups, host.groups)) return true;
  }
  const user = flow.user;
  if (user === undefined || user === null) return false;
  if (f.anyUser || (f.users !== null && f.users.has(user.name))) return true;
  return hasAny(f.groups, user.groups);
}

function portIn(ranges: Uint32Array, port: number): boolean {
  // binary search over pairs
  let lo = 0;
  let hi = (ranges.length >> 1) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (port < ranges[mid * 2]!) hi = mid - 1;
    else if (port > ranges[mid * 2 + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

function toMatches(t: ToSelector, flow: Flow): boolean {
  if (t.protos !== null) {
    const p = flow.proto;
    if (typeof p !== "number" || !(p >= 0 && p <= 255) || (p | 0) !== p || t.protos[p] !== 1) return false;
  }
  if (t.ports !== null) {
    const d = flow.dport;
    if (typeof d !== "number" || !portIn(t.ports, d)) return false;
  }
  if (t.anyHost) return true;
  if (t.hosts !== null && t.hosts.has(flow.dstHost)) return true;
  return hasAny(t.groups, flow.dstGroups);
}

/**
 * The allow rules that can let a host-only TCP or UDP flow through (a `from` that names
 * hosts, host groups, "*" hosts or nothing; a `to` that admits tcp or udp), and whether
 * the default does. `mintun check-config` warns with them when users.unmapped is host:
 * every OS user without an identity then gets these rights (docs/IDENTITY.md).
 */
export function hostRights(policy: Policy): { rules: PolicyRule[]; byDefault: boolean } {
  const rules = policy.rules.filter((r) => {
    if (r.action !== "allow") return false;
    const f = r.from;
    if (!(f.any || f.anyHost || f.hosts !== null || f.hostGroups !== null)) return false;
    const p = r.to.protos;
    return p === null || p[6] === 1 || p[17] === 1;
  });
  return { rules, byDefault: policy.default === "allow" };
}

/**
 * Decides a flow: the first rule whose `from` and `to` match gives the action; else the
 * policy default. With no policy (null) every flow is allowed. Never throws.
 */
export function evaluate(policy: Policy | null | undefined, flow: Flow): Decision {
  if (!policy) return NO_POLICY_DECISION;
  const rules = policy.rules;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (fromMatches(r.from, flow) && toMatches(r.to, flow)) return r.decision;
  }
  return policy.defaultDecision;
}

// ---------------------------------------------------------------------------
// Parsing

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

/** Sorts and merges inclusive ranges (adjacent ones too) into [lo0, hi0, lo1, hi1, ...]. */
export function compileRanges(ranges: readonly (readonly [number, number])[]): Uint32Array {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: number[] = [];
  for (const [lo, hi] of sorted) {
    const n = out.length;
    if (n > 0 && lo <= out[n - 1]! + 1) out[n - 1] = Math.max(out[n - 1]!, hi);
    else out.push(lo, hi);
  }
  return Uint32Array.from(out);
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
