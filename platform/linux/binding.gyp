{
  "targets": [
    {
      "target_name": "mintun_linux",
      "sources": ["mintun_linux.c", "tun_offload.c", "sockdiag.c", "peercred.c", "lockfile.c", "dumpable.c", "notify.c", "memtrim.c", "aead.c", "multiqueue.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"]
    }
  ]
}
