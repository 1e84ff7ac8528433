package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/codec"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/examples"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/state"
)

var flagCkEvents = flag.Int64("ck.events", 100_000_000, "BenchmarkCheckpoints: events W3 generates (0: read the Parquet events)")

// BenchmarkCheckpoints measures what checkpoints cost W3 (events counted
// and summed per user and minute of event time, into Parquet), side by
// side in one run: none, then every second to local files, then every
// second to S3 (a VersityGW at $SLUICE_S3_ENDPOINT, skipped without one).
// By default W3 generates 100M events in the job (-ck.events), about 12 s
// a run, so that each run holds a dozen checkpoints; -ck.events 0 reads the
// Parquet events instead. Run each for 30 s or more, several times:
//
//	go test -run - -bench Checkpoints -benchtime 3x -count 2 ./bench/
//
// Besides rows/s it reports the checkpoints' mean duration (ckpt-ms), their
// longest alignment (align-ms), their mean size (ckpt-MB) and the bytes of
// keyed state per key held (B/key, see keyedState). The
// sub-benchmarks stalled-sink and recovery measure the alignment time
// behind a sink that stalls 2 ms every 1024 panes, and the time from a
// kill to the first record read after the recovery (recovery-ms); rescale
// the time to the first record read of a restore at parallelism 3 of a
// checkpoint taken at 2 (restore-ms).
func BenchmarkCheckpoints(b *testing.B) {
	d := getData(b)
	w3 := func(b *testing.B, opts sluice.Options) *sluice.Result {
		args := map[string]string{"events": d.events, "out": filepath.Join(b.TempDir(), "w3")}
		if *flagCkEvents > 0 { // generated in the job: long runs, many checkpoints each
			args = map[string]string{"n-events": fmt.Sprint(*flagCkEvents), "out": args["out"]}
		}
		p, err := examples.EventsWindows.Build(args)
		if err != nil {
			b.Fatal(err)
		}
		res, err := sluice.Run(context.Background(), p, opts)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	report := func(b *testing.B, results []*sluice.Result, store checkpoints.Store) {
		var n, bytes int64
		var took, align time.Duration
		for _, res := range results {
			for _, c := range res.Checkpoints {
				if c.Completed {
					n++
					bytes += c.Bytes
					took += time.Duration(c.End - c.Start)
					align = max(align, c.Alignment)
				}
			}
		}
		if n == 0 {
			b.Logf("no checkpoint completed")
			return
		}
		b.ReportMetric(float64(n)/float64(len(results)), "ckpts/run")
		b.ReportMetric(took.Seconds()*1e3/float64(n), "ckpt-ms")
		b.ReportMetric(align.Seconds()*1e3, "align-ms")
		b.ReportMetric(float64(bytes)/float64(n)/1e6, "ckpt-MB")
		reportPerKey(b, retained(b, store)...)
	}
	rows := d.nEvts
	if *flagCkEvents > 0 {
		rows = *flagCkEvents
	}
	for _, store := range []string{"none", "local", "s3"} {
		b.Run(store, func(b *testing.B) {
			opts := sluice.Options{}
			switch store {
			case "local":
				opts.Checkpoints, opts.CheckpointEvery = b.TempDir(), time.Second
			case "s3":
				if os.Getenv("SLUICE_S3_ENDPOINT") == "" {
					b.Skip("no S3 endpoint: set SLUICE_S3_ENDPOINT (and AWS_*) to a VersityGW")
				}
				_, _, urlOf := testenv.S3Bucket(b, "bench")
				opts.Checkpoints, opts.CheckpointEvery = urlOf("checkpoints"), time.Second
			}
			var results []*sluice.Result
			measure(b, rows, func() error {
				results = append(results, w3(b, opts))
				return nil
			})
			var store checkpoints.Store
			if opts.Checkpoints != "" {
				var err error
				if store, err = checkpoints.Open(context.Background(), opts.Checkpoints); err != nil {
					b.Fatal(err)
				}
			}
			report(b, results, store)
		})
	}
	b.Run("stalled-sink", func(b *testing.B) {
		var results []*sluice.Result
		var store checkpoints.Store // the last run's
		measure(b, d.nEvts, func() error {
			p := stages.NewPipeline("w3-stalled")
			events := parquetio.Read[examples.Event](p, d.events, parquetio.StageOptions(stages.Name("events")))
			// The stall: the sink waits 2 ms every 1024 panes, so that
			// barriers queue behind data that can hardly move.
			var panes atomic.Int64
			stages.ForEach(examples.UserMinutes(events), func(examples.UserWindow) error {
				if panes.Add(1)%1024 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
				return nil
			}, stages.Name("stall"))
			store = checkpoints.NewMem()
			cfg := actors.DefaultConfig()
			cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: 200 * time.Millisecond, Timeout: time.Minute}
			res, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
			if err != nil {
				return err
			}
			results = append(results, res)
			return nil
		})
		report(b, results, store)
	})
	b.Run("recovery", func(b *testing.B) {
		var restores []time.Duration
		from := 0
		measure(b, rows, func() error {
			cfg := actors.DefaultConfig()
			cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewLocal(b.TempDir()), Every: time.Second, Timeout: time.Minute}
			cfg.Chaos = &actors.ChaosConfig{Kills: 1, Seed: uint64(len(restores) + 1)}
			res := w3(b, sluice.Options{Runtime: &cfg})
			for _, r := range res.Recoveries {
				restores = append(restores, r.Restored)
				if r.Checkpoint != 0 {
					from++
				}
			}
			return nil
		})
		if len(restores) > 0 {
			slices.Sort(restores)
			b.ReportMetric(restores[len(restores)/2].Seconds()*1e3, "recovery-ms")
			b.ReportMetric(restores[len(restores)-1].Seconds()*1e3, "recovery-max-ms")
			b.Logf("%d recoveries, %d from a checkpoint; time to the first record read again: %v", len(restores), from, restores)
		}
	})
	// rescale: W3 at parallelism 2 stopped at a checkpoint halfway through
	// its events, then restored at parallelism 3 (an op is both runs):
	// the time from the restore's start to its first record read
	// (restore-ms) and the checkpoint's size.
	b.Run("rescale", func(b *testing.B) {
		if *flagCkEvents <= 0 {
			b.Skip("needs generated events (-ck.events)")
		}
		var restores []time.Duration
		var size int64
		var half *checkpoints.Restored // the last run's checkpoint taken halfway
		measure(b, rows, func() error {
			store := checkpoints.NewLocal(b.TempDir())
			out := filepath.Join(b.TempDir(), "w3")
			run := func(par int, cfg actors.Config) (*sluice.Result, error) {
				p, err := examples.EventsWindows.Build(map[string]string{"n-events": fmt.Sprint(*flagCkEvents), "out": out})
				if err != nil {
					return nil, err
				}
				return sluice.Run(context.Background(), p, sluice.Options{Parallelism: par, Runtime: &cfg})
			}
			cfg := actors.DefaultConfig()
			cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: time.Second, Timeout: time.Minute}
			cfg.Chaos = &actors.ChaosConfig{StopAt: *flagCkEvents / 2}
			var stopped *actors.StoppedError
			if _, err := run(2, cfg); !errors.As(err, &stopped) {
				return fmt.Errorf("stopping halfway: %v, want a *StoppedError", err)
			}
			r, err := checkpoints.New(store).Read(context.Background(), stopped.Checkpoint)
			if err != nil {
				return err
			}
			size, half = r.Size(), r
			cfg = actors.DefaultConfig()
			cfg.Checkpoints = &actors.CheckpointConfig{Store: store, Every: time.Second, Timeout: time.Minute, Restore: "latest"}
			res, err := run(3, cfg)
			if err != nil {
				return err
			}
			if len(res.Recoveries) > 0 {
				restores = append(restores, res.Recoveries[0].Restored)
			}
			return nil
		})
		if len(restores) > 0 {
			slices.Sort(restores)
			b.ReportMetric(restores[len(restores)/2].Seconds()*1e3, "restore-ms")
			b.ReportMetric(float64(size)/1e6, "ckpt-MB")
			reportPerKey(b, half)
		}
	})
}

