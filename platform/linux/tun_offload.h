/*
 * tun_offload: TUN segmentation/coalescing offloads (IFF_VNET_HDR + TUNSETOFFLOAD).
 *
 * With offloads on, the kernel hands the TUN reader TCP (and UDP, with USO) "super-packets"
 * of up to 64 KiB behind a 10-byte struct virtio_net_hdr, and accepts the same from the
 * writer.  tun_offload.c turns them into ordinary MTU-sized IP packets on read (TSO/USO
 * split, checksums completed in software) and merges runs of consecutive TCP segments of
 * one flow into super-packets on write (GRO-style coalescing), so the JS side keeps seeing
 * plain IP packets in its slabs.  Mechanism only; called from mintun_linux.c.
 */
#ifndef MINTUN_TUN_OFFLOAD_H
#define MINTUN_TUN_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>

#define TUN_VNET_HDR_LEN 10 /* sizeof(struct virtio_net_hdr) */

/* Scratch buffer the caller (JS) owns, one per direction per device:
 *  read:  [0..64) state of a super-packet only partly split (the slab was full),
 *         [64..) its bytes.
 *  write: [0..10) virtio_net_hdr, [10..) the coalesced packet. */
#define TUN_SCRATCH_META 64
#define TUN_MAX_SUPER 65535u /* largest IP packet (IPv4 total length / IPv6 payload limit) */
#define TUN_SCRATCH_BYTES (TUN_SCRATCH_META + 65536 + 4096)

/* Offload flags asked for with TUNSETOFFLOAD, as reported to JS. */
#define TUN_OFFLOAD_CSUM 0x01
#define TUN_OFFLOAD_TSO4 0x02
#define TUN_OFFLOAD_TSO6 0x04
#define TUN_OFFLOAD_USO4 0x20
#define TUN_OFFLOAD_USO6 0x40

/* After TUNSETIFF with IFF_VNET_HDR: set the header size and enable CSUM|TSO4|TSO6, plus
 * USO4|USO6 when the kernel has them (>= 6.2).  Returns the flags set, or -errno. */
int tun_offload_enable(int fd);

/* Read packets into the slab (packet i at buf[i*slot + head], lens[i]), splitting
 * super-packets; a super-packet that does not fit in the remaining slots is kept in
 * scratch and continued on the next call.  Returns packets stored, or -errno when the
 * first read failed (not EAGAIN) and nothing was stored.
 * res[0] += malformed/undeliverable reads dropped, res[1] += super-packets read,
 * res[2] += segments cut from them. */
int64_t tun_offload_read(int fd, uint8_t* buf, uint32_t slot, uint32_t head, uint32_t max, uint32_t* lens,
                         uint8_t* scratch, size_t scratch_len, uint32_t* res);

/* 1 if scratch holds segments of a super-packet not yet delivered. */
int tun_offload_pending(const uint8_t* scratch);

/* Write packets (buf + offs[i], lens[i]), coalescing consecutive TCP segments of one flow.
 * Returns inner packets written.  res[0] += dropped (EAGAIN/ENOBUFS), res[1] += other
 * errors, res[2] += inner bytes written, res[3] += super-packets written, res[4] += the
 * inner packets they carried. */
uint32_t tun_offload_write(int fd, const uint8_t* buf, const uint32_t* offs, const uint32_t* lens, uint32_t count,
                           uint8_t* scratch, size_t scratch_len, uint32_t* res);

#endif
