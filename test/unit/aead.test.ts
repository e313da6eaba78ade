/**
 * The data path's AEAD suites (src/crypto/aead.ts, platform/linux/aead.c): the addon's
 * OpenSSL contexts and the libsodium / node:crypto fallback produce the same bytes, the
 * nonce is 4 zero bytes || header bytes 8..16, every tampered byte is refused, and bad
 * bounds or handles give false or a typed throw, never a crash.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  AeadKey,
  AeadSuite,
  openWith,
  sealWith,
  useNativeAead,
  type NativeAead,
} from "../../src/crypto/aead.js";
import { native } from "../../src/net/native.js";

const addon = native() as unknown as NativeAead;
const HDR = 16;
const SUITES = [AeadSuite.ChaCha20Poly1305, AeadSuite.Aes256Gcm] as const;

/** a packet: 16-byte header (random TID, type, counter) | plaintext | room for the tag */
function packet(len: number): Buffer {
  const b = Buffer.alloc(HDR + len + 16);
  randomBytes(HDR + len).copy(b);
  return b;
}

function sealBy(backend: "native" | "fallback", suite: AeadSuite, key: Buffer, b: Buffer, len: number): void {
  useNativeAead(backend === "native" ? addon : null);
  const k = new AeadKey(suite, key, true);
  k.seal(b, 0, HDR, len);
  k.erase();
}

function openBy(
  backend: "native" | "fallback",
  suite: AeadSuite,
  key: Buffer,
  b: Buffer,
  len: number,
): boolean {
  useNativeAead(backend === "native" ? addon : null);
  const k = new AeadKey(suite, key, false);
  const ok = k.open(b, 0, HDR, len + 16);
  k.erase();
  return ok;
}

afterEach(() => useNativeAead(addon));

describe("AEAD suites: addon and fallback agree", () => {
  for (const suite of SUITES)
    it(`suite ${suite}: seal by either backend, open by either, same ciphertext`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 1500 }),
          fc.boolean(),
          fc.boolean(),
          (len, sealNative, openNative) => {
            const key = randomBytes(32);
            const plain = packet(len);
            const a = Buffer.from(plain);
            const b = Buffer.from(plain);
            sealBy(sealNative ? "native" : "fallback", suite, key, a, len);
            sealBy(sealNative ? "fallback" : "native", suite, key, b, len);
            expect(a).toEqual(b);
            expect(a.subarray(HDR, HDR + len).equals(plain.subarray(HDR, HDR + len)) && len > 8).toBe(false);
            expect(openBy(openNative ? "native" : "fallback", suite, key, a, len)).toBe(true);
            expect(a.subarray(0, HDR + len)).toEqual(plain.subarray(0, HDR + len));
          },
        ),
        { numRuns: 60 },
      );
    });

  it("AES-256-GCM: the nonce is 4 zero bytes || header bytes 8..16 (node:crypto with that IV agrees)", () => {
    const key = randomBytes(32);
    const b = packet(100);
    const ad = Buffer.from(b.subarray(0, HDR));
    const plain = Buffer.from(b.subarray(HDR, HDR + 100));
    sealBy("native", AeadSuite.Aes256Gcm, key, b, 100);
    const iv = Buffer.concat([Buffer.alloc(4), ad.subarray(8, 16)]);
    const c = createCipheriv("aes-256-gcm", key, iv);
    c.setAAD(ad);
    const ct = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    expect(b.subarray(HDR)).toEqual(ct);
    const d = createDecipheriv("aes-256-gcm", key, iv);
    d.setAAD(ad);
    d.setAuthTag(ct.subarray(100));
    expect(Buffer.concat([d.update(ct.subarray(0, 100)), d.final()])).toEqual(plain);
  });

  it("the two suites give different ciphertexts under the same key, and neither opens the other's", () => {
    const key = randomBytes(32);
    const p = packet(64);
    const a = Buffer.from(p);
    const b = Buffer.from(p);
    sealBy("native", AeadSuite.ChaCha20Poly1305, key, a, 64);
    sealBy("native", AeadSuite.Aes256Gcm, key, b, 64);
    expect(a.subarray(HDR).equals(b.subarray(HDR))).toBe(false);
    expect(openBy("native", AeadSuite.Aes256Gcm, key, Buffer.from(a), 64)).toBe(false);
    expect(openBy("native", AeadSuite.ChaCha20Poly1305, key, Buffer.from(b), 64)).toBe(false);
  });
});

