/*
 * tun_offload: TSO/USO split on TUN read, TCP and UDP coalescing (GRO) on TUN write.
 * See tun_offload.h for the contract and docs/ARCHITECTURE.md ("TUN offloads").
 *
 * Read.  readv(fd, [virtio_net_hdr 10 B][slot][scratch tail]): an ordinary packet lands in
 * its slot with no copy (its checksum is completed if the kernel left it partial:
 * VIRTIO_NET_HDR_F_NEEDS_CSUM); a super-packet (gso_type TCPV4/TCPV6/UDP_L4) is made
 * contiguous in the scratch buffer and cut into gso_size-payload segments, one per slot:
 * headers copied, IPv4 total length/ID/header checksum or IPv6 payload length, TCP
 * sequence number and flags (FIN/PSH only on the last segment, CWR only on the first) or
 * UDP length fixed, and the L4 checksum computed in full (the segments cross the tunnel
 * and must be valid for the peer's kernel).  When the slab fills up mid-packet, the rest
 * stays in scratch and is delivered first on the next call, so any batch size works.
 *
 * Write.  Packets are grouped per TCP flow in arrival order: a segment is appended to the
 * flow's open run when its sequence number follows, its headers are byte-identical to the
 * run's first segment except IPv4 length/ID(+1)/checksum, TCP sequence/checksum and PSH,
 * it carries data, no segment of the run is larger than the first and only the last may
 * be smaller, PSH ends a run, and the run stays <= 65535 bytes.  A run of two or more
 * becomes one write of a super-packet with gso_type TCPV4/TCPV6, gso_size = payload of
 * the first segment, NEEDS_CSUM and the pseudo-header sum in the TCP checksum field (as
 * the kernel produces for CHECKSUM_PARTIAL).  Everything else goes out as it came, with a
 * zero header (the kernel verifies its checksums), via writev so it is not copied.
 * Inner TCP checksums of coalesced segments are not verified here: the kernel takes the
 * super-packet as CHECKSUM_PARTIAL; the bytes were authenticated by the tunnel's AEAD.
 */
#include "tun_offload.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif
#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

#define PROTO_TCP 6
#define PROTO_UDP 17
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80

int tun_offload_enable(int fd) {
  int sz = TUN_VNET_HDR_LEN;
  if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) return -errno;
  unsigned base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  unsigned with_uso = base | TUN_F_USO4 | TUN_F_USO6;
  if (ioctl(fd, TUNSETOFFLOAD, with_uso) == 0) return (int)with_uso;
  if (ioctl(fd, TUNSETOFFLOAD, base) == 0) return (int)base;
  return -errno;
}

/* ---------- byte access and the Internet checksum ---------- */

static inline uint16_t get16(const uint8_t* p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void put16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline uint32_t get32(const uint8_t* p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void put32(uint8_t* p, uint32_t v) {
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}

/* One's-complement sum of native-order 16-bit words (byte-order neutral: the folded sum
 * is stored back with a native store, as Linux does).  n may be odd; p must start at an
 * even offset of the checksummed region. */
static uint64_t sum_bytes(const uint8_t* p, size_t n, uint64_t acc) {
  while (n >= 32) {
    uint64_t a, b, c, d;
    memcpy(&a, p, 8);
    memcpy(&b, p + 8, 8);
    memcpy(&c, p + 16, 8);
    memcpy(&d, p + 24, 8);
    acc += (a & 0xffffffffu) + (a >> 32) + (b & 0xffffffffu) + (b >> 32) + (c & 0xffffffffu) + (c >> 32) +
           (d & 0xffffffffu) + (d >> 32);
    p += 32;
    n -= 32;
  }
  while (n >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    acc += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    acc += w;
    p += 2;
    n -= 2;
  }
  if (n) {
    uint16_t w = 0;
    memcpy(&w, p, 1); /* the odd byte is the high-order byte of a zero-padded word */
    acc += w;
  }
  return acc;
}

static inline uint16_t fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)acc;
}

static inline uint16_t native16(uint16_t host) { /* a host value as a native-order wire word */
  uint8_t b[2];
  uint16_t w;
  put16(b, host);
  memcpy(&w, b, 2);
  return w;
}

