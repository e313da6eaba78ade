#!/usr/bin/env python3
"""report.py RESULTS_DIR SPEC... - markdown report of an `anchors.sh rounds` run.

Reads the per-round files RESULTS_DIR/rN.SPEC.txt (key: value lines), derives a few
figures per round (per-daemon CPU s/GB, ping overhead over bare), takes medians over
the rounds and prints: a table of every implementation x metric, mintun's ratio to bare
and to every anchor, and the issue's targets with met / not met. SPEC `cmd` is mintun.
"""
import glob
import json
import os
import re
import statistics
import sys

NAMES = {"bare": "bare veth", "wireguard-go": "wireguard-go", "wg": "wireguard-go",
         "openvpn": "OpenVPN", "tinc": "tinc", "cmd": "mintun"}
NUM = re.compile(r"^-?[0-9.]+$")

# (key, label, unit, better: "hi" | "lo" | None)
METRICS = [
    ("tcp1_mbps", "TCP 1 stream", "Mbit/s", "hi"),
    ("tcp1_retrans", "TCP 1 stream retransmits", "segs", None),
    ("tcpP_mbps", "TCP 4 streams", "Mbit/s", "hi"),
    ("udp64_rx_pps", "UDP 64 B received", "pkt/s", "hi"),
    ("udp64_loss_pct", "UDP 64 B loss", "%", "lo"),
    ("udp1400_rx_pps", "UDP 1400 B received", "pkt/s", "hi"),
    ("udp1400_loss_pct", "UDP 1400 B loss", "%", "lo"),
    ("ping_avg_ms", "ping avg (warm)", "ms", "lo"),
    ("ping_overhead_ms", "ping overhead over bare", "ms", "lo"),
    ("tcp1_cpu_s_per_gb", "daemon CPU, both, TCP 1 stream", "s/GB", "lo"),
    ("tcp1_cpu_a_s_per_gb", "  sender daemon (a)", "s/GB", "lo"),
    ("tcp1_cpu_b_s_per_gb", "  receiver daemon (b)", "s/GB", "lo"),
    ("tcpP_cpu_s_per_gb", "daemon CPU, both, TCP 4 streams", "s/GB", "lo"),
    ("tcp1_cpu_a_s", "CPU a during TCP 1 stream", "s", None),
    ("tcp1_cpu_b_s", "CPU b during TCP 1 stream", "s", None),
    ("tcp1_system_busy_pct", "machine busy during TCP 1 stream", "%", None),
    ("udp64_cpu_us_per_pkt", "daemon CPU per 64 B packet (both)", "us", "lo"),
    ("rss_a_hwm_kb", "peak RSS a (VmHWM)", "KiB", "lo"),
    ("rss_b_hwm_kb", "peak RSS b (VmHWM)", "KiB", "lo"),
    ("rss_a_kb", "RSS a after load", "KiB", "lo"),
    ("rss_b_kb", "RSS b after load", "KiB", "lo"),
    ("rss_a_anon_kb", "  of which anonymous, a (RssAnon)", "KiB", "lo"),
    ("rss_b_anon_kb", "  of which anonymous, b (RssAnon)", "KiB", "lo"),
    ("rss_a_file_kb", "  of which file pages, a (RssFile)", "KiB", "lo"),
    ("rss_b_file_kb", "  of which file pages, b (RssFile)", "KiB", "lo"),
    ("startup_to_first_reply_ms", "A launch -> first reply", "ms", "lo"),
    ("cold_first_ping_ms", "first ping, fresh ready pair", "ms", "lo"),
    ("warm_ping_avg_ms", "warm ping on that pair", "ms", "lo"),
    ("curl_cold_total_ms", "curl 10 KiB, cold", "ms", "lo"),
    ("curl_warm_total_ms", "curl 10 KiB, warm", "ms", "lo"),
    ("delay25_startup_to_first_reply_ms", "+25 ms: A launch -> first reply", "ms", "lo"),
    ("delay25_cold_first_ping_ms", "+25 ms: first ping, fresh pair", "ms", "lo"),
    ("delay25_warm_ping_avg_ms", "+25 ms: warm ping", "ms", "lo"),
    ("delay25_curl_cold_total_ms", "+25 ms: curl cold", "ms", "lo"),
    ("delay25_curl_warm_total_ms", "+25 ms: curl warm", "ms", "lo"),
]


