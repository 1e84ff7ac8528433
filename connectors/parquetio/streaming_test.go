package parquetio_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/internal/commit"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// TestStreamingPublishesAtCheckpoints: a job that does not end by itself
// writing Parquet with checkpoints every 10 ms publishes its files as
// checkpoints complete: while it still runs, the output's manifest lists
// every row, once, at a checkpoint; when its source ends, the last commit
// leaves the same rows. Under chaos kills too: every row once.
func TestStreamingPublishesAtCheckpoints(t *testing.T) {
	const n = 20_000
	for _, kills := range []int{0, 3} {
		out := filepath.Join(t.TempDir(), "out")
		release := make(chan struct{})
		cfg := actors.DefaultConfig()
		cfg.BatchRecords = 256
		cfg.Linger = 2 * time.Millisecond
		cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewLocal(filepath.Join(t.TempDir(), "ck")),
			Every: 10 * time.Millisecond, Timeout: 30 * time.Second,
			Recovery: actors.RestartPolicy{MaxRestarts: 10, Window: time.Minute, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
		if kills > 0 {
			cfg.Chaos = &actors.ChaosConfig{Kills: kills, Seed: 5}
		}
		p := stages.NewPipeline("streaming")
		ids := stages.Read[int64](p, testenv.HoldSource{N: n, Release: release}, stages.Parallelism(1))
		rows := stages.Map(ids, func(id int64) Row { return Row{Part: id % 4, ID: id} }, stages.Parallelism(2))
		stages.Write(rows, parquetio.Sink[Row](out, parquetio.PartitionBy("part")), stages.Parallelism(2))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		x, err := sluice.Start(ctx, p, sluice.Options{Runtime: &cfg})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		// While the job runs: every row published, at a checkpoint.
		var m *commit.Manifest
		for deadline := time.Now().Add(60 * time.Second); ; {
			m, _, err = commit.ReadManifest(ctx, commit.Local{}, out)
			if err != nil {
				t.Fatal(err)
			}
			if m != nil && rowsOf(m) == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kills %d: after 60 s the manifest lists %v rows, want %d", kills, m, n)
			}
			select {
			case <-x.Done():
				t.Fatalf("kills %d: the job ended while its source held", kills)
			case <-time.After(10 * time.Millisecond):
			}
		}
		if m.Checkpoint == 0 {
			t.Fatalf("kills %d: the manifest was not published at a checkpoint: %+v", kills, m)
		}
		at := m.Checkpoint
		if got := readIDs(t, out); !consecutive(got, n) {
			t.Fatalf("kills %d: while running, the output holds %d rows, want the IDs 0..%d once each", kills, len(got), n-1)
		}
		close(release)
		res, err := x.Wait()
		cancel()
		if err != nil {
			t.Fatalf("kills %d: %v", kills, err)
		}
		if len(res.Kills) != kills {
			t.Fatalf("%d kills, want %d", len(res.Kills), kills)
		}
		m, _, err = commit.ReadManifest(context.Background(), commit.Local{}, out)
		if err != nil || m == nil || rowsOf(m) != n || m.Checkpoint != 0 {
			t.Fatalf("kills %d: at the end the manifest is %+v (%v), want %d rows and the end's checkpoint 0", kills, m, err, n)
		}
		if got := readIDs(t, out); !consecutive(got, n) {
			t.Fatalf("kills %d: at the end the output holds %d rows, want the IDs 0..%d once each", kills, len(got), n-1)
		}
		from := 0
		for _, r := range res.Recoveries {
			if r.Checkpoint != 0 {
				from++
			}
		}
		t.Logf("kills %d: every row published by checkpoint %d while the job ran; %d checkpoints; %d recoveries, %d from a checkpoint",
			kills, at, len(res.Checkpoints), len(res.Recoveries), from)
	}
}

func rowsOf(m *commit.Manifest) int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Rows
	}
	return n
}

// readIDs reads the output's rows, by its manifest, and returns their IDs
// sorted.
func readIDs(t *testing.T, url string) []int64 {
	t.Helper()
	p := stages.NewPipeline("read-ids")
	c := stages.Collect(parquetio.Read[Row](p, url))
	mustRun(t, p)
	var ids []int64
	for _, r := range c.Values() {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

func consecutive(ids []int64, n int64) bool {
	if int64(len(ids)) != n {
		return false
	}
	for i, id := range ids {
		if id != int64(i) {
			return false
		}
	}
	return true
}
