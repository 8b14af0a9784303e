#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz on posd-core alone) for SECONDS each, JOBS at a
# time (default 2: one per core here), and fails if any of them finds a crash. CI runs it with 60.
#
#   scripts/fuzz.sh [SECONDS]        JOBS=1 scripts/fuzz.sh 300        scripts/fuzz.sh 60 cmd ack
#
# With a nightly toolchain (rustup) the targets are built with AddressSanitizer; without one, on
# the stable toolchain with `--sanitizer none` (coverage-guided all the same; posd-core has no
# unsafe code of its own). ASAN_OPTIONS=detect_odr_violation=0 is set for the ASan build: a
# target linked with C code (the bundled SQLite, before fuzz/ depended on posd-core alone)
# aborted at start on a false odr-violation (../shared/BUILD-NOTES.md). Crashes land in
# fuzz/artifacts/TARGET/, the corpus grows in fuzz/corpus/TARGET/ (both git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-60}
shift || true
jobs=${JOBS:-2}
triple_dir=target/$(rustc -vV | sed -n 's/^host: //p')/release
if rustup run nightly rustc --version >/dev/null 2>&1; then
	toolchain=(+nightly)
	sanitizer=()
	echo "fuzz: nightly toolchain, AddressSanitizer"
else
	toolchain=()
	sanitizer=(--sanitizer none)
	echo "fuzz: stable toolchain, no sanitizer"
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

start=$(date +%s)
cargo "${toolchain[@]}" fuzz build "${sanitizer[@]}" >"$logs/build.log" 2>&1 || {
	cat "$logs/build.log" >&2
	exit 2
}
echo "fuzz: built in $(($(date +%s) - start)) s"

if [ $# -gt 0 ]; then
	targets=("$@")
else
	mapfile -t targets < <(cargo fuzz list)
fi
run() { # target
	mkdir -p "corpus/$1" "artifacts/$1"
	"$triple_dir/$1" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="artifacts/$1/" "corpus/$1" >"$logs/$1.log" 2>&1
}

failed=()
running=0
declare -A pids
for t in "${targets[@]}"; do
	[ -x "$triple_dir/$t" ] || { echo "fuzz: no target $t" >&2; exit 2; }
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
	run "$t" &
	pids[$t]=$!
	running=$((running + 1))
done
for t in "${targets[@]}"; do
	if wait "${pids[$t]}"; then
		echo "fuzz: $t ok: $(grep -E '^Done [0-9]+ runs' "$logs/$t.log" || echo '?') ($(grep -oE 'cov: [0-9]+' "$logs/$t.log" | tail -n 1))"
	else
		failed+=("$t")
		echo "fuzz: $t FAILED:" >&2
		tail -n 30 "$logs/$t.log" >&2
	fi
done
echo "fuzz: ${#targets[@]} target(s), $(($(date +%s) - start)) s in all"
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: crashes in ${failed[*]} (fuzz/artifacts/)" >&2; exit 1; }
