/**
 * The layer rules of .dependency-cruiser.cjs (docs/ARCHITECTURE.md "Layers"): the tree
 * obeys them, they fail on an upward import, and the protocol engine loads without the
 * config stack (yaml, pino, dns-packet) or any I/O module.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DEPCRUISE = path.join(ROOT, "node_modules/.bin/depcruise");
const CONFIG = path.join(ROOT, ".dependency-cruiser.cjs");

interface Cruise {
  modules: {
    source: string;
    dependencies: { resolved: string; module: string; dependencyTypes: string[] }[];
  }[];
  summary: {
    violations: { rule: { name: string; severity: string }; from: string; to: string }[];
    error: number;
  };
}

function cruise(cwd: string, args: string[]): Cruise {
  let out: string;
  try {
    out = execFileSync(DEPCRUISE, ["--config", CONFIG, "--output-type", "json", ...args], {
      cwd,
      encoding: "utf8",
      maxBuffer: 64 << 20,
    });
  } catch (e) {
    // exit code = number of errors; the JSON is still on stdout
    out = (e as { stdout: string }).stdout;
  }
  return JSON.parse(out) as Cruise;
}

const tmp: string[] = [];
afterAll(() => {
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
});

describe("layers (dependency-cruiser)", () => {
  it(
    "src/ has no violation (no upward import, no I/O in the core, no file cycle)",
    { timeout: 60_000 },
    () => {
      const r = cruise(ROOT, ["src"]);
      expect(r.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`)).toEqual([]);
    },
  );

  it("fails on an upward import, on I/O in the core and on a cycle", { timeout: 60_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-layers-"));
    tmp.push(dir);
    const put = (f: string, text: string): void => {
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.writeFileSync(path.join(dir, f), text);
    };
    fs.copyFileSync(path.join(ROOT, "tsconfig.json"), path.join(dir, "tsconfig.json"));
    put("src/tunnel/engine.ts", "export const E = 1;\n");
    put("src/wire/up.ts", 'import { E } from "../tunnel/engine.js";\nexport const U = E;\n');
    put("src/conn/io.ts", 'import * as fs from "node:fs";\nexport const X = fs.existsSync;\n');
    put("src/daemon/a.ts", 'import { B } from "./b.js";\nexport const A = B;\n');
    put("src/daemon/b.ts", 'import { A } from "./a.js";\nexport const B = () => A;\n');
    const names = cruise(dir, ["src"])
      .summary.violations.map((v) => v.rule.name)
      .sort();
    expect(names).toEqual(["core-does-io", "layer-wire-imports-upward", "no-circular"]);
  });

  it(
    "the engine module loads without yaml, pino, dns-packet, etcd3 or node:fs/net/dgram",
    { timeout: 60_000 },
    () => {
      const r = cruise(ROOT, [
        "--no-config",
        "--do-not-follow",
        "node_modules",
        "--ts-config",
        "tsconfig.json",
        "src/tunnel/engine.ts",
      ]);
      const reached = r.modules.map((m) => m.source);
      expect(reached).toContain("src/tunnel/engine.ts");
      expect(reached.length).toBeGreaterThan(20); // really followed the imports
      const forbidden = reached.filter((s) =>
        /node_modules\/(yaml|pino|dns-packet|etcd3|prom-client)\/|^(node:)?(fs|net|dgram|child_process)$/.test(
          s,
        ),
      );
      expect(forbidden).toEqual([]);
      // and no module of an upper layer
      expect(
        reached.filter((s) => /^src\/(config|store|net|daemon|cli|api|names|directory)\//.test(s)),
      ).toEqual([]);
    },
  );
});

describe("file size", () => {
  it("no source file under src/ is over 700 lines (split by layer before it grows)", () => {
    const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "src");
    const over: string[] = [];
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith(".ts")) {
          const lines = fs.readFileSync(p, "utf8").split("\n").length - 1;
          if (lines > 700) over.push(`${path.relative(root, p)}: ${lines}`);
        }
      }
    };
    walk(root);
    expect(over).toEqual([]);
  });
});
