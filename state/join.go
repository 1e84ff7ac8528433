package state

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Join is a join's state: the build side's rows by key, the probe records
// held until the build side has ended, and, for a full outer join, which
// build rows have matched.
//
// Each key's first row sits in the key's table slot, so that probing a key
// with one row (a dimension table's primary key) costs one cache miss;
// further rows of a key chain through more. Rows are numbered in arrival
// order, for the matched set.
type Join[K comparable, L, R any] struct {
	groups Groups[K]
	t      Table[K, Row[R]]
	more   []Row[R]
	rows   int32

	built   bool
	matches bool   // matched is kept (a full outer join)
	matched []bool // by row number, once built
	held    []Held[K, L]
}

// Row is one build row. Next gives the key's next one.
type Row[R any] struct {
	R    R
	id   int32 // arrival number
	next int32 // the key's next row: more[next-1]; 0: none
}

// Held is a probe record held until the build side has ended.
type Held[K comparable, L any] struct {
	Key   K
	Value L
}

// NewJoin returns an empty join over groups, its table seeded with seed.
// A full outer join keeps matches, to emit its unmatched build rows.
func NewJoin[K comparable, L, R any](groups Groups[K], seed uint64, keepMatches bool) *Join[K, L, R] {
	return &Join[K, L, R]{groups: groups, t: *NewTable[K, Row[R]](seed), matches: keepMatches}
}

// Add adds a build row of key k.
func (j *Join[K, L, R]) Add(k K, r R) {
	v, found := j.t.Find(k)
	row := Row[R]{R: r, id: j.rows}
	if found {
		// The newcomer goes second in the key's chain, behind the first
		// row that stays in the slot.
		row.next = v.next
		j.more = append(j.more, row)
		v.next = int32(len(j.more))
	} else {
		*v = row
	}
	j.rows++
}

// Rows returns the number of build rows.
func (j *Join[K, L, R]) Rows() int { return int(j.rows) }

// Get returns k's first build row, or nil. The pointer is good until the
// next Add.
func (j *Join[K, L, R]) Get(k K) *Row[R] {
	v, _ := j.t.Get(k)
	return v
}

// Next returns the row after v of v's key, or nil.
func (j *Join[K, L, R]) Next(v *Row[R]) *Row[R] {
	if v.next == 0 {
		return nil
	}
	return &j.more[v.next-1]
}

// EndBuild marks the build side ended: from now on probes are not held and
// matches are kept.
func (j *Join[K, L, R]) EndBuild() {
	if j.built {
		return // a restored state's build side ended before
	}
	j.built = true
	if j.matches {
		j.matched = make([]bool, j.rows)
	}
}

// Built reports whether the build side has ended.
func (j *Join[K, L, R]) Built() bool { return j.built }

// Match records that row v matched. It is idempotent.
func (j *Join[K, L, R]) Match(v *Row[R]) {
	if j.matched != nil {
		j.matched[v.id] = true
	}
}

// Unmatched calls f with each build row that has not matched, by key in
// slot order, a key's rows in chain order.
func (j *Join[K, L, R]) Unmatched(f func(k K, r *R)) {
	j.t.All(func(k K, first *Row[R]) {
		for v := first; v != nil; v = j.Next(v) {
			if !j.matched[v.id] {
				f(k, &v.R)
			}
		}
	})
}

// Hold holds a probe record until the build side has ended.
func (j *Join[K, L, R]) Hold(k K, l L) { j.held = append(j.held, Held[K, L]{Key: k, Value: l}) }

// Held returns the probe records held, in arrival order; DropHeld drops
// them once they have been probed.
func (j *Join[K, L, R]) Held() []Held[K, L] { return j.held }

// DropHeld drops the held probe records.
func (j *Join[K, L, R]) DropHeld() { j.held = nil }

// JoinSnapshot is an immutable copy of a Join's state in a range of key
// groups, to be encoded off the hot path.
type JoinSnapshot[K comparable, L, R any] struct {
	spans   []Span // with only: the build rows kept
	only    bool
	v       view[K, Row[R]]
	more    []Row[R]
	matched []bool
	held    []Held[K, L]
	built   bool
	matches bool
	groups  Groups[K]
	r       Range
}

