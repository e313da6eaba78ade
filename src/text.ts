/** Text helpers shared by every layer (no imports): "did you mean" for config, policy and CLI errors; human units. */

/** Edit distance, for "did you mean" suggestions. */
export function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/**
 * Edit distance where swapping two neighbouring characters counts as one edit (optimal
 * string alignment): "jsno" is one edit from "json", as the typist sees it.
 */
export function typoDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  return d[a.length]![b.length]!;
}

/** The closest candidate within a small edit distance (a swap of neighbours is one edit), or null. */
export function suggest(word: string, candidates: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  for (const c of candidates) {
    const d = typoDistance(word, c);
    if (d <= bestD && (best === null || d < bestD)) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

/** A Linux network interface name: 1..15 of [A-Za-z0-9_.-], not starting with "-" (not an `ip` option). */
export function isInterfaceName(s: string): boolean {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(s) && !s.startsWith("-");
}

// Human units (the CLI's text output and the web view; JSON keeps raw numbers)

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

/** Bytes in binary units: 1536 -> "1.5 KiB". */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
