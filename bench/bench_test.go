package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/examples"
	"github.com/sluice-data/sluice/stages"
)

var (
	flagOrders = flag.Int64("orders", 10_000_000, "orders to generate (W1, W2)")
	flagUsers  = flag.Int64("users", 1_000_000, "users to generate (W1), and the events' users are 100000")
	flagEvents = flag.Int64("events", 10_000_000, "events to generate (W3)")
	flagData   = flag.String("data", "", "directory for the generated data, reused when it holds data of the same sizes and kept "+
		"(default: a temporary directory, removed at exit)")
)

// dataset is the generated input of the benchmarks.
type dataset struct {
	dir                    string
	orders, users, events  string // the tables' directories
	nOrders, nUsers, nEvts int64
}

var data struct {
	once sync.Once
	d    *dataset
	err  error
	temp string // removed by TestMain
}

func TestMain(m *testing.M) {
	flag.Parse()
	examples.SetOutput(io.Discard) // "wrote N rows" lines would break benchstat's parsing
	code := m.Run()
	if data.temp != "" {
		os.RemoveAll(data.temp)
	}
	os.Exit(code)
}

// getData generates the data set once per process, outside the timer.
func getData(b *testing.B) *dataset {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	data.once.Do(func() { data.d, data.err = generate() })
	if data.err != nil {
		b.Fatal(data.err)
	}
	return data.d
}

func generate() (*dataset, error) {
	dir := *flagData
	if dir == "" {
		tmp, err := os.MkdirTemp("", "sluice-bench-")
		if err != nil {
			return nil, err
		}
		data.temp, dir = tmp, tmp
	}
	d := &dataset{dir: dir, orders: filepath.Join(dir, "orders"), users: filepath.Join(dir, "users"),
		events: filepath.Join(dir, "events"), nOrders: *flagOrders, nUsers: *flagUsers, nEvts: *flagEvents}
	sizes := fmt.Sprintf("orders=%d users=%d events=%d\n", d.nOrders, d.nUsers, d.nEvts)
	marker := filepath.Join(dir, "sizes.txt")
	if old, err := os.ReadFile(marker); err == nil && string(old) == sizes {
		return d, nil
	}
	start := time.Now()
	if err := runJob(examples.GenOrders, map[string]string{"out": dir,
		"orders": fmt.Sprint(d.nOrders), "users": fmt.Sprint(d.nUsers)}); err != nil {
		return nil, err
	}
	if err := runJob(examples.GenEvents, map[string]string{"out": dir, "events": fmt.Sprint(d.nEvts)}); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "generated %s in %s under %s\n", strings.TrimSpace(sizes), time.Since(start).Round(time.Millisecond), dir)
	return d, os.WriteFile(marker, []byte(sizes), 0o644)
}

func runJob(job *stages.Job, args map[string]string) error {
	p, err := job.Build(args)
	if err != nil {
		return err
	}
	_, err = sluice.Run(context.Background(), p, sluice.Options{})
	return err
}

// peakHeap samples the heap in use until stopped.
type peakHeap struct {
	stop chan struct{}
	done chan uint64
}