// Snapshot copies the state of the keys in r. It costs a copy of the
// table's slots (1.33 to 2.67 slots of 16 bytes and a key and a row per
// key), of the rows beyond each key's first (8 bytes and a row each), of
// the matched set (a byte per row) and of the held probe records (a key and
// a record each); no hashing, encoding or allocation per key.
func (j *Join[K, L, R]) Snapshot(r Range) *JoinSnapshot[K, L, R] {
	j.groups.check(r)
	return &JoinSnapshot[K, L, R]{v: j.t.copyView(), more: append([]Row[R](nil), j.more...),
		matched: append([]bool(nil), j.matched...), held: append([]Held[K, L](nil), j.held...),
		built: j.built, matches: j.matches, groups: j.groups, r: r}
}

// Span is a run of build rows by arrival number, [Start, End): the rows
// of one build batch (see SnapshotRows).
type Span struct{ Start, End int }

// SnapshotRows is Snapshot keeping only the build rows of spans, which
// must be sorted and disjoint: for a broadcast join's build table, which
// the instances of a process share, and where other instances may have
// added rows past the barrier that this one has not yet seen. Its cost is
// Snapshot's and a copy of spans.
func (j *Join[K, L, R]) SnapshotRows(r Range, spans []Span) *JoinSnapshot[K, L, R] {
	s := j.Snapshot(r)
	s.spans, s.only = append([]Span(nil), spans...), true
	return s
}

// keeps reports whether the snapshot keeps build row id.
func (s *JoinSnapshot[K, L, R]) keeps(id int32) bool {
	if !s.only {
		return true
	}
	_, found := slices.BinarySearchFunc(s.spans, int(id), func(sp Span, id int) int {
		switch {
		case sp.End <= id:
			return -1
		case sp.Start > id:
			return 1
		}
		return 0
	})
	return found
}

const (
	joinBuilt   = 1 << 0
	joinMatches = 1 << 1
)

