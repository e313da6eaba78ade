/**
 * Verified-certificate cache for the creation path. Verifying a host
 * certificate costs an Ed25519 verification (and verifyCert also re-checks the
 * CA's self-signature); a host that creates many tunnels sends the same
 * certificate bytes each time. Entries are keyed by the exact encoded bytes,
 * so a cache hit is the same certificate that verified before; validity times
 * are still checked on every use. Bounded: oldest entries are evicted first.
 */
import { decodeCert, verifyCert, type CaCert, type HostCert, type VerifyFailure } from "../wire/cert.js";

export type HostVerdict =
  { ok: true; cert: HostCert } | { ok: false; reason: VerifyFailure | "malformed" | "not-host" | "revoked" };

export class CertCache {
  private readonly map = new Map<string, HostCert>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly ca: CaCert,
    private readonly max = 4096,
    /** the current revocation list's verdict (engine.revocation); checked on every use */
    private readonly revoked: (cert: HostCert) => boolean = () => false,
  ) {}

  /**
   * A host certificate the caller verified against this cache's CA (a peer's record): the
   * peer's HELLO carries the same bytes, so its first CREATE needs no Ed25519 verification
   * (issue 19, first packets). Validity and revocation are still checked on every use.
   */
  remember(cert: HostCert, ca: CaCert): void {
    if (ca !== this.ca || cert.kind !== "host") return;
    const key = cert.raw.latin1Slice(0, cert.raw.length);
    if (this.map.has(key)) return;
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    this.map.set(key, cert);
  }

  verifyHost(raw: Buffer, nowSec: number): HostVerdict {
    const key = raw.latin1Slice(0, raw.length);
    const hit = this.map.get(key);
    if (hit) {
      if (nowSec < hit.notBefore || nowSec >= hit.notAfter || nowSec >= this.ca.notAfter) {
        this.map.delete(key);
        return { ok: false, reason: nowSec < hit.notBefore ? "not-yet-valid" : "expired" };
      }
      if (this.revoked(hit)) return { ok: false, reason: "revoked" };
      this.hits++;
      return { ok: true, cert: hit };
    }
    this.misses++;
    const cert = decodeCert(raw);
    if (!cert) return { ok: false, reason: "malformed" };
    if (cert.kind !== "host") return { ok: false, reason: "not-host" };
    const v = verifyCert(cert, this.ca, nowSec);
    if (!v.ok) return v;
    if (this.revoked(cert)) return { ok: false, reason: "revoked" };
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    this.map.set(key, cert);
    return { ok: true, cert };
  }
}
