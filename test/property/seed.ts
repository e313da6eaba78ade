/**
 * One seed for every fast-check property of a test file, so that any failure can
 * be run again exactly. Import it (for its effect) before the first property:
 *
 *   import "./seed.js";            // test/property/*
 *   import "../property/seed.js";  // property tests elsewhere
 *
 * The seed is MINTUN_PROPERTY_SEED when set (a 32-bit integer), a random one
 * otherwise. A failing property prints fast-check's own report
 * (`{ seed: S, path: "..." }`, the shrunk counterexample), and every failing test
 * of a file that imports this prints the line to run it again:
 *
 *   [property] <test>: MINTUN_PROPERTY_SEED=S npx vitest run <file>
 *
 * Inputs the properties take from outside the generators (fresh keys and TIDs in
 * the in-process harness) still differ between runs; the generated values
 * (mutation positions, lengths, types, bytes) are the same for the same seed.
 */
import * as path from "node:path";
import fc from "fast-check";
import { beforeEach } from "vitest";

export const SEED_ENV = "MINTUN_PROPERTY_SEED";

/** The seed from `value` (the environment variable), or a random 32-bit one. Throws on a malformed value. */
export function propertySeed(value: string | undefined = process.env[SEED_ENV]): number {
  const v = value?.trim();
  if (!v) return (Math.random() * 2 ** 32) | 0;
  const n = /^-?\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < -(2 ** 31) || n >= 2 ** 32)
    throw new Error(`${SEED_ENV}=${value}: expected a 32-bit integer`);
  return n | 0;
}

export const SEED = propertySeed();

fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: SEED });

beforeEach(({ onTestFailed, task }) => {
  onTestFailed(() => {
    const file = task.file?.filepath ? ` ${path.relative(process.cwd(), task.file.filepath)}` : "";
    console.error(`[property] ${task.name}: ${SEED_ENV}=${SEED} npx vitest run${file}`);
  });
});
