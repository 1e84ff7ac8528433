package sluice

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	_ "github.com/sluice-data/sluice/examples"
	"github.com/sluice-data/sluice/stages"
)

// started receives a token when test-block's source starts reading.
var started = make(chan struct{}, 1)

func init() {
	// test-block reads until its context is cancelled.
	stages.Register("test-block", func(p *stages.Pipeline, _ stages.Args) {
		stages.ForEach(stages.Read[int](p, blockSource{}), func(int) error { return nil })
	}).Describe("blocks until cancelled")
	// test-panic panics on every record.
	stages.Register("test-panic", func(p *stages.Pipeline, _ stages.Args) {
		xs := stages.Map(stages.FromSlice(p, []int{1, 2, 3}), func(x int) int { panic("boom") })
		stages.ForEach(xs, func(int) error { return nil })
	}).Describe("fails")
}

type blockSource struct{}

func (blockSource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: -1, Bytes: -1, Desc: "forever"}}, nil
}

func (blockSource) Open(ctx context.Context, _ stages.Instance, _ stages.Split) (stages.Reader[int], error) {
	return blockReader{ctx}, nil
}

type blockReader struct{ ctx context.Context }

func (r blockReader) Read([]int) (int, error) {
	select {
	case started <- struct{}{}:
	default:
	}
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func (blockReader) Close() error { return nil }

// command runs a command line in this process.
func command(ctx context.Context, tty bool, args ...string) (code int, stdout, stderr string) {
	var out, errs bytes.Buffer
	c := &cli{name: "sluice", stdout: &out, stderr: &errs, tty: tty}
	code = c.main(ctx, args)
	return code, out.String(), errs.String()
}

// stageNames returns the names of a job's stages as its summary shows them.
func stageNames(t *testing.T, job string, args map[string]string) []string {
	t.Helper()
	j, ok := stages.Lookup(job)
	if !ok {
		t.Fatalf("job %q is not registered", job)
	}
	p, err := j.Build(args)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range p.Graph().Nodes {
		names = append(names, n.String())
	}
	return names
}

func TestRunSumByKey(t *testing.T) {
	for _, tty := range []bool{false, true} {
		code, out, errs := command(context.Background(), tty, "run", "sum-by-key",
			"--arg", "rows=200000", "--arg", "keys=100", "--parallelism", "2", "--plan")
		if code != 0 {
			t.Fatalf("tty %v: exit %d, stderr:\n%s", tty, code, errs)
		}
		for _, name := range stageNames(t, "sum-by-key", map[string]string{"rows": "200000", "keys": "100"}) {
			if !strings.Contains(out, name+" ") {
				t.Errorf("tty %v: the summary does not name stage %s:\n%s", tty, name, out)
			}
		}
		for _, want := range []string{
			"job \"sum-by-key\" max-parallelism 128\n", // the plan
			"v1 ×2 source \"generator\"",
			"STAGE ", "RECORDS/S", "BLOCKED ON CREDIT", "PEAK IN-FLIGHT",
			"source \"generator\"  v1      2            200000  ",
			"\nelapsed ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("tty %v: stdout lacks %q:\n%s", tty, want, out)
			}
		}
		if got := strings.Contains(errs, `v1 source "generator"`); got != tty {
			t.Errorf("tty %v: progress on stderr %v, want %v:\n%s", tty, got, tty, errs)
		}
	}
}

func TestRunQuiet(t *testing.T) {
	code, out, errs := command(context.Background(), true, "run", "--quiet", "wordcount")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	if !strings.Contains(out, `flatmap "words"`) || strings.Contains(out, "max-parallelism") {
		t.Errorf("want a summary without the plan, got:\n%s", out)
	}
}

func TestRunUnknownJob(t *testing.T) {
	code, out, errs := command(context.Background(), false, "run", "no-such-job")
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 2 and nothing", code, out)
	}
	for _, want := range []string{`unknown job "no-such-job"`, "sum-by-key", "wordcount"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

func TestRunBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // in stderr
	}{
		{[]string{"run", "sum-by-key", "--arg", "rows=many"}, []string{`rows="many"`, "integer"}},
		{[]string{"run", "sum-by-key", "--arg", "colour=red"}, []string{"no argument colour"}},
		{[]string{"plan", "sum-by-key", "--arg", "keys=0"}, []string{"Keys 0", "generator"}},
		{[]string{"run", "sum-by-key", "--arg", "rows"}, []string{"want key=value"}},
		{[]string{"run", "sum-by-key", "--arg", "rows=1", "--arg", "rows=2"}, []string{"rows is given twice"}},
		{[]string{"run", "sum-by-key", "rows=1"}, []string{"--arg rows=1"}},
		{[]string{"run", "sum-by-key", "--parallelism", "-1"}, []string{"--parallelism -1"}},
		{[]string{"run", "sum-by-key", "--parallelism", "1000"}, []string{"exceeds max parallelism"}},
		{[]string{"run", "--quiet"}, []string{"missing JOB"}},
		{[]string{"run", "sum-by-key", "--bogus"}, []string{"-bogus"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{nil, []string{"Usage:"}},
	} {
		code, _, errs := command(context.Background(), false, tc.args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2; stderr:\n%s", tc.args, code, errs)
		}
		for _, want := range tc.want {
			if !strings.Contains(errs, want) {
				t.Errorf("%q: stderr lacks %q:\n%s", tc.args, want, errs)
			}
		}
	}
}

func TestRunFailedJob(t *testing.T) {
	code, out, errs := command(context.Background(), false, "run", "test-panic")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errs)
	}
	if !strings.Contains(errs, "boom") || !strings.Contains(errs, "job failed") {
		t.Errorf("stderr does not explain the failure:\n%s", errs)
	}
	if !strings.Contains(out, "RESTARTS") {
		t.Errorf("no summary of the failed run:\n%s", out)
	}
}

