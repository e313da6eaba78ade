/*
 * mintun_linux: the Linux syscall layer of mintun (N-API, plain C).
 *
 * Mechanism only: open a TUN device or a UDP socket, wait for readability with
 * uv_poll on the Node event loop (never the libuv threadpool), and move packets in
 * batches between the kernel and Buffers owned by the caller.  No filtering, routing
 * or policy lives here: every decision about packet bytes is taken in TypeScript
 * (src/net/), where it is tested.
 *
 * Conventions
 *  - Setup calls (tunOpen, udpOpen, new Poller) throw an Error whose `code` is the
 *    errno name ("EPERM"); src/net/native.ts turns it into a PlatformError.
 *  - Hot-path calls (tunRead, tunWrite, udpRecv, udpSend) do not throw on I/O errors:
 *    they return counts (and a negative errno when a read could do nothing at all) and
 *    write drop/error counts into a small Uint32Array `res` given by the caller.
 *    Wrong arguments (types, out-of-bounds slots) are programming errors: EINVAL thrown.
 *  - EINTR is retried, EAGAIN ends a batch.  Nothing asserts.
 *  - Slot layout: packet i lives at buf[i*slot + headroom ..), its length in lens[i].
 *  - Address record (20 bytes): [0]=4|6, [1]=0, [2..3]=port BE, [4..19]=address
 *    (IPv4 in [4..7], rest zero).  IPv4-mapped IPv6 sources are reported as family 4.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_BATCH 256 /* packets per recvmmsg/sendmmsg call (stack arrays below) */
#define ADDR_LEN 20

/* ---------- helpers ---------- */

static const char* errno_name(int err) {
  const char* n = strerrorname_np(err); /* glibc >= 2.32 */
  return n ? n : "EUNKNOWN";
}

/* Throw Error(message) with .code = errno name.  Always returns NULL for `return throw_errno(...)`. */
static napi_value throw_errno(napi_env env, int err, const char* what) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, errno_name(err), msg);
  return NULL;
}

static napi_value throw_inval(napi_env env, const char* what) {
  napi_throw_error(env, "EINVAL", what);
  return NULL;
}

static int get_u32(napi_env env, napi_value v, uint32_t* out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

/* Any TypedArray (Buffer is a Uint8Array): pointer to its first element and byte length. */
static int get_bytes(napi_env env, napi_value v, uint8_t** data, size_t* len) {
  napi_typedarray_type t;
  size_t n, off;
  napi_value ab;
  void* p;
  if (napi_get_typedarray_info(env, v, &t, &n, &p, &ab, &off) != napi_ok) return 0;
  if (t != napi_uint8_array) return 0;
  *data = p;
  *len = n;
  return 1;
}

static int get_u32s(napi_env env, napi_value v, uint32_t** data, size_t* count) {
  napi_typedarray_type t;
  size_t n, off;
  napi_value ab;
  void* p;
  if (napi_get_typedarray_info(env, v, &t, &n, &p, &ab, &off) != napi_ok) return 0;
  if (t != napi_uint32_array) return 0;
  *data = p;
  *count = n;
  return 1;
}

static napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

static void set_prop(napi_env env, napi_value obj, const char* key, napi_value v) {
  napi_set_named_property(env, obj, key, v);
}

/* Address record -> sockaddr for a socket of family sock_af.  Returns socklen or 0 if the
 * destination cannot be expressed on that socket (IPv6 destination on an AF_INET socket). */
static socklen_t record_to_sockaddr(const uint8_t* rec, int sock_af, struct sockaddr_storage* ss) {
  memset(ss, 0, sizeof *ss);
  uint16_t port_be;
  memcpy(&port_be, rec + 2, 2);
  if (sock_af == AF_INET) {
    if (rec[0] != 4) return 0;
    struct sockaddr_in* s = (struct sockaddr_in*)ss;
    s->sin_family = AF_INET;
    s->sin_port = port_be;
    memcpy(&s->sin_addr, rec + 4, 4);
    return sizeof *s;
  }
  struct sockaddr_in6* s = (struct sockaddr_in6*)ss;
  s->sin6_family = AF_INET6;
  s->sin6_port = port_be;
  if (rec[0] == 4) { /* IPv4 on a dual-stack socket: ::ffff:a.b.c.d */
    s->sin6_addr.s6_addr[10] = 0xff;
    s->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s->sin6_addr.s6_addr[12], rec + 4, 4);
  } else {
    memcpy(&s->sin6_addr, rec + 4, 16);
  }
  return sizeof *s;
}

