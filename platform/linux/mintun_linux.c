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

#include "tun_offload.h" /* IFF_VNET_HDR mode: TSO/USO split on read, TCP coalescing on write */

/* tunOpen(name: string, offload?: boolean) -> { fd, name, offload }.  name "" lets the
 * kernel pick (tun%d).  With offload, the device is opened with IFF_VNET_HDR and
 * TUNSETOFFLOAD(CSUM|TSO4|TSO6[|USO4|USO6]); if the kernel refuses, it is reopened
 * without (offload: 0).  offload in the result is the TUN_F_* flags set, 0 = plain. */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char name[IFNAMSIZ + 1] = {0};
  size_t nlen = 0;
  bool want = false;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok)
    return throw_inval(env, "tunOpen: name must be a string");
  if (nlen >= IFNAMSIZ) return throw_inval(env, "tunOpen: interface name longer than 15 bytes");
  if (argc >= 2 && napi_get_value_bool(env, argv[1], &want) != napi_ok) want = false;

  int fd = -1, offload = 0;
  struct ifreq ifr;
  for (int attempt = want ? 0 : 1; attempt < 2; attempt++) {
    fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return throw_errno(env, errno, "open /dev/net/tun");
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (attempt == 0 ? IFF_VNET_HDR : 0);
    memcpy(ifr.ifr_name, name, nlen);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
      int err = errno;
      close(fd);
      if (attempt == 0 && err == EINVAL) continue;
      return throw_errno(env, err, "ioctl TUNSETIFF");
    }
    if (attempt == 1) break;
    offload = tun_offload_enable(fd);
    if (offload > 0) break;
    offload = 0;
    close(fd); /* fall back: reopen without IFF_VNET_HDR */
  }
  napi_value obj, jname;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &jname);
  set_prop(env, obj, "fd", make_int(env, fd));
  set_prop(env, obj, "name", jname);
  set_prop(env, obj, "offload", make_int(env, offload));
  return obj;
}

/* tunRead(fd, buf, slot, headroom, max, lens[, scratch, res]) -> count, or -errno if the
 * first read failed with something other than EAGAIN.  read() until EAGAIN or max packets.
 * With scratch (TUN_SCRATCH_BYTES, one per device, kept between calls) and res (>= 3), the
 * fd is in offload mode: see tun_offload_read (super-packets are split into slots). */
