/** Client side of the local API, used by the CLI. */
import * as net from "node:net";
import { MintunError } from "../errors.js";
import type { ApiResponse } from "./protocol.js";

export class ApiError extends MintunError {}

export function apiCall(
  socketPath: string,
  method: string,
  params: Record<string, unknown> = {},
  timeoutMs = 5000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath);
    let buf = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new ApiError("ETIMEDOUT", `mintund did not answer on ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.setEncoding("utf8");
    s.on("connect", () => s.write(JSON.stringify({ id: 1, method, params }) + "\n"));
    s.on("data", (c: string) => {
      buf += c;
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      clearTimeout(timer);
      s.end();
      let r: ApiResponse;
      try {
        r = JSON.parse(buf.slice(0, nl)) as ApiResponse;
      } catch {
        reject(new ApiError("EBADRESPONSE", "mintund sent a malformed answer"));
        return;
      }
      if (r.error) reject(new ApiError(r.error.code, r.error.message));
      else resolve(r.result);
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        e.code === "ENOENT" || e.code === "ECONNREFUSED"
          ? `mintund is not running (no API socket at ${socketPath})`
          : e.code === "EACCES"
            ? `permission denied on ${socketPath}`
            : `cannot reach mintund at ${socketPath}: ${e.message}`;
      reject(new ApiError(e.code ?? "EAPI", why, { cause: e }));
    });
  });
}
