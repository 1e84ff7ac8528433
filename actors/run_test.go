package actors_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// counting is a source of the integers [0, n) in splits, made on the fly so
// that tests with many records hold none of them in memory. n < 0 never ends.
type counting struct {
	n      int64
	splits int
	read   *atomic.Int64 // records read, if not nil
}

func (c counting) Splits(context.Context) ([]stages.Split, error) {
	var out []stages.Split
	if c.n < 0 {
		for i := 0; i < c.splits; i++ {
			out = append(out, stages.Split{Index: i, Records: -1, Bytes: -1, Desc: fmt.Sprintf("endless %d", i), Data: [2]int64{int64(i), -1}})
		}
		return out, nil
	}
	size := (c.n + int64(c.splits) - 1) / int64(c.splits)
	for lo := int64(0); lo < c.n; lo += size {
		hi := min(lo+size, c.n)
		out = append(out, stages.Split{Index: len(out), Records: hi - lo, Bytes: -1, Desc: fmt.Sprintf("[%d,%d)", lo, hi), Data: [2]int64{lo, hi}})
	}
	return out, nil
}

func (c counting) Open(_ context.Context, _ stages.Instance, s stages.Split) (stages.Reader[int64], error) {
	r := s.Data.([2]int64)
	return &countingReader{next: r[0], end: r[1], read: c.read}, nil
}

type countingReader struct {
	next, end int64
	read      *atomic.Int64
}

func (r *countingReader) Read(buf []int64) (int, error) {
	n := len(buf)
	if r.end >= 0 {
		n = int(min(int64(n), r.end-r.next))
	}
	for i := range n {
		buf[i] = r.next + int64(i)
	}
	r.next += int64(n)
	if r.read != nil {
		r.read.Add(int64(n))
	}
	if r.end >= 0 && r.next >= r.end {
		return n, io.EOF
	}
	return n, nil
}

func (r *countingReader) Close() error { return nil }

// sumPipeline builds source → map → keyBy(x % keys) → sum → collect, with
// mapFn applied in the map.
func sumPipeline(n int64, keys int64, mapFn func(int64) int64) (*stages.Pipeline, *stages.Collection[stages.KV[int64, int64]]) {
	p := stages.NewPipeline("sum")
	src := stages.Read[int64](p, counting{n: n, splits: 4}, stages.Name("numbers"))
	m := stages.Map(src, mapFn, stages.Name("double"))
	s := stages.Aggregate(stages.KeyBy(m, func(x int64) int64 { return x % keys }), window.Global(),
		stages.Sum(func(x int64) int64 { return x }))
	return p, stages.Collect(s)
}

func sorted(kvs []stages.KV[int64, int64]) []stages.KV[int64, int64] {
	slices.SortFunc(kvs, func(a, b stages.KV[int64, int64]) int { return int(a.Key - b.Key) })
	return kvs
}

func fastRestarts() *actors.Config {
	cfg := actors.DefaultConfig()
	cfg.Restart.Backoff, cfg.Restart.MaxBackoff = time.Millisecond, 4*time.Millisecond
	return &cfg
}

func TestTransientPanicIsRetried(t *testing.T) {
	before := len(testenv.Goroutines())
	const n = 200_000
	double := func(x int64) int64 { return 2 * x }
	p, clean := sumPipeline(n, 1000, double)
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}

	var panicked atomic.Bool
	p, out := sumPipeline(n, 1000, func(x int64) int64 {
		if x == 4242 && panicked.CompareAndSwap(false, true) {
			panic("transient")
		}
		return 2 * x
	})
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2, Runtime: fastRestarts()})
	if err != nil {
		t.Fatal(err)
	}
	if !panicked.Load() {
		t.Fatal("the map never panicked")
	}
	var restarts int64
	for _, v := range res.Vertices {
		restarts += v.Restarts
	}
	if restarts != 1 {
		t.Errorf("restarts = %d, want 1", restarts)
	}
	// The failure is in the exception history, naming the stage, the
	// instance and the record; each instance has its own numbers.
	if len(res.Exceptions) != 1 || !res.Exceptions[0].Restarted || !strings.Contains(res.Exceptions[0].Stage, "instance 1/2") || !strings.Contains(res.Exceptions[0].Error, `map "double"`) ||
		!strings.Contains(res.Exceptions[0].Error, "4242") || !strings.Contains(res.Exceptions[0].Error, "transient") {
		t.Errorf("exceptions %+v, want the one panic on record 4242, restarted", res.Exceptions)
	}
	for _, v := range res.Vertices {
		if len(v.Instances) != v.Parallelism {
			t.Fatalf("vertex %d: %d instances' numbers for %d instances", v.ID, len(v.Instances), v.Parallelism)
		}
		var in, bytesIn int64
		for _, is := range v.Instances {
			in += is.RecordsIn
			bytesIn += is.BytesIn
		}
		if in != v.RecordsIn || bytesIn != v.BytesIn || v.RecordsIn > 0 && v.BytesIn <= 0 {
			t.Errorf("vertex %d: instances took %d records (%d bytes), the vertex %d (%d bytes)", v.ID, in, bytesIn, v.RecordsIn, v.BytesIn)
		}
	}
	if got, want := sorted(out.Values()), sorted(clean.Values()); !slices.Equal(got, want) {
		t.Fatalf("output after a transient panic differs from the clean run: %d vs %d keys", len(got), len(want))
	}
	testenv.CheckLeaks(t, before)
}

