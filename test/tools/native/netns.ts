/**
 * Helpers for the vitest compliance suites: build the addon and the child, create and
 * delete a throwaway network namespace, run child.js inside it and parse its JSON.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CaseResult } from "./compliance.js";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const ADDON = join(ROOT, "platform/linux/build/Release/mintun_linux.node");
const ADDON_SRC = join(ROOT, "platform/linux/mintun_linux.c");
export const CHILD_JS = join(ROOT, ".tmp/native-test/test/tools/native/child.js");

/** Real variants need root (CAP_NET_ADMIN for namespaces and TUN) and /dev/net/tun. */
export const canRunReal = process.getuid?.() === 0 && existsSync("/dev/net/tun");

/** Build the addon if missing or older than its source, then compile child.js and its imports. */
export function buildNative(): void {
  if (!existsSync(ADDON) || statSync(ADDON).mtimeMs < statSync(ADDON_SRC).mtimeMs) {
    execFileSync(
      process.execPath,
      [join(ROOT, "node_modules/node-gyp/bin/node-gyp.js"), "rebuild", "--directory", "platform/linux"],
      {
        cwd: ROOT,
        stdio: "pipe",
      },
    );
  }
  execFileSync(
    process.execPath,
    [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "test/tools/native/tsconfig.json"],
    {
      cwd: ROOT,
      stdio: "pipe",
    },
  );
}

export class Netns {
  readonly name: string;
  constructor(tag: string) {
    this.name = `mtc-${process.pid}-${tag}`;
  }

  create(): void {
    this.destroy();
    execFileSync("ip", ["netns", "add", this.name], { stdio: "pipe" });
    execFileSync("ip", ["-n", this.name, "link", "set", "lo", "up"], { stdio: "pipe" });
  }

  /** idempotent */
  destroy(): void {
    try {
      execFileSync("ip", ["netns", "del", this.name], { stdio: "pipe" });
    } catch {
      // did not exist
    }
  }

  /** Run child.js <mode> in the namespace; resolves with its results, keyed by case name. */
  runChild(mode: string, timeoutMs = 55_000): Promise<Map<string, CaseResult>> {
    return new Promise((resolve) => {
      execFile(
        "ip",
        ["netns", "exec", this.name, process.execPath, CHILD_JS, mode],
        { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 << 20 },
        (err, stdout, stderr) => {
          const map = new Map<string, CaseResult>();
          const line = stdout.trim().split("\n").pop() ?? "";
          try {
            for (const r of (JSON.parse(line) as { results: CaseResult[] }).results) map.set(r.name, r);
          } catch {
            map.set("child", {
              name: "child",
              ok: false,
              error: `no JSON (${String(err)}): ${stdout} ${stderr}`,
            });
          }
          if (err && !map.has("child"))
            map.set("child", { name: "child", ok: false, error: `${String(err)}: ${stderr}` });
          resolve(map);
        },
      );
    });
  }
}

/** Message for a failed or missing result (expect(...).toBe("ok") prints it). */
export function outcome(results: Map<string, CaseResult> | undefined, name: string): string {
  const child = results?.get("child");
  if (child && !child.ok) return `child failed: ${child.error}`;
  const r = results?.get(name);
  if (!r) return `no result for ${JSON.stringify(name)}`;
  return r.ok ? "ok" : (r.error ?? "failed");
}
