/* peercred: SO_PEERCRED of a connected unix socket, as the N-API function peerCred (peercred.c). */
#ifndef MINTUN_PEERCRED_H
#define MINTUN_PEERCRED_H

#include <node_api.h>

/* Adds peerCred(fd) -> { pid, uid, gid } to the addon's exports. */
void peercred_init(napi_env env, napi_value exports);

#endif
