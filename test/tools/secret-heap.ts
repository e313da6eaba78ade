/**
 * Child process of test/unit/secrets-heap.test.ts: reads one secret-holding file the
 * way the daemon and CLI do, keeps the result reachable, and writes a heap snapshot.
 *
 *   vite-node test/tools/secret-heap.ts -- key|bundle|users FILE SNAPSHOT
 *   vite-node test/tools/secret-heap.ts -- key|bundle|users FILE -      (waits; parent scans /proc/PID/mem)
 */
import * as v8 from "node:v8";
import { readBundle, readSecretKey } from "../../src/store/keyfile.js";
import { UserStore } from "../../src/store/users.js";

const [mode, file, snapshot] = process.argv.slice(-3) as [string, string, string];
const keep: unknown[] = [];
if (mode === "key") keep.push(readSecretKey(file));
else if (mode === "bundle") keep.push(readBundle(file));
else if (mode === "users") {
  const s = UserStore.load(file);
  if (s.errors.length) throw s.errors[0];
  keep.push(s);
} else throw new Error(`unknown mode ${mode}`);
(globalThis as Record<string, unknown>).__keep = keep;
if (snapshot === "-") {
  // memory scan: the parent reads /proc/PID/mem while this process waits for stdin to close
  process.stdout.write(`ready ${file}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
} else {
  v8.writeHeapSnapshot(snapshot);
  process.stdout.write(`ok ${file}\n`);
}
