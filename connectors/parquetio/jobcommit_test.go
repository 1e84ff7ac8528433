package parquetio_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// failJob is a sink whose instances commit but whose job-level commit
// fails, after the Parquet sink's job commit (sinks commit in the order
// they were added).
type failJob struct{}

func (failJob) Open(context.Context, stages.Instance) (stages.Writer[Event], error) {
	return failJobWriter{}, nil
}

func (failJob) CommitJob(context.Context, stages.Instance) error {
	return errors.New("job commit refused")
}

type failJobWriter struct{}

func (failJobWriter) Write([]Event) error { return nil }
func (failJobWriter) Prepare() error      { return nil }
func (failJobWriter) Commit() error       { return nil }
func (failJobWriter) Abort() error        { return nil }
func (failJobWriter) Revert() error       { return nil }

// A job whose Parquet sink had written its _SUCCESS marker, and whose other
// sink's job-level commit then failed, reverts the Parquet files and the
// marker: nothing is left to say the failed job's output is complete.
func TestFailedJobCommitRemovesSuccessMarker(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "events")
	p := stages.NewPipeline("revert-job")
	src := stages.FromSlice(p, events(2_000))
	parquetio.Write(src, out)
	stages.Write(src, failJob{}, stages.Name("refuses-job"))
	_, err := runJob(t, p)
	if err == nil || !strings.Contains(err.Error(), "job commit refused") {
		t.Fatalf("want the job to fail in its job commit, got %v", err)
	}
	if left := files(t, base); len(left) != 0 {
		t.Fatalf("a failed job left behind: %v", left)
	}
}
