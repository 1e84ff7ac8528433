package stages

import (
	"fmt"
	"slices"
	"time"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/state"
	"github.com/sluice-data/sluice/window"
)

// EventTime gives s's records the event times ts returns and starts
// watermarks: each instance's watermark is the greatest time it has seen
// minus MaxDelay, sent downstream with every linger tick; downstream
// stages take the least watermark over their inputs. Put it right after
// the source, where it fuses with it: one watermark per source instance.
func EventTime[T any](s Stream[T], ts func(T) time.Time, opts ...EventTimeOption) Stream[T] {
	loc := caller()
	check(loc, "eventtime", s, ts == nil)
	o := applyOptions(opts)
	if o.maxDelay < 0 || o.idle < 0 {
		s.p.fail(loc, "eventtime: MaxDelay %v and IdleAfter %v must not be negative", o.maxDelay, o.idle)
	}
	out := transform[T, T](s, loc, "eventtime", o, func(n *plan.Node) func(*plan.Batch) *plan.Batch {
		return func(in *plan.Batch) *plan.Batch {
			xs := in.Data.([]T)
			times := make([]int64, len(xs))
			i := -1
			defer func() { repanic(recover(), n, xs, i) }()
			for i = range xs {
				times[i] = ts(xs[i]).UnixNano()
			}
			return &plan.Batch{Data: xs, Times: times}
		}
	})
	out.node.Watermarks = &plan.WatermarkSpec{MaxDelay: int64(o.maxDelay), Idle: int64(o.idle)}
	return out
}

// WatermarkGenerator is a watermark strategy of one instance of a source
// (and of each of its splits, as the default strategy's greatest time seen
// is): Observe sees each record with its event time, in order, and
// Watermark returns the watermark so far (the zero Time: none yet). They
// are called after each batch, in order with the records, so a strategy
// per record (Flink's punctuated) and one over all it has seen (Flink's
// periodic, here deterministic rather than on a wall-clock period) are
// written alike. The watermark never goes back.
type WatermarkGenerator[T any] interface {
	Observe(x T, t time.Time)
	Watermark() time.Time
}

// EventTimeWith is EventTime with a watermark strategy of the user's: each
// instance gets its generator from gen. MaxDelay does not apply; IdleAfter
// does.
func EventTimeWith[T any](s Stream[T], ts func(T) time.Time, gen func() WatermarkGenerator[T], opts ...EventTimeOption) Stream[T] {
	loc := caller()
	check(loc, "eventtime", s, ts == nil || gen == nil)
	out := EventTime(s, ts, opts...)
	out.node.Loc = loc
	n := out.node
	out.node.Watermarks.New = func() plan.WatermarkGenerator { return &userWatermarks[T]{n: n, g: gen()} }
	return out
}

// userWatermarks runs a user's generator over batches.
type userWatermarks[T any] struct {
	n *plan.Node
	g WatermarkGenerator[T]
}

func (u *userWatermarks[T]) OnBatch(b *plan.Batch) int64 {
	xs := b.Data.([]T)
	i := -1
	defer func() { repanic(recover(), u.n, xs, i) }()
	for i = range xs {
		u.g.Observe(xs[i], time.Unix(0, b.Times[i]))
	}
	i = -1
	if w := u.g.Watermark(); !w.IsZero() {
		return w.UnixNano()
	}
	return minTime
}

// hasEventTime reports whether n or a node upstream of it assigns event times.
func hasEventTime(n *plan.Node) bool {
	if n.Watermarks != nil {
		return true
	}
	for _, in := range n.Inputs {
		if hasEventTime(in.From) {
			return true
		}
	}
	return false
}

// Late is a record that a windowed aggregation dropped, for a side output.
type Late[K comparable, T any] struct {
	Key    K
	Value  T
	Time   window.Time     // its event time
	Window window.Interval // the window it was dropped from
	// Closed is set when the window's trigger had finished; otherwise the
	// record came after the window's allowed lateness.
	Closed bool
}

// WindowAggregate combines the records of each key in each window of w and
// emits a pane each time w's trigger fires. Records need event times
// (EventTime upstream). Records later than the allowed lateness, or for
// windows whose trigger has finished, are counted per stage (see the job
// summary); WindowAggregateLate also routes them to a side output.
func WindowAggregate[K comparable, T, A, O any](k Keyed[K, T], w window.Window, c Combiner[T, A, O], opts ...AggregateOption) Stream[Windowed[K, O]] {
	out, _ := windowAggregate(k, w, c, false, caller(), opts)
	return out
}

