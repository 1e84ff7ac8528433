package window

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// driverRun drives one key with []int64 panes; times are plain nanoseconds.
type driverRun struct {
	t   *testing.T
	d   *Windowing[int64, []int64]
	st  KeyState[[]int64]
	out Output[int64, []int64]
	wm  Time
	pt  Time
}

func newRun(t *testing.T, s Strategy) *driverRun {
	t.Helper()
	d, err := NewWindowing[int64](s, Collect[int64]())
	if err != nil {
		t.Fatal(err)
	}
	r := &driverRun{t: t, d: d, wm: MinTime}
	r.out.KeepDropped = true
	return r
}

func (r *driverRun) input(ts ...int64) *driverRun {
	elems := make([]Element[int64], len(ts))
	for i, v := range ts {
		elems[i] = Element[int64]{Value: v, Time: Time(v)}
	}
	r.d.ProcessElements(&r.st, elems, r.wm, r.pt, &r.out)
	return r
}

func (r *driverRun) watermark(wm int64) *driverRun {
	r.wm = Time(wm)
	r.d.AdvanceWatermark(&r.st, r.wm, &r.out)
	return r
}

func (r *driverRun) clock(pt int64) *driverRun {
	r.pt = Time(pt)
	r.d.AdvanceProcessingTime(&r.st, r.pt, &r.out)
	return r
}

// expect checks the panes produced since the last expect, rendered as
// "[start,end) values ts timing index/nonspec last".
func (r *driverRun) expect(want ...string) *driverRun {
	r.t.Helper()
	var got []string
	for _, p := range r.out.Panes {
		got = append(got, paneString(p))
	}
	if !slices.Equal(got, want) {
		r.t.Errorf("panes:\n got %q\nwant %q", got, want)
	}
	r.out.Reset()
	return r
}

func paneString(p Pane[[]int64]) string {
	last := ""
	if p.Info.IsLast {
		last = " last"
	}
	return fmt.Sprintf("[%d,%d) %v ts=%d %s %d/%d%s", p.Window.Start, p.Window.End, p.Value, p.Timestamp,
		p.Info.Timing, p.Info.Index, p.Info.NonSpeculativeIndex, last)
}

func TestGarbageCollectionFiresPendingRecords(t *testing.T) {
	// AfterCount(5) never fires; the window's end (lateness 0) collects it
	// and its records come out in an ON_TIME last pane.
	r := newRun(t, Fixed(10).Trigger(AfterCount(5)))
	r.input(1, 2, 3).expect().watermark(10).expect("[0,10) [1 2 3] ts=9 on-time 0/0 last")
	if !r.st.Empty() {
		t.Error("window not collected")
	}
	// With lateness the last pane comes at end+lateness and is LATE.
	r = newRun(t, Fixed(10).Trigger(Never()).AllowedLateness(5))
	r.input(1, 2).watermark(12).expect()
	if at, ok := r.st.NextEventTime(); !ok || at != 15 {
		t.Errorf("NextEventTime = %d %v, want 15", at, ok)
	}
	r.watermark(15).expect("[0,10) [1 2] ts=9 late 0/0 last")
	if _, ok := r.st.NextEventTime(); ok || !r.st.Empty() {
		t.Error("state left after garbage collection")
	}
}

func TestDefaultTriggerLastPaneAtZeroLateness(t *testing.T) {
	r := newRun(t, Fixed(10))
	r.input(1, 12).watermark(10).expect("[0,10) [1] ts=9 on-time 0/0 last")
	r.watermark(100).expect("[10,20) [12] ts=19 on-time 0/0 last")
	r.input(5)
	if r.out.DroppedLate != 1 || len(r.out.Dropped) != 1 || r.out.Dropped[0].Reason != TooLate ||
		r.out.Dropped[0].Window != (Interval{Start: 0, End: 10}) {
		t.Errorf("drops: %d %+v", r.out.DroppedLate, r.out.Dropped)
	}
}

func TestLatePanesAccumulate(t *testing.T) {
	r := newRun(t, Fixed(10).AllowedLateness(10).Accumulating())
	r.input(1).watermark(10).expect("[0,10) [1] ts=9 on-time 0/0")
	r.input(2).expect("[0,10) [1 2] ts=9 late 1/1")
	r.watermark(15).expect()
	r.input(3, 4).expect("[0,10) [1 2 3 4] ts=9 late 2/2")
	r.watermark(20).expect()
	r.input(5).expect()
	if r.out.DroppedLate != 1 || !r.st.Empty() {
		t.Errorf("dropped %d, empty %v", r.out.DroppedLate, r.st.Empty())
	}
}

