/*
 * sockdiag: the owner (uid, inode) of the local socket of a TCP/UDP flow, from the
 * kernel's socket tables through NETLINK_SOCK_DIAG.  Mechanism only: one exact-sockid
 * request (SOCK_DIAG_BY_FAMILY without NLM_F_DUMP, i.e. the kernel's "dump_one" path),
 * one answer.  Which fallbacks to try on a miss is decided in src/conn/identity.ts.
 *
 * What the kernel does with the sockid (net/ipv4/inet_diag.c, udp_diag.c):
 *  - TCP: inet_lookup(dst=idiag_src, ...): the established hash first (SYN_SENT,
 *    ESTABLISHED, TIME_WAIT, request socks), then listeners, which also matches
 *    wildcard-bound and dual-stack listeners.  idiag_src is the socket's local side.
 *  - UDP: __udp4/6_lib_lookup(saddr=idiag_src, sport=idiag_sport, daddr=idiag_dst,
 *    dport=idiag_dport), the receive-path lookup: its "saddr" is the packet's source,
 *    i.e. the socket's PEER ("src and dst are swapped for historical reasons" in
 *    udp_diag.c).  So for UDP the request carries remote in src and local in dst.  Being
 *    the receive lookup it also matches unconnected sockets (no peer to compare) and
 *    sockets bound to 0.0.0.0 / :: (second hash on the wildcard address).
 *  - AF_INET6 with both addresses v4-mapped is looked up as IPv4 by both protocols.
 * Only the owning socket's netns is searched: the one this process was in when the
 * netlink socket was opened (the first call).
 *
 * The netlink socket is NETLINK_SOCK_DIAG, SOCK_DGRAM|SOCK_CLOEXEC, opened on first use
 * and kept.  The kernel answers inside sendmsg() (netlink_unicast to the kernel runs the
 * handler synchronously), so the recv() never waits; SO_RCVTIMEO = 50 ms bounds it anyway.
 * Not thread-safe: one caller (the JS main thread), as route_source in mintun_linux.c.
 */
#include "sockdiag.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define RECV_TIMEOUT_US 50000
#define RECV_BUF 8192 /* one inet_diag_msg (72 B) + a few attributes; a stale answer or two */

static int diag_fd = -1;
static uint32_t diag_seq;

static int diag_open(void) {
  if (diag_fd >= 0) return diag_fd;
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -errno;
  struct timeval tv = {.tv_sec = 0, .tv_usec = RECV_TIMEOUT_US};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  diag_fd = fd;
  return fd;
}

/* Drop the socket after an error that may have left answers queued out of step. */
static void diag_reset(void) {
  if (diag_fd >= 0) close(diag_fd);
  diag_fd = -1;
}

int sockdiag_lookup(int proto, int af, const uint8_t* laddr, uint16_t lport, const uint8_t* raddr, uint16_t rport,
                    struct sockdiag_owner* out) {
  if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) || (af != AF_INET && af != AF_INET6)) return -EINVAL;
  int fd = diag_open();
  if (fd < 0) return fd;
  size_t alen = af == AF_INET ? 4 : 16;

  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 r;
  } req;
  memset(&req, 0, sizeof req);
  uint32_t seq = ++diag_seq;
  req.nlh.nlmsg_len = sizeof req;
  req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nlh.nlmsg_flags = NLM_F_REQUEST;
  req.nlh.nlmsg_seq = seq;
  req.r.sdiag_family = (uint8_t)af;
  req.r.sdiag_protocol = (uint8_t)proto;
  req.r.idiag_states = ~0u; /* not used by the exact lookup; all states for clarity */
  req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  const uint8_t *src = laddr, *dst = raddr;
  uint16_t sport = lport, dport = rport;
  if (proto == IPPROTO_UDP) { /* see the header comment: UDP wants the peer in src */
    src = raddr;
    dst = laddr;
    sport = rport;
    dport = lport;
  }
  memcpy(req.r.id.idiag_src, src, alen);
  memcpy(req.r.id.idiag_dst, dst, alen);
  req.r.id.idiag_sport = htons(sport);
  req.r.id.idiag_dport = htons(dport);

  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t n;
  do n = sendto(fd, &req, sizeof req, 0, (struct sockaddr*)&kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    diag_reset();
    return -err;
  }

  uint8_t buf[RECV_BUF] __attribute__((aligned(NLMSG_ALIGNTO)));
  for (;;) {
    do n = recv(fd, buf, sizeof buf, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      int err = errno == EWOULDBLOCK ? ETIMEDOUT : errno;
      diag_reset();
      return -err;
    }
    int len = (int)n;
    for (struct nlmsghdr* h = (struct nlmsghdr*)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue; /* a late answer to an older request */
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return -EBADMSG;
        int err = -((struct nlmsgerr*)NLMSG_DATA(h))->error;
        if (err == ENOENT) return 0;
        return err ? -err : -EBADMSG;
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
        return -EBADMSG;
      const struct inet_diag_msg* m = NLMSG_DATA(h);
      /* The kernel looked the socket up as a receiver would; its own ports must be ours. */
      if (m->id.idiag_sport != htons(lport)) return 0;
      out->uid = m->idiag_uid;
      out->inode = m->idiag_inode;
      return 1;
    }
  }
}