/* Pseudo-header sum for an L4 segment of l4len bytes in the IP packet at pkt. */
static uint64_t pseudo_sum(const uint8_t* pkt, int v6, uint8_t proto, uint32_t l4len) {
  uint64_t acc = v6 ? sum_bytes(pkt + 8, 32, 0) : sum_bytes(pkt + 12, 8, 0);
  acc += native16(proto);
  acc += native16((uint16_t)(l4len >> 16)) + native16((uint16_t)l4len);
  return acc;
}

static void ipv4_header_csum(uint8_t* ip, uint32_t ihl) {
  ip[10] = ip[11] = 0;
  uint16_t c = (uint16_t)~fold(sum_bytes(ip, ihl, 0));
  memcpy(ip + 10, &c, 2);
}

/* Full L4 checksum of the segment at l4 (l4len bytes); field at l4 + off. */
static void l4_csum(uint8_t* pkt, int v6, uint8_t proto, uint8_t* l4, uint32_t l4len, uint32_t off) {
  l4[off] = l4[off + 1] = 0;
  uint16_t c = (uint16_t)~fold(sum_bytes(l4, l4len, pseudo_sum(pkt, v6, proto, l4len)));
  if (c == 0 && proto == PROTO_UDP) c = 0xffff;
  memcpy(l4 + off, &c, 2);
}

/* ---------- read: split ---------- */

typedef struct {
  uint32_t plen;     /* bytes of the pending super-packet at scratch + META; 0 = none */
  uint32_t next_seg; /* first segment not yet delivered */
  struct virtio_net_hdr h;
} read_state_t;

int tun_offload_pending(const uint8_t* scratch) {
  uint32_t plen;
  memcpy(&plen, scratch, 4);
  return plen != 0;
}

/* A NEEDS_CSUM packet that was not segmented: finish its checksum in place.  The field
 * holds the pseudo-header sum; fold in the rest from csum_start. */
static int complete_csum(uint8_t* pkt, uint32_t len, const struct virtio_net_hdr* h) {
  uint32_t start = h->csum_start, off = h->csum_offset;
  if (start >= len || (uint64_t)start + off + 2 > len) return -1;
  uint16_t c = (uint16_t)~fold(sum_bytes(pkt + start, len - start, 0));
  if (c == 0 && off == 6) c = 0xffff; /* UDP: 0 means "no checksum" */
  memcpy(pkt + start + off, &c, 2);
  return 0;
}

/* Cut segments next_seg.. of the super-packet st/pkt into slots *pi.. (< max).  Returns 0
 * and advances st->next_seg (plen = 0 when done), or -1 if the packet is malformed. */