func TestProcessingTimeTriggers(t *testing.T) {
	r := newRun(t, Global().Trigger(Repeatedly(AfterProcessingTime(5))))
	r.input(1).clock(3).input(2).expect()
	if at, ok := r.st.NextProcessingTime(); !ok || at != 5 {
		t.Errorf("NextProcessingTime = %d %v, want 5", at, ok)
	}
	r.clock(5).expect(fmt.Sprintf("[%d,%d) [1 2] ts=%d early 0/-1", MinTime, GlobalMaxTimestamp+1, GlobalMaxTimestamp))
	r.clock(7).input(3).clock(11).expect()
	r.clock(12).expect(fmt.Sprintf("[%d,%d) [3] ts=%d early 1/-1", MinTime, GlobalMaxTimestamp+1, GlobalMaxTimestamp))
	// No watermark part and nothing pending: the end of input is silent.
	r.watermark(int64(MaxTime)).expect()
	if !r.st.Empty() {
		t.Error("global window not collected at the end of input")
	}

	// Aligned deadlines round up; a zero delay fires with the record.
	r = newRun(t, Fixed(100).Trigger(Repeatedly(AfterProcessingTime(1).AlignedTo(10, 2))))
	r.clock(3).input(1)
	if at, _ := r.st.NextProcessingTime(); at != 12 {
		t.Errorf("aligned deadline %d, want 12", at)
	}
	r.clock(12).expect("[0,100) [1] ts=99 early 0/-1")
	r = newRun(t, Fixed(100).Trigger(AfterProcessingTime(0)))
	r.clock(3).input(1).expect("[0,100) [1] ts=99 early 0/-1 last")
}

func TestCompositeTriggers(t *testing.T) {
	r := newRun(t, Fixed(100).Trigger(AfterEach(AfterCount(2), AfterCount(1))))
	r.input(1).expect().input(2).expect("[0,100) [1 2] ts=99 early 0/-1")
	r.input(3).expect("[0,100) [3] ts=99 early 1/-1 last")
	r.input(4)
	if r.out.DroppedClosed != 1 || len(r.out.Dropped) != 1 || r.out.Dropped[0].Reason != WindowClosed {
		t.Errorf("closed drops %d %+v", r.out.DroppedClosed, r.out.Dropped)
	}
	if ws := r.st.Windows(nil); len(ws) != 1 || !ws[0].Closed {
		t.Errorf("tombstone: %+v", ws)
	}
	r.watermark(100).expect()
	if !r.st.Empty() {
		t.Error("tombstone not collected")
	}

	r = newRun(t, Fixed(100).Trigger(AfterAll(AfterCount(2), AfterProcessingTime(5))))
	r.input(1).clock(1).input(2).expect().clock(5).expect("[0,100) [1 2] ts=99 early 0/-1 last")

	r = newRun(t, Fixed(100).Trigger(OrFinally(Repeatedly(AfterCount(1)), AfterCount(3))))
	r.input(1).input(2).input(3).input(4).expect(
		"[0,100) [1] ts=99 early 0/-1", "[0,100) [2] ts=99 early 1/-1", "[0,100) [3] ts=99 early 2/-1 last")

	r = newRun(t, Fixed(100).Trigger(Repeatedly(AfterAny(AfterCount(3), AfterProcessingTime(10)))))
	r.input(1, 2).clock(10).expect("[0,100) [1 2] ts=99 early 0/-1")
	r.input(3, 4, 5).expect("[0,100) [3 4 5] ts=99 early 1/-1")

	r = newRun(t, Fixed(10).Trigger(AfterWatermark().Early(AfterCount(1)).Late(AfterCount(2))).AllowedLateness(100))
	r.input(1).expect("[0,10) [1] ts=9 early 0/-1").watermark(10).expect("[0,10) [] ts=9 on-time 1/0")
	r.input(2).expect().input(3).expect("[0,10) [2 3] ts=9 late 2/1")
}

