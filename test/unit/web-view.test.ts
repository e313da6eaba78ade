/**
 * The web view without a browser: the server-rendered page holds the tables (tunnels with
 * age, rekey, RTT and path; peers; connections by user; certificates with expiry
 * warnings) before any script runs, everything from config or network is escaped, and
 * the HTTP side serves the page, the panel, the JSON, the bundled uPlot, and refuses
 * foreign Host headers and other methods. The browser test is test/netns/web.test.ts.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HistoryData } from "../../src/daemon/history.js";
import type { Status, TunnelStatus } from "../../src/daemon/status.js";
import { serveWeb, type WebState } from "../../src/daemon/web.js";
import { certRows, esc, EXPIRY_WARN_SEC, renderPage } from "../../src/daemon/web-render.js";

const NOW = 1_800_000_000_000;
const NOW_SEC = NOW / 1000;
const EVIL = `<img src=x onerror="alert(1)">&'`;

function tunnel(peer: string, over: Partial<TunnelStatus> = {}): TunnelStatus {
  return {
    peer,
    role: "initiator",
    state: "established",
    endpoint: "192.0.2.2:7000",
    session: "s1",
    aead: "aes-256-gcm",
    ageMs: 3_723_000,
    epoch: 3,
    lastRekeyMsAgo: 65_000,
    lastRxMsAgo: 200,
    rxPackets: 10,
    rxBytes: 2048,
    txPackets: 12,
    txBytes: 4096,
    rekeys: 2,
    roams: 0,
    rttMs: 12,
    path: "direct",
    ...over,
  };
}

function state(): WebState {
  const status = {
    host: {
      name: "a",
      key: "aaaa1111",
      ip4: "10.77.0.1",
      ip6: null,
      subnets: [],
      certNotAfter: NOW_SEC + 300 * 86_400,
      caNotAfter: NOW_SEC + 3650 * 86_400,
    },
    listen: "0.0.0.0:7000",
    tun: "mt0",
    uptimeSec: 90_061,
    ephemeral: [],
    tunnels: [tunnel("b"), tunnel(EVIL, { rttMs: -1, rekeys: 0, lastRekeyMsAgo: -1, state: "creating" })],
    peers: [
      {
        name: "b",
        key: "bbbb2222",
        ip4: "10.77.0.2",
        ip6: null,
        subnets: [],
        endpoint: "192.0.2.2:7000",
        configured: true,
        record: { keyId: 7, expiresInSec: 250 },
        recordProblem: null,
        certNotAfter: NOW_SEC + 2 * 3600, // near expiry
        tunnels: 1,
      },
      {
        name: EVIL,
        key: null,
        ip4: null,
        ip6: null,
        subnets: [],
        endpoint: null,
        configured: true,
        record: null,
        recordProblem: { reason: "refused", detail: EVIL, attempts: 1 },
        certNotAfter: null,
        tunnels: 1,
      },
    ],
    drops: { auth: 3, replay: 0 },
    events: {},
    dos: { puzzling: false, difficulty: 0, maxDifficultyReached: 0, offeredCreatesPerSec: 0, sources: 0 },
    devices: {},
    connections: {
      open: 5,
      users: 1,
      policy: null,
      policyRules: 0,
      unmapped: "host",
      asHostUids: [],
      noOwner: 0,
      lookups: 0,
      lookupMeanUs: 0,
    },
  } satisfies Status;
  return {
    now: NOW,
    status,
    events: [{ t: NOW - 1000, kind: "tunnel-established", fields: { peer: EVIL } }],
    conns: {
      groups: [
        {
          peer: "b",
          direction: "out",
          localUser: "alice",
          peerUser: null,
          peerUserNotAfter: null,
          open: 3,
          closed: 1,
          denied: 0,
        },
        {
          peer: "b",
          direction: "in",
          localUser: null,
          peerUser: "carol",
          peerUserNotAfter: NOW_SEC - 60, // expired
          open: 1,
          closed: 0,
          denied: 0,
        },
      ],
      omitted: 0,
    },
    users: [{ uid: 1000, osUser: "alice", name: "alice", notAfter: NOW_SEC + 90 * 86_400 }],
  };
}

const HIST: HistoryData = {
  t: [NOW_SEC - 2, NOW_SEC - 1],
  total: { rx: [100, 2048], tx: [50, 1024] },
  peers: [{ peer: "b", rx: [100, 2048], tx: [50, 1024] }],
  omittedPeers: 0,
  intervalSec: 1,
  capacity: 600,
};

/** The cells of each row of table #id in server-rendered HTML (entities left as they are). */
function rows(html: string, id: string): string[][] {
  const t = new RegExp(`<table id="${id}">[\\s\\S]*?<tbody>([\\s\\S]*?)</tbody>`).exec(html);
  if (!t) throw new Error(`no table #${id}`);
  return [...t[1]!.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((r) =>
    [...r[1]!.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((c) => c[1]!),
  );
}

describe("web view page (server-rendered)", () => {
  const html = renderPage(state(), HIST);

  it("holds the tables before any script runs", () => {
    const t = rows(html, "tunnels");
    expect(t[0]).toEqual([
      "b",
      "established",
      "direct",
      "192.0.2.2:7000",
      "1h 2m",
      "1m 5s ago",
      "12ms",
      "2.0 KiB (10 pkts)",
      "4.0 KiB (12 pkts)",
      "200ms ago",
    ]);
    expect(t[1]!.slice(5, 7)).toEqual(["none yet", "-"]);
    const p = rows(html, "peers");
    expect(p[0]!.slice(0, 4)).toEqual(["b", "10.77.0.2", "192.0.2.2:7000", "rx 2.0 KiB/s, tx 1.0 KiB/s"]);
    expect(p[0]![5]).toBe("expires in 2h");
    expect(rows(html, "conns")).toEqual([
      ["b", "out (opened here)", "alice", "-", "3", "1", "0"],
      ["b", "in (opened by the peer)", "-", "carol", "1", "0", "0"],
    ]);
    expect(html).toContain('<script src="assets/uplot.js"></script>');
    expect(html).not.toMatch(/<script>/); // no inline script (the CSP allows none)
  });

  it("warns of certificates near expiry or expired: peers', local users', peers' users'", () => {
    const c = certRows(state());
    expect(c.map((r) => [r.kind, r.name, r.level])).toEqual([
      ["peer-user", "carol@b", "expired"],
      ["peer", "b", "soon"],
      ["user", "alice (alice, uid 1000)", "ok"],
      ["host", "a", "ok"],
      ["ca", "CA", "ok"],
    ]);
    const w = /<ul id="warnings" class="warnings">([\s\S]*?)<\/ul>/.exec(html)![1]!;
    expect(w).toContain("peer&#39;s user certificate carol@b expired 1m ago");
    expect(w).toContain("peer host certificate b expires in 2h");
    expect(w).not.toContain("alice");
    // a user certificate within EXPIRY_WARN_SEC is flagged too
    const s = state();
    s.users[0]!.notAfter = NOW_SEC + EXPIRY_WARN_SEC - 60;
    expect(certRows(s).find((r) => r.kind === "user")!.level).toBe("soon");
    expect(renderPage(s, HIST)).toMatch(/local user certificate alice \(alice, uid 1000\) expires in 6d 23h/);
  });

  it("escapes names, details and event fields from config or network", () => {
    expect(html).not.toContain("<img");
    expect(html).not.toContain('onerror="');
    expect(html).toContain(esc(EVIL));
    expect(esc(EVIL)).toBe("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;");
    expect(rows(html, "peers")[1]![0]).toBe(esc(EVIL));
  });
});

describe("web view HTTP", () => {
  let srv: http.Server;
  let port: number;
  let fail = false;
  const errors: unknown[] = [];

  beforeAll(async () => {
    srv = await serveWeb(
      {
        state: () => {
          if (fail) throw new Error("boom");
          return state();
        },
        history: () => HIST,
        onError: (e) => errors.push(e),
      },
      "127.0.0.1",
      0,
    );
    port = (srv.address() as AddressInfo).port;
  });
  afterAll(() => srv.close());

  const get = (p: string, host = `127.0.0.1:${port}`, method = "GET") =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: p, method, headers: { host } }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end();
    });

  it("serves the page, the panel, the JSON and the bundled uPlot under a strict CSP", async () => {
    const page = await get("/");
    expect(page.status).toBe(200);
    expect(page.headers["content-security-policy"]).toContain("script-src 'self';");
    expect(page.headers["content-security-policy"]).not.toContain("unsafe-inline");
    expect(rows(page.body, "tunnels")).toHaveLength(2);
    const panel = await get("/panel");
    expect(panel.body).toContain('<table id="peers">');
    expect(panel.body).not.toContain("<html");
    expect(JSON.parse((await get("/history.json")).body)).toEqual(HIST);
    expect(JSON.parse((await get("/state.json")).body).status.host.name).toBe("a");
    const u = await get("/assets/uplot.js");
    expect(u.status).toBe(200);
    expect(u.headers["content-type"]).toMatch(/javascript/);
    expect(u.body).toMatch(/uPlot/);
    expect(u.body.length).toBeGreaterThan(30_000);
    expect((await get("/assets/uplot.css")).body).toMatch(/\.uplot/);
    expect((await get("/assets/view.js")).body).toMatch(/new uPlot\(/);
  });

  it("refuses foreign Host headers, other methods and unknown paths; a render failure is a 500", async () => {
    expect((await get("/", "evil.example")).status).toBe(421);
    expect((await get("/", "evil.example:9478")).status).toBe(421);
    expect((await get("/", `127.0.0.1:${port}`, "POST")).status).toBe(405);
    expect((await get("/nope")).status).toBe(404);
    fail = true;
    const r = await get("/");
    fail = false;
    expect(r.status).toBe(500);
    expect(r.body).not.toContain("boom");
    expect(errors).toHaveLength(1);
  });
});
