/*
 * memtrim: give freed C heap memory back to the kernel (glibc malloc_trim(3)).
 *
 *   mallocTrim() -> boolean     true when memory was released; false without glibc
 *
 * glibc keeps memory freed inside its heaps (the main arena and one arena per thread
 * that allocated: libuv's pool, V8's compiler and GC threads) resident unless it is at
 * the top of a heap. In a long-running daemon whose allocations come and go at a low
 * rate (a directory answering a registration every few seconds) those freed pages add
 * up, and RSS creeps although nothing is live (docs/PERFORMANCE.md "Soak"). malloc_trim(0)
 * walks every arena and returns every whole free page (madvise MADV_DONTNEED); it takes
 * about 1 ms (13 ms right after 38 MiB were freed between live buffers). Mechanism only: the daemon
 * calls it on its coarse timer (src/daemon/memory.ts). Registered by memtrim_init().
 */
#include <node_api.h>
#include <stdbool.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "memtrim.h"

static napi_value malloc_trim_js(napi_env env, napi_callback_info info) {
  bool released = false;
#ifdef __GLIBC__
  released = malloc_trim(0) == 1;
#endif
  napi_value v;
  napi_get_boolean(env, released, &v);
  return v;
}

void memtrim_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"mallocTrim", NULL, malloc_trim_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
