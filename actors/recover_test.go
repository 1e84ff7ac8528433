package actors_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/stages"
)

var recoverSeeds = flag.Int("recover.seeds", 30, "TestRecoveryOnSim: how many seeds to run")

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
