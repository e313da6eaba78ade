/**
 * sd_notify(3) for mintund: READY=1, RELOADING=1, STOPPING=1, STATUS=...
 *
 * The message is one datagram to $NOTIFY_SOCKET sent from mintund's own process through the
 * native addon (platform/linux/notify.c: Node's dgram has no AF_UNIX sockets). systemd reads
 * the sender's pid from the socket credentials, so the unit uses `NotifyAccess=main`: no
 * other process of the service can claim readiness (with the former systemd-notify helper
 * the datagram came from a child and the unit needed NotifyAccess=all). MAINPID=<pid> is
 * still sent (systemd accepts it from the main process; harmless).
 *
 * Sends are synchronous and non-blocking (MSG_DONTWAIT), in call order; `flush()` resolves
 * at once (kept for callers that wait before exiting). A failure is logged once as a warning.
 * Without $NOTIFY_SOCKET (not started by systemd) every call is a no-op.
 */
import type { Logger } from "../log.js";
import { native } from "../net/native.js";

export interface Notifier {
  /** State assignments, e.g. { READY: "1", STATUS: "3 peers" }. */
  notify(state: Record<string, string>): void;
  /** Resolves when every message given so far has been handed to the socket (or failed). */
  flush(): Promise<void>;
}

export const nullNotifier: Notifier = { notify: () => {}, flush: () => Promise.resolve() };

/** Longest value sent (STATUS= is a human line; systemd shows it in `systemctl status`). */
const MAX_VALUE_CHARS = 400;

/** The datagram: MAINPID first, then KEY=value lines; newlines in values become spaces. */
export function notifyMessage(pid: number, state: Record<string, string>): string {
  return [
    `MAINPID=${pid}`,
    ...Object.entries(state).map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, " ").slice(0, MAX_VALUE_CHARS)}`),
  ].join("\n");
}

export type DatagramSend = (path: string, message: Uint8Array) => void;

export class SystemdNotifier implements Notifier {
  private warned = false;

  constructor(
    private readonly socket: string,
    private readonly log: Logger,
    private readonly send: DatagramSend = (p, m) => native().notifySend(p, m),
    private readonly pid = process.pid,
  ) {}

  /** A notifier for $NOTIFY_SOCKET, or the no-op one when it is not set. */
  static fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): Notifier {
    const s = env.NOTIFY_SOCKET;
    return s ? new SystemdNotifier(s, log) : nullNotifier;
  }

  notify(state: Record<string, string>): void {
    const msg = notifyMessage(this.pid, state);
    try {
      this.send(this.socket, Buffer.from(msg, "utf8"));
      this.log.log("debug", "sd_notify", { message: msg });
    } catch (e) {
      if (!this.warned)
        this.log.log("warn", "sd_notify failed", {
          socket: this.socket,
          code: (e as NodeJS.ErrnoException).code,
          why: (e as Error).message,
          message: msg,
        });
      this.warned = true;
    }
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }
}