static int split(read_state_t* st, const uint8_t* pkt, uint8_t* buf, uint32_t slot, uint32_t head, uint32_t max,
                 uint32_t* lens, uint32_t* pi, uint32_t* res) {
  uint32_t plen = st->plen, cap = slot - head;
  uint8_t gso = st->h.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
  uint32_t gsz = st->h.gso_size;
  int v6 = (pkt[0] >> 4) == 6;
  uint8_t proto = gso == VIRTIO_NET_HDR_GSO_UDP_L4 ? PROTO_UDP : PROTO_TCP;
  uint32_t l4off;
  if (plen < 40 || gsz == 0) return -1;
  if (gso == VIRTIO_NET_HDR_GSO_TCPV4 || (gso == VIRTIO_NET_HDR_GSO_UDP_L4 && !v6)) {
    l4off = (uint32_t)(pkt[0] & 15) * 4;
    if ((pkt[0] >> 4) != 4 || l4off < 20 || pkt[9] != proto || (get16(pkt + 6) & 0x3fff)) return -1;
  } else if (gso == VIRTIO_NET_HDR_GSO_TCPV6 || gso == VIRTIO_NET_HDR_GSO_UDP_L4) {
    l4off = 40;
    if (!v6 || pkt[6] != proto) return -1; /* extension headers: not produced for TCP/UDP here */
  } else {
    return -1;
  }
  uint32_t l4hl = proto == PROTO_TCP ? (l4off + 13 <= plen ? (uint32_t)(pkt[l4off + 12] >> 4) * 4 : 0) : 8;
  if (l4hl < 8 || (proto == PROTO_TCP && l4hl < 20)) return -1;
  uint32_t hl = l4off + l4hl;
  if (hl > plen || hl + gsz > cap) return -1;
  uint32_t payload = plen - hl;
  uint32_t nseg = payload == 0 ? 1 : (payload + gsz - 1) / gsz;
  uint16_t id0 = v6 ? 0 : get16(pkt + 4);
  uint32_t seq0 = proto == PROTO_TCP ? get32(pkt + l4off + 4) : 0;
  uint32_t s = st->next_seg;
  if (s == 0) {
    res[1]++;
    res[2] += nseg;
  }
  for (; s < nseg && *pi < max; s++) {
    uint32_t off = s * gsz;
    uint32_t seglen = payload - off < gsz ? payload - off : gsz;
    uint32_t total = hl + seglen;
    uint8_t* out = buf + (size_t)*pi * slot + head;
    memcpy(out, pkt, hl);
    memcpy(out + hl, pkt + hl + off, seglen);
    if (v6) {
      put16(out + 4, (uint16_t)(total - 40));
    } else {
      put16(out + 2, (uint16_t)total);
      put16(out + 4, (uint16_t)(id0 + s));
      ipv4_header_csum(out, l4off);
    }
    uint8_t* l4 = out + l4off;
    if (proto == PROTO_TCP) {
      put32(l4 + 4, seq0 + off);
      if (s != nseg - 1) l4[13] &= (uint8_t) ~(TCP_FIN | TCP_PSH);
      if (s != 0) l4[13] &= (uint8_t)~TCP_CWR;
      l4_csum(out, v6, PROTO_TCP, l4, total - l4off, 16);
    } else {
      put16(l4 + 4, (uint16_t)(total - l4off));
      l4_csum(out, v6, PROTO_UDP, l4, total - l4off, 6);
    }
    lens[(*pi)++] = total;
  }
  st->next_seg = s;
  if (s == nseg) st->plen = 0;
  return 0;
}

int64_t tun_offload_read(int fd, uint8_t* buf, uint32_t slot, uint32_t head, uint32_t max, uint32_t* lens,
                         uint8_t* scratch, size_t scratch_len, uint32_t* res) {
  read_state_t st;
  memcpy(&st, scratch, sizeof st);
  uint8_t* pkt = scratch + TUN_SCRATCH_META;
  uint32_t pktcap = (uint32_t)(scratch_len - TUN_SCRATCH_META);
  uint32_t cap = slot - head;
  uint32_t i = 0;
  if (st.plen && split(&st, pkt, buf, slot, head, max, lens, &i, res) < 0) {
    st.plen = 0;
    res[0]++;
  }
  while (!st.plen && i < max) {
    uint8_t* sp = buf + (size_t)i * slot + head;
    struct virtio_net_hdr h;
    uint32_t c1 = cap < pktcap ? cap : pktcap;
    struct iovec iov[3] = {{&h, TUN_VNET_HDR_LEN}, {sp, c1}, {pkt + c1, pktcap - c1}};
    ssize_t n;
    do n = readv(fd, iov, 3);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || i > 0) break;
      memcpy(scratch, &st, sizeof st);
      return -errno;
    }
    if (n < TUN_VNET_HDR_LEN || (uint32_t)n - TUN_VNET_HDR_LEN >= pktcap) { /* short or truncated */
      res[0]++;
      continue;
    }
    uint32_t plen = (uint32_t)n - TUN_VNET_HDR_LEN;
    if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
      if (plen > c1 || ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && complete_csum(sp, plen, &h) < 0)) {
        res[0]++; /* larger than a slot (MTU above the slot size), or a bad checksum request */
        continue;
      }
      lens[i++] = plen;
      continue;
    }
    memcpy(pkt, sp, plen < c1 ? plen : c1);
    st.plen = plen;
    st.next_seg = 0;
    st.h = h;
    if (split(&st, pkt, buf, slot, head, max, lens, &i, res) < 0) {
      st.plen = 0;
      res[0]++;
    }
  }
  memcpy(scratch, &st, sizeof st);
  return i;
}

