/**
 * UDP GSO/GRO across a veth pair between two network namespaces (real kernels only): the
 * sender's GSO messages leave namespace A as one skb each, cross the veth and reach the
 * receiver's UDP_GRO socket in namespace B. Run by child.ts as `veth-rx` (in B, started
 * first; prints "ready") and `veth-tx` (in A); VethPair in netns.ts builds the pair:
 *
 *   A: mtcv0 10.203.0.1/24 fd03::1/64 ----veth---- B: mtcv0 10.203.0.2/24 10.203.0.3/32 fd03::2/64
 *      route 10.203.0.3/32 mtu lock 1280 (segments of 1400 bytes do not fit: GSO refused)
 */
import { LinuxUdp } from "../../../src/net/udp.js";
import { addrKey, encodeAddr, type UdpBatch } from "../../../src/net/udp.js";
import { check, pack, payloads, waitFor, type CaseResult } from "./compliance.js";

export const VETH = { a4: "10.203.0.1", b4: "10.203.0.2", c4: "10.203.0.3", a6: "fd03::1", b6: "fd03::2" };

interface Flow {
  name: string;
  tx: string;
  txPort: number;
  rx: string;
  rxPort: number;
  /** destination address (the receiver's bind may be "::") */
  dst: string;
  /** expected source as addrKey prints it */
  src: string;
  sizes: number[];
  /** the route MTU is below the segment size: expect a fallback, and GSO again for the short run */
  smallMtu?: boolean;
}

const run65 = [...new Array<number>(64).fill(1400), 333];

export const vethFlows: Flow[] = [
  {
    name: "veth IPv4: 64 x 1400 + 333 bytes",
    tx: VETH.a4,
    txPort: 7401,
    rx: VETH.b4,
    rxPort: 7301,
    dst: VETH.b4,
    src: `${VETH.a4}:7401`,
    sizes: run65,
  },
  {
    name: "veth IPv6: 64 x 1400 + 333 bytes",
    tx: VETH.a6,
    txPort: 7402,
    rx: VETH.b6,
    rxPort: 7302,
    dst: VETH.b6,
    src: `[${VETH.a6}]:7402`,
    sizes: run65,
  },
  {
    name: "veth dual stack: '::' to '::' with an IPv4 record",
    tx: "::",
    txPort: 7403,
    rx: "::",
    rxPort: 7303,
    dst: VETH.b4,
    src: `${VETH.a4}:7403`,
    sizes: run65,
  },
  {
    name: "veth route MTU 1280: 1400-byte GSO refused and sent again without; 1000 bytes still GSO",
    tx: VETH.a4,
    txPort: 7404,
    rx: VETH.c4,
    rxPort: 7304,
    dst: VETH.c4,
    src: `${VETH.a4}:7404`,
    sizes: [...new Array<number>(20).fill(1400), ...new Array<number>(20).fill(1000)],
    smallMtu: true,
  },
];

function flowPayloads(f: Flow, k: number): Buffer[] {
  // the first byte tells flows apart (a receiver bound to "::" could see any of them)
  return payloads(f.sizes.length, (i) => f.sizes[i]!).map((p) => {
    p[0] = 0xf0 + k;
    return p;
  });
}

async function result(name: string, fn: () => Promise<string>): Promise<CaseResult> {
  try {
    return { name, ok: true, info: await fn() };
  } catch (e) {
    return { name, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
}

/** Namespace B: bind every flow's receiver, say "ready", check what arrives. */
export async function vethReceive(): Promise<CaseResult[]> {
  const got = vethFlows.map(() => [] as { data: Buffer; from: string }[]);
  const binds = vethFlows.map((f, k) => {
    const b = LinuxUdp.bind({ address: f.rx, port: f.rxPort });
    b.start((x: UdpBatch) => {
      for (let i = 0; i < x.count; i++) {
        const off = x.slotSize * i + x.headroom;
        got[k]!.push({
          data: Buffer.from(x.buf.subarray(off, off + x.lens[i]!)),
          from: addrKey(x.addrs, i * 20),
        });
      }
    });
    return b;
  });
  process.stdout.write("ready\n");
  try {
    await waitFor(
      () => vethFlows.every((f, k) => got[k]!.length >= f.sizes.length),
      10_000,
      "all flows",
    ).catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    const out: CaseResult[] = [];
    for (const [k, f] of vethFlows.entries()) {
      out.push(
        await result(`rx: ${f.name}`, async () => {
          const ps = flowPayloads(f, k);
          const g = got[k]!;
          check(g.length === ps.length, `expected ${ps.length} datagrams, got ${g.length}`);
          g.forEach((p, i) => {
            check(p.data.length === ps[i]!.length, `length of ${i}: ${p.data.length}`);
            check(p.data.equals(ps[i]!), `bytes of datagram ${i}`);
            check(p.from === f.src, `source of ${i}: ${p.from}`);
          });
          const s = binds[k]!.stats();
          check(binds[k]!.offloads().gro, "GRO not enabled on the receiver");
          if (!f.smallMtu)
            check(s.rxGroSegments > s.rxGroMessages && s.rxGroMessages > 0, `GRO stats ${JSON.stringify(s)}`);
          return `rxPackets ${s.rxPackets} rxGroMessages ${s.rxGroMessages} rxGroSegments ${s.rxGroSegments}`;
        }),
      );
    }
    return out;
  } finally {
    for (const b of binds) b.close();
  }
}

/** Namespace A: send each flow with one sendMany call. */
export async function vethSend(): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  for (const [k, f] of vethFlows.entries()) {
    out.push(
      await result(`tx: ${f.name}`, async () => {
        const b = LinuxUdp.bind({ address: f.tx, port: f.txPort });
        try {
          const to = encodeAddr(f.dst, f.rxPort);
          // resolve the neighbour first (a port nobody listens on), so nothing waits in its queue
          b.send(Buffer.from("warm"), 0, 4, encodeAddr(f.dst, 9), 0);
          await new Promise((r) => setTimeout(r, 100));
          const ps = flowPayloads(f, k);
          const pk = pack(ps, 64);
          const before = b.stats();
          const n = b.sendMany(pk.buf, pk.offs, pk.lens, ps.length, to, 0);
          const s = b.stats();
          check(n === ps.length, `sent ${n} of ${ps.length}: ${JSON.stringify(s)}`);
          check(
            s.txPackets - before.txPackets === ps.length && s.txErrors === 0,
            `stats ${JSON.stringify(s)}`,
          );
          check(s.gsoMessages > 0, `no GSO message: ${JSON.stringify(s)}`);
          if (f.smallMtu) {
            check(s.gsoFallbacks === 1, `expected one fallback: ${JSON.stringify(s)}`);
            check(b.offloads().gsoLimit === 1399, `gsoLimit ${b.offloads().gsoLimit}`);
          } else {
            check(s.gsoFallbacks === 0, `fallback: ${JSON.stringify(s)}`);
          }
          return `gsoMessages ${s.gsoMessages} gsoSegments ${s.gsoSegments} gsoFallbacks ${s.gsoFallbacks}`;
        } finally {
          b.close();
        }
      }),
    );
  }
  return out;
}
