/** Minimal pcap reader for the tests: UDP payloads with their addresses (Ethernet, IPv4/IPv6). */
import * as fs from "node:fs";

export interface UdpRecord {
  ts: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
}

export function readUdp(file: string): UdpRecord[] {
  const b = fs.readFileSync(file);
  if (b.length < 24) return [];
  const le = b.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const linktype = u32(20);
  const out: UdpRecord[] = [];
  let o = 24;
  while (o + 16 <= b.length) {
    const ts = u32(o) + u32(o + 4) / 1e6;
    const incl = u32(o + 8);
    const p = b.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    let ip = linktype === 1 ? 14 : linktype === 113 ? 16 : 0; // Ethernet, Linux cooked
    if (linktype === 1) {
      let et = p.readUInt16BE(12);
      if (et === 0x8100) {
        ip += 4;
        et = p.readUInt16BE(16);
      }
    }
    const v = p[ip]! >> 4;
    let src: string, dst: string, l4: number, proto: number;
    if (v === 4) {
      proto = p[ip + 9]!;
      src = [...p.subarray(ip + 12, ip + 16)].join(".");
      dst = [...p.subarray(ip + 16, ip + 20)].join(".");
      l4 = ip + (p[ip]! & 15) * 4;
    } else if (v === 6) {
      proto = p[ip + 6]!;
      src = p.subarray(ip + 8, ip + 24).toString("hex");
      dst = p.subarray(ip + 24, ip + 40).toString("hex");
      l4 = ip + 40;
    } else continue;
    if (proto !== 17 || l4 + 8 > p.length) continue;
    out.push({
      ts,
      src,
      dst,
      sport: p.readUInt16BE(l4),
      dport: p.readUInt16BE(l4 + 2),
      payload: Buffer.from(p.subarray(l4 + 8)),
    });
  }
  return out;
}

/** Time and IPv4 addresses of every IPv4 packet in a capture of a TUN (raw IP) device. */
export function readIp4(file: string): { ts: number; src: string; dst: string }[] {
  const b = fs.readFileSync(file);
  if (b.length < 24) return [];
  const le = b.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const out: { ts: number; src: string; dst: string }[] = [];
  for (let o = 24; o + 16 <= b.length; o += 16 + u32(o + 8)) {
    const p = b.subarray(o + 16, o + 16 + u32(o + 8));
    if (p.length < 20 || p[0]! >> 4 !== 4) continue;
    out.push({
      ts: u32(o) + u32(o + 4) / 1e6,
      src: [...p.subarray(12, 16)].join("."),
      dst: [...p.subarray(16, 20)].join("."),
    });
  }
  return out;
}

/**
 * Round trips `self` completed between `fromTs` and `answerTs` (seconds): a flight of
 * datagrams from self to any of `peers` counts once a datagram from a peer arrives
 * at least `minRttS` after the flight began (no answer can come sooner: every
 * crossing of the delay router takes at least its delay). Datagrams a peer sent
 * before it could have heard the flight (the second packet of its previous answer)
 * and datagrams self sends after its last round trip (the confirmation a creator
 * sends on REPLY) are not round trips. A count of events on the wire: how long a
 * trip took on a loaded machine does not change it.
 */
export function flightsBefore(
  recs: UdpRecord[],
  self: string,
  peers: string[],
  answerTs: number,
  fromTs = -Infinity,
  minRttS = 0,
): number {
  let rounds = 0;
  let flightStart: number | null = null;
  for (const r of recs) {
    if (r.ts < fromTs) continue;
    if (r.ts >= answerTs) break;
    if (r.src === self && peers.includes(r.dst)) flightStart ??= r.ts;
    else if (
      r.dst === self &&
      peers.includes(r.src) &&
      flightStart !== null &&
      r.ts >= flightStart + minRttS
    ) {
      rounds++;
      flightStart = null;
    }
  }
  return rounds;
}
