/**
 * Property tests for the DNS answerer (src/names/dns.ts): random bytes never
 * throw and are either answered or counted as malformed; every well-formed
 * query for a name under the domain gets exactly one answer with its id and
 * question echoed.
 */
import * as dnsPacket from "dns-packet";
import fc from "fast-check";
import "./seed.js";
import { describe, expect, it } from "vitest";
import { answerQuery, countsFit, newDnsCounters, type DnsContext } from "../../src/names/dns.js";
import type { NameAnswer } from "../../src/names/names.js";

const WEB: NameAnswer = {
  name: "web",
  ip4: "10.77.0.1",
  ip6: "fd77::1",
  subnets: [],
  key: "0011223344556677",
  expiresAt: 2_000_000_000_000,
  source: "peer",
};

function ctx(): DnsContext {
  return {
    domain: "mesh.",
    resolve: (n) => Promise.resolve(n === "web" ? WEB : null),
    now: () => 1_800_000_000_000,
    counters: newDnsCounters(),
  };
}

describe("answerQuery (property)", () => {
  it("random bytes: never throws; either an answer or one counted drop", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 0, maxLength: 600 }),
        fc.boolean(),
        async (raw, asQuery) => {
          const b = Buffer.from(raw);
          if (asQuery && b.length > 2) b[2]! &= 0x7f; // clear QR so most inputs reach the decoder
          const c = ctx();
          const r = await answerQuery(b, c);
          if (r === null) expect(c.counters.malformed).toBe(1);
          else {
            expect(c.counters.malformed).toBe(0);
            expect(r.readUInt16BE(0)).toBe(b.readUInt16BE(0)); // id echoed
            expect(r.readUInt16BE(2) & 0x8000).toBe(0x8000); // a response
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("mutated valid queries: never throw", async () => {
    const base = dnsPacket.encode({ type: "query", id: 9, questions: [{ type: "A", name: "web.mesh" }] });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat(base.length),
        async (edits, cut) => {
          const b = Buffer.from(base.subarray(0, Math.max(12, cut)));
          for (const [i, v] of edits) if (i < b.length) b[i] = v;
          await answerQuery(b, ctx());
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("well-formed queries under the domain: one answer, id and question echoed", async () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 0xffff }),
        label,
        fc.constantFrom("A", "AAAA", "TXT", "MX") as fc.Arbitrary<dnsPacket.RecordType>,
        async (id, name, type) => {
          const q = dnsPacket.encode({ type: "query", id, questions: [{ type, name: `${name}.mesh` }] });
          const r = dnsPacket.decode((await answerQuery(q, ctx()))!) as dnsPacket.DecodedPacket & {
            rcode: string;
          };
          expect(r.id).toBe(id);
          expect(r.questions).toEqual([{ type, name: `${name}.mesh`, class: "IN" }]);
          expect(r.rcode).toBe(name === "web" ? "NOERROR" : "NXDOMAIN");
          const expected = name === "web" && (type === "A" || type === "AAAA") ? 1 : 0;
          expect(r.answers).toHaveLength(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  // dns-packet does not always throw on a truncated record: it can read past the end (Buffer
  // index reads give undefined) and report decode.bytes NaN or beyond the message. Either
  // way the message is not well formed; what must never happen is dropping a well-formed one.
  const wellFormed = (msg: Buffer): boolean => {
    try {
      dnsPacket.decode(msg);
    } catch {
      return false;
    }
    const used = (dnsPacket.decode as unknown as { bytes: number }).bytes;
    return Number.isFinite(used) && used <= msg.length;
  };

  it("a message dropped for counts that cannot fit is one the decoder refuses or over-reads", () => {
    // small counts and bodies of mostly zero bytes (root names, empty records): near the boundary
    const body = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })), { maxLength: 200 });
    const count = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 60 }));
    let refused = 0;
    fc.assert(
      fc.property(fc.tuple(count, count, count, count), body, (counts, rest) => {
        const msg = Buffer.alloc(12 + rest.length);
        counts.forEach((n, i) => msg.writeUInt16BE(n, 4 + 2 * i));
        Buffer.from(rest).copy(msg, 12);
        if (countsFit(msg)) return;
        refused++;
        expect(wellFormed(msg)).toBe(false);
      }),
      {
        numRuns: 3000,
        examples: [
          [
            [1, 0, 0, 1],
            [0, 0, 1, 0, 1],
          ],
        ],
      },
    );
    expect(refused).toBeGreaterThan(0); // the example alone: 16 bytes needed, 5 given
  });
});
