/** `mintun ca sign-host --bundle` and `mintun enrol`: one file, one command per host. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runCli, type Io } from "../../src/cli/cli.js";
import { COMMANDS } from "../../src/cli/commands/index.js";
import {
  armor,
  dearmor,
  publicKeyOf,
  readCert,
  readSecretKey,
  LABEL_SECRET_KEY,
} from "../../src/store/keyfile.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { verifyCert, type CaCert } from "../../src/wire/cert.js";

let dir: string;
const NOW_MS = Date.UTC(2025, 0, 1);

async function run(argv: string[]) {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    now: () => NOW_MS,
    cwd: dir,
  };
  const code = await runCli(argv, io, COMMANDS);
  return { code, stdout, stderr };
}
const p = (f: string) => path.join(dir, f);
const mode = (f: string) => fs.statSync(p(f)).mode & 0o777;
const SIGN = ["ca", "sign-host", "--ca", "ca", "--name", "web", "--ip4", "10.77.0.2", "--ip6", "fd77::2"];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-enrol-"));
  expect((await run(["ca", "init", "--dir", "ca", "--name", "acme-ca"])).code).toBe(0);
  expect((await run(["ca", "init", "--dir", "ca2", "--name", "other-ca"])).code).toBe(0);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("enrolment bundle", () => {
  it("sign-host --bundle writes one 0600 file; enrol installs key, cert and ca.crt that verify", async () => {
    const s = await run([...SIGN, "--bundle", "--out", "web.bundle"]);
    expect(s.stderr).toBe("");
    expect(s.code).toBe(0);
    expect(mode("web.bundle")).toBe(0o600);
    expect(s.stdout).toContain("mintun enrol web.bundle");
    const e = await run(["enrol", "web.bundle", "--dir", "web"]);
    expect(e.stderr).toBe("");
    expect(e.code).toBe(0);
    expect(mode("web/host.key")).toBe(0o600);
    const sk = readSecretKey(p("web/host.key"));
    const cert = readCert(p("web/host.crt"));
    const ca = readCert(p("web/ca.crt"));
    expect(publicKeyOf(sk).equals(cert.publicKey)).toBe(true);
    expect(ca.publicKey.equals(readCert(p("ca/ca.crt")).publicKey)).toBe(true);
    expect(verifyCert(cert, ca as CaCert, NOW_MS / 1000)).toEqual({ ok: true });
    expect(cert).toMatchObject({ kind: "host", name: "web", ip4: "10.77.0.2", ip6: "fd77::2" });
    for (const out of [s.stdout, e.stdout])
      expect(out).not.toContain(sk.subarray(0, 32).toString("base64").slice(0, 16));
    // a second enrol does not overwrite; --force does
    const again = await run(["enrol", "web.bundle", "--dir", "web"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^mintun: .*already exists/);
    expect((await run(["enrol", "web.bundle", "--dir", "web", "--force"])).code).toBe(0);
  });

  it("--bundle with --key-pub is a usage error (the bundle makes the key)", async () => {
    const r = await run([...SIGN, "--bundle", "--key-pub", "ca/ca.crt", "--out", "x.bundle"]);
    expect(r.code).toBe(2);
    expect(fs.existsSync(p("x.bundle"))).toBe(false);
  });

  it("refuses bad bundles with a typed error and writes nothing", async () => {
    expect((await run([...SIGN, "--bundle", "--out", "good.bundle"])).code).toBe(0);
    expect(
      (await run([...SIGN.map((a, i) => (i === 3 ? "ca2" : a)), "--bundle", "--out", "other.bundle"])).code,
    ).toBe(0);
    const good = fs.readFileSync(p("good.bundle"), "latin1");
    const other = fs.readFileSync(p("other.bundle"), "latin1");
    const blocks = (t: string) => t.match(/-----BEGIN [^-]+-----[\s\S]*?-----END [^-]+-----\n/g) ?? [];
    const [gk, gc, gca] = blocks(good);
    const [, , oca] = blocks(other);
    const kp = signKeyPair();
    // the bundle's own key with one seed byte flipped: public half (and cert) still match
    const corrupt = Buffer.from(dearmor(gk!)!.body);
    corrupt[0]! ^= 1;
    const cases: [string, string, RegExp][] = [
      ["truncated", good.slice(0, good.length - 40), /not a mintun enrolment bundle/],
      ["empty", "", /not a mintun enrolment bundle/],
      ["two blocks", `${gk}${gc}`, /expected 3 armored blocks/],
      ["order", `${gc}${gk}${gca}`, /first block is not a secret key/],
      ["foreign key", `${armor(LABEL_SECRET_KEY, kp.secretKey)}${gc}${gca}`, /does not belong/],
      ["other CA", `${gk}${gc}${oca}`, /does not verify: wrong-issuer/],
      ["corrupt key", `${armor(LABEL_SECRET_KEY, corrupt)}${gc}${gca}`, /secret key is corrupt/],
      ["ca twice", `${gk}${gca}${gca}`, /expected a host and a CA certificate/],
      [
        "bad base64",
        `${gk}${gc!.replace(/[A-Za-z0-9+/]{8}\n/, "!!!!!!!!\n")}${gca}`,
        /not a mintun|malformed/,
      ],
    ];
    for (const [name, text, re] of cases) {
      fs.writeFileSync(p(`bad-${name}.bundle`), text, { mode: 0o600 });
      const d = `bad-${name.replace(/ /g, "-")}`;
      const r = await run(["enrol", `bad-${name}.bundle`, "--dir", d]);
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toMatch(re);
      expect(r.stderr, name).not.toMatch(/at .*\.ts/);
      expect(fs.existsSync(p(d)), name).toBe(false);
    }
    fs.chmodSync(p("good.bundle"), 0o640);
    const loose = await run(["enrol", "good.bundle", "--dir", "loose"]);
    expect(loose.code).toBe(1);
    expect(loose.stderr).toMatch(/readable by others/);
    expect(fs.existsSync(p("loose"))).toBe(false);
  });
});