func startPeak() *peakHeap {
	h := &peakHeap{stop: make(chan struct{}), done: make(chan uint64)}
	go func() {
		var ms runtime.MemStats
		var peak uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-h.stop:
				h.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// end returns the peak in MB.
func (h *peakHeap) end() float64 {
	close(h.stop)
	return float64(<-h.done) / 1e6
}

// measure times b.N runs of run over rows input rows and reports rows/s
// and MB-peak. It returns the time of one run.
func measure(b *testing.B, rows int64, run func() error) time.Duration {
	b.Helper()
	b.ReportAllocs()
	runtime.GC()
	peak := startPeak()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(rows)*float64(b.N)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(peak.end(), "MB-peak")
	return elapsed / time.Duration(b.N)
}

// workload benchmarks Sluice against the plain-Go baseline on one
// workload: plain-go first, then sluice, which also reports x-plain (its
// time over the baseline's); then it checks that both outputs have the
// same checksum.
func workload(b *testing.B, rows int64, plain func(out string) error, sluiceRun func(b *testing.B, out string) error,
	digest func(string) (checksum, error)) {
	b.Helper()
	var plainTime time.Duration
	dir := b.TempDir()
	plainOut, sluiceOut := filepath.Join(dir, "plain"), filepath.Join(dir, "sluice")
	b.Run("plain-go", func(b *testing.B) {
		plainTime = measure(b, rows, func() error { return plain(plainOut) })
	})
	b.Run("sluice", func(b *testing.B) {
		t := measure(b, rows, func() error { return sluiceRun(b, sluiceOut) })
		if plainTime > 0 {
			b.ReportMetric(t.Seconds()/plainTime.Seconds(), "x-plain")
		}
	})
	if plainTime == 0 {
		return // only one of them ran (-bench W1/sluice)
	}
	got, err := digest(sluiceOut)
	if err != nil {
		b.Fatal(err)
	}
	want, err := digest(plainOut)
	if err != nil {
		b.Fatal(err)
	}
	if got != want {
		b.Errorf("Sluice's output has checksum %+v, the baseline's %+v", got, want)
	}
}

// runSluice runs a registered job with the default options and returns
// its result.
func runSluice(job *stages.Job, args map[string]string) (*sluice.Result, error) {
	p, err := job.Build(args)
	if err != nil {
		return nil, err
	}
	return sluice.Run(context.Background(), p, sluice.Options{})
}

// BenchmarkW1 joins 10M orders with 1M users (broadcast) into Parquet
// partitioned by day.
func BenchmarkW1(b *testing.B) {
	d := getData(b)
	workload(b, d.nOrders, func(out string) error { return plainW1(d.orders, d.users, out) },
		func(b *testing.B, out string) error {
			res, err := runSluice(examples.OrdersJoin, map[string]string{"orders": d.orders, "users": d.users, "out": out})
			if err != nil {
				return err
			}
			for _, v := range res.Vertices {
				if v.Note != "" {
					b.Logf("%s: %s", v.Name, v.Note)
					if !strings.Contains(v.Note, "broadcast join") {
						b.Errorf("the join is not broadcast")
					}
				}
			}
			return nil
		}, digestW1)
}

// BenchmarkW2 counts and sums 10M orders per user.
func BenchmarkW2(b *testing.B) {
	d := getData(b)
	workload(b, d.nOrders, func(out string) error { return plainW2(d.orders, out) },
		func(_ *testing.B, out string) error {
			_, err := runSluice(examples.OrdersPerUser, map[string]string{"orders": d.orders, "out": out})
			return err
		}, digestW2)
}

// BenchmarkW3 counts and sums 10M events per user and minute of event
// time. A third sub-benchmark, sluice-latency, runs the same pipeline with
// about 1% of the user-minutes sampled (by hash) and reports, over their
// records, the processing time from leaving the source (a Map fused with
// it) to the emission of the pane that includes them (a Map fused after
// the window).
func BenchmarkW3(b *testing.B) {
	d := getData(b)
	check := func(res *sluice.Result) error {
		for _, s := range res.Stages {
			if s.DroppedLate != 0 || s.DroppedClosed != 0 {
				return fmt.Errorf("%s dropped %d late records and %d for closed windows", s.Name, s.DroppedLate, s.DroppedClosed)
			}
		}
		return nil
	}
	workload(b, d.nEvts, func(out string) error { return plainW3(d.events, out) },
		func(_ *testing.B, out string) error {
			res, err := runSluice(examples.EventsWindows, map[string]string{"events": d.events, "out": out})
			if err != nil {
				return err
			}
			return check(res)
		}, digestW3)
	b.Run("sluice-latency", func(b *testing.B) {
		out := filepath.Join(b.TempDir(), "w3")
		var lat *latencies
		measure(b, d.nEvts, func() error {
			lat = newLatencies()
			p := stages.NewPipeline("events-windows-latency")
			events := parquetio.Read[examples.Event](p, d.events, parquetio.StageOptions(stages.Name("events")))
			stamped := stages.Map(events, func(e examples.Event) examples.Event {
				if k := (userMinute{e.UserID, e.TS - mod(e.TS, 60_000)}); sampled(k) {
					lat.leave(k, time.Now())
				}
				return e
			}, stages.Name("stamp"))
			panes := stages.Map(examples.UserMinutes(stamped), func(w examples.UserWindow) examples.UserWindow {
				if k := (userMinute{w.UserID, w.WindowStart}); sampled(k) {
					lat.emit(k, time.Now())
				}
				return w
			}, stages.Name("measure"))
			parquetio.Write(panes, out, parquetio.Overwrite)
			res, err := sluice.Run(context.Background(), p, sluice.Options{})
			if err != nil {
				return err
			}
			return check(res)
		})
		p50, p99, n := lat.percentiles()
		b.ReportMetric(p50.Seconds()*1e3, "latency-p50-ms")
		b.ReportMetric(p99.Seconds()*1e3, "latency-p99-ms")
		b.Logf("latency over %d sampled records: p50 %v, p99 %v", n, p50, p99)
	})
}

// sampled picks about 1% of the user-minutes.
func sampled(k userMinute) bool {
	return mix64(uint64(k.user)*0x9e3779b97f4a7c15^uint64(k.start))%100 == 0
}

// latencies pairs the times records of sampled user-minutes leave the
// source with the time their pane is emitted.
type latencies struct {
	shards [64]struct {
		sync.Mutex
		left map[userMinute][]time.Time
	}
	mu  sync.Mutex
	got []time.Duration
}

func newLatencies() *latencies {
	l := &latencies{}
	for i := range l.shards {
		l.shards[i].left = map[userMinute][]time.Time{}
	}
	return l
}

func (l *latencies) shard(k userMinute) int {
	return int(mix64(uint64(k.user)^uint64(k.start)<<1) % 64)
}

func (l *latencies) leave(k userMinute, at time.Time) {
	s := &l.shards[l.shard(k)]
	s.Lock()
	s.left[k] = append(s.left[k], at)
	s.Unlock()
}

// emit records the latencies of the records of k's first pane.
func (l *latencies) emit(k userMinute, at time.Time) {
	s := &l.shards[l.shard(k)]
	s.Lock()
	left := s.left[k]
	delete(s.left, k)
	s.Unlock()
	if len(left) == 0 {
		return
	}
	l.mu.Lock()
	for _, t := range left {
		l.got = append(l.got, at.Sub(t))
	}
	l.mu.Unlock()
}

func (l *latencies) percentiles() (p50, p99 time.Duration, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.got) == 0 {
		return 0, 0, 0
	}
	slices.Sort(l.got)
	return l.got[len(l.got)/2], l.got[len(l.got)*99/100], len(l.got)
}
