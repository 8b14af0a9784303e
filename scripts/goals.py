#!/usr/bin/env python3
"""Issue 18's goals as its closing notes give them: min / median / max of N runs, with the load.

Runs the daemon bench (`benches/daemon.rs`) and the camera bench (`benches/camera_decode.rs
--vga`) N times each, a gap apart, reads the goal lines they print, and prints one markdown table:
each goal's min / median / max and in how many runs it was met, then the real photos' score
(`tests/camera_photos.rs`, once) and the stripped size of the posd measured. Every number is the
benches' own; this script only runs them and collates, so a note's table matches what ran.

Usage, from the repository's root, after building what it runs:

    cargo build --release --locked --bins          # posd as shipped (copy it aside)
    cargo build --release -p posd-sandbox          # the sandbox host, broker helpers
    python3 scripts/goals.py --posd /path/to/posd [--runs 3] [--gap 20] [--no-camera]

It finds the bench executables with `cargo bench --no-run --message-format=json` (building them
if needed). The raw output of every run is kept in --keep (default: a new temporary directory).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

# (goal, regex on the daemon bench's output, group, unit, "met" test or None)
DAEMON = [
    ("outbox drain ≥ 50 % of a bare QoS 1 publisher", r"drain/raw = (\d+) %", "%", lambda v: v >= 50),
    ("the same, against the host-acked bare publisher", r"drain/host-acked = (\d+) %", "%", None),
    ("posd CPU per event ≤ 1.3× the bare publisher's",
     r"CPU per event: posd [\d.]+ µs, bare publisher [\d.]+ µs; ratio ([\d.]+)x", "×", lambda v: v <= 1.3),
    ("posd CPU per event, µs", r"CPU per event: posd ([\d.]+) µs", "µs", None),
    ("idle RSS ≤ 15 MB with a 100k journal", r"100k journal:.*idle RSS after 3 s ([\d.]+) MiB", "MiB",
     lambda v: v * 1.048576 <= 15),
    ("P1 approval p99 ≤ 1.5× a bare durable commit",
     r"P1 approval \(\d+, interleaved\).*ratio p50 [\d.]+x, p99 ([\d.]+)x", "×", lambda v: v <= 1.5),
    ("P1 approval at p50, to the bare commit's p50", r"P1 approval \(\d+, interleaved\).*ratio p50 ([\d.]+)x", "×", None),
    ("P1 approval against a bare commit of its pages, p99",
     r"the P1 approval to it: p50 [\d.]+x, p99 ([\d.]+)x", "×", None),
    ("the goal's floor: a bare approver (socket, signatures, one-row commit) to the bare commit, p99",
     r"bare approver .*?, [\d.]+x / ([\d.]+)x the bare commit", "×", None),
    ("P1 approval to the bare approver, p99",
     r"bare approver .*P1 approval .*?, [\d.]+x / ([\d.]+)x the bare approver", "×", None),
    ("posd's own online share ≤ 0.5 ms at p99 (difference of quantiles)",
     r"own share of the distributions.*p99 (-?[\d.]+) ms; goal", "ms", lambda v: v <= 0.5),
    ("posd's own online share at p50", r"own share of the distributions.*: p50 (-?[\d.]+) ms", "ms", None),
    ("P1 during a drain, p99", r"during the drain .*?: p50 [\d.]+ ms, p99 ([\d.]+) ms", "ms", None),
]
CAMERA = [
    ("camera: a frame with a code, p95 ≤ 2 ms", r"^\| codes \|(?:[^|]*\|){4}\s*([\d.]+)\s*\|", "ms", lambda v: v <= 2),
    ("camera: an empty frame, median ≤ 1 ms", r"^\| empty \|(?:[^|]*\|){3}\s*([\d.]+)\s*\|", "ms", lambda v: v <= 1),
    ("camera: sensor noise, median ≤ 2 ms", r"^\| noise \|(?:[^|]*\|){3}\s*([\d.]+)\s*\|", "ms", lambda v: v <= 2),
]


def load():
    with open("/proc/loadavg") as f:
        one = f.read().split()[0]
    try:
        with open("/proc/pressure/io") as f:
            io = re.search(r"avg10=([\d.]+)", f.readline()).group(1)
    except OSError:
        io = "?"
    return f"load {one}, io pressure {io} %"


def bench_exe(name):
    out = subprocess.run(
        ["cargo", "bench", "--bench", name, "--no-run", "--message-format=json"],
        check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == name:
            return msg["executable"]
    sys.exit(f"no executable for bench {name}")


def run(cmd, env, keep, tag):
    started = f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, {load()}"
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    text = p.stdout + p.stderr
    with open(os.path.join(keep, f"{tag}.log"), "w") as f:
        f.write(f"# {' '.join(cmd)}\n# started {started}\n{text}")
    if p.returncode != 0:
        sys.exit(f"{tag}: exit {p.returncode}; see {keep}/{tag}.log")
    return started, text


def read(goals, text):
    values = {}
    for goal, pattern, _, _ in goals:
        m = re.search(pattern, text, re.M)
        values[goal] = float(m.group(1)) if m else None
    return values


def fmt(v):
    return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 10 else f"{v:.1f}".rstrip("0").rstrip(".")


def table(goals, runs):
    rows = []
    for goal, _, unit, met in goals:
        vs = [r[goal] for r in runs if r[goal] is not None]
        if not vs:
            rows.append(f"| {goal} | not printed | — |")
            continue
        cell = f"{fmt(min(vs))} / {fmt(statistics.median(vs))} / {fmt(max(vs))} {unit}"
        said = f"{sum(1 for v in vs if met(v))} of {len(vs)}" if met else "—"
        rows.append(f"| {goal} | {cell} | {said} |")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posd", required=True, help="the posd binary to measure (as shipped)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gap", type=float, default=20, help="seconds between runs")
    ap.add_argument("--no-camera", action="store_true")
    ap.add_argument("--keep", default=None, help="directory for the raw outputs")
    a = ap.parse_args()
    keep = a.keep or tempfile.mkdtemp(prefix="posd-goals-")
    os.makedirs(keep, exist_ok=True)
    env = dict(os.environ, POSD_BENCH_POSD=os.path.abspath(a.posd))
    daemon = bench_exe("daemon")
    camera = None if a.no_camera else bench_exe("camera_decode")
    runs, starts = [], []
    for i in range(a.runs):
        if i:
            time.sleep(a.gap)
        started, text = run([daemon, "--bench"], env, keep, f"daemon-{i + 1}")
        starts.append(started)
        runs.append(read(DAEMON, text))
    print(f"posd {a.posd}: {os.path.getsize(a.posd):,} B; daemon bench {daemon}")
    print("runs started: " + "; ".join(starts))
    print()
    print("| goal | min / median / max | met |")
    print("| --- | --- | --- |")
    print("\n".join(table(DAEMON, runs)))
    size = os.path.getsize(a.posd)
    print(f"| stripped posd ≤ 10 MB | {size:,} B | {'yes' if size <= 10_000_000 else 'no'} |")
    if camera:
        cams, starts = [], []
        for i in range(a.runs):
            started, text = run([camera, "--vga"], env, keep, f"camera-{i + 1}")
            starts.append(started)
            cams.append(read(CAMERA, text))
        print("\n".join(table(CAMERA, cams)))
        _, text = run(
            ["cargo", "test", "-p", "posd", "--release", "--test", "camera_photos", "--", "--nocapture"],
            env, keep, "camera-photos",
        )
        m = re.search(r"tuning (\d+)/(\d+) read, hold-out (\d+)/(\d+) read", text)
        if m:
            t, tn, h, hn = map(int, m.groups())
            share = 100 * (t + h) / (tn + hn)
            print(f"| camera: real photos ≥ 95 % | tuning {t}/{tn}, hold-out {h}/{hn}: {share:.1f} % | {'yes' if share >= 95 else 'no'} |")
        print("camera runs started: " + "; ".join(starts))
    print(f"raw outputs: {keep}")


if __name__ == "__main__":
    main()
