/**
 * Fail-closed identity end to end (issue 14; docs/IDENTITY.md, "What identity a packet
 * gets"): real OS users (useradd), real daemons in two namespaces, a policy on b that
 * gives host a's own flows every right (like the shipped example's host rules) and
 * refuses every user but alice. Each test follows one row of the table.
 *
 *   host a (10.77.0.1, fd77::1), default config (users.unmapped: deny)
 *     alice = mia<pid>  cert "alice"       bob = mib<pid>  cert "bob"
 *     carol = mic<pid>  no entry
 *   host b (10.77.0.2, fd77::2): HTTP on 8080, a UDP sink on 9000 that prints what it gets
 *     policy: alice -> tcp/udp 8080, 9000 allow; any other user deny; host a allow all
 *
 * Before the fix each of these reached b as host a.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createLan,
  createOsUser,
  deleteOsUser,
  execOk,
  startHttpServer,
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
const WEB = 8080;
const SINK = 9000;
const RAW_UDP = path.resolve(__dirname, "../tools/raw-udp.py");
/** how long a datagram may take to arrive before we call it refused */
const SETTLE_MS = 1000;

const SINK_PY = [
  "import socket, sys",
  "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)",
  "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)",
  `s.bind(("::", ${SINK}))`,
  "print('ready', flush=True)",
  "while True:",
  "    d, a = s.recvfrom(65535)",
  "    print('GOT %d %s' % (len(d), d[:40].decode('latin1').split(' ')[0]), flush=True)",
].join("\n");

/** TCP echo server on b:SINK (dual stack), one thread per connection. */
const ECHO_PY = [
  "import socket, threading",
  "s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)",
  "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)",
  "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
  `s.bind(("::", ${SINK}))`,
  "s.listen(64)",
  "print('ready', flush=True)",
  "def serve(c):",
  "    try:",
  "        while True:",
  "            d = c.recv(4096)",
  "            if not d: break",
  "            c.sendall(d)",
  "    except OSError: pass",
  "    c.close()",
  "while True:",
  "    c, _ = s.accept()",
  "    threading.Thread(target=serve, args=(c,), daemon=True).start()",
].join("\n");

/**
 * A TCP connection to b:SINK held open: echo "one", print "OK1 <local port>", wait until
 * the file argv[2] exists, echo "two": print "OK2", or "ERR <errno>" / "EOF" / "TIMEOUT".
 */
const HOLD_PY = [
  "import socket, sys, os, time, errno",
  `c = socket.create_connection((sys.argv[1], ${SINK}), timeout=5)`,
  "c.sendall(b'one')",
  "print('OK1' if c.recv(10) == b'one' else 'BAD1', c.getsockname()[1], flush=True)",
  "t = time.monotonic()",
  "while not os.path.exists(sys.argv[2]) and time.monotonic() - t < 30: time.sleep(0.05)",
  "try:",
  "    c.sendall(b'two')",
  "    d = c.recv(10)",
  "    print('OK2' if d == b'two' else ('EOF' if d == b'' else 'BAD2'), flush=True)",
  "except socket.timeout:",
  "    print('TIMEOUT', flush=True)",
  "except OSError as e:",
  "    print('ERR', errno.errorcode.get(e.errno, e.errno), flush=True)",
].join("\n");

/**
 * An API flood by one user: `conns` connections to the daemon's socket held open, then
 * `requests` status requests pipelined on one of them. Prints counts of answers by kind.
 */
