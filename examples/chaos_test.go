package examples

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
)

var (
	chaosSeeds = flag.Int("chaos.seeds", 3, "TestChaos: how many seeds of kills to run each job under (CI runs 20)")
	chaosSeed  = flag.Uint64("chaos.seed", 0, "TestChaos: run only this seed (to replay a failure)")
	chaosKills = flag.Int("chaos.kills", 10, "TestChaos: kills per run")
	chaosScale = flag.Int64("chaos.scale", 1, "TestChaos: multiplies the jobs' rows (the long run: -chaos.scale 50 -chaos.kills 100, 10 M rows)")
	chaosEvery = flag.String("chaos.every", "100ms,5ms", "TestChaos: the checkpoint intervals to run under")
)

// TestChaos runs W1 (orders-join, Parquet tables in), W3
// (events-windows) and Nexmark q5 and q8 on actors with checkpoints to local files every 100 ms
// and, so that most recoveries restore one on data this small, every 5 ms,
// and kills instances at seeded moments: every run's output, printed and
// written, is exactly the run's without checkpoints or kills.
func TestChaos(t *testing.T) {
	dir := t.TempDir()
	scale := *chaosScale
	orders := OrdersSpec{Seed: 7, Orders: 200_000 * scale, Users: 10_000, Zipf: 1.1, Days: 3, Splits: 4}
	events := EventsSpec{Seed: 5, Events: 200_000 * scale, Users: 10_000, Zipf: 1.1, Every: smallEvents.Every,
		Disorder: smallEvents.Disorder, Splits: 4}
	tables := filepath.Join(dir, "tables")
	runJob(t, GenOrders, with(orders.args(""), "out", tables), 2)
	jobs := []agreeJob{
		{job: OrdersJoin, args: func(out string) map[string]string {
			return map[string]string{"orders": filepath.Join(tables, "orders"), "users": filepath.Join(tables, "users"), "out": out}
		}},
		{job: EventsWindows, args: func(out string) map[string]string { return with(events.args("n-"), "out", out) }},
		{job: NexmarkQ5, args: nexmarkArgs(fmt.Sprint(10_000 * scale))},
		{job: NexmarkQ8, args: nexmarkArgs(fmt.Sprint(10_000 * scale))},
	}
	seeds := []uint64{*chaosSeed}
	if *chaosSeed == 0 {
		seeds = seeds[:0]
		for s := range *chaosSeeds {
			seeds = append(seeds, uint64(s+1))
		}
	}
	for i, j := range jobs {
		out := filepath.Join(dir, fmt.Sprintf("out%d", i))
		want, clean := runCanonical(t, j, out, sluice.Options{Parallelism: 2, Seed: 1})
		for _, e := range strings.Split(*chaosEvery, ",") {
			every, err := time.ParseDuration(e)
			if err != nil {
				t.Fatalf("-chaos.every: %v", err)
			}
			restored, recoveries := 0, 0
			for _, seed := range seeds {
				cfg := actors.DefaultConfig()
				cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewLocal(filepath.Join(dir, fmt.Sprintf("ck%d-%d-%v", i, seed, every))),
					Every: every, Timeout: 30 * time.Second,
					Recovery: actors.RestartPolicy{MaxRestarts: 3, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
				cfg.Chaos = &actors.ChaosConfig{Kills: *chaosKills, Seed: seed}
				got, res := runCanonical(t, j, out, sluice.Options{Parallelism: 2, Seed: 1, Runtime: &cfg})
				if got != want {
					t.Logf("lines: want %d, got %d; recoveries %+v", strings.Count(want, "\n"), strings.Count(got, "\n"), res.Recoveries)
					t.Fatalf("%s: checkpoints every %v, seed %d (replay: go test ./examples -run TestChaos -chaos.seed=%d): the output after %d kills differs from the clean run's:\n%s",
						j.job.Name, every, seed, seed, len(res.Kills), firstLineDiff(want, got))
				}
				if len(res.Kills) != *chaosKills {
					t.Fatalf("%s: checkpoints every %v, seed %d: %d kills, want %d; kills %+v; recoveries %+v",
						j.job.Name, every, seed, len(res.Kills), *chaosKills, res.Kills, res.Recoveries)
				}
				for _, r := range res.Recoveries {
					recoveries++
					if r.Checkpoint != 0 {
						restored++
					}
				}
			}
			t.Logf("%s: checkpoints every %v: %d seeds × %d kills, output equal to the clean run's (%v); %d of %d recoveries from a checkpoint",
				j.job.Name, every, len(seeds), *chaosKills, clean.Elapsed.Round(time.Millisecond), restored, recoveries)
		}
	}
}