static void sockaddr_to_record(const struct sockaddr_storage* ss, uint8_t* rec) {
  memset(rec, 0, ADDR_LEN);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in* s = (const struct sockaddr_in*)ss;
    rec[0] = 4;
    memcpy(rec + 2, &s->sin_port, 2);
    memcpy(rec + 4, &s->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6* s = (const struct sockaddr_in6*)ss;
    memcpy(rec + 2, &s->sin6_port, 2);
    if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
      rec[0] = 4;
      memcpy(rec + 4, &s->sin6_addr.s6_addr[12], 4);
    } else {
      rec[0] = 6;
      memcpy(rec + 4, &s->sin6_addr, 16);
    }
  }
}

/* ---------- TUN ---------- */

/* tunOpen(name: string) -> { fd, name }.  name "" lets the kernel pick (tun%d). */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char name[IFNAMSIZ + 1] = {0};
  size_t nlen = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok)
    return throw_inval(env, "tunOpen: name must be a string");
  if (nlen >= IFNAMSIZ) return throw_inval(env, "tunOpen: interface name longer than 15 bytes");

  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return throw_errno(env, errno, "open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, nlen);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "ioctl TUNSETIFF");
  }
  napi_value obj, jname;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &jname);
  set_prop(env, obj, "fd", make_int(env, fd));
  set_prop(env, obj, "name", jname);
  return obj;
}

/* tunRead(fd, buf, slot, headroom, max, lens) -> count, or -errno if the first read failed
 * with something other than EAGAIN.  read() until EAGAIN or max packets. */
static napi_value tun_read(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd, slot, head, max;
  uint8_t* buf;
  size_t blen, nlens;
  uint32_t* lens;
  if (argc < 6 || !get_u32(env, argv[0], &fd) || !get_bytes(env, argv[1], &buf, &blen) ||
      !get_u32(env, argv[2], &slot) || !get_u32(env, argv[3], &head) || !get_u32(env, argv[4], &max) ||
      !get_u32s(env, argv[5], &lens, &nlens))
    return throw_inval(env, "tunRead: bad arguments");
  if (head >= slot || (uint64_t)max * slot > blen || max > nlens) return throw_inval(env, "tunRead: slab too small");

  uint32_t i;
  for (i = 0; i < max; i++) {
    ssize_t n;
    do n = read((int)fd, buf + (size_t)i * slot + head, slot - head);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || i > 0) break;
      return make_int(env, -errno);
    }
    lens[i] = (uint32_t)n;
  }
  return make_int(env, i);
}

/* tunWrite(fd, buf, offs, lens, count, res) -> written.  One write() per packet (a TUN fd
 * takes one packet per write).  res[0] += dropped (EAGAIN/ENOBUFS), res[1] += other errors,
 * res[2] += bytes written. */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd, count;
  uint8_t* buf;
  size_t blen, noffs, nlens, nres;
  uint32_t *offs, *lens, *res;
  if (argc < 6 || !get_u32(env, argv[0], &fd) || !get_bytes(env, argv[1], &buf, &blen) ||
      !get_u32s(env, argv[2], &offs, &noffs) || !get_u32s(env, argv[3], &lens, &nlens) ||
      !get_u32(env, argv[4], &count) || !get_u32s(env, argv[5], &res, &nres) || nres < 3)
    return throw_inval(env, "tunWrite: bad arguments");
  if (count > noffs || count > nlens) return throw_inval(env, "tunWrite: count exceeds offs/lens");
  for (uint32_t i = 0; i < count; i++)
    if ((uint64_t)offs[i] + lens[i] > blen) return throw_inval(env, "tunWrite: packet outside buffer");

  uint32_t written = 0;
  for (uint32_t i = 0; i < count; i++) {
    ssize_t n;
    do n = write((int)fd, buf + offs[i], lens[i]);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
      written++;
      res[2] += (uint32_t)n;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      res[0]++;
    } else {
      res[1]++;
    }
  }
  return make_int(env, written);
}

/* ---------- UDP ---------- */

/* Ask for `size` bytes of socket buffer: SO_*BUFFORCE (needs CAP_NET_ADMIN), else the
 * plain option, which the kernel caps at net.core.[rw]mem_max. */
