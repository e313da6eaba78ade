/**
 * The live web view with real daemons and a real browser. Two daemons in namespaces,
 * enrolled with the CLI: a for a year, b for two hours (`ca sign-host --seconds`: near
 * expiry), and on a a local user (OS user nobody) whose certificate ends in three days.
 * Traffic: ping a -> b, and an HTTP fetch from a to b run as nobody (a connection under
 * that user's identity).
 *
 * Checked: the page fetched with plain HTTP (curl, no script) already has the table rows;
 * headless Chromium (Debian's, driven by playwright-core; it runs inside a's namespace,
 * where the view listens on loopback) at 1280x800 and 390x844 shows the uPlot chart with
 * a time axis and a non-empty series for peer b, the tunnel row (state, path, RTT), the
 * peer row, connections by user and the expiry warnings for b's and nobody's
 * certificates (not for a's own); on the phone width nothing is wider than the window;
 * no script errors or CSP violations. Screenshots are written to a temp directory
 * (WEB_SCREENSHOTS=DIR keeps them there); docs/img/live-view.png is one of them. The
 * metrics of the same daemon carry the user's certificate expiry.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCert } from "../../src/store/keyfile.js";
import type { HostCert } from "../../src/wire/cert.js";
import { lintExposition, type Family } from "../tools/prom-lint.js";
import { createLan, execOk, sleep, type Proc, type Topology } from "./lib.js";
import { MINTUN, startDaemon, type HostFiles, type RunningDaemon } from "./mintun.js";

const CHROMIUM = "/usr/bin/chromium";
const WEB = "127.0.0.1:9478";
const METRICS = "127.0.0.1:9477";
const O4: Record<string, string> = { a: "10.77.0.1", b: "10.77.0.2" };
/** samples on the chart before the screenshots (WEB_SAMPLES=30 for the one in docs/) */
const SAMPLES = Number(process.env.WEB_SAMPLES ?? 5);
const SIZES = [
  { name: "desktop", width: 1280, height: 800 },
  { name: "mobile", width: 390, height: 844 },
] as const;