// WindowAggregateLate is WindowAggregate with the dropped records as a side
// output, which must be read.
func WindowAggregateLate[K comparable, T, A, O any](k Keyed[K, T], w window.Window, c Combiner[T, A, O], opts ...AggregateOption) (Stream[Windowed[K, O]], Stream[Late[K, T]]) {
	return windowAggregate(k, w, c, true, caller(), opts)
}

func windowAggregate[K comparable, T, A, O any](k Keyed[K, T], w window.Window, c Combiner[T, A, O], late bool, loc string, opts []AggregateOption) (Stream[Windowed[K, O]], Stream[Late[K, T]]) {
	p := k.s.p
	check(loc, "window", k.s, c.Lift == nil || c.Merge == nil || c.Output == nil || k.key == nil)
	if w == nil {
		p.fail(loc, "window: nil window")
		w = window.Global()
	}
	strategy := w.Strategy()
	if err := strategy.Validate(); err != nil {
		p.fail(loc, "window %v: %v", w, err)
	}
	if !w.IsGlobal() && !hasEventTime(k.s.node) && !hasTestStream(k.s.node) {
		p.fail(loc, "window %v: the records have no event time: add stages.EventTime after the source", w)
	}
	zero := c.Zero
	if zero == nil {
		zero = func() A { var a A; return a }
	}
	// The driver folds records lifted beforehand (see StepTime), keeping
	// the record itself for the late side output.
	comb := window.Combine[lifted[T, A], A]{
		Zero:  zero,
		Add:   func(acc A, v lifted[T, A]) A { return c.Merge(acc, v.a) },
		Merge: c.Merge,
	}
	drv, err := window.NewWindowing(strategy, comb)
	if err != nil {
		p.fail(loc, "window %v: %v", w, err)
	}
	keyedIn := keyed(k, loc)
	node := &plan.Node{Kind: plan.KindStateful, Op: "window", Out: plan.TypeOf[Windowed[K, O]](),
		Inputs: []plan.Input{{From: keyedIn.node, Edge: plan.Hash, Key: kvKey[K, T](k.hash)}}}
	if late {
		node.Side = []*plan.Type{plan.TypeOf[Late[K, T]]()}
	}
	o := applyOptions(opts)
	if o.name == "" {
		o.name = fmt.Sprintf("%s %s", c.Name, w)
	}
	n := p.addNode(loc, node, o)
	n.NewState = func(inst plan.Instance) plan.State {
		if eowEnabled && endOfWindowOnly(strategy) {
			return newEOWState(n, strategy.Spec().Fn, c, zero, late, groupsOf(k.hash, inst), inst.Seed)
		}
		return newWindowState(n, drv, c, k.hash, late, inst.MaxParallelism)
	}
	if late {
		return Stream[Windowed[K, O]]{p: p, node: n}, Stream[Late[K, T]]{p: p, node: n, port: 1}
	}
	return Stream[Windowed[K, O]]{p: p, node: n}, Stream[Late[K, T]]{}
}

// eowEnabled lets tests compare eowState with the trigger driver.
var eowEnabled = true

func newWindowState[K comparable, T, A, O any](n *plan.Node, drv *window.Windowing[lifted[T, A], A], c Combiner[T, A, O], hash func(K) uint64, late bool, maxPar int) *windowState[K, T, A, O] {
	groups := state.Groups[K]{Hash: hash, Max: max(1, maxPar)}
	return &windowState[K, T, A, O]{n: n, d: drv, c: c, late: late, st: state.NewTriggered(groups, drv),
		codecs: codecsOf[K, A](n), out: window.Output[lifted[T, A], A]{KeepDropped: late, Samples: plan.MaxAsides},
		lateness: drv.Strategy().Spec().AllowedLateness}
}

// keyEntry is one key's windows and the timers it has queued: Event, the
// event-time timer queued for it, or minTime; Proc, its processing-time
// timer; Hold, its watermark hold queued, or maxTime.
type keyEntry[K comparable, A any] = state.TriggerKey[K, A]

const (
	minTime = -1 << 63
	maxTime = 1<<63 - 1
)

