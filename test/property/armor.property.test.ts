import { describe, expect, it } from "vitest";
import fc from "fast-check";
import "./seed.js";
import { armor, armorBytes, dearmor, dearmorBytes } from "../../src/store/keyfile.js";

/** The armor as it was written with Node's base64 (the file format must not change). */
function nodeArmor(label: string, body: Buffer): string {
  const b64 = body.toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

describe("armor on bytes (property)", () => {
  it("armorBytes writes exactly what Node's base64 armor wrote, and dearmorBytes reads it back", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 400 }), (a) => {
        const body = Buffer.from(a);
        const text = nodeArmor("MINTUN TEST", body);
        expect(armorBytes("MINTUN TEST", body).toString("latin1")).toBe(text);
        expect(armor("MINTUN TEST", body)).toBe(text);
        const r = dearmorBytes(Buffer.from(text, "latin1"));
        expect(r?.label).toBe("MINTUN TEST");
        expect(r?.body.equals(body)).toBe(true);
        expect(dearmor(text.replace(/\n/g, "\r\n"))?.body.equals(body)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("random bytes never throw; what decodes matches Node's strict base64", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n\r-!";
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet.split("")), { maxLength: 120 }), (chars) => {
        const inner = chars.join("");
        const text = `-----BEGIN X-----\n${inner}-----END X-----\n`;
        const r = dearmorBytes(Buffer.from(text, "latin1"));
        const b64 = inner.replace(/[\r\n]/g, "");
        const strict = /^[A-Za-z0-9+/]*={0,2}$/.test(b64) && b64.length % 4 === 0 && !inner.includes("-");
        if (!inner.includes("-")) expect(r !== null).toBe(strict);
        if (r) expect(r.body.equals(Buffer.from(b64, "base64"))).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});