/* ---------- write: coalesce ---------- */

#define WCHUNK 256   /* packets considered together */
#define OPEN_RUNS 16 /* open runs searched for a flow */

typedef struct {
  uint32_t l4off, hl, plen; /* IP header length, all headers, payload length */
  int v6, tcp;              /* tcp: TCP with a parseable header (flow key valid) */
  int udp;                  /* udp: UDP with a consistent length field (flow key valid) */
  int eligible;             /* may join a run */
} pinfo_t;

/* UDP segments per super-packet: the kernel's UDP_MAX_SEGMENTS was 64 before 6.9 */
#define UDP_MAX_RUN 64
/* set when the kernel refused a UDP_L4 super-packet (before 6.2): UDP is not coalesced again */
static int udp_gso_refused;

typedef struct {
  int first, last;      /* packet indices; chained through next[] */
  uint32_t nseg, bytes; /* packets and total IP length if coalesced */
  uint32_t gsz;         /* payload of the first segment */
  uint32_t next_seq;
  uint32_t inner_bytes;
  int open;
} run_t;

static void classify(const uint8_t* p, uint32_t len, pinfo_t* pi) {
  memset(pi, 0, sizeof *pi);
  if (len < 20) return;
  uint32_t l4off;
  uint8_t proto;
  if ((p[0] >> 4) == 4) {
    l4off = (uint32_t)(p[0] & 15) * 4;
    proto = p[9];
    if (l4off < 20 || (proto != PROTO_TCP && proto != PROTO_UDP) || (get16(p + 6) & 0x3fff) || get16(p + 2) != len)
      return;
  } else if ((p[0] >> 4) == 6) {
    if (len < 40) return;
    proto = p[6];
    if ((proto != PROTO_TCP && proto != PROTO_UDP) || (uint32_t)get16(p + 4) + 40 != len) return;
    l4off = 40;
    pi->v6 = 1;
  } else {
    return;
  }
  if (proto == PROTO_UDP) {
    /* a datagram whose UDP length matches the IP length: may join a run of its flow */
    if (l4off + 8 > len || get16(p + l4off + 4) != len - l4off) return;
    pi->udp = 1;
    pi->l4off = l4off;
    pi->hl = l4off + 8;
    pi->plen = len - pi->hl;
    pi->eligible = pi->plen > 0 && !udp_gso_refused;
    return;
  }
  if (l4off + 20 > len) return;
  uint32_t thl = (uint32_t)(p[l4off + 12] >> 4) * 4;
  if (thl < 20 || l4off + thl > len) return;
  pi->tcp = 1;
  pi->l4off = l4off;
  pi->hl = l4off + thl;
  pi->plen = len - pi->hl;
  uint8_t fl = p[l4off + 13];
  pi->eligible = pi->plen > 0 && (fl & (uint8_t)~TCP_PSH) == TCP_ACK;
}

static int same_flow(const uint8_t* a, const uint8_t* b, const pinfo_t* ia, const pinfo_t* ib) {
  if (ia->v6 != ib->v6 || ia->l4off != ib->l4off || ia->udp != ib->udp) return 0;
  if (ia->v6 ? memcmp(a + 8, b + 8, 32) : memcmp(a + 12, b + 12, 8)) return 0;
  return memcmp(a + ia->l4off, b + ib->l4off, 4) == 0;
}

