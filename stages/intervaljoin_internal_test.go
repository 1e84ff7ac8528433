package stages

import (
	"testing"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/state"
)

// TestIntervalStateLate: a record behind the input watermark when it
// arrives is dropped and counted late, never joined; the records the
// watermark has passed beyond their reach are let go; one on time joins.
func TestIntervalStateLate(t *testing.T) {
	type rec = JoinRecord[int, int]
	hash := hasher[string]()
	s := &intervalState[string, int, int]{n: &plan.Node{}, lower: 0, upper: 5, wm: minTime,
		t: state.NewAggregate[string, IntervalSides[int, int]](state.Groups[string]{Hash: hash, Max: 8}, 1)}
	var pairs []IntervalJoined[string, int, int]
	emit := func(b *plan.Batch) { pairs = append(pairs, b.Data.([]IntervalJoined[string, int, int])...) }
	step := func(wm int64, at int64, r rec) {
		s.StepTime(&plan.Batch{Data: []KV[string, rec]{{Key: "k", Value: r}}, Times: []int64{at}}, wm, 0, emit)
	}
	step(minTime, 10, rec{Left: 1})
	s.Advance(20, emit)
	if v, _ := s.t.Get("k"); len(v.Left) != 0 {
		t.Fatalf("left record at 10 kept past watermark 20 (upper 5): %+v", v)
	}
	step(20, 12, rec{Right: 2, IsRight: true}) // behind the watermark
	step(20, 25, rec{Left: 3})
	step(20, 27, rec{Right: 4, IsRight: true})
	if late, _ := s.Dropped(); late != 1 {
		t.Fatalf("%d late, want 1", late)
	}
	if len(pairs) != 1 || pairs[0].Left != 3 || pairs[0].Right != 4 {
		t.Fatalf("pairs %+v, want only 3 with 4", pairs)
	}
}
