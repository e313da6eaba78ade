/**
 * IdentityLookup compliance: the cases, the fake harness (FakeIdentityLookup, run
 * in-process by test/unit/identity.test.ts) and the real one (LinuxIdentityLookup against
 * the kernel). Run as a script only inside a fresh network namespace:
 *   ip netns exec <ns> node .tmp/identity-test/test/tools/native/identity-child.js real|bench [sockets]
 * (compiled with test/tools/native/identity-child.tsconfig.json). Sockets of uid 65534 are
 * opened by a helper process started with `setpriv --reuid=65534`, root's by a second
 * helper; both are killed by PID when the harness closes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { isIPv4 } from "node:net";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import {
  LinuxIdentityLookup,
  PROTO_TCP,
  PROTO_UDP,
  findSocketProcess,
  type FlowKey,
  type IdentityLookup,
} from "../../../src/net/identity.js";
import { PlatformError } from "../../../src/errors.js";
import { FakeIdentityLookup } from "../../fakes/identity.js";
import { native } from "../../../src/net/native.js";
import { check, runCases, type Case, type CaseResult } from "./compliance.js";

export const NOBODY = 65534;

export interface IdentityHarness {
  readonly lookup: IdentityLookup;
  /** Identity.source the lookup must report */
  readonly source: string;
  /** TCP listener owned by uid on addr (port chosen by the kernel) */
  tcpListen(uid: number, addr: string, opts?: { v6only?: boolean }): Promise<{ port: number }>;
  /** TCP connection owned by uid to addr:port; the accepted side belongs to the listener */
  tcpConnect(uid: number, addr: string, port: number): Promise<{ lport: number }>;
  /** UDP socket owned by uid bound to addr:0, optionally connected */
  udpOpen(
    uid: number,
    addr: string,
    opts?: { v6only?: boolean; connect?: { addr: string; port: number } },
  ): Promise<{ port: number }>;
  close(): Promise<void>;
}

/** How a flow looks on the wire: v4-mapped IPv6 socket addresses are IPv4 packets. */
function wire(addr: string): { family: 4 | 6; ip: string } {
  if (addr.toLowerCase().startsWith("::ffff:") && isIPv4(addr.slice(7)))
    return { family: 4, ip: addr.slice(7) };
  return isIPv4(addr) ? { family: 4, ip: addr } : { family: 6, ip: addr };
}

function flow(proto: number, local: string, lport: number, remote: string, rport: number): FlowKey {
  const l = wire(local);
  const r = wire(remote);
  if (l.family !== r.family) throw new Error(`flow mixes families: ${local} ${remote}`);
  return { proto, family: l.family, local: l.ip, lport, remote: r.ip, rport };
}

function expectUid(h: IdentityHarness, f: FlowKey, uid: number | null, what: string): void {
  const id = h.lookup.lookup(f);
  const got = id ? id.uid : null;
  check(got === uid, `${what}: ${JSON.stringify(f)} expected uid ${String(uid)}, got ${JSON.stringify(id)}`);
  if (id) {
    check(id.source === h.source, `${what}: source ${id.source}, expected ${h.source}`);
    check(Number.isInteger(id.inode) && id.inode > 0, `${what}: inode ${id.inode}`);
  }
}

export interface IdentityCase extends Case<IdentityHarness> {
  /** needs the real kernel (TIME_WAIT, /proc/<pid>/fd) */
  realOnly?: boolean;
  /** /proc/net cannot tell (IPV6_V6ONLY is not listed there) */
  notProc?: boolean;
}

/** Deterministic garbage for the "never a crash" case (xorshift32). */
function garbage(seed: number, n: number): unknown[] {
  let x = seed;
  const rnd = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]!;
  const nums = [0, 1, 4, 6, 17, -1, 65535, 65536, 1.5, NaN, Infinity, 2 ** 32 + 6, -0];
  const addrs = [
    "127.0.0.1",
    "::1",
    "",
    "1.2.3",
    "256.1.1.1",
    "::g",
    "fe80::1%lo",
    "::ffff:1.2.3.4",
    "0.0.0.0",
    "::",
  ];
  const any = (): unknown =>
    pick<unknown>([pick(nums), pick(addrs), null, undefined, {}, [], Buffer.alloc(4), true, "6", 10n]);
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const r = rnd();
    if (r < 0.5)
      out.push({
        proto: pick([6, 17, 1, 58, 0, 255, 256, -1, 6.5, NaN]),
        family: pick([4, 6, 5, 0]),
        local: pick(addrs),
        lport: pick(nums),
        remote: pick(addrs),
        rport: pick(nums),
      });
    else if (r < 0.9)
      out.push({ proto: any(), family: any(), local: any(), lport: any(), remote: any(), rport: any() });
    else out.push(any());
  }
  return out;
}

