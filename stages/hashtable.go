package stages

import (
	"hash/maphash"
	"math/bits"
	"unsafe"
)

// hashTable maps keys to values with open addressing and linear probing,
// keeping each key, its value and a tag of its hash together in one slot,
// so that a lookup of a key that is not in the cache costs about one cache
// miss. A Go map with an index into a slice of accumulators (what
// aggregation used before) costs two to three: the map's control word, its
// slot, then the accumulator. On 1M int64 keys in random order the table
// takes 64-80 ns a record against 120-142 ns for the map and slice
// (`go test -run - -bench AggregateTable -count 3 ./stages`).
//
// Slots are chosen by the high bits of the key's hash mixed with a seed of
// the table's own. The seed matters: the keys of one table iterated into
// another of the same hash arrive sorted by slot, and linear probing into a
// growing table then piles them into one cluster (a pre-combiner's flush
// into the final aggregate took 6 s instead of 0.2 s for W2's million users
// before the seed; TestHashTableSortedInput).
type hashTable[K comparable, V any] struct {
	hash  func(K) uint64
	seed  uint64
	slots []htSlot[K, V]
	n     int  // keys held
	shift uint // 64 - log2(len(slots))
}

type htSlot[K comparable, V any] struct {
	tag uint64 // the key's seeded hash with its lowest bit set; 0: empty
	key K
	val V
}

const htMinSlots = 16

// newHashTable returns an empty table whose seed comes from id: tables
// that pass keys to one another (a stage's and the next's) must have
// different ids. The same id gives the same order for the same keys within
// a process (restarted and clean runs emit alike); for integer keys, in
// every process (other keys' hash is seeded per process).
func newHashTable[K comparable, V any](id int) *hashTable[K, V] {
	return &hashTable[K, V]{hash: tableHash[K](), seed: mix64(uint64(id) + 0x9e3779b97f4a7c15)}
}

var tableSeed = maphash.MakeSeed()

// tableHash hashes integers with no more than the table's mix and other
// keys with the runtime's hash of comparable values.
func tableHash[K comparable]() func(K) uint64 {
	var zero K
	switch any(zero).(type) {
	case int, int64, uint, uint64, uintptr:
		return func(k K) uint64 { return *(*uint64)(unsafe.Pointer(&k)) }
	case int32, uint32:
		return func(k K) uint64 { return uint64(*(*uint32)(unsafe.Pointer(&k))) }
	}
	return func(k K) uint64 { return maphash.Comparable(tableSeed, k) }
}

// Len returns the number of keys.
func (t *hashTable[K, V]) Len() int { return t.n }

// Find returns k's value, inserting the zero value when k is not there yet;
// found says whether it was. The pointer is good until the next insertion.
func (t *hashTable[K, V]) Find(k K) (v *V, found bool) {
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
func (t *hashTable[K, V]) Get(k K) (v *V, found bool) {
	if t.n == 0 {
		return nil, false
	}
	if s, _ := t.slot(k); s.tag != 0 {
		return &s.val, true
	}
	return nil, false
}

// slot returns k's slot, or the empty slot where k would go, and k's tag.
// The table must have an empty slot.
func (t *hashTable[K, V]) slot(k K) (*htSlot[K, V], uint64) {
	tag := mix64(t.hash(k)^t.seed) | 1
	mask := uint64(len(t.slots) - 1)
	for i := tag >> t.shift; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.tag == 0 || s.tag == tag && s.key == k {
			return s, tag
		}
	}
}

func (t *hashTable[K, V]) grow() {
	old := t.slots
	size := max(htMinSlots, 2*len(old))
	t.slots = make([]htSlot[K, V], size)
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

// All calls f with each key and its value, in slot order: the same order
// for the same keys inserted in the same order.
func (t *hashTable[K, V]) All(f func(k K, v *V)) {
	for i := range t.slots {
		if s := &t.slots[i]; s.tag != 0 {
			f(s.key, &s.val)
		}
	}
}

// Clear removes every key and keeps the slots for reuse.
func (t *hashTable[K, V]) Clear() {
	clear(t.slots)
	t.n = 0
}

// Release removes every key and frees the slots.
func (t *hashTable[K, V]) Release() {
	t.slots, t.n, t.shift = nil, 0, 0
}
