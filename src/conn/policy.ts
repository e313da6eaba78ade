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
 * Parsing (src/store/policy-file.ts) is strict: unknown keys, wrong types, bad names or port ranges raise a
 * ConfigError naming the file, line and key path (e.g. "rules[1].to.ports[2]").
 * Rules are compiled once: names into Sets, ports into sorted merged ranges,
 * protocols into a lookup table, reasons into strings, so evaluate allocates only
 * its result and never throws.
 */

export type Action = "allow" | "deny";

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;
/** IP protocol numbers evaluate is used with (others are handled too: see `proto`). */
export type Proto = typeof PROTO_TCP | typeof PROTO_UDP | typeof PROTO_ICMP | typeof PROTO_ICMPV6;

export const PROTO_NAMES = ["tcp", "udp", "icmp", "any"] as const;
export type ProtoName = (typeof PROTO_NAMES)[number];
export const PROTO_NUMBERS: Record<Exclude<ProtoName, "any">, readonly number[]> = {
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

export interface FromSelector {
  /** No selector given: every source matches. */
  any: boolean;
  anyUser: boolean;
  users: ReadonlySet<string> | null;
  groups: ReadonlySet<string> | null;
  anyHost: boolean;
  hosts: ReadonlySet<string> | null;
  hostGroups: ReadonlySet<string> | null;
}

export interface ToSelector {
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
