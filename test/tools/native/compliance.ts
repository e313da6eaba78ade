/**
 * Compliance suites for TunDevice and UdpBind: one test body per case, run against the
 * in-memory fakes (in the vitest process) and against the Linux implementations (in a
 * child process inside a network namespace, see child.ts). A harness gives each case a
 * fresh device and a "kernel side" to talk to it.
 *
 * Cases throw (plain Error via `check`) on failure; runCases reports {name, ok, error}.
 */
import { PlatformError } from "../../../src/errors.js";
import type { PacketBatch, TunDevice, TunOptions } from "../../../src/net/tun.js";
import { FakeTun } from "../../fakes/tun.js";
import {
  ADDR_LEN,
  addrKey,
  decodeAddr,
  encodeAddr,
  type UdpBatch,
  type UdpBind,
  type UdpBindOptions,
} from "../../../src/net/udp.js";
import { FakeNetwork } from "../../fakes/udp.js";

// ---------- tiny assertion and timing helpers ----------

export function check(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}

function eq<T>(actual: T, expected: T, what: string): void {
  if (actual !== expected) throw new Error(`${what}: expected ${String(expected)}, got ${String(actual)}`);
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timeout after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function expectPlatformError(fn: () => unknown, codes: string[], what: string): void {
  try {
    fn();
  } catch (e) {
    check(e instanceof PlatformError, `${what}: expected PlatformError, got ${String(e)}`);
    check(codes.includes(e.code), `${what}: expected code ${codes.join("|")}, got ${e.code} (${e.message})`);
    return;
  }
  throw new Error(`${what}: did not throw`);
}

// ---------- IP/UDP packets with checksums (what the kernel accepts and emits) ----------

function sum16(buf: Buffer, off: number, len: number, acc: number): number {
  for (let i = 0; i + 1 < len; i += 2) acc += buf.readUInt16BE(off + i);
  if (len & 1) acc += buf[off + len - 1]! << 8;
  return acc;
}

function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}

function ipBytes(ip: string): Buffer {
  const r = encodeAddr(ip, 0);
  return Buffer.from(r.subarray(4, r[0] === 4 ? 8 : 20));
}

/** An IPv4 or IPv6 packet carrying one UDP datagram, all checksums set. */
export function udpPacket(src: string, dst: string, sport: number, dport: number, payload: Buffer): Buffer {
  const s = ipBytes(src);
  const d = ipBytes(dst);
  const v6 = s.length === 16;
  const ipLen = v6 ? 40 : 20;
  const udpLen = 8 + payload.length;
  const p = Buffer.alloc(ipLen + udpLen);
  if (v6) {
    p.writeUInt32BE(0x60000000, 0);
    p.writeUInt16BE(udpLen, 4);
    p[6] = 17;
    p[7] = 64;
    s.copy(p, 8);
    d.copy(p, 24);
  } else {
    p[0] = 0x45;
    p.writeUInt16BE(p.length, 2);
    p.writeUInt16BE(0x4000, 6); // DF
    p[8] = 64;
    p[9] = 17;
    s.copy(p, 12);
    d.copy(p, 16);
    p.writeUInt16BE(~fold(sum16(p, 0, 20, 0)) & 0xffff, 10);
  }
  p.writeUInt16BE(sport, ipLen);
  p.writeUInt16BE(dport, ipLen + 2);
  p.writeUInt16BE(udpLen, ipLen + 4);
  payload.copy(p, ipLen + 8);
  let acc = sum16(s, 0, s.length, 0) + sum16(d, 0, d.length, 0) + 17 + udpLen;
  acc = sum16(p, ipLen, udpLen, acc);
  const c = ~fold(acc) & 0xffff;
  p.writeUInt16BE(c === 0 ? 0xffff : c, ipLen + 6);
  return p;
}

export interface ParsedUdp {
  family: 4 | 6;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
  checksumsOk: boolean;
}

function ipString(b: Buffer): string {
  const rec = Buffer.alloc(ADDR_LEN);
  rec[0] = b.length === 4 ? 4 : 6;
  b.copy(rec, 4);
  return decodeAddr(rec, 0).ip;
}

