/**
 * Value parsers of the config language (address:port, loopback) and the YAML reader
 * with the config's typed accessors (string, integer in a range, path, list).
 */
import * as path from "node:path";
import { isScalar, isSeq, type Node } from "yaml";
import { parseIp } from "../ip/ip.js";
import { describeYaml, YamlReader, type YamlValue } from "./yaml.js";
import type { HostPort } from "./schema.js";

const HOSTNAME_RE =
  /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/**
 * "host:port" or "[v6]:port" -> HostPort (IP literals in canonical form), or null.
 * With ipOnly the host must be an IP literal.
 */
export function parseHostPort(s: string, ipOnly = false): HostPort | null {
  let host: string;
  let portStr: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0 || s[close + 1] !== ":") return null;
    host = s.slice(1, close);
    portStr = s.slice(close + 2);
    const ip = parseIp(host);
    if (!ip || ip.family !== 6) return null;
    host = ip.text;
  } else {
    const colon = s.lastIndexOf(":");
    if (colon <= 0) return null;
    host = s.slice(0, colon);
    portStr = s.slice(colon + 1);
    if (host.includes(":")) return null; // bare IPv6 needs brackets
    const ip = parseIp(host);
    if (ip) host = ip.text;
    else if (ipOnly || !HOSTNAME_RE.test(host) || /^[0-9.]+$/.test(host)) return null;
  }
  if (!/^[1-9][0-9]{0,4}$/.test(portStr)) return null;
  const port = Number(portStr);
  if (port > 65535) return null;
  return { host, port };
}

export type Value = YamlValue;
export const describe = (v: Value | undefined): string => describeYaml(v);

export class Reader extends YamlReader {
  readonly dir: string;
  constructor(file: string) {
    super(file);
    this.dir = path.dirname(file);
  }

  str(v: Value, key: string, keyNode: Node): string {
    if (!isScalar(v) || typeof v.value !== "string" || v.value === "")
      this.fail(`expected a non-empty string, got ${describe(v)}`, v, key, keyNode);
    return v.value;
  }

  int(v: Value, key: string, keyNode: Node, [min, max]: readonly [number, number]): number {
    if (!isScalar(v) || typeof v.value !== "number" || !Number.isInteger(v.value))
      this.fail(`expected an integer in ${min}..${max}, got ${describe(v)}`, v, key, keyNode);
    if (v.value < min || v.value > max)
      this.fail(`expected an integer in ${min}..${max}, got ${v.value}`, v, key, keyNode);
    return v.value;
  }

  path(v: Value, key: string, keyNode: Node): string {
    return path.resolve(this.dir, this.str(v, key, keyNode));
  }

  seq(v: Value, key: string, keyNode: Node): Node[] {
    if (this.isMissing(v)) return [];
    if (!isSeq(v)) this.fail(`expected a list, got ${describe(v)}`, v, key, keyNode);
    return v.items as Node[];
  }
}

/** 127.0.0.0/8 or ::1 (canonical text from parseHostPort). */
export function isLoopback(ip: string): boolean {
  return ip === "::1" || /^127\./.test(ip);
}

/** A boolean value, or a ConfigError at `key`. */
export function readBool(r: Reader, v: Value, key: string): boolean {
  if (!isScalar(v) || typeof v.value !== "boolean")
    r.fail(`expected true or false, got ${describe(v)}`, v, key);
  return v.value;
}

/** A key that must be present (and not null) in map `m`, or a ConfigError at `full`. */
export function required(
  r: Reader,
  m: Map<string, { key: Node; value: Value }>,
  name: string,
  full: string,
  parent: Value,
): { key: Node; value: Node } {
  const e = m.get(name);
  if (!e || r.isMissing(e.value)) r.fail("required key is missing", e?.value ?? e?.key ?? parent, full);
  return e as { key: Node; value: Node };
}