function expectTypedOrValue(fn: () => unknown, what: string): void {
  try {
    const r = fn();
    check(r === null || (typeof r === "object" && r !== null), `${what}: returned ${String(r)}`);
  } catch (e) {
    check(e instanceof PlatformError && e.code === "EINVAL", `${what}: threw ${String(e)}`);
  }
}

export const identityCases: IdentityCase[] = [
  {
    name: "tcp4: the client socket of uid 65534, the accepted socket of root",
    async run(h) {
      const { port } = await h.tcpListen(0, "127.0.0.1");
      const { lport } = await h.tcpConnect(NOBODY, "127.0.0.1", port);
      expectUid(h, flow(PROTO_TCP, "127.0.0.1", lport, "127.0.0.1", port), NOBODY, "client side");
      expectUid(h, flow(PROTO_TCP, "127.0.0.1", port, "127.0.0.1", lport), 0, "server side");
    },
  },
  {
    name: "tcp6: the client socket of root, the listener and accepted socket of uid 65534",
    async run(h) {
      const { port } = await h.tcpListen(NOBODY, "::1");
      const { lport } = await h.tcpConnect(0, "::1", port);
      expectUid(h, flow(PROTO_TCP, "::1", lport, "::1", port), 0, "client side");
      expectUid(h, flow(PROTO_TCP, "::1", port, "::1", lport), NOBODY, "server side");
    },
  },
  {
    name: "tcp: IPv4 flows of dual-stack sockets (listener on ::, client connected to ::ffff:127.0.0.1)",
    async run(h) {
      const { port } = await h.tcpListen(NOBODY, "::");
      const { lport } = await h.tcpConnect(0, "127.0.0.1", port);
      expectUid(h, flow(PROTO_TCP, "127.0.0.1", port, "127.0.0.1", lport), NOBODY, "accepted on ::");
      expectUid(h, flow(PROTO_TCP, "127.0.0.1", lport, "127.0.0.1", port), 0, "v4 client");
      const l4 = await h.tcpListen(0, "127.0.0.1");
      const c6 = await h.tcpConnect(NOBODY, "::ffff:127.0.0.1", l4.port);
      expectUid(
        h,
        flow(PROTO_TCP, "127.0.0.1", c6.lport, "127.0.0.1", l4.port),
        NOBODY,
        "AF_INET6 client, v4 flow",
      );
    },
  },
  {
    name: "tcp: a flow with no socket has no owner (closed port, other remote port)",
    async run(h) {
      const { port } = await h.tcpListen(NOBODY, "127.0.0.1");
      const { lport } = await h.tcpConnect(NOBODY, "127.0.0.1", port);
      expectUid(
        h,
        flow(PROTO_TCP, "127.0.0.1", lport, "127.0.0.1", port === 65535 ? 1 : port + 1),
        null,
        "other rport",
      );
      expectUid(h, flow(PROTO_TCP, "127.0.0.1", 1, "127.0.0.1", 2), null, "closed ports");
      expectUid(h, flow(PROTO_TCP, "::1", 1, "::1", 2), null, "closed ports v6");
    },
  },
  {
    name: "udp4: a connected socket owns its peer's flow only",
    async run(h) {
      const { port } = await h.udpOpen(NOBODY, "127.0.0.1", { connect: { addr: "127.0.0.1", port: 9 } });
      expectUid(h, flow(PROTO_UDP, "127.0.0.1", port, "127.0.0.1", 9), NOBODY, "connected peer");
      expectUid(h, flow(PROTO_UDP, "127.0.0.1", port, "127.0.0.1", 10), null, "another peer");
    },
  },
  {
    name: "udp4: an unconnected socket on 0.0.0.0 owns flows to any peer from any local address",
    async run(h) {
      const { port } = await h.udpOpen(NOBODY, "0.0.0.0");
      expectUid(h, flow(PROTO_UDP, "127.0.0.1", port, "127.0.0.2", 53), NOBODY, "loopback");
      expectUid(h, flow(PROTO_UDP, "10.9.9.9", port, "192.0.2.1", 4500), NOBODY, "other address");
      const r = await h.udpOpen(0, "127.0.0.1");
      expectUid(h, flow(PROTO_UDP, "127.0.0.1", r.port, "127.0.0.2", 53), 0, "root, bound to 127.0.0.1");
      expectUid(h, flow(PROTO_UDP, "127.0.0.2", r.port, "127.0.0.2", 53), null, "other local address");
    },
  },
  {
    name: "udp6: connected and unconnected sockets on ::1",
    async run(h) {
      const u = await h.udpOpen(NOBODY, "::1");
      expectUid(h, flow(PROTO_UDP, "::1", u.port, "::1", 53), NOBODY, "unconnected");
      const c = await h.udpOpen(0, "::1", { connect: { addr: "::1", port: 9 } });
      expectUid(h, flow(PROTO_UDP, "::1", c.port, "::1", 9), 0, "connected");
      expectUid(h, flow(PROTO_UDP, "::1", c.port, "::1", 10), null, "connected, another peer");
      expectUid(h, flow(PROTO_UDP, "::1", 1, "::1", 2), null, "no socket");
    },
  },
  {
    name: "udp: a dual-stack socket on :: owns IPv4 and IPv6 flows",
    async run(h) {
      const { port } = await h.udpOpen(NOBODY, "::");
      expectUid(h, flow(PROTO_UDP, "127.0.0.1", port, "127.0.0.1", 53), NOBODY, "v4 flow");
      expectUid(h, flow(PROTO_UDP, "::1", port, "::1", 53), NOBODY, "v6 flow");
      const c = await h.udpOpen(0, "::", { connect: { addr: "::ffff:127.0.0.1", port: 9 } });
      expectUid(h, flow(PROTO_UDP, "127.0.0.1", c.port, "127.0.0.1", 9), 0, "connected to a mapped address");
    },
  },
  {
    name: "udp: an IPV6_V6ONLY socket on :: owns IPv6 flows only",
    notProc: true,
    async run(h) {
      const { port } = await h.udpOpen(NOBODY, "::", { v6only: true });
      expectUid(h, flow(PROTO_UDP, "::1", port, "::1", 53), NOBODY, "v6 flow");
      expectUid(h, flow(PROTO_UDP, "127.0.0.1", port, "127.0.0.1", 53), null, "v4 flow");
    },
  },
  {
    name: "other protocols (ICMP, ICMPv6, SCTP) have no owner",
    async run(h) {
      for (const proto of [1, 58, 132])
        expectUid(
          h,
          { proto, family: 4, local: "127.0.0.1", lport: 0, remote: "127.0.0.1", rport: 0 },
          null,
          "proto",
        );
    },
  },
  {
    name: "garbage flow keys give null, an Identity or PlatformError EINVAL, never another error",
    async run(h) {
      let i = 0;
      for (const g of garbage(0x9e3779b9, 3000))
        expectTypedOrValue(() => h.lookup.lookup(g as FlowKey), `key ${i++}`);
    },
  },
  {
    name: "tcp: a TIME_WAIT socket (inode 0, reported as uid 0) has no owner",
    realOnly: true,
    async run(h) {
      const { port } = await h.tcpListen(NOBODY, "127.0.0.1");
      const { lport } = await (h as RealHarness).tcpConnectClose(NOBODY, "127.0.0.1", port);
      expectUid(h, flow(PROTO_TCP, "127.0.0.1", lport, "127.0.0.1", port), null, "TIME_WAIT client");
    },
  },
  {
    name: "findSocketProcess: the inode of a uid 65534 socket leads to its helper process",
    realOnly: true,
    async run(h) {
      const { port } = await h.udpOpen(NOBODY, "127.0.0.1");
      const id = h.lookup.lookup(flow(PROTO_UDP, "127.0.0.1", port, "127.0.0.1", 53));
      check(id, "no identity");
      const p = findSocketProcess(id.inode);
      const helper = (h as RealHarness).helperPid(NOBODY);
      check(p && p.pid === helper, `expected pid ${helper}, got ${JSON.stringify(p)}`);
      check(p.command === "node", `command ${p.command}`);
      check(findSocketProcess(0x7fffffff) === null, "a missing inode has no process");
    },
  },
  {
    name: "sockLookup (addon): garbage arguments throw EINVAL or return, never crash",
    realOnly: true,
    async run() {
      const a = native();
      let x = 12345;
      const vals: unknown[] = [
        6,
        17,
        4,
        6,
        0,
        -1,
        65536,
        1.5,
        NaN,
        "6",
        null,
        undefined,
        {},
        Buffer.alloc(4),
      ];
      const bufs: unknown[] = [
        Buffer.alloc(4),
        Buffer.alloc(16),
        Buffer.alloc(0),
        Buffer.alloc(5),
        new Uint32Array(4),
      ];
      const pick = (arr: unknown[]): unknown => arr[(x = (x * 1103515245 + 12345) >>> 0) % arr.length];
      for (let i = 0; i < 3000; i++) {
        const args = [pick(vals), pick([4, 6, 5, "4"]), pick(bufs), pick(vals), pick(bufs), pick(vals)];
        try {
          const r = (a.sockLookup as (...x: unknown[]) => unknown)(...args);
          check(r === null || typeof r === "object", `returned ${String(r)}`);
        } catch (e) {
          const code = (e as { code?: unknown }).code;
          check(code === "EINVAL", `args ${i}: threw ${String(e)} code ${String(code)}`);
        }
      }
    },
  },
];

