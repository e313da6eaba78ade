/**
 * sd_notify straight from the daemon's process (src/daemon/notify.ts, platform/linux/notify.c):
 * a fake notify socket (test/tools/notify-listener.py, SO_PASSCRED as systemd's) receives
 * each message with the sender's pid, which must be ours for NotifyAccess=main.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { notifyMessage, SystemdNotifier } from "../../src/daemon/notify.js";
import { nullLogger } from "../../src/log.js";
import { createLogger } from "../../src/log-pino.js";

const LISTENER = fileURLToPath(new URL("../tools/notify-listener.py", import.meta.url));

interface Rec {
  msg: string;
  pid: number | null;
}

let dir: string;
const procs: ChildProcess[] = [];
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-notify-"));
});
afterAll(() => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Starts a listener on `sock`; resolves with a reader of what it received once it is bound. */
async function listen(sock: string, log: string): Promise<() => Rec[]> {
  const p = spawn("python3", [LISTENER, sock, "-", log], { stdio: ["ignore", "pipe", "inherit"] });
  procs.push(p);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("listener did not start")), 10_000);
    p.stdout!.on("data", (d: Buffer) => {
      if (d.toString().includes("ready")) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return () =>
    fs.existsSync(log)
      ? fs
          .readFileSync(log, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Rec)
      : [];
}

async function until<T>(f: () => T | null, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("sd_notify", () => {
  it("formats the datagram: MAINPID, then KEY=value lines without newlines in values", () => {
    expect(notifyMessage(42, { READY: "1", STATUS: "two\nlines" })).toBe(
      "MAINPID=42\nREADY=1\nSTATUS=two lines",
    );
  });

  it("sends each message in order from this process (its pid in the credentials), path and abstract", async () => {
    for (const sock of [path.join(dir, "notify.sock"), `@mintun-test-notify-${process.pid}`]) {
      const log = path.join(dir, `${sock.startsWith("@") ? "abstract" : "path"}.jsonl`);
      const read = await listen(sock, log);
      const n = new SystemdNotifier(sock, nullLogger);
      n.notify({ READY: "1", STATUS: "up" });
      n.notify({ RELOADING: "1" });
      n.notify({ STOPPING: "1" });
      await n.flush();
      const recs = await until(() => (read().length >= 3 ? read() : null));
      expect(recs.map((r) => r.msg)).toEqual([
        `MAINPID=${process.pid}\nREADY=1\nSTATUS=up`,
        `MAINPID=${process.pid}\nRELOADING=1`,
        `MAINPID=${process.pid}\nSTOPPING=1`,
      ]);
      for (const r of recs) expect(r.pid, sock).toBe(process.pid);
    }
  });

  it("a socket nobody listens on: one warning with the errno, no throw; no NOTIFY_SOCKET: no-op", () => {
    const lines: string[] = [];
    const log = createLogger("debug", { write: (l) => void lines.push(l) });
    const n = new SystemdNotifier(path.join(dir, "nobody.sock"), log);
    n.notify({ READY: "1" });
    n.notify({ READY: "1" });
    const warns = lines.filter((l) => l.includes("sd_notify failed"));
    expect(warns).toHaveLength(1);
    expect(JSON.parse(warns[0]!)).toMatchObject({ code: "ENOENT" });
    const bad = new SystemdNotifier("relative.sock", log);
    bad.notify({ READY: "1" });
    expect(lines.some((l) => l.includes('"code":"EINVAL"'))).toBe(true);
    expect(SystemdNotifier.fromEnv(nullLogger, {})).not.toBeInstanceOf(SystemdNotifier);
  });
});
