#!/usr/bin/env bash
# fileforkall.sh - BenchmarkFileForkAllPipe (file://, N OS-process children,
# each printing one line) with and without the pipe they share, the two
# alternating RUNS times so that a shared machine's load swings hit both
# alike, then the medians of ForkAll's time per child (wall and CPU: a
# busy machine inflates the wall time, not the CPU time) and of the time
# to the last child's exit, and their ratios (pipe / no pipe). Also montecarlo
# with N OS-process workers on file://, MC_RUNS times.
#
# Usage: bench/fileforkall.sh [N] [RUNS]       (default 1000 5)
#   MC_RUNS=3 TRIALS=3000000
#   TMPDIR decides the file system (the store is a temporary directory):
#   on an ext4 without a journal, making files costs far more than on tmpfs.
# Each run starts N copies of a program at once: run it under nice.
set -euo pipefail
N=${1:-1000}
RUNS=${2:-5}
MC_RUNS=${MC_RUNS:-3}
TRIALS=${TRIALS:-3000000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$HERE" && go test -c -o "$WORK/rack.test" . && go build -o "$WORK/montecarlo" ./examples/montecarlo)

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

for i in $(seq "$RUNS"); do
	for mode in nopipe pipe; do
		(cd "$HERE" && RACK_BENCH_CHILDREN=$N "$WORK/rack.test" -test.run '^$' \
			-test.bench "FileForkAllPipe/^$mode\$" -test.benchtime 1x >"$WORK/out" 2>&1) || true
		out=$(grep '^Benchmark' "$WORK/out") || true
		fork=$(echo "$out" | awk '{for (i=1;i<NF;i++) if ($(i+1)=="fork-ns/child") print $i}')
		cpu=$(echo "$out" | awk '{for (i=1;i<NF;i++) if ($(i+1)=="fork-cpu-ns/child") print $i}')
		total=$(echo "$out" | awk '{for (i=1;i<NF;i++) if ($(i+1)=="ns/child") print $i}')
		if [ -z "$fork" ]; then
			echo "run $i $mode: failed:"
			tail -5 "$WORK/out"
			continue
		fi
		echo "run $i $mode: ForkAll $fork ns/child ($cpu ns CPU), to the last exit $total ns/child"
		echo "$fork" >>"$WORK/$mode.fork"
		echo "$cpu" >>"$WORK/$mode.cpu"
		echo "$total" >>"$WORK/$mode.total"
	done
done
for m in nopipe pipe; do
	printf '%s: median ForkAll %s ns/child (%s ns CPU), to the last exit %s ns/child\n' "$m" \
		"$(median <"$WORK/$m.fork")" "$(median <"$WORK/$m.cpu")" "$(median <"$WORK/$m.total")"
done
awk -v a="$(median <"$WORK/pipe.fork")" -v b="$(median <"$WORK/nopipe.fork")" \
	-v c="$(median <"$WORK/pipe.total")" -v d="$(median <"$WORK/nopipe.total")" \
	-v e="$(median <"$WORK/pipe.cpu")" -v f="$(median <"$WORK/nopipe.cpu")" \
	'BEGIN {printf "pipe/nopipe: ForkAll %.2fx (CPU %.2fx), to the last exit %.2fx\n", a/b, e/f, c/d}'

for i in $(seq "$MC_RUNS"); do
	mkdir -m 700 "$WORK/mc$i"
	/usr/bin/time -f "montecarlo --workers $N run $i: %e s wall, %U s user, %S s system" \
		env RACK_URL="file://$WORK/mc$i" "$WORK/montecarlo" --trials "$TRIALS" --workers "$N" 2>&1 |
		grep -E 'result|wall|rack:' | tr -s ' ' | tr '\n' ' '
	echo
done
