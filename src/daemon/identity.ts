/**
 * Who opens each outbound flow: joins the OS identity mapper (sock_diag,
 * /proc fallback: src/net/identity.ts) and the user store (src/store/users.ts)
 * into the engine's ConnIdentity. Fails closed (docs/IDENTITY.md, "what identity a
 * packet gets"):
 *   not TCP/UDP (ICMP, kernel, other protocols)        host
 *   TCP/UDP, owning socket of uid 0 or of `users.asHost` host
 *   TCP/UDP, owning socket of a user with a store entry  that user (expired: deny)
 *   TCP/UDP, another OS user                            users.unmapped (default deny)
 *   TCP/UDP, no owning socket / lookup error            users.unmapped (never host under deny)
 *   TCP/UDP, no owning socket, source not this host's   host (forwarded from a certified subnet)
 *     own overlay address
 *   SCTP, UDP-Lite, DCCP (no owner lookup)              users.unmapped
 */
import { readFileSync } from "node:fs";
import type { Conn, ConnIdentity, FlowScratch, LocalUser } from "../conn/conns.js";
import { type Identity, type IdentityLookup, PROTO_TCP, PROTO_UDP } from "../net/identity.js";
import { type UserStore, identityStatus } from "../store/users.js";
import { edSkToX, zero } from "../crypto/sodium.js";
import { type CaCert, verifyCert } from "../wire/cert.js";
import type { Logger } from "../log.js";
import { formatIp4, formatIp6, parseIp6 } from "../ip/ip.js";

export interface IdentityStats {
  lookups: number;
  users: number;
  host: number;
  denied: number;
  /** TCP/UDP flows whose owner could not be proven (no socket, lookup error): users.unmapped */
  noOwner: number;
  /** TCP/UDP flows without a socket from a certified subnet's address (gateway): host */
  forwarded: number;
  /** lookups that failed with an error (counted in noOwner too) */
  lookupErrors: number;
  /** microseconds spent in lookups, total */
  lookupUs: number;
}

/** A local user's certificate: who, and when it expires (unix seconds). */
export interface UserCertInfo {
  uid: number;
  osUser: string;
  /** the certificate's user name */
  name: string;
  notAfter: number;
}

export class DaemonIdentity implements ConnIdentity {
  private users = new Map<number, LocalUser>();
  private asHostUids = new Set<number>();
  readonly stats: IdentityStats = {
    lookups: 0,
    users: 0,
    host: 0,
    denied: 0,
    noOwner: 0,
    forwarded: 0,
    lookupErrors: 0,
    lookupUs: 0,
  };
  /** the socket (inode) the last identify() found, 0 for none; its owner's uid, -1 for none */
  lastSocket = 0;
  lastUid = -1;
  /** this host's own overlay addresses (canonical text); other sources are forwarded traffic */
  private own = new Set<string>();

  constructor(
    private readonly lookup: IdentityLookup,
    private unmapped: "host" | "deny",
    private readonly log: Logger,
  ) {}

  /**
   * Take the identities of a (re)loaded store; the previous keys are zeroed. Every
   * entry is used, also one whose certificate does not verify against our CA or is
   * out of its validity (logged here): its flows are refused (by the peer, or here
   * when expired), never run under the host identity instead.
   */
  setStore(
    store: UserStore | null,
    unmapped: "host" | "deny",
    nowSec: number,
    ca?: CaCert,
    asHost: readonly string[] = [],
    accounts: OsAccounts = readOsAccounts(),
  ): void {
    const next = new Map<number, LocalUser>();
    for (const id of store?.list() ?? []) {
      const st = identityStatus(id, nowSec);
      const v = ca ? verifyCert(id.cert, ca, nowSec) : null;
      if (st !== "ok" || (v && !v.ok))
        this.log.log("warn", "user identity will be refused", {
          osUser: id.osUser,
          uid: id.uid,
          status: st !== "ok" ? st : v && !v.ok ? v.reason : "ok",
        });
      next.set(id.uid, { uid: id.uid, osUser: id.osUser, cert: id.cert, x: edSkToX(id.secretKey) });
    }
    for (const u of this.users.values()) zero(u.x);
    this.users = next;
    this.unmapped = unmapped;
    const r = resolveAsHost(asHost, accounts);
    for (const n of r.unknown) this.log.log("warn", "users.asHost names no OS user or group", { name: n });
    this.asHostUids = r.uids;
  }

