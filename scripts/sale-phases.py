#!/usr/bin/env python3
"""Where a sale's wall time goes inside posd, cut at its system calls (issue 18).

A profile says where posd's CPU goes; it cannot say how long a sale waits, or for what. This
reads a trace of posd's system calls, entries and exits with their times, finds the journal
thread (the one making the most calls) and cuts each sale at the calls that bound its phases:
the control request read (`recvfrom` on the control socket), the commit's first `pwrite64`,
its `fsync` and the answer (`sendto` on the control socket); for an online sale also the
request's publish (`writev` on the MQTT socket) and the last read from it before the second
commit (the host's answer). It then prints each phase's quantiles, and how the sales' `fsync`
fared when posd's checkpointer (the second busiest thread) was syncing at the same time.

The MQTT socket is the one `writev` writes to, the control socket the one `sendto` answers on.

Usage (the daemon bench running one section, posd's pid from its config's path):

    POSD_BENCH_ONLY=p1 POSD_BENCH_N=6000 POSD_BENCH_POSD=<posd> target/release/deps/daemon-<hash> --bench &
    perf record -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -o sc.perf \\
        -p "$(pgrep -f p1/posd.toml)" -- sleep 1
    perf script -i sc.perf -F tid,time,event,trace | python3 scripts/sale-phases.py p1

(`online` instead of `p1` with `POSD_BENCH_ONLY=online` and `online/posd.toml`.) Tracing
costs about a microsecond a call, ~30-70 calls a sale: read phases against each other, not
against the bench's own times.
"""

import re
import sys

PWRITE, FSYNC, SENDTO, RECVFROM, WRITEV = 18, 74, 44, 45, 20
LINE = re.compile(
    r"\s*(\d+)\s+([\d.]+):\s+raw_syscalls:sys_(enter|exit): NR (\d+)(?: \(([0-9a-f]+),)?"
)


def read(stream):
    calls = []
    for line in stream:
        m = LINE.match(line)
        if m:
            tid, t, kind, nr, arg0 = m.groups()
            calls.append((int(tid), float(t), kind, int(nr), arg0))
    return calls


def quantiles(xs):
    if not xs:
        return "none"
    xs = sorted(xs)
    pick = lambda p: xs[min(len(xs) - 1, int(len(xs) * p))]
    return f"p50 {pick(0.5):7.1f}  p90 {pick(0.9):7.1f}  p99 {pick(0.99):7.1f}  (n {len(xs)})"


def first_fd(calls, nr):
    for _, _, kind, n, arg0 in calls:
        if n == nr and kind == "enter":
            return arg0
    return None


def sales(calls, mode):
    control = first_fd(calls, SENDTO)
    mqtt = first_fd(calls, WRITEV)
    out, cur, last_fd = [], None, {}
    for _, t, kind, nr, arg0 in calls:
        if kind == "enter":
            last_fd[nr] = arg0
        if nr == RECVFROM and kind == "exit" and last_fd.get(nr) == control:
            cur = {"recv": t, "pwrite": [], "fsync": []}
            continue
        if cur is None:
            continue
        if nr == PWRITE and kind == "enter":
            if len(cur["pwrite"]) == len(cur["fsync"]):
                cur["pwrite"].append(t)
        elif nr == FSYNC and kind == "enter":
            cur["fsync"].append([t, None])
        elif nr == FSYNC and kind == "exit" and cur["fsync"]:
            cur["fsync"][-1][1] = t
        elif nr == WRITEV and kind == "enter" and arg0 == mqtt and len(cur["fsync"]) == 1:
            cur.setdefault("publish", t)
        elif nr == RECVFROM and kind == "exit" and last_fd.get(nr) == mqtt and "publish" in cur:
            if len(cur["fsync"]) == 1:
                cur["answer"] = t
        elif nr == SENDTO and kind == "enter" and arg0 == control:
            cur["send"] = t
            commits = 1 if mode == "p1" else 2
            complete = len(cur["fsync"]) == commits and all(e for _, e in cur["fsync"])
            if complete and len(cur["pwrite"]) >= commits and (mode == "p1" or "answer" in cur):
                out.append(cur)
            cur = None
    return out


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "p1"
    if mode not in ("p1", "online"):
        sys.exit("usage: sale-phases.py p1|online < perf-script-output")
    calls = read(sys.stdin)
    by_thread = {}
    for c in calls:
        by_thread.setdefault(c[0], []).append(c)
    busiest = sorted(by_thread, key=lambda tid: len(by_thread[tid]), reverse=True)
    if not busiest:
        sys.exit("no raw_syscalls events read")
    journal = by_thread[busiest[0]]
    found = sales(journal, mode)
    print(f"journal thread {busiest[0]}: {len(journal)} calls, {len(found)} whole {mode} sales; µs:")
    us = lambda a, b: (b - a) * 1e6
    rows = [("request read → first pwrite", [us(s["recv"], s["pwrite"][0]) for s in found])]
    rows.append(("first pwrite → fsync", [us(s["pwrite"][0], s["fsync"][0][0]) for s in found]))
    rows.append(("fsync", [us(*s["fsync"][0]) for s in found]))
    if mode == "online":
        rows += [
            ("fsync → request published", [us(s["fsync"][0][1], s["publish"]) for s in found]),
            ("published → host's answer read", [us(s["publish"], s["answer"]) for s in found]),
            ("answer read → second pwrite", [us(s["answer"], s["pwrite"][1]) for s in found]),
            ("second pwrite → fsync", [us(s["pwrite"][1], s["fsync"][1][0]) for s in found]),
            ("second fsync", [us(*s["fsync"][1]) for s in found]),
        ]
    rows.append(("last fsync → answer sent", [us(s["fsync"][-1][1], s["send"]) for s in found]))
    rows.append(("request read → answer sent", [us(s["recv"], s["send"]) for s in found]))
    for name, xs in rows:
        print(f"  {name:32} {quantiles(xs)}")
    if len(busiest) > 1:
        spans, start = [], None
        for _, t, kind, nr, _ in by_thread[busiest[1]]:
            if nr == FSYNC and kind == "enter":
                start = t
            elif nr == FSYNC and kind == "exit" and start is not None:
                spans.append((start, t))
                start = None
        fsyncs = [tuple(f) for s in found for f in s["fsync"]]
        hit = lambda f: any(a < f[1] and b > f[0] for a, b in spans)
        print(f"checkpointer thread {busiest[1]}: {len(spans)} fsyncs, {quantiles([us(*s) for s in spans])}")
        print(f"  sales' fsyncs while it synced    {quantiles([us(*f) for f in fsyncs if hit(f)])}")
        print(f"  sales' fsyncs otherwise          {quantiles([us(*f) for f in fsyncs if not hit(f)])}")


if __name__ == "__main__":
    main()
