/*
 * dumpable: the process's "dumpable" attribute (prctl(2) PR_SET_DUMPABLE / PR_GET_DUMPABLE).
 *
 *   setDumpable(on: boolean) -> undefined     throws Error with code = errno name
 *   getDumpable() -> 0 | 1 | 2                 as the kernel reports it
 *
 * setDumpable(false) also sets RLIMIT_CORE to 0 (soft and hard): with fs.suid_dumpable = 2 the
 * kernel still dumps a non-dumpable process (root-owned core), so both are needed.
 * A process that is not dumpable writes no core file on a crash, and /proc/PID/mem,
 * /proc/PID/environ and ptrace attach are refused to other processes of the same uid
 * (the files become owned by root). The daemon clears it at start so its keys never land
 * in a core dump (src/daemon/main.ts; systemd units also set LimitCORE=0). Mechanism only;
 * registered by dumpable_init(), called from the init function of mintun_linux.c.
 */
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "dumpable.h"

static napi_value set_dumpable(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool on;
  if (argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) {
    napi_throw_error(env, "EINVAL", "setDumpable(on: boolean)");
    return NULL;
  }
  const char* what = "prctl(PR_SET_DUMPABLE)";
  int r = prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0);
  if (r == 0 && !on) {
    struct rlimit none = {0, 0};
    what = "setrlimit(RLIMIT_CORE, 0)";
    r = setrlimit(RLIMIT_CORE, &none);
  }
  if (r != 0) {
    int err = errno;
    const char* name = strerrorname_np(err);
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
    napi_throw_error(env, name ? name : "EUNKNOWN", msg);
  }
  return NULL;
}

static napi_value get_dumpable(napi_env env, napi_callback_info info) {
  napi_value v;
  napi_create_int32(env, prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), &v);
  return v;
}

void dumpable_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"setDumpable", NULL, set_dumpable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getDumpable", NULL, get_dumpable, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