// windowState runs the trigger driver over one instance's keys, kept by key
// group (state.Triggered) so that they can be checkpointed and
// redistributed by group. Timers and holds are found through heaps whose
// stale entries are skipped; they are functions of the keys' states, so a
// restored key queues them again (Restore).
type windowState[K comparable, T, A, O any] struct {
	n      *plan.Node
	d      *window.Windowing[lifted[T, A], A]
	c      Combiner[T, A, O]
	late   bool
	st     *state.Triggered[K, lifted[T, A], A]
	codecs stateCodecs[K, A]
	events timerHeap[K, A] // by event time
	procs  timerHeap[K, A] // by processing time
	holds  timerHeap[K, A]
	wm     int64
	out    window.Output[lifted[T, A], A]
	keys   []K // the key of each pane in out.Panes
	lateK  []K // the key of each record in out.Dropped
	// sampleK is the key of each of out.Sampled, which emit turns into
	// asides, the stage's examples for explain-why.
	sampleK  []K
	asides   []plan.Aside
	lateness time.Duration
	lifts    []A
	// bundle: scratch for StepTime's grouping of a batch by key.
	bundle bundleScratch[K, T, A]
	// lost is set while user code (a combiner's Merge or Output) runs on
	// the state: a panic there leaves the state half changed.
	lost bool
}

// keyed records which key the panes and drops the driver just made are of.
func (s *windowState[K, T, A, O]) keyed(k K) {
	for len(s.keys) < len(s.out.Panes) {
		s.keys = append(s.keys, k)
	}
	for len(s.lateK) < len(s.out.Dropped) {
		s.lateK = append(s.lateK, k)
	}
	for len(s.sampleK) < len(s.out.Sampled) {
		s.sampleK = append(s.sampleK, k)
	}
}

func (s *windowState[K, T, A, O]) entry(k K) *keyEntry[K, A] {
	e, made := s.st.Key(k)
	if made {
		e.Event, e.Proc, e.Hold = minTime, minTime, maxTime
	}
	return e
}

// requeue queues e's next timers and hold after the driver changed its state.
func (s *windowState[K, T, A, O]) requeue(e *keyEntry[K, A]) {
	if t, ok := e.St.NextEventTime(); ok && int64(t) != e.Event {
		e.Event = int64(t)
		s.events.push(timerEntry[K, A]{at: e.Event, e: e})
	} else if !ok {
		e.Event = minTime
	}
	if t, ok := e.St.NextProcessingTime(); ok && int64(t) != e.Proc {
		e.Proc = int64(t)
		s.procs.push(timerEntry[K, A]{at: e.Proc, e: e})
	} else if !ok {
		e.Proc = minTime
	}
	if t, ok := e.St.Hold(); ok && int64(t) != e.Hold {
		e.Hold = int64(t)
		s.holds.push(timerEntry[K, A]{at: e.Hold, e: e})
	} else if !ok {
		e.Hold = maxTime
	}
	if e.St.Empty() {
		s.st.Drop(e)
	}
}

// Snapshot copies the keys of key groups [start, end) (state.Triggered's
// Snapshot: a clone of each key's windows) and the watermark.
func (s *windowState[K, T, A, O]) Snapshot(start, end int) (func([]byte) []byte, error) {
	if s.codecs.err != nil {
		return nil, s.codecs.err
	}
	snap := s.st.Snapshot(state.Range{Start: start, End: end})
	kc, ac := s.codecs.k, s.codecs.v
	return func(dst []byte) []byte { return snap.Append(dst, kc, ac) }, nil
}

// Restore adds the keys of a chunk and queues their timers and holds
// again, from their windows.
func (s *windowState[K, T, A, O]) Restore(chunk []byte, start, end int) error {
	if s.codecs.err != nil {
		return s.codecs.err
	}
	err := s.st.Restore(chunk, state.Range{Start: start, End: end}, s.codecs.k, s.codecs.v, func(e *keyEntry[K, A]) {
		e.Event, e.Proc, e.Hold = minTime, minTime, maxTime
		s.requeue(e)
	})
	if err != nil {
		return fmt.Errorf("restoring stage %s: %w", s.n, err)
	}
	s.wm = max(s.wm, s.st.Watermark())
	return nil
}

