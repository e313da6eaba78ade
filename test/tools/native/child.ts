/**
 * Child process for the real-kernel compliance runs. Started by the vitest suites as
 *   ip netns exec <ns> node .tmp/native-test/test/tools/native/child.js <tun|udp|perm>
 * (compiled with test/tools/native/tsconfig.json); never run it in the root namespace.
 * Prints one JSON line {results: CaseResult[]} and exits on its own once every handle is
 * closed, so a leaked poll handle shows up as a hang (the watchdog then reports it).
 */
import dgram from "node:dgram";
import { existsSync, readFileSync } from "node:fs";
import { PlatformError } from "../../../src/errors.js";
import { LinuxRouteManager } from "../../../src/net/route.js";
import { LinuxTun } from "../../../src/net/tun.js";
import { LinuxUdp, type UdpBind } from "../../../src/net/udp.js";
import { offloadChecks, openBridge } from "./offload.js";
import {
  check,
  runCases,
  tunCases,
  udpCases,
  type CaseResult,
  type KernelListener,
  type TunHarness,
  type UdpHarness,
} from "./compliance.js";
import { vethReceive, vethSend } from "./veth.js";

const watchdog = setTimeout(() => {
  process.stdout.write(
    JSON.stringify({ results: [{ name: "child watchdog", ok: false, error: "hung" }] }) + "\n",
  );
  process.exit(3);
}, 45_000);
watchdog.unref();

function assertInNamespace(): void {
  // the root namespace has the host's interfaces; ours has only lo (and what we create)
  const ifs = readFileSync("/proc/net/dev", "utf8").split("\n").slice(2).filter(Boolean);
  const names = ifs.map((l) => l.split(":")[0]!.trim());
  if (names.some((n) => n !== "lo" && !n.startsWith("tun") && !n.startsWith("mtc")))
    throw new Error(`refusing to run outside a fresh network namespace (interfaces: ${names.join(" ")})`);
}

const rm = new LinuxRouteManager();

async function realTunHarness(): Promise<TunHarness> {
  const v4 = { local: "10.99.0.1", peer: "10.99.0.2" };
  const v6 = { local: "fd00::1", peer: "fd00::2" };
  const dev = LinuxTun.open(); // kernel-picked name
  await rm.addAddress(dev.name, `${v4.local}/24`);
  await rm.addAddress(dev.name, `${v6.local}/64`);
  await rm.setUp(dev.name);
  const socks: dgram.Socket[] = [];
  const open = async (family: 4 | 6): Promise<dgram.Socket> => {
    const s = dgram.createSocket(family === 4 ? "udp4" : "udp6");
    socks.push(s);
    await new Promise<void>((res, rej) => {
      s.once("error", rej);
      s.bind({ address: family === 4 ? v4.local : v6.local, port: 0 }, () => res());
    });
    return s;
  };
  return {
    dev,
    v4,
    v6,
    async kernelSend(family, dstPort, ps) {
      const s = await open(family);
      const peer = family === 4 ? v4.peer : v6.peer;
      await Promise.all(
        ps.map((p) => new Promise<void>((res, rej) => s.send(p, dstPort, peer, (e) => (e ? rej(e) : res())))),
      );
    },
    async kernelListen(family) {
      const s = await open(family);
      const l: KernelListener = {
        port: s.address().port,
        received: [],
        close: () => s.close(),
      };
      s.on("message", (msg, rinfo) => l.received.push({ ip: rinfo.address, port: rinfo.port, payload: msg }));
      return l;
    },
    open: (opts) => LinuxTun.open(opts),
    close() {
      for (const s of socks) {
        try {
          s.close();
        } catch {
          // already closed by the case
        }
      }
      dev.close();
    },
  };
}

async function realUdpHarness(): Promise<UdpHarness> {
  const binds: UdpBind[] = [];
  return {
    v4: "127.0.0.1",
    v6: "::1",
    bind(opts) {
      const b = LinuxUdp.bind(opts);
      binds.push(b);
      return b;
    },
    offloads(b) {
      const o = (b as LinuxUdp).offloads();
      return { gso: o.gsoLimit > 0, gro: o.gro };
    },
    close() {
      for (const b of binds) b.close();
    },
  };
}