def read_run(path):
    d = {}
    for line in open(path, errors="replace"):
        k, sep, v = line.rstrip("\n").partition(": ")
        if sep:
            d[k] = v
    return d


def num(d, k):
    v = d.get(k, "").split(" ")[0]
    return float(v) if NUM.match(v) else None


def derive(d):
    out = {}
    for k in list(d):
        x = num(d, k)
        if x is not None:
            out[k] = x
    b = out.get("tcp1_bytes")
    if b:
        for s in "ab":
            c = out.get(f"tcp1_cpu_{s}_s")
            if c is not None:
                out[f"tcp1_cpu_{s}_s_per_gb"] = c / (b / 1e9)
    return out


def fmt(x):
    if x is None:
        return "-"
    a = abs(x)
    if x == 0:
        return "0"
    if a >= 1000:
        return f"{x:.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


STEPS = ["launch", "node", "entry", "modules", "config", "keys", "checks", "devices", "engine",
         "ready", "record", "create", "first-tunnel"]
STEP_LABELS = {
    "launch": "wrapper (mintun-cmd.sh: ip netns exec, bash) before the node process",
    "node": "Node's own start (bootstrap)",
    "entry": "bin/mintund runs",
    "modules": "daemon bundle and packages loaded",
    "config": "config parsed, logger",
    "keys": "CA, host certificate and key read and verified",
    "checks": "peers, policy, users, protocol self-test",
    "devices": "UDP socket, TUN, addresses and routes (ip -batch, overlapped with the checks)",
    "engine": "engine made, peers added (record requests sent, cached records installed)",
    "ready": "API socket, readers started, READY",
    "record": "first record answer learned",
    "create": "first CREATE sent",
    "first-tunnel": "first tunnel established",
}


def startup_breakdown(rdir, p):
    """Medians of the daemon's start-up trace (MINTUN_STARTUP_TRACE, test/bench/mintun-cmd.sh):
    side a, every start of the run, ms since its process started."""
    for mode, title in (("direct", "LAN"), ("relay", "+delay relay")):
        f = os.path.join(rdir, f"startup-trace-{mode}.jsonl")
        if not os.path.exists(f):
            continue
        rows = []
        for line in open(f, errors="replace"):
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if d.get("host") == "mb-a":
                rows.append(d)
        if not rows:
            continue
        p(f"### mintun start-up breakdown, {title} (side a, median of {len(rows)} starts, "
          "ms since the node process started)\n")
        p("| step | at (ms) | step took (ms) |")
        p("|---|---|---|")
        prev = 0.0
        net = ("record", "create", "first-tunnel")
        for s in STEPS:
            vals = [r[s] for r in rows if isinstance(r.get(s), (int, float))]
            if not vals:
                continue
            # the network steps: the earliest start (the launch scenario pings at once)
            at = min(vals) if s in net else statistics.median(vals)
            took = at - prev if s not in ("launch",) + net else None
            lab = STEP_LABELS[s] + (" (earliest)" if s in net else "")
            p(f"| {lab} (`{s}`) | {fmt(at)} | {fmt(took) if took is not None else '-'} |")
            if s not in ("launch",) + net:
                prev = at
        cpu = [r["cpu"] for r in rows if isinstance(r.get("cpu"), (int, float))]
        if cpu:
            p(f"\nCPU time (user + system, all threads) from the process start to its first tunnel: "
              f"median {fmt(statistics.median(cpu))} ms (n={len(cpu)}; less sensitive to the machine's load "
              "than the wall times above).")
        ct = [r["first-tunnel"] - r["create"] for r in rows
              if isinstance(r.get("create"), (int, float)) and isinstance(r.get("first-tunnel"), (int, float))]
        if ct:
            p(f"\nfirst CREATE -> tunnel established: median {fmt(statistics.median(ct))} ms "
              f"(n={len(ct)}); `record`, `create` and `first-tunnel` depend on when the scenario sends "
              "its first packet (the launch scenario pings as soon as the route exists, the others "
              "wait for readiness and 1 s).\n")


def name(s):
    """cmd:NAME is a variant of mintun (test/bench/mintun-cmd.sh)"""
    return f"mintun {s[4:]}" if s.startswith("cmd:") else NAMES.get(s, s)


