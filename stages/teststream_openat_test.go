package stages_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
)

// TestTestStreamOpenAt: a test stream's reader says which step is next, and
// OpenAt goes on from it.
func TestTestStreamOpenAt(t *testing.T) {
	t0 := time.Unix(0, 0)
	ts := stages.NewTestStream[int64](nil).AddElements(t0, 1, 2).AdvanceWatermark(t0.Add(time.Minute)).
		AddElements(t0.Add(2*time.Minute), 3).AdvanceWatermarkToInfinity()
	p := stages.NewPipeline("ts")
	s := ts.Read(p)
	stages.Collect(s)
	var src *plan.SourceSpec
	for _, n := range p.Graph().Nodes {
		if n.Source != nil {
			src = n.Source
		}
	}
	ctx := context.Background()
	splits, err := src.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := src.Open(ctx, plan.Instance{}, splits[0])
	er := r.(plan.EventReader)
	er.ReadEvent(100)
	er.ReadEvent(100)
	pos, err := r.(plan.Positioner).Position()
	if err != nil {
		t.Fatal(err)
	}
	want, _, _, _ := er.ReadEvent(100)
	again, err := src.OpenAt(ctx, plan.Instance{}, splits[0], pos)
	if err != nil {
		t.Fatal(err)
	}
	got, _, kind, err := again.(plan.EventReader).ReadEvent(100)
	if err != nil || kind != plan.ReadBatch || got == nil || got.Data.([]int64)[0] != want.Data.([]int64)[0] {
		t.Fatalf("at step %s: %v %v %v, want the batch %v", pos, got, kind, err, want.Data)
	}
	if _, err := src.OpenAt(ctx, plan.Instance{}, splits[0], []byte("99")); err == nil {
		t.Error("a step past the script opened")
	}
}
