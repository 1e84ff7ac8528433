package cli

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/cli/testdata/testjobs"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/examples"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// binary is the sluice command built from testdata/testmain (the bundled
// examples and the test jobs) for the tests that run it as a process, with
// buildFlags: those of this test binary, so that it builds from the cache.
var (
	binary     string
	buildFlags []string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The bundled jobs print to this process's stdout: not in these tests.
	examples.SetOutput(io.Discard)
	binary = filepath.Join(dir, "sluice")
	build := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", binary, "./testdata/testmain")...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the sluice command: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// command runs a command line in this process.
func command(ctx context.Context, tty bool, args ...string) (code int, stdout, stderr string) {
	var out, errs bytes.Buffer
	c := &invocation{name: "sluice", stdout: &out, stderr: &errs, tty: tty}
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
			if !strings.Contains(errs, name+" ") {
				t.Errorf("tty %v: the summary does not name stage %s:\n%s", tty, name, errs)
			}
		}
		for _, want := range []string{
			"job \"sum-by-key\" max-parallelism 128\n", // the plan
			"v1 ×2 source \"generator\"",
			"STAGE ", "RECORDS/S", "BLOCKED ON CREDIT", "PEAK IN-FLIGHT",
			"source \"generator\"  v1      2            200000  ",
			"\nelapsed ",
		} {
			if !strings.Contains(errs, want) {
				t.Errorf("tty %v: stderr lacks %q:\n%s", tty, want, errs)
			}
		}
		// The job prints its top ten itself (examples print to the process's
		// stdout, not this buffer): nothing of the runtime goes to stdout.
		if out != "" {
			t.Errorf("tty %v: stdout has the runtime's output:\n%s", tty, out)
		}
		if got := strings.Contains(errs, `v1 source "generator"`); got != tty {
			t.Errorf("tty %v: progress on stderr %v, want %v:\n%s", tty, got, tty, errs)
		}
	}
}

func TestRunQuiet(t *testing.T) {
	code, out, errs := command(context.Background(), true, "run", "--quiet", "wordcount")
	if code != 0 || errs != "" || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errs)
	}
}

func TestRunUnknownJob(t *testing.T) {
	code, out, errs := command(context.Background(), false, "run", "no-such-job")
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 2 and nothing", code, out)
	}
	for _, want := range []string{`sluice: unknown job "no-such-job"`, "sum-by-key", "wordcount"} {
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
		{[]string{"run", "sum-by-key", "--arg", "rows"}, []string{"want key=value", "(run 'sluice help run')"}},
		{[]string{"run", "sum-by-key", "--arg", "rows=1", "--arg", "rows=2"}, []string{"rows is given twice"}},
		{[]string{"run", "sum-by-key", "rows=1"}, []string{"--arg rows=1"}},
		{[]string{"run", "sum-by-key", "--arg", "out="}, []string{"--arg out= is empty"}},
		{[]string{"run", "sum-by-key", "--parallelism", "-1"}, []string{"--parallelism -1"}},
		{[]string{"run", "sum-by-key", "--parallelism", "1000"}, []string{"exceeds max parallelism 128"}},
		{[]string{"run", "sum-by-key", "--parallelism", "20", "--max-parallelism", "16"}, []string{"exceeds max parallelism 16"}},
		{[]string{"plan", "sum-by-key", "--max-parallelism", "0"}, []string{"--max-parallelism 0"}},
		{[]string{"run", "sum-by-key", "--stuck-after", "-1s"}, []string{"--stuck-after -1s"}},
		{[]string{"run", "--quiet"}, []string{"missing JOB"}},
		{[]string{"run", "sum-by-key", "--bogus"}, []string{"sluice: run: flag provided but not defined: -bogus (run 'sluice help run')\n"}},
		{[]string{"frobnicate"}, []string{`sluice: unknown command "frobnicate" (run 'sluice help')`}},
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
		for _, line := range strings.SplitAfter(strings.TrimSuffix(errs, "\n"), "\n") {
			if !strings.HasPrefix(line, "sluice: ") {
				t.Errorf("%q: an error line without the prefix: %q", tc.args, line)
			}
		}
	}
	if code, _, errs := command(context.Background(), false); code != 2 || !strings.Contains(errs, "Usage:") {
		t.Errorf("no command: exit %d, stderr:\n%s", code, errs)
	}
}

