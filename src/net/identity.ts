/**
 * OS identity mapper: which local user owns the socket of a flow leaving the TUN
 * (DESIGN §4). The side that starts a connection asks this once per new flow and
 * authenticates that user to the peer.
 *
 *   LinuxIdentityLookup  sock_diag netlink (addon `sockLookup`), /proc/net fallback,
 *                        a small TTL cache keyed by the 5-tuple
 *   FakeIdentityLookup   an in-memory socket table with the same matching rules
 *
 * Both pass the compliance cases of test/tools/native/identity-child.ts. Matching rules
 * (the kernel's, see platform/linux/sockdiag.c): an exact socket first; then a TCP
 * listener or an unconnected UDP socket on the local port; a socket bound to 0.0.0.0 / ::
 * matches any local address of its family; an IPv4 flow also matches an IPv6 socket that
 * is not IPV6_V6ONLY (bound to :: or to ::ffff:a.b.c.d). A socket with inode 0 (TCP
 * TIME_WAIT and request socks, which the kernel reports as uid 0) has no owner: null.
 * Only TCP (6) and UDP (17) flows have owners; other protocols give null.
 */
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { PlatformError } from "../errors.js";
import { parseIp4, parseIp6 } from "../ip/ip.js";
import { native, toPlatformError, type NativeAddon } from "./native.js";

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

/** A flow as seen leaving the TUN: local = the packet's source, remote = its destination. */
export interface FlowKey {
  proto: number;
  family: 4 | 6;
  local: string;
  lport: number;
  remote: string;
  rport: number;
}

export interface Identity {
  uid: number;
  inode: number;
  source: "sock_diag" | "proc" | "fake";
}

export interface IdentityLookup {
  /** null: no socket owns this flow (or not TCP/UDP); PlatformError("EINVAL") for a malformed key */
  lookup(flow: FlowKey): Identity | null;
}

/** Cache entry lifetime: only a flow's first packets are looked up, so 2 s covers a burst. */
export const IDENTITY_CACHE_TTL_MS = 2_000;
/** Bound on cached 5-tuples; the oldest entry goes first. */
export const IDENTITY_CACHE_MAX = 4_096;

// ---------- validation and address bytes ----------

/** Address bytes (4 or 16) of a validated flow address; EINVAL otherwise. */
export function ipBytes(ip: string, family: 4 | 6): Buffer {
  if (typeof ip !== "string") throw new PlatformError("EINVAL", "flow address must be a string");
  const b = family === 4 ? parseIp4(ip) : parseIp6(ip);
  if (!b) throw new PlatformError("EINVAL", `bad IPv${family} address ${JSON.stringify(ip)}`);
  return b;
}

export function checkFlow(flow: FlowKey): void {
  if (flow === null || typeof flow !== "object") throw new PlatformError("EINVAL", "flow must be an object");
  if (!Number.isInteger(flow.proto) || flow.proto < 0 || flow.proto > 255)
    throw new PlatformError("EINVAL", `bad protocol ${String(flow.proto)}`);
  if (flow.family !== 4 && flow.family !== 6)
    throw new PlatformError("EINVAL", `bad family ${String(flow.family)}`);
  for (const p of [flow.lport, flow.rport])
    if (!Number.isInteger(p) || p < 0 || p > 65535)
      throw new PlatformError("EINVAL", `port ${String(p)} out of range`);
}

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
function mapV4(b4: Buffer): Buffer {
  return Buffer.concat([V4_MAPPED_PREFIX, b4]);
}

// ---------- socket table matching (fake and /proc) ----------

/** One socket as the kernel lists it; addresses as bytes (4 or 16), "any" = all zero. */
export interface SocketEntry {
  proto: number;
  family: 4 | 6;
  local: Buffer;
  lport: number;
  /** all zero + port 0 for a listener or an unconnected UDP socket */
  remote: Buffer;
  rport: number;
  /** TCP state as in /proc/net/tcp (0x0A = LISTEN); 7 (CLOSE) for UDP */
  state: number;
  uid: number;
  inode: number;
  /** IPV6_V6ONLY; /proc does not show it, so the /proc reader assumes false */
  v6only?: boolean;
}

export const TCP_LISTEN = 0x0a;

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * The socket the kernel would pick for this flow, or undefined. Flow addresses are given
 * in both spellings the socket may use: `l4`/`r4` (IPv4 flows) and `l6`/`r6` (IPv6, or the
 * v4-mapped form of an IPv4 flow).
 */
