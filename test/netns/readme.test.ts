/**
 * The README walkthrough ("Using it") as a test, in the built clone: the
 * machinery (README blocks extracted at run time, one root shell per host in a
 * namespace with its own /etc, /var and /run, emulated scp) is in walkthrough.ts;
 * package.test.ts runs the same blocks against the installed Debian package.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { REPO, Walkthrough } from "./walkthrough.js";

describe.skipIf(process.getuid?.() !== 0)("README walkthrough, as typed (netns)", () => {
  const w = new Walkthrough();

  beforeAll(() => w.start({ cwd: REPO }), 30_000);
  afterAll(() => w.stop(), 30_000);

  it(
    "runs every block of README 'Using it' on its host: ping, curl by name, status",
    () => w.runReadme(),
    90_000,
  );
});
