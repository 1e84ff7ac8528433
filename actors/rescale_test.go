package actors_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

var (
	rescaleSeeds = flag.Int("rescale.seeds", 10, "TestRescaleOnSim: how many seeds (places to stop at) to run")
	rescaleSeed  = flag.Uint64("rescale.seed", 0, "TestRescaleOnSim: run only this seed (to replay a failure)")
)

// rescaleJob is a job of TestRescaleOnSim: built at parallelism par, it
// writes JSON lines below out.
type rescaleJob struct {
	name    string
	records int64 // its sources' records
	build   func(p *stages.Pipeline, par int, out string)
}

func rescaleJobs() []rescaleJob {
	clicks := lateClicks(7, 8_000, 50)
	xs := make([]int64, 20_000)
	for i := range xs {
		xs[i] = int64(i)
	}
	return []rescaleJob{
		// Which records are late depends on the order in which the
		// instances of a parallel source run (one that has sent no
		// watermark yet holds the window's back), so this job's source has
		// one instance; the aggregate's sources change parallelism.
		{name: "windows", records: int64(len(clicks)), build: func(p *stages.Pipeline, par int, out string) {
			src := stages.EventTime(stages.FromSlice(p, clicks, stages.Parallelism(1)),
				func(c click) time.Time { return time.UnixMilli(c.Ms) }, stages.MaxDelay(5*time.Second))
			counts, late := stages.WindowAggregateLate(stages.KeyBy(src, func(c click) int64 { return c.User }),
				window.Fixed(10*time.Second), stages.Count[click](), stages.Parallelism(par), stages.ID("counts"))
			jsonl.Write(counts, filepath.Join(out, "counts"), stages.Parallelism(par))
			jsonl.Write(late, filepath.Join(out, "late"), stages.Parallelism(par))
		}},
		{name: "aggregate", records: int64(len(xs)), build: func(p *stages.Pipeline, par int, out string) {
			k := stages.KeyBy(stages.FromSlice(p, xs, stages.Parallelism(par)), func(x int64) int64 { return x % 97 })
			sums := stages.Aggregate(k, window.Global(), stages.Sum(func(x int64) int64 { return x }), stages.Parallelism(par), stages.ID("sums"))
			jsonl.Write(sums, filepath.Join(out, "sums"), stages.Parallelism(par))
		}},
	}
}

// TestRescaleOnSim: a windowed job (with late records) and a keyed
// aggregation, stopped at a checkpoint at parallelism 2, at a place in the
// input a seed chooses, and restored at parallelism 2, 1, 3 and 4, write
// the lines of a run never stopped, and nothing else: sources change
// parallelism (their splits are dealt anew), windows and aggregates (their
// key groups are), sinks (the new instances take over the old ones' staged
// output).
func TestRescaleOnSim(t *testing.T) {
	seeds, first := uint64(*rescaleSeeds), uint64(1)
	if *rescaleSeed != 0 {
		seeds, first = 1, *rescaleSeed
	}
	dir := t.TempDir()
	sim := func(seed uint64) actors.Config {
		cfg := actors.DefaultConfig()
		cfg.BatchRecords = 64
		cfg.Seed = seed
		cfg.Executor = actors.Sim{StepTime: time.Microsecond}
		return cfg
	}
	for _, j := range rescaleJobs() {
		clean := filepath.Join(dir, j.name+"-clean")
		p := stages.NewPipeline(j.name)
		j.build(p, 2, clean)
		if _, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: new(sim(1))}); err != nil {
			t.Fatal(err)
		}
		want := jsonLines(t, clean)
		restored, ended := 0, 0
		for seed := first; seed < first+seeds; seed++ {
			for _, par := range []int{2, 1, 3, 4} {
				out := filepath.Join(dir, fmt.Sprintf("%s-%d-%d", j.name, seed, par))
				store := checkpoints.NewMem()
				stopAt := 1 + rand.New(rand.NewPCG(seed, 9)).Int64N(j.records-1)
				cfg := sim(seed)
				cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 40 * time.Microsecond, Timeout: time.Second}
				cfg.Chaos = &actors.ChaosConfig{StopAt: stopAt}
				p := stages.NewPipeline(j.name)
				j.build(p, 2, out)
				_, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
				var stopped *actors.StoppedError
				if err == nil { // it ended before the stop's checkpoint could complete
					if got := jsonLines(t, out); !slices.Equal(got, want) {
						t.Fatalf("%s, seed %d: ended before stopping at record %d: %d lines, want %d", j.name, seed, stopAt, len(got), len(want))
					}
					ended++
					continue
				}
				if !errors.As(err, &stopped) {
					t.Fatalf("%s, seed %d: stopping at record %d: %v, want a *StoppedError", j.name, seed, stopAt, err)
				}
				restored++
				cfg = sim(seed + 1)
				cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 40 * time.Microsecond, Timeout: time.Second, Restore: "latest"}
				p = stages.NewPipeline(j.name)
				j.build(p, par, out)
				res, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
				if err != nil {
					t.Fatalf("%s, seed %d (replay: -rescale.seed=%d): restoring checkpoint %d at parallelism %d: %v",
						j.name, seed, seed, stopped.Checkpoint, par, err)
				}
				if len(res.Recoveries) != 1 || res.Recoveries[0].Checkpoint != stopped.Checkpoint {
					t.Fatalf("%s, seed %d: recoveries %+v, want one from checkpoint %d", j.name, seed, res.Recoveries, stopped.Checkpoint)
				}
				if got := jsonLines(t, out); !slices.Equal(got, want) {
					t.Fatalf("%s, seed %d (replay: -rescale.seed=%d): stopped at record %d (checkpoint %d), restored at parallelism %d: %d lines, want %d:\n%s",
						j.name, seed, seed, stopAt, stopped.Checkpoint, par, len(got), len(want), firstDiff(strings.Join(want, "\n"), strings.Join(got, "\n")))
				}
			}
		}
		if restored == 0 {
			t.Fatalf("%s: no run stopped at a checkpoint", j.name)
		}
		t.Logf("%s: %d runs stopped and restored at another parallelism or the same, %d ended before the stop's checkpoint", j.name, restored, ended)
	}
}

