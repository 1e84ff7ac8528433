package state

import (
	"encoding/binary"
	"fmt"
)

// Aggregate is an aggregation's table: an accumulator A per key.
type Aggregate[K comparable, A any] struct {
	Table[K, A]
	groups Groups[K]
}

// NewAggregate returns an empty aggregate over groups, its table seeded
// with seed (see Seed).
func NewAggregate[K comparable, A any](groups Groups[K], seed uint64) *Aggregate[K, A] {
	return &Aggregate[K, A]{Table: *NewTable[K, A](seed), groups: groups}
}

// AggregateSnapshot is an immutable copy of an Aggregate's keys in a range
// of key groups, to be encoded off the hot path.
type AggregateSnapshot[K comparable, A any] struct {
	v      view[K, A]
	groups Groups[K]
	r      Range
}

// Snapshot copies the accumulators of the keys in r. It costs a copy of
// the table's slots: per key, 1.33 to 2.67 times (8 + size of K + size of
// A) bytes of memory copy, and no hashing, encoding or allocation per key;
// the keys of r are picked out when the snapshot is encoded. Accumulators
// are copied shallowly (see the package doc).
func (a *Aggregate[K, A]) Snapshot(r Range) *AggregateSnapshot[K, A] {
	a.groups.check(r)
	return &AggregateSnapshot[K, A]{v: a.copyView(), groups: a.groups, r: r}
}

// Append appends the snapshot's chunk to dst: per key, its group, its key
// and its accumulator, in canonical order. Its cost per key: the routing
// hash, the encoding and a share of the sort of the keys in range.
func (s *AggregateSnapshot[K, A]) Append(dst []byte, kc Coder[K], ac Coder[A]) []byte {
	es, keys := canonical(s.v, s.groups, s.r, kc)
	dst, at := startChunk(dst, KindAggregate, s.groups.Max, s.r, kc, ac)
	dst = binary.AppendUvarint(dst, uint64(len(es)))
	for _, e := range es {
		dst = binary.AppendUvarint(dst, uint64(e.g))
		dst = append(dst, keys[e.start:e.end]...)
		dst = ac.Append(dst, &s.v.slots[e.i].val)
	}
	return endChunk(dst, at)
}

// Restore adds the keys of a chunk written by AggregateSnapshot.Append
// whose groups are in keep, the groups the instance owns: a job restored
// at another parallelism restores several chunks in an instance (the
// ranges of several old instances) or the part of one. A key it holds
// already is ErrMismatch. On error the state is unchanged.
func (a *Aggregate[K, A]) Restore(src []byte, keep Range, kc Coder[K], ac Coder[A]) error {
	r, max, rg, err := openChunk(src, KindAggregate, kc, ac)
	if err != nil {
		return err
	}
	if max != a.groups.Max {
		return fmt.Errorf("%w: %d key groups, the state has %d", ErrMismatch, max, a.groups.Max)
	}
	n := r.count()
	keys := make([]K, 0, n)
	accs := make([]A, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		g := int(r.uvarint())
		var k K
		var acc A
		decode(r, kc, &k)
		decode(r, ac, &acc)
		if r.err == nil && (!rg.Contains(g) || a.groups.Of(k) != g) {
			r.err = fmt.Errorf("%w: key %v in group %d, its group is %d of %v", ErrCorrupt, k, g, a.groups.Of(k), rg)
		}
		if keep.Contains(g) {
			keys, accs = append(keys, k), append(accs, acc)
		}
	}
	if err := r.end(); err != nil {
		return err
	}
	if err := checkNew(&a.Table, keys); err != nil {
		return err
	}
	for i := range keys {
		v, _ := a.Find(keys[i])
		*v = accs[i]
	}
	return nil
}

// checkNew reports a key of keys that t holds, or that keys hold twice.
func checkNew[K comparable, V any](t *Table[K, V], keys []K) error {
	seen := NewTable[K, struct{}](t.seed)
	for _, k := range keys {
		if _, found := t.Get(k); found {
			return fmt.Errorf("%w: key %v is held already", ErrMismatch, k)
		}
		if _, found := seen.Find(k); found {
			return fmt.Errorf("%w: key %v twice in one chunk", ErrCorrupt, k)
		}
	}
	return nil
}
