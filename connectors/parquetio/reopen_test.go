package parquetio_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// sinkRun drives the instances of a Parquet sink partitioned by part, in a
// job that does not end by itself, as the runtime does, over the processes
// of one run: the source gives rows by ID, row i to instance i mod the
// parallelism, and a process that restores a checkpoint replays it from
// the checkpoint's position.
type sinkRun struct {
	t      *testing.T
	out    string
	n      int   // instances
	parts  int64 // partitions
	next   int64 // the source's next ID
	pos    map[uint64]int64
	states map[uint64][][]byte // each instance's state at each checkpoint

	// The process now.
	sink  *parquetio.FileSink[Row]
	insts []stages.Instance
	ws    []stages.Writer[Row]
}

func startSinkRun(t *testing.T, instances int, parts int64) *sinkRun {
	t.Helper()
	r := &sinkRun{t: t, out: filepath.Join(t.TempDir(), "out"), n: instances, parts: parts,
		pos: map[uint64]int64{}, states: map[uint64][][]byte{}}
	r.process(0)
	return r
}

// process starts a process of the run: the first (ck 0), or one that
// restores checkpoint ck, its instances reopened at their states there
// (Resumed) and the source rewound to its position.
func (r *sinkRun) process(ck uint64) {
	r.t.Helper()
	ctx := context.Background()
	shared := process()
	r.sink = parquetio.Sink[Row](r.out, parquetio.PartitionBy("part"))
	r.insts, r.ws = nil, nil
	for i := range r.n {
		inst := stages.Instance{Job: "reopen", Run: "live", Stage: "sink", Index: i, Parallelism: r.n, MaxParallelism: r.n,
			Attempt: 1, Unbounded: true, Shared: shared}
		var w stages.Writer[Row]
		var err error
		if ck == 0 {
			w, err = r.sink.Open(ctx, inst)
		} else {
			inst.Resumed, inst.Restored = true, ck
			w, err = r.sink.Reopen(ctx, inst, r.states[ck][i])
		}
		if err != nil {
			r.t.Fatalf("instance %d, restoring checkpoint %d: %v", i, ck, err)
		}
		r.insts, r.ws = append(r.insts, inst), append(r.ws, w)
	}
	if ck != 0 {
		r.next = r.pos[ck]
	}
}

// write writes the source's next n rows.
func (r *sinkRun) write(n int64) {
	r.t.Helper()
	batches := make([][]Row, r.n)
	for range n {
		i := r.next % int64(r.n)
		batches[i] = append(batches[i], Row{Part: r.next % r.parts, ID: r.next, Version: 1})
		r.next++
	}
	for i, w := range r.ws {
		if err := w.Write(batches[i]); err != nil {
			r.t.Fatal(err)
		}
	}
}

// checkpoint passes checkpoint ck's barrier through every instance.
func (r *sinkRun) checkpoint(ck uint64) {
	r.t.Helper()
	states := make([][]byte, r.n)
	for i, w := range r.ws {
		st, err := w.(stages.Publisher).Checkpoint(ck)
		if err != nil {
			r.t.Fatal(err)
		}
		states[i] = st
	}
	r.states[ck], r.pos[ck] = states, r.next
}

// complete runs checkpoint ck's completion at every instance.
func (r *sinkRun) complete(ck uint64) {
	r.t.Helper()
	for i, w := range r.ws {
		if err := w.(stages.Publisher).Completed(ck); err != nil {
			r.t.Fatalf("instance %d, completing checkpoint %d: %v", i, ck, err)
		}
	}
}

// staged counts the files instance i has staged.
func (r *sinkRun) staged(i int) int {
	r.t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(r.out, "_sluice", "staging", "live", fmt.Sprintf("%05d", i)), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".inprogress") {
			n++
		}
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return n
}

// kill runs checkpoint ck's completion at the instances before i, and
// kills the process at instance i's once it has renamed renames files into
// the output, before it writes the manifest.
func (r *sinkRun) kill(ck uint64, i, renames int) {
	r.t.Helper()
	for j := range i {
		if err := r.ws[j].(stages.Publisher).Completed(ck); err != nil {
			r.t.Fatalf("instance %d, completing checkpoint %d: %v", j, ck, err)
		}
	}
	restore := parquetio.SetRename(func(from, to string) error {
		if err := os.Rename(from, to); err != nil {
			return err
		}
		if renames--; renames == 0 {
			return errKilled
		}
		return nil
	})
	err := r.ws[i].(stages.Publisher).Completed(ck)
	restore()
	if !errors.Is(err, errKilled) {
		r.t.Fatalf("instance %d, completing checkpoint %d: %v, want the process killed after its renames", i, ck, err)
	}
	r.stop()
}

