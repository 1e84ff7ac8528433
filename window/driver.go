package window

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// This file is the trigger driver: Beam's windowing model (assignment,
// merging, triggers, lateness, panes, watermark holds) as a pure state
// machine over one key's windows. It has no clock: the input watermark and
// the processing time come in with each call. An operator keeps one
// KeyState per key (in key groups, for checkpoints and rescaling) and one
// shared Windowing; every call works on one key's state.

// Element is one record for the trigger driver: a value and its event time.
type Element[V any] struct {
	Value V
	Time  Time
}

// Pane is one firing of one window.
type Pane[A any] struct {
	Window Interval
	// Value is the window's accumulator: in discarding mode over the
	// records since the previous pane, in accumulating mode over all of
	// them.
	Value A
	// Timestamp is the pane's output time, chosen by the timestamp
	// combiner.
	Timestamp Time
	Info      PaneInfo
}

// DropReason says why a record did not reach a pane.
type DropReason uint8

const (
	// TooLate: the record's window had expired (its end plus the allowed
	// lateness was behind the input watermark).
	TooLate DropReason = iota
	// WindowClosed: the record's window's trigger had finished.
	WindowClosed
)

func (r DropReason) String() string {
	switch r {
	case TooLate:
		return "too late"
	case WindowClosed:
		return "window closed"
	}
	return fmt.Sprintf("DropReason(%d)", int(r))
}

// Drop is one record dropped from one window.
type Drop[V any] struct {
	Window  Interval
	Element Element[V]
	Reason  DropReason
}

// Combine folds a window's values into an accumulator.
type Combine[V, A any] struct {
	// Zero returns an empty accumulator.
	Zero func() A
	// Add folds v into acc and returns the result.
	Add func(acc A, v V) A
	// Merge folds b into a and returns the result (windows merging).
	Merge func(a, b A) A
	// Snapshot, when set, copies acc so that an accumulating pane can hand
	// it out while the window goes on adding to it. Nil means accumulators
	// are plain values (or never change once handed out).
	Snapshot func(acc A) A
}

// Collect returns the Combine that keeps the values themselves, in arrival
// order (a GroupByKey).
func Collect[V any]() Combine[V, []V] {
	return Combine[V, []V]{
		Zero:     func() []V { return nil },
		Add:      func(acc []V, v V) []V { return append(acc, v) },
		Merge:    func(a, b []V) []V { return append(a, b...) },
		Snapshot: func(acc []V) []V { return slices.Clone(acc) },
	}
}

// Output collects what driver calls produce. Reuse one across calls and
// Reset it after taking the panes.
type Output[V, A any] struct {
	Panes []Pane[A]
	// KeepDropped asks for every dropped record in Dropped, for a side
	// output of late data. Records lost when a window merges into a closed
	// one are counted in DroppedClosed but not listed.
	KeepDropped bool
	Dropped     []Drop[V]
	// DroppedLate and DroppedClosed are running totals of records dropped
	// because their window had expired and because its trigger had
	// finished. A record is counted once per window it was dropped from.
	DroppedLate, DroppedClosed int64
	// Late is the running total of records added to a window whose end the
	// input watermark had passed, within the allowed lateness: they go
	// into late panes.
	Late int64
	// Samples, when above zero, keeps in Sampled the first Samples records
	// of each kind the counters above count, as examples (a job's
	// explain-why); they stay until the caller takes them.
	Samples int
	Sampled []Sample[V]
	sampled [numSampleKinds]int

	// Scratch, kept to save allocations.
	wins   []Interval
	items  []assigned
	all    []Interval
	merges []Merge
	timers []timer
}

// Reset empties Panes and Dropped, keeping the counters and the memory.
func (o *Output[V, A]) Reset() {
	clear(o.Panes)
	clear(o.Dropped)
	o.Panes = o.Panes[:0]
	o.Dropped = o.Dropped[:0]
}

func (o *Output[V, A]) drop(w Interval, e Element[V], r DropReason, wm Time) {
	k := SampleClosed
	if r == TooLate {
		o.DroppedLate++
		k = SampleTooLate
	} else {
		o.DroppedClosed++
	}
	if o.KeepDropped {
		o.Dropped = append(o.Dropped, Drop[V]{Window: w, Element: e, Reason: r})
	}
	o.sample(k, w, e, wm)
}

