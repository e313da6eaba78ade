/**
 * The one IP module (src/ip/ip.ts): one parser, one CIDR type, one containment test, and
 * every layer that validates an address text agrees with it (config, certificates, the
 * UDP address records, route commands, the interface-name check).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { cidrContains, parseCidr, parseIp } from "../../src/ip/ip.js";
import { encodeAddr } from "../../src/net/udp.js";
import { cidrFamily } from "../../src/net/route.js";
import { parseConfig } from "../../src/config/config.js";
import { isInterfaceName } from "../../src/text.js";

const CFG = (routes: string): string =>
  `ca: /etc/mintun/ca.crt\nhost:\n  key: /etc/mintun/host.key\n  cert: /etc/mintun/host.crt\ntun:\n  routes: [${routes}]\n`;

describe("one IPv4/IPv6 validator everywhere", () => {
  it.each([
    "010.0.0.1",
    "10.0.0.01",
    "1.2.3",
    "1.2.3.4.5",
    "256.0.0.1",
    "fe80::1%eth0",
    "::ffff:010.0.0.1",
    "",
  ])("refuses %j in every layer", (s) => {
    expect(parseIp(s)).toBeNull();
    expect(parseCidr(`${s}/32`)).toBeNull();
    expect(() => encodeAddr(s, 7000)).toThrow(/bad IP address/);
    expect(() => cidrFamily(`${s}/24`)).toThrow(/bad CIDR/);
    expect(() => parseConfig(CFG(`"${s}/32"`), "/etc/mintun/mintun.yaml")).toThrow(/expected a CIDR/);
  });

  it.each([
    ["10.0.0.1", 4, "10.0.0.1"],
    ["0.0.0.0", 4, "0.0.0.0"],
    ["FD00:0:0::1", 6, "fd00::1"],
    ["::ffff:10.0.0.1", 6, "::ffff:a00:1"],
  ] as const)("accepts %j everywhere (family %d, canonical %j)", (s, family, text) => {
    expect(parseIp(s)).toMatchObject({ family, text });
    expect(() => encodeAddr(s, 7000)).not.toThrow();
    expect(cidrFamily(`${s}/${family === 4 ? 24 : 64}`)).toBe(family);
  });

  it("CIDRs: zero host bits, decimal prefix within the family", () => {
    expect(parseCidr("10.1.0.0/16")?.text).toBe("10.1.0.0/16");
    expect(parseCidr("10.1.0.1/16")).toBeNull();
    expect(parseCidr("10.0.0.0/33")).toBeNull();
    expect(parseCidr("10.0.0.0/08")).toBeNull();
    expect(parseCidr("fd00::/129")).toBeNull();
    expect(parseCidr("FD00:0::/8")?.text).toBe("fd00::/8");
  });
});

describe("cidrContains: one convention (prefix length, or -1)", () => {
  it.each([
    ["10.77.0.0/16", "10.77.200.1", 16],
    ["10.77.0.0/16", "10.78.0.1", -1],
    ["192.168.77.128/25", "192.168.77.127", -1],
    ["192.168.77.128/25", "192.168.77.200", 25],
    ["fd77::/64", "fd77::1", 64],
    ["fd77::/64", "10.77.0.1", -1],
    ["0.0.0.0/0", "8.8.8.8", 0],
    ["10.0.0.0/8", "010.0.0.1", -1],
    ["10.0.0.1/8", "10.0.0.1", -1], // not a canonical CIDR: contains nothing
  ] as const)("%s contains %s: %d", (c, ip, want) => {
    expect(cidrContains(c, ip)).toBe(want);
    const bytes = parseIp(ip)?.bytes;
    if (bytes) expect(cidrContains(c, bytes)).toBe(want);
    const parsed = parseCidr(c);
    if (parsed) expect(cidrContains(parsed, ip)).toBe(want);
  });

  it("agrees with a bitwise comparison (property)", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0xffffffff }),
        fc.integer({ min: 0, max: 32 }),
        (n, a, bits) => {
          const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
          const net = (n & mask) >>> 0;
          const txt = (x: number): string => `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
          const want = (a & mask) >>> 0 === net ? bits : -1;
          expect(cidrContains(`${txt(net)}/${bits}`, txt(a))).toBe(want);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("isInterfaceName (config, TUN, routes)", () => {
  it.each([
    ["mintun0", true],
    ["eth0.100", true],
    ["a".repeat(15), true],
    ["a".repeat(16), false],
    ["", false],
    ["-dev", false],
    ["eth 0", false],
    ["eth/0", false],
  ] as const)("%j -> %s", (s, ok) => {
    expect(isInterfaceName(s)).toBe(ok);
  });
});
