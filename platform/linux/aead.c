/*
 * aead: the data path's AEAD through the OpenSSL that node itself links and exports
 * (EVP, no crypto of our own): AES-256-GCM and ChaCha20-Poly1305, one cipher context
 * per key, kept for the key's life so the key schedule (AES round keys, GHASH table)
 * runs once per epoch and not once per packet.
 *
 *   aeadKey(suite, key32, encrypt) -> handle   suite 1 = ChaCha20-Poly1305, 2 = AES-256-GCM
 *   aeadFree(handle)                           EVP_CIPHER_CTX_free: the provider wipes the key
 *                                              schedule (OPENSSL_clear_free); idempotent
 *   aeadSeal(handle, buf, start, adLen, plainLen) -> bool
 *   aeadOpen(handle, buf, start, adLen, cipherLen) -> bool
 *   aeadSealBatch(handle, buf, starts, adLens, plainLens, count) -> sealed
 *   aeadOpenBatch(handle, buf, starts, adLens, cipherLens, count, ok: Uint8Array) -> opened
 *
 * A packet at buf[start..]: associated data = adLen bytes from start, then the plaintext
 * (seal, in place) or ciphertext||tag (open, in place: the plaintext replaces the ciphertext).
 * The 12-byte nonce is 4 zero bytes || buf[start+8 .. start+16) (type byte and 56-bit
 * counter of the packet header, docs/PROTOCOL.md "Packets"): unique per key because the
 * sender's counter never repeats within an epoch and every epoch has its own keys.
 * Bounds are checked on every call; a failed open leaves the ciphertext region undefined
 * (the caller drops the packet) and reports false.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aead.h"

#define TAG_BYTES 16
#define KEY_BYTES 32
#define HDR_NONCE_OFF 8

typedef struct {
  EVP_CIPHER_CTX *ctx;
  int encrypt;
} aead_key;

static void aead_finalize(napi_env env, void *data, void *hint) {
  aead_key *k = data;
  if (k->ctx) EVP_CIPHER_CTX_free(k->ctx);
  k->ctx = NULL;
  free(k);
}

static napi_value throw_msg(napi_env env, const char *msg) {
  napi_throw_error(env, "EAEAD", msg);
  return NULL;
}

static napi_value aead_key_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t suite = 0;
  bool enc = false;
  void *key = NULL;
  size_t klen = 0;
  if (argc < 3 || napi_get_value_uint32(env, argv[0], &suite) != napi_ok ||
      napi_get_buffer_info(env, argv[1], &key, &klen) != napi_ok || napi_get_value_bool(env, argv[2], &enc) != napi_ok)
    return throw_msg(env, "aeadKey(suite, key, encrypt)");
  if (klen != KEY_BYTES) return throw_msg(env, "key must be 32 bytes");
  const EVP_CIPHER *c = suite == 1 ? EVP_chacha20_poly1305() : suite == 2 ? EVP_aes_256_gcm() : NULL;
  if (!c) return throw_msg(env, "unknown suite");
  aead_key *k = calloc(1, sizeof *k);
  if (!k) return throw_msg(env, "out of memory");
  k->encrypt = enc;
  k->ctx = EVP_CIPHER_CTX_new();
  int ok = k->ctx && EVP_CipherInit_ex(k->ctx, c, NULL, NULL, NULL, enc) == 1 &&
           EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) == 1 &&
           EVP_CipherInit_ex(k->ctx, NULL, NULL, key, NULL, enc) == 1;
  if (!ok) {
    if (k->ctx) EVP_CIPHER_CTX_free(k->ctx);
    free(k);
    return throw_msg(env, "EVP_CipherInit_ex failed");
  }
  napi_value h;
  if (napi_create_external(env, k, aead_finalize, NULL, &h) != napi_ok) {
    EVP_CIPHER_CTX_free(k->ctx);
    free(k);
    return throw_msg(env, "napi_create_external failed");
  }
  return h;
}

static aead_key *get_key(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

static napi_value aead_free_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  aead_key *k = argc >= 1 ? get_key(env, argv[0]) : NULL;
  if (k && k->ctx) {
    EVP_CIPHER_CTX_free(k->ctx);
    k->ctx = NULL;
  }
  return NULL;
}

/* one packet; the caller checked bounds */
static bool seal_one(EVP_CIPHER_CTX *ctx, uint8_t *p, uint32_t adLen, uint32_t plainLen) {
  uint8_t iv[12] = {0};
  memcpy(iv + 4, p + HDR_NONCE_OFF, 8);
  int n = 0;
  uint8_t *pt = p + adLen;
  if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, 1) != 1) return false;
  if (adLen && EVP_CipherUpdate(ctx, NULL, &n, p, (int)adLen) != 1) return false;
  if (plainLen && EVP_CipherUpdate(ctx, pt, &n, pt, (int)plainLen) != 1) return false;
  if (EVP_CipherFinal_ex(ctx, pt + plainLen, &n) != 1) return false;
  return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES, pt + plainLen) == 1;
}

