/**
 * The daemon side of the local API (see protocol.ts). Handlers are plain
 * functions registered by the composition root; a thrown MintunError becomes
 * an error response with its code, anything else "EINTERNAL". A handler may
 * return a Promise; answers on one connection keep the order of its requests.
 *
 * Access: the socket is mode 0666, so every local user can connect. Each method is
 * registered read-only (the default: status, whois) or root-only
 * (`handle("reload", h, { root: true })`). A root-only method runs only for a caller
 * whose SO_PEERCRED uid (peercred.ts, taken once when it connects) is 0 or the daemon's
 * own effective uid; anybody else gets EPERM "needs root". Callers whose credentials
 * cannot be read count as unprivileged.
 *
 * Limits per caller (privileged callers have none), each answered with a typed error:
 *   ELIMIT      more than API_MAX_CONNS_PER_UID open connections of one uid, or more than
 *               API_MAX_CONNS_UNPRIVILEGED of all unprivileged callers: the new connection
 *               gets one error line and is closed
 *   ERATELIMIT  more than API_REQUESTS_PER_SEC requests per second of one uid (burst
 *               API_REQUESTS_BURST), or a method's own rate (`handle(m, h, { perUidPerSec })`,
 *               used for resolve, which may spend the host's directory lookups)
 * Callers whose credentials are unknown share one budget (uid -1).
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { MintunError, PlatformError } from "../errors.js";
import type { Logger } from "../log.js";
import { type PeerCred, socketPeerCred } from "./peercred.js";
import { type ApiRequest, type ApiResponse, MAX_REQUEST_BYTES } from "./protocol.js";

/** Who called: the peer credentials of the connection, and whether it may change state. */
export interface Caller {
  cred: PeerCred | null;
  privileged: boolean;
}

export type Handler = (params: Record<string, unknown>, caller: Caller) => unknown;

export interface HandlerOptions {
  /** changes state: only uid 0 (or the daemon's own uid) may call it */
  root?: boolean;
  /** calls per second per unprivileged uid (burst: 5 s worth, at least 1); default: the general rate only */
  perUidPerSec?: number;
}

/** Open API connections one unprivileged uid may hold. */
export const API_MAX_CONNS_PER_UID = 16;
/** Open API connections of all unprivileged callers together. */
export const API_MAX_CONNS_UNPRIVILEGED = 128;
/** Requests per second of one unprivileged uid, and the burst it may spend at once. */
export const API_REQUESTS_PER_SEC = 50;
export const API_REQUESTS_BURST = 100;
/** Token buckets kept (one per uid and method); the oldest go first. */
const API_BUCKETS_MAX = 4096;

export interface ApiServerOptions {
  /** credentials of an accepted connection (tests); default SO_PEERCRED */
  peerCred?: (s: net.Socket) => PeerCred | null;
  /** clock in ms (tests); default Date.now */
  now?: () => number;
  /** override the limits (tests) */
  maxConnsPerUid?: number;
  maxConnsUnprivileged?: number;
  requestsPerSec?: number;
  requestsBurst?: number;
}

export interface ApiLimitStats {
  /** connections refused with ELIMIT, requests refused with ERATELIMIT */
  connsRefused: number;
  requestsLimited: number;
}

