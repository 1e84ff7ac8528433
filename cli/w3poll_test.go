package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/stages"
)

var w3Run = flag.Duration("w3-run", 30*time.Second, "BenchmarkW3PagePolled: how long each of its runs of W3 measures")

// BenchmarkW3PagePolled measures what the job's page costs a running job:
// W3 (events-windows, generated events, Parquet written to a temporary
// directory) run six times in one process, alternately without and with
// its page's JSON (GET /v1/job over loopback from --http's server, as the
// page polls it) polled once a second. Each run measures the records its
// source reads in -w3-run (30 s), after 2 s of warm-up, and is cancelled
// then. It reports each side's mean records/s and their ratio (polled
// over not: 1 is free). It is a benchmark so that the default test suite
// never runs it:
//
//	go test -run - -bench W3PagePolled -benchtime 1x ./cli [-args -w3-run 30s]
func BenchmarkW3PagePolled(b *testing.B) {
	const warm = 2 * time.Second
	var off, on []float64
	for range b.N {
		for i := range 6 {
			polled := i%2 == 1
			rate := w3Rate(b, polled, warm, *w3Run)
			if polled {
				on = append(on, rate)
			} else {
				off = append(off, rate)
			}
			b.Logf("run %d, polled %v: %.0f records/s over %v", i+1, polled, rate, *w3Run)
		}
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	b.ReportMetric(mean(off), "records/s-unpolled")
	b.ReportMetric(mean(on), "records/s-polled")
	b.ReportMetric(mean(on)/mean(off), "polled/unpolled")
	b.Logf("unpolled %.0f records/s (runs %v), polled %.0f (runs %v): ratio %.4f", mean(off), rounded(off), mean(on), rounded(on), mean(on)/mean(off))
}

func rounded(xs []float64) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = int64(x)
	}
	return slices.Clip(out)
}

// w3Rate runs W3 for warm plus d, its page's JSON polled once a second
// when polled, and returns the records/s its source read over d.
func w3Rate(b *testing.B, polled bool, warm, d time.Duration) float64 {
	b.Helper()
	j, _ := stages.Lookup("events-windows")
	dir, err := os.MkdirTemp("", "w3poll")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir) // each run's Parquet, gone before the next
	p, err := j.Build(map[string]string{"n-events": "2000000000", "out": filepath.Join(dir, "out")})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x, err := sluice.Start(ctx, p, sluice.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { // before the directory goes
		cancel()
		x.Wait()
	}()
	stop := make(chan struct{})
	polls := make(chan int, 1)
	if polled {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		c := &invocation{name: "sluice", stdout: io.Discard, stderr: io.Discard}
		js := c.serveJob(ln)
		js.set(x)
		defer js.stop()
		go poll(b, "http://"+ln.Addr().String()+"/v1/job", stop, polls)
	} else {
		polls <- 0
	}
	time.Sleep(warm) // the job's warm-up, not a wait on a condition
	r0, t0 := read(x), time.Now()
	time.Sleep(d)
	r1, t1 := read(x), time.Now()
	close(stop)
	if n := <-polls; polled && n < int(d/time.Second) {
		b.Errorf("%d polls in %v", n, d)
	}
	cancel()
	return float64(r1-r0) / t1.Sub(t0).Seconds()
}

// poll gets url once a second, as the job's page does, until stop; it
// sends how many polls it made.
func poll(b *testing.B, url string, stop <-chan struct{}, polls chan<- int) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n := 0
	defer func() { polls <- n }()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		resp, err := client.Get(url)
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Error(fmt.Errorf("GET %s: %s", url, resp.Status))
			return
		}
		n++
	}
}

// read returns the records x's sources have read.
func read(x *actors.Execution) int64 {
	res := x.Snapshot()
	var n int64
	kinds := stageKinds(res.Plan)
	for i, s := range res.Stages {
		if kinds[i] == "source" {
			n += s.Records
		}
	}
	return n
}