/** Parse an IP packet holding UDP (no extension headers); null for anything else. */
export function parseUdp(buf: Buffer, off: number, len: number): ParsedUdp | null {
  const p = buf.subarray(off, off + len);
  if (p.length < 1) return null;
  const v = p[0]! >> 4;
  let ipLen: number, s: Buffer, d: Buffer, ipOk: boolean;
  if (v === 4) {
    if (p.length < 28 || p[9] !== 17) return null;
    ipLen = (p[0]! & 15) * 4;
    s = p.subarray(12, 16);
    d = p.subarray(16, 20);
    ipOk = fold(sum16(p, 0, ipLen, 0)) === 0xffff && p.readUInt16BE(2) === p.length;
  } else if (v === 6) {
    if (p.length < 48 || p[6] !== 17) return null;
    ipLen = 40;
    s = p.subarray(8, 24);
    d = p.subarray(24, 40);
    ipOk = p.readUInt16BE(4) === p.length - 40;
  } else {
    return null;
  }
  const udpLen = p.readUInt16BE(ipLen + 4);
  if (udpLen < 8 || ipLen + udpLen > p.length) return null;
  let acc = sum16(s, 0, s.length, 0) + sum16(d, 0, d.length, 0) + 17 + udpLen;
  acc = sum16(p, ipLen, udpLen, acc);
  const udpOk = fold(acc) === 0xffff || (v === 4 && p.readUInt16BE(ipLen + 6) === 0);
  return {
    family: v === 4 ? 4 : 6,
    src: ipString(Buffer.from(s)),
    dst: ipString(Buffer.from(d)),
    sport: p.readUInt16BE(ipLen),
    dport: p.readUInt16BE(ipLen + 2),
    payload: Buffer.from(p.subarray(ipLen + 8, ipLen + udpLen)),
    checksumsOk: ipOk && udpOk,
  };
}

// ---------- harness interfaces ----------

export interface Case<H> {
  name: string;
  run(h: H): Promise<void>;
}

export interface CaseResult {
  name: string;
  ok: boolean;
  error?: string;
  /** measurements worth printing (counters) */
  info?: string;
}

export async function runCases<H extends { close(): Promise<void> | void }>(
  cases: Case<H>[],
  make: () => Promise<H>,
): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  for (const c of cases) {
    let h: H | undefined;
    try {
      h = await make();
      await c.run(h);
      out.push({ name: c.name, ok: true });
    } catch (e) {
      out.push({ name: c.name, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    } finally {
      try {
        await h?.close();
      } catch (e) {
        out.push({ name: `${c.name} (cleanup)`, ok: false, error: String(e) });
      }
    }
  }
  return out;
}

export interface KernelListener {
  readonly port: number;
  readonly received: { ip: string; port: number; payload: Buffer }[];
  close(): void;
}

export interface TunHarness {
  /** a started-by-the-case device; address v4.local/24 and v6.local/64 assigned, up */
  dev: TunDevice;
  v4: { local: string; peer: string };
  v6: { local: string; peer: string };
  /** the kernel sends UDP datagrams from local to peer:dstPort; they leave through dev */
  kernelSend(family: 4 | 6, dstPort: number, payloads: Buffer[]): Promise<void>;
  /** a kernel UDP socket on local:<port>, collecting what arrives */
  kernelListen(family: 4 | 6): Promise<KernelListener>;
  /** open another device with these options (for argument checks); caller closes */
  open(opts: TunOptions): TunDevice;
  close(): Promise<void> | void;
}

export interface UdpHarness {
  bind(opts: UdpBindOptions): UdpBind;
  v4: string;
  v6: string;
  /** whether b sends with UDP GSO and receives with UDP GRO (always false for the fake) */
  offloads(b: UdpBind): { gso: boolean; gro: boolean };
  close(): Promise<void> | void;
}

// ---------- TUN cases ----------

interface Seen {
  batches: number[];
  pkts: ParsedUdp[];
  geometryOk: boolean;
}

function collectTun(dev: TunDevice, dport: number): Seen {
  const seen: Seen = { batches: [], pkts: [], geometryOk: true };
  dev.start((b: PacketBatch) => {
    seen.batches.push(b.count);
    if (b.buf.length < b.count * b.slotSize || b.lens.length < b.count) seen.geometryOk = false;
    for (let i = 0; i < b.count; i++) {
      const u = parseUdp(b.buf, i * b.slotSize + b.headroom, b.lens[i]!);
      if (u && u.dport === dport) seen.pkts.push(u); // the kernel also emits IPv6 RS/MLD: ignore those
    }
  });
  return seen;
}

export function payloads(n: number, size: (i: number) => number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const p = Buffer.alloc(size(i));
    p.writeUInt32BE(i, 0);
    for (let j = 4; j < p.length; j++) p[j] = (i + j) & 0xff;
    out.push(p);
  }
  return out;
}

