/**
 * A directory on an etcd that requires TLS and client certificates: a real etcd
 * (Debian's etcd-server) in its own namespace with an https client URL and
 * --client-cert-auth; directory d1 configured with the CA bundle and a client
 * certificate stores host a's registration there; directory d2 without the
 * client certificate is refused by etcd and does not start (typed EETCD error).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLan, execCmd, execOk, type Proc, type Topology, waitFor } from "./lib.js";
import {
  directoriesYaml,
  makeHost,
  makePki,
  startBare,
  waitRegistered,
  type Pki,
  type RunningDaemon,
} from "./mintun.js";

const PORT = 23792;
const PEER_PORT = 23802;
const haveEtcd = (): boolean => fs.existsSync("/usr/bin/etcd") && fs.existsSync("/usr/bin/openssl");

async function issue(dir: string, name: string, ext: string): Promise<void> {
  const f = (x: string) => path.join(dir, x);
  await execOk("openssl", [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    f(`${name}.key`),
    "-out",
    f(`${name}.csr`),
    "-subj",
    `/CN=${name}`,
  ]);
  fs.writeFileSync(f(`${name}.ext`), ext);
  await execOk("openssl", [
    "x509",
    "-req",
    "-in",
    f(`${name}.csr`),
    "-CA",
    f("etcd-ca.crt"),
    "-CAkey",
    f("etcd-ca.key"),
    "-CAcreateserial",
    "-out",
    f(`${name}.crt`),
    "-days",
    "1",
    "-extfile",
    f(`${name}.ext`),
  ]);
}

describe.skipIf(process.getuid?.() !== 0 || !haveEtcd())("directory on a TLS etcd (netns, real etcd)", () => {
  let topo: Topology;
  let work: string;
  let pki: Pki;
  let etcd: Proc;
  let url: string;
  const d: Record<string, RunningDaemon> = {};

  beforeAll(async () => {
    topo = await createLan({ hosts: ["kv", "d1", "d2", "a"] });
    pki = makePki();
    work = pki.dir;
    const kv = topo.host("kv");
    url = `https://${kv.addr4}:${PORT}`;
    const f = (x: string) => path.join(work, x);
    await execOk("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      f("etcd-ca.key"),
      "-out",
      f("etcd-ca.crt"),
      "-days",
      "1",
      "-subj",
      "/CN=etcd-test-ca",
    ]);
    await issue(work, "server", `subjectAltName=IP:${kv.addr4}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    await issue(work, "client", "extendedKeyUsage=clientAuth\n");
    etcd = kv.ns.spawn(
      "etcd",
      [
        "--name",
        "kv",
        "--data-dir",
        f("etcd-data"),
        "--listen-client-urls",
        url,
        "--advertise-client-urls",
        url,
        "--cert-file",
        f("server.crt"),
        "--key-file",
        f("server.key"),
        "--trusted-ca-file",
        f("etcd-ca.crt"),
        "--client-cert-auth",
        "--listen-peer-urls",
        `http://${kv.addr4}:${PEER_PORT}`,
        "--initial-advertise-peer-urls",
        `http://${kv.addr4}:${PEER_PORT}`,
        "--initial-cluster",
        `kv=http://${kv.addr4}:${PEER_PORT}`,
      ],
      { logFile: f("etcd.log") },
    );
    await waitFor(
      async () => {
        if (!etcd.running) throw new Error(`etcd exited: ${etcd.readLog().slice(-2000)}`);
        const r = await execCmd("ip", [
          "netns",
          "exec",
          kv.ns.name,
          "curl",
          "-s",
          "--cacert",
          f("etcd-ca.crt"),
          "--cert",
          f("client.crt"),
          "--key",
          f("client.key"),
          `${url}/health`,
        ]);
        return r.stdout.includes("true");
      },
      { timeoutMs: 20_000, what: "etcd (TLS) healthy" },
    );
  }, 90_000);

  afterAll(async () => {
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await etcd?.stop().catch(() => undefined);
    await topo?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const etcdYaml = (tls: string) =>
    `directory:\n  serve: true\n  store: etcd\n  etcd:\n    endpoints: ["${url}"]\n` +
    `    prefix: /test-${process.pid}/\n${tls}`;

  it("with the CA bundle and a client certificate the directory stores registrations in etcd", async () => {
    const f = (x: string) => path.join(work, x);
    d.d1 = await startBare(
      work,
      pki,
      makeHost(pki, "d1", "10.77.0.101", null),
      topo.host("d1").ns,
      etcdYaml(
        `    tls:\n      ca: ${f("etcd-ca.crt")}\n      cert: ${f("client.crt")}\n      key: ${f("client.key")}\n`,
      ),
    );
    d.a = await startBare(
      work,
      pki,
      makeHost(pki, "a", "10.77.0.1", null),
      topo.host("a").ns,
      directoriesYaml(topo.host("d1").addr4),
    );
    await waitRegistered(d.a, 15_000);
    const s = await d.d1.status();
    expect(s.directory?.server?.store).toBe("etcd");
    expect(s.events.dirRecordsStored).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it("without the client certificate etcd refuses the directory: it does not start (EETCD)", async () => {
    const f = (x: string) => path.join(work, x);
    const r = await startBare(
      work,
      pki,
      makeHost(pki, "d2", "10.77.0.102", null),
      topo.host("d2").ns,
      etcdYaml(`    tls:\n      ca: ${f("etcd-ca.crt")}\n`),
    ).then(
      (x) => {
        d.d2 = x;
        return null;
      },
      (e: unknown) => String(e),
    );
    expect(r).toMatch(/etcd at https:\/\/.* does not answer/);
  }, 60_000);
});
