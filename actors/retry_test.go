package actors_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/stages"
)

// errFlaky is the transient error of a flakySource.
var errFlaky = errors.New("connection reset by peer")

// flakySource is a source of [0, n) in one split whose opens and reads
// fail with errFlaky when its script says so. It declares errFlaky
// transient; its readers declare it too (and so resume) when resumable.
type flakySource struct {
	n         int64
	resumable bool
	mu        sync.Mutex
	// failOpen fails that many opens; failRead[i] fails the read after i
	// records of an open have gone out, once per entry.
	failOpen int
	failRead []int64
	opens    atomic.Int64
	reads    atomic.Int64
}

func (s *flakySource) Transient(err error) bool { return errors.Is(err, errFlaky) }

func (s *flakySource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: s.n, Bytes: -1, Desc: "flaky[0,n)"}}, nil
}

func (s *flakySource) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int64], error) {
	s.opens.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failOpen > 0 {
		s.failOpen--
		return nil, fmt.Errorf("opening: %w", errFlaky)
	}
	r := &flakyReader{s: s}
	if s.resumable {
		return &resumableReader{r}, nil
	}
	return r, nil
}

type flakyReader struct {
	s    *flakySource
	next int64
}

func (r *flakyReader) Read(buf []int64) (int, error) {
	r.s.reads.Add(1)
	r.s.mu.Lock()
	if i := slices.Index(r.s.failRead, r.next); i >= 0 {
		r.s.failRead = slices.Delete(r.s.failRead, i, i+1)
		r.s.mu.Unlock()
		return 0, fmt.Errorf("reading at %d: %w", r.next, errFlaky)
	}
	r.s.mu.Unlock()
	n := int(min(int64(len(buf)), 1000, r.s.n-r.next)) // 1000 a read: failures can fall between reads
	for i := range n {
		buf[i] = r.next + int64(i)
	}
	r.next += int64(n)
	if r.next == r.s.n {
		return n, io.EOF
	}
	return n, nil
}

func (r *flakyReader) Close() error { return nil }

// resumableReader is a flakyReader that says it can go on after errFlaky.
type resumableReader struct{ *flakyReader }

func (r *resumableReader) Transient(err error) bool { return errors.Is(err, errFlaky) }

func fastRetries() *actors.Config {
	cfg := actors.DefaultConfig()
	cfg.Retry = actors.RetryPolicy{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	return &cfg
}

func runFlaky(t *testing.T, src *flakySource, cfg *actors.Config) ([]int64, *actors.Result, error) {
	t.Helper()
	p := stages.NewPipeline("flaky")
	out := stages.Collect(stages.Read[int64](p, src, stages.Name("flaky")))
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 1, Runtime: cfg})
	got := out.Values()
	slices.Sort(got)
	return got, res, err
}

func wantAll(t *testing.T, got []int64, n int64) {
	t.Helper()
	if int64(len(got)) != n {
		t.Fatalf("%d records, want %d", len(got), n)
	}
	for i, x := range got {
		if x != int64(i) {
			t.Fatalf("record %d is %d: lost or repeated records", i, x)
		}
	}
}

// TestTransientErrorsBeforeAnyRecordReopenTheSplit: a split that fails to
// open, then fails its first read, is opened again each time and read
// once in full.
func TestTransientErrorsBeforeAnyRecordReopenTheSplit(t *testing.T) {
	src := &flakySource{n: 5000, failOpen: 1, failRead: []int64{0}}
	got, res, err := runFlaky(t, src, fastRetries())
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, got, 5000)
	if o := src.opens.Load(); o != 3 {
		t.Errorf("%d opens, want 3: a failed open, an open whose first read failed, a good one", o)
	}
	if r := res.Vertices[0].Retries; r != 2 {
		t.Errorf("Retries = %d, want 2", r)
	}
}