static int set_buf(int fd, int force_opt, int opt, uint32_t size) {
  int v = (int)size;
  if (size == 0) return 0;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

/* udpOpen(addrRecord, rcvbuf, sndbuf) -> { fd, port, family }.  The record's family picks
 * AF_INET or AF_INET6; an AF_INET6 socket is dual stack (IPV6_V6ONLY=0). */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t* rec;
  size_t rlen;
  uint32_t rcvbuf, sndbuf;
  if (argc < 3 || !get_bytes(env, argv[0], &rec, &rlen) || rlen < ADDR_LEN || !get_u32(env, argv[1], &rcvbuf) ||
      !get_u32(env, argv[2], &sndbuf) || (rec[0] != 4 && rec[0] != 6))
    return throw_inval(env, "udpOpen: bad arguments");
  int af = rec[0] == 4 ? AF_INET : AF_INET6;
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  const char* what = NULL;
  int zero = 0;
  struct sockaddr_storage ss;
  socklen_t sl = record_to_sockaddr(rec, af, &ss);
  if (af == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0)
    what = "setsockopt IPV6_V6ONLY";
  else if (set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf) < 0)
    what = "setsockopt SO_RCVBUF";
  else if (set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf) < 0)
    what = "setsockopt SO_SNDBUF";
  else if (bind(fd, (struct sockaddr*)&ss, sl) < 0)
    what = "bind";
  else if ((sl = sizeof ss, getsockname(fd, (struct sockaddr*)&ss, &sl)) < 0)
    what = "getsockname";
  if (what) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, what);
  }
  uint8_t local[ADDR_LEN];
  sockaddr_to_record(&ss, local);
  napi_value obj;
  napi_create_object(env, &obj);
  set_prop(env, obj, "fd", make_int(env, fd));
  set_prop(env, obj, "port", make_int(env, (local[2] << 8) | local[3]));
  set_prop(env, obj, "family", make_int(env, af == AF_INET ? 4 : 6));
  return obj;
}

/* udpRecv(fd, buf, slot, headroom, max, lens, addrs, res) -> count, or -errno if nothing
 * was received for a reason other than EAGAIN.  One recvmmsg(MSG_DONTWAIT) of up to
 * min(max, 256) datagrams.  A datagram larger than its slot is reported with length 0
 * and counted in res[0]. */
