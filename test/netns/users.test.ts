/**
 * Per-user connections end to end (issue 5): real OS users made with useradd, real user
 * certificates from `mintun ca sign-user`, installed with `mintun user add`, real
 * daemons in two namespaces on a LAN, a policy on B, real curl run as those users with
 * runuser, real ping.
 *
 *   host a (10.77.0.1)                         host b (10.77.0.2), policy:
 *     alice  = mta<pid>  cert "alice" (dev)      alice -> b tcp 8080     allow
 *     bob    = mtb<pid>  cert "bob"   (ops)      icmp from any host      allow
 *     rogue  = mtr<pid>  cert "alice", signed    any other user flow     deny
 *              by another CA (added without --ca) host a (host-only) -> tcp 8080 allow
 *     root   (no entry: host identity)           default deny
 *
 * Checks: alice's curl works and both ends' whois name her (B: peer user alice, A: local
 * user alice, direction out, same tunnel session); bob's curl is refused at once with a
 * TCP RST (ECONNREFUSED, curl exit 7) synthesized by A's daemon; root's flows run under
 * the host identity; the rogue "alice" is refused and counted (drops.connBadCert) by B;
 * root's ping works.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCert } from "../../src/store/keyfile.js";
import type { WhoisAnswer, WhoisConn } from "../../src/daemon/status.js";
import { fingerprint } from "../../src/wire/cert.js";
import {
  createLan,
  createOsUser,
  deleteOsUser,
  execOk,
  pingStats,
  startHttpServer,
  waitFor,
  type Netns,
  type OsUser,
  type Proc,
  type Topology,
} from "./lib.js";
import {
  makeHost,
  makePki,
  MINTUN,
  startDaemon,
  waitRecords,
  writeConfig,
  type DaemonSpec,
  type HostFiles,
  type Pki,
  type RunningDaemon,
} from "./mintun.js";

const O4 = { a: "10.77.0.1", b: "10.77.0.2" };
const O6 = { a: "fd77::1", b: "fd77::2" };
const PORT = 8080;
/** "refused at once": well under a second in practice; loose bound for slow CI machines */
const FAST_MS = 1500;

/** `mintun ARGS` in a namespace (the CLI reaches the daemon over its unix socket). */
async function mintun(ns: Netns, ...args: string[]) {
  return ns.exec("node", [MINTUN, ...args], { timeoutMs: 20_000 });
}

/** `curl -v` as an OS user (runuser; root: no runuser), timed from this process. */
async function curlAs(ns: Netns, user: string | null, url: string) {
  const curl = ["curl", "-v", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code} %{local_port}", url];
  const t0 = performance.now();
  const r = user
    ? await ns.exec("runuser", ["-u", user, "--", ...curl])
    : await ns.exec(curl[0]!, curl.slice(1));
  const ms = performance.now() - t0;
  const [http, port] = r.stdout.trim().split(/\s+/);
  return { exit: r.code, http: Number(http), localPort: Number(port), ms, stderr: r.stderr };
}

/**
 * A TCP connection held open (a real socket of `user`, or root's) to b:8080, so whois can
 * be asked while the flow is alive. Resolves with the process and its local port.
 */
async function holdConnection(ns: Netns, user: string | null): Promise<{ proc: Proc; port: number }> {
  const script =
    `const s = require("node:net").connect(${PORT}, "${O4.b}", () => console.log("PORT " + s.localPort));` +
    `s.on("error", (e) => { console.log("ERROR " + e.code); process.exit(2); });` +
    `setTimeout(() => process.exit(0), 30000);`;
  const proc = user
    ? ns.spawn("runuser", ["-u", user, "--", process.execPath, "-e", script])
    : ns.spawn(process.execPath, ["-e", script]);
  const m = await proc.waitForLog(/^(PORT|ERROR) (\S+)$/m, 10_000);
  if (m[1] !== "PORT") throw new Error(`${user ?? "root"} could not connect to b:${PORT}: ${m[2]}`);
  return { proc, port: Number(m[2]) };
}

