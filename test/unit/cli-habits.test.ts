/**
 * The CLI's habits (docs/CLI.md): --version, `mintun help CMD`, man-style help with exit
 * codes, one meaning for --ca, '-' for stdin/stdout, --json on every command, --socket and
 * MINTUN_SOCKET on every command that talks to the daemon, no directory made by a mistyped
 * --out. In-process through runCli, and end to end by spawning a bundled bin/mintun.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
// @ts-expect-error: a .mjs build script without types
import { bundleCli } from "../../scripts/bundle-cli.mjs";
import { commandHelp, runCli, EXIT_CODES, type Io } from "../../src/cli/cli.js";
import { parseArgs } from "../../src/cli/args.js";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { LAZY_COMMANDS } from "../../src/cli/commands/table.js";
import { parsePingSummary } from "../../src/cli/commands/ops.js";
import { readCert } from "../../src/store/keyfile.js";
import { fingerprint } from "../../src/wire/cert.js";
import { suggest, typoDistance } from "../../src/text.js";

let dir: string;
const NOW_MS = Date.now();

async function run(argv: string[], extra: Partial<Io> = {}) {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    now: () => NOW_MS,
    cwd: dir,
    env: {},
    ...extra,
  };
  const code = await runCli(argv, io, COMMANDS, { version: () => "9.8.7" });
  return { code, stdout, stderr };
}

const stdin = (text: string | Buffer) => ({ readStdin: () => Buffer.from(text) });

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-habits-"));
  expect((await run(["ca", "init", "--dir", "ca", "--name", "habits-ca"])).code).toBe(0);
  fs.mkdirSync(path.join(dir, "k"));
  expect((await run(["keygen", "--out", "k/web.key"])).code).toBe(0);
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("the command tables", () => {
  it("the lazy table (bin/mintun) has the same commands, summaries and order as the loaded one", async () => {
    expect(LAZY_COMMANDS.map((c) => c.path.join(" "))).toEqual(COMMANDS.map((c) => c.path.join(" ")));
    for (const [i, l] of LAZY_COMMANDS.entries()) {
      const c = await l.load();
      expect(c, l.path.join(" ")).toBe(COMMANDS[i]);
      expect(l.summary, l.path.join(" ")).toBe(c.summary);
    }
  });

  it("every command prints JSON with --json; every daemon command takes --socket and MINTUN_SOCKET", () => {
    for (const c of COMMANDS) {
      const name = c.path.join(" ");
      expect(
        c.flags?.some((f) => f.name === "json" && f.type === "boolean"),
        name,
      ).toBe(true);
      const socket = c.flags?.find((f) => f.name === "socket");
      if (socket) expect(socket.env, name).toBe("MINTUN_SOCKET");
    }
    const daemonCommands = COMMANDS.filter((c) => c.flags?.some((f) => f.name === "socket"));
    expect(daemonCommands.map((c) => c.path.join(" ")).sort()).toEqual(
      ["peers", "ping", "reload", "resolve", "status", "whois"].sort(),
    );
  });

  it("--ca has one meaning everywhere: the CA, as a directory or its ca.crt file", () => {
    const cas = COMMANDS.flatMap((c) => (c.flags ?? []).filter((f) => f.name === "ca"));
    expect(cas.length).toBeGreaterThanOrEqual(5);
    for (const f of cas) {
      expect(f.metavar).toBe("CA");
      expect(f.help).toMatch(/directory.*ca\.crt/);
    }
  });
});

describe("help and version", () => {
  it("--version prints the version; mintun help CMD is CMD --help; help pages are man-style", async () => {
    const v = await run(["--version"]);
    expect(v).toMatchObject({ code: 0, stderr: "" });
    expect(v.stdout).toMatch(/^mintun 9\.8\.7 \(node v\d+/);
    for (const c of COMMANDS) {
      const a = await run(["help", ...c.path]);
      const b = await run([...c.path, "--help"]);
      expect(a.code, c.path.join(" ")).toBe(0);
      expect(a.stdout).toBe(b.stdout);
      expect(a.stdout).toBe(commandHelp(c));
      for (const section of ["NAME", "OPTIONS", "EXIT STATUS"])
        expect(a.stdout, `${c.path.join(" ")} ${section}`).toMatch(new RegExp(`^${section}$`, "m"));
      for (const [code] of EXIT_CODES) expect(a.stdout).toMatch(new RegExp(`^  ${code} +\\S`, "m"));
    }
    const top = await run(["help"]);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^EXIT STATUS$/m);
    expect(top.stdout).toMatch(/^  70 +internal error/m);
    expect(top.stdout).toContain("--version");
    const group = await run(["help", "ca"]);
    expect(group.stdout).toContain("ca sign-host");
    expect(group.stdout).not.toContain("keygen");
  });

  it("help of a misspelt command suggests the right one; status help names MINTUN_SOCKET", async () => {
    const r = await run(["help", "stauts"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("did you mean 'status'?");
    const flag = await run(["status", "--jsno"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("did you mean --json?");
    const h = await run(["help", "status"]);
    expect(h.stdout).toMatch(/^ENVIRONMENT\n  MINTUN_SOCKET/m);
  });
});

describe("flags from the environment", () => {
  const SPEC = [
    { name: "socket", type: "string", default: "/d.sock", env: "MINTUN_SOCKET", help: "" },
  ] as const;
  it("MINTUN_SOCKET is used when --socket is not given; the flag wins; empty is unset", () => {
    expect(parseArgs([], SPEC, [], {}).string("socket")).toBe("/d.sock");
    expect(parseArgs([], SPEC, [], { MINTUN_SOCKET: "/e.sock" }).string("socket")).toBe("/e.sock");
    expect(parseArgs(["--socket", "/f.sock"], SPEC, [], { MINTUN_SOCKET: "/e.sock" }).string("socket")).toBe(
      "/f.sock",
    );
    expect(parseArgs([], SPEC, [], { MINTUN_SOCKET: "" }).string("socket")).toBe("/d.sock");
  });

  it("a daemon command reaches the socket named by MINTUN_SOCKET", async () => {
    const sock = path.join(dir, "nothing-here.sock");
    for (const argv of [["status"], ["peers"], ["reload"], ["resolve", "web"], ["whois", "10.0.0.1"]]) {
      const r = await run(argv, { env: { MINTUN_SOCKET: sock } });
      expect(r.code, argv.join(" ")).toBe(1);
      expect(r.stderr).toBe(`mintun: mintund is not running (no API socket at ${sock})\n`);
    }
  });
});

describe("--ca, --out and '-'", () => {
  it("sign-host takes --ca as the CA directory or its ca.crt; anything else is a typed error, not ENOTDIR", async () => {
    for (const [ca, out] of [
      ["ca", "a.crt"],
      ["ca/ca.crt", "b.crt"],
    ]) {
      const r = await run([
        "ca",
        "sign-host",
        "--ca",
        ca!,
        "--name",
        "web",
        "--key-pub",
        "k/web.pub",
        "--out",
        out!,
      ]);
      expect(r, ca).toMatchObject({ code: 0, stderr: "" });
    }
    const bad = await run([
      "ca",
      "sign-host",
      "--ca",
      "ca/ca.crt/x",
      "--name",
      "web",
      "--key-pub",
      "k/web.pub",
      "--out",
      "c.crt",
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      "mintun: --ca 'ca/ca.crt/x' does not exist (expected a CA directory with ca.crt, or a ca.crt file)\n",
    );
    const notCa = await run([
      "ca",
      "sign-host",
      "--ca",
      "a.crt",
      "--name",
      "web",
      "--key-pub",
      "k/web.pub",
      "--out",
      "c.crt",
    ]);
    expect(notCa.code).toBe(1);
    expect(notCa.stderr).toContain("is a host cert, not a CA");
    for (const argv of [
      ["cert", "show", "a.crt", "--ca", "ca"],
      ["cert", "show", "a.crt", "--ca", "ca/ca.crt"],
    ]) {
      const r = await run(argv);
      expect(r.code, argv.join(" ")).toBe(0);
      expect(r.stdout).toMatch(/^verified: +ok/m);
    }
    const show = await run(["cert", "show", "a.crt", "--ca", "a.crt/ca.crt"]);
    expect(show.code).toBe(1);
    expect(show.stderr).not.toContain("ENOTDIR");
  });

  it("keygen and sign --out refuse a missing directory and create nothing", async () => {
    const k = await run(["keygen", "--out", "nodir/sub/x.key"]);
    expect(k.code).toBe(1);
    expect(k.stderr).toMatch(/directory '.*nodir\/sub' does not exist \(create it first/);
    expect(fs.existsSync(path.join(dir, "nodir"))).toBe(false);
    const s = await run([
      "ca",
      "sign-host",
      "--ca",
      "ca",
      "--name",
      "web",
      "--key-pub",
      "k/web.pub",
      "--out",
      "nodir/w.crt",
    ]);
    expect(s.code).toBe(1);
    expect(fs.existsSync(path.join(dir, "nodir"))).toBe(false);
    const file = await run(["keygen", "--out", "a.crt/x.key"]);
    expect(file.code).toBe(1);
    expect(file.stderr).toMatch(/'.*a\.crt' is not a directory/);
  });

  it("'-' reads stdin (cert show, pubkey --key, enrol) and writes stdout (sign --out)", async () => {
    const signed = await run([
      "ca",
      "sign-host",
      "--ca",
      "ca",
      "--name",
      "db",
      "--key-pub",
      "k/web.pub",
      "--ip4",
      "10.9.0.2",
      "--out",
      "-",
    ]);
    expect(signed.code).toBe(0);
    expect(signed.stdout).toMatch(
      /^-----BEGIN MINTUN HOST CERTIFICATE-----\n[\s\S]*-----END MINTUN HOST CERTIFICATE-----\n$/,
    );
    const shown = await run(["cert", "show", "-", "--ca", "ca", "--json"], stdin(signed.stdout));
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      kind: "host",
      name: "db",
      ip4: "10.9.0.2",
      verified: true,
    });
    const pub = await run(["pubkey", "--key", "-"], stdin(fs.readFileSync(path.join(dir, "k/web.key"))));
    expect(pub.stdout.trim()).toBe(readCert(path.join(dir, "a.crt")).publicKey.toString("base64"));
    const bundle = await run([
      "ca",
      "sign-host",
      "--ca",
      "ca",
      "--name",
      "app",
      "--ip4",
      "10.9.0.3",
      "--bundle",
      "--out",
      "-",
    ]);
    expect(bundle.code).toBe(0);
    expect(bundle.stdout.match(/-----BEGIN /g)).toHaveLength(3);
    const enrolled = await run(["enrol", "-", "--dir", "etc", "--json"], stdin(bundle.stdout));
    expect(enrolled.code).toBe(0);
    expect(JSON.parse(enrolled.stdout)).toMatchObject({ name: "app", ip4: "10.9.0.3" });
    expect(fs.statSync(path.join(dir, "etc/host.key")).mode & 0o777).toBe(0o600);
    const tty = await run(["ca", "sign-host", "--ca", "ca", "--name", "app", "--bundle", "--out", "-"], {
      stdoutIsTty: true,
    });
    expect(tty.code).toBe(2);
    expect(tty.stdout).toBe("");
    expect(tty.stderr).toContain("not printed on a terminal");
    const junk = await run(["cert", "show", "-"], stdin("hello"));
    expect(junk).toMatchObject({ code: 1, stderr: "mintun: '<stdin>' is not a mintun certificate file\n" });
  });

  it("--json on the file commands prints one parsable object", async () => {
    fs.mkdirSync(path.join(dir, "j"));
    const kg = await run(["keygen", "--out", "j/x.key", "--json"]);
    const kj = JSON.parse(kg.stdout);
    expect(kj.secretKeyFile).toBe(path.join(dir, "j/x.key"));
    const pk = await run(["pubkey", "--key", "j/x.key", "--json"]);
    expect(JSON.parse(pk.stdout)).toEqual({ publicKey: kj.publicKey, fingerprint: kj.fingerprint });
    const ci = await run(["ca", "init", "--dir", "j/ca", "--json"]);
    expect(JSON.parse(ci.stdout)).toMatchObject({
      name: "mintun-ca",
      keyFile: path.join(dir, "j/ca/ca.key"),
    });
    const su = await run([
      "ca",
      "sign-user",
      "--ca",
      "j/ca",
      "--name",
      "ann",
      "--key",
      "j/x.key",
      "--out",
      "j/ann.crt",
      "--json",
    ]);
    const sj = JSON.parse(su.stdout);
    expect(sj).toMatchObject({
      kind: "user",
      name: "ann",
      fingerprint: kj.fingerprint,
      out: path.join(dir, "j/ann.crt"),
    });
    expect(sj.ca).toBe(fingerprint(readCert(path.join(dir, "j/ca/ca.crt")).publicKey));
    const both = await run([
      "ca",
      "sign-user",
      "--ca",
      "j/ca",
      "--name",
      "ann",
      "--key",
      "j/x.key",
      "--out",
      "-",
      "--json",
    ]);
    expect(both.code).toBe(2);
    const bad = path.join(dir, "bad.yaml");
    fs.writeFileSync(bad, "listen: nope\n");
    const cc = await run(["check-config", bad, "--json"]);
    expect(cc.code).toBe(1);
    expect(JSON.parse(cc.stdout)).toMatchObject({ ok: false, file: bad });
  });
});

describe("did you mean", () => {
  it("a swap of two neighbouring letters is one edit", () => {
    expect(typoDistance("jsno", "json")).toBe(1);
    expect(typoDistance("stauts", "status")).toBe(1);
    expect(typoDistance("json", "json")).toBe(0);
    expect(typoDistance("abc", "")).toBe(3);
    expect(typoDistance("ca", "abc")).toBe(3);
    expect(suggest("jsno", ["socket", "json"])).toBe("json");
    expect(suggest("zzzz", ["socket", "json"])).toBe(null);
  });
});

describe("ping --json", () => {
  it("reads iputils ping's summary lines", () => {
    const out =
      "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n\n--- 10.0.0.2 ping statistics ---\n" +
      "3 packets transmitted, 2 received, 33.3333% packet loss, time 401ms\n" +
      "rtt min/avg/max/mdev = 0.051/0.060/0.070/0.009 ms\n";
    expect(parsePingSummary(out)).toEqual({
      transmitted: 3,
      received: 2,
      rttMs: { min: 0.051, avg: 0.06, max: 0.07, mdev: 0.009 },
    });
    expect(parsePingSummary("ping: connect: Network is unreachable\n")).toEqual({
      transmitted: null,
      received: null,
      rttMs: null,
    });
  });
});

describe("bin/mintun as a process (bundled as npm run build does)", () => {
  it("--version, help, MINTUN_SOCKET, enrol from a pipe, exit codes", { timeout: 60_000 }, () => {
    const root = path.resolve(".tmp", `habits-${process.pid}`);
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(path.join(root, "bin"), { recursive: true });
    try {
      bundleCli(path.join(root, "dist/cli-bundle"));
      fs.copyFileSync("package.json", path.join(root, "package.json"));
      fs.copyFileSync("bin/mintun", path.join(root, "bin/mintun"));
      const env = { ...process.env };
      delete env.MINTUN_SOCKET;
      const mintun = (args: string[], input?: string, extraEnv: Record<string, string> = {}) =>
        spawnSync(process.execPath, [path.join(root, "bin/mintun"), ...args], {
          encoding: "utf8",
          cwd: root,
          input,
          env: { ...env, ...extraEnv },
          timeout: 20_000,
        });
      const pj = JSON.parse(fs.readFileSync("package.json", "utf8")) as { version: string };
      const v = mintun(["--version"]);
      expect(v.status).toBe(0);
      expect(v.stdout).toBe(`mintun ${pj.version} (node ${process.version})\n`);
      const h = mintun(["help", "enrol"]);
      expect(h.status).toBe(0);
      expect(h.stdout).toMatch(/^usage: mintun enrol /);
      expect(h.stdout).toMatch(/^EXIT STATUS$/m);
      const sock = path.join(root, "no.sock");
      const st = mintun(["status"], undefined, { MINTUN_SOCKET: sock });
      expect(st.status).toBe(1);
      expect(st.stderr).toBe(`mintun: mintund is not running (no API socket at ${sock})\n`);
      // run as a program (bin/mintun's sh line): the CommonJS bundle starts without node's
      // ESM loader, from V8's code cache made at build time, and a status call loads no npm
      // package (docs/PERFORMANCE.md "CLI start")
      const hook = path.join(root, "loaded.cjs");
      fs.writeFileSync(
        hook,
        'process.on("exit", () => process.stderr.write("LOADED " + JSON.stringify({ ' +
          'esm: process.moduleLoadList.filter((m) => m.includes("esm/loader")), ' +
          'files: Object.keys(require.cache), cache: globalThis.__mintunCodeCache }) + "\\n"));',
      );
      fs.chmodSync(path.join(root, "bin/mintun"), 0o755);
      const direct = () => {
        const r = spawnSync(path.join(root, "bin/mintun"), ["status"], {
          encoding: "utf8",
          cwd: root,
          // node would read (here: fail to read) this CA bundle at start; the CLI drops it
          env: {
            ...env,
            MINTUN_SOCKET: sock,
            NODE_OPTIONS: `--require ${hook}`,
            NODE_EXTRA_CA_CERTS: path.join(root, "no-such-ca.pem"),
          },
          timeout: 20_000,
        });
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`mintun: mintund is not running (no API socket at ${sock})\n`);
        expect(r.stderr).not.toMatch(/extra certs/);
        return JSON.parse(/^LOADED (.*)$/m.exec(r.stderr)![1]!) as {
          esm: string[];
          files: string[];
          cache: string;
        };
      };
      const loaded = direct();
      expect(loaded.esm).toEqual([]);
      expect(loaded.files).toEqual([hook, path.join(root, "dist/cli-bundle/mintun.cjs")]);
      expect(loaded.cache).toBe("used");
      // a cache that does not fit (another node, a damaged file) is ignored: compiled instead
      const cacheFile = path.join(root, "dist/cli-bundle/mintun-main.cjs.cache");
      const good = fs.readFileSync(cacheFile);
      fs.writeFileSync(cacheFile, Buffer.alloc(good.length, 7));
      expect(direct().cache).toBe("rejected");
      fs.rmSync(cacheFile);
      expect(direct().cache).toBe("none");
      expect(mintun(["ca", "init", "--dir", "ca"]).status).toBe(0);
      const b = mintun([
        "ca",
        "sign-host",
        "--ca",
        "ca/ca.crt",
        "--name",
        "web",
        "--ip4",
        "10.1.0.1",
        "--bundle",
        "--out",
        "-",
      ]);
      expect(b.status).toBe(0);
      const e = mintun(["enrol", "-", "--dir", "etc"], b.stdout);
      expect(e.stderr).toBe("");
      expect(e.status).toBe(0);
      expect(readCert(path.join(root, "etc/host.crt")).name).toBe("web");
      const kg = mintun(["keygen", "--out", "missing/a.key"]);
      expect(kg.status).toBe(1);
      expect(fs.existsSync(path.join(root, "missing"))).toBe(false);
      expect(mintun(["stauts"]).stderr).toContain("did you mean 'status'?");
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
