/*
 * peercred: the credentials of the process at the other end of a connected unix socket
 * (getsockopt SO_PEERCRED, unix(7)).  The kernel records them at connect() time, so they
 * name the connecting process, not whoever writes to the socket later (a passed fd keeps
 * the credentials of the process that connected).
 *
 *   peerCred(fd: number) -> { pid, uid, gid }
 *
 * Throws an Error with code = errno name when getsockopt fails (EBADF, ENOTSOCK,
 * ENOTCONN, ...), EINVAL for a non-integer fd.  Mechanism only: which uids may do what is
 * decided in TypeScript (src/api/server.ts).  Registered by peercred_init(), called from
 * the init function of mintun_linux.c.
 */
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "peercred.h"

static napi_value peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  double d;
  if (argc < 1 || napi_get_value_double(env, argv[0], &d) != napi_ok || !(d >= 0 && d <= 0x7fffffff) ||
      d != (double)(int32_t)d) {
    napi_throw_error(env, "EINVAL", "peerCred(fd): a file descriptor, integer >= 0");
    return NULL;
  }
  fd = (int32_t)d;
  struct ucred cred;
  socklen_t len = sizeof cred;
  int err = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ? errno : len != sizeof cred ? EPROTO : 0;
  if (err) {
    const char* name = strerrorname_np(err);
    char msg[128];
    snprintf(msg, sizeof msg, "getsockopt(SO_PEERCRED): %s", strerror(err));
    napi_throw_error(env, name ? name : "EUNKNOWN", msg);
    return NULL;
  }
  napi_value result, v;
  napi_create_object(env, &result);
  napi_create_int32(env, cred.pid, &v);
  napi_set_named_property(env, result, "pid", v);
  napi_create_uint32(env, cred.uid, &v);
  napi_set_named_property(env, result, "uid", v);
  napi_create_uint32(env, cred.gid, &v);
  napi_set_named_property(env, result, "gid", v);
  return result;
}

void peercred_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"peerCred", NULL, peer_cred, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
