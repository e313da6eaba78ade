// The data path's AEAD, in process: libsodium ChaCha20-Poly1305 (sodium-native, the
// current path with its three views), node:crypto AES-256-GCM (a cipher object per
// packet), and the addon's OpenSSL EVP contexts (platform/linux/aead.c: one context per
// key; one call per packet, or one call per batch of 64) for ChaCha20-Poly1305 and
// AES-256-GCM. Prints CPU µs per packet and s/GB (CPU seconds per 10^9 plaintext bytes) for seal
// and open.
// Usage: npm run build:native && node test/bench/aead-bench.mjs [LEN...]  (default 92 1400)
import crypto from "node:crypto";
import { createRequire } from "node:module";
import sodium from "sodium-native";

const addon = createRequire(import.meta.url)("../../platform/linux/build/Release/mintun_linux.node");
const MS = Number(process.env.MS ?? 400); // time per case
const lens = process.argv.slice(2).map(Number);
const BATCH = 64;
const HDR = 16;
const key = crypto.randomBytes(32);

// CPU time of this process (user + system), not wall clock: on a shared, loaded machine the
// wall clock counts other processes' time slices too
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
function time(fn, per) {
  for (let i = 0; i < 2000; i++) fn(i);
  let n = 0;
  const t0 = cpuUs();
  let t = 0;
  do {
    for (let i = 0; i < 200; i++) fn(n++);
    t = cpuUs() - t0;
  } while (t < MS * 1e3);
  return t / (n * per); // CPU µs per packet
}

for (const LEN of lens.length ? lens : [92, 1400]) {
  const SLOT = LEN + HDR + 16 + 16;
  const slab = crypto.randomBytes(SLOT * BATCH);
  const starts = new Uint32Array(BATCH).map((_, i) => i * SLOT);
  const ads = new Uint32Array(BATCH).fill(HDR);
  const plainLens = new Uint32Array(BATCH).fill(LEN);
  const cipherLens = new Uint32Array(BATCH).fill(LEN + 16);
  const okv = new Uint8Array(BATCH);
  const nonce = Buffer.alloc(12);
  const rows = [];
  const row = (name, us) => rows.push([name, us, (us * 1e3) / LEN]);
  const setCounter = (o, i) => slab.writeUInt32BE(i >>> 0, o + 12);

  row(
    "sodium chacha20poly1305 seal, 3 views (today)",
    time((i) => {
      const o = (i % BATCH) * SLOT;
      setCounter(o, i);
      for (let k = 0; k < 12; k++) nonce[k] = k < 4 ? 0 : slab[o + 4 + k];
      sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
        slab.subarray(o + HDR, o + HDR + LEN + 16),
        slab.subarray(o + HDR, o + HDR + LEN),
        slab.subarray(o, o + HDR),
        null,
        nonce,
        key,
      );
    }, 1),
  );
  // open needs valid packets: seal a batch once with sodium, open copies
  const sealedS = Buffer.from(slab);
  const work = Buffer.alloc(slab.length);
  row(
    "sodium chacha20poly1305 open, 3 views (today)",
    time((i) => {
      const o = (i % BATCH) * SLOT;
      if (o === 0) sealedS.copy(work);
      for (let k = 0; k < 12; k++) nonce[k] = k < 4 ? 0 : work[o + 4 + k];
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
        work.subarray(o + HDR, o + HDR + LEN),
        null,
        work.subarray(o + HDR, o + HDR + LEN + 16),
        work.subarray(o, o + HDR),
        nonce,
        key,
      );
    }, 1),
  );
  row(
    "node:crypto aes-256-gcm seal, cipher object per packet",
    time((i) => {
      const o = (i % BATCH) * SLOT;
      for (let k = 0; k < 12; k++) nonce[k] = k < 4 ? 0 : slab[o + 4 + k];
      const c = crypto.createCipheriv("aes-256-gcm", key, nonce);
      c.setAAD(slab.subarray(o, o + HDR));
      c.update(slab.subarray(o + HDR, o + HDR + LEN));
      c.final();
      c.getAuthTag();
    }, 1),
  );
  for (const [suite, name] of [
    [1, "chacha20-poly1305"],
    [2, "aes-256-gcm"],
  ]) {
    const enc = addon.aeadKey(suite, key, true);
    const dec = addon.aeadKey(suite, key, false);
    row(
      `addon EVP ${name} seal, 1 call per packet`,
      time((i) => {
        const o = (i % BATCH) * SLOT;
        setCounter(o, i);
        if (!addon.aeadSeal(enc, slab, o, HDR, LEN)) throw new Error("seal");
      }, 1),
    );
    row(
      `addon EVP ${name} seal, 1 call per ${BATCH}`,
      time(() => {
        if (addon.aeadSealBatch(enc, slab, starts, ads, plainLens, BATCH) !== BATCH) throw new Error("seal");
      }, BATCH),
    );
    const sealed = Buffer.from(slab);
    row(
      `addon EVP ${name} open, 1 call per packet`,
      time((i) => {
        const o = (i % BATCH) * SLOT;
        if (o === 0) sealed.copy(work);
        if (!addon.aeadOpen(dec, work, o, HDR, LEN + 16)) throw new Error("open");
      }, 1),
    );
    const copyUs = time(() => sealed.copy(work), BATCH);
    row(
      `addon EVP ${name} open, 1 call per ${BATCH} (copy excluded)`,
      time(() => {
        sealed.copy(work);
        if (addon.aeadOpenBatch(dec, work, starts, ads, cipherLens, BATCH, okv) !== BATCH)
          throw new Error("open");
      }, BATCH) - copyUs,
    );
    addon.aeadFree(enc);
    addon.aeadFree(dec);
  }
  console.log(`\n${LEN}-byte plaintext, 16-byte header as associated data (MS=${MS})`);
  for (const [n, us, sgb] of rows)
    console.log(`${n.padEnd(60)} ${us.toFixed(3).padStart(7)} µs  ${sgb.toFixed(2).padStart(6)} s/GB`);
}
