#!/bin/bash
# What a flood of forged host answers costs the till (docs/broker.md, "A flood of forgeries").
#
#   scripts/flood-forged.sh [posd] [messages]
#
# Starts a mosquitto of its own on a free loopback port and the demo (`posd-sandbox demo
# --keep-running`, the real daemon and the sandbox host) against it, makes 20 P1 sales, then
# publishes `messages` (60,000) forged `resp`s on the terminal's topic — each a real host
# signature of another message, so each costs a full Ed25519 verification — and makes 20 P1
# sales during the flood and 20 after it. Prints each set's median and max (posctl's whole
# call, process start included), posd's CPU over the flood, and the gate's counts.
# Needs: release binaries (`cargo build --release --workspace`), mosquitto, mosquitto-clients,
# python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
posd=${1:-$bin/posd}
n=${2:-60000}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$work/m.conf"
mosquitto -c "$work/m.conf" > "$work/mosquitto.log" 2>&1 &
mosq=$!
demo=
cleanup() {
  # The daemon first: the demo does not take it down with itself when killed.
  pkill -f "$work/d/posd.toml" 2>/dev/null || true
  [ -n "$demo" ] && kill "$demo" 2>/dev/null || true
  kill "$mosq" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
sleep 0.3
setsid "$bin/posd-sandbox" demo --keep-running --broker "mqtt://127.0.0.1:$port" --dir "$work/d" \
  --posd "$posd" < /dev/null > "$work/demo.log" 2>&1 &
demo=$!
for _ in $(seq 120); do grep -q "posctl --socket" "$work/demo.log" 2>/dev/null && break; sleep 0.5; done
sock=$work/d/control.sock
ctl() { "$bin/posctl" --socket "$sock" "$@"; }
# A real host answer and a real host signature of another message: a forgery that verifies
# to the end before it fails.
timeout 10 mosquitto_sub -p "$port" -t 'pos/v1/DEMO-1/resp' -t 'pos/v1/DEMO-1/ack' -C 2 -v > "$work/seen" &
sub=$!
sleep 0.3
ctl sale --amount 1.00 --code 134567890123456780 > /dev/null
wait $sub || true
python3 - "$work/seen" > "$work/forged.json" <<'PY'
import json, sys
msgs = {}
for line in open(sys.argv[1]):
    topic, body = line.rstrip("\n").split(" ", 1)
    msgs.setdefault(topic.rsplit("/", 1)[1], json.loads(body))
forged = msgs["resp"]
forged["sig"] = msgs["ack"]["sig"]
print(json.dumps(forged, separators=(",", ":")))
PY
for c in $(seq 1000 1059); do "$bin/posd-sandbox" wallet code --wallet "$work/d/wallet.json" --counter "$c"; done > "$work/codes"
sales() { # first last label
  local ts=() code a b
  for code in $(sed -n "$1,$2p" "$work/codes"); do
    a=$(date +%s%N); ctl sale --amount 0.10 --code "$code" > /dev/null || echo "sale refused"; b=$(date +%s%N)
    ts+=($(( (b - a) / 1000 )))
  done
  printf '%s\n' "${ts[@]}" | sort -n | awk -v w="$3" '{a[NR]=$1} END {printf "%s: %d P1 sales, median %.1f ms, max %.1f ms\n", w, NR, a[int(NR/2)+1]/1000, a[NR]/1000}'
}
pid=$(pgrep -f "$work/d/posd.toml" | head -1)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
sales 1 20 "before the flood"
c0=$(cpu); t0=$(date +%s%N)
yes "$(cat "$work/forged.json")" | head -n "$n" | mosquitto_pub -p "$port" -t pos/v1/DEMO-1/resp -q 1 -l &
flood=$!
sleep 0.3
sales 21 40 "during the flood"
wait $flood || true
sleep 1
c1=$(cpu); t1=$(date +%s%N)
sales 41 60 "after the flood"
echo "posd CPU over the flood: $(( (c1 - c0) * 10 )) ms in $(( (t1 - t0) / 1000000 )) ms ($n forged resps); load $(cut -d' ' -f1-3 /proc/loadavg)"
ctl status --json | python3 -c 'import json, sys; h = json.load(sys.stdin)["host_messages"]; print("refused", h["refused"], "of them not checked", h.get("not_checked", "(not counted by this posd)"))'
