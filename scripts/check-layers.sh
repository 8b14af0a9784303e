#!/usr/bin/env bash
# The workspace's shape, checked (docs/architecture.md): posd-core has no I/O crate, the product
# does not depend on the sandbox, and inside the product every `use crate::<module>` edge goes to
# a module of a lower layer (or the same layer where the table allows it) — so there is no
# import circle. Prints the edges it read; exits 1 on the first rule broken.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
heavy=$(cargo tree -p posd-core -e normal --prefix none 2>/dev/null |
	grep -oE '^(tokio|rusqlite|rumqttc|rumqttd|evdev|serialport|nokhwa) ' | sort -u | tr '\n' ' ' || true)
if [ -n "$heavy" ]; then
	echo "posd-core depends on I/O crates: $heavy"
	fail=1
else
	echo "ok: posd-core depends on none of tokio rusqlite rumqttc rumqttd evdev serialport nokhwa"
fi
pixel_deps=$(cargo tree -p posd-pixels -e normal --prefix none --depth 1 2>/dev/null | tail -n +2 | sort -u | tr '\n' ' ' || true)
if [ -n "$pixel_deps" ]; then
	echo "posd-pixels (per-pixel kernels, slices in and out) has dependencies: $pixel_deps"
	fail=1
else
	echo "ok: posd-pixels depends on nothing"
fi
if cargo tree -p posd -e normal --prefix none 2>/dev/null | grep -qE '^posd-sandbox '; then
	echo "the product depends on posd-sandbox"
	fail=1
else
	echo "ok: the product (normal dependencies) does not depend on posd-sandbox"
fi
if cargo tree -p posd-sandbox -e normal --prefix none 2>/dev/null | grep -qE '^posd v'; then
	echo "posd-sandbox depends on the product"
	fail=1
else
	echo "ok: posd-sandbox does not depend on the product"
fi

# The product's layers (docs/architecture.md); a module may import its own layer's modules only
# where listed in `same` below.
declare -A layer=(
	[cli]=0 [clock]=0 [lang]=0 [config]=1 [logging]=1 [systemd]=1 [store]=2 [retention]=3 [link]=3 [printer]=3 [printq]=3
	[engine]=4 [control]=5 [devices]=5 [camera]=5 [fleet]=5 [daemon]=6
)
same="printq>printer"
edges=$(grep -rhoE --include='*.rs' -H 'crate::[a-z_]+' src --exclude-dir=bin |
	sed -E 's#^src/([a-z_]+)(/[^:]*|\.rs):crate::([a-z_]+)#\1 \3#' | sort -u)
while read -r from to; do
	[ -n "$from" ] || continue
	[ "$from" = "$to" ] && continue
	[ "$from" = lib ] && continue
	lf=${layer[$from]:-}
	lt=${layer[$to]:-}
	if [ -z "$lf" ] || [ -z "$lt" ]; then
		echo "unknown module in edge $from -> $to: add it to the layer table"
		fail=1
	elif [ "$lt" -gt "$lf" ]; then
		echo "upward import: $from (layer $lf) -> $to (layer $lt)"
		fail=1
	elif [ "$lt" -eq "$lf" ] && [[ " $same " != *" $from>$to "* ]]; then
		echo "same-layer import not in the table: $from -> $to"
		fail=1
	else
		echo "  $from ($lf) -> $to ($lt)"
	fi
done <<<"$edges"
if [ $fail -eq 0 ]; then
	echo "ok: every module edge goes down a layer; no import circle"
fi
exit $fail
