package state

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/sluice-data/sluice/window"
)

// Triggered is the state of windowed aggregation under window's trigger
// driver (stages' windowState: merging windows, triggers other than the
// default, allowed lateness, accumulating panes): a window.KeyState per key,
// by key group, and the stage's watermark. A key's timers are not state of
// their own: its next event-time and processing-time work and its
// watermark hold are functions of its KeyState, so a stage requeues them
// for each key Restore gives back, and they fire as they would have.
type Triggered[K comparable, V, A any] struct {
	groups Groups[K]
	d      *window.Windowing[V, A]
	keys   []map[K]*TriggerKey[K, A] // by key group; nil: none yet
	wm     int64
}

// TriggerKey is one key's state. Event, Proc and Hold are its stage's
// bookkeeping of the timers and hold it has queued for the key; they are
// not snapshot (a restored key starts with them at their zero values).
type TriggerKey[K comparable, A any] struct {
	Key               K
	St                window.KeyState[A]
	Event, Proc, Hold int64
}

// NewTriggered returns empty state over groups for the driver d; its
// watermark is at the beginning of time.
func NewTriggered[K comparable, V, A any](groups Groups[K], d *window.Windowing[V, A]) *Triggered[K, V, A] {
	return &Triggered[K, V, A]{groups: groups, d: d, keys: make([]map[K]*TriggerKey[K, A], groups.Max), wm: math.MinInt64}
}

// Watermark returns the stage's watermark.
func (s *Triggered[K, V, A]) Watermark() int64 { return s.wm }

// Advance moves the watermark to wm, if that is later.
func (s *Triggered[K, V, A]) Advance(wm int64) { s.wm = max(s.wm, wm) }

// Key returns k's state, making it when needed; made says it was.
func (s *Triggered[K, V, A]) Key(k K) (e *TriggerKey[K, A], made bool) {
	g := s.groups.Of(k)
	m := s.keys[g]
	if m == nil {
		m = map[K]*TriggerKey[K, A]{}
		s.keys[g] = m
	}
	if e = m[k]; e != nil {
		return e, false
	}
	e = &TriggerKey[K, A]{Key: k}
	m[k] = e
	return e, true
}

// Drop forgets e's key (once its windows are gone).
func (s *Triggered[K, V, A]) Drop(e *TriggerKey[K, A]) {
	delete(s.keys[s.groups.Of(e.Key)], e.Key)
}

// Len returns the number of keys held.
func (s *Triggered[K, V, A]) Len() int {
	n := 0
	for _, m := range s.keys {
		n += len(m)
	}
	return n
}

// TriggeredSnapshot is an immutable copy of a Triggered's state in a range
// of key groups, to be encoded off the hot path.
type TriggeredSnapshot[K comparable, V, A any] struct {
	d      *window.Windowing[V, A]
	keys   []K
	sts    []window.KeyState[A]
	wm     int64
	groups Groups[K]
	r      Range
}

// Snapshot copies the state of the keys in r: per key, its key and a
// copy of its windows (window.Cloner: about 100 bytes and an accumulator
// each, and 24 bytes per trigger node and window, into memory shared by
// the snapshot's keys: no allocation per key). Accumulators are copied
// shallowly (see the package doc).
func (s *Triggered[K, V, A]) Snapshot(r Range) *TriggeredSnapshot[K, V, A] {
	s.groups.check(r)
	n := 0
	for g := r.Start; g < r.End; g++ {
		n += len(s.keys[g])
	}
	snap := &TriggeredSnapshot[K, V, A]{d: s.d, keys: make([]K, 0, n), sts: make([]window.KeyState[A], 0, n),
		wm: s.wm, groups: s.groups, r: r}
	var c window.Cloner[A]
	c.Grow(n, 1)
	for g := r.Start; g < r.End; g++ {
		for k, e := range s.keys[g] { // in map order: Append sorts
			snap.keys = append(snap.keys, k)
			snap.sts = append(snap.sts, c.Clone(&e.St))
		}
	}
	return snap
}

