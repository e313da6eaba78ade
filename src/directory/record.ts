/**
 * Service records as the directory serves them, and their verification by the
 * host that uses them. The directory is trusted for availability only: a record
 * is used only when its host certificate verifies against our CA, its
 * ephemeral certificate is signed by that host and unexpired, and it answers
 * the question asked (the name, the address or a subnet holding the address
 * is certified). Pure functions, no I/O.
 */
import { equal } from "../crypto/sodium.js";
import {
  type CaCert,
  type EphemeralCert,
  type HostCert,
  decodeCert,
  decodeEphemeral,
  verifyCert,
  verifyEphemeral,
} from "../wire/cert.js";
import { cidrContains, parseIp } from "../ip/ip.js";
import { tryEncodeAddr } from "../wire/addr.js";
import type { DirEndpoint, WireRecord } from "../wire/directory.js";

/** What a host asks the directory. */
export type LookupQuery = { op: "address" | "subnet"; ip: string } | { op: "name"; name: string };

/** A record that passed every check: safe to create a tunnel with. */
export interface VerifiedRecord {
  name: string;
  hostCert: HostCert;
  eph: EphemeralCert;
  /** the underlay address the directory saw the host register from (unsigned hint) */
  observed: DirEndpoint | null;
  /**
   * where to send: the observed endpoint, else the first one the host published (20-byte
   * record); a published one of the same family when the host is behind our own NAT
   */
  endpoint: Buffer;
  /** ms: when the ephemeral certificate expires (the record is usable until then) */
  expiresAt: number;
  ip4: string | null;
  ip6: string | null;
  subnets: string[];
}

export type RecordRefusal =
  "malformed" | "host-cert" | "eph-cert" | "wrong-answer" | "own-key" | "no-endpoint" | "wrong-host";

export type RecordCheck =
  { ok: true; record: VerifiedRecord } | { ok: false; reason: RecordRefusal; detail?: string };

/** Canonical key of a query (coalescing, caches). */
export function queryKey(q: LookupQuery): string {
  return q.op === "name" ? `n:${q.name}` : `${q.op === "address" ? "a" : "s"}:${q.ip}`;
}

/**
 * Does the certificate answer the query? address: it is the host's own
 * address (exactly; a certified subnet holding it is not the host, and a
 * directory must not pass a gateway off as that host); subnet: one of its
 * subnets holds the address; name: its name.
 */
export function certAnswers(cert: HostCert, q: LookupQuery): boolean {
  if (q.op === "name") return cert.name === q.name;
  const ip = parseIp(q.ip)?.text;
  if (!ip) return false;
  if (q.op === "address") return cert.ip4 === ip || cert.ip6 === ip;
  return cert.subnets.some((s) => cidrContains(s, ip) >= 0);
}

/**
 * Verify a record served for query `q` (or, for `q` null, any record of the
 * host with key `expectKey`). `selfKey` is our own host key: a record of
 * ourselves is refused.
 */
export function verifyRecord(
  w: WireRecord,
  q: LookupQuery | null,
  ca: CaCert,
  selfKey: Buffer,
  nowSec: number,
  expectKey?: Buffer,
  selfObservedIp?: string | null,
): RecordCheck {
  const cert = decodeCert(w.host);
  const eph = decodeEphemeral(w.eph);
  if (!cert || !eph) return { ok: false, reason: "malformed" };
  if (cert.kind !== "host") return { ok: false, reason: "host-cert", detail: "wrong-kind" };
  const vc = verifyCert(cert, ca, nowSec);
  if (!vc.ok) return { ok: false, reason: "host-cert", detail: vc.reason };
  const ve = verifyEphemeral(eph, cert, nowSec);
  if (!ve.ok) return { ok: false, reason: "eph-cert", detail: ve.reason };
  if (equal(cert.publicKey, selfKey)) return { ok: false, reason: "own-key" };
  if (q && !certAnswers(cert, q)) return { ok: false, reason: "wrong-answer", detail: cert.name };
  if (expectKey && !equal(expectKey, cert.publicKey)) return { ok: false, reason: "wrong-host" };
  let endpoint: Buffer | null = null;
  // behind the same NAT as we are (the directory saw both of us at one public address):
  // its own published address, signed, reaches it; the NAT's public one usually does not
  const sameNat = w.observed !== null && selfObservedIp != null && w.observed.ip === selfObservedIp;
  if (sameNat) {
    const fam = w.observed!.ip.includes(":") ? ":" : ".";
    const local = eph.endpoints.find((ep) => ep.ip.includes(fam) && ep.ip !== w.observed!.ip);
    if (local) endpoint = tryEncodeAddr(local.ip, local.port);
  }
  if (!endpoint && w.observed) endpoint = tryEncodeAddr(w.observed.ip, w.observed.port);
  for (const ep of eph.endpoints) {
    if (endpoint) break;
    endpoint = tryEncodeAddr(ep.ip, ep.port);
  }
  if (!endpoint || endpoint.readUInt16BE(2) === 0) return { ok: false, reason: "no-endpoint" };
  return {
    ok: true,
    record: {
      name: cert.name,
      hostCert: cert,
      eph,
      observed: w.observed,
      endpoint,
      expiresAt: eph.notAfter * 1000,
      ip4: cert.ip4,
      ip6: cert.ip6,
      subnets: cert.subnets,
    },
  };
}
