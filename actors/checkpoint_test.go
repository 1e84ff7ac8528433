package actors_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// untilCheckpoints is a source of 0, 1, 2, ... in batches that ends once
// its store holds the manifest of checkpoint n: the job runs until
// checkpoints have completed, however fast the machine.
type untilCheckpoints struct {
	store checkpoints.Store
	n     int
	sent  *atomic.Int64
}

func (s untilCheckpoints) Splits(context.Context) ([]stages.Split, error) {
	return []stages.Split{{Records: -1, Bytes: -1, Desc: "until checkpoints"}}, nil
}

func (s untilCheckpoints) Open(context.Context, stages.Instance, stages.Split) (stages.Reader[int64], error) {
	return &untilReader{s: s}, nil
}

type untilReader struct {
	s    untilCheckpoints
	next int64
}

func (r *untilReader) Read(buf []int64) (int, error) {
	keys, err := r.s.store.List(context.Background(), "")
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		var id int
		if _, err := fmt.Sscanf(k, "chk-%d/MANIFEST", &id); err == nil && strings.HasSuffix(k, "/MANIFEST") && id >= r.s.n {
			return 0, io.EOF
		}
	}
	n := min(len(buf), 100)
	for i := range n {
		buf[i] = r.next
		r.next++
	}
	r.s.sent.Add(int64(n))
	return n, nil
}

func (r *untilReader) Close() error { return nil }

// checkpointJob sums x·3 by x mod 13 over the source, through a union with
// a filtered copy (two input channels to align) at parallelism 3.
func checkpointJob(p *stages.Pipeline, src stages.Stream[int64]) *stages.Collection[stages.KV[int64, int64]] {
	xs := stages.Map(src, func(x int64) int64 { return x * 3 }, stages.Parallelism(2))
	odd := stages.Filter(xs, func(x int64) bool { return x%2 == 1 }, stages.Parallelism(3))
	u := stages.Union(xs, odd)
	k := stages.KeyBy(u, func(x int64) int64 { return x % 13 })
	return stages.Collect(stages.Aggregate(k, window.Global(), stages.Sum(func(x int64) int64 { return x }), stages.Parallelism(3)))
}

func wantSums(n int64) map[int64]int64 {
	want := map[int64]int64{}
	for x := range n {
		y := x * 3
		want[y%13] += y
		if y%2 == 1 {
			want[y%13] += y
		}
	}
	return want
}

func checkSums(t *testing.T, desc string, got []stages.KV[int64, int64], want map[int64]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d keys, want %d", desc, len(got), len(want))
	}
	for _, kv := range got {
		if want[kv.Key] != kv.Value {
			t.Fatalf("%s: key %d sums to %d, want %d", desc, kv.Key, kv.Value, want[kv.Key])
		}
	}
}

// TestCheckpointsOnActors: barriers go through every channel of a running
// job on actors, tasks align them, and the coordinator writes manifests;
// the output is what it is without checkpoints.
func TestCheckpointsOnActors(t *testing.T) {
	store := checkpoints.NewLocal(t.TempDir())
	cfg := actors.DefaultConfig()
	cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 2 * time.Millisecond, Timeout: 10 * time.Second, Retain: 2}
	var sent atomic.Int64
	p := stages.NewPipeline("checkpoints")
	src := stages.Read[int64](p, untilCheckpoints{store: store, n: 4, sent: &sent}, stages.Parallelism(1))
	c := checkpointJob(p, src)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := sluice.Run(ctx, p, sluice.Options{Runtime: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, "with checkpoints", c.Values(), wantSums(sent.Load()))
	completed := 0
	for _, st := range res.Checkpoints {
		if st.Completed {
			completed++
		}
	}
	if completed < 4 {
		t.Fatalf("%d checkpoints completed, want at least 4: %+v", completed, res.Checkpoints)
	}
	r, skipped, err := checkpoints.New(store).Latest(context.Background())
	if err != nil || r == nil {
		t.Fatalf("no checkpoint to restore (%v), skipped %v", err, skipped)
	}
	keys, _ := store.List(context.Background(), "")
	if n := countManifests(keys); n > 3 { // 2 retained, and one the job's end may have overtaken
		t.Errorf("%d manifests kept, want the last 2 (Retain)", n)
	}
	t.Logf("%d records, %d checkpoints completed, the newest %d", sent.Load(), completed, r.ID)
}

