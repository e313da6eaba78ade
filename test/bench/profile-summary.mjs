#!/usr/bin/env node
// profile-summary.mjs FILE.cpuprofile [N=25] [UNDER] - top N functions by self time.
// UNDER: only samples whose stack holds a function of that name (e.g. `asB`, the timed
// responder work of create-bench.mjs); percentages are then of those samples.
// Reads a V8 CPU profile (node --cpu-prof), sums self samples per function
// (name + url + line), and prints a markdown table with percentages of all samples,
// plus the share of idle / GC / native ("(program)") time.
import * as fs from "node:fs";
import * as path from "node:path";

const [file, nArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: profile-summary.mjs FILE.cpuprofile [N]");
  process.exit(2);
}
const N = Number(nArg ?? 25);
const under = process.argv[4];
const prof = JSON.parse(fs.readFileSync(file, "utf8"));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
/** node `id` runs inside a frame named `under` (always true without UNDER) */
function inside(id) {
  if (!under) return true;
  for (let x = id; x !== undefined; x = parent.get(x))
    if (byId.get(x).callFrame.functionName === under) return true;
  return false;
}

// self time per node: from the sample deltas when present, else sample counts
const selfUs = new Map();
const samples = prof.samples ?? [];
const deltas = prof.timeDeltas ?? [];
for (let i = 0; i < samples.length; i++) {
  // timeDeltas[i] is the time before sample i; attribute the next delta to sample i
  const dt = i + 1 < deltas.length ? deltas[i + 1] : 0;
  if (!inside(samples[i])) continue;
  selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(dt, 0));
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0) || 1;

const short = (url) => {
  if (!url) return "";
  const u = url.replace(/^file:\/\//, "");
  const i = u.indexOf("/dist/");
  if (i >= 0) return u.slice(i + 1);
  const j = u.indexOf("/node_modules/");
  if (j >= 0) return u.slice(j + 1);
  return u.startsWith("node:") ? u : path.basename(u);
};

const agg = new Map();
for (const [id, us] of selfUs) {
  const n = byId.get(id);
  const cf = n.callFrame;
  const name = cf.functionName || "(anonymous)";
  const key = `${name}\t${short(cf.url)}:${cf.lineNumber + 1}`;
  agg.set(key, (agg.get(key) ?? 0) + us);
}
const rows = [...agg.entries()].sort((a, b) => b[1] - a[1]);
const durS = (prof.endTime - prof.startTime) / 1e6;
const pct = (x) => ((100 * x) / total).toFixed(1);
const special = (nm) => rows.filter(([k]) => k.startsWith(nm + "\t")).reduce((a, [, v]) => a + v, 0);
console.log(
  `${path.basename(file)}: ${durS.toFixed(1)} s profiled, ${samples.length} samples; ` +
    `(idle) ${pct(special("(idle)"))}%, (program) ${pct(special("(program)"))}%, ` +
    `(garbage collector) ${pct(special("(garbage collector)"))}%\n`,
);
console.log("| # | self % | self ms | function | location |");
console.log("|---|---|---|---|---|");
rows.slice(0, N).forEach(([k, us], i) => {
  const [name, loc] = k.split("\t");
  console.log(`| ${i + 1} | ${pct(us)} | ${(us / 1000).toFixed(0)} | \`${name}\` | ${loc} |`);
});
