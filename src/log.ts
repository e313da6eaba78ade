/**
 * Structured logger: one JSON object per line on stderr (journald-friendly),
 * per component. Levels are checked before any formatting; hot paths call
 * `enabled()` first. Attacker-triggerable events go through `RateLimitedLog`.
 * Secrets are never passed to the logger: peers are printed as fingerprints.
 */
export type Level = "error" | "warn" | "info" | "debug";
const RANK: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  enabled(level: Level): boolean;
  log(level: Level, msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
  setLevel(level: Level): void;
}

export interface LogSink {
  write(line: string): void;
}

class JsonLogger implements Logger {
  constructor(
    private readonly state: { level: number; sink: LogSink },
    private readonly component: string,
  ) {}

  enabled(level: Level): boolean {
    return RANK[level] <= this.state.level;
  }

  log(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    const rec = { t: new Date().toISOString(), level, c: this.component, msg, ...fields };
    this.state.sink.write(JSON.stringify(rec) + "\n");
  }

  child(component: string): Logger {
    return new JsonLogger(this.state, component);
  }

  setLevel(level: Level): void {
    this.state.level = RANK[level];
  }
}

export function createLogger(level: Level, sink: LogSink = process.stderr): Logger {
  return new JsonLogger({ level: RANK[level], sink }, "mintund");
}

export const nullLogger: Logger = {
  enabled: () => false,
  log: () => {},
  child: () => nullLogger,
  setLevel: () => {},
};

/** At most `perInterval` lines per key per interval; the rest are counted and summarised. */
export class RateLimitedLog {
  private windows = new Map<string, { start: number; n: number; suppressed: number }>();
  constructor(
    private readonly logger: Logger,
    private readonly perInterval = 5,
    private readonly intervalMs = 10_000,
  ) {}

  log(now: number, level: Level, key: string, msg: string, fields?: () => Record<string, unknown>): void {
    if (!this.logger.enabled(level)) return;
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.intervalMs) {
      if (w && w.suppressed > 0) this.logger.log(level, `${key}: ${w.suppressed} more suppressed`);
      w = { start: now, n: 0, suppressed: 0 };
      if (this.windows.size > 1000) this.windows.clear();
      this.windows.set(key, w);
    }
    if (w.n < this.perInterval) {
      w.n++;
      this.logger.log(level, msg, fields?.());
    } else w.suppressed++;
  }
}
