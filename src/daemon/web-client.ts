/**
 * The web view's browser side, served as /assets/view.js and /assets/view.css (web.ts).
 * The page works without it (web-render.ts renders every table on the daemon); the
 * script draws the throughput chart with uPlot (served from the npm package as
 * /assets/uplot.js, no network) from /history.json, and replaces the panel with a fresh
 * server-rendered copy (/panel) once a second. It never builds HTML from data itself.
 *
 * The chart element carries what a test reads: data-samples (points on the time axis),
 * data-series (series labels, tab-separated) and data-peak (largest plotted rate, bytes/s);
 * the uPlot instance is window.mintunChart.
 */

export const VIEW_JS = `"use strict";
(function () {
  var chartEl = document.getElementById("chart");
  var panel = document.getElementById("panel");
  var COLORS = ["#1f6fd1", "#d1491f", "#2a9d3c", "#8e44ad", "#c0392b", "#16a0a0", "#b8860b", "#555555"];
  var plot = null;
  // rate axis ticks at 1, 2, 5, 10, 20, 50, 100, 200, 500 B, KiB, MiB, GiB per second
  var BYTE_STEPS = [];
  [1, 1024, 1048576, 1073741824].forEach(function (m) {
    [1, 2, 5, 10, 20, 50, 100, 200, 500].forEach(function (x) { BYTE_STEPS.push(x * m); });
  });
  var shape = "";

  function rate(v) {
    if (v == null) return "-";
    if (v < 1024) return v.toFixed(0) + " B/s";
    if (v < 1048576) return +(v / 1024).toFixed(1) + " KiB/s";
    if (v < 1073741824) return +(v / 1048576).toFixed(1) + " MiB/s";
    return +(v / 1073741824).toFixed(2) + " GiB/s";
  }

  // unix seconds -> local hh:mm:ss (24 h)
  function clock(t) {
    var d = new Date(t * 1000);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map(function (n) { return String(n).padStart(2, "0"); }).join(":");
  }

  function size() {
    var w = Math.max(260, chartEl.clientWidth || 0);
    return { width: w, height: window.innerWidth < 600 ? 220 : 280 };
  }

  // one solid (received) and one dashed (sent) line per peer; the total when no peer has a series
  function columns(h) {
    var data = [h.t], series = [{}];
    var src = h.peers.length ? h.peers : [{ peer: "all peers", rx: h.total.rx, tx: h.total.tx }];
    src.forEach(function (p, i) {
      var c = COLORS[i % COLORS.length];
      data.push(p.rx, p.tx);
      series.push({ label: p.peer + " rx", stroke: c, width: 2, value: function (u, v) { return rate(v); } });
      series.push({ label: p.peer + " tx", stroke: c, width: 2, dash: [6, 4], value: function (u, v) { return rate(v); } });
    });
    return { data: data, series: series };
  }

  function draw(h) {
    var c = columns(h);
    var labels = c.series.slice(1).map(function (s) { return s.label; }).join("\\t");
    if (!plot || labels !== shape) {
      if (plot) plot.destroy();
      chartEl.replaceChildren();
      var opts = Object.assign(size(), {
        series: c.series,
        scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1024, max * 1.1)]; } } },
        axes: [
          { space: 70, incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600], values: function (u, vals) { return vals.map(clock); } },
          { size: 80, incrs: BYTE_STEPS, values: function (u, vals) { return vals.map(rate); } },
        ],
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
      });
      plot = new uPlot(opts, c.data, chartEl);
      window.mintunChart = plot; // for the console and the browser test
      shape = labels;
    } else {
      plot.setData(c.data);
    }
    var peak = 0;
    for (var i = 1; i < c.data.length; i++)
      for (var j = 0; j < c.data[i].length; j++) if (c.data[i][j] != null && c.data[i][j] > peak) peak = c.data[i][j];
    chartEl.dataset.samples = String(h.t.length);
    chartEl.dataset.series = labels;
    chartEl.dataset.peak = String(peak);
  }

  async function poll() {
    try {
      var r = await Promise.all([fetch("history.json", { cache: "no-store" }), fetch("panel", { cache: "no-store" })]);
      if (!r[0].ok || !r[1].ok) throw new Error("HTTP " + r[0].status + "/" + r[1].status);
      draw(await r[0].json());
      panel.innerHTML = await r[1].text();
      document.body.dataset.updated = String(Date.now());
      document.body.classList.remove("stale");
    } catch (e) {
      document.body.classList.add("stale");
    }
  }

  window.addEventListener("resize", function () { if (plot) plot.setSize(size()); });
  poll();
  setInterval(poll, 1000);
})();
`;

export const VIEW_CSS = `
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; padding: 1em 1.2em 2em; max-width: 1400px; color: #1d1d1f; background: #f6f7f9; }
body.stale header::after { content: "not updating: cannot reach mintund"; display: block; color: #b00020; font-weight: 600; }
h1 { font-size: 1.35em; margin: 0 0 .15em; }
h2 { font-size: 1.05em; margin: 1.5em 0 .45em; }
.count { color: #666; font-weight: normal; font-size: .9em; }
.sub, .note, .summary { color: #555; margin: .2em 0; overflow-wrap: anywhere; }
.mono, td { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; background: #fff; border: 1px solid #dde1e6; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3em .75em; border-bottom: 1px solid #eceef1; white-space: nowrap; }
th { font-weight: 600; background: #f0f2f5; }
tbody tr:last-child td { border-bottom: none; }
tr.empty td { color: #888; font-family: inherit; }
td.key { color: #666; }
.state-established { color: #176c17; font-weight: 600; }
.state-creating, .state-replying { color: #a86400; }
.state-closed { color: #999; }
.warn-soon { color: #9a5b00; font-weight: 600; }
.warn-expired { color: #b00020; font-weight: 600; }
.warnings { list-style: none; margin: .8em 0; padding: 0; }
.warnings.none { display: none; }
.warnings li { margin: .3em 0; padding: .5em .8em; border-radius: 6px; background: #fff4e0; border: 1px solid #f0c36d; overflow-wrap: anywhere; }
.warnings li.warn-expired { background: #fde8ea; border-color: #f0a1ab; }
#chart { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: .4em 0 0; min-height: 120px; overflow: hidden; }
#chart .note { padding: 0 1em; }
#events { padding-left: 1.5em; margin: 0; }
#events li { overflow-wrap: anywhere; }
.uplot .u-legend { font-size: 12px; }
@media (max-width: 600px) {
  body { padding: .6em .6em 1.5em; }
  h1 { font-size: 1.15em; }
  th, td { padding: .25em .5em; }
}
`;