const FLOOD_PY = [
  "import socket, sys, json, time",
  "path, conns, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])",
  "codes = {}",
  "def count(k): codes[k] = codes.get(k, 0) + 1",
  "first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)",
  "first.connect(path)",
  "first.sendall(b''.join(json.dumps({'id': i + 1, 'method': 'status'}).encode() + b'\\n' for i in range(requests)))",
  "first.settimeout(10)",
  "buf = b''",
  "while buf.count(b'\\n') < requests:",
  "    d = first.recv(1 << 20)",
  "    if not d: break",
  "    buf += d",
  "for l in buf.split(b'\\n'):",
  "    if l:",
  "        r = json.loads(l)",
  "        count('req-' + (r['error']['code'] if 'error' in r else 'ok'))",
  "held = [first]",
  "for i in range(conns - 1):",
  "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)",
  "    try:",
  "        s.connect(path)",
  "    except OSError as e:",
  "        count('connect-' + str(e.errno))",
  "        continue",
  "    s.setblocking(False)",
  "    held.append(s)",
  "time.sleep(0.5)",
  "for s in held[1:]:",
  "    try:",
  "        d = s.recv(4096)",
  "        count(json.loads(d.split(b'\\n')[0])['error']['code'] if d else 'closed')",
  "    except BlockingIOError:",
  "        count('open')",
  "    except (OSError, ValueError, KeyError):",
  "        count('broken')",
  "print(json.dumps(codes), flush=True)",
  "time.sleep(float(sys.argv[4]))",
].join("\n");

