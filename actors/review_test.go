package actors_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// TestReviewFullOuterHotKeyNotDuplicated: a full outer join with a declared
// hot key replicates the key's build rows to every instance the key is split
// over; each replica that saw no probe record of the key emits the build row
// again as unmatched.
func TestReviewFullOuterHotKeyNotDuplicated(t *testing.T) {
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

// TestReviewSkewSamplingWithSideOutput: sampling the left side of a shuffle
// join copies the stateless stages upstream of it; a TryMap there has a
// dead-letter side output that the copy does not read, so planning fails.
func TestReviewSkewSamplingWithSideOutput(t *testing.T) {
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

// TestReviewSinkPanicDuplicatesSends: a vertex whose chain both sends (a
// TryMap's dead letters, to another vertex) and writes a sink (ForEach). The
// runtime queues the sends, then the ForEach panics; after the restart, the
// operator's Ready still holds the same sends (Advance never ran) and the
// runtime queues them again: dead letters are delivered twice.
func TestReviewSinkPanicDuplicatesSends(t *testing.T) {
	cfg := fastRestarts()
	cfg.BatchRecords = 8
	var panicked atomic.Bool
	p := stages.NewPipeline("sink-panic")
	ok, dead := stages.TryMap(stages.Sequence(p, 0, 100, stages.Parallelism(1)), func(x int64) (int64, error) {
		if x%2 == 1 {
			return 0, fmt.Errorf("odd %d", x)
		}
		return x, nil
	}, stages.Parallelism(1))
	stages.ForEach(ok, func(x int64) error {
		if x == 10 && panicked.CompareAndSwap(false, true) {
			panic("transient")
		}
		return nil
	}, stages.Parallelism(1))
	bad := stages.Collect(dead, stages.Parallelism(1))
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 1, Runtime: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if !panicked.Load() {
		t.Fatal("no panic")
	}
	if got := len(bad.Values()); got != 50 {
		t.Fatalf("%d dead letters, want 50\n%s", got, res.Plan)
	}
}

// panicOpenSink panics in its first Open, then collects.
type panicOpenSink struct {
	panicked atomic.Bool
	c        *stages.Collection[int64]
}

func (s *panicOpenSink) Open(ctx context.Context, inst stages.Instance) (stages.Writer[int64], error) {
	if s.panicked.CompareAndSwap(false, true) {
		panic("transient open failure")
	}
	return s.c.Open(ctx, inst)
}

// TestReviewPanicInSinkOpen: the start message sets started before it opens
// the sink and grants credit; a panic in the sink's Open restarts the actor,
// which then only resumes: the sink is never opened and upstream never gets
// credit, so the job hangs (here: until the context's deadline).
func TestReviewPanicInSinkOpen(t *testing.T) {
	p := stages.NewPipeline("open-panic")
	s := &panicOpenSink{c: &stages.Collection[int64]{}}
	src := stages.Sequence(p, 0, 200_000, stages.Parallelism(2))
	stages.Write(stages.Map(src, func(x int64) int64 { return x }, stages.Parallelism(1)), stages.Sink[int64](s), stages.Parallelism(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := sluice.Run(ctx, p, sluice.Options{Parallelism: 2, Runtime: fastRestarts()})
	if !s.panicked.Load() {
		t.Fatal("Open never panicked")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("job hung after a panic in the sink's Open: %v", err)
	}
	if err == nil && len(s.c.Values()) != 200_000 {
		t.Fatalf("%d records, want 200000", len(s.c.Values()))
	}
}

// TestReviewWindowPanicMidBatchDoubleCounts: the window state applies a
// batch record by record; a user Lift that panics on a record in the middle
// of a batch leaves the records before it in the panes, yet the state says
// it is not lost, so the retry adds them again.
func TestReviewWindowPanicMidBatchDoubleCounts(t *testing.T) {
	run := func(trap bool) []string {
		var panicked atomic.Bool
		xs := make([]int64, 100)
		for i := range xs {
			xs[i] = int64(i)
		}
		p := stages.NewPipeline("window-panic")
		ev := stages.EventTime(stages.FromSlice(p, xs), func(x int64) time.Time { return time.Unix(x, 0) })
		c := stages.Combine("sum", func(x int64) int64 {
			if trap && x == 50 && panicked.CompareAndSwap(false, true) {
				panic("transient")
			}
			return x
		}, func(a, b int64) int64 { return a + b }, func(a int64) int64 { return a })
		sums := stages.WindowAggregate(stages.KeyBy(ev, func(int64) string { return "k" }), window.Fixed(time.Hour), c)
		out := stages.Collect(stages.Map(sums, func(w stages.Windowed[string, int64]) string { return fmt.Sprint(w.Value) }))
		if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 1, Runtime: fastRestarts()}); err != nil {
			t.Fatal(err)
		}
		if trap && !panicked.Load() {
			t.Fatal("no panic")
		}
		return out.Values()
	}
	clean, restarted := run(false), run(true)
	if !slices.Equal(clean, restarted) {
		t.Fatalf("after a restart %v, clean run %v", restarted, clean)
	}
}

// TestReviewSamplingUnboundedSourceHangs: planning a shuffle join samples
// its left side by running the stages upstream on a prefix of each split;
// an unbounded source with fewer records than the prefix answers ErrNoData
// forever, so the sampling job, and Plan with it, never ends.
func TestReviewSamplingUnboundedSourceHangs(t *testing.T) {
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
