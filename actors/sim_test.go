package actors_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// simJob runs a keyed sum over 5,000 records at parallelism 3 on the
// simulator under seed and returns its sorted results and its trace.
func simJob(t *testing.T, seed uint64, cfg actors.Config) (results []string, trace string) {
	t.Helper()
	var tr bytes.Buffer
	cfg.Executor, cfg.Seed = actors.Sim{Trace: &tr}, seed
	cfg.BatchRecords = 64
	p := stages.NewPipeline("sim")
	xs := stages.Map(stages.Sequence(p, 0, 5_000), func(x int64) int64 { return x * 3 })
	k := stages.KeyBy(xs, func(x int64) int64 { return x % 17 })
	c := stages.Collect(stages.Aggregate(k, window.Global(), stages.Sum(func(x int64) int64 { return x })))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 3, Runtime: &cfg}); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	for _, kv := range c.Values() {
		results = append(results, fmt.Sprint(kv.Key, "=", kv.Value))
	}
	slices.Sort(results)
	return results, tr.String()
}

// TestSimReplays: the same seed delivers the same messages in the same order
// at the same virtual times; another seed interleaves them otherwise and
// computes the same result.
func TestSimReplays(t *testing.T) {
	want := map[string]bool{}
	for k := range int64(17) {
		var sum int64
		for x := int64(0); x < 5_000; x++ {
			if x*3%17 == k {
				sum += x * 3
			}
		}
		want[fmt.Sprint(k, "=", sum)] = true
	}
	traces := map[string]uint64{}
	for seed := uint64(1); seed <= 4; seed++ {
		res, tr := simJob(t, seed, actors.DefaultConfig())
		again, tr2 := simJob(t, seed, actors.DefaultConfig())
		if tr != tr2 {
			t.Fatalf("seed %d: two runs traced differently:\n%s", seed, firstDiff(tr, tr2))
		}
		if !slices.Equal(res, again) {
			t.Fatalf("seed %d: two runs gave %v and %v", seed, res, again)
		}
		if n := strings.Count(tr, "\n"); n < 20 {
			t.Fatalf("seed %d: trace of %d lines, want one a message:\n%s", seed, n, tr)
		}
		if other, ok := traces[tr]; ok {
			t.Fatalf("seeds %d and %d traced the same interleaving", other, seed)
		}
		traces[tr] = seed
		if len(res) != len(want) {
			t.Fatalf("seed %d: %d results, want %d: %v", seed, len(res), len(want), res)
		}
		for _, r := range res {
			if !want[r] {
				t.Fatalf("seed %d: result %s is wrong", seed, r)
			}
		}
	}
}

// firstDiff shows where two traces part.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i+1, la[i], lb[i])
		}
	}
	return fmt.Sprintf("one has %d lines, the other %d", len(la), len(lb))
}

// TestSimRestartsOnVirtualTime: a panicking user function is restarted
// after the policy's backoff, which passes on the simulator's clock and not
// the wall's: an hour's backoff, and the job still ends at once.
func TestSimRestartsOnVirtualTime(t *testing.T) {
	cfg := actors.DefaultConfig()
	cfg.Restart = actors.RestartPolicy{MaxRestarts: 2, Window: 24 * time.Hour, Backoff: time.Hour, MaxBackoff: time.Hour}
	var tr bytes.Buffer
	cfg.Executor, cfg.Seed = actors.Sim{Trace: &tr}, 9
	panicked := false
	p := stages.NewPipeline("sim-restart")
	xs := stages.Map(stages.Sequence(p, 0, 100, stages.Parallelism(1)), func(x int64) int64 {
		if x == 50 && !panicked {
			panicked = true // one goroutine runs every call: no race
			panic("transient")
		}
		return x
	}, stages.Parallelism(1))
	c := stages.Collect(xs)
	start := time.Now()
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg}); err != nil {
		t.Fatal(err)
	}
	if !panicked {
		t.Fatal("the function never panicked")
	}
	if wall := time.Since(start); wall > 30*time.Second {
		t.Fatalf("an hour's backoff took %v of wall time", wall)
	}
	got := c.Values()
	slices.Sort(got)
	if len(got) != 100 || got[0] != 0 || got[99] != 99 {
		t.Fatalf("%d records after the restart, want 0..99 once each: %v", len(got), got)
	}
	// The last delivery came at least the backoff after the first.
	lines := strings.Split(strings.TrimSpace(tr.String()), "\n")
	var last int64
	if _, err := fmt.Sscanf(lines[len(lines)-1], "%d", &last); err != nil {
		t.Fatalf("trace line %q: %v", lines[len(lines)-1], err)
	}
	if last < int64(time.Hour) {
		t.Fatalf("the job ended at virtual %v, before the hour's backoff", time.Duration(last))
	}
}
