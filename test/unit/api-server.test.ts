/**
 * The local API's access rule (src/api/server.ts, src/api/peercred.ts): the socket is
 * world-connectable, read-only methods answer everybody, root-only methods answer uid 0
 * (or the daemon's own uid) and nobody else, by the kernel's SO_PEERCRED — checked with a
 * real client running as `nobody` (runuser) when the suite runs as root. Also: answers
 * keep request order with asynchronous handlers, and `mintun reload` / `mintun whois
 * ADDR:PORT` against a test server.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeAll, afterAll, describe, expect, it } from "vitest";
import { peerCredOfFd, socketPeerCred, type PeerCred } from "../../src/api/peercred.js";
import { ApiServer, isPrivileged, type Caller } from "../../src/api/server.js";
import { runCli, type Io } from "../../src/cli/cli.js";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { parseWhoisTarget } from "../../src/cli/commands/ops.js";
import type { WhoisAnswer } from "../../src/daemon/status.js";
import { MintunError } from "../../src/errors.js";
import { nullLogger } from "../../src/log.js";

const isRoot = process.getuid?.() === 0;
let dir: string;
const servers: ApiServer[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-api-"));
  fs.chmodSync(dir, 0o755); // other users must reach the socket inside
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

let seq = 0;
async function makeServer(opts?: ConstructorParameters<typeof ApiServer>[2]) {
  const sock = path.join(dir, `api-${++seq}.sock`);
  const srv = new ApiServer(sock, nullLogger, opts);
  servers.push(srv);
  const calls: { method: string; caller: Caller }[] = [];
  srv.handle("status", (_p, caller) => {
    calls.push({ method: "status", caller });
    return { ok: true };
  });
  srv.handle(
    "reload",
    async (_p, caller) => {
      calls.push({ method: "reload", caller });
      await new Promise((r) => setTimeout(r, 20));
      return { ok: true, at: 1, error: null, restartRequired: ["listen"], applied: ["peers +c"] };
    },
    { root: true },
  );
  await srv.listen();
  return { srv, sock, calls };
}

/** Raw requests over one connection; resolves with the answer lines. */
function rawCall(sock: string, lines: string[]): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(sock);
    let buf = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error("no answer"));
    }, 5000);
    s.setEncoding("utf8");
    s.on("connect", () => s.write(lines.join("\n") + "\n"));
    s.on("data", (c: string) => {
      buf += c;
      const got = buf.split("\n").filter(Boolean);
      if (got.length >= lines.length) {
        clearTimeout(timer);
        s.end();
        resolve(got.map((l) => JSON.parse(l) as unknown));
      }
    });
    s.on("error", reject);
  });
}

/** A client process run as `nobody`: plain node, no project imports. */
const CLIENT = `
const net = require("node:net");
const s = net.createConnection(process.argv[1]);
let buf = "";
s.setEncoding("utf8");
s.on("connect", () => s.write(process.argv.slice(2).map((m, i) => JSON.stringify({ id: i + 1, method: m })).join("\\n") + "\\n"));
s.on("data", (c) => { buf += c; if (buf.split("\\n").filter(Boolean).length >= process.argv.length - 2) { process.stdout.write(JSON.stringify({ pid: process.pid, uid: process.getuid(), answers: buf.split("\\n").filter(Boolean).map((l) => JSON.parse(l)) })); s.end(); } });
s.on("error", (e) => { process.stderr.write(String(e)); process.exit(3); });
setTimeout(() => process.exit(4), 5000).unref();
`;

