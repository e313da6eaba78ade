import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // netns suites share the kernel's namespace list and ports: run files one at a time
    fileParallelism: false,
    pool: "forks",
    reporters: ["default"],
  },
});
