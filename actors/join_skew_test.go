package actors_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
)

// TestFullOuterHotKeyNotDuplicated: a full outer join with a declared hot
// key emits an unmatched build row of the key once. The join replicates the
// key's build rows to every instance the key is split over, and each replica
// that saw no probe record of the key emitted the build row again.
func TestFullOuterHotKeyNotDuplicated(t *testing.T) {
	orders := []order{{User: 1, Amount: 10}} // key 42 absent on the probe side
	users := []user{{ID: 1, Age: 20}, {ID: 42, Age: 30}}
	want := plainJoin(orders, users, stages.FullOuter)
	p := stages.NewPipeline("fullouter-hot")
	o := stages.KeyBy(stages.FromSlice(p, orders), func(o order) int64 { return o.User })
	u := stages.KeyBy(stages.FromSlice(p, users), func(u user) int64 { return u.ID })
	j := stages.Join(o, u, stages.FullOuter, stages.HotKeys(4, int64(42)), stages.Parallelism(4))
	c := stages.Collect(stages.Map(j, joinedString))
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Values()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q\nplan:\n%s", got, want, res.Plan)
	}
}

// TestSkewSamplingSkipsSideOutputs: a shuffle join whose left side comes
// through a TryMap plans. Sampling the left side copies the stateless stages
// upstream of it, and the copy of the TryMap has a dead-letter side output
// that nothing in the sample reads, which failed planning.
func TestSkewSamplingSkipsSideOutputs(t *testing.T) {
	p := stages.NewPipeline("sample-side")
	ok, dead := stages.TryMap(stages.Sequence(p, 0, 1000), func(x int64) (int64, error) { return x, nil })
	stages.Collect(dead)
	o := stages.KeyBy(ok, func(x int64) int64 { return x })
	u := stages.KeyBy(stages.Sequence(p, 0, 1000), func(x int64) int64 { return x })
	stages.Collect(stages.Join(o, u, stages.Inner, stages.Strategy(plan.JoinShuffle)))
	if _, err := sluice.Plan(context.Background(), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
}

// TestSkewSamplingEndsOnShortUnboundedSource: Plan ends for a shuffle join
// over an unbounded source that holds fewer records than the sample's
// prefix of a split. Sampling runs the stages upstream of the join on that
// prefix, and such a source answers ErrNoData forever, so the sampling job,
// and Plan with it, never ended.
func TestSkewSamplingEndsOnShortUnboundedSource(t *testing.T) {
	f := &feed{parts: make([][]click, 2)}
	f.push(0, click{User: 1, Ms: 1})
	p := stages.NewPipeline("sample-unbounded")
	o := stages.KeyBy(stages.Read[click](p, f), func(c click) int64 { return c.User })
	u := stages.KeyBy(stages.Sequence(p, 0, 10), func(x int64) int64 { return x })
	stages.Collect(stages.Join(o, u, stages.Inner, stages.Strategy(plan.JoinShuffle)))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := sluice.Plan(ctx, p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
}