  /**
   * This host's overlay addresses (from its certificate). A TCP/UDP flow without an
   * owning socket whose source is another address (a LAN host behind this gateway,
   * within a certified subnet: the send path checked that) is forwarded traffic and
   * runs as the host; from an own address it follows users.unmapped.
   */
  setOwnAddresses(ip4: string | null, ip6: string | null): void {
    this.own = new Set<string>();
    if (ip4) this.own.add(ip4);
    const b6 = ip6 ? parseIp6(ip6) : null;
    if (b6) this.own.add(formatIp6(b6));
  }

  /** uids whose flows run as the host besides root (users.asHost, resolved at load) */
  get asHost(): ReadonlySet<number> {
    return this.asHostUids;
  }

  get size(): number {
    return this.users.size;
  }

  /** The local users' certificates (metrics, web view): one per user in the store. */
  certs(): UserCertInfo[] {
    return [...this.users.values()].map((u) => ({
      uid: u.uid,
      osUser: u.osUser,
      name: u.cert.name,
      notAfter: u.cert.notAfter,
    }));
  }

  identify(f: FlowScratch, buf: Buffer): LocalUser | null | "deny" {
    this.lastSocket = 0;
    this.lastUid = -1;
    if (f.proto !== PROTO_TCP && f.proto !== PROTO_UDP) {
      if (f.proto === PROTO_SCTP || f.proto === PROTO_UDPLITE || f.proto === PROTO_DCCP)
        return this.noOwner(); // unprivileged sockets the mapper cannot look up
      this.stats.host++;
      return null;
    }
    const t0 = process.hrtime.bigint();
    let id: Identity | null = null;
    let failed = false;
    const local = f.family === 4 ? formatIp4(buf, f.srcOff) : formatIp6(buf, f.srcOff);
    try {
      id = this.lookup.lookup({
        proto: f.proto,
        family: f.family,
        local,
        lport: f.sport,
        remote: f.family === 4 ? formatIp4(buf, f.dstOff) : formatIp6(buf, f.dstOff),
        rport: f.dport,
      });
    } catch {
      failed = true;
    }
    this.stats.lookups++;
    this.stats.lookupUs += Number(process.hrtime.bigint() - t0) / 1000;
    if (id === null) {
      if (failed) this.stats.lookupErrors++;
      else if (this.own.size > 0 && !this.own.has(local)) {
        this.stats.forwarded++;
        this.stats.host++;
        return null;
      }
      return this.noOwner();
    }
    this.lastSocket = id.inode;
    this.lastUid = id.uid;
    const uid = id.uid;
    if (uid === 0 || this.asHostUids.has(uid)) {
      this.stats.host++;
      return null;
    }
    const u = this.users.get(uid);
    if (u) {
      const nowSec = Date.now() / 1000;
      if (nowSec >= u.cert.notAfter || nowSec < u.cert.notBefore) {
        this.stats.denied++;
        return "deny";
      }
      this.stats.users++;
      return u;
    }
    return this.unmappedFlow();
  }

  /**
   * The uid that owns connection c's local socket: recorded when it was opened here
   * ("mine"), looked up now for one the peer opened (a local server's socket); -1: none.
   */
  ownerUidOf(c: Conn): number {
    if (c.mine) return c.ownerUid;
    try {
      const id = this.lookup.lookup({
        proto: c.proto,
        family: c.family,
        local: c.family === 4 ? formatIp4(c.local) : formatIp6(c.local),
        lport: c.lport,
        remote: c.family === 4 ? formatIp4(c.remote) : formatIp6(c.remote),
        rport: c.rport,
      });
      return id ? id.uid : -1;
    } catch {
      return -1;
    }
  }

