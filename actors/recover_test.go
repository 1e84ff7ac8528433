package actors_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

var (
	recoverSeeds = flag.Int("recover.seeds", 30, "TestRecoveryOnSim, TestRecoveryOnSimWindows: how many seeds to run (CI runs 1000)")
	recoverSeed  = flag.Uint64("recover.seed", 0, "TestRecoveryOnSimWindows: run only this seed (to replay a failure)")
)

// TestRecoveryOnSim: under the simulator, chaos kills instances at seeded
// moments of a job that checkpoints; every kill rolls the job back to its
// latest checkpoint, and the output equals the run without failures. A
// seed's run replays identically.
func TestRecoveryOnSim(t *testing.T) {
	const n = 20_000
	want := wantSums(n)
	restored := 0
	for seed := uint64(1); seed <= uint64(*recoverSeeds); seed++ {
		var traces [2]string
		for run := range traces {
			var tr strings.Builder
			cfg := actors.DefaultConfig()
			cfg.BatchRecords = 64
			cfg.Executor = actors.Sim{Trace: &tr, StepTime: time.Microsecond}
			cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewMem(), Every: 100 * time.Microsecond, Timeout: time.Second}
			cfg.Chaos = &actors.ChaosConfig{Kills: 4, Seed: seed}
			cfg.Seed = seed
			p := stages.NewPipeline("recovery")
			c := checkpointJob(p, stages.Sequence(p, 0, n, stages.Parallelism(2)))
			res, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
			if err != nil {
				t.Fatalf("seed %d (-recover.seeds): %v", seed, err)
			}
			checkSums(t, fmt.Sprintf("seed %d", seed), c.Values(), want)
			if len(res.Kills) != 4 || len(res.Recoveries) != 4 {
				t.Fatalf("seed %d: %d kills and %d recoveries, want 4 of each", seed, len(res.Kills), len(res.Recoveries))
			}
			for _, r := range res.Recoveries {
				if r.Checkpoint != 0 {
					restored++
				}
			}
			traces[run] = tr.String()
		}
		if traces[0] != traces[1] {
			t.Fatalf("seed %d: two runs traced differently:\n%s", seed, firstDiff(traces[0], traces[1]))
		}
	}
	if restored == 0 {
		t.Fatal("no recovery restored a checkpoint: every one started again from the beginning")
	}
	t.Logf("%d of %d recoveries restored a checkpoint", restored, 2*4**recoverSeeds)
}