static napi_value udp_recv(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd, slot, head, max;
  uint8_t *buf, *addrs;
  size_t blen, alen, nlens, nres;
  uint32_t *lens, *res;
  if (argc < 8 || !get_u32(env, argv[0], &fd) || !get_bytes(env, argv[1], &buf, &blen) ||
      !get_u32(env, argv[2], &slot) || !get_u32(env, argv[3], &head) || !get_u32(env, argv[4], &max) ||
      !get_u32s(env, argv[5], &lens, &nlens) || !get_bytes(env, argv[6], &addrs, &alen) ||
      !get_u32s(env, argv[7], &res, &nres) || nres < 1)
    return throw_inval(env, "udpRecv: bad arguments");
  if (max > MAX_BATCH) max = MAX_BATCH;
  if (head >= slot || (uint64_t)max * slot > blen || max > nlens || (uint64_t)max * ADDR_LEN > alen)
    return throw_inval(env, "udpRecv: slab too small");

  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_storage from[MAX_BATCH];
  memset(msgs, 0, sizeof(struct mmsghdr) * max);
  for (uint32_t i = 0; i < max; i++) {
    iov[i].iov_base = buf + (size_t)i * slot + head;
    iov[i].iov_len = slot - head;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
  }
  int n;
  do n = recvmmsg((int)fd, msgs, max, MSG_DONTWAIT, NULL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return make_int(env, (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno);
  for (int i = 0; i < n; i++) {
    if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      lens[i] = 0;
      res[0]++;
    } else {
      lens[i] = msgs[i].msg_len;
    }
    sockaddr_to_record(&from[i], addrs + (size_t)i * ADDR_LEN);
  }
  return make_int(env, n);
}

/* udpSend(fd, sockFamily, buf, offs, lens, count, addr, addrOff, res) -> sent.
 * All packets go to the one destination addr[addrOff..+20]; sendmmsg in chunks of 256
 * until all are sent or the socket is full.  res[0] += dropped (EAGAIN/ENOBUFS: the rest
 * of the batch), res[1] += other errors (the failing packet is skipped), res[2] += bytes sent. */
static napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd, fam, count, aoff;
  uint8_t *buf, *addr;
  size_t blen, alen, noffs, nlens, nres;
  uint32_t *offs, *lens, *res;
  if (argc < 9 || !get_u32(env, argv[0], &fd) || !get_u32(env, argv[1], &fam) ||
      !get_bytes(env, argv[2], &buf, &blen) || !get_u32s(env, argv[3], &offs, &noffs) ||
      !get_u32s(env, argv[4], &lens, &nlens) || !get_u32(env, argv[5], &count) ||
      !get_bytes(env, argv[6], &addr, &alen) || !get_u32(env, argv[7], &aoff) ||
      !get_u32s(env, argv[8], &res, &nres) || nres < 3)
    return throw_inval(env, "udpSend: bad arguments");
  if (count > noffs || count > nlens || (uint64_t)aoff + ADDR_LEN > alen ||
      (addr[aoff] != 4 && addr[aoff] != 6))
    return throw_inval(env, "udpSend: bad count or address record");
  for (uint32_t i = 0; i < count; i++)
    if ((uint64_t)offs[i] + lens[i] > blen) return throw_inval(env, "udpSend: packet outside buffer");

  struct sockaddr_storage to;
  socklen_t tolen = record_to_sockaddr(addr + aoff, fam == 4 ? AF_INET : AF_INET6, &to);
  if (tolen == 0) { /* IPv6 destination on an IPv4-only socket */
    res[1] += count;
    return make_int(env, 0);
  }
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  uint32_t done = 0, sent = 0;
  while (done < count) {
    uint32_t n = count - done < MAX_BATCH ? count - done : MAX_BATCH;
    memset(msgs, 0, sizeof(struct mmsghdr) * n);
    for (uint32_t j = 0; j < n; j++) {
      iov[j].iov_base = buf + offs[done + j];
      iov[j].iov_len = lens[done + j];
      msgs[j].msg_hdr.msg_iov = &iov[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
      msgs[j].msg_hdr.msg_name = &to;
      msgs[j].msg_hdr.msg_namelen = tolen;
    }
    int r;
    do r = sendmmsg((int)fd, msgs, n, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
        res[0] += count - done;
        break;
      }
      res[1]++; /* this packet failed (EMSGSIZE, ENETUNREACH, ...): skip it */
      done++;
      continue;
    }
    for (int j = 0; j < r; j++) res[2] += msgs[j].msg_len;
    sent += (uint32_t)r;
    done += (uint32_t)r;
  }
  return make_int(env, sent);
}

/* closeFd(fd) -> 0 or -errno.  Not retried on EINTR: Linux has released the fd anyway. */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd;
  if (argc < 1 || !get_u32(env, argv[0], &fd)) return throw_inval(env, "closeFd: bad fd");
  return make_int(env, close((int)fd) < 0 ? -errno : 0);
}

/* errnoName(n) -> "EAGAIN" (for logs of negative returns). */
static napi_value errno_name_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  int32_t n = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) napi_get_value_int32(env, argv[0], &n);
  napi_create_string_utf8(env, errno_name(n < 0 ? -n : n), NAPI_AUTO_LENGTH, &r);
  return r;
}

/* ---------- Poller: uv_poll_t readable watcher ----------
 *
 * new Poller(fd, callback(status)); start(); stop(); ref(); unref(); close().
 * callback runs on the event loop thread whenever the fd is readable (level-triggered:
 * if the callback leaves data unread it is called again on the next loop iteration).
 * Lifetime: the struct is freed when both the uv handle is closed and the JS wrapper
 * is finalized, whichever comes last.  close() drops the strong reference to the
 * callback, so a started poller keeps its owner alive until closed. */
typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref cb;
  napi_async_context actx;
  int closing, handle_closed, finalized;
} poller_t;

static void poller_on_closed(uv_handle_t* h) {
  poller_t* p = h->data;
  p->handle_closed = 1;
  if (p->finalized) free(p);
}

static void poller_begin_close(poller_t* p) {
  if (p->closing) return;
  p->closing = 1;
  uv_poll_stop(&p->handle);
  if (p->cb) napi_delete_reference(p->env, p->cb);
  p->cb = NULL;
  if (p->actx) napi_async_destroy(p->env, p->actx);
  p->actx = NULL;
  uv_close((uv_handle_t*)&p->handle, poller_on_closed);
}