  /**
   * Would connection c (opened here) get the same identity now (after a reload of the
   * store, users.unmapped or users.asHost)? From the owner recorded when it was opened;
   * no new lookup.
   */
  stillSame(c: Conn): boolean {
    const owner = c.ownerUid;
    if (c.localUid !== null) {
      const u = this.users.get(c.localUid);
      return (
        u !== undefined &&
        !this.asHostUids.has(c.localUid) &&
        c.localCert !== null &&
        u.cert.raw.equals(c.localCert.raw)
      );
    }
    // it runs as the host
    if (owner === 0 || this.asHostUids.has(owner)) return true;
    if (owner < 0) {
      if (c.proto !== PROTO_TCP && c.proto !== PROTO_UDP) return true; // ICMP, kernel: always the host
      const local = c.family === 4 ? formatIp4(c.local) : formatIp6(c.local);
      if (this.own.size > 0 && !this.own.has(local)) return true; // forwarded
      return this.unmapped === "host";
    }
    if (this.users.has(owner)) return false; // now has an identity of its own
    return this.unmapped === "host";
  }

  /** A flow whose owner is not proven: users.unmapped, like an OS user without an entry. */
  private noOwner(): null | "deny" {
    this.stats.noOwner++;
    return this.unmappedFlow();
  }

  private unmappedFlow(): null | "deny" {
    if (this.unmapped === "deny") {
      this.stats.denied++;
      return "deny";
    }
    this.stats.host++;
    return null;
  }

  close(): void {
    for (const u of this.users.values()) zero(u.x);
    this.users.clear();
  }
}

const PROTO_DCCP = 33;
const PROTO_SCTP = 132;
const PROTO_UDPLITE = 136;

/** OS users and groups as /etc/passwd and /etc/group list them. */
export interface OsAccounts {
  users: { name: string; uid: number; gid: number }[];
  groups: { name: string; gid: number; members: string[] }[];
}

/** /etc/passwd and /etc/group (files only: users from other NSS sources are not seen). */
export function readOsAccounts(root = "/etc"): OsAccounts {
  const lines = (file: string): string[][] => {
    try {
      return readFileSync(`${root}/${file}`, "utf8")
        .split("\n")
        .filter((l) => l !== "" && !l.startsWith("#"))
        .map((l) => l.split(":"));
    } catch {
      return [];
    }
  };
  return {
    users: lines("passwd")
      .filter((f) => f.length >= 4)
      .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]) })),
    groups: lines("group")
      .filter((f) => f.length >= 3)
      .map((f) => ({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? "").split(",").filter(Boolean) })),
  };
}

/**
 * uids named by users.asHost: "NAME" is the user NAME and every member of group NAME
 * (primary or listed); "@NAME" / "group:NAME" the group only; a number is a uid (or,
 * with "@", a gid). Names found nowhere are returned in `unknown`.
 */
export function resolveAsHost(
  names: readonly string[],
  acc: OsAccounts,
): { uids: Set<number>; unknown: string[] } {
  const uids = new Set<number>();
  const unknown: string[] = [];
  for (const raw of names) {
    const groupOnly = raw.startsWith("@") || raw.startsWith("group:");
    const n = raw.startsWith("@") ? raw.slice(1) : raw.startsWith("group:") ? raw.slice(6) : raw;
    const num = /^\d+$/.test(n) ? Number(n) : null;
    let found = false;
    if (!groupOnly) {
      for (const u of acc.users)
        if (u.name === n || u.uid === num) {
          uids.add(u.uid);
          found = true;
        }
      if (num !== null && !found) {
        uids.add(num);
        found = true;
      }
    }
    for (const g of acc.groups) {
      if (g.name !== n && g.gid !== (groupOnly ? num : null)) continue;
      found = true;
      for (const u of acc.users) if (u.gid === g.gid || g.members.includes(u.name)) uids.add(u.uid);
    }
    if (!found) unknown.push(raw);
  }
  uids.delete(0); // root is the host anyway
  return { uids, unknown };
}