// jsonLines returns the lines of the JSON-lines parts below dir, sorted;
// any other file but the commit's own records fails the test.
func jsonLines(t *testing.T, dir string) []string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasPrefix(rel, "_") || strings.Contains(rel, string(filepath.Separator)+"_") {
			return nil // _SUCCESS, _sluice/
		}
		if !strings.HasSuffix(path, ".jsonl") {
			return fmt.Errorf("%s: not a part of the output", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for l := range strings.Lines(string(b)) {
			lines = append(lines, strings.TrimSuffix(l, "\n"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return lines
}

// TestRestoreRefuses: a checkpoint is not restored into a plan of other key
// groups, one without a stateful stage it holds, or one whose stage keeps
// state of another type; each error names what differs.
func TestRestoreRefuses(t *testing.T) {
	dir := t.TempDir()
	xs := make([]int64, 20_000)
	for i := range xs {
		xs[i] = int64(i)
	}
	build := func(p *stages.Pipeline, id string, float bool) {
		k := stages.KeyBy(stages.FromSlice(p, xs, stages.Parallelism(2)), func(x int64) int64 { return x % 97 })
		if float {
			jsonl.Write(stages.Aggregate(k, window.Global(), stages.Sum(func(x int64) float64 { return float64(x) }), stages.ID(id)), dir)
			return
		}
		jsonl.Write(stages.Aggregate(k, window.Global(), stages.Sum(func(x int64) int64 { return x }), stages.ID(id)), dir)
	}
	store := checkpoints.NewMem()
	cfg := actors.DefaultConfig()
	cfg.BatchRecords = 64
	cfg.Executor = actors.Sim{StepTime: time.Microsecond}
	cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 40 * time.Microsecond, Timeout: time.Second}
	cfg.Chaos = &actors.ChaosConfig{StopAt: 5_000}
	p := stages.NewPipeline("sums")
	build(p, "sums", false)
	var stopped *actors.StoppedError
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg}); !errors.As(err, &stopped) {
		t.Fatalf("stopping: %v, want a *StoppedError", err)
	}
	for _, c := range []struct {
		name  string
		id    string
		float bool
		max   int
		want  []string
	}{
		{"other key groups", "sums", false, 64, []string{"128 key groups (max parallelism), the plan has 64"}},
		{"a stage gone", "totals", false, 0, []string{`stage sums is not in the plan`, `stage totals of the plan is not in the checkpoint`}},
		{"another type", "sums", true, 0, []string{`state "sums"`, "schema mismatch reading float64"}},
	} {
		cfg := cfg
		cfg.Chaos = nil
		cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: time.Millisecond, Timeout: time.Second, Restore: "latest"}
		p := stages.NewPipeline("sums")
		build(p, c.id, c.float)
		_, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg, MaxParallelism: c.max})
		if err == nil {
			t.Fatalf("%s: restored", c.name)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: the error does not say %q:\n%v", c.name, w, err)
			}
		}
	}
}
