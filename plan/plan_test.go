package plan_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden plans in testdata")

func build(t *testing.T, p *stages.Pipeline, par int) *plan.Physical {
	t.Helper()
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	facts := plan.Facts{Splits: map[int][]plan.Split{}}
	for _, n := range p.Graph().Nodes {
		if n.Kind == plan.KindSource {
			s, err := n.Source.Discover(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			facts.Splits[n.ID] = s
		}
	}
	phys, err := plan.Build(p.Graph(), facts, plan.Config{DefaultParallelism: par, MaxParallelism: 128})
	if err != nil {
		t.Fatal(err)
	}
	return phys
}

func double(x int64) int64 { return 2 * x }
func odd(x int64) bool     { return x%2 == 1 }
func mod10(x int64) int64  { return x % 10 }
func ident(x int64) int64  { return x }

// TestGoldenPlans checks the physical plans of small graphs against
// testdata/*.plan; run with -rewrite to regenerate after a deliberate change.
func TestGoldenPlans(t *testing.T) {
	cases := map[string]func() *stages.Pipeline{
		// A chain of forward edges at one parallelism fuses into one vertex.
		"fused-chain": func() *stages.Pipeline {
			p := stages.NewPipeline("fused-chain")
			s := stages.Filter(stages.Map(stages.Sequence(p, 0, 1_000_000), double), odd)
			stages.Collect(s)
			return p
		},
		// A keyed aggregation pre-combines in the upstream vertex and
		// shuffles by hash into the aggregating vertex.
		"keyed-aggregate": func() *stages.Pipeline {
			p := stages.NewPipeline("keyed-aggregate")
			s := stages.Map(stages.Sequence(p, 0, 1_000_000), double, stages.Name("double"))
			agg := stages.Aggregate(stages.KeyBy(s, mod10), window.Global(), stages.Sum(ident), stages.ID("sum-v1"))
			stages.Collect(stages.Map(agg, func(kv stages.KV[int64, int64]) int64 { return kv.Value }))
			return p
		},
		// A forward edge between different parallelisms becomes a rebalance;
		// explicit rebalance and broadcast edges break fusion.
		"edge-kinds": func() *stages.Pipeline {
			p := stages.NewPipeline("edge-kinds")
			src := stages.Sequence(p, 0, 100_000, stages.Parallelism(2))
			wide := stages.Map(src, double, stages.Parallelism(3))
			b := stages.Map(stages.Broadcast(wide), ident, stages.Parallelism(3))
			r := stages.Map(stages.Rebalance(b), ident, stages.Parallelism(3))
			stages.Collect(r, stages.Parallelism(1))
			return p
		},
		// Fan-out stops fusion at the shared node; union and group by key
		// have several inputs and so start vertices of their own.
		"fan-out-union": func() *stages.Pipeline {
			p := stages.NewPipeline("fan-out-union")
			a := stages.Map(stages.Sequence(p, 0, 1000, stages.Name("a")), double)
			b := stages.FromSlice(p, []int64{1, 2, 3}, stages.Name("b"))
			stages.Collect(stages.Filter(a, odd))
			u := stages.Union(a, b)
			stages.Collect(stages.GroupByKey(stages.KeyBy(u, mod10)))
			return p
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			got := build(t, mk(), 2).String()
			path := filepath.Join("testdata", name+".plan")
			if *rewrite {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -rewrite to create it)", err)
			}
			if got != string(want) {
				t.Errorf("plan differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
			}
		})
	}
}

func TestPlanErrorsNameTheLine(t *testing.T) {
	p := stages.NewPipeline("bad")
	s := stages.Map(stages.Sequence(p, 0, 10), double) // never consumed
	_ = s
	stages.Map[int64, int64](stages.Sequence(p, 0, 10), nil)
	stages.Collect(stages.Sequence(p, 0, 10), stages.Parallelism(0))
	err := p.Err()
	if err == nil {
		t.Fatal("no error for a nil function and a parallelism of 0")
	}
	for _, want := range []string{"plan_test.go:", "map: nil function", "parallelism 0 must be at least 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if !errors.Is(err, stages.ErrBuild) {
		t.Errorf("error does not wrap stages.ErrBuild")
	}

	p = stages.NewPipeline("dangling")
	stages.Map(stages.Sequence(p, 0, 10), double)
	_, err = plan.Build(p.Graph(), plan.Facts{}, plan.Config{DefaultParallelism: 1, MaxParallelism: 128})
	if err == nil || !strings.Contains(err.Error(), "plan_test.go:") || !strings.Contains(err.Error(), "never used") {
		t.Errorf("dangling stream: err = %v, want one naming the file and 'never used'", err)
	}
	_, err = plan.Build(p.Graph(), plan.Facts{}, plan.Config{DefaultParallelism: 0, MaxParallelism: 0})
	if err == nil || !strings.Contains(err.Error(), "DefaultParallelism") || !strings.Contains(err.Error(), "MaxParallelism") {
		t.Errorf("bad config: err = %v, want both problems reported", err)
	}
}

func TestRoute(t *testing.T) {
	for _, n := range []int{1, 3, 7, 128} {
		r := plan.Route(128, n)
		count := make([]int, n)
		for g, c := range r {
			if g > 0 && c < r[g-1] {
				t.Fatalf("route(128, %d) not monotone at group %d", n, g)
			}
			count[c]++
		}
		for c, k := range count {
			if k < 128/n || k > 128/n+1 {
				t.Errorf("route(128, %d): instance %d owns %d key groups", n, c, k)
			}
		}
	}
}