export function bestMatch(
  flow: FlowKey,
  l: Buffer,
  r: Buffer,
  socks: Iterable<SocketEntry>,
): SocketEntry | undefined {
  const l6 = flow.family === 4 ? mapV4(l) : l;
  const r6 = flow.family === 4 ? mapV4(r) : r;
  let best: SocketEntry | undefined;
  let bestScore = -1;
  for (const s of socks) {
    if (s.proto !== flow.proto || s.lport !== flow.lport) continue;
    let la: Buffer;
    let ra: Buffer;
    if (s.family === flow.family) {
      la = l;
      ra = r;
    } else if (flow.family === 4 && s.family === 6 && !s.v6only) {
      la = l6;
      ra = r6;
    } else continue;
    let score: number;
    if (s.local.equals(la)) score = 2;
    else if (isZero(s.local)) score = 1;
    else continue;
    if (
      s.rport === flow.rport &&
      s.remote.equals(ra) &&
      !(flow.proto === PROTO_TCP && s.state === TCP_LISTEN)
    )
      score += 4;
    else if (s.rport === 0 && isZero(s.remote) && (flow.proto === PROTO_UDP || s.state === TCP_LISTEN))
      score += 0;
    else continue;
    if (s.family === flow.family) score += 0.5; // the kernel's v4 lookup scores PF_INET first
    if (score > bestScore) {
      best = s;
      bestScore = score;
    }
  }
  return best;
}

// ---------- /proc/net fallback ----------

/**
 * /proc/net/{tcp,udp}[6] address "0100007F:0016": each 32-bit word of the address printed
 * as %08X of its host-order (little-endian) value, then the port in hex.
 */
export function procHexAddr(hex: string): Buffer {
  const out = Buffer.alloc(hex.length / 2);
  for (let w = 0; w < out.length; w += 4)
    out.writeUInt32LE(parseInt(hex.slice(w * 2, w * 2 + 8), 16) >>> 0, w);
  return out;
}

function procFile(proto: number, family: 4 | 6): string {
  return `/proc/net/${proto === PROTO_TCP ? "tcp" : "udp"}${family === 6 ? "6" : ""}`;
}

/**
 * Sockets of one /proc/net file whose local port is `lport` (found by searching ":PPPP "
 * in the text, so only those lines are parsed). Columns: sl local rem st queues tr
 * retrnsmt uid timeout inode.
 */
export function parseProcNet(text: string, proto: number, family: 4 | 6, lport: number): SocketEntry[] {
  const out: SocketEntry[] = [];
  const needle = `:${lport.toString(16).toUpperCase().padStart(4, "0")} `;
  const addrLen = family === 4 ? 8 : 32;
  for (let i = text.indexOf(needle); i >= 0; i = text.indexOf(needle, i + 1)) {
    const lineStart = text.lastIndexOf("\n", i) + 1;
    const lineEnd = text.indexOf("\n", i);
    const f = text
      .slice(lineStart, lineEnd < 0 ? undefined : lineEnd)
      .trim()
      .split(/\s+/);
    const [lhex, lp] = (f[1] ?? "").split(":");
    if (lhex?.length !== addrLen || parseInt(lp ?? "", 16) !== lport) continue; // the needle hit another column
    const [rhex, rp] = (f[2] ?? "").split(":");
    if (rhex?.length !== addrLen) continue;
    out.push({
      proto,
      family,
      local: procHexAddr(lhex),
      lport,
      remote: procHexAddr(rhex),
      rport: parseInt(rp ?? "", 16),
      state: parseInt(f[3] ?? "", 16),
      uid: Number(f[7]),
      inode: Number(f[9]),
    });
    if (lineEnd < 0) break;
    i = lineEnd;
  }
  return out;
}

/** The /proc/net answer for one flow (reads one or two files, synchronously). */
export function procLookup(flow: FlowKey, readText: (path: string) => string = readProc): Identity | null {
  checkFlow(flow);
  if (flow.proto !== PROTO_TCP && flow.proto !== PROTO_UDP) return null;
  const l = ipBytes(flow.local, flow.family);
  const r = ipBytes(flow.remote, flow.family);
  const socks = parseProcNet(
    readText(procFile(flow.proto, flow.family)),
    flow.proto,
    flow.family,
    flow.lport,
  );
  let s = bestMatch(flow, l, r, socks);
  if (!s && flow.family === 4) {
    // dual-stack sockets are listed in tcp6/udp6 with ::ffff:a.b.c.d or :: addresses
    const socks6 = parseProcNet(readText(procFile(flow.proto, 6)), flow.proto, 6, flow.lport);
    s = bestMatch(flow, l, r, socks6);
  }
  if (!s || s.inode === 0) return null;
  return { uid: s.uid, inode: s.inode, source: "proc" };
}

