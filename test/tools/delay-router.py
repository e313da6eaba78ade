#!/usr/bin/env python3
"""delay-router.py - userspace delay/loss stage for an L3 router namespace.

The kernel here has no sch_netem, so the netns tests add delay with this script.
It runs inside a "router" namespace that forwards IP between two or more links.
Policy routing (set up by the caller, see test/netns/lib.ts startDelayRouter):

    ip rule add iif LINK_i lookup TABLE_i      (v4 and v6)
    ip route add default dev TUN_i table TABLE_i

sends every packet that arrives from link i into TUN_i, owned by this script.
The script holds it for --delay-ms, drops it with probability --loss-pct, and
then writes it to TUN_(i+1 mod n). The kernel receives it there (no rule for
that iif) and routes it on with the main table, decrementing the TTL as any
router does. So all traffic crossing the router gets the delay once per
direction, ARP/NDP on the links are untouched, and packets addressed to the
router itself are delivered locally (the local table comes first).

Requires net.ipv4.ip_forward=1, net.ipv6.conf.all.forwarding=1 and rp_filter=0
(the packet re-enters on a TUN, not on the link it came from).

usage: delay-router.py --tun NAME [--tun NAME ...] [--delay-ms MS] [--loss-pct P]
                       [--control FILE] [--mtu N] [--txqueuelen N] [--max-queue N]
                       [--seed N]

Prints "ready" once the TUNs exist and are up. SIGUSR1 re-reads --control
(JSON {"delayMs": n, "lossPct": p}) and prints "applied delay_ms=.. loss_pct=..".
SIGTERM/SIGINT: prints "stats ..." and exits 0. The TUNs are not persistent: they
vanish with the process (and the routes through them with them); nothing else is
created or deleted. Python 3 standard library only.
"""
import argparse
import errno
import fcntl
import heapq
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFMTU = 0x8922
SIOCSIFTXQLEN = 0x8943
IFF_UP = 0x1
IFREQ = "16sH22x"  # struct ifreq is 40 bytes: name + union (flags here)
IFREQ_MTU = "16si20x"
READ_BURST = 64


class Stop(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack(IFREQ, name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def link_up(name, mtu, txqlen):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if mtu:
            fcntl.ioctl(s, SIOCSIFMTU, struct.pack(IFREQ_MTU, name.encode(), mtu))
        if txqlen:
            fcntl.ioctl(s, SIOCSIFTXQLEN, struct.pack(IFREQ_MTU, name.encode(), txqlen))
        got = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack(IFREQ, name.encode(), 0))
        flags = struct.unpack(IFREQ, got)[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(IFREQ, name.encode(), flags | IFF_UP))
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser(description="hold packets between TUN devices (see module doc)")
    ap.add_argument("--tun", action="append", required=True, help="TUN name, one per link (>= 2)")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--loss-pct", type=float, default=0.0)
    ap.add_argument("--control", help="JSON file re-read on SIGUSR1")
    ap.add_argument("--mtu", type=int, default=1500)
    ap.add_argument(
        "--txqueuelen", type=int, default=5000, help="kernel queue in front of each TUN (default 500 drops bursts)"
    )
    ap.add_argument("--max-queue", type=int, default=20000, help="packets held at most (tail drop)")
    ap.add_argument("--seed", type=int)
    a = ap.parse_args()
    if len(a.tun) < 2:
        ap.error("need at least two --tun")
    rng = random.Random(a.seed)
    cfg = {"delay": max(0.0, a.delay_ms) / 1000.0, "loss": min(100.0, max(0.0, a.loss_pct))}
    stats = {"rx": 0, "tx": 0, "lost": 0, "qdrop": 0, "werr": 0}

    def on_term(_sig, _frame):
        raise Stop()

    def on_usr1(_sig, _frame):
        if not a.control:
            log("applied error=no-control-file")
            return
        try:
            with open(a.control) as f:
                c = json.load(f)
            if "delayMs" in c:
                cfg["delay"] = max(0.0, float(c["delayMs"])) / 1000.0
            if "lossPct" in c:
                cfg["loss"] = min(100.0, max(0.0, float(c["lossPct"])))
            log("applied delay_ms=%g loss_pct=%g" % (cfg["delay"] * 1000.0, cfg["loss"]))
        except (OSError, ValueError, TypeError) as e:
            log("applied error=%s" % str(e).replace(" ", "_"))

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)

    fds = []
    sel = selectors.DefaultSelector()
    try:
        for name in a.tun:
            fds.append(open_tun(name))
            link_up(name, a.mtu, a.txqueuelen)
        for i, fd in enumerate(fds):
            sel.register(fd, selectors.EVENT_READ, i)
        log("ready tuns=%s delay_ms=%g loss_pct=%g" % (",".join(a.tun), cfg["delay"] * 1000.0, cfg["loss"]))
        heap = []  # (due, seq, out_fd, packet); seq keeps FIFO order for equal due times
        seq = 0
        n = len(fds)
        while True:
            timeout = None
            if heap:
                timeout = max(0.0, heap[0][0] - time.monotonic())
            for key, _ in sel.select(timeout):
                i = key.data
                src, out = fds[i], fds[(i + 1) % n]
                for _ in range(READ_BURST):
                    try:
                        pkt = os.read(src, 65536)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno in (errno.EAGAIN, errno.EINTR):
                            break
                        raise
                    stats["rx"] += 1
                    if cfg["loss"] > 0 and rng.random() * 100.0 < cfg["loss"]:
                        stats["lost"] += 1
                        continue
                    if len(heap) >= a.max_queue:
                        stats["qdrop"] += 1
                        continue
                    heapq.heappush(heap, (time.monotonic() + cfg["delay"], seq, out, pkt))
                    seq += 1
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                _, _, out, pkt = heapq.heappop(heap)
                try:
                    os.write(out, pkt)
                    stats["tx"] += 1
                except OSError:
                    stats["werr"] += 1
    except Stop:
        pass
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        log("stats " + " ".join("%s=%d" % kv for kv in stats.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