// StepTime adds a batch in two phases, as the pre-combiner does: the user's
// Lift runs over the whole batch first, leaving the state untouched if it
// panics (the batch is retried); then the records go into the windows, where
// only a user combiner's Merge or Output can panic, and then the state is
// reported lost rather than counting records twice.
func (s *windowState[K, T, A, O]) StepTime(in *plan.Batch, wm, pt int64, emit func(*plan.Batch)) {
	xs := in.Data.([]KV[K, T])
	s.lifts = liftAll(s.n, s.c, xs, s.lifts[:0])
	s.lost = !s.c.safe
	s.wm = max(s.wm, wm)
	s.st.Advance(wm)
	// The batch is a bundle: each key's records in it go to the driver
	// together, in their order, so that the key's trigger is asked once
	// for them, as Beam's runners ask once per bundle (AfterCount(2) over
	// [a, b, c] fires {a, b, c}).
	b := &s.bundle
	b.group(xs)
	for i, x := range xs {
		g := b.of[i]
		b.elems[b.pos[g]] = window.Element[lifted[T, A]]{Value: lifted[T, A]{v: x.Value, a: s.lifts[i]}, Time: window.Time(in.Times[i])}
		b.pos[g]++
	}
	for g, first := range b.first {
		k := xs[first].Key
		e := s.entry(k)
		s.d.ProcessElements(&e.St, b.elems[b.start[g]:b.start[g+1]], window.Time(wm), window.Time(pt), &s.out)
		s.keyed(k)
		s.requeue(e)
	}
	clear(b.elems) // the records go with the state, not the scratch
	s.emit(emit)
	s.lost = false
}

// bundleScratch groups a batch's records by key, reused from batch to
// batch: of is each record's group, first each group's first record,
// start each group's offset in elems (and one past the last), pos where
// its next record goes.
type bundleScratch[K comparable, T, A any] struct {
	ids   map[K]int32
	of    []int32
	first []int32
	start []int32
	pos   []int32
	elems []window.Element[lifted[T, A]]
}

func (b *bundleScratch[K, T, A]) group(xs []KV[K, T]) {
	if b.ids == nil {
		b.ids = map[K]int32{}
	}
	clear(b.ids)
	b.of, b.first, b.start = b.of[:0], b.first[:0], b.start[:0]
	for i, x := range xs {
		g, ok := b.ids[x.Key]
		if !ok {
			g = int32(len(b.first))
			b.ids[x.Key] = g
			b.first = append(b.first, int32(i))
			b.start = append(b.start, 0)
		}
		b.start[g]++
		b.of = append(b.of, g)
	}
	n := int32(0)
	for g, c := range b.start {
		b.start[g] = n
		n += c
	}
	b.start = append(b.start, n)
	b.pos = append(b.pos[:0], b.start[:len(b.first)]...)
	b.elems = slices.Grow(b.elems[:0], len(xs))[:len(xs)]
}

// liftAll appends the user's Lift of each record to dst. It changes no
// state, so a panic there (reported as the record's) lets the batch retry.
func liftAll[K comparable, T, A, O any](n *plan.Node, c Combiner[T, A, O], xs []KV[K, T], dst []A) []A {
	i := -1
	defer func() { repanic(recover(), n, xs, i) }()
	for i = range xs {
		dst = append(dst, c.Lift(xs[i].Value))
	}
	return dst
}

// lifted is a record with its accumulator, as the driver holds it.
type lifted[T, A any] struct {
	v T
	a A
}

func (s *windowState[K, T, A, O]) Advance(wm int64, emit func(*plan.Batch)) int64 {
	s.lost = !s.c.safe
	s.wm = max(s.wm, wm)
	s.st.Advance(wm)
	for len(s.events.items) > 0 && s.events.items[0].at <= wm {
		t := s.events.pop()
		if t.e.Event != t.at {
			continue // stale
		}
		t.e.Event = minTime
		s.d.AdvanceWatermark(&t.e.St, window.Time(wm), &s.out)
		s.keyed(t.e.Key)
		s.requeue(t.e)
	}
	s.emit(emit)
	s.lost = false
	out := wm
	for len(s.holds.items) > 0 {
		t := s.holds.items[0]
		if t.e.Hold != t.at || t.e.St.Empty() {
			s.holds.pop()
			continue
		}
		out = min(out, t.at)
		break
	}
	return out
}

func (s *windowState[K, T, A, O]) NextTimer() (int64, bool) {
	for len(s.procs.items) > 0 {
		t := s.procs.items[0]
		if t.e.Proc != t.at {
			s.procs.pop()
			continue
		}
		return t.at, true
	}
	return 0, false
}

func (s *windowState[K, T, A, O]) Fire(pt int64, emit func(*plan.Batch)) {
	s.lost = !s.c.safe
	for len(s.procs.items) > 0 && s.procs.items[0].at <= pt {
		t := s.procs.pop()
		if t.e.Proc != t.at {
			continue
		}
		t.e.Proc = minTime
		s.d.AdvanceProcessingTime(&t.e.St, window.Time(pt), &s.out)
		s.keyed(t.e.Key)
		s.requeue(t.e)
	}
	s.emit(emit)
	s.lost = false
}

