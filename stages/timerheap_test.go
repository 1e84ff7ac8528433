package stages

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTimerHeap pushes and pops random times and checks that pops come out
// in order, against a sorted slice.
func TestTimerHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var h timerHeap[int, int]
	var ref []int64
	for range 5000 {
		if r.IntN(3) > 0 || len(ref) == 0 {
			at := r.Int64N(1000)
			h.push(timerEntry[int, int]{at: at})
			ref = append(ref, at)
			continue
		}
		slices.Sort(ref)
		got := h.pop().at
		if got != ref[0] {
			t.Fatalf("pop = %d, want %d", got, ref[0])
		}
		ref = ref[1:]
	}
	slices.Sort(ref)
	for _, want := range ref {
		if got := h.pop().at; got != want {
			t.Fatalf("drain: pop = %d, want %d", got, want)
		}
	}
	if len(h.items) != 0 {
		t.Fatalf("%d items left", len(h.items))
	}
}