/** Pack packets into one buffer with offsets (as the tunnel does before writeMany/sendMany). */
export function pack(pkts: Buffer[], gap = 16): { buf: Buffer; offs: Uint32Array; lens: Uint32Array } {
  const offs = new Uint32Array(pkts.length);
  const lens = new Uint32Array(pkts.length);
  let total = 0;
  for (const p of pkts) total += p.length + gap;
  const buf = Buffer.alloc(total);
  let o = 0;
  pkts.forEach((p, i) => {
    o += gap;
    p.copy(buf, o);
    offs[i] = o;
    lens[i] = p.length;
    o += p.length;
  });
  return { buf, offs, lens };
}

export const tunCases: Case<TunHarness>[] = [
  {
    name: "has a name and zero stats before start",
    async run(h) {
      check(typeof h.dev.name === "string" && h.dev.name.length > 0, "name");
      const s = h.dev.stats();
      for (const k of Object.keys(s) as (keyof typeof s)[]) eq(s[k], 0, `stats.${k}`);
    },
  },
  {
    name: "IPv4 packet from the kernel arrives in a batch at slot*i + headroom",
    async run(h) {
      let layout = "";
      h.dev.start((b) => {
        eq(b.slotSize, 2048, "slotSize");
        eq(b.headroom, 64, "headroom");
        for (let i = 0; i < b.count; i++) {
          const off = i * b.slotSize + b.headroom;
          const u = parseUdp(b.buf, off, b.lens[i]!);
          if (u && u.dport === 5000) {
            layout = `${b.buf[off]! >> 4} ${b.buf[off + 9]} ${u.dst} ${u.src} ${u.payload.toString()} ${u.checksumsOk} ${b.lens[i]}`;
            b.buf[off] = 0; // the receiver may modify the slab in place
          }
        }
      });
      await h.kernelSend(4, 5000, [Buffer.from("hello tun")]);
      await waitFor(() => layout !== "", 2000, "the IPv4 datagram on the device");
      eq(layout, `4 17 ${h.v4.peer} ${h.v4.local} hello tun true ${20 + 8 + 9}`, "packet");
      const s = h.dev.stats();
      check(s.rxPackets >= 1 && s.rxBytes >= 37, `rx stats ${JSON.stringify(s)}`);
    },
  },
  {
    name: "200 datagrams from the kernel arrive in bounded batches, in order, with their lengths",
    async run(h) {
      const seen = collectTun(h.dev, 5001);
      const ps = payloads(200, (i) => 10 + i);
      await h.kernelSend(4, 5001, ps);
      await waitFor(() => seen.pkts.length >= 200, 3000, `200 packets (got ${seen.pkts.length})`);
      check(seen.geometryOk, "slab smaller than count*slotSize");
      check(Math.max(...seen.batches) > 1, `never more than one packet per batch: ${seen.batches.join(",")}`);
      check(Math.max(...seen.batches) <= 64, "batch larger than 64");
      seen.pkts.forEach((u, i) => {
        check(u.payload.equals(ps[i]!), `packet ${i} payload`);
        check(u.checksumsOk, `packet ${i} checksums`);
      });
    },
  },
  {
    name: "IPv4 writeMany delivers packets to the kernel",
    async run(h) {
      const l = await h.kernelListen(4);
      const ps = payloads(10, (i) => 100 + i);
      const pk = pack(ps.map((p) => udpPacket(h.v4.peer, h.v4.local, 7000, l.port, p)));
      eq(h.dev.writeMany(pk.buf, pk.offs, pk.lens, 10), 10, "written");
      await waitFor(
        () => l.received.length >= 10,
        2000,
        `10 datagrams at the kernel socket (got ${l.received.length})`,
      );
      l.received.forEach((r, i) => {
        check(r.payload.equals(ps[i]!), `datagram ${i}`);
        eq(`${r.ip}:${r.port}`, `${h.v4.peer}:7000`, "source");
      });
      const s = h.dev.stats();
      eq(s.txPackets, 10, "txPackets");
      eq(
        s.txBytes,
        pk.lens.reduce((a, b) => a + b, 0),
        "txBytes",
      );
      l.close();
    },
  },
  {
    name: "IPv6 both directions",
    async run(h) {
      const seen = collectTun(h.dev, 5002);
      await h.kernelSend(6, 5002, [Buffer.from("six")]);
      await waitFor(() => seen.pkts.length >= 1, 2000, "the IPv6 datagram on the device");
      const u = seen.pkts[0]!;
      eq(
        `${u.family} ${u.src} ${u.dst} ${u.payload.toString()} ${u.checksumsOk}`,
        `6 ${h.v6.local} ${h.v6.peer} six true`,
        "packet",
      );
      const l = await h.kernelListen(6);
      const pkt = udpPacket(h.v6.peer, h.v6.local, 7001, l.port, Buffer.from("reply"));
      check(h.dev.write(pkt, 0, pkt.length), "write returned false");
      await waitFor(() => l.received.length >= 1, 2000, "the IPv6 reply at the kernel socket");
      eq(
        `${l.received[0]!.ip} ${l.received[0]!.port} ${l.received[0]!.payload.toString()}`,
        `${h.v6.peer} 7001 reply`,
        "reply",
      );
      l.close();
    },
  },
  {
    name: "writing a non-IP packet counts an error and does not throw",
    async run(h) {
      const junk = Buffer.alloc(40);
      eq(h.dev.write(junk, 0, 40), false, "write of junk");
      const s = h.dev.stats();
      eq(s.txErrors + s.txDropped, 1, "txErrors+txDropped");
      eq(s.txPackets, 0, "txPackets");
    },
  },
  {
    name: "close is idempotent; writes after close return 0; start after close throws EBADF",
    async run(h) {
      h.dev.start(() => {});
      h.dev.close();
      h.dev.close();
      const pkt = udpPacket(h.v4.peer, h.v4.local, 1, 2, Buffer.from("x"));
      eq(h.dev.write(pkt, 0, pkt.length), false, "write after close");
      expectPlatformError(() => h.dev.start(() => {}), ["EBADF"], "start after close");
    },
  },
  {
    name: "start twice throws EBUSY; bad options throw PlatformError EINVAL",
    async run(h) {
      h.dev.start(() => {});
      expectPlatformError(() => h.dev.start(() => {}), ["EBUSY"], "second start");
      expectPlatformError(() => h.open({ name: "bad name" }), ["EINVAL"], "name with a space");
      expectPlatformError(() => h.open({ name: "x".repeat(16) }), ["EINVAL"], "16-byte name");
      expectPlatformError(() => h.open({ headroom: 4096 }), ["EINVAL"], "headroom >= slotSize");
      expectPlatformError(() => h.open({ batch: 0 }), ["EINVAL"], "batch 0");
    },
  },
];

