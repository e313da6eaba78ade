/*
 * sockdiag: which local socket owns a TCP/UDP flow, asked of the kernel through
 * NETLINK_SOCK_DIAG (SOCK_DIAG_BY_FAMILY, one exact-sockid request per call).
 * Plain C, no N-API: the wrapper is the "sock_diag" section of mintun_linux.c.
 */
#ifndef MINTUN_SOCKDIAG_H
#define MINTUN_SOCKDIAG_H

#include <stdint.h>

struct sockdiag_owner {
  uint32_t uid;
  uint32_t inode;
};

/*
 * One kernel lookup.  proto: IPPROTO_TCP or IPPROTO_UDP; af: AF_INET or AF_INET6;
 * laddr/raddr: 4 or 16 bytes in network order; ports in host order.  local = the socket's
 * own address (the packet's source as it leaves the TUN), remote = its peer.
 * Returns 1 and fills *out when a socket matched, 0 when the kernel has none (ENOENT),
 * -errno when the query itself failed (no netlink, timeout, malformed answer).
 */
int sockdiag_lookup(int proto, int af, const uint8_t* laddr, uint16_t lport, const uint8_t* raddr, uint16_t rport,
                    struct sockdiag_owner* out);

#endif
