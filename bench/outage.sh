#!/usr/bin/env bash
# outage.sh - montecarlo on a loopback Swift behind a fault-injecting TCP
# proxy (bench/faultproxy, internal/tcpfault), with the kernel's defaults
# (30 s lease, 5 s request timeout): a clean run, a run with every
# connection refused for OUTAGE seconds from 1 s in (must print the clean
# run's result), and runs where, from 1 s in, Swift refuses every
# connection or accepts them and never answers, for good (must exit with
# a clear error; the script prints how long that took). Then runs with
# a fault from the start: LATENCY added each way to every chunk (so about
# twice that per request), and HANGFRAC of new connections left hanging
# (both must print the clean run's result).
#
# Usage: source /work/svc/env.sh (SWIFT_AUTH_URL, SWIFT_USER, SWIFT_KEY);
#        bench/outage.sh [RUNS]
#   OUTAGE=20  seconds of refused connections in the outage runs
#   TRIALS=20000000 WORKERS=10
#   LATENCY=100ms HANGFRAC=0.05
set -euo pipefail
RUNS=${1:-1}
OUTAGE=${OUTAGE:-20}
TRIALS=${TRIALS:-20000000}
WORKERS=${WORKERS:-10}
LATENCY=${LATENCY:-100ms}
HANGFRAC=${HANGFRAC:-0.05}
HERE=$(cd "$(dirname "$0")/.." && pwd)
: "${SWIFT_AUTH_URL:?source /work/svc/env.sh first}"
TARGET=$(echo "$SWIFT_AUTH_URL" | sed -E 's#^https?://([^/]+).*#\1#')
WORK=$(mktemp -d)
trap 'exec 9>&- 2>/dev/null || true; sleep 0.2; rm -rf "$WORK"' EXIT
(cd "$HERE" && go build -o "$WORK/montecarlo" ./examples/montecarlo && go build -o "$WORK/faultproxy" ./bench/faultproxy)
mkfifo "$WORK/ctl"
"$WORK/faultproxy" -target "$TARGET" <"$WORK/ctl" >"$WORK/addr" 2>"$WORK/proxy.log" &
exec 9>"$WORK/ctl"
for _ in $(seq 50); do [ -s "$WORK/addr" ] && break; sleep 0.1; done
ADDR=$(head -1 "$WORK/addr")
ctl() { echo "$*" >&9; }

# run NAME FAULT-AFTER-1s [UNDO-AFTER-SECONDS]: one montecarlo run; with
# FROM_START set, that fault command runs before it instead.
run() {
	local name=$1 fault=${2:-} undo=${3:-}
	local ns="rack-outage-$name-$$-$RANDOM"
	ctl pass
	if [ -n "${FROM_START:-}" ]; then
		ctl "$FROM_START"
		sleep 0.1
	fi
	local faulter=""
	if [ -n "$fault" ]; then
		( sleep 1; ctl "$fault"; if [ -n "$undo" ]; then sleep "$undo"; ctl pass; fi ) &
		faulter=$!
	fi
	local start end rc=0
	start=$(date +%s.%N)
	RACK_URL="swift+v1://$ADDR/$ns" "$WORK/montecarlo" --trials "$TRIALS" --workers "$WORKERS" --seed 42 \
		>"$WORK/out" 2>"$WORK/err" || rc=$?
	end=$(date +%s.%N)
	[ -z "$faulter" ] || wait "$faulter"
	ctl pass
	# The result without its time: the points inside the circle.
	grep -E '^\| (points|result) ' "$WORK/out" >"$WORK/out.$name" || true
	printf '%-22s %6.1f s  exit %d  %s\n' "$name" "$(echo "$end - $start" | bc)" "$rc" \
		"$(tr -s ' \n' ' ' <"$WORK/out.$name")$(tail -1 "$WORK/err" | cut -c1-220)"
}

for i in $(seq "$RUNS"); do
	run clean
	run "refuse-${OUTAGE}s" refuse "$OUTAGE"
	if [ -s "$WORK/out.clean" ] && cmp -s "$WORK/out.clean" "$WORK/out.refuse-${OUTAGE}s"; then echo "  exact: same result as the clean run"; else echo "  DIFFERENT from the clean run"; fi
	run refuse-for-good refuse
	run hang-for-good hang
	for f in "latency $LATENCY" "hangfrac $HANGFRAC"; do
		name=$(echo "$f" | tr ' ' '-')
		FROM_START="$f" run "$name"
		if cmp -s "$WORK/out.clean" "$WORK/out.$name"; then echo "  exact: same result as the clean run"; else echo "  DIFFERENT from the clean run"; fi
		ctl latency 0s
		ctl hangfrac 0
	done
done
