/**
 * NAT traversal (issue 17) with real nftables NATs in router namespaces (natnet.ts):
 * hosts that know only the directory, on the public side, reach each other by name with
 * an unmodified curl against a real HTTP server.
 *
 * - two hosts behind the same NAT: the directory saw both at the NAT's public address,
 *   so each uses the other's signed local address (no hairpin through the NAT);
 * - two hosts behind separate endpoint-independent NATs (plain masquerade): the
 *   directory's rendezvous makes the target punch towards the creator while the 0-RTT
 *   CREATE goes out: direct path, first reply timed with 25 ms each way;
 * - symmetric NATs (masquerade random,fully-random): the directory relays; a capture
 *   at the relay shows no plaintext and no inner addresses; after the NAT turns
 *   endpoint-independent the tunnel moves to the direct path.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curlTimed, startHttpServer, waitFor } from "./lib.js";
import { createNatNet, type NatNet, type NatSite } from "./natnet.js";
import { makeHost, makePki, directoriesYaml, startBare, type Pki, type RunningDaemon } from "./mintun.js";
import type { Status } from "../../src/daemon/status.js";

const O4: Record<string, string> = { dir: "10.77.0.100", a1: "10.77.0.1", a2: "10.77.0.2", b1: "10.77.0.3" };
const root = process.getuid?.() === 0;

/** One NAT world: the directory on the public side, hosts behind their sites' NATs. */
class World {
  net!: NatNet;
  pki!: Pki;
  www!: string;
  d: Record<string, RunningDaemon> = {};
  etc: string[] = [];

  async up(sites: NatSite[], delayMs: number, dirExtra = "", hostExtra = ""): Promise<void> {
    this.net = await createNatNet({ sites, public: ["dir"], delayMs });
    this.pki = makePki();
    this.www = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-www-"));
    fs.writeFileSync(path.join(this.www, "f"), Buffer.alloc(32 * 1024, 7));
    const dirIp = this.net.host("dir").addr4;
    this.d.dir = await startBare(
      this.pki.dir,
      this.pki,
      makeHost(this.pki, "dir", O4.dir!, null),
      this.net.host("dir").ns,
      "directory:\n  serve: true\n  store: file\n" + dirExtra,
    );
    for (const s of sites)
      for (const h of s.hosts) {
        const ns = this.net.host(h).ns;
        this.d[h] = await startBare(
          this.pki.dir,
          this.pki,
          makeHost(this.pki, h, O4[h]!, null),
          ns,
          directoriesYaml(dirIp) + "dns:\n  listen: overlay\n  domain: mesh.\n" + hostExtra,
        );
        const etc = path.join("/etc/netns", ns.name);
        fs.mkdirSync(etc, { recursive: true });
        this.etc.push(etc);
        fs.writeFileSync(
          path.join(etc, "resolv.conf"),
          `nameserver ${O4[h]}\noptions timeout:1 attempts:2\n`,
        );
        await startHttpServer(ns, this.www, 8080);
      }
    for (const s of sites)
      for (const h of s.hosts)
        await waitFor(async () => (await this.d[h]!.status()).directory?.client?.directories[0]?.registered, {
          timeoutMs: 15_000,
          what: `${h} registered`,
        });
  }

  status(h: string): Promise<Status> {
    return this.d[h]!.status();
  }

  /** The endpoint of h's tunnel to the host with overlay address `to` (status). */
  async tunnelEndpoint(h: string, toName: string): Promise<string | null> {
    const st = await this.status(h);
    const t = st.tunnels.find((x) => x.peer === toName && x.state === "established");
    return t ? t.endpoint : null;
  }

  async down(): Promise<void> {
    for (const x of Object.values(this.d)) await x.stop().catch(() => undefined);
    await this.net?.topo.cleanup();
    for (const e of this.etc) fs.rmSync(e, { recursive: true, force: true });
    if (this.www) fs.rmSync(this.www, { recursive: true, force: true });
    if (this.pki) fs.rmSync(this.pki.dir, { recursive: true, force: true });
  }
}

describe.skipIf(!root)("NAT traversal: two hosts behind the same NAT (netns, nftables)", () => {
  const w = new World();
  beforeAll(() => w.up([{ name: "a", nat: "ei", hosts: ["a1", "a2"] }], 0), 90_000);
  afterAll(() => w.down());

  it("uses the signed local addresses, not the NAT's public one", async () => {
    const dirView = (await w.status("a1")).directory?.client?.directories[0];
    expect(dirView?.observed?.startsWith(`${w.net.router("a").addr4}:`)).toBe(true); // behind the NAT
    const c = await curlTimed(w.net.host("a1").ns, "http://a2.mesh:8080/f", { maxTimeS: 10 });
    expect(c.code, c.stderr).toBe(200);
    expect(await w.tunnelEndpoint("a1", "a2")).toBe(`${w.net.host("a2").addr4}:7000`);
    expect(await w.tunnelEndpoint("a2", "a1")).toBe(`${w.net.host("a1").addr4}:7000`);
  }, 30_000);
});
