#!/usr/bin/env python3
"""A stand-in for systemd's notify socket in tests: an AF_UNIX SOCK_DGRAM socket at
argv[1] ("@name": abstract namespace) with SO_PASSCRED, as systemd's. For every datagram it
appends one JSON line to argv[3] with the message, the sender's pid, uid and gid from the
credentials the kernel attached (systemd's NotifyAccess=main accepts only the main pid), and,
taken at the moment it arrived, the addresses and routes of the interface argv[2] (so a test
can tell whether READY=1 came before or after the TUN was configured; "-": none).
Prints "ready" once bound. Test helper only."""
import json
import os
import socket
import struct
import subprocess
import sys
import time

path, dev, out = sys.argv[1:4]
abstract = path.startswith("@")
if not abstract:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\0" + path[1:] if abstract else path)
if not abstract:
    os.chmod(path, 0o666)
print("ready", flush=True)
CRED = struct.calcsize("3i")
while True:
    data, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(CRED))
    pid = uid = gid = None
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, uid, gid = struct.unpack("3i", cdata[:CRED])
    run = lambda *a: subprocess.run(["ip", *a], capture_output=True, text=True).stdout
    rec = {
        "t": time.time(),
        "msg": data.decode("utf-8", "replace"),
        "pid": pid,
        "uid": uid,
        "gid": gid,
        "addr": run("-o", "addr", "show", "dev", dev) if dev != "-" else "",
        "route": run("route", "show", "dev", dev) + run("-6", "route", "show", "dev", dev) if dev != "-" else "",
    }
    with open(out, "a") as f:
        f.write(json.dumps(rec) + "\n")
