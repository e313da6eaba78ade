/**
 * The only file that touches the crypto library. Everything is sodium-native
 * (libsodium): it writes into caller buffers, which the data path relies on.
 * See docs/ARCHITECTURE.md "Crypto" for the measurement behind the choice.
 *
 * Constructions used (all standard libsodium primitives, composed as documented
 * in docs/PROTOCOL.md):
 *   - Ed25519 signatures (crypto_sign_detached / verify_detached)
 *   - X25519 (crypto_scalarmult), Ed25519 -> X25519 key conversion
 *   - ChaCha20-Poly1305 IETF AEAD (12-byte nonce: 4 zero bytes || 64-bit counter)
 *   - BLAKE2b (crypto_generichash), keyed, as KDF / MAC
 */
import sodium from "sodium-native";

export const ED25519_PK_BYTES = 32;
export const ED25519_SK_BYTES = 64;
export const ED25519_SEED_BYTES = 32;
export const SIG_BYTES = 64;
export const X25519_BYTES = 32;
export const AEAD_KEY_BYTES = 32;
export const AEAD_TAG_BYTES = 16;
export const AEAD_NONCE_BYTES = 12;
export const HASH_BYTES = 32;

export function randomBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  sodium.randombytes_buf(b);
  return b;
}

export function randomFill(b: Buffer): void {
  sodium.randombytes_buf(b);
}

/** Overwrite a secret with zeros (sodium_memzero: not optimised away). */
export function zero(b: Buffer | Uint8Array | null | undefined): void {
  if (b && b.length > 0) sodium.sodium_memzero(b as Buffer);
}

export interface SignKeyPair {
  publicKey: Buffer; // 32
  secretKey: Buffer; // 64 (seed || pk), libsodium layout
}

export function signKeyPair(seed?: Buffer): SignKeyPair {
  const publicKey = Buffer.alloc(ED25519_PK_BYTES);
  const secretKey = Buffer.alloc(ED25519_SK_BYTES);
  if (seed) sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed);
  else sodium.crypto_sign_keypair(publicKey, secretKey);
  return { publicKey, secretKey };
}

export function sign(message: Buffer, secretKey: Buffer): Buffer {
  const sig = Buffer.alloc(SIG_BYTES);
  sodium.crypto_sign_detached(sig, message, secretKey);
  return sig;
}

export function verify(sig: Buffer, message: Buffer, publicKey: Buffer): boolean {
  if (sig.length !== SIG_BYTES || publicKey.length !== ED25519_PK_BYTES) return false;
  try {
    return sodium.crypto_sign_verify_detached(sig, message, publicKey);
  } catch {
    return false;
  }
}

/** Ed25519 public key -> X25519 public key. Returns null for keys that do not convert. */
export function edPkToX(pk: Buffer): Buffer | null {
  const out = Buffer.alloc(X25519_BYTES);
  try {
    sodium.crypto_sign_ed25519_pk_to_curve25519(out, pk);
  } catch {
    return null;
  }
  return out;
}

export function edSkToX(sk: Buffer): Buffer {
  const out = Buffer.alloc(X25519_BYTES);
  sodium.crypto_sign_ed25519_sk_to_curve25519(out, sk);
  return out;
}

export interface DhKeyPair {
  publicKey: Buffer;
  secretKey: Buffer;
}

export function dhKeyPair(): DhKeyPair {
  const secretKey = randomBytes(X25519_BYTES);
  const publicKey = Buffer.alloc(X25519_BYTES);
  sodium.crypto_scalarmult_base(publicKey, secretKey);
  return { publicKey, secretKey };
}

export function dhPublic(secretKey: Buffer): Buffer {
  const publicKey = Buffer.alloc(X25519_BYTES);
  sodium.crypto_scalarmult_base(publicKey, secretKey);
  return publicKey;
}

/** X25519. Returns null when the result is all zero (low-order peer key). */
export function dh(secretKey: Buffer, publicKey: Buffer): Buffer | null {
  if (publicKey.length !== X25519_BYTES) return null;
  const out = Buffer.alloc(X25519_BYTES);
  try {
    sodium.crypto_scalarmult(out, secretKey, publicKey);
  } catch {
    return null;
  }
  return out;
}

/** BLAKE2b-256, optionally keyed, over the concatenation of parts. */
export function hash(parts: readonly Uint8Array[], key?: Buffer, outLen = HASH_BYTES): Buffer {
  const out = Buffer.alloc(outLen);
  sodium.crypto_generichash_batch(out, parts as Buffer[], key ?? null);
  return out;
}

/** Constant-time comparison. */
export function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && sodium.sodium_memcmp(a, b);
}

/**
 * AEAD encrypt in place or into `out`: plaintext at src[srcOff, srcOff+len) ->
 * ciphertext||tag at out[outOff, outOff+len+16). Returns bytes written.
 * `nonce` is a 12-byte scratch buffer the caller owns (filled here from counter).
 */
export function aeadSeal(out: Buffer, plain: Buffer, ad: Buffer, nonce: Buffer, key: Buffer): number {
  return sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, plain, ad, null, nonce, key);
}

/** AEAD decrypt; returns false (never throws) when authentication fails. */
export function aeadOpen(out: Buffer, cipher: Buffer, ad: Buffer, nonce: Buffer, key: Buffer): boolean {
  if (cipher.length < AEAD_TAG_BYTES) return false;
  try {
    sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out, null, cipher, ad, nonce, key);
    return true;
  } catch {
    return false;
  }
}

/** Write a 64-bit counter into the 12-byte AEAD nonce (bytes 4..11, big-endian). */
export function setNonce(nonce: Buffer, counterHi: number, counterLo: number): void {
  nonce.writeUInt32BE(0, 0);
  nonce.writeUInt32BE(counterHi >>> 0, 4);
  nonce.writeUInt32BE(counterLo >>> 0, 8);
}
