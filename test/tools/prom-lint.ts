/**
 * Checks a Prometheus text exposition against the naming conventions
 * (https://prometheus.io/docs/practices/naming/), after parsing it with a Prometheus text
 * parser from npm (parse-prometheus-text-format: throws on malformed input). Returns the
 * problems found (empty: clean) and the parsed families. Used by the metrics unit test
 * and the netns scrape of a real daemon.
 */
import parsePrometheusTextFormat from "parse-prometheus-text-format";

export interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}

/** Labels whose values are names from outside (hosts, peers, versions): any text. */
const FREE_LABELS = new Set(["host", "peer", "version", "directory", "user"]);

export function lintExposition(text: string, prefix = "mintun_"): { problems: string[]; families: Family[] } {
  const families = parsePrometheusTextFormat(text) as Family[];
  const problems: string[] = [];
  const bad = (name: string, why: string) => problems.push(`${name}: ${why}`);
  for (const f of families) {
    if (!f.name.startsWith(prefix)) continue;
    const n = f.name;
    if (!/^[a-z][a-z0-9_]*$/.test(n)) bad(n, "not snake_case");
    if (!f.help) bad(n, "no HELP");
    if (f.type === "UNTYPED") bad(n, "no TYPE");
    if (f.type === "COUNTER" && !n.endsWith("_total")) bad(n, "a counter must end in _total");
    if (f.type !== "COUNTER" && n.endsWith("_total"))
      bad(n, `a ${f.type.toLowerCase()} must not end in _total`);
    if (
      /_(ms|msec|milliseconds|us|microseconds|minutes|hours|days|kb|kib|mb|mib|gb|gib|percent)(_|$)/.test(n)
    )
      bad(n, "not in a base unit (seconds, bytes, ratios 0..1)");
    if (/(^|_)per_(second|minute)(_|$)|_rate(_|$)/.test(n))
      bad(n, "a rate: export a counter, PromQL takes rates");
    if (
      /(time|expiry|timestamp|age|duration|latency|delay)(_|$)/.test(n.replace(/_total$/, "")) &&
      !/_seconds(_total)?$/.test(n)
    )
      bad(n, "a time must be in _seconds");
    const seen = new Set<string>();
    for (const m of f.metrics) {
      const labels = m.labels ?? {};
      for (const [k, v] of Object.entries(labels)) {
        if (!/^[a-z][a-z0-9_]*$/.test(k)) bad(n, `label name '${k}' not snake_case`);
        if (!FREE_LABELS.has(k) && !/^[a-z0-9_]+$/.test(v)) bad(n, `label value ${k}="${v}" not snake_case`);
      }
      const key = JSON.stringify(Object.entries(labels).sort());
      if (seen.has(key)) bad(n, `two series with the labels ${key}`);
      seen.add(key);
      if (!/^([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|[-+]?Inf|NaN)$/.test(m.value ?? ""))
        bad(n, `value '${m.value ?? ""}' is not a number`);
    }
  }
  return { problems, families };
}
