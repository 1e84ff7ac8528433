package examples

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/stages"
)

var (
	simSeeds = flag.Int("sim.seeds", 2, "TestExecutorsAgree: how many of the simulator's seeds to run each job under")
	simSeed  = flag.Uint64("sim.seed", 0, "TestExecutorsAgree: run only this seed of the simulator (to replay a failure)")
)

// agreeJob is one bundled job with small arguments; out is the directory it
// writes to (the same on every run, so that printed paths compare).
type agreeJob struct {
	job  *stages.Job
	args func(out string) map[string]string
	// canon, if not nil, makes the printed lines comparable where they may
	// legitimately differ between runs.
	canon func(line string) (string, bool)
}

// TestExecutorsAgree runs every bundled job on small generated data (about
// 10k rows) once on actors and under many seeds on the simulator, each seed another interleaving of the instances'
// messages, and compares what each run printed and wrote: the same lines
// and the same rows in the same directories. A seed that fails is printed
// with the flag that replays it.
func TestExecutorsAgree(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "book.txt")
	var b strings.Builder
	for i := range 3_000 {
		fmt.Fprintf(&b, "the %d quick brown fox %d jumps over the lazy dog %d\n", i%37, i%101, i%7)
	}
	if err := os.WriteFile(text, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	orders := OrdersSpec{Seed: 7, Orders: 10_000, Users: 1_000, Zipf: 1.1, Days: 3, Splits: 3}
	events := EventsSpec{Seed: 5, Events: 10_000, Users: 1_000, Zipf: 1.1, Every: 10 * smallEvents.Every,
		Disorder: smallEvents.Disorder, Splits: 3}
	tables := filepath.Join(dir, "tables")
	runJob(t, GenOrders, with(orders.args(""), "out", tables), 2)
	jobs := []agreeJob{
		{job: WordCount, args: func(string) map[string]string { return map[string]string{"in": text} }},
		{job: SumByKey, args: func(string) map[string]string {
			return map[string]string{"rows": "20000", "keys": "700", "seed": "3", "zipf": "1.1"}
		}},
		{job: SumByKey, args: func(out string) map[string]string {
			return map[string]string{"rows": "20000", "keys": "700", "seed": "3", "out": out}
		}},
		{job: GenOrders, args: func(out string) map[string]string { return with(orders.args(""), "out", out) }},
		{job: GenEvents, args: func(out string) map[string]string { return with(events.args(""), "out", out) }},
		{job: NexmarkGen, args: func(out string) map[string]string {
			return map[string]string{"events": "2000", "out-of-order": "10", "out": out}
		}},
		{job: NexmarkQ0, args: nexmarkArgs("1000")},
		{job: NexmarkQ1, args: nexmarkArgs("1000")},
		{job: NexmarkQ2, args: nexmarkArgs("4000")},
		{job: NexmarkQ3, args: nexmarkArgs("4000")},
		{job: NexmarkQ5, args: nexmarkArgs("2000")},
		{job: NexmarkQ7, args: nexmarkArgs("2000")},
		{job: NexmarkQ8, args: nexmarkArgs("2000")},
		{job: OrdersJoin, args: func(out string) map[string]string { return with(orders.args("n-"), "out", out) }},
		{job: OrdersJoin, args: func(out string) map[string]string {
			return map[string]string{"orders": filepath.Join(tables, "orders"), "users": filepath.Join(tables, "users"), "out": out}
		}},
		{job: OrdersPerUser, args: func(out string) map[string]string { return with(orders.args("n-"), "out", out) }},
		{job: EventsWindows, args: func(out string) map[string]string { return with(events.args("n-"), "out", out) }},
		{job: Clicks, args: func(string) map[string]string {
			return map[string]string{"seed": "3", "users": "40", "clicks": "10000", "every": "10ms", "speed": "0"}
		}, canon: finalPanes},
	}
	seeds := make([]uint64, 0, *simSeeds)
	if *simSeed != 0 {
		seeds = append(seeds, *simSeed)
	}
	for s := uint64(1); len(seeds) < cap(seeds) && *simSeed == 0; s++ {
		seeds = append(seeds, s)
	}
	checkpointed := map[string]bool{}
	for i, j := range jobs {
		out := filepath.Join(dir, fmt.Sprintf("out%d", i))
		desc := fmt.Sprintf("%s %v", j.job.Name, j.args(out))
		want, _ := runCanonical(t, j, out, sluice.Options{Parallelism: 3, Seed: 1})
		t.Logf("%s: %d lines, %d bytes", desc, strings.Count(want, "\n"), len(want))
		if want == "" {
			t.Fatalf("%s on actors: nothing printed or written", desc)
		}
		// On actors with checkpoints every millisecond (a join's probe
		// side then is not held: it must not deadlock with the alignment).
		acfg := actors.DefaultConfig()
		acfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewMem(), Every: time.Millisecond, Timeout: 10 * time.Second}
		if got, _ := runCanonical(t, j, out, sluice.Options{Parallelism: 3, Seed: 1, Runtime: &acfg}); got != want {
			t.Fatalf("%s: actors with checkpoints disagree with actors without:\n%s", desc, firstLineDiff(want, got))
		}
		for i, seed := range seeds {
			got, _ := runCanonical(t, j, out, sluice.Options{Parallelism: 3, Seed: seed, Executor: actors.Sim{}})
			if got != want {
				t.Fatalf("%s: the simulator's seed %d (replay: go test ./examples -run TestExecutorsAgree -sim.seed=%d) disagrees with actors:\n%s",
					desc, seed, seed, firstLineDiff(want, got))
			}
			if i >= 3 {
				continue
			}
			// The first seeds again with checkpoints every 10 µs of
			// virtual time (a µs a message) and small batches: barriers
			// through every channel, aligned, change nothing in the output.
			cfg := actors.DefaultConfig()
			cfg.BatchRecords = 128
			cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewMem(), Every: 10 * time.Microsecond, Timeout: time.Second}
			got, res := runCanonical(t, j, out, sluice.Options{Parallelism: 3, Seed: seed, Runtime: &cfg,
				Executor: actors.Sim{StepTime: time.Microsecond}})
			if got != want {
				t.Fatalf("%s: the simulator's seed %d with checkpoints (replay: go test ./examples -run TestExecutorsAgree -sim.seed=%d) disagrees with actors:\n%s",
					desc, seed, seed, firstLineDiff(want, got))
			}
			for _, c := range res.Checkpoints {
				if c.Completed {
					checkpointed[j.job.Name] = true
				}
			}
			if j.job.Name == Clicks.Name {
				continue // its Redis sink cannot roll back
			}
			// And with two instances killed at seeded moments: the job
			// recovers from its checkpoints to the same output.
			cfg.Chaos = &actors.ChaosConfig{Kills: 2, Seed: seed}
			got, res = runCanonical(t, j, out, sluice.Options{Parallelism: 3, Seed: seed, Runtime: &cfg,
				Executor: actors.Sim{StepTime: time.Microsecond}})
			if got != want {
				t.Fatalf("%s: the simulator's seed %d with checkpoints and 2 kills (replay: go test ./examples -run TestExecutorsAgree -sim.seed=%d) disagrees with actors:\n%s",
					desc, seed, seed, firstLineDiff(want, got))
			}
			if len(res.Kills) != 2 {
				t.Fatalf("%s: seed %d: %d kills, want 2", desc, seed, len(res.Kills))
			}
		}
	}
	for _, name := range []string{OrdersJoin.Name, EventsWindows.Name} {
		if !checkpointed[name] {
			t.Errorf("%s: no checkpoint completed under the simulator", name)
		}
	}
	t.Logf("%d jobs agree on actors and on %d seeds of the simulator (the first 3 also with checkpoints; completed in %d jobs)",
		len(jobs), len(seeds), len(checkpointed))
}

