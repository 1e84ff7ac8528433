#!/usr/bin/env bash
# compare.sh: generates the benchmark data with Sluice, runs W1-W3 with
# Sluice and with DuckDB (tools/peers), checks that both outputs have the
# same checksum and prints a table of wall times (medians of REPS runs).
#
#   SIZE=small tools/peers/compare.sh      # 1M orders, 100k users, 1M events
#   SIZE=large tools/peers/compare.sh      # 10M orders, 1M users, 10M events
#
# Environment:
#   SIZE     small (default) or large
#   DATA     where the data and outputs go ($TMPDIR/sluice-peers/$SIZE)
#   THREADS  DuckDB threads, Sluice's --parallelism and GOMAXPROCS (2)
#   REPS     runs of each engine per workload; the table shows the median (3)
#   REGEN    1 to generate the data again even if it is there (0)
#   WORKLOADS  which to run ("w1 w2 w3")
#   SLUICE_FLAGS  more flags for sluice run (none)
#
# Exit status: 0 if every workload ran on both engines with equal
# checksums, 1 otherwise.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SIZE=${SIZE:-small}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
REGEN=${REGEN:-0}
WORKLOADS=${WORKLOADS:-w1 w2 w3}
SLUICE_FLAGS=${SLUICE_FLAGS:-}
case $SIZE in
small) orders=1000000 users=100000 events=1000000 ;;
large) orders=10000000 users=1000000 events=10000000 ;;
*)
	echo "compare.sh: SIZE must be small or large, not $SIZE" >&2
	exit 2
	;;
esac
DATA=${DATA:-${TMPDIR:-/tmp}/sluice-peers/$SIZE}
mkdir -p "$DATA/logs" "$DATA/bin"
logs=$DATA/logs

die() {
	echo "compare.sh: $*" >&2
	exit 1
}

echo "building sluice and peers ..." >&2
(cd "$root" && go build -o "$DATA/bin/sluice" ./cmd/sluice) || die "go build ./cmd/sluice failed"
(cd "$here" && go build -o "$DATA/bin/peers" .) || die "go build tools/peers failed"
sluice=$DATA/bin/sluice
peers=$DATA/bin/peers

# now prints a monotonic-enough time in nanoseconds.
now() { date +%s%N; }

# timed LOG CMD...: runs CMD with its output in LOG and prints its wall
# time in seconds; returns CMD's status.
timed() {
	local log=$1
	shift
	local t0 t1 rc
	t0=$(now)
	"$@" >"$log" 2>&1
	rc=$?
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
	return $rc
}

# median of the numbers in its arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# seconds DURATION: a Go duration (1m2.5s, 942ms, 1.2s, 800µs) in seconds.
seconds() {
	awk -v d="$1" 'BEGIN {
		t = 0
		while (match(d, /^[0-9.]+(h|m|s|ms|µs|us|ns)/)) {
			tok = substr(d, 1, RLENGTH); d = substr(d, RLENGTH + 1)
			match(tok, /^[0-9.]+/); v = substr(tok, 1, RLENGTH); u = substr(tok, RLENGTH + 1)
			t += v * (u == "h" ? 3600 : u == "m" ? 60 : u == "s" ? 1 : u == "ms" ? 1e-3 : u == "ns" ? 1e-9 : 1e-6)
		}
		printf "%.3f", t
	}'
}

# The data: generated once per size (REGEN=1 to redo it).
gen() {
	local what=$1
	shift
	echo "generating $what: sluice run $*" >&2
	if ! GOMAXPROCS=$THREADS "$sluice" run "$@" --quiet >"$logs/gen-$what.log" 2>&1; then
		echo "FAILED: sluice run $*" >&2
		tail -20 "$logs/gen-$what.log" >&2
		exit 1
	fi
}
if [ "$REGEN" = 1 ] || [ ! -f "$DATA/orders/_SUCCESS" ] || [ ! -f "$DATA/users/_SUCCESS" ]; then
	gen orders gen-orders --arg "out=$DATA" --arg "orders=$orders" --arg "users=$users"
