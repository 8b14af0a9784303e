#!/usr/bin/env python3
"""Which tables and indexes a running posd's commits write, frame by frame.

Every frame SQLite appends to the write-ahead log starts with a 24-byte header whose first
four bytes are the page's number and whose next four are non-zero on a transaction's last
frame. This script reads those headers from an strace of posd's `pwrite64` calls, cuts them
into commits, and names each page by the table or index that owned it in a copy of the
database taken at the same time (SQLite's `dbstat`; a backup keeps page numbers). It prints
how many frames the commits had and, per commit, how often each b-tree was written. Pages
that are not b-tree pages in the copy (page 1's header, pointer-map and free-list pages, and
pages allocated after the copy) are counted apart.

Usage, while posd sells (e.g. the daemon bench's P1 section, `POSD_BENCH_ONLY=p1
POSD_BENCH_N=8000 target/release/deps/daemon-<hash> --bench`):

    pid=$(pgrep -f p1/posd.toml)
    db=$(ls -l /proc/$pid/fd | grep -o '/[^ ]*posd.sqlite$' | head -1)
    timeout 1 strace -f -e trace=pwrite64 -xx -s 24 -p $pid -o /tmp/commits.strace
    sqlite3 "$db" ".backup /tmp/commits.sqlite"
    python3 scripts/commit-pages.py /tmp/commits.strace /tmp/commits.sqlite
"""

import collections
import re
import sqlite3
import sys

HEADER = re.compile(r'pwrite64\(\d+, "((?:\\x[0-9a-f]{2}){24})", 24, \d+\)')


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    trace, copy = sys.argv[1], sys.argv[2]
    owner = {}
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as c:
        for name, page in c.execute("SELECT name, pageno FROM dbstat"):
            owner[page] = name
    commits, frames = [], []
    with open(trace) as f:
        for line in f:
            m = HEADER.search(line)
            if not m:
                continue
            header = bytes(int(x, 16) for x in m.group(1).split("\\x")[1:])
            frames.append(int.from_bytes(header[0:4], "big"))
            if int.from_bytes(header[4:8], "big"):
                commits.append(frames)
                frames = []
    if not commits:
        sys.exit(f"{trace}: no commit in the trace (strace -xx -s 24 of pwrite64?)")
    sizes = collections.Counter(len(c) for c in commits)
    mean = sum(len(c) for c in commits) / len(commits)
    print(f"{len(commits)} commits, {mean:.2f} frames each; frames: commits "
          + ", ".join(f"{k}: {v}" for k, v in sorted(sizes.items())))
    per = collections.Counter()
    for c in commits:
        for page in c:
            per[owner.get(page, "(not a b-tree page in the copy)")] += 1
    for name, n in per.most_common():
        print(f"{n / len(commits):6.2f}  {name}")


if __name__ == "__main__":
    main()