// TestRecoveryOnActors: the same on actors, on the real clock, with ten
// kills.
func TestRecoveryOnActors(t *testing.T) {
	const n = 300_000
	want := wantSums(n)
	for seed := uint64(1); seed <= 3; seed++ {
		cfg := actors.DefaultConfig()
		cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewLocal(t.TempDir()), Every: time.Millisecond, Timeout: 10 * time.Second,
			Recovery: actors.RestartPolicy{MaxRestarts: 10, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
		cfg.Chaos = &actors.ChaosConfig{Kills: 10, Seed: seed}
		cfg.Seed = seed
		p := stages.NewPipeline("recovery")
		c := checkpointJob(p, stages.Sequence(p, 0, n, stages.Parallelism(2)))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		res, err := sluice.Run(ctx, p, sluice.Options{Runtime: &cfg})
		cancel()
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		checkSums(t, fmt.Sprintf("seed %d", seed), c.Values(), want)
		if len(res.Kills) != 10 {
			t.Fatalf("seed %d: %d kills, want 10", seed, len(res.Kills))
		}
		from := 0
		for _, r := range res.Recoveries {
			if r.Checkpoint != 0 {
				from++
			}
		}
		done := 0
		for _, c := range res.Checkpoints {
			if c.Completed {
				done++
			}
		}
		t.Logf("seed %d: %d recoveries, %d from a checkpoint; %d checkpoints completed of %d; %v", seed, len(res.Recoveries), from, done, len(res.Checkpoints), res.Elapsed)
	}
}

// lateClicks returns n clicks of users 0..users-1 from seed, one every
// 20 ms of event time and up to 5 s early, every 250th after the 500th an
// hour late.
func lateClicks(seed uint64, n int, users int64) []click {
	r := rand.New(rand.NewPCG(seed, seed+1))
	var clicks []click
	for i := range n {
		ms := int64(i)*20 - r.Int64N(5000) // up to 5 s early
		if i%250 == 125 && i > 500 {
			ms -= 3_600_000 // an hour late
		}
		clicks = append(clicks, click{User: r.Int64N(users), Ms: ms})
	}
	return clicks
}

// TestRecoveryOnSimWindows: a windowed job with late records, under the
// simulator, with instances killed at seeded moments and the checkpoint
// store failing puts, tearing them and slowing them (in virtual time):
// under every seed the output (panes and late records) equals the run's
// without faults. The first seeds run twice and must trace alike. CI runs
// 1000 seeds (-recover.seeds).
func TestRecoveryOnSimWindows(t *testing.T) {
	clicks := lateClicks(5, 4_000, 20)
	run := func(cfg actors.Config) (string, *sluice.Result) {
		t.Helper()
		p := stages.NewPipeline("windows")
		src := stages.EventTime(stages.FromSlice(p, clicks, stages.Parallelism(1)), func(c click) time.Time { return time.UnixMilli(c.Ms) },
			stages.MaxDelay(5*time.Second))
		counts, late := stages.WindowAggregateLate(stages.KeyBy(src, func(c click) int64 { return c.User }),
			window.Fixed(10*time.Second), stages.Count[click](), stages.Parallelism(3))
		got, lateOut := stages.Collect(counts), stages.Collect(late)
		res, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
		if err != nil {
			t.Fatalf("seed %d (-recover.seed=%d): %v", cfg.Seed, cfg.Seed, err)
		}
		var lines []string
		for _, w := range got.Values() {
			lines = append(lines, fmt.Sprintf("%+v", w))
		}
		for _, l := range lateOut.Values() {
			lines = append(lines, fmt.Sprintf("late %+v", l))
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n"), res
	}
	base := actors.DefaultConfig()
	base.BatchRecords = 32
	base.Executor = actors.Sim{}
	want, _ := run(base)
	if !strings.Contains(want, "late") {
		t.Fatal("no late record in the clean run")
	}
	seeds, first := uint64(*recoverSeeds), uint64(1)
	if *recoverSeed != 0 {
		seeds, first = 1, *recoverSeed
	}
	var kills, restored, faults int
	for seed := first; seed < first+seeds; seed++ {
		var traces []string
		runs := 1
		if seed < first+10 {
			runs = 2 // and replays identically
		}
		for range runs {
			var tr strings.Builder
			clk := clock.NewManual(actors.SimEpoch)
			cfg := base
			cfg.Seed = seed
			cfg.Clock = clk
			cfg.Executor = actors.Sim{Trace: &tr, StepTime: time.Microsecond}
			store := &checkpoints.Faulty{Store: checkpoints.NewMem(),
				Inject: checkpoints.Random(seed, 0.05, []checkpoints.Op{checkpoints.OpPut},
					[]checkpoints.Fault{checkpoints.FailBefore, checkpoints.FailAfter, checkpoints.Torn, checkpoints.Slow}),
				Delay: func(context.Context) error { clk.Advance(50 * time.Microsecond); return nil }}
			cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 40 * time.Microsecond, Timeout: time.Second, TolerableFailures: 2,
				Recovery: actors.RestartPolicy{MaxRestarts: 100, Window: time.Hour, Backoff: 10 * time.Microsecond, MaxBackoff: time.Millisecond}}
			cfg.Chaos = &actors.ChaosConfig{Kills: 3, Seed: seed}
			got, res := run(cfg)
			if got != want {
				t.Fatalf("seed %d (replay: go test ./actors -run TestRecoveryOnSimWindows -recover.seed=%d): the output after %d kills and %v differs from the clean run's:\n%s",
					seed, seed, len(res.Kills), store.Injected(), firstDiff(want, got))
			}
			if len(res.Kills) != 3 {
				t.Fatalf("seed %d: %d kills, want 3", seed, len(res.Kills))
			}
			kills += len(res.Kills)
			for _, r := range res.Recoveries {
				if r.Checkpoint != 0 {
					restored++
				}
			}
			for _, n := range store.Injected() {
				faults += n
			}
			traces = append(traces, tr.String())
		}
		if len(traces) == 2 && traces[0] != traces[1] {
			t.Fatalf("seed %d: two runs traced differently:\n%s", seed, firstDiff(traces[0], traces[1]))
		}
	}
	t.Logf("%d seeds: %d kills, %d store faults, %d recoveries from a checkpoint; output equal to the clean run's", seeds, kills, faults, restored)
}

// failingSource fails every read after the first 500 records of each
// open, with an error that is not transient.
type failingSource struct{ opens *atomic.Int64 }

func (s failingSource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: 10_000, Bytes: -1, Desc: "failing"}}, nil
}

