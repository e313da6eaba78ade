import { describe, it, expect } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  DEFAULTS,
  loadConfig,
  parseConfig,
  parseHostPort,
  restartRequired,
} from "../../src/config/config.js";
import { ConfigError } from "../../src/errors.js";

const FILE = "/etc/mintun/mintund.yaml";
const MIN = "ca: ca.crt\nhost:\n  key: host.key\n  cert: host.crt\n";

function err(text: string, file = FILE): ConfigError {
  try {
    parseConfig(text, file);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("parseConfig", () => {
  it("applies defaults and resolves paths against the config's directory", () => {
    const c = parseConfig(MIN, FILE);
    expect(c).toEqual({
      file: FILE,
      ca: "/etc/mintun/ca.crt",
      host: { key: "/etc/mintun/host.key", cert: "/etc/mintun/host.crt" },
      listen: { address: "0.0.0.0", port: 7000 },
      tun: { name: "mintun0", mtu: 1400, routes: [], peerSubnets: true },
      ephemeral: { lifetimeSec: 300, minFirstPacket: 256, replayRecords: 100_000, replayPerHost: 1024 },
      tunnel: {
        rekeySec: 120,
        keepaliveSec: 25,
        idleTimeoutSec: 180,
        maxTunnels: 10000,
        maxPerHost: 64,
        unconfirmedTimeoutSec: 10,
      },
      registration: { refreshSec: 10 },
      dos: {
        perSourcePerSec: 100,
        perSourceBurst: 200,
        puzzleAbovePerSec: 1000,
        baseDifficulty: 8,
        maxDifficulty: 20,
        maxSolveDifficulty: 20,
        puzzleSolvesPerPeer: 4,
      },
      peers: [],
      directories: [],
      directory: null,
      relay: null,
      nat: { punchTtl: 2 },
      api: { socket: "/run/mintun/mintund.sock" },
      stateDir: "/var/lib/mintun",
      log: { level: "info" },
      metrics: { listen: null },
      web: { listen: null },
      policy: null,
      trust: { revocationList: null },
      users: { unmapped: "deny", asHost: [] },
      dns: { listen: null, domain: "mesh." },
      gateway: { forward: false, masquerade: false, lanInterface: null },
      dataPath: { workers: 1 },
    });
    expect(c.tunnel).toEqual(DEFAULTS.tunnel);
  });

  it("trust.revocationList: a path relative to the config file; unknown trust keys refused", () => {
    const c = parseConfig(`${MIN}trust:\n  revocationList: revoked.crl\n`, "/etc/mintun/host.yaml");
    expect(c.trust).toEqual({ revocationList: "/etc/mintun/revoked.crl" });
    expect(() => parseConfig(`${MIN}trust:\n  crl: x\n`, "/etc/mintun/host.yaml")).toThrow(/crl/);
  });

  it("parses a full config", () => {
    const c = parseConfig(
      `${MIN}listen: "[::]:7001"
tun: { name: mt1, mtu: 1280, routes: [10.77.0.0/16, "FD77::/64"] }
ephemeral: { lifetimeSec: 60, minFirstPacket: 1400 }
tunnel: { rekeySec: 30, keepaliveSec: 0, idleTimeoutSec: 10, maxTunnels: 5 }
peers:
  - name: db1
    endpoint: 192.0.2.10:7000
  - name: gw1
    endpoint: "[2001:DB8::1]:7000"
    cert: peers/gw1.crt
  - name: gw2
    endpoint: gw2.example.com:7000
api: { socket: ./run/api.sock }
state: /srv/mintun
log: { level: debug }
`,
      FILE,
    );
    expect(c.listen).toEqual({ address: "::", port: 7001 });
    expect(c.tun).toEqual({
      name: "mt1",
      mtu: 1280,
      routes: ["10.77.0.0/16", "fd77::/64"],
      peerSubnets: true,
    });
    expect(c.tunnel.keepaliveSec).toBe(0);
    expect(c.peers).toEqual([
      { name: "db1", endpoint: { host: "192.0.2.10", port: 7000 } },
      { name: "gw1", endpoint: { host: "2001:db8::1", port: 7000 }, cert: "/etc/mintun/peers/gw1.crt" },
      { name: "gw2", endpoint: { host: "gw2.example.com", port: 7000 } },
    ]);
    expect(c.api.socket).toBe("/etc/mintun/run/api.sock");
    expect(c.stateDir).toBe("/srv/mintun");
    expect(c.log.level).toBe("debug");
  });

  it("names file, line and key for a bad peer endpoint", () => {
    const e = err(`${MIN}peers:\n  - name: a\n    endpoint: 10.0.0.1:7000\n  - name: b\n    endpoint: x\n`);
    expect(e.file).toBe(FILE);
    expect(e.line).toBe(9);
    expect(e.key).toBe("peers[1].endpoint");
    expect(e.message).toContain("expected host:port");
    expect(e.message).toContain("got 'x'");
    expect(e.message).toContain(`${FILE}:9`);
    expect(e.code).toBe("ECONFIG");
  });

  it("rejects unknown keys with a suggestion", () => {
    const e = err(`${MIN}tunel:\n  rekeySec: 10\n`);
    expect(e.line).toBe(5);
    expect(e.key).toBe("tunel");
    expect(e.message).toMatch(/unknown key 'tunel' \(did you mean 'tunnel'\?\)/);
    const n = err(`${MIN}tunnel:\n  rekeySecs: 10\n`);
    expect(n.line).toBe(6);
    expect(n.key).toBe("tunnel.rekeySecs");
    expect(n.message).toContain("did you mean 'rekeySec'");
    const p = err(`${MIN}peers:\n  - name: a\n    endpoint: a.b:1\n    port: 3\n`);
    expect(p.key).toBe("peers[0].port");
    expect(p.line).toBe(8);
  });

  it("relay: defaults, limits, did-you-mean, and it needs the directory role or a directory to learn pairs from", () => {
    const dir = "directory:\n  serve: true\n";
    expect(parseConfig(`${MIN}${dir}relay:\n  serve: true\n`, FILE).relay).toEqual({
      serve: true,
      bytesPerSec: 1_000_000,
      burstBytes: 2_000_000,
      maxPairs: 10_000,
      hosts: [],
    });
    expect(
      parseConfig(`${MIN}${dir}relay:\n  serve: true\n  bytesPerSec: 50000\n`, FILE).relay?.bytesPerSec,
    ).toBe(50_000);
    const alone = err(`${MIN}relay:\n  serve: true\n`);
    expect(alone.key).toBe("relay.serve");
    expect(alone.line).toBe(6);
    expect(alone.message).toMatch(/needs directory\.serve: true or a directories: list/);
    // a relay host: not a directory, but it has one to learn its pairs from
    const host = `${MIN}directories:\n  - endpoint: 192.0.2.1:7000\nrelay:\n  serve: true\n`;
    expect(parseConfig(host, FILE).relay?.serve).toBe(true);
    // a directory that hands pairs to relay hosts; only a directory can
    expect(parseConfig(`${MIN}${dir}relay:\n  hosts: [r1, r2]\n`, FILE).relay?.hosts).toEqual(["r1", "r2"]);
    expect(err(`${MIN}${dir}relay:\n  hosts: ["bad name"]\n`).key).toBe("relay.hosts[0]");
    expect(err(`${host}  hosts: [r1]\n`).message).toMatch(/relay.hosts needs directory.serve/);
    const typo = err(`${MIN}${dir}relay:\n  serve: true\n  bytesPerSecond: 5\n`);
    expect(typo.key).toBe("relay.bytesPerSecond");
    expect(typo.line).toBe(9);
    expect(typo.message).toContain("did you mean 'bytesPerSec'");
    const low = err(`${MIN}${dir}relay:\n  serve: true\n  bytesPerSec: 10\n`);
    expect(low.key).toBe("relay.bytesPerSec");
    expect(low.message).toMatch(/expected .*1000.*got 10/);
    const burst = err(`${MIN}${dir}relay:\n  serve: true\n  bytesPerSec: 1000000\n  burstBytes: 2000\n`);
    expect(burst.key).toBe("relay.burstBytes");
    expect(burst.line).toBe(10);
    const serve = err(`${MIN}${dir}relay:\n  serve: yes please\n`);
    expect(serve.message).toMatch(/expected true or false, got/);
    expect(parseConfig(`${MIN}${dir}relay:\n  serve: false\n`, FILE).relay?.serve).toBe(false);
  });

  it("reports missing required keys", () => {
    const e = err("host:\n  key: k\n  cert: c\n");
    expect(e.key).toBe("ca");
    expect(e.line).toBe(1);
    const h = err("ca: x\nhost:\n  key: k\n");
    expect(h.key).toBe("host.cert");
    expect(h.line).toBe(3);
    expect(err("").key).toBe("ca");
  });

  it("checks ranges and types with line numbers", () => {
    const mtu = err(`${MIN}tun:\n  mtu: 100\n`);
    expect([mtu.line, mtu.key]).toEqual([6, "tun.mtu"]);
    expect(mtu.message).toContain("expected an integer in 1280..9000, got 100");
    const t = err(`${MIN}ephemeral:\n  minFirstPacket: big\n`);
    expect([t.line, t.key]).toEqual([6, "ephemeral.minFirstPacket"]);
    expect(t.message).toContain("got 'big'");
    const lv = err(`${MIN}log:\n  level: loud\n`);
    expect([lv.line, lv.key]).toEqual([6, "log.level"]);
    const r = err(`${MIN}tun:\n  routes:\n    - 10.0.0.0/8\n    - 10.0.0.1/8\n`);
    expect([r.line, r.key]).toEqual([8, "tun.routes[1]"]);
    const idle = err(`${MIN}tunnel:\n  keepaliveSec: 30\n  idleTimeoutSec: 20\n`);
    expect([idle.line, idle.key]).toEqual([7, "tunnel.idleTimeoutSec"]);
    const dup = err(`${MIN}peers:\n  - { name: a, endpoint: "a:1" }\n  - { name: a, endpoint: "b:1" }\n`);
    expect([dup.line, dup.key]).toEqual([7, "peers[1].name"]);
  });

  it("explains unquoted IPv6 listen addresses and bad listen values", () => {
    const e = err(`${MIN}listen: [::]:7000\n`);
    expect(e.line).toBe(5);
    expect(e.key).toBe("listen");
    const h = err(`${MIN}listen: example.com:7000\n`);
    expect(h.message).toContain("expected address:port");
    expect(err(`${MIN}listen: 0.0.0.0:70000\n`).key).toBe("listen");
  });

  it("reports YAML syntax errors with a line", () => {
    const e = err(`${MIN}tun:\n  name: a\n  name: b\n`);
    expect(e.line).toBe(7);
    expect(e.message).toContain("YAML");
    const s = err("ca: [1, 2\n");
    expect(s.line).toBeGreaterThanOrEqual(1);
  });

  it("parseHostPort", () => {
    expect(parseHostPort("1.2.3.4:5")).toEqual({ host: "1.2.3.4", port: 5 });
    expect(parseHostPort("[::1]:5")).toEqual({ host: "::1", port: 5 });
    expect(parseHostPort("::1:5")).toBeNull();
    expect(parseHostPort("a.example:0")).toBeNull();
    expect(parseHostPort("a.example:080")).toBeNull();
    expect(parseHostPort("1.2.3.999:5")).toBeNull();
    expect(parseHostPort("a.example:5", true)).toBeNull();
  });

  it("restartRequired lists non-reloadable changes", () => {
    const a = parseConfig(MIN, FILE);
    const b = parseConfig(`${MIN}tun: { mtu: 1300, routes: [10.0.0.0/8] }\nlog: { level: debug }\n`, FILE);
    expect(restartRequired(a, b)).toEqual(["tun.mtu"]);
  });
});

describe("loadConfig", () => {
  it("loads the shipped examples", () => {
    for (const f of ["host.yaml", "gateway.yaml", "directory.yaml", "host-with-directory.yaml"]) {
      const c = loadConfig(path.join("config", f));
      expect(c.ca).toBe("/etc/mintun/ca.crt");
    }
  });

  it("names the file when it does not exist, and resolves relative to it", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-cfg-"));
    try {
      const file = path.join(dir, "m.yaml");
      expect(() => loadConfig(file)).toThrow(/does not exist/);
      fs.writeFileSync(file, MIN);
      expect(loadConfig(file).ca).toBe(path.join(dir, "ca.crt"));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("policy and users keys", () => {
  it("resolves the policy path and refuses an unknown unmapped mode with the line", () => {
    const c = parseConfig(
      "ca: ca.crt\nhost: { key: h.key, cert: h.crt }\npolicy: pol.yaml\nusers: { unmapped: deny }\n",
      "/etc/mintun/x.yaml",
    );
    expect(c.policy).toBe("/etc/mintun/pol.yaml");
    expect(c.users.unmapped).toBe("deny");
    expect(() =>
      parseConfig("ca: ca.crt\nhost: { key: h.key, cert: h.crt }\nusers:\n  unmapped: root\n", "/etc/x.yaml"),
    ).toThrow(/x\.yaml:4 \(users\.unmapped\): expected host or deny, got 'root'/);
  });

  it("users.asHost: user and group names and uids; unmapped defaults to deny; bad entries name the line", () => {
    const c = parseConfig(
      "ca: ca.crt\nhost: { key: h.key, cert: h.crt }\nusers:\n  asHost: [www-data, '@svc', 'group:mon', 998]\n",
      "/etc/x.yaml",
    );
    expect(c.users).toEqual({ unmapped: "deny", asHost: ["www-data", "@svc", "group:mon", "998"] });
    expect(() =>
      parseConfig(
        "ca: ca.crt\nhost: { key: h.key, cert: h.crt }\nusers:\n  asHost: ['a b']\n",
        "/etc/x.yaml",
      ),
    ).toThrow(/x\.yaml:4 \(users\.asHost\[0\]\): expected an OS user or group name/);
    expect(() =>
      parseConfig(
        "ca: ca.crt\nhost: { key: h.key, cert: h.crt }\nusers:\n  asHost: www-data\n",
        "/etc/x.yaml",
      ),
    ).toThrow(/users\.asHost\): expected a list/);
  });
});

describe("systemd defaults (one runtime directory per mintund@ instance)", () => {
  it("api.socket and state follow $RUNTIME_DIRECTORY / $STATE_DIRECTORY unless the file sets them", () => {
    const env = { RUNTIME_DIRECTORY: "/run/mintun-blue", STATE_DIRECTORY: "/var/lib/mintun/blue:/x" };
    const c = parseConfig(MIN, FILE, env);
    expect(c.api.socket).toBe("/run/mintun-blue/mintund.sock");
    expect(c.stateDir).toBe("/var/lib/mintun/blue");
    const plain = parseConfig(MIN, FILE, {});
    expect(plain.api.socket).toBe("/run/mintun/mintund.sock");
    expect(plain.stateDir).toBe("/var/lib/mintun");
    const set = parseConfig(`${MIN}api: { socket: /run/x.sock }\nstate: /srv/m\n`, FILE, env);
    expect(set.api.socket).toBe("/run/x.sock");
    expect(set.stateDir).toBe("/srv/m");
    // a relative value is not a systemd directory: ignored
    expect(parseConfig(MIN, FILE, { RUNTIME_DIRECTORY: "rel" }).api.socket).toBe("/run/mintun/mintund.sock");
  });

  it("the template unit gives each instance its own runtime and state directory, beside mintund.service's", () => {
    const unit = fs.readFileSync(path.join("systemd", "mintund@.service"), "utf8");
    const main = fs.readFileSync(path.join("systemd", "mintund.service"), "utf8");
    const runtime = /^RuntimeDirectory=(.*)$/m.exec(unit)?.[1];
    const mainRuntime = /^RuntimeDirectory=(.*)$/m.exec(main)?.[1];
    expect(runtime).toContain("%i");
    // not nested in mintund.service's: systemd removes a unit's RuntimeDirectory recursively on stop
    expect(runtime!.startsWith(`${mainRuntime}/`)).toBe(false);
    expect(/^StateDirectory=(.*)$/m.exec(unit)?.[1]).toContain("%i");
    // a second daemon on one socket exits 3: systemd must not restart it in a loop
    for (const u of [unit, main]) expect(u).toMatch(/^RestartPreventExitStatus=3$/m);
  });
});
