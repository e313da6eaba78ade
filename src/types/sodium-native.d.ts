// Minimal declarations for the parts of sodium-native 5 that mintun uses.
declare module "sodium-native" {
  const sodium: {
    randombytes_buf(b: Buffer): void;
    sodium_memzero(b: Buffer): void;
    sodium_memcmp(a: Buffer, b: Buffer): boolean;
    crypto_sign_keypair(pk: Buffer, sk: Buffer): void;
    crypto_sign_seed_keypair(pk: Buffer, sk: Buffer, seed: Buffer): void;
    crypto_sign_detached(sig: Buffer, m: Buffer, sk: Buffer): void;
    crypto_sign_verify_detached(sig: Buffer, m: Buffer, pk: Buffer): boolean;
    crypto_sign_ed25519_pk_to_curve25519(x: Buffer, ed: Buffer): void;
    crypto_sign_ed25519_sk_to_curve25519(x: Buffer, ed: Buffer): void;
    crypto_scalarmult_base(q: Buffer, n: Buffer): void;
    crypto_scalarmult(q: Buffer, n: Buffer, p: Buffer): void;
    crypto_generichash(out: Buffer, input: Buffer, key?: Buffer | null): void;
    crypto_generichash_batch(out: Buffer, inputs: Buffer[], key?: Buffer | null): void;
    crypto_aead_chacha20poly1305_ietf_encrypt(
      c: Buffer,
      m: Buffer,
      ad: Buffer | null,
      nsec: null,
      npub: Buffer,
      k: Buffer,
    ): number;
    crypto_aead_chacha20poly1305_ietf_decrypt(
      m: Buffer,
      nsec: null,
      c: Buffer,
      ad: Buffer | null,
      npub: Buffer,
      k: Buffer,
    ): number;
  };
  export default sodium;
}