func TestWatermarkHolds(t *testing.T) {
	r := newRun(t, Fixed(10).OutputAt(Earliest))
	r.watermark(2).input(7, 3, 1)
	if h, ok := r.st.Hold(); !ok || h != 3 {
		t.Errorf("hold %d %v, want 3 (1 is behind the watermark)", h, ok)
	}
	r.watermark(10).expect("[0,10) [7 3 1] ts=3 on-time 0/0 last")
	if _, ok := r.st.Hold(); ok {
		t.Error("hold left after the window fired")
	}

	r = newRun(t, Fixed(10).OutputAt(Latest).Trigger(AfterWatermark().Early(AfterCount(1))))
	r.input(4).expect("[0,10) [4] ts=4 early 0/-1").input(6).expect("[0,10) [6] ts=6 early 1/-1")
	if h, _ := r.st.Hold(); h != 6 {
		t.Errorf("early panes keep the hold for the ON_TIME pane: %d", h)
	}
	r.watermark(10).expect("[0,10) [] ts=6 on-time 2/0 last")
}

func TestSlidingWindows(t *testing.T) {
	r := newRun(t, Sliding(10, 5))
	r.input(7).watermark(10).expect("[0,10) [7] ts=9 on-time 0/0 last")
	r.watermark(15).expect("[5,15) [7] ts=14 on-time 0/0 last")
}

func TestMergeIntoClosedSession(t *testing.T) {
	r := newRun(t, Session(10).Trigger(AfterCount(2)))
	r.input(1, 2).expect("[1,12) [1 2] ts=11 early 0/-1 last")
	r.input(13).expect()
	// 11 bridges the closed [1,12) and the open [13,23): the merged window
	// is closed, so 11 is dropped and 13's pending record is lost.
	r.input(11).expect()
	if r.out.DroppedClosed != 2 {
		t.Errorf("DroppedClosed = %d, want 2", r.out.DroppedClosed)
	}
	if ws := r.st.Windows(nil); len(ws) != 1 || ws[0].Window != (Interval{Start: 1, End: 23}) || !ws[0].Closed {
		t.Errorf("windows %+v", ws)
	}
}

func TestSessionsMergeState(t *testing.T) {
	r := newRun(t, Session(10).Trigger(AfterWatermark().Early(AfterCount(3))).Accumulating().OutputAt(Earliest))
	r.input(5).input(20).expect()
	if got := len(r.st.Windows(nil)); got != 2 {
		t.Fatalf("%d windows", got)
	}
	r.input(12).expect("[5,30) [5 20 12] ts=5 early 0/-1")
	r.watermark(30).expect("[5,30) [5 20 12] ts=5 on-time 1/0 last")
}

