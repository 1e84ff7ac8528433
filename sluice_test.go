package sluice_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/stages"
)

// TestPipelineRunsOnce: running a Pipeline a second time is an error naming
// it, and its Collection keeps the first run's records only.
func TestPipelineRunsOnce(t *testing.T) {
	p := stages.NewPipeline("twice")
	out := stages.Collect(stages.FromSlice(p, []int{1, 2, 3}))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err := sluice.Run(context.Background(), p, sluice.Options{})
	if !errors.Is(err, stages.ErrRanAlready) || !strings.Contains(err.Error(), `pipeline "twice"`) {
		t.Errorf("second run: %v, want stages.ErrRanAlready naming the pipeline", err)
	}
	if n := len(out.Values()); n != 3 {
		t.Errorf("%d records collected, want 3", n)
	}
}
