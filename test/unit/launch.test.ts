/**
 * The daemon's launch settings (src/daemon/launch.ts): every launcher passes them (the
 * systemd units, the Debian package's wrapper, the bench, the netns tests), status names
 * the ones a hand-started daemon lacks, and the young-generation flag does what it is for
 * only on the command line (v8.setFlagsFromString at run time is too late).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DAEMON_ENV, DAEMON_NODE_FLAGS, missingLaunchSettings } from "../../src/daemon/launch.js";
import { MemoryTrim } from "../../src/daemon/memory.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const read = (f: string): string => fs.readFileSync(path.join(ROOT, f), "utf8");
const envWords = Object.entries(DAEMON_ENV).map(([k, v]) => `${k}=${v}`);

describe("launch settings", () => {
  it("are the semi-space flag and one malloc arena", () => {
    expect(DAEMON_NODE_FLAGS).toEqual(["--max-semi-space-size=1"]);
    expect(envWords).toEqual(["MALLOC_ARENA_MAX=1"]);
  });

  it("missingLaunchSettings names what a process was started without", () => {
    expect(missingLaunchSettings([...DAEMON_NODE_FLAGS], { ...DAEMON_ENV })).toEqual([]);
    expect(missingLaunchSettings([], {})).toEqual([...DAEMON_NODE_FLAGS, ...envWords]);
    expect(missingLaunchSettings(["--max-semi-space-size=2"], { MALLOC_ARENA_MAX: "4" })).toEqual([
      ...DAEMON_NODE_FLAGS,
      ...envWords,
    ]);
    expect(missingLaunchSettings([...DAEMON_NODE_FLAGS], {})).toEqual(envWords);
  });

  it("status carries them (memory.launchMissing)", () => {
    const m = new MemoryTrim(() => true, 0, { launchMissing: ["MALLOC_ARENA_MAX=1"] });
    expect(m.status().launchMissing).toEqual(["MALLOC_ARENA_MAX=1"]);
    // the default: this very process (vitest's worker, started without them)
    expect(new MemoryTrim(() => true, 0).status().launchMissing).toEqual(missingLaunchSettings());
  });

  it("every launcher passes them", () => {
    for (const unit of ["systemd/mintund.service", "systemd/mintund@.service"]) {
      const u = read(unit);
      const exec = u.split("\n").find((l) => l.startsWith("ExecStart="))!;
      expect(exec, unit).toContain(`/usr/bin/node ${DAEMON_NODE_FLAGS.join(" ")} /opt/mintun/bin/mintund `);
      for (const w of envWords) expect(u.split("\n"), unit).toContain(`Environment=${w}`);
    }
    // the Debian package: the units' ExecStart rewritten to the wrapper, which sets both
    const pkg = read("scripts/package.sh");
    expect(pkg).toContain(
      `s#/usr/bin/node ${DAEMON_NODE_FLAGS.join(" ")} /opt/mintun/bin/mintund#/usr/sbin/mintund#g`,
    );
    const w = pkg.slice(pkg.indexOf("wrapper usr/sbin/mintund"), pkg.indexOf("for u in systemd/"));
    for (const e of envWords) expect(w).toContain(`${e}; export ${e.split("=")[0]}`);
    expect(w).toContain(`" ${DAEMON_NODE_FLAGS.join(" ")}\n`);
    // the bench
    expect(read("test/bench/mintun-cmd.sh")).toContain(
      `LAUNCH="${[...envWords, ...DAEMON_NODE_FLAGS].join(" ")}"`,
    );
    // the netns tests import them
    expect(read("test/netns/mintun.ts")).toContain("[...DAEMON_NODE_FLAGS, MINTUND,");
  });

  it("the semi-space flag bounds the young generation only when given at start", () => {
    // allocation churn that makes V8 grow the young generation, then its size (KiB)
    const script = `
      const v8 = require("node:v8");
      if (process.argv[1] === "runtime") v8.setFlagsFromString("--max-semi-space-size=1");
      let keep = [];
      for (let i = 0; i < 1e6; i++) { keep.push({ a: i, b: [i] }); if (keep.length > 20000) keep = []; }
      const ns = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
      process.stdout.write(String(ns.space_size >> 10));`;
    const run = (flags: string[], arg = ""): number =>
      Number(execFileSync(process.execPath, [...flags, "-e", script, arg], { encoding: "utf8" }));
    const plain = run([]);
    const runtime = run([], "runtime");
    const flagged = run([...DAEMON_NODE_FLAGS]);
    expect(flagged).toBeLessThanOrEqual(3 * 1024); // two 1 MiB semi-spaces (+ V8's rounding)
    expect(plain).toBeGreaterThan(2 * flagged);
    expect(runtime).toBeGreaterThan(2 * flagged);
  });
});
