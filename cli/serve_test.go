package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/stages"
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
// commandResult is how a command run by commandInBackground ended.
type commandResult struct {
	code   int
	stderr string
}

// commandInBackground runs the command line args in this process, as
// command does, and sends how it ended (the channel holds one).
func commandInBackground(ctx context.Context, args ...string) chan commandResult {
	ended := make(chan commandResult, 1)
	go func() {
		code, _, stderr := command(ctx, false, args...)
		ended <- commandResult{code, stderr}
	}()
	return ended
}

func TestRunServesMetrics(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := commandInBackground(ctx, "run", "events-windows", "--quiet", "--parallelism", "2", "--http", addr,
		"--arg", "n-events=50000000", "--arg", "out="+filepath.Join(t.TempDir(), "out"))
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

// finishedJob runs job to its end in the test's process and returns its
// execution, for the handlers to serve.
func finishedJob(t testing.TB, job string, args map[string]string, parallelism int) *actors.Execution {
	t.Helper()
	j, ok := stages.Lookup(job)
	if !ok {
		t.Fatalf("job %q is not registered", job)
	}
	p, err := j.Build(args)
	if err != nil {
		t.Fatal(err)
	}
	x, err := sluice.Start(context.Background(), p, sluice.Options{Parallelism: parallelism})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Wait(); err != nil {
		t.Fatalf("job %s: %v", job, err)
	}
	return x
}

// serveFinished serves x as --http does on a loopback port and returns its
// base URL and what it printed.
func serveFinished(t *testing.T, x *actors.Execution) (string, *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errs := newSyncBuffer()
	c := &invocation{name: "sluice", stdout: io.Discard, stderr: errs}
	js := c.serveJob(ln)
	js.set(x)
	t.Cleanup(js.stop)
	return "http://" + ln.Addr().String(), errs
}

// rawRequest sends req as it is on a new connection to addr and returns the
// response's status code and body.
func rawRequest(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("writing %.60q: %v", req, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%.60q: reading the response: %v", req, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestServeBadRequests: --http's server answers unknown, malformed and
// oversized requests with a 4xx that says what is wrong, and goes on
// serving the page and the API after each.
func TestServeBadRequests(t *testing.T) {
	x := finishedJob(t, "sum-by-key", map[string]string{"rows": "1000", "keys": "10"}, 2)
	base, errs := serveFinished(t, x)
	addr := strings.TrimPrefix(base, "http://")
	if !strings.Contains(errs.String(), "serving the job on "+base+"/ ") || strings.Contains(errs.String(), "warning") {
		t.Errorf("stderr: %q, want the page's URL %s/ and no warning", errs.String(), base)
	}
	huge := "GET /v1/job HTTP/1.1\r\nHost: x\r\nX-Huge: " + strings.Repeat("a", 100<<10) + "\r\n\r\n"
	many := "GET /v1/job HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Many: 0123456789abcdef\r\n", 5000) + "\r\n"
	for _, tc := range []struct {
		name, req string
		code      int
		says      string // in the body
	}{
		{"unknown path", "GET /no/such/page HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound, "no endpoint GET /no/such/page"},
		{"unknown asset", "GET /assets/nothing.js HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound, "no page /assets/nothing.js"},
		{"the page under another name", "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound, "GET / (the job's page)"},
		{"a write to the API", "POST /v1/job HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", http.StatusNotFound, "no endpoint POST /v1/job"},
		{"a write to the page", "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound, "no endpoint DELETE /"},
		{"dot segments", "GET /assets/../v1/job HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest, `malformed path \"/assets/../v1/job\"`},
		{"empty segment", "GET //v1/job HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest, `malformed path \"//v1/job\"`},
		{"an escaped NUL", "GET /v1/job%00 HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest, "malformed path"},
		{"a backslash", "GET /assets\\..\\x HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest, "malformed path"},
		{"a bad escape", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest, ""},
		{"not HTTP", "HELLO\r\n\r\n", http.StatusBadRequest, ""},
		{"no Host", "GET /v1/job HTTP/1.1\r\n\r\n", http.StatusBadRequest, "missing required Host header"},
		{"a header of 100 KiB", huge, http.StatusRequestHeaderFieldsTooLarge, ""},
		{"5000 headers", many, http.StatusRequestHeaderFieldsTooLarge, ""},
	} {
		code, body := rawRequest(t, addr, tc.req)
		if code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.name, code, body, tc.code, tc.says)
		}
		// Still serving.
		resp, err := http.Get(base + "/v1/job")
		if err != nil {
			t.Fatalf("after %s: %v", tc.name, err)
		}
		var view jobView
		err = json.NewDecoder(resp.Body).Decode(&view)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil || view.Job != "sum-by-key" {
			t.Fatalf("after %s: GET /v1/job: %s %+v (%v)", tc.name, resp.Status, view, err)
		}
	}
	for _, path := range []string{"/", "/?job=/v1/jobs/x/stats", "/assets/dashboard.js", "/assets/dashboard.css", "/debug/pprof/", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
}

// TestServeWarnsOffLoopback: --http on an address other hosts can reach
// warns that the page, /metrics and pprof are open to them.
func TestServeWarnsOffLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skipf("cannot listen on 0.0.0.0: %v", err)
	}
	errs := newSyncBuffer()
	c := &invocation{name: "sluice", stdout: io.Discard, stderr: errs}
	c.serveJob(ln).stop()
	if !strings.Contains(errs.String(), "warning: --http ") || !strings.Contains(errs.String(), "open to every host") {
		t.Errorf("stderr: %q, want a warning", errs.String())
	}
}

// TestJobViewEdges: /v1/job carries the physical plan's edges with their
// kinds, and the kinds of the stages, which the page draws the graph from.
func TestJobViewEdges(t *testing.T) {
	x := finishedJob(t, "events-windows", map[string]string{"n-events": "20000", "out": filepath.Join(t.TempDir(), "out")}, 2)
	v := viewOf("", x)
	var got []string
	for _, e := range v.Edges {
		got = append(got, fmt.Sprintf("v%d→v%d %s from %s", e.From, e.To, e.Kind, e.Stage))
	}
	want := []string{"v1→v2 hash from key"}
	if !slices.Equal(got, want) {
		t.Errorf("edges %q, want %q", got, want)
	}
	kinds := strings.Join(v.StageKinds, " ")
	if kinds != "source transform transform stateful transform sink" || len(v.StageKinds) != len(v.Stages) {
		t.Errorf("stage kinds %q for %d stages", kinds, len(v.Stages))
	}
	if !v.HasEventTime || v.EventTime <= 0 || v.Running {
		t.Errorf("event time %v (%v), running %v", v.EventTime, v.HasEventTime, v.Running)
	}
}

// BenchmarkPagePoll measures what the page costs the process that runs a
// job: the handling of one poll (GET /v1/job) of a finished W3
// (events-windows) at parallelism 8, of a scrape of /metrics, and of the
// page's assets, as --http's handler serves them. cpu-ns/op is the
// process's CPU time (user and system, every thread: GC included) per
// request, read from getrusage.
func BenchmarkPagePoll(b *testing.B) {
	x := finishedJob(b, "events-windows", map[string]string{"n-events": "200000", "out": filepath.Join(b.TempDir(), "out")}, 8)
	h := jobHandler(x)
	for _, tc := range []struct{ name, path string }{
		{"poll", "/v1/job"}, {"scrape", "/metrics"}, {"page", "/"}, {"js", "/assets/dashboard.js"}, {"css", "/assets/dashboard.css"},
	} {
		path := tc.path
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			var size int
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for range b.N {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("GET %s: %d", path, w.Code)
				}
				size = w.Body.Len()
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(size), "B/response")
		})
	}
}

// BenchmarkPagePollLoopback measures one poll of GET /v1/job as the page
// makes it: over a kept-alive loopback connection to --http's server.
// cpu-ns/op counts the client's CPU time with the server's: an upper bound
// on the server's.
func BenchmarkPagePollLoopback(b *testing.B) {
	x := finishedJob(b, "events-windows", map[string]string{"n-events": "200000", "out": filepath.Join(b.TempDir(), "out")}, 8)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	c := &invocation{name: "sluice", stdout: io.Discard, stderr: io.Discard}
	js := c.serveJob(ln)
	js.set(x)
	defer js.stop()
	url := "http://" + ln.Addr().String() + "/v1/job"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %s", url, resp.Status)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the process's CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
