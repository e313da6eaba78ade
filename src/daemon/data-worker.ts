/**
 * Entry of a data-path worker thread (dataPath.workers > 1, docs/ARCHITECTURE.md "Many
 * cores"): one TUN queue and one socket of the SO_REUSEPORT group, opened by the main thread
 * (src/daemon/workers.ts) and read here, and a DataPlane (src/tunnel/dataplane.ts) for the
 * established tunnels the main thread hands over. The fds belong to the main thread: this
 * thread only stops reading them (release) and never closes them.
 */
import { parentPort, workerData } from "node:worker_threads";
import { LinuxTun } from "../net/tun.js";
import { LinuxUdp } from "../net/udp.js";
import { SpreadTun } from "../net/tunspread.js";
import { DataPlane, type MainMsg, type PlaneMsg } from "../tunnel/dataplane.js";
import { BatchOutput } from "./output.js";

/** what the main thread passes (workers.ts WorkerSetup) */
export interface WorkerSetup {
  index: number;
  tunFd: number;
  tunAllFds: number[];
  tunName: string;
  tunOffload: number;
  udpFd: number;
  family: 4 | 6;
  address: string;
  port: number;
  udpOffload: { gso: boolean; gro: boolean };
  cells: SharedArrayBuffer;
  reportMs: number;
}

/** Figures and times go back to the main thread this often. */
export const REPORT_MS = 100;

function run(port: NonNullable<typeof parentPort>, w: WorkerSetup): void {
  const tun = LinuxTun.adopt(w.tunFd, w.tunName, w.tunOffload);
  const udp = LinuxUdp.adopt(w.udpFd, w.family, w.address, w.port, w.udpOffload);
  // writes go to queue (flow hash mod n), this thread's own queue object among them (tunspread.ts)
  const writers = w.tunAllFds.map((fd, k) =>
    k === w.index ? tun : LinuxTun.adopt(fd, w.tunName, w.tunOffload),
  );
  const out = new BatchOutput(udp, new SpreadTun(writers));
  const post = (m: MainMsg, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);
  const plane = new DataPlane(out, post, new Int32Array(w.cells));
  tun.start((b) => plane.onTunBatch(b, Date.now()));
  udp.start((b) => plane.onUdpBatch(b, Date.now()));
  const timer = setInterval(() => {
    const r = plane.report();
    if (r) port.postMessage({ ...r, devices: { tun: tun.stats(), udp: udp.stats() } });
  }, w.reportMs);
  port.on("message", (m: PlaneMsg) => {
    plane.onMessage(m, Date.now());
    if (m.k === "stop") {
      clearInterval(timer);
      tun.release();
      udp.release();
      port.close();
    }
  });
}

if (parentPort) run(parentPort, workerData as WorkerSetup);
