/* notify: one AF_UNIX datagram to $NOTIFY_SOCKET as notifySend (notify.c). */
#ifndef MINTUN_NOTIFY_H
#define MINTUN_NOTIFY_H

#include <node_api.h>

/* Adds notifySend(path, message) to the addon's exports. */
void notify_init(napi_env env, napi_value exports);

#endif
