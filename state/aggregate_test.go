package state

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

const testSeedJob = 0xfeed

// aggMachine sums values per key, keeping the list of values too, and
// emits every key's accumulator at the end.
type aggMachine struct{ a *Aggregate[int64, acc] }

func newAggMachine() machine {
	return &aggMachine{a: NewAggregate[int64, acc](testGroups, Seed(testSeedJob, 7))}
}

func (m *aggMachine) step(o op, _ func(string)) {
	v, _ := m.a.Find(o.key)
	// A new accumulator rather than one changed in place (package doc).
	*v = acc{Sum: v.Sum + o.val, Vals: append(slices.Clip(v.Vals), o.val)}
}

func (m *aggMachine) end(emit func(string)) {
	m.a.All(func(k int64, v *acc) { emit(fmt.Sprint(k, v.Sum, v.Vals)) })
}

func (m *aggMachine) snapshot(r Range) func() []byte {
	s := m.a.Snapshot(r)
	return func() []byte { return s.Append(nil, intCoder{}, accCoder{}) }
}

func (m *aggMachine) restore(b []byte) error { return m.a.Restore(b, intCoder{}, accCoder{}) }

func genKeyed(keys int64, maxOps int) func(r *rand.Rand) []op {
	return func(r *rand.Rand) []op {
		ops := make([]op, r.IntN(maxOps))
		for i := range ops {
			ops[i] = op{key: r.Int64N(keys) - keys/2, val: r.Int64N(1000)}
		}
		return ops
	}
}

func TestAggregateRestore(t *testing.T) {
	checkRestore(t, 60, newAggMachine, genKeyed(200, 1500))
}

func TestAggregateRestoreErrors(t *testing.T) {
	a := newAggMachine().(*aggMachine)
	for i := range int64(100) {
		a.step(op{key: i, val: i}, nil)
	}
	b := a.snapshot(Range{0, testMax})()
	if err := a.restore(b); err == nil {
		t.Fatal("restoring keys held already: no error")
	}
	other := NewAggregate[int64, acc](Groups[int64]{Hash: testGroups.Hash, Max: 8}, 1)
	if err := other.Restore(b, intCoder{}, accCoder{}); err == nil {
		t.Fatal("restoring into another number of key groups: no error")
	}
	for _, n := range []int{0, 3, headerLen, len(b) - 1} {
		if err := newAggMachine().restore(b[:n]); err == nil {
			t.Fatalf("restoring %d of %d bytes: no error", n, len(b))
		}
	}
	b[4] = Version + 1
	if err := newAggMachine().restore(b); err == nil {
		t.Fatal("restoring another version: no error")
	}
}
