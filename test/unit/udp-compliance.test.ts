/**
 * UdpBind compliance: every case of test/tools/native/compliance.ts runs against
 * FakeUdp/FakeNetwork here and against LinuxUdp in a child process inside a fresh network
 * namespace (real loopback). Plus the address-record codec and the fake network's hooks.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatchOutput } from "../../src/daemon/output.js";
import { PlatformError } from "../../src/errors.js";
import type { TunDevice } from "../../src/net/tun.js";
import { ADDR_LEN, addrKey, decodeAddr, encodeAddr, type UdpBatch, type UdpBind } from "../../src/net/udp.js";
import { FakeNetwork } from "../fakes/udp.js";
import { fakeUdpHarness, runCases, udpCases, type CaseResult } from "../tools/native/compliance.js";
import { Netns, VethPair, buildNative, runChild, canRunReal, outcome } from "../tools/native/netns.js";
import { vethFlows } from "../tools/native/veth.js";

describe("UdpBind compliance: FakeUdp", () => {
  for (const c of udpCases) {
    it(c.name, async () => {
      const [r] = await runCases([c], fakeUdpHarness);
      expect(r!.error ?? "ok").toBe("ok");
    });
  }
});

describe.skipIf(!canRunReal)("UdpBind compliance: LinuxUdp in a network namespace", () => {
  let ns: Netns | undefined;
  let results: Map<string, CaseResult> | undefined;
  let perm: Map<string, CaseResult> | undefined;

  beforeAll(async () => {
    buildNative();
    ns = await Netns.create("udp");
    results = await runChild(ns!, "udp");
    perm = await runChild(ns!, "perm");
  }, 120_000);

  afterAll(() => ns?.destroy());

  for (const c of udpCases) {
    it(c.name, () => {
      expect(outcome(results, c.name)).toBe("ok");
    });
  }
  it("udp: binding an address that is not local gives EADDRNOTAVAIL", () => {
    expect(outcome(results, "udp: binding an address that is not local gives EADDRNOTAVAIL")).toBe("ok");
  });
  it("perm: UDP bind to port 80 as nobody throws PlatformError EACCES", () => {
    expect(outcome(perm, "perm: UDP bind to port 80 as nobody throws PlatformError EACCES")).toBe("ok");
  });
  it("every result of the child was asserted", () => {
    expect([...(results?.keys() ?? [])].length).toBe(udpCases.length + 1);
  });
});

describe.skipIf(!canRunReal)("LinuxUdp GSO/GRO over a veth pair between two namespaces", () => {
  let pair: VethPair | undefined;
  let rx: Map<string, CaseResult> | undefined;
  let tx: Map<string, CaseResult> | undefined;

  beforeAll(async () => {
    buildNative();
    pair = await VethPair.create();
    ({ rx, tx } = await pair!.run());
  }, 120_000);

  afterAll(() => pair?.destroy());

  for (const f of vethFlows) {
    it(f.name, () => {
      expect(outcome(tx, `tx: ${f.name}`)).toBe("ok");
      expect(outcome(rx, `rx: ${f.name}`)).toBe("ok");
      console.log(`${f.name}: ${tx?.get(`tx: ${f.name}`)?.info}; ${rx?.get(`rx: ${f.name}`)?.info}`);
    });
  }
});

describe("address records", () => {
  const table: [string, number, string, 4 | 6, string][] = [
    ["10.1.2.3", 51820, "10.1.2.3", 4, "10.1.2.3:51820"],
    ["0.0.0.0", 0, "0.0.0.0", 4, "0.0.0.0:0"],
    ["::", 1, "::", 6, "[::]:1"],
    ["::1", 65535, "::1", 6, "[::1]:65535"],
    ["FD00:0:0:0:0:0:0:1", 2, "fd00::1", 6, "[fd00::1]:2"],
    ["2001:db8:0:0:1:0:0:1", 3, "2001:db8::1:0:0:1", 6, "[2001:db8::1:0:0:1]:3"],
    ["2001:db8::", 4, "2001:db8::", 6, "[2001:db8::]:4"],
    ["1:2:3:4:5:6:7:8", 5, "1:2:3:4:5:6:7:8", 6, "[1:2:3:4:5:6:7:8]:5"],
    ["1:0:3:4:5:6:7:8", 5, "1:0:3:4:5:6:7:8", 6, "[1:0:3:4:5:6:7:8]:5"],
    ["::ffff:192.0.2.7", 6, "192.0.2.7", 4, "192.0.2.7:6"],
    ["64:ff9b::192.0.2.7", 7, "64:ff9b::c000:207", 6, "[64:ff9b::c000:207]:7"],
  ];
  for (const [ip, port, norm, fam, key] of table) {
    it(`${ip} port ${port}`, () => {
      const out = Buffer.alloc(50, 0xee);
      encodeAddr(ip, port, out, 13);
      expect(out[12]).toBe(0xee);
      expect(out[33]).toBe(0xee);
      expect(out[14]).toBe(0);
      expect(decodeAddr(out, 13)).toEqual({ ip: norm, port, family: fam });
      expect(addrKey(out, 13)).toBe(key);
      expect(encodeAddr(norm, port).equals(out.subarray(13, 13 + ADDR_LEN))).toBe(true);
    });
  }
  it("layout: family, zero, port BE, address", () => {
    expect([...encodeAddr("1.2.3.4", 0x1234)]).toEqual([
      4,
      0,
      0x12,
      0x34,
      1,
      2,
      3,
      4,
      ...new Array(12).fill(0),
    ]);
  });
  it("rejects bad input with PlatformError EINVAL", () => {
    for (const [ip, port] of [
      ["1.2.3", 1],
      ["::1", 65536],
      ["::1", 1.5],
      ["", 1],
      ["fe80::1%eth0", 1],
    ] as const)
      expect(() => encodeAddr(ip, port)).toThrow(PlatformError);
    expect(() => encodeAddr("::1", 1, Buffer.alloc(10))).toThrow(PlatformError);
  });
});

describe("FakeNetwork hooks", () => {
  it("filter drops, duplicates and can corrupt; flush delivers synchronously", () => {
    const seen: string[] = [];
    const net = new FakeNetwork({
      filter: (_from, _to, data) => {
        if (data[0] === 0) return 0;
        if (data[0] === 2) return 2;
        if (data[0] === 9) data[1] = 0xff;
        return 1;
      },
    });
    const a = net.bind({ address: "10.0.0.1", port: 1000 });
    const b = net.bind({ address: "10.0.0.2", port: 2000 });
    b.start((x: UdpBatch) => {
      for (let i = 0; i < x.count; i++) {
        const off = i * x.slotSize + x.headroom;
        seen.push(
          `${addrKey(x.addrs, i * ADDR_LEN)} ${x.buf.subarray(off, off + x.lens[i]!).toString("hex")}`,
        );
      }
    });
    const to = encodeAddr("10.0.0.2", 2000);
    for (const first of [0, 1, 2, 9]) a.send(Buffer.from([first, 0]), 0, 2, to, 0);
    a.send(Buffer.from([1, 1]), 0, 2, encodeAddr("10.0.0.3", 1), 0); // nobody there
    expect(net.flush()).toBe(4);
    expect(seen).toEqual([
      "10.0.0.1:1000 0100",
      "10.0.0.1:1000 0200",
      "10.0.0.1:1000 0200",
      "10.0.0.1:1000 09ff",
    ]);
    expect(net.dropped).toBe(1);
    expect(a.stats().txPackets).toBe(5);
  });

  it("queueLimit drops like a full receive buffer", () => {
    const net = new FakeNetwork({ queueLimit: 10 });
    const a = net.bind({ address: "::", port: 0 });
    const b = net.bind({ address: "::1", port: 0 });
    const offs = new Uint32Array(50);
    const lens = new Uint32Array(50).fill(4);
    expect(a.sendMany(Buffer.alloc(4), offs, lens, 50, encodeAddr("::1", b.localPort), 0)).toBe(50);
    expect(net.dropped).toBe(40);
  });
});

describe("BatchOutput: one sendMany per endpoint run (GSO needs long runs)", () => {
  function recorder(): { udp: UdpBind; calls: string[] } {
    const calls: string[] = [];
    const udp = {
      sendMany(
        buf: Buffer,
        offs: Uint32Array,
        lens: Uint32Array,
        count: number,
        addr: Buffer,
        addrOff: number,
      ) {
        const ps: string[] = [];
        for (let i = 0; i < count; i++) ps.push(buf.subarray(offs[i]!, offs[i]! + lens[i]!).toString());
        calls.push(`${addrKey(addr, addrOff)} ${ps.join(",")}`);
        return count;
      },
    } as unknown as UdpBind;
    return { udp, calls };
  }
  const tun = { writeMany: () => 0 } as unknown as TunDevice;
  const slab = Buffer.from("abcdefghijklmnopqrstuvwxyz");
  const ep = (i: number): Buffer => encodeAddr(`10.0.0.${i}`, 7000);

  it("interleaved peers: one call per peer, order kept per peer", () => {
    const { udp, calls } = recorder();
    const o = new BatchOutput(udp, tun);
    for (let i = 0; i < 6; i++) o.sendUdp(slab, i, 1, ep(1 + (i % 2)), 0);
    expect(calls).toEqual([]);
    o.flush();
    expect(calls).toEqual(["10.0.0.1:7000 a,c,e", "10.0.0.2:7000 b,d,f"]);
    expect(o.udpSendCalls).toBe(2);
  });

  it("a new buffer for a peer sends that peer's run first; more than 8 peers send the oldest", () => {
    const { udp, calls } = recorder();
    const o = new BatchOutput(udp, tun);
    const other = Buffer.from("0123456789");
    o.sendUdp(slab, 0, 1, ep(1), 0);
    o.sendUdp(slab, 1, 1, ep(2), 0);
    o.sendUdp(other, 0, 1, ep(1), 0);
    expect(calls).toEqual(["10.0.0.1:7000 a"]);
    for (let i = 3; i <= 9; i++) o.sendUdp(slab, i, 1, ep(i), 0); // a 9th run wanted: the oldest (peer 2) goes
    expect(calls).toEqual(["10.0.0.1:7000 a", "10.0.0.2:7000 b"]);
    o.sendUdp(other, 1, 1, ep(1), 0);
    o.flush();
    expect(calls.slice(2)).toEqual([
      "10.0.0.1:7000 0,1",
      ...[3, 4, 5, 6, 7, 8, 9].map((i) => `10.0.0.${i}:7000 ${slab.subarray(i, i + 1).toString()}`),
    ]);
    o.flush();
    expect(calls.length).toBe(10);
  });

  it("runs are cut at 256 packets", () => {
    const { udp, calls } = recorder();
    const o = new BatchOutput(udp, tun);
    for (let i = 0; i < 300; i++) o.sendUdp(slab, 0, 1, ep(1), 0);
    o.flush();
    expect(calls.map((c) => c.split(",").length)).toEqual([256, 44]);
  });
});
