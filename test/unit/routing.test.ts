import { describe, it, expect } from "vitest";
import fc from "fast-check";
import "../property/seed.js";
import { PrefixTable, match6, prefixOf } from "../../src/tunnel/routing.js";
import { ipv4ToNumber, ipv6ToBytes } from "../../src/ip/ip.js";

const v4 = (s: string) => ipv4ToNumber(s);
const v6 = (s: string) => ipv6ToBytes(s)!;

describe("prefixOf (strict CIDRs from the one IP module)", () => {
  it("parses IPv4 prefixes", () => {
    expect(prefixOf("10.1.0.0/16")).toEqual({ v: 4, p: { net: v4("10.1.0.0"), mask: 0xffff0000, bits: 16 } });
    expect(prefixOf("10.1.2.3/32")).toEqual({ v: 4, p: { net: v4("10.1.2.3"), mask: 0xffffffff, bits: 32 } });
    expect(prefixOf("0.0.0.0/0")).toEqual({ v: 4, p: { net: 0, mask: 0, bits: 0 } });
    expect(prefixOf("192.168.1.254/31")).toEqual({
      v: 4,
      p: { net: v4("192.168.1.254"), mask: 0xfffffffe, bits: 31 },
    });
    expect(prefixOf("128.0.0.0/1")).toEqual({ v: 4, p: { net: 0x80000000, mask: 0x80000000, bits: 1 } });
  });

  it("parses IPv6 prefixes", () => {
    const c = prefixOf("fd77:1:2::/52");
    expect(c?.v).toBe(6);
    expect(c!.p.bits).toBe(52);
    expect((c!.p as { net: Buffer }).net.toString("hex")).toBe("fd770001000200000000000000000000");
    const d = prefixOf("fd77::1/128");
    expect((d!.p as { net: Buffer }).net.toString("hex")).toBe("fd770000000000000000000000000001");
    expect(prefixOf("::/0")!.p.bits).toBe(0);
    expect((prefixOf("fff8::/13")!.p as { net: Buffer }).net.toString("hex")).toBe("fff8" + "00".repeat(14));
  });

  it.each(["10.1.2.3/16", "10.1.2.3", "fd77::1", "ffff::1/0", "010.0.0.0/8", "192.168.1.255/31"])(
    "refuses what is not a canonical CIDR: %j",
    (s) => {
      expect(prefixOf(s)).toBeNull();
      expect(new PrefixTable<number>().add(s, 1)).toBe(false);
    },
  );

  it.each([
    "",
    "/8",
    "10.0.0/8",
    "10.0.0.0.0/8",
    "256.0.0.0/8",
    "10.0.0.0/33",
    "10.0.0.0/-1",
    "10.0.0.0/8.5",
    "10.0.0.0/abc",
    "10.0.0.0/8/8",
    "a.b.c.d/8",
    "fd00::/129",
    "fd00::/-1",
    "fd00::/x",
    "fd00:::/8",
    "fd00::1::2/64",
    "fd00::g/64",
  ])("refuses malformed %j", (s) => {
    expect(prefixOf(s)).toBeNull();
    expect(new PrefixTable<number>().add(s, 1)).toBe(false);
  });

  // Regression test (was a bug, fixed; src/tunnel/routing.ts:25,34): the prefix length goes through Number(), which
  // accepts "" (-> 0), whitespace, exponents and hex. "10.0.0.0/" becomes 10.0.0.0/0 — a
  // route for every IPv4 address — and "fd00::/0x40" becomes /64.
  it.each(["10.0.0.0/", "10.0.0.0/ 8", "10.0.0.0/1e1", "10.0.0.0/0x8", "fd00::/", "fd00::/0x40"])(
    "refuses a prefix length that is not plain decimal: %j",
    (s) => {
      expect(prefixOf(s)).toBeNull();
    },
  );
});