// TestResumableReaderIsReadAgainInPlace: a reader that declares its errors
// transient goes on where it stopped: one open, every record once.
func TestResumableReaderIsReadAgainInPlace(t *testing.T) {
	src := &flakySource{n: 5000, resumable: true, failRead: []int64{2000, 2000, 4000}}
	got, res, err := runFlaky(t, src, fastRetries())
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, got, 5000)
	if o := src.opens.Load(); o != 1 {
		t.Errorf("%d opens, want 1", o)
	}
	if r := res.Vertices[0].Retries; r != 3 {
		t.Errorf("Retries = %d, want 3", r)
	}
}

// TestTransientErrorMidSplitFailsWhenTheReaderCannotResume: the split has
// emitted records and its reader cannot resume; opening it again would
// repeat them, so the job fails and says so, naming the source and split.
func TestTransientErrorMidSplitFailsWhenTheReaderCannotResume(t *testing.T) {
	src := &flakySource{n: 5000, failRead: []int64{2000}}
	_, _, err := runFlaky(t, src, fastRetries())
	if !errors.Is(err, errFlaky) {
		t.Fatalf("err = %v, want errFlaky", err)
	}
	for _, want := range []string{`source "flaky"`, "split flaky[0,n)", "after 2000 of its records", "cannot resume mid-split", "connection reset"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if o := src.opens.Load(); o != 1 {
		t.Errorf("%d opens, want 1", o)
	}
}

// TestTransientErrorsGiveUpAfterTheAttempts: a split that keeps failing
// fails the job after the policy's attempts, naming the source, the split
// and the error.
func TestTransientErrorsGiveUpAfterTheAttempts(t *testing.T) {
	src := &flakySource{n: 5000, failOpen: 100}
	_, _, err := runFlaky(t, src, fastRetries())
	if !errors.Is(err, errFlaky) {
		t.Fatalf("err = %v, want errFlaky", err)
	}
	for _, want := range []string{`source "flaky"`, "opening split flaky[0,n)", "giving up after 4 transient errors in a row", "connection reset"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if o := src.opens.Load(); o != 4 {
		t.Errorf("%d opens, want 4: the first and 3 retries", o)
	}
}

// TestOtherSourceErrorsAreNotRetried: an error the source does not declare
// transient fails the job at once.
func TestOtherSourceErrorsAreNotRetried(t *testing.T) {
	p := stages.NewPipeline("broken")
	stages.Collect(stages.Read[int64](p, brokenSource{}))
	_, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 1, Runtime: fastRetries()})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || strings.Contains(err.Error(), "giving up") {
		t.Errorf("err = %v, want the source's error, not retried", err)
	}
}

type brokenSource struct{}

func (brokenSource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: -1, Bytes: -1, Desc: "broken"}}, nil
}

func (brokenSource) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int64], error) {
	return nil, errors.New("disk on fire")
}

func (brokenSource) Transient(error) bool { return false }

// TestRetryBackoffRunsOnTheJobClock: the retry waits its backoff on the
// injected clock: the split is opened again only once manual time has
// passed the backoff.
func TestRetryBackoffRunsOnTheJobClock(t *testing.T) {
	clk := clock.NewManual(time.Unix(1000, 0))
	cfg := fastRetries()
	cfg.Clock = clk
	cfg.Retry.Backoff, cfg.Retry.MaxBackoff = time.Second, time.Second
	src := &flakySource{n: 100, failOpen: 1}
	p := stages.NewPipeline("flaky")
	out := stages.Collect(stages.Read[int64](p, src))
	x, err := sluice.Start(context.Background(), p, sluice.Options{Parallelism: 1, Runtime: cfg})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first open to fail and its retry to be due", func() bool { return src.opens.Load() == 1 && clk.Pending() > 0 })
	clk.Advance(time.Second - time.Nanosecond)
	if o := src.opens.Load(); o != 1 {
		t.Fatalf("%d opens before the backoff had passed, want 1", o)
	}
	clk.Advance(time.Nanosecond)
	if _, err := x.Wait(); err != nil {
		t.Fatal(err)
	}
	if o, n := src.opens.Load(), len(out.Values()); o != 2 || n != 100 {
		t.Errorf("%d opens and %d records, want 2 and 100", o, n)
	}
}
