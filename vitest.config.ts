import { defineConfig } from "vitest/config";

/**
 * Two projects. "fast" (unit, property, in-process; no shared state) can run its files in
 * parallel: scripts/test.sh runs it with --fileParallelism. "netns" (real daemons in
 * namespaces) runs one file at a time: its latency and gap assertions need the CPU, and
 * the default here stays serial so that a bare `vitest run` is safe too.
 */
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default"],
    fileParallelism: false,
    projects: [
      {
        extends: true,
        test: {
          name: "fast",
          include: ["test/unit/**/*.test.ts", "test/property/**/*.test.ts", "test/inproc/**/*.test.ts"],
        },
      },
      {
        extends: true,
        test: {
          name: "netns",
          include: ["test/netns/**/*.test.ts"],
        },
      },
    ],
  },
});
