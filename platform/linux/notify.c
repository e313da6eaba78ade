/*
 * notify: one datagram to an AF_UNIX datagram socket, as sd_notify(3) sends it.
 *
 *   notifySend(path: string, message: Uint8Array) -> undefined   throws Error with code = errno name
 *
 * path is a filesystem path, or "@name" for an abstract socket (systemd passes either in
 * $NOTIFY_SOCKET). The datagram leaves from this process, so the receiver's SO_PASSCRED
 * credentials name its pid: a unit can use NotifyAccess=main (Node's dgram has no AF_UNIX).
 * Sent with MSG_DONTWAIT (a full receive queue is EAGAIN, never a blocked event loop); the
 * socket is closed before returning. Mechanism only: what to send is src/daemon/notify.ts's.
 * Registered by notify_init(), called from the init function of mintun_linux.c.
 */
#include <errno.h>
#include <node_api.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

static napi_value throw_err(napi_env env, int err, const char* what) {
  const char* name = strerrorname_np(err);
  char msg[200];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, name ? name : "EUNKNOWN", msg);
  return NULL;
}

static napi_value notify_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  char path[sizeof sa.sun_path + 1];
  size_t plen = 0;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok) {
    napi_throw_error(env, "EINVAL", "notifySend(path: string, message: Uint8Array)");
    return NULL;
  }
  if (plen == 0 || plen >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@')) {
    napi_throw_error(env, "EINVAL", "notifySend: path must be absolute or @abstract, shorter than 108 bytes");
    return NULL;
  }
  memcpy(sa.sun_path, path, plen);
  if (path[0] == '@') sa.sun_path[0] = '\0'; /* abstract namespace */
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '@' ? 0 : 1));

  napi_typedarray_type t;
  size_t n;
  void* data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[1], &t, &n, &data, &ab, &off) != napi_ok || t != napi_uint8_array) {
    napi_throw_error(env, "EINVAL", "notifySend: message must be a Uint8Array");
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_err(env, errno, "socket(AF_UNIX, SOCK_DGRAM)");
  ssize_t r = sendto(fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr*)&sa, salen);
  int err = errno;
  close(fd);
  if (r < 0) return throw_err(env, err, "sendto(NOTIFY_SOCKET)");
  if ((size_t)r != n) return throw_err(env, EMSGSIZE, "sendto(NOTIFY_SOCKET): short write");
  return NULL;
}

void notify_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"notifySend", NULL, notify_send, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