// Append appends the snapshot's chunk to dst: the watermark; then per key
// in canonical order (by key group, then the key's encoding) its group,
// key and KeyState (window.Windowing.AppendKeyState, accumulators by ac).
func (s *TriggeredSnapshot[K, V, A]) Append(dst []byte, kc Coder[K], ac Coder[A]) []byte {
	type ent struct {
		g          int
		start, end int
		i          int
	}
	es := make([]ent, len(s.keys))
	var keys []byte
	for i := range s.keys {
		start := len(keys)
		keys = kc.Append(keys, &s.keys[i])
		es[i] = ent{g: s.groups.Of(s.keys[i]), start: start, end: len(keys), i: i}
	}
	slices.SortFunc(es, func(a, b ent) int {
		if c := cmp.Compare(a.g, b.g); c != 0 {
			return c
		}
		return bytes.Compare(keys[a.start:a.end], keys[b.start:b.end])
	})
	dst, at := startChunk(dst, KindTriggered, s.groups.Max, s.r, kc, ac)
	dst = binary.AppendVarint(dst, s.wm)
	dst = binary.AppendUvarint(dst, uint64(len(es)))
	appendAcc := ac.Append
	for _, e := range es {
		dst = binary.AppendUvarint(dst, uint64(e.g))
		dst = append(dst, keys[e.start:e.end]...)
		dst = s.d.AppendKeyState(dst, &s.sts[e.i], appendAcc)
	}
	return endChunk(dst, at)
}

// Restore adds the keys of a chunk written by TriggeredSnapshot.Append
// whose groups are in keep (as for Aggregate.Restore) and calls restored
// with each, in the chunk's order, for its stage to
// queue its timers and hold. A state may restore several chunks; a key it
// holds already is ErrMismatch. The watermark becomes the latest of the
// state's and the chunk's, as for Windows. On error the state is
// unchanged and restored is not called.
func (s *Triggered[K, V, A]) Restore(src []byte, keep Range, kc Coder[K], ac Coder[A], restored func(*TriggerKey[K, A])) error {
	r, max, rg, err := openChunk(src, KindTriggered, kc, ac)
	if err != nil {
		return err
	}
	if max != s.groups.Max {
		return fmt.Errorf("%w: %d key groups, the state has %d", ErrMismatch, max, s.groups.Max)
	}
	wm := r.varint()
	n := r.count()
	es := make([]*TriggerKey[K, A], 0, n)
	seen := make(map[K]bool, n)
	for i := 0; i < n && r.err == nil; i++ {
		e := &TriggerKey[K, A]{}
		g := int(r.uvarint())
		decode(r, kc, &e.Key)
		if r.err != nil {
			break
		}
		rest, err := s.d.DecodeKeyState(r.b, &e.St, ac.Decode)
		if err != nil {
			r.err = fmt.Errorf("%w: key %v: %w", ErrCorrupt, e.Key, err)
			break
		}
		r.b = rest
		switch {
		case !rg.Contains(g) || s.groups.Of(e.Key) != g:
			r.err = fmt.Errorf("%w: key %v in group %d, its group is %d of %v", ErrCorrupt, e.Key, g, s.groups.Of(e.Key), rg)
		case seen[e.Key]:
			r.err = fmt.Errorf("%w: key %v twice in one chunk", ErrCorrupt, e.Key)
		case s.keys[g][e.Key] != nil:
			r.err = fmt.Errorf("%w: key %v is held already", ErrMismatch, e.Key)
		}
		seen[e.Key] = true
		if keep.Contains(g) {
			es = append(es, e)
		}
	}
	if err := r.end(); err != nil {
		return err
	}
	s.Advance(wm)
	for _, e := range es {
		g := s.groups.Of(e.Key)
		if s.keys[g] == nil {
			s.keys[g] = map[K]*TriggerKey[K, A]{}
		}
		s.keys[g][e.Key] = e
	}
	if restored != nil {
		for _, e := range es {
			restored(e)
		}
	}
	return nil
}
