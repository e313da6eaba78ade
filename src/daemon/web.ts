/**
 * The live web view: one self-contained HTML page (inline CSS and JS, no
 * external assets) that polls /state.json once a second and draws the host,
 * its tunnels and peers, a traffic plot (inline SVG, the last 5 minutes of
 * per-second samples) and the recent events.
 *
 * Served on `web.listen`, a loopback address (config.ts refuses others): it
 * has no authentication, like the read-only API socket. Requests whose Host
 * header is not a loopback name are refused (DNS rebinding), and the page
 * runs under a Content-Security-Policy that allows nothing but itself.
 */
import * as http from "node:http";
import { listen } from "./metrics.js";

export interface WebSource {
  /** JSON-serialisable state: { status, traffic, events, reload } */
  state(): unknown;
}

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?$/i;

export async function serveWeb(src: WebSource, host: string, port: number): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (!LOOPBACK_HOST.test(req.headers.host ?? "")) {
      res.writeHead(421, { "content-type": "text/plain" }).end("misdirected request\n");
      return;
    }
    if (req.method !== "GET") {
      res.writeHead(405, { "content-type": "text/plain", allow: "GET" }).end("method not allowed\n");
      return;
    }
    const common = { "cache-control": "no-store", "x-content-type-options": "nosniff" };
    if (url === "/") {
      res
        .writeHead(200, {
          ...common,
          "content-type": "text/html; charset=utf-8",
          "content-security-policy":
            "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        })
        .end(PAGE);
    } else if (url === "/state.json") {
      let body: string;
      try {
        body = JSON.stringify(src.state());
      } catch (e) {
        res.writeHead(500, { ...common, "content-type": "text/plain" }).end(`${String(e)}\n`);
        return;
      }
      res.writeHead(200, { ...common, "content-type": "application/json" }).end(body);
    } else res.writeHead(404, { ...common, "content-type": "text/plain" }).end("not found\n");
  });
  await listen(srv, host, port, "the web view");
  return srv;
}

