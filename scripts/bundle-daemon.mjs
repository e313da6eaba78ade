#!/usr/bin/env node
// Bundles the mintun daemon (src/daemon/main.ts) for bin/mintund and the Debian package:
// dist/daemon-bundle/mintund.js plus chunks loaded on first use (metrics with prom-client,
// web view, etcd store). The npm packages on the start path (pino, yaml, dns-packet and
// sodium-native's JavaScript) are bundled in, so start-up does not resolve and compile
// hundreds of module files. sodium-native's addon is loaded straight from its prebuild
// (node_modules/sodium-native/prebuilds/PLATFORM-ARCH/sodium-native.node) instead of
// through require-addon, which costs ~50 ms of directory probing at every start; when no
// such prebuild exists, sodium-native's own binding.js finds the addon as before.
// External (files in node_modules, loaded on use): etcd3 (only with an etcd store) and
// prom-client (only with metrics.listen). See docs/PERFORMANCE.md, "Start-up".
//   node scripts/bundle-daemon.mjs [OUTDIR]      (default dist/daemon-bundle; npm run build:bundle)
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** npm packages left as files in node_modules (see above) */
export const DAEMON_EXTERNAL = ["etcd3", "prom-client"];

/** sodium-native's `./binding`: its prebuilt addon by path (see above) */
const SODIUM_BINDING = `
const path = require("node:path");
const fs = require("node:fs");
const load = require; // run-time requires: not for the bundler to follow
let pre = null;
try {
  const dir = path.dirname(require.resolve("sodium-native/package.json"));
  pre = path.join(dir, "prebuilds", process.platform + "-" + process.arch, "sodium-native.node");
} catch {}
module.exports = pre !== null && fs.existsSync(pre) ? load(pre) : load("sodium-native/binding.js");
`;

const sodiumBinding = {
  name: "mintun-sodium-binding",
  setup(build) {
    build.onResolve({ filter: /^\.\/binding(\.js)?$/ }, (a) =>
      /[\\/]node_modules[\\/]sodium-native[\\/]/.test(a.importer)
        ? { path: "sodium-native-binding", namespace: "mintun-sodium" }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: "mintun-sodium" }, () => ({
      contents: SODIUM_BINDING,
      loader: "js",
    }));
  },
};

export async function bundleDaemon(outdir = path.join(ROOT, "dist/daemon-bundle")) {
  fs.rmSync(outdir, { recursive: true, force: true }); // no stale chunks
  await build({
    // data-worker: the entry of a data-path worker thread (dataPath.workers > 1), found next to mintund.js
    entryPoints: {
      mintund: path.join(ROOT, "src/daemon/main.ts"),
      "data-worker": path.join(ROOT, "src/daemon/data-worker.ts"),
    },
    outdir,
    bundle: true,
    splitting: true, // metrics, web view and etcd are imported on first use
    format: "esm",
    platform: "node",
    target: "node20",
    external: DAEMON_EXTERNAL,
    plugins: [sodiumBinding],
    // bundled CommonJS packages call require() for Node's own modules
    banner: {
      js: 'import { createRequire as __mintunCreateRequire } from "node:module"; const require = __mintunCreateRequire(import.meta.url);',
    },
    logLevel: "warning",
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  await bundleDaemon(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
