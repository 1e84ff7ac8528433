package stages

import (
	"testing"
	"time"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/window"
)

// BenchmarkWindowStateTriggered runs the trigger driver's window state (early
// panes by processing time, late panes by count) over 100 k keys.
func BenchmarkWindowStateTriggered(b *testing.B) {
	ms := int64(time.Millisecond)
	st := window.Fixed(time.Second).Trigger(window.AfterWatermark().Early(window.AfterProcessingTime(100 * time.Millisecond)).
		Late(window.AfterCount(1))).AllowedLateness(time.Second)
	c := Combine("sum", func(x int64) int64 { return x }, func(a, b int64) int64 { return a + b }, func(a int64) int64 { return a })
	drv, err := window.NewWindowing(st, window.Combine[lifted[int64, int64], int64]{
		Zero: func() int64 { return 0 }, Add: func(a int64, v lifted[int64, int64]) int64 { return a + v.a }, Merge: c.Merge})
	if err != nil {
		b.Fatal(err)
	}
	const batch, batches = 1024, 200
	ins := make([]*plan.Batch, batches)
	for i := range ins {
		xs := make([]KV[int64, int64], batch)
		ts := make([]int64, batch)
		for j := range xs {
			n := int64(i*batch + j)
			xs[j] = KV[int64, int64]{Key: (n * 7919) % 100_000, Value: n}
			ts[j] = n * ms / 100
		}
		ins[i] = &plan.Batch{Data: xs, Times: ts}
	}
	b.ReportAllocs()
	emit := func(*plan.Batch) {}
	for range b.N {
		s := newWindowState(&plan.Node{ID: 1}, drv, c, hasher[int64](), false, 128)
		for i, in := range ins {
			wm := int64(i*batch)*ms/100 - 500*ms
			s.StepTime(in, wm, int64(i)*10*ms, emit)
			s.Advance(wm, emit)
			s.Fire(int64(i)*10*ms, emit)
		}
		s.Flush(emit)
	}
	b.ReportMetric(float64(b.N*batch*batches)/b.Elapsed().Seconds(), "records/s")
}