static napi_value tun_read(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd, slot, head, max;
  uint8_t *buf, *scratch = NULL;
  size_t blen, nlens, slen = 0, nres = 0;
  uint32_t *lens, *res = NULL;
  if (argc < 6 || !get_u32(env, argv[0], &fd) || !get_bytes(env, argv[1], &buf, &blen) ||
      !get_u32(env, argv[2], &slot) || !get_u32(env, argv[3], &head) || !get_u32(env, argv[4], &max) ||
      !get_u32s(env, argv[5], &lens, &nlens))
    return throw_inval(env, "tunRead: bad arguments");
  if (head >= slot || (uint64_t)max * slot > blen || max > nlens) return throw_inval(env, "tunRead: slab too small");
  if (argc >= 8) {
    if (!get_bytes(env, argv[6], &scratch, &slen) || slen < TUN_SCRATCH_BYTES || !get_u32s(env, argv[7], &res, &nres) ||
        nres < 3)
      return throw_inval(env, "tunRead: bad scratch or res");
    return make_int(env, tun_offload_read((int)fd, buf, slot, head, max, lens, scratch, slen, res));
  }

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

/* tunWrite(fd, buf, offs, lens, count, res[, scratch]) -> written.  One write() per packet (a
 * TUN fd takes one packet per write).  res[0] += dropped (EAGAIN/ENOBUFS), res[1] += other
 * errors, res[2] += bytes written.  With scratch (TUN_SCRATCH_BYTES) the fd is in offload
 * mode: runs of TCP segments are coalesced (tun_offload_write); res needs 5 entries,
 * res[3] += super-packets written, res[4] += packets they carried. */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd, count;
  uint8_t *buf, *scratch = NULL;
  size_t blen, noffs, nlens, nres, slen = 0;
  uint32_t *offs, *lens, *res;
  if (argc < 6 || !get_u32(env, argv[0], &fd) || !get_bytes(env, argv[1], &buf, &blen) ||
      !get_u32s(env, argv[2], &offs, &noffs) || !get_u32s(env, argv[3], &lens, &nlens) ||
      !get_u32(env, argv[4], &count) || !get_u32s(env, argv[5], &res, &nres) || nres < 3)
    return throw_inval(env, "tunWrite: bad arguments");
  if (count > noffs || count > nlens) return throw_inval(env, "tunWrite: count exceeds offs/lens");
  for (uint32_t i = 0; i < count; i++)
    if ((uint64_t)offs[i] + lens[i] > blen) return throw_inval(env, "tunWrite: packet outside buffer");
  if (argc >= 7) {
    if (!get_bytes(env, argv[6], &scratch, &slen) || slen < TUN_SCRATCH_BYTES || nres < 5)
      return throw_inval(env, "tunWrite: bad scratch or res");
    return make_int(env, tun_offload_write((int)fd, buf, offs, lens, count, scratch, slen, res));
  }

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

/* UDP GSO (send) and GRO (receive), Linux >= 4.18 / 5.0.  Kept next to their only users. */
#include <netinet/udp.h>
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define GSO_MAX_SEGS 64      /* UDP_MAX_SEGMENTS: segments per GSO message */
#define GSO_MAX_BYTES 65000  /* payload bytes per GSO message (IPv4 limit 65507) */
#define GRO_MSG_BYTES 65536  /* one coalesced receive: any UDP payload fits */
#define GRO_META 32          /* per message: [0..19] source record, [20] len, [24] gso size, [28] flags */
#define GRO_SLOT (GRO_META + GRO_MSG_BYTES)
#define GRO_HDR 16           /* area header: u32 held messages, u32 next message, u32 byte offset, u32 0 */
#define GRO_TRUNC 1          /* message flag: MSG_TRUNC */

/* Ask for `size` bytes of socket buffer: SO_*BUFFORCE (needs CAP_NET_ADMIN), else the
 * plain option, which the kernel caps at net.core.[rw]mem_max. */
static int set_buf(int fd, int force_opt, int opt, uint32_t size) {
  int v = (int)size;
  if (size == 0) return 0;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

/* udpOpen(addrRecord, rcvbuf, sndbuf, offload = 0, reuseport = 0) -> { fd, port, family, gso, gro }.
 * The record's family picks AF_INET or AF_INET6; an AF_INET6 socket is dual stack
 * (IPV6_V6ONLY=0).  offload != 0: probe UDP_SEGMENT (gso = 1 when the kernel has it) and
 * set UDP_GRO=1 (gro = 1 when accepted).  Neither failing fails the open.  reuseport != 0:
 * SO_REUSEPORT before bind, so several sockets on one port form a group, one per data-path
 * thread (multiqueue.c steers the group). */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t* rec;
  size_t rlen;
  uint32_t rcvbuf, sndbuf, offload = 0, reuseport = 0;
  if (argc < 3 || !get_bytes(env, argv[0], &rec, &rlen) || rlen < ADDR_LEN || !get_u32(env, argv[1], &rcvbuf) ||
      !get_u32(env, argv[2], &sndbuf) || (rec[0] != 4 && rec[0] != 6) ||
      (argc >= 4 && !get_u32(env, argv[3], &offload)) || (argc >= 5 && !get_u32(env, argv[4], &reuseport)))
    return throw_inval(env, "udpOpen: bad arguments");
  int af = rec[0] == 4 ? AF_INET : AF_INET6;
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  const char* what = NULL;
  int zero = 0, on = 1;
  struct sockaddr_storage ss;
  socklen_t sl = record_to_sockaddr(rec, af, &ss);
  if (af == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0)
    what = "setsockopt IPV6_V6ONLY";
  else if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0)
    what = "setsockopt SO_REUSEPORT";
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
  int gso = 0, gro = 0;
  if (offload) {
    /* A kernel without UDP_SEGMENT would ignore the cmsg and send one big datagram, so GSO
     * is used only when the option is known (getsockopt fails with ENOPROTOOPT otherwise). */
    int v = 0, one = 1;
    socklen_t vl = sizeof v;
    gso = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &vl) == 0;
    gro = setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  }
  uint8_t local[ADDR_LEN];
  sockaddr_to_record(&ss, local);
  napi_value obj;
  napi_create_object(env, &obj);
  set_prop(env, obj, "fd", make_int(env, fd));
  set_prop(env, obj, "port", make_int(env, (local[2] << 8) | local[3]));
  set_prop(env, obj, "family", make_int(env, af == AF_INET ? 4 : 6));
  set_prop(env, obj, "gso", make_int(env, gso));
  set_prop(env, obj, "gro", make_int(env, gro));
  return obj;
}

