/**
 * Pure parts of operations: histories behind the web view and metrics, whois,
 * sd_notify argument formatting and ordering, the metrics registry, the
 * metrics/web config keys, the pino logger, the install plan, check-config.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type Io } from "../../src/cli/cli.js";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { installPlan, applyAction, rewriteUnit } from "../../src/cli/commands/install.js";
import { parseConfig, restartRequired } from "../../src/config/config.js";
import { EventRing, PeerHistory, PeerTotals } from "../../src/daemon/history.js";
import { createRegistry, METRIC_NAMES, type Observation } from "../../src/daemon/metrics.js";
import { whois, type Status } from "../../src/daemon/status.js";
import { ConfigError } from "../../src/errors.js";
import { RateLimitedLog } from "../../src/log.js";
import { createLogger } from "../../src/log-pino.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-ops-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("EventRing", () => {
  it("keeps the last N events in order", () => {
    const r = new EventRing(3);
    for (let i = 0; i < 5; i++) r.push(i, `e${i}`, { i });
    expect(r.list().map((e) => e.kind)).toEqual(["e2", "e3", "e4"]);
    expect(r.total).toBe(5);
    const s = new EventRing(3);
    s.push(1, "x");
    expect(s.list().map((e) => e.kind)).toEqual(["x"]);
  });
});

describe("PeerTotals", () => {
  const t = (peer: string, session: string, n: number) => ({
    peer,
    session,
    rxBytes: n,
    txBytes: 2 * n,
    rxPackets: 1,
    txPackets: 1,
  });
  it("stays monotonic when a tunnel closes and a new one starts", () => {
    const p = new PeerTotals();
    expect(p.update([t("b", "s1", 100)]).perPeer.get("b")!.rxBytes).toBe(100);
    expect(p.update([t("b", "s1", 150), t("c", "s9", 5)]).all.rxBytes).toBe(155);
    // s1 closed, s2 new
    const r = p.update([t("b", "s2", 10)]);
    expect(r.perPeer.get("b")!.rxBytes).toBe(160);
    expect(r.perPeer.get("b")!.txBytes).toBe(320);
    expect(r.perPeer.get("c")!.rxBytes).toBe(5); // retired, still counted
    expect(r.all.rxPackets).toBe(3);
  });
});

describe("PeerHistory", () => {
  const c = (rx: number, tx = rx / 2) => ({ rxBytes: rx, txBytes: tx, rxPackets: 0, txPackets: 0 });
  it("turns per-peer totals into per-second rates on one time axis, bounded", () => {
    const h = new PeerHistory(3, 2);
    h.sample(0, new Map([["b", c(0)]]), c(0));
    expect(h.list().t).toEqual([]); // the first sample is the baseline
    h.sample(2000, new Map([["b", c(2000)]]), c(2000));
    expect(h.list()).toMatchObject({
      t: [2],
      total: { rx: [1000], tx: [500] },
      peers: [{ peer: "b", rx: [1000] }],
    });
    // c appears: no rate for it in its first sample, null before it
    h.sample(
      3000,
      new Map([
        ["b", c(5000)],
        ["c", c(10)],
      ]),
      c(5010),
    );
    h.sample(
      4000,
      new Map([
        ["b", c(5000)],
        ["c", c(110)],
      ]),
      c(5110),
    );
    const l = h.list();
    expect(l.t).toEqual([2, 3, 4]);
    expect(l.peers).toEqual([
      { peer: "b", rx: [1000, 3000, 0], tx: [500, 1500, 0] },
      { peer: "c", rx: [null, null, 100], tx: [null, null, 50] },
    ]);
    // capacity 3: the oldest sample goes from every series
    h.sample(
      5000,
      new Map([
        ["b", c(6000)],
        ["c", c(110)],
      ]),
      c(6110),
    );
    expect(h.list().t).toEqual([3, 4, 5]);
    expect(h.list().peers[1]!.rx).toEqual([null, 100, 0]);
    h.sample(5000, new Map([["b", c(9000)]]), c(9000)); // same time: no sample
    expect(h.list().t).toHaveLength(3);
    // due once a second (intervalSec 1), and again when the clock went back
    expect([h.due(5999), h.due(6000), h.due(4000)]).toEqual([false, true, true]);
    expect(new PeerHistory().due(0)).toBe(true);
  });
  it("keeps at most maxPeers series; a peer that goes loses its series", () => {
    const h = new PeerHistory(10, 2);
    const three = new Map([
      ["a", c(0)],
      ["b", c(0)],
      ["c", c(0)],
    ]);
    h.sample(0, three, c(0));
    h.sample(1000, three, c(0));
    expect(h.list().peers.map((p) => p.peer)).toEqual(["a", "b"]);
    expect(h.list().omittedPeers).toBe(1);
    h.sample(
      2000,
      new Map([
        ["b", c(0)],
        ["c", c(0)],
      ]),
      c(0),
    ); // a gone: c gets its place
    expect(h.list().peers.map((p) => p.peer)).toEqual(["b", "c"]);
    expect(h.list().omittedPeers).toBe(0);
    expect(h.list().peers[1]!.rx).toEqual([null, 0]);
  });
});

const STATUS: Status = {
  host: { name: "a", key: "aaaa", ip4: "10.77.0.1", ip6: "fd77::1", subnets: [] },
  listen: "0.0.0.0:7000",
  tun: "mt0",
  uptimeSec: 5,
  ephemeral: [{ keyId: 1, expiresInSec: 100 }],
  tunnels: [
    {
      peer: "gw",
      role: "initiator",
      state: "established",
      endpoint: "192.0.2.1:7000",
      session: "s1",
      ageMs: 1,
      epoch: 2,
      lastRekeyMsAgo: 1,
      lastRxMsAgo: 1,
      rxPackets: 3,
      rxBytes: 300,
      txPackets: 4,
      txBytes: 400,
      rekeys: 2,
      roams: 1,
      rttMs: 1,
      path: "direct",
    },
  ],
  peers: [
    {
      name: "gw",
      key: "gggg",
      ip4: "10.77.0.9",
      ip6: null,
      subnets: ["192.168.50.0/24", "10.0.0.0/8"],
      endpoint: "192.0.2.1:7000",
      configured: true,
      record: { keyId: 7, expiresInSec: 50 },
      tunnels: 1,
    },
    {
      name: "b",
      key: null,
      ip4: null,
      ip6: null,
      subnets: [],
      endpoint: "192.0.2.2:7000",
      configured: true,
      record: null,
      tunnels: 0,
    },
  ],
  drops: { auth: 2, replay: 0 },
  events: { rekeys: 2, roams: 1, tunnelsCreated: 1 },
  dos: { puzzling: true, difficulty: 12, maxDifficultyReached: 14, offeredCreatesPerSec: 250, sources: 3 },
  devices: { tun: { rxPackets: 9, rxBytes: 900 }, udp: { txPackets: 8 } },
};

describe("whois", () => {
  it("finds the longest certified prefix: own addresses, peer addresses and subnets", () => {
    expect(whois(STATUS, "10.77.0.9")).toMatchObject({
      kind: "peer",
      name: "gw",
      key: "gggg",
      match: "10.77.0.9",
      tunnels: [{ session: "s1", state: "established", endpoint: "192.0.2.1:7000", epoch: 2 }],
    });
    expect(whois(STATUS, "192.168.50.7")).toMatchObject({ name: "gw", match: "192.168.50.0/24" });
    expect(whois(STATUS, "10.1.2.3")).toMatchObject({ name: "gw", match: "10.0.0.0/8" });
    expect(whois(STATUS, "fd77:0::1")).toMatchObject({
      kind: "self",
      name: "a",
      address: "fd77::1",
      tunnels: [],
    });
    expect(whois(STATUS, "10.77.0.1")).toMatchObject({ kind: "self" }); // /32 beats the peer's 10/8
    expect(whois(STATUS, "172.16.0.1")).toBeNull();
    expect(whois(STATUS, "fd78::1")).toBeNull();
    expect(whois(STATUS, "garbage")).toBeNull();
  });
});

describe("metrics registry", () => {
  it("exports every metric from one observation per scrape", async () => {
    let calls = 0;
    const obs = (): Observation => {
      calls++;
      return {
        status: STATUS,
        perPeer: new Map([["gw", { rxBytes: 300, txBytes: 400, rxPackets: 3, txPackets: 4 }]]),
        all: { rxBytes: 300, txBytes: 400, rxPackets: 3, txPackets: 4 },
        reloads: { ok: 2, failed: 1, lastOk: false },
        startedAt: 1_700_000_000_000,
        version: "9.9.9",
      };
    };
    const reg = createRegistry(obs, false);
    const text = await reg.metrics();
    expect(calls).toBe(1);
    for (const n of METRIC_NAMES) expect(text).toMatch(new RegExp(`^# TYPE ${n} (gauge|counter)$`, "m"));
    for (const line of [
      'mintun_info{host="a",version="9.9.9"} 1',
      'mintun_tunnels{state="established"} 1',
      'mintun_tunnels{state="creating"} 0',
      "mintun_peers 2",
      "mintun_peers_with_record 1",
      'mintun_peer_tx_bytes_total{peer="gw"} 400',
      "mintun_rx_bytes_total 300",
      'mintun_drops_total{reason="auth"} 2',
      'mintun_drops_total{reason="replay"} 0',
      'mintun_events_total{event="tunnels_created"} 1',
      "mintun_rekeys_total 2",
      "mintun_roams_total 1",
      'mintun_device_bytes_total{device="tun",direction="rx"} 900',
      'mintun_device_packets_total{device="udp",direction="tx"} 8',
      'mintun_config_reloads_total{result="failed"} 1',
      "mintun_config_last_reload_successful 0",
      "mintun_start_time_seconds 1700000000",
      "mintun_dos_puzzling 1",
      "mintun_dos_puzzle_difficulty_bits 12",
      "mintun_dos_sources 3",
    ])
      expect(text).toContain(line);
  });
});

describe("config: metrics and web", () => {
  const MIN = "ca: ca.crt\nhost: { key: h.key, cert: h.crt }\n";
  it("are off by default and parse listen addresses", () => {
    const c = parseConfig(MIN, "/x.yaml");
    expect(c.metrics.listen).toBeNull();
    expect(c.web.listen).toBeNull();
    const d = parseConfig(
      `${MIN}metrics: { listen: 0.0.0.0:9477 }\nweb: { listen: "[::1]:9478" }\n`,
      "/x.yaml",
    );
    expect(d.metrics.listen).toEqual({ host: "0.0.0.0", port: 9477 });
    expect(d.web.listen).toEqual({ host: "::1", port: 9478 });
    expect(parseConfig(`${MIN}metrics: { listen: off }\n`, "/x.yaml").metrics.listen).toBeNull();
    expect(restartRequired(c, d)).toEqual(["metrics.listen", "web.listen"]);
  });
  it("refuse a web view off loopback and bad addresses, naming line and key", () => {
    const err = (text: string) => {
      try {
        parseConfig(MIN + text, "/x.yaml");
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error("no error");
    };
    expect(err("web:\n  listen: 0.0.0.0:9478\n").message).toMatch(
      /^\/x\.yaml:4 \(web\.listen\): expected a loopback address/,
    );
    expect(err("metrics:\n  listen: localhost:9477\n").message).toMatch(
      /^\/x\.yaml:4 \(metrics\.listen\): expected/,
    );
    expect(err("metrics:\n  lisen: 1\n").message).toMatch(/did you mean 'listen'/);
  });
});

describe("logger (pino)", () => {
  it("writes JSON lines with level, component, message and fields; setLevel reaches children; secrets redacted", () => {
    const lines: string[] = [];
    const log = createLogger("info", { write: (l) => void lines.push(l) });
    const eng = log.child("engine");
    eng.log("debug", "hidden");
    eng.log("info", "tunnel established", { peer: "b", secretKey: "AAAA" });
    expect(lines).toHaveLength(1);
    const rec = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(rec).toMatchObject({ level: "info", c: "engine", msg: "tunnel established", peer: "b" });
    expect(rec.secretKey).toBe("[redacted]");
    expect(typeof rec.time).toBe("string");
    expect(lines[0]!.endsWith("\n")).toBe(true);
    log.setLevel("debug");
    expect(eng.enabled("debug")).toBe(true);
    expect(eng.level()).toBe("debug");
    eng.log("debug", "now visible");
    expect(lines).toHaveLength(2);
    // RateLimitedLog still works on top
    const rl = new RateLimitedLog(log, 2, 1000);
    for (let i = 0; i < 5; i++) rl.log(0, "warn", "bad", "bad packet");
    rl.log(2000, "warn", "bad", "bad packet");
    expect(lines.filter((l) => l.includes("bad packet"))).toHaveLength(3);
    expect(lines.some((l) => l.includes("bad: 3 more suppressed"))).toBe(true);
  });
});

describe("install", () => {
  it("rewrites ExecStart for the node binary and prefix only", () => {
    const u =
      "Documentation=file:///opt/mintun/x\nExecStart=/usr/bin/node /opt/mintun/bin/mintund\nX=/opt/mintun\n";
    expect(rewriteUnit(u, "/n/node", "/srv/mt")).toBe(
      "Documentation=file:///srv/mt/x\nExecStart=/n/node /srv/mt/bin/mintund\nX=/opt/mintun\n",
    );
  });

  it("stages units, a kept config skeleton and state directories under --root", async () => {
    const root = path.join(dir, "root");
    const plan = installPlan({ source: ROOT, prefix: "/opt/mt", root, node: "/usr/bin/node" }).filter(
      (a) => !(a.kind === "copy" && a.from!.endsWith("node_modules")), // keep the test fast
    );
    for (const a of plan) applyAction(a);
    const unit = fs.readFileSync(path.join(root, "etc/systemd/system/mintund.service"), "utf8");
    expect(unit).toContain(
      "ExecStart=/usr/bin/node --max-semi-space-size=1 /opt/mt/bin/mintund --config /etc/mintun/mintund.yaml",
    );
    expect(fs.existsSync(path.join(root, "etc/systemd/system/mintund@.service"))).toBe(true);
    expect(fs.statSync(path.join(root, "etc/mintun")).mode & 0o777).toBe(0o750);
    expect(fs.statSync(path.join(root, "var/lib/mintun")).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(root, "etc/mintun/mintund.yaml")).mode & 0o777).toBe(0o640);
    expect(fs.existsSync(path.join(root, "opt/mt/dist/daemon/main.js"))).toBe(true);
    expect(fs.readlinkSync(path.join(root, "usr/local/bin/mintun"))).toBe("/opt/mt/bin/mintun");
    // an edited config survives a second install (upgrade)
    fs.writeFileSync(path.join(root, "etc/mintun/mintund.yaml"), "# mine\n");
    for (const a of plan) applyAction(a);
    expect(fs.readFileSync(path.join(root, "etc/mintun/mintund.yaml"), "utf8")).toBe("# mine\n");

    let out = "";
    const io: Io = { stdout: (t) => void (out += t), stderr: () => {}, now: () => Date.now(), cwd: dir };
    expect(await runCli(["install", "--dry-run", "--root", "dry"], io, COMMANDS)).toBe(0);
    expect(out).toMatch(/would write .*dry\/etc\/systemd\/system\/mintund\.service/);
    expect(fs.existsSync(path.join(dir, "dry"))).toBe(false);
    expect(await runCli(["install", "--prefix", "rel"], io, COMMANDS)).toBe(2);
  });
});

describe("check-config", () => {
  const run = async (argv: string[]) => {
    let stdout = "";
    let stderr = "";
    const io: Io = {
      stdout: (t) => void (stdout += t),
      stderr: (t) => void (stderr += t),
      now: Date.now,
      cwd: dir,
    };
    return { code: await runCli(argv, io, COMMANDS), stdout, stderr };
  };
  it("exits 0 on the shipped examples (syntax) and 1 with file, line, key and expectation", async () => {
    for (const f of ["host.yaml", "gateway.yaml", "directory.yaml", "host-with-directory.yaml"]) {
      const r = await run(["check-config", "--syntax-only", path.join(ROOT, "config", f)]);
      expect(r.code, r.stderr).toBe(0);
    }
    fs.writeFileSync(path.join(dir, "bad.yaml"), "ca: ca.crt\nhost: { key: k, cert: c }\ntun:\n  mtu: 100\n");
    const r = await run(["check-config", "bad.yaml"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `mintun: ${path.join(dir, "bad.yaml")}:4 (tun.mtu): expected an integer in 1280..9000, got 100\n`,
    );
    const m = await run(["check-config", path.join(ROOT, "config/host.yaml")]);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/host\.yaml \(ca\): certificate file '\/etc\/mintun\/ca\.crt' does not exist/);
    expect((await run(["check-config"])).code).toBe(2);
  });

  it("warns when users.unmapped is host and the policy grants host rights (not with deny)", async () => {
    fs.writeFileSync(
      path.join(dir, "pol.yaml"),
      "default: deny\nrules:\n  - from: { hosts: ['*'] }\n    to: { proto: icmp }\n    action: allow\n" +
        "  - name: app hosts\n    from: { hostGroups: [app] }\n    to: { proto: tcp, ports: [5432] }\n    action: allow\n",
    );
    const cfg = (users: string) =>
      `ca: ca.crt\nhost: { key: k, cert: c }\npolicy: pol.yaml\nusers:\n${users}`;
    fs.writeFileSync(path.join(dir, "uh.yaml"), cfg("  unmapped: host\n"));
    const h = await run(["check-config", "--syntax-only", "uh.yaml"]);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toMatch(
      /warning: users\.unmapped is host and the policy grants host rights \(rules\[1\] \(line 6, "app hosts"\)\)/,
    );
    fs.writeFileSync(path.join(dir, "ud.yaml"), cfg("  asHost: [www-data, '@svc']\n"));
    const d = await run(["check-config", "--syntax-only", "ud.yaml"]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).not.toMatch(/warning/);
    expect(d.stdout).toMatch(/users without an identity run as nobody \(refused\)/);
    expect(d.stdout).toMatch(/acting as the host besides root: www-data, @svc/);
  });
});

const hasAnalyze = spawnSync("systemd-analyze", ["--version"]).status === 0;

describe.skipIf(!hasAnalyze)("systemd units (systemd-analyze verify)", () => {
  // ExecStart paths must exist: point them at this node and this checkout
  const stage = (unit: string, name = unit, mangle = (s: string) => s) => {
    const text = rewriteUnit(
      fs.readFileSync(path.join(ROOT, "systemd", unit), "utf8"),
      process.execPath,
      ROOT,
    );
    const f = path.join(dir, name);
    fs.writeFileSync(f, mangle(text));
    return spawnSync("systemd-analyze", ["verify", "--man=no", f], { encoding: "utf8", cwd: dir });
  };
  it("mintund.service and an instance of mintund@.service verify cleanly", () => {
    for (const [u, n] of [
      ["mintund.service", "mintund.service"],
      ["mintund@.service", "mintund@test.service"],
    ]) {
      const r = stage(u!, n);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr.trim(), n).toBe("");
    }
    const text = fs.readFileSync(path.join(ROOT, "systemd/mintund.service"), "utf8");
    for (const k of [
      "Type=notify",
      "NotifyAccess=main",
      "ExecReload=/bin/kill -HUP $MAINPID",
      "RuntimeDirectory=mintun",
    ])
      expect(text).toContain(k);
  });
  it("the check can fail: a broken unit is reported", () => {
    const r = stage("mintund.service", "broken.service", (s) => s.replace("Type=notify", "Type=notifyy"));
    expect(r.stderr).toMatch(/Failed to parse service type/);
    const r2 = stage("mintund.service", "broken2.service", (s) =>
      s.replace(/ExecStart=\S+/, "ExecStart=/nonexistent/node"),
    );
    expect(r2.status).not.toBe(0);
  });
});