/** Cells of each body row of table #id in server-rendered HTML. */
function rows(html: string, id: string): string[][] {
  const t = new RegExp(`<table id="${id}">[\\s\\S]*?<tbody>([\\s\\S]*?)</tbody>`).exec(html);
  if (!t) throw new Error(`no table #${id} in the page`);
  return [...t[1]!.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((r) =>
    [...r[1]!.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((c) => c[1]!),
  );
}

describe.skipIf(process.getuid?.() !== 0 || !fs.existsSync(CHROMIUM))(
  "live web view in headless Chromium (netns)",
  () => {
    let topo: Topology;
    let work: string;
    let shots: string;
    let browser: Browser | undefined;
    const procs: Proc[] = [];
    const d: Record<string, RunningDaemon> = {};
    const cli = (...args: string[]) => execOk(MINTUN, args);

    beforeAll(async () => {
      topo = await createLan({ hosts: ["a", "b"] });
      work = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-web-"));
      shots = process.env.WEB_SCREENSHOTS ?? path.join(work, "shots");
      fs.mkdirSync(shots, { recursive: true });
      const ca = path.join(work, "ca");
      await cli("ca", "init", "--dir", ca, "--name", "test-ca");
      const host = async (name: string, validity: string[]): Promise<HostFiles> => {
        const bundle = path.join(work, `${name}.bundle`);
        await cli(
          "ca",
          "sign-host",
          "--ca",
          ca,
          "--name",
          name,
          "--ip4",
          O4[name]!,
          ...validity,
          "--bundle",
          "--out",
          bundle,
        );
        const dir = path.join(work, name);
        await cli("enrol", bundle, "--dir", dir);
        const cert = path.join(dir, "host.crt");
        return { name, key: path.join(dir, "host.key"), cert, hostCert: readCert(cert) as HostCert };
      };
      const hosts = { a: await host("a", []), b: await host("b", ["--seconds", "7200"]) };
      // a local user on a: OS user nobody, certificate valid three days
      const ukey = path.join(work, "ops.key");
      await cli("keygen", "--out", ukey);
      await cli(
        "ca",
        "sign-user",
        "--ca",
        ca,
        "--name",
        "ops",
        "--key",
        ukey,
        "--seconds",
        String(3 * 86_400),
        "--out",
        path.join(work, "ops.crt"),
      );
      await cli(
        "user",
        "add",
        "nobody",
        "--key",
        ukey,
        "--cert",
        path.join(work, "ops.crt"),
        "--ca",
        ca,
        "--state",
        path.join(work, "state-a"),
      );
      for (const [h, o] of [
        ["b", "a"],
        ["a", "b"],
      ] as const)
        d[h] = await startDaemon(
          work,
          {
            host: hosts[h],
            ns: topo.host(h).ns,
            caFile: path.join(work, h, "ca.crt"),
            listen: "0.0.0.0:7000",
            peers: [{ name: o, endpoint: `${topo.host(o).addr4}:7000` }],
            extra: h === "a" ? `web:\n  listen: ${WEB}\nmetrics:\n  listen: ${METRICS}\n` : "",
          },
          h === "a",
        );
      // traffic for the chart, and a connection of the user nobody
      procs.push(topo.host("a").ns.spawn("ping", ["-n", "-i", "0.05", "-s", "1200", O4.b!]));
      const www = path.join(work, "www");
      fs.mkdirSync(www);
      fs.writeFileSync(path.join(www, "index.html"), "hello from b\n");
      procs.push(
        topo
          .host("b")
          .ns.spawn("python3", ["-m", "http.server", "8080", "--bind", O4.b!, "--directory", www]),
      );
      let got = "";
      for (let i = 0; i < 50 && got !== "hello from b\n"; i++) {
        const r = await topo
          .host("a")
          .ns.exec("setpriv", [
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-s",
            "-m",
            "2",
            `http://${O4.b}:8080/`,
          ]);
        got = r.stdout;
        if (got !== "hello from b\n") await sleep(100);
      }
      expect(got).toBe("hello from b\n");
      // Chromium inside a's namespace: `ip netns exec` execs it (same pid, same pipes)
      const wrapper = path.join(work, "chromium-in-ns");
      fs.writeFileSync(
        wrapper,
        `#!/bin/sh\nexec ip netns exec ${topo.host("a").ns.name} ${CHROMIUM} "$@"\n`,
        {
          mode: 0o755,
        },
      );
      browser = await chromium.launch({
        executablePath: wrapper,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ], // playwright gives it a fresh --user-data-dir of its own (a temp dir, removed on close)
        timeout: 30_000,
      });
    }, 120_000);

    afterAll(async () => {
      await browser?.close().catch(() => undefined);
      for (const p of procs) await p.stop().catch(() => undefined);
      for (const x of Object.values(d)) await x.stop().catch(() => undefined);
      await topo?.cleanup();
      if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
    });

    it("the page holds the current state as HTML before any script runs (plain HTTP)", async () => {
      const r = await topo.host("a").ns.execOk("curl", ["-s", "-m", "5", `http://${WEB}/`]);
      const t = rows(r.stdout, "tunnels");
      expect(t.length).toBeGreaterThanOrEqual(1);
      expect(t[0]!.slice(0, 3)).toEqual(["b", "established", "direct"]);
      expect(t[0]![6]).toMatch(/^(<1ms|\d+ms)$/); // RTT of the handshake
      const p = rows(r.stdout, "peers");
      expect(p.map((x) => x[0])).toEqual(["b"]);
      expect(p[0]![1]).toBe(O4.b);
      expect(p[0]![5]).toMatch(/^expires in 1h \d+m$/);
      const c = rows(r.stdout, "conns");
      expect(c.some((x) => x[0] === "b" && x[1]!.startsWith("out") && x[2] === "nobody")).toBe(true);
      expect(r.stdout).toMatch(/peer host certificate b expires in 1h/);
      expect(r.stdout).toMatch(/local user certificate ops \(nobody, uid 65534\) expires in 2d 23h/);
      expect(r.stdout).not.toMatch(/this host certificate a expires/);
      // DNS rebinding guard
      const evil = await topo
        .host("a")
        .ns.exec("curl", [
          "-s",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "-H",
          "Host: evil.example",
          `http://${WEB}/`,
        ]);
      expect(evil.stdout).toBe("421");
    });

    for (const size of SIZES)
      it(`in Chromium at ${size.width}x${size.height}: chart with data, tunnel and peer rows, expiry warnings`, async () => {
        const page: Page = await browser!.newPage({ viewport: { width: size.width, height: size.height } });
        const problems: string[] = [];
        page.on("pageerror", (e) => problems.push(String(e)));
        page.on("console", (m) => {
          if (m.type() === "error" || /Content.Security.Policy/i.test(m.text())) problems.push(m.text());
        });
        try {
          await page.goto(`http://${WEB}/`);
          // polled once a second: wait for samples with traffic for peer b
          await page.waitForFunction(
            (want) => {
              const c = document.getElementById("chart");
              return Number(c?.dataset.samples ?? 0) >= want && Number(c?.dataset.peak ?? 0) > 10_000;
            },
            SAMPLES,
            { timeout: 20_000 + SAMPLES * 1000 },
          );
          const chart = await page.evaluate(() => {
            const c = document.getElementById("chart")!;
            const canvas = c.querySelector("canvas");
            // uPlot draws on a canvas: its axes' tick labels are in the instance
            const u = (
              window as unknown as {
                mintunChart: {
                  scales: { x: { time: boolean; min: number; max: number } };
                  axes: { _values?: string[] }[];
                };
              }
            ).mintunChart;
            return {
              series: (c.dataset.series ?? "").split("\t"),
              canvas: canvas ? [canvas.width, canvas.height] : null,
              xTime: u.scales.x.time,
              xRange: [u.scales.x.min, u.scales.x.max],
              ticks: u.axes.map((a) => (a._values ?? []).join(" ")),
              legend: [...c.querySelectorAll(".u-legend .u-series")].map((s) => s.textContent ?? ""),
            };
          });
          expect(chart.series).toEqual(["b rx", "b tx"]);
          expect(chart.canvas![0]).toBeGreaterThan(200);
          expect(chart.canvas![1]).toBeGreaterThan(100);
          // a time axis over the last seconds (unix seconds, hh:mm:ss ticks) and a rate axis
          expect(chart.xTime).toBe(true);
          expect(Math.abs(chart.xRange[1]! - Date.now() / 1000)).toBeLessThan(30);
          expect(chart.ticks[0]).toMatch(/\d{1,2}:\d{2}/);
          expect(chart.ticks[1]).toMatch(/B\/s/);
          expect(chart.legend.some((l) => l.includes("b rx"))).toBe(true);

          const cells = (id: string) =>
            page.$$eval(`#${id} tbody tr:not(.empty)`, (rs) =>
              rs.map((r) => [...r.querySelectorAll("td")].map((c) => c.textContent ?? "")),
            );
          const tunnels = await cells("tunnels");
          expect(tunnels[0]!.slice(0, 3)).toEqual(["b", "established", "direct"]);
          const peers = await cells("peers");
          expect(peers.map((r) => r[0])).toEqual(["b"]);
          expect(peers[0]![3]).toMatch(/^rx .+\/s, tx .+\/s$/);
          expect((await cells("conns")).some((r) => r[2] === "nobody")).toBe(true);
          const warnings = await page.$$eval("#warnings li", (ls) => ls.map((l) => l.textContent ?? ""));
          expect(warnings.some((w) => /peer host certificate b expires in 1h/.test(w))).toBe(true);
          expect(warnings.some((w) => /local user certificate ops/.test(w))).toBe(true);
          expect(warnings.some((w) => /certificate a /.test(w))).toBe(false);
          expect(await page.isVisible("#warnings li")).toBe(true);
          // the panel was refreshed by the script (the server-rendered copy replaced)
          expect(Number(await page.getAttribute("body", "data-updated"))).toBeGreaterThan(0);
          // nothing wider than the window (wide tables scroll inside their own box)
          const widths = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
          expect(widths[0]).toBeLessThanOrEqual(widths[1]!);
          const shot = path.join(shots, `live-view-${size.name}.png`);
          await page.screenshot({ path: shot, fullPage: size.name === "mobile" });
          console.log(`web view screenshot: ${shot}`);
          expect(fs.statSync(shot).size).toBeGreaterThan(10_000);
          expect(problems).toEqual([]);
        } finally {
          await page.close();
        }
      });

    it("the metrics carry the local user's certificate expiry", async () => {
      const r = await topo.host("a").ns.execOk("curl", ["-s", "-m", "5", `http://${METRICS}/metrics`]);
      const { problems, families } = lintExposition(r.stdout);
      expect(problems).toEqual([]);
      const f = families.find((x: Family) => x.name === "mintun_user_certificate_expiry_timestamp_seconds");
      expect(f?.metrics).toHaveLength(1);
      expect(f!.metrics[0]!.labels).toEqual({ user: "ops", uid: "65534" });
      const left = Number(f!.metrics[0]!.value) - Date.now() / 1000;
      expect(left).toBeGreaterThan(3 * 86_400 - 600);
      expect(left).toBeLessThanOrEqual(3 * 86_400);
    });
  },
);