// nexmarkArgs are a Nexmark query's arguments: events generated, out of
// order in groups of 10.
func nexmarkArgs(events string) func(string) map[string]string {
	return func(out string) map[string]string {
		return map[string]string{"events": events, "out-of-order": "10", "out": out}
	}
}

// runCanonical runs j with opts and returns what it printed and wrote, in
// a form that does not depend on the interleaving: printed lines sorted,
// then every file under out (but hidden ones) by its directory, its lines
// or Parquet rows sorted. File names are left out: they hold the run ID.
// Parquet doubles are compared in cents: the workloads' amounts are money,
// and a float sum depends on the order of its additions.
func runCanonical(t *testing.T, j agreeJob, out string, opts sluice.Options) (string, *sluice.Result) {
	t.Helper()
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}
	buf := capture(t)
	p, err := j.job.Build(j.args(out))
	if err != nil {
		t.Fatal(err)
	}
	res, err := sluice.Run(context.Background(), p, opts)
	if err != nil {
		t.Fatalf("%s on %v (seed %d): %v", j.job.Name, opts.Executor, opts.Seed, err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if j.canon != nil {
			var ok bool
			if l, ok = j.canon(l); !ok {
				continue
			}
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	var files []string
	err = walkData(out, func(path, rel string) error {
		rows, err := fileRows(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, r := range rows {
			files = append(files, rel+": "+r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return strings.Join(lines, "\n") + "\n--- files\n" + strings.Join(files, "\n"), res
}

// fileRows returns the rows of a Parquet file, or the lines of another.
func fileRows(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []string
	if !strings.HasSuffix(path, ".parquet") {
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			rows = append(rows, sc.Text())
		}
		return rows, sc.Err()
	}
	r := parquet.NewReader(f)
	defer r.Close()
	buf := make([]parquet.Row, 64)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			var b strings.Builder
			for i, v := range row {
				if i > 0 {
					b.WriteByte(' ')
				}
				if v.Kind() == parquet.Double {
					fmt.Fprintf(&b, "%d¢", int64(math.Round(v.Double()*100)))
				} else {
					b.WriteString(v.String())
				}
			}
			rows = append(rows, b.String())
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return rows, nil
			}
			return rows, err
		}
	}
}

// finalPanes keeps a clicks pane if it is on time or late, without its
// index: how many early panes came before it depends on how much
// processing time passed, which differs between runs.
func finalPanes(line string) (string, bool) {
	f := strings.Fields(line)
	if len(f) < 6 || f[3] == "early" {
		return "", false
	}
	return strings.Join(slices.Delete(f, 4, 6), " "), true
}

// firstLineDiff shows the first line where want and got part.
func firstLineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range min(len(w), len(g)) {
		if w[i] != g[i] {
			return fmt.Sprintf("line %d of %d:\n want %s\n  got %s", i+1, len(w), w[i], g[i])
		}
	}
	return fmt.Sprintf("want %d lines, got %d", len(w), len(g))
}
