#!/usr/bin/env bash
# ab.sh: is a change no slower on W1-W3? Builds `sluice` at two commits,
# runs each workload on both alternately (the order flips every round, so
# drift in the machine hits both alike) and compares the wall times with
# benchstat.
#
#   OLD=4bed15a tools/peers/ab.sh                 # against HEAD, small data
#   OLD=4bed15a SIZE=large RUNS=10 tools/peers/ab.sh
#
# Environment:
#   OLD      the baseline commit (required); NEW the other (HEAD)
#   SIZE     small (1M orders, 100k users, 1M events) or large (10M, 1M, 10M)
#   RUNS     runs of each commit per workload (10)
#   THREADS  --parallelism and GOMAXPROCS (2)
#   DATA     where the data and outputs go ($TMPDIR/sluice-peers/$SIZE, as compare.sh)
#   WORKLOADS  which to run ("w1 w2 w3")
#
# The data is generated once by NEW's gen-orders and gen-events (the same
# rows at every commit: the generator is seeded). Prints benchstat's table;
# the raw results are in $DATA/ab/{old,new}.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${OLD:?set OLD to the baseline commit}"
NEW=${NEW:-HEAD}
SIZE=${SIZE:-small}
RUNS=${RUNS:-10}
THREADS=${THREADS:-2}
WORKLOADS=${WORKLOADS:-w1 w2 w3}
case $SIZE in
small) orders=1000000 users=100000 events=1000000 ;;
large) orders=10000000 users=1000000 events=10000000 ;;
*)
	echo "ab.sh: SIZE must be small or large, not $SIZE" >&2
	exit 2
	;;
esac
DATA=${DATA:-${TMPDIR:-/tmp}/sluice-peers/$SIZE}
ab=$DATA/ab
mkdir -p "$ab"

build() { # build NAME REV
	local wt=$ab/src-$1
	rm -rf "$wt"
	git -C "$root" worktree add --detach -f "$wt" "$2" >/dev/null 2>&1
	(cd "$wt" && go build -o "$ab/sluice-$1" ./cmd/sluice)
	git -C "$root" worktree remove --force "$wt"
	echo "ab.sh: $1 is $(git -C "$root" rev-parse --short "$2")" >&2
}
build old "$OLD"
build new "$NEW"

if [ ! -f "$DATA/orders/_SUCCESS" ] || [ ! -f "$DATA/users/_SUCCESS" ]; then
	echo "ab.sh: generating $orders orders and $users users" >&2
	"$ab/sluice-new" run gen-orders --quiet --arg "out=$DATA" --arg "orders=$orders" --arg "users=$users" >/dev/null
fi
if [ ! -f "$DATA/events/_SUCCESS" ]; then
	echo "ab.sh: generating $events events" >&2
	"$ab/sluice-new" run gen-events --quiet --arg "out=$DATA" --arg "events=$events" >/dev/null
fi

args() {
	case $1 in
	w1) echo orders-join --arg "orders=$DATA/orders" --arg "users=$DATA/users" --arg "out=$ab/out-w1" ;;
	w2) echo orders-per-user --arg "orders=$DATA/orders" --arg "out=$ab/out-w2" ;;
	w3) echo events-windows --arg "events=$DATA/events" --arg "out=$ab/out-w3" ;;
	*)
		echo "ab.sh: unknown workload $1" >&2
		exit 2
		;;
	esac
}

: >"$ab/old.txt"
: >"$ab/new.txt"
for ((i = 1; i <= RUNS; i++)); do
	order="old new"
	[ $((i % 2)) = 0 ] && order="new old"
	for w in $WORKLOADS; do
		for which in $order; do
			t0=$(date +%s%N)
			# shellcheck disable=SC2046 # paths without spaces
			GOMAXPROCS=$THREADS "$ab/sluice-$which" run $(args "$w") --parallelism "$THREADS" --quiet >"$ab/$which-$w.log" 2>&1 ||
				{ echo "ab.sh: $which $w failed:" >&2; tail -20 "$ab/$which-$w.log" >&2; exit 1; }
			t1=$(date +%s%N)
			printf 'Benchmark%s 1 %d ns/op\n' "${w^^}" $((t1 - t0)) >>"$ab/$which.txt"
			echo "ab.sh: round $i/$RUNS $w $which $(((t1 - t0) / 1000000)) ms" >&2
		done
	done
done
benchstat=$(command -v benchstat || echo "$(go env GOPATH)/bin/benchstat")
if [ ! -x "$benchstat" ]; then
	go install golang.org/x/perf/cmd/benchstat@latest
fi
"$benchstat" "$ab/old.txt" "$ab/new.txt"
