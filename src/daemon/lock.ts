/**
 * One daemon per API socket. Before mintund touches anything (TUN, UDP, routes, the
 * socket), it takes an exclusive flock(2) on `<api.socket>.lock` through the addon
 * (platform/linux/lockfile.c) and keeps the fd open for its whole life. A second
 * mintund with the same api.socket fails to take it and refuses to start with an
 * AlreadyRunningError naming the holder's pid (written into the lock file); the first
 * daemon, its socket and its tunnels are untouched.
 *
 * The kernel drops the lock when the holder exits, also on kill -9 or a crash, so a
 * lock file never goes stale and is never removed (removing it would let two daemons
 * lock two different files under one name). The pid in the file is information for
 * the message only; the lock is the flock, not the file's content.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { AlreadyRunningError } from "../errors.js";
import { native, toPlatformError } from "../net/native.js";

export const LOCK_SUFFIX = ".lock";
/** mintund's exit status when it refuses to start because another daemon holds the lock. */
export const EXIT_RUNNING = 3;

export function lockPathOf(socketPath: string): string {
  return socketPath + LOCK_SUFFIX;
}

export class DaemonLock {
  private fd: number | null;

  private constructor(
    fd: number,
    readonly path: string,
  ) {
    this.fd = fd;
  }

  /**
   * Take the lock of an API socket (creates its directory, mode 0755, and the lock file).
   * AlreadyRunningError when another process holds it; PlatformError when the file cannot
   * be opened or locked for another reason.
   */
  static acquire(socketPath: string, pid = process.pid): DaemonLock {
    const lp = lockPathOf(socketPath);
    try {
      fs.mkdirSync(path.dirname(lp), { recursive: true, mode: 0o755 });
    } catch (e) {
      throw toPlatformError(`cannot create the directory of ${lp}`, e);
    }
    let fd: number;
    try {
      fd = native().lockFile(lp);
    } catch (e) {
      if ((e as { code?: unknown }).code === "EAGAIN")
        throw new AlreadyRunningError(readHolder(lp), socketPath, lp);
      throw toPlatformError(`cannot lock ${lp}`, e);
    }
    try {
      // who holds it, for the refusal message of a second daemon
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, `${pid}\n`, 0);
    } catch (e) {
      native().closeFd(fd);
      throw toPlatformError(`cannot write ${lp}`, e);
    }
    return new DaemonLock(fd, lp);
  }

  get held(): boolean {
    return this.fd !== null;
  }

  /** Release the lock (the file stays). Idempotent. */
  release(): void {
    if (this.fd === null) return;
    native().closeFd(this.fd);
    this.fd = null;
  }
}

/** The pid written by the holder; null when unreadable or not yet written. */
function readHolder(lp: string): number | null {
  try {
    const n = Number.parseInt(fs.readFileSync(lp, "utf8").trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}
