#!/usr/bin/env python3
"""
nat-forge.py: an off-path or on-path attacker's sender for the NAT traversal attack tests
(test/netns/nat-attacks.test.ts, issue 17). Sends hand-made UDP datagrams, from its own
address or from a spoofed one (IP_TRANSPARENT: a source address this namespace does not
hold, as any host that can forge its source can), then listens on its own sockets for
answers.

  nat-forge.py SPEC.json

SPEC: {"listenS": seconds to wait for answers after the last send,
       "sends": [{"src": "ip:port" (omit: this host's own address, port 40000),
                  "dst": "ip:port", "hex": [payload, ...], "copies": n, "gapMs": ms}]}
Each payload is sent `copies` times (at most 1000 datagrams in all), gapMs apart.
Prints one JSON line: {"sent": n, "answers": n (datagrams received on our own sockets)}.
"""
import json
import select
import socket
import sys
import time

IP_TRANSPARENT = 19
MAX_DATAGRAMS = 1000


def hostport(s):
    ip, port = s.rsplit(":", 1)
    return ip, int(port)


def main():
    spec = json.load(open(sys.argv[1]))
    socks = {}
    own = []

    def sock_for(src):
        if src in socks:
            return socks[src]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if src is None:
            s.bind(("0.0.0.0", 40000))
            own.append(s)
        else:
            s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
            s.bind(hostport(src))
        socks[src] = s
        return s

    sent = 0
    for snd in spec["sends"]:
        s = sock_for(snd.get("src"))
        dst = hostport(snd["dst"])
        for _ in range(snd.get("copies", 1)):
            for h in snd["hex"]:
                if sent >= MAX_DATAGRAMS:
                    break
                s.sendto(bytes.fromhex(h), dst)
                sent += 1
            time.sleep(snd.get("gapMs", 5) / 1000)
    answers = 0
    deadline = time.time() + spec.get("listenS", 1)
    while own and time.time() < deadline:
        r, _, _ = select.select(own, [], [], max(0, deadline - time.time()))
        for s in r:
            s.recvfrom(65535)
            answers += 1
    print(json.dumps({"sent": sent, "answers": answers}), flush=True)


if __name__ == "__main__":
    main()