func (o *Output[V, A]) sample(k SampleKind, w Interval, e Element[V], wm Time) {
	if o.sampled[k] < o.Samples {
		o.sampled[k]++
		o.Sampled = append(o.Sampled, Sample[V]{Kind: k, Window: w, Element: e, Watermark: wm})
	}
}

// SampleKind says what a Sample is an example of.
type SampleKind uint8

const (
	// SampleTooLate: dropped, its window expired (Output.DroppedLate).
	SampleTooLate SampleKind = iota
	// SampleClosed: dropped, its window's trigger had finished
	// (Output.DroppedClosed).
	SampleClosed
	// SampleLate: added to a window the watermark had passed, within the
	// allowed lateness (Output.Late).
	SampleLate
	numSampleKinds
)

// Sample is a record the driver counted in Output, with the key's input
// watermark when it came.
type Sample[V any] struct {
	Kind      SampleKind
	Window    Interval
	Element   Element[V]
	Watermark Time
}

type assigned struct {
	w Interval
	e int32 // index into the elements
}

type timer struct {
	t    Time
	gc   bool // garbage collection; else end of window
	win  Interval
	slot int // index into the key's windows
}

// Windowing is the shared, read-only part of the trigger driver: a
// validated strategy compiled for a Combine. It is safe for concurrent use;
// the per-key state is in KeyState.
type Windowing[V, A any] struct {
	strategy     Strategy
	fn           Fn
	merging      MergingFn
	outFn        OutputTimeFn
	prog         *program
	c            Combine[V, A]
	lateness     time.Duration
	combiner     TimestampCombiner
	accumulating bool
}

