#!/usr/bin/env bash
# Instructions per drained event of the journal's share of the outbox drain (valgrind
# callgrind: the same run to run on a loaded machine): benches/journal.rs --drain-callgrind,
# 20,000 events read at most 256 a call and acked 16 at a time, on an outbox as migration #1
# made it (a second b-tree on event_id) and on one as posd keeps it since stop 31, each run
# minus a run that only fills the journal.
#   scripts/callgrind-journal-drain.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(cargo bench --bench journal --no-run --message-format=json \
  | grep '"kind":\["bench"\]' | grep '"name":"journal"' \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "no journal bench binary built" >&2; exit 1; }
run() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --drain-callgrind "$@" 2>&1; }
count() { sed -n 's/.*Collected *: *//p' | tr -d , | head -1; }
declare -A per
for outbox in indexed slim; do
  fill=$(run "$outbox" fill-only | count)
  out=$(run "$outbox")
  events=$(echo "$out" | sed -n 's/^drained \([0-9]*\) events.*/\1/p')
  per[$outbox]=$(( ($(echo "$out" | count) - fill) / events ))
  echo "$outbox: ${per[$outbox]} instr/event ($events events)"
done
echo "slim / indexed: $(awk "BEGIN { printf \"%.3f\", ${per[slim]} / ${per[indexed]} }")x (load $(cut -d' ' -f1-3 /proc/loadavg))"
