package actors_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// TestBackpressure runs a fast source into a deliberately slow sink. The
// credit ledgers assert their invariant on every grant and send (a violation
// panics the sender and would show as a restart or a failure); this test
// checks that the invariant was checked, that in-flight records stayed within
// the budget, that the heap stayed bounded and that the source was blocked.
func TestBackpressure(t *testing.T) {
	n := int64(10_000_000)
	if testenv.Race() {
		n = 1_000_000
	}
	cfg := actors.DefaultConfig()
	cfg.Credits = 2

	p := stages.NewPipeline("slow-sink")
	src := stages.Read[int64](p, counting{n: n, splits: 8}, stages.Name("numbers"))
	m := stages.Map(src, func(x int64) int64 { return x * 3 }, stages.Name("triple"))
	var sum, seen atomic.Int64
	stages.ForEach(stages.Rebalance(m), func(x int64) error {
		// Slow on purpose: ~100 dependent multiply-xorshift rounds a record.
		h := uint64(x)
		for range 100 {
			h ^= h >> 29
			h *= 0xbf58476d1ce4e5b9
		}
		if h == 42 { // never true in practice; keeps the loop alive
			sum.Add(1)
		}
		sum.Add(x)
		seen.Add(1)
		return nil
	}, stages.Name("slow"), stages.Parallelism(1))

	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2, Runtime: &cfg})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := seen.Load(); got != n {
		t.Fatalf("sink saw %d records, want %d", got, n)
	}
	if want := 3 * n * (n - 1) / 2; sum.Load() != want {
		t.Fatalf("sum = %d, want %d", sum.Load(), want)
	}
	budget := int64(cfg.Credits * cfg.BatchRecords)
	var checks int64
	for _, v := range res.Vertices {
		checks += v.LedgerChecks
		if v.PeakInFlight > budget {
			t.Errorf("%s: %d records in flight on one channel, over the budget of %d", v.Name, v.PeakInFlight, budget)
		}
		if v.Restarts != 0 {
			t.Errorf("%s restarted %d times", v.Name, v.Restarts)
		}
	}
	if checks < n/int64(cfg.BatchRecords) {
		t.Errorf("ledger invariant checked %d times for %d records", checks, n)
	}
	src0 := res.Vertices[0]
	if src0.Blocked <= 0 {
		t.Errorf("source %s never blocked on credit behind a slow sink", src0.Name)
	}
	// In flight: 2 source instances × 1 channel × 2 credits × 8 KiB batches;
	// the heap holds far more than that in runtime overhead, so the bound is
	// loose but would catch an unbounded queue (10 M records are 80 MB).
	const heapBound = 48 << 20
	if peakHeap.Load() > heapBound {
		t.Errorf("peak heap in use %d MiB, over the bound of %d MiB", peakHeap.Load()>>20, heapBound>>20)
	}
	t.Logf("%d records in %v; source blocked %v; peak heap %.1f MiB; peak in flight %d records (budget %d); %d ledger checks",
		n, res.Elapsed, src0.Blocked, float64(peakHeap.Load())/(1<<20), res.Vertices[0].PeakInFlight, budget, checks)
}
