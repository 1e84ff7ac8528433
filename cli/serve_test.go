package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads url's Prometheus text, or returns nil while it does not
// answer.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: parsing: %v", url, err)
	}
	return fams
}

// sample returns the value of family name's sample whose labels include
// want, and whether there is one.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// TestRunServesMetrics: sluice run --http serves the job's statistics
// while it runs: /metrics parses as Prometheus text with the families and
// labels the metrics package documents, its counters do not go back
// between two scrapes, /v1/job is JSON of the same numbers; bad paths get
// a 404 that says what is served.
func TestRunServesMetrics(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code   int
		stderr string
	}
	ended := make(chan result, 1)
	go func() {
		code, _, stderr := command(ctx, false, "run", "events-windows", "--quiet", "--parallelism", "2", "--http", addr,
			"--arg", "n-events=50000000", "--arg", "out="+filepath.Join(t.TempDir(), "out"))
		ended <- result{code, stderr}
	}()
	source := map[string]string{"job": "events-windows", "stage": `source "events"`, "vertex": "v1"}
	var first, second map[string]*dto.MetricFamily
	for deadline := time.Now().Add(60 * time.Second); second == nil; {
		fams := scrape(t, "http://"+addr+"/metrics")
		if v, ok := sample(fams, "sluice_stage_records_total", source); ok && v > 0 {
			if first == nil {
				first = fams
			} else if w, _ := sample(first, "sluice_stage_records_total", source); v > w {
				second = fams
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two scrapes with the source's records rising within 60 s (last: %d families)", len(fams))
		}
		select {
		case r := <-ended:
			t.Fatalf("the job ended (exit %d) before two scrapes:\n%s", r.code, r.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, name := range []string{"sluice_stage_records_total", "sluice_vertex_records_in_total", "sluice_vertex_busy_seconds_total",
		"sluice_vertex_blocked_seconds_total", "sluice_vertex_restarts_total", "sluice_vertex_parallelism", "sluice_job_elapsed_seconds",
		"sluice_job_running", "sluice_checkpoints_total", "sluice_recoveries_total", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := second[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}
	for name, f := range first {
		if f.GetType() != dto.MetricType_COUNTER || !strings.HasPrefix(name, "sluice_") {
			continue
		}
		for _, m := range f.Metric {
			want := map[string]string{}
			for _, l := range m.Label {
				want[l.GetName()] = l.GetValue()
			}
			if v, ok := sample(second, name, want); !ok || v < m.Counter.GetValue() {
				t.Errorf("%s%v: %v, then %v (ok %v): a counter went back", name, want, m.Counter.GetValue(), v, ok)
			}
		}
	}
	if v, _ := sample(second, "sluice_job_running", map[string]string{"job": "events-windows"}); v != 1 {
		t.Errorf("sluice_job_running %v while it runs", v)
	}
	resp, err := http.Get("http://" + addr + "/v1/job")
	if err != nil {
		t.Fatal(err)
	}
	var view jobView
	err = json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	if err != nil || view.Job != "events-windows" || len(view.Stages) == 0 || len(view.Vertices) == 0 || !view.Running {
		t.Fatalf("/v1/job: %+v (%v)", view, err)
	}
	resp, err = http.Get("http://" + addr + "/no/such/page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /no/such/page: %s, want 404", resp.Status)
	}
	cancel()
	if r := <-ended; r.code == 0 {
		t.Errorf("cancelled: exit 0")
	}
}

// TestRunHTTPAddressInUse: --http on a taken address is a usage error,
// found before the job starts.
func TestRunHTTPAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	code, _, stderr := command(context.Background(), false, "run", "sum-by-key", "--http", l.Addr().String())
	if code != exitUsage || !strings.Contains(stderr, "--http") || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("exit %d, want %d naming --http:\n%s", code, exitUsage, stderr)
	}
}
