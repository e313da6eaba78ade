/**
 * The data path's AEAD suites (docs/PROTOCOL.md "AEAD suites"): the cipher that seals a
 * tunnel's epoch keys. Both are standard constructions from standard libraries:
 *
 *   1 ChaCha20-Poly1305 (RFC 8439), libsodium's crypto_aead_chacha20poly1305_ietf, or
 *     OpenSSL's EVP_chacha20_poly1305 when the addon is installed (same bytes)
 *   2 AES-256-GCM (NIST SP 800-38D), OpenSSL's EVP_aes_256_gcm: through the addon
 *     (platform/linux/aead.c, one cipher context per key), else node:crypto
 *
 * Nonce (both suites, 96 bits): 4 zero bytes || the 8 header bytes at offset 8 (type byte
 * and 56-bit counter). A sender's counter never repeats under one key and every epoch has
 * its own keys, so a (key, nonce) pair is never reused; an epoch is refused long before
 * 2^32 packets (rekey), far inside GCM's limits for 96-bit nonces.
 *
 * The addon is a performance choice only: the crypto layer does no I/O, so the net layer
 * installs it (useNativeAead) when it loads the addon; without it (in-process tests, other
 * platforms) the same suites run through libsodium and node:crypto, with equal output.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { aeadOpen, aeadSeal, zero } from "./sodium.js";
import { MintunError } from "../errors.js";

export const AeadSuite = { ChaCha20Poly1305: 1, Aes256Gcm: 2 } as const;
export type AeadSuite = (typeof AeadSuite)[keyof typeof AeadSuite];

export const AEAD_SUITE_NAMES: Record<AeadSuite, string> = {
  1: "chacha20-poly1305",
  2: "aes-256-gcm",
};

export function isAeadSuite(n: number): n is AeadSuite {
  return n === 1 || n === 2;
}

/** What the addon exports for the AEAD (platform/linux/aead.c). */
export interface NativeAead {
  aeadKey(suite: number, key: Buffer, encrypt: boolean): object;
  aeadFree(handle: object): void;
  aeadSeal(handle: object, buf: Buffer, start: number, adLen: number, plainLen: number): boolean;
  aeadOpen(handle: object, buf: Buffer, start: number, adLen: number, cipherLen: number): boolean;
}

let nativeAead: NativeAead | null = null;

/** Install (or remove, null) the addon's AEAD; the net layer calls this when it loads the addon. */
export function useNativeAead(n: NativeAead | null): void {
  nativeAead = n;
}

export function nativeAeadInUse(): boolean {
  return nativeAead !== null;
}

const TAG = 16;
const nonce = Buffer.alloc(12);

function nonceFrom(buf: Buffer, start: number): Buffer {
  nonce[0] = nonce[1] = nonce[2] = nonce[3] = 0;
  for (let k = 0; k < 8; k++) nonce[4 + k] = buf[start + 8 + k]!;
  return nonce;
}

/**
 * One direction of an epoch: its 32-byte key (a view the epoch owns and zeroes) and, with
 * the addon, a cipher context made on first use and freed (wiped by OpenSSL) by erase().
 */
export class AeadKey {
  private handle: object | null = null;
  /** after erase() no context is made again (a late use runs as before: on the zeroed key bytes) */
  private erased = false;
  constructor(
    readonly suite: AeadSuite,
    readonly key: Buffer,
    private readonly encrypt: boolean,
  ) {}

  private ctx(n: NativeAead): object {
    return (this.handle ??= n.aeadKey(this.suite, this.key, this.encrypt));
  }

  /**
   * Seal in place: associated data buf[start, pt), plaintext buf[pt, pt+plainLen), the tag
   * after it; nonce from the header at start.
   */
  seal(buf: Buffer, start: number, pt: number, plainLen: number): void {
    const n = nativeAead;
    if (n !== null && !this.erased) {
      // false only for a packet that does not fit its buffer (a caller's bug) or an OpenSSL failure:
      // never send what could not be sealed
      if (!n.aeadSeal(this.ctx(n), buf, start, pt - start, plainLen))
        throw new MintunError(
          "EAEAD",
          `AEAD seal failed (${pt - start}+${plainLen}+16 bytes at ${start} of ${buf.length})`,
        );
      return;
    }
    sealWith(this.suite, this.key, buf, start, pt, plainLen);
  }

  /** Open in place (plaintext replaces the ciphertext at pt); false when authentication fails. */
  open(buf: Buffer, start: number, pt: number, cipherLen: number): boolean {
    if (cipherLen < TAG) return false;
    const n = nativeAead;
    if (n !== null && !this.erased) return n.aeadOpen(this.ctx(n), buf, start, pt - start, cipherLen);
    return openWith(this.suite, this.key, buf, start, pt, cipherLen);
  }

  /** Give the cipher context back while the key stays usable (an idle tunnel); made again on use. */
  release(): void {
    const h = this.handle;
    this.handle = null;
    if (h !== null && nativeAead !== null) nativeAead.aeadFree(h);
  }

  /** Free the cipher context (OpenSSL wipes its key schedule); the key bytes are the owner's. */
  erase(): void {
    const h = this.handle;
    this.handle = null;
    this.erased = true;
    if (h !== null && nativeAead !== null) nativeAead.aeadFree(h);
  }
}

/** One-shot seal under `key` (no context kept), as AeadKey.seal. */
export function sealWith(
  suite: AeadSuite,
  key: Buffer,
  buf: Buffer,
  start: number,
  pt: number,
  plainLen: number,
): void {
  const iv = nonceFrom(buf, start);
  if (suite === AeadSuite.ChaCha20Poly1305) {
    aeadSeal(
      buf.subarray(pt, pt + plainLen + TAG),
      buf.subarray(pt, pt + plainLen),
      buf.subarray(start, pt),
      iv,
      key,
    );
    return;
  }
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(buf.subarray(start, pt));
  const ct = c.update(buf.subarray(pt, pt + plainLen));
  ct.copy(buf, pt);
  c.final();
  c.getAuthTag().copy(buf, pt + plainLen);
  zero(ct);
}

/** One-shot open under `key`, as AeadKey.open. */
export function openWith(
  suite: AeadSuite,
  key: Buffer,
  buf: Buffer,
  start: number,
  pt: number,
  cipherLen: number,
): boolean {
  if (cipherLen < TAG) return false;
  const iv = nonceFrom(buf, start);
  const clen = cipherLen - TAG;
  if (suite === AeadSuite.ChaCha20Poly1305)
    return aeadOpen(
      buf.subarray(pt, pt + clen),
      buf.subarray(pt, pt + cipherLen),
      buf.subarray(start, pt),
      iv,
      key,
    );
  const d = createDecipheriv("aes-256-gcm", key, iv);
  d.setAAD(buf.subarray(start, pt));
  d.setAuthTag(buf.subarray(pt + clen, pt + cipherLen));
  const plain = d.update(buf.subarray(pt, pt + clen));
  try {
    d.final();
  } catch {
    zero(plain);
    return false;
  }
  plain.copy(buf, pt);
  zero(plain);
  return true;
}