describe.skipIf(process.getuid?.() !== 0)("per-user connections (netns, real users, daemons, curl)", () => {
  let topo: Topology;
  let pki: Pki;
  let work: string;
  let www: string;
  const files: Record<string, HostFiles> = {};
  const d: Record<string, RunningDaemon> = {};
  const users: Record<"alice" | "bob" | "rogue", OsUser> = {} as never;
  const fp: Record<string, string> = {};
  const held: Proc[] = [];

  beforeAll(async () => {
    topo = await createLan({ hosts: ["a", "b"] });
    pki = makePki("ca"); // ca.crt + ca.key in pki.dir: a CA directory for `mintun ca sign-user`
    work = pki.dir;
    fs.chmodSync(work, 0o755); // the API sockets live here: every local user may connect (keys stay 0600)
    files.a = makeHost(pki, "a", O4.a, O6.a);
    files.b = makeHost(pki, "b", O4.b, O6.b);
    fp.a = fingerprint(files.a.hostCert.publicKey);
    fp.b = fingerprint(files.b.hostCert.publicKey);

    // OS users on host a (and, /etc/passwd being shared, everywhere)
    users.alice = await createOsUser(`mta${process.pid}`);
    users.bob = await createOsUser(`mtb${process.pid}`);
    users.rogue = await createOsUser(`mtr${process.pid}`);

    // user keys and certificates: alice and bob from the organisation CA, "alice" from a rogue CA
    const rogueCa = path.join(work, "rogue-ca");
    await execOk("node", [MINTUN, "ca", "init", "--dir", rogueCa, "--name", "rogue-ca"]);
    const sign = async (who: string, caDir: string, name: string, groups: string) => {
      const key = path.join(work, `${who}.key`);
      const cert = path.join(work, `${who}.crt`);
      await execOk("node", [MINTUN, "keygen", "--out", key]);
      await execOk(
        "node",
        [MINTUN, "ca", "sign-user", "--ca", caDir, "--name", name, "--key", key].concat([
          "--groups",
          groups,
          "--days",
          "1",
          "--out",
          cert,
        ]),
      );
      fp[who] = fingerprint(readCert(cert).publicKey);
      return { key, cert };
    };
    const alice = await sign("alice", pki.dir, "alice", "dev");
    const bob = await sign("bob", pki.dir, "bob", "ops");
    const rogue = await sign("rogue", rogueCa, "alice", "dev");

    const specA: DaemonSpec = {
      host: files.a,
      ns: topo.host("a").ns,
      caFile: pki.caFile,
      listen: "0.0.0.0:7000",
      peers: [{ name: "b", endpoint: `${topo.host("b").addr4}:7000` }],
      logLevel: process.env.MINTUN_LOG ?? "info",
    };
    // the store lives in A's state directory: write A's config first, add users, then start A
    const { file: configA } = writeConfig(work, specA);
    const add = (u: OsUser, k: { key: string; cert: string }, withCa: boolean) =>
      execOk("node", [
        MINTUN,
        "user",
        "add",
        u.name,
        "--key",
        k.key,
        "--cert",
        k.cert,
        "--config",
        configA,
        ...(withCa ? ["--ca", pki.caFile] : []),
      ]);
    await add(users.alice, alice, true);
    await add(users.bob, bob, true);
    await add(users.rogue, rogue, false); // accepted locally: nothing here checks its CA
    const list = await execOk("node", [MINTUN, "user", "list", "--json", "--config", configA]);
    expect((JSON.parse(list.stdout) as { users: { uid: number }[] }).users.map((u) => u.uid).sort()).toEqual(
      [users.alice.uid, users.bob.uid, users.rogue.uid].sort(),
    );

    const policy = path.join(work, "policy-b.yaml");
    fs.writeFileSync(
      policy,
      `default: deny
rules:
  - name: alice to the web port
    from: { users: [alice] }
    to: { hosts: [b], proto: tcp, ports: [${PORT}] }
    action: allow
  - name: ping from every host
    from: { hosts: ["*"] }
    to: { proto: icmp }
    action: allow
  - name: no other user
    from: { users: ["*"] }
    action: deny
  - name: host-only flows of a to the web port
    from: { hosts: [a] }
    to: { proto: tcp, ports: [${PORT}] }
    action: allow
`,
    );
    d.b = await startDaemon(
      work,
      {
        host: files.b,
        ns: topo.host("b").ns,
        caFile: pki.caFile,
        listen: "0.0.0.0:7000",
        peers: [{ name: "a", endpoint: `${topo.host("a").addr4}:7000` }],
        extra: `policy: ${policy}\n`,
        logLevel: process.env.MINTUN_LOG ?? "info",
      },
      false,
    );
    d.a = await startDaemon(work, specA, false);
    await waitRecords(d.a);
    await waitRecords(d.b);
    www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.chmodSync(www, 0o755);
    fs.writeFileSync(path.join(www, "index.html"), "<html>hello</html>\n");
    await startHttpServer(topo.host("b").ns, www, PORT);
  }, 120_000);

  afterAll(async () => {
    for (const p of held) await p.stop().catch(() => undefined);
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await topo?.cleanup();
    for (const u of Object.values(users)) await deleteOsUser(u.name).catch(() => undefined);
    if (www) fs.rmSync(www, { recursive: true, force: true });
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  const url = `http://${O4.b}:${PORT}/index.html`;

  async function whois(on: "a" | "b", target: string): Promise<WhoisAnswer> {
    const r = await mintun(topo.host(on).ns, "whois", target, "--json", "--socket", d[on]!.socket);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as WhoisAnswer;
  }
  async function sessionsWith(on: "a" | "b", peer: string): Promise<string[]> {
    return (await d[on]!.status()).tunnels.filter((t) => t.peer === peer).map((t) => t.session);
  }

  it("alice's curl reaches b's web server (policy allows user alice)", async () => {
    const r = await curlAs(topo.host("a").ns, users.alice.name, url);
    console.log(`alice: curl exit ${r.exit}, HTTP ${r.http}, ${r.ms.toFixed(0)} ms`);
    expect(r.exit, r.stderr).toBe(0);
    expect(r.http).toBe(200);
  });

  it("whois on both ends names alice for her connection, with the same tunnel session", async () => {
    const h = await holdConnection(topo.host("a").ns, users.alice.name);
    held.push(h.proc);
    // B: the remote end of a.ip:port is host a, user alice (dev), direction in
    const wb = await whois("b", `${O4.a}:${h.port}`);
    expect(wb.name).toBe("a");
    const cb = (wb.conns ?? []).filter((c) => c.remote === `${O4.a}:${h.port}`);
    expect(cb, JSON.stringify(wb)).toHaveLength(1);
    const inb = cb[0]!;
    expect(inb).toMatchObject({
      direction: "in",
      proto: 6,
      local: `${O4.b}:${PORT}`,
      state: "open",
      peerHost: { name: "a", fingerprint: fp.a },
      peerUser: { name: "alice", groups: ["dev"], fingerprint: fp.alice },
    });
    expect(await sessionsWith("b", "a")).toContain(inb.session);
    // the human-readable form names her too
    const text = await mintun(topo.host("b").ns, "whois", `${O4.a}:${h.port}`, "--socket", d.b!.socket);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/user:\s+alice \(groups dev/);
    console.log(text.stdout);

    // A: the same flow seen from a's side (remote b:8080), opened here by alice
    const wa = await whois("a", `${O4.b}:${PORT}`);
    expect(wa.name).toBe("b");
    const ca = (wa.conns ?? []).filter((c) => c.local === `${O4.a}:${h.port}`);
    expect(ca, JSON.stringify(wa)).toHaveLength(1);
    const outa = ca[0]!;
    expect(outa).toMatchObject({
      direction: "out",
      proto: 6,
      remote: `${O4.b}:${PORT}`,
      state: "open",
      peerHost: { name: "b", fingerprint: fp.b },
      peerUser: null, // b's side runs under its host identity
      localUser: { uid: users.alice.uid, name: users.alice.name, cert: "alice" },
    });
    // both ends agree on the tunnel session id (what an application can bind to)
    expect(outa.session).toBe(inb.session);
    expect(await sessionsWith("a", "b")).toContain(outa.session);
    await h.proc.stop();
    // the kernels closed the flow (FIN both ways): both ends show it closed while the entry
    // waits for its idle timeout (it was "open" until the idle sweep before)
    for (const [on, target, mine] of [
      ["a", `${O4.b}:${PORT}`, (c: WhoisConn) => c.local === `${O4.a}:${h.port}`],
      ["b", `${O4.a}:${h.port}`, (c: WhoisConn) => c.remote === `${O4.a}:${h.port}`],
    ] as const)
      await waitFor(
        async () => ((await whois(on, target)).conns ?? []).find(mine)?.state === "closed" || null,
        { timeoutMs: 5000, what: `${on} to show the closed flow as closed` },
      );
  });

  it("bob's curl is refused at once: a synthesized RST, curl exit 7 (Connection refused)", async () => {
    const r = await curlAs(topo.host("a").ns, users.bob.name, url);
    console.log(`bob: curl exit ${r.exit} after ${r.ms.toFixed(1)} ms (runuser + curl + refusal)`);
    expect(r.exit, r.stderr).toBe(7);
    expect(r.stderr).toMatch(/Connection refused/); // ECONNREFUSED: a RST, not an ICMP error or a timeout
    expect(r.ms).toBeLessThan(FAST_MS);
    // a's connection table remembers the denied flow under bob
    const wa = await whois("a", `${O4.b}:${PORT}`);
    const mine = (wa.conns ?? []).filter((c: WhoisConn) => c.localUser?.uid === users.bob.uid);
    expect(mine.length, JSON.stringify(wa)).toBeGreaterThanOrEqual(1);
    expect(mine.every((c) => c.state === "denied" && c.denyReason === "policy")).toBe(true);
    expect(mine.every((c) => c.localUser?.cert === "bob")).toBe(true);
  });

  it("bob's UDP is refused at once with an ICMP / ICMPv6 'administratively prohibited'", async () => {
    // a connected UDP socket reports the ICMP error on its next receive: Linux maps
    // ICMP type 3 code 13 to EHOSTUNREACH and ICMPv6 type 1 code 1 to EACCES
    const script = [
      "import socket, sys, time, errno",
      "fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET",
      "s = socket.socket(fam, socket.SOCK_DGRAM)",
      "s.connect((sys.argv[1], 5353))",
      "s.settimeout(3)",
      "t0 = time.monotonic()",
      "s.send(b'hello')",
      "try:",
      "    s.recv(100)",
      "    print('REPLY')",
      "except socket.timeout:",
      "    print('TIMEOUT %.1f' % ((time.monotonic() - t0) * 1000))",
      "except OSError as e:",
      "    print('%s %.1f' % (errno.errorcode[e.errno], (time.monotonic() - t0) * 1000))",
    ].join("\n");
    for (const [addr, want] of [
      [O4.b, "EHOSTUNREACH"],
      [O6.b, "EACCES"],
    ] as const) {
      const r = await topo
        .host("a")
        .ns.exec("runuser", ["-u", users.bob.name, "--", "python3", "-c", script, addr]);
      expect(r.code, r.stderr).toBe(0);
      const [what, ms] = r.stdout.trim().split(" ");
      console.log(`bob: UDP to ${addr}: ${what} after ${ms} ms`);
      expect(what).toBe(want);
      expect(Number(ms)).toBeLessThan(FAST_MS);
    }
  });

  it("root's flows run under the host identity (allowed for host a; whois: no user)", async () => {
    const r = await curlAs(topo.host("a").ns, null, url);
    expect(r.exit, r.stderr).toBe(0);
    expect(r.http).toBe(200);
    const h = await holdConnection(topo.host("a").ns, null);
    held.push(h.proc);
    const wb = await whois("b", `${O4.a}:${h.port}`);
    const cb = (wb.conns ?? []).filter((c) => c.remote === `${O4.a}:${h.port}`);
    expect(cb, JSON.stringify(wb)).toHaveLength(1);
    expect(cb[0]).toMatchObject({
      direction: "in",
      state: "open",
      peerHost: { name: "a", fingerprint: fp.a },
      peerUser: null,
    });
    const wa = await whois("a", `${O4.b}:${PORT}`);
    const ca = (wa.conns ?? []).filter((c) => c.local === `${O4.a}:${h.port}`);
    expect(ca, JSON.stringify(wa)).toHaveLength(1);
    expect(ca[0]).toMatchObject({ direction: "out", localUser: null, peerUser: null });
    await h.proc.stop();
  });

  it("a user certificate from another CA (a forged 'alice') is refused fast and counted by b", async () => {
    const before = (await d.b!.status()).drops.connBadCert ?? 0;
    const r = await curlAs(topo.host("a").ns, users.rogue.name, url);
    console.log(`rogue "alice": curl exit ${r.exit} after ${r.ms.toFixed(1)} ms`);
    // if a's daemon dropped the entry when loading its store (verifying it against its own CA),
    // the rogue's flows ran under host a's identity instead and b never saw the forged certificate
    const skipped = d
      .a!.proc.readLog()
      .split("\n")
      .filter((l) => l.includes("user store entry skipped"));
    expect(r.exit, `${r.stderr}\na's store skipped: ${skipped.join("\n") || "nothing"}`).toBe(7);
    expect(r.http).toBe(0);
    expect(r.ms).toBeLessThan(FAST_MS);
    const after = (await d.b!.status()).drops.connBadCert ?? 0;
    expect(after).toBeGreaterThan(before);
    // b never lists the forged identity as alice
    const wb = await whois("b", O4.a);
    expect((wb.conns ?? []).filter((c) => c.peerUser?.fingerprint === fp.rogue)).toEqual([]);
  });

  it("root's ping works (host identity, icmp allowed), IPv4 and IPv6", async () => {
    const r4 = await pingStats(topo.host("a").ns, O4.b, { count: 3, interval: 0.05 });
    const r6 = await pingStats(topo.host("a").ns, O6.b, { count: 3, interval: 0.05 });
    expect(r4.received).toBe(3);
    expect(r6.received).toBe(3);
  });

  it("alice still gets through after the others were refused (no collateral damage)", async () => {
    const r = await curlAs(topo.host("a").ns, users.alice.name, url);
    expect(r.exit, r.stderr).toBe(0);
    expect(r.http).toBe(200);
  });

  it("any local user may ask whois; reload needs root (SO_PEERCRED on the API socket)", async () => {
    const asAlice = (...args: string[]) =>
      topo.host("a").ns.exec("runuser", ["-u", users.alice.name, "--", process.execPath, MINTUN, ...args]);
    const w = await asAlice("whois", O4.b, "--json", "--socket", d.a!.socket);
    expect(w.code, w.stderr).toBe(0);
    expect((JSON.parse(w.stdout) as WhoisAnswer).name).toBe("b");
    const r = await asAlice("reload", "--socket", d.a!.socket);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`'reload' needs root (called by uid ${users.alice.uid})`);
    const ok = await mintun(topo.host("a").ns, "reload", "--socket", d.a!.socket);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(ok.stdout).toMatch(/^reloaded: /);
  });

  it("reload applies a new policy on b: alice refused at once, then allowed again", async () => {
    const policy = path.join(work, "policy-b.yaml");
    const allowed = fs.readFileSync(policy, "utf8");
    fs.writeFileSync(policy, allowed.replace("from: { users: [alice] }", "from: { users: [nobody-here] }"));
    try {
      const r = await mintun(topo.host("b").ns, "reload", "--socket", d.b!.socket);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(r.stdout).toMatch(/policy/);
      const c = await curlAs(topo.host("a").ns, users.alice.name, url);
      expect(c.exit, c.stderr).toBe(7);
      expect(c.stderr).toMatch(/Connection refused/);
      expect(c.ms).toBeLessThan(FAST_MS);
    } finally {
      fs.writeFileSync(policy, allowed);
      const r = await mintun(topo.host("b").ns, "reload", "--socket", d.b!.socket);
      expect(r.code, r.stderr + r.stdout).toBe(0);
    }
    const c = await curlAs(topo.host("a").ns, users.alice.name, url);
    expect(c.exit, c.stderr).toBe(0);
    expect(c.http).toBe(200);
  });

  it("reload applies the user store on a: bob without an entry is refused (default users.unmapped: deny)", async () => {
    // before issue 14 the default was `unmapped: host`: host a's host-only flows may reach
    // b:8080 (last rule), so bob, once his entry was gone, got in as host a
    const configA = path.join(work, "a.yaml");
    await execOk("node", [MINTUN, "user", "remove", users.bob.name, "--config", configA]);
    const r = await mintun(topo.host("a").ns, "reload", "--socket", d.a!.socket);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const c = await curlAs(topo.host("a").ns, users.bob.name, url);
    expect(c.exit, c.stderr).toBe(7);
    expect(c.stderr).toMatch(/Connection refused/);
    expect((await d.a!.status()).connections?.unmapped).toBe("deny");
  });
});
