/**
 * User authentication of a connection (docs/PROTOCOL.md 5d): a deniable,
 * DH-based authenticator, no signature.
 *
 *   K_u  = BLAKE2b(key = X25519(user, receiving host), "mintun conn user v1" | user pk | host pk)
 *          the opener computes X25519(user's X25519 secret, host's X25519 public),
 *          the receiver X25519(host's X25519 secret, user's X25519 public): the same value.
 *   bind = BLAKE2b(key = ck1, "mintun conn bind v1")     ck1: the tunnel's creation chain key,
 *          known to both ends of this tunnel only (it covers the creator's fresh key)
 *   auth = BLAKE2b-128(key = K_u, "mintun conn auth v1" | bind | OPEN body before auth)
 *
 * Either end could have computed auth (the receiving host holds K_u too), so it
 * proves the user to the receiving host and to nobody else. K_u depends only on
 * the two long-term keys: both ends cache it, so a user's later connections to
 * the same host cost one keyed hash each.
 */
import { dh, edPkToX, hash, zero } from "../crypto/sodium.js";
import { decodeCert, verifyCert, type CaCert, type UserCert, type VerifyFailure } from "../wire/cert.js";
import { CONN_AUTH_BYTES } from "../wire/conn.js";

const L_USER = Buffer.from("mintun conn user v1");
const L_BIND = Buffer.from("mintun conn bind v1");
const L_AUTH = Buffer.from("mintun conn auth v1");

export function connBinding(ck1: Buffer): Buffer {
  return hash([L_BIND], ck1);
}

/** K_u from a DH output (zeroed here). */
function userKey(dhOut: Buffer, userPk: Buffer, hostPk: Buffer): Buffer {
  const k = hash([L_USER, userPk, hostPk], dhOut);
  zero(dhOut);
  return k;
}

/** Opener side: null when the peer's host key does not convert (never for a verified cert). */
export function userKeyOpener(
  userX: Buffer,
  userPk: Buffer,
  peerHostX: Buffer,
  peerHostPk: Buffer,
): Buffer | null {
  const d = dh(userX, peerHostX);
  return d ? userKey(d, userPk, peerHostPk) : null;
}

export function connAuth(k: Buffer, bind: Buffer, buf: Buffer, off: number, end: number): Buffer {
  return hash([L_AUTH, bind, buf.subarray(off, end)], k, CONN_AUTH_BYTES);
}

export type UserVerdict =
  | { ok: true; cert: UserCert; k: Buffer; cached: boolean }
  | { ok: false; reason: VerifyFailure | "malformed" | "not-user" | "bad-key" | "revoked" };

/**
 * Receiver side: verified user certificates with their K_u, keyed by the exact
 * certificate bytes. Validity is re-checked on every use; bounded, oldest first.
 */
export class UserKeyCache {
  private readonly map = new Map<string, { cert: UserCert; k: Buffer }>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly ca: CaCert,
    private readonly hostX: Buffer,
    private readonly hostPk: Buffer,
    private readonly max = 4096,
    /** the current revocation list's verdict (engine.revocation); checked on every use */
    private readonly revoked: (cert: UserCert) => boolean = () => false,
  ) {}

  lookup(raw: Buffer, nowSec: number): UserVerdict {
    const key = raw.latin1Slice(0, raw.length);
    const hit = this.map.get(key);
    if (hit) {
      if (nowSec < hit.cert.notBefore || nowSec >= hit.cert.notAfter || nowSec >= this.ca.notAfter) {
        this.map.delete(key);
        zero(hit.k);
        return { ok: false, reason: nowSec < hit.cert.notBefore ? "not-yet-valid" : "expired" };
      }
      if (this.revoked(hit.cert)) return { ok: false, reason: "revoked" };
      this.hits++;
      return { ok: true, cert: hit.cert, k: hit.k, cached: true };
    }
    this.misses++;
    const cert = decodeCert(Buffer.from(raw));
    if (!cert) return { ok: false, reason: "malformed" };
    if (cert.kind !== "user") return { ok: false, reason: "not-user" };
    const v = verifyCert(cert, this.ca, nowSec);
    if (!v.ok) return v;
    if (this.revoked(cert)) return { ok: false, reason: "revoked" };
    const ux = edPkToX(cert.publicKey);
    const d = ux ? dh(this.hostX, ux) : null;
    if (!d) return { ok: false, reason: "bad-key" };
    const k = userKey(d, cert.publicKey, this.hostPk);
    if (this.map.size >= this.max) {
      const first = this.map.entries().next().value!;
      zero(first[1].k);
      this.map.delete(first[0]);
    }
    this.map.set(key, { cert, k });
    return { ok: true, cert, k, cached: false };
  }

  clear(): void {
    for (const e of this.map.values()) zero(e.k);
    this.map.clear();
  }
}