/** Asynchronous (the server runs in this process's event loop); SIGKILL after 15 s. */
async function runAsNobody(sock: string, methods: string[]) {
  const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      "runuser",
      ["-u", "nobody", "--", process.execPath, "-e", CLIENT, sock, ...methods],
      { encoding: "utf8", timeout: 15_000, killSignal: "SIGKILL" },
      (err, stdout, stderr) =>
        resolve({ status: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as {
    pid: number;
    uid: number;
    answers: { id: number; result?: unknown; error?: { code: string; message: string } }[];
  };
}

describe("peer credentials (SO_PEERCRED through the addon)", () => {
  it("names this process for a connection it made, and throws errno names for bad fds", async () => {
    const sock = path.join(dir, "cred.sock");
    const got = await new Promise<PeerCred | null>((resolve, reject) => {
      const srv = net.createServer((c) => {
        resolve(socketPeerCred(c));
        c.destroy();
        srv.close();
      });
      srv.on("error", reject);
      srv.listen(sock, () => net.createConnection(sock).on("error", () => undefined));
    });
    expect(got).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    const notSock = fs.openSync(path.join(dir, "plain"), "w");
    try {
      expect(() => peerCredOfFd(notSock)).toThrow(expect.objectContaining({ code: "ENOTSOCK" }) as Error);
    } finally {
      fs.closeSync(notSock);
    }
    expect(() => peerCredOfFd(-1)).toThrow(MintunError);
    expect(() => peerCredOfFd(1.5)).toThrow(expect.objectContaining({ code: "EINVAL" }) as Error);
  });

  it("isPrivileged: uid 0 and the daemon's own uid; unknown credentials never", () => {
    expect(isPrivileged({ pid: 1, uid: 0, gid: 0 }, 1000)).toBe(true);
    expect(isPrivileged({ pid: 1, uid: 1000, gid: 1000 }, 1000)).toBe(true);
    expect(isPrivileged({ pid: 1, uid: 1000, gid: 0 }, 0)).toBe(false);
    expect(isPrivileged({ pid: 1, uid: 65534, gid: 0 }, 1000)).toBe(false);
    expect(isPrivileged(null, 0)).toBe(false);
  });
});

describe("API access rule", () => {
  it("the socket is mode 0666 and the methods are tagged", async () => {
    const { srv, sock } = await makeServer();
    expect(fs.statSync(sock).mode & 0o777).toBe(0o666);
    expect(srv.methods()).toEqual([
      { method: "status", root: false },
      { method: "reload", root: true },
    ]);
  });

  it("a privileged caller (this process) may call both; the handler sees its credentials", async () => {
    const { sock, calls } = await makeServer();
    const [a, b] = (await rawCall(sock, [
      JSON.stringify({ id: 1, method: "reload" }),
      JSON.stringify({ id: 2, method: "status" }),
    ])) as { id: number; result: unknown }[];
    // answers in request order although reload is asynchronous and slower
    expect(a!.id).toBe(1);
    expect(a!.result).toMatchObject({ ok: true });
    expect(b).toEqual({ id: 2, result: { ok: true } });
    expect(calls.map((c) => c.method)).toEqual(["reload", "status"]);
    expect(calls[0]!.caller.cred?.pid).toBe(process.pid);
    expect(calls[0]!.caller.privileged).toBe(true);
  });

  it("unknown credentials count as unprivileged: EPERM, the handler does not run", async () => {
    const { sock, calls } = await makeServer({ peerCred: () => null });
    const [a, b] = (await rawCall(sock, [
      JSON.stringify({ id: 7, method: "reload" }),
      JSON.stringify({ id: 8, method: "status" }),
    ])) as { id: number; error?: { code: string; message: string }; result?: unknown }[];
    expect(a!.error?.code).toBe("EPERM");
    expect(a!.error?.message).toMatch(/'reload' needs root/);
    expect(b!.result).toEqual({ ok: true });
    expect(calls.map((c) => c.method)).toEqual(["status"]);
  });

  it.skipIf(!isRoot)("a real client running as nobody: status answers, reload is EPERM", async () => {
    const { sock, calls } = await makeServer();
    const r = await runAsNobody(sock, ["status", "reload", "status"]);
    expect(r.uid).toBe(65534);
    expect(r.answers[0]).toEqual({ id: 1, result: { ok: true } });
    expect(r.answers[1]!.error?.code).toBe("EPERM");
    expect(r.answers[1]!.error?.message).toBe("'reload' needs root (called by uid 65534)");
    expect(r.answers[2]).toEqual({ id: 3, result: { ok: true } });
    // the server saw the kernel's credentials of that process, and never ran reload
    expect(calls.map((c) => c.method)).toEqual(["status", "status"]);
    expect(calls[0]!.caller.cred).toMatchObject({ uid: 65534, pid: r.pid });
    expect(calls[0]!.caller.privileged).toBe(false);
  });
});

function memIo(): Io & { out: string; err: string } {
  const io = {
    out: "",
    err: "",
    stdout: (t: string) => void (io.out += t),
    stderr: (t: string) => void (io.err += t),
    now: () => Date.now(),
    cwd: dir,
  };
  return io;
}

describe("mintun reload and mintun whois ADDR:PORT", () => {
  it("reload prints what was applied (0) and fails with EPERM for the unprivileged (1)", async () => {
    const { sock } = await makeServer();
    const io = memIo();
    expect(await runCli(["reload", "--socket", sock], io, COMMANDS)).toBe(0);
    expect(io.out).toBe("reloaded: peers +c\nchanged but need a restart (left as they were): listen\n");
    const denied = await makeServer({ peerCred: () => ({ pid: 1, uid: 4242, gid: 4242 }) });
    const io2 = memIo();
    expect(await runCli(["reload", "--socket", denied.sock], io2, COMMANDS)).toBe(1);
    expect(io2.err).toMatch(/'reload' needs root \(called by uid 4242\)/);
  });

  it("parses ADDR and ADDR:PORT targets", () => {
    expect(parseWhoisTarget("10.77.0.1")).toEqual({ address: "10.77.0.1", port: null });
    expect(parseWhoisTarget("10.77.0.1:43210")).toEqual({ address: "10.77.0.1", port: 43210 });
    expect(parseWhoisTarget("fd77::1")).toEqual({ address: "fd77::1", port: null });
    expect(parseWhoisTarget("[fd77::1]:8080")).toEqual({ address: "fd77::1", port: 8080 });
    expect(parseWhoisTarget("[fd77::1]")).toEqual({ address: "fd77::1", port: null });
    for (const bad of [
      "10.77.0.1:",
      "10.77.0.1:65536",
      "10.77.0.1:x",
      "[10.77.0.1]:80",
      "host:80",
      "fd77::1]:80",
    ])
      expect(() => parseWhoisTarget(bad), bad).toThrow(/ADDR|port/);
  });

  it("whois sends the port and prints the connections of the answer", async () => {
    const sock = path.join(dir, "whois.sock");
    const srv = new ApiServer(sock, nullLogger);
    servers.push(srv);
    let asked: Record<string, unknown> = {};
    const answer: WhoisAnswer = {
      address: "10.77.0.1",
      kind: "peer",
      name: "a",
      key: "ab:cd",
      match: "10.77.0.1",
      endpoint: "192.168.1.1:7000",
      tunnels: [
        { session: "00112233aabbccdd", state: "established", endpoint: "192.168.1.1:7000", epoch: 0 },
      ],
      conns: [
        {
          direction: "in",
          proto: 6,
          local: "10.77.0.2:8080",
          remote: "10.77.0.1:43210",
          peerHost: { name: "a", groups: [], fingerprint: "ab:cd" },
          peerUser: { name: "alice", groups: ["dev"], fingerprint: "12:34" },
          ownerUid: null,
          localUser: null,
          session: "00112233aabbccdd",
          state: "open",
          denyReason: null,
          openedAt: Date.UTC(2026, 0, 1),
          lastUsed: Date.UTC(2026, 0, 1) + 500,
          rxPackets: 5,
          txPackets: 4,
        },
      ],
    };
    srv.handle("whois", (p) => {
      asked = p;
      return answer;
    });
    await srv.listen();
    const io = memIo();
    expect(await runCli(["whois", "10.77.0.1:43210", "--socket", sock], io, COMMANDS)).toBe(0);
    expect(asked).toEqual({ address: "10.77.0.1", port: 43210 });
    expect(io.out).toContain(
      "conn:      in tcp 10.77.0.2:8080 <- 10.77.0.1:43210 open, opened 2026-01-01T00:00:00.000Z\n",
    );
    expect(io.out).toContain("  user:    alice (groups dev, key 12:34)\n");
    expect(io.out).toContain("  session: 00112233aabbccdd\n");
    const io2 = memIo();
    expect(await runCli(["whois", "10.77.0.1", "--json", "--socket", sock], io2, COMMANDS)).toBe(0);
    expect(asked).toEqual({ address: "10.77.0.1" });
    expect(JSON.parse(io2.out)).toEqual(answer);
  });
});

describe("limits per caller (issue 14)", () => {
  /** A connection that stays open; resolves with it once connected, collects answer lines. */
  function openConn(sock: string): Promise<{ s: net.Socket; lines: () => unknown[] }> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(sock);
      let buf = "";
      s.setEncoding("utf8");
      s.on("data", (c: string) => void (buf += c));
      s.on("error", () => undefined);
      s.on("connect", () =>
        resolve({
          s,
          lines: () =>
            buf
              .split("\n")
              .filter(Boolean)
              .map((l) => JSON.parse(l) as unknown),
        }),
      );
      setTimeout(() => reject(new Error("no connect")), 5000).unref();
    });
  }
  const until = async (f: () => boolean) => {
    for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  };

  it("one uid's connections are capped (ELIMIT, closed), another uid and root still answer", async () => {
    let nextUid = 1001;
    const { srv, sock } = await makeServer({
      peerCred: () => ({ pid: 1, uid: nextUid, gid: nextUid }),
      maxConnsPerUid: 3,
      maxConnsUnprivileged: 5,
    });
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await openConn(sock));
    const refused = await openConn(sock);
    await until(() => refused.lines().length > 0);
    expect(refused.lines()).toEqual([
      { id: 0, error: { code: "ELIMIT", message: "too many API connections for uid 1001 (limit 3)" } },
    ]);
    nextUid = 1002; // another user is not affected by 1001's connections
    expect(await rawCall(sock, [JSON.stringify({ id: 1, method: "status" })])).toEqual([
      { id: 1, result: { ok: true } },
    ]);
    held.push(await openConn(sock), await openConn(sock)); // 1002 holds two: 5 unprivileged in all
    const over = await openConn(sock);
    await until(() => over.lines().length > 0);
    expect(over.lines()).toMatchObject([
      { error: { code: "ELIMIT", message: /unprivileged users \(limit 5\)/ } },
    ]);
    nextUid = 0; // root: no limit
    expect(await rawCall(sock, [JSON.stringify({ id: 2, method: "status" })])).toEqual([
      { id: 2, result: { ok: true } },
    ]);
    // a closed connection gives its slot back
    nextUid = 1001;
    held[0]!.s.destroy();
    await new Promise((r) => setTimeout(r, 50));
    nextUid = 1002;
    held[3]!.s.destroy();
    await new Promise((r) => setTimeout(r, 50));
    nextUid = 1001;
    expect(await rawCall(sock, [JSON.stringify({ id: 3, method: "status" })])).toEqual([
      { id: 3, result: { ok: true } },
    ]);
    expect(srv.limitStats.connsRefused).toBe(2);
    for (const h of held) h.s.destroy();
  });

  it("requests over a uid's rate get ERATELIMIT; a method's own rate (resolve) is separate; root is exempt", async () => {
    let uid = 1001;
    let t = 1_000_000;
    const { srv, sock } = await makeServer({
      peerCred: () => ({ pid: 1, uid, gid: uid }),
      now: () => t,
      requestsPerSec: 10,
      requestsBurst: 5,
    });
    srv.handle("resolve", () => ({ name: "x" }), { perUidPerSec: 0.2 }); // burst: 1
    const req = (m: string, n: number) =>
      Array.from({ length: n }, (_, i) => JSON.stringify({ id: i + 1, method: m }));
    const codes = (a: unknown[]) => a.map((x) => (x as { error?: { code: string } }).error?.code ?? "ok");
    const status = await rawCall(sock, req("status", 7));
    expect(codes(status)).toEqual(["ok", "ok", "ok", "ok", "ok", "ERATELIMIT", "ERATELIMIT"]);
    expect((status[6] as { error: { message: string } }).error.message).toBe(
      "uid 1001 is over the API request rate (10/s)",
    );
    t += 1000; // 10 tokens back, capped at the burst of 5
    const r = await rawCall(sock, req("resolve", 3));
    expect(codes(r)).toEqual(["ok", "ERATELIMIT", "ERATELIMIT"]);
    expect((r[1] as { error: { message: string } }).error.message).toBe(
      "uid 1001 is over the rate of 'resolve' (0.2/s)",
    );
    expect(codes(await rawCall(sock, req("status", 1)))).toEqual(["ok"]); // the general budget is not spent
    t += 5000;
    expect(codes(await rawCall(sock, req("resolve", 1)))).toEqual(["ok"]);
    uid = 0;
    expect(codes(await rawCall(sock, req("status", 20))).every((c) => c === "ok")).toBe(true);
    expect(srv.limitStats.requestsLimited).toBe(4);
  });
});