/* May packet b (of the same flow) follow packet `last` in a run that started with `first`? */
static int can_append(const run_t* r, const uint8_t* first, const pinfo_t* fi, const uint8_t* last,
                      const pinfo_t* li, const uint8_t* b, const pinfo_t* bi) {
  if (!r->open || !bi->eligible || bi->hl != fi->hl) return 0;
  if (li->plen != r->gsz || bi->plen > r->gsz) return 0; /* only the last may be short */
  if (r->bytes + bi->plen > TUN_MAX_SUPER) return 0;
  const uint8_t *ft = first + fi->l4off, *bt = b + bi->l4off;
  if (fi->udp) {
    /* headers byte-identical but IPv4 length/ID(+1)/checksum and UDP length/checksum:
     * the kernel's UDP GSO makes exactly these segments again */
    if (r->nseg >= UDP_MAX_RUN || r->bytes + bi->plen - fi->l4off > 0xffff) return 0;
    if (fi->v6) {
      if (memcmp(first, b, 4) || memcmp(first + 6, b + 6, 34)) return 0;
    } else {
      if (memcmp(first, b, 2) || memcmp(first + 6, b + 6, 4) || memcmp(first + 12, b + 12, fi->l4off - 12)) return 0;
      if (get16(b + 4) != (uint16_t)(get16(last + 4) + 1)) return 0;
    }
    return memcmp(ft, bt, 4) == 0;
  }
  if (get32(bt + 4) != r->next_seq) return 0;
  if (fi->v6) {
    if (memcmp(first, b, 4) || memcmp(first + 6, b + 6, 34)) return 0;
  } else {
    if (memcmp(first, b, 2) || memcmp(first + 6, b + 6, 4) || memcmp(first + 12, b + 12, fi->l4off - 12)) return 0;
    if (get16(b + 4) != (uint16_t)(get16(last + 4) + 1)) return 0;
  }
  /* ports, ack, data offset, flags but PSH, window, urgent pointer, options */
  if (memcmp(ft, bt, 4) || memcmp(ft + 8, bt + 8, 5) || (ft[13] & ~TCP_PSH) != (bt[13] & ~TCP_PSH) ||
      memcmp(ft + 14, bt + 14, 2) || memcmp(ft + 18, bt + 18, fi->hl - fi->l4off - 18))
    return 0;
  return 1;
}

static int write_plain(int fd, const uint8_t* p, uint32_t len) {
  static const uint8_t zero_hdr[TUN_VNET_HDR_LEN];
  struct iovec iov[2] = {{(void*)zero_hdr, TUN_VNET_HDR_LEN}, {(void*)p, len}};
  ssize_t n;
  do n = writev(fd, iov, 2);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : 0;
}

static int is_drop(int err) { return err == -EAGAIN || err == -EWOULDBLOCK || err == -ENOBUFS; }

static void account_plain(int rc, uint32_t len, uint32_t* res, uint32_t* written) {
  if (rc == 0) {
    (*written)++;
    res[2] += len;
  } else if (is_drop(rc)) {
    res[0]++;
  } else {
    res[1]++;
  }
}

/* Build the run's super-packet in scratch and write it; falls back to one write per
 * segment if the kernel refuses it for a reason other than a full queue. */
static void write_run(int fd, const uint8_t* buf, const uint32_t* offs, const uint32_t* lens, const pinfo_t* info,
                      const int* next, const run_t* r, uint8_t* scratch, uint32_t* res, uint32_t* written) {
  const uint8_t* first = buf + offs[r->first];
  const pinfo_t* fi = &info[r->first];
  uint8_t* out = scratch + TUN_VNET_HDR_LEN;
  memcpy(out, first, fi->hl);
  uint32_t len = fi->hl;
  for (int k = r->first; k >= 0; k = next[k]) {
    memcpy(out + len, buf + offs[k] + info[k].hl, info[k].plen);
    len += info[k].plen;
  }
  const uint8_t* lastp = buf + offs[r->last];
  uint8_t* th = out + fi->l4off;
  if (fi->udp) put16(th + 4, (uint16_t)(len - fi->l4off));
  else th[13] = (uint8_t)((th[13] & ~TCP_PSH) | (lastp[info[r->last].l4off + 13] & TCP_PSH));
  if (fi->v6) {
    put16(out + 4, (uint16_t)(len - 40));
  } else {
    put16(out + 2, (uint16_t)len);
    ipv4_header_csum(out, fi->l4off);
  }
  uint8_t proto = fi->udp ? PROTO_UDP : PROTO_TCP;
  uint16_t ps = fold(pseudo_sum(out, fi->v6, proto, len - fi->l4off)); /* not complemented */
  memcpy(th + (fi->udp ? 6 : 16), &ps, 2);
  struct virtio_net_hdr h;
  memset(&h, 0, sizeof h);
  h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  h.gso_type = fi->udp ? VIRTIO_NET_HDR_GSO_UDP_L4 : fi->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
  h.hdr_len = (uint16_t)fi->hl;
  h.gso_size = (uint16_t)r->gsz;
  h.csum_start = (uint16_t)fi->l4off;
  h.csum_offset = fi->udp ? 6 : 16;
  memcpy(scratch, &h, TUN_VNET_HDR_LEN);
  ssize_t n;
  do n = write(fd, scratch, TUN_VNET_HDR_LEN + len);
  while (n < 0 && errno == EINTR);
  if (n >= 0) {
    *written += r->nseg;
    res[2] += r->inner_bytes;
    res[3]++;
    res[4] += r->nseg;
    return;
  }
  if (is_drop(-errno)) {
    res[0] += r->nseg;
    return;
  }
  if (fi->udp && errno == EINVAL) udp_gso_refused = 1; /* a kernel without UDP_L4 on TUN */
  for (int k = r->first; k >= 0; k = next[k]) account_plain(write_plain(fd, buf + offs[k], lens[k]), lens[k], res, written);
}

