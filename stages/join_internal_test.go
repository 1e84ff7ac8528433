package stages

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/state"
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
	shared := newSharedTable(instances, newJoinTable[int64, int64, int64](false))
	states := make([]*joinState[int64, int64, int64, Joined[int64, int64, int64]], instances)
	var wg sync.WaitGroup
	for i := range states {
		states[i] = &joinState[int64, int64, int64, Joined[int64, int64, int64]]{kind: Inner, shared: shared, own: newJoinTable[int64, int64, int64](false),
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
	if n := shared.t.Rows(); n != 5000 {
		t.Errorf("shared table holds %d rows, want 5000 (each build row once)", n)
	}
	if len(shared.seen) != 0 {
		t.Errorf("%d batches still remembered after every instance saw them", len(shared.seen))
	}
}

type benchUser struct {
	ID      int64
	Age     int32
	Country string
	LTV     float64
}

type benchOut struct {
	User, Order, TS int64
	Amount          float64
	Age             int32
	Country         string
	LTV             float64
}

// BenchmarkJoinProbe probes a broadcast table of 1 M users with batches of
// 1024 random keys through joinState.probe, and, as the baseline in the
// same run, through one loop doing each lookup and output in turn (the
// probe loop before it looked up a whole batch first).
func BenchmarkJoinProbe(b *testing.B) {
	const users = 1_000_000
	rows := make([]KV[int64, benchUser], users)
	for i := range rows {
		rows[i] = KV[int64, benchUser]{Key: int64(i), Value: benchUser{ID: int64(i), Age: 30, Country: "de", LTV: 1}}
	}
	t := newJoinTable[int64, [3]int64, benchUser](false)
	addBuild(t, rows)
	t.EndBuild()
	r := rand.New(rand.NewPCG(1, 2))
	batches := make([][]KV[int64, [3]int64], 256)
	for j := range batches {
		bs := make([]KV[int64, [3]int64], 1024)
		for i := range bs {
			bs[i] = KV[int64, [3]int64]{Key: r.Int64N(users), Value: [3]int64{int64(i), 7, 9}}
		}
		batches[j] = bs
	}
	f := func(k int64, o [3]int64, u benchUser, _, _ bool) benchOut {
		return benchOut{User: k, Order: o[0], TS: o[1], Amount: float64(o[2]), Age: u.Age, Country: u.Country, LTV: u.LTV}
	}
	perProbe := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1024), "ns/probe")
	}
	b.Run("probe", func(b *testing.B) {
		s := &joinState[int64, [3]int64, benchUser, benchOut]{n: &plan.Node{}, kind: Inner, f: f, own: t}
		for n := range b.N {
			s.probe(batches[n%len(batches)], func(*plan.Batch) {})
		}
		perProbe(b)
	})
	b.Run("one-pass", func(b *testing.B) {
		for n := range b.N {
			xs := batches[n%len(batches)]
			out := make([]benchOut, 0, len(xs))
			for i := range xs {
				if v := t.Get(xs[i].Key); v != nil {
					out = append(out, f(xs[i].Key, xs[i].Value, v.R, true, true))
				}
			}
		}
		perProbe(b)
	})
}

// newJoinTable is a join's state for internal tests: 128 key groups by
// KeyBy's hash, seed 1.
func newJoinTable[K comparable, L, R any](fullOuter bool) *state.Join[K, L, R] {
	return state.NewJoin[K, L, R](state.Groups[K]{Hash: hasher[K](), Max: 128}, state.Seed(1, 1), fullOuter)
}
