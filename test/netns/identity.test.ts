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
});