uint32_t tun_offload_write(int fd, const uint8_t* buf, const uint32_t* offs, const uint32_t* lens, uint32_t count,
                           uint8_t* scratch, size_t scratch_len, uint32_t* res) {
  pinfo_t info[WCHUNK];
  int next[WCHUNK];
  run_t runs[WCHUNK];
  int open_idx[OPEN_RUNS];
  uint32_t written = 0;
  (void)scratch_len; /* >= TUN_VNET_HDR_LEN + TUN_MAX_SUPER, checked by the caller */
  for (uint32_t base = 0; base < count; base += WCHUNK) {
    uint32_t m = count - base < WCHUNK ? count - base : WCHUNK;
    const uint32_t* o = offs + base;
    const uint32_t* l = lens + base;
    int nruns = 0, nopen = 0;
    for (uint32_t k = 0; k < m; k++) {
      const uint8_t* p = buf + o[k];
      pinfo_t* pi = &info[k];
      classify(p, l[k], pi);
      next[k] = -1;
      run_t* hit = NULL;
      int hit_slot = -1;
      if (pi->tcp || pi->udp) {
        for (int j = nopen - 1; j >= 0; j--) {
          run_t* r = &runs[open_idx[j]];
          if (same_flow(buf + o[r->first], p, &info[r->first], pi)) {
            hit = r;
            hit_slot = j;
            break;
          }
        }
      }
      if (hit && can_append(hit, buf + o[hit->first], &info[hit->first], buf + o[hit->last], &info[hit->last], p,
                            pi)) {
        next[hit->last] = (int)k;
        hit->last = (int)k;
        hit->nseg++;
        hit->bytes += pi->plen;
        hit->next_seq += pi->plen;
        hit->inner_bytes += l[k];
        if (pi->plen < hit->gsz || (pi->tcp && (p[pi->l4off + 13] & TCP_PSH))) hit->open = 0;
        continue;
      }
      if (hit) { /* same flow, cannot follow: close that run to keep the flow in order */
        hit->open = 0;
        open_idx[hit_slot] = open_idx[--nopen];
      }
      run_t* r = &runs[nruns];
      r->first = r->last = (int)k;
      r->nseg = 1;
      r->bytes = l[k];
      r->gsz = pi->plen;
      r->next_seq = pi->tcp ? get32(p + pi->l4off + 4) + pi->plen : 0;
      r->inner_bytes = l[k];
      r->open = pi->eligible && (pi->udp || !(p[pi->l4off + 13] & TCP_PSH));
      if (r->open) {
        if (nopen == OPEN_RUNS) { /* forget the oldest open run */
          runs[open_idx[0]].open = 0;
          memmove(open_idx, open_idx + 1, sizeof open_idx[0] * (OPEN_RUNS - 1));
          nopen--;
        }
        open_idx[nopen++] = nruns;
      }
      nruns++;
    }
    for (int j = 0; j < nruns; j++) {
      const run_t* r = &runs[j];
      if (r->nseg == 1)
        account_plain(write_plain(fd, buf + o[r->first], l[r->first]), l[r->first], res, &written);
      else
        write_run(fd, buf, o, l, info, next, r, scratch, res, &written);
    }
  }
  return written;
}
