package state

import (
	"errors"
	"strings"

	"fmt"
	"github.com/sluice-data/sluice/codec"
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
	return func() []byte { return s.Append(nil, intC, accC) }
}

func (m *aggMachine) restore(b []byte, keep Range) error { return m.a.Restore(b, keep, intC, accC) }

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
	if err := a.restore(b, testGroups.All()); err == nil {
		t.Fatal("restoring keys held already: no error")
	}
	other := NewAggregate[int64, acc](Groups[int64]{Hash: testGroups.Hash, Max: 8}, 1)
	if err := other.Restore(b, testGroups.All(), intC, accC); err == nil {
		t.Fatal("restoring into another number of key groups: no error")
	}
	for _, n := range []int{0, 3, headerLen, len(b) - 1} {
		if err := newAggMachine().restore(b[:n], testGroups.All()); err == nil {
			t.Fatalf("restoring %d of %d bytes: no error", n, len(b))
		}
	}
	b[4] = Version + 1
	if err := newAggMachine().restore(b, testGroups.All()); err == nil {
		t.Fatal("restoring another version: no error")
	}
}

// accV2 is acc with a field changed: a chunk of acc must not restore as it.
type accV2 struct {
	Sum  int64
	Vals []int32
}

// TestRestoreRefusesAnotherSchema: a chunk written with one accumulator
// type is refused by a state of another, with an error naming the type and
// both fingerprints; so is a key type changed.
func TestRestoreRefusesAnotherSchema(t *testing.T) {
	a := newAggMachine().(*aggMachine)
	for i := range int64(10) {
		a.step(op{key: i, val: i}, nil)
	}
	b := a.snapshot(Range{0, testMax})()
	v2 := codec.MustFor[accV2]()
	err := NewAggregate[int64, accV2](testGroups, 1).Restore(b, testGroups.All(), intC, v2)
	var mm *codec.MismatchError
	if !errors.As(err, &mm) || !errors.Is(err, ErrMismatch) {
		t.Fatalf("restoring acc as accV2: %v, want a *codec.MismatchError and ErrMismatch", err)
	}
	for _, s := range []string{"state.accV2", v2.Fingerprint().String(), accC.Fingerprint().String()} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	strC := codec.MustFor[string]()
	if err := NewAggregate[string, acc](Groups[string]{Hash: func(s string) uint64 { return HashString(s, 0) }, Max: testMax}, 1).
		Restore(b, testGroups.All(), strC, accC); !errors.As(err, &mm) || mm.Type != "string" {
		t.Fatalf("restoring int64 keys as strings: %v", err)
	}
}
