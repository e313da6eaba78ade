/**
 * Fail closed (issue 14, docs/IDENTITY.md "What identity a packet gets"): the flow
 * parser finds the transport header behind IPv6 extension headers and marks fragments;
 * the daemon's ConnIdentity never promotes a TCP/UDP flow without a proven owner to the
 * host under `users.unmapped: deny`; users.asHost names the OS users that act as the host.
 */
import { describe, expect, it } from "vitest";
import {
  ConnTable,
  FRAG_FIRST,
  FRAG_LATER,
  FRAG_NONE,
  FlowScratch,
  parseFlow,
} from "../../src/conn/conns.js";
import type { IdentityLookup } from "../../src/net/identity.js";
import { FakeIdentityLookup } from "../fakes/identity.js";
import { PlatformError } from "../../src/errors.js";
import { DaemonIdentity, resolveAsHost, type OsAccounts } from "../../src/daemon/identity.js";
import { nullLogger } from "../../src/log.js";
import { ipv4, ipv6 } from "../inproc/harness.js";

const A6 = Buffer.from("fd770000000000000000000000000001", "hex");
const B6 = Buffer.from("fd770000000000000000000000000002", "hex");

function udpHeader(sport: number, dport: number, body = "x"): Buffer {
  const p = Buffer.alloc(8 + body.length);
  p.writeUInt16BE(sport, 0);
  p.writeUInt16BE(dport, 2);
  p.writeUInt16BE(p.length, 4);
  p.write(body, 8);
  return p;
}
/** An 8-byte option header (hop-by-hop / destination options: PadN) with next header `next`. */
function optHeader(next: number): Buffer {
  return Buffer.from([next, 0, 1, 4, 0, 0, 0, 0]);
}
function fragHeader(next: number, offset8: number, more: boolean, id: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = next;
  b.writeUInt16BE((offset8 << 3) | (more ? 1 : 0), 2);
  b.writeUInt32BE(id, 4);
  return b;
}
function parse(pkt: Buffer): FlowScratch | null {
  const f = new FlowScratch();
  return parseFlow(pkt, 0, pkt.length, f) ? f : null;
}

describe("parseFlow: IPv6 extension headers and fragments", () => {
  it("finds UDP behind hop-by-hop, destination options and routing headers", () => {
    const routing = Buffer.from([60, 0, 0, 0, 0, 0, 0, 0]); // type 0, segments left 0, next: dest opts
    const pkt = ipv6(A6, B6, Buffer.concat([optHeader(43), routing, optHeader(17), udpHeader(4000, 53)]), 0);
    const f = parse(pkt)!;
    expect(f).toMatchObject({ proto: 17, sport: 4000, dport: 53, frag: FRAG_NONE, l4Off: 40 + 24 });
  });

  it("a first fragment keeps its ports, a later one has none, an atomic fragment is whole", () => {
    const first = parse(
      ipv6(A6, B6, Buffer.concat([fragHeader(17, 0, true, 0xabcdef01), udpHeader(4000, 53)]), 44),
    )!;
    expect(first).toMatchObject({ proto: 17, sport: 4000, dport: 53, frag: FRAG_FIRST, fragId: 0xabcdef01 });
    const later = parse(
      ipv6(A6, B6, Buffer.concat([fragHeader(17, 3, false, 0xabcdef01), udpHeader(9, 9)]), 44),
    )!;
    expect(later).toMatchObject({ proto: 17, sport: 0, dport: 0, frag: FRAG_LATER, fragId: 0xabcdef01 });
    const atomic = parse(ipv6(A6, B6, Buffer.concat([fragHeader(6, 0, false, 7), udpHeader(4000, 80)]), 44))!;
    expect(atomic).toMatchObject({ proto: 6, sport: 4000, dport: 80, frag: FRAG_NONE });
  });

  it("a later fragment whose next header is an extension header is tied to its first fragment's connection", () => {
    // destination options in the fragmentable part: the first fragment walks through them to
    // UDP; a later fragment's fragment header names them (60), not UDP
    const first = ipv6(
      A6,
      B6,
      Buffer.concat([fragHeader(60, 0, true, 77), optHeader(17), udpHeader(4000, 53)]),
      44,
    );
    const later = ipv6(A6, B6, Buffer.concat([fragHeader(60, 3, false, 77), Buffer.from("rest of it")]), 44);
    const other = ipv6(A6, B6, Buffer.concat([fragHeader(60, 3, false, 78), Buffer.from("not ours")]), 44);
    const ct = new ConnTable();
    const f = parse(first)!;
    expect(f).toMatchObject({ proto: 17, sport: 4000, frag: FRAG_FIRST });
    const c = ct.openMine(first, f, 0)!;
    ct.tieFragment(first, f, c, 0);
    const g = parse(later)!;
    expect(g).toMatchObject({ proto: 60, frag: FRAG_LATER, fragId: 77 });
    expect(ct.fragmentConn(later, g, 1000)).toBe(c);
    expect(ct.fragmentConn(later, g, 6000)).toBeNull(); // tied for FRAG_TIE_MS only
    expect(ct.fragmentConn(other, parse(other)!, 1000)).toBeNull();
  });

  it("refuses a chain that runs past the packet or is too long", () => {
    const cut = ipv6(A6, B6, Buffer.from([17, 5, 0, 0, 0, 0, 0, 0]), 0); // claims 48 bytes
    expect(parse(cut)).toBeNull();
    const chain = Buffer.concat([...Array.from({ length: 9 }, () => optHeader(60)), udpHeader(1, 2)]);
    expect(parse(ipv6(A6, B6, chain, 60))).toBeNull();
  });

  it("IPv4: first fragment (MF, offset 0) keeps ports; a later fragment has none", () => {
    const first = ipv4("10.1.0.1", "10.1.0.2", udpHeader(4000, 53));
    first.writeUInt16BE(0x1234, 4);
    first.writeUInt16BE(0x2000, 6); // MF
    expect(parse(first)).toMatchObject({ proto: 17, sport: 4000, frag: FRAG_FIRST, fragId: 0x1234 });
    const later = ipv4("10.1.0.1", "10.1.0.2", udpHeader(4000, 53));
    later.writeUInt16BE(0x1234, 4);
    later.writeUInt16BE(185, 6); // offset 1480 bytes, last
    expect(parse(later)).toMatchObject({ proto: 17, sport: 0, dport: 0, frag: FRAG_LATER, fragId: 0x1234 });
  });
});

