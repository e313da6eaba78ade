/**
 * WorkerSolver: the daemon's puzzle solver (src/dos/solver.ts has the interface and the
 * rules): one worker thread, a bounded FIFO queue on the main thread, one job in the
 * worker at a time. Lives outside the protocol core because it starts threads.
 */
import { Worker } from "node:worker_threads";
import { createRequire } from "node:module";
import { MAX_DIFFICULTY, SOLVE_TRIES_FACTOR, searchWork, workInput } from "../dos/puzzle.js";
import {
  SOLVER_QUEUE_JOBS,
  type PuzzleSolver,
  type SolveDone,
  type SolveJob,
  type SolveTicket,
} from "../dos/solver.js";

interface Job {
  id: number;
  input: Buffer;
  difficulty: number;
  done: SolveDone;
  cancelled: boolean;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const sodium = require(workerData.sodium);
const searchWork = (${searchWork.toString()});
const hash = (o, i) => sodium.crypto_generichash(o, i);
parentPort.on("message", (m) => {
  const r = searchWork(hash, new Uint8Array(m.input), m.difficulty, m.maxTries);
  parentPort.postMessage({ id: m.id, solution: r });
});
`;

export class WorkerSolver implements PuzzleSolver {
  private readonly queue: Job[] = [];
  private running: Job | null = null;
  private worker: Worker | null = null;
  private nextId = 1;
  private closed = false;
  private readonly sodiumPath: string;
  /** workers started (the first, and one after each cancelled running job or failure) */
  workersStarted = 0;
  /** jobs finished with a solution / without */
  solved = 0;
  failed = 0;

  constructor(
    private readonly now: () => number,
    private readonly maxJobs = SOLVER_QUEUE_JOBS,
  ) {
    this.sodiumPath = createRequire(import.meta.url).resolve("sodium-native");
  }

  get pending(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  submit(job: SolveJob, done: SolveDone): SolveTicket | null {
    if (this.closed || this.pending >= this.maxJobs || job.difficulty > MAX_DIFFICULTY) return null;
    const j: Job = {
      id: this.nextId++,
      input: workInput(job.cookie, job.tid, job.tI),
      difficulty: job.difficulty,
      done,
      cancelled: false,
    };
    this.queue.push(j);
    this.pump();
    return { cancel: () => this.cancel(j) };
  }

  private cancel(j: Job): void {
    if (j.cancelled) return;
    j.cancelled = true;
    if (this.running === j) {
      // the worker is busy with work nobody wants: stop it, the next job gets a fresh one
      this.running = null;
      this.stopWorker();
      this.pump();
      return;
    }
    const i = this.queue.indexOf(j);
    if (i >= 0) this.queue.splice(i, 1);
  }

  private startWorker(): Worker {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { sodium: this.sodiumPath } });
    w.unref();
    this.workersStarted++;
    w.on("message", (m: { id: number; solution: Uint8Array | null }) => this.onResult(w, m));
    w.on("error", () => this.onWorkerGone(w));
    w.on("exit", () => this.onWorkerGone(w));
    return w;
  }

  private stopWorker(): void {
    const w = this.worker;
    this.worker = null;
    if (w) void w.terminate();
  }

  private pump(): void {
    if (this.closed || this.running) return;
    const j = this.queue.shift();
    if (!j) return;
    this.running = j;
    this.worker ??= this.startWorker();
    const maxTries = SOLVE_TRIES_FACTOR * 2 ** j.difficulty;
    this.worker.postMessage({ id: j.id, input: j.input, difficulty: j.difficulty, maxTries });
  }

  private onResult(w: Worker, m: { id: number; solution: Uint8Array | null }): void {
    const j = this.running;
    if (w !== this.worker || !j || j.id !== m.id) return;
    this.running = null;
    const sol = m.solution ? Buffer.from(m.solution) : null;
    if (sol) this.solved++;
    else this.failed++;
    this.pump();
    if (!j.cancelled) j.done(sol, this.now());
  }

  private onWorkerGone(w: Worker): void {
    if (w !== this.worker) return;
    this.worker = null;
    const j = this.running;
    this.running = null;
    if (j && !j.cancelled) {
      this.failed++;
      j.done(null, this.now());
    }
    this.pump();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const j of this.queue) j.cancelled = true;
    this.queue.length = 0;
    if (this.running) this.running.cancelled = true;
    this.running = null;
    this.stopWorker();
  }
}