func countManifests(keys []string) int {
	n := 0
	for _, k := range keys {
		if strings.HasSuffix(k, "/MANIFEST") {
			n++
		}
	}
	return n
}

// TestCheckpointsOnSim: under the simulator, with virtual time passing per
// message, checkpoints complete mid-stream under every seed, a run replays
// identically, and the output equals the run without checkpoints.
func TestCheckpointsOnSim(t *testing.T) {
	const n = 30_000
	want := wantSums(n)
	for seed := uint64(1); seed <= 20; seed++ {
		var traces [2]string
		for run := range traces {
			store := checkpoints.NewMem()
			var tr strings.Builder
			cfg := actors.DefaultConfig()
			cfg.BatchRecords = 64
			cfg.Executor = actors.Sim{Trace: &tr, StepTime: time.Microsecond}
			cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 100 * time.Microsecond, Timeout: time.Second, Retain: 1000}
			cfg.Seed = seed
			p := stages.NewPipeline("checkpoints")
			c := checkpointJob(p, stages.Sequence(p, 0, n, stages.Parallelism(2)))
			res, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			checkSums(t, fmt.Sprintf("seed %d", seed), c.Values(), want)
			completed := slices.IndexFunc(res.Checkpoints, func(s core.CheckpointStat) bool { return s.Completed })
			if completed < 0 {
				t.Fatalf("seed %d: no checkpoint completed: %+v", seed, res.Checkpoints)
			}
			traces[run] = tr.String()
			// Every checkpoint taken while the sum ran holds its state:
			// chunks of its three instances covering all key groups once
			// (later ones, after it finished, hold none).
			d := checkpoints.New(store)
			ids, err := d.Complete(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			full := 0
			for _, id := range ids {
				r, err := d.Read(context.Background(), id)
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				covered := 0
				for _, ch := range r.Chunks {
					covered += ch.Last - ch.First + 1
				}
				switch {
				case len(r.Chunks) == 3 && covered == 128:
					full++
					if full == 1 {
						restoreRoundTrip(t, seed, res.Plan, r)
					}
				case len(r.Chunks) != 0:
					t.Fatalf("seed %d: checkpoint %d has %d chunks over %d key groups, want 3 over 128: %+v", seed, id, len(r.Chunks), covered, r.Chunks)
				}
			}
			if full == 0 {
				t.Fatalf("seed %d: no checkpoint of %d holds the sum's state", seed, len(ids))
			}
		}
		if traces[0] != traces[1] {
			t.Fatalf("seed %d: two runs traced differently:\n%s", seed, firstDiff(traces[0], traces[1]))
		}
		if !strings.Contains(traces[0], "barrier") {
			t.Fatalf("seed %d: no barrier in the trace", seed)
		}
	}
}

// restoreRoundTrip restores each chunk of r, as the runtime wrote it, into
// a fresh state of its stage and snapshots that again: the same bytes.
func restoreRoundTrip(t *testing.T, seed uint64, phys *plan.Physical, r *checkpoints.Restored) {
	t.Helper()
	for _, ch := range r.Chunks {
		var node *plan.Node
		var par int
		for _, v := range phys.Vertices {
			for _, n := range v.Chain {
				if core.StageID(n) == ch.Stage {
					node, par = n, v.Parallelism
				}
			}
		}
		if node == nil || node.NewState == nil {
			t.Fatalf("seed %d: chunk %s names no stateful stage of the plan", seed, ch.Key)
		}
		st, ok := node.NewState(plan.Instance{Job: phys.Job, Stage: node.String(), Parallelism: par,
			MaxParallelism: phys.MaxParallelism, Seed: seed, LocalInstances: par}).(plan.Snapshotter)
		if !ok {
			t.Fatalf("seed %d: stage %s cannot snapshot", seed, ch.Stage)
		}
		if err := st.Restore(r.Data(ch), ch.First, ch.Last+1); err != nil {
			t.Fatalf("seed %d: restoring chunk %s: %v", seed, ch.Key, err)
		}
		enc, err := st.Snapshot(ch.First, ch.Last+1)
		if err != nil {
			t.Fatal(err)
		}
		if again := enc(nil); !bytes.Equal(again, r.Data(ch)) {
			t.Fatalf("seed %d: chunk %s restored and snapshotted again: %d bytes, not the %d written", seed, ch.Key, len(again), len(r.Data(ch)))
		}
	}
}
