/**
 * Human units for the CLI's text output (the --json output keeps raw numbers): durations
 * ("364d 23h", "5m 3s", "850ms"), key ids in hex, byte counts, and why a peer's record is
 * missing. No imports: the status command loads this and the API client only.
 */

const UNITS: readonly (readonly [string, number])[] = [
  ["y", 365 * 86_400],
  ["d", 86_400],
  ["h", 3_600],
  ["m", 60],
  ["s", 1],
];

/**
 * A duration in seconds as its two largest units: 31535958 -> "364d 23h", 90061 -> "1d 1h",
 * 303 -> "5m 3s", 42 -> "42s", 0 -> "0s"; a negative one is "-" before it ("-5m 3s").
 */
export function duration(sec: number): string {
  if (!Number.isFinite(sec)) return "-";
  if (sec < 0) return `-${duration(-sec)}`;
  let rest = Math.round(sec);
  const parts: string[] = [];
  for (const [u, n] of UNITS) {
    if (parts.length === 2) break;
    const q = Math.floor(rest / n);
    rest -= q * n;
    if (q > 0 || parts.length > 0) parts.push(`${q}${u}`);
  }
  // "1d 0h" reads as "1d"
  const out = parts.filter((p, i) => i === 0 || !/^0[a-z]$/.test(p));
  return out.length ? out.join(" ") : "0s";
}

/** Milliseconds: below 10 s as "850ms" / "2.5s", then as duration(); negative (never) as "-". */
export function durationMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  return duration(ms / 1000);
}

/** "... ago" for a time since (ms), "never" for a negative one. */
export function ago(ms: number): string {
  return !Number.isFinite(ms) || ms < 0 ? "never" : `${durationMs(ms)} ago`;
}

/** A u32 key id as 8 hex digits: 3735928559 -> "deadbeef". */
export function keyIdHex(id: number): string {
  return (id >>> 0).toString(16).padStart(8, "0");
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
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
