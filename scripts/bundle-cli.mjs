#!/usr/bin/env node
// Bundles the mintun CLI (src/cli/main.ts) for bin/mintun: dist/cli-bundle/mintun.cjs, a
// small loader (scripts/cli-loader.cjs) that runs the bundle, mintun-main.cjs, with V8's code
// cache mintun-main.cjs.cache made here (docs/PERFORMANCE.md, "CLI start"). CommonJS because node 20
// starts a CommonJS entry from its built-in snapshot, while an ES module entry first
// compiles the ESM loader (about 25 ms of CPU here, as much as all of mintun's own start).
// The command modules stay lazy: esbuild turns each `import()` of commands/table.ts into a
// module initialised on first use, so `status` evaluates the API client and the formatter,
// not sodium-native, yaml or the certificate code. npm packages stay external
// (node_modules), so native addons load as they do from dist/. `import.meta.url` is this
// file's URL (the package root and version are found from it).
//   node scripts/bundle-cli.mjs [OUTDIR]        (default dist/cli-bundle; npm run build:bundle)
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import { buildSync } from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function bundleCli(outdir = path.join(ROOT, "dist/cli-bundle")) {
  fs.rmSync(outdir, { recursive: true, force: true }); // no stale files
  buildSync({
    entryPoints: [path.join(ROOT, "src/cli/main.ts")],
    outfile: path.join(outdir, "mintun-main.cjs"),
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20",
    packages: "external",
    define: { "import.meta.url": "__mintun_cli_url" },
    banner: { js: 'const __mintun_cli_url = require("node:url").pathToFileURL(__filename).href;' },
    logLevel: "warning",
  });
  const loader = path.join(outdir, "mintun.cjs");
  fs.copyFileSync(path.join(ROOT, "scripts/cli-loader.cjs"), loader);
  // the code cache: one run of a status call (it fails at the socket, after the CLI's start,
  // the argument parsing and the API client have been compiled)
  const cache = path.join(outdir, "mintun-main.cjs.cache");
  const r = spawnSync(process.execPath, [loader, "status", "--socket", path.join(outdir, "no-such.sock")], {
    env: { ...process.env, MINTUN_CLI_WRITE_CODE_CACHE: cache, NODE_OPTIONS: "" },
    encoding: "utf8",
    timeout: 30_000,
  });
  if (r.status !== 1 || !fs.existsSync(cache))
    throw new Error(`mintun CLI code cache not written (exit ${r.status}): ${r.stderr}${r.error ?? ""}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  bundleCli(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
