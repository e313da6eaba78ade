/**
 * Loader and typed surface of the Linux addon (platform/linux/mintun_linux.c).
 *
 * The addon does syscalls and batching only. Setup calls throw; the hot-path calls
 * (tunRead/tunWrite/udpRecv/udpSend) return counts and add drop/error counts into a
 * caller-supplied `res` Uint32Array, so a full socket never costs an exception.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PlatformError } from "../errors.js";
import { useNativeAead, type NativeAead } from "../crypto/aead.js";

export interface NativePoller {
  start(): void;
  stop(): void;
  ref(): void;
  unref(): void;
  /** idempotent; drops the callback reference */
  close(): void;
}

export interface NativeAddon extends Partial<NativeAead> {
  /**
   * "" lets the kernel pick the name. offload: open with IFF_VNET_HDR and TSO/USO offloads
   * (platform/linux/tun_offload.c), falling back to a plain TUN; result.offload = flags in effect.
   */
  tunOpen(name: string, offload?: boolean): { fd: number; name: string; offload?: number };
  /**
   * Returns packets read (read() until EAGAIN or max), or -errno if the first read failed.
   * scratch/res: offload mode (super-packet remainder carried between calls; counters).
   */
  tunRead(
    fd: number,
    buf: Buffer,
    slotSize: number,
    headroom: number,
    max: number,
    lens: Uint32Array,
    scratch?: Buffer,
    res?: Uint32Array,
  ): number;
  /** returns packets written; res[0] += dropped (EAGAIN/ENOBUFS), res[1] += other errors, res[2] += bytes */
  tunWrite(
    fd: number,
    buf: Buffer,
    offs: Uint32Array,
    lens: Uint32Array,
    count: number,
    res: Uint32Array,
    scratch?: Buffer,
  ): number;
  /** bytes of the per-device scratch area tunRead/tunWrite need in offload mode */
  readonly TUN_SCRATCH_BYTES?: number;
  /**
   * addr: 20-byte record (port and address used for bind); offload: UDP GSO/GRO flags wanted;
   * reuseport: SO_REUSEPORT before bind (one socket of a data-path group on one port)
   */
  udpOpen(
    addr: Buffer,
    rcvbuf: number,
    sndbuf: number,
    offload?: number,
    reuseport?: number,
  ): { fd: number; port: number; family: 4 | 6; gso?: number; gro?: number };
  /** the local address the kernel would send from to reach dst (20-byte records); false: no route */
  routeSource(dst: Buffer, out: Buffer): boolean;
  /**
   * recvmmsg of up to min(max, MAX_BATCH); truncated datagrams get length 0 and res[0] += 1.
   * groArea: UDP GRO receive area (coalesced messages are split into slots).
   */
  udpRecv(
    fd: number,
    buf: Buffer,
    slotSize: number,
    headroom: number,
    max: number,
    lens: Uint32Array,
    addrs: Buffer,
    res: Uint32Array,
    groArea?: Buffer,
  ): number;
  /**
   * sendmmsg to one destination (runs of equal lengths as UDP GSO messages up to gsoLimit);
   * res[0] += dropped (EAGAIN/ENOBUFS), res[1] += other errors, res[2] += bytes
   */
  udpSend(
    fd: number,
    sockFamily: 4 | 6,
    buf: Buffer,
    offs: Uint32Array,
    lens: Uint32Array,
    count: number,
    addr: Buffer,
    addrOff: number,
    res: Uint32Array,
    gsoLimit?: number,
    /** 20-byte record of the local address to send from (IP_PKTINFO); res[7] += packets not sent because it is gone */
    src?: Buffer | null,
    /** 1..255: IP_TTL / IPV6_HOPLIMIT of these datagrams (0 or absent: the socket's default) */
    ttl?: number,
  ): number;
  /**
   * Owner of the local socket of a TCP (6) / UDP (17) flow: one NETLINK_SOCK_DIAG exact
   * lookup (platform/linux/sockdiag.c). local/remote: 4 or 16 address bytes as family says.
   * null: no such socket; throws EINVAL for wrong arguments, errno name if the query failed.
   * inode 0 (with uid 0) is a TIME_WAIT or request socket. Fallbacks: src/net/identity.ts.
   */
  sockLookup(
    proto: number,
    family: 4 | 6,
    local: Buffer,
    lport: number,
    remote: Buffer,
    rport: number,
  ): { uid: number; inode: number } | null;
  closeFd(fd: number): number;
  /**
   * open(path, O_RDWR|O_CREAT|O_CLOEXEC, 0644) + flock(LOCK_EX|LOCK_NB) (platform/linux/lockfile.c):
   * the fd holding the lock (closeFd releases it; so does process exit). Throws code "EAGAIN"
   * when another open file holds the lock, else the errno name of the failed call.
   */
  lockFile(path: string): number;
  errnoName(errno: number): string;
  /**
   * prctl(PR_SET_DUMPABLE, on) (platform/linux/dumpable.c): off means no core dump and no
   * /proc/PID/mem or ptrace for other processes of the same uid. Throws the errno name.
   */
  setDumpable(on: boolean): void;
  /** prctl(PR_GET_DUMPABLE): 0 not dumpable, 1 dumpable, 2 dumpable readable by root only */
  getDumpable(): number;
  /**
   * One datagram to an AF_UNIX datagram socket (a path, or "@name" abstract), sent from this
   * process (platform/linux/notify.c): sd_notify without a helper program. Throws the errno name.
   */
  notifySend(path: string, message: Uint8Array): void;
  /**
   * glibc malloc_trim(0) (platform/linux/memtrim.c): freed C heap pages in every arena go
   * back to the kernel. True when something was released; false without glibc.
   */
  mallocTrim(): boolean;
  /**
   * n queues of one IFF_MULTI_QUEUE TUN (platform/linux/multiqueue.c): the kernel picks a
   * queue per flow. offload as tunOpen (falls back to a plain device).
   */
  tunOpenQueues(name: string, n: number, offload?: boolean): { fds: number[]; name: string; offload: number };
  /** SO_ATTACH_REUSEPORT_CBPF on fd's group: DATA datagrams to socket (TID[7] % n), others to socket 0 */
  reuseportSteer(fd: number, n: number): void;
  Poller: new (fd: number, onReadable: (status: number) => void) => NativePoller;
  readonly MAX_BATCH: number;
}

