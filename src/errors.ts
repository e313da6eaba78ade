/**
 * Typed errors for local input (config, CLI, API, platform calls).
 * Network input never throws: decoders return null and the caller counts a drop.
 */
export class MintunError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A configuration file is wrong: names file, line, key and what was expected. */
export class ConfigError extends MintunError {
  constructor(
    message: string,
    readonly file: string,
    readonly line: number | undefined,
    readonly key: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(
      "ECONFIG",
      `${file}${line !== undefined ? `:${line}` : ""}${key ? ` (${key})` : ""}: ${message}`,
      options,
    );
  }
}

/** Key, certificate or signature problems in local files. */
export class CertError extends MintunError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A system call or an external command (ip, sysctl) failed. */
export class PlatformError extends MintunError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * Another mintund holds the lock of this API socket (src/daemon/lock.ts): this start
 * refuses and touches nothing of the running daemon. mintund exits with EXIT_RUNNING.
 */
export class AlreadyRunningError extends MintunError {
  constructor(
    readonly pid: number | null,
    readonly socketPath: string,
    readonly lockPath: string,
  ) {
    super(
      "ERUNNING",
      `another mintund (${pid !== null ? `pid ${pid}` : "pid unknown"}) is serving ${socketPath} ` +
        `(lock ${lockPath}); stop it first, or give this daemon its own api.socket`,
    );
  }
}

/** Bad CLI usage. */
export class UsageError extends MintunError {
  constructor(message: string) {
    super("EUSAGE", message);
  }
}

export function assertNever(x: never): never {
  throw new Error(`unreachable: ${String(x)}`);
}