func TestRunFailedJob(t *testing.T) {
	code, out, errs := command(context.Background(), false, "run", "test-panic")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errs)
	}
	if !strings.Contains(errs, "sluice: job \"test-panic\": job failed:") || !strings.Contains(errs, "boom") {
		t.Errorf("stderr does not explain the failure:\n%s", errs)
	}
	if !strings.Contains(errs, "RESTARTS") || out != "" {
		t.Errorf("want a summary of the failed run on stderr and nothing on stdout; stdout %q, stderr:\n%s", out, errs)
	}
}

// TestRunInterrupted stops a running job with a signal, with and without
// progress bars.
func TestRunInterrupted(t *testing.T) {
	for _, tty := range []bool{false, true} {
		sigs := make(chan os.Signal, 1)
		var out, errs bytes.Buffer
		c := &invocation{name: "sluice", stdout: &out, stderr: &errs, tty: tty, signals: sigs,
			exit: func(code int) { t.Errorf("tty %v: exit(%d) after one signal", tty, code) }}
		done := make(chan int)
		go func() { done <- c.main(context.Background(), []string{"run", "test-block", "--parallelism", "1"}) }()
		<-testjobs.Started
		sigs <- os.Interrupt
		code := <-done
		if code != 130 || !strings.Contains(errs.String(), `sluice: job "test-block" interrupted by SIGINT`) {
			t.Errorf("tty %v: exit %d, stderr:\n%s", tty, code, errs.String())
		}
		if !strings.Contains(errs.String(), "elapsed") || out.Len() != 0 {
			t.Errorf("tty %v: want a summary of the interrupted run on stderr only; stdout %q, stderr:\n%s", tty, out.String(), errs.String())
		}
	}
}

// TestRunSeed: --seed sets the job's seed, which the summary prints with
// the run ID derived from it; without it the summary prints the seed chosen.
func TestRunSeed(t *testing.T) {
	seedLine := regexp.MustCompile(`\nseed (\d+) \(run (\S+)\)\n`)
	summary := func(args ...string) (seed, run string) {
		t.Helper()
		code, _, errs := command(context.Background(), false, append([]string{"run", "wordcount"}, args...)...)
		m := seedLine.FindStringSubmatch(errs)
		if code != 0 || m == nil {
			t.Fatalf("%q: exit %d, no seed line in stderr:\n%s", args, code, errs)
		}
		return m[1], m[2]
	}
	seed, run := summary("--seed", "42")
	if seed != "42" {
		t.Errorf("--seed 42: the summary prints seed %s", seed)
	}
	if _, again := summary("--seed", "42"); again != run {
		t.Errorf("--seed 42 twice: runs %s and %s, want one ID", run, again)
	}
	if seed, other := summary(); seed == "0" || other == run {
		t.Errorf("no --seed: seed %s, run %s; want a seed chosen and another run ID than %s", seed, other, run)
	}
	if code, _, errs := command(context.Background(), false, "run", "wordcount", "--seed", "-1"); code != 2 ||
		!strings.Contains(errs, `invalid value "-1" for flag -seed`) {
		t.Errorf("--seed -1: exit %d, stderr:\n%s", code, errs)
	}
}

func TestPlan(t *testing.T) {
	code, out, errs := command(context.Background(), false, "plan", "sum-by-key", "--arg", "rows=1000000", "--parallelism", "3",
		"--max-parallelism", "64")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	j, _ := stages.Lookup("sum-by-key")
	p, err := j.Build(map[string]string{"rows": "1000000"})
	if err != nil {
		t.Fatal(err)
	}
	phys, err := sluice.Plan(context.Background(), p, sluice.Options{Parallelism: 3, MaxParallelism: 64})
	if err != nil {
		t.Fatal(err)
	}
	if out != phys.String() {
		t.Errorf("got\n%s\nwant\n%s", out, phys)
	}
	if !strings.Contains(out, `v1 ×3 source "generator"`) || !strings.Contains(out, "1000000 records") ||
		!strings.Contains(out, "max-parallelism 64\n") {
		t.Errorf("unexpected plan:\n%s", out)
	}
}

func TestJobsAndHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"jobs"}, []string{"sum-by-key  ", "wordcount  ", "test-block", "reads until cancelled"}},
		{[]string{"help"}, []string{"Usage:", "run JOB", "Exit status:", "130  interrupted by SIGINT", "143 by SIGTERM"}},
		{[]string{"help", "run"}, []string{"-arg key=value", "-parallelism", "-max-parallelism", "-quiet", "-plan", "-stuck-after", "-seed"}},
		{[]string{"help", "plan"}, []string{"-arg key=value", "-max-parallelism"}},
		{[]string{"run", "-h"}, []string{"-quiet"}},
	} {
		code, out, errs := command(context.Background(), false, tc.args...)
		if code != 0 || errs != "" {
			t.Errorf("%q: exit %d, stderr:\n%s", tc.args, code, errs)
		}
		for _, want := range tc.want {
			if !strings.Contains(out, want) {
				t.Errorf("%q: stdout lacks %q:\n%s", tc.args, want, out)
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
		{roughly(12345 * time.Millisecond).String(), "12s"},
		{roughly(1234 * time.Millisecond).String(), "1.2s"},
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

// The tests below run the command as a process.

// syncBuffer is a buffer written by a process and read by a test that waits
// for what it holds.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced at every write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the buffer holds want, failing the test at the
// deadline.
func (s *syncBuffer) waitFor(t *testing.T, what, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		has, changed := strings.Contains(s.b.String(), want), s.changed
		s.mu.Unlock()
		if has {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: no %q within %v:\n%s", what, want, timeout, s.String())
		}
	}
}

// process is a run of the sluice command.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	exited         chan struct{}
}

func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, args...), stdout: newSyncBuffer(), stderr: newSyncBuffer(), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	// A -race binary sleeps a second before it exits, unless told not to;
	// a race it finds fails the test with exit status 66.
	p.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// wait waits for the process to exit and returns its status; past the
// deadline it kills it and fails the test.
func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
		t.Fatalf("%q did not exit within %v; stderr:\n%s", p.cmd.Args, timeout, p.stderr.String())
		return -1
	}
}

