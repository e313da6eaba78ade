/**
 * The daemon side of the local API (see protocol.ts). Handlers are plain
 * functions registered by the composition root; a thrown MintunError becomes
 * an error response with its code, anything else "EINTERNAL".
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { MintunError, PlatformError } from "../errors.js";
import type { Logger } from "../log.js";
import { type ApiRequest, type ApiResponse, MAX_REQUEST_BYTES } from "./protocol.js";

/** A handler may return a Promise (e.g. a directory lookup); answers keep the order of requests per connection only for synchronous handlers. */
export type Handler = (params: Record<string, unknown>) => unknown;

export class ApiServer {
  private readonly handlers = new Map<string, Handler>();
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    readonly socketPath: string,
    private readonly log: Logger,
  ) {}

  handle(method: string, h: Handler): void {
    this.handlers.set(method, h);
  }

  async listen(): Promise<void> {
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true, mode: 0o755 });
    try {
      fs.unlinkSync(this.socketPath); // a stale socket from a crashed run
    } catch {
      /* not there */
    }
    const srv = net.createServer((s) => this.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      srv.once("error", (e) =>
        reject(
          new PlatformError("EAPI", `cannot listen on API socket ${this.socketPath}: ${e.message}`, {
            cause: e,
          }),
        ),
      );
      srv.listen(this.socketPath, () => resolve());
    });
    // read-only methods are open to every local user
    fs.chmodSync(this.socketPath, 0o666);
    this.server = srv;
  }

  private onConnection(s: net.Socket): void {
    this.sockets.add(s);
    let buf = "";
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
        if (line.trim())
          void this.dispatch(line).then((r) => {
            if (!s.destroyed) s.write(JSON.stringify(r) + "\n");
          });
      }
    });
    s.on("error", () => s.destroy());
    s.on("close", () => this.sockets.delete(s));
  }

  private async dispatch(line: string): Promise<ApiResponse> {
    let req: ApiRequest;
    try {
      req = JSON.parse(line) as ApiRequest;
    } catch {
      return { id: 0, error: { code: "EBADREQUEST", message: "request is not JSON" } };
    }
    const id = typeof req.id === "number" ? req.id : 0;
    const h = typeof req.method === "string" ? this.handlers.get(req.method) : undefined;
    if (!h) return { id, error: { code: "ENOMETHOD", message: `unknown method '${String(req.method)}'` } };
    try {
      return { id, result: await h(req.params && typeof req.params === "object" ? req.params : {}) };
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
      try {
        fs.unlinkSync(this.socketPath);
      } catch {
        /* gone */
      }
    }
  }
}
