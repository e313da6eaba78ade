// Per-packet AEAD and X25519 cost of the three candidate crypto bindings.
// Usage: node test/bench/crypto-bench.mjs   (single thread; prints µs per operation)
import crypto from "node:crypto";
import sodium from "sodium-native";
import _lsw from "libsodium-wrappers";

const lsw = _lsw.default ?? _lsw;
await lsw.ready;
const N = Number(process.env.N ?? 200_000);
const LEN = Number(process.env.LEN ?? 1400);

function bench(name, fn, n = N) {
  for (let i = 0; i < Math.min(n, 20_000); i++) fn(i); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  console.log(`${name.padEnd(58)} ${us.toFixed(2)} µs`);
  return us;
}

const key = crypto.randomBytes(32);
const nonce = Buffer.alloc(12);
const ad = crypto.randomBytes(16);
const slab = Buffer.alloc(LEN + 64);
crypto.randomFillSync(slab);
const plain = slab.subarray(0, LEN);
const out = Buffer.alloc(LEN + 16);

console.log(`AEAD seal of a ${LEN}-byte packet (N=${N})`);
bench("sodium-native chacha20poly1305_ietf, into caller buffer", (i) => {
  nonce.writeUInt32BE(i, 8);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out, plain, ad, null, nonce, key);
});
bench("sodium-native chacha20poly1305_ietf, in place + subarrays", (i) => {
  nonce.writeUInt32BE(i, 8);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
    slab.subarray(0, LEN + 16),
    slab.subarray(0, LEN),
    slab.subarray(LEN + 16, LEN + 32),
    null,
    nonce,
    key,
  );
});
bench(
  "libsodium-wrappers (WASM) chacha20poly1305_ietf (allocates)",
  (i) => {
    nonce.writeUInt32BE(i, 8);
    lsw.crypto_aead_chacha20poly1305_ietf_encrypt(plain, ad, null, nonce, key);
  },
  N / 4,
);
bench(
  "node:crypto chacha20-poly1305 (cipher object per packet)",
  (i) => {
    nonce.writeUInt32BE(i, 8);
    const c = crypto.createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    c.setAAD(ad, { plaintextLength: LEN });
    c.update(plain);
    c.final();
    c.getAuthTag();
  },
  N / 4,
);
bench(
  "node:crypto aes-256-gcm (cipher object per packet)",
  (i) => {
    nonce.writeUInt32BE(i, 8);
    const c = crypto.createCipheriv("aes-256-gcm", key, nonce);
    c.setAAD(ad);
    c.update(plain);
    c.final();
    c.getAuthTag();
  },
  N / 4,
);

console.log("X25519");
const sk = crypto.randomBytes(32);
const pk = Buffer.alloc(32);
sodium.crypto_scalarmult_base(pk, crypto.randomBytes(32));
const q = Buffer.alloc(32);
bench("sodium-native crypto_scalarmult", () => sodium.crypto_scalarmult(q, sk, pk), 5000);
bench("libsodium-wrappers crypto_scalarmult", () => lsw.crypto_scalarmult(sk, pk), 2000);
const a = crypto.generateKeyPairSync("x25519");
const b = crypto.generateKeyPairSync("x25519");
bench(
  "node:crypto diffieHellman (key objects prebuilt)",
  () => crypto.diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey }),
  5000,
);
