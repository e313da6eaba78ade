#!/usr/bin/env python3
"""A stand-in for systemd's notify socket in tests: an AF_UNIX SOCK_DGRAM socket at
argv[1]. For every datagram it appends one JSON line to argv[3] with the message and,
taken at the moment it arrived, the addresses and routes of the interface argv[2]
(so a test can tell whether READY=1 came before or after the TUN was configured).
Prints "ready" once bound. Test helper only; mintund itself uses systemd-notify."""
import json
import os
import socket
import subprocess
import sys
import time

path, dev, out = sys.argv[1:4]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
print("ready", flush=True)
while True:
    data = s.recv(65536).decode("utf-8", "replace")
    run = lambda *a: subprocess.run(["ip", *a], capture_output=True, text=True).stdout
    rec = {
        "t": time.time(),
        "msg": data,
        "addr": run("-o", "addr", "show", "dev", dev),
        "route": run("route", "show", "dev", dev) + run("-6", "route", "show", "dev", dev),
    }
    with open(out, "a") as f:
        f.write(json.dumps(rec) + "\n")
