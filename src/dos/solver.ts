/**
 * Puzzle solvers for the creator's side (docs/PROTOCOL.md "Puzzles"). A PUZZLE
 * is unauthenticated: anyone who saw a CREATE's TID and key id can send one,
 * so the work it asks for must never run on the event loop.
 *
 *   WorkerSolver   the daemon's (src/daemon/puzzle-worker.ts: threads are I/O, not
 *                  the protocol core's): one worker thread (node:worker_threads), a
 *                  bounded FIFO queue kept on the main thread, one job in the
 *                  worker at a time. Cancelling the running job (its creation
 *                  got its REPLY, timed out or was closed) terminates the worker;
 *                  the next job starts a fresh one. The worker is unref()'d.
 *   InlineSolver   solves on the calling thread: the in-process test network,
 *                  tools and benchmarks, where a synchronous answer keeps
 *                  scenarios deterministic.
 *
 * The engine bounds what reaches a solver (difficulty cap, one job per
 * creation attempt, PUZZLE_SOLVES_PER_PEER per window); the solver bounds its
 * queue (a full queue refuses the job: counted `puzzleBusy` by the engine).
 * The hash loop is `searchWork` from puzzle.ts, one implementation for both.
 */
import { solve } from "./puzzle.js";

export interface SolveJob {
  cookie: Buffer;
  tid: Buffer;
  tI: Buffer;
  difficulty: number;
}

/** Called once per job that was not cancelled: the solution, or null (gave up / solver failed). */
export type SolveDone = (solution: Buffer | null, now: number) => void;

export interface SolveTicket {
  /** Forget the job (idempotent); `done` is not called after this. */
  cancel(): void;
}

export interface PuzzleSolver {
  /** Queue a job; null when the queue is full (the job is refused). */
  submit(job: SolveJob, done: SolveDone): SolveTicket | null;
  /** jobs queued or running */
  readonly pending: number;
  close(): void;
}

/** Jobs queued (including the running one) before the solver refuses more. */
export const SOLVER_QUEUE_JOBS = 8;

const NOOP_TICKET: SolveTicket = { cancel() {} };

/** Solves at once on the calling thread (tests, tools). `now` is the caller's clock. */
export class InlineSolver implements PuzzleSolver {
  readonly pending = 0;
  constructor(private readonly now: () => number = () => 0) {}
  submit(job: SolveJob, done: SolveDone): SolveTicket {
    done(solve(job.cookie, job.tid, job.tI, job.difficulty), this.now());
    return NOOP_TICKET;
  }
  close(): void {}
}
