package stages

import (
	"fmt"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/state"
	"github.com/sluice-data/sluice/window"
)

// endOfWindowOnly reports whether strategy s is the common case that
// eowState serves: windows that do not merge, the default trigger, no
// allowed lateness and panes at the end of the window. Then each window
// fires exactly once, ON_TIME, when the watermark reaches its end, and is
// gone: a record whose window has ended is late.
func endOfWindowOnly(s window.Strategy) bool {
	spec := s.Spec()
	_, def := spec.Trigger.(window.DefaultTrigger)
	return def && !s.IsMerging() && !s.IsGlobal() && spec.AllowedLateness == 0 && spec.TimestampCombiner == window.EndOfWindow
}

// eowState is windowed aggregation for endOfWindowOnly strategies: hash
// tables of accumulators per open window and key group, instead of a
// trigger driver, timers and holds per key. The trigger driver pays for its
// generality on every record (a key's window list, trigger state, timer and
// hold heaps, a key entry made and dropped for each pane); here a record
// costs a lookup in its window's table for its key group. The state of a
// key group is its table in each open window, ready to be checkpointed
// and moved by group like windowState's. W3 (10 M events, 2 M panes) went from 2.37-2.52 s
// to 1.04-1.24 s (`go test -run - -bench 'W3/sluice$' -benchtime 1x
// -count 4 ./bench`). Its outputs equal the driver's, pane metadata and
// late records included (TestEndOfWindowStateMatchesDriver).
type eowState[K comparable, T, A, O any] struct {
	n      *plan.Node
	fn     window.Fn
	c      Combiner[T, A, O]
	zero   func() A
	late   bool
	groups state.Groups[K] // KeyBy's hash modulo the job's key groups
	st     *state.Windows[K, A]
	codecs stateCodecs[K, A]
	lifts  []A
	ws     []window.Interval
	lost   bool

	droppedLate int64
	asides      []plan.Aside // the first late records, for explain-why
	lateOut     []Late[K, T]
	lateTimes   []int64
}

func newEOWState[K comparable, T, A, O any](n *plan.Node, fn window.Fn, c Combiner[T, A, O], zero func() A, late bool,
	groups state.Groups[K], seed uint64) *eowState[K, T, A, O] {
	return &eowState[K, T, A, O]{n: n, fn: fn, c: c, zero: zero, late: late, groups: groups,
		st: state.NewWindows[K, A](groups, state.Seed(seed, n.ID)), codecs: codecsOf[K, A](n)}
}

// Snapshot copies the windows' tables of key groups [start, end)
// (state.Windows' Snapshot: a copy of their slots) and the watermark.
func (s *eowState[K, T, A, O]) Snapshot(start, end int) (func([]byte) []byte, error) {
	if s.codecs.err != nil {
		return nil, s.codecs.err
	}
	snap := s.st.Snapshot(state.Range{Start: start, End: end})
	kc, ac := s.codecs.k, s.codecs.v
	return func(dst []byte) []byte { return snap.Append(dst, kc, ac) }, nil
}

// Restore adds the keys of a chunk to their windows.
func (s *eowState[K, T, A, O]) Restore(chunk []byte, start, end int) error {
	if s.codecs.err != nil {
		return s.codecs.err
	}
	if err := s.st.Restore(chunk, state.Range{Start: start, End: end}, s.codecs.k, s.codecs.v); err != nil {
		return fmt.Errorf("restoring stage %s: %w", s.n, err)
	}
	return nil
}

