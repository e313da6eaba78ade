/* aead: AES-256-GCM / ChaCha20-Poly1305 through node's OpenSSL, per packet and batched (aead.c). */
#ifndef MINTUN_AEAD_H
#define MINTUN_AEAD_H

#include <node_api.h>

/* Adds aeadKey, aeadFree, aeadSeal, aeadOpen, aeadSealBatch, aeadOpenBatch to the addon's exports. */
void aead_init(napi_env env, napi_value exports);

#endif