describe.skipIf(process.getuid?.() !== 0)("fail-closed identity (netns, real users, raw sockets)", () => {
  let topo: Topology;
  let pki: Pki;
  let work: string;
  let www: string;
  let sink: Proc;
  const files: Record<string, HostFiles> = {};
  const d: Record<string, RunningDaemon> = {};
  const users: Record<"alice" | "bob" | "carol", OsUser> = {} as never;
  const procs: Proc[] = [];

  const nsA = (): Netns => topo.host("a").ns;
  /** Python as an OS user on a (root: user null). */
  const pyAs = (user: string | null, script: string, ...args: string[]) =>
    user
      ? nsA().exec("runuser", ["-u", user, "--", "python3", "-c", script, ...args], { timeoutMs: 20_000 })
      : nsA().exec("python3", ["-c", script, ...args], { timeoutMs: 20_000 });
  /** The sink's lines for datagrams whose text starts with `tag`. */
  const got = (tag: string) =>
    sink
      .readLog()
      .split("\n")
      .filter((l) => l.startsWith("GOT ") && l.split(" ")[2] === tag);
  const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));

  beforeAll(async () => {
    topo = await createLan({ hosts: ["a", "b"] });
    pki = makePki("ca");
    work = pki.dir;
    fs.chmodSync(work, 0o755);
    files.a = makeHost(pki, "a", O4.a, O6.a);
    files.b = makeHost(pki, "b", O4.b, O6.b);
    users.alice = await createOsUser(`mia${process.pid}`);
    users.bob = await createOsUser(`mib${process.pid}`);
    users.carol = await createOsUser(`mic${process.pid}`);

    const specA: DaemonSpec = {
      host: files.a,
      ns: nsA(),
      caFile: pki.caFile,
      listen: "0.0.0.0:7000",
      peers: [{ name: "b", endpoint: `${topo.host("b").addr4}:7000` }],
      logLevel: process.env.MINTUN_LOG ?? "info",
    };
    const { file: configA } = writeConfig(work, specA); // no users section: the defaults
    for (const [who, groups] of [
      ["alice", "dev"],
      ["bob", "contractors"],
    ] as const) {
      const key = path.join(work, `${who}.key`);
      const cert = path.join(work, `${who}.crt`);
      await execOk("node", [MINTUN, "keygen", "--out", key]);
      await execOk(
        "node",
        [MINTUN, "ca", "sign-user", "--ca", pki.dir, "--name", who, "--key", key].concat([
          "--groups",
          groups,
          "--days",
          "1",
          "--out",
          cert,
        ]),
      );
      await execOk(
        "node",
        [MINTUN, "user", "add", users[who].name, "--key", key, "--cert", cert].concat([
          "--config",
          configA,
          "--ca",
          pki.caFile,
        ]),
      );
    }
    const policy = path.join(work, "policy-b.yaml");
    fs.writeFileSync(
      policy,
      `default: deny
rules:
  - name: alice to the web and the sink
    from: { users: [alice] }
    to: { hosts: [b], proto: [tcp, udp], ports: [${WEB}, ${SINK}] }
    action: allow
  - name: no other user
    from: { users: ["*"] }
    action: deny
  - name: host a's own services may do anything
    from: { hosts: [a] }
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
    procs.push(await startHttpServer(topo.host("b").ns, www, WEB));
    sink = topo.host("b").ns.spawn("python3", ["-u", "-c", SINK_PY]);
    procs.push(sink);
    await sink.waitForLog(/^ready/m);
    const echo = topo.host("b").ns.spawn("python3", ["-u", "-c", ECHO_PY]);
    procs.push(echo);
    await echo.waitForLog(/^ready/m);
  }, 120_000);

  afterAll(async () => {
    for (const p of procs) await p.stop().catch(() => undefined);
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await topo?.cleanup();
    for (const u of Object.values(users)) await deleteOsUser(u.name).catch(() => undefined);
    if (www) fs.rmSync(www, { recursive: true, force: true });
    if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  });

  /**
   * UDP datagram(s) to the sink from a socket of `user`, optionally bound to a port; each
   * socket stays open `linger` s after its send (0: closed at once, before a's lookup).
   */
  const SEND_PY = [
    "import socket, sys",
    "import time",
    "dst, tag, size, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])",
    "linger = float(sys.argv[6])",
    "fam = socket.AF_INET6 if ':' in dst else socket.AF_INET",
    "for i in range(count):",
    "    s = socket.socket(fam, socket.SOCK_DGRAM)",
    "    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
    "    if port: s.bind(('', port))",
    "    s.sendto((tag + ' ').encode().ljust(size, b'x'), (dst, " + String(SINK) + "))",
    "    time.sleep(linger)",
    "    s.close()",
    "print('sent', count)",
  ].join("\n");
  const sendUdp = async (
    user: string | null,
    dst: string,
    tag: string,
    { size = 64, port = 0, count = 1, linger = 0.3 } = {},
  ) => {
    const r = await pyAs(user, SEND_PY, dst, tag, String(size), String(port), String(count), String(linger));
    expect(r.code, r.stderr).toBe(0);
  };
  /** raw-udp.py as `user` with CAP_NET_RAW (ambient), so no socket of anyone owns the flow. */
  const rawAs = async (user: OsUser, ...args: string[]) => {
    const r = await nsA().exec(
      "setpriv",
      [
        `--reuid=${user.uid}`,
        `--regid=${user.gid}`,
        "--clear-groups",
        "--inh-caps=+net_raw",
        "--ambient-caps=+net_raw",
      ].concat(["--", "/usr/bin/python3", RAW_UDP, ...args]),
      { timeoutMs: 20_000 },
    );
    expect(r.code, r.stderr).toBe(0);
  };

  it("row 'OS user without an entry' (default config): carol is refused, not run as host a", async () => {
    const st = await d.a!.status();
    expect(st.connections?.unmapped).toBe("deny");
    const r = await nsA().exec("runuser", [
      "-u",
      users.carol.name,
      "--",
      "curl",
      "-sS",
      "-m",
      "5",
      "-o",
      "/dev/null",
      `http://${O4.b}:${WEB}/index.html`,
    ]);
    expect(r.code, r.stderr).toBe(7); // refused at once by a (synthesized RST)
    await sendUdp(users.carol.name, O4.b, "carol");
    await settle();
    expect(got("carol")).toEqual([]);
    // alice (an entry, allowed) and root (the host) still get through
    await sendUdp(users.alice.name, O4.b, "alice-plain");
    await sendUdp(null, O4.b, "root-plain");
    await settle();
    expect(got("alice-plain")).toHaveLength(1);
    expect(got("root-plain")).toHaveLength(1);
  });

  it("row 'no owning socket' (socket closed before the lookup): bob's datagrams are never host a's", async () => {
    await sendUdp(users.bob.name, O4.b, "bob-closed", { count: 20, linger: 0 });
    await settle();
    expect(got("bob-closed")).toEqual([]);
    const st = await d.a!.status();
    console.log(`closed sockets: noOwner ${st.connections?.noOwner}, localDeny ${st.drops.connLocalDeny}`);
  });

  it("row 'no owning socket' (raw socket with CAP_NET_RAW): refused under deny, v4 and v6", async () => {
    await rawAs(users.bob, "frag", O4.a, O4.b, "41001", String(SINK), "raw4-whole");
    await rawAs(users.bob, "hbh", O6.a, O6.b, "41002", String(SINK), "raw6-hbh");
    await settle();
    expect(got("raw4-whole")).toEqual([]);
    expect(got("raw6-hbh")).toEqual([]);
  });

  it("row 'IPv6 fragments': bob's large datagram is identified as bob (refused), alice's arrives whole", async () => {
    await sendUdp(users.bob.name, O6.b, "bob-big6", { size: 3000 });
    await sendUdp(users.alice.name, O6.b, "alice-big6", { size: 3000 });
    await sendUdp(users.alice.name, O4.b, "alice-big4", { size: 3000 });
    await settle();
    expect(got("bob-big6")).toEqual([]);
    expect(got("alice-big6")).toEqual(["GOT 3000 alice-big6"]);
    expect(got("alice-big4")).toEqual(["GOT 3000 alice-big4"]);
  });

  it("row 'later fragment without its first': refused and counted (drops.fragOrphan)", async () => {
    const before = (await d.a!.status()).drops.fragOrphan ?? 0;
    await rawAs(users.bob, "later", O4.a, O4.b, "41003", String(SINK), "orphan4");
    await rawAs(users.bob, "later", O6.a, O6.b, "41004", String(SINK), "orphan6");
    await settle();
    const after = (await d.a!.status()).drops.fragOrphan ?? 0;
    expect(after - before).toBe(2);
    // b holds no connection with port 0 for them (before: a host connection each)
    const w = await nsA().exec("node", [MINTUN, "whois", O4.a, "--json", "--socket", d.b!.socket]);
    expect(w.code, w.stderr).toBe(0);
    expect((JSON.parse(w.stdout) as { conns?: { local: string }[] }).conns ?? []).not.toContainEqual(
      expect.objectContaining({ local: `${O4.b}:0` }),
    );
  });

  it("row 'socket that replaced another on the tuple': bob re-binding alice's port is bob", async () => {
    const port = 42000 + (process.pid % 1000);
    await sendUdp(users.alice.name, O4.b, "alice-port", { port });
    await settle();
    expect(got("alice-port")).toHaveLength(1);
    await sendUdp(users.bob.name, O4.b, "bob-port", { port }); // alice's socket is closed: same tuple
    await settle();
    expect(got("bob-port")).toEqual([]);
    expect((await d.a!.status()).events.connsReidentified).toBeGreaterThanOrEqual(1);
  });

  // ---- whois per caller and a policy reload, with connections held open by alice and root
  const held: Record<"alice" | "root", { proc: Proc; port: number }> = {} as never;
  const go = () => path.join(work, "go");

  it("row 'whois' (local API per caller): a non-root user sees only connections of her own sockets", async () => {
    for (const who of ["alice", "root"] as const) {
      const proc =
        who === "root"
          ? nsA().spawn("python3", ["-u", "-c", HOLD_PY, O4.b, go()])
          : nsA().spawn("runuser", [
              "-u",
              users.alice.name,
              "--",
              "python3",
              "-u",
              "-c",
              HOLD_PY,
              O4.b,
              go(),
            ]);
      procs.push(proc);
      const m = await proc.waitForLog(/^(OK1|BAD1) (\d+)$/m, 10_000);
      expect(m[1]).toBe("OK1");
      held[who] = { proc, port: Number(m[2]) };
    }
    const target = `${O4.b}:${SINK}`;
    const ask = async (user: string | null) => {
      const argv = [MINTUN, "whois", target, "--json", "--socket", d.a!.socket];
      const r = user
        ? await nsA().exec("runuser", ["-u", user, "--", process.execPath, ...argv])
        : await nsA().exec(process.execPath, argv);
      expect(r.code, r.stderr).toBe(0);
      const w = JSON.parse(r.stdout) as {
        conns?: { proto: number; local: string; ownerUid: number | null }[];
        connsOf?: unknown;
      };
      const tcp = (w.conns ?? []).filter((c) => c.proto === 6); // the UDP rows above used b:9000 too
      return { ports: tcp.map((c) => Number(c.local.split(":")[1])).sort(), connsOf: w.connsOf };
    };
    const both = [held.alice.port, held.root.port].sort();
    expect(await ask(users.alice.name)).toEqual({ ports: [held.alice.port], connsOf: users.alice.uid });
    expect(await ask(null)).toEqual({ ports: both, connsOf: "all" });
    expect(await ask(users.bob.name)).toEqual({ ports: [], connsOf: users.bob.uid });
  });

  it("row 'policy reload': alice's open TCP connection is reset at her next send, root's continues", async () => {
    const policy = path.join(work, "policy-b.yaml");
    const allowed = fs.readFileSync(policy, "utf8");
    fs.writeFileSync(policy, allowed.replace("from: { users: [alice] }", "from: { users: [nobody-here] }"));
    try {
      const r = await topo.host("b").ns.exec("node", [MINTUN, "reload", "--socket", d.b!.socket]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      console.log(r.stdout.trim());
      fs.writeFileSync(go(), "");
      const a = await held.alice.proc.waitForLog(/^(OK2|EOF|TIMEOUT|BAD2|ERR \S+)$/m, 15_000);
      const root = await held.root.proc.waitForLog(/^(OK2|EOF|TIMEOUT|BAD2|ERR \S+)$/m, 15_000);
      console.log(`after the reload: alice ${a[1]}, root ${root[1]}`);
      expect(a[1]).toBe("ERR ECONNRESET");
      expect(root[1]).toBe("OK2");
      expect((await d.b!.status()).drops.connPolicyReset ?? 0).toBeGreaterThanOrEqual(1);
    } finally {
      fs.writeFileSync(policy, allowed);
      await topo.host("b").ns.exec("node", [MINTUN, "reload", "--socket", d.b!.socket]);
    }
  });

  it("row 'API flood': one user's connections and requests are capped, another user's status answers", async () => {
    // a low fd limit on a's daemon makes the flood bite: without caps it runs out of fds
    const pr = await nsA().exec("prlimit", [`--pid=${d.a!.proc.pid}`, "--nofile=256:256"]);
    expect(pr.code, pr.stderr).toBe(0);
    const flood = nsA().spawn("runuser", [
      "-u",
      users.carol.name,
      "--",
      "python3",
      "-u",
      "-c",
      FLOOD_PY,
      d.a!.socket,
      "400",
      "300",
      "6",
    ]);
    procs.push(flood);
    const m = await flood.waitForLog(/^(\{.*\})$/m, 30_000);
    const codes = JSON.parse(m[1]!) as Record<string, number>;
    console.log(`carol's flood: ${JSON.stringify(codes)}`);
    // while carol still holds her connections, bob's status answers
    const t0 = performance.now();
    const st = await nsA().exec(
      "runuser",
      ["-u", users.bob.name, "--", process.execPath, MINTUN, "status"].concat(["--socket", d.a!.socket]),
    );
    console.log(
      `bob's status during the flood: exit ${st.code} after ${(performance.now() - t0).toFixed(0)} ms`,
    );
    expect(st.code, st.stderr).toBe(0);
    expect(codes.ELIMIT ?? 0).toBe(400 - 16);
    expect(codes.open ?? 0).toBe(15); // and the first one, which sent the requests
    expect(codes["req-ERATELIMIT"] ?? 0).toBeGreaterThan(0);
    const api = (await d.a!.status()).daemon?.api;
    expect(api?.connsRefused ?? 0).toBeGreaterThanOrEqual(400 - 16);
    await flood.stop();
  }, 90_000);
});