export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mintund</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; } h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
  .sub { color: #666; font-family: monospace; }
  table { border-collapse: collapse; background: #fff; }
  th, td { text-align: left; padding: .2em .8em; border-bottom: 1px solid #e3e3e3; font-family: monospace; }
  th { font-family: system-ui, sans-serif; font-weight: 600; background: #f0f0f0; }
  .state-established { color: #176c17; font-weight: 600; } .state-creating, .state-replying { color: #a86400; }
  .state-closed { color: #999; }
  svg { background: #fff; border: 1px solid #ddd; }
  .rx { stroke: #1f6fd1; } .tx { stroke: #d1491f; } .legend span { margin-right: 1.2em; font-family: monospace; }
  .err { color: #b00020; } #events li { font-family: monospace; }
</style>
</head>
<body>
<h1 id="host">mintund</h1>
<div class="sub" id="hostinfo">loading...</div>
<div class="sub err" id="reload"></div>

<h2>Traffic (per second, last 5 minutes)</h2>
<svg id="plot" width="720" height="180" viewBox="0 0 720 180" role="img" aria-label="traffic plot">
  <polyline id="plot-rx" class="rx" fill="none" stroke-width="1.5" points=""/>
  <polyline id="plot-tx" class="tx" fill="none" stroke-width="1.5" points=""/>
  <text id="plot-max" x="4" y="14" font-size="11" fill="#666"></text>
</svg>
<div class="legend"><span style="color:#1f6fd1">&#9632; received</span><span style="color:#d1491f">&#9632; sent</span><span id="rates"></span></div>

<h2>Tunnels <span id="tunnel-count"></span></h2>
<table id="tunnels"><thead><tr><th>peer</th><th>state</th><th>role</th><th>endpoint</th><th>epoch</th><th>rx</th><th>tx</th><th>last rx</th><th>session</th></tr></thead><tbody></tbody></table>

<h2>Peers <span id="peer-count"></span></h2>
<table id="peers"><thead><tr><th>name</th><th>key</th><th>addresses</th><th>endpoint</th><th>record</th><th>tunnels</th></tr></thead><tbody></tbody></table>

<h2>Drops</h2>
<div class="sub" id="drops"></div>

<h2>Recent events</h2>
<ol id="events" reversed></ol>

<script>
"use strict";
const $ = (id) => document.getElementById(id);
function bytes(n) {
  if (n < 1024) return n.toFixed(0) + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  if (n < 1073741824) return (n / 1048576).toFixed(1) + " MiB";
  return (n / 1073741824).toFixed(2) + " GiB";
}
function rows(tbody, data, cells) {
  const tb = $(tbody).querySelector("tbody");
  tb.replaceChildren();
  for (const d of data) {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells(d)) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    tb.appendChild(tr);
  }
}
function plot(samples) {
  const W = 720, H = 180, pad = 20;
  const max = Math.max(1, ...samples.map((s) => Math.max(s.rxBps, s.txBps)));
  const n = Math.max(samples.length - 1, 1);
  const pts = (k) => samples.map((s, i) =>
    (pad + (i / n) * (W - 2 * pad)).toFixed(1) + "," + (H - pad - (s[k] / max) * (H - 2 * pad)).toFixed(1)).join(" ");
  $("plot-rx").setAttribute("points", pts("rxBps"));
  $("plot-tx").setAttribute("points", pts("txBps"));
  $("plot").dataset.points = String(samples.length);
  $("plot").dataset.max = String(max);
  $("plot-max").textContent = "max " + bytes(max) + "/s";
  const last = samples[samples.length - 1];
  $("rates").textContent = last ? "now: rx " + bytes(last.rxBps) + "/s, tx " + bytes(last.txBps) + "/s" : "";
}
function render(st) {
  const s = st.status, h = s.host;
  document.title = "mintund " + h.name;
  $("host").textContent = "mintund " + h.name;
  $("hostinfo").textContent = "key " + h.key + "  " + [h.ip4, h.ip6].concat(h.subnets).filter(Boolean).join(" ") +
    "  listen " + s.listen + "  tun " + s.tun + "  up " + s.uptimeSec + "s";
  $("reload").textContent = st.reload && !st.reload.ok ? "last reload refused: " + st.reload.error : "";
  $("tunnel-count").textContent = "(" + s.tunnels.length + ")";
  rows("tunnels", s.tunnels, (t) => [[t.peer], [t.state, "state-" + t.state], [t.role], [t.endpoint], [String(t.epoch)],
    [t.rxPackets + " pkts / " + bytes(t.rxBytes)], [t.txPackets + " pkts / " + bytes(t.txBytes)],
    [(t.lastRxMsAgo / 1000).toFixed(1) + "s ago"], [t.session]]);
  $("peer-count").textContent = "(" + s.peers.length + ")";
  rows("peers", s.peers, (p) => [[p.name], [p.key || "-"],
    [[p.ip4, p.ip6].concat(p.subnets).filter(Boolean).join(" ") || "-"], [p.endpoint || "-"],
    [p.record ? "key " + p.record.keyId + ", " + p.record.expiresInSec + "s left" : "not fetched"], [String(p.tunnels)]]);
  const d = Object.entries(s.drops).filter((e) => e[1] > 0);
  $("drops").textContent = d.length ? d.map((e) => e[0] + "=" + e[1]).join("  ") : "none";
  plot(st.traffic);
  const ol = $("events");
  ol.replaceChildren();
  for (const e of st.events.slice().reverse()) {
    const li = document.createElement("li");
    li.textContent = new Date(e.t).toISOString().slice(11, 19) + "  " + e.kind + "  " +
      Object.entries(e.fields).map((f) => f[0] + "=" + (typeof f[1] === "string" ? f[1] : JSON.stringify(f[1]))).join(" ");
    ol.appendChild(li);
  }
  document.body.dataset.updated = String(Date.now());
}
async function poll() {
  try {
    const r = await fetch("state.json", { cache: "no-store" });
    render(await r.json());
  } catch (e) {
    $("hostinfo").textContent = "cannot reach mintund: " + e;
  }
}
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
`;