describe("AEAD suites: forgeries and bad input", () => {
  for (const suite of SUITES)
    for (const backend of ["native", "fallback"] as const)
      it(`suite ${suite}, ${backend}: any flipped bit (header, ciphertext, tag) or wrong key is refused`, () => {
        fc.assert(
          fc.property(
            fc.integer({ min: 0, max: 300 }),
            fc.nat(),
            fc.integer({ min: 0, max: 7 }),
            (len, at, bit) => {
              const key = randomBytes(32);
              const b = packet(len);
              sealBy(backend, suite, key, b, len);
              const bad = Buffer.from(b);
              bad[at % bad.length]! ^= 1 << bit;
              expect(openBy(backend, suite, key, bad, len)).toBe(false);
              const other = Buffer.from(key);
              other[at % 32]! ^= 1 << bit;
              expect(openBy(backend, suite, other, Buffer.from(b), len)).toBe(false);
              expect(openBy(backend, suite, key, b, len)).toBe(true);
            },
          ),
          { numRuns: 40 },
        );
      });

  it("the addon refuses out-of-bounds packets, short ciphertexts and a wrong direction with false", () => {
    const key = randomBytes(32);
    const enc = addon.aeadKey(AeadSuite.Aes256Gcm, key, true);
    const dec = addon.aeadKey(AeadSuite.Aes256Gcm, key, false);
    const b = packet(40);
    expect(addon.aeadSeal(enc, b, 0, HDR, 41)).toBe(false); // tag would pass the end
    expect(addon.aeadSeal(enc, b, 1, HDR, 40)).toBe(false);
    expect(addon.aeadSeal(enc, b, 0, 8, 40)).toBe(false); // no room for the nonce bytes in the AD
    expect(addon.aeadOpen(dec, b, 0, HDR, 15)).toBe(false); // shorter than a tag
    expect(addon.aeadOpen(dec, b, 0, HDR, 1 << 30)).toBe(false);
    expect(addon.aeadOpen(enc, b, 0, HDR, 56)).toBe(false); // an encrypting context does not open
    expect(addon.aeadSeal(dec, b, 0, HDR, 40)).toBe(false);
    expect(addon.aeadSeal(enc, b, 0, HDR, 40)).toBe(true);
    expect(addon.aeadOpen(dec, b, 0, HDR, 56)).toBe(true);
    addon.aeadFree(enc);
    addon.aeadFree(enc); // idempotent
    expect(addon.aeadSeal(enc, b, 0, HDR, 40)).toBe(false); // freed: refused, no crash
    addon.aeadFree(dec);
    expect(() => addon.aeadKey(AeadSuite.Aes256Gcm, Buffer.alloc(31), true)).toThrow(/32 bytes/);
    expect(() => addon.aeadKey(3, key, true)).toThrow(/unknown suite/);
    expect(() => addon.aeadSeal({} as object, b, 0, HDR, 40)).not.toThrow();
  });

  it("the addon's batched calls (bench only) equal the per-packet ones and report each forgery", () => {
    type Batch = {
      aeadSealBatch(h: object, b: Buffer, s: Uint32Array, a: Uint32Array, l: Uint32Array, n: number): number;
      aeadOpenBatch(
        h: object,
        b: Buffer,
        s: Uint32Array,
        a: Uint32Array,
        l: Uint32Array,
        n: number,
        ok: Uint8Array,
      ): number;
    };
    const x = addon as unknown as NativeAead & Batch;
    for (const suite of SUITES) {
      const key = randomBytes(32);
      const enc = x.aeadKey(suite, key, true);
      const dec = x.aeadKey(suite, key, false);
      const SLOT = 200;
      const slab = randomBytes(SLOT * 4);
      const one = Buffer.from(slab);
      const starts = Uint32Array.of(0, SLOT, 2 * SLOT, 3 * SLOT);
      const ads = new Uint32Array(4).fill(HDR);
      const lens = Uint32Array.of(0, 1, 100, SLOT - HDR - 16);
      expect(x.aeadSealBatch(enc, slab, starts, ads, lens, 4)).toBe(4);
      for (let i = 0; i < 4; i++) expect(x.aeadSeal(enc, one, starts[i]!, HDR, lens[i]!)).toBe(true);
      expect(slab).toEqual(one);
      slab[2 * SLOT + HDR] ^= 1; // packet 2 forged
      const ok = new Uint8Array(4);
      const clens = lens.map((l) => l + 16);
      expect(x.aeadOpenBatch(dec, slab, starts, ads, clens, 4, ok)).toBe(3);
      expect([...ok]).toEqual([1, 1, 0, 1]);
      // a packet past the end stops the seal batch there; count beyond the arrays is refused
      expect(x.aeadSealBatch(enc, slab, Uint32Array.of(0, 4 * SLOT), ads, lens, 2)).toBe(1);
      expect(x.aeadSealBatch(enc, slab, starts, ads, lens, 5)).toBe(0);
      x.aeadFree(enc);
      x.aeadFree(dec);
    }
  });

  it("erase frees the context once and for all: a late use makes no new one", () => {
    const key = randomBytes(32);
    const k = new AeadKey(AeadSuite.Aes256Gcm, key, true);
    const handle = () => (k as unknown as { handle: object | null }).handle;
    k.seal(packet(10), 0, HDR, 10);
    expect(handle()).not.toBeNull();
    k.erase();
    expect(handle()).toBeNull();
    k.seal(packet(10), 0, HDR, 10); // as before suites: runs on the (owner-zeroed) key bytes
    expect(handle()).toBeNull();
    expect(() => k.erase()).not.toThrow();
  });

  it("one-shot sealWith / openWith match the keyed contexts", () => {
    for (const suite of SUITES) {
      const key = randomBytes(32);
      const p = packet(200);
      const a = Buffer.from(p);
      sealWith(suite, key, a, 0, HDR, 200);
      const b = Buffer.from(p);
      sealBy("native", suite, key, b, 200);
      expect(a).toEqual(b);
      expect(openWith(suite, key, a, 0, HDR, 216)).toBe(true);
      expect(openWith(suite, key, a, 0, HDR, 15)).toBe(false);
    }
  });
});

describe("the suite a host prefers (src/net/cpu.ts)", () => {
  it("AES-256-GCM only with hardware AES and carry-less multiply", async () => {
    const { cpuHasAes, preferredAeadSuite } = await import("../../src/net/cpu.js");
    const x86 = (flags: string) => `processor\t: 0\nflags\t\t: fpu sse2 ${flags} avx2\nbugs\t\t:\n`;
    expect(cpuHasAes(x86("aes pclmulqdq"))).toBe(true);
    expect(cpuHasAes(x86("pclmulqdq"))).toBe(false);
    expect(cpuHasAes(x86("aes"))).toBe(false);
    expect(cpuHasAes(x86("vaes vpclmulqdq"))).toBe(false); // whole words only
    expect(cpuHasAes("processor\t: 0\nFeatures\t: fp asimd aes pmull sha1\n")).toBe(true);
    expect(cpuHasAes("processor\t: 0\nFeatures\t: fp asimd\n")).toBe(false);
    expect(cpuHasAes("")).toBe(false);
    expect(preferredAeadSuite(x86("aes pclmulqdq"))).toBe(AeadSuite.Aes256Gcm);
    expect(preferredAeadSuite("")).toBe(AeadSuite.ChaCha20Poly1305);
  });
});
