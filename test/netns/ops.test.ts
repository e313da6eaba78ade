/**
 * Operations end to end: two real daemons in namespaces. sd_notify readiness
 * (through a notify socket of our own: test/tools/notify-listener.py records,
 * at the moment each message arrives, the TUN's addresses and routes), the
 * Prometheus endpoint after traffic, SIGHUP reload of a good and a bad config,
 * and the CLI's commands with their exit codes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { METRIC_NAMES } from "../../src/daemon/metrics.js";
import type { Status } from "../../src/daemon/status.js";
import { lintExposition } from "../tools/prom-lint.js";
import { createLan, pingStats, sleep, waitFor, type Proc, type Topology } from "./lib.js";
import {
  makeHost,
  makePki,
  startDaemon,
  writeConfig,
  MINTUN,
  MINTUND,
  type DaemonSpec,
  type HostFiles,
  type RunningDaemon,
} from "./mintun.js";

const LISTENER = fileURLToPath(new URL("../tools/notify-listener.py", import.meta.url));
const O4: Record<string, string> = { a: "10.77.0.1", b: "10.77.0.2" };
const O6: Record<string, string> = { a: "fd77::1", b: "fd77::2" };
const METRICS = "127.0.0.1:9477";

interface NotifyRec {
  t: number;
  msg: string;
  /** the sender's pid from SCM_CREDENTIALS */
  pid: number | null;
  addr: string;
  route: string;
}

