#!/usr/bin/env node
// Bundles the mintun CLI (src/cli/main.ts) for bin/mintun: dist/cli-bundle/mintun.js plus one
// chunk per command module, loaded on first use (docs/PERFORMANCE.md, "CLI start"). npm
// packages stay external (node_modules), so native addons load as they do from dist/.
//   node scripts/bundle-cli.mjs [OUTDIR]        (default dist/cli-bundle; npm run build:bundle)
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export function bundleCli(outdir = path.join(ROOT, "dist/cli-bundle")) {
  fs.rmSync(outdir, { recursive: true, force: true }); // no stale chunks
  buildSync({
    entryPoints: { mintun: path.join(ROOT, "src/cli/main.ts") },
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    logLevel: "warning",
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  bundleCli(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
