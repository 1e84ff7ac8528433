package stages

import (
	"testing"

	"github.com/sluice-data/sluice/plan"
)

// TestCombinePassThrough: a pre-combiner over keys that barely repeat stops
// combining once it has judged its sample, one over few keys keeps
// combining, and either way every record's value is emitted exactly once.
func TestCombinePassThrough(t *testing.T) {
	for _, tc := range []struct {
		keys        int64
		passThrough bool
	}{{keys: 1_000, passThrough: false}, {keys: 1 << 40, passThrough: true}} {
		n := &plan.Node{Op: "combine", Name: "sum"}
		s := newCombineState(n, func(x int64) int64 { return x % tc.keys }, Sum(func(x int64) int64 { return x }), 1<<22, 1)
		var emitted []KV[int64, int64]
		emit := func(b *plan.Batch) { emitted = append(emitted, b.Data.([]KV[int64, int64])...) }
		var want int64
		for b := int64(0); b < 2*combineSample/1024; b++ {
			xs := make([]int64, 1024)
			for i := range xs {
				xs[i] = b*1024 + int64(i)
				want += xs[i]
			}
			s.Step(&plan.Batch{Data: xs}, emit)
		}
		s.Flush(emit)
		if s.passThrough != tc.passThrough {
			t.Errorf("%d keys: passThrough = %v, want %v", tc.keys, s.passThrough, tc.passThrough)
		}
		var got int64
		for _, kv := range emitted {
			got += kv.Value
		}
		if got != want {
			t.Errorf("%d keys: emitted values sum to %d, want %d", tc.keys, got, want)
		}
	}
}