// retained reads the complete checkpoints that store holds at the end of
// a benchmark: the last run's newest three (Retain's default); none
// without a store.
func retained(b *testing.B, store checkpoints.Store) []*checkpoints.Restored {
	if store == nil {
		return nil
	}
	ctx := context.Background()
	dir := checkpoints.New(store)
	ids, err := dir.Complete(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var out []*checkpoints.Restored
	for _, id := range ids {
		r, err := dir.Read(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// reportPerKey reports B/key over checkpoints rs: the bytes of their keyed
// state over the keys it holds (keyedState), summed over rs.
func reportPerKey(b *testing.B, rs ...*checkpoints.Restored) {
	var bytes, keys int64
	for _, r := range rs {
		n, k := keyedState(b, r)
		bytes += n
		keys += k
	}
	if keys > 0 {
		b.ReportMetric(float64(bytes)/float64(keys), "B/key")
	}
}

// keyedState returns the bytes of checkpoint r's keyed state (its chunks,
// as stored: not the instances' pieces in the manifest, such as source
// positions and what a sink has staged) and the keys that state holds.
// W3's only keyed stage is its window aggregation, so a key is one user's
// accumulator in one window open at the checkpoint: a user with events in
// two open minutes counts twice. They are counted by restoring each chunk
// as the stage does (state.Windows, the key groups of stages' KeyBy
// hash) and taking every window back out.
func keyedState(b *testing.B, r *checkpoints.Restored) (bytes, keys int64) {
	groups := state.Groups[int64]{Hash: func(k int64) uint64 { return state.Mix64(uint64(k)) }, Max: r.MaxParallelism}
	kc, ac := codec.MustFor[int64](), codec.MustFor[examples.Tally]()
	for _, c := range r.Chunks {
		data := r.Data(c)
		kind, rg, err := state.ChunkRange(data)
		if err != nil {
			b.Fatalf("checkpoint %d, stage %s: %v", r.ID, c.Stage, err)
		}
		if kind != state.KindWindows {
			b.Fatalf("checkpoint %d, stage %s: a chunk of %v state, where W3 has only window aggregation's", r.ID, c.Stage, kind)
		}
		ws := state.NewWindows[int64, examples.Tally](groups, 0)
		if err := ws.Restore(data, rg, kc, ac); err != nil {
			b.Fatalf("checkpoint %d, stage %s: %v", r.ID, c.Stage, err)
		}
		ws.Advance(math.MaxInt64)
		for {
			_, ts, ok := ws.Ended()
			if !ok {
				break
			}
			for _, t := range ts {
				if t != nil {
					keys += int64(t.Len())
				}
			}
		}
		bytes += c.Size
	}
	return bytes, keys
}