/** One token bucket per key (uid, or uid + method). */
class UidBuckets {
  private readonly map = new Map<string, { tokens: number; at: number }>();
  take(key: string, rate: number, burst: number, now: number): boolean {
    let b = this.map.get(key);
    if (!b) {
      if (this.map.size >= API_BUCKETS_MAX) this.map.delete(this.map.keys().next().value!);
      b = { tokens: burst, at: now };
      this.map.set(key, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/** uid 0, or the uid the daemon runs as (a daemon run by an unprivileged user obeys that user). */
export function isPrivileged(cred: PeerCred | null, selfUid = process.geteuid?.() ?? 0): boolean {
  return cred !== null && (cred.uid === 0 || cred.uid === selfUid);
}

export class ApiServer {
  private readonly handlers = new Map<string, { h: Handler; root: boolean; perUidPerSec: number | null }>();
  private server: net.Server | null = null;
  /** device and inode of the socket we bound (close() unlinks the path only while it is this one) */
  private bound: { dev: number; ino: number } | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly peerCred: (s: net.Socket) => PeerCred | null;
  private readonly now: () => number;
  /** open connections per unprivileged uid (-1: credentials unknown) */
  private readonly connsByUid = new Map<number, number>();
  private unprivilegedConns = 0;
  private readonly buckets = new UidBuckets();
  private readonly lim: Required<Omit<ApiServerOptions, "peerCred" | "now">>;
  readonly limitStats: ApiLimitStats = { connsRefused: 0, requestsLimited: 0 };

  constructor(
    readonly socketPath: string,
    private readonly log: Logger,
    opts: ApiServerOptions = {},
  ) {
    this.peerCred = opts.peerCred ?? socketPeerCred;
    this.now = opts.now ?? Date.now;
    this.lim = {
      maxConnsPerUid: opts.maxConnsPerUid ?? API_MAX_CONNS_PER_UID,
      maxConnsUnprivileged: opts.maxConnsUnprivileged ?? API_MAX_CONNS_UNPRIVILEGED,
      requestsPerSec: opts.requestsPerSec ?? API_REQUESTS_PER_SEC,
      requestsBurst: opts.requestsBurst ?? API_REQUESTS_BURST,
    };
  }

  handle(method: string, h: Handler, opts: HandlerOptions = {}): void {
    this.handlers.set(method, { h, root: opts.root === true, perUidPerSec: opts.perUidPerSec ?? null });
  }

  /** Registered methods and whether each needs root (for docs and tests). */
  methods(): { method: string; root: boolean }[] {
    return [...this.handlers].map(([method, { root }]) => ({ method, root }));
  }

  /**
   * Bind under a temporary name, then rename over the socket path: a client sees the
   * old (stale) socket or ours, never none. The caller holds the socket's lock
   * (daemon/lock.ts), so whatever was at the path belonged to a daemon that is gone.
   * The inode is remembered: close() removes the path only while it is still ours.
   */
  async listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    const tmp = `${this.socketPath}.${process.pid}.tmp`;
    try {
      fs.unlinkSync(tmp); // left by a crashed run with our pid
    } catch {
      /* not there */
    }
    const srv = net.createServer((s) => this.onConnection(s));
    const fail = (e: unknown): PlatformError =>
      new PlatformError(
        "EAPI",
        `cannot listen on API socket ${this.socketPath}: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    await new Promise<void>((resolve, reject) => {
      srv.once("error", (e) => reject(fail(e)));
      srv.listen(tmp, () => resolve());
    });
    try {
      // read-only methods are open to every local user
      fs.chmodSync(tmp, 0o666);
      fs.renameSync(tmp, this.socketPath);
      const st = fs.lstatSync(this.socketPath);
      this.bound = { dev: st.dev, ino: st.ino };
    } catch (e) {
      srv.close();
      throw fail(e);
    }
    this.server = srv;
  }

  /** True while the socket path is the socket this server bound (not replaced or removed). */
  ownsPath(): boolean {
    const b = this.bound;
    if (!b) return false;
    try {
      const st = fs.lstatSync(this.socketPath);
      return st.dev === b.dev && st.ino === b.ino;
    } catch {
      return false;
    }
  }

  private onConnection(s: net.Socket): void {
    const cred = this.peerCred(s);
    const caller: Caller = { cred, privileged: isPrivileged(cred) };
    if (!caller.privileged) {
      const uid = cred?.uid ?? -1;
      const n = this.connsByUid.get(uid) ?? 0;
      const who = cred ? `uid ${uid}` : "callers whose credentials are unknown";
      const over =
        n >= this.lim.maxConnsPerUid
          ? `too many API connections for ${who} (limit ${this.lim.maxConnsPerUid})`
          : this.unprivilegedConns >= this.lim.maxConnsUnprivileged
            ? `too many API connections of unprivileged users (limit ${this.lim.maxConnsUnprivileged})`
            : null;
      if (over !== null) {
        this.limitStats.connsRefused++;
        s.on("error", () => s.destroy());
        // closed as soon as the answer is written: a flood of refused connections holds no fds
        s.write(JSON.stringify({ id: 0, error: { code: "ELIMIT", message: over } }) + "\n", () =>
          s.destroy(),
        );
        return;
      }
      this.connsByUid.set(uid, n + 1);
      this.unprivilegedConns++;
      s.on("close", () => {
        const m = (this.connsByUid.get(uid) ?? 1) - 1;
        if (m <= 0) this.connsByUid.delete(uid);
        else this.connsByUid.set(uid, m);
        this.unprivilegedConns--;
      });
    }
    this.sockets.add(s);
    let buf = "";
    // answers leave in request order, also when a handler is asynchronous
    let chain: Promise<void> = Promise.resolve();
    s.setEncoding("utf8");
    s.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST_BYTES) {
        s.destroy();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        chain = chain
          .then(() => this.dispatch(line, caller))
          .then((r) => {
            if (!s.destroyed) s.write(JSON.stringify(r) + "\n");
          });
      }
    });
    s.on("error", () => s.destroy());
    s.on("close", () => this.sockets.delete(s));
  }

  /** One request line -> its answer. Never rejects. */
  private async dispatch(line: string, caller: Caller): Promise<ApiResponse> {
    let req: ApiRequest;
    try {
      req = JSON.parse(line) as ApiRequest;
    } catch {
      return { id: 0, error: { code: "EBADREQUEST", message: "request is not JSON" } };
    }
    if (!req || typeof req !== "object")
      return { id: 0, error: { code: "EBADREQUEST", message: "request is not an object" } };
    const id = typeof req.id === "number" ? req.id : 0;
    const m = typeof req.method === "string" ? this.handlers.get(req.method) : undefined;
    if (!m) return { id, error: { code: "ENOMETHOD", message: `unknown method '${String(req.method)}'` } };
    if (m.root && !caller.privileged) {
      const who = caller.cred ? `uid ${caller.cred.uid}` : "a caller whose credentials are unknown";
      return { id, error: { code: "EPERM", message: `'${req.method}' needs root (called by ${who})` } };
    }
    if (!caller.privileged) {
      const uid = caller.cred?.uid ?? -1;
      const now = this.now();
      const who = caller.cred ? `uid ${uid}` : "callers whose credentials are unknown";
      let over: string | null = null;
      if (!this.buckets.take(`${uid}`, this.lim.requestsPerSec, this.lim.requestsBurst, now))
        over = `${who} is over the API request rate (${this.lim.requestsPerSec}/s)`;
      else if (
        m.perUidPerSec !== null &&
        !this.buckets.take(`${uid} ${req.method}`, m.perUidPerSec, Math.max(1, m.perUidPerSec * 5), now)
      )
        over = `${who} is over the rate of '${req.method}' (${m.perUidPerSec}/s)`;
      if (over !== null) {
        this.limitStats.requestsLimited++;
        return { id, error: { code: "ERATELIMIT", message: over } };
      }
    }
    try {
      const params = req.params && typeof req.params === "object" ? req.params : {};
      return { id, result: await m.h(params, caller) };
    } catch (e) {
      if (e instanceof MintunError) return { id, error: { code: e.code, message: e.message } };
      this.log.log("error", "API handler failed", { method: req.method, error: String(e) });
      return { id, error: { code: "EINTERNAL", message: "internal error" } };
    }
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (this.server) {
      this.server.close();
      this.server = null;
      // only our own socket: never one that replaced it
      if (this.ownsPath())
        try {
          fs.unlinkSync(this.socketPath);
        } catch {
          /* gone */
        }
      this.bound = null;
    }
  }
}