static void poller_finalize(napi_env env, void* data, void* hint) {
  poller_t* p = data;
  p->finalized = 1;
  if (!p->closing)
    poller_begin_close(p);
  else if (p->handle_closed)
    free(p);
}

static void poller_on_event(uv_poll_t* h, int status, int events) {
  poller_t* p = h->data;
  if (p->closing || !p->cb) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_value cb, recv, arg, result;
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, p->cb, &cb);
  napi_get_global(env, &recv); /* make_callback needs an object receiver */
  napi_create_int32(env, status, &arg); /* 0, or a negative libuv error code */
  if (napi_make_callback(env, p->actx, recv, cb, 1, &arg, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err); /* -> process 'uncaughtException' */
  }
  napi_close_handle_scope(env, scope);
}

static poller_t* poller_unwrap(napi_env env, napi_callback_info info) {
  napi_value self;
  void* p = NULL;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  if (napi_unwrap(env, self, &p) != napi_ok || p == NULL) throw_inval(env, "Poller: not a Poller");
  return p;
}

static napi_value poller_ctor(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self, name;
  napi_valuetype t;
  uint32_t fd;
  napi_get_cb_info(env, info, &argc, argv, &self, NULL);
  if (argc < 2 || !get_u32(env, argv[0], &fd) || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    return throw_inval(env, "Poller(fd, callback): bad arguments");
  uv_loop_t* loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_inval(env, "Poller: no event loop");
  poller_t* p = calloc(1, sizeof *p);
  if (!p) return throw_errno(env, ENOMEM, "Poller");
  int r = uv_poll_init(loop, &p->handle, (int)fd);
  if (r < 0) {
    free(p);
    napi_throw_error(env, uv_err_name(r), uv_strerror(r));
    return NULL;
  }
  p->handle.data = p;
  p->env = env;
  napi_create_reference(env, argv[1], 1, &p->cb);
  napi_create_string_utf8(env, "mintun:poll", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &p->actx);
  napi_wrap(env, self, p, poller_finalize, NULL, NULL);
  return self;
}

static napi_value poller_start(napi_env env, napi_callback_info info) {
  poller_t* p = poller_unwrap(env, info);
  if (!p) return NULL;
  if (p->closing) return throw_errno(env, EBADF, "Poller.start: closed");
  int r = uv_poll_start(&p->handle, UV_READABLE, poller_on_event);
  if (r < 0) napi_throw_error(env, uv_err_name(r), uv_strerror(r));
  return NULL;
}

static napi_value poller_stop(napi_env env, napi_callback_info info) {
  poller_t* p = poller_unwrap(env, info);
  if (p && !p->closing) uv_poll_stop(&p->handle);
  return NULL;
}

static napi_value poller_close(napi_env env, napi_callback_info info) {
  poller_t* p = poller_unwrap(env, info);
  if (p) poller_begin_close(p);
  return NULL;
}

static napi_value poller_ref(napi_env env, napi_callback_info info) {
  poller_t* p = poller_unwrap(env, info);
  if (p && !p->closing) uv_ref((uv_handle_t*)&p->handle);
  return NULL;
}

static napi_value poller_unref(napi_env env, napi_callback_info info) {
  poller_t* p = poller_unwrap(env, info);
  if (p && !p->closing) uv_unref((uv_handle_t*)&p->handle);
  return NULL;
}

/* ---------- module ---------- */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunRead", NULL, tun_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunWrite", NULL, tun_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpRecv", NULL, udp_recv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSend", NULL, udp_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"errnoName", NULL, errno_name_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);

  napi_property_descriptor methods[] = {
      {"start", NULL, poller_start, NULL, NULL, NULL, napi_default, NULL},
      {"stop", NULL, poller_stop, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, poller_close, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, poller_ref, NULL, NULL, NULL, napi_default, NULL},
      {"unref", NULL, poller_unref, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  napi_define_class(env, "Poller", NAPI_AUTO_LENGTH, poller_ctor, NULL, sizeof methods / sizeof methods[0], methods,
                    &cls);
  napi_set_named_property(env, exports, "Poller", cls);
  napi_value max;
  napi_create_uint32(env, MAX_BATCH, &max);
  napi_set_named_property(env, exports, "MAX_BATCH", max);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
