package actors_test

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/stages"
)

// gatedSource produces n records of value i, in one split; its reader
// waits for the gate (or a deadline) before the first record.
type gatedSource struct {
	n     int64
	gate  func() // nil: no wait
	reads *atomic.Int64
}

func (s gatedSource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: s.n, Bytes: s.n * 8, Desc: "gated"}}, nil
}

func (s gatedSource) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int64], error) {
	return &gatedReader{s: s}, nil
}

type gatedReader struct {
	s    gatedSource
	next int64
}

func (r *gatedReader) Read(buf []int64) (int, error) {
	if r.next == 0 && r.s.gate != nil {
		r.s.gate()
	}
	n := 0
	for n < len(buf) && r.next < r.s.n {
		buf[n] = r.next
		n++
		r.next++
	}
	r.s.reads.Add(int64(n))
	if r.next == r.s.n {
		return n, io.EOF
	}
	return n, nil
}

func (r *gatedReader) Close() error { return nil }

// A join whose sides come from different sources takes no probe data before
// its build side has ended: the probe source waits on credit instead of
// filling the join's memory. The build source starts only once the probe
// source has read 200 000 records or 2 s have passed; with the probe held,
// the probe source cannot get that far (credit stops it at a few batches).
func TestJoinHoldsProbeUntilBuilt(t *testing.T) {
	const probeN, buildN = 1_000_000, 1000
	var probeReads, buildReads atomic.Int64
	var atBuild atomic.Int64
	gate := func() {
		deadline := time.Now().Add(2 * time.Second)
		for probeReads.Load() < 200_000 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // polling a condition with a deadline
		}
		atBuild.Store(probeReads.Load())
	}
	p := stages.NewPipeline("hold")
	probe := stages.KeyBy(stages.Read(p, stages.Source[int64](gatedSource{n: probeN, reads: &probeReads}), stages.Parallelism(1)),
		func(x int64) int64 { return x % buildN })
	build := stages.KeyBy(stages.Read(p, stages.Source[int64](gatedSource{n: buildN, gate: gate, reads: &buildReads}), stages.Parallelism(1)),
		func(x int64) int64 { return x })
	var rows atomic.Int64
	stages.ForEach(stages.Join(probe, build, stages.Inner), func(stages.Joined[int64, int64, int64]) error {
		rows.Add(1)
		return nil
	})
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rows.Load() != probeN {
		t.Fatalf("joined %d rows, want %d", rows.Load(), probeN)
	}
	if got := atBuild.Load(); got >= 200_000 {
		t.Fatalf("the probe source had read %d records before the build side started: the probe was not held\n%s", got, res.Plan)
	}
	t.Logf("probe records read before the build side started: %d", atBuild.Load())
}

// Both sides of a join from one source: holding the probe there would
// deadlock (the source could not send build records while its probe edge
// waits), so the join keeps early probe batches in memory and finishes.
func TestJoinOfOneSourceDoesNotHold(t *testing.T) {
	const n = 300_000
	p := stages.NewPipeline("self-join")
	src := stages.Sequence(p, 0, n, stages.Parallelism(1))
	left := stages.KeyBy(src, func(x int64) int64 { return x })
	right := stages.KeyBy(stages.Filter(src, func(x int64) bool { return x%3 == 0 }), func(x int64) int64 { return x })
	c := stages.Collect(stages.Map(stages.Join(left, right, stages.Inner), func(j stages.Joined[int64, int64, int64]) int64 { return j.Key }))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := sluice.Run(ctx, p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
	if got := len(c.Values()); got != n/3 {
		t.Fatalf("joined %d rows, want %d", got, n/3)
	}
}
