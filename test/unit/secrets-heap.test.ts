/**
 * Secrets never pass through JS strings: a child process reads a secret key file, an
 * enrolment bundle and a user store the way the daemon and CLI do, keeps what it read,
 * and writes a V8 heap snapshot; the snapshot (every live string) must not contain the
 * secret key's base64, whole or any armored line of it. Buffer contents live outside the
 * JS heap and are not in the snapshot, so only a string copy of the secret can match.
 *
 * The snapshot only shows live strings (it collects garbage first); a second check reads
 * the whole writable memory of a waiting child through /proc/PID/mem (root), where a
 * dead string stays until its memory is reused: no base64 text of the secret anywhere.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { signCert, type UserCert } from "../../src/wire/cert.js";
import { writeBundle, writeSecretKey } from "../../src/store/keyfile.js";
import { addUser } from "../../src/store/users.js";

const root = path.resolve(__dirname, "../..");
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-heap-"));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Needles for a secret key: its whole base64 and each 64-character armored line. */
function needles(sk: Buffer): string[] {
  const b64 = sk.toString("base64");
  const out = [b64];
  for (let i = 0; i < b64.length; i += 64) out.push(b64.slice(i, i + 64));
  return out;
}

function snapshotFor(mode: string, file: string): Buffer {
  const snap = path.join(dir, `${mode}.heapsnapshot`);
  const r = spawnSync(
    path.join(root, "node_modules/.bin/vite-node"),
    [path.join(root, "test/tools/secret-heap.ts"), "--", mode, file, snap],
    { cwd: root, encoding: "utf8", timeout: 60_000 },
  );
  expect(r.stderr).toBe("");
  expect(r.stdout).toContain(`ok ${file}`);
  const data = fs.readFileSync(snap);
  fs.rmSync(snap);
  // the snapshot holds the child's strings: the file name it was given is one of them
  expect(data.includes(file)).toBe(true);
  return data;
}

/** Reads every readable private mapping of a waiting child and looks for the needles. */
async function memoryHits(mode: string, file: string, sk: Buffer): Promise<string[]> {
  const child = spawn(
    path.join(root, "node_modules/.bin/vite-node"),
    [path.join(root, "test/tools/secret-heap.ts"), "--", mode, file, "-"],
    {
      cwd: root,
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  try {
    let out = "";
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`child not ready: ${err}`)), 60_000);
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes(`ready ${file}`)) {
          clearTimeout(t);
          resolve();
        }
      });
      child.on("exit", (c) => reject(new Error(`child exited ${c}: ${err}`)));
    });
    // the child is node's wrapper (vite-node) or node itself; scan it and its children
    const pids = [child.pid!, ...childPids(child.pid!)];
    const ns = needles(sk).map((n) => Buffer.from(n, "latin1"));
    const hits: string[] = [];
    let scanned = 0;
    for (const pid of pids) {
      const maps = fs.readFileSync(`/proc/${pid}/maps`, "latin1").split("\n");
      const fd = fs.openSync(`/proc/${pid}/mem`, "r");
      try {
        for (const line of maps) {
          const m = /^([0-9a-f]+)-([0-9a-f]+) (r)w.p /.exec(line);
          if (!m) continue;
          const start = BigInt(`0x${m[1]}`);
          const len = Number(BigInt(`0x${m[2]}`) - start);
          if (len > 64 << 20) continue; // reserved, mostly unpopulated ranges (V8 cage, arenas)
          const buf = Buffer.alloc(len);
          let n = 0;
          try {
            n = fs.readSync(fd, buf, 0, len, start as unknown as number);
          } catch {
            continue; // e.g. guard pages
          }
          scanned += n;
          for (const needle of ns) if (buf.subarray(0, n).includes(needle)) hits.push(`${pid} ${line}`);
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    expect(scanned).toBeGreaterThan(1 << 20);
    return hits;
  } finally {
    child.stdin.end();
    child.kill();
  }
}

function childPids(pid: number): number[] {
  try {
    const kids = fs
      .readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    return kids.flatMap((k) => [k, ...childPids(k)]);
  } catch {
    return [];
  }
}

function expectNoSecret(snapshot: Buffer, sk: Buffer): void {
  for (const n of needles(sk))
    expect(snapshot.includes(n), `secret base64 '${n.slice(0, 8)}…' in heap`).toBe(false);
}

const NOW = Math.floor(Date.now() / 1000);

describe("secret key material never becomes a JS string", () => {
  it("readSecretKey", async () => {
    const kp = signKeyPair();
    const f = path.join(dir, "k", "host.key");
    writeSecretKey(f, kp.secretKey);
    expectNoSecret(snapshotFor("key", f), kp.secretKey);
    expect(await memoryHits("key", f, kp.secretKey)).toEqual([]);
  }, 90_000);

  it("readBundle", async () => {
    const ca = signKeyPair();
    const host = signKeyPair();
    const caCert = signCert(
      {
        kind: "ca",
        name: "ca",
        publicKey: ca.publicKey,
        issuer: ca.publicKey,
        groups: [],
        notBefore: NOW - 10,
        notAfter: NOW + 1000,
      },
      ca.secretKey,
    );
    const cert = signCert(
      {
        kind: "host",
        name: "web",
        publicKey: host.publicKey,
        issuer: ca.publicKey,
        groups: [],
        notBefore: NOW - 10,
        notAfter: NOW + 1000,
        ip4: "10.77.0.2",
        ip6: null,
        subnets: [],
      },
      ca.secretKey,
    );
    const f = path.join(dir, "web.bundle");
    writeBundle(f, { secretKey: host.secretKey, cert, ca: caCert });
    expectNoSecret(snapshotFor("bundle", f), host.secretKey);
    expect(await memoryHits("bundle", f, host.secretKey)).toEqual([]);
  }, 90_000);

  it("UserStore.load", async () => {
    const ca = signKeyPair();
    const user = signKeyPair();
    const cert = signCert(
      {
        kind: "user",
        name: "alice",
        publicKey: user.publicKey,
        issuer: ca.publicKey,
        groups: ["dev"],
        notBefore: NOW - 10,
        notAfter: NOW + 1000,
      },
      ca.secretKey,
    ) as UserCert;
    const store = path.join(dir, "users");
    addUser(store, { uid: 1000, osUser: "alice", cert, secretKey: user.secretKey });
    expectNoSecret(snapshotFor("users", store), user.secretKey);
    expect(await memoryHits("users", store, user.secretKey)).toEqual([]);
  }, 90_000);
});