// waitForFiles waits, 60 s at most, until at least n files match
// pattern while the process runs; what says what they mean, for errors.
func (p *process) waitForFiles(t *testing.T, pattern string, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m, _ := filepath.Glob(pattern); len(m) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 60 s; stderr:\n%s", what, p.stderr.String())
		}
		select {
		case <-p.exited:
			t.Fatalf("the job ended before %s; stderr:\n%s", what, p.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (p *process) signal(t *testing.T, s os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

// errorLines checks that every line of stderr is an error or warning line
// of the command's (with --quiet there is nothing else).
func errorLines(t *testing.T, args []string, stderr string) {
	t.Helper()
	for _, line := range strings.SplitAfter(strings.TrimSuffix(stderr, "\n"), "\n") {
		if line != "" && !strings.HasPrefix(line, "sluice: ") {
			t.Errorf("%q: a stderr line without the prefix: %q", args, line)
		}
	}
}

// TestCommandExitStatus runs the command as a process: its status, its
// standard output holding only what the job printed, and its standard error
// the rest.
func TestCommandExitStatus(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string // contained; "" for empty
		stderr     []string
		onlyErrors bool // every stderr line is sluice's
	}{
		{[]string{"run", "wordcount"}, 0, "distinct words; the 10 with the greatest count:", []string{"STAGE ", "BUSY", "\nelapsed "}, false},
		{[]string{"run", "--quiet", "wordcount"}, 0, "distinct words", nil, true},
		{[]string{"run", "--quiet", "test-args", "--arg", "out=x"}, 0, "out: x\n", nil, true},
		{[]string{"run", "--quiet", "test-panic"}, 1, "", []string{`sluice: job "test-panic": job failed:`, "boom"}, true},
		// A data error is a failure of the job, found while listing as while reading.
		{[]string{"run", "--quiet", "wordcount", "--arg", "in=/no/such/file"}, 1, "", []string{"/no/such/file", "listing splits"}, true},
		{[]string{"run", "test-late", "--quiet"}, 0, "",
			[]string{`sluice: warning: stage window "per-minute" (v2, testjobs/testjobs.go:`, "dropped 100 records as late"}, true},
		{[]string{"run", "test-dead-letters", "--quiet"}, 0, "",
			[]string{`sluice: warning: stage trymap "evens"`, "set aside 5 records on side output 1 (stages.DeadLetter)"}, true},
		{[]string{"run", "sum-by-key", "--bogus"}, 2, "", []string{"sluice: run: flag provided but not defined: -bogus (run 'sluice help run')\n"}, true},
		{[]string{"run", "--parallelism", "many", "wordcount"}, 2, "", []string{`invalid value "many" for flag -parallelism`, "(run 'sluice help run')"}, true},
		{[]string{"run", "test-args", "--arg", "out="}, 2, "", []string{"--arg out= is empty"}, true},
		{[]string{"run", "no-such-job"}, 2, "", []string{`unknown job "no-such-job"`}, true},
		// A connector's configuration error found as the job starts is a usage error.
		{[]string{"run", "--quiet", "sum-by-key", "--arg", "keys=0"}, 2, "", []string{"generator: invalid configuration: Keys 0"}, true},
		{[]string{"plan", "sum-by-key", "--max-parallelism", "16", "--parallelism", "2"}, 0, "job \"sum-by-key\" max-parallelism 16\n", nil, true},
		{[]string{"plan", "sum-by-key", "--max-parallelism", "40000"}, 2, "", []string{"--max-parallelism 40000"}, true},
		{[]string{"help"}, 0, "Exit status:", nil, true},
		{[]string{"frobnicate"}, 2, "", []string{`unknown command "frobnicate"`}, true},
	} {
		p := startProcess(t, tc.args...)
		code := p.wait(t, 30*time.Second)
		stdout, stderr := p.stdout.String(), p.stderr.String()
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr:\n%s", tc.args, code, tc.code, stderr)
		}
		if tc.stdout == "" && stdout != "" || !strings.Contains(stdout, tc.stdout) {
			t.Errorf("%q: stdout %q, want it to hold %q", tc.args, stdout, tc.stdout)
		}
		for _, want := range tc.stderr {
			if !strings.Contains(stderr, want) {
				t.Errorf("%q: stderr lacks %q:\n%s", tc.args, want, stderr)
			}
		}
		if tc.onlyErrors {
			errorLines(t, tc.args, stderr)
		}
		if strings.Contains(stdout, "STAGE") || strings.Contains(stdout, "elapsed") {
			t.Errorf("%q: the summary is on stdout:\n%s", tc.args, stdout)
		}
	}
}

// TestCommandTruncatedParquet: a truncated Parquet file is a data error,
// exit status 1, like any failure of the job.
func TestCommandTruncatedParquet(t *testing.T) {
	dir := t.TempDir()
	gen := startProcess(t, "run", "--quiet", "gen-orders", "--arg", "out="+dir, "--arg", "orders=5000", "--arg", "users=100")
	if code := gen.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("gen-orders: exit %d:\n%s", code, gen.stderr.String())
	}
	files, err := filepath.Glob(filepath.Join(dir, "orders", "*.parquet"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no orders written: %v", err)
	}
	fi, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(files[0], fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--quiet", "orders-per-user", "--arg", "orders=" + filepath.Join(dir, "orders"), "--arg", "out=" + filepath.Join(dir, "out")}
	p := startProcess(t, args...)
	if code := p.wait(t, 30*time.Second); code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), filepath.Base(files[0])) {
		t.Errorf("stderr does not name the file %s:\n%s", files[0], p.stderr.String())
	}
	errorLines(t, args, p.stderr.String())
}

