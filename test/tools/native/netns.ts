/**
 * Helpers for the vitest compliance suites: build the addon and the child, run child.js
 * inside a namespace (test/netns/lib.ts Netns) and parse its JSON.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CaseResult } from "./compliance.js";
import { Netns } from "../../netns/lib.js";

export { Netns };

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const ADDON = join(ROOT, "platform/linux/build/Release/mintun_linux.node");
const ADDON_SRCS = ["mintun_linux.c", "tun_offload.c", "tun_offload.h"].map((f) =>
  join(ROOT, "platform/linux", f),
);
export const CHILD_JS = join(ROOT, ".tmp/native-test/test/tools/native/child.js");

/** Real variants need root (CAP_NET_ADMIN for namespaces and TUN) and /dev/net/tun. */
export const canRunReal = process.getuid?.() === 0 && existsSync("/dev/net/tun");

/** Build the addon if missing or older than its source, then compile child.js and its imports. */
export function buildNative(): void {
  if (!existsSync(ADDON) || ADDON_SRCS.some((f) => statSync(ADDON).mtimeMs < statSync(f).mtimeMs)) {
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

/**
 * Run `node <js> <mode> [args]` inside namespace `ns` (one of test/netns/lib.ts, the one
 * namespace helper of the suite); resolves with the child's results, keyed by case name.
 */
export function runChild(
  ns: Netns,
  mode: string,
  timeoutMs = 55_000,
  opts: { args?: string[]; env?: NodeJS.ProcessEnv; js?: string } = {},
): Promise<Map<string, CaseResult>> {
  return new Promise((resolve) => {
    execFile(
      "ip",
      ["netns", "exec", ns.name, process.execPath, opts.js ?? CHILD_JS, mode, ...(opts.args ?? [])],
      { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 << 20, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        const map = parseResults(stdout, `${String(err)}: ${stderr}`);
        if (err && !map.has("child"))
          map.set("child", { name: "child", ok: false, error: `${String(err)}: ${stderr}` });
        resolve(map);
      },
    );
  });
}

/**
 * Two fresh namespaces joined by a veth pair (both ends named mtcv0), for UDP GSO/GRO
 * across a real device; addresses in test/tools/native/veth.ts. Deleting the namespaces
 * deletes the pair.
 */
export class VethPair {
  private constructor(
    readonly a: Netns,
    readonly b: Netns,
  ) {}

  static async create(): Promise<VethPair> {
    const p = new VethPair(await Netns.create("va"), await Netns.create("vb"));
    const a = p.a.name;
    const b = p.b.name;
    for (const args of [
      ["-n", a, "link", "add", "mtcv0", "type", "veth", "peer", "name", "mtcv0", "netns", b],
      ["-n", a, "addr", "add", "10.203.0.1/24", "dev", "mtcv0"],
      ["-n", a, "-6", "addr", "add", "fd03::1/64", "dev", "mtcv0", "nodad"],
      ["-n", b, "addr", "add", "10.203.0.2/24", "dev", "mtcv0"],
      ["-n", b, "addr", "add", "10.203.0.3/32", "dev", "mtcv0"],
      ["-n", b, "-6", "addr", "add", "fd03::2/64", "dev", "mtcv0", "nodad"],
      ["-n", a, "link", "set", "mtcv0", "up"],
      ["-n", b, "link", "set", "mtcv0", "up"],
      ["-n", a, "route", "add", "10.203.0.3/32", "dev", "mtcv0", "mtu", "lock", "1280"],
    ])
      execFileSync("ip", args, { stdio: "pipe" });
    return p;
  }

  /** idempotent */
  async destroy(): Promise<void> {
    await this.a.destroy();
    await this.b.destroy();
  }

  /** child.js veth-rx in b (until it prints "ready"), then veth-tx in a; both results. */
  async run(): Promise<{ rx: Map<string, CaseResult>; tx: Map<string, CaseResult> }> {
    const c = spawn("ip", ["netns", "exec", this.b.name, process.execPath, CHILD_JS, "veth-rx"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    const kill = setTimeout(() => c.kill("SIGKILL"), 40_000);
    const ready = new Promise<void>((res) => {
      c.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("ready\n")) res();
      });
      c.on("exit", () => res());
    });
    c.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((res) => c.on("exit", () => res()));
    await ready;
    const tx = await runChild(this.a, "veth-tx");
    await exited;
    clearTimeout(kill);
    return { rx: parseResults(out, err), tx };
  }
}

function parseResults(stdout: string, stderr: string): Map<string, CaseResult> {
  const map = new Map<string, CaseResult>();
  const line = stdout.trim().split("\n").pop() ?? "";
  try {
    for (const r of (JSON.parse(line) as { results: CaseResult[] }).results) map.set(r.name, r);
  } catch {
    map.set("child", { name: "child", ok: false, error: `no JSON: ${stdout} ${stderr}` });
  }
  return map;
}

/** Message for a failed or missing result (expect(...).toBe("ok") prints it). */
export function outcome(results: Map<string, CaseResult> | undefined, name: string): string {
  const child = results?.get("child");
  if (child && !child.ok) return `child failed: ${child.error}`;
  const r = results?.get(name);
  if (!r) return `no result for ${JSON.stringify(name)}`;
  return r.ok ? "ok" : (r.error ?? "failed");
}