// TestRunInterrupted cancels a running job, as Ctrl-C does, with and without
// progress bars.
func TestRunInterrupted(t *testing.T) {
	for _, tty := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		type result struct {
			code     int
			out, err string
		}
		done := make(chan result)
		go func() {
			code, out, errs := command(ctx, tty, "run", "test-block", "--parallelism", "1")
			done <- result{code, out, errs}
		}()
		<-started
		cancel()
		r := <-done
		if r.code != 1 || !strings.Contains(r.err, `job "test-block" interrupted`) {
			t.Errorf("tty %v: exit %d, stderr:\n%s", tty, r.code, r.err)
		}
		if !strings.Contains(r.out, "elapsed") {
			t.Errorf("tty %v: no summary of the interrupted run:\n%s", tty, r.out)
		}
	}
}

func TestPlan(t *testing.T) {
	code, out, errs := command(context.Background(), false, "plan", "sum-by-key", "--arg", "rows=1000000", "--parallelism", "3")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	j, _ := stages.Lookup("sum-by-key")
	p, err := j.Build(map[string]string{"rows": "1000000"})
	if err != nil {
		t.Fatal(err)
	}
	phys, err := Plan(context.Background(), p, Options{Parallelism: 3})
	if err != nil {
		t.Fatal(err)
	}
	if out != phys.String() {
		t.Errorf("got\n%s\nwant\n%s", out, phys)
	}
	if !strings.Contains(out, `v1 ×3 source "generator"`) || !strings.Contains(out, "1000000 records") {
		t.Errorf("unexpected plan:\n%s", out)
	}
}

func TestJobsAndHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"jobs"}, []string{"sum-by-key  ", "wordcount  ", "test-block", "blocks until cancelled"}},
		{[]string{"help"}, []string{"Usage:", "run JOB"}},
		{[]string{"help", "run"}, []string{"-arg key=value", "-parallelism", "-quiet", "-plan"}},
		{[]string{"help", "plan"}, []string{"-arg key=value"}},
		{[]string{"run", "-h"}, []string{"-quiet"}},
	} {
		code, out, errs := command(context.Background(), false, tc.args...)
		if code != 0 {
			t.Errorf("%q: exit %d, stderr:\n%s", tc.args, code, errs)
		}
		all := out + errs
		for _, want := range tc.want {
			if !strings.Contains(all, want) {
				t.Errorf("%q: output lacks %q:\n%s", tc.args, want, all)
			}
		}
	}
}

func TestArgsFlag(t *testing.T) {
	a := argsFlag{}
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{"rows=10", false},
		{"out=a=b", false}, // the value may hold '='
		{"empty=", false},
		{"rows=20", true},
		{"novalue", true},
		{"=x", true},
	} {
		if err := a.Set(tc.in); (err != nil) != tc.wantErr {
			t.Errorf("Set(%q) = %v, want error %v", tc.in, err, tc.wantErr)
		}
	}
	if got, want := a.String(), "empty= out=a=b rows=10"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{human(0), "0"},
		{human(999), "999"},
		{human(12_345), "12.3k"},
		{human(4_560_000), "4.56M"},
		{human(7.891e9), "7.89G"},
		{round(1234567 * time.Nanosecond).String(), "1.23ms"},
		{round(1234567891 * time.Nanosecond).String(), "1.235s"},
		{round(12345678912 * time.Nanosecond).String(), "12.3s"},
		{share(time.Second, 2*time.Second, 2), "1s (25%)"},
		{share(time.Second, 0, 2), "1s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestRateMeter(t *testing.T) {
	var m rateMeter
	for _, tc := range []struct {
		at      time.Duration
		records int64
		want    float64
	}{
		{0, 0, 0}, // no interval yet
		{500 * time.Millisecond, 500, 1000},
		{time.Second, 1000, 1000},
		{1500 * time.Millisecond, 4000, 3500}, // from t=0.5s: the window keeps about a second
		{1600 * time.Millisecond, 4000, 3500 / 1.1},
	} {
		if got := m.add(tc.at, tc.records); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("add(%v, %d) = %v, want %v", tc.at, tc.records, got, tc.want)
		}
	}
}
