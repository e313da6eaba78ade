/**
 * Connection frames and flow parsing on random bytes: never throw; what parses
 * re-encodes to the same bytes; a parsed flow matches its own reversal.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import "./seed.js";
import { ConnTable, FlowScratch, parseFlow } from "../../src/conn/conns.js";
import { ConnKind, readConnOpen, writeConnOpen } from "../../src/wire/conn.js";

describe("CONN_OPEN codec", () => {
  it("never throws on random bytes; accepted bodies re-encode identically", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), (u8) => {
        const b = Buffer.from(u8);
        const o = readConnOpen(b, 0, b.length);
        if (o === null) return;
        const a = o.family === 4 ? 4 : 16;
        const cert = o.kind === ConnKind.User ? b.subarray(o.certOff, o.certOff + o.certLen) : null;
        const out = Buffer.alloc(b.length);
        const end = writeConnOpen(
          out,
          0,
          o.cid,
          o.kind,
          o.proto,
          o.family,
          o.sport,
          o.dport,
          b,
          o.srcOff,
          b,
          o.dstOff,
          cert,
        );
        expect(end).toBe(b.length);
        if (cert) b.copy(out, o.authOff, o.authOff, o.authOff + 16);
        expect(out.equals(b)).toBe(true);
        expect(o.dstOff).toBe(o.srcOff + a);
      }),
      { numRuns: 3000 },
    );
  });

  it("finds host and user bodies inside random surroundings", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0x7fffffff }),
        fc.constantFrom(4 as const, 6 as const),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.option(fc.uint8Array({ minLength: 1, maxLength: 300 }), { nil: null }),
        (cid, fam, addrs, cert) => {
          const c = cert ? Buffer.from(cert) : null;
          const buf = Buffer.alloc(600, 0xaa);
          const end = writeConnOpen(
            buf,
            5,
            cid,
            c ? 1 : 0,
            6,
            fam,
            1,
            2,
            Buffer.from(addrs),
            0,
            Buffer.from(addrs),
            16,
            c,
          );
          const o = readConnOpen(buf, 5, end - 5);
          expect(o).not.toBeNull();
          expect(o!.cid).toBe(cid);
          expect(o!.certLen).toBe(c ? c.length : 0);
          expect(readConnOpen(buf, 5, end - 4)).toBeNull();
        },
      ),
    );
  });
});

describe("flow parsing", () => {
  it("never throws on random packets; a parsed flow matches its own reversal", () => {
    const f = new FlowScratch();
    const g = new FlowScratch();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (u8) => {
        const b = Buffer.from(u8);
        if (!parseFlow(b, 0, b.length, f)) return;
        const t = new ConnTable();
        const c = t.openMine(b, f, 0)!;
        expect(t.lookupOut(b, f)).toBe(c);
        // the reversed packet: swap addresses and ports
        const r = Buffer.from(b);
        const a = f.family === 4 ? 4 : 16;
        b.copy(r, f.dstOff - 0, f.srcOff, f.srcOff + a);
        b.copy(r, f.srcOff, f.dstOff, f.dstOff + a);
        if (!parseFlow(r, 0, r.length, g)) return;
        if (g.proto === 6 || g.proto === 17) {
          // ports swap only where the parser reads them; ICMP echo ids are symmetric
          const l4 = g.family === 4 ? (r[0]! & 15) * 4 : 40;
          if ((r.readUInt16BE(6) & 0x1fff) !== 0 && g.family === 4) return;
          r.writeUInt16BE(f.dport, l4);
          r.writeUInt16BE(f.sport, l4 + 2);
          parseFlow(r, 0, r.length, g);
        }
        if (g.sport === f.dport && g.dport === f.sport) expect(ConnTable.matchesIn(c, r, g)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("parseFlow: IPv6 extension header chains", () => {
  it("random chains never throw; a parsed packet's transport header lies inside it", () => {
    const ext = fc.constantFrom(0, 43, 44, 51, 60, 6, 17, 58, 59);
    fc.assert(
      fc.property(
        ext,
        fc.array(fc.tuple(ext, fc.uint8Array({ minLength: 8, maxLength: 24 })), { maxLength: 10 }),
        fc.uint8Array({ maxLength: 40 }),
        (first, chain, tail) => {
          const body = Buffer.concat([
            ...chain.map(([next, bytes]) => {
              const h = Buffer.from(bytes);
              h[0] = next;
              h[1] = h[1]! % 3;
              return h;
            }),
            Buffer.from(tail),
          ]);
          const b = Buffer.alloc(40 + body.length);
          b[0] = 0x60;
          b.writeUInt16BE(body.length, 4);
          b[6] = first;
          body.copy(b, 40);
          const f = new FlowScratch();
          if (!parseFlow(b, 0, b.length, f)) return;
          expect(f.family).toBe(6);
          expect(f.l4Off).toBeGreaterThanOrEqual(40);
          expect(f.l4Off).toBeLessThanOrEqual(b.length);
          // never an extension header as the protocol, except for a later fragment (whose next
          // header may name one of the fragmentable part)
          if (f.frag !== 2) expect([0, 43, 44, 51, 60]).not.toContain(f.proto);
          if (f.frag !== 2 && (f.proto === 6 || f.proto === 17) && b.length - f.l4Off >= 4)
            expect(f.sport).toBe(b.readUInt16BE(f.l4Off));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
