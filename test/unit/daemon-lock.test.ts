/**
 * One daemon per API socket (src/daemon/lock.ts, src/api/server.ts): the flock on
 * `<socket>.lock` refuses a second holder with AlreadyRunningError (code ERUNNING,
 * the holder's pid in the message), also across processes, and frees itself when the
 * holder is killed with SIGKILL; the API socket is bound by rename and removed on
 * close only while the path is still the socket this server bound.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiServer } from "../../src/api/server.js";
import { DaemonLock, lockPathOf } from "../../src/daemon/lock.js";
import { AlreadyRunningError } from "../../src/errors.js";
import { nullLogger } from "../../src/log.js";

const ADDON = path.join(process.cwd(), "platform/linux/build/Release/mintun_linux.node");
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-lock-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function connectable(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(sock);
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

describe("DaemonLock", () => {
  it("refuses a second holder with ERUNNING and the holder's pid, and is free again after release", () => {
    const sock = path.join(dir, "a", "mintund.sock");
    const first = DaemonLock.acquire(sock, 4242);
    expect(first.path).toBe(lockPathOf(sock));
    expect(fs.readFileSync(first.path, "utf8")).toBe("4242\n");
    let err: unknown;
    try {
      DaemonLock.acquire(sock);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AlreadyRunningError);
    expect((err as AlreadyRunningError).code).toBe("ERUNNING");
    expect((err as AlreadyRunningError).pid).toBe(4242);
    expect((err as Error).message).toContain(`another mintund (pid 4242) is serving ${sock}`);
    // the holder's file is not rewritten by the refused attempt
    expect(fs.readFileSync(first.path, "utf8")).toBe("4242\n");
    first.release();
    first.release(); // idempotent
    const again = DaemonLock.acquire(sock);
    expect(again.held).toBe(true);
    again.release();
  });

  it("is held across processes and freed by the kernel when the holder is killed", async () => {
    const sock = path.join(dir, "b.sock");
    const child = spawn(
      process.execPath,
      [
        "-e",
        `const a = require(${JSON.stringify(ADDON)}); const fd = a.lockFile(${JSON.stringify(lockPathOf(sock))});` +
          `require("fs").writeSync(fd, process.pid + "\\n", 0); console.log("locked"); setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("child did not lock")), 10_000);
        child.stdout.on("data", (d: Buffer) => {
          if (d.toString().includes("locked")) {
            clearTimeout(t);
            resolve();
          }
        });
      });
      expect(() => DaemonLock.acquire(sock)).toThrow(`another mintund (pid ${child.pid}) is serving`);
    } finally {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await gone;
    }
    const l = DaemonLock.acquire(sock);
    expect(fs.readFileSync(l.path, "utf8")).toBe(`${process.pid}\n`);
    l.release();
  });

  it("an unusable lock path is a PlatformError, not ERUNNING", () => {
    const f = path.join(dir, "file");
    fs.writeFileSync(f, "");
    // the socket's directory is a regular file
    expect(() => DaemonLock.acquire(path.join(f, "x.sock"))).toThrow(
      expect.objectContaining({ code: expect.not.stringMatching(/^ERUNNING$/) as unknown }),
    );
  });
});

describe("ApiServer socket ownership", () => {
  it("binds by rename over a stale socket and leaves no temporary name", async () => {
    const sock = path.join(dir, "c.sock");
    fs.writeFileSync(sock, "stale"); // left by a daemon that crashed
    const srv = new ApiServer(sock, nullLogger);
    await srv.listen();
    try {
      expect(fs.lstatSync(sock).isSocket()).toBe(true);
      expect((fs.lstatSync(sock).mode & 0o777).toString(8)).toBe("666");
      expect(fs.readdirSync(dir).filter((n) => n.includes(".tmp"))).toEqual([]);
      expect(await connectable(sock)).toBe(true);
    } finally {
      srv.close();
    }
    expect(fs.existsSync(sock)).toBe(false);
  });

  it("close() does not remove a socket that replaced ours", async () => {
    const sock = path.join(dir, "d.sock");
    const a = new ApiServer(sock, nullLogger);
    await a.listen();
    expect(a.ownsPath()).toBe(true);
    const b = new ApiServer(sock, nullLogger); // (without the lock, as if another daemon took the path)
    await b.listen();
    expect(a.ownsPath()).toBe(false);
    a.close();
    expect(fs.existsSync(sock)).toBe(true);
    expect(await connectable(sock)).toBe(true);
    b.close();
    expect(fs.existsSync(sock)).toBe(false);
  });
});