fi
if [ "$REGEN" = 1 ] || [ ! -f "$DATA/events/_SUCCESS" ]; then
	gen events gen-events --arg "out=$DATA" --arg "events=$events"
fi

sluice_args() {
	case $1 in
	w1) echo orders-join --arg "orders=$DATA/orders" --arg "users=$DATA/users" --arg "out=$DATA/sluice-w1" ;;
	w2) echo orders-per-user --arg "orders=$DATA/orders" --arg "out=$DATA/sluice-w2" ;;
	w3) echo events-windows --arg "events=$DATA/events" --arg "out=$DATA/sluice-w3" ;;
	esac
}

load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
status=0
rows=()
for w in $WORKLOADS; do
	# shellcheck disable=SC2046 # the arguments are paths without spaces or words
	set -- $(sluice_args "$w")
	[ $# -gt 0 ] || die "unknown workload $w"
	st=() dt=() sj=() dq=() sok=1 dok=1
	for ((i = 1; i <= REPS; i++)); do
		echo "$w: sluice run $* (run $i/$REPS)" >&2
		if t=$(GOMAXPROCS=$THREADS timed "$logs/sluice-$w.log" "$sluice" run "$@" --parallelism "$THREADS" $SLUICE_FLAGS); then
			st+=("$t")
			sj+=("$(seconds "$(awk '/^elapsed /{ print $2 }' "$logs/sluice-$w.log")")")
		else
			echo "FAILED: $sluice run $* --parallelism $THREADS --quiet" >&2
			tail -20 "$logs/sluice-$w.log" >&2
			sok=0
			break
		fi
	done
	for ((i = 1; i <= REPS; i++)); do
		echo "$w: peers run -w $w -in $DATA -out $DATA/duckdb-$w -threads $THREADS (run $i/$REPS)" >&2
		if t=$(timed "$logs/duckdb-$w.log" "$peers" run -w "$w" -in "$DATA" -out "$DATA/duckdb-$w" -threads "$THREADS"); then
			dt+=("$t")
			dq+=("$(sed -n 's/.*(query \([0-9.]*\)s.*/\1/p' "$logs/duckdb-$w.log")")
		else
			echo "FAILED: peers run -w $w -in $DATA -out $DATA/duckdb-$w" >&2
			tail -20 "$logs/duckdb-$w.log" >&2
			dok=0
			break
		fi
	done
	s=- d=- sjm=- dqm=- ratio=- equal=no
	[ $sok = 1 ] && s=$(median "${st[@]}") && sjm=$(median "${sj[@]}")
	[ $dok = 1 ] && d=$(median "${dt[@]}") && dqm=$(median "${dq[@]}")
	if [ $sok = 1 ] && [ $dok = 1 ]; then
		ratio=$(awk -v a="$s" -v b="$d" 'BEGIN { printf "%.2f", a / b }')
		cs=$("$peers" verify -w "$w" "$DATA/sluice-$w" 2>&1)
		cd=$("$peers" verify -w "$w" "$DATA/duckdb-$w" 2>&1)
		echo "  sluice: $cs" >&2
		echo "  duckdb: $cd" >&2
		printf '%s\n%s\n' "$cs" "$cd" >"$logs/checksums-$w.txt"
		[ "$cs" = "$cd" ] && equal=yes
	fi
	[ $equal = yes ] || status=1
	rows+=("$(printf '| %s | %s | %s | %s | %s | %s | %s |' "$w" "$s" "$d" "$ratio" "$equal" "$sjm" "$dqm")")
done

echo
echo "SIZE=$SIZE ($orders orders, $users users, $events events), $THREADS threads, median of $REPS runs; data under $DATA"
echo "$(nproc) CPUs; load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?") (other work on the machine skews the times)"
echo "Sluice s, DuckDB s: wall time of the whole process; Sluice job s: the 'elapsed' of its summary; DuckDB query s: the COPY statement alone"
echo
echo "| workload | Sluice s | DuckDB s | Sluice/DuckDB | checksums equal | Sluice job s | DuckDB query s |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $status
