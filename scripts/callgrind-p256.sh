#!/usr/bin/env bash
# Instruction counts (valgrind callgrind: the same run to run on a noisy machine) of one ECDSA
# P-256 verification with the p256 crate and with ring, on the same key, message and signature
# (crates/posd-core/benches/p256_backends.rs). Prints instructions per verification and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
cargo bench -p posd-core --bench p256_backends --no-run --quiet 2>/dev/null
bin=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/p256_backends-* | grep -v '\.d$' | head -1)
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --callgrind "$1" "$n" 2>&1 |
    sed -n 's/.*I *refs: *//p' | tr -d ,
}
base=$(count none)
p=$(( ($(count p256) - base) / n ))
r=$(( ($(count ring) - base) / n ))
echo "instructions per verification: p256 $p, ring $r, ring/p256 $(awk "BEGIN{printf \"%.3f\", $r/$p}") (n=$n, load $(cut -d' ' -f1-3 /proc/loadavg))"
