/**
 * Structured logger: one JSON object per line on stderr (journald-friendly),
 * per component, written by pino. The `Logger` interface is what the rest of
 * the code sees; pino is an implementation detail of `createLogger`
 * (src/log-pino.ts), so that the protocol core loads without it.
 *
 *   {"level":"info","time":"2025-01-01T00:00:00.000Z","c":"engine","msg":"tunnel established","peer":"b"}
 *
 * Levels are checked before any formatting (`enabled()` is one comparison
 * against a level shared by every child, so `setLevel` on reload applies to
 * all components at once); hot paths call `enabled()` first.
 * Attacker-triggerable events go through `RateLimitedLog`.
 * Secrets are never passed to the logger (peers are printed as fingerprints);
 * as a second line of defence, fields named like key material are redacted.
 */
export type Level = "error" | "warn" | "info" | "debug";
export const RANK: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  enabled(level: Level): boolean;
  log(level: Level, msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
  setLevel(level: Level): void;
  /** The current level (shared by the logger and its children). */
  level(): Level;
}

export interface LogSink {
  write(line: string): void;
}

/** Field names whose values are replaced by "[redacted]" if they ever reach the logger. */
export const REDACTED_FIELDS = ["secretKey", "privateKey", "sk", "password", "token"];

export const nullLogger: Logger = {
  enabled: () => false,
  log: () => {},
  child: () => nullLogger,
  setLevel: () => {},
  level: () => "error",
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
