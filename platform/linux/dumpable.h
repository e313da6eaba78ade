/* dumpable: prctl(PR_SET_DUMPABLE / PR_GET_DUMPABLE) as setDumpable / getDumpable (dumpable.c). */
#ifndef MINTUN_DUMPABLE_H
#define MINTUN_DUMPABLE_H

#include <node_api.h>

/* Adds setDumpable(on) and getDumpable() to the addon's exports. */
void dumpable_init(napi_env env, napi_value exports);

#endif
