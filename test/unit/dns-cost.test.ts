/**
 * What a datagram at the DNS port costs before it is dropped. dns-packet's
 * decoder allocates an array per section from the header's counts before it
 * reads anything, so a 12-byte header claiming 4 x 65535 records cost ~4 ms of
 * allocation and GC on the daemon's event loop; 300 random datagrams kept the
 * real daemon's DNS server (and data path) busy for over a second
 * (test/netns/names.test.ts "drops garbage"). answerQuery now drops a message
 * whose counts cannot fit its length without decoding it: whatever reaches
 * the decoder allocates at most one slot per 5 bytes of message.
 */
import * as crypto from "node:crypto";
import type * as DnsPacketModule from "dns-packet";
import { beforeEach, describe, expect, it, vi } from "vitest";

/** the section counts of every message handed to dns-packet's decode */
const decoded: number[][] = [];

vi.mock("dns-packet", async (importOriginal) => {
  const orig = await importOriginal<typeof DnsPacketModule>();
  const decode = ((buf: Buffer, offset?: number) => {
    if (buf.length >= 12) decoded.push([4, 6, 8, 10].map((o) => buf.readUInt16BE(o)).concat(buf.length));
    return orig.decode(buf, offset);
  }) as typeof orig.decode;
  return { ...orig, decode, default: { ...orig, decode } };
});

const { answerQuery, newDnsCounters } = await import("../../src/names/dns.js");
const dnsPacket = await import("dns-packet");

/** RFC 1035: the smallest question (root name, type, class) and record (+ TTL, RDLENGTH) */
const MIN_QUESTION_BYTES = 5;
const MIN_RR_BYTES = 11;

const ctx = () => ({
  domain: "mesh.",
  resolve: () => Promise.resolve(null),
  now: () => 0,
  counters: newDnsCounters(),
});

/** a query header (QR clear) with the given section counts, padded to len bytes */
function header(qd: number, an: number, ns: number, ar: number, len = 12): Buffer {
  const b = Buffer.alloc(len);
  b.writeUInt16BE(0x1234, 0);
  b.writeUInt16BE(0x0100, 2);
  [qd, an, ns, ar].forEach((n, i) => b.writeUInt16BE(n, 4 + 2 * i));
  return b;
}

describe("DNS garbage is dropped before the decoder allocates for it", () => {
  beforeEach(() => {
    decoded.length = 0;
  });

  it("a header claiming 65535 records of each section is malformed and never decoded", async () => {
    for (const len of [12, 100, 512, 4096]) {
      const c = ctx();
      expect(await answerQuery(header(0xffff, 0xffff, 0xffff, 0xffff, len), c)).toBeNull();
      expect(c.counters.malformed).toBe(1);
      expect(c.counters.queries).toBe(0);
    }
    expect(decoded).toEqual([]);
  });

  it("counts that just fit are decoded (and answered or dropped); one more record is not", async () => {
    // 2 questions of 5 bytes (root, A, IN) + 1 OPT-sized record of 11 bytes: fits exactly
    const fits = header(2, 0, 0, 1, 12 + 2 * MIN_QUESTION_BYTES + MIN_RR_BYTES);
    const c = ctx();
    await answerQuery(fits, c);
    expect(decoded).toHaveLength(1);
    const over = header(2, 0, 0, 2, fits.length);
    const c2 = ctx();
    expect(await answerQuery(over, c2)).toBeNull();
    expect(c2.counters.malformed).toBe(1);
    expect(decoded).toHaveLength(1);
  });

  it("valid queries (with EDNS, over the size of a header) still reach the decoder and get answers", async () => {
    const q = dnsPacket.encode({
      type: "query",
      id: 7,
      questions: [{ type: "A", name: "nosuch.mesh" }],
      additionals: [
        {
          type: "OPT",
          name: ".",
          udpPayloadSize: 4096,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        },
      ],
    });
    const c = ctx();
    expect(await answerQuery(q, c)).not.toBeNull();
    expect(c.counters.nxdomain).toBe(1);
    expect(decoded).toHaveLength(1);
  });

  it("300 random datagrams like the netns test's: the decoder never sees counts the bytes cannot hold", async () => {
    const c = ctx();
    // fixed seed material: the same 300 datagrams on every run
    let x = crypto.createHash("sha256").update("dns-garbage").digest();
    for (let i = 0; i < 300; i++) {
      x = crypto.createHash("sha256").update(x).digest();
      const len = 1 + (x.readUInt16BE(0) % 300);
      const b = Buffer.alloc(len);
      for (let o = 0; o < len; o += 32) {
        x = crypto.createHash("sha256").update(x).digest();
        x.copy(b, o, 0, Math.min(32, len - o));
      }
      if (len > 2) b[2]! &= 0x7f;
      await answerQuery(b, c);
    }
    expect(c.counters.malformed + c.counters.queries).toBe(300);
    for (const [qd, an, ns, ar, len] of decoded)
      expect(12 + qd! * MIN_QUESTION_BYTES + (an! + ns! + ar!) * MIN_RR_BYTES).toBeLessThanOrEqual(len!);
  });
});
