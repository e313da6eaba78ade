/**
 * TunDevice compliance: every case of test/tools/native/compliance.ts runs against
 * FakeTun here and against LinuxTun in a child process inside a fresh network namespace
 * (real kernel, real routing), once with TUN offloads (the default) and once with
 * MINTUN_NO_TUN_OFFLOAD=1. Also the RouteManager (fake here, `ip` in the child), and the
 * offload checks of test/tools/native/offload.ts (TSO split / coalescing across a bridge
 * of two TUNs in two namespaces).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PlatformError } from "../../src/errors.js";
import { cidrFamily } from "../../src/net/route.js";
import { FakeRouteManager } from "../fakes/route.js";
import { fakeTunHarness, runCases, tunCases, type CaseResult } from "../tools/native/compliance.js";
import { offloadChecks } from "../tools/native/offload.js";
import { Netns, buildNative, runChild, canRunReal, outcome } from "../tools/native/netns.js";

describe("TunDevice compliance: FakeTun", () => {
  for (const c of tunCases) {
    it(c.name, async () => {
      const [r] = await runCases([c], fakeTunHarness);
      expect(r!.error ?? "ok").toBe("ok");
    });
  }
});

describe.skipIf(!canRunReal)("TunDevice compliance: LinuxTun in a network namespace", () => {
  let ns: Netns | undefined;
  let nsB: Netns | undefined;
  let results: Map<string, CaseResult> | undefined;
  let plain: Map<string, CaseResult> | undefined;
  let perm: Map<string, CaseResult> | undefined;
  let offload: Map<string, CaseResult> | undefined;

  beforeAll(async () => {
    buildNative();
    ns = await Netns.create("tun");
    nsB = await Netns.create("tunb");
    results = await runChild(ns!, "tun");
    plain = await runChild(ns!, "tun", 55_000, { env: { ...process.env, MINTUN_NO_TUN_OFFLOAD: "1" } });
    perm = await runChild(ns!, "perm");
    offload = await runChild(ns!, "offload", 90_000, { args: [nsB!.name] });
  }, 240_000);

  afterAll(async () => {
    await ns?.destroy();
    await nsB?.destroy();
  });

  for (const c of tunCases) {
    it(c.name, () => {
      expect(outcome(results, c.name)).toBe("ok");
    });
    it(`${c.name} (MINTUN_NO_TUN_OFFLOAD=1)`, () => {
      expect(outcome(plain, c.name)).toBe("ok");
    });
  }
  for (const c of offloadChecks("")) {
    it(c.name, () => expect(outcome(offload, c.name)).toBe("ok"));
  }
  for (const name of [
    "route: ip failures carry stderr as EIPCMD; bad input is EINVAL",
    "route: address, MTU, routes (v4+v6) and flush on a real TUN",
  ]) {
    it(name, () => expect(outcome(results, name)).toBe("ok"));
  }
  it("perm: TUN open as nobody throws PlatformError EACCES/EPERM", () => {
    expect(outcome(perm, "perm: TUN open as nobody throws PlatformError EACCES/EPERM")).toBe("ok");
  });
  it("every result of the child was asserted", () => {
    expect([...(results?.keys() ?? [])].length).toBe(tunCases.length + 2);
  });
});

describe("FakeRouteManager", () => {
  it("records calls in order and validates like the real one", async () => {
    const rm = new FakeRouteManager();
    await rm.addAddress("mintun0", "10.99.0.1/24");
    await rm.addAddress("mintun0", "fd00::1/64");
    await rm.setMtu("mintun0", 1420);
    await rm.setTxQueueLen("mintun0", 1000);
    await rm.setUp("mintun0");
    await rm.addRoute("mintun0", "10.98.0.0/16");
    await rm.delRoute("mintun0", "10.98.0.0/16");
    await rm.flush("mintun0");
    expect(rm.calls.map((c) => c.op)).toEqual([
      "addAddress",
      "addAddress",
      "setMtu",
      "setTxQueueLen",
      "setUp",
      "addRoute",
      "delRoute",
      "flush",
    ]);
    await expect(rm.addAddress("mintun0", "10.0.0.1/40")).rejects.toBeInstanceOf(PlatformError);
    await expect(rm.setMtu("mintun0", 20)).rejects.toMatchObject({ code: "EINVAL" });
    await expect(rm.setTxQueueLen("mintun0", -1)).rejects.toMatchObject({ code: "EINVAL" });
    await expect(rm.setUp("-n")).rejects.toMatchObject({ code: "EINVAL" });
    rm.failOn = "setUp";
    await expect(rm.setUp("mintun0")).rejects.toMatchObject({ code: "EIPCMD" });
  });

  it("cidrFamily", () => {
    expect(cidrFamily("10.0.0.0/8")).toBe(4);
    expect(cidrFamily("fd00::/64")).toBe(6);
    expect(cidrFamily("::1")).toBe(6);
    for (const bad of ["10.0.0.0/33", "fd00::/129", "x/8", "10.0.0.0/", "10.0.0.0/8/8", "fe80::1%lo/64"])
      expect(() => cidrFamily(bad), bad).toThrow(PlatformError);
  });
});
