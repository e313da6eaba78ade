/**
 * The pino implementation of `Logger` (src/log.ts): JSON lines, one child per component,
 * levels shared by every child, fields named like key material redacted.
 */
import { pino, type Logger as PinoLogger } from "pino";
import { RANK, REDACTED_FIELDS, type Level, type LogSink, type Logger } from "./log.js";

class PinoAdapter implements Logger {
  constructor(
    private readonly state: { rank: number; level: Level },
    private readonly p: PinoLogger,
  ) {}

  enabled(level: Level): boolean {
    return RANK[level] <= this.state.rank;
  }

  log(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    if (fields) this.p[level](fields, msg);
    else this.p[level](msg);
  }

  child(component: string): Logger {
    return new PinoAdapter(this.state, this.p.child({ c: component }));
  }

  setLevel(level: Level): void {
    this.state.rank = RANK[level];
    this.state.level = level;
  }

  level(): Level {
    return this.state.level;
  }
}

/**
 * A logger writing JSON lines to `sink` (default: stderr, written synchronously
 * so that nothing is lost when the process exits after a fatal error).
 */
export function createLogger(level: Level, sink?: LogSink): Logger {
  const p = pino(
    {
      level: "debug", // filtering happens in PinoAdapter.enabled (shared, reloadable)
      base: { c: "mintund" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [...REDACTED_FIELDS, ...REDACTED_FIELDS.map((f) => `*.${f}`)],
        censor: "[redacted]",
      },
    },
    sink ?? pino.destination({ dest: 2, sync: true }),
  );
  return new PinoAdapter({ rank: RANK[level], level }, p);
}
