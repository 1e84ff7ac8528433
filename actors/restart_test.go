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
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// TestSinkPanicSendsOnce: a vertex whose chain both sends (a TryMap's dead
// letters, to another vertex) and writes a sink (ForEach) delivers each send
// once across a panic in the sink. The runtime queues the sends, then the
// ForEach panics; after the restart the operator's Ready still holds the
// same sends (Advance never ran), and queueing them again delivered the dead
// letters twice.
func TestSinkPanicSendsOnce(t *testing.T) {
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

// TestPanicInSinkOpenIsRetried: a panic in a sink's Open restarts the actor
// and opens the sink again; the job completes. The start message set
// started before it opened the sink and granted credit, so the restarted
// actor only resumed: the sink was never opened, upstream never got credit,
// and the job hung (here it would run into the context's deadline).
func TestPanicInSinkOpenIsRetried(t *testing.T) {
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

// TestWindowPanicMidBatchCountsOnce: a windowed aggregate whose user Lift
// panics on a record in the middle of a batch gives, after the restart, the
// panes of a run without the panic. The window state applies a batch record
// by record, so the records before the panic were in the panes while the
// state said it was not lost, and the retry added them again.
func TestWindowPanicMidBatchCountsOnce(t *testing.T) {
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