// NewWindowing validates w and compiles it for c.
func NewWindowing[V, A any](w Window, c Combine[V, A]) (*Windowing[V, A], error) {
	if w == nil {
		return nil, errors.New("core: no windowing strategy")
	}
	s := w.Strategy()
	var errs []error
	if err := s.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Zero == nil || c.Add == nil || c.Merge == nil {
		errs = append(errs, errors.New("core: windowing combine needs Zero, Add and Merge"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("core: windowing %v: %w", s, errors.Join(errs...))
	}
	spec := s.Spec()
	prog, err := compileTrigger(spec.Trigger)
	if err != nil {
		return nil, err
	}
	d := &Windowing[V, A]{strategy: s, fn: spec.Fn, prog: prog, c: c, lateness: spec.AllowedLateness,
		combiner: spec.TimestampCombiner, accumulating: spec.Mode == Accumulating}
	d.merging, _ = spec.Fn.(MergingFn)
	d.outFn, _ = spec.Fn.(OutputTimeFn)
	return d, nil
}

// Strategy returns the strategy d runs.
func (d *Windowing[V, A]) Strategy() Strategy { return d.strategy }

// KeyState is one key's windows. The zero value is empty and ready to use.
type KeyState[A any] struct {
	wins []winState[A] // sorted by window
	wm   Time          // input watermark seen last
	pt   Time          // processing time seen last
	init bool
}

// winState is one window of one key.
type winState[A any] struct {
	w   Interval
	gc  Time // garbage collection once the watermark reaches it
	acc A
	// pending counts records added since the last pane.
	pending        int64
	index, nonspec int64
	hold           Time
	hasHold        bool
	eowDone        bool // the watermark has reached w.End
	finished       bool // the trigger has finished: a tombstone until gc
	dead           bool // garbage collected or merged away; removed soon
	trig           []tstate
}

func (st *KeyState[A]) start() {
	if !st.init {
		st.wm, st.pt, st.init = MinTime, MinTime, true
	}
}

// find returns the slot of w, or where it would go.
func (st *KeyState[A]) find(w Interval) (int, bool) {
	lo, hi := 0, len(st.wins)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if st.wins[m].w.Compare(w) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(st.wins) && st.wins[lo].w == w
}

func (st *KeyState[A]) compact() {
	st.wins = slices.DeleteFunc(st.wins, func(ws winState[A]) bool { return ws.dead })
}

// Empty reports whether the key holds no windows (its state may be dropped).
func (st *KeyState[A]) Empty() bool { return len(st.wins) == 0 }

// Watermark returns the input watermark the state has seen last.
func (st *KeyState[A]) Watermark() Time {
	st.start()
	return st.wm
}

// NextEventTime returns the watermark at which the key next has work (a
// window's end or garbage collection), if any.
func (st *KeyState[A]) NextEventTime() (Time, bool) {
	best, ok := MaxTime, false
	for i := range st.wins {
		ws := &st.wins[i]
		if !ws.eowDone && !ws.finished && ws.w.End <= best {
			best, ok = ws.w.End, true
		}
		if ws.gc <= best {
			best, ok = ws.gc, true
		}
	}
	return best, ok
}

// NextProcessingTime returns the processing time at which a trigger of the
// key next wants to be asked, if any.
func (st *KeyState[A]) NextProcessingTime() (Time, bool) {
	st.start()
	best, ok := MaxTime, false
	for i := range st.wins {
		if ws := &st.wins[i]; !ws.finished {
			if t, has := nextDeadline(ws.trig, st.pt); has && t <= best {
				best, ok = t, true
			}
		}
	}
	return best, ok
}

// Hold returns the key's watermark hold: the earliest output time of a pane
// still to come. An operator's output watermark is the minimum of its input
// watermark and its keys' holds.
func (st *KeyState[A]) Hold() (Time, bool) {
	best, ok := MaxTime, false
	for i := range st.wins {
		if ws := &st.wins[i]; ws.hasHold && !ws.finished && ws.hold <= best {
			best, ok = ws.hold, true
		}
	}
	return best, ok
}

// WindowInfo describes one window a key holds.
type WindowInfo struct {
	Window Interval
	// Closed is set when the trigger has finished: the window is kept as a
	// tombstone until it is garbage collected, to drop its late records.
	Closed bool
	// Pending counts records that arrived since the window's last pane.
	Pending int64
	// Panes counts the panes fired so far.
	Panes int64
}

// Windows appends the key's windows to dst, in order.
func (st *KeyState[A]) Windows(dst []WindowInfo) []WindowInfo {
	for i := range st.wins {
		ws := &st.wins[i]
		dst = append(dst, WindowInfo{Window: ws.w, Closed: ws.finished, Pending: ws.pending, Panes: ws.index})
	}
	return dst
}

func (d *Windowing[V, A]) gcTime(w Interval) Time { return w.End.Add(d.lateness) }

func (d *Windowing[V, A]) newWindow(w Interval, wm Time) winState[A] {
	return winState[A]{w: w, gc: d.gcTime(w), acc: d.c.Zero(), eowDone: wm >= w.End,
		trig: make([]tstate, len(d.prog.nodes))}
}

// ProcessElements adds a bundle of one key's records at input watermark wm
// and processing time pt. It first does what the advance of the clocks to
// wm and pt calls for, as AdvanceWatermark and AdvanceProcessingTime. Then
// it assigns each record to its windows, dropping those whose window has
// expired, merges windows (sessions), adds the records to their windows and
// fires each window whose trigger is then ready. Panes and drops go to out.
func (d *Windowing[V, A]) ProcessElements(st *KeyState[A], elems []Element[V], wm, pt Time, out *Output[V, A]) {
	d.AdvanceWatermark(st, wm, out)
	d.AdvanceProcessingTime(st, pt, out)
	wm = st.wm
	items := out.items[:0]
	for i, e := range elems {
		out.wins = d.fn.Assign(e.Time, out.wins[:0])
		for _, w := range out.wins {
			if wm >= d.gcTime(w) {
				out.drop(w, e, TooLate, wm)
				continue
			}
			items = append(items, assigned{w: w, e: int32(i)})
		}
	}
	if d.merging != nil && len(items) > 0 {
		d.mergeWindows(st, items, out)
	}
	slices.SortStableFunc(items, func(a, b assigned) int { return a.w.Compare(b.w) })
	for i := 0; i < len(items); {
		j := i + 1
		for j < len(items) && items[j].w == items[i].w {
			j++
		}
		d.addToWindow(st, items[i:j], elems, out)
		i = j
	}
	out.items = items[:0]
}

func (d *Windowing[V, A]) addToWindow(st *KeyState[A], items []assigned, elems []Element[V], out *Output[V, A]) {
	w := items[0].w
	slot, found := st.find(w)
	if !found {
		st.wins = slices.Insert(st.wins, slot, d.newWindow(w, st.wm))
	}
	ws := &st.wins[slot]
	if ws.finished {
		for _, it := range items {
			out.drop(w, elems[it.e], WindowClosed, st.wm)
		}
		return
	}
	if st.wm >= w.End {
		out.Late += int64(len(items))
		for _, it := range items {
			if out.sampled[SampleLate] >= out.Samples {
				break
			}
			out.sample(SampleLate, w, elems[it.e], st.wm)
		}
	}
	c := tctx{win: w, wm: st.wm, pt: st.pt, st: ws.trig}
	for _, it := range items {
		e := elems[it.e]
		ws.acc = d.c.Add(ws.acc, e.Value)
		ws.pending++
		d.addHold(ws, e.Time, st.wm)
		d.prog.onElement(0, &c)
	}
	if d.prog.shouldFire(0, &c) {
		d.fire(st, ws, &c, false, false, out)
	}
}

// addHold adds a record at t to the window's watermark hold, unless its
// output time is already behind the input watermark.
func (d *Windowing[V, A]) addHold(ws *winState[A], t, wm Time) {
	o := t
	switch d.combiner {
	case EndOfWindow:
		o = ws.w.MaxTimestamp()
	case EarliestTransformed:
		if d.outFn != nil {
			o = d.outFn.OutputTime(ws.w, t)
		}
	}
	if o < wm {
		return
	}
	d.combineHold(ws, o)
}

func (d *Windowing[V, A]) combineHold(ws *winState[A], o Time) {
	switch {
	case !ws.hasHold:
		ws.hold, ws.hasHold = o, true
	case d.combiner == Latest || d.combiner == EndOfWindow:
		ws.hold = max(ws.hold, o)
	default:
		ws.hold = min(ws.hold, o)
	}
}

// mergeWindows merges the key's windows with the new windows of items and
// points items at the windows they end up in.
func (d *Windowing[V, A]) mergeWindows(st *KeyState[A], items []assigned, out *Output[V, A]) {
	all := out.all[:0]
	fresh := false
	for i := range st.wins {
		all = append(all, st.wins[i].w)
	}
	for _, it := range items {
		if _, found := st.find(it.w); !found {
			all = append(all, it.w)
			fresh = true
		}
	}
	out.all = all
	if !fresh {
		return
	}
	slices.SortFunc(all, Interval.Compare)
	all = slices.Compact(all)
	merges := d.merging.Merge(all, out.merges[:0])
	var results []winState[A]
	for _, m := range merges {
		slot, exists := st.find(m.Into)
		var res winState[A]
		if exists {
			res = st.wins[slot]
		} else {
			res = d.newWindow(m.Into, st.wm)
		}
		for _, f := range m.From {
			if f == m.Into {
				continue
			}
			if s, ok := st.find(f); ok {
				d.mergeState(&res, &st.wins[s], out)
				st.wins[s].dead = true
			}
		}
		if exists {
			st.wins[slot] = res
		} else {
			results = append(results, res)
		}
		for k := range items {
			if slices.Contains(m.From, items[k].w) {
				items[k].w = m.Into
			}
		}
	}
	clear(merges)
	out.merges = merges[:0]
	st.compact()
	if len(results) > 0 {
		st.wins = append(st.wins, results...)
		slices.SortFunc(st.wins, func(a, b winState[A]) int { return a.w.Compare(b.w) })
	}
}

// mergeState folds the window src, merged away, into res. The merged window
// is closed if either was: the pending records of the other are then lost
// (and counted as dropped for a closed window).
func (d *Windowing[V, A]) mergeState(res, src *winState[A], out *Output[V, A]) {
	if res.finished || src.finished {
		if !res.finished {
			out.DroppedClosed += res.pending
		}
		if !src.finished {
			out.DroppedClosed += src.pending
		}
		d.tombstone(res)
		return
	}
	res.acc = d.c.Merge(res.acc, src.acc)
	res.pending += src.pending
	if src.hasHold {
		d.combineHold(res, src.hold)
	}
	d.prog.merge(res.trig, src.trig)
}

func (d *Windowing[V, A]) tombstone(ws *winState[A]) {
	var zero A
	ws.finished, ws.acc, ws.trig, ws.pending, ws.hasHold = true, zero, nil, 0, false
}

// fire runs the trigger's firing and emits the pane. eow says the firing
// comes from the watermark reaching the end of the window; gcNow that the
// window is garbage collected right after.
func (d *Windowing[V, A]) fire(st *KeyState[A], ws *winState[A], c *tctx, eow, gcNow bool, out *Output[V, A]) {
	d.prog.onFire(0, c)
	finished := ws.trig[0].flags&fFinished != 0
	d.emit(st, ws, eow, finished || gcNow, out)
	if finished {
		d.tombstone(ws)
	}
}

// emit hands out the window's pane, unless it would be empty and not the
// ON_TIME pane.
func (d *Windowing[V, A]) emit(st *KeyState[A], ws *winState[A], eow, last bool, out *Output[V, A]) {
	timing, nonspec := Early, int64(-1)
	if st.wm >= ws.w.End {
		timing, nonspec = Late, ws.nonspec
		if eow && nonspec == 0 {
			timing = OnTime
		}
	}
	if ws.pending == 0 && timing != OnTime {
		return
	}
	if timing != Early {
		ws.nonspec++
	}
	ts := ws.w.MaxTimestamp()
	if d.combiner != EndOfWindow && ws.hasHold {
		ts = ws.hold
	}
	v := ws.acc
	if d.accumulating && !last && d.c.Snapshot != nil {
		v = d.c.Snapshot(v)
	}
	out.Panes = append(out.Panes, Pane[A]{Window: ws.w, Value: v, Timestamp: ts, Info: PaneInfo{
		Index: ws.index, NonSpeculativeIndex: nonspec, Timing: timing, IsFirst: ws.index == 0, IsLast: last}})
	ws.index++
	ws.pending = 0
	if !d.accumulating && !last {
		ws.acc = d.c.Zero()
	}
	if timing != Early || !d.prog.onTime {
		ws.hasHold = false
	}
}

// AdvanceWatermark moves the key's input watermark to wm (it never goes
// back) and does what that calls for, in order of time: at each window's
// end the trigger is asked (and an ON_TIME pane may fire); once the
// watermark reaches a window's end plus the allowed lateness the window is
// garbage collected, firing a last pane if records are pending.
func (d *Windowing[V, A]) AdvanceWatermark(st *KeyState[A], wm Time, out *Output[V, A]) {
	st.start()
	if wm <= st.wm {
		return
	}
	prev := st.wm
	st.wm = wm
	due := out.timers[:0]
	for i := range st.wins {
		ws := &st.wins[i]
		if !ws.eowDone && ws.w.End <= wm {
			due = append(due, timer{t: ws.w.End, win: ws.w, slot: i})
		}
		if ws.gc <= wm {
			due = append(due, timer{t: ws.gc, gc: true, win: ws.w, slot: i})
		}
	}
	if len(due) == 0 {
		return
	}
	slices.SortFunc(due, func(a, b timer) int {
		switch {
		case a.t != b.t:
			return cmpTime(a.t, b.t)
		case a.gc != b.gc:
			if b.gc {
				return -1
			}
			return 1
		}
		return a.win.Compare(b.win)
	})
	for _, tm := range due {
		ws := &st.wins[tm.slot]
		if !tm.gc {
			ws.eowDone = true
			if ws.finished {
				continue
			}
			c := tctx{win: ws.w, wm: wm, pt: st.pt, st: ws.trig}
			if d.prog.shouldFire(0, &c) {
				d.fire(st, ws, &c, true, ws.gc <= wm, out)
			}
			continue
		}
		if !ws.finished && ws.pending > 0 {
			d.emit(st, ws, ws.w.End > prev, true, out)
		}
		ws.dead = true
	}
	clear(due)
	out.timers = due[:0]
	st.compact()
}

// AdvanceProcessingTime moves the key's processing time to pt (it never
// goes back) and asks the trigger of every window whose processing-time
// deadline has come.
func (d *Windowing[V, A]) AdvanceProcessingTime(st *KeyState[A], pt Time, out *Output[V, A]) {
	st.start()
	if pt <= st.pt {
		return
	}
	prev := st.pt
	st.pt = pt
	due := out.timers[:0]
	for i := range st.wins {
		if ws := &st.wins[i]; !ws.finished {
			if t, ok := nextDeadline(ws.trig, prev); ok && t <= pt {
				due = append(due, timer{t: t, win: ws.w, slot: i})
			}
		}
	}
	slices.SortFunc(due, func(a, b timer) int {
		if a.t != b.t {
			return cmpTime(a.t, b.t)
		}
		return a.win.Compare(b.win)
	})
	for _, tm := range due {
		ws := &st.wins[tm.slot]
		c := tctx{win: ws.w, wm: st.wm, pt: pt, st: ws.trig}
		if !ws.finished && d.prog.shouldFire(0, &c) {
			d.fire(st, ws, &c, false, false, out)
		}
	}
	clear(due)
	out.timers = due[:0]
}

func cmpTime(a, b Time) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