describe("PrefixTable", () => {
  it("longest prefix wins regardless of insertion order (IPv4)", () => {
    const entries: [string, string][] = [
      ["0.0.0.0/0", "default"],
      ["10.0.0.0/8", "ten"],
      ["10.1.0.0/16", "ten-one"],
      ["10.1.2.0/24", "ten-one-two"],
      ["10.1.2.3/32", "host"],
    ];
    for (const order of [
      entries,
      [...entries].reverse(),
      [entries[2]!, entries[0]!, entries[4]!, entries[1]!, entries[3]!],
    ]) {
      const t = new PrefixTable<string>();
      for (const [c, v] of order) expect(t.add(c, v)).toBe(true);
      expect(t.size).toBe(5);
      expect(t.lookup4(v4("10.1.2.3"))).toBe("host");
      expect(t.lookup4(v4("10.1.2.4"))).toBe("ten-one-two");
      expect(t.lookup4(v4("10.1.3.3"))).toBe("ten-one");
      expect(t.lookup4(v4("10.2.0.1"))).toBe("ten");
      expect(t.lookup4(v4("11.0.0.1"))).toBe("default");
      expect(t.lookup4(v4("255.255.255.255"))).toBe("default");
    }
  });

  it("/32 matches exactly one address; without /0 other addresses have no route", () => {
    const t = new PrefixTable<string>();
    t.add("192.0.2.1/32", "a");
    expect(t.lookup4(v4("192.0.2.1"))).toBe("a");
    expect(t.lookup4(v4("192.0.2.0"))).toBeUndefined();
    expect(t.lookup4(v4("192.0.2.2"))).toBeUndefined();
    expect(t.lookup4(v4("64.0.2.1"))).toBeUndefined();
    // high bit set: unsigned comparisons
    t.add("200.0.0.0/8", "hi");
    expect(t.lookup4(v4("200.255.1.1"))).toBe("hi");
    expect(t.lookup4(v4("201.0.0.0"))).toBeUndefined();
  });

  it("longest prefix wins (IPv6), /128 and /0", () => {
    const t = new PrefixTable<string>();
    t.add("::/0", "default");
    t.add("fd77::/16", "fd77");
    t.add("fd77:1::/32", "fd77:1");
    t.add("fd77:1::5/128", "host");
    t.add("fd77:1:0:0:8000::/65", "upper-half");
    const at = (s: string) => t.lookup6(Buffer.concat([Buffer.alloc(3), v6(s)]), 3);
    expect(at("fd77:1::5")).toBe("host");
    expect(at("fd77:1::6")).toBe("fd77:1");
    expect(at("fd77:1:0:0:8000::1")).toBe("upper-half");
    expect(at("fd77:1:0:0:7fff::1")).toBe("fd77:1");
    expect(at("fd77:2::5")).toBe("fd77");
    expect(at("fd78::")).toBe("default");
    expect(at("2001:db8::1")).toBe("default");
    // v4 and v6 are separate tables
    expect(t.lookup4(v4("10.0.0.1"))).toBeUndefined();
  });

  it("removeValue removes every prefix of that value and nothing else", () => {
    const a = { name: "a" };
    const b = { name: "b" };
    const t = new PrefixTable<{ name: string }>();
    t.add("10.0.0.1/32", a);
    t.add("10.9.0.0/16", a);
    t.add("fd77::1/128", a);
    t.add("10.0.0.0/8", b);
    t.add("fd77::/16", b);
    expect(t.size).toBe(5);
    t.removeValue(a);
    expect(t.size).toBe(2);
    expect(t.lookup4(v4("10.0.0.1"))).toBe(b);
    expect(t.lookup4(v4("10.9.1.1"))).toBe(b);
    expect(t.lookup6(v6("fd77::1"), 0)).toBe(b);
    t.removeValue(a); // idempotent
    expect(t.size).toBe(2);
    t.removeValue(b);
    expect(t.size).toBe(0);
    expect(t.lookup4(v4("10.0.0.1"))).toBeUndefined();
    t.add("10.0.0.0/8", a);
    t.clear();
    expect(t.size).toBe(0);
  });

  it("lookup4 agrees with a brute-force longest match (property)", () => {
    // canonical networks (host bits zero), as certificates and config hold them
    const prefix = fc
      .tuple(fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: 32 }))
      .map(([n, bits]) => [(n & (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0)) >>> 0, bits] as const);
    fc.assert(
      fc.property(
        fc.uniqueArray(prefix, { maxLength: 12, selector: ([, bits]) => bits }),
        fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 20 }),
        (ps, addrs) => {
          const t = new PrefixTable<number>();
          const str = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
          ps.forEach(([n, bits], i) => expect(t.add(`${str(n)}/${bits}`, i)).toBe(true));
          // probe the networks themselves too
          for (const a of [...addrs, ...ps.map(([n]) => n)]) {
            let best: number | undefined;
            let bestBits = -1;
            ps.forEach(([n, bits], i) => {
              const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
              if ((a & mask) >>> 0 === (n & mask) >>> 0 && bits > bestBits) {
                best = i;
                bestBits = bits;
              }
            });
            expect(t.lookup4(a)).toBe(best);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("match6 agrees with a bitwise comparison (property)", () => {
    const b16 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));
    fc.assert(
      fc.property(b16, b16, fc.integer({ min: 0, max: 128 }), fc.boolean(), (net, addr, bits, related) => {
        if (related) addr = Buffer.from(net); // force matches to be common
        if (related && bits < 128) addr[Math.floor(bits / 8)]! ^= 0x80 >> (bits % 8); // flip first host bit
        const canon = Buffer.from(net);
        for (let i = 0; i < 16; i++)
          canon[i]! &= (0xff << (8 - Math.max(0, Math.min(8, bits - i * 8)))) & 0xff;
        const c = prefixOf(
          `${[...Array(8).keys()].map((i) => canon.readUInt16BE(i * 2).toString(16)).join(":")}/${bits}`,
        );
        expect(c?.v).toBe(6);
        let want = true;
        for (let i = 0; i < bits; i++) {
          const bit = (x: Buffer) => (x[i >> 3]! >> (7 - (i & 7))) & 1;
          if (bit(net) !== bit(addr)) want = false;
        }
        expect(match6(c!.p as { net: Buffer; bits: number }, addr, 0)).toBe(want);
      }),
      { numRuns: 500 },
    );
  });
});
