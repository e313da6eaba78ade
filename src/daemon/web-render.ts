/**
 * The web view's HTML, rendered on the daemon from one reading of the state (web.ts
 * serves it): the page is complete before its script runs; the script (web-client.ts)
 * only swaps in a fresh panel (GET /panel, this same renderer) each second and draws the
 * throughput chart. Every value that comes from the config or the network (host, peer and
 * user names, endpoints, event fields, reload errors) goes through esc().
 */
import { ago, bytes, duration, durationMs } from "../text.js";
import type { ConnGroup } from "../tunnel/options.js";
import type { EventEntry, HistoryData } from "./history.js";
import type { UserCertInfo } from "./identity.js";
import type { Status } from "./status.js";

/** One reading of the daemon for the page. */
export interface WebState {
  /** wall clock, ms */
  now: number;
  status: Status;
  events: EventEntry[];
  /** connections by peer, direction and users (engine.connGroups) */
  conns: { groups: ConnGroup[]; omitted: number };
  /** the local users' certificates (user store) */
  users: UserCertInfo[];
}

/** A certificate is flagged "expires soon" this long before its notAfter (7 days). */
export const EXPIRY_WARN_SEC = 7 * 86_400;
/** Events listed at the bottom of the page (the ring keeps more: /state.json). */
export const PAGE_EVENTS = 30;

const ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Text for HTML element content and quoted attribute values. */
export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

export type ExpiryLevel = "ok" | "soon" | "expired";

export interface CertRow {
  /** "host" (this host), "ca", "peer" (a peer's host certificate), "user" (local), "peer-user" */
  kind: "host" | "ca" | "peer" | "user" | "peer-user";
  name: string;
  notAfter: number;
  level: ExpiryLevel;
}

export function expiryLevel(notAfter: number, nowSec: number): ExpiryLevel {
  if (notAfter <= nowSec) return "expired";
  return notAfter - nowSec < EXPIRY_WARN_SEC ? "soon" : "ok";
}

/**
 * Every certificate whose expiry the daemon knows: its own and the CA's, the peers' host
 * certificates, the local users' (user store) and the peers' users seen on connections;
 * soonest first.
 */
export function certRows(st: WebState): CertRow[] {
  const nowSec = st.now / 1000;
  const rows: Omit<CertRow, "level">[] = [];
  const h = st.status.host;
  if (h.certNotAfter !== undefined) rows.push({ kind: "host", name: h.name, notAfter: h.certNotAfter });
  if (h.caNotAfter !== undefined) rows.push({ kind: "ca", name: "CA", notAfter: h.caNotAfter });
  for (const p of st.status.peers)
    if (typeof p.certNotAfter === "number")
      rows.push({ kind: "peer", name: p.name, notAfter: p.certNotAfter });
  for (const u of st.users)
    rows.push({ kind: "user", name: `${u.name} (${u.osUser}, uid ${u.uid})`, notAfter: u.notAfter });
  const seen = new Set<string>();
  for (const g of st.conns.groups) {
    if (g.peerUser === null || g.peerUserNotAfter === null) continue;
    const name = `${g.peerUser}@${g.peer}`;
    if (seen.has(name)) continue;
    seen.add(name);
    rows.push({ kind: "peer-user", name, notAfter: g.peerUserNotAfter });
  }
  return rows
    .map((r) => ({ ...r, level: expiryLevel(r.notAfter, nowSec) }))
    .sort((a, b) => a.notAfter - b.notAfter);
}

const CERT_KIND: Record<CertRow["kind"], string> = {
  host: "this host",
  ca: "CA",
  peer: "peer host",
  user: "local user",
  "peer-user": "peer's user",
};

/** "in 6d 23h" / "5m 3s ago" */
function until(notAfter: number, nowSec: number): string {
  const d = notAfter - nowSec;
  return d > 0 ? `in ${duration(d)}` : `${duration(-d)} ago`;
}

/** unix seconds as "2026-12-08T00:15:55Z" */
const isoSec = (sec: number): string => new Date(Math.round(sec) * 1000).toISOString().replace(".000Z", "Z");
const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

const rate = (v: number | null | undefined): string => (v == null ? "-" : `${bytes(Math.round(v))}/s`);