static uint32_t rd32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static void wr32(uint8_t* p, uint32_t v) { memcpy(p, &v, 4); }

/* Split the messages held in a GRO area into slab slots [*out, max): one slot per segment
 * (gso size bytes each, the last one shorter), the message's source record copied to each.
 * Stops when the slab is full; the area header then remembers message and offset, and
 * the next call continues there.  Returns 1 if something is left in the area. */
static int gro_split(uint8_t* area, uint8_t* buf, uint32_t slot, uint32_t head, uint32_t max, uint32_t* lens,
                     uint8_t* addrs, uint32_t* out, uint32_t* res) {
  uint32_t held = rd32(area), cur = rd32(area + 4), off = rd32(area + 8), o = *out;
  while (cur < held && o < max) {
    uint8_t* m = area + GRO_HDR + (size_t)cur * GRO_SLOT;
    uint32_t len = rd32(m + 20), seg = rd32(m + 24), flags = rd32(m + 28);
    if (seg == 0 || seg > len) seg = len; /* not coalesced: one datagram */
    if (off >= len && len > 0) { /* cannot happen unless the caller wrote into the area */
      cur++;
      off = 0;
      continue;
    }
    do {
      uint32_t n = len - off < seg ? len - off : seg;
      if ((flags & GRO_TRUNC) || n > slot - head) {
        lens[o] = 0; /* larger than a slot (or truncated): reported empty, counted */
        res[0]++;
        if (flags & GRO_TRUNC) n = len - off;
      } else {
        memcpy(buf + (size_t)o * slot + head, m + GRO_META + off, n);
        lens[o] = n;
      }
      memcpy(addrs + (size_t)o * ADDR_LEN, m, ADDR_LEN);
      o++;
      off += n;
    } while (off < len && o < max);
    if (off >= len) {
      cur++;
      off = 0;
    }
  }
  wr32(area + 4, cur);
  wr32(area + 8, off);
  *out = o;
  return cur < held;
}

/* udpRecv(fd, buf, slot, headroom, max, lens, addrs, res[, groArea]) -> count, or -errno
 * if nothing was received for a reason other than EAGAIN.
 *
 * Without groArea: one recvmmsg(MSG_DONTWAIT) of up to min(max, 256) datagrams straight
 * into the slots.  A datagram larger than its slot is reported with length 0 and counted
 * in res[0].
 *
 * With groArea (a Buffer of GRO_HDR + k * GRO_SLOT bytes, owned by the caller and
 * untouched between calls; the socket has UDP_GRO on): messages are received whole
 * (64 KiB each, k per recvmmsg) into the area and split into slots by gro_split.
 * Remainder choice: one coalesced message can hold up to 64 segments, so no receive size
 * can both fill the slab and never overflow it.  We fill the slab (recvmmsg asks for at
 * most as many messages as free slots, each message being >= 1 datagram) and keep what
 * does not fit in the area for the next call; res[3] = 1 tells the caller that data is
 * left there (the socket may be empty, so the poll will not wake for it).  Pending data is
 * always delivered before anything new is received, so order is kept.
 * res[1] += coalesced messages, res[2] += their segments. */
