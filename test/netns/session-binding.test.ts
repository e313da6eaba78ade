/**
 * Application authentication bound to the tunnel session (docs/IDENTITY.md section 7,
 * docs/examples/session-auth.mjs): three real daemons a, b, c. The example server on b
 * and client on a (run as `nobody`: whois is open to every local user) agree on the
 * session id that both daemons report, and authenticate. Relayed through c (a plain TCP
 * forwarder, every byte passed through), the two ends sit on different tunnels (a-c and
 * c-b), see different session ids, and the same shared key no longer authenticates.
 */
import * as fs from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLan, type Netns, type Proc, type Topology } from "./lib.js";
import { makeHost, makePki, startDaemon, waitRecords, type RunningDaemon } from "./mintun.js";

const EXAMPLE = fileURLToPath(new URL("../../docs/examples/session-auth.mjs", import.meta.url));
const HOSTS = ["a", "b", "c"] as const;
const O4: Record<string, string> = { a: "10.77.0.1", b: "10.77.0.2", c: "10.77.0.3" };
const PORT = 9000;
const KEY = "correct horse battery staple";

describe.skipIf(process.getuid?.() !== 0)(
  "session binding: an application ties its auth to the tunnel",
  () => {
    let topo: Topology;
    let work: string;
    const d: Record<string, RunningDaemon> = {};
    let server: Proc;
    let relay: Proc;

    const env = (who: string) => ({ ...process.env, MINTUN_EXAMPLE_KEY: KEY, MINTUN_SOCKET: d[who]!.socket });

    /** The example client on a, as `nobody`; its one output line and exit code. */
    async function client(ns: Netns, addr: string) {
      const r = await ns.exec(
        "runuser",
        ["-u", "nobody", "--", process.execPath, EXAMPLE, "client", addr, String(PORT)],
        { env: env("a"), timeoutMs: 20_000 },
      );
      return { code: r.code, out: r.stdout.trim(), err: r.stderr };
    }

    /** The server's output lines so far. */
    const serverLines = () => server.readLog().split("\n").filter(Boolean);

    async function sessionWith(on: string, peer: string): Promise<string[]> {
      return (await d[on]!.status()).tunnels.filter((t) => t.peer === peer).map((t) => t.session);
    }

    beforeAll(async () => {
      topo = await createLan({ hosts: [...HOSTS] });
      const pki = makePki();
      work = pki.dir;
      fs.chmodSync(work, 0o755); // the API sockets live here; nobody must reach them (keys stay 0600)
      for (const h of HOSTS) {
        d[h] = await startDaemon(
          work,
          {
            host: makeHost(pki, h, O4[h]!, null),
            ns: topo.host(h).ns,
            caFile: pki.caFile,
            listen: "0.0.0.0:7000",
            peers: HOSTS.filter((x) => x !== h).map((x) => ({
              name: x,
              endpoint: `${topo.host(x).addr4}:7000`,
            })),
            // the client runs as `nobody`, who has no user identity: name it as acting for the
            // host (users.unmapped is deny by default, docs/IDENTITY.md)
            extra: "users:\n  asHost: [nobody]\n",
          },
          false,
        );
      }
      for (const h of HOSTS) await waitRecords(d[h]!);
      server = topo
        .host("b")
        .ns.spawn(process.execPath, [EXAMPLE, "server", String(PORT)], { env: env("b") });
      await server.waitForLog(/^listening/m);
      // c: a plain TCP relay to b, run by root (c's host identity)
      const fwd =
        `const net = require("node:net");` +
        `net.createServer((s) => { const u = net.connect(${PORT}, "${O4.b}"); s.pipe(u).pipe(s);` +
        ` s.on("error", () => u.destroy()); u.on("error", () => s.destroy()); })` +
        `.listen(${PORT}, () => console.log("relaying"));`;
      relay = topo.host("c").ns.spawn(process.execPath, ["-e", fwd]);
      await relay.waitForLog(/^relaying/m);
    }, 90_000);

    afterAll(async () => {
      await server?.stop().catch(() => undefined);
      await relay?.stop().catch(() => undefined);
      for (const x of Object.values(d)) await x.stop().catch(() => undefined);
      await topo?.cleanup();
      if (work && !process.env.KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
    });

    it("direct: both ends see the same session id, the one of tunnel a-b, and authenticate", async () => {
      const before = serverLines().length;
      const r = await client(topo.host("a").ns, O4.b!);
      console.log(`direct: client "${r.out}", server "${serverLines().slice(before).join(" | ")}"`);
      expect(r.code, r.err + r.out).toBe(0);
      const m = /^authenticated ([0-9a-f]{16})$/.exec(r.out);
      expect(m, r.out).not.toBeNull();
      const session = m![1]!;
      expect(serverLines().slice(before)).toEqual([`OK ${session}`]);
      expect(await sessionWith("a", "b")).toContain(session);
      expect(await sessionWith("b", "a")).toContain(session);
    });

    it("relayed through c: the sessions differ (a-c vs c-b) and the same key is refused", async () => {
      const before = serverLines().length;
      const r = await client(topo.host("a").ns, O4.c!);
      const lines = serverLines().slice(before);
      console.log(`relayed: client "${r.out}", server "${lines.join(" | ")}"`);
      expect(r.code, r.err + r.out).toBe(1);
      const mine = /^refused \(our session ([0-9a-f]{16})\)$/.exec(r.out);
      expect(mine, r.out).not.toBeNull();
      const theirs = /^FAIL proof does not match session ([0-9a-f]{16})$/.exec(lines[0] ?? "");
      expect(theirs, lines.join("\n")).not.toBeNull();
      // each end saw its own, genuine tunnel: a-c on the client, c-b on the server
      expect(await sessionWith("a", "c")).toContain(mine![1]);
      expect(await sessionWith("b", "c")).toContain(theirs![1]);
      expect(mine![1]).not.toBe(theirs![1]);
    });
  },
);