static bool open_one(EVP_CIPHER_CTX *ctx, uint8_t *p, uint32_t adLen, uint32_t cipherLen) {
  uint8_t iv[12] = {0};
  memcpy(iv + 4, p + HDR_NONCE_OFF, 8);
  int n = 0;
  uint32_t clen = cipherLen - TAG_BYTES;
  uint8_t *ct = p + adLen;
  if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, 0) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, ct + clen) != 1) return false;
  if (adLen && EVP_CipherUpdate(ctx, NULL, &n, p, (int)adLen) != 1) return false;
  if (clen && EVP_CipherUpdate(ctx, ct, &n, ct, (int)clen) != 1) return false;
  return EVP_CipherFinal_ex(ctx, ct + clen, &n) == 1;
}

static bool in_bounds(size_t blen, uint32_t start, uint32_t adLen, uint32_t bodyLen, uint32_t extra) {
  uint64_t end = (uint64_t)start + adLen + bodyLen + extra;
  return adLen >= HDR_NONCE_OFF + 8 && end <= blen && bodyLen <= 0x7fffffff;
}

/* seal/open one: (handle, buf, start, adLen, len) */
static napi_value one(napi_env env, napi_callback_info info, bool seal) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  aead_key *k = argc >= 5 ? get_key(env, argv[0]) : NULL;
  uint8_t *buf = NULL;
  size_t blen = 0;
  uint32_t start = 0, adLen = 0, len = 0;
  bool ok = k && k->ctx && k->encrypt == seal && napi_get_buffer_info(env, argv[1], (void **)&buf, &blen) == napi_ok &&
            napi_get_value_uint32(env, argv[2], &start) == napi_ok &&
            napi_get_value_uint32(env, argv[3], &adLen) == napi_ok &&
            napi_get_value_uint32(env, argv[4], &len) == napi_ok;
  if (ok) {
    if (seal)
      ok = in_bounds(blen, start, adLen, len, TAG_BYTES) && seal_one(k->ctx, buf + start, adLen, len);
    else
      ok = len >= TAG_BYTES && in_bounds(blen, start, adLen, len, 0) && open_one(k->ctx, buf + start, adLen, len);
  }
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

static napi_value aead_seal_js(napi_env env, napi_callback_info info) { return one(env, info, true); }
static napi_value aead_open_js(napi_env env, napi_callback_info info) { return one(env, info, false); }

static bool u32_array(napi_env env, napi_value v, uint32_t **out, size_t *n) {
  napi_typedarray_type t;
  size_t len = 0;
  void *data = NULL;
  if (napi_get_typedarray_info(env, v, &t, &len, &data, NULL, NULL) != napi_ok || t != napi_uint32_array) return false;
  *out = data;
  *n = len;
  return true;
}

/*
 * batch: (handle, buf, starts, adLens, lens, count[, ok Uint8Array]) -> number done.
 * Seal: every packet is sealed (stops at the first that cannot be: bad bounds). Open: ok[i]
 * = 1 when packet i authenticated, 0 otherwise; returns how many did.
 */
static napi_value batch(napi_env env, napi_callback_info info, bool seal) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  aead_key *k = argc >= 6 ? get_key(env, argv[0]) : NULL;
  uint8_t *buf = NULL, *okv = NULL;
  size_t blen = 0, ns = 0, na = 0, nl = 0, nok = 0;
  uint32_t *starts = NULL, *ads = NULL, *lens = NULL, count = 0;
  napi_typedarray_type t;
  bool good = k && k->ctx && k->encrypt == seal &&
              napi_get_buffer_info(env, argv[1], (void **)&buf, &blen) == napi_ok &&
              u32_array(env, argv[2], &starts, &ns) && u32_array(env, argv[3], &ads, &na) &&
              u32_array(env, argv[4], &lens, &nl) && napi_get_value_uint32(env, argv[5], &count) == napi_ok &&
              count <= ns && count <= na && count <= nl;
  if (good && !seal)
    good = argc >= 7 &&
           napi_get_typedarray_info(env, argv[6], &t, &nok, (void **)&okv, NULL, NULL) == napi_ok &&
           t == napi_uint8_array && count <= nok;
  uint32_t done = 0;
  if (good) {
    for (uint32_t i = 0; i < count; i++) {
      if (seal) {
        if (!in_bounds(blen, starts[i], ads[i], lens[i], TAG_BYTES) || !seal_one(k->ctx, buf + starts[i], ads[i], lens[i]))
          break;
        done++;
      } else {
        bool ok = lens[i] >= TAG_BYTES && in_bounds(blen, starts[i], ads[i], lens[i], 0) &&
                  open_one(k->ctx, buf + starts[i], ads[i], lens[i]);
        okv[i] = ok;
        done += ok;
      }
    }
  }
  napi_value r;
  napi_create_uint32(env, done, &r);
  return r;
}

static napi_value aead_seal_batch_js(napi_env env, napi_callback_info info) { return batch(env, info, true); }
static napi_value aead_open_batch_js(napi_env env, napi_callback_info info) { return batch(env, info, false); }

void aead_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"aeadKey", NULL, aead_key_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadFree", NULL, aead_free_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadSeal", NULL, aead_seal_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadOpen", NULL, aead_open_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadSealBatch", NULL, aead_seal_batch_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadOpenBatch", NULL, aead_open_batch_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
