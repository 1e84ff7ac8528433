package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// This file copies and encodes a key's state for checkpoints: Clone is the
// synchronous copy taken at a barrier; AppendKeyState and DecodeKeyState
// its encoding, written later off the task's hot path. Timers are not
// state of their own: a key's next event-time and processing-time work and
// its hold are functions of its windows (NextEventTime,
// NextProcessingTime, Hold), so a restored key's timers fire as the
// original's would have.

// ErrKeyState is wrapped by DecodeKeyState's errors: input that is not a
// key state of this strategy.
var ErrKeyState = errors.New("window: corrupt key state")

// Clone returns a copy of st that shares no memory with it but the
// accumulators, copied shallowly (in accumulating mode an accumulator goes
// on being merged into: Combine.Add and Merge must return a new value
// rather than change their first argument's memory, as for Snapshot). It
// costs two allocations; a Cloner copies many keys with fewer.
func (st *KeyState[A]) Clone() KeyState[A] {
	var c Cloner[A]
	return c.Clone(st)
}

// Cloner copies the states of many keys (a snapshot's) into memory it
// grows as needed, so that a copy costs no allocation per key but a
// share of the growth. The copies stay valid as the Cloner goes on.
type Cloner[A any] struct {
	wins []winState[A]
	trig []tstate
}

// Grow makes room for keys more copies of about windows windows each.
func (c *Cloner[A]) Grow(keys, windows int) {
	c.wins = slices.Grow(c.wins, keys*windows)
}

// Clone returns a copy of st, as KeyState.Clone.
func (c *Cloner[A]) Clone(st *KeyState[A]) KeyState[A] {
	out := *st
	if len(st.wins) == 0 {
		out.wins = nil
		return out
	}
	at := len(c.wins)
	c.wins = append(c.wins, st.wins...)
	out.wins = c.wins[at:len(c.wins):len(c.wins)]
	for i := range out.wins {
		ws := &out.wins[i]
		if ws.trig == nil {
			continue
		}
		if len(c.trig)+len(ws.trig) > cap(c.trig) {
			c.trig = make([]tstate, 0, max(2*cap(c.trig), 64*len(ws.trig)))
		}
		t := len(c.trig)
		c.trig = append(c.trig, ws.trig...)
		ws.trig = c.trig[t:len(c.trig):len(c.trig)]
	}
	return out
}

const (
	ksInit = 1 << iota // KeyState: the clocks have started
)

const (
	wsHold     = 1 << iota // the window holds the watermark at hold
	wsEOWDone              // the watermark has reached the end
	wsFinished             // the trigger has finished: a tombstone
)

