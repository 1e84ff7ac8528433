package parquetio_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/internal/commit"
	"github.com/sluice-data/sluice/stages"
)

var (
	resumeSeeds = flag.Int("resume.seeds", 6, "TestResumeAfterCrashBeforeManifest: how many seeds to run")
	resumeSeed  = flag.Uint64("resume.seed", 0, "TestResumeAfterCrashBeforeManifest: run only this seed (to replay a failure)")
)

// errKilled is what the publishing rename returns once the process it
// stands for is killed.
var errKilled = errors.New("the process was killed")

// process returns Instance.Shared for one process of a run.
func process() func(string, func() (any, error)) (any, error) {
	var mu sync.Mutex
	vals := map[string]any{}
	return func(key string, build func() (any, error)) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		if v, ok := vals[key]; ok {
			return v, nil
		}
		v, err := build()
		if err == nil {
			vals[key] = v
		}
		return v, err
	}
}

// TestResumeAfterCrashBeforeManifest drives the Parquet sink of a job that
// does not end by itself as the runtime does, and kills its process at a
// seeded checkpoint's completion once every file staged before the
// barrier is renamed into the output, before the manifest naming them is
// written. A new process of the run restores that checkpoint (Reopen,
// Resumed) and replays the source from its position: the next checkpoint's
// manifest, and the one at the run's end, name every file exactly once,
// no file published before the crash is deleted, and the output reads
// back each row once. Over a fresh output (the default mode,
// ErrorIfExists) and over an older run's snapshot (Overwrite).
func TestResumeAfterCrashBeforeManifest(t *testing.T) {
	seeds := make([]uint64, *resumeSeeds)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	if *resumeSeed != 0 {
		seeds = []uint64{*resumeSeed}
	}
	for _, seed := range seeds {
		for _, over := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed=%d/old=%v", seed, over), func(t *testing.T) {
				resumeAfterCrash(t, seed, over)
			})
		}
	}
}

