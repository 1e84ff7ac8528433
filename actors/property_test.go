package actors_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// op is one random step of a pipeline over int64 records, applied both to a
// Sluice stream and to a plain slice.
type op struct {
	kind string
	a, b int64
	par  int
}

func (o op) String() string { return fmt.Sprintf("%s(%d,%d)×%d", o.kind, o.a, o.b, o.par) }

func randomOps(r *rand.Rand) []op {
	kinds := []string{"map", "filter", "flatmap", "union"}
	ops := make([]op, r.IntN(5))
	for i := range ops {
		ops[i] = op{kind: kinds[r.IntN(len(kinds))], a: r.Int64N(7) + 2, b: r.Int64N(100), par: r.IntN(4)}
	}
	return ops
}

func applyStages(s stages.Stream[int64], ops []op) stages.Stream[int64] {
	for _, o := range ops {
		opts := []stages.MapOption{}
		if o.par > 0 {
			opts = append(opts, stages.Parallelism(o.par))
		}
		switch o.kind {
		case "map":
			s = stages.Map(s, func(x int64) int64 { return x*o.a + o.b }, opts...)
		case "filter":
			s = stages.Filter(s, func(x int64) bool { return x%o.a != 0 }, opts...)
		case "flatmap":
			s = stages.FlatMap(s, func(x int64, emit func(int64)) {
				for k := range x % o.a {
					emit(x + k)
				}
			}, opts...)
		case "union": // the stream with a mapped copy of itself
			other := stages.Map(s, func(x int64) int64 { return x + o.b }, opts...)
			s = stages.Union(s, other)
		}
	}
	return s
}

func applyPlain(xs []int64, ops []op) []int64 {
	for _, o := range ops {
		var out []int64
		switch o.kind {
		case "map":
			for _, x := range xs {
				out = append(out, x*o.a+o.b)
			}
		case "filter":
			for _, x := range xs {
				if x%o.a != 0 {
					out = append(out, x)
				}
			}
		case "flatmap":
			for _, x := range xs {
				for k := range x % o.a {
					out = append(out, x+k)
				}
			}
		case "union":
			out = append(out, xs...)
			for _, x := range xs {
				out = append(out, x+o.b)
			}
		}
		xs = out
	}
	return xs
}

// TestRandomPipelines checks random pipelines of map, filter, flatMap, union
// and keyed sum/count/min/max, at random parallelism, batch sizes and
// credits, against the same computation as plain Go loops and maps. Its
// aggregations run in the global window under the default trigger, driven
// by the watermark: outputs equal across batch sizes hold for such
// triggers only, since a trigger is asked once per batch (a bundle, as in
// Beam), and AfterCount's panes follow the batches (TestBundlesAskTriggersOnce).
func TestRandomPipelines(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 15
	}
	for seed := range seeds {
		for _, exec := range []actors.Executor{actors.Actors(), actors.Sim{}} {
			randomPipeline(t, seed, exec)
		}
	}
}

// randomPipeline runs the random pipeline of seed on exec (the simulator's
// interleaving also chosen by seed) and checks its output.
func randomPipeline(t *testing.T, seed int, exec actors.Executor) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(seed), 99))
	n := r.IntN(20_000)
	xs := make([]int64, n)
	for i := range xs {
		xs[i] = r.Int64N(10_000) - 1_000
	}
	ops := randomOps(r)
	agg := []string{"none", "sum", "count", "min", "max"}[r.IntN(5)]
	keys := r.Int64N(50) + 1
	cfg := actors.DefaultConfig()
	cfg.BatchRecords = 1 + r.IntN(2000)
	cfg.Credits = 1 + r.IntN(4)
	par := 1 + r.IntN(4)
	cfg.Executor, cfg.Seed = exec, uint64(seed)+1
	desc := fmt.Sprintf("seed %d on %s: %d records, ops %v, agg %s over %d keys, parallelism %d, batch %d, credits %d",
		seed, exec.Name(), n, ops, agg, keys, par, cfg.BatchRecords, cfg.Credits)

	p := stages.NewPipeline("random")
	s := applyStages(stages.FromSlice(p, xs), ops)
	want := applyPlain(xs, ops)
	key := func(x int64) int64 { return ((x % keys) + keys) % keys }
	var got []string
	var wantS []string
	if agg == "none" {
		c := stages.Collect(s)
		run(t, desc, p, par, &cfg)
		for _, x := range c.Values() {
			got = append(got, fmt.Sprint(x))
		}
		for _, x := range want {
			wantS = append(wantS, fmt.Sprint(x))
		}
	} else {
		k := stages.KeyBy(s, key)
		var comb stages.Combiner[int64, int64, int64]
		plain := map[int64]int64{}
		fold := func(a, b int64) int64 { return a + b }
		switch agg {
		case "sum":
			comb = stages.Sum(func(x int64) int64 { return x })
		case "count":
			comb = stages.Count[int64]()
		case "min":
			comb, fold = stages.Min(func(x int64) int64 { return x }), func(a, b int64) int64 { return min(a, b) }
		case "max":
			comb, fold = stages.Max(func(x int64) int64 { return x }), func(a, b int64) int64 { return max(a, b) }
		}
		c := stages.Collect(stages.Aggregate(k, window.Global(), comb, stages.Parallelism(1+r.IntN(4))))
		run(t, desc, p, par, &cfg)
		for _, kv := range c.Values() {
			got = append(got, fmt.Sprint(kv.Key, "=", kv.Value))
		}
		for _, x := range want {
			v := x
			if agg == "count" {
				v = 1
			}
			if old, ok := plain[key(x)]; ok {
				v = fold(old, v)
			}
			plain[key(x)] = v
		}
		for k, v := range plain {
			wantS = append(wantS, fmt.Sprint(k, "=", v))
		}
	}
	slices.Sort(got)
	slices.Sort(wantS)
	if !slices.Equal(got, wantS) {
		t.Fatalf("%s:\n got %d results: %s\nwant %d results: %s", desc, len(got), head(got), len(wantS), head(wantS))
	}
}

func run(t *testing.T, desc string, p *stages.Pipeline, par int, cfg *actors.Config) {
	t.Helper()
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: par, Runtime: cfg}); err != nil {
		t.Fatalf("%s: %v", desc, err)
	}
}

func head(xs []string) string {
	if len(xs) > 10 {
		xs = xs[:10]
	}
	return strings.Join(xs, " ")
}