function readProc(path: string): string {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return ""; // no IPv6 in this kernel: no sockets there
  }
}

// ---------- cache ----------

/** Lookup results (null too) for IDENTITY_CACHE_TTL_MS, at most IDENTITY_CACHE_MAX keys. */
export class IdentityCache {
  private readonly map = new Map<string, { at: number; id: Identity | null }>();
  constructor(
    private readonly ttlMs = IDENTITY_CACHE_TTL_MS,
    private readonly max = IDENTITY_CACHE_MAX,
  ) {}

  static key(f: FlowKey): string {
    return `${f.proto}|${f.family}|${f.local}|${f.lport}|${f.remote}|${f.rport}`;
  }

  /** undefined: not cached (or expired) */
  get(key: string, now: number): Identity | null | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (now - e.at >= this.ttlMs) {
      this.map.delete(key);
      return undefined;
    }
    return e.id;
  }

  set(key: string, id: Identity | null, now: number): void {
    this.map.delete(key);
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    this.map.set(key, { at: now, id });
  }

  get size(): number {
    return this.map.size;
  }

  clear(): void {
    this.map.clear();
  }
}

// ---------- Linux ----------

export interface IdentityStats {
  lookups: number;
  cacheHits: number;
  /** answered by sock_diag, per query of the fallback chain that matched */
  diagHits: [exact: number, anyRemote: number, anyLocal: number];
  diagMisses: number;
  /** sock_diag queries that failed (they fall back to /proc) */
  diagErrors: number;
  procLookups: number;
}

export interface LinuxIdentityOptions {
  /** "auto" (default): sock_diag, /proc/net if it fails; "proc": /proc/net only; "sock_diag": no fallback */
  mode?: "auto" | "proc" | "sock_diag";
  /** cache lifetime, default IDENTITY_CACHE_TTL_MS; 0 disables the cache */
  ttlMs?: number;
  /** default IDENTITY_CACHE_MAX */
  maxEntries?: number;
  /** clock for the cache (ms), default Date.now */
  now?: () => number;
  /** for tests */
  addon?: Pick<NativeAddon, "sockLookup">;
}

/**
 * sock_diag first: one exact query (~3-5 µs). The kernel answers it as its receive path
 * would (sockdiag.c), so unconnected UDP, wildcard-bound and dual-stack sockets match
 * already; on a miss, two more queries: a zero remote (UDP) and a zero local address
 * (both redundant on the kernels tested, kept for kernels whose dump_one is stricter).
 * Deliberately NOT tried: AF_INET6 with the ::ffff: form of an IPv4 flow. For UDP the
 * kernel (6.18) runs the IPv6 lookup on it, which ignores IPV6_V6ONLY and so names a
 * v6-only socket as the owner of an IPv4 flow; for TCP it is the same query as the IPv4 one.
 * A failing sock_diag (no NETLINK_SOCK_DIAG, timeout) falls back to /proc/net; after
 * EPROTONOSUPPORT/EAFNOSUPPORT/EPERM it is not tried again.
 */
const ANY4 = Buffer.alloc(4);
const ANY6 = Buffer.alloc(16);

export class LinuxIdentityLookup implements IdentityLookup {
  private readonly cache: IdentityCache;
  private readonly now: () => number;
  private readonly mode: "auto" | "proc" | "sock_diag";
  private readonly ttlMs: number;
  private addon: Pick<NativeAddon, "sockLookup"> | undefined;
  private diagDisabled = false;
  private readonly st: IdentityStats = {
    lookups: 0,
    cacheHits: 0,
    diagHits: [0, 0, 0],
    diagMisses: 0,
    diagErrors: 0,
    procLookups: 0,
  };

  constructor(opts: LinuxIdentityOptions = {}) {
    this.mode = opts.mode ?? "auto";
    this.ttlMs = opts.ttlMs ?? IDENTITY_CACHE_TTL_MS;
    this.cache = new IdentityCache(this.ttlMs, opts.maxEntries);
    this.now = opts.now ?? Date.now;
    this.addon = opts.addon;
    if (this.mode !== "proc" && !this.addon) {
      try {
        this.addon = native();
      } catch (e) {
        if (this.mode === "sock_diag") throw e;
        this.diagDisabled = true;
      }
    }
  }