// StepTime adds a batch in the two phases of windowState.StepTime.
func (s *eowState[K, T, A, O]) StepTime(in *plan.Batch, wm, pt int64, emit func(*plan.Batch)) {
	xs := in.Data.([]KV[K, T])
	s.lifts = liftAll(s.n, s.c, xs, s.lifts[:0])
	s.lost = !s.c.safe
	s.fire(wm, emit)
	var (
		lastW window.Interval
		lastT []*hashTable[K, A]
	)
	wmNow := window.Time(s.st.Watermark())
	for i := range xs {
		at := window.Time(in.Times[i])
		s.ws = s.fn.Assign(at, s.ws[:0])
		for _, w := range s.ws {
			if wmNow >= w.End {
				s.droppedLate++
				if len(s.asides) < plan.MaxAsides {
					port := 0
					if s.late {
						port = 1
					}
					s.asides = append(s.asides, aside(plan.AsideTooLate, xs[i].Key, xs[i].Value, at, w, int64(wmNow), 0, port))
				}
				if s.late {
					s.lateOut = append(s.lateOut, Late[K, T]{Key: xs[i].Key, Value: xs[i].Value, Time: at, Window: w})
					s.lateTimes = append(s.lateTimes, int64(at))
				}
				continue
			}
			if lastT == nil || w != lastW {
				lastW, lastT = w, s.st.Window(w)
			}
			t := s.st.Group(lastT, s.groups.Of(xs[i].Key))
			if v, found := t.Find(xs[i].Key); found {
				*v = s.c.Merge(*v, s.lifts[i])
			} else {
				*v = s.c.Merge(s.zero(), s.lifts[i])
			}
		}
	}
	s.emitLate(emit)
	s.lost = false
}

// fire moves the watermark to wm and emits the panes of the windows that
// have ended, in order of their ends.
func (s *eowState[K, T, A, O]) fire(wm int64, emit func(*plan.Batch)) {
	s.st.Advance(wm)
	for {
		w, ts, ok := s.st.Ended()
		if !ok {
			break
		}
		n := 0
		for _, t := range ts {
			if t != nil {
				n += t.Len()
			}
		}
		out := make([]Windowed[K, O], 0, n)
		var at KV[K, A] // the accumulator being output, for a panic's report
		func() {
			defer func() {
				if p := recover(); p != nil {
					repanic(p, s.n, []KV[K, A]{at}, 0)
				}
			}()
			stamp := w.MaxTimestamp()
			pane := window.PaneInfo{Timing: window.OnTime, IsFirst: true, IsLast: true}
			for _, t := range ts {
				if t == nil {
					continue
				}
				t.All(func(k K, v *A) {
					at = KV[K, A]{Key: k, Value: *v}
					out = append(out, Windowed[K, O]{Key: k, Value: s.c.Output(*v), Window: w, Timestamp: stamp, Pane: pane})
				})
			}
		}()
		times := make([]int64, len(out))
		for i := range times {
			times[i] = int64(w.MaxTimestamp())
		}
		s.st.Recycle(ts)
		if len(out) > 0 {
			emit(&plan.Batch{Data: out, Times: times})
		}
	}
}

func (s *eowState[K, T, A, O]) emitLate(emit func(*plan.Batch)) {
	if len(s.lateOut) == 0 {
		return
	}
	emit(&plan.Batch{Data: s.lateOut, Times: s.lateTimes, Port: 1})
	s.lateOut, s.lateTimes = nil, nil
}

func (s *eowState[K, T, A, O]) Advance(wm int64, emit func(*plan.Batch)) int64 {
	s.lost = !s.c.safe
	s.fire(wm, emit)
	s.lost = false
	// No hold binds: a window still open ends after wm, so its pane's
	// timestamp, the window's last instant, is at or after wm.
	return wm
}

func (s *eowState[K, T, A, O]) NextTimer() (int64, bool) { return 0, false }

func (s *eowState[K, T, A, O]) Fire(int64, func(*plan.Batch)) {}

// Step serves a batch without times (never, behind EventTime).
func (s *eowState[K, T, A, O]) Step(in *plan.Batch, emit func(*plan.Batch)) {
	s.StepTime(in, s.st.Watermark(), minTime, emit)
}

// Flush fires every window as the watermark reaches the end of time.
func (s *eowState[K, T, A, O]) Flush(emit func(*plan.Batch)) { s.Advance(maxTime, emit) }

func (s *eowState[K, T, A, O]) Lost() bool { return s.lost }

func (s *eowState[K, T, A, O]) Dropped() (late, closed int64) { return s.droppedLate, 0 }

// Explain implements plan.Explainer: with no allowed lateness, every
// record behind its window's end is dropped, none added late.
func (s *eowState[K, T, A, O]) Explain() (int64, []plan.Aside) { return 0, s.asides }
