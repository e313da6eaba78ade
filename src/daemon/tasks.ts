/**
 * Periodic and event-driven tasks of the daemon, each run under a guard.
 *
 * An unexpected error (a bug: anything thrown where the code expects no
 * throw) inside a periodic task - the engine tick (ephemeral rotation, rekey,
 * keepalive, idle close), the directory tick (re-registration, lookups, store
 * flush), the subnet-route sync, the metrics sampler - or inside one batch of
 * the data path is logged at error level with its fields, counted per task
 * (status `daemon.unexpectedErrors`, metric `mintun_unexpected_errors_total`)
 * and does not stop the process: the next tick runs, the next batch is read.
 *
 * What still aborts the process (exit code 70, restarted by systemd): an
 * exception outside every guarded entry point (`uncaughtException` /
 * `unhandledRejection`, logged as one fatal line first), an allocation
 * failure, and a failed start-up (typed errors, exit code 1). These are
 * invariant breaks the daemon cannot contain: state of unknown shape.
 * docs/OPERATIONS.md ("Failures") lists the same.
 */
import type { Logger } from "../log.js";

/** Names of the guarded tasks (a closed set: metric label values stay bounded). */
export const TASKS = [
  "engine.tick",
  "directory.tick",
  "subnet.sync",
  "sampler",
  "tun.batch",
  "udp.batch",
  "address.change",
  "reload",
  "memory.trim",
  "web.request",
  "records.sync",
  "workers.sync",
] as const;
export type TaskName = (typeof TASKS)[number];

/** Log at most this many stacks per task per minute (the counter counts them all). */
const LOG_PER_MINUTE = 5;

export class TaskGuard {
  /** unexpected errors per task since start */
  readonly errors: Record<TaskName, number> = Object.fromEntries(TASKS.map((t) => [t, 0])) as Record<
    TaskName,
    number
  >;
  private readonly logged = new Map<TaskName, { minute: number; n: number }>();

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Run `fn`; an exception is counted and logged, never rethrown. */
  run(task: TaskName, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.fail(task, e);
    }
  }

  /** Wrap a callback (a timer or a device's batch callback) in the guard. */
  wrap<A extends unknown[]>(task: TaskName, fn: (...a: A) => void): (...a: A) => void {
    return (...a: A) => this.run(task, () => fn(...a));
  }

  /** Count and log one unexpected error of `task` (also for rejected promises). */
  fail(task: TaskName, e: unknown): void {
    this.errors[task]++;
    const minute = Math.floor(this.now() / 60_000);
    const l = this.logged.get(task);
    if (l && l.minute === minute && l.n >= LOG_PER_MINUTE) return;
    if (l && l.minute === minute) l.n++;
    else this.logged.set(task, { minute, n: 1 });
    this.log.log("error", "unexpected error in a periodic task; it runs again on its next turn", {
      task,
      count: this.errors[task],
      ...errorFields(e),
    });
  }

  get total(): number {
    let n = 0;
    for (const t of TASKS) n += this.errors[t];
    return n;
  }
}

/** The loggable fields of a thrown value: name, code, message, stack. */
export function errorFields(e: unknown): Record<string, unknown> {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return {
      error: e.name,
      ...(typeof code === "string" ? { code } : {}),
      message: e.message,
      stack: e.stack?.split("\n").slice(1, 8).join(" | ") ?? null,
    };
  }
  return { error: typeof e, message: String(e) };
}
