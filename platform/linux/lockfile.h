/* lockfile: an exclusive flock(2) on a file, as the N-API function lockFile (lockfile.c). */
#ifndef MINTUN_LOCKFILE_H
#define MINTUN_LOCKFILE_H

#include <node_api.h>

/* Adds lockFile(path) -> fd to the addon's exports. */
void lockfile_init(napi_env env, napi_value exports);

#endif
