package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-data/sluice"
	_ "github.com/sluice-data/sluice/examples" // the bundled jobs
	"github.com/sluice-data/sluice/metrics"
	"github.com/sluice-data/sluice/stages"
)

// BenchmarkScrape measures one scrape of a running W3 job (its statistics
// read, turned into samples and written as Prometheus text, Go's and the
// process's collectors included) and, as snapshot, the statistics alone:
// the CPU a scrape takes from the process, per request.
//
//	go test -run - -bench Scrape ./metrics
func BenchmarkScrape(b *testing.B) {
	j, ok := stages.Lookup("events-windows")
	if !ok {
		b.Fatal("events-windows is not registered")
	}
	p, err := j.Build(map[string]string{"n-events": "2000000000", "out": filepath.Join(b.TempDir(), "out")})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	x, err := sluice.Start(ctx, p, sluice.Options{Parallelism: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		cancel()
		x.Wait()
	}()
	col := &metrics.Collector{}
	col.Add(metrics.Job{Snapshot: x.Snapshot, Running: func() bool { return true }})
	h := promhttp.HandlerFor(metrics.Registry(col), promhttp.HandlerOpts{})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.Run("scrape", func(b *testing.B) {
		b.ReportAllocs()
		var bytes int
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			bytes = w.Body.Len()
		}
		b.ReportMetric(float64(bytes), "bytes/scrape")
	})
	b.Run("snapshot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			x.Snapshot()
		}
	})
}