// ---------- UDP cases ----------

interface Got {
  batches: number[];
  pkts: { data: Buffer; from: string; family: number }[];
  geometry: string;
}

function collectUdp(b: UdpBind): Got {
  const got: Got = { batches: [], pkts: [], geometry: "" };
  b.start((x: UdpBatch) => {
    got.batches.push(x.count);
    got.geometry = `${x.slotSize}/${x.headroom}`;
    check(x.buf.length >= x.count * x.slotSize && x.addrs.length >= x.count * ADDR_LEN, "slab geometry");
    for (let i = 0; i < x.count; i++) {
      const off = i * x.slotSize + x.headroom;
      got.pkts.push({
        data: Buffer.from(x.buf.subarray(off, off + x.lens[i]!)),
        from: addrKey(x.addrs, i * ADDR_LEN),
        family: x.addrs[i * ADDR_LEN]!,
      });
    }
  });
  return got;
}

export const udpCases: Case<UdpHarness>[] = [
  {
    name: "bind to port 0 picks a port; localAddress is the bound address",
    async run(h) {
      const b = h.bind({ address: h.v4, port: 0 });
      check(b.localPort > 0 && b.localPort < 65536, `localPort ${b.localPort}`);
      eq(b.localAddress, h.v4, "localAddress");
      const z = b.stats();
      eq(z.rxPackets + z.txPackets + z.rxErrors + z.txErrors, 0, "zero stats");
    },
  },
  {
    name: "200 datagrams arrive in bounded batches with lengths and source addresses",
    async run(h) {
      const rx = h.bind({ address: h.v4, port: 0 });
      const tx = h.bind({ address: h.v4, port: 0 });
      const got = collectUdp(rx);
      const ps = payloads(200, (i) => 4 + i);
      const pk = pack(ps);
      const to = encodeAddr(h.v4, rx.localPort);
      eq(tx.sendMany(pk.buf, pk.offs, pk.lens, 200, to, 0), 200, "sent");
      await waitFor(() => got.pkts.length >= 200, 3000, `200 datagrams (got ${got.pkts.length})`);
      check(Math.max(...got.batches) > 1, `no batch above 1: ${got.batches.join(",")}`);
      check(Math.max(...got.batches) <= 64, "batch above 64");
      eq(got.geometry, "2048/64", "slotSize/headroom");
      got.pkts.forEach((p, i) => {
        check(p.data.equals(ps[i]!), `datagram ${i} (len ${p.data.length})`);
        eq(p.from, `${h.v4}:${tx.localPort}`, `source of ${i}`);
        eq(p.family, 4, "family");
      });
      const rs = rx.stats();
      const ts = tx.stats();
      eq(rs.rxPackets, 200, "rxPackets");
      eq(
        rs.rxBytes,
        pk.lens.reduce((a, b) => a + b, 0),
        "rxBytes",
      );
      eq(ts.txPackets, 200, "txPackets");
      eq(ts.txBytes, rs.rxBytes, "txBytes");
    },
  },
  {
    name: "sendMany of 100 x 1400 bytes and send() reach another bind in full",
    async run(h) {
      const rx = h.bind({ address: h.v4, port: 0 });
      const tx = h.bind({ address: "0.0.0.0", port: 0 });
      const got = collectUdp(rx);
      const ps = payloads(100, () => 1400);
      const pk = pack(ps, 64);
      const rec = Buffer.alloc(64);
      encodeAddr(h.v4, rx.localPort, rec, 20); // a record inside a larger buffer
      eq(tx.sendMany(pk.buf, pk.offs, pk.lens, 100, rec, 20), 100, "sendMany");
      eq(tx.send(Buffer.from("last one"), 0, 8, rec, 20), true, "send");
      await waitFor(() => got.pkts.length >= 101, 3000, `101 datagrams (got ${got.pkts.length})`);
      ps.forEach((p, i) => check(got.pkts[i]!.data.equals(p), `datagram ${i}`));
      eq(got.pkts[100]!.data.toString(), "last one", "send()");
      eq(got.pkts[0]!.from, `127.0.0.1:${tx.localPort}`, "source of a wildcard sender");
    },
  },
  {
    name: "IPv6 loopback",
    async run(h) {
      const rx = h.bind({ address: h.v6, port: 0 });
      const tx = h.bind({ address: h.v6, port: 0 });
      eq(rx.localAddress, "::1", "localAddress");
      const got = collectUdp(rx);
      const pk = pack(payloads(20, (i) => 30 + i));
      eq(tx.sendMany(pk.buf, pk.offs, pk.lens, 20, encodeAddr(h.v6, rx.localPort), 0), 20, "sent");
      await waitFor(() => got.pkts.length >= 20, 2000, "20 datagrams");
      eq(got.pkts[0]!.from, `[::1]:${tx.localPort}`, "source key");
      eq(got.pkts[0]!.family, 6, "family");
      eq(got.pkts[19]!.data.length, 49, "length");
    },
  },
  {
    name: "dual stack: '::' receives IPv4 as family 4, sends to IPv4 records, and still does IPv6",
    async run(h) {
      const d = h.bind({ address: "::", port: 0 });
      const v4 = h.bind({ address: h.v4, port: 0 });
      const v6 = h.bind({ address: h.v6, port: 0 });
      const gd = collectUdp(d);
      const g4 = collectUdp(v4);
      const msg = Buffer.from("dual");
      eq(v4.send(msg, 0, 4, encodeAddr(h.v4, d.localPort), 0), true, "v4 -> ::");
      eq(v6.send(msg, 0, 4, encodeAddr(h.v6, d.localPort), 0), true, "v6 -> ::");
      await waitFor(() => gd.pkts.length >= 2, 2000, "2 datagrams at '::'");
      const froms = gd.pkts.map((p) => `${p.family} ${p.from}`).sort();
      eq(froms.join(","), `4 ${h.v4}:${v4.localPort},6 [::1]:${v6.localPort}`, "sources");
      eq(d.send(msg, 0, 4, encodeAddr(h.v4, v4.localPort), 0), true, ":: -> v4 (mapped)");
      await waitFor(() => g4.pkts.length >= 1, 2000, "the reply at the IPv4 bind");
      eq(`${g4.pkts[0]!.family} ${g4.pkts[0]!.from}`, `4 ${h.v4}:${d.localPort}`, "reply source");
      const mapped = encodeAddr("::ffff:127.0.0.1", 9);
      eq(decodeAddr(mapped, 0).family, 4, "::ffff:127.0.0.1 encodes as family 4");
    },
  },
  {
    name: "IPv6 destination on an IPv4 socket is counted as an error, not thrown",
    async run(h) {
      const b = h.bind({ address: h.v4, port: 0 });
      const pk = pack(payloads(3, () => 10));
      eq(b.sendMany(pk.buf, pk.offs, pk.lens, 3, encodeAddr("::1", 9), 0), 0, "sent");
      eq(b.stats().txErrors, 3, "txErrors");
    },
  },
  {
    name: "a datagram larger than its slot is reported with length 0 and counted in rxErrors",
    async run(h) {
      const rx = h.bind({ address: h.v4, port: 0, slotSize: 512, headroom: 32, batch: 8 });
      const tx = h.bind({ address: h.v4, port: 0 });
      const got = collectUdp(rx);
      const big = Buffer.alloc(3000, 7);
      const to = encodeAddr(h.v4, rx.localPort);
      eq(tx.send(big, 0, 3000, to, 0), true, "send big");
      const pk = pack(payloads(20, () => 480)); // exactly slot - headroom
      eq(tx.sendMany(pk.buf, pk.offs, pk.lens, 20, to, 0), 20, "send 20");
      await waitFor(() => got.pkts.length >= 21, 2000, "21 datagrams");
      eq(got.pkts[0]!.data.length, 0, "truncated length");
      eq(got.pkts[20]!.data.length, 480, "full-slot length");
      eq(got.geometry, "512/32", "geometry");
      check(Math.max(...got.batches) <= 8, "batch above 8");
      const s = rx.stats();
      eq(`${s.rxErrors} ${s.rxPackets}`, "1 20", "rxErrors rxPackets");
    },
  },
  {
    name: "a port in use gives EADDRINUSE; after close() the port can be bound again",
    async run(h) {
      const a = h.bind({ address: h.v4, port: 0 });
      expectPlatformError(() => h.bind({ address: h.v4, port: a.localPort }), ["EADDRINUSE"], "same port");
      expectPlatformError(
        () => h.bind({ address: "::", port: a.localPort }),
        ["EADDRINUSE"],
        "dual stack over it",
      );
      a.close();
      const b = h.bind({ address: h.v4, port: a.localPort });
      eq(b.localPort, a.localPort, "rebound port");
    },
  },
  {
    name: "bad arguments throw PlatformError EINVAL",
    async run(h) {
      expectPlatformError(() => h.bind({ address: "not-an-ip", port: 0 }), ["EINVAL"], "address");
      expectPlatformError(() => h.bind({ address: "10.0.0.256", port: 0 }), ["EINVAL"], "address octet");
      expectPlatformError(() => h.bind({ address: h.v4, port: 70000 }), ["EINVAL"], "port 70000");
      expectPlatformError(() => h.bind({ address: h.v4, port: -1 }), ["EINVAL"], "port -1");
      expectPlatformError(() => h.bind({ address: h.v4, port: 0, batch: 1000 }), ["EINVAL"], "batch 1000");
      expectPlatformError(() => encodeAddr("::1%lo", 1), ["EINVAL"], "zone id");
    },
  },
  ...(
    [
      ["IPv4", "v4", "v4"],
      ["IPv6", "v6", "v6"],
      ["dual stack ('::' to an IPv4 record)", "::", "v4"],
    ] as const
  ).map(([what, from, to]): Case<UdpHarness> => ({
    name: `${what}: a run of 64 x 1400 bytes plus a short one arrives as 65 datagrams in order (GSO/GRO)`,
    async run(h) {
      const dst = to === "v4" ? h.v4 : h.v6;
      const rx = h.bind({ address: dst, port: 0 });
      const tx = h.bind({ address: from === "::" ? "::" : from === "v4" ? h.v4 : h.v6, port: 0 });
      const got = collectUdp(rx);
      const ps = payloads(65, (i) => (i < 64 ? 1400 : 333));
      const pk = pack(ps, 64); // packets in separate places, as in the tunnel's slab
      eq(tx.sendMany(pk.buf, pk.offs, pk.lens, 65, encodeAddr(dst, rx.localPort), 0), 65, "sent");
      await waitFor(() => got.pkts.length >= 65, 3000, `65 datagrams (got ${got.pkts.length})`);
      await new Promise((r) => setTimeout(r, 20)); // nothing extra may follow
      eq(got.pkts.length, 65, "datagrams");
      const src = to === "v4" ? `${h.v4}:${tx.localPort}` : `[${h.v6}]:${tx.localPort}`;
      got.pkts.forEach((p, i) => {
        eq(p.data.length, ps[i]!.length, `length of ${i}`);
        check(p.data.equals(ps[i]!), `bytes of datagram ${i}`);
        eq(p.from, src, `source of ${i}`);
        eq(p.family, to === "v4" ? 4 : 6, `family of ${i}`);
      });
      check(Math.max(...got.batches) <= 64, "batch above 64");
      const ts = tx.stats();
      const rs = rx.stats();
      const bytes = 64 * 1400 + 333;
      eq(`${ts.txPackets} ${ts.txBytes} ${ts.txErrors}`, `65 ${bytes} 0`, "tx packets bytes errors");
      eq(`${rs.rxPackets} ${rs.rxBytes} ${rs.rxErrors}`, `65 ${bytes} 0`, "rx packets bytes errors");
      if (h.offloads(tx).gso) {
        // 65000 bytes per message: 46 + 18 x 1400 + 333 -> two messages
        eq(`${ts.gsoMessages} ${ts.gsoSegments}`, "2 65", "gsoMessages gsoSegments");
      } else {
        eq(ts.gsoMessages + ts.gsoSegments, 0, "GSO stats without GSO");
      }
      if (h.offloads(rx).gro && h.offloads(tx).gso) {
        // loopback hands a GSO message to a UDP_GRO socket as it is
        check(rs.rxGroSegments > rs.rxGroMessages && rs.rxGroMessages > 0, `GRO stats ${JSON.stringify(rs)}`);
      }
    },
  })),
  {
    name: "coalesced datagrams keep their boundaries when a batch cannot hold them all",
    async run(h) {
      // batch 8 and runs of up to 46 equal packets: one coalesced message spans many batches
      const rx = h.bind({ address: h.v4, port: 0, batch: 8, slotSize: 1600, headroom: 16 });
      const tx = h.bind({ address: h.v4, port: 0 });
      const got = collectUdp(rx);
      const sizes = [
        ...new Array<number>(50).fill(1200),
        7,
        7,
        7,
        0,
        ...new Array<number>(30).fill(1500),
        1499,
      ];
      const ps = payloads(sizes.length, (i) => Math.max(sizes[i]!, 4)).map((p, i) => p.subarray(0, sizes[i]));
      const pk = pack(ps, 40);
      const to = encodeAddr(h.v4, rx.localPort);
      eq(tx.sendMany(pk.buf, pk.offs, pk.lens, ps.length, to, 0), ps.length, "sent");
      eq(tx.sendMany(pk.buf, pk.offs, pk.lens, ps.length, to, 0), ps.length, "sent again");
      const n = 2 * ps.length;
      await waitFor(() => got.pkts.length >= n, 3000, `${n} datagrams (got ${got.pkts.length})`);
      eq(got.pkts.length, n, "datagrams");
      got.pkts.forEach((p, j) => {
        const i = j % ps.length;
        eq(p.data.length, ps[i]!.length, `length of ${j}`);
        check(p.data.equals(ps[i]!), `bytes of datagram ${j}`);
        eq(p.from, `${h.v4}:${tx.localPort}`, `source of ${j}`);
      });
      check(Math.max(...got.batches) <= 8, `batch above 8: ${got.batches.join(",")}`);
      const rs = rx.stats();
      eq(`${rs.rxPackets} ${rs.rxErrors}`, `${n} 0`, "rxPackets rxErrors");
    },
  },
  {
    name: "offload: false sends and receives the same datagrams without GSO/GRO",
    async run(h) {
      const rx = h.bind({ address: h.v4, port: 0, offload: false });
      const tx = h.bind({ address: h.v4, port: 0, offload: false });
      eq(
        JSON.stringify([h.offloads(rx), h.offloads(tx)]),
        JSON.stringify(new Array(2).fill({ gso: false, gro: false })),
        "offloads",
      );
      const got = collectUdp(rx);
      const ps = payloads(100, () => 1000);
      const pk = pack(ps);
      eq(tx.sendMany(pk.buf, pk.offs, pk.lens, 100, encodeAddr(h.v4, rx.localPort), 0), 100, "sent");
      await waitFor(() => got.pkts.length >= 100, 3000, `100 datagrams (got ${got.pkts.length})`);
      got.pkts.forEach((p, i) => check(p.data.equals(ps[i]!), `datagram ${i}`));
      const ts = tx.stats();
      const rs = rx.stats();
      eq(
        `${ts.gsoMessages} ${rs.rxGroMessages} ${rs.rxPackets}`,
        "0 0 100",
        "gsoMessages rxGroMessages rxPackets",
      );
    },
  },
  {
    name: "close is idempotent; sends after close return 0; start after close throws EBADF",
    async run(h) {
      const b = h.bind({ address: h.v4, port: 0 });
      b.start(() => {});
      b.close();
      b.close();
      eq(b.send(Buffer.from("x"), 0, 1, encodeAddr(h.v4, 9), 0), false, "send after close");
      expectPlatformError(() => b.start(() => {}), ["EBADF"], "start after close");
    },
  },
];

