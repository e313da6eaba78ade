import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
// @ts-expect-error: a .mjs build script without types
import { bundleCli } from "../../scripts/bundle-cli.mjs";
import { runCli, type Io } from "../../src/cli/cli.js";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { readCert, readSecretKey, writeSecretKey } from "../../src/store/keyfile.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { CertError } from "../../src/errors.js";
import { fingerprint, verifyCert, type CaCert } from "../../src/wire/cert.js";

let dir: string;
const NOW_MS = Date.UTC(2025, 0, 1);

async function run(argv: string[], now = NOW_MS) {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    now: () => now,
    cwd: dir,
  };
  const code = await runCli(argv, io, COMMANDS);
  return { code, stdout, stderr };
}

const mode = (f: string) => fs.statSync(path.join(dir, f)).mode & 0o777;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-cli-"));
  fs.mkdirSync(path.join(dir, "keys"), { mode: 0o700 }); // keygen does not create directories
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("mintun key and certificate commands", () => {
  it("ca init writes ca.key 0600 and ca.crt, refuses to overwrite without --force", async () => {
    const r = await run(["ca", "init", "--dir", "ca", "--name", "acme-ca"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(mode("ca/ca.key")).toBe(0o600);
    expect(fs.statSync(path.join(dir, "ca")).mode & 0o777).toBe(0o700);
    const ca = readCert(path.join(dir, "ca/ca.crt"));
    expect(ca.kind).toBe("ca");
    expect(ca.name).toBe("acme-ca");
    expect(r.stdout).toContain(fingerprint(ca.publicKey));
    const again = await run(["ca", "init", "--dir=ca"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^mintun: .*already exists/);
    expect(again.stderr).not.toMatch(/at .*\.ts/); // no stack trace
  });

  it("keygen writes a 0600 secret key and never prints it", async () => {
    const r = await run(["keygen", "--out", "keys/web1.key"]);
    expect(r.code).toBe(0);
    expect(mode("keys/web1.key")).toBe(0o600);
    const sk = readSecretKey(path.join(dir, "keys/web1.key"));
    const pkB64 = sk.subarray(32).toString("base64");
    expect(r.stdout).toContain(pkB64);
    expect(r.stdout).toContain(fingerprint(sk.subarray(32)));
    const out = r.stdout + r.stderr;
    expect(out).not.toContain(sk.toString("base64").slice(0, 40));
    expect(out).not.toContain(sk.subarray(0, 32).toString("base64").slice(0, 20));
    expect(out).not.toContain(sk.subarray(0, 32).toString("hex").slice(0, 20));
    expect(fs.readFileSync(path.join(dir, "keys/web1.pub"), "utf8")).toContain(pkB64);
    const p = await run(["pubkey", "--key", "keys/web1.key"]);
    expect(p).toEqual({ code: 0, stdout: `${pkB64}\n`, stderr: "" });
    expect((await run(["keygen", "--out", "keys/web1.key"])).code).toBe(1);
  });

  it("sign-host from a .pub, a secret key file, and base64; cert show", async () => {
    const r = await run([
      "ca",
      "sign-host",
      "--ca",
      "ca",
      "--name",
      "web1",
      "--key-pub",
      "keys/web1.pub",
      "--ip4",
      "10.77.0.2",
      "--ip6",
      "FD77::2",
      "--groups",
      "web,prod",
      "--subnets",
      "192.168.50.0/24",
      "--out",
      "web1.crt",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const cert = readCert(path.join(dir, "web1.crt"));
    const ca = readCert(path.join(dir, "ca/ca.crt")) as CaCert;
    expect(cert).toMatchObject({ kind: "host", name: "web1", ip4: "10.77.0.2", ip6: "fd77::2" });
    expect(cert.groups).toEqual(["web", "prod"]);
    expect(verifyCert(cert, ca, NOW_MS / 1000)).toEqual({ ok: true });
    expect(cert.notAfter - NOW_MS / 1000).toBe(365 * 86400);
    const sk = readSecretKey(path.join(dir, "keys/web1.key"));
    expect(cert.publicKey.equals(sk.subarray(32))).toBe(true);

    const viaKey = await run([
      "ca",
      "sign-host",
      "--ca",
      "ca",
      "--name",
      "web1",
      "--key",
      "keys/web1.key",
      "--out",
      "b.crt",
    ]);
    expect(viaKey.code).toBe(0);
    const viaSecretAsPub = await run([
      "ca",
      "sign-host",
      "--ca",
      "ca",
      "--name",
      "web1",
      "--key-pub",
      "keys/web1.key",
      "--out",
      "c.crt",
    ]);
    expect(viaSecretAsPub.code).toBe(0);
    const b64 = sk.subarray(32).toString("base64");
    const viaB64 = await run([
      "ca",
      "sign-user",
      "--ca",
      "ca",
      "--name",
      "alice",
      "--key-pub",
      b64,
      "--groups",
      "dev",
      "--days",
      "30",
      "--out",
      "alice.crt",
    ]);
    expect(viaB64.code).toBe(0);
    expect(readCert(path.join(dir, "alice.crt"))).toMatchObject({
      kind: "user",
      name: "alice",
      groups: ["dev"],
    });

    const show = await run(["cert", "show", "web1.crt", "--ca", "ca/ca.crt"]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/kind: +host/);
    expect(show.stdout).toMatch(/name: +web1/);
    expect(show.stdout).toContain("192.168.50.0/24");
    expect(show.stdout).toContain("10.77.0.2");
    expect(show.stdout).toContain(fingerprint(cert.publicKey));
    expect(show.stdout).toContain(`issuer:      ${fingerprint(ca.publicKey)}`);
    expect(show.stdout).toMatch(/not before: +2024-12-31T23:55:00.000Z/);
    expect(show.stdout).toMatch(/not after: +2026-01-01T00:00:00.000Z/);
    expect(show.stdout).toMatch(/verified: +ok/);
    expect(show.stdout).not.toContain("EXPIRED");

    const later = await run(
      ["cert", "show", "web1.crt", "--ca", "ca/ca.crt", "--json"],
      NOW_MS + 400 * 86400_000,
    );
    expect(later.code).toBe(1);
    const j = JSON.parse(later.stdout);
    expect(j).toMatchObject({
      kind: "host",
      name: "web1",
      expired: true,
      verified: false,
      verifyError: "expired",
    });
    const expiredText = await run(["cert", "show", "web1.crt"], NOW_MS + 400 * 86400_000);
    expect(expiredText.stdout).toContain("EXPIRED");
  });

  it("usage errors exit 2 with a pointer to --help", async () => {
    const unknown = await run(["ca", "sign-host", "--bogus", "1"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown flag --bogus");
    expect(unknown.stderr).toContain("see 'mintun ca sign-host --help'");
    const missing = await run(["keygen", "--out"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--out needs a value");
    expect((await run(["keygen"])).code).toBe(2);
    expect((await run(["ca", "init", "--dir", "x", "--days", "ten"])).code).toBe(2);
    const typo = await run(["ca", "int"]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("did you mean 'init'");
    const badIp = await run([
      "ca",
      "sign-host",
      "--ca",
      "ca",
      "--name",
      "x",
      "--key-pub",
      "keys/web1.pub",
      "--ip4",
      "10.1",
      "--out",
      "x.crt",
    ]);
    expect(badIp.code).toBe(2);
    expect(badIp.stderr).toContain("--ip4");
    const badKey = await run([
      "ca",
      "sign-user",
      "--ca",
      "ca",
      "--name",
      "x",
      "--key-pub",
      "nothing",
      "--out",
      "x.crt",
    ]);
    expect(badKey.code).toBe(2);
    expect((await run([])).code).toBe(2);
  });

  it("--help on every command and group", async () => {
    for (const argv of [
      ["--help"],
      ["ca", "--help"],
      ["ca", "init", "--help"],
      ["cert", "show", "-h"],
      ["keygen", "--help"],
    ]) {
      const r = await run(argv);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^usage: mintun/);
    }
    for (const c of COMMANDS) {
      const r = await run([...c.path, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`usage: mintun ${c.path.join(" ")}`);
    }
  });

  it("refuses group/other-readable secret keys with a clear message", async () => {
    const f = path.join(dir, "keys/web1.key");
    fs.chmodSync(f, 0o640);
    const r = await run(["pubkey", "--key", "keys/web1.key"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("too open");
    expect(r.stderr).toContain("chmod 600");
    expect(() => readSecretKey(f)).toThrow(CertError);
    fs.chmodSync(f, 0o600);
  });
});

describe("keyfile", () => {
  it("writeSecretKey: O_EXCL semantics, force, malformed files", () => {
    const f = path.join(dir, "kf/a.key");
    const kp = signKeyPair();
    writeSecretKey(f, kp.secretKey);
    expect(() => writeSecretKey(f, kp.secretKey)).toThrow(/already exists/);
    writeSecretKey(f, signKeyPair().secretKey, { force: true });
    expect(readSecretKey(f).equals(kp.secretKey)).toBe(false);
    expect(fs.readdirSync(path.dirname(f))).toEqual(["a.key"]); // no temp files left
    const bad = path.join(dir, "kf/bad.key");
    fs.writeFileSync(
      bad,
      "-----BEGIN MINTUN ED25519 SECRET KEY-----\nAAAA\n-----END MINTUN ED25519 SECRET KEY-----\n",
      { mode: 0o600 },
    );
    expect(() => readSecretKey(bad)).toThrow(/not a mintun secret key/);
    try {
      readSecretKey(path.join(dir, "kf/none.key"));
      expect.unreachable();
    } catch (e) {
      expect((e as CertError).code).toBe("ENOENT");
      expect((e as CertError).message).toContain("none.key");
    }
    // a key whose public half does not match its seed
    const corrupt = Buffer.from(kp.secretKey);
    corrupt[40]! ^= 1;
    const cf = path.join(dir, "kf/corrupt.key");
    writeSecretKey(cf, corrupt);
    expect(() => readSecretKey(cf)).toThrow(/corrupt/);
  });
});

describe("bin/mintun as a process", () => {
  // Bundles only the CLI's import graph (src/cli/main.ts, as npm run build:bundle does) into
  // .tmp/, next to a copy of the bin shim and package.json, so this test does not depend on
  // the rest of the tree building (esbuild: well under a second, where tsc took 8 s of CPU).
  it("runs, exits 2 on bad usage, 1 on errors, without stack traces", { timeout: 60_000 }, () => {
    const root = path.resolve(".tmp", `cli-${process.pid}`);
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(path.join(root, "bin"), { recursive: true });
    try {
      bundleCli(path.join(root, "dist/cli-bundle"));
      fs.copyFileSync("package.json", path.join(root, "package.json"));
      fs.copyFileSync("bin/mintun", path.join(root, "bin/mintun"));
      const mintun = (...args: string[]) =>
        spawnSync(process.execPath, [path.join(root, "bin/mintun"), ...args], {
          encoding: "utf8",
          cwd: root,
        });
      const usage = mintun("keygen", "--nope");
      expect(usage.status).toBe(2);
      expect(usage.stderr).toContain("unknown flag --nope");
      expect(usage.stderr).toContain("see 'mintun keygen --help'");
      fs.mkdirSync(path.join(root, "k"));
      const kg = mintun("keygen", "--out", "k/a.key");
      expect(kg.status).toBe(0);
      expect(fs.statSync(path.join(root, "k/a.key")).mode & 0o777).toBe(0o600);
      const sk = readSecretKey(path.join(root, "k/a.key"));
      expect(kg.stdout).toContain(sk.subarray(32).toString("base64"));
      expect(kg.stdout).not.toContain(sk.toString("base64").slice(0, 40));
      const fail = mintun("pubkey", "--key", "missing.key");
      expect(fail.status).toBe(1);
      expect(fail.stderr).toMatch(/^mintun: secret key file '.*missing.key' does not exist\n$/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
