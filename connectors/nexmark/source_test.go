package nexmark_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/connectors/nexmark"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// generated returns events [0, cfg.NumEvents) of cfg, made one by one.
func generated(t *testing.T, cfg nexmark.Config) []nexmark.Event {
	t.Helper()
	g, err := nexmark.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]nexmark.Event, g.Events())
	for i := range out {
		out[i] = g.Event(int64(i))
	}
	return out
}

// sameEvents compares got, in any order, with want, in order of N.
func sameEvents(t *testing.T, got, want []nexmark.Event) {
	t.Helper()
	got = slices.Clone(got)
	slices.SortFunc(got, func(a, b nexmark.Event) int { return cmp.Compare(a.N, b.N) })
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("event %d is %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestRunAnyParallelism runs the source through a pipeline at source
// parallelism 1, 2 and 3: the same multiset of events comes out, and
// none is late for a window behind the source's watermark.
func TestRunAnyParallelism(t *testing.T) {
	cfg := nexmark.DefaultConfig()
	cfg.NumEvents = 20_000
	cfg.OutOfOrderGroupSize = 10
	cfg.Splits = 7
	want := generated(t, cfg)
	for _, par := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			p := stages.NewPipeline("nexmark-run")
			events := nexmark.Read(p, cfg, stages.Parallelism(par))
			out := stages.Collect(events)
			counts := stages.WindowAggregate(stages.KeyBy(events, func(e nexmark.Event) string { return e.Kind().String() }),
				window.Fixed(time.Second), stages.Count[nexmark.Event](), stages.ID("kinds-v1"))
			stages.Collect(counts)
			res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: par})
			if err != nil {
				t.Fatal(err)
			}
			if tot := res.Stages[0].Total; tot != cfg.NumEvents {
				t.Errorf("source total %d, want %d", tot, cfg.NumEvents)
			}
			for _, s := range res.Stages {
				if s.DroppedLate != 0 || s.DroppedClosed != 0 {
					t.Errorf("stage %s dropped %d late and %d for closed windows", s.Name, s.DroppedLate, s.DroppedClosed)
				}
			}
			sameEvents(t, out.Values(), want)
		})
	}
}

// readAll reads r to its end with a buffer of bufLen.
func readAll(t *testing.T, r stages.Reader[nexmark.Event], bufLen int) []nexmark.Event {
	t.Helper()
	var out []nexmark.Event
	buf := make([]nexmark.Event, bufLen)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("Read returned no events and no error")
		}
	}
}

// TestOpenAt: a reader's position, passed to OpenAt, opens the split where
// the reader was: the rest of the split, event for event.
func TestOpenAt(t *testing.T) {
	cfg := nexmark.DefaultConfig()
	cfg.NumEvents = 3_001
	cfg.Splits = 4
	cfg.OutOfOrderGroupSize = 7
	want := generated(t, cfg)
	ctx := context.Background()
	src := nexmark.Source(cfg)
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 4 {
		t.Fatalf("%d splits, want 4", len(splits))
	}
	var all []nexmark.Event
	for _, sp := range splits {
		for _, k := range []int{0, 1, 333, int(sp.Records)} {
			r, err := src.Open(ctx, stages.Instance{}, sp)
			if err != nil {
				t.Fatal(err)
			}
			first := make([]nexmark.Event, k)
			if n, _ := r.Read(first); n != k {
				t.Fatalf("%s: read %d events, want %d", sp.Desc, n, k)
			}
			pos, err := r.(stages.Positioner).Position()
			if err != nil {
				t.Fatal(err)
			}
			rest := readAll(t, r, 50)
			again, err := src.(stages.Seeker[nexmark.Event]).OpenAt(ctx, stages.Instance{}, sp, pos)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, again, 64); !reflect.DeepEqual(got, rest) {
				t.Fatalf("%s opened at %q after %d events: %d events, want the %d after them", sp.Desc, pos, k, len(got), len(rest))
			}
			if k == 0 {
				all = append(all, rest...)
			}
			if int64(len(first)+len(rest)) != sp.Records {
				t.Errorf("%s: %d events, the split says %d", sp.Desc, len(first)+len(rest), sp.Records)
			}
		}
	}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("the splits read in order are not the generated events")
	}
	sk := src.(stages.Seeker[nexmark.Event])
	for _, pos := range []string{"99999", "-1", "x"} {
		if _, err := sk.OpenAt(ctx, stages.Instance{}, splits[0], []byte(pos)); err == nil {
			t.Errorf("position %q opened split %s", pos, splits[0].Desc)
		}
	}
}

