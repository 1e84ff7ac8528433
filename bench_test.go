package sluice_test

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

const (
	benchRecords = 10_000_000
	benchKeys    = 100_000
)

func benchMap(x int64) int64 { return x*3 + 1 }

// plainSum is the hand-written Go version of the benchmark's work on
// [lo, hi): map, key, sum into a Go map.
func plainSum(lo, hi int64) map[int64]int64 {
	m := make(map[int64]int64, benchKeys)
	for i := lo; i < hi; i++ {
		x := benchMap(i)
		m[x%benchKeys] += x
	}
	return m
}

// plainParallel splits the work over one goroutine per core, each with its
// own map, and merges the maps.
func plainParallel(n int64, workers int) map[int64]int64 {
	parts := make([]map[int64]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[w] = plainSum(n*int64(w)/int64(workers), n*int64(w+1)/int64(workers))
		}()
	}
	wg.Wait()
	out := parts[0]
	for _, p := range parts[1:] {
		for k, v := range p {
			out[k] += v
		}
	}
	return out
}

func sluiceSum(b *testing.B, n int64, opts sluice.Options) map[int64]int64 {
	p := stages.NewPipeline("bench")
	xs := stages.Map(stages.Sequence(p, 0, n), benchMap)
	sums := stages.Aggregate(stages.KeyBy(xs, func(x int64) int64 { return x % benchKeys }),
		window.Global(), stages.Sum(func(x int64) int64 { return x }))
	out := stages.Collect(sums)
	if _, err := sluice.Run(context.Background(), p, opts); err != nil {
		b.Fatal(err)
	}
	m := make(map[int64]int64, benchKeys)
	for _, kv := range out.Values() {
		m[kv.Key] = kv.Value
	}
	return m
}

// BenchmarkPipeline runs 10 M int64 records through map → keyBy (100 k keys)
// → sum, and in the same run the hand-written Go version on one goroutine and
// on one goroutine per core. It reports each one's records/s and ratio:
// Sluice's rate over the best hand-written rate.
func BenchmarkPipeline(b *testing.B) {
	workers := runtime.GOMAXPROCS(0)
	var tSluice, tOne, tAll time.Duration
	b.ReportAllocs()
	for range b.N {
		t0 := time.Now()
		got := sluiceSum(b, benchRecords, sluice.Options{})
		t1 := time.Now()
		one := plainSum(0, benchRecords)
		t2 := time.Now()
		all := plainParallel(benchRecords, workers)
		t3 := time.Now()
		tSluice += t1.Sub(t0)
		tOne += t2.Sub(t1)
		tAll += t3.Sub(t2)
		if len(got) != len(one) || len(all) != len(one) {
			b.Fatalf("key counts differ: sluice %d, plain %d, parallel %d", len(got), len(one), len(all))
		}
		for k, v := range one {
			if got[k] != v || all[k] != v {
				b.Fatalf("key %d: sluice %d, plain %d, parallel %d", k, got[k], v, all[k])
			}
		}
	}
	rate := func(d time.Duration) float64 { return float64(benchRecords) * float64(b.N) / d.Seconds() }
	best := max(rate(tOne), rate(tAll))
	b.ReportMetric(rate(tSluice), "records/s")
	b.ReportMetric(rate(tOne), "go1-records/s")
	b.ReportMetric(rate(tAll), "goN-records/s")
	b.ReportMetric(rate(tSluice)/best, "ratio")
}

// BenchmarkPipelineSim runs BenchmarkPipeline's job on the deterministic
// executor, all its instances on one goroutine, and in the same run the
// hand-written version on one goroutine: its records/s and their ratio.
func BenchmarkPipelineSim(b *testing.B) {
	var tSim, tOne time.Duration
	b.ReportAllocs()
	for i := range b.N {
		t0 := time.Now()
		got := sluiceSum(b, benchRecords, sluice.Options{Executor: actors.Sim{}, Seed: uint64(i) + 1})
		t1 := time.Now()
		one := plainSum(0, benchRecords)
		tSim += t1.Sub(t0)
		tOne += time.Since(t1)
		for k, v := range one {
			if got[k] != v {
				b.Fatalf("key %d: sim %d, plain %d", k, got[k], v)
			}
		}
	}
	rate := func(d time.Duration) float64 { return float64(benchRecords) * float64(b.N) / d.Seconds() }
	b.ReportMetric(rate(tSim), "records/s")
	b.ReportMetric(rate(tOne), "go1-records/s")
	b.ReportMetric(rate(tSim)/rate(tOne), "ratio")
}