// Append appends the snapshot's chunk to dst: its flags; per key in
// canonical order its group, key and rows in chain order (each row and,
// once built with matches kept, whether it matched); then the held probe
// records of r in arrival order.
func (s *JoinSnapshot[K, L, R]) Append(dst []byte, kc Coder[K], lc Coder[L], rc Coder[R]) []byte {
	es, keys := canonical(s.v, s.groups, s.r, kc)
	dst, at := startChunk(dst, KindJoin, s.groups.Max, s.r, kc, lc, rc)
	var flags byte
	if s.built {
		flags |= joinBuilt
	}
	if s.matches {
		flags |= joinMatches
	}
	dst = append(dst, flags)
	// Each key's rows in chain order, those kept; a key with none is left
	// out.
	var chain []*Row[R]
	ends := make([]int, len(es))
	nkeys := 0
	for x, e := range es {
		at := len(chain)
		for v := &s.v.slots[e.i].val; ; v = &s.more[v.next-1] {
			if s.keeps(v.id) {
				chain = append(chain, v)
			}
			if v.next == 0 {
				break
			}
		}
		if len(chain) > at {
			nkeys++
		}
		ends[x] = len(chain)
	}
	dst = binary.AppendUvarint(dst, uint64(nkeys))
	start := 0
	for x, e := range es {
		rows := chain[start:ends[x]]
		start = ends[x]
		if len(rows) == 0 {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(e.g))
		dst = append(dst, keys[e.start:e.end]...)
		dst = binary.AppendUvarint(dst, uint64(len(rows)))
		for _, v := range rows {
			dst = rc.Append(dst, &v.R)
			if s.matched != nil {
				m := byte(0)
				if s.matched[v.id] {
					m = 1
				}
				dst = append(dst, m)
			}
		}
	}
	n := 0
	for i := range s.held {
		if s.r.Contains(s.groups.Of(s.held[i].Key)) {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for i := range s.held {
		h := &s.held[i]
		if g := s.groups.Of(h.Key); s.r.Contains(g) {
			dst = binary.AppendUvarint(dst, uint64(g))
			dst = kc.Append(dst, &h.Key)
			dst = lc.Append(dst, &h.Value)
		}
	}
	return endChunk(dst, at)
}

// Restore adds the state of a chunk written by JoinSnapshot.Append, of the
// keys whose groups are in keep (as for Aggregate.Restore). A state may
// restore several chunks; they must agree on whether the build
// side had ended (ErrMismatch), and a key held already is ErrMismatch. On
// error the state is unchanged.
func (j *Join[K, L, R]) Restore(src []byte, keep Range, kc Coder[K], lc Coder[L], rc Coder[R]) error {
	r, max, rg, err := openChunk(src, KindJoin, kc, lc, rc)
	if err != nil {
		return err
	}
	if max != j.groups.Max {
		return fmt.Errorf("%w: %d key groups, the state has %d", ErrMismatch, max, j.groups.Max)
	}
	var flags byte
	if len(r.b) > 0 {
		flags, r.b = r.b[0], r.b[1:]
	} else if r.err == nil {
		r.err = fmt.Errorf("%w: truncated", ErrCorrupt)
	}
	built, matches := flags&joinBuilt != 0, flags&joinMatches != 0
	hasMatched := built && matches
	type key struct {
		k    K
		rows []R
		m    []bool
	}
	keys := make([]key, r.count())
	ks := make([]K, len(keys))
	for i := 0; i < len(keys) && r.err == nil; i++ {
		e := &keys[i]
		g := int(r.uvarint())
		decode(r, kc, &e.k)
		ks[i] = e.k
		e.rows = make([]R, r.count())
		if hasMatched {
			e.m = make([]bool, len(e.rows))
		}
		for x := 0; x < len(e.rows) && r.err == nil; x++ {
			decode(r, rc, &e.rows[x])
			if hasMatched {
				if len(r.b) == 0 {
					r.err = fmt.Errorf("%w: truncated", ErrCorrupt)
					break
				}
				e.m[x], r.b = r.b[0] == 1, r.b[1:]
			}
		}
		if r.err == nil && (len(e.rows) == 0 || !rg.Contains(g) || j.groups.Of(e.k) != g) {
			r.err = fmt.Errorf("%w: key %v in group %d with %d rows, its group is %d of %v", ErrCorrupt, e.k, g, len(e.rows), j.groups.Of(e.k), rg)
		}
		if !keep.Contains(g) {
			e.rows = nil // not the instance's: dropped below
		}
	}
	held := make([]Held[K, L], r.count())
	for i := 0; i < len(held) && r.err == nil; i++ {
		g := int(r.uvarint())
		decode(r, kc, &held[i].Key)
		decode(r, lc, &held[i].Value)
		if r.err == nil && (!rg.Contains(g) || j.groups.Of(held[i].Key) != g) {
			r.err = fmt.Errorf("%w: held key %v in group %d of %v", ErrCorrupt, held[i].Key, g, rg)
		}
	}
	if err := r.end(); err != nil {
		return err
	}
	keys = slices.DeleteFunc(keys, func(e key) bool { return e.rows == nil })
	held = slices.DeleteFunc(held, func(h Held[K, L]) bool { return !keep.Contains(j.groups.Of(h.Key)) })
	ks = ks[:0]
	for _, e := range keys {
		ks = append(ks, e.k)
	}
	if j.rows > 0 || len(j.held) > 0 || j.built {
		if built != j.built || matches != j.matches {
			return fmt.Errorf("%w: build side ended %v, keeping matches %v; the state's %v, %v", ErrMismatch, built, matches, j.built, j.matches)
		}
	}
	if err := checkNew(&j.t, ks); err != nil {
		return err
	}
	j.built, j.matches = built, matches
	for _, e := range keys {
		// The first row stays in the slot; each newcomer goes second, so
		// the rest go in backwards to keep the chain's order.
		for x := range e.rows {
			at := x
			if x > 0 {
				at = len(e.rows) - x
			}
			j.Add(e.k, e.rows[at])
			if hasMatched {
				j.matched = append(j.matched, e.m[at])
			}
		}
	}
	if built && matches && j.matched == nil {
		j.matched = []bool{}
	}
	j.held = append(j.held, held...)
	return nil
}