function flow4(proto: number, sport: number): { f: FlowScratch; buf: Buffer } {
  const buf = ipv4("10.1.0.1", "10.1.0.2", udpHeader(sport, 80), proto);
  const f = new FlowScratch();
  expect(parseFlow(buf, 0, buf.length, f)).toBe(true);
  return { f, buf };
}

describe("DaemonIdentity fails closed", () => {
  const socks = new FakeIdentityLookup();
  const rootSock = socks.addSocket({ proto: 17, family: 4, local: "", lport: 1001, uid: 0 });
  socks.addSocket({ proto: 17, family: 4, local: "", lport: 1002, uid: 2000 });
  socks.addSocket({ proto: 17, family: 4, local: "", lport: 1003, uid: 33 });
  const acc: OsAccounts = {
    users: [
      { name: "root", uid: 0, gid: 0 },
      { name: "www-data", uid: 33, gid: 33 },
      { name: "carol", uid: 2000, gid: 2000 },
      { name: "dave", uid: 2001, gid: 2001 },
    ],
    groups: [
      { name: "www-data", gid: 33, members: [] },
      { name: "svc", gid: 900, members: ["dave"] },
      { name: "carol", gid: 2000, members: [] },
    ],
  };

  it("under deny: no socket, a lookup error, an unmapped user, SCTP / UDP-Lite are refused", () => {
    const d = new DaemonIdentity(socks, "deny", nullLogger);
    d.setStore(null, "deny", 0, undefined, [], acc);
    for (const [proto, port] of [
      [17, 4444], // no socket
      [6, 4444],
      [17, 1002], // uid 2000, no entry
      [132, 1002], // SCTP: no lookup
      [136, 1002], // UDP-Lite: no lookup
    ] as const) {
      const x = flow4(proto, port);
      expect(d.identify(x.f, x.buf), `proto ${proto} port ${port}`).toBe("deny");
      if (port !== 1002) expect(d.lastSocket).toBe(0);
    }
    const failing: IdentityLookup = {
      lookup: () => {
        throw new PlatformError("ETIMEDOUT", "sock_diag timed out");
      },
    };
    const e = new DaemonIdentity(failing, "deny", nullLogger);
    e.setStore(null, "deny", 0, undefined, [], acc);
    const x = flow4(6, 1001);
    expect(e.identify(x.f, x.buf)).toBe("deny");
    expect(e.stats).toMatchObject({ noOwner: 1, lookupErrors: 1, host: 0 });
    expect(d.stats.noOwner).toBe(4);
  });

  it("root, asHost users and ICMP are the host; lastSocket names the socket", () => {
    const d = new DaemonIdentity(socks, "deny", nullLogger);
    d.setStore(null, "deny", 0, undefined, ["www-data"], acc);
    const r = flow4(17, 1001);
    expect(d.identify(r.f, r.buf)).toBeNull();
    expect(d.lastSocket).toBe(rootSock);
    const w = flow4(17, 1003);
    expect(d.identify(w.f, w.buf)).toBeNull(); // www-data: users.asHost
    const icmp = flow4(1, 0);
    expect(d.identify(icmp.f, icmp.buf)).toBeNull();
    const c = flow4(17, 1002);
    expect(d.identify(c.f, c.buf)).toBe("deny");
  });

  it("a flow without a socket from a forwarded (subnet) source is the host; from an own address: unmapped", () => {
    const d = new DaemonIdentity(socks, "deny", nullLogger);
    d.setStore(null, "deny", 0, undefined, [], acc);
    d.setOwnAddresses("10.1.0.1", "fd77::1");
    const own = flow4(17, 4444); // source 10.1.0.1
    expect(d.identify(own.f, own.buf)).toBe("deny");
    const buf = ipv4("192.168.5.7", "10.1.0.2", udpHeader(4444, 80));
    const f = new FlowScratch();
    parseFlow(buf, 0, buf.length, f);
    expect(d.identify(f, buf)).toBeNull();
    expect(d.stats).toMatchObject({ forwarded: 1, noOwner: 1 });
  });

  it("under unmapped: host the same flows run as the host (what deny prevents)", () => {
    const d = new DaemonIdentity(socks, "host", nullLogger);
    d.setStore(null, "host", 0, undefined, [], acc);
    const x = flow4(17, 4444);
    expect(d.identify(x.f, x.buf)).toBeNull();
    expect(d.stats.noOwner).toBe(1);
  });

  it("resolveAsHost: users, groups (primary and listed members), numbers, unknown names", () => {
    expect([...resolveAsHost(["www-data"], acc).uids]).toEqual([33]);
    expect([...resolveAsHost(["@svc"], acc).uids]).toEqual([2001]);
    expect([...resolveAsHost(["group:carol"], acc).uids]).toEqual([2000]);
    expect([...resolveAsHost(["2001", "root"], acc).uids]).toEqual([2001]); // root is the host anyway
    expect(resolveAsHost(["nobody-here", "@nogroup"], acc)).toEqual({
      uids: new Set(),
      unknown: ["nobody-here", "@nogroup"],
    });
  });
});
