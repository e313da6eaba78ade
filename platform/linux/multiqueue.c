/*
 * multiqueue: the devices of a data path spread over several threads (issue 19 item 6,
 * docs/ARCHITECTURE.md "Many cores").
 *
 *   tunOpenQueues(name, n, offload) -> { fds: number[], name, offload }
 *       n file descriptors of ONE TUN interface opened with IFF_MULTI_QUEUE: the kernel
 *       picks a queue per flow for every packet it hands to the TUN (flow hash), so each
 *       queue can be read by its own thread.  Offloads as tunOpen (IFF_VNET_HDR +
 *       TUNSETOFFLOAD on every queue); if the kernel refuses them the device is opened
 *       plain (offload 0).  n in [1, 16].
 *   (the group's sockets: udpOpen(addr, rcvbuf, sndbuf, offload, 1) in mintun_linux.c,
 *   SO_REUSEPORT before bind; the first socket decides the port, the others bind to it)
 *   reuseportSteer(fd, n)
 *       SO_ATTACH_REUSEPORT_CBPF on the group of fd: a datagram whose type byte (payload
 *       byte 8) is DATA (3) goes to socket (TID byte 7 mod n) in the group's bind order,
 *       anything else (creation, control, relay, short datagrams) to socket 0.  So every
 *       packet of one key epoch (one TID) reaches one socket, whichever address it comes
 *       from: the thread of that socket owns the epoch's replay window.
 *
 * Setup only, each call throws an Error with the errno name in `code` (as mintun_linux.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/udp.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "multiqueue.h"
#include "tun_offload.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define MQ_MAX_QUEUES 16
#define MQ_TYPE_DATA 3 /* src/wire/packet.ts PacketType.Data */

static napi_value mq_throw(napi_env env, int err, const char* what) {
  char code[32];
  const char* name = NULL;
  switch (err) {
    case EPERM: name = "EPERM"; break;
    case EACCES: name = "EACCES"; break;
    case EINVAL: name = "EINVAL"; break;
    case EBUSY: name = "EBUSY"; break;
    case EADDRINUSE: name = "EADDRINUSE"; break;
    case EADDRNOTAVAIL: name = "EADDRNOTAVAIL"; break;
    case ENOENT: name = "ENOENT"; break;
    case ENOPROTOOPT: name = "ENOPROTOOPT"; break;
    case EMFILE: name = "EMFILE"; break;
    default: snprintf(code, sizeof code, "E%d", err); name = code;
  }
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, name, msg);
  return NULL;
}

static napi_value mq_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

/* ---------- TUN queues ---------- */

static int mq_open_queue(const char* name, size_t nlen, bool vnet, char* out_name) {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | (vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, nlen);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  if (out_name) memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
  return fd;
}

static void mq_close_all(int* fds, int n) {
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
}

static napi_value tun_open_queues(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char name[IFNAMSIZ + 1] = {0};
  size_t nlen = 0;
  uint32_t n = 0;
  bool want = false;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &n) != napi_ok)
    return mq_throw(env, EINVAL, "tunOpenQueues: bad arguments");
  if (nlen >= IFNAMSIZ || n < 1 || n > MQ_MAX_QUEUES) return mq_throw(env, EINVAL, "tunOpenQueues: name or count");
  if (argc >= 3 && napi_get_value_bool(env, argv[2], &want) != napi_ok) want = false;

  int fds[MQ_MAX_QUEUES];
  for (int i = 0; i < MQ_MAX_QUEUES; i++) fds[i] = -1;
  char ifname[IFNAMSIZ + 1] = {0};
  int offload = 0;
  for (int attempt = want ? 0 : 1; attempt < 2; attempt++) {
    bool vnet = attempt == 0;
    int fd = mq_open_queue(name, nlen, vnet, ifname);
    if (fd < 0) {
      if (vnet && fd == -EINVAL) continue;
      return mq_throw(env, -fd, "ioctl TUNSETIFF (multi-queue)");
    }
    fds[0] = fd;
    offload = 0;
    if (vnet) {
      offload = tun_offload_enable(fd);
      if (offload <= 0) {
        offload = 0;
        mq_close_all(fds, 1);
        fds[0] = -1;
        continue; /* plain device instead */
      }
    }
    size_t ilen = strnlen(ifname, IFNAMSIZ);
    for (uint32_t q = 1; q < n; q++) {
      int f = mq_open_queue(ifname, ilen, vnet, NULL);
      if (f < 0 || (vnet && tun_offload_enable(f) != offload)) {
        int err = f < 0 ? -f : EINVAL;
        if (f >= 0) close(f);
        mq_close_all(fds, (int)n);
        return mq_throw(env, err, "ioctl TUNSETIFF (queue)");
      }
      fds[q] = f;
    }
    break;
  }
  if (fds[0] < 0) return mq_throw(env, EINVAL, "tunOpenQueues: no device");
  napi_value obj, arr, jname;
  napi_create_object(env, &obj);
  napi_create_array_with_length(env, n, &arr);
  for (uint32_t q = 0; q < n; q++) napi_set_element(env, arr, q, mq_int(env, fds[q]));
  napi_create_string_utf8(env, ifname, strnlen(ifname, IFNAMSIZ), &jname);
  napi_set_named_property(env, obj, "fds", arr);
  napi_set_named_property(env, obj, "name", jname);
  napi_set_named_property(env, obj, "offload", mq_int(env, offload));
  return obj;
}

/* ---------- UDP reuseport group (the sockets: udpOpen with reuseport, mintun_linux.c) ---------- */

static napi_value reuseport_steer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  uint32_t n = 0;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &n) != napi_ok || fd < 0 || n < 1 || n > MQ_MAX_QUEUES)
    return mq_throw(env, EINVAL, "reuseportSteer: bad arguments");
  /* A = payload[8] (type); DATA ? payload[7] % n : 0.  A load past the end ends the program
   * with 0: short datagrams go to socket 0, which counts them as malformed. */
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MQ_TYPE_DATA, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, 0),
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 7),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
  struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0)
    return mq_throw(env, errno, "setsockopt SO_ATTACH_REUSEPORT_CBPF");
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

void multiqueue_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"tunOpenQueues", NULL, tun_open_queues, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reuseportSteer", NULL, reuseport_steer, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
