"use strict";
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS on purpose: this loader must not start the ESM loader */
// mintun CLI loader (dist/cli-bundle/mintun.cjs; copied there by scripts/bundle-cli.mjs): runs
// the bundle mintun-main.cjs beside it with V8's code cache mintun-main.cjs.cache, made at
// build time by running the bundle once. V8 checks the cache against the source and its own
// version and flags; a cache that does not fit (another node) is ignored and the bundle is
// compiled as usual. Only `node:fs` and `node:vm` are loaded here: `node:module` would start
// node's ESM loader, which is what this CommonJS entry avoids (docs/PERFORMANCE.md "CLI start").
const fs = require("node:fs");
const vm = require("node:vm");
const file = __dirname + "/mintun-main.cjs";
const cacheFile = file + ".cache";
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  cachedData = undefined; // no cache: compile
}
// the CommonJS wrapper; `require` is this file's, which resolves as the bundle's would (same directory)
const source =
  "(function (exports, require, module, __filename, __dirname) {" + fs.readFileSync(file, "utf8") + "\n})";
const script = new vm.Script(source, { filename: file, cachedData });
/** "used", "rejected" (compiled instead) or "none": the CLI tests read it */
globalThis.__mintunCodeCache =
  cachedData === undefined ? "none" : script.cachedDataRejected ? "rejected" : "used";
const mod = { exports: {} };
script.runInThisContext().call(mod.exports, mod.exports, require, mod, file, __dirname);
// build time only (scripts/bundle-cli.mjs): write the cache after a run, so that it holds the
// functions this run compiled too (the CLI's start and a status call up to the socket)
if (process.env.MINTUN_CLI_WRITE_CODE_CACHE === cacheFile)
  process.on("exit", () => fs.writeFileSync(cacheFile, script.createCachedData()));
