package state

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluice-data/sluice/window"
)

const (
	opRecord = iota
	opWatermark
)

// windowsMachine sums values per key in two windows per record (tumbling
// windows of 10 and of 20), firing at the watermark and dropping records
// of ended windows, as stages' eowState does.
type windowsMachine struct{ s *Windows[int64, acc] }

func (m *windowsMachine) fire(emit func(string)) {
	for {
		w, ts, ok := m.s.Ended()
		if !ok {
			return
		}
		for _, t := range ts {
			if t != nil {
				t.All(func(k int64, v *acc) { emit(fmt.Sprint("pane ", w, k, v.Sum, v.Vals)) })
			}
		}
		m.s.Recycle(ts)
	}
}

func (m *windowsMachine) step(o op, emit func(string)) {
	if o.kind == opWatermark {
		m.s.Advance(o.val)
		m.fire(emit)
		return
	}
	at := o.val
	for _, size := range []int64{10, 20} {
		w := window.Interval{Start: window.Time(at - at%size), End: window.Time(at - at%size + size)}
		if window.Time(m.s.Watermark()) >= w.End {
			emit(fmt.Sprint("late ", w, o.key, at))
			continue
		}
		v, _ := m.s.Group(m.s.Window(w), testGroups.Of(o.key)).Find(o.key)
		*v = acc{Sum: v.Sum + at, Vals: append(slices.Clip(v.Vals), at)}
	}
}

func (m *windowsMachine) end(emit func(string)) {
	m.s.Advance(math.MaxInt64)
	m.fire(emit)
}

func (m *windowsMachine) snapshot(r Range) func() []byte {
	s := m.s.Snapshot(r)
	return func() []byte { return s.Append(nil, intC, accC) }
}

func (m *windowsMachine) restore(b []byte, keep Range) error { return m.s.Restore(b, keep, intC, accC) }

func genWindows(r *rand.Rand) []op {
	ops := make([]op, r.IntN(800))
	keys := 1 + r.Int64N(60)
	var wm int64
	for i := range ops {
		if r.IntN(20) == 0 {
			wm += r.Int64N(15)
			ops[i] = op{kind: opWatermark, val: wm, broadcast: true}
			continue
		}
		// Mostly ahead of the watermark, sometimes late.
		ops[i] = op{kind: opRecord, key: r.Int64N(keys), val: max(0, wm-5+r.Int64N(40))}
	}
	return ops
}

func TestWindowsRestore(t *testing.T) {
	checkRestore(t, 60, func() machine {
		return &windowsMachine{s: NewWindows[int64, acc](testGroups, Seed(testSeedJob, 5))}
	}, genWindows)
}
