/**
 * `npm run soak`: the soak network (test/soak/soaknet.ts) with the config's default
 * timings for SOAK_MINUTES (default 30). Prints progress every minute and the figures at
 * the end; with SOAK_OUT=DIR keeps the daemons' logs and writes DIR/report.txt.
 * Exit code 1 when a daemon exited, an unexpected error was counted, a ping gap exceeded
 * 1 s or a flow failed. Needs root (namespaces) and `npm run build`.
 *
 *   SOAK_MINUTES=120 SOAK_OUT=/var/tmp/mintun-soak npm run soak
 *   SOAK_SHORT=1 SOAK_MINUTES=1.5 npm run soak     # the suite's shortened timings
 */
import { DEFAULT_TIMINGS, formatSoak, runSoak, SHORT_TIMINGS } from "./soaknet.js";

const minutes = Number(process.env.SOAK_MINUTES ?? "30");
if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) {
  console.error(
    `soak: SOAK_MINUTES must be a number of minutes in (0, 1440], got '${process.env.SOAK_MINUTES}'`,
  );
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error("soak: needs root (network namespaces, TUN)");
  process.exit(2);
}
const durationSec = Math.round(minutes * 60);
const short = process.env.SOAK_SHORT === "1";
const stamp = (): string => new Date().toISOString().slice(11, 19);
console.log(`[soak ${stamp()}] ${minutes} min, ${short ? "shortened" : "default"} timings`);
const r = await runSoak({
  durationSec,
  timings: short ? SHORT_TIMINGS : DEFAULT_TIMINGS,
  delayMs: 10,
  sampleSec: durationSec > 600 ? 10 : 2,
  tcpMbit: 5,
  udpMbit: 1,
  outDir: process.env.SOAK_OUT,
  progress: (l) => console.log(`[soak ${stamp()}] ${l}`),
});
console.log(formatSoak(r));
const bad =
  r.daemons.some((d) => d.exited !== null || d.unexpectedErrors !== 0) ||
  r.ping.gapsOver1s > 0 ||
  r.tcp.error !== null ||
  r.udp.error !== null;
process.exit(bad ? 1 : 0);
