package stages

import (
	"sync"
	"testing"

	"github.com/sluice-data/sluice/plan"
)

// TestSharedTableBuiltOnce feeds the same build batches to three instances
// of a broadcast join concurrently, as the broadcast edge does, and checks
// that the shared table holds each build row once and that every instance
// then probes the complete table.
func TestSharedTableBuiltOnce(t *testing.T) {
	const instances = 3
	var batches []*plan.Batch
	for b := range 50 {
		var rows []KV[int64, int64]
		for i := range 100 {
			k := int64(b*100 + i)
			rows = append(rows, KV[int64, int64]{Key: k % 1000, Value: k})
		}
		batches = append(batches, &plan.Batch{Data: rows})
	}
	shared := &sharedTable[int64, int64]{seen: map[*plan.Batch]int{}, local: instances, t: newBuildTable[int64, int64](1)}
	states := make([]*joinState[int64, int64, int64, Joined[int64, int64, int64]], instances)
	var wg sync.WaitGroup
	for i := range states {
		states[i] = &joinState[int64, int64, int64, Joined[int64, int64, int64]]{kind: Inner, shared: shared,
			f: func(k, l, r int64, hl, hr bool) Joined[int64, int64, int64] {
				return Joined[int64, int64, int64]{Key: k, Left: l, Right: r, HasLeft: hl, HasRight: hr}
			}}
		wg.Add(1)
		go func(s *joinState[int64, int64, int64, Joined[int64, int64, int64]], order int) {
			defer wg.Done()
			for j := range batches {
				s.StepInput(1, batches[(j+order*17)%len(batches)], nil)
			}
			s.EndInput(1, nil)
			probe := &plan.Batch{Data: []KV[int64, int64]{{Key: 7, Value: -1}}}
			var got int
			s.StepInput(0, probe, func(b *plan.Batch) { got += len(b.Data.([]Joined[int64, int64, int64])) })
			if got != 5 { // keys 7, 1007, ... 4007 map to 7
				t.Errorf("instance %d: key 7 matched %d rows, want 5", order, got)
			}
		}(states[i], i)
	}
	wg.Wait()
	if n := shared.t.rows; n != 5000 {
		t.Errorf("shared table holds %d rows, want 5000 (each build row once)", n)
	}
	if len(shared.seen) != 0 {
		t.Errorf("%d batches still remembered after every instance saw them", len(shared.seen))
	}
}