// TestCommandSignals: SIGINT and SIGTERM stop a running job with 130 and
// 143; the summary and the reason go to stderr, and stdout holds only what
// the job printed.
func TestCommandSignals(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		name string
		code int
	}{{syscall.SIGINT, "SIGINT", 130}, {syscall.SIGTERM, "SIGTERM", 143}} {
		p := startProcess(t, "run", "test-endless")
		p.stdout.waitFor(t, "the job to run", "running\n", 30*time.Second)
		p.signal(t, tc.sig)
		if code := p.wait(t, 30*time.Second); code != tc.code {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", tc.name, code, tc.code, p.stderr.String())
		}
		stderr := p.stderr.String()
		for _, want := range []string{"\nelapsed ", `sluice: job "test-endless" interrupted by ` + tc.name + "\n"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, want, stderr)
			}
		}
		if got := p.stdout.String(); got != "running\n" {
			t.Errorf("%s: stdout %q, want only the job's line", tc.name, got)
		}
	}
}

// TestCommandStuckUserFunction: a user function that never returns is
// reported with its stage and instance; the first Ctrl-C says what the stop
// waits for, and the second exits at once.
func TestCommandStuckUserFunction(t *testing.T) {
	p := startProcess(t, "run", "test-stuck", "--stuck-after", "200ms")
	p.stderr.waitFor(t, "the stuck report", "has been in a user function for", 30*time.Second)
	stuck := `sluice: warning: stage source → map "wait-forever" → foreach (v1) instance 1/1 has been in a user function for`
	if !strings.Contains(p.stderr.String(), stuck) {
		t.Errorf("stderr lacks %q:\n%s", stuck, p.stderr.String())
	}
	p.signal(t, syscall.SIGINT)
	p.stderr.waitFor(t, "the stop report", "press Ctrl-C again to exit now", 10*time.Second)
	stopping := `sluice: stopping: waiting for stage source → map "wait-forever" → foreach (v1) instance 1/1, blocked in a user function for`
	if !strings.Contains(p.stderr.String(), stopping) {
		t.Errorf("stderr lacks %q:\n%s", stopping, p.stderr.String())
	}
	start := time.Now()
	p.signal(t, syscall.SIGINT)
	if code := p.wait(t, 10*time.Second); code != 130 {
		t.Errorf("exit %d, want 130; stderr:\n%s", code, p.stderr.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the second Ctrl-C took %v to exit", d)
	}
	if !strings.Contains(p.stderr.String(), "sluice: SIGINT again: exiting now\n") {
		t.Errorf("stderr does not say why it exited:\n%s", p.stderr.String())
	}
}

// TestCommandCheckpointsTorn: a real sluice run checkpointing every 20 ms
// is killed with SIGKILL, likely mid-upload; then a chunk of the newest
// checkpoint gets a flipped byte and the next one loses its manifest.
// `sluice checkpoints` picks the newest complete, valid one each time and
// says why it skipped every newer one; a torn one is never picked.
func TestCommandCheckpointsTorn(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck")
	p := startProcess(t, "run", "events-windows", "--quiet", "--arg", "n-events=200000000", "--arg", "out="+filepath.Join(dir, "out"),
		"--checkpoints", ck, "--checkpoint-every", "20ms")
	manifests := func() []string {
		m, _ := filepath.Glob(filepath.Join(ck, "chk-*", "MANIFEST"))
		return m
	}
	p.waitForFiles(t, filepath.Join(ck, "chk-*", "MANIFEST"), 3, "3 checkpoints")
	p.signal(t, syscall.SIGKILL)
	p.wait(t, 30*time.Second)

	restores := func() (int, string) {
		t.Helper()
		code, out, errs := command(context.Background(), false, "checkpoints", ck)
		if code != 0 {
			t.Fatalf("checkpoints: exit %d: %s", code, errs)
		}
		var id int
		if i := strings.Index(out, "a recovery restores checkpoint "); i < 0 {
			t.Fatalf("checkpoints picked none:\n%s", out)
		} else {
			fmt.Sscanf(out[i:], "a recovery restores checkpoint %d", &id)
		}
		return id, out
	}
	complete := func() []int {
		var ids []int
		for _, m := range manifests() {
			var id int
			fmt.Sscanf(filepath.Base(filepath.Dir(m)), "chk-%d", &id)
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return ids
	}
	ids := complete()
	if len(ids) < 3 {
		t.Fatalf("%d complete checkpoints after the kill, want the 3 retained", len(ids))
	}
	newest := ids[len(ids)-1]
	id, out := restores()
	if id != newest {
		t.Fatalf("after SIGKILL: restores %d, want the newest complete one, %d:\n%s", id, newest, out)
	}
	dirs, _ := filepath.Glob(filepath.Join(ck, "chk-*"))
	for _, d := range dirs {
		var n int
		fmt.Sscanf(filepath.Base(d), "chk-%d", &n)
		// A directory with a chunk but no manifest is torn (one that holds
		// nothing yet is no checkpoint to the store).
		chunks, _ := filepath.Glob(filepath.Join(d, "*", "[^.]*")) // not .NAME.*.tmp: a put the kill cut off
		if _, err := os.Stat(filepath.Join(d, "MANIFEST")); err != nil && n > newest && len(chunks) > 0 &&
			!strings.Contains(out, fmt.Sprintf("skipped checkpoint %d: no manifest", n)) {
			t.Errorf("torn checkpoint %d (%q) is not reported as skipped:\n%s", n, chunks, out)
		}
	}
	t.Logf("after SIGKILL:\n%s", out)
	code, shown, errs := command(context.Background(), false, "checkpoints", ck, fmt.Sprint(newest))
	if code != 0 || !strings.Contains(shown, fmt.Sprintf("checkpoint %d of job \"events-windows\"", newest)) ||
		!strings.Contains(shown, "SOURCE POSITIONS") || !strings.Contains(shown, "records read") {
		t.Errorf("checkpoints %s %d: exit %d:\n%s%s", ck, newest, code, shown, errs)
	}

	// A flipped byte in a chunk of the newest; the next loses its manifest.
	chunks, _ := filepath.Glob(filepath.Join(ck, fmt.Sprintf("chk-%020d", newest), "*", "*"))
	if len(chunks) == 0 {
		t.Fatalf("checkpoint %d has no chunk", newest)
	}
	data, err := os.ReadFile(chunks[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(chunks[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	second := ids[len(ids)-2]
	if err := os.Remove(filepath.Join(ck, fmt.Sprintf("chk-%020d", second), "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	id, out = restores()
	if want := ids[len(ids)-3]; id != want {
		t.Fatalf("restores %d, want %d (the newest is corrupt, the next has no manifest):\n%s", id, want, out)
	}
	for _, want := range []string{fmt.Sprintf("skipped checkpoint %d: chunk ", newest), "it is corrupt",
		fmt.Sprintf("skipped checkpoint %d: no manifest", second)} {
		if !strings.Contains(out, want) {
			t.Errorf("checkpoints does not say %q:\n%s", want, out)
		}
	}
}

// TestCommandRestoreAfterKill: a real sluice run of W3 checkpointing every
// 20 ms is killed with SIGKILL; run again with --restore latest it goes
// on from the newest complete checkpoint — its sink taking back what the
// killed process had staged — and writes exactly the rows of a run that
// was never interrupted, at parallelism 1 where the killed run had 2. A
// restore into a plan of other key groups is refused, naming both.
func TestCommandRestoreAfterKill(t *testing.T) {
	dir := t.TempDir()
	ck, out, clean := filepath.Join(dir, "ck"), filepath.Join(dir, "out"), filepath.Join(dir, "clean")
	args := []string{"run", "events-windows", "--quiet", "--parallelism", "2", "--arg", "n-events=3000000", "--checkpoints", ck, "--checkpoint-every", "20ms"}
	p := startProcess(t, append(args, "--arg", "out="+out)...)
	p.waitForFiles(t, filepath.Join(ck, "chk-*", "MANIFEST"), 3, "3 checkpoints")
	p.signal(t, syscall.SIGKILL)
	p.wait(t, 30*time.Second)

	code, _, stderr := command(context.Background(), false, "run", "events-windows", "--parallelism", "3", "--arg", "n-events=3000000",
		"--arg", "out="+out, "--checkpoints", ck, "--restore", "latest", "--max-parallelism", "64")
	if code != exitUsage || !strings.Contains(stderr, "taken with 128 key groups (max parallelism), the plan has 64") {
		t.Fatalf("restore with other key groups: exit %d, want %d naming both:\n%s", code, exitUsage, stderr)
	}
	// Restored at parallelism 1, not the checkpoint's 2: its instance takes
	// over what the killed run's second instance had staged.
	restore := append(slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--quiet" }), "--arg", "out="+out, "--restore", "latest")
	restore[slices.Index(restore, "--parallelism")+1] = "1"
	code, _, stderr = command(context.Background(), false, restore...)
	if code != 0 {
		t.Fatalf("restore: exit %d:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "recovery: attempt 2 from checkpoint ") || !strings.Contains(stderr, "restored at start") {
		t.Errorf("the summary does not say what was restored:\n%s", stderr)
	}
	if code, _, stderr := command(context.Background(), false, "run", "events-windows", "--quiet", "--parallelism", "2",
		"--arg", "n-events=3000000", "--arg", "out="+clean); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	sameUserWindows(t, out, clean)
}

// sameUserWindows checks that the W3 outputs got and want hold the same
// rows, amounts in cents (a float sum depends on the order of its terms).
func sameUserWindows(t *testing.T, got, want string) {
	t.Helper()
	g, w := userWindows(t, got), userWindows(t, want)
	if len(g) != len(w) || len(w) == 0 {
		t.Fatalf("%s holds %d rows, %s %d", got, len(g), want, len(w))
	}
	for i := range w {
		a, b := g[i], w[i]
		if a.UserID != b.UserID || a.WindowStart != b.WindowStart || a.Cnt != b.Cnt || math.Round(a.SumAmount*100) != math.Round(b.SumAmount*100) {
			t.Fatalf("row %d: %+v in %s, %+v in %s", i, a, got, b, want)
		}
	}
}

// userWindows reads W3's output, sorted.
func userWindows(t *testing.T, dir string) []examples.UserWindow {
	t.Helper()
	p := stages.NewPipeline("read")
	c := stages.Collect(parquetio.Read[examples.UserWindow](p, dir))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{}); err != nil {
		t.Fatal(err)
	}
	rows := c.Values()
	slices.SortFunc(rows, func(a, b examples.UserWindow) int {
		if a.UserID != b.UserID {
			return cmp.Compare(a.UserID, b.UserID)
		}
		return cmp.Compare(a.WindowStart, b.WindowStart)
	})
	return rows
}

// TestCommandStopAtCheckpoint: SIGTERM to a real sluice run that
// checkpoints stops it at a final checkpoint with status 75, its staged
// output kept; run again with --restore latest, at parallelism 3, it
// writes exactly the rows of a run that was never stopped.
func TestCommandStopAtCheckpoint(t *testing.T) {
	dir := t.TempDir()
	ck, out, clean := filepath.Join(dir, "ck"), filepath.Join(dir, "out"), filepath.Join(dir, "clean")
	args := []string{"run", "events-windows", "--parallelism", "2", "--arg", "n-events=5000000", "--arg", "out=" + out,
		"--checkpoints", ck, "--checkpoint-every", "1m"}
	p := startProcess(t, args...)
	p.waitForFiles(t, filepath.Join(out, "_sluice", "lease", "*"), 1, "the output's lease (its sinks open)")
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 60*time.Second); code != exitStopped {
		t.Fatalf("SIGTERM: exit %d, want %d; stderr:\n%s", code, exitStopped, p.stderr.String())
	}
	if s := p.stderr.String(); !strings.Contains(s, "stopped at checkpoint 1: run it again with --restore latest") {
		t.Errorf("stderr does not say where it stopped:\n%s", s)
	}
	// Restored at parallelism 3, not the stopped run's 2.
	restore := append(slices.Clone(args), "--quiet", "--restore", "latest")
	restore[slices.Index(restore, "--parallelism")+1] = "3"
	if code, _, stderr := command(context.Background(), false, restore...); code != 0 {
		t.Fatalf("restore: exit %d:\n%s", code, stderr)
	}
	if code, _, stderr := command(context.Background(), false, "run", "events-windows", "--quiet", "--parallelism", "2",
		"--arg", "n-events=5000000", "--arg", "out="+clean); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	sameUserWindows(t, out, clean)
}

// TestCommandSavepoint: 'sluice savepoint take' asks a real sluice run for
// a savepoint through the store and waits for it; list and show name it;
// the run is killed with SIGKILL, and restored from the savepoint by name
// at parallelism 3 it writes exactly the rows of a run never interrupted.
// A name that could be an ID, and a store no job writes to, are errors.
func TestCommandSavepoint(t *testing.T) {
	dir := t.TempDir()
	ck, out, clean := filepath.Join(dir, "ck"), filepath.Join(dir, "out"), filepath.Join(dir, "clean")
	events := "n-events=20000000" // about 3 s: the job polls for requests every 250 ms
	if testenv.Race() {
		events = "n-events=2000000"
	}
	args := []string{"run", "events-windows", "--quiet", "--parallelism", "2", "--arg", events, "--arg", "out=" + out,
		"--checkpoints", ck, "--checkpoint-every", "1h"}
	p := startProcess(t, args...)
	p.waitForFiles(t, filepath.Join(out, "_sluice", "lease", "*"), 1, "the output's lease (its sinks open)")
	code, stdout, stderr := command(context.Background(), false, "savepoint", "take", "--timeout", "30s", ck, "before-upgrade")
	if code != 0 || !strings.Contains(stdout, `savepoint "before-upgrade": checkpoint `) {
		t.Fatalf("savepoint take: exit %d:\n%s%s", code, stdout, stderr)
	}
	p.signal(t, syscall.SIGKILL)
	p.wait(t, 30*time.Second)
	if code, stdout, _ := command(context.Background(), false, "savepoint", "show", ck, "before-upgrade"); code != 0 ||
		!strings.Contains(stdout, `savepoint "before-upgrade", kept until deleted`) || !strings.Contains(stdout, "graph ") ||
		!strings.Contains(stdout, "SOURCE POSITIONS") {
		t.Errorf("savepoint show: exit %d:\n%s", code, stdout)
	}
	restore := append(slices.Clone(args), "--restore", "before-upgrade")
	restore[slices.Index(restore, "--parallelism")+1] = "3"
	if code, _, stderr := command(context.Background(), false, restore...); code != 0 {
		t.Fatalf("restore from the savepoint: exit %d:\n%s", code, stderr)
	}
	if code, _, stderr := command(context.Background(), false, "run", "events-windows", "--quiet", "--parallelism", "2",
		"--arg", events, "--arg", "out="+clean); code != 0 {
		t.Fatalf("clean run: exit %d:\n%s", code, stderr)
	}
	sameUserWindows(t, out, clean)
	// One savepoint: the restored run took none (the request was gone).
	if code, stdout, _ := command(context.Background(), false, "savepoint", "list", ck); code != 0 ||
		strings.Count(stdout, "before-upgrade") != 1 || !strings.Contains(stdout, "events-windows") {
		t.Errorf("savepoint list: exit %d, want one savepoint:\n%s", code, stdout)
	}

	if code, _, stderr := command(context.Background(), false, "savepoint", "take", ck, "42"); code != exitUsage || !strings.Contains(stderr, "not all digits") {
		t.Errorf("savepoint take of name 42: exit %d, want %d:\n%s", code, exitUsage, stderr)
	}
	if code, _, stderr := command(context.Background(), false, "savepoint", "take", "--timeout", "200ms", ck, "nobody"); code != exitFailed ||
		!strings.Contains(stderr, "no job took it within 200ms") {
		t.Errorf("savepoint take with no job: exit %d, want %d:\n%s", code, exitFailed, stderr)
	}
	if code, stdout, _ := command(context.Background(), false, "savepoint", "delete", ck, "before-upgrade"); code != 0 {
		t.Errorf("savepoint delete: exit %d:\n%s", code, stdout)
	}
	if code, _, _ := command(context.Background(), false, "savepoint", "show", ck, "before-upgrade"); code != exitUsage {
		t.Errorf("savepoint show after delete: exit %d, want %d", code, exitUsage)
	}
}
