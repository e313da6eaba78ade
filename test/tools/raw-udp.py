#!/usr/bin/env python3
"""
raw-udp.py: send one UDP datagram built by hand through a raw socket (IP header
included), the way a process with CAP_NET_RAW can, so no socket of any user owns
its flow. Used by test/netns/identity.test.ts (issue 14).

  raw-udp.py MODE SRC DST SPORT DPORT TEXT
    frag   the datagram in two fragments (IPv4 MF/offset, or IPv6 fragment headers)
    later  only the second fragment (its first fragment is never sent)
    hbh    IPv6 only: whole datagram behind a hop-by-hop options header
Prints "sent N" (packets) and exits 0; any error exits 1.
"""
import socket
import struct
import sys


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 17, length)
    else:
        pseudo = src + dst + struct.pack("!I3xB", length, 17)
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    c = csum(pseudo + hdr + payload) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, length, c) + payload


def ip4(src: bytes, dst: bytes, ident: int, frag: int, body: bytes) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident, frag, 64, 17, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + body


def ip6(src: bytes, dst: bytes, nxt: int, body: bytes) -> bytes:
    return struct.pack("!IHBB", 6 << 28, len(body), nxt, 64) + src + dst + body


def main() -> None:
    mode, src, dst, sport, dport, text = sys.argv[1:7]
    v6 = ":" in dst
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    s_b = socket.inet_pton(fam, src)
    d_b = socket.inet_pton(fam, dst)
    # TEXT, a space, then padding to 100 bytes: more than the first fragment's 24 payload bytes
    dgram = udp(s_b, d_b, int(sport), int(dport), (text + " ").encode().ljust(100, b"x"))
    cut = 32  # a multiple of 8: the UDP header and 24 payload bytes in the first fragment
    pkts = []
    if v6:
        ident = 0x5A5A0001
        if mode == "hbh":
            pkts.append(ip6(s_b, d_b, 0, bytes([17, 0, 1, 4, 0, 0, 0, 0]) + dgram))
        else:
            first = ip6(s_b, d_b, 44, struct.pack("!BBHI", 17, 0, 0 | 1, ident) + dgram[:cut])
            later = ip6(s_b, d_b, 44, struct.pack("!BBHI", 17, 0, (cut // 8) << 3, ident) + dgram[cut:])
            pkts += [first, later] if mode == "frag" else [later]
    else:
        ident = 0x5A5A
        first = ip4(s_b, d_b, ident, 0x2000, dgram[:cut])
        later = ip4(s_b, d_b, ident, cut // 8, dgram[cut:])
        pkts += [first, later] if mode == "frag" else [later]
    s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for p in pkts:
        s.sendto(p, (dst, 0))
    print("sent %d" % len(pkts))


if __name__ == "__main__":
    main()