// ---------- fake harness ----------

export function fakeIdentityHarness(): Promise<IdentityHarness> {
  const lookup = new FakeIdentityLookup();
  let nextPort = 40000;
  const listeners = new Map<number, { uid: number; addr: string; family: 4 | 6 }>();
  const fam = (a: string): 4 | 6 => (isIPv4(a) ? 4 : 6);
  const h: IdentityHarness = {
    lookup,
    source: "fake",
    async tcpListen(uid, addr, opts) {
      const port = nextPort++;
      listeners.set(port, { uid, addr, family: fam(addr) });
      lookup.addSocket({
        proto: PROTO_TCP,
        family: fam(addr),
        local: addr,
        lport: port,
        listen: true,
        uid,
        v6only: opts?.v6only,
      });
      return { port };
    },
    async tcpConnect(uid, addr, port) {
      const l = listeners.get(port);
      if (!l) throw new Error("ECONNREFUSED");
      const lport = nextPort++;
      // the client socket: its family is that of the address it connected to
      lookup.addSocket({
        proto: PROTO_TCP,
        family: fam(addr),
        local: addr,
        lport,
        remote: addr,
        rport: port,
        uid,
      });
      // the accepted socket: the listener's family, v4 peers mapped on an IPv6 listener
      const w = wire(addr).ip;
      const acc = l.family === 4 ? w : isIPv4(w) ? `::ffff:${w}` : w;
      lookup.addSocket({
        proto: PROTO_TCP,
        family: l.family,
        local: acc,
        lport: port,
        remote: acc,
        rport: lport,
        uid: l.uid,
      });
      return { lport };
    },
    async udpOpen(uid, addr, opts) {
      const port = nextPort++;
      const c = opts?.connect;
      // connect() fixes the local address the route picks: the peer's own loopback here
      const local = c && (addr === "0.0.0.0" || addr === "::") ? c.addr : addr;
      lookup.addSocket({
        proto: PROTO_UDP,
        family: fam(addr),
        local,
        lport: port,
        remote: c?.addr,
        rport: c?.port,
        uid,
        v6only: opts?.v6only,
      });
      return { port };
    },
    async close() {},
  };
  return Promise.resolve(h);
}

