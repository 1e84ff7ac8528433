package stages

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sluice-data/sluice/plan"
)

// A probe key that cannot be hashed (an interface key holding a slice)
// panics in the probe's lookup pass; the panic names the stage and the
// record (*RecordPanic), as one in the user's function does (the two-pass
// probe first let it escape bare: found by a review).
func TestProbeLookupPanicNamesRecord(t *testing.T) {
	n := &plan.Node{Op: "join", Loc: "review3_test.go", Join: &plan.JoinSpec{}}
	s := &joinState[any, int64, int64, string]{n: n, kind: Inner, own: newJoinTable[any, int64, int64](false),
		f: func(k any, l, r int64, hl, hr bool) string { return fmt.Sprint(k, l, r) }}
	s.StepInput(1, &plan.Batch{Data: []KV[any, int64]{{Key: int64(1), Value: 10}}}, nil)
	s.EndInput(1, nil)
	var got any
	func() {
		defer func() { got = recover() }()
		s.StepInput(0, &plan.Batch{Data: []KV[any, int64]{{Key: int64(1), Value: 1}, {Key: []int{1}, Value: 2}}}, func(*plan.Batch) {})
	}()
	if got == nil {
		t.Skip("no panic hashing an unhashable key")
	}
	var rp *RecordPanic
	if err, ok := got.(error); !ok || !errors.As(err, &rp) {
		t.Fatalf("probe panicked with %T %v, want a *RecordPanic naming the stage and record", got, got)
	}
}