// stop ends the process without committing: the lease is let go as
// SuspendJob lets it go, released dirty, and the staged files stay.
func (r *sinkRun) stop() {
	r.sink.SuspendJob(context.Background(), r.insts[0])
}

// finish ends the job: every instance commits, then the job.
func (r *sinkRun) finish() {
	r.t.Helper()
	ctx := context.Background()
	for _, w := range r.ws {
		if err := w.Prepare(); err != nil {
			r.t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			r.t.Fatal(err)
		}
	}
	if err := r.sink.CommitJob(ctx, r.insts[0]); err != nil {
		r.t.Fatal(err)
	}
	if err := r.sink.FinishJob(ctx, r.insts[0], false); err != nil {
		r.t.Fatal(err)
	}
}

// unlisted returns the Parquet files of the output that its manifest does
// not list.
func (r *sinkRun) unlisted() []string {
	r.t.Helper()
	listed := manifest(r.t, r.out).Paths()
	return slices.DeleteFunc(parquetFiles(r.t, r.out), func(p string) bool {
		rel, _ := filepath.Rel(r.out, p)
		return slices.Contains(listed, filepath.ToSlash(rel))
	})
}

// TestRestoreAfterResumedRunEndsAgain: a process is killed at checkpoint
// 2's completion once instance 1 has renamed its files into the output,
// before a manifest lists them (instance 0's completion wrote its own). A
// new process restores checkpoint 2, which lists those files at once,
// before the writers go on; it then ends again before writing another
// manifest: stopped at checkpoint 3, which has nothing new to publish, or
// killed at checkpoint 3's completion once instance 0 has renamed its
// files, before any manifest lists them. A third process restores
// checkpoint 3, whose states no longer name checkpoint 2's files: its
// manifests list every row once, and the output holds nothing else.
func TestRestoreAfterResumedRunEndsAgain(t *testing.T) {
	for _, killed := range []bool{false, true} {
		t.Run(fmt.Sprintf("killed=%v", killed), func(t *testing.T) {
			r := startSinkRun(t, 2, 3)
			r.write(100)
			r.checkpoint(1)
			r.complete(1)
			r.write(100)
			r.checkpoint(2)
			r.kill(2, 1, r.staged(1))
			if len(r.unlisted()) == 0 {
				t.Fatal("after the kill the manifest lists every file: the kill came too late")
			}

			r.process(2)
			checkSnapshot(t, r.out, 2, r.pos[2])
			if killed {
				r.write(100)
				r.checkpoint(3)
				r.kill(3, 0, r.staged(0))
			} else {
				r.checkpoint(3)
				r.complete(3)
				r.stop()
			}

			r.process(3)
			if u := r.unlisted(); len(u) > 0 {
				t.Fatalf("restored at checkpoint 3, the output holds %q, which its manifest does not list", u)
			}
			r.write(100)
			r.checkpoint(4)
			r.complete(4)
			checkSnapshot(t, r.out, 4, r.pos[4])
			r.write(100)
			r.finish()
			checkSnapshot(t, r.out, 0, r.next)
		})
	}
}

// TestRestoreOlderCheckpointDeletesLaterFiles: a process is killed at
// checkpoint 2's completion once instance 0 has renamed one, two or all
// three of its files into the output (in the order of their partitions,
// not of their numbers), before any manifest lists them, and a new
// process restores checkpoint 1. What checkpoint 2's completion published
// holds rows the replay writes again: reopening deletes it, so that the
// output holds only what its manifest lists (a reader that globs
// *.parquet reads each row once), and the replay's manifests list every
// row once.
func TestRestoreOlderCheckpointDeletesLaterFiles(t *testing.T) {
	for _, renames := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("renames=%d", renames), func(t *testing.T) {
			r := startSinkRun(t, 2, 3)
			r.write(100)
			r.checkpoint(1)
			r.complete(1)
			r.write(100)
			r.checkpoint(2)
			if n := r.staged(0); n != 3 {
				t.Fatalf("instance 0 staged %d files before checkpoint 2's barrier, want one a partition", n)
			}
			r.kill(2, 0, renames)
			if got := len(r.unlisted()); got != renames {
				t.Fatalf("after the kill the output holds %d files its manifest does not list, want %d", got, renames)
			}

			r.process(1)
			checkSnapshot(t, r.out, 1, r.pos[1])
			r.write(2)
			r.checkpoint(3)
			r.complete(3)
			checkSnapshot(t, r.out, 3, r.pos[3])
			r.write(100)
			r.finish()
			checkSnapshot(t, r.out, 0, r.next)
		})
	}
}