static napi_value udp_recv(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd, slot, head, max;
  uint8_t *buf, *addrs, *area = NULL;
  size_t blen, alen, nlens, nres, arealen = 0;
  uint32_t *lens, *res;
  napi_valuetype t9 = napi_undefined;
  if (argc < 8 || !get_u32(env, argv[0], &fd) || !get_bytes(env, argv[1], &buf, &blen) ||
      !get_u32(env, argv[2], &slot) || !get_u32(env, argv[3], &head) || !get_u32(env, argv[4], &max) ||
      !get_u32s(env, argv[5], &lens, &nlens) || !get_bytes(env, argv[6], &addrs, &alen) ||
      !get_u32s(env, argv[7], &res, &nres) || nres < 1)
    return throw_inval(env, "udpRecv: bad arguments");
  if (argc >= 9) napi_typeof(env, argv[8], &t9);
  if (t9 != napi_undefined && (!get_bytes(env, argv[8], &area, &arealen) || arealen < GRO_HDR + GRO_SLOT || nres < 4))
    return throw_inval(env, "udpRecv: bad GRO area");
  if (max > MAX_BATCH) max = MAX_BATCH;
  if (head >= slot || (uint64_t)max * slot > blen || max > nlens || (uint64_t)max * ADDR_LEN > alen)
    return throw_inval(env, "udpRecv: slab too small");

  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_storage from[MAX_BATCH];
  if (area) {
    uint32_t k = (uint32_t)((arealen - GRO_HDR) / GRO_SLOT), out = 0;
    union {
      char b[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } ctl[MAX_BATCH];
    if (k > MAX_BATCH) k = MAX_BATCH;
    if (rd32(area + 4) > rd32(area) || rd32(area) > k) wr32(area, 0); /* garbage header: start empty */
    res[3] = 0;
    for (;;) {
      if (gro_split(area, buf, slot, head, max, lens, addrs, &out, res)) {
        res[3] = 1;
        break;
      }
      if (out >= max) break;
      uint32_t want = max - out < k ? max - out : k;
      memset(msgs, 0, sizeof(struct mmsghdr) * want);
      for (uint32_t i = 0; i < want; i++) {
        iov[i].iov_base = area + GRO_HDR + (size_t)i * GRO_SLOT + GRO_META;
        iov[i].iov_len = GRO_MSG_BYTES;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        msgs[i].msg_hdr.msg_control = ctl[i].b;
        msgs[i].msg_hdr.msg_controllen = sizeof ctl[i].b;
      }
      int n;
      do n = recvmmsg((int)fd, msgs, want, MSG_DONTWAIT, NULL);
      while (n < 0 && errno == EINTR);
      if (n < 0) {
        if (out == 0 && errno != EAGAIN && errno != EWOULDBLOCK) return make_int(env, -errno);
        break;
      }
      for (int i = 0; i < n; i++) {
        uint8_t* m = area + GRO_HDR + (size_t)i * GRO_SLOT;
        uint32_t len = msgs[i].msg_len, seg = 0;
        for (struct cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c))
          if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int g;
            memcpy(&g, CMSG_DATA(c), sizeof g);
            if (g > 0) seg = (uint32_t)g;
          }
        if (seg > 0 && seg < len) {
          res[1]++;
          res[2] += (len + seg - 1) / seg;
        }
        sockaddr_to_record(&from[i], m);
        wr32(m + 20, len);
        wr32(m + 24, seg);
        wr32(m + 28, (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? GRO_TRUNC : 0);
      }
      wr32(area, (uint32_t)n);
      wr32(area + 4, 0);
      wr32(area + 8, 0);
      if ((uint32_t)n < want) { /* the socket is (nearly) empty: split what we have and stop */
        if (gro_split(area, buf, slot, head, max, lens, addrs, &out, res)) res[3] = 1;
        break;
      }
    }
    return make_int(env, out);
  }

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

/* udpSend(fd, sockFamily, buf, offs, lens, count, addr, addrOff, res[, gsoLimit[, src[, ttl]]]) -> sent.
 * All packets go to the one destination addr[addrOff..+20]; sendmmsg in chunks of 256
 * packets until all are sent or the socket is full.  res[0] += dropped (EAGAIN/ENOBUFS:
 * the rest of the batch), res[1] += other errors (the failing message is skipped),
 * res[2] += bytes sent.  Counts are in datagrams, a GSO segment being one.
 *
 * GSO (gsoLimit > 0, res.length >= 7): a run of >= 2 consecutive packets of one length
 * L <= gsoLimit (the last may be shorter; at most 64 packets and 65000 bytes) goes as ONE
 * message, an iovec per packet, with cmsg UDP_SEGMENT = L; the kernel cuts it into
 * datagrams at L.  Several such messages share one sendmmsg.  res[3] += GSO messages,
 * res[4] += their segments, res[5] = the limit to use next time, res[6] += fallbacks.
 * Fallback: if the kernel refuses a GSO message with EIO/EOPNOTSUPP/ENOPROTOOPT (no
 * checksum offload, xfrm, ...) GSO is off for good (limit 0); with EMSGSIZE (6.x) or
 * EINVAL (older kernels) -- a segment larger than the route MTU, which a plain send would
 * fragment -- only lengths >= L are excluded (limit L - 1).  Either way the same packets
 * are sent again without GSO at once.
 *
 * ttl (1..255, 0 or absent: the socket's default): every message carries IP_TTL (IPv4, also
 * v4-mapped on a dual-stack socket) or IPV6_HOPLIMIT (IPv6) as a control message, so the
 * datagrams die that many routers away (NAT traversal: a punch that opens our own NAT and
 * never reaches the peer's, src/directory/nat.ts). */
static int route_source_rec(const uint8_t* dst, uint8_t* out); /* route-source probe, below */

/* Pinned source: one IP_PKTINFO / IPV6_PKTINFO control message telling the kernel which local
 * address to send from.  If that address is gone, the send fails instead of leaving from
 * another address (mobility: a packet sealed for the old path never leaves from the new one). */
static size_t put_pktinfo(struct cmsghdr* c, int sock_af, const uint8_t* dst, const uint8_t* src) {
  if (src[0] != dst[0]) return 0; /* families differ: leave it to the kernel */
  if (sock_af == AF_INET) {
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    memcpy(&pi.ipi_spec_dst, src + 4, 4);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return CMSG_SPACE(sizeof pi);
  }
  struct in6_pktinfo pi6;
  memset(&pi6, 0, sizeof pi6);
  if (src[0] == 4) { /* IPv4 on a dual-stack socket: the v4-mapped form */
    pi6.ipi6_addr.s6_addr[10] = 0xff;
    pi6.ipi6_addr.s6_addr[11] = 0xff;
    memcpy(&pi6.ipi6_addr.s6_addr[12], src + 4, 4);
  } else {
    memcpy(&pi6.ipi6_addr, src + 4, 16);
  }
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof pi6);
  memcpy(CMSG_DATA(c), &pi6, sizeof pi6);
  return CMSG_SPACE(sizeof pi6);
}