func resumeAfterCrash(t *testing.T, seed uint64, over bool) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 0))
	out := filepath.Join(t.TempDir(), "out")
	opts := []parquetio.WriteOption{parquetio.PartitionBy("part")}
	if over {
		if err := writeRows(t, out, 1, 100); err != nil {
			t.Fatal(err)
		}
		opts = append(opts, parquetio.Overwrite)
	}
	old := parquetFiles(t, out) // the older run's snapshot's, which Overwrite deletes
	parts := 1 + rng.Int64N(4)
	crashAt := 1 + rng.Uint64N(3)
	t.Logf("seed %d (-resume.seed): %d partitions, killed at checkpoint %d's completion", seed, parts, crashAt)

	// The source: rows by ID; pos[ck] is its position at checkpoint ck's
	// barrier.
	var next int64
	pos := map[uint64]int64{}
	write := func(w stages.Writer[Row], n int64) {
		t.Helper()
		rows := make([]Row, n)
		for i := range rows {
			rows[i] = Row{Part: next % parts, ID: next, Version: 2}
			next++
		}
		if err := w.Write(rows); err != nil {
			t.Fatal(err)
		}
	}
	rows := func() int64 { return parts + rng.Int64N(400) } // every partition gets some
	checkpoint := func(w stages.Publisher, ck uint64) []byte {
		t.Helper()
		state, err := w.Checkpoint(ck)
		if err != nil {
			t.Fatal(err)
		}
		pos[ck] = next
		return state
	}

	inst := stages.Instance{Job: "resume", Run: "live", Stage: "sink", Index: 0, Parallelism: 1, MaxParallelism: 1,
		Attempt: 1, Unbounded: true, Shared: process()}
	sink := parquetio.Sink[Row](out, opts...)
	ow, err := sink.Open(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	w := ow.(stages.Publisher)
	var state []byte
	for ck := uint64(1); ck <= crashAt; ck++ {
		write(ow, rows())
		state = checkpoint(w, ck)
		if ck < crashAt {
			if err := w.Completed(ck); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(ow, rng.Int64N(300)) // after the barrier: lost with the process, and replayed
	left := parts              // the files staged before the barrier: one per partition
	restore := parquetio.SetRename(func(from, to string) error {
		if err := os.Rename(from, to); err != nil {
			return err
		}
		if left--; left == 0 {
			return errKilled
		}
		return nil
	})
	err = w.Completed(crashAt)
	restore()
	if !errors.Is(err, errKilled) {
		t.Fatalf("checkpoint %d's completion: %v, want the process killed after its renames", crashAt, err)
	}
	// The process is gone. Its lease goes as Suspend lets it go, released
	// dirty, which the next process of the run takes over with the clean-up
	// it does after a dead one's (a lease whose process has died).
	sink.SuspendJob(ctx, inst)
	published := slices.DeleteFunc(parquetFiles(t, out), func(p string) bool { return slices.Contains(old, p) })
	listed := manifest(t, out).Paths()
	unlisted := slices.DeleteFunc(slices.Clone(published), func(p string) bool {
		rel, _ := filepath.Rel(out, p)
		return slices.Contains(listed, filepath.ToSlash(rel))
	})
	if len(unlisted) != int(parts) {
		t.Fatalf("after the crash the manifest does not name %q, want checkpoint %d's %d files", unlisted, crashAt, parts)
	}

	// A new process restores checkpoint crashAt and replays from there.
	inst.Resumed, inst.Restored, inst.Shared = true, crashAt, process()
	next = pos[crashAt]
	sink = parquetio.Sink[Row](out, opts...)
	ow, err = sink.Reopen(ctx, inst, state)
	if err != nil {
		t.Fatalf("reopening at checkpoint %d after the crash: %v", crashAt, err)
	}
	w = ow.(stages.Publisher)
	for _, p := range published {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("resuming deleted %s, published before the crash: %v", p, err)
		}
	}
	write(ow, rows())
	checkpoint(w, crashAt+1)
	write(ow, rng.Int64N(300)) // after the barrier: published at the end
	if err := w.Completed(crashAt + 1); err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, out, crashAt+1, pos[crashAt+1])

	if err := ow.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := ow.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := sink.CommitJob(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := sink.FinishJob(ctx, inst, false); err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, out, 0, next)
	for _, p := range published {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the run deleted %s, published before the crash: %v", p, err)
		}
	}
}

// checkSnapshot checks that the output's manifest was published at
// checkpoint ck and names every Parquet file in the output once, and that
// the output reads back as rows 0 to n-1 once each.
func checkSnapshot(t *testing.T, out string, ck uint64, n int64) {
	t.Helper()
	m := manifest(t, out)
	if m.Checkpoint != ck {
		t.Fatalf("the manifest was published at checkpoint %d, want %d", m.Checkpoint, ck)
	}
	var listed []string
	for _, p := range m.Paths() {
		listed = append(listed, filepath.Join(out, filepath.FromSlash(p)))
	}
	if compacted := slices.Compact(slices.Clone(listed)); len(compacted) != len(listed) {
		t.Fatalf("at checkpoint %d the manifest names a file twice: %q", ck, listed)
	}
	if got := parquetFiles(t, out); !slices.Equal(got, listed) {
		t.Fatalf("at checkpoint %d the output holds %q, the manifest names %q", ck, got, listed)
	}
	if rowsOf(m) != n {
		t.Fatalf("at checkpoint %d the manifest counts %d rows, want %d", ck, rowsOf(m), n)
	}
	if got := readIDs(t, out); !consecutive(got, n) {
		t.Fatalf("at checkpoint %d the output reads back %d rows, want the IDs 0..%d once each", ck, len(got), n-1)
	}
}

func manifest(t *testing.T, out string) *commit.Manifest {
	t.Helper()
	m, _, err := commit.ReadManifest(context.Background(), commit.Local{}, out)
	if err != nil {
		t.Fatal(err)
	}
	if m == nil {
		m = &commit.Manifest{}
	}
	return m
}

// parquetFiles lists the Parquet files of the output outside Sluice's
// directory, sorted.
func parquetFiles(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == commit.InternalDir {
			return filepath.SkipDir
		}
		if !d.IsDir() && filepath.Ext(p) == ".parquet" {
			got = append(got, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}
