#!/usr/bin/env bash
# Instructions per drained event of the journal's share of the outbox drain (valgrind
# callgrind: the same run to run on a loaded machine): benches/journal.rs --drain-callgrind,
# 20,000 events read at most 256 a call and acked 16 at a time, on an outbox as migration #1
# made it (a second b-tree on event_id) and on one as posd keeps it since stop 31, each run
# minus a run that only fills the journal.
#   scripts/callgrind-journal-drain.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench journal --no-run --quiet 2>/dev/null
bin=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/journal-* | grep -v '\.d$' | head -1)
run() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --drain-callgrind "$@" 2>&1; }
count() { sed -n 's/.*I *refs: *//p; s/.*Collected *: *//p' | tr -d , | head -1; }
declare -A per
for outbox in indexed slim; do
  fill=$(run "$outbox" fill-only | count)
  all=$(run "$outbox" | count)
  per[$outbox]=$(( (all - fill) / 20000 ))
  echo "$outbox: ${per[$outbox]} instr/event"
done
echo "slim / indexed: $(awk "BEGIN { printf \"%.3f\", ${per[slim]} / ${per[indexed]} }")x (load $(cut -d' ' -f1-3 /proc/loadavg))"