// ---------- real harness ----------

/** Socket-holding helper (CommonJS for `node -e`): one JSON command per stdin line. */
const HELPER = `
const net = require("net"), dgram = require("dgram");
const keep = [];
const reply = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
const wait = (ee, ok) => new Promise((res, rej) => { ee.once(ok, res); ee.once("error", rej); });
require("readline").createInterface({ input: process.stdin }).on("line", async (line) => {
  const c = JSON.parse(line);
  try {
    if (c.op === "tcpListen") {
      const s = net.createServer((k) => { keep.push(k); k.on("error", () => {}); });
      keep.push(s);
      s.listen({ host: c.addr, port: 0, ipv6Only: !!c.v6only });
      await wait(s, "listening");
      reply({ id: c.id, ok: true, port: s.address().port });
    } else if (c.op === "tcpConnect") {
      const s = net.connect({ host: c.addr, port: c.port });
      s.on("error", () => {});
      keep.push(s);
      await wait(s, "connect");
      const lport = s.localPort;
      if (c.closeFirst) { s.end(); await new Promise((res) => s.once("close", res)); }
      reply({ id: c.id, ok: true, lport });
    } else if (c.op === "udp") {
      const s = dgram.createSocket({ type: c.family === 4 ? "udp4" : "udp6", ipv6Only: !!c.v6only });
      keep.push(s);
      s.bind(0, c.addr);
      await wait(s, "listening");
      if (c.connect) { s.connect(c.connect.port, c.connect.addr); await wait(s, "connect"); }
      reply({ id: c.id, ok: true, port: s.address().port });
    }
  } catch (e) { reply({ id: c.id, ok: false, error: String(e) }); }
});
process.stdin.on("end", () => process.exit(0));
`;