// Step serves a batch without times (never, behind EventTime).
func (s *windowState[K, T, A, O]) Step(in *plan.Batch, emit func(*plan.Batch)) {
	s.StepTime(in, s.wm, minTime, emit)
}

// Flush fires every window as the watermark reaches the end of time.
func (s *windowState[K, T, A, O]) Flush(emit func(*plan.Batch)) {
	s.Advance(maxTime, emit)
}

func (s *windowState[K, T, A, O]) Lost() bool { return s.lost }

func (s *windowState[K, T, A, O]) Dropped() (late, closed int64) {
	return s.out.DroppedLate, s.out.DroppedClosed
}

// Explain implements plan.Explainer.
func (s *windowState[K, T, A, O]) Explain() (int64, []plan.Aside) { return s.out.Late, s.asides }

// sampleKinds are the explain-why reasons of the driver's samples.
var sampleKinds = [...]plan.AsideReason{window.SampleTooLate: plan.AsideTooLate, window.SampleClosed: plan.AsideClosed,
	window.SampleLate: plan.AsideLate}

// aside makes an example for explain-why of a record of key k at event
// time at, set aside for reason r from window w at watermark wm; port is
// the late side output it went to (0: none).
func aside[K comparable, T any](r plan.AsideReason, k K, v T, at window.Time, w window.Interval, wm int64, lateness time.Duration, port int) plan.Aside {
	a := plan.Aside{Reason: r, Record: formatRecord(KV[K, T]{Key: k, Value: v}), Port: port, HasTime: true, EventTime: int64(at),
		Watermark: wm, AllowedLateness: lateness, WindowStart: int64(w.Start), WindowEnd: int64(w.End)}
	a.Rule = a.TimeRule()
	return a
}

// emit turns the driver's panes into Windowed records.
func (s *windowState[K, T, A, O]) emit(emit func(*plan.Batch)) {
	if len(s.out.Panes) > 0 {
		out := make([]Windowed[K, O], len(s.out.Panes))
		times := make([]int64, len(s.out.Panes))
		for i, p := range s.out.Panes {
			out[i] = Windowed[K, O]{Key: s.keys[i], Value: s.c.Output(p.Value), Window: p.Window, Timestamp: p.Timestamp, Pane: p.Info}
			times[i] = int64(p.Timestamp)
		}
		emit(&plan.Batch{Data: out, Times: times})
	}
	if s.late && len(s.out.Dropped) > 0 {
		out := make([]Late[K, T], len(s.out.Dropped))
		times := make([]int64, len(s.out.Dropped))
		for i, d := range s.out.Dropped {
			out[i] = Late[K, T]{Key: s.lateK[i], Value: d.Element.Value.v, Time: d.Element.Time, Window: d.Window, Closed: d.Reason == window.WindowClosed}
			times[i] = int64(d.Element.Time)
		}
		emit(&plan.Batch{Data: out, Times: times, Port: 1})
	}
	for i, x := range s.out.Sampled {
		port := 0
		if s.late && x.Kind != window.SampleLate {
			port = 1
		}
		s.asides = append(s.asides, aside(sampleKinds[x.Kind], s.sampleK[i], x.Element.Value.v, x.Element.Time, x.Window, int64(x.Watermark), s.lateness, port))
	}
	s.out.Reset()
	clear(s.out.Sampled)
	s.out.Sampled = s.out.Sampled[:0]
	clear(s.keys)
	clear(s.lateK)
	clear(s.sampleK)
	s.keys, s.lateK, s.sampleK = s.keys[:0], s.lateK[:0], s.sampleK[:0]
}

type timerEntry[K comparable, A any] struct {
	at int64
	e  *keyEntry[K, A]
}

// timerHeap is a binary min-heap of timers by time, typed so that pushes
// and pops do not box their entries (container/heap would, once each).
type timerHeap[K comparable, A any] struct{ items []timerEntry[K, A] }

func (h *timerHeap[K, A]) push(t timerEntry[K, A]) {
	h.items = append(h.items, t)
	i := len(h.items) - 1
	for i > 0 {
		up := (i - 1) / 2
		if h.items[up].at <= h.items[i].at {
			break
		}
		h.items[up], h.items[i] = h.items[i], h.items[up]
		i = up
	}
}

func (h *timerHeap[K, A]) pop() timerEntry[K, A] {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items[last] = timerEntry[K, A]{}
	h.items = h.items[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.items[l].at < h.items[m].at {
			m = l
		}
		if r < last && h.items[r].at < h.items[m].at {
			m = r
		}
		if m == i {
			return top
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}
