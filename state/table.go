package state

import "math/bits"

// Table maps keys to values with open addressing and linear probing,
// keeping each key, its value and a tag of its hash together in one slot,
// so that a lookup of a key that is not in the cache costs about one cache
// miss. A Go map with an index into a slice of accumulators costs two to
// three: the map's control word, its slot, then the accumulator.
//
// Slots are chosen by the high bits of the key's hash mixed with the
// table's seed. The seed matters: the keys of one table iterated into
// another of the same seed arrive sorted by slot, and linear probing into a
// growing table then piles them into one cluster (TestTableSortedInput).
// Iteration is in slot order: the same for the same keys inserted in the
// same order into a table of the same seed, in every process (for keys
// without pointers).
//
// A Table is not safe for concurrent use.
type Table[K comparable, V any] struct {
	hash  func(K) uint64
	seed  uint64
	slots []slot[K, V]
	n     int  // keys held
	shift uint // 64 - log2(len(slots))
}

type slot[K comparable, V any] struct {
	tag uint64 // the key's seeded hash with its lowest bit set; 0: empty
	key K
	val V
}

const minSlots = 16

// NewTable returns an empty table with the given seed (see Seed).
func NewTable[K comparable, V any](seed uint64) *Table[K, V] {
	return &Table[K, V]{hash: hashFunc[K](), seed: seed}
}

// Len returns the number of keys.
func (t *Table[K, V]) Len() int { return t.n }

// Find returns k's value, inserting the zero value when k is not there yet;
// found says whether it was. The pointer is good until the next insertion.
func (t *Table[K, V]) Find(k K) (v *V, found bool) {
	if t.n >= len(t.slots)*3/4 {
		t.grow()
	}
	s, tag := t.slot(k)
	if s.tag == 0 {
		s.tag, s.key = tag, k
		t.n++
		return &s.val, false
	}
	return &s.val, true
}

// Get returns k's value, if k is there.
func (t *Table[K, V]) Get(k K) (v *V, found bool) {
	if t.n == 0 {
		return nil, false
	}
	if s, _ := t.slot(k); s.tag != 0 {
		return &s.val, true
	}
	return nil, false
}

func (t *Table[K, V]) tag(k K) uint64 { return Mix64(t.hash(k)^t.seed) | 1 }

// slot returns k's slot, or the empty slot where k would go, and k's tag.
// The table must have an empty slot.
func (t *Table[K, V]) slot(k K) (*slot[K, V], uint64) {
	tag := Mix64(t.hash(k)^t.seed) | 1 // t.tag(k), written out: slot stays inlinable
	mask := uint64(len(t.slots) - 1)
	for i := tag >> t.shift; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.tag == 0 || s.tag == tag && s.key == k {
			return s, tag
		}
	}
}

func (t *Table[K, V]) grow() {
	old := t.slots
	size := max(minSlots, 2*len(old))
	t.slots = make([]slot[K, V], size)
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	for j := range old {
		s := &old[j]
		if s.tag == 0 {
			continue
		}
		i := s.tag >> t.shift
		for t.slots[i].tag != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = *s
	}
}

// All calls f with each key and its value, in slot order.
func (t *Table[K, V]) All(f func(k K, v *V)) {
	for i := range t.slots {
		if s := &t.slots[i]; s.tag != 0 {
			f(s.key, &s.val)
		}
	}
}

// Clear removes every key and keeps the slots for reuse.
func (t *Table[K, V]) Clear() {
	clear(t.slots)
	t.n = 0
}

// Release removes every key and frees the slots.
func (t *Table[K, V]) Release() {
	t.slots, t.n, t.shift = nil, 0, 0
}

// Probes returns how many slots a lookup of k visits (for tests of the
// table's spread).
func (t *Table[K, V]) Probes(k K) int {
	if len(t.slots) == 0 {
		return 1
	}
	tag := t.tag(k)
	mask := uint64(len(t.slots) - 1)
	n := 1
	for i := tag >> t.shift; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.tag == 0 || s.tag == tag && s.key == k {
			return n
		}
		n++
	}
}

// view is an immutable copy of a table's occupied slots, for a snapshot.
type view[K comparable, V any] struct {
	slots []slot[K, V]
}

// copyView copies t's slots: one slot (the key, the value and 8 bytes) for
// each of the 1.33 to 2.67 slots per key that a table holds.
func (t *Table[K, V]) copyView() view[K, V] {
	return view[K, V]{slots: append([]slot[K, V](nil), t.slots...)}
}