/** A table: header cells, then rows of [text, class?] cells (all escaped). */
function table(id: string, head: string[], rows: [string, string?][][], empty: string): string {
  const th = head.map((x) => `<th>${esc(x)}</th>`).join("");
  const body = rows.length
    ? rows
        .map(
          (r) =>
            "<tr>" +
            r
              .map(([t, cls]) => (cls ? `<td class="${esc(cls)}">${esc(t)}</td>` : `<td>${esc(t)}</td>`))
              .join("") +
            "</tr>",
        )
        .join("\n")
    : `<tr class="empty"><td colspan="${head.length}">${esc(empty)}</td></tr>`;
  return `<div class="scroll"><table id="${esc(id)}"><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

/** The part of the page the script refreshes: warnings, tables and events. */
export function renderPanel(st: WebState, hist: HistoryData): string {
  const s = st.status;
  const nowSec = st.now / 1000;
  const certs = certRows(st);
  const last = (xs: (number | null)[]) => (xs.length ? xs[xs.length - 1] : null);
  const peerRate = new Map(hist.peers.map((p) => [p.peer, { rx: last(p.rx), tx: last(p.tx) }]));
  const out: string[] = [];

  const warnings: string[] = [];
  for (const c of certs)
    if (c.level !== "ok")
      warnings.push(
        `<li class="warn-${c.level}">${esc(CERT_KIND[c.kind])} certificate ${esc(c.name)} ` +
          `${c.level === "expired" ? "expired" : "expires"} ${esc(until(c.notAfter, nowSec))} ` +
          `(${esc(isoSec(c.notAfter))})</li>`,
      );
  const reload = s.daemon?.reload;
  if (reload && !reload.ok)
    warnings.push(`<li class="warn-expired">last reload refused: ${esc(reload.error)}</li>`);
  out.push(
    warnings.length
      ? `<ul id="warnings" class="warnings">${warnings.join("")}</ul>`
      : `<ul id="warnings" class="warnings none"></ul>`,
  );

  const established = s.tunnels.filter((t) => t.state === "established").length;
  out.push(
    `<p class="summary" id="summary">up ${esc(duration(s.uptimeSec))} · ${established} of ${plural(s.tunnels.length, "tunnel")} established · ` +
      `${plural(s.peers.length, "peer")} · ${plural(st.status.connections?.open ?? 0, "connection")} · now ` +
      `rx ${esc(rate(last(hist.total.rx)))}, tx ${esc(rate(last(hist.total.tx)))}</p>`,
  );

  out.push(`<h2>Tunnels <span class="count">(${s.tunnels.length})</span></h2>`);
  out.push(
    table(
      "tunnels",
      ["peer", "state", "path", "endpoint", "age", "last rekey", "RTT", "rx", "tx", "last rx"],
      s.tunnels.map((t) => [
        [t.peer],
        [t.state, `state-${t.state}`],
        [t.path],
        [t.endpoint],
        [durationMs(t.ageMs)],
        [t.rekeys > 0 ? ago(t.lastRekeyMsAgo) : "none yet"],
        [t.rttMs < 0 ? "-" : t.rttMs < 1 ? "<1ms" : durationMs(t.rttMs)],
        [`${bytes(t.rxBytes)} (${t.rxPackets} pkts)`],
        [`${bytes(t.txBytes)} (${t.txPackets} pkts)`],
        [ago(t.lastRxMsAgo)],
      ]),
      "no tunnels",
    ),
  );

  out.push(`<h2>Peers <span class="count">(${s.peers.length})</span></h2>`);
  out.push(
    table(
      "peers",
      ["name", "addresses", "endpoint", "throughput now", "record", "certificate", "key"],
      s.peers.map((p) => {
        const r = peerRate.get(p.name);
        const lvl = typeof p.certNotAfter === "number" ? expiryLevel(p.certNotAfter, nowSec) : null;
        return [
          [p.name],
          [[p.ip4, p.ip6, ...p.subnets].filter(Boolean).join(" ") || "-"],
          [p.endpoint ?? "-"],
          [r ? `rx ${rate(r.rx)}, tx ${rate(r.tx)}` : "-"],
          [recordText(p)],
          typeof p.certNotAfter === "number"
            ? [`expires ${until(p.certNotAfter, nowSec)}`, lvl === "ok" ? undefined : `warn-${lvl}`]
            : ["not known yet"],
          [p.key ?? "-", "key"],
        ];
      }),
      "no peers",
    ),
  );

  const cg = st.conns;
  out.push(`<h2>Connections by user <span class="count">(${st.status.connections?.open ?? 0})</span></h2>`);
  out.push(
    table(
      "conns",
      ["peer", "direction", "local user", "peer's user", "open", "closed", "denied"],
      cg.groups.map((g) => [
        [g.peer],
        [g.direction === "out" ? "out (opened here)" : "in (opened by the peer)"],
        [g.direction === "out" ? (g.localUser ?? "host") : "-"],
        [g.direction === "in" ? (g.peerUser ?? "host") : "-"],
        [String(g.open)],
        [String(g.closed)],
        [String(g.denied), g.denied > 0 ? "warn-soon" : undefined],
      ]),
      "no connections",
    ) + (cg.omitted ? `<p class="note">${cg.omitted} more connections in further groups not listed</p>` : ""),
  );

  out.push(`<h2>Certificates <span class="count">(${certs.length})</span></h2>`);
  out.push(
    table(
      "certs",
      ["certificate", "name", "expires", "when", "status"],
      certs.map((c) => [
        [CERT_KIND[c.kind]],
        [c.name],
        [isoSec(c.notAfter)],
        [until(c.notAfter, nowSec)],
        [c.level === "ok" ? "ok" : c.level === "soon" ? "expires soon" : "expired", `warn-${c.level}`],
      ]),
      "none known",
    ),
  );

  const drops = Object.entries(s.drops).filter((e) => e[1] > 0);
  out.push(
    `<h2>Drops</h2><p class="mono" id="drops">${esc(drops.map((e) => `${e[0]}=${e[1]}`).join("  ") || "none")}</p>`,
  );

  out.push(`<h2>Recent events</h2><ol id="events" class="mono">`);
  for (const e of st.events.slice(-PAGE_EVENTS).reverse()) {
    const fields = Object.entries(e.fields)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    out.push(`<li>${esc(new Date(e.t).toISOString().slice(11, 19))}  ${esc(e.kind)}  ${esc(fields)}</li>`);
  }
  out.push("</ol>");
  return out.join("\n");
}

function recordText(p: Status["peers"][number]): string {
  if (p.record && p.record.expiresInSec > 0) return `held, ${duration(p.record.expiresInSec)} left`;
  const pr = p.recordProblem;
  if (!pr) return p.record ? "expired" : "not fetched";
  return `not usable: ${pr.reason}${pr.detail ? ` (${pr.detail})` : ""}`;
}

/** The whole page: head, host line, chart and the panel, then the scripts. */
export function renderPage(st: WebState, hist: HistoryData): string {
  const h = st.status.host;
  const addrs = [h.ip4, h.ip6, ...h.subnets].filter(Boolean).join(" ");
  const d = st.status.daemon;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mintund ${esc(h.name)}</title>
<link rel="stylesheet" href="assets/uplot.css">
<link rel="stylesheet" href="assets/view.css">
</head>
<body>
<header>
<h1 id="host">mintund ${esc(h.name)}</h1>
<p class="sub mono" id="hostinfo">${esc(addrs)} · key ${esc(h.key)} · listen ${esc(st.status.listen)} · tun ${esc(st.status.tun)}${d ? ` · v${esc(d.version)} pid ${d.pid}` : ""}</p>
</header>
<section>
<h2>Throughput per peer <span class="count">(bytes/s, ${hist.intervalSec} s samples, last ${esc(duration(hist.capacity * hist.intervalSec))}; solid: received, dashed: sent)</span></h2>
<div id="chart" data-samples="${hist.t.length}"><p class="note" id="chart-note">${hist.t.length} samples; the chart needs the page's script</p></div>
</section>
<main id="panel">
${renderPanel(st, hist)}
</main>
<script src="assets/uplot.js"></script>
<script src="assets/view.js"></script>
</body>
</html>
`;
}
