import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runCli, type Io } from "../../src/cli/cli.js";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { userCommands } from "../../src/cli/commands/users.js";
import { readCert, readSecretKey } from "../../src/store/keyfile.js";
import { fingerprint, type CaCert } from "../../src/wire/cert.js";
import {
  UserStore,
  UserStoreError,
  lookupOsUser,
  parsePasswd,
  readUserFile,
  usersDir,
} from "../../src/store/users.js";

const NOW_MS = Date.UTC(2025, 0, 1);
let dir: string;
let uid = 0; // what the user commands see as process.getuid()

const PASSWD = [
  "root:x:0:0:root:/root:/bin/bash",
  "# a comment",
  "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash",
  "bob:x:1001:1001::/home/bob:/bin/sh",
  "broken line",
  "+nis",
  "alice:x:2000:2000:second alice is ignored:/:/bin/false",
  "",
].join("\n");

function commands() {
  return [
    ...COMMANDS.filter((c) => c.path[0] !== "user"),
    ...userCommands({ getuid: () => uid, passwdFile: path.join(dir, "passwd") }),
  ];
}

async function run(argv: string[], now = NOW_MS) {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    now: () => now,
    cwd: dir,
  };
  const code = await runCli(argv, io, commands());
  return { code, stdout, stderr };
}

const mode = (f: string) => fs.statSync(path.join(dir, f)).mode & 0o777;
const STATE = ["--state", "state"];

