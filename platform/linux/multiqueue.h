/* multiqueue: multi-queue TUN, SO_REUSEPORT UDP groups and their steering (multiqueue.c). */
#ifndef MINTUN_MULTIQUEUE_H
#define MINTUN_MULTIQUEUE_H

#include <node_api.h>

/* Adds tunOpenQueues() and reuseportSteer() to the addon's exports. */
void multiqueue_init(napi_env env, napi_value exports);

#endif