func TestNewWindowingErrors(t *testing.T) {
	_, err := NewWindowing[int64](Fixed(-1).AllowedLateness(-1), Combine[int64, int64]{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"core: windowing", "size must be positive", "lateness", "Zero, Add and Merge"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if _, err := NewWindowing[int64](nil, sum()); err == nil {
		t.Error("nil strategy accepted")
	}
}

func sum() Combine[int64, int64] {
	return Combine[int64, int64]{
		Zero:  func() int64 { return 0 },
		Add:   func(a, v int64) int64 { return a + v },
		Merge: func(a, b int64) int64 { return a + b },
	}
}

// ---- Property tests: incremental panes equal a batch recompute.

// randomTrigger returns a random trigger; once says it must be able to
// finish (for AfterEach's leading subtriggers and OrFinally's until).
func randomTrigger(r *rand.Rand, depth int, once bool) Trigger {
	leaf := func() Trigger {
		switch r.IntN(3) {
		case 0:
			return AfterCount(1 + r.IntN(4))
		case 1:
			t := AfterProcessingTime(time.Duration(r.IntN(20)))
			if r.IntN(3) == 0 {
				t = t.AlignedTo(time.Duration(5+r.IntN(10)), 0)
			}
			return t
		}
		return AfterWatermark()
	}
	if depth <= 0 {
		return leaf()
	}
	sub := func() Trigger { return randomTrigger(r, depth-1, false) }
	subOnce := func() Trigger { return randomTrigger(r, depth-1, true) }
	k := r.IntN(9)
	if once {
		k = r.IntN(4)
	}
	switch k {
	case 0:
		return leaf()
	case 1:
		return AfterAny(subOnce(), subOnce())
	case 2:
		return AfterAll(subOnce(), subOnce())
	case 3:
		return AfterEach(subOnce(), subOnce())
	case 4:
		w := AfterWatermark()
		if r.IntN(2) == 0 {
			w = w.Early(sub())
		}
		if r.IntN(2) == 0 {
			w = w.Late(sub())
		}
		return w
	case 5:
		return Repeatedly(sub())
	case 6:
		return OrFinally(sub(), subOnce())
	case 7:
		return Default()
	}
	return Never()
}

func randomFn(r *rand.Rand) Fn {
	switch r.IntN(4) {
	case 0:
		size := time.Duration(5 + r.IntN(40))
		return FixedWindows{Size: size, Offset: time.Duration(r.Int64N(int64(size)))}
	case 1:
		period := time.Duration(3 + r.IntN(20))
		return SlidingWindows{Size: period * time.Duration(1+r.IntN(4)), Period: period}
	case 2:
		return SlidingWindows{Size: time.Duration(3 + r.IntN(10)), Period: time.Duration(10 + r.IntN(10))}
	}
	return GlobalWindows{}
}

type event struct {
	kind  int // 0 records, 1 watermark, 2 processing time
	elems []Element[int64]
	t     Time
}

func randomEvents(r *rand.Rand) []event {
	var evs []event
	wm, pt := Time(0), Time(0)
	for range 20 + r.IntN(60) {
		switch r.IntN(4) {
		case 0:
			wm += Time(r.IntN(25))
			evs = append(evs, event{kind: 1, t: wm})
		case 1:
			pt += Time(r.IntN(15))
			evs = append(evs, event{kind: 2, t: pt})
		default:
			n := 1 + r.IntN(5)
			elems := make([]Element[int64], n)
			for i := range elems {
				elems[i] = Element[int64]{Value: 1 + r.Int64N(1000), Time: wm - 30 + Time(r.IntN(90))}
			}
			evs = append(evs, event{kind: 0, elems: elems})
		}
	}
	return append(evs, event{kind: 1, t: MaxTime})
}

// drive runs events through d for one key and returns the panes and the
// output (for the drop list and counters).
func drive[A any](d *Windowing[int64, A], evs []event) ([]Pane[A], *Output[int64, A], *KeyState[A]) {
	var st KeyState[A]
	out := &Output[int64, A]{KeepDropped: true}
	wm, pt := MinTime, Time(0)
	for _, ev := range evs {
		switch ev.kind {
		case 0:
			d.ProcessElements(&st, ev.elems, wm, pt, out)
		case 1:
			wm = ev.t
			d.AdvanceWatermark(&st, wm, out)
		case 2:
			pt = ev.t
			d.AdvanceProcessingTime(&st, pt, out)
		}
	}
	return out.Panes, out, &st
}

// checkPaneSequence checks the pane metadata of one window's panes.
func checkPaneSequence[A any](t *testing.T, w Interval, ps []Pane[A]) {
	t.Helper()
	nonspec := int64(0)
	lastTiming := Early
	for i, p := range ps {
		in := p.Info
		if in.Index != int64(i) || in.IsFirst != (i == 0) {
			t.Errorf("window %v pane %d: index %d first %v", w, i, in.Index, in.IsFirst)
		}
		if in.IsLast && i != len(ps)-1 {
			t.Errorf("window %v pane %d of %d is marked last", w, i, len(ps))
		}
		if in.Timing < lastTiming || (in.Timing == OnTime && lastTiming == OnTime) {
			t.Errorf("window %v pane %d: timing %v after %v", w, i, in.Timing, lastTiming)
		}
		lastTiming = in.Timing
		if in.Timing == Early {
			if in.NonSpeculativeIndex != -1 {
				t.Errorf("window %v early pane %d: nonspeculative index %d", w, i, in.NonSpeculativeIndex)
			}
		} else {
			if in.NonSpeculativeIndex != nonspec {
				t.Errorf("window %v pane %d: nonspeculative index %d, want %d", w, i, in.NonSpeculativeIndex, nonspec)
			}
			nonspec++
		}
	}
}

func TestWindowingMatchesBatch(t *testing.T) {
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 7))
		var s Strategy
		for {
			s = Into(randomFn(r)).Trigger(randomTrigger(r, 3, false)).
				AllowedLateness(time.Duration(r.IntN(3) * r.IntN(40))).
				OutputAt(TimestampCombiner(r.IntN(4)))
			if r.IntN(2) == 0 {
				s = s.Accumulating()
			}
			if s.Validate() == nil {
				break
			}
		}
		evs := randomEvents(r)
		d, err := NewWindowing[int64](s, sum())
		if err != nil {
			t.Fatal(err)
		}
		panes, out, st := drive(d, evs)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("seed %d, %v: %s", seed, s, fmt.Sprintf(format, args...))
		}
		if !st.Empty() {
			fail("state left after the final watermark: %+v", st.Windows(nil))
		}

		// Batch: every record's sum in each of its windows, less the drops.
		want := map[Interval]int64{}
		for _, ev := range evs {
			for _, e := range ev.elems {
				for _, w := range s.Spec().Fn.Assign(e.Time, nil) {
					want[w] += e.Value
				}
			}
		}
		late, closed := int64(0), int64(0)
		for _, dr := range out.Dropped {
			want[dr.Window] -= dr.Element.Value
			if dr.Reason == TooLate {
				late++
			} else {
				closed++
			}
		}
		if late != out.DroppedLate || closed != out.DroppedClosed {
			fail("counters %d/%d, listed %d/%d", out.DroppedLate, out.DroppedClosed, late, closed)
		}

		byWindow := map[Interval][]Pane[int64]{}
		var order []Interval
		for _, p := range panes {
			if _, ok := byWindow[p.Window]; !ok {
				order = append(order, p.Window)
			}
			byWindow[p.Window] = append(byWindow[p.Window], p)
		}
		for _, w := range order {
			ps := byWindow[w]
			checkPaneSequence(t, w, ps)
			got := int64(0)
			if s.Spec().Mode == Accumulating {
				got = ps[len(ps)-1].Value
			} else {
				for _, p := range ps {
					got += p.Value
				}
			}
			if got != want[w] {
				fail("window %v: panes give %d, batch %d (%d panes)", w, got, want[w], len(ps))
			}
			for _, p := range ps {
				c := s.Spec().TimestampCombiner
				if c == EndOfWindow && p.Timestamp != w.MaxTimestamp() ||
					c != EndOfWindow && (p.Timestamp < w.Start || p.Timestamp > w.MaxTimestamp()) {
					fail("window %v: pane timestamp %d", w, p.Timestamp)
				}
			}
		}
		for w, v := range want {
			if v != 0 && len(byWindow[w]) == 0 {
				fail("window %v: %d in batch but no pane", w, v)
			}
		}

		// Deterministic: the same events give the same panes.
		again, _, _ := drive(d, evs)
		if !reflect.DeepEqual(panes, again) {
			fail("second run differs")
		}
	}
}

