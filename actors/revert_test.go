package actors_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/stages"
)

// refuseCommit is a sink whose every commit fails.
type refuseCommit struct{}

func (refuseCommit) Open(context.Context, stages.Instance) (stages.Writer[int64], error) {
	return refuseWriter{}, nil
}

type refuseWriter struct{}

func (refuseWriter) Write([]int64) error { return nil }
func (refuseWriter) Prepare() error      { return nil }
func (refuseWriter) Commit() error       { return errors.New("commit refused") }
func (refuseWriter) Abort() error        { return nil }

// countCommit counts its commits and reverts.
type countCommit struct{ commits, reverts *atomic.Int64 }

func (c countCommit) Open(context.Context, stages.Instance) (stages.Writer[int64], error) {
	return countWriter(c), nil
}

type countWriter countCommit

func (countWriter) Write([]int64) error { return nil }
func (countWriter) Prepare() error      { return nil }
func (w countWriter) Commit() error     { w.commits.Add(1); return nil }
func (countWriter) Abort() error        { return nil }
func (w countWriter) Revert() error     { w.reverts.Add(1); return nil }

// A commit that fails after other sinks committed reverts them: the
// collection is empty again, the JSON lines files are gone, and a sink of
// the user's own is asked to revert. Sinks commit in the order they were
// added, so counting's commits show the ones before it committed.
func TestFailedCommitRevertsCommittedSinks(t *testing.T) {
	dir := t.TempDir()
	p := stages.NewPipeline("commit-order")
	src := stages.Sequence(p, 0, 5000)
	c := stages.Collect(src)
	jsonl.Write(src, dir, stages.Parallelism(2))
	var commits, reverts atomic.Int64
	stages.Write(src, countCommit{&commits, &reverts}, stages.Parallelism(2))
	stages.Write(src, refuseCommit{})
	_, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2})
	if err == nil || !strings.Contains(err.Error(), "commit refused") {
		t.Fatalf("want the job to fail in the commit, got %v", err)
	}
	if strings.Contains(err.Error(), "revert") {
		t.Fatalf("a sink failed to revert: %v", err)
	}
	if commits.Load() != 2 || reverts.Load() != 2 {
		t.Fatalf("the counting sink committed %d times and reverted %d, want 2 and 2", commits.Load(), reverts.Load())
	}
	if got := c.Values(); len(got) != 0 {
		t.Fatalf("the collection holds %d records of a failed job", len(got))
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !e.IsDir() {
			t.Fatalf("left behind: %s", e.Name())
		}
	}
}
