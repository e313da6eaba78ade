/**
 * The live web view (docs/OPERATIONS.md "Live web view"): a page rendered on the daemon
 * (web-render.ts) with the host, its tunnels (age, last rekey, RTT, path), peers,
 * connections by user and certificate expiry warnings, plus a per-peer throughput chart
 * drawn in the browser with uPlot from the bounded history (history.ts PeerHistory).
 *
 *   GET /               the page, complete before any script runs
 *   GET /panel          the page's tables alone (the script swaps them in once a second)
 *   GET /state.json     the state behind the page (status, events, connection groups, users)
 *   GET /history.json   the throughput history: time axis and rx/tx rates per peer
 *   GET /assets/...     uplot.js, uplot.css (from the uplot npm package), view.js, view.css
 *
 * Served on `web.listen`, a loopback address (config refuses others): it has no
 * authentication, like the read-only API socket. Requests whose Host header is not a
 * loopback name are refused (DNS rebinding), and the page runs under a
 * Content-Security-Policy that allows scripts, styles and fetches from itself only (no
 * inline script, nothing from the network).
 */
import * as fs from "node:fs";
import * as http from "node:http";
import { createRequire } from "node:module";
import { PlatformError } from "../errors.js";
import type { HistoryData } from "./history.js";
import { listen } from "./listen.js";
import { VIEW_CSS, VIEW_JS } from "./web-client.js";
import { renderPage, renderPanel, type WebState } from "./web-render.js";

export type { WebState } from "./web-render.js";

export interface WebSource {
  state(): WebState;
  history(): HistoryData;
  /** a request failed while rendering (a bug): counted by the daemon's task guard */
  onError?(e: unknown): void;
}

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?$/i;

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface Asset {
  type: string;
  body: Buffer;
}

/** uPlot from its npm package (a production dependency), read once when the view starts. */
function uplotAssets(): Record<string, Asset> {
  const req = createRequire(import.meta.url);
  try {
    return {
      "/assets/uplot.js": {
        type: "text/javascript; charset=utf-8",
        body: fs.readFileSync(req.resolve("uplot/dist/uPlot.iife.min.js")),
      },
      "/assets/uplot.css": {
        type: "text/css; charset=utf-8",
        body: fs.readFileSync(req.resolve("uplot/dist/uPlot.min.css")),
      },
    };
  } catch (e) {
    throw new PlatformError("EWEBASSET", `the web view cannot load uplot (npm package): ${String(e)}`, {
      cause: e,
    });
  }
}

export async function serveWeb(src: WebSource, host: string, port: number): Promise<http.Server> {
  const assets: Record<string, Asset> = {
    ...uplotAssets(),
    "/assets/view.js": { type: "text/javascript; charset=utf-8", body: Buffer.from(VIEW_JS) },
    "/assets/view.css": { type: "text/css; charset=utf-8", body: Buffer.from(VIEW_CSS) },
  };
  const srv = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0]!;
    if (!LOOPBACK_HOST.test(req.headers.host ?? "")) {
      res.writeHead(421, { "content-type": "text/plain" }).end("misdirected request\n");
      return;
    }
    if (req.method !== "GET") {
      res.writeHead(405, { "content-type": "text/plain", allow: "GET" }).end("method not allowed\n");
      return;
    }
    const common = {
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "content-security-policy": CSP,
      "referrer-policy": "no-referrer",
    };
    if (url === "/favicon.ico") {
      res.writeHead(204, common).end();
      return;
    }
    const asset = assets[url];
    if (asset) {
      res.writeHead(200, { ...common, "content-type": asset.type }).end(asset.body);
      return;
    }
    let body: string;
    let type: string;
    try {
      switch (url) {
        case "/":
          body = renderPage(src.state(), src.history());
          type = "text/html; charset=utf-8";
          break;
        case "/panel":
          body = renderPanel(src.state(), src.history());
          type = "text/html; charset=utf-8";
          break;
        case "/state.json":
          body = JSON.stringify(src.state());
          type = "application/json";
          break;
        case "/history.json":
          body = JSON.stringify(src.history());
          type = "application/json";
          break;
        default:
          res.writeHead(404, { ...common, "content-type": "text/plain" }).end("not found\n");
          return;
      }
    } catch (e) {
      res.writeHead(500, { ...common, "content-type": "text/plain" }).end("internal error\n");
      src.onError?.(e);
      return;
    }
    res.writeHead(200, { ...common, "content-type": type }).end(body);
  });
  await listen(srv, host, port, "the web view");
  return srv;
}