describe.skipIf(process.getuid?.() !== 0)("operations: readiness, metrics, reload, CLI (netns)", () => {
  let topo: Topology;
  let work: string;
  let listener: Proc;
  let notifyLog: string;
  let specA: DaemonSpec;
  const d: Record<string, RunningDaemon> = {};
  const files: Record<string, HostFiles> = {};

  const notes = (): NotifyRec[] =>
    fs.existsSync(notifyLog)
      ? fs
          .readFileSync(notifyLog, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as NotifyRec)
      : [];
  const cli = (...args: string[]) => topo.host("a").ns.exec("node", [MINTUN, ...args]);
  const cliA = (...args: string[]) => cli(...args, "--socket", d.a!.socket);
  const scrape = async (): Promise<string> => {
    const r = await topo.host("a").ns.exec("curl", ["-sS", "--max-time", "5", `http://${METRICS}/metrics`]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  const metric = (text: string, name: string, labels = ""): number | null => {
    const re = new RegExp(`^${name}${labels ? `\\{${labels.replace(/[{}]/g, "\\$&")}\\}` : ""} (\\S+)$`, "m");
    const m = re.exec(text);
    return m ? Number(m[1]) : null;
  };
  const reloadAndWait = async (): Promise<Status> => {
    const before = (await d.a!.status()).daemon?.reload?.at ?? 0;
    d.a!.proc.signal("SIGHUP");
    return waitFor(
      async () => {
        const s = await d.a!.status();
        return (s.daemon?.reload?.at ?? 0) > before ? s : null;
      },
      { timeoutMs: 10_000, what: "the reload to finish" },
    );
  };

  beforeAll(async () => {
    topo = await createLan({ hosts: ["a", "b"] });
    const pki = makePki();
    work = pki.dir;
    for (const h of ["a", "b"]) files[h] = makeHost(pki, h, O4[h]!, O6[h]!);
    const base = (h: string, other: string): DaemonSpec => ({
      host: files[h]!,
      ns: topo.host(h).ns,
      caFile: pki.caFile,
      listen: "0.0.0.0:7000",
      peers: [{ name: other, endpoint: `${topo.host(other).addr4}:7000` }],
    });
    d.b = await startDaemon(work, base("b", "a"), false);
    const sock = path.join(work, "notify.sock");
    notifyLog = path.join(work, "notify.jsonl");
    listener = topo.host("a").ns.spawn("python3", [LISTENER, sock, "mt0", notifyLog], {
      logFile: path.join(work, "listener.log"),
    });
    await listener.waitForLog(/^ready/m, 10_000);
    specA = {
      ...base("a", "b"),
      extra: `metrics:\n  listen: ${METRICS}\n`,
      env: { ...process.env, NOTIFY_SOCKET: sock },
    };
    d.a = await startDaemon(work, specA);
  }, 60_000);

  afterAll(async () => {
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await listener?.stop().catch(() => undefined);
    await topo?.cleanup();
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  it("sends READY=1 (with MAINPID and STATUS) only after the TUN has its addresses and routes", async () => {
    const ready = await waitFor(() => notes().find((n) => /^READY=1$/m.test(n.msg)), {
      timeoutMs: 5000,
      what: "READY=1 on the notify socket",
    });
    expect(ready.msg).toMatch(new RegExp(`^MAINPID=${d.a!.proc.pid}$`, "m"));
    // sent by mintund itself (the credentials name its pid): the unit can use NotifyAccess=main
    expect(ready.pid).toBe(d.a!.proc.pid);
    expect(ready.msg).toMatch(/^STATUS=.*peers/m);
    // taken when the datagram arrived: the addresses and routes were already there
    expect(ready.addr).toContain(`${O4.a}/32`);
    expect(ready.addr).toContain(`${O6.a}/128`);
    expect(ready.route).toContain("10.77.0.0/16");
    expect(ready.route).toContain("fd77::/64");
    expect(notes().findIndex((n) => n.t === ready.t)).toBe(0); // nothing (no premature READY) before it
  });

  it("exports Prometheus metrics with non-zero tunnel counters after traffic", async () => {
    expect((await pingStats(topo.host("a").ns, O4.b!, { count: 5, interval: 0.05 })).received).toBe(5);
    await sleep(300); // let the 200 ms scrape cache expire
    const text = await scrape();
    for (const n of METRIC_NAMES) expect(text, n).toMatch(new RegExp(`^# TYPE ${n} `, "m"));
    // a real daemon's exposition parses and follows the naming rules (test/tools/prom-lint.ts)
    expect(lintExposition(text).problems).toEqual([]);
    expect(metric(text, "mintun_certificate_expiry_timestamp_seconds", 'kind="host"')).toBeGreaterThan(
      Date.now() / 1000,
    );
    expect(metric(text, "mintun_peer_last_handshake_timestamp_seconds", 'peer="b"')).toBeLessThanOrEqual(
      Date.now() / 1000 + 1,
    );
    expect(text).toMatch(/^process_cpu_seconds_total /m); // prom-client's process metrics
    expect(metric(text, "mintun_tunnels", 'state="established"')).toBeGreaterThanOrEqual(1);
    expect(metric(text, "mintun_peer_tx_bytes_total", 'peer="b"')).toBeGreaterThan(0);
    expect(metric(text, "mintun_peer_rx_packets_total", 'peer="b"')).toBeGreaterThanOrEqual(5);
    expect(metric(text, "mintun_tx_packets_total")).toBeGreaterThanOrEqual(5);
    expect(metric(text, "mintun_events_total", 'event="tunnels_created"')).toBeGreaterThanOrEqual(1);
    expect(metric(text, "mintun_drops_total", 'reason="auth"')).not.toBeNull();
    expect(metric(text, "mintun_info", 'host="a",version="0.1.0"')).toBe(1);
    console.log(
      text
        .split("\n")
        .filter((l) => /^mintun_(tunnels|peer_|rx_|tx_)/.test(l))
        .join("\n"),
    );
  });

  // 23 `node bin/mintun` processes one after another, as a user runs them: about 1.3 s each at
  // load 10 on 2 cores (30 s, vitest's default budget, ran out after ~20 of them)
  it(
    "CLI: status, peers, whois, ping, check-config, --help, with shell exit codes",
    { timeout: 120_000 },
    async () => {
      const st = await cliA("status");
      expect(st.code, st.stderr).toBe(0);
      expect(st.stdout).toMatch(/daemon: pid \d+, version 0\.1\.0/);
      expect(st.stdout).toContain(`metrics http://${METRICS}/metrics`);

      const peers = await cliA("peers");
      expect(peers.code, peers.stderr).toBe(0);
      expect(peers.stdout).toMatch(/^NAME\s+TUNNEL\s+ADDRESSES/m);
      expect(peers.stdout).toMatch(new RegExp(`^b\\s+established\\s+${O4.b} ${O6.b}`, "m"));

      const w = await cliA("whois", O6.b!);
      expect(w.code, w.stderr).toBe(0);
      const key = (await d.b!.status()).host.key;
      expect(w.stdout).toMatch(/^host:\s+b$/m);
      expect(w.stdout).toContain(key);
      expect(w.stdout).toMatch(/^tunnel:\s+session \S+ established/m);
      const wj = JSON.parse((await cliA("whois", O4.b!, "--json")).stdout) as { name: string; key: string };
      expect(wj).toMatchObject({ name: "b", key });
      const self = await cliA("whois", O4.a!);
      expect(self.stdout).toMatch(/^host:\s+a \(this host\)$/m);
      const none = await cliA("whois", "10.99.0.1");
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/no known host owns/);
      expect((await cliA("whois", "not-an-ip")).code).toBe(2);

      const p = await cliA("ping", "b", "--count", "2", "--interval-ms", "50");
      expect(p.code, p.stdout + p.stderr).toBe(0);
      expect(p.stdout).toMatch(/2 received/);
      expect(p.stdout).toMatch(
        new RegExp(`carried by tunnel \\S+ \\(established, epoch \\d+\\) to ${topo.host("b").addr4}:7000`),
      );
      const p6 = await cliA("ping", "b", "--ipv6", "--count", "1");
      expect(p6.code, p6.stdout + p6.stderr).toBe(0);
      expect(p6.stdout).toContain(O6.b);
      const pn = await cliA("ping", "nosuchpeer");
      expect(pn.code).toBe(1);
      expect(pn.stderr).toMatch(/neither a peer/);

      const good = await cli("check-config", path.join(work, "a.yaml"));
      expect(good.code, good.stderr).toBe(0);
      expect(good.stdout).toMatch(/a\.yaml: ok/);
      expect(good.stdout).toMatch(/host 'a' \(\S+\), certificate valid 0 more days/);
      const badFile = path.join(work, "bad.yaml");
      fs.writeFileSync(
        badFile,
        fs.readFileSync(path.join(work, "a.yaml"), "utf8") + "tunnel:\n  rekeySecs: 5\n",
      );
      const bad = await cli("check-config", badFile);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(
        /bad\.yaml:\d+ \(tunnel\.rekeySecs\): unknown key 'rekeySecs' \(did you mean 'rekeySec'\?\)/,
      );

      for (const c of ["status", "peers", "ping", "whois", "check-config", "install", "cert show"]) {
        const h = await cli(...c.split(" "), "--help");
        expect(h.code, c).toBe(0);
        expect(h.stdout, c).toMatch(/^usage: mintun /);
      }
      expect((await cli("peers", "--bogus")).code).toBe(2);
      // MINTUN_SOCKET stands for --socket; ping --json ends with one object
      const envSt = await topo.host("a").ns.exec("node", [MINTUN, "status", "--json"], {
        env: { ...process.env, MINTUN_SOCKET: d.a!.socket },
      });
      expect(envSt.code, envSt.stderr).toBe(0);
      expect((JSON.parse(envSt.stdout) as Status).host.name).toBe("a");
      const pj = await cliA("ping", "b", "--count", "2", "--interval-ms", "50", "--json");
      expect(pj.code, pj.stderr).toBe(0);
      expect(JSON.parse(pj.stdout)).toMatchObject({
        host: "b",
        address: O4.b,
        transmitted: 2,
        received: 2,
        ok: true,
      });
      const v = await topo.host("a").ns.exec("node", [MINTUND, "--version"]);
      expect(v.code).toBe(0);
      expect(v.stdout).toMatch(/^mintund 0\.1\.0 \(node v\d+/);
      const down = await cli("status", "--socket", path.join(work, "nothing.sock"));
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(/not running/);
    },
  );

  it("SIGHUP applies a good config without dropping the tunnel; restart-only keys are reported", async () => {
    const before = await d.a!.status();
    const t0 = before.tunnels.find((t) => t.peer === "b" && t.state === "established")!;
    expect(t0).toBeDefined();
    writeConfig(work, {
      ...specA,
      listen: "0.0.0.0:7001", // needs a restart: reported, not applied
      logLevel: "debug",
      peers: [...specA.peers, { name: "c", endpoint: "10.201.0.99:7000" }],
      extra: `${specA.extra}tunnel:\n  rekeySec: 60\n`,
    });
    const s = await reloadAndWait();
    const r = s.daemon!.reload!;
    expect(r.ok, r.error ?? "").toBe(true);
    expect(r.applied).toEqual(expect.arrayContaining(["log.level debug", "tunnel.rekeySec 60", "peers +c"]));
    expect(r.restartRequired).toEqual(["listen"]);
    expect(s.daemon!.logLevel).toBe("debug");
    expect(s.listen).toBe("0.0.0.0:7000");
    expect(s.peers.map((p) => p.name).sort()).toEqual(["b", "c"]);
    const t1 = s.tunnels.find((t) => t.session === t0.session);
    expect(t1?.state).toBe("established");
    // waitAll: right after the reload a reply can come a few ms late (lib.ts pingStats)
    expect(
      (await pingStats(topo.host("a").ns, O4.b!, { count: 3, interval: 0.05, waitAll: true })).received,
    ).toBe(3);
    expect((await d.a!.status()).tunnels.find((t) => t.session === t0.session)?.rxPackets).toBeGreaterThan(
      t0.rxPackets,
    );
    // RELOADING=1 (with MONOTONIC_USEC) then READY=1 on the notify socket
    await waitFor(() => notes().filter((n) => /^READY=1$/m.test(n.msg)).length >= 2 || null, {
      timeoutMs: 5000,
      what: "READY=1 after the reload",
    });
    const msgs = notes().map((n) => n.msg);
    const iRel = msgs.findIndex((m) => /^RELOADING=1$/m.test(m));
    expect(iRel).toBeGreaterThan(0);
    expect(msgs[iRel]).toMatch(/^MONOTONIC_USEC=\d+$/m);
    expect(msgs.slice(iRel + 1).some((m) => /^READY=1$/m.test(m))).toBe(true);
  });

  it("SIGHUP with a bad config refuses it with its error, keeps running, shows it in status", async () => {
    const file = path.join(work, "a.yaml");
    const good = fs.readFileSync(file, "utf8");
    expect(good).toContain("rekeySec: 60");
    fs.writeFileSync(file, good.replace("rekeySec: 60", "rekeySecs: 60"));
    const s = await reloadAndWait();
    const r = s.daemon!.reload!;
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/a\.yaml:\d+ \(tunnel\.rekeySecs\): unknown key/);
    expect(s.peers.map((p) => p.name).sort()).toEqual(["b", "c"]); // the running config stays
    expect(d.a!.proc.running).toBe(true);
    expect(
      (await pingStats(topo.host("a").ns, O4.b!, { count: 2, interval: 0.05, waitAll: true })).received,
    ).toBe(2);
    const st = await cliA("status");
    expect(st.code).toBe(1);
    expect(st.stdout).toMatch(/REFUSED: .*rekeySecs/);
    await sleep(300);
    const m = await scrape();
    expect(metric(m, "mintun_config_last_reload_successful")).toBe(0);
    expect(metric(m, "mintun_config_reloads_total", 'result="failed"')).toBe(1);
    expect(metric(m, "mintun_config_reloads_total", 'result="ok"')).toBe(1);
    expect(fs.readFileSync(d.a!.proc.logFile, "utf8")).toMatch(/"level":"error".*config reload refused/);
    fs.writeFileSync(file, good);
  });

  it("sends STOPPING=1 on SIGTERM and exits 0", async () => {
    await d.a!.stop();
    expect(d.a!.proc.exitStatus?.code).toBe(0);
    // sent before the exit; the listener records it after its `ip` calls, so wait (bounded)
    const stop = await waitFor(() => notes().find((n) => /^STOPPING=1$/m.test(n.msg)), {
      timeoutMs: 5000,
      what: "STOPPING=1 on the notify socket",
    });
    expect(notes().at(-1)).toEqual(stop); // the last message
    expect(stop.pid).toBe(d.a!.proc.pid);
  });
});