async function platformCheck(name: string, fn: () => Promise<void>): Promise<CaseResult> {
  try {
    await fn();
    return { name, ok: true };
  } catch (e) {
    return { name, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, text?: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    check(e instanceof PlatformError, `expected PlatformError, got ${String(e)}`);
    check(e.code === code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (text) check(e.message.includes(text), `message lacks ${JSON.stringify(text)}: ${e.message}`);
    return;
  }
  throw new Error(`did not reject with ${code}`);
}

/** Real-only checks: the `ip` wrapper and kernel-only errors. */
async function tunPlatformChecks(): Promise<CaseResult[]> {
  return [
    await platformCheck("route: ip failures carry stderr as EIPCMD; bad input is EINVAL", async () => {
      await rejectsWith(rm.addAddress("nosuchdev0", "10.1.0.1/24"), "EIPCMD", "nosuchdev0");
      await rejectsWith(rm.addAddress("tun0", "10.1.0.1/33"), "EINVAL");
      await rejectsWith(rm.addRoute("-bad", "10.1.0.0/24"), "EINVAL");
    }),
    await platformCheck("route: address, MTU, routes (v4+v6) and flush on a real TUN", async () => {
      const t = LinuxTun.open({ name: "mtc-rt0" });
      try {
        await rm.addAddress(t.name, "10.98.0.1/24");
        await rm.addAddress(t.name, "10.98.0.1/24"); // idempotent
        await rm.addAddress(t.name, "fd01::1/64");
        await rm.setMtu(t.name, 1280);
        await rm.setTxQueueLen(t.name, 1000);
        await rm.setUp(t.name);
        await rm.addRoute(t.name, "10.97.0.0/16");
        await rm.addRoute(t.name, "fd02::/48");
        const link = await rm.run(["link", "show", "dev", t.name]);
        check(
          link.includes("mtu 1280") && link.includes("UP") && link.includes("qlen 1000"),
          `link: ${link}`,
        );
        const r4 = await rm.run(["-4", "route", "show", "dev", t.name]);
        const r6 = await rm.run(["-6", "route", "show", "dev", t.name]);
        check(r4.includes("10.97.0.0/16") && r6.includes("fd02::/48"), `routes: ${r4} ${r6}`);
        await rm.delRoute(t.name, "10.97.0.0/16");
        await rm.delRoute(t.name, "fd02::/48");
        const r4b = await rm.run(["-4", "route", "show", "dev", t.name]);
        check(!r4b.includes("10.97.0.0/16") && r4b.includes("10.98.0.0/24"), `after delRoute: ${r4b}`);
        await rm.flush(t.name);
        const a = await rm.run(["addr", "show", "dev", t.name]);
        check(!a.includes("10.98.0.1") && !a.includes("fd01::1"), `after flush: ${a}`);
      } finally {
        t.close();
      }
    }),
  ];
}

async function udpPlatformChecks(): Promise<CaseResult[]> {
  return [
    await platformCheck("udp: binding an address that is not local gives EADDRNOTAVAIL", async () => {
      try {
        LinuxUdp.bind({ address: "192.0.2.1", port: 0 }).close();
      } catch (e) {
        check(e instanceof PlatformError && e.code === "EADDRNOTAVAIL", `got ${String(e)}`);
        return;
      }
      throw new Error("did not throw");
    }),
  ];
}

/** Without privileges: TUN open and a low port must fail with a PlatformError code, not crash. */
async function permChecks(): Promise<CaseResult[]> {
  process.setgid!(65534);
  process.setuid!(65534);
  return [
    await platformCheck("perm: TUN open as nobody throws PlatformError EACCES/EPERM", async () => {
      try {
        LinuxTun.open({ name: "mtc-perm0" }).close();
      } catch (e) {
        check(e instanceof PlatformError && ["EACCES", "EPERM"].includes(e.code), `got ${String(e)}`);
        return;
      }
      throw new Error("did not throw");
    }),
    await platformCheck("perm: UDP bind to port 80 as nobody throws PlatformError EACCES", async () => {
      try {
        LinuxUdp.bind({ address: "127.0.0.1", port: 80 }).close();
      } catch (e) {
        check(e instanceof PlatformError && e.code === "EACCES", `got ${String(e)}`);
        return;
      }
      throw new Error("did not throw");
    }),
  ];
}

/** The second namespace (offload and bridge modes), created and deleted by the caller. */
function nsArg(): string {
  const ns = process.argv[3];
  if (!ns || !/^[A-Za-z0-9_.-]{1,64}$/.test(ns))
    throw new Error("offload/bridge: missing namespace argument");
  return ns;
}

async function main(): Promise<void> {
  assertInNamespace();
  check(existsSync("/dev/net/tun"), "/dev/net/tun missing");
  const mode = process.argv[2];
  let results: CaseResult[];
  if (mode === "tun")
    results = [...(await runCases(tunCases, realTunHarness)), ...(await tunPlatformChecks())];
  else if (mode === "udp")
    results = [...(await runCases(udpCases, realUdpHarness)), ...(await udpPlatformChecks())];
  else if (mode === "perm") results = await permChecks();
  else if (mode === "veth-rx") results = await vethReceive();
  else if (mode === "veth-tx") results = await vethSend();
  else if (mode === "offload") {
    results = [];
    for (const c of offloadChecks(nsArg())) results.push(await platformCheck(c.name, () => c.run()));
  } else if (mode === "bridge") {
    // throughput A/B tool, not a test: bridge two TUNs until SIGTERM/SIGINT
    const br = await openBridge(nsArg(), process.argv[4] !== "off", false);
    clearTimeout(watchdog);
    process.stdout.write(`bridge up, offload flags a=${br.a.offload} b=${br.b.offload}\n`);
    const stop = (): void => {
      process.stdout.write(JSON.stringify({ a: br.a.stats(), b: br.b.stats() }) + "\n");
      br.close();
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    return;
  } else
    throw new Error(
      `usage: child.js tun|udp|perm|veth-rx|veth-tx|offload <nsB>|bridge <nsB> [on|off] (got ${String(mode)})`,
    );
  process.stdout.write(JSON.stringify({ results }) + "\n");
}

main().catch((e: unknown) => {
  process.stdout.write(JSON.stringify({ results: [{ name: "child", ok: false, error: String(e) }] }) + "\n");
  process.exitCode = 1;
});