// TestRecovery kills instances of a job that checkpoints often: the
// sources resume from their checkpointed positions and the output is
// every event exactly once.
func TestRecovery(t *testing.T) {
	cfg := nexmark.DefaultConfig()
	cfg.NumEvents = 40_000
	cfg.Splits = 6
	want := generated(t, cfg)
	restored := 0
	for seed := uint64(1); seed <= 2; seed++ {
		p := stages.NewPipeline("nexmark-recovery")
		events := nexmark.Read(p, cfg)
		bids := stages.Filter(events, func(e nexmark.Event) bool { return true }, stages.Parallelism(3))
		out := stages.Collect(bids)
		rt := actors.DefaultConfig()
		rt.BatchRecords = 64
		rt.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewMem(), Every: time.Millisecond, Timeout: 10 * time.Second,
			Recovery: actors.RestartPolicy{MaxRestarts: 10, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}}
		rt.Chaos = &actors.ChaosConfig{Kills: 3, Seed: seed}
		res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2, Seed: 1, Runtime: &rt})
		if err != nil {
			t.Fatal(err)
		}
		sameEvents(t, out.Values(), want)
		for _, r := range res.Recoveries {
			if r.Checkpoint != 0 {
				restored++
			}
		}
		t.Logf("seed %d: %d kills, recoveries %+v", seed, len(res.Kills), res.Recoveries)
	}
	t.Logf("%d recoveries from a checkpoint", restored)
}

// TestReadInvalid checks that an invalid Config fails the run, naming the
// stage and every problem.
func TestReadInvalid(t *testing.T) {
	cfg := nexmark.DefaultConfig()
	cfg.NumEventGenerators = 0
	cfg.HotBiddersRatio = 0
	p := stages.NewPipeline("bad-nexmark")
	stages.Collect(nexmark.Read(p, cfg))
	_, err := sluice.Run(context.Background(), p, sluice.Options{})
	if !errors.Is(err, nexmark.ErrConfig) {
		t.Fatalf("error %v, want ErrConfig", err)
	}
	for _, w := range []string{`"nexmark"`, "NumEventGenerators 0", "HotBiddersRatio 0"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// readJSONL decodes the events of the part files under dir.
func readJSONL(t *testing.T, dir string) []nexmark.Event {
	t.Helper()
	parts, err := filepath.Glob(filepath.Join(dir, "part-*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []nexmark.Event
	for _, path := range parts {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var e nexmark.Event
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			out = append(out, e)
		}
	}
	return out
}

// TestStopAndRestore stops a job at a checkpoint half-way through the
// events and restores it in a new pipeline at other parallelisms: the
// sources reopen their splits at the checkpoint's positions and the
// output is every event once.
func TestStopAndRestore(t *testing.T) {
	cfg := nexmark.DefaultConfig()
	cfg.NumEvents = 12_000
	cfg.Splits = 5
	want := generated(t, cfg)
	sim := func(seed uint64) actors.Config {
		c := actors.DefaultConfig()
		c.BatchRecords = 64
		c.Seed = seed
		c.Executor = actors.Sim{StepTime: time.Microsecond}
		return c
	}
	build := func(par int, out string) *stages.Pipeline {
		p := stages.NewPipeline("nexmark-restore")
		jsonl.Write(nexmark.Read(p, cfg, stages.Parallelism(par)), out)
		return p
	}
	restored := 0
	for _, par := range []int{1, 3} {
		out := filepath.Join(t.TempDir(), "out")
		store := checkpoints.NewMem()
		c := sim(uint64(par))
		c.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 40 * time.Microsecond, Timeout: time.Second}
		c.Chaos = &actors.ChaosConfig{StopAt: cfg.NumEvents / 2}
		_, err := sluice.Run(context.Background(), build(2, out), sluice.Options{Runtime: &c})
		var stopped *actors.StoppedError
		if err == nil { // it ended before the stop's checkpoint completed
			sameEvents(t, readJSONL(t, out), want)
			continue
		}
		if !errors.As(err, &stopped) {
			t.Fatalf("stopping: %v, want a *StoppedError", err)
		}
		c = sim(uint64(par) + 10)
		c.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 40 * time.Microsecond, Timeout: time.Second, Restore: "latest"}
		res, err := sluice.Run(context.Background(), build(par, out), sluice.Options{Runtime: &c})
		if err != nil {
			t.Fatalf("restoring checkpoint %d at parallelism %d: %v", stopped.Checkpoint, par, err)
		}
		if len(res.Recoveries) != 1 || res.Recoveries[0].Checkpoint != stopped.Checkpoint {
			t.Fatalf("recoveries %+v, want one from checkpoint %d", res.Recoveries, stopped.Checkpoint)
		}
		if read := res.Stages[0].Records; read <= 0 || read >= cfg.NumEvents {
			t.Errorf("the restored run read %d events of %d: it did not resume at the checkpoint's positions", read, cfg.NumEvents)
		}
		t.Logf("parallelism %d: stopped at checkpoint %d, the restored run read %d events", par, stopped.Checkpoint, res.Stages[0].Records)
		sameEvents(t, readJSONL(t, out), want)
		restored++
	}
	if restored == 0 {
		t.Fatal("no run stopped at a checkpoint")
	}
}
