package actors_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
)

var clusterChaosSeeds = flag.Int("clusterchaos.seeds", 20, "TestClusterChaos: how many seeds (scripts/test.sh runs 500)")
var clusterChaosSeed = flag.Uint64("clusterchaos.seed", 0, "TestClusterChaos: run this seed alone")

// TestClusterChaos runs a checkpointing keyed sum on a cluster of three
// nodes in one process, over a seeded network: each link delays its
// deliveries by a seeded number of yields (messages of different links
// interleave anew; one link stays in order, as a connection does), and at
// seeded moments (after a seeded number of checkpoints) a worker crashes
// (cut off for good, told its coordinator is gone) or is partitioned away
// (cut off, not told, and healed a few milliseconds later, when its late
// messages must be fenced). The coordinator recovers each time on the
// nodes left, and the output must equal a run in one process with no
// fault. The fault schedule replays from the printed seed
// (-clusterchaos.seed S); the interleaving of the real actors does not.
func TestClusterChaos(t *testing.T) {
	const n = 30_000
	p, clean := sumPipeline(n, 97, func(x int64) int64 { return 2 * x })
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 3, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	want := sorted(clean.Values())
	first, count := uint64(1), uint64(*clusterChaosSeeds)
	if *clusterChaosSeed != 0 {
		first, count = *clusterChaosSeed, 1
	}
	faults, recoveries := map[string]int{}, 0
	for seed := first; seed < first+count; seed++ {
		kinds, rec := clusterChaosRound(t, seed, n, want)
		for _, k := range kinds {
			faults[k]++
		}
		recoveries += rec
	}
	if len(faults) > 0 && recoveries == 0 {
		t.Fatalf("faults %v but no recovery", faults)
	}
	t.Logf("%d seeds from %d: faults %v, %d recoveries; every output equal to the fault-free run's", count, first, faults, recoveries)
}

// clusterChaosRound runs one seed and returns the faults it made.
func clusterChaosRound(t *testing.T, seed uint64, n int64, want []stages.KV[int64, int64]) ([]string, int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0xc1a05))
	net := newLoopNet()
	maxYield := rng.IntN(4)
	net.jitter = func(from, to string) func() {
		r := rand.New(rand.NewPCG(seed, uint64(len(from)*31+int(from[0])*7+int(to[0]))))
		return func() {
			for range r.IntN(maxYield + 1) {
				runtime.Gosched()
			}
		}
	}
	var mu sync.Mutex
	live := []string{"a", "b", "c"}
	place := func(phys *plan.Physical, lost []string) ([][]string, error) {
		mu.Lock()
		defer mu.Unlock()
		nodes := slices.DeleteFunc(slices.Clone(live), func(s string) bool { return slices.Contains(lost, s) })
		return roundRobin(nodes...)(phys, lost)
	}
	rt := actors.DefaultConfig()
	rt.BatchRecords = 64 + rng.IntN(512)
	rt.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewMem(), Every: time.Duration(1+rng.IntN(4)) * time.Millisecond, Timeout: time.Minute,
		Recovery: actors.RestartPolicy{MaxRestarts: 10, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: time.Millisecond}}
	nodes := []string{"a", "b", "c"}
	coord, workers, outs := startCluster(t, net, nodes, place, sluice.Options{Parallelism: 3, Seed: 5, Runtime: &rt},
		func() (*stages.Pipeline, *stages.Collection[stages.KV[int64, int64]]) {
			return sumPipeline(n, 97, slowDouble) // slow: the job outlasts a few checkpoints
		})
	byName := map[string]*actors.Execution{"b": workers[0], "c": workers[1]}
	var made []string
	victims := []string{"b", "c"}
	rng.Shuffle(len(victims), func(i, j int) { victims[i], victims[j] = victims[j], victims[i] })
	for _, v := range victims[:1+rng.IntN(2)] {
		if !waitCheckpoints(coord, 1+rng.IntN(3)) {
			break // the job ended first
		}
		kind := []string{"crash", "partition"}[rng.IntN(2)]
		made = append(made, kind)
		net.mu.Lock()
		net.down[v] = true
		net.mu.Unlock()
		mu.Lock()
		live = slices.DeleteFunc(live, func(s string) bool { return s == v })
		mu.Unlock()
		coord.NodeLost(v, "was found dead")
		if kind == "crash" {
			byName[v].NodeLost("a", "was found dead")
			continue
		}
		heal := time.Duration(1+rng.IntN(5)) * time.Millisecond
		time.AfterFunc(heal, func() {
			net.mu.Lock()
			net.down[v] = false // it speaks again: the coordinator fences it
			net.mu.Unlock()
		})
	}
	res, err := waitEnd(t, coord)
	if err != nil {
		t.Fatalf("seed %d (faults %v): %v", seed, made, err)
	}
	if got := sorted(outs[0].Values()); !slices.Equal(got, want) {
		t.Fatalf("seed %d (faults %v, recoveries %d): the output differs from the fault-free run's: %d keys, want %d",
			seed, made, len(res.Recoveries), len(got), len(want))
	}
	for i, o := range outs[1:] {
		if len(o.Values()) != 0 {
			t.Fatalf("seed %d: worker %s's collection holds %d values", seed, nodes[i+1], len(o.Values()))
		}
	}
	return made, len(res.Recoveries)
}

// waitCheckpoints waits until x has completed k checkpoints, and reports
// false if the job ended first (or 20 s went by).
func waitCheckpoints(x *actors.Execution, k int) bool {
	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		done := 0
		for _, c := range x.Snapshot().Checkpoints {
			if c.Completed {
				done++
			}
		}
		if done >= k {
			return true
		}
		select {
		case <-tick.C:
		case <-x.Done():
			return false
		case <-deadline:
			panic(fmt.Sprintf("no %d checkpoints within 20 s", k))
		}
	}
}
