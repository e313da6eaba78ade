/** HTTP listening for the metrics endpoint and the web view (each loaded only when configured). */
import type * as http from "node:http";
import { PlatformError } from "../errors.js";

/** Listen or reject with a readable error. */
export function listen(srv: http.Server, host: string, port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onErr = (e: Error) =>
      reject(
        new PlatformError("ELISTEN", `cannot listen for ${what} on ${host}:${port}: ${e.message}`, {
          cause: e,
        }),
      );
    srv.once("error", onErr);
    srv.listen(port, host, () => {
      srv.off("error", onErr);
      resolve();
    });
  });
}