  lookup(flow: FlowKey): Identity | null {
    checkFlow(flow);
    this.st.lookups++;
    if (flow.proto !== PROTO_TCP && flow.proto !== PROTO_UDP) return null;
    if (this.ttlMs <= 0) return this.uncached(flow);
    const key = IdentityCache.key(flow);
    const now = this.now();
    const cached = this.cache.get(key, now);
    if (cached !== undefined) {
      this.st.cacheHits++;
      return cached;
    }
    const id = this.uncached(flow);
    this.cache.set(key, id, now);
    return id;
  }

  stats(): IdentityStats {
    return { ...this.st, diagHits: [...this.st.diagHits] };
  }

  /** Forget cached answers (e.g. after the daemon's flow table dropped a flow). */
  clearCache(): void {
    this.cache.clear();
  }

  private uncached(flow: FlowKey): Identity | null {
    if (this.mode !== "proc" && !this.diagDisabled) {
      try {
        return this.diag(flow);
      } catch (e) {
        const err = toPlatformError("sock_diag", e);
        if (err.code === "EINVAL" || this.mode === "sock_diag") throw err;
        this.st.diagErrors++;
        if (err.code === "EPROTONOSUPPORT" || err.code === "EAFNOSUPPORT" || err.code === "EPERM")
          this.diagDisabled = true;
      }
    }
    this.st.procLookups++;
    return procLookup(flow);
  }

  private diag(flow: FlowKey): Identity | null {
    const a = this.addon!;
    const l = ipBytes(flow.local, flow.family);
    const r = ipBytes(flow.remote, flow.family);
    const any = flow.family === 4 ? ANY4 : ANY6;
    for (let step = 0; step < 3; step++) {
      let o: { uid: number; inode: number } | null;
      switch (step) {
        case 0: // exact sockid; also finds unconnected UDP, wildcard-bound and dual-stack sockets
          o = a.sockLookup(flow.proto, flow.family, l, flow.lport, r, flow.rport);
          break;
        case 1: // unconnected UDP socket: remote 0.0.0.0/:: port 0
          if (flow.proto !== PROTO_UDP) continue;
          o = a.sockLookup(flow.proto, flow.family, l, flow.lport, any, 0);
          break;
        default: // socket bound to 0.0.0.0 / ::
          o = a.sockLookup(flow.proto, flow.family, any, flow.lport, r, flow.rport);
      }
      if (o) {
        this.st.diagHits[step]!++;
        // TIME_WAIT and request sockets are reported with inode 0 and uid 0: no owner
        return o.inode === 0 ? null : { uid: o.uid, inode: o.inode, source: "sock_diag" };
      }
    }
    this.st.diagMisses++;
    return null;
  }
}

// ---------- process of a socket (on request only) ----------

export interface SocketProcess {
  pid: number;
  /** /proc/<pid>/comm */
  command: string;
}

/**
 * The first process holding socket `inode`, by scanning /proc/<pid>/fd links. Slow (one
 * readlink per fd of every process), so only on request and bounded: it stops after
 * `maxFds` links or `budgetMs` and then returns null. Needs root to see other users' fds.
 */
export function findSocketProcess(
  inode: number,
  opts: { maxFds?: number; budgetMs?: number; procRoot?: string } = {},
): SocketProcess | null {
  if (!Number.isInteger(inode) || inode <= 0) throw new PlatformError("EINVAL", `bad inode ${String(inode)}`);
  const root = opts.procRoot ?? "/proc";
  const maxFds = opts.maxFds ?? 50_000;
  const deadline = performance.now() + (opts.budgetMs ?? 100);
  const target = `socket:[${inode}]`;
  let fds = 0;
  for (const pid of readdirSafe(root)) {
    if (!/^\d+$/.test(pid)) continue;
    for (const fd of readdirSafe(`${root}/${pid}/fd`)) {
      if (++fds > maxFds || ((fds & 255) === 0 && performance.now() > deadline)) return null;
      let link: string;
      try {
        link = readlinkSync(`${root}/${pid}/fd/${fd}`);
      } catch {
        continue; // the fd or the process went away
      }
      if (link === target) {
        let command = "";
        try {
          command = readFileSync(`${root}/${pid}/comm`, "utf8").trim();
        } catch {
          // exited meanwhile
        }
        return { pid: Number(pid), command };
      }
    }
  }
  return null;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
