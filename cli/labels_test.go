package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/stages"
)

// TestLabelFlag: --label takes KEY=VALUE pairs, comma-separated or
// repeated, and refuses a key that is not a Prometheus label name (or is
// one of sluice's own) with a usage error naming it, before the job runs:
// in run and in submit, which checks run's flags before it asks the node.
func TestLabelFlag(t *testing.T) {
	l := labelsFlag{}
	for _, v := range []string{"team=search,cost_center=42", "env=ci", "team=search"} {
		if err := l.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	if got := l.String(); got != "cost_center=42,env=ci,team=search" {
		t.Errorf("labels %q", got)
	}
	for _, tc := range []struct{ value, says string }{
		{"cost-center=42", `invalid label "cost-center": a label's name is letters, digits and underscores, not starting with a digit (cost_center=42 would do)`},
		{"team=search,9lives=1", `invalid label "9lives"`},
		{"__name__=x", `invalid label "__name__": names starting with __ are Prometheus's own`},
		{"job=x", `invalid label "job": sluice's metrics use that name themselves`},
		{"team", `label "team": want KEY=VALUE`},
		{"team=", `label "team=": want KEY=VALUE`},
		{"team=a,team=b", "label team is given twice: a and b"},
	} {
		for _, cmd := range [][]string{{"run", "sum-by-key", "--arg", "rows=10"}, {"submit", "--to", "127.0.0.1:1", "sum-by-key"}} {
			code, _, stderr := command(context.Background(), false, append(cmd, "--label", tc.value)...)
			if code != exitUsage || !strings.Contains(stderr, tc.says) || !strings.Contains(stderr, "-label") {
				t.Errorf("%s --label %s: exit %d, want %d saying %q:\n%s", cmd[0], tc.value, code, exitUsage, tc.says, stderr)
			}
		}
	}
}

// checkLabeled fails t unless every sample of every sluice_ family in fams
// carries want's labels.
func checkLabeled(t *testing.T, fams map[string]*dto.MetricFamily, want map[string]string) {
	t.Helper()
	n := 0
	for name, f := range fams {
		if !strings.HasPrefix(name, "sluice_") {
			continue
		}
		n++
		for _, m := range f.Metric {
			got := map[string]string{}
			for _, l := range m.Label {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s%v: label %s=%q, want %q", name, got, k, got[k], v)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("%d sluice_ families, want 10 or more", n)
	}
}

// TestRunLabels: a job's labels are on every series of its metrics,
// parsed with the Prometheus text parser, in its JSON and in its summary's
// header.
func TestRunLabels(t *testing.T) {
	labels := map[string]string{"team": "search", "cost_center": "42"}
	j, _ := stages.Lookup("sum-by-key")
	p, err := j.Build(map[string]string{"rows": "2000", "keys": "10"})
	if err != nil {
		t.Fatal(err)
	}
	x, err := sluice.Start(context.Background(), p, sluice.Options{Parallelism: 2, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	res, err := x.Wait()
	if err != nil {
		t.Fatal(err)
	}
	base, _ := serveFinished(t, x)
	checkLabeled(t, scrape(t, base+"/metrics"), labels)
	resp, err := http.Get(base + "/v1/job")
	if err != nil {
		t.Fatal(err)
	}
	var view jobView
	err = json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	if err != nil || formatLabels(view.Labels) != "cost_center=42,team=search" {
		t.Errorf("/v1/job labels %v (%v)", view.Labels, err)
	}
	var b strings.Builder
	writeSummary(&b, res)
	if !strings.HasPrefix(b.String(), "job sum-by-key, labels cost_center=42,team=search\n\nSTAGE") {
		t.Errorf("the summary starts %q", b.String()[:min(80, b.Len())])
	}
	code, _, stderr := command(context.Background(), false, "run", "sum-by-key", "--arg", "rows=100", "--label", "team=search", "--label", "cost_center=42")
	if code != exitOK || !strings.Contains(stderr, "job sum-by-key, labels cost_center=42,team=search\n") {
		t.Errorf("run --label: exit %d:\n%s", code, stderr)
	}
	code, _, stderr = command(context.Background(), false, "run", "sum-by-key", "--arg", "rows=100")
	if code != exitOK || strings.Contains(stderr, "labels") {
		t.Errorf("run without --label: exit %d, a labels line:\n%s", code, stderr)
	}
}

// TestNodeLabels: a job submitted to a node with --label has its labels
// on the node's /metrics series of the job, in its stats and in its list
// entry.
func TestNodeLabels(t *testing.T) {
	n := newNodeServer(t, "labels")
	srv := httptest.NewServer(n.routes())
	defer srv.Close()
	n.start([]string{"sum-by-key", "--arg", "rows=1000", "--label", "team=search,cost_center=42"}, newFrameStream(io.Discard, nil), "")
	if !n.waitAll(30 * time.Second) {
		t.Fatal("the job did not end within 30 s")
	}
	labels := map[string]string{"team": "search", "cost_center": "42", "job_id": "sum-by-key-1"}
	checkLabeled(t, scrape(t, srv.URL+"/metrics"), labels)
	var view jobView
	getJSON(t, srv.URL+"/v1/jobs/sum-by-key-1/stats", &view)
	var j nodeJob
	getJSON(t, srv.URL+"/v1/jobs/sum-by-key-1", &j)
	if formatLabels(view.Labels) != "cost_center=42,team=search" || formatLabels(j.Labels) != "cost_center=42,team=search" {
		t.Errorf("labels: stats %v, job %v", view.Labels, j.Labels)
	}
}

// getJSON decodes GET url's JSON into v, failing t on a status other than
// 200.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestHTTPLoopbackDefault: --http without a host binds the loopback
// address, not every interface.
func TestHTTPLoopbackDefault(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{":4040", "127.0.0.1:4040"},
		{":0", "127.0.0.1:0"},
		{"127.0.0.1:4040", "127.0.0.1:4040"},
		{"0.0.0.0:4040", "0.0.0.0:4040"},
		{"[::1]:4040", "[::1]:4040"},
		{"localhost:4040", "localhost:4040"},
		{"4040", "4040"}, // not an address: net.Listen says so
	} {
		if got := loopbackDefault(tc.in); got != tc.want {
			t.Errorf("loopbackDefault(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	code, _, stderr := command(context.Background(), false, "run", "sum-by-key", "--arg", "rows=100", "--http", ":0")
	if code != exitOK || !strings.Contains(stderr, "serving the job on http://127.0.0.1:") || strings.Contains(stderr, "open to every host") {
		t.Errorf("--http :0: exit %d, want it served on 127.0.0.1 without a warning:\n%s", code, stderr)
	}
}
