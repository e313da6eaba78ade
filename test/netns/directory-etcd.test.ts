/**
 * Several directories on one etcd: a real etcd (Debian's etcd-server) in its
 * own namespace, two directories storing in it, host a registered only at the
 * first, host b only at the second; each finds the other through its own
 * directory. Host c lists an unreachable directory first and the second one
 * after it: it registers with what answers and looks up from it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLan, execCmd, pingStats, type Proc, type Topology, waitFor } from "./lib.js";
import {
  ROOT,
  makeHost,
  makePki,
  directoriesYaml,
  startBare,
  type HostFiles,
  type Pki,
  type RunningDaemon,
} from "./mintun.js";
import { readSecretKey } from "../../src/store/keyfile.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import { EPH_OFFSET_HOST_KEY, signEphemeral, type HostCert } from "../../src/wire/cert.js";

/** A genuine-looking ephemeral certificate for host key `hostKey`, signed with `sk`. */
function eph(hostKey: Buffer, sk: Buffer): Buffer {
  const now = Math.floor(Date.now() / 1000);
  return signEphemeral(
    {
      hostKey,
      keyId: 7,
      publicKey: signKeyPair().publicKey,
      notBefore: now - 1,
      notAfter: now + 300,
      endpoints: [],
      protocolVersion: 1,
      minFirstPacket: 256,
    },
    sk,
  ).raw;
}

const O4: Record<string, string> = {
  d1: "10.77.0.101",
  d2: "10.77.0.102",
  a: "10.77.0.1",
  b: "10.77.0.2",
  c: "10.77.0.3",
};
const ETCD_CLIENT_PORT = 23791;
const ETCD_PEER_PORT = 23801;

const haveEtcd = (): boolean => fs.existsSync("/usr/bin/etcd");

