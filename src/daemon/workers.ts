/**
 * DataWorkers: the data path over several threads (dataPath.workers > 1, docs/ARCHITECTURE.md
 * "Many cores"). The main thread keeps queue 0 of the multi-queue TUN, socket 0 of the
 * SO_REUSEPORT group and the whole engine; each worker thread (data-worker.ts) reads one more
 * queue and one more socket with a DataPlane. Delegation (src/tunnel/delegation.ts) decides
 * what the planes may do; this file starts the threads, carries the messages and reports.
 *
 * A worker that fails (an exception, an exit) stops the daemon (onFatal): its epochs' replay
 * windows are gone with it, and no other thread may accept their counters. systemd restarts
 * the unit and the peers recover through their stall probe (docs/OPERATIONS.md).
 */
import { Worker } from "node:worker_threads";
import type { Logger } from "../log.js";
import { errorFields } from "./tasks.js";
import { native } from "../net/native.js";
import { LinuxTun } from "../net/tun.js";
import { SpreadTun } from "../net/tunspread.js";
import type { TunStats } from "../net/tun.js";
import type { UdpStats } from "../net/udp.js";
import type { Engine } from "../tunnel/engine.js";
import { Delegation, type PlanePort } from "../tunnel/delegation.js";
import type { MainMsg, PlaneCounters } from "../tunnel/dataplane.js";
import { REPORT_MS, type WorkerSetup } from "./data-worker.js";

/** The extra queues and sockets openDevices made (bringup.ts), one per worker. */
export interface ExtraQueues {
  tunName: string;
  tunOffload: number;
  tunFds: number[];
  /** every queue's fd, queue 0 (the main thread's) first: TUN writes go to queue (flow hash mod n) */
  tunAllFds: number[];
  udpFds: number[];
  family: 4 | 6;
  address: string;
  port: number;
  udpOffload: { gso: boolean; gro: boolean };
}

export interface WorkerStatus {
  index: number;
  counters: PlaneCounters;
  devices?: { tun: TunStats; udp: UdpStats };
}

export class DataWorkers {
  readonly delegation: Delegation;
  private readonly workers: Worker[] = [];
  private readonly devices = new Map<number, { tun: TunStats; udp: UdpStats }>();
  private stopped = false;

  private constructor(
    engine: Engine,
    private readonly q: ExtraQueues,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly onFatal: (why: string) => void,
  ) {
    const n = q.tunFds.length + 1;
    const ports: PlanePort[] = [];
    this.delegation = new Delegation(engine, n, ports);
    const cells = this.delegation.cells.buffer as SharedArrayBuffer;
    for (let i = 1; i < n; i++) {
      const setup: WorkerSetup = {
        index: i,
        tunFd: q.tunFds[i - 1]!,
        tunAllFds: q.tunAllFds,
        tunName: q.tunName,
        tunOffload: q.tunOffload,
        udpFd: q.udpFds[i - 1]!,
        family: q.family,
        address: q.address,
        port: q.port,
        udpOffload: q.udpOffload,
        cells,
        reportMs: REPORT_MS,
      };
      const w = new Worker(new URL("./data-worker.js", import.meta.url), { workerData: setup });
      w.on("message", (m: MainMsg & { devices?: { tun: TunStats; udp: UdpStats } }) => {
        if (m.k === "stats" && m.devices) this.devices.set(i, m.devices);
        try {
          this.delegation.onMessage(i, m, this.now());
        } catch (e) {
          this.log.log("error", "data-path worker message failed", { worker: i, ...errorFields(e) });
        }
      });
      w.on("error", (e) => this.fail(i, e));
      w.on("exit", (code) => {
        if (!this.stopped) this.fail(i, new Error(`exited with code ${code}`));
      });
      ports.push({ index: i, post: (m, transfer) => w.postMessage(m, transfer) });
      this.workers.push(w);
    }
  }

  static start(
    engine: Engine,
    q: ExtraQueues,
    log: Logger,
    now: () => number,
    onFatal: (why: string) => void,
  ): DataWorkers {
    const d = new DataWorkers(engine, q, log, now, onFatal);
    log.log("info", "data path over threads", { workers: q.tunFds.length + 1, tun: q.tunName, port: q.port });
    return d;
  }

  private fail(i: number, e: unknown): void {
    if (this.stopped) return;
    this.log.log("error", "data-path worker failed: stopping (its replay windows are lost)", {
      worker: i,
      ...errorFields(e),
    });
    this.onFatal(`data-path worker ${i} failed`);
  }

  /** After each batch of the main thread's queue/socket. */
  afterBatch(now: number): void {
    this.delegation.afterBatch(now);
  }

  tick(now: number): void {
    this.delegation.sync(now);
  }

  status(): { workers: number; slots: number; handled: Delegation["handled"]; threads: WorkerStatus[] } {
    const d = this.delegation;
    return {
      workers: d.n,
      slots: d.slots,
      handled: { ...d.handled },
      threads: this.workers.map((_, k) => ({
        index: k + 1,
        counters: d.planeCounters[k + 1]!,
        devices: this.devices.get(k + 1),
      })),
    };
  }

  /** Stop the workers (they zero their keys), then close the fds they read. */
  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.delegation.stop();
    const fds = [...this.q.tunFds, ...this.q.udpFds];
    const addon = native();
    let left = this.workers.length;
    const closeFds = () => {
      for (const fd of fds) addon.closeFd(fd);
    };
    if (left === 0) closeFds();
    for (const w of this.workers) {
      // the stop message is handled (keys zeroed, reading stopped) before the thread ends
      const t = setTimeout(() => void w.terminate(), 1000);
      t.unref();
      w.once("exit", () => {
        clearTimeout(t);
        if (--left === 0) closeFds();
      });
      w.unref();
    }
  }
}

/**
 * The main thread's TUN writer: queue 0 (its reading device) and the workers' queues, by
 * flow hash (src/net/tunspread.ts: the kernel then sends each flow to the queue it is
 * written to, whichever thread received it).
 */
export function spreadWriter(tun: LinuxTun, q: ExtraQueues): SpreadTun {
  return new SpreadTun([tun, ...q.tunFds.map((fd) => LinuxTun.adopt(fd, q.tunName, q.tunOffload))]);
}

/**
 * Start the workers of a daemon. A failed worker is fatal: the daemon closes (keys zeroed)
 * and the process exits 70, as after any broken invariant (main.ts); systemd restarts it.
 */
export function startWorkers(
  d: { close(): void },
  engine: Engine,
  q: ExtraQueues,
  log: Logger,
  now: () => number,
): DataWorkers {
  return DataWorkers.start(engine, q, log, now, () => {
    d.close();
    process.exit(70);
  });
}
