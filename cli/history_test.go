package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestSlow: a run is slow when it takes more than twice the median of
// three or more earlier runs.
func TestSlow(t *testing.T) {
	for _, tc := range []struct {
		d       time.Duration
		earlier []time.Duration
		want    bool
	}{
		{10, nil, false},
		{100, []time.Duration{1, 1}, false}, // too few to tell
		{21, []time.Duration{10, 10, 10}, true},
		{20, []time.Duration{10, 10, 10}, false},     // twice is not more than twice
		{25, []time.Duration{1, 10, 12, 100}, true},  // median 11
		{22, []time.Duration{1, 10, 12, 100}, false}, // median 11
		{30, []time.Duration{100, 1, 14}, true},      // median 14, unsorted
	} {
		if got := slow(tc.d, append([]time.Duration(nil), tc.earlier...)); got != tc.want {
			t.Errorf("slow(%v, %v) = %v, want %v", tc.d, tc.earlier, got, tc.want)
		}
	}
}

// pastRun adds an ended run of job name to n's list, as if it had run
// before: it took d, ended at end and exited with code.
func pastRun(n *nodeServer, name string, i int, end time.Time, d time.Duration, code int) {
	start := end.Add(-d)
	n.mu.Lock()
	defer n.mu.Unlock()
	id := fmt.Sprintf("%s-past-%d", name, i)
	n.jobs[id] = &nodeJob{ID: id, Name: name, Args: []string{name}, Started: start, State: "ended", Exit: code, Ended: &end,
		Duration: d, Result: resultOf(code)}
}

// TestNodeJobHistory: a node keeps its ended jobs with their duration,
// rows in and out and result; a run that took more than twice the median
// of the same job's earlier successful runs is flagged slow, in its list
// entry and as sluice_job_slow (with sluice_job_duration_seconds); the
// node keeps the last 100 ended jobs, and serves the job's page.
func TestNodeJobHistory(t *testing.T) {
	n := newNodeServer(t, "history")
	srv := httptest.NewServer(n.routes())
	defer srv.Close()
	// Earlier runs: three of sum-by-key that took a nanosecond, one that
	// failed after an hour (not counted), and an hour-long run of another
	// job.
	ago := time.Now().Add(-time.Minute)
	for i := range 3 {
		pastRun(n, "sum-by-key", i, ago, time.Nanosecond, exitOK)
	}
	pastRun(n, "sum-by-key", 3, ago, time.Hour, exitFailed)
	pastRun(n, "wordcount", 4, ago, time.Hour, exitOK)
	run := func(args ...string) nodeJob {
		t.Helper()
		j := n.start(args, newFrameStream(io.Discard, nil), "")
		<-j.done
		var got nodeJob
		getJSON(t, srv.URL+"/v1/jobs/"+j.ID, &got)
		return got
	}
	j := run("sum-by-key", "--arg", "rows=1000", "--arg", "keys=10")
	if j.Name != "sum-by-key" || j.Result != "succeeded" || j.RowsIn != 1000 || j.RowsOut != 1 || j.Duration <= 0 || !j.Slow {
		t.Errorf("a run after three of a nanosecond: %+v, want slow, succeeded, 1000 rows in and 1 out (the top 10)", j)
	}
	var list []nodeJob
	getJSON(t, srv.URL+"/v1/jobs", &list)
	if len(list) != 6 || list[5].ID != j.ID || !list[5].Slow || list[5].Duration != j.Duration {
		t.Errorf("the list: %+v", list)
	}
	fams := scrape(t, srv.URL+"/metrics")
	if v, ok := sample(fams, "sluice_job_slow", map[string]string{"job_id": j.ID}); !ok || v != 1 {
		t.Errorf("sluice_job_slow{job_id=%q} %v (%v), want 1", j.ID, v, ok)
	}
	if v, ok := sample(fams, "sluice_job_duration_seconds", map[string]string{"job_id": j.ID}); !ok || v != j.Duration.Seconds() {
		t.Errorf("sluice_job_duration_seconds{job_id=%q} %v (%v), want %v", j.ID, v, ok, j.Duration.Seconds())
	}

	// Beside runs of an hour, not slow; a failed run has its result.
	for i := range 3 {
		pastRun(n, "wordcount", 10+i, ago, time.Hour, exitOK)
	}
	if w := run("wordcount"); w.Slow || w.Result != "succeeded" || w.RowsIn == 0 {
		t.Errorf("a run after runs of an hour: %+v", w)
	}
	if f := run("sum-by-key", "--arg", "rows=x"); f.Result != "usage error" || f.Slow {
		t.Errorf("a run with a bad argument: %+v, want a usage error, not slow (only runs that succeed are)", f)
	}
	fams = scrape(t, srv.URL+"/metrics")
	if v, ok := sample(fams, "sluice_job_slow", map[string]string{"job": "wordcount"}); !ok || v != 0 {
		t.Errorf("sluice_job_slow of wordcount %v (%v), want 0", v, ok)
	}

	// Bounded: the last 100 ended jobs, their metrics with them. The
	// runs above are older than 150 that end after them.
	for i := range 150 {
		pastRun(n, "gen-orders", 100+i, time.Now().Add(time.Duration(i)*time.Microsecond), time.Second, exitOK)
	}
	last := run("sum-by-key", "--arg", "rows=10")
	n.mu.Lock()
	kept := len(n.jobs)
	_, first := n.jobs[j.ID]
	_, oldest := n.jobs["gen-orders-past-150"]
	_, newest := n.jobs["gen-orders-past-151"]
	n.mu.Unlock()
	if kept != maxEndedJobs || first || oldest || !newest {
		t.Errorf("%d jobs kept (the first run's kept: %v, the 51st gen-orders %v, the 52nd %v), want the last %d", kept, first,
			oldest, newest, maxEndedJobs)
	}
	getJSON(t, srv.URL+"/v1/jobs/"+last.ID, &nodeJob{})
	fams = scrape(t, srv.URL+"/metrics")
	if _, ok := sample(fams, "sluice_stage_records_total", map[string]string{"job_id": j.ID}); ok {
		t.Errorf("the metrics of %s, forgotten, are still served", j.ID)
	}
	if _, ok := sample(fams, "sluice_job_duration_seconds", map[string]string{"job_id": last.ID}); !ok {
		t.Errorf("no sluice_job_duration_seconds of the last run %s", last.ID)
	}

	// The job's page, on the node's API.
	for _, path := range []string{"/", "/?job=/v1/jobs/" + last.ID + "/stats", "/assets/dashboard.js"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "text/") {
			t.Errorf("GET %s: %s %s", path, resp.Status, resp.Header.Get("Content-Type"))
		}
	}
}