// AppendKeyState appends st's encoding to dst, each window's accumulator
// by appendAcc: whether the clocks have started and, if so, the
// watermark and processing time the key has seen; then per window in
// order its interval, flags, pending count, pane indexes, hold and, unless
// its trigger has finished, its accumulator and per trigger node its count,
// flags and deadline. The encoding is canonical: a state decoded by
// DecodeKeyState encodes to the same bytes.
func (d *Windowing[V, A]) AppendKeyState(dst []byte, st *KeyState[A], appendAcc func([]byte, *A) []byte) []byte {
	if !st.init {
		dst = append(dst, 0)
	} else {
		dst = append(dst, ksInit)
		dst = binary.AppendVarint(dst, int64(st.wm))
		dst = binary.AppendVarint(dst, int64(st.pt))
	}
	n := 0
	for i := range st.wins {
		if !st.wins[i].dead {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for i := range st.wins {
		ws := &st.wins[i]
		if ws.dead {
			continue
		}
		dst = binary.AppendVarint(dst, int64(ws.w.Start))
		dst = binary.AppendVarint(dst, int64(ws.w.End))
		var f byte
		if ws.hasHold {
			f |= wsHold
		}
		if ws.eowDone {
			f |= wsEOWDone
		}
		if ws.finished {
			f |= wsFinished
		}
		dst = append(dst, f)
		dst = binary.AppendVarint(dst, ws.index)
		dst = binary.AppendVarint(dst, ws.nonspec)
		if ws.finished {
			continue // a tombstone: no accumulator, records or trigger
		}
		dst = binary.AppendVarint(dst, ws.pending)
		if ws.hasHold {
			dst = binary.AppendVarint(dst, int64(ws.hold))
		}
		dst = appendAcc(dst, &ws.acc)
		for j := range ws.trig {
			s := &ws.trig[j]
			dst = binary.AppendVarint(dst, s.count)
			dst = append(dst, s.flags)
			if s.flags&fDeadline != 0 {
				dst = binary.AppendVarint(dst, int64(s.deadline))
			}
		}
	}
	return dst
}

// DecodeKeyState decodes a key state written by AppendKeyState for a
// strategy with the same trigger from the front of src into st, which must
// be empty, each accumulator by decodeAcc, and returns the rest of src.
// Errors wrap ErrKeyState, or are decodeAcc's; on error st is unchanged.
func (d *Windowing[V, A]) DecodeKeyState(src []byte, st *KeyState[A], decodeAcc func([]byte, *A) ([]byte, error)) ([]byte, error) {
	if st.init || len(st.wins) > 0 {
		return src, fmt.Errorf("%w: decoding into a key that holds state", ErrKeyState)
	}
	r := ksReader{b: src}
	var out KeyState[A]
	switch r.byte() {
	case 0:
	case ksInit:
		out.init = true
		out.wm, out.pt = Time(r.varint()), Time(r.varint())
	default:
		r.fail("unknown key flags")
	}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail(fmt.Sprintf("%d windows in %d bytes", n, len(r.b)))
	}
	nodes := len(d.prog.nodes)
	for i := uint64(0); i < n && r.err == nil; i++ {
		ws := winState[A]{w: Interval{Start: Time(r.varint()), End: Time(r.varint())}}
		if r.err == nil && (ws.w.Start >= ws.w.End || i > 0 && out.wins[i-1].w.Compare(ws.w) >= 0) {
			r.fail(fmt.Sprintf("window %v out of order", ws.w))
		}
		ws.gc = d.gcTime(ws.w)
		f := r.byte()
		if f&^(wsHold|wsEOWDone|wsFinished) != 0 {
			r.fail("unknown window flags")
		}
		ws.eowDone, ws.finished = f&wsEOWDone != 0, f&wsFinished != 0
		ws.index, ws.nonspec = r.varint(), r.varint()
		if ws.finished {
			if f&wsHold != 0 {
				r.fail("a closed window with a hold")
			}
			out.wins = append(out.wins, ws)
			continue
		}
		ws.pending = r.varint()
		if f&wsHold != 0 {
			ws.hold, ws.hasHold = Time(r.varint()), true
		}
		if r.err != nil {
			break
		}
		rest, err := decodeAcc(r.b, &ws.acc)
		if err != nil {
			return src, fmt.Errorf("window %v: %w", ws.w, err)
		}
		r.b = rest
		ws.trig = make([]tstate, nodes)
		for j := range ws.trig {
			s := &ws.trig[j]
			s.count = r.varint()
			s.flags = r.byte()
			if s.flags&^(fFinished|fLate|fDeadline) != 0 {
				r.fail("unknown trigger flags")
			}
			if s.flags&fDeadline != 0 {
				s.deadline = Time(r.varint())
			}
		}
		out.wins = append(out.wins, ws)
	}
	if r.err != nil {
		return src, r.err
	}
	*st = out
	return r.b, nil
}

// ksReader reads a key state; the first error sticks.
type ksReader struct {
	b   []byte
	err error
}

func (r *ksReader) fail(msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrKeyState, msg)
	}
}

func (r *ksReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	b := r.b[0]
	r.b = r.b[1:]
	return b
}

func (r *ksReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("truncated")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *ksReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("truncated")
		return 0
	}
	r.b = r.b[n:]
	return v
}