// ---------- fake harnesses ----------

export async function fakeTunHarness(): Promise<TunHarness> {
  const v4 = { local: "10.99.0.1", peer: "10.99.0.2" };
  const v6 = { local: "fd00::1", peer: "fd00::2" };
  const dev = new FakeTun({ name: "mtc0" });
  const listeners = new Map<string, KernelListener>();
  let nextPort = 40000;
  let pumping: ReturnType<typeof setInterval> | undefined;
  // the fake kernel: deliver written UDP packets to listeners (checksums must be right)
  const drain = (): void => {
    for (const p of dev.takeWritten()) {
      const u = parseUdp(p, 0, p.length);
      if (!u || !u.checksumsOk) continue;
      const l = listeners.get(`${u.dst}:${u.dport}`);
      l?.received.push({ ip: u.src, port: u.sport, payload: u.payload });
    }
  };
  return {
    dev,
    v4,
    v6,
    async kernelSend(family, dstPort, ps) {
      const a = family === 4 ? v4 : v6;
      for (const p of ps) dev.inject(udpPacket(a.local, a.peer, 33000, dstPort, p));
    },
    async kernelListen(family) {
      const port = nextPort++;
      const ip = family === 4 ? v4.local : v6.local;
      const l: KernelListener = { port, received: [], close: () => listeners.delete(`${ip}:${port}`) };
      listeners.set(`${ip}:${port}`, l);
      pumping ??= setInterval(drain, 1);
      return l;
    },
    open: (opts) => new FakeTun(opts),
    close() {
      if (pumping) clearInterval(pumping);
      dev.close();
    },
  };
}

export async function fakeUdpHarness(): Promise<UdpHarness> {
  const net = new FakeNetwork();
  const binds: UdpBind[] = [];
  return {
    v4: "127.0.0.1",
    v6: "::1",
    bind(opts) {
      const b = net.bind(opts);
      binds.push(b);
      return b;
    },
    offloads: () => ({ gso: false, gro: false }),
    close() {
      for (const b of binds) b.close();
    },
  };
}
