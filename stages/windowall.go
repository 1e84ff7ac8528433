package stages

import (
	"time"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/window"
)

// All is the key of WindowAggregateAll's panes: there is none.
type All struct{}

// WindowAggregateAll combines all of s's records in each window of w, with
// no key (Flink's windowAll, the global aggregate of a window), without
// funnelling every record through one instance: each instance first
// combines each batch's records per slice of event time that falls in the
// same windows (the greatest common divisor of a sliding window's size and
// period; a fixed window's size), and one instance combines those
// partials per window. Under the default trigger each window's on-time
// pane is what one instance would have computed; late records (within the
// allowed lateness) come in late panes as ever, cut by the batches they
// arrive in, which pre-combining changes (the panes add up alike). Other
// triggers, merging windows (sessions) and timestamp combiners other than
// end of window are refused, since a partial stands for many records.
func WindowAggregateAll[T, A, O any](s Stream[T], w window.Window, c Combiner[T, A, O], opts ...AggregateOption) Stream[Windowed[All, O]] {
	loc := caller()
	p := s.p
	check(loc, "windowall", s, c.Lift == nil || c.Merge == nil || c.Output == nil)
	if w == nil {
		p.fail(loc, "windowall: nil window")
		w = window.Global()
	}
	spec := w.Strategy().Spec()
	_, def := spec.Trigger.(window.DefaultTrigger)
	var slice, offset time.Duration // 0: one slice (the global window)
	switch fn := spec.Fn.(type) {
	case window.FixedWindows:
		slice, offset = fn.Size, fn.Offset
	case window.SlidingWindows:
		slice, offset = gcd(fn.Size, fn.Period), fn.Offset
	case window.GlobalWindows:
	default:
		p.fail(loc, "windowall %v: pre-combining needs fixed, sliding or global windows; key the records for others", w)
	}
	if !def || spec.TimestampCombiner != window.EndOfWindow {
		p.fail(loc, "windowall %v: pre-combining needs the default trigger and output times at the end of the window; key the records for others", w)
	}
	partials := transform[T, A](s, loc, "precombine", stageOptions{}, func(n *plan.Node) func(*plan.Batch) *plan.Batch {
		return func(in *plan.Batch) *plan.Batch {
			xs := in.Data.([]T)
			group := map[int64]int{}
			var out []A
			var times []int64
			i := -1
			defer func() { repanic(recover(), n, xs, i) }()
			for i = range xs {
				var t, k int64
				if in.Times != nil {
					t = in.Times[i]
				}
				if slice > 0 {
					rem := (t - int64(offset)) % int64(slice)
					if rem < 0 {
						rem += int64(slice)
					}
					k = t - rem
				}
				a := c.Lift(xs[i])
				g, ok := group[k]
				if !ok {
					group[k] = len(out)
					out, times = append(out, a), append(times, t)
					continue
				}
				out[g] = c.Merge(out[g], a)
				times[g] = max(times[g], t) // any time in the slice falls in its windows
			}
			if in.Times == nil {
				times = nil
			}
			return &plan.Batch{Data: out, Times: times}
		}
	})
	final := Combiner[A, A, O]{Name: c.Name, Lift: func(a A) A { return a }, Merge: c.Merge, Output: c.Output, Zero: c.Zero, safe: c.safe}
	keyed := Keyed[All, A]{s: partials, key: func(A) All { return All{} }, hash: func(All) uint64 { return 0 }, loc: loc}
	panes, _ := windowAggregate(keyed, w, final, false, loc, opts)
	return panes
}

func gcd(a, b time.Duration) time.Duration {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