/* One IP_TTL / IPV6_HOPLIMIT control message for the destination's family. */
static size_t put_ttl(struct cmsghdr* c, const uint8_t* dst, int ttl) {
  c->cmsg_level = dst[0] == 4 ? IPPROTO_IP : IPPROTO_IPV6;
  c->cmsg_type = dst[0] == 4 ? IP_TTL : IPV6_HOPLIMIT;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &ttl, sizeof ttl);
  return CMSG_SPACE(sizeof(int));
}

static napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd, fam, count, aoff, limit = 0;
  uint8_t *buf, *addr, *src = NULL;
  size_t slen = 0;
  size_t blen, alen, noffs, nlens, nres;
  uint32_t *offs, *lens, *res;
  if (argc < 9 || !get_u32(env, argv[0], &fd) || !get_u32(env, argv[1], &fam) ||
      !get_bytes(env, argv[2], &buf, &blen) || !get_u32s(env, argv[3], &offs, &noffs) ||
      !get_u32s(env, argv[4], &lens, &nlens) || !get_u32(env, argv[5], &count) ||
      !get_bytes(env, argv[6], &addr, &alen) || !get_u32(env, argv[7], &aoff) ||
      !get_u32s(env, argv[8], &res, &nres) || nres < 3 || (argc >= 10 && !get_u32(env, argv[9], &limit)))
    return throw_inval(env, "udpSend: bad arguments");
  if (nres < 7) limit = 0;
  /* argv[10]: optional 20-byte source record to pin (undefined/null: the kernel chooses) */
  if (argc >= 11) {
    napi_valuetype vt;
    napi_typeof(env, argv[10], &vt);
    if (vt != napi_undefined && vt != napi_null) {
      if (!get_bytes(env, argv[10], &src, &slen) || slen < ADDR_LEN || (src[0] != 4 && src[0] != 6))
        return throw_inval(env, "udpSend: bad source record");
    }
  }
  uint32_t ttl = 0;
  if (argc >= 12) {
    napi_valuetype vt;
    napi_typeof(env, argv[11], &vt);
    if (vt != napi_undefined && (!get_u32(env, argv[11], &ttl) || ttl > 255))
      return throw_inval(env, "udpSend: bad ttl");
  }
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
  uint32_t npk[MAX_BATCH]; /* packets in message j */
  union {
    char b[CMSG_SPACE(sizeof(uint16_t)) + CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctl[MAX_BATCH];
  int sock_af = fam == 4 ? AF_INET : AF_INET6;
  uint32_t done = 0, sent = 0;
  while (done < count) {
    uint32_t end = count - done < MAX_BATCH ? count : done + MAX_BATCH; /* <= 256 iovecs */
    uint32_t m = 0;
    for (uint32_t p = done; p < end; m++) {
      uint32_t L = lens[p], k = 1, total = L;
      if (L > 0 && L <= limit) {
        while (p + k < end && k < GSO_MAX_SEGS && lens[p + k] == L && total + L <= GSO_MAX_BYTES) {
          total += L;
          k++;
        }
        if (p + k < end && k < GSO_MAX_SEGS && lens[p + k] > 0 && lens[p + k] < L &&
            total + lens[p + k] <= GSO_MAX_BYTES) {
          total += lens[p + k];
          k++;
        }
      }
      struct msghdr* h = &msgs[m].msg_hdr;
      memset(&msgs[m], 0, sizeof msgs[m]);
      for (uint32_t j = 0; j < k; j++) {
        iov[p - done + j].iov_base = buf + offs[p + j];
        iov[p - done + j].iov_len = lens[p + j];
      }
      h->msg_iov = &iov[p - done];
      h->msg_iovlen = k;
      h->msg_name = &to;
      h->msg_namelen = tolen;
      if (k > 1 || src || ttl) {
        memset(ctl[m].b, 0, sizeof ctl[m].b);
        h->msg_control = ctl[m].b;
        h->msg_controllen = sizeof ctl[m].b;
        struct cmsghdr* c = CMSG_FIRSTHDR(h);
        size_t used = 0;
        if (k > 1) {
          c->cmsg_level = SOL_UDP;
          c->cmsg_type = UDP_SEGMENT;
          c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
          uint16_t g = (uint16_t)L;
          memcpy(CMSG_DATA(c), &g, sizeof g);
          used = CMSG_SPACE(sizeof(uint16_t));
          c = CMSG_NXTHDR(h, c);
        }
        if (src && c) {
          size_t n = put_pktinfo(c, sock_af, addr + aoff, src);
          used += n;
          if (n) c = CMSG_NXTHDR(h, c); /* msg_controllen is still the whole buffer here */
        }
        if (ttl && c) used += put_ttl(c, addr + aoff, (int)ttl);
        h->msg_controllen = used;
        if (used == 0) h->msg_control = NULL;
      }
      npk[m] = k;
      p += k;
    }
    int r;
    do r = sendmmsg((int)fd, msgs, m, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
        res[0] += count - done;
        break;
      }
      if (src && (err == EINVAL || err == EADDRNOTAVAIL || err == ENETUNREACH)) {
        /* with a pinned source, first ask whether that source is still the one to use: if not,
         * the address moved under us and this message must not leave at all (res[7] counts it);
         * only otherwise is the error a GSO problem, handled below */
        uint8_t now_src[ADDR_LEN];
        if (!route_source_rec(addr + aoff, now_src) || memcmp(now_src + 4, src + 4, 16) != 0 ||
            now_src[0] != src[0]) {
          if (nres >= 8) res[7] += count - done;
          res[1] += count - done;
          break;
        }
      }
      if (npk[0] > 1 && (err == EIO || err == EINVAL || err == EMSGSIZE || err == EOPNOTSUPP || err == ENOPROTOOPT)) {
        limit = err == EINVAL || err == EMSGSIZE ? lens[done] - 1 : 0; /* lens[done] is this message's L */
        res[6]++;
        continue; /* the same packets again, now without GSO at this length */
      }
      res[1] += npk[0]; /* this message failed (EMSGSIZE, ENETUNREACH, ...): skip it */
      done += npk[0];
      continue;
    }
    for (int j = 0; j < r; j++) {
      res[2] += msgs[j].msg_len;
      sent += npk[j];
      done += npk[j];
      if (npk[j] > 1) {
        res[3]++;
        res[4] += npk[j];
      }
    }
  }
  if (nres >= 7) res[5] = limit;
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

/* ---------- route source ---------- */

/* routeSource(dst: Buffer(20), out: Buffer(20)) -> boolean.  Which local address the kernel
 * would send from to reach dst, now: connect() a spare UDP socket of dst's family (this
 * does a route lookup and picks the source, sending nothing) and read getsockname().  False
 * when there is no route.  The engine calls it at most once per tunnel per batch, so a tunnel
 * switches to its next epoch before the first packet leaves from a new address (mobility). */
static int route_fd[2] = {-1, -1};
static int route_source_rec(const uint8_t* dst, uint8_t* out) {
  int af = dst[0] == 6 ? AF_INET6 : AF_INET;
  int slot = af == AF_INET6;
  if (route_fd[slot] < 0) route_fd[slot] = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_storage ss, local;
  socklen_t sl = record_to_sockaddr(dst, af, &ss), ll = sizeof local;
  if (route_fd[slot] >= 0) {
    /* dissolve the previous association first: a connected UDP socket keeps the source
     * address it was given, even after that address is gone from the host */
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    connect(route_fd[slot], &unspec, sizeof unspec);
  }
  int ok = route_fd[slot] >= 0 && sl > 0 && connect(route_fd[slot], (struct sockaddr*)&ss, sl) == 0 &&
           getsockname(route_fd[slot], (struct sockaddr*)&local, &ll) == 0;
  if (ok) {
    sockaddr_to_record(&local, out);
    memset(out + 2, 0, 2); /* the spare socket's port means nothing */
  }
  return ok;
}

static napi_value route_source(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *dst, *out;
  size_t dl, ol;
  if (argc < 2 || !get_bytes(env, argv[0], &dst, &dl) || !get_bytes(env, argv[1], &out, &ol) || dl < ADDR_LEN ||
      ol < ADDR_LEN)
    return throw_inval(env, "routeSource(dst, out): two 20-byte address records");
  napi_get_boolean(env, route_source_rec(dst, out), &result);
  return result;
}

/* ---------- sock_diag: owner of a flow's local socket ---------- */

/* sockLookup(proto: 6|17, family: 4|6, local: Buffer(4|16), lport, remote: Buffer(4|16), rport)
 *   -> { uid, inode } | null
 * One NETLINK_SOCK_DIAG exact lookup (sockdiag.c), no retries: null when the kernel has no
 * socket for this sockid, an Error with code = errno name when the query failed (the caller
 * falls back to /proc/net), EINVAL for wrong arguments.  Fallback order: src/conn/identity.ts. */
#include "sockdiag.h"

static int get_port(napi_env env, napi_value v, uint16_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 65535) || d != (double)(uint32_t)d) return 0;
  *out = (uint16_t)d;
  return 1;
}

