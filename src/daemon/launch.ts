/**
 * How mintund is started: the node flags and environment every launcher passes (the
 * systemd units, the Debian package's /usr/sbin/mintund, the bench and the netns tests;
 * test/unit/launch.test.ts checks that each of them does). Both shrink what the runtime
 * keeps resident under load and must be given at process start: V8 sizes its heap and
 * glibc its arenas before any of our code runs (v8.setFlagsFromString is too late for the
 * young generation). docs/PERFORMANCE.md "Memory and creation rate" has the measurements.
 *
 *  --max-semi-space-size=1   the young generation's semi-space at most 1 MiB (Node 20 grows it
 *                            to 8-16 MiB under the bench's allocation rate: RSS that holds
 *                            short-lived garbage); the data path allocates little per packet,
 *                            so more frequent scavenges cost no measurable CPU per byte
 *  MALLOC_ARENA_MAX=1        one glibc malloc arena instead of one per thread that mallocs
 *                            (V8's workers, libuv's pool): ~4 MiB less, and the periodic
 *                            malloc_trim (memory.ts) reaches all of the C heap
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=1"];
export const DAEMON_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "1" };

/** Which of the launch settings this process lacks (for status): [] when started as shipped. */
export function missingLaunchSettings(
  execArgv: readonly string[] = process.execArgv,
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const miss: string[] = DAEMON_NODE_FLAGS.filter((f) => !execArgv.includes(f));
  for (const [k, v] of Object.entries(DAEMON_ENV)) if (env[k] !== v) miss.push(`${k}=${v}`);
  return miss;
}
