/**
 * The live web view in a real browser: two daemons in namespaces with ping
 * traffic between them; headless Chromium (Debian's, driven by
 * playwright-core) runs inside host a's namespace, where the view listens on
 * loopback, opens the page, takes a screenshot (kept, path printed) and
 * checks the content: host and peer names, tunnel state, plotted samples with
 * traffic, recent events.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLan, type Proc, type Topology } from "./lib.js";
import { makeHost, makePki, startDaemon, type RunningDaemon } from "./mintun.js";

const CHROMIUM = "/usr/bin/chromium";
const WEB = "127.0.0.1:9478";
const O4: Record<string, string> = { a: "10.77.0.1", b: "10.77.0.2" };

describe.skipIf(process.getuid?.() !== 0 || !fs.existsSync(CHROMIUM))(
  "live web view in headless Chromium (netns)",
  () => {
    let topo: Topology;
    let work: string;
    let shots: string;
    let browser: Browser | undefined;
    let ping: Proc;
    const d: Record<string, RunningDaemon> = {};

    beforeAll(async () => {
      topo = await createLan({ hosts: ["a", "b"] });
      const pki = makePki();
      work = pki.dir;
      shots = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-web-"));
      for (const [h, o] of [
        ["b", "a"],
        ["a", "b"],
      ] as const)
        d[h] = await startDaemon(
          work,
          {
            host: makeHost(pki, h, O4[h]!, null),
            ns: topo.host(h).ns,
            caFile: pki.caFile,
            listen: "0.0.0.0:7000",
            peers: [{ name: o, endpoint: `${topo.host(o).addr4}:7000` }],
            extra: h === "a" ? `web:\n  listen: ${WEB}\n` : "",
          },
          h === "a",
        );
      // steady traffic a -> b for the plot
      ping = topo.host("a").ns.spawn("ping", ["-n", "-i", "0.05", "-s", "1000", O4.b!]);
      // Chromium runs inside a's namespace: `ip netns exec` execs it (same pid, same pipes)
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
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run",
        ],
        timeout: 30_000,
      });
    }, 90_000);

    afterAll(async () => {
      await browser?.close().catch(() => undefined);
      await ping?.stop().catch(() => undefined);
      for (const x of Object.values(d)) await x.stop().catch(() => undefined);
      await topo?.cleanup();
      if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
    });

    it("shows hosts, tunnels, peers, a traffic plot with data and recent events", async () => {
      const page = await browser!.newPage({ viewport: { width: 1000, height: 1100 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(`http://${WEB}/`);
      // the page polls every second: wait for a few samples with traffic in them
      await page.waitForFunction(
        () => {
          const svg = document.getElementById("plot");
          return Number(svg?.dataset.points ?? 0) >= 3 && Number(svg?.dataset.max ?? 0) > 1000;
        },
        undefined,
        { timeout: 15_000 },
      );
      const shot = path.join(shots, "mintund-web.png");
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`web view screenshot: ${shot}`);

      expect(await page.title()).toBe("mintund a");
      expect(await page.textContent("#host")).toBe("mintund a");
      expect(await page.textContent("#hostinfo")).toContain(O4.a);
      const tunnelRows = await page.$$eval("#tunnels tbody tr", (rs) =>
        rs.map((r) => [...r.querySelectorAll("td")].map((c) => c.textContent)),
      );
      expect(tunnelRows.length).toBeGreaterThanOrEqual(1);
      expect(tunnelRows[0]!.slice(0, 2)).toEqual(["b", "established"]);
      const peerRows = await page.$$eval("#peers tbody tr", (rs) =>
        rs.map((r) => [...r.querySelectorAll("td")].map((c) => c.textContent)),
      );
      expect(peerRows.map((r) => r[0])).toEqual(["b"]);
      expect(peerRows[0]![2]).toBe(O4.b);
      // the plot: one x,y pair per sample, and some above the baseline (traffic)
      const pts = ((await page.getAttribute("#plot-tx", "points")) ?? "").trim().split(/\s+/);
      expect(pts.length).toBeGreaterThanOrEqual(3);
      const ys = pts.map((p) => Number(p.split(",")[1]));
      expect(ys.every((y) => Number.isFinite(y))).toBe(true);
      expect(Math.min(...ys)).toBeLessThan(160 - 10); // baseline is y = 160
      expect(await page.textContent("#rates")).toMatch(/tx \d/);
      const events = await page.$$eval("#events li", (ls) => ls.map((l) => l.textContent ?? ""));
      expect(events.some((e) => /tunnel-established\s+peer=b/.test(e))).toBe(true);
      expect(events.some((e) => /daemon-ready/.test(e))).toBe(true);
      expect(errors).toEqual([]);

      // the JSON behind it, and the DNS-rebinding guard
      const st = await page.evaluate(async () => (await fetch("state.json")).status);
      expect(st).toBe(200);
      const r = await topo
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
      expect(r.stdout).toBe("421");
    });
  },
);