static napi_value sock_lookup(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t proto, family;
  uint8_t *la, *ra;
  size_t ll, rl;
  uint16_t lport, rport;
  if (argc < 6 || !get_u32(env, argv[0], &proto) || !get_u32(env, argv[1], &family) ||
      !get_bytes(env, argv[2], &la, &ll) || !get_port(env, argv[3], &lport) || !get_bytes(env, argv[4], &ra, &rl) ||
      !get_port(env, argv[5], &rport) || (proto != IPPROTO_TCP && proto != IPPROTO_UDP) ||
      (family != 4 && family != 6) || ll != (family == 4 ? 4u : 16u) || rl != ll)
    return throw_inval(env,
                       "sockLookup(proto 6|17, family 4|6, local Buffer(4|16), lport 0..65535, remote Buffer(4|16), "
                       "rport 0..65535)");
  struct sockdiag_owner o;
  int r = sockdiag_lookup((int)proto, family == 4 ? AF_INET : AF_INET6, la, lport, ra, rport, &o);
  if (r < 0) return throw_errno(env, -r, "sock_diag lookup");
  napi_value result;
  if (r == 0) {
    napi_get_null(env, &result);
    return result;
  }
  napi_create_object(env, &result);
  set_prop(env, result, "uid", make_int(env, o.uid));
  set_prop(env, result, "inode", make_int(env, o.inode));
  return result;
}

static void sock_diag_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"sockLookup", NULL, sock_lookup, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}

/* ---------- module ---------- */

#include "peercred.h"
#include "lockfile.h"
#include "dumpable.h"
#include "notify.h"
#include "memtrim.h"
#include "aead.h"
#include "multiqueue.h"

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
      {"routeSource", NULL, route_source, NULL, NULL, NULL, napi_enumerable, NULL},
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
  napi_value tun_scratch;
  napi_create_uint32(env, TUN_SCRATCH_BYTES, &tun_scratch);
  napi_set_named_property(env, exports, "TUN_SCRATCH_BYTES", tun_scratch);
  sock_diag_init(env, exports);
  peercred_init(env, exports); /* peercred.c */
  lockfile_init(env, exports); /* lockfile.c */
  dumpable_init(env, exports); /* dumpable.c */
  notify_init(env, exports);   /* notify.c */
  memtrim_init(env, exports);  /* memtrim.c */
  aead_init(env, exports);     /* aead.c */
  multiqueue_init(env, exports); /* multiqueue.c */
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
