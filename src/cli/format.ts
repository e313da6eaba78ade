/**
 * Human units for the CLI's text output (the --json output keeps raw numbers): durations
 * ("364d 23h", "5m 3s", "850ms"), key ids in hex, byte counts, and why a peer's record is
 * missing. The units themselves live in src/text.ts (the daemon's web view uses them too);
 * the status command loads this, text.ts and the API client only.
 */

import { duration } from "../text.js";

export { ago, bytes, duration, durationMs } from "../text.js";

/** A u32 key id as 8 hex digits: 3735928559 -> "deadbeef". */
export function keyIdHex(id: number): string {
  return (id >>> 0).toString(16).padStart(8, "0");
}

/** The subset of a peer's status the record column needs (daemon/status.ts PeerStatus). */
export interface PeerRecordView {
  record: { keyId: number; expiresInSec: number } | null;
  recordProblem?: { reason: string; detail: string | null; attempts: number } | null;
}

/**
 * The RECORD column: "key 0a1b2c3d, 6d 23h left", or why there is none:
 * "not fetched: refused (certificate wrong-issuer)", "not fetched: unreachable (4 requests
 * unanswered)", "expired 5m 3s ago: ...", "not fetched: no endpoint yet".
 */
export function recordText(p: PeerRecordView): string {
  const r = p.record;
  const pr = p.recordProblem;
  const why = !pr
    ? ""
    : pr.reason === "refused"
      ? `refused (${pr.detail ?? "did not verify"})`
      : pr.reason === "unreachable"
        ? `unreachable (${pr.attempts} requests unanswered)`
        : pr.reason === "no-endpoint"
          ? "no endpoint yet (waiting for the directory or the peer's first packet)"
          : pr.reason === "pending"
            ? "asked, no answer yet"
            : pr.reason;
  if (r && r.expiresInSec > 0) return `key ${keyIdHex(r.keyId)}, ${duration(r.expiresInSec)} left`;
  if (r)
    return `key ${keyIdHex(r.keyId)} expired ${duration(-r.expiresInSec)} ago${why && pr?.reason !== "expired" ? `: ${why}` : ""}`;
  return `not fetched${why ? `: ${why}` : ""}`;
}
