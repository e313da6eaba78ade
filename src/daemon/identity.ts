/**
 * Who opens each outbound flow: joins the OS identity mapper (sock_diag,
 * /proc fallback: src/net/identity.ts) and the user store (src/store/users.ts)
 * into the engine's ConnIdentity. Root, kernel flows, ICMP and anything without
 * an owning socket run under the host identity; an OS user with an entry in the
 * store runs as that user; other OS users follow `users.unmapped` (host | deny).
 */
import type { ConnIdentity, FlowScratch, LocalUser } from "../conn/conns.js";
import { type IdentityLookup, PROTO_TCP, PROTO_UDP } from "../net/identity.js";
import { type UserStore, identityStatus } from "../store/users.js";
import { edSkToX, zero } from "../crypto/sodium.js";
import { type CaCert, verifyCert } from "../wire/cert.js";
import type { Logger } from "../log.js";
import { formatIp4, formatIp6 } from "../ip/ip.js";

export interface IdentityStats {
  lookups: number;
  users: number;
  host: number;
  denied: number;
  /** microseconds spent in lookups, total */
  lookupUs: number;
}

export class DaemonIdentity implements ConnIdentity {
  private users = new Map<number, LocalUser>();
  readonly stats: IdentityStats = { lookups: 0, users: 0, host: 0, denied: 0, lookupUs: 0 };

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
  setStore(store: UserStore | null, unmapped: "host" | "deny", nowSec: number, ca?: CaCert): void {
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
  }

  get size(): number {
    return this.users.size;
  }

  identify(f: FlowScratch, buf: Buffer): LocalUser | null | "deny" {
    if (f.proto !== PROTO_TCP && f.proto !== PROTO_UDP) {
      this.stats.host++;
      return null;
    }
    const t0 = process.hrtime.bigint();
    let uid: number | null = null;
    try {
      const id = this.lookup.lookup({
        proto: f.proto,
        family: f.family,
        local: f.family === 4 ? formatIp4(buf, f.srcOff) : formatIp6(buf, f.srcOff),
        lport: f.sport,
        remote: f.family === 4 ? formatIp4(buf, f.dstOff) : formatIp6(buf, f.dstOff),
        rport: f.dport,
      });
      uid = id ? id.uid : null;
    } catch {
      uid = null;
    }
    this.stats.lookups++;
    this.stats.lookupUs += Number(process.hrtime.bigint() - t0) / 1000;
    if (uid === null || uid === 0) {
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