async function ok(argv: string[]) {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} -> ${r.code}: ${r.stderr}`);
  return r;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-users-"));
  fs.mkdirSync(path.join(dir, "keys"), { mode: 0o700 }); // keygen does not create directories
  fs.writeFileSync(path.join(dir, "passwd"), PASSWD);
  await ok(["ca", "init", "--dir", "ca", "--name", "acme-ca"]);
  await ok(["ca", "init", "--dir", "ca2", "--name", "other-ca"]);
  for (const k of ["alice", "bob", "web"]) await ok(["keygen", "--out", `keys/${k}.key`]);
  const sign = (kind: string, ca: string, name: string, key: string, out: string, extra: string[] = []) =>
    ok([
      `ca`,
      `sign-${kind}`,
      "--ca",
      ca,
      "--name",
      name,
      "--key",
      `keys/${key}.key`,
      "--out",
      out,
      ...extra,
    ]);
  await sign("user", "ca", "alice", "alice", "alice.crt", ["--groups", "dev,ops", "--days", "30"]);
  await sign("user", "ca", "bob", "bob", "bob.crt");
  await sign("user", "ca2", "alice", "alice", "alice-other-ca.crt");
  await sign("host", "ca", "web", "web", "web.crt");
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("mintun user add / list / remove", () => {
  it("add writes STATE/users/<uid>.user 0600 in a 0700 directory and never prints the key", async () => {
    const r = await run([
      "user",
      "add",
      "alice",
      "--key",
      "keys/alice.key",
      "--cert",
      "alice.crt",
      "--ca",
      "ca/ca.crt",
      ...STATE,
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("OS user alice (uid 1000) now connects as user 'alice' (groups dev, ops)");
    expect(r.stdout).toContain("verified against CA");
    expect(mode("state/users")).toBe(0o700);
    expect(mode("state/users/1000.user")).toBe(0o600);
    const sk = readSecretKey(path.join(dir, "keys/alice.key"));
    expect(r.stdout).not.toContain(sk.toString("base64").slice(0, 40));
    const id = readUserFile(path.join(dir, "state/users/1000.user"));
    expect(id).toMatchObject({ uid: 1000, osUser: "alice" });
    expect(id.cert.name).toBe("alice");
    expect(id.secretKey.equals(sk)).toBe(true);
    expect(fs.readdirSync(path.join(dir, "state/users"))).toEqual(["1000.user"]); // no temp files
  });

  it("refuses to replace without --force; --force replaces", async () => {
    const again = await run([
      "user",
      "add",
      "alice",
      "--key",
      "keys/alice.key",
      "--cert",
      "alice.crt",
      ...STATE,
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already has an identity .*--force/);
    const forced = await run([
      "user",
      "add",
      "alice",
      "--key",
      "keys/alice.key",
      "--cert",
      "alice.crt",
      "--force",
      ...STATE,
    ]);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain("not checked against a CA");
    expect(mode("state/users/1000.user")).toBe(0o600);
  });

  it("refuses a key that does not belong to the certificate", async () => {
    const r = await run(["user", "add", "bob", "--key", "keys/alice.key", "--cert", "bob.crt", ...STATE]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^mintun: 'keys\/alice.key' does not belong to 'bob.crt'/);
    expect(fs.existsSync(path.join(dir, "state/users/1001.user"))).toBe(false);
  });

  it("refuses a non-user certificate", async () => {
    const host = await run(["user", "add", "bob", "--key", "keys/web.key", "--cert", "web.crt", ...STATE]);
    expect(host.code).toBe(1);
    expect(host.stderr).toContain("'web.crt' is a host certificate, not a user certificate");
    const ca = await run(["user", "add", "bob", "--key", "ca/ca.key", "--cert", "ca/ca.crt", ...STATE]);
    expect(ca.code).toBe(1);
    expect(ca.stderr).toContain("is a ca certificate, not a user certificate");
  });

  it("refuses a certificate of another CA, and expired certificates", async () => {
    const r = await run([
      "user",
      "add",
      "bob",
      "--key",
      "keys/alice.key",
      "--cert",
      "alice-other-ca.crt",
      "--ca",
      "ca/ca.crt",
      ...STATE,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("does not verify against CA 'ca/ca.crt': wrong-issuer");
    const later = await run(
      ["user", "add", "bob", "--key", "keys/alice.key", "--cert", "alice.crt", ...STATE],
      NOW_MS + 60 * 86400_000,
    );
    expect(later.code).toBe(1);
    expect(later.stderr).toContain("expired");
  });

  it("refuses unknown OS users", async () => {
    const r = await run(["user", "add", "mallory", "--key", "keys/bob.key", "--cert", "bob.crt", ...STATE]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^mintun: unknown OS user 'mallory' \(not in .*passwd\)\n$/);
  });

  it("add and remove need root; list does not check the uid", async () => {
    uid = 1000;
    try {
      const add = await run(["user", "add", "bob", "--key", "keys/bob.key", "--cert", "bob.crt", ...STATE]);
      expect(add.code).toBe(1);
      expect(add.stderr).toMatch(/must run as root \(uid 0\), not uid 1000/);
      const rm = await run(["user", "remove", "alice", ...STATE]);
      expect(rm.code).toBe(1);
      expect(rm.stderr).toContain("must run as root");
      expect(fs.existsSync(path.join(dir, "state/users/1000.user"))).toBe(true);
      expect((await run(["user", "list", ...STATE])).code).toBe(0);
    } finally {
      uid = 0;
    }
  });

  it("list shows uid, OS user, cert name, groups, fingerprint, validity and EXPIRED", async () => {
    await ok(["user", "add", "1001", "--key", "keys/bob.key", "--cert", "bob.crt", ...STATE]); // by uid
    const alicePk = readSecretKey(path.join(dir, "keys/alice.key")).subarray(32);
    const r = await run(["user", "list", ...STATE]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^UID +OS USER +CERT NAME +GROUPS +FINGERPRINT +VALID UNTIL +STATUS$/);
    expect(lines[1]).toMatch(
      new RegExp(`^1000 +alice +alice +dev,ops +${fingerprint(alicePk)} +2025-01-31T00:00:00.000Z +ok$`),
    );
    expect(lines[2]).toMatch(/^1001 +bob +bob +- +[0-9a-f]{16} +2026-01-01T00:00:00.000Z +ok$/);

    const later = await run(
      ["user", "list", "--json", "--ca", "ca/ca.crt", ...STATE],
      NOW_MS + 60 * 86400_000,
    );
    expect(later.code).toBe(0);
    const j = JSON.parse(later.stdout);
    expect(j.errors).toEqual([]);
    expect(j.users).toHaveLength(2);
    expect(j.users[0]).toMatchObject({
      uid: 1000,
      osUser: "alice",
      name: "alice",
      groups: ["dev", "ops"],
      fingerprint: fingerprint(alicePk),
      notAfter: "2025-01-31T00:00:00.000Z",
      status: "expired",
      expired: true,
    });
    expect(j.users[1]).toMatchObject({ uid: 1001, status: "ok", expired: false });
    const text = await run(["user", "list", ...STATE], NOW_MS + 60 * 86400_000);
    expect(text.stdout).toMatch(/^1000 .* EXPIRED$/m);
    expect(JSON.stringify(j)).not.toContain(
      readSecretKey(path.join(dir, "keys/alice.key")).toString("base64"),
    );
  });

  it("list reports bad entries on stderr, names the file, exits 1, and still lists the others", async () => {
    const users = path.join(dir, "state/users");
    fs.copyFileSync(path.join(users, "1001.user"), path.join(users, "1002.user"));
    fs.chmodSync(path.join(users, "1002.user"), 0o600);
    fs.writeFileSync(path.join(users, "1003.user"), "os-user: x\nuid: 1003\n", { mode: 0o600 });
    fs.writeFileSync(path.join(users, "notes.txt"), "ignored\n");
    const r = await run(["user", "list", ...STATE]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^1000 /m);
    expect(r.stdout).toMatch(/^1001 /m);
    expect(r.stderr).toContain("1002.user: user entry");
    expect(r.stderr).toMatch(/'uid:' line \(1001\) does not match the file name \(uid 1002\)/);
    expect(r.stderr).toMatch(/1003\.user.*no user certificate/);
    expect(r.stderr).not.toContain("notes.txt");
    fs.rmSync(path.join(users, "1002.user"));
    fs.rmSync(path.join(users, "1003.user"));
    fs.rmSync(path.join(users, "notes.txt"));
  });

  it("remove deletes the entry; again is an error; a user gone from passwd is found by name", async () => {
    const r = await run(["user", "remove", "bob", ...STATE]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("removed the user identity of bob (uid 1001)");
    expect(fs.existsSync(path.join(dir, "state/users/1001.user"))).toBe(false);
    const again = await run(["user", "remove", "bob", ...STATE]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("has no user identity");
    // alice leaves /etc/passwd; her entry is still removable by the recorded name
    fs.writeFileSync(path.join(dir, "passwd"), PASSWD.replace(/^alice:.*\n/gm, ""));
    try {
      const gone = await run(["user", "remove", "alice", ...STATE]);
      expect(gone.code).toBe(0);
      expect(gone.stdout).toContain("(uid 1000)");
      expect(fs.readdirSync(path.join(dir, "state/users"))).toEqual([]);
    } finally {
      fs.writeFileSync(path.join(dir, "passwd"), PASSWD);
    }
    const empty = await run(["user", "list", ...STATE]);
    expect(empty).toMatchObject({ code: 0, stderr: "" });
    expect(empty.stdout).toContain("no user identities in");
  });

  it("usage: missing flags, --state with --config, help; the real table has the commands", async () => {
    expect((await run(["user", "add", "alice", ...STATE])).code).toBe(2);
    expect((await run(["user", "add", "--key", "k", "--cert", "c"])).code).toBe(2);
    const both = await run(["user", "list", "--state", "s", "--config", "c"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("only one of --state and --config");
    const help = await runCli(
      ["user", "--help"],
      { stdout: () => {}, stderr: () => {}, now: () => NOW_MS, cwd: dir },
      COMMANDS,
    );
    expect(help).toBe(0);
    for (const w of ["add", "remove", "list"])
      expect(COMMANDS.some((c) => c.path.join(" ") === `user ${w}`)).toBe(true);
  });

  it("--config takes the state directory from a mintund config", async () => {
    fs.writeFileSync(
      path.join(dir, "mintund.yaml"),
      "ca: ca/ca.crt\nhost: { key: keys/web.key, cert: web.crt }\nstate: cfgstate\n",
    );
    await ok([
      "user",
      "add",
      "bob",
      "--key",
      "keys/bob.key",
      "--cert",
      "bob.crt",
      "--config",
      "mintund.yaml",
    ]);
    expect(mode("cfgstate/users/1001.user")).toBe(0o600);
    const l = await run(["user", "list", "--json", "--config", "mintund.yaml"]);
    expect(JSON.parse(l.stdout).users.map((u: { osUser: string }) => u.osUser)).toEqual(["bob"]);
  });
});

describe("UserStore", () => {
  it("loads entries by uid, skips and reports bad ones with their file", async () => {
    const state = path.join(dir, "store1");
    await ok(["user", "add", "alice", "--key", "keys/alice.key", "--cert", "alice.crt", "--state", "store1"]);
    await ok(["user", "add", "bob", "--key", "keys/bob.key", "--cert", "bob.crt", "--state", "store1"]);
    const users = usersDir(state);
    // too open
    fs.writeFileSync(
      path.join(users, "7.user"),
      fs.readFileSync(path.join(users, "1001.user"), "utf8").replace("uid: 1001", "uid: 7"),
    );
    fs.chmodSync(path.join(users, "7.user"), 0o644);
    // key of another user under bob's certificate
    const bobText = fs.readFileSync(path.join(users, "1001.user"), "utf8").replace("uid: 1001", "uid: 8");
    const aliceText = fs.readFileSync(path.join(users, "1000.user"), "utf8");
    const keyOf = (t: string) => t.slice(t.indexOf("-----BEGIN MINTUN ED25519 SECRET KEY-----"));
    fs.writeFileSync(path.join(users, "8.user"), bobText.replace(keyOf(bobText), keyOf(aliceText)), {
      mode: 0o600,
    });
    // a symlink is refused
    fs.symlinkSync(path.join(users, "1000.user"), path.join(users, "9.user"));

    const store = UserStore.load(users);
    expect(store.size).toBe(2);
    expect(store.lookupByUid(1000)?.cert.name).toBe("alice");
    expect(store.lookupByUid(1001)?.osUser).toBe("bob");
    expect(store.lookupByUid(7)).toBeUndefined();
    expect(store.lookupByOsUser("alice").map((u) => u.uid)).toEqual([1000]);
    const errs = Object.fromEntries(store.errors.map((e) => [path.basename(e.file), e]));
    expect(Object.keys(errs).sort()).toEqual(["7.user", "8.user", "9.user"]);
    expect(errs["7.user"]!).toBeInstanceOf(UserStoreError);
    expect(errs["7.user"]!.code).toBe("EPERM");
    expect(errs["7.user"]!.message).toMatch(/permissions 0644 .* too open.*chmod 600/);
    expect(errs["8.user"]!.message).toContain("secret key is not the key of the certificate");
    expect(errs["9.user"]!.message).toContain("symbolic link");
    const sk = store.lookupByUid(1000)!.secretKey;
    store.clear();
    expect(sk.every((b) => b === 0)).toBe(true);

    // with a CA: entries of another CA are skipped; expired ones are kept
    const caStore = UserStore.load(users, {
      ca: readCert(path.join(dir, "ca2/ca.crt")) as CaCert,
      nowSec: NOW_MS / 1000,
    });
    expect(caStore.size).toBe(0);
    expect(
      caStore.errors
        .filter((e) => e.code === "ECERT")
        .map((e) => path.basename(e.file))
        .sort(),
    ).toEqual(["1000.user", "1001.user"]);
  });

  it("directory problems fail the load; a missing directory is empty", () => {
    expect(UserStore.load(path.join(dir, "nope")).size).toBe(0);
    const open = path.join(dir, "open-users");
    fs.mkdirSync(open, { mode: 0o755 });
    fs.chmodSync(open, 0o755);
    expect(() => UserStore.load(open)).toThrow(UserStoreError);
    expect(() => UserStore.load(open)).toThrow(/permissions 0755 .* too open.*chmod 700/);
    const file = path.join(dir, "passwd");
    expect(() => UserStore.load(file)).toThrow(/not a directory/);
  });
});

describe("passwd", () => {
  it("parses passwd(5), skipping comments, NIS and malformed lines; first name wins", () => {
    const m = parsePasswd(PASSWD);
    expect([...m.keys()]).toEqual(["root", "alice", "bob"]);
    expect(m.get("alice")).toEqual({
      name: "alice",
      uid: 1000,
      gid: 1000,
      home: "/home/alice",
      shell: "/bin/bash",
    });
    expect(lookupOsUser(m, "bob")?.uid).toBe(1001);
    expect(lookupOsUser(m, "1001")?.name).toBe("bob");
    expect(lookupOsUser(m, "0")?.name).toBe("root");
    expect(lookupOsUser(m, "4242")).toBeUndefined();
    expect(lookupOsUser(m, "carol")).toBeUndefined();
    expect(parsePasswd("a:x:99999999999:1::/:/bin/sh\nb:x:-1:1::/:/bin/sh\n:x:1:1::/:/bin/sh\n").size).toBe(
      0,
    );
  });
});
