import { describe, it, expect } from "vitest";
import fc from "fast-check";
import "../property/seed.js";
import * as path from "node:path";
import { ConfigError } from "../../src/errors.js";
import {
  NO_POLICY_DECISION,
  compileRanges,
  evaluate,
  type Flow,
  type Policy,
} from "../../src/conn/policy.js";
import { loadPolicy, parsePolicy } from "../../src/store/policy-file.js";

const FILE = "/etc/mintun/policy.yaml";

function err(text: string): ConfigError {
  try {
    parsePolicy(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

const alice = { name: "alice", groups: ["dev"] };
const bob = { name: "bob", groups: ["ops", "contractors"] };
const carol = { name: "carol", groups: [] as string[] };
const laptop1 = { name: "laptop1", groups: ["office"] };
const app1 = { name: "app1", groups: ["app"] };
const other = { name: "other", groups: [] as string[] };

type Case = [label: string, flow: Flow, action: "allow" | "deny", rule: number | null];

describe("evaluate", () => {
  const policy = parsePolicy(
    `
default: deny
rules:
  - name: icmp                                             # 0
    from: { hosts: ["*"] }
    to: { proto: icmp }
    action: allow
  - from: { groups: [contractors] }                        # 1
    to: { groups: [db] }
    action: deny
  - from: { users: [alice], groups: [ops], hosts: [laptop1] }   # 2
    to: { hosts: [web], ports: [80, 443, "8000-8100"], proto: tcp }
    action: allow
  - from: { hostGroups: [app] }                            # 3
    to: { groups: [db], proto: tcp, ports: 5432 }
    action: allow
  - from: { users: ["*"] }                                 # 4
    to: { ports: [22] }
    action: allow
  - to: { hosts: [ns1], proto: [udp, tcp], ports: ["53"] } # 5
    action: allow
  - from: { users: [carol] }                               # 6
    action: deny
  - from: { hosts: [other] }                               # 7
    to: { hosts: ["*"], proto: any }
    action: allow
`,
    FILE,
  );
  const f = (p: Partial<Flow>): Flow => ({ host: laptop1, dstHost: "web", proto: 6, dport: 443, ...p });
  const cases: Case[] = [
    ["icmp from any host, no user", f({ host: other, proto: 1, dport: undefined }), "allow", 0],
    ["icmpv6 counts as icmp", f({ host: app1, proto: 58, dport: undefined }), "allow", 0],
    ["icmp with a user too", f({ user: carol, proto: 1, dport: undefined }), "allow", 0],
    [
      "deny rule before allow (contractor to db)",
      f({ host: app1, user: bob, dstHost: "db1", dstGroups: ["db"], dport: 5432 }),
      "deny",
      1,
    ],
    ["user by name", f({ user: alice, host: other, dport: 80 }), "allow", 2],
    ["user by group", f({ user: { name: "dave", groups: ["ops"] }, host: app1, dport: 443 }), "allow", 2],
    ["source host, user flow", f({ user: carol }), "allow", 2],
    ["source host, host-only flow", f({}), "allow", 2],
    ["port range low end", f({ user: alice, host: app1, dport: 8000 }), "allow", 2],
    ["port range high end", f({ user: alice, host: app1, dport: 8100 }), "allow", 2],
    ["port just past range", f({ user: carol, host: app1, dport: 8101 }), "deny", 6],
    ["port not listed, no user", f({ host: app1, dport: 8080 + 100 * 0 + 21 }), "deny", null],
    ["wrong proto for port rule", f({ user: alice, host: app1, proto: 17, dport: 443 }), "deny", null],
    ["wrong destination", f({ user: alice, host: app1, dstHost: "web2" }), "deny", null],
    [
      "host group to dst group",
      f({ host: app1, dstHost: "db1", dstGroups: ["db"], dport: 5432 }),
      "allow",
      3,
    ],
    [
      "host group, wrong port",
      f({ host: app1, dstHost: "db1", dstGroups: ["db"], dport: 5433 }),
      "deny",
      null,
    ],
    ["users * needs a user: host-only ssh denied", f({ host: app1, dstHost: "x", dport: 22 }), "deny", null],
    [
      "users * with any user: ssh allowed",
      f({ host: app1, user: carol, dstHost: "x", dport: 22 }),
      "allow",
      4,
    ],
    [
      "ssh rule: no proto means tcp and udp",
      f({ host: app1, user: carol, dstHost: "x", proto: 17, dport: 22 }),
      "allow",
      4,
    ],
    [
      "ports rule does not match icmp",
      f({ host: app1, user: carol, dstHost: "x", proto: 1, dport: undefined }),
      "allow",
      0,
    ],
    [
      "ports rule does not match a flow without a port",
      f({ host: app1, user: { name: "eve", groups: [] }, dstHost: "x", proto: 47, dport: undefined }),
      "deny",
      null,
    ],
    ["dns udp, any source", f({ host: app1, dstHost: "ns1", proto: 17, dport: 53 }), "allow", 5],
    ["dns tcp", f({ host: app1, dstHost: "ns1", proto: 6, dport: 53 }), "allow", 5],
    [
      "no from: matches users too",
      f({ host: app1, user: alice, dstHost: "ns1", proto: 17, dport: 53 }),
      "allow",
      5,
    ],
    ["deny by user name, no to", f({ host: app1, user: carol, dstHost: "x", dport: 8443 }), "deny", 6],
    [
      "any proto and any host (other proto number)",
      f({ host: other, dstHost: "z", proto: 132, dport: undefined }),
      "allow",
      7,
    ],
    ["default deny", f({ host: app1, dstHost: "z", proto: 132, dport: undefined }), "deny", null],
  ];
  it.each(cases)("%s", (_label, flow, action, rule) => {
    const d = evaluate(policy, flow);
    expect({ action: d.action, rule: d.rule }).toEqual({ action, rule });
    if (rule === null) expect(d.reason).toMatch(/no rule matched: default deny/);
    else expect(d.reason).toContain(`rules[${rule}] (line `);
  });

  it("reasons name the rule's line and name", () => {
    const d = evaluate(policy, f({ host: other, proto: 1, dport: undefined }));
    expect(d.reason).toBe('rules[0] (line 4, "icmp"): allow');
    expect(policy.rules[2]!.line).toBe(11);
    expect(evaluate(policy, f({ host: app1, dstHost: "zz" })).reason).toBe(
      "no rule matched: default deny (line 2)",
    );
  });

  it("no policy allows every authenticated host; default: allow; empty rules", () => {
    expect(evaluate(null, f({}))).toEqual(NO_POLICY_DECISION);
    expect(evaluate(undefined, f({ proto: 1 })).action).toBe("allow");
    const open = parsePolicy("default: allow\nrules:\n  - from: { users: [bob] }\n    action: deny\n", FILE);
    expect(evaluate(open, f({ user: bob }))).toMatchObject({ action: "deny", rule: 0 });
    expect(evaluate(open, f({ user: alice }))).toMatchObject({ action: "allow", rule: null });
    const closed = parsePolicy("rules: []\n", FILE);
    expect(closed.default).toBe("deny");
    expect(evaluate(closed, f({}))).toMatchObject({
      action: "deny",
      rule: null,
      reason: "no rule matched: default deny (built-in)",
    });
  });

  it("single scalars stand for one-element lists; groups of users and hosts are separate", () => {
    const p = parsePolicy(
      "rules:\n  - from: { users: alice, hostGroups: dev }\n    to: { hosts: web, proto: udp, ports: 9000-9001 }\n    action: allow\n",
      FILE,
    );
    expect(evaluate(p, { user: alice, host: other, dstHost: "web", proto: 17, dport: 9001 }).action).toBe(
      "allow",
    );
    // the host group "dev" does not match a user group "dev"
    expect(
      evaluate(p, {
        user: { name: "x", groups: ["dev"] },
        host: other,
        dstHost: "web",
        proto: 17,
        dport: 9000,
      }).action,
    ).toBe("deny");
    expect(
      evaluate(p, { host: { name: "h", groups: ["dev"] }, dstHost: "web", proto: 17, dport: 9000 }).action,
    ).toBe("allow");
  });

  it("compiles ports into sorted merged ranges", () => {
    expect([
      ...compileRanges([
        [443, 443],
        [80, 80],
        [81, 90],
        [85, 100],
        [1000, 2000],
        [101, 101],
      ]),
    ]).toEqual([80, 101, 443, 443, 1000, 2000]);
    const p = parsePolicy('rules:\n  - to: { ports: [443, 22, "20-21", 23] }\n    action: allow\n', FILE);
    expect([...p.rules[0]!.to.ports!]).toEqual([20, 23, 443, 443]);
  });

  it("the shipped example config/policy.yaml parses and behaves as documented", () => {
    const p = loadPolicy(path.resolve("config/policy.yaml"));
    expect(p.default).toBe("deny");
    expect(p.rules.map((r) => r.name)).toEqual([
      "icmp",
      "no db for contractors",
      "web for devs",
      "app to db",
      "ssh for users",
      "dns",
    ]);
    expect(evaluate(p, { user: alice, host: laptop1, dstHost: "web1", proto: 6, dport: 8080 }).action).toBe(
      "allow",
    );
    expect(
      evaluate(p, { user: bob, host: app1, dstHost: "db1", dstGroups: ["db"], proto: 6, dport: 5432 }).action,
    ).toBe("deny");
    expect(evaluate(p, { host: app1, dstHost: "db1", dstGroups: ["db"], proto: 6, dport: 5432 }).action).toBe(
      "allow",
    );
    expect(evaluate(p, { host: laptop1, dstHost: "web1", proto: 6, dport: 80 }).action).toBe("deny");
  });
});

describe("parsePolicy errors name file, line, key and what was expected", () => {
  const cases: [string, string, number, string | undefined, RegExp][] = [
    [
      "unknown top key",
      "default: deny\nrule: []\n",
      2,
      "rule",
      /unknown key 'rule' \(did you mean 'rules'\?\)/,
    ],
    ["missing rules", "default: deny\n", 1, "rules", /required key is missing: rules/],
    ["empty file", "# nothing\n", 1, undefined, /policy is empty/],
    ["bad default", "default: maybe\nrules: []\n", 1, "default", /expected allow or deny, got 'maybe'/],
    ["rules not a list", "rules: {a: 1}\n", 1, "rules", /expected a list of rules, got a mapping/],
    ["rule not a mapping", "rules:\n  - allow\n", 2, "rules[0]", /expected a rule/],
    ["missing action", "rules:\n  - from: { users: [a] }\n", 2, "rules[0].action", /required key is missing/],
    [
      "bad action",
      "rules:\n  - from: { users: [a] }\n    action: permit\n",
      3,
      "rules[0].action",
      /expected allow or deny, got 'permit'/,
    ],
    [
      "unknown rule key",
      "rules:\n  - from: { users: [a] }\n    acton: allow\n",
      3,
      "rules[0].acton",
      /unknown key 'acton' \(did you mean 'action'\?\); expected one of: name, from, to, action/,
    ],
    [
      "unknown from key",
      "rules:\n  - action: allow\n    from:\n      user: [a]\n",
      4,
      "rules[0].from.user",
      /did you mean 'users'/,
    ],
    [
      "bad user name",
      "rules:\n  - action: allow\n    from:\n      users: [ok, Bad_Name]\n",
      4,
      "rules[0].from.users[1]",
      /expected a user name .*got 'Bad_Name'/,
    ],
    [
      "star in groups",
      "rules:\n  - action: allow\n    from: { groups: ['*'] }\n",
      3,
      "rules[0].from.groups[0]",
      /"\*" is not allowed here/,
    ],
    [
      "number as name",
      "rules:\n  - action: allow\n    from: { hosts: [42] }\n",
      3,
      "rules[0].from.hosts[0]",
      /expected a host name .*got number 42/,
    ],
    [
      "empty list",
      "rules:\n  - action: allow\n    from: { users: [] }\n",
      3,
      "rules[0].from.users",
      /expected a non-empty list of user names/,
    ],
    [
      "null list",
      "rules:\n  - action: allow\n    to:\n      hosts:\n",
      4,
      "rules[0].to.hosts",
      /expected a list of host names .*got nothing/,
    ],
    [
      "bad proto",
      "rules:\n  - action: allow\n    to: { proto: tcpp }\n",
      3,
      "rules[0].to.proto",
      /expected tcp, udp, icmp or any, got 'tcpp' \(did you mean 'tcp'\?\)/,
    ],
    [
      "port out of range",
      "rules:\n  - action: allow\n    to:\n      ports:\n        - 80\n        - 70000\n",
      6,
      "rules[0].to.ports[1]",
      /expected a port 1..65535 or a range "LOW-HIGH", got number 70000/,
    ],
    [
      "port zero",
      "rules:\n  - action: allow\n    to: { ports: [0] }\n",
      3,
      "rules[0].to.ports[0]",
      /got number 0/,
    ],
    [
      "inverted range",
      'rules:\n  - action: allow\n    to: { ports: ["9000-8000"] }\n',
      3,
      "rules[0].to.ports[0]",
      /range '9000-8000' is empty/,
    ],
    [
      "garbage port",
      "rules:\n  - action: allow\n    to: { ports: [http] }\n",
      3,
      "rules[0].to.ports[0]",
      /got 'http'/,
    ],
    [
      "ports with icmp",
      "rules:\n  - action: allow\n    to:\n      proto: icmp\n      ports: [1]\n",
      4,
      "rules[0].to.proto",
      /ports apply to tcp and udp only/,
    ],
    [
      "second rule",
      "rules:\n  - action: allow\n  - action: allow\n    to: { hosts: [Web] }\n",
      4,
      "rules[1].to.hosts[0]",
      /got 'Web'/,
    ],
    ["duplicate key", "rules: []\nrules: []\n", 2, undefined, /YAML syntax: .*[Mm]ap keys must be unique/],
    [
      "unquoted wildcard",
      "rules:\n  - from: { users: [*] }\n    action: allow\n",
      2,
      undefined,
      /YAML syntax: .*; quote the wildcard: "\*"/,
    ],
    ["YAML syntax", "rules:\n  - from: { users: [a }\n", 2, undefined, /YAML syntax/],
    [
      "aliases",
      "rules:\n  - from: &f { users: [a] }\n    action: allow\n  - from: *f\n    action: deny\n",
      4,
      "rules[1].from",
      /aliases are not supported/,
    ],
  ];
  it.each(cases)("%s", (_label, text, line, key, msg) => {
    const e = err(text);
    expect(e.file).toBe(FILE);
    expect({ line: e.line, key: e.key }).toEqual({ line, key });
    expect(e.message).toMatch(msg);
    expect(e.message.startsWith(`${FILE}:${line}`)).toBe(true);
  });

  it("loadPolicy reports a missing file as a ConfigError", () => {
    expect(() => loadPolicy("/nonexistent/policy.yaml")).toThrow(ConfigError);
    expect(() => loadPolicy("/nonexistent/policy.yaml")).toThrow(/file does not exist/);
  });
});

describe("properties", () => {
  const NAMES = ["alice", "bob", "web", "db1", "laptop1", "x", "*"];
  const GROUPS = ["dev", "ops", "db", "app"];
  const nameArb = fc.constantFrom(...NAMES.filter((n) => n !== "*"));
  const principal = fc.record({ name: nameArb, groups: fc.subarray(GROUPS) });
  const flowArb: fc.Arbitrary<Flow> = fc.record(
    {
      user: principal,
      host: principal,
      dstHost: nameArb,
      dstGroups: fc.subarray(GROUPS),
      proto: fc.oneof(fc.constantFrom(1, 6, 17, 58), fc.integer({ min: -5, max: 300 }), fc.double()),
      dport: fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.integer(), fc.double()),
    },
    { requiredKeys: ["host", "dstHost", "proto"] },
  );
  const portArb = fc.oneof(
    fc.integer({ min: 1, max: 65535 }).map(String),
    fc
      .tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 2000 }))
      .map(([a, d]) => `"${a}-${Math.min(65535, a + d)}"`),
  );
  const list = (arb: fc.Arbitrary<string>) =>
    fc.array(arb, { minLength: 1, maxLength: 4 }).map((a) => `[${a.join(", ")}]`);
  const quoted = (a: string[]) => fc.constantFrom(...a.map((n) => `"${n}"`));
  const ruleArb = fc
    .record(
      {
        users: list(quoted(NAMES)),
        groups: list(quoted(GROUPS)),
        hosts: list(quoted(NAMES)),
        hostGroups: list(quoted(GROUPS)),
        toHosts: list(quoted(NAMES)),
        toGroups: list(quoted(GROUPS)),
        proto: fc.constantFrom("tcp", "udp", "[tcp, udp]", "any"),
        icmp: fc.boolean(),
        ports: list(portArb),
        action: fc.constantFrom("allow", "deny"),
      },
      { requiredKeys: ["action"] },
    )
    .map((r) => {
      const from = Object.entries({
        users: r.users,
        groups: r.groups,
        hosts: r.hosts,
        hostGroups: r.hostGroups,
      })
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}: ${v}`);
      const to = [
        r.toHosts && `hosts: ${r.toHosts}`,
        r.toGroups && `groups: ${r.toGroups}`,
        r.icmp && !r.ports ? "proto: icmp" : r.proto && `proto: ${r.proto}`,
        r.ports && `ports: ${r.ports}`,
      ].filter(Boolean);
      return `  - from: { ${from.join(", ")} }\n    to: { ${to.join(", ")} }\n    action: ${r.action}\n`;
    });
  const policyArb = fc
    .tuple(fc.constantFrom("", "default: allow\n", "default: deny\n"), fc.array(ruleArb, { maxLength: 8 }))
    .map(([d, rules]) => `${d}rules:\n${rules.length ? rules.join("") : "  []\n"}`);

  it("evaluate never throws on well-formed policies and random flows, and is first-match", () => {
    fc.assert(
      fc.property(policyArb, fc.array(flowArb, { minLength: 1, maxLength: 10 }), (text, flows) => {
        const p: Policy = parsePolicy(text, FILE);
        for (const flow of flows) {
          const d = evaluate(p, flow);
          expect(["allow", "deny"]).toContain(d.action);
          if (d.rule === null) expect(d.action).toBe(p.default);
          else {
            expect(d.action).toBe(p.rules[d.rule]!.action);
            // no earlier rule matches: evaluating a policy cut before it gives the default or a later rule
            const earlier = { ...p, rules: p.rules.slice(0, d.rule) };
            expect(evaluate(earlier, flow).rule).toBeNull();
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("evaluate never throws on hostile flow objects", () => {
    const policies = [
      "rules:\n  - from: { users: ['*'], groups: [dev], hostGroups: [app] }\n    to: { groups: [db], ports: [1-100] }\n    action: allow\n",
      "rules:\n  - from: { hosts: [web, '*'], users: [alice] }\n    to: { hosts: [x], groups: [y], proto: [icmp, tcp] }\n    action: deny\n",
      "default: allow\nrules:\n  - to: { hosts: ['*'], proto: udp, ports: [53, 1000-2000] }\n    action: deny\n",
    ].map((t) => parsePolicy(t, FILE));
    const anyOrPrincipal = fc.oneof(
      fc.anything(),
      fc.record({ name: fc.anything(), groups: fc.oneof(fc.anything(), fc.array(fc.anything())) }),
    );
    fc.assert(
      fc.property(
        fc.record({
          user: anyOrPrincipal,
          host: anyOrPrincipal,
          dstHost: fc.anything(),
          dstGroups: fc.oneof(fc.anything(), fc.array(fc.anything())),
          proto: fc.oneof(fc.anything(), fc.constantFrom(1, 6, 17, 58)),
          dport: fc.oneof(fc.anything(), fc.integer({ min: 0, max: 70000 })),
        }),
        (flow) => {
          for (const p of policies) {
            const d = evaluate(p, flow as unknown as Flow);
            expect(["allow", "deny"]).toContain(d.action);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  const yamlish = fc
    .array(
      fc.oneof(
        fc.constantFrom(
          "rules:",
          "default:",
          "  - ",
          "from:",
          "to:",
          "action:",
          "users:",
          "groups:",
          "hosts:",
          "hostGroups:",
          "proto:",
          "ports:",
          "allow",
          "deny",
          "tcp",
          "icmp",
          "[",
          "]",
          "{",
          "}",
          ",",
          "\n",
          "\n  ",
          "\n    ",
          " ",
          "'*'",
          '"80-90"',
          "&a",
          "*a",
          "!!str",
          "!!binary",
          "!tag",
          "? ",
          "- ",
          "#",
          "|",
          ">",
          "---",
          "...",
          "%YAML 1.2",
          "<<:",
          "null",
          "~",
          "0x50",
          "1e3",
          "-1",
          "99999999999999999999",
          ".inf",
          "alice",
          "\t",
        ),
        fc.string({ maxLength: 6 }),
      ),
      { maxLength: 40 },
    )
    .map((parts) => parts.join(""));

  it("parsePolicy returns a Policy or throws a ConfigError, never anything else", () => {
    fc.assert(
      fc.property(fc.oneof(yamlish, policyArb, fc.string()), (text) => {
        try {
          const p = parsePolicy(text, FILE);
          expect(Array.isArray(p.rules)).toBe(true);
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          expect(e.file).toBe(FILE);
          expect(e.line).toBeGreaterThanOrEqual(1);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