def main():
    rdir, specs = sys.argv[1], sys.argv[2:]
    meta = read_run(os.path.join(rdir, "meta.txt")) if os.path.exists(os.path.join(rdir, "meta.txt")) else {}
    runs = {}
    for s in specs:
        tag = s.replace(":", "_").replace("/", "_")
        files = sorted(glob.glob(os.path.join(rdir, f"r*.{tag}.txt")))
        runs[s] = [read_run(f) for f in files]
    # ping overhead per round: against the same round's bare run
    bare_ping = {}
    if "bare" in runs:
        for i, d in enumerate(runs["bare"]):
            bare_ping[i] = num(d, "ping_avg_ms")
    med, nrounds, info = {}, {}, {}
    for s, rs in runs.items():
        per = []
        for i, d in enumerate(rs):
            x = derive(d)
            if "ping_avg_ms" in x and bare_ping.get(i) is not None:
                x["ping_overhead_ms"] = x["ping_avg_ms"] - bare_ping[i]
            per.append(x)
        nrounds[s] = len(rs)
        info[s] = rs[0] if rs else {}
        med[s] = {}
        keys = {k for x in per for k in x}
        for k in keys:
            vals = [x[k] for x in per if k in x]
            med[s][k] = statistics.median(vals) if vals else None

    def m(s, k):
        return med.get(s, {}).get(k)

    anchors = [s for s in specs if s not in ("bare", "cmd") and not s.startswith("cmd:")]
    variants = [s for s in specs if s.startswith("cmd:")]
    mt = "cmd" if "cmd" in specs else None
    cols = specs
    p = print
    p("### Medians (" + ", ".join(f"{name(s)} n={nrounds[s]}" for s in specs) + ")\n")
    p("| metric | unit | " + " | ".join(name(s) for s in cols) + " |")
    p("|---|---|" + "---|" * len(cols))
    for k, lab, unit, _ in METRICS:
        if not any(m(s, k) is not None for s in cols):
            continue
        p(f"| {lab} | {unit} | " + " | ".join(fmt(m(s, k)) for s in cols) + " |")
    p()
    if mt:
        refs = (["bare"] if "bare" in specs else []) + anchors
        p("### mintun's ratios (mintun / other, same run)\n")
        p("| metric | mintun | " + " | ".join(f"/ {NAMES.get(r, r)}" for r in refs) + " |")
        p("|---|---|" + "---|" * len(refs))
        for k, lab, unit, _ in METRICS:
            if m(mt, k) is None or k in ("tcp1_system_busy_pct", "ping_overhead_ms", "tcp1_retrans"):
                continue
            p(f"| {lab.strip()} ({unit}) | {fmt(m(mt, k))} | " + " | ".join(ratio(m(mt, k), m(r, k)) for r in refs) + " |")
        p()
        if variants:
            p("### Variants of mintun (variant / mintun, same run)\n")
            p("| metric | mintun | " + " | ".join(name(v) for v in variants) + " |")
            p("|---|---|" + "---|" * len(variants))
            for k, lab, unit, _ in METRICS:
                if m(mt, k) is None or k in ("tcp1_system_busy_pct", "ping_overhead_ms", "tcp1_retrans"):
                    continue
                p(f"| {lab.strip()} ({unit}) | {fmt(m(mt, k))} | "
                  + " | ".join(f"{fmt(m(v, k))} = {ratio(m(v, k), m(mt, k))}" for v in variants) + " |")
            p()
        # targets
        p("### Targets (issue; same run)\n")
        p("| target | measured | met |")
        p("|---|---|---|")
        yes = lambda c: "yes" if c else "**no**"
        best = max(anchors, key=lambda s: m(s, "tcp1_mbps") or 0) if anchors else None
        if best and m(mt, "tcp1_mbps") and m(best, "tcp1_mbps"):
            r = m(mt, "tcp1_mbps") / m(best, "tcp1_mbps")
            p(f"| single-stream TCP >= 2x best userspace anchor ({NAMES[best]} {fmt(m(best, 'tcp1_mbps'))} Mbit/s) "
              f"| {fmt(m(mt, 'tcp1_mbps'))} Mbit/s = {r:.2f}x | {yes(r >= 2)} |")
        wg = next((s for s in anchors if s in ("wireguard-go", "wg")), None)
        if wg and m(mt, "tcp1_cpu_s_per_gb") and m(wg, "tcp1_cpu_s_per_gb"):
            r = m(mt, "tcp1_cpu_s_per_gb") / m(wg, "tcp1_cpu_s_per_gb")
            p(f"| daemon CPU s/GB (TCP 1 stream) <= 0.5x wireguard-go's ({fmt(m(wg, 'tcp1_cpu_s_per_gb'))}) "
              f"| {fmt(m(mt, 'tcp1_cpu_s_per_gb'))} = {r:.2f}x | {yes(r <= 0.5)} |")
        if wg and m(mt, "ping_overhead_ms") is not None and m(wg, "ping_overhead_ms") is not None:
            a, b = m(mt, "ping_overhead_ms"), m(wg, "ping_overhead_ms")
            p(f"| ping overhead over bare <= wireguard-go's ({fmt(b)} ms) | {fmt(a)} ms | {yes(a <= b)} |")
        # latency targets are stated for the delayed runs (the 0-delay cold figures are in the tables)
        for pf, lab in (("delay25_", "+25 ms each way"),):
            cf, wp = m(mt, pf + "cold_first_ping_ms"), m(mt, pf + "warm_ping_avg_ms")
            if cf is not None and wp:
                p(f"| {lab}: first ping on fresh tunnel ~ warm (<= 1.2x warm {fmt(wp)} ms) "
                  f"| {fmt(cf)} ms = {cf / wp:.2f}x | {yes(cf <= 1.2 * wp)} |")
            cc, cw = m(mt, pf + "curl_cold_total_ms"), m(mt, pf + "curl_warm_total_ms")
            if cc is not None and cw:
                p(f"| {lab}: cold curl ~ warm (<= 1.2x warm {fmt(cw)} ms) | {fmt(cc)} ms = {cc / cw:.2f}x "
                  f"| {yes(cc <= 1.2 * cw)} |")
            su = m(mt, pf + "startup_to_first_reply_ms")
            if su is not None and wp:
                lim = 2 * wp + 10
                p(f"| {lab}: daemon start -> first reply <= 2 RTT + 10 ms ({fmt(lim)} ms) | {fmt(su)} ms "
                  f"| {yes(su <= lim)} |")
        # issue 19 item 5: peak RSS per daemon <= 40 MiB (the figure for wireguard-go)
        pk = [m(mt, f"rss_{x}_hwm_kb") for x in "ab"]
        if all(v is not None for v in pk):
            mib = lambda kb: f"{kb / 1024:.1f} MiB"
            wgs = ""
            if wg and all(m(wg, f"rss_{x}_hwm_kb") for x in "ab"):
                wgs = "; / wireguard-go same side: " + ", ".join(
                    f"{x} {ratio(m(mt, f'rss_{x}_hwm_kb'), m(wg, f'rss_{x}_hwm_kb'))}" for x in "ab")
            fl = num(meta, "node_floor_hwm_kb")
            fls = f"; node alone (`node -e`) {mib(fl)}" if fl else ""
            p(f"| peak RSS per daemon <= 40 MiB (issue 19: wireguard-go's) | a {mib(pk[0])}, b {mib(pk[1])}"
              f" = {max(pk) / 40960:.2f}x of 40 MiB{wgs}{fls} | {yes(max(pk) <= 40960)} |")
        p()
        # issue 19 items 1 and 4 on the LAN: no slower than wireguard-go in the same run
        if wg:
            for k, lab in (("startup_to_first_reply_ms", "LAN: launch -> first reply"),
                           ("cold_first_ping_ms", "LAN: first ping on a fresh pair"),
                           ("curl_cold_total_ms", "LAN: curl 10 KiB cold")):
                a, b = m(mt, k), m(wg, k)
                if a is not None and b is not None:
                    p(f"| {lab} <= wireguard-go's ({fmt(b)} ms) | {fmt(a)} ms = {a / b:.2f}x | {yes(a <= b)} |")
            p()
        startup_breakdown(rdir, p)
    p("Versions: " + "; ".join(f"{name(s)}: {info[s].get('version', '?')}" for s in specs if s != "bare"))
    p()
    notes = []
    for s in specs:
        for d in runs[s]:
            for k, v in d.items():
                if k.endswith("_error") or k in ("error", "warning"):
                    notes.append(f"{name(s)}: {k}: {v}")
    if notes:
        p("Errors/warnings in the raw files:\n")
        for n in sorted(set(notes)):
            p(f"- {n}")


if __name__ == "__main__":
    main()
