#!/usr/bin/env bash
# Instructions per 640×480 camera frame (valgrind callgrind: the same run to run on a loaded
# machine) for the sets of the issue 18 camera goals: frames with a code, empty photos, flat
# frames, white noise — one camera cycle (Pipeline::cycle_frames) of each frame, 25 ms budget
# (benches/camera_decode.rs --callgrind), with the screened schedule and, on equal footing in
# the same binary, the unscreened one from before. Subtracts a run that only loads the frames.
#   scripts/callgrind-camera.sh [SET...]        (default: empty flat noise codes)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench camera_decode --no-run --quiet 2>/dev/null
bin=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/camera_decode-* | grep -v '\.d$' | head -1)
run() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --callgrind "$@" 2>&1; }
count() { sed -n 's/.*I *refs: *//p' | tr -d ,; }
for set in ${*:-empty flat noise codes}; do
  base=$(run "none-$set" | count)
  line="$set:"
  for sched in screened before; do
    out=$(run "$set" $([ $sched = before ] && echo before))
    frames=$(echo "$out" | sed -n 's/^frames \([0-9]*\).*/\1/p')
    line="$line $sched $(( ($(echo "$out" | count) - base) / frames )) instr/frame ($frames frames, $(echo "$out" | grep -o 'payloads [0-9]*'));"
  done
  echo "$line"
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
