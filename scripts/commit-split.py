#!/usr/bin/env python3
"""What a sale's durable commit would cost if it wrote only a log record and a counter.

Issue 18's P1 goal (approval p99 <= 1.5x a bare durable commit) against the page count of
posd's commit: a P1 sale's SQLite transaction changed 15 pages when this was written (the
txn row and its 5 indexes, the journal row and its 3, sqlite_sequence, the outbox, 3 counter
tables; 13 since migration #15 dropped two of those indexes). This
script measures, interleaved in one process on one disk, three commits (WAL, synchronous=FULL):

  bare    one row in one table (the bench's bare durable commit)
  wide15  one row in each of 15 tables (a P1 sale's pages)
  split2  a ~600 B log record and a counter update (2-3 pages), the other 13 tables' rows
          applied every APPLY sales after the fact in one synchronous=NORMAL transaction
          (no sync of its own: the next FULL commit syncs its frames; a crash loses none
          of it because the log record is durable and can be applied again)

and prints each one's p50 / p99 and its ratio to the bare commit, the apply's own time and
the machine's load. It is a model of a design (docs/performance.md, "stop 34"), not posd:
Python's sqlite3 module (the system's SQLite), rows of one column.

usage: python3 scripts/commit-split.py [N=2000] [APPLY=16] [DIR=a new temporary directory]
"""

import os
import random
import sqlite3
import sys
import tempfile
import time


def open_db(path, tables):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    # Checkpointed as posd checkpoints its journal (see `checkpoint_all`): SQLite's own
    # 1000-page checkpoint would let the one-row database's log grow (and the file extend at
    # every commit) for half the run while the others' logs are written over.
    c.execute("PRAGMA wal_autocheckpoint=8000")
    for t in range(tables):
        c.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, v TEXT)")
    c.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, rec TEXT)")
    c.execute("CREATE TABLE ctr (k TEXT PRIMARY KEY, v INTEGER)")
    c.execute("INSERT INTO ctr VALUES ('n', 0)")
    return c


def quantile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def main():
    if len(sys.argv) > 3:
        run(sys.argv[3])
    else:
        with tempfile.TemporaryDirectory(prefix="commit-split-") as directory:
            run(directory)


def run(directory):
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    apply_every = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    bare = open_db(os.path.join(directory, "bare.db"), 1)
    wide = open_db(os.path.join(directory, "wide.db"), 15)
    split = open_db(os.path.join(directory, "split.db"), 13)
    checkpointers = [
        sqlite3.connect(os.path.join(directory, name), isolation_level=None)
        for name in ("bare.db", "wide.db", "split.db")
    ]
    record = "x" * 600
    times = {"bare": [], "wide15": [], "split2": []}
    apply_ms = []
    pending = []
    for i in range(n):
        order = list(times)
        random.shuffle(order)  # no kind always first, or always after another's sync
        for kind in order:
            t0 = time.perf_counter()
            if kind == "bare":
                bare.execute("INSERT INTO t0 (v) VALUES (?)", (str(i),))
            elif kind == "wide15":
                wide.execute("BEGIN")
                for t in range(15):
                    wide.execute(f"INSERT INTO t{t} (v) VALUES (?)", (str(i),))
                wide.execute("COMMIT")
            else:
                split.execute("BEGIN")
                split.execute("INSERT INTO log (rec) VALUES (?)", (record,))
                split.execute("UPDATE ctr SET v = v + 1 WHERE k = 'n'")
                split.execute("COMMIT")
            times[kind].append((time.perf_counter() - t0) * 1e3)
            if kind == "split2":
                pending.append(i)
                if len(pending) >= apply_every:
                    ta = time.perf_counter()
                    split.execute("PRAGMA synchronous=NORMAL")
                    split.execute("BEGIN")
                    for t in range(13):
                        split.executemany(
                            f"INSERT INTO t{t} (v) VALUES (?)", [(str(j),) for j in pending]
                        )
                    split.execute("COMMIT")
                    split.execute("PRAGMA synchronous=FULL")
                    apply_ms.append((time.perf_counter() - ta) * 1e3)
                    pending = []
        if i % 64 == 63:
            # posd's checkpointer: PASSIVE, every 64 sales, untimed (scripts/wal-growth.py).
            for c in checkpointers:
                c.execute("PRAGMA wal_checkpoint(PASSIVE)")
    b50, b99 = quantile(times["bare"], 0.5), quantile(times["bare"], 0.99)
    for kind, v in times.items():
        p50, p99 = quantile(v, 0.5), quantile(v, 0.99)
        print(
            f"{kind:7s} p50 {p50:.3f} ms, p99 {p99:.3f} ms; "
            f"to the bare commit p50 {p50 / b50:.2f}x, p99 {p99 / b99:.2f}x"
        )
    if apply_ms:
        print(
            f"the apply of {apply_every} sales' other rows: "
            f"p50 {quantile(apply_ms, 0.5):.3f} ms, max {max(apply_ms):.3f} ms"
        )
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    try:
        with open("/proc/pressure/io") as f:
            io = f.readline().split()[1]
    except OSError:
        io = "n/a"
    print(f"({n} of each, {directory}, load {load}, io pressure {io})")


if __name__ == "__main__":
    main()
