/**
 * IdentityLookup (src/net/identity.ts): every case of test/tools/native/identity-child.ts
 * against FakeIdentityLookup in-process, and against LinuxIdentityLookup (sock_diag, then
 * /proc/net forced) in a child process inside a fresh network namespace, with sockets
 * owned by root and by uid 65534. Plus the cache, the /proc/net parser and the fallback.
 */
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IdentityCache,
  LinuxIdentityLookup,
  ipBytes,
  parseProcNet,
  procHexAddr,
  procLookup,
  type FlowKey,
} from "../../src/net/identity.js";
import { PlatformError } from "../../src/errors.js";
import { FakeIdentityLookup } from "../fakes/identity.js";
import { runCases, type CaseResult } from "../tools/native/compliance.js";
import { fakeIdentityHarness, identityCases } from "../tools/native/identity-child.js";
import { Netns, ROOT, canRunReal, outcome, runChild } from "../tools/native/netns.js";

const ADDON = join(ROOT, "platform/linux/build/Release/mintun_linux.node");
const SRCS = ["mintun_linux.c", "tun_offload.c", "tun_offload.h", "sockdiag.c", "sockdiag.h"].map((f) =>
  join(ROOT, "platform/linux", f),
);
const CHILD = join(ROOT, ".tmp/identity-test/test/tools/native/identity-child.js");

function build(): void {
  if (!existsSync(ADDON) || SRCS.some((f) => statSync(ADDON).mtimeMs < statSync(f).mtimeMs))
    execFileSync(
      process.execPath,
      [join(ROOT, "node_modules/node-gyp/bin/node-gyp.js"), "rebuild", "--directory", "platform/linux"],
      { cwd: ROOT, stdio: "pipe" },
    );
  execFileSync(
    process.execPath,
    [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "test/tools/native/identity-child.tsconfig.json"],
    { cwd: ROOT, stdio: "pipe" },
  );
}

describe("IdentityLookup compliance: FakeIdentityLookup", () => {
  for (const c of identityCases.filter((c) => !c.realOnly))
    it(c.name, async () => {
      const [r] = await runCases([c], fakeIdentityHarness);
      expect(r!.error ?? "ok").toBe("ok");
    });
});

describe.skipIf(!canRunReal)("IdentityLookup compliance: LinuxIdentityLookup in a network namespace", () => {
  let ns: Netns | undefined;
  let results: Map<string, CaseResult> | undefined;
  beforeAll(async () => {
    build();
    ns = await Netns.create("id");
    results = await runChild(ns!, "real", 110_000, { js: CHILD });
  }, 150_000);
  afterAll(() => ns?.destroy());

  const procNames = identityCases
    .filter((c) => !c.notProc && !c.name.startsWith("sockLookup"))
    .map((c) => c.name);
  for (const c of identityCases)
    it(`sock_diag: ${c.name}`, () => expect(outcome(results, `sock_diag: ${c.name}`)).toBe("ok"));
  for (const n of procNames) it(`proc: ${n}`, () => expect(outcome(results, `proc: ${n}`)).toBe("ok"));
  it("every result of the child was asserted", () => {
    expect([...(results?.keys() ?? [])].sort()).toEqual(
      [...identityCases.map((c) => `sock_diag: ${c.name}`), ...procNames.map((n) => `proc: ${n}`)].sort(),
    );
  });
});

const F: FlowKey = { proto: 6, family: 4, local: "127.0.0.1", lport: 40000, remote: "127.0.0.1", rport: 80 };

/** sockLookup stand-in that counts calls and answers from a table of "proto|fam|lport|rport". */
function countingAddon(table: Record<string, { uid: number; inode: number }>, fail?: string) {
  const calls: unknown[][] = [];
  return {
    calls,
    sockLookup(proto: number, family: 4 | 6, l: Buffer, lport: number, r: Buffer, rport: number) {
      calls.push([proto, family, l.toString("hex"), lport, r.toString("hex"), rport]);
      if (fail) throw Object.assign(new Error(fail), { code: fail });
      return table[`${proto}|${family}|${lport}|${rport}`] ?? null;
    },
  };
}

