#!/usr/bin/env bash
# swift-netns.sh - a 64 MiB stream through a rack pipe on a loopback Swift,
# side by side with raw ncw/swift PUT and GET, where the writer and the
# reader are separate programs on hosts of their own: two network
# namespaces, each with a link shaped like a host's network interface
# (tc tbf, RATE each way). On one 2-core machine an unshaped loopback
# makes every byte that a pipe moves cost Swift's CPU twice (PUT and
# GET) on the same two cores; with shaped links the hosts contend for
# their own links, as VMs on a real cloud do, and the figure says whether
# the pipe overlaps the writer's PUTs with the reader's GETs.
#
# Usage (root; iproute2): bench/swift-netns.sh [RUNS]
#   RATE=400mbit    the shaped rate of each host's link, each way ("none": unshaped)
#   MIB=64          stream size
#   KEEP=1          leave Swift and the namespaces up afterwards
#   SWIFTPIPE=PATH  a swiftpipe binary to use (another build, to compare)
# It starts its own Swift (scripts/swift-saio.sh) on the bridge address
# 10.77.0.1, ports 28180..., data in $TMPDIR/rack-netns-swift, and removes
# everything it made at the end.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "swift-netns.sh: needs root (network namespaces, tc)" >&2; exit 1; }
command -v tc >/dev/null || { echo "swift-netns.sh: needs iproute2 (ip, tc)" >&2; exit 1; }
RUNS=${1:-3}
RATE=${RATE:-400mbit}
MIB=${MIB:-64}
HERE=$(cd "$(dirname "$0")/.." && pwd)
DATA=${TMPDIR:-/tmp}/rack-netns-swift
BR=rackbr0
WORK=$(mktemp -d) # this run's own scratch directory: the only one cleanup removes
BIN=$WORK/swiftpipe

MADE=() # the namespaces and the bridge this run made: only those go at the end
cleanup() {
  rm -rf "$WORK"
  [ "${KEEP:-}" = 1 ] && return
  bash "$HERE/scripts/swift-saio.sh" reset "$DATA" >/dev/null 2>&1 || true
  for m in "${MADE[@]}"; do
    case $m in
      ns:*) ip netns del "${m#ns:}" 2>/dev/null || true; ip link del "${m#ns:}-h" 2>/dev/null || true ;;
      br) ip link del $BR 2>/dev/null || true ;;
    esac
  done
}
trap cleanup EXIT

# Two hosts on a bridge; Swift listens on the bridge's own address.
if ! ip link show $BR >/dev/null 2>&1; then
  ip link add $BR type bridge
  MADE+=(br)
  ip addr add 10.77.0.1/24 dev $BR
  ip link set $BR up
fi
i=2
for n in w r; do
  if ! ip netns list | grep -qw rack-$n; then
    ip netns add rack-$n
    MADE+=("ns:rack-$n")
    ip link add rack-$n-h type veth peer name rack-$n-c
    ip link set rack-$n-c netns rack-$n
    ip link set rack-$n-h master $BR up
    ip -n rack-$n addr add 10.77.0.$i/24 dev rack-$n-c
    ip -n rack-$n link set rack-$n-c up
    ip -n rack-$n link set lo up
  fi
  i=$((i + 1))
  # Shape both directions of the host's link: egress inside the namespace
  # (its uploads) and egress of the bridge side (its downloads).
  for dev in "-n rack-$n rack-$n-c" "rack-$n-h"; do
    set -- $dev
    if [ $# = 3 ]; then ns=(-n "$2"); d=$3; else ns=(); d=$1; fi
    tc "${ns[@]}" qdisc del dev "$d" root 2>/dev/null || true
    [ "$RATE" = none ] || tc "${ns[@]}" qdisc add dev "$d" root tbf rate "$RATE" burst 512kb latency 100ms
  done
done

SWIFT_BIND_IP=10.77.0.1 SWIFT_PORT=28180 SWIFT_OBJECT_PORT=26280 SWIFT_CONTAINER_PORT=26281 \
  SWIFT_ACCOUNT_PORT=26282 SWIFT_MEMCACHED_PORT=21280 bash "$HERE/scripts/swift-saio.sh" start "$DATA" >/dev/null
set -a; . "$DATA/swift.env"; set +a
if [ -n "${SWIFTPIPE:-}" ]; then BIN=$SWIFTPIPE; else (cd "$HERE" && go build -o "$BIN" ./bench/swiftpipe); fi

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mbs() { awk -v s="$1" -v m="$MIB" 'BEGIN {printf "%.0f", m*1048576/s/1e6}'; }
run_w() { ip netns exec rack-w "$BIN" "$@"; }
run_r() { ip netns exec rack-r "$BIN" "$@"; }

put=(); get=(); pipe=()
for run in $(seq "$RUNS"); do
  put+=("$(run_w put rack-netns-raw obj "$MIB")")
  get+=("$(run_r get rack-netns-raw obj)")
  go=$WORK/go-$run
  ns=rack-netns-$$-$run
  run_r read "$ns" stream "$go" >"$go.r" &
  reader=$!
  run_w write "$ns" stream "$MIB" "$go" >"$go.w"
  wait $reader
  read -r _ start _ wsum <"$go.w"
  read -r _ end _ bytes _ rsum <"$go.r"
  [ "$wsum" = "$rsum" ] && [ "$bytes" = $((MIB << 20)) ] || { echo "run $run: the stream arrived wrong ($bytes bytes)" >&2; exit 1; }
  pipe+=("$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.4f", (b-a)/1e9}')")
  rm -f "$go" "$go.r" "$go.w"
  echo "run $run: PUT ${put[-1]} s, GET ${get[-1]} s, pipe ${pipe[-1]} s" >&2
done
p=$(printf '%s\n' "${put[@]}" | median); g=$(printf '%s\n' "${get[@]}" | median); q=$(printf '%s\n' "${pipe[@]}" | median)
echo "links $RATE each way, $MIB MiB, median of $RUNS:"
echo "  raw PUT (writer's host)   $(mbs "$p") MB/s"
echo "  raw GET (reader's host)   $(mbs "$g") MB/s"
echo "  raw PUT then GET          $(mbs "$(awk -v a="$p" -v b="$g" 'BEGIN {print a+b}')") MB/s"
echo "  pipe, write to EOF        $(mbs "$q") MB/s = $(awk -v a="$p" -v b="$q" 'BEGIN {printf "%.2f", a/b}')x raw PUT"