func TestPersistentPanicFailsJob(t *testing.T) {
	before := len(testenv.Goroutines())
	clk := clock.NewManual(time.Unix(0, 0))
	cfg := actors.DefaultConfig()
	cfg.Clock = clk
	cfg.Restart = actors.RestartPolicy{MaxRestarts: 3, Window: time.Hour, Backoff: time.Second, MaxBackoff: 4 * time.Second}
	p, out := sumPipeline(100_000, 10, func(x int64) int64 {
		if x == 77_777 {
			panic(errors.New("bad record"))
		}
		return x
	})
	x, err := sluice.Start(context.Background(), p, sluice.Options{Parallelism: 2, Runtime: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	// Restarts wait on the manual clock: move it until the job gives up.
	deadline := time.Now().Add(20 * time.Second)
	for done := false; !done; {
		select {
		case <-x.Done():
			done = true
		default:
			if time.Now().After(deadline) {
				t.Fatal("job did not fail")
			}
			if clk.Pending() > 0 {
				clk.Advance(time.Second)
			}
			runtime.Gosched()
		}
	}
	res, err := x.Wait()
	if err == nil {
		t.Fatal("job succeeded; want failure")
	}
	if !errors.Is(err, actors.ErrJobFailed) {
		t.Errorf("error %v does not wrap ErrJobFailed", err)
	}
	var rp *stages.RecordPanic
	if !errors.As(err, &rp) {
		t.Fatalf("error %v does not carry a *stages.RecordPanic", err)
	}
	for _, want := range []string{`job "sum"`, `map "double"`, "instance", "/2", "77777", "bad record", "4 times"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if rp.Record != "77777" {
		t.Errorf("RecordPanic.Record = %q, want 77777", rp.Record)
	}
	if len(out.Values()) != 0 {
		t.Errorf("a failed job committed %d records", len(out.Values()))
	}
	var restarts int64
	for _, v := range res.Vertices {
		restarts += v.Restarts
	}
	if restarts != 3 {
		t.Errorf("restarts = %d, want 3 before giving up", restarts)
	}
	testenv.CheckLeaks(t, before)
}

func TestCancel(t *testing.T) {
	before := len(testenv.Goroutines())
	var read atomic.Int64
	p := stages.NewPipeline("endless")
	src := stages.Read[int64](p, counting{n: -1, splits: 2, read: &read})
	m := stages.Map(src, func(x int64) int64 { return x + 1 })
	counts := stages.Aggregate(stages.KeyBy(m, func(x int64) int64 { return x % 100 }), window.Global(), stages.Count[int64]())
	stages.Collect(counts)
	stages.ForEach(stages.Map(m, func(x int64) int64 { return x }), func(int64) error { return nil })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x, err := sluice.Start(ctx, p, sluice.Options{Parallelism: 2})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for read.Load() < 100_000 {
		if time.Now().After(deadline) {
			t.Fatal("the source did not start")
		}
		runtime.Gosched()
	}
	start := time.Now()
	cancel()
	_, err = x.Wait()
	took := time.Since(start)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `job "endless"`) {
		t.Fatalf("err = %v, want context.Canceled naming the job", err)
	}
	limit := time.Second
	if testenv.Race() {
		limit = 5 * time.Second
	}
	if took > limit {
		t.Errorf("cancelled job took %v to stop, want under %v", took, limit)
	}
	testenv.CheckLeaks(t, before)
}
