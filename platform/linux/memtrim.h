/* memtrim: glibc malloc_trim(0) as mallocTrim() (memtrim.c). */
#ifndef MINTUN_MEMTRIM_H
#define MINTUN_MEMTRIM_H

#include <node_api.h>

/* Adds mallocTrim() to the addon's exports. */
void memtrim_init(napi_env env, napi_value exports);

#endif