func (s failingSource) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int64], error) {
	s.opens.Add(1)
	return &failingReader{}, nil
}

type failingReader struct{ next int64 }

func (r *failingReader) Read(buf []int64) (int, error) {
	if r.next >= 500 {
		return 0, errors.New("the disk is on fire")
	}
	n := min(len(buf), int(500-r.next))
	for i := range n {
		buf[i] = r.next
		r.next++
	}
	return n, nil
}

func (r *failingReader) Close() error { return nil }

// TestRecoveryPolicy: a failure that comes back every attempt is
// recovered from as often as the policy allows, with its backoff on the
// job's clock, and then fails the job naming the cause and the count; a
// configuration error is not retried; a job whose sink cannot roll back
// fails at the first failure, naming the sink.
func TestRecoveryPolicy(t *testing.T) {
	run := func(src stages.Source[int64], sink func(stages.Stream[int64])) (*sluice.Result, error) {
		cfg := actors.DefaultConfig()
		cfg.Executor = actors.Sim{}
		cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewMem(), Every: time.Millisecond, Timeout: time.Second,
			Recovery: actors.RestartPolicy{MaxRestarts: 4, Window: time.Hour, Backoff: time.Second, MaxBackoff: 4 * time.Second}}
		p := stages.NewPipeline("policy")
		sink(stages.Read[int64](p, src))
		return sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
	}
	var opens atomic.Int64
	res, err := run(failingSource{&opens}, func(s stages.Stream[int64]) { stages.Collect(s) })
	if err == nil || !strings.Contains(err.Error(), "the disk is on fire") || !strings.Contains(err.Error(), "failed 5 times within 1h0m0s: giving up") {
		t.Fatalf("error %v, want the cause and the count", err)
	}
	if opens.Load() != 5 || len(res.Recoveries) != 4 {
		t.Fatalf("%d opens and %d recoveries, want 5 and 4", opens.Load(), len(res.Recoveries))
	}
	// The backoffs, 1+2+4+4 s, passed on the simulator's clock.
	if res.Elapsed < 11*time.Second {
		t.Errorf("the job took %v of virtual time, want the 11 s of backoff at least", res.Elapsed)
	}
	opens.Store(0)
	_, err = run(failingSource{&opens}, func(s stages.Stream[int64]) {
		stages.Write(s, noRollback{})
	})
	if err == nil || !strings.Contains(err.Error(), "cannot roll its output back") || opens.Load() != 1 {
		t.Fatalf("a sink without Reopen: error %v after %d opens, want it named after one", err, opens.Load())
	}
	opens.Store(0)
	_, err = run(configSource{&opens}, func(s stages.Stream[int64]) { stages.Collect(s) })
	if !errors.Is(err, stages.ErrConfig) || opens.Load() != 1 {
		t.Fatalf("a configuration error: %v after %d opens, want it once", err, opens.Load())
	}
}

type noRollback struct{}

func (noRollback) Open(context.Context, stages.Instance) (stages.Writer[int64], error) {
	return noRollbackWriter{}, nil
}

type noRollbackWriter struct{}

func (noRollbackWriter) Write([]int64) error { return nil }
func (noRollbackWriter) Prepare() error      { return nil }
func (noRollbackWriter) Commit() error       { return nil }
func (noRollbackWriter) Abort() error        { return nil }

type configSource struct{ opens *atomic.Int64 }

