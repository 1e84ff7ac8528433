package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

const (
	opProbe = iota
	opBuild
	opEndBuild
)

// joinMachine is a join as stages runs it: probes before the end of the
// build side are held, then probed; outer kinds emit unmatched probes, a
// full outer join its unmatched build rows at the end.
type joinMachine struct {
	j     *Join[int64, int64, int64]
	outer int // 0 inner, 1 left outer, 2 full outer
}

func (m *joinMachine) probe(k, l int64, emit func(string)) {
	v := m.j.Get(k)
	if v == nil {
		if m.outer > 0 {
			emit(fmt.Sprint("L ", k, l))
		}
		return
	}
	for ; v != nil; v = m.j.Next(v) {
		emit(fmt.Sprint("LR ", k, l, v.R))
		m.j.Match(v)
	}
}

func (m *joinMachine) step(o op, emit func(string)) {
	switch o.kind {
	case opProbe:
		if !m.j.Built() {
			m.j.Hold(o.key, o.val)
			return
		}
		m.probe(o.key, o.val, emit)
	case opBuild:
		m.j.Add(o.key, o.val)
	case opEndBuild:
		m.j.EndBuild()
		for _, h := range m.j.Held() {
			m.probe(h.Key, h.Value, emit)
		}
		m.j.DropHeld()
	}
}

func (m *joinMachine) end(emit func(string)) {
	if m.outer == 2 {
		m.j.Unmatched(func(k int64, r *int64) { emit(fmt.Sprint("R ", k, *r)) })
	}
}

func (m *joinMachine) snapshot(r Range) func() []byte {
	s := m.j.Snapshot(r)
	return func() []byte { return s.Append(nil, intC, intC, intC) }
}

func (m *joinMachine) restore(b []byte, keep Range) error {
	return m.j.Restore(b, keep, intC, intC, intC)
}

func genJoin(r *rand.Rand) []op {
	var ops []op
	keys := 1 + r.Int64N(100)
	n := r.IntN(600)
	end := r.IntN(n + 1)
	for i := range n {
		if i == end {
			ops = append(ops, op{kind: opEndBuild, broadcast: true})
		}
		kind := opProbe
		if i < end && r.IntN(2) == 0 {
			kind = opBuild
		}
		ops = append(ops, op{kind: kind, key: r.Int64N(keys), val: r.Int64N(1000)})
	}
	if end == n {
		ops = append(ops, op{kind: opEndBuild, broadcast: true})
	}
	return ops
}

func TestJoinRestore(t *testing.T) {
	for outer, name := range []string{"inner", "left", "full"} {
		t.Run(name, func(t *testing.T) {
			checkRestore(t, 40, func() machine {
				return &joinMachine{j: NewJoin[int64, int64, int64](testGroups, Seed(testSeedJob, 3), outer == 2), outer: outer}
			}, genJoin)
		})
	}
}

// TestJoinSnapshotRows: a snapshot keeping the rows of some build batches
// restores to a join of those rows only, whose snapshot is the same bytes.
func TestJoinSnapshotRows(t *testing.T) {
	j := NewJoin[int64, int64, int64](testGroups, 1, false)
	want := NewJoin[int64, int64, int64](testGroups, 1, false)
	spans := []Span{{0, 10}, {25, 40}, {55, 60}}
	for i := range 60 {
		j.Add(int64(i%7), int64(i))
		for _, sp := range spans {
			if i >= sp.Start && i < sp.End {
				want.Add(int64(i%7), int64(i))
			}
		}
	}
	b := j.SnapshotRows(Range{0, testMax}, spans).Append(nil, intC, intC, intC)
	got := NewJoin[int64, int64, int64](testGroups, 1, false)
	if err := got.Restore(b, testGroups.All(), intC, intC, intC); err != nil {
		t.Fatal(err)
	}
	if got.Rows() != 30 {
		t.Fatalf("%d rows restored, want 30", got.Rows())
	}
	for _, s := range []*Join[int64, int64, int64]{got, want} {
		if again := s.Snapshot(Range{0, testMax}).Append(nil, intC, intC, intC); !bytes.Equal(again, b) {
			t.Fatalf("snapshot of the rows kept differs")
		}
	}
}