describe("LinuxIdentityLookup without the kernel (stand-in addon)", () => {
  it("caches answers (and misses) for the TTL, keyed by the 5-tuple", () => {
    let now = 1000;
    const addon = countingAddon({ "6|4|40000|80": { uid: 7, inode: 99 } });
    const l = new LinuxIdentityLookup({ addon, now: () => now, ttlMs: 2000 });
    expect(l.lookup(F)).toEqual({ uid: 7, inode: 99, source: "sock_diag" });
    expect(l.lookup(F)?.uid).toBe(7);
    expect(addon.calls.length).toBe(1);
    expect(l.lookup({ ...F, rport: 81 })).toBeNull(); // miss: exact, any-local
    const afterMiss = addon.calls.length;
    expect(afterMiss).toBe(3);
    expect(l.lookup({ ...F, rport: 81 })).toBeNull();
    expect(addon.calls.length).toBe(afterMiss);
    now += 1999;
    l.lookup(F);
    expect(addon.calls.length).toBe(afterMiss);
    now += 1;
    l.lookup(F);
    expect(addon.calls.length).toBe(afterMiss + 1);
    expect(l.stats()).toMatchObject({ lookups: 6, cacheHits: 3, diagMisses: 1 });
  });

  it("tries the zero-remote (UDP) and zero-local forms on a miss, never the v4-mapped one", () => {
    const addon = countingAddon({});
    const l = new LinuxIdentityLookup({ addon, ttlMs: 0 });
    l.lookup({ ...F, proto: 17 });
    expect(addon.calls).toEqual([
      [17, 4, "7f000001", 40000, "7f000001", 80],
      [17, 4, "7f000001", 40000, "00000000", 0],
      [17, 4, "00000000", 40000, "7f000001", 80],
    ]);
  });

  it("treats inode 0 (TIME_WAIT, request socks) as no owner", () => {
    const l = new LinuxIdentityLookup({ addon: countingAddon({ "6|4|40000|80": { uid: 0, inode: 0 } }) });
    expect(l.lookup(F)).toBeNull();
  });

  it("a failing sock_diag falls back to /proc/net; EINVAL is thrown, not hidden", () => {
    const l = new LinuxIdentityLookup({ addon: countingAddon({}, "ETIMEDOUT"), ttlMs: 0 });
    l.lookup({ ...F, lport: 1, rport: 1 }); // /proc/net of the test process: read only
    expect(l.stats()).toMatchObject({ diagErrors: 1, procLookups: 1 });
    const bad = new LinuxIdentityLookup({ addon: countingAddon({}, "EINVAL") });
    expect(() => bad.lookup(F)).toThrow(PlatformError);
    expect(() => l.lookup({ ...F, local: "1.2.3" })).toThrow(PlatformError);
    const strict = new LinuxIdentityLookup({ addon: countingAddon({}, "ETIMEDOUT"), mode: "sock_diag" });
    expect(() => strict.lookup(F)).toThrow(/ETIMEDOUT|sock_diag/);
  });

  it("the cache is bounded, oldest entry first", () => {
    const c = new IdentityCache(1000, 3);
    for (let i = 0; i < 5; i++) c.set(`k${i}`, null, 0);
    expect(c.size).toBe(3);
    expect(c.get("k0", 1)).toBeUndefined();
    expect(c.get("k4", 1)).toBeNull();
  });
});

describe("/proc/net parsing", () => {
  // captured from a 6.x kernel (trimmed trailing columns)
  const tcp = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:9C40 0100007F:0050 01 00000000:00000000 00:00000000 00000000 65534        0 4242 1 0",
    "   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0",
    "   2: 0100007F:0050 0100007F:9C40 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0",
    "",
  ].join("\n");
  const tcp6 = [
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 77 1 0",
    "   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:9C41 01 00000000:00000000 00:00000000 00000000  1000        0 78 1 0",
    "",
  ].join("\n");
  const files: Record<string, string> = { "/proc/net/tcp": tcp, "/proc/net/tcp6": tcp6 };
  const read = (p: string): string => files[p] ?? "";

  it("decodes little-endian words", () => {
    expect(procHexAddr("0100007F").toString("hex")).toBe("7f000001");
    expect(procHexAddr("00000000000000000000000001000000").toString("hex")).toBe(
      ipBytes("::1", 6).toString("hex"),
    );
    expect(procHexAddr("0000000000000000FFFF00000100007F").toString("hex")).toBe(
      ipBytes("::ffff:127.0.0.1", 6).toString("hex"),
    );
  });

  it("finds only lines of the local port, whatever the other columns hold", () => {
    expect(parseProcNet(tcp, 6, 4, 0x50).map((s) => s.inode)).toEqual([17, 0]);
    expect(parseProcNet(tcp, 6, 4, 0x9c40).map((s) => s.inode)).toEqual([4242]);
  });

  it("matches exact, listener, TIME_WAIT (no owner) and dual-stack lines", () => {
    expect(procLookup(F, read)).toEqual({ uid: 65534, inode: 4242, source: "proc" });
    expect(procLookup({ ...F, local: "10.0.0.1", lport: 80, rport: 5555 }, read)?.inode).toBe(17);
    expect(procLookup({ ...F, lport: 80, rport: 40000 }, read)).toBeNull(); // TIME_WAIT
    expect(procLookup({ ...F, lport: 8080, rport: 0x9c41 }, read)?.inode).toBe(78); // ::ffff: in tcp6
    expect(
      procLookup({ ...F, family: 6, local: "::1", remote: "::1", lport: 8080, rport: 1 }, read)?.inode,
    ).toBe(77);
    expect(procLookup({ ...F, lport: 1 }, read)).toBeNull();
  });
});

describe("ipBytes", () => {
  it.each([
    ["::", "00000000000000000000000000000000"],
    ["::1", "00000000000000000000000000000001"],
    ["fd00::2", "fd000000000000000000000000000002"],
    ["1:2:3:4:5:6:7:8", "00010002000300040005000600070008"],
    ["fe80::1:2", "fe800000000000000000000000010002"],
    ["::ffff:1.2.3.4", "00000000000000000000ffff01020304"],
    ["64:ff9b::192.0.2.33", "0064ff9b0000000000000000c0000221"],
  ])("%s", (ip, hex) => expect(ipBytes(ip, 6).toString("hex")).toBe(hex));
  it("rejects what node:net rejects", () => {
    for (const bad of ["1.2.3", "::g", "fe80::1%lo", "", "1:2:3:4:5:6:7:8:9"])
      expect(() => ipBytes(bad, bad.includes(".") ? 4 : 6)).toThrow(PlatformError);
  });
  it("FakeIdentityLookup rejects bad keys like the Linux one", () => {
    expect(() => new FakeIdentityLookup().lookup({ ...F, lport: 70000 })).toThrow(PlatformError);
  });
});