class Helper {
  private readonly proc: ChildProcess;
  private readonly waiting = new Map<number, (r: Record<string, unknown>) => void>();
  private nextId = 1;
  constructor(uid: number) {
    const args = ["-e", HELPER];
    this.proc =
      uid === 0
        ? spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] })
        : spawn(
            "setpriv",
            [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--", process.execPath, ...args],
            { stdio: ["pipe", "pipe", "inherit"], cwd: "/" },
          );
    createInterface({ input: this.proc.stdout! }).on("line", (l) => {
      const r = JSON.parse(l) as Record<string, unknown>;
      this.waiting.get(r.id as number)?.(r);
    });
  }
  get pid(): number {
    return this.proc.pid!;
  }
  call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`helper timeout: ${JSON.stringify(cmd)}`)), 5_000);
      this.waiting.set(id, (r) => {
        clearTimeout(t);
        this.waiting.delete(id);
        if (r.ok) res(r);
        else rej(new Error(`helper: ${String(r.error)}`));
      });
      this.proc.stdin!.write(JSON.stringify({ ...cmd, id }) + "\n");
    });
  }
  close(): void {
    this.proc.stdin!.end();
    if (this.proc.exitCode === null && this.proc.pid) {
      try {
        process.kill(this.proc.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

interface RealHarness extends IdentityHarness {
  tcpConnectClose(uid: number, addr: string, port: number): Promise<{ lport: number }>;
  helperPid(uid: number): number;
}

/** sock_diag answers per query of the fallback chain, summed over all real harnesses */
const diagHits = [0, 0, 0];

export function realIdentityHarness(mode: "auto" | "proc"): () => Promise<IdentityHarness> {
  return () => {
    const helpers = new Map<number, Helper>();
    const helper = (uid: number): Helper => {
      let hp = helpers.get(uid);
      if (!hp) helpers.set(uid, (hp = new Helper(uid)));
      return hp;
    };
    // ttl 0: every lookup goes to the kernel (the cache has its own tests)
    const lookup = new LinuxIdentityLookup({ mode, ttlMs: 0 });
    const h: RealHarness = {
      lookup,
      source: mode === "proc" ? "proc" : "sock_diag",
      async tcpListen(uid, addr, opts) {
        const r = await helper(uid).call({ op: "tcpListen", addr, v6only: opts?.v6only });
        return { port: r.port as number };
      },
      async tcpConnect(uid, addr, port) {
        const r = await helper(uid).call({ op: "tcpConnect", addr, port });
        await new Promise((res) => setTimeout(res, 20)); // let the listener accept()
        return { lport: r.lport as number };
      },
      async tcpConnectClose(uid, addr, port) {
        const r = await helper(uid).call({ op: "tcpConnect", addr, port, closeFirst: true });
        return { lport: r.lport as number };
      },
      async udpOpen(uid, addr, opts) {
        const family = isIPv4(addr) ? 4 : 6;
        const r = await helper(uid).call({
          op: "udp",
          family,
          addr,
          v6only: opts?.v6only,
          connect: opts?.connect,
        });
        return { port: r.port as number };
      },
      helperPid(uid) {
        return helper(uid).pid;
      },
      async close() {
        lookup.stats().diagHits.forEach((n, i) => (diagHits[i]! += n));
        for (const hp of helpers.values()) hp.close();
        helpers.clear();
      },
    };
    return Promise.resolve(h);
  };
}

// ---------- script ----------

function assertInNamespace(): void {
  const ifs = readFileSync("/proc/net/dev", "utf8").split("\n").slice(2).filter(Boolean);
  const names = ifs.map((l) => l.split(":")[0]!.trim());
  if (names.some((n) => n !== "lo"))
    throw new Error(`refusing to run outside a fresh network namespace (interfaces: ${names.join(" ")})`);
}

/** Flows of `n` open sockets (n/2 TCP connections) and µs per lookup for each backend. */
async function bench(n: number): Promise<Record<string, unknown>> {
  const h = (await realIdentityHarness("auto")()) as RealHarness;
  try {
    const { port } = await h.tcpListen(0, "127.0.0.1");
    const flows: FlowKey[] = [];
    for (let i = 0; i < n / 2; i++) {
      const { lport } = await h.tcpConnect(NOBODY, "127.0.0.1", port).catch(() => ({ lport: 0 }));
      if (lport) flows.push(flow(PROTO_TCP, "127.0.0.1", lport, "127.0.0.1", port));
    }
    const misses = flows.map((f) => ({ ...f, rport: 1 }));
    const sockets = readFileSync("/proc/net/tcp", "latin1").split("\n").length - 2;
    const out: Record<string, unknown> = { sockets, flows: flows.length };
    const time = (
      name: string,
      l: IdentityLookup,
      fs: FlowKey[],
      rounds: number,
      expect: number | null,
    ): void => {
      const t = process.hrtime.bigint();
      for (let r = 0; r < rounds; r++)
        for (const f of fs) {
          const id = l.lookup(f);
          if ((id?.uid ?? null) !== expect) throw new Error(`${name}: wrong answer for ${JSON.stringify(f)}`);
        }
      out[name] = Number(process.hrtime.bigint() - t) / 1000 / (rounds * fs.length);
    };
    const addon = native();
    const l = Buffer.from([127, 0, 0, 1]);
    let t = process.hrtime.bigint();
    for (const f of flows) addon.sockLookup(PROTO_TCP, 4, l, f.lport, l, f.rport);
    out["addon sockLookup hit (µs)"] = Number(process.hrtime.bigint() - t) / 1000 / flows.length;
    t = process.hrtime.bigint();
    for (const f of misses) addon.sockLookup(PROTO_TCP, 4, l, f.lport, l, f.rport);
    out["addon sockLookup miss (µs)"] = Number(process.hrtime.bigint() - t) / 1000 / flows.length;
    time("sock_diag hit (µs)", new LinuxIdentityLookup({ ttlMs: 0 }), flows, 5, NOBODY);
    time("sock_diag miss, 3 queries (µs)", new LinuxIdentityLookup({ ttlMs: 0 }), misses, 5, null);
    time(
      "/proc hit (µs)",
      new LinuxIdentityLookup({ mode: "proc", ttlMs: 0 }),
      flows.slice(0, 200),
      1,
      NOBODY,
    );
    time(
      "/proc miss (µs)",
      new LinuxIdentityLookup({ mode: "proc", ttlMs: 0 }),
      misses.slice(0, 200),
      1,
      null,
    );
    const cached = new LinuxIdentityLookup();
    for (const f of flows) cached.lookup(f);
    time("cache hit (µs)", cached, flows, 20, NOBODY);
    return out;
  } finally {
    await h.close();
  }
}

async function main(): Promise<void> {
  assertInNamespace();
  const mode = process.argv[2];
  if (mode === "bench") {
    process.stdout.write(JSON.stringify(await bench(Number(process.argv[3] ?? 1000))) + "\n");
    return;
  }
  if (mode !== "real") throw new Error(`usage: identity-child.js real|bench [sockets] (got ${String(mode)})`);
  const results: CaseResult[] = [];
  for (const r of await runCases(identityCases, realIdentityHarness("auto")))
    results.push({ ...r, name: `sock_diag: ${r.name}` });
  const procCases = identityCases.filter((c) => !c.notProc && c.name.startsWith("sockLookup") === false);
  for (const r of await runCases(procCases, realIdentityHarness("proc")))
    results.push({ ...r, name: `proc: ${r.name}` });
  process.stderr.write(
    `sock_diag hits by query [exact, zero remote, zero local]: ${JSON.stringify(diagHits)}\n`,
  );
  process.stdout.write(JSON.stringify({ results }) + "\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const watchdog = setTimeout(() => {
    process.stdout.write(JSON.stringify({ results: [{ name: "child", ok: false, error: "hung" }] }) + "\n");
    process.exit(3);
  }, 100_000);
  watchdog.unref();
  main().catch((e: unknown) => {
    process.stdout.write(
      JSON.stringify({ results: [{ name: "child", ok: false, error: String(e) }] }) + "\n",
    );
    process.exitCode = 1;
  });
}