// TestSessionsMatchBatch: with triggers that never finish and lateness that
// never expires a window, the last accumulating pane of every final session
// holds exactly the records of that session computed in batch, and the
// discarding panes of the windows that merged into it sum to the same.
func TestSessionsMatchBatch(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 11))
		var trig Trigger
		switch r.IntN(4) {
		case 0:
			trig = Default()
		case 1:
			trig = Repeatedly(randomTrigger(r, 2, false))
		case 2:
			trig = AfterWatermark().Early(randomTrigger(r, 1, false)).Late(randomTrigger(r, 1, false))
		default:
			trig = Never()
		}
		gap := time.Duration(3 + r.IntN(15))
		s := Session(gap).Trigger(trig).AllowedLateness(time.Duration(MaxTime / 2))
		if r.IntN(2) == 0 {
			s = s.Accumulating()
		}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		evs := randomEvents(r)
		d, err := NewWindowing[int64](s, sum())
		if err != nil {
			t.Fatal(err)
		}
		panes, out, st := drive(d, evs)
		if out.DroppedLate+out.DroppedClosed != 0 || !st.Empty() {
			t.Fatalf("seed %d: drops %d/%d, empty %v", seed, out.DroppedLate, out.DroppedClosed, st.Empty())
		}
		// Batch sessions.
		var recs []Element[int64]
		for _, ev := range evs {
			recs = append(recs, ev.elems...)
		}
		slices.SortFunc(recs, func(a, b Element[int64]) int { return cmpTime(a.Time, b.Time) })
		want := map[Interval]int64{}
		for i := 0; i < len(recs); {
			w := Interval{Start: recs[i].Time, End: recs[i].Time.Add(gap)}
			total := recs[i].Value
			j := i + 1
			for ; j < len(recs) && recs[j].Time < w.End; j++ {
				w.End = max(w.End, recs[j].Time.Add(gap))
				total += recs[j].Value
			}
			want[w] = total
			i = j
		}
		// Windows only grow by merging, so every pane's window lies in one
		// final session.
		got := map[Interval]int64{}
		for _, p := range panes {
			if s.Spec().Mode == Accumulating {
				if _, final := want[p.Window]; final {
					got[p.Window] = p.Value
				}
				continue // else a window later merged into a larger one
			}
			for w := range want {
				if w.Start <= p.Window.Start && p.Window.End <= w.End {
					got[w] += p.Value
				}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("seed %d, %v:\n got %v\nwant %v", seed, s, got, want)
		}
	}
}

