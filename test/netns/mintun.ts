/**
 * Runs real mintund daemons in test namespaces: makes a CA, host keys,
 * certificates and configs in a temp directory, starts `node bin/mintund`
 * inside each namespace (tracked by PID), and talks to each daemon over its
 * API socket. Requires `npm run build` (dist/) and the native addon.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { apiCall } from "../../src/api/client.js";
import { writeCert, writeSecretKey } from "../../src/store/keyfile.js";
import { signKeyPair } from "../../src/crypto/sodium.js";
import type { Status } from "../../src/daemon/status.js";
import { DAEMON_ENV, DAEMON_NODE_FLAGS } from "../../src/daemon/launch.js";
import { signCert, type CaCert, type HostCert } from "../../src/wire/cert.js";
import { type Netns, type Proc, waitFor } from "./lib.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const MINTUND = path.join(ROOT, "bin/mintund");
export const MINTUN = path.join(ROOT, "bin/mintun");

export interface Pki {
  dir: string;
  caCert: CaCert;
  caSk: Buffer;
  caFile: string;
}

export function makePki(name = "test-ca"): Pki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-pki-"));
  const kp = signKeyPair();
  const now = Math.floor(Date.now() / 1000);
  const caCert = signCert(
    {
      kind: "ca",
      name,
      publicKey: kp.publicKey,
      groups: [],
      notBefore: now - 300,
      notAfter: now + 86400,
      issuer: kp.publicKey,
    },
    kp.secretKey,
  ) as CaCert;
  const caFile = path.join(dir, `${name}.crt`);
  writeCert(caFile, caCert);
  writeSecretKey(path.join(dir, `${name}.key`), kp.secretKey);
  return { dir, caCert, caSk: kp.secretKey, caFile };
}

export interface HostFiles {
  name: string;
  key: string;
  cert: string;
  hostCert: HostCert;
}

export function makeHost(
  pki: Pki,
  name: string,
  ip4: string | null,
  ip6: string | null,
  subnets: string[] = [],
): HostFiles {
  const kp = signKeyPair();
  const now = Math.floor(Date.now() / 1000);
  const hostCert = signCert(
    {
      kind: "host",
      name,
      publicKey: kp.publicKey,
      groups: [],
      notBefore: now - 300,
      notAfter: now + 86400,
      issuer: pki.caCert.publicKey,
      ip4,
      ip6,
      subnets,
    },
    pki.caSk,
  ) as HostCert;
  const key = path.join(pki.dir, `${name}.key`);
  const cert = path.join(pki.dir, `${name}.crt`);
  writeSecretKey(key, kp.secretKey, { force: true });
  writeCert(cert, hostCert, { force: true });
  return { name, key, cert, hostCert };
}

export interface DaemonSpec {
  host: HostFiles;
  ns: Netns;
  caFile: string;
  listen: string;
  peers: { name: string; endpoint: string }[];
  extra?: string;
  /** tun.routes (default: none, i.e. the /16 and /64 around the overlay addresses) */
  tunRoutes?: string[];
  logLevel?: string;
  /** environment of the daemon process (e.g. NOTIFY_SOCKET) */
  env?: NodeJS.ProcessEnv;
}

export class RunningDaemon {
  constructor(
    readonly spec: DaemonSpec,
    readonly proc: Proc,
    readonly socket: string,
  ) {}

  status(): Promise<Status> {
    return apiCall(this.socket, "status") as Promise<Status>;
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }
}

export function writeConfig(dir: string, s: DaemonSpec): { file: string; socket: string } {
  const socket = path.join(dir, `${s.host.name}.sock`);
  const file = path.join(dir, `${s.host.name}.yaml`);
  const peers = s.peers.length
    ? "peers:\n" + s.peers.map((p) => `  - name: ${p.name}\n    endpoint: "${p.endpoint}"\n`).join("")
    : "";
  fs.writeFileSync(
    file,
    `ca: ${s.caFile}\nhost:\n  key: ${s.host.key}\n  cert: ${s.host.cert}\nlisten: "${s.listen}"\n` +
      `tun:\n  name: mt0\n${s.tunRoutes ? `  routes: [${s.tunRoutes.join(", ")}]\n` : ""}${peers}api:\n  socket: ${socket}\nstate: ${path.join(dir, "state-" + s.host.name)}\n` +
      `log:\n  level: ${s.logLevel ?? "info"}\n${s.extra ?? ""}`,
  );
  return { file, socket };
}

/** Start mintund in its namespace and wait until its API answers and its peers' records are known. */
export async function startDaemon(dir: string, s: DaemonSpec, waitRecords = true): Promise<RunningDaemon> {
  const { file, socket } = writeConfig(dir, s);
  // as the systemd units start it (src/daemon/launch.ts)
  const proc = s.ns.spawn("node", [...DAEMON_NODE_FLAGS, MINTUND, "--config", file], {
    logFile: path.join(dir, `${s.host.name}.log`),
    env: { ...(s.env ?? process.env), ...DAEMON_ENV },
  });
  const d = new RunningDaemon(s, proc, socket);
  let exited = false;
  void proc.exited.then(() => (exited = true));
  await waitFor(
    async () => {
      if (exited) return { exited: true };
      try {
        const st = await d.status();
        if (!waitRecords) return st;
        return st.peers.every((p) => p.record !== null) ? st : null;
      } catch {
        return null;
      }
    },
    { timeoutMs: 15_000, what: `mintund ${s.host.name} ready` },
  );
  if (exited) throw new Error(`mintund ${s.host.name} exited: ${proc.readLog()}`);
  return d;
}

/** Wait until the daemon holds a verified record of every configured peer. */
export async function waitRecords(d: RunningDaemon, timeoutMs = 10_000): Promise<Status> {
  return waitFor(
    async () => {
      const st = await d.status();
      return st.peers.every((p) => p.record !== null) ? st : null;
    },
    { timeoutMs, what: `records of ${d.spec.host.name}'s peers` },
  );
}

/**
 * A mintund that knows no peers, only what `extra` says (a directory role, or the
 * directories it registers with and looks up from): listen on 0.0.0.0:7000 in `ns`.
 */
export function startBare(
  dir: string,
  pki: Pki,
  host: HostFiles,
  ns: Netns,
  extra: string,
): Promise<RunningDaemon> {
  return startDaemon(dir, { host, ns, caFile: pki.caFile, listen: "0.0.0.0:7000", peers: [], extra }, false);
}

/** The `directories:` config of a host that knows only these directories (IP, port 7000). */
export function directoriesYaml(...ips: string[]): string {
  return "directories:\n" + ips.map((ip) => `  - endpoint: "${ip}:7000"\n`).join("");
}

/** Wait until the daemon's first directory acknowledged its registration. */
export async function waitRegistered(d: RunningDaemon, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => (await d.status()).directory?.client?.directories[0]?.registered, {
    timeoutMs,
    what: `${d.spec.host.name} registered with its directory`,
  });
}
