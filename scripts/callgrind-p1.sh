#!/usr/bin/env bash
# Instructions per P1 sale inside a running posd (valgrind callgrind: the same run to run on a
# loaded machine, where the daemon bench's times are not). The daemon bench's P1 section runs
# with POSD_BENCH_POSD set to a wrapper that starts each posd under callgrind; once sales flow
# (25 s in) the counters are zeroed, 15 s later dumped, and the dump's calls of
# `Db::record_offline_sale_checked` count the sales. Prints, per sale: the whole posd, the
# journal call (inclusive) and `write_states` (inclusive). ring takes its generic ECDSA path
# under valgrind (no ADX/BMI2), so the total overstates the signature check (~50 µs natively).
#
#   scripts/callgrind-p1.sh <posd built with symbols> [<another posd> ...]
#
# With SECTION=online the bench's online section runs instead, and its sales are counted by
# their first journal call (`Db::record_with_code`, the `authorizing` event); `write_states`
# then covers both of a sale's events.
#
# Build a posd with symbols (the shipped profile otherwise):
#   CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#     cargo build --release --locked -p posd --bin posd --target-dir <dir>
# and the sandbox and bench first: cargo build --release -p posd-sandbox.
# Several posds are measured one after the other, in the order given.
set -euo pipefail
cd "$(dirname "$0")/.."
section=${SECTION:-p1}
case "$section" in
  p1) marker='Db::record_offline_sale_checked' ;;
  online) marker='Db::record_with_code' ;;
  *) echo "SECTION is p1 or online" >&2; exit 2 ;;
esac
[ $# -ge 1 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
bench=$(cargo bench --bench daemon --no-run --message-format=json \
  | grep '"kind":\["bench"\]' | grep '"name":"daemon"' \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$bench" ] || { echo "no daemon bench binary built" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for posd in "$@"; do
  [ -x "$posd" ] || { echo "$posd: not an executable" >&2; exit 2; }
  wrap="$work/posd-under-callgrind"
  printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/cg.%%p %s "$@"\n' \
    "$work" "$posd" > "$wrap"
  chmod +x "$wrap"
  POSD_BENCH_ONLY="$section" POSD_BENCH_N=20000 POSD_BENCH_POSD="$wrap" "$bench" --bench \
    > "$work/bench.log" 2>&1 &
  runner=$!
  pid=
  for _ in $(seq 1 240); do
    pid=$(pgrep -P "$runner" -f "valgrind.*$section/posd.toml" | head -1 || true)
    [ -n "$pid" ] && break
    sleep 0.5
  done
  [ -n "$pid" ] || { echo "posd under callgrind did not start" >&2; kill "$runner"; exit 1; }
  sleep 25
  callgrind_control -z "$pid" > /dev/null
  sleep 15
  callgrind_control -d "$pid" > /dev/null
  sleep 2
  # The bench's own children (posd under valgrind, its mosquitto), then the bench.
  kill $(pgrep -P "$runner") 2> /dev/null || true
  kill "$runner" 2> /dev/null || true
  wait "$runner" 2> /dev/null || true
  dump=$(ls "$work"/cg."$pid".* | head -1)
  python3 - "$dump" "$posd" "$marker" <<'EOF'
import re, subprocess, sys
dump, posd, marker = sys.argv[1], sys.argv[2], sys.argv[3]
names, calls, cur, total = {}, 0, None, 0
for line in open(dump, errors="replace"):
    m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2):
            names[m.group(1)] = m.group(2)
        cur = names.get(m.group(1), "") if line.startswith("cfn=") else None
    elif line.startswith("calls=") and cur is not None:
        if marker in cur:
            calls += int(line.split()[0][6:])
        cur = None
    elif line.startswith("summary:"):
        total = int(line.split()[1])
if not calls:
    sys.exit(f"{dump}: no sale in the dump")
out = subprocess.run(["callgrind_annotate", "--inclusive=yes", dump],
                     capture_output=True, text=True).stdout
def incl(fn):
    for line in out.splitlines():
        if f"posd::store::{fn} [" in line:
            return int(line.split()[0].replace(",", ""))
    return 0
print(f"{posd}: {calls} sales; per sale: posd {total / calls / 1e3:.1f}k instructions, "
      f"journal call {incl(marker) / calls / 1e3:.1f}k, "
      f"write_states {incl('write_states') / calls / 1e3:.1f}k")
EOF
done
echo "(load $(cut -d' ' -f1-3 /proc/loadavg))"
