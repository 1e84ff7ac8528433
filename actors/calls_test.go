package actors_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// TestCallsNameABlockedUserFunction: an instance blocked in a user
// function shows in Calls with its vertex, instance and how long it has
// been there on the job's clock; once it returns, no call is left.
func TestCallsNameABlockedUserFunction(t *testing.T) {
	clk := clock.NewManual(time.Unix(1000, 0))
	cfg := actors.DefaultConfig()
	cfg.Clock = clk
	release := make(chan struct{})
	p := stages.NewPipeline("blocked")
	xs := stages.Map(stages.FromSlice(p, []int{1, 2, 3}), func(x int) int {
		<-release
		return x
	}, stages.Name("wait"))
	out := stages.Collect(xs)
	x, err := sluice.Start(context.Background(), p, sluice.Options{Parallelism: 1, Runtime: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the map to block", func() bool { return len(x.Calls()) == 1 })
	clk.Advance(42 * time.Second)
	calls := x.Calls()
	if len(calls) != 1 {
		t.Fatalf("calls = %+v, want one", calls)
	}
	c := calls[0]
	if c.What != "in a user function" || c.For != 42*time.Second || c.Instance.Index != 0 || c.Instance.Parallelism != 1 ||
		!strings.Contains(c.Instance.Stage, `map "wait"`) || c.Vertex != x.Plan().Vertices[0].ID {
		t.Errorf("call = %+v, want vertex %d, map \"wait\" instance 0 of 1 in a user function for 42s", c, x.Plan().Vertices[0].ID)
	}
	close(release)
	if _, err := x.Wait(); err != nil {
		t.Fatal(err)
	}
	if calls := x.Calls(); len(calls) != 0 {
		t.Errorf("calls after the job = %+v, want none", calls)
	}
	if got := len(out.Values()); got != 3 {
		t.Errorf("%d records, want 3", got)
	}
}

// pacedReader reads n records a batch at a time, advancing the manual clock
// by cost on every read: the work of decoding a file.
type pacedReader struct {
	clk  *clock.Manual
	cost time.Duration
	n    int64
}

func (r *pacedReader) Read(buf []int64) (int, error) {
	r.clk.Advance(r.cost)
	n := int(min(int64(len(buf)), r.n))
	r.n -= int64(n)
	if r.n == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (r *pacedReader) Close() error { return nil }

type pacedSource struct{ r *pacedReader }

func (s pacedSource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: s.r.n, Bytes: -1, Desc: "paced"}}, nil
}

func (s pacedSource) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int64], error) {
	return s.r, nil
}

// TestBusyCountsReadsAndWrites: a source fused with its sink spends its
// time reading and writing, not in the operator's step; all of it is busy
// time. The clock moves only inside the reads (10 ms each) and the sink's
// function (1 µs a record), so busy time is all of the elapsed time.
func TestBusyCountsReadsAndWrites(t *testing.T) {
	clk := clock.NewManual(time.Unix(1000, 0))
	cfg := actors.DefaultConfig()
	cfg.Clock = clk
	const records = 8 * 1024
	p := stages.NewPipeline("busy")
	src := stages.Read[int64](p, pacedSource{&pacedReader{clk: clk, cost: 10 * time.Millisecond, n: records}})
	stages.ForEach(src, func(int64) error { clk.Advance(time.Microsecond); return nil })
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 1, Runtime: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Vertices) != 1 {
		t.Fatalf("%d vertices, want the source and sink fused in one:\n%s", len(res.Vertices), res.Plan)
	}
	v := res.Vertices[0]
	want := 8*10*time.Millisecond + records*time.Microsecond
	if res.Elapsed < want || v.Busy < want || v.Busy > res.Elapsed {
		t.Errorf("busy %v of elapsed %v, want all of at least %v", v.Busy, res.Elapsed, want)
	}
	t.Logf("busy %v of %v elapsed", v.Busy, res.Elapsed)
}

// backlogSource emits its records, then has no data until the job ends:
// an unbounded source whose backlog has been read.
type backlogSource struct{ xs []int64 }

func (s backlogSource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: -1, Bytes: -1, Desc: "backlog"}}, nil
}

func (s backlogSource) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int64], error) {
	return &backlogReader{xs: s.xs}, nil
}

type backlogReader struct{ xs []int64 }

func (r *backlogReader) Read(buf []int64) (int, error) {
	if len(r.xs) == 0 {
		return 0, stages.ErrNoData
	}
	n := copy(buf, r.xs)
	r.xs = r.xs[n:]
	return n, nil
}

func (r *backlogReader) Close() error { return nil }

// TestLagIsBehindTheGreatestEventTime: replaying events of 2020, every
// vertex's lag is how far its watermark trails the greatest event time the
// source has seen (the 5 s delay at the source), not the years to the wall
// clock.
func TestLagIsBehindTheGreatestEventTime(t *testing.T) {
	start := time.Date(2020, 3, 1, 0, 0, 0, 0, time.UTC)
	var ts []int64
	for i := range 3000 {
		ts = append(ts, start.Add(time.Duration(i)*100*time.Millisecond).UnixNano()) // 5 minutes
	}
	latest := ts[len(ts)-1]
	p := stages.NewPipeline("replay")
	timed := stages.EventTime(stages.Read[int64](p, backlogSource{ts}), func(x int64) time.Time { return time.Unix(0, x) },
		stages.MaxDelay(5*time.Second))
	counts := stages.WindowAggregate(stages.KeyBy(timed, func(x int64) int64 { return x % 7 }), window.Fixed(time.Minute),
		stages.Count[int64]())
	var seen atomic.Int64
	// A sink reports no watermark: two instances of it keep it from fusing
	// with the window, which does.
	stages.ForEach(counts, func(stages.Windowed[int64, int64]) error { seen.Add(1); return nil }, stages.Parallelism(2))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x, err := sluice.Start(ctx, p, sluice.Options{Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	var snap *actors.Result
	defer func() {
		if t.Failed() && snap != nil {
			for _, v := range snap.Vertices {
				t.Logf("v%d %s: has %v watermark %v lag %v; event time %v", v.ID, v.Name, v.HasWatermark, time.Unix(0, v.Watermark).UTC(), v.Lag, time.Unix(0, snap.EventTime).UTC())
			}
		}
	}()
	waitFor(t, "every vertex to have a watermark from the last event", func() bool {
		snap = x.Snapshot()
		if !snap.HasEventTime || snap.EventTime != latest {
			return false
		}
		for _, v := range snap.Vertices[:2] {
			if !v.HasWatermark || v.Watermark < latest-int64(time.Minute) {
				return false
			}
		}
		return true
	})
	for _, v := range snap.Vertices[:2] {
		if v.Lag < 0 || v.Lag > time.Minute {
			t.Errorf("v%d %s: lag %v, want the watermark's distance to %v (a few seconds)", v.ID, v.Name, v.Lag, time.Unix(0, latest).UTC())
		}
		t.Logf("v%d %s: watermark %v lag %v", v.ID, v.Name, time.Unix(0, v.Watermark).UTC(), v.Lag)
	}
	if v := snap.Vertices[0]; v.Lag != 5*time.Second {
		t.Errorf("source vertex lag %v, want its 5s delay", v.Lag)
	}
	cancel()
	x.Wait()
}