const ADDON_FILE = "mintun_linux.node";
const ADDON_REL = join("platform", "linux", "build", "Release", ADDON_FILE);

/**
 * Find the addon from this file's location: src/net/native.ts and dist/net/native.js are
 * both two levels below the package root; other build layouts are found by walking up, where
 * the addon may also sit as a plain mintun_linux.node (the Debian package: /usr/lib/mintun/,
 * one level above the bundles, scripts/package.sh). MINTUN_NATIVE overrides the path.
 */
export function addonPath(): string {
  const override = process.env.MINTUN_NATIVE;
  if (override) return override;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    for (const p of [join(dir, ADDON_REL), join(dir, ADDON_FILE)]) if (existsSync(p)) return p;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", ADDON_REL);
}

let cached: NativeAddon | undefined;

/** Load the addon once; PlatformError("ENATIVE") if it is missing (run `npm run build:native`). */
export function native(): NativeAddon {
  if (cached) return cached;
  const path = addonPath();
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw new PlatformError("ENATIVE", `cannot load ${path} (run \`npm run build:native\`)`, { cause: e });
  }
  // the data path's AEAD through node's OpenSSL, one cipher context per key (platform/linux/aead.c)
  const a = cached;
  if (a.aeadKey && a.aeadFree && a.aeadSeal && a.aeadOpen)
    useNativeAead({ aeadKey: a.aeadKey, aeadFree: a.aeadFree, aeadSeal: a.aeadSeal, aeadOpen: a.aeadOpen });
  return cached;
}

/** Run a throwing native setup call and convert its error into a PlatformError with code = errno name. */
export function nativeCall<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toPlatformError(what, e);
  }
}

export function toPlatformError(what: string, e: unknown): PlatformError {
  if (e instanceof PlatformError) return e;
  const c = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  const code = typeof c === "string" ? c : "EUNKNOWN";
  const msg = e instanceof Error ? e.message : String(e);
  return new PlatformError(code, `${what}: ${msg}`, { cause: e });
}

/** Start a readable watcher on a device's fd, with the checks every device makes first. */
export function startPoller(
  what: string,
  fd: number,
  closed: boolean,
  current: NativePoller | undefined,
  onReadable: (status: number) => void,
): NativePoller {
  if (closed) throw new PlatformError("EBADF", `${what}: start after close`);
  if (current) throw new PlatformError("EBUSY", `${what}: already started`);
  const addon = native();
  const p = nativeCall(`${what}: poll`, () => new addon.Poller(fd, onReadable));
  p.start();
  return p;
}
