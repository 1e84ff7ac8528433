package jsonl_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/stages"
)

// A Commit that renames its file and then fails (here: instance 0 cannot
// delete an earlier run's stale part, made immutable) is undone by Abort:
// the renamed file is deleted and the staging directory, left empty, too.
// It needs chattr and a file system that honours +i, and skips without.
func TestHalfFailedCommitIsUndone(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, jsonl.PartName(3))
	if err := os.WriteFile(stale, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chattr", "+i", stale).CombinedOutput(); err != nil {
		t.Skipf("cannot make a file immutable here (chattr +i): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", stale).Run() })
	if err := os.Remove(stale); err == nil {
		t.Skip("an immutable file can still be removed here")
	}
	p := stages.NewPipeline("half-commit")
	jsonl.Write(stages.Sequence(p, 0, 100), dir, stages.Parallelism(1))
	_, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 1})
	if err == nil {
		t.Fatal("the job committed although instance 0 could not delete the stale part")
	}
	if _, serr := os.Stat(filepath.Join(dir, jsonl.PartName(0))); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("the half-committed part file stayed: %v", serr)
	}
	if _, serr := os.Stat(filepath.Join(dir, jsonl.StagingDir)); serr == nil {
		t.Fatalf("the failed job left the empty staging directory %s behind (job error: %v)", jsonl.StagingDir, err)
	}
}
