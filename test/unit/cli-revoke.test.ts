import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runCli, type Io } from "../../src/cli/cli.js";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { readCert, readRevocation, writeRevocation } from "../../src/store/keyfile.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { certDigest, RevocationIndex, signRevocation, verifyRevocation } from "../../src/wire/revocation.js";
import type { CaCert } from "../../src/wire/cert.js";

let dir: string;
const NOW_MS = Date.UTC(2026, 0, 1);
const NOW = NOW_MS / 1000;

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

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-revoke-"));
  expect((await run(["ca", "init", "--dir", "ca"])).code).toBe(0);
  expect((await run(["keygen", "--out", "web.key"])).code).toBe(0);
  expect((await run(["keygen", "--out", "alice.key"])).code).toBe(0);
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("sign-host / sign-user validity", () => {
  it("--seconds gives a certificate valid for exactly that long after now", async () => {
    const r = await run([
      "ca",
      "sign-host",
      "--ca",
      "ca",
      "--name",
      "web",
      "--key",
      "web.key",
      "--ip4",
      "10.77.0.2",
      "--seconds",
      "90",
      "--out",
      "web.crt",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const c = readCert(path.join(dir, "web.crt"));
    expect(c.notAfter).toBe(NOW + 90);
    const u = await run([
      "ca",
      "sign-user",
      "--ca",
      "ca",
      "--name",
      "alice",
      "--key",
      "alice.key",
      "--seconds=30",
      "--out",
      "alice.crt",
    ]);
    expect(u.code).toBe(0);
    expect(readCert(path.join(dir, "alice.crt")).notAfter).toBe(NOW + 30);
  });

  it("--days still works, defaults to 365, and refuses --days with --seconds", async () => {
    await run(["ca", "sign-user", "--ca", "ca", "--name", "bob", "--key", "alice.key", "--out", "bob.crt"]);
    expect(readCert(path.join(dir, "bob.crt")).notAfter).toBe(NOW + 365 * 86400);
    await run([
      "ca",
      "sign-user",
      "--ca",
      "ca",
      "--name",
      "bob",
      "--key",
      "alice.key",
      "--days",
      "2",
      "--out",
      "bob2.crt",
    ]);
    expect(readCert(path.join(dir, "bob2.crt")).notAfter).toBe(NOW + 2 * 86400);
    const both = await run([
      "ca",
      "sign-user",
      "--ca",
      "ca",
      "--name",
      "bob",
      "--key",
      "alice.key",
      "--days",
      "2",
      "--seconds",
      "60",
      "--out",
      "bob3.crt",
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/only one of --days and --seconds/);
    const tiny = await run([
      "ca",
      "sign-user",
      "--ca",
      "ca",
      "--name",
      "bob",
      "--key",
      "alice.key",
      "--seconds",
      "1",
      "--out",
      "bob4.crt",
    ]);
    expect(tiny.code).toBe(2);
  });
});

describe("mintun ca revoke", () => {
  it("creates the list, adds a host key and a user key, numbers only grow", async () => {
    const r1 = await run(["ca", "revoke", "--ca", "ca", "--host-cert", "web.crt", "--json"]);
    expect(r1.stderr).toBe("");
    expect(r1.code).toBe(0);
    const j1 = JSON.parse(r1.stdout);
    expect(j1.file).toBe(path.join(dir, "ca", "revoked.crl"));
    expect(j1.added).toHaveLength(1);
    expect(j1.added[0].kind).toBe("host");
    const ca = readCert(path.join(dir, "ca/ca.crt")) as CaCert;
    const l1 = readRevocation(j1.file);
    expect(verifyRevocation(l1, ca)).toEqual({ ok: true });
    const web = readCert(path.join(dir, "web.crt"));
    const alice = readCert(path.join(dir, "alice.crt"));
    expect(new RevocationIndex(l1).revoked(web)).toBe(true);
    expect(new RevocationIndex(l1).revoked(alice)).toBe(false);

    const r2 = await run(["ca", "revoke", "--ca", "ca", "--user-cert", "alice.crt"]);
    expect(r2.code).toBe(0);
    expect(r2.stdout).toMatch(/added: user [0-9a-f]{16}/);
    const l2 = readRevocation(j1.file);
    expect(l2.number).toBeGreaterThan(l1.number);
    expect(l2.entries).toHaveLength(2);
    const idx = new RevocationIndex(l2);
    expect(idx.revoked(web)).toBe(true);
    expect(idx.revoked(alice)).toBe(true);

    // the same entry again: nothing new, but re-issued with a higher number
    const r3 = await run(["ca", "revoke", "--ca", "ca", "--user-cert", "alice.crt", "--json"]);
    expect(JSON.parse(r3.stdout).added).toEqual([]);
    expect(readRevocation(j1.file).number).toBeGreaterThan(l2.number);
  });

  it("--only-cert revokes one certificate, not its key; --key takes hex with --kind", async () => {
    await run([
      "ca",
      "sign-host",
      "--ca",
      "ca",
      "--name",
      "db",
      "--key",
      "alice.key",
      "--ip4",
      "10.77.0.9",
      "--out",
      "db1.crt",
    ]);
    await run([
      "ca",
      "sign-host",
      "--ca",
      "ca",
      "--name",
      "db",
      "--key",
      "alice.key",
      "--ip4",
      "10.77.0.9",
      "--days",
      "3",
      "--out",
      "db2.crt",
    ]);
    const out = path.join(dir, "other.crl");
    const r = await run([
      "ca",
      "revoke",
      "--ca",
      "ca",
      "--host-cert",
      "db1.crt",
      "--only-cert",
      "--out",
      out,
      "--json",
    ]);
    expect(r.code).toBe(0);
    const db1 = readCert(path.join(dir, "db1.crt"));
    const db2 = readCert(path.join(dir, "db2.crt"));
    const l = readRevocation(out);
    expect(l.entries).toEqual([{ kind: "cert", value: certDigest(db1) }]);
    expect(new RevocationIndex(l).revoked(db1)).toBe(true);
    expect(new RevocationIndex(l).revoked(db2)).toBe(false);
    const hex = db1.publicKey.toString("hex");
    const k = await run([
      "ca",
      "revoke",
      "--ca",
      "ca",
      "--key",
      hex,
      "--kind",
      "user",
      "--out",
      out,
      "--json",
    ]);
    expect(JSON.parse(k.stdout).added[0]).toMatchObject({ kind: "user", value: hex });
  });

  it("refuses a list of another CA, a certificate of another CA, and bad flag combinations", async () => {
    const other = signKeyPair();
    const foreign = signRevocation(
      { number: 1, issued: NOW, nextUpdate: NOW + 10, issuer: other.publicKey, entries: [] },
      other.secretKey,
    );
    const f = path.join(dir, "foreign.crl");
    writeRevocation(f, foreign);
    const r = await run(["ca", "revoke", "--ca", "ca", "--out", f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not this CA's revocation list: wrong-issuer/);
    expect((await run(["ca", "init", "--dir", "ca2"])).code).toBe(0);
    const x = await run(["ca", "revoke", "--ca", "ca2", "--host-cert", "web.crt"]);
    expect(x.code).toBe(1);
    expect(x.stderr).toMatch(/not issued by this CA/);
    expect(
      (await run(["ca", "revoke", "--ca", "ca", "--host-cert", "web.crt", "--user-cert", "alice.crt"])).code,
    ).toBe(2);
    expect((await run(["ca", "revoke", "--ca", "ca", "--user-cert", "web.crt"])).code).toBe(2);
    expect((await run(["ca", "revoke", "--ca", "ca", "--key", "zz"])).code).toBe(2);
    expect((await run(["ca", "revoke", "--ca", "ca", "--key", "web.key"])).code).toBe(2); // a secret key
    const help = await run(["ca", "revoke", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--host-cert/);
  });
});