describe.skipIf(process.getuid?.() !== 0 || !haveEtcd())(
  "directories sharing etcd (netns, real etcd)",
  () => {
    let topo: Topology;
    let work: string;
    let etcd: Proc;
    let pki: Pki;
    let url: string;
    let files: Record<string, HostFiles>;
    const d: Record<string, RunningDaemon> = {};

    beforeAll(async () => {
      topo = await createLan({ hosts: ["kv", "d1", "d2", "a", "b", "c"] });
      pki = makePki();
      work = pki.dir;
      const kv = topo.host("kv");
      url = `http://${kv.addr4}:${ETCD_CLIENT_PORT}`;
      etcd = kv.ns.spawn(
        "etcd",
        [
          "--name",
          "kv",
          "--data-dir",
          path.join(work, "etcd-data"),
          "--listen-client-urls",
          url,
          "--advertise-client-urls",
          url,
          "--listen-peer-urls",
          `http://${kv.addr4}:${ETCD_PEER_PORT}`,
          "--initial-advertise-peer-urls",
          `http://${kv.addr4}:${ETCD_PEER_PORT}`,
          "--initial-cluster",
          `kv=http://${kv.addr4}:${ETCD_PEER_PORT}`,
        ],
        { logFile: path.join(work, "etcd.log") },
      );
      await waitFor(
        async () => {
          if (!etcd.running) throw new Error(`etcd exited: ${etcd.readLog().slice(-2000)}`);
          const r = await execCmd("ip", ["netns", "exec", kv.ns.name, "curl", "-s", `${url}/health`]);
          return r.stdout.includes("true");
        },
        { timeoutMs: 20_000, what: "etcd healthy" },
      );
      files = Object.fromEntries(Object.keys(O4).map((h) => [h, makeHost(pki, h, O4[h]!, null)]));
      for (const h of ["d1", "d2"])
        d[h] = await startBare(
          work,
          pki,
          files[h]!,
          topo.host(h).ns,
          `directory:\n  serve: true\n  store: etcd\n  etcd:\n    endpoints: ["${url}"]\n    prefix: /test-${process.pid}/\n`,
        );
      const dirs: Record<string, string[]> = {
        a: [topo.host("d1").addr4],
        b: [topo.host("d2").addr4],
        c: ["10.201.0.250", topo.host("d2").addr4], // nobody at .250
      };
      for (const h of ["a", "b", "c"])
        d[h] = await startBare(work, pki, files[h]!, topo.host(h).ns, directoriesYaml(...dirs[h]!));
      for (const h of ["a", "b", "c"])
        await waitFor(
          async () => (await d[h]!.status()).directory?.client?.directories.some((x) => x.registered),
          {
            timeoutMs: 15_000,
            what: `${h} registered`,
          },
        );
    }, 90_000);

    afterAll(async () => {
      for (const x of Object.values(d)) await x.stop().catch(() => undefined);
      await etcd?.stop().catch(() => undefined);
      await topo?.cleanup();
      if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    it("registered at one directory, found through the other", async () => {
      const s1 = await d.d1!.status();
      const s2 = await d.d2!.status();
      expect(s1.directory?.server?.store).toBe("etcd");
      expect(s1.events.dirRecordsStored).toBeGreaterThanOrEqual(1); // a
      expect(s2.events.dirRecordsStored).toBeGreaterThanOrEqual(2); // b and c
      // b asks d2 for a (registered at d1 only); a asks d1 for b (registered at d2 only)
      const ba = await pingStats(topo.host("b").ns, O4.a!, { count: 3, interval: 0.1 });
      const ab = await pingStats(topo.host("a").ns, O4.b!, { count: 3, interval: 0.1 });
      expect(ba.received).toBeGreaterThanOrEqual(2);
      expect(ab.received).toBeGreaterThanOrEqual(2);
      const sb = await d.b!.status();
      expect(sb.events.dirRecordsLearned).toBeGreaterThanOrEqual(1);
      expect(sb.drops.dirBadRecord).toBe(0);
    });

    it("a host with an unreachable first directory registers with and looks up from the second", async () => {
      const st = await d.c!.status();
      const ds = st.directory!.client!.directories;
      expect(ds[0]).toMatchObject({ state: "no-record", registered: false });
      expect(ds[1]).toMatchObject({ state: "up", registered: true, name: "d2" });
      const ca = await pingStats(topo.host("c").ns, O4.a!, { count: 4, interval: 0.2 });
      expect(ca.received).toBeGreaterThanOrEqual(3);
    });

    it("forged records written straight into etcd are refused and counted by the host", async () => {
      // 10.77.0.50: host c's genuine record, served for an address c's certificate does not hold
      const c = files.c!;
      const cEph = eph(c.hostCert.publicKey, readSecretKey(c.key));
      // 10.77.0.51: a host certificate from another CA claiming the address
      const other = makePki("other-ca");
      const x = makeHost(other, "x", "10.77.0.51", null);
      const xEph = eph(x.hostCert.publicKey, readSecretKey(x.key));
      // 10.77.0.52: a genuine certificate of our CA, but an ephemeral key its host never signed
      const m = makeHost(pki, "m", "10.77.0.52", null);
      const wrong = signKeyPair();
      const mEph = eph(wrong.publicKey, wrong.secretKey);
      m.hostCert.publicKey.copy(mEph, EPH_OFFSET_HOST_KEY);
      const rec = (h: HostCert, e: Buffer) =>
        JSON.stringify({
          host: h.raw.toString("base64"),
          eph: e.toString("base64"),
          observed: { ip: topo.host("b").addr4, port: 7000 },
        });
      const puts: [string, string][] = [
        ["ip/10.77.0.50", rec(c.hostCert, cEph)],
        ["ip/10.77.0.51", rec(x.hostCert, xEph)],
        ["ip/10.77.0.52", rec(m.hostCert, mEph)],
      ];
      const script =
        `import { Etcd3 } from ${JSON.stringify(path.join(ROOT, "node_modules/etcd3/lib/index.js"))};\n` +
        `const c = new Etcd3({ hosts: ${JSON.stringify(url)} });\n` +
        `for (const [k, v] of ${JSON.stringify(puts)}) await c.put(${JSON.stringify(`/test-${process.pid}/`)} + k).value(v);\n` +
        `c.close();\n`;
      const w = await topo
        .host("kv")
        .ns.exec("node", ["--input-type=module", "-e", script], { timeoutMs: 20_000 });
      expect(w.code, w.stderr).toBe(0);
      const before = (await d.a!.status()).drops.dirBadRecord;
      for (const ip of ["10.77.0.50", "10.77.0.51", "10.77.0.52"]) {
        const p = await pingStats(topo.host("a").ns, ip, { count: 2, interval: 0.2, waitS: 1 });
        expect(p.received, ip).toBe(0);
      }
      const sa = await d.a!.status();
      console.log(`forged records in etcd: dirBadRecord ${before} -> ${sa.drops.dirBadRecord}`);
      expect(sa.drops.dirBadRecord - before).toBeGreaterThanOrEqual(3);
      expect(sa.peers.some((p) => p.name === "x" || p.name === "m")).toBe(false);
      expect(sa.tunnels.some((t) => t.peer === "x" || t.peer === "m")).toBe(false);
    });
  },
);