func (s configSource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: 1, Bytes: -1, Desc: "config"}}, nil
}

func (s configSource) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int64], error) {
	s.opens.Add(1)
	return nil, fmt.Errorf("no such table: %w", stages.ErrConfig)
}

// TestRecoveryWithSkewSampling: a shuffle join whose skew is sampled
// before the job starts recovers from kills like any other job: the
// sampling job runs without chaos and without checkpoints (its sink cannot
// roll back, and its checkpoints are not the job's).
func TestRecoveryWithSkewSampling(t *testing.T) {
	run := func(seed uint64, kills int) []string {
		cfg := actors.DefaultConfig()
		cfg.BatchRecords = 64
		cfg.Seed = seed
		cfg.Executor = actors.Sim{StepTime: time.Microsecond}
		store := checkpoints.NewMem()
		if kills > 0 {
			cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 100 * time.Microsecond, Timeout: time.Second}
			cfg.Chaos = &actors.ChaosConfig{Kills: kills, Seed: seed}
		}
		p := stages.NewPipeline("skew")
		l := stages.KeyBy(stages.Sequence(p, 0, 5000, stages.Parallelism(2)), func(x int64) int64 { return x % 100 })
		r := stages.KeyBy(stages.Sequence(p, 0, 200, stages.Parallelism(1)), func(x int64) int64 { return x % 100 })
		c := stages.Collect(stages.Join(l, r, stages.Inner, stages.Strategy(plan.JoinShuffle), stages.Parallelism(3)))
		res, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(res.Kills) != kills {
			t.Fatalf("seed %d: %d kills, want %d", seed, len(res.Kills), kills)
		}
		var out []string
		for _, j := range c.Values() {
			out = append(out, fmt.Sprint(j))
		}
		slices.Sort(out)
		return out
	}
	want := run(1, 0)
	for seed := uint64(1); seed <= 5; seed++ {
		if got := run(seed, 2); !slices.Equal(got, want) {
			t.Fatalf("seed %d: %d records, want %d", seed, len(got), len(want))
		}
	}
}

// onMessage is a slog handler that calls f at the first record of message
// msg.
type onMessage struct {
	msg  string
	once sync.Once
	f    func()
}

func (h *onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h *onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(h.f)
	}
	return nil
}
func (h *onMessage) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *onMessage) WithGroup(string) slog.Handler      { return h }

// TestRecoveryCancelled: a context cancelled while the job recovers ends
// the job with its error; the recovered attempt does not run on as if
// nothing had happened.
func TestRecoveryCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := actors.DefaultConfig()
	cfg.Executor = actors.Sim{StepTime: time.Microsecond}
	cfg.BatchRecords = 64
	cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewMem(), Every: 100 * time.Microsecond, Timeout: time.Second}
	cfg.Chaos = &actors.ChaosConfig{Kills: 1, Seed: 1}
	// The cancel lands while the job recovers: the watcher of ctx may fail
	// the attempt that has just ended (the case that was lost) or the one
	// that follows; either way the job must end with the context's error.
	cfg.Logger = slog.New(&onMessage{msg: "job failed: recovering from the latest checkpoint", f: cancel})
	p := stages.NewPipeline("cancelled")
	stages.Collect(stages.Sequence(p, 0, 20_000, stages.Parallelism(2)))
	res, err := sluice.Run(ctx, p, sluice.Options{Runtime: &cfg})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v after %d kills and %d recoveries, want the context's", err, len(res.Kills), len(res.Recoveries))
	}
}

// pollSource is a bounded source without positions whose reader says
// ErrNoData every third read, as a reader tailing a slow file does.
type pollSource struct{ n int64 }

func (s pollSource) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: s.n, Bytes: -1, Desc: "poll"}}, nil
}

func (s pollSource) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int64], error) {
	return &pollReader{end: s.n}, nil
}

type pollReader struct{ next, end, calls int64 }

func (r *pollReader) Read(buf []int64) (int, error) {
	if r.calls++; r.calls%3 == 0 {
		return 0, stages.ErrNoData
	}
	n := 0
	for n < len(buf) && r.next < r.end {
		buf[n] = r.next
		n++
		r.next++
	}
	if r.next == r.end {
		return n, io.EOF
	}
	return n, nil
}

