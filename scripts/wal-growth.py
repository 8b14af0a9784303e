#!/usr/bin/env python3
"""What a growing write-ahead log costs a one-row durable commit (stop 39).

The daemon bench's baselines once let SQLite checkpoint on its own (every 1000 pages, inside
the commit that crosses them), so a one-row baseline's log grew through the whole run and
every commit also extended the file; posd checkpoints every 64 events on a thread of its own
and writes its log over from the start. This measures both, interleaved in random order in
one process and one directory (WAL, synchronous=FULL):

  auto1000  SQLite's automatic checkpoint (the old baselines)
  ck64      wal_autocheckpoint=8000 and a PASSIVE checkpoint on a second connection every
            64 commits, off the timed path (posd, and the baselines since stop 39)

usage: python3 scripts/wal-growth.py [N=1000] [DIR=a new temporary directory]
"""

import os
import random
import sqlite3
import sys
import tempfile
import time


def quantile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def open_db(path, autocheckpoint):
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    return c


def run(directory, n):
    dbs = {
        "auto1000": open_db(os.path.join(directory, "auto.sqlite"), 1000),
        "ck64": open_db(os.path.join(directory, "ck64.sqlite"), 8000),
    }
    checkpointer = sqlite3.connect(os.path.join(directory, "ck64.sqlite"), isolation_level=None)
    times = {k: [] for k in dbs}
    for i in range(n):
        order = list(dbs)
        random.shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            dbs[k].execute("INSERT INTO t (v) VALUES (?)", (str(i),))
            times[k].append(time.perf_counter() - t0)
        if i % 64 == 63:
            checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
    base = times["ck64"]
    for k, v in times.items():
        print(
            f"{k:9} p50 {quantile(v, 0.5) * 1e3:.3f} ms, p99 {quantile(v, 0.99) * 1e3:.3f} ms"
            f" ({quantile(v, 0.5) / quantile(base, 0.5):.2f}x / "
            f"{quantile(v, 0.99) / quantile(base, 0.99):.2f}x ck64)"
        )
    with open("/proc/loadavg") as f:
        print("load", " ".join(f.read().split()[:3]))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    if len(sys.argv) > 2:
        run(sys.argv[2], n)
    else:
        with tempfile.TemporaryDirectory(prefix="wal-growth-") as directory:
            run(directory, n)


if __name__ == "__main__":
    main()