// TestRebundlingInvariance: with the default trigger in accumulating mode
// the ON_TIME panes and every window's final value do not depend on the
// order or bundling of the records. (Not for sessions: a late record alone
// in its bundle makes a window that fires before it merges.)
func TestRebundlingInvariance(t *testing.T) {
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 3))
		s := Into(randomFn(r)).Accumulating().AllowedLateness(time.Duration(r.IntN(30)))
		d, err := NewWindowing[int64](s, sum())
		if err != nil {
			t.Fatal(err)
		}
		evs := randomEvents(r)
		base, _, _ := drive(d, evs)
		var split []event
		for _, ev := range evs {
			if ev.kind != 0 {
				split = append(split, ev)
				continue
			}
			es := slices.Clone(ev.elems)
			r.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
			for _, e := range es {
				split = append(split, event{kind: 0, elems: []Element[int64]{e}})
			}
		}
		got, _, _ := drive(d, split)
		// Each late bundle fires its own pane, so only the ON_TIME panes and
		// each window's final value are the same under any bundling.
		key := func(ps []Pane[int64]) []string {
			last := map[Interval]int64{}
			var out []string
			for _, p := range ps {
				if p.Info.Timing == OnTime {
					out = append(out, fmt.Sprintf("on-time %v %d %d %+v", p.Window, p.Value, p.Timestamp, p.Info))
				}
				last[p.Window] = p.Value
			}
			for w, v := range last {
				out = append(out, fmt.Sprintf("final %v %d", w, v))
			}
			slices.Sort(out)
			return out
		}
		if !slices.Equal(key(base), key(got)) {
			t.Errorf("seed %d, %v: rebundled panes differ:\n%q\n%q", seed, s, key(base), key(got))
		}
	}
}

func TestGlobalWindowFiresAtEndOfInput(t *testing.T) {
	r := newRun(t, Global())
	r.input(5, 1).watermark(1_000).expect()
	r.watermark(int64(MaxTime)).expect(fmt.Sprintf("[%d,%d) [5 1] ts=%d on-time 0/0 last",
		MinTime, GlobalMaxTimestamp+1, GlobalMaxTimestamp))
	if !r.st.Empty() {
		t.Error("global window left after the end of input")
	}
}

// ExampleWindowing runs one key through fixed windows with early firings
// every two records and late firings for each late record.
func ExampleWindowing() {
	s := Fixed(10 * time.Second).
		Trigger(AfterWatermark().Early(AfterCount(2)).Late(AfterCount(1))).
		AllowedLateness(time.Minute).
		Accumulating()
	d, err := NewWindowing[string](s, Collect[string]())
	if err != nil {
		panic(err)
	}
	sec := func(n int64) Time { return Time(n) * Time(time.Second) }
	var st KeyState[[]string]
	var out Output[string, []string]
	d.ProcessElements(&st, []Element[string]{{"a", sec(1)}, {"b", sec(2)}}, sec(0), 0, &out)
	d.AdvanceWatermark(&st, sec(10), &out)
	d.ProcessElements(&st, []Element[string]{{"c", sec(3)}}, sec(10), 0, &out)
	d.AdvanceWatermark(&st, sec(70), &out)
	d.ProcessElements(&st, []Element[string]{{"d", sec(4)}}, sec(70), 0, &out)
	for _, p := range out.Panes {
		fmt.Println(p.Info.Index, p.Info.Timing, p.Value, p.Info.IsLast)
	}
	fmt.Println("dropped as too late:", out.DroppedLate)
	// Output:
	// 0 early [a b] false
	// 1 on-time [a b] false
	// 2 late [a b c] false
	// dropped as too late: 1
}

func BenchmarkWindowingFixed(b *testing.B) {
	d, err := NewWindowing[int64](Fixed(time.Minute), sum())
	if err != nil {
		b.Fatal(err)
	}
	const keys, batch = 1024, 256
	states := make([]KeyState[int64], keys)
	var out Output[int64, int64]
	elems := make([]Element[int64], batch)
	b.ReportAllocs()
	t := Time(0)
	for i := 0; b.Loop(); i++ {
		for j := range elems {
			t += Time(time.Millisecond)
			elems[j] = Element[int64]{Value: 1, Time: t}
		}
		k := &states[i%keys]
		d.ProcessElements(k, elems, t-Time(time.Second), 0, &out)
		out.Reset()
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}