func (r *pollReader) Close() error { return nil }

// TestRecoverySkipsPollingReader: a split without positions is reopened
// and read up to where the checkpoint had it; a reader that has no data
// for a moment while it is skipped is asked again later, as when it is
// read.
func TestRecoverySkipsPollingReader(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		cfg := actors.DefaultConfig()
		cfg.Executor = actors.Sim{StepTime: time.Microsecond}
		cfg.BatchRecords = 64
		cfg.Seed = seed
		cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewMem(), Every: 100 * time.Microsecond, Timeout: time.Second}
		cfg.Chaos = &actors.ChaosConfig{Kills: 3, Seed: seed}
		p := stages.NewPipeline("poll")
		c := stages.Collect(stages.Read[int64](p, pollSource{20_000}))
		res, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		got := c.Values()
		slices.Sort(got)
		if len(got) != 20_000 || got[0] != 0 || got[len(got)-1] != 19_999 || len(slices.Compact(got)) != 20_000 {
			t.Fatalf("seed %d: %d records after %d recoveries, want 0..19999 once each", seed, len(got), len(res.Recoveries))
		}
	}
}

// upsertSink writes each record by key into a map: writing one twice is
// harmless. It cannot take its output back (it is no stages.Reopener).
type upsertSink struct {
	mu     sync.Mutex
	m      map[int64]int64
	writes int
}

func (s *upsertSink) Open(context.Context, stages.Instance) (stages.Writer[int64], error) {
	return upsertWriter{s}, nil
}

type upsertWriter struct{ s *upsertSink }

func (w upsertWriter) Write(xs []int64) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	for _, x := range xs {
		w.s.m[x/3] = x
		w.s.writes++
	}
	return nil
}
func (upsertWriter) Prepare() error { return nil }
func (upsertWriter) Commit() error  { return nil }
func (upsertWriter) Abort() error   { return nil }

// TestRecoveryAtLeastOnce: a job whose sink cannot take its output back
// fails at a kill, naming the sink; wrapped in stages.AtLeastOnce it
// recovers, writes the records after the checkpoint again, and ends with
// every key written with its value.
func TestRecoveryAtLeastOnce(t *testing.T) {
	const n = 20_000
	for _, wrap := range []bool{false, true} {
		cfg := actors.DefaultConfig()
		cfg.BatchRecords = 64
		cfg.Seed = 3
		cfg.Executor = actors.Sim{StepTime: time.Microsecond}
		cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewMem(), Every: 100 * time.Microsecond, Timeout: time.Second}
		cfg.Chaos = &actors.ChaosConfig{Kills: 3, Seed: 3}
		s := &upsertSink{m: map[int64]int64{}}
		var sink stages.Sink[int64] = s
		if wrap {
			sink = stages.AtLeastOnce(sink)
		}
		p := stages.NewPipeline("upsert")
		stages.Write(stages.Map(stages.Sequence(p, 0, n, stages.Parallelism(2)), func(x int64) int64 { return 3 * x }), sink)
		res, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
		if !wrap {
			if err == nil || !strings.Contains(err.Error(), "sink") || !strings.Contains(err.Error(), "recover_test.go") {
				t.Fatalf("unwrapped: %v, want an error naming the sink", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Recoveries) != 3 {
			t.Fatalf("%d recoveries, want 3", len(res.Recoveries))
		}
		if len(s.m) != n || s.writes <= n {
			t.Fatalf("%d keys written %d times, want %d keys, some twice", len(s.m), s.writes, n)
		}
		// The source read each record once, and again those the
		// recoveries say they read again.
		replayed := int64(0)
		for _, r := range res.Recoveries {
			replayed += r.Replayed
		}
		if read := res.Stages[0].Records; replayed == 0 || read != n+replayed {
			t.Fatalf("the source read %d records; %d read again by %d recoveries; want %d + that", read, replayed, len(res.Recoveries), n)
		}
		for k, v := range s.m {
			if v != 3*k {
				t.Fatalf("key %d holds %d, want %d", k, v, 3*k)
			}
		}
	}
}
