package state

import (
	"encoding/binary"
	"fmt"
)

// Lists is the state of a GroupByKey: each key's values in arrival order,
// the keys in the order of their first value.
type Lists[K comparable, V any] struct {
	groups Groups[K]
	index  map[K]int32 // lookups only: its order reaches nothing
	rows   []List[K, V]
}

// List is one key's values.
type List[K comparable, V any] struct {
	Key    K
	Values []V
}

// NewLists returns empty lists over groups.
func NewLists[K comparable, V any](groups Groups[K]) *Lists[K, V] {
	return &Lists[K, V]{groups: groups, index: map[K]int32{}}
}

// Add appends v to k's list.
func (l *Lists[K, V]) Add(k K, v V) {
	if j, ok := l.index[k]; ok {
		l.rows[j].Values = append(l.rows[j].Values, v)
		return
	}
	l.index[k] = int32(len(l.rows))
	l.rows = append(l.rows, List[K, V]{Key: k, Values: []V{v}})
}

// Rows returns the lists, keys in the order of their first value. They are
// good until the next Add.
func (l *Lists[K, V]) Rows() []List[K, V] { return l.rows }

// Release drops every list.
func (l *Lists[K, V]) Release() { l.rows, l.index = nil, map[K]int32{} }

// ListsSnapshot is an immutable copy of the lists of a range of key groups,
// to be encoded off the hot path.
type ListsSnapshot[K comparable, V any] struct {
	rows   []List[K, V]
	groups Groups[K]
	r      Range
}

// Snapshot copies the lists of the keys in r: per key, its key and a slice
// header (a routing hash and 24 bytes and a key), no copy of the values:
// Add appends past a copied list's length, which the copy does not see.
// Values are copied shallowly (see the package doc).
func (l *Lists[K, V]) Snapshot(r Range) *ListsSnapshot[K, V] {
	l.groups.check(r)
	s := &ListsSnapshot[K, V]{groups: l.groups, r: r}
	for i := range l.rows {
		if r.Contains(l.groups.Of(l.rows[i].Key)) {
			row := l.rows[i]
			row.Values = row.Values[:len(row.Values):len(row.Values)]
			s.rows = append(s.rows, row)
		}
	}
	return s
}

// Append appends the snapshot's chunk to dst: per key, in the order of
// their first values, its group, key and values.
func (s *ListsSnapshot[K, V]) Append(dst []byte, kc Coder[K], vc Coder[V]) []byte {
	dst, at := startChunk(dst, KindLists, s.groups.Max, s.r, kc, vc)
	dst = binary.AppendUvarint(dst, uint64(len(s.rows)))
	for i := range s.rows {
		row := &s.rows[i]
		dst = binary.AppendUvarint(dst, uint64(s.groups.Of(row.Key)))
		dst = kc.Append(dst, &row.Key)
		dst = binary.AppendUvarint(dst, uint64(len(row.Values)))
		for j := range row.Values {
			dst = vc.Append(dst, &row.Values[j])
		}
	}
	return endChunk(dst, at)
}

// Restore adds the lists of a chunk written by ListsSnapshot.Append whose
// groups are in keep (as for Aggregate.Restore), after the lists held. A key held already is ErrMismatch. On error the state is
// unchanged.
func (l *Lists[K, V]) Restore(src []byte, keep Range, kc Coder[K], vc Coder[V]) error {
	r, max, rg, err := openChunk(src, KindLists, kc, vc)
	if err != nil {
		return err
	}
	if max != l.groups.Max {
		return fmt.Errorf("%w: %d key groups, the state has %d", ErrMismatch, max, l.groups.Max)
	}
	rows := make([]List[K, V], r.count())
	seen := make(map[K]bool, len(rows))
	for i := 0; i < len(rows) && r.err == nil; i++ {
		row := &rows[i]
		g := int(r.uvarint())
		decode(r, kc, &row.Key)
		row.Values = make([]V, r.count())
		for j := 0; j < len(row.Values) && r.err == nil; j++ {
			decode(r, vc, &row.Values[j])
		}
		if r.err != nil {
			break
		}
		_, held := l.index[row.Key]
		switch {
		case len(row.Values) == 0 || !rg.Contains(g) || l.groups.Of(row.Key) != g:
			r.err = fmt.Errorf("%w: key %v in group %d with %d values, its group is %d of %v", ErrCorrupt, row.Key, g, len(row.Values), l.groups.Of(row.Key), rg)
		case seen[row.Key]:
			r.err = fmt.Errorf("%w: key %v twice in one chunk", ErrCorrupt, row.Key)
		case held:
			r.err = fmt.Errorf("%w: key %v is held already", ErrMismatch, row.Key)
		}
		seen[row.Key] = true
		if !keep.Contains(g) {
			row.Values = nil // not the instance's: dropped below
		}
	}
	if err := r.end(); err != nil {
		return err
	}
	for _, row := range rows {
		if row.Values == nil {
			continue
		}
		l.index[row.Key] = int32(len(l.rows))
		l.rows = append(l.rows, row)
	}
	return nil
}
