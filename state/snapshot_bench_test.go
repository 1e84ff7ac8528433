package state

import (
	"testing"
	"time"

	"github.com/sluice-data/sluice/window"
)

// BenchmarkSnapshot measures the synchronous copy (Snapshot) and the
// encoding (Append) of 100 k keys, per key, for each kind.
func BenchmarkSnapshot(b *testing.B) {
	const keys = 100_000
	run := func(b *testing.B, snap func() func() []byte) {
		b.ReportAllocs()
		var took, enc time.Duration
		n := 0
		for range b.N {
			t0 := time.Now()
			e := snap()
			t1 := time.Now()
			n = len(e())
			took += t1.Sub(t0)
			enc += time.Since(t1)
		}
		b.ReportMetric(float64(took.Nanoseconds())/float64(b.N*keys), "copy-ns/key")
		b.ReportMetric(float64(enc.Nanoseconds())/float64(b.N*keys), "encode-ns/key")
		b.ReportMetric(float64(n)/keys, "B/key")
	}
	all := Range{0, testMax}
	b.Run("aggregate", func(b *testing.B) {
		a := NewAggregate[int64, int64](testGroups, 1)
		for k := range int64(keys) {
			v, _ := a.Find(k)
			*v = k
		}
		run(b, func() func() []byte { s := a.Snapshot(all); return func() []byte { return s.Append(nil, intC, intC) } })
	})
	b.Run("lists", func(b *testing.B) {
		l := NewLists[int64, int64](testGroups)
		for k := range int64(keys) {
			l.Add(k, k)
		}
		run(b, func() func() []byte { s := l.Snapshot(all); return func() []byte { return s.Append(nil, intC, intC) } })
	})
	b.Run("triggered", func(b *testing.B) {
		d, err := window.NewWindowing(window.Fixed(10).Trigger(window.AfterWatermark().Early(window.AfterProcessingTime(5))).
			AllowedLateness(10*time.Nanosecond), sumVals)
		if err != nil {
			b.Fatal(err)
		}
		s := NewTriggered[int64](testGroups, d)
		var out window.Output[int64, acc]
		for k := range int64(keys) {
			e, _ := s.Key(k)
			d.ProcessElements(&e.St, []window.Element[int64]{{Value: k, Time: window.Time(k % 10)}}, 0, 1, &out)
			out.Reset()
		}
		run(b, func() func() []byte {
			sn := s.Snapshot(all)
			return func() []byte { return sn.Append(nil, intC, accC) }
		})
	})
}
