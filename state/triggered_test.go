package state

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice/window"
)

const opClock = opWatermark + 1

// trigMachine runs window's trigger driver over Triggered as stages'
// windowState does: a record goes to its key's windows at the instance's
// watermark and the record's processing time; a watermark or a clock
// advance asks only the keys whose next event-time or processing-time work
// has come (their timers), and a key whose windows are gone is dropped.
type trigMachine struct {
	s   *Triggered[int64, int64, acc]
	d   *window.Windowing[int64, acc]
	out window.Output[int64, acc]
	wm  window.Time
}

func (m *trigMachine) emit(k int64, emit func(string)) {
	for _, p := range m.out.Panes {
		emit(fmt.Sprint("pane ", k, p.Window, p.Value.Sum, p.Value.Vals, p.Timestamp, p.Info))
	}
	for _, d := range m.out.Dropped {
		emit(fmt.Sprint("drop ", k, d.Window, d.Element.Time, d.Reason))
	}
	m.out.Reset()
}

func (m *trigMachine) after(e *TriggerKey[int64, acc]) {
	if e.St.Empty() {
		m.s.Drop(e)
	}
}

// due returns the keys with work at watermark wm or processing time pt,
// sorted.
func (m *trigMachine) due(wm, pt window.Time) []*TriggerKey[int64, acc] {
	var es []*TriggerKey[int64, acc]
	for _, grp := range m.s.keys {
		for _, e := range grp {
			t, ok := e.St.NextEventTime()
			p, pok := e.St.NextProcessingTime()
			if ok && t <= wm || pok && p <= pt {
				es = append(es, e)
			}
		}
	}
	slices.SortFunc(es, func(a, b *TriggerKey[int64, acc]) int { return int(a.Key - b.Key) })
	return es
}

func (m *trigMachine) step(o op, emit func(string)) {
	switch o.kind {
	case opWatermark:
		m.wm = max(m.wm, window.Time(o.val))
		m.s.Advance(o.val)
		for _, e := range m.due(m.wm, window.MinTime) {
			m.d.AdvanceWatermark(&e.St, m.wm, &m.out)
			m.emit(e.Key, emit)
			m.after(e)
		}
	case opClock:
		for _, e := range m.due(window.MinTime, window.Time(o.val)) {
			m.d.AdvanceProcessingTime(&e.St, window.Time(o.val), &m.out)
			m.emit(e.Key, emit)
			m.after(e)
		}
	default:
		e, _ := m.s.Key(o.key)
		m.d.ProcessElements(&e.St, []window.Element[int64]{{Value: o.val, Time: window.Time(o.val)}}, m.wm, window.Time(o.pt), &m.out)
		m.emit(o.key, emit)
		m.after(e)
	}
}

func (m *trigMachine) end(emit func(string)) {
	m.step(op{kind: opWatermark, val: int64(window.MaxTime)}, emit)
}

func (m *trigMachine) snapshot(r Range) func() []byte {
	s := m.s.Snapshot(r)
	return func() []byte { return s.Append(nil, intC, accC) }
}

func (m *trigMachine) restore(b []byte, keep Range) error {
	if err := m.s.Restore(b, keep, intC, accC, nil); err != nil {
		return err
	}
	m.wm = max(m.wm, window.Time(m.s.Watermark()))
	return nil
}

// sumVals folds records into an acc without changing an accumulator's
// memory (package doc).
var sumVals = window.Combine[int64, acc]{
	Zero:  func() acc { return acc{} },
	Add:   func(a acc, v int64) acc { return acc{Sum: a.Sum + v, Vals: append(slices.Clip(a.Vals), v)} },
	Merge: func(a, b acc) acc { return acc{Sum: a.Sum + b.Sum, Vals: append(slices.Clip(a.Vals), b.Vals...)} },
}

// randomStrategy returns a strategy with random windows (fixed, sliding,
// sessions), trigger (early and late firings by count and processing
// time, repeated, sequenced), lateness, mode and timestamp combiner.
func randomStrategy(r *rand.Rand) window.Strategy {
	d := func(n int) time.Duration { return time.Duration(1 + r.IntN(n)) }
	for {
		var s window.Strategy
		switch r.IntN(3) {
		case 0:
			s = window.Fixed(d(20))
		case 1:
			s = window.Sliding(20, 10)
		default:
			s = window.Session(d(10))
		}
		early := []window.Trigger{nil, window.AfterCount(1 + r.IntN(3)), window.AfterProcessingTime(d(20)),
			window.AfterProcessingTime(d(20)).AlignedTo(7, 2)}
		late := []window.Trigger{nil, window.AfterCount(1 + r.IntN(2)), window.AfterProcessingTime(d(10))}
		var t window.Trigger
		switch r.IntN(5) {
		case 0:
			t = window.Default()
		case 1:
			aw := window.AfterWatermark()
			if e := early[r.IntN(len(early))]; e != nil {
				aw = aw.Early(e)
			}
			if l := late[r.IntN(len(late))]; l != nil {
				aw = aw.Late(l)
			}
			t = aw
		case 2:
			t = window.Repeatedly(window.AfterAny(window.AfterCount(1+r.IntN(4)), window.AfterProcessingTime(d(15))))
		case 3:
			t = window.AfterEach(window.AfterCount(1+r.IntN(3)), window.AfterWatermark().Early(window.AfterProcessingTime(d(10))))
		default:
			t = window.Repeatedly(window.AfterProcessingTime(d(15)))
		}
		s = s.Trigger(t).AllowedLateness(time.Duration(r.IntN(3) * r.IntN(30)))
		if r.IntN(2) == 0 {
			s = s.Accumulating()
		}
		s = s.OutputAt(window.TimestampCombiner(r.IntN(3)))
		if s.Validate() == nil {
			return s
		}
	}
}

func TestTriggeredRestore(t *testing.T) {
	var d *window.Windowing[int64, acc]
	gen := func(r *rand.Rand) []op {
		s := randomStrategy(r)
		var err error
		if d, err = window.NewWindowing(s, sumVals); err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		ops := make([]op, r.IntN(500))
		keys := 1 + r.Int64N(40)
		var wm, pt int64
		for i := range ops {
			switch r.IntN(16) {
			case 0:
				wm += r.Int64N(15)
				ops[i] = op{kind: opWatermark, val: wm, broadcast: true}
			case 1:
				pt += r.Int64N(12)
				ops[i] = op{kind: opClock, val: pt, broadcast: true}
			default:
				ops[i] = op{kind: opRecord, key: r.Int64N(keys), val: max(0, wm-10+r.Int64N(40)), pt: pt}
			}
		}
		return ops
	}
	checkRestore(t, 80, func() machine {
		return &trigMachine{s: NewTriggered[int64](testGroups, d), d: d, wm: window.MinTime, out: window.Output[int64, acc]{KeepDropped: true}}
	}, gen)
}
