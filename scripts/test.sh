#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs and starts what the
# tests need on 127.0.0.1, then runs them. Under it SLUICE_TEST_STRICT=1, so a
# missing server or a missing ../shared fails the tests that need it instead
# of skipping them. Plain `go test ./...` skips those tests with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export SLUICE_TEST_STRICT=1
export PATH="$(go env GOPATH)/bin:$PATH"
work=$(mktemp -d /tmp/sluice-test.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*" >&2; }

wait_for() { # wait_for NAME CMD... : poll until CMD succeeds, 30 s at most
  local name=$1; shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$name did not become ready"; return 1
}

if ! command -v curl >/dev/null; then
  log "installing curl"
  apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi

# A C and C++ compiler: the race detector and DuckDB's Go driver (tools/peers)
# link with them.
if ! command -v gcc >/dev/null || ! command -v g++ >/dev/null; then
  log "installing gcc and g++"
  apt-get update -qq && apt-get install -y -qq gcc g++ >/dev/null
fi

# Chromium: Debian's, for the job page's test in a real browser
# (cli/page_test.go drives it headless through the DevTools protocol).
if ! command -v chromium >/dev/null; then
  log "installing chromium"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

# S3: VersityGW, a real S3 gateway (DESIGN.md §5), built as its own binary.
if ! command -v versitygw >/dev/null; then
  log "installing versitygw v1.8.0 (a few minutes the first time)"
  go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
mkdir -p "$work/s3"
export AWS_ACCESS_KEY_ID=sluice AWS_SECRET_ACCESS_KEY=sluice-secret AWS_REGION=us-east-1
s3port=17070
versitygw --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --port 127.0.0.1:$s3port \
  --health /health --quiet posix "$work/s3" >"$work/versitygw.log" 2>&1 &
pids+=($!)
wait_for versitygw curl -sf "http://127.0.0.1:$s3port/health"
export SLUICE_S3_ENDPOINT="http://127.0.0.1:$s3port"
log "versitygw on $SLUICE_S3_ENDPOINT"

# Redis: Debian's redis-server (DESIGN.md §5), for connectors/redis. NATS needs
# nothing here: its tests embed a real nats-server in the test process.
if ! command -v redis-server >/dev/null; then
  log "installing redis-server"
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
redisport=16379
while (exec 3<>"/dev/tcp/127.0.0.1/$redisport") 2>/dev/null; do # taken: try the next
  redisport=$((redisport + 1))
done
redis-server --bind 127.0.0.1 --port $redisport --save "" --appendonly no --daemonize no \
  >"$work/redis.log" 2>&1 &
pids+=($!)
wait_for redis-server redis-cli -p $redisport ping
export SLUICE_REDIS_ADDR="127.0.0.1:$redisport"
log "redis-server on $SLUICE_REDIS_ADDR"

# PostgreSQL: Debian's postgresql (DESIGN.md §5), for connectors/postgres: a
# cluster of the tests' own under $work on a free port, trusting 127.0.0.1.
# The server refuses to run as root, so as root it runs as the postgres user.
# Installing creates no cluster of Debian's own (nothing else is left running).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "installing postgresql"
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/sluice-test.conf
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
fi
pgbin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgport=15432
while (exec 3<>"/dev/tcp/127.0.0.1/$pgport") 2>/dev/null; do # taken: try the next
  pgport=$((pgport + 1))
done
mkdir -p "$work/pg"
if [ "$(id -u)" = 0 ]; then chmod 711 "$work" && chown postgres "$work/pg"; fi
as_pg "$pgbin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 --no-sync >"$work/pg/initdb.log" 2>&1 ||
  { cat "$work/pg/initdb.log" >&2; exit 1; }
trap 'as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1 || true; cleanup' EXIT
as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w -t 30 start \
  -o "-p $pgport -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off" >/dev/null
export SLUICE_PG_URL="postgres://postgres@127.0.0.1:$pgport/postgres?sslmode=disable"
log "postgres on 127.0.0.1:$pgport"

# Shared peer data and tools, when ../shared has them.
if [ -d ../shared/peers ] && [ -f ../shared/peers/go.mod ]; then
  log "building ../shared/peers/bin/verify"
  (cd ../shared/peers && go build -o bin/verify ./cmd/verify) || log "could not build verify"
fi

# tools/peers (DuckDB and arrow-go, its own module), built once: the
# parquetio interop tests run it through $SLUICE_PEERS (write-interop, sql).
log "building tools/peers (cgo DuckDB: a few minutes the first time)"
mkdir -p "$work/bin"
(cd tools/peers && go build -o "$work/bin/peers" .)
export SLUICE_PEERS="$work/bin/peers"

log "go vet"
go vet ./...

log "go test -race (every package: most run goroutines through the runtime)"
go test -race -count=1 -timeout 15m ./...

# Every bundled job on the deterministic executor under 200 seeds, each
# another interleaving, against one run on actors (about 30 s; without the
# race detector, which the pass above ran it under on two seeds).
log "the bundled jobs on the simulator under 200 seeds (actors.Sim)"
go test -count=1 -run TestExecutorsAgree ./examples -sim.seeds=200

# Recovery (the checkpoint issue): on the simulator, 1000 seeds each of a
# keyed sum and of a windowed job with late records, with instances killed
# at seeded moments and (the windowed one) the checkpoint store failing,
# tearing and slowing puts (about 35 s); on actors, W1 and W3 with 10 kills
# under each of 20 seeds, checkpoints every 100 ms and every 5 ms (about
# 30 s). Every output must equal the clean run's.
log "recovery: 1000 seeds of kills and store faults on the simulator; W1 and W3 on actors under 20 seeds of 10 kills"
go test -count=1 -run 'TestRecoveryOnSim' ./actors -recover.seeds=1000
go test -count=1 -run TestChaos ./examples -chaos.seeds=20

# Rescale (the savepoint issue): a windowed job and a keyed aggregation
# stopped at a checkpoint at parallelism 2, at 50 seeded places each, and
# restored at parallelism 2, 1, 3 and 4 on the simulator (about 12 s).
log "rescale: stopped at parallelism 2 under 50 seeds, restored at 2, 1, 3 and 4"
go test -count=1 -run TestRescaleOnSim ./actors -rescale.seeds=50

# The cluster under a seeded network (the cluster hardening issue): three
# nodes in one process, links that interleave anew each seed, workers
# crashed or partitioned away and healed at seeded moments, 500 seeds, each
# output equal to the fault-free run's (about 25 s). A seed replays its
# faults: go test ./actors -run TestClusterChaos -clusterchaos.seed S
log "cluster chaos: 500 seeds of crashes and partitions on a simulated network"
go test -count=1 -run TestClusterChaos ./actors -clusterchaos.seeds=500

# The cluster (the cluster issue): real sluice node processes on loopback,
# one test after the other, without the race detector (the node's code runs
# under it in the pass above, in process): W3 submitted, stopped, resumed on
# another node, a node killed with SIGKILL and its checkpointing job resumed
# elsewhere, a node frozen with SIGSTOP, resumed elsewhere and fenced when it
# wakes; W2 and W3 spread over three nodes at parallelism 6 equal to one
# process's (and DuckDB's checksums); five seeded kills of a worker node mid-job
# (four SIGKILL, one SIGSTOP for 5 s), each output equal to a clean run's; W3
# rescaled from two nodes to three when one joins and back when it drains on
# SIGTERM, moved off a node given a spot interruption notice, a reactive job and
# the review's drain cases (about 130 s in all). More seeds: go test ./cli -run TestClusterNodeKilled -cluster.seeds 20
log "cluster: three sluice node processes, submission, spreading, failover after SIGKILL and SIGSTOP, rescale and drain"
go test -count=1 -p 1 -run 'TestCommandNode|TestCluster' ./cli

# Fuzzing (the cluster hardening issue): the data connections' frame decoder
# and the cluster's control protocol under Go's native fuzzing, 10 s each
# (the execs they tried are in the output); TestCommandNodeFuzzed above fed a
# live node's four listeners for 4 s.
log "fuzz: transport frames and cluster control, 10 s each"
go test -run '^$' -fuzz '^FuzzDecodeFrame$' -fuzztime 10s ./transport
go test -run '^$' -fuzz '^FuzzControl$' -fuzztime 10s ./actors

# W1-W3 end to end on the small data (1M orders, 100k users, 1M events):
# the bundled jobs read and write Parquet, and their outputs must have the
# checksums of DuckDB's outputs computed in the same run (tools/peers, an
# independent engine). Sluice's checksums must equal DuckDB's; the times
# it prints are not judged here.
log "W1-W3 on the small data against DuckDB (tools/peers/compare.sh)"
SIZE=small REPS=1 DATA="$work/peers" tools/peers/compare.sh
if [ -x ../shared/peers/bin/verify ]; then
  # The shared checksum tool, on the same two outputs: they must agree.
  for w in w1 w2 w3; do
    ours=$(../shared/peers/bin/verify -w $w "$work/peers/sluice-$w")
    duck=$(../shared/peers/bin/verify -w $w "$work/peers/duckdb-$w")
    ours=${ours//"$work/peers/sluice-$w"/OUTPUT} # the path is not part of the checksum
    duck=${duck//"$work/peers/duckdb-$w"/OUTPUT}
    log "verify -w $w: sluice: $ours"
    if [ "$ours" != "$duck" ]; then
      log "verify -w $w: DuckDB's output gives $duck"
      exit 1
    fi
  done
fi
log "all tests passed"
