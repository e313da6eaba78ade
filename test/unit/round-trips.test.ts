/**
 * flightsBefore (test/netns/pcap.ts) counts round trips on the wire for the netns
 * latency tests (zerortt, directory-latency). Traces below are the ones captured
 * on a loaded machine, and the handshake-first design the tests must tell apart.
 */
import { describe, expect, it } from "vitest";
import { flightsBefore, type UdpRecord } from "../netns/pcap.js";

const A = "10.201.2.1";
const DIR = "10.201.1.1";
const B = "10.201.3.1";
const RTT = 0.05;

/** [ms, src, dst, type] -> records */
const trace = (...rows: [number, string, string, number][]): UdpRecord[] =>
  rows.map(([ms, src, dst, type]) => {
    const payload = Buffer.alloc(40);
    payload[8] = type;
    return { ts: 1000 + ms / 1000, src, dst, sport: 7000, dport: 7000, payload };
  });
const at = (ms: number) => 1000 + ms / 1000;

describe("flightsBefore: round trips on the wire", () => {
  it("0-RTT first contact: CREATE, two REPLYs, then the creator's confirmations = 1", () => {
    const t = trace([0, A, B, 1], [85.6, B, A, 2], [85.7, B, A, 2], [87.7, A, B, 3], [88.1, A, B, 3]);
    expect(flightsBefore(t, A, [B], at(88.3), -Infinity, RTT)).toBe(1);
  });

  it("directory first contact with a slow directory: lookup, CREATE = 2 (b's second REPLY is no new trip)", () => {
    const t = trace(
      [12.8, A, DIR, 3],
      [122.9, DIR, A, 3],
      [180.2, A, B, 1],
      [241.8, B, A, 2],
      [243.4, A, B, 3],
      [243.5, B, A, 2],
      [244.6, A, B, 3],
    );
    expect(flightsBefore(t, A, [DIR, B], at(245), at(0), RTT)).toBe(2);
  });

  it("handshake first (WireGuard-like): CREATE without data, REPLY, DATA, DATA = 2", () => {
    const t = trace([0, A, B, 1], [51, B, A, 2], [52, A, B, 3], [103, B, A, 3]);
    expect(flightsBefore(t, A, [B], at(104), -Infinity, RTT)).toBe(2);
    // and a record request before the lookup's CREATE: 3
    const r = trace(
      [0, A, DIR, 3],
      [51, DIR, A, 3],
      [52, A, B, 5],
      [103, B, A, 6],
      [104, A, B, 1],
      [155, B, A, 2],
    );
    expect(flightsBefore(r, A, [DIR, B], at(156), -Infinity, RTT)).toBe(3);
  });

  it("ignores traffic before the request, after the answer, and with other hosts", () => {
    const t = trace(
      [-20, A, DIR, 3],
      [-5, DIR, A, 3],
      [0, A, B, 1],
      [10, A, "10.9.9.9", 3],
      [60, B, A, 2],
      [200, A, B, 3],
      [260, B, A, 3],
    );
    expect(flightsBefore(t, A, [DIR, B], at(61), at(0), RTT)).toBe(1);
  });
});
