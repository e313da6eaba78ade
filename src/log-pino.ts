/**
 * The pino implementation of `Logger` (src/log.ts): JSON lines, one child per component,
 * levels shared by every child, fields named like key material redacted.
 *
 * Each key appears once per line. pino writes a child's bindings after its parent's without
 * merging them, and a call's fields after both: a `c` in the base and again in a child gave
 * `"c":"mintund",...,"c":"engine"`. So `c` is bound once, on a child of a root that has none
 * (a child of a child takes the root again: the innermost component names the line), and a
 * field that would repeat a key of the line (level, time, c, msg) is written as `<name>_`.
 */
import { pino, type Logger as PinoLogger } from "pino";
import { RANK, REDACTED_FIELDS, type Level, type LogSink, type Logger } from "./log.js";

/** Keys every line has; a field of the same name is renamed `<name>_`. */
const LINE_KEYS = ["level", "time", "c", "msg"] as const;

function withoutLineKeys(fields: Record<string, unknown>): Record<string, unknown> {
  if (!LINE_KEYS.some((k) => Object.prototype.hasOwnProperty.call(fields, k))) return fields;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields))
    out[(LINE_KEYS as readonly string[]).includes(k) ? `${k}_` : k] = v;
  return out;
}

class PinoAdapter implements Logger {
  private readonly p: PinoLogger;
  constructor(
    private readonly state: { rank: number; level: Level },
    /** the pino root, without a component binding */
    private readonly root: PinoLogger,
    component: string,
  ) {
    this.p = root.child({ c: component });
  }

  enabled(level: Level): boolean {
    return RANK[level] <= this.state.rank;
  }

  log(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    if (fields) this.p[level](withoutLineKeys(fields), msg);
    else this.p[level](msg);
  }

  child(component: string): Logger {
    return new PinoAdapter(this.state, this.root, component);
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
      base: null, // no pid/hostname; the component is bound per child (PinoAdapter)
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: [...REDACTED_FIELDS, ...REDACTED_FIELDS.map((f) => `*.${f}`)],
        censor: "[redacted]",
      },
    },
    sink ?? pino.destination({ dest: 2, sync: true }),
  );
  return new PinoAdapter({ rank: RANK[level], level }, p, "mintund");
}
