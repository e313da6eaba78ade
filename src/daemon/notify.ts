/**
 * sd_notify(3) for mintund: READY=1, RELOADING=1, STOPPING=1, STATUS=...
 *
 * Node has no AF_UNIX datagram sockets, so the message is sent by the
 * `systemd-notify` program (package systemd), one spawn per state change (a
 * handful per daemon lifetime, never on a data path). The PID caveat: the
 * datagram comes from the systemd-notify process, not from mintund, so the
 * unit needs `NotifyAccess=all` (systemd/mintund.service has it), and every
 * message carries `MAINPID=<our pid>` (`--pid`) so that systemd attributes it
 * to the daemon even though the sender has already exited.
 *
 * Messages are sent in order (a promise chain); `flush()` waits for the last
 * one, which `close()` does before the process exits. Without $NOTIFY_SOCKET
 * (not started by systemd) every call is a no-op.
 */
import { spawn } from "node:child_process";
import type { Logger } from "../log.js";

export interface Notifier {
  /** State assignments, e.g. { READY: "1", STATUS: "3 peers" }. */
  notify(state: Record<string, string>): void;
  /** Resolves when every message given so far has been handed to the socket (or failed). */
  flush(): Promise<void>;
}

export const nullNotifier: Notifier = { notify: () => {}, flush: () => Promise.resolve() };

/** Formats state as systemd-notify arguments; newlines are not allowed in values. */
export function notifyArgs(pid: number, state: Record<string, string>): string[] {
  return [
    `--pid=${pid}`,
    ...Object.entries(state).map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, " ").slice(0, 400)}`),
  ];
}

export class SystemdNotifier implements Notifier {
  private chain: Promise<void> = Promise.resolve();
  private warned = false;

  constructor(
    private readonly socket: string,
    private readonly log: Logger,
    private readonly program = "systemd-notify",
    private readonly pid = process.pid,
  ) {}

  /** A notifier for $NOTIFY_SOCKET, or the no-op one when it is not set. */
  static fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): Notifier {
    const s = env.NOTIFY_SOCKET;
    return s ? new SystemdNotifier(s, log) : nullNotifier;
  }

  notify(state: Record<string, string>): void {
    const args = notifyArgs(this.pid, state);
    this.chain = this.chain.then(() => this.send(args));
  }

  flush(): Promise<void> {
    return this.chain;
  }

  private send(args: string[]): Promise<void> {
    return new Promise((resolve) => {
      let stderr = "";
      const c = spawn(this.program, args, {
        env: { ...process.env, NOTIFY_SOCKET: this.socket },
        stdio: ["ignore", "ignore", "pipe"],
      });
      c.stderr.setEncoding("utf8");
      c.stderr.on("data", (d: string) => (stderr += d.slice(0, 1000)));
      const fail = (why: string) => {
        if (!this.warned) this.log.log("warn", "sd_notify failed", { why, args });
        this.warned = true;
      };
      c.on("error", (e) => {
        fail(`${this.program}: ${e.message}`);
        resolve();
      });
      c.on("close", (code) => {
        if (code !== 0) fail(`${this.program} exited ${code}: ${stderr.trim()}`);
        else this.log.log("debug", "sd_notify", { args });
        resolve();
      });
    });
  }
}
