/*
 * lockfile: an exclusive advisory lock on a file (flock(2)), held as long as the returned
 * fd stays open: the kernel releases it when the process exits, however it exits (also
 * kill -9), so a lock file never goes stale.
 *
 *   lockFile(path: string) -> fd (number)
 *
 * Opens (creating, mode 0644) path with O_RDWR|O_CLOEXEC and takes LOCK_EX|LOCK_NB.  Throws
 * an Error with code = errno name: "EAGAIN" (EWOULDBLOCK, the same value on Linux: another open file holds
 * the lock; the fd is closed again), or whatever open/flock failed with (EACCES, ENOENT, ...);
 * EINVAL for a non-string path.  EINTR is retried.  Mechanism only: what the lock protects
 * and what to tell the user is decided in TypeScript (src/daemon/lock.ts).  The caller closes
 * the fd with closeFd to release the lock.  Registered by lockfile_init(), called from the
 * init function of mintun_linux.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lockfile.h"

#define LOCK_PATH_MAX 4096

static napi_value throw_err(napi_env env, int err, const char* what) {
  const char* name = strerrorname_np(err);
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, name ? name : "EUNKNOWN", msg);
  return NULL;
}

static napi_value lock_file(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[LOCK_PATH_MAX];
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 ||
      len >= sizeof path - 1) {
    napi_throw_error(env, "EINVAL", "lockFile(path): a non-empty path string");
    return NULL;
  }
  int fd;
  do fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return throw_err(env, errno, "open");
  int r;
  do r = flock(fd, LOCK_EX | LOCK_NB);
  while (r != 0 && errno == EINTR);
  if (r != 0) {
    int err = errno;
    close(fd);
    return throw_err(env, err, "flock");
  }
  napi_value v;
  napi_create_int32(env, fd, &v);
  return v;
}

void lockfile_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"lockFile", NULL, lock_file, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
