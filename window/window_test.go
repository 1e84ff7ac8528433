package window

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func iv(s, e Time) Interval { return Interval{Start: s, End: e} }

func TestAssign(t *testing.T) {
	for _, c := range []struct {
		fn   Fn
		t    Time
		want []Interval
	}{
		{FixedWindows{Size: 10}, 0, []Interval{iv(0, 10)}},
		{FixedWindows{Size: 10}, 9, []Interval{iv(0, 10)}},
		{FixedWindows{Size: 10}, 10, []Interval{iv(10, 20)}},
		{FixedWindows{Size: 10}, -1, []Interval{iv(-10, 0)}},
		{FixedWindows{Size: 10}, -10, []Interval{iv(-10, 0)}},
		{FixedWindows{Size: 10, Offset: 3}, 2, []Interval{iv(-7, 3)}},
		{FixedWindows{Size: 10, Offset: 3}, 3, []Interval{iv(3, 13)}},
		{FixedWindows{Size: 10}, MinTime, []Interval{iv(MinTime, MinTime+8)}},
		{FixedWindows{Size: 10}, MaxTime, []Interval{iv(MaxTime-7, MaxTime)}},
		{SlidingWindows{Size: 10, Period: 5}, 7, []Interval{iv(0, 10), iv(5, 15)}},
		{SlidingWindows{Size: 10, Period: 5}, 5, []Interval{iv(0, 10), iv(5, 15)}},
		{SlidingWindows{Size: 10, Period: 5}, 4, []Interval{iv(-5, 5), iv(0, 10)}},
		{SlidingWindows{Size: 10, Period: 3, Offset: 1}, 7, []Interval{iv(-2, 8), iv(1, 11), iv(4, 14), iv(7, 17)}},
		{SlidingWindows{Size: 5, Period: 10}, 3, []Interval{iv(0, 5)}},
		{SlidingWindows{Size: 5, Period: 10}, 7, nil},
		{Sessions{Gap: 10}, 7, []Interval{iv(7, 17)}},
		{Sessions{Gap: 10}, MaxTime - 3, []Interval{iv(MaxTime-3, MaxTime)}},
		{GlobalWindows{}, 42, []Interval{GlobalInterval()}},
	} {
		got := c.fn.Assign(c.t, nil)
		if !slices.Equal(got, c.want) {
			t.Errorf("%v.Assign(%d) = %v, want %v", c.fn, int64(c.t), got, c.want)
		}
	}
}

func TestSessionsMerge(t *testing.T) {
	for _, c := range []struct {
		in   []Interval
		want []Merge
	}{
		{[]Interval{iv(1, 11)}, nil},
		{[]Interval{iv(1, 11), iv(11, 21)}, nil}, // touching is not overlapping
		{[]Interval{iv(1, 11), iv(2, 12)}, []Merge{{From: []Interval{iv(1, 11), iv(2, 12)}, Into: iv(1, 12)}}},
		{[]Interval{iv(1, 11), iv(1, 15), iv(20, 30), iv(25, 26), iv(40, 50)}, []Merge{
			{From: []Interval{iv(1, 11), iv(1, 15)}, Into: iv(1, 15)},
			{From: []Interval{iv(20, 30), iv(25, 26)}, Into: iv(20, 30)},
		}},
		{[]Interval{iv(0, 10), iv(5, 15), iv(14, 24)}, []Merge{{From: []Interval{iv(0, 10), iv(5, 15), iv(14, 24)}, Into: iv(0, 24)}}},
	} {
		got := Sessions{Gap: 10}.Merge(c.in, nil)
		if !slices.EqualFunc(got, c.want, func(a, b Merge) bool { return a.Into == b.Into && slices.Equal(a.From, b.From) }) {
			t.Errorf("Merge(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestTimeAndInterval(t *testing.T) {
	if got := MaxTime.Add(time.Second); got != MaxTime {
		t.Errorf("MaxTime+1s = %d, want saturation", got)
	}
	if got := MinTime.Add(-time.Second); got != MinTime {
		t.Errorf("MinTime-1s = %d, want saturation", got)
	}
	if got := Time(5).Add(3); got != 8 {
		t.Errorf("5+3 = %d", got)
	}
	w := iv(0, 10)
	if w.MaxTimestamp() != 9 || !w.Contains(0) || w.Contains(10) || w.Overlaps(iv(10, 20)) || !w.Overlaps(iv(9, 20)) {
		t.Errorf("interval arithmetic wrong for %v", w)
	}
	if got := w.Span(iv(5, 20)); got != iv(0, 20) {
		t.Errorf("Span = %v", got)
	}
	if !GlobalInterval().IsGlobal() || GlobalInterval().MaxTimestamp() != GlobalMaxTimestamp {
		t.Errorf("global interval %v", GlobalInterval())
	}
	if MinTime.String() != "-inf" || MaxTime.String() != "+inf" || Time(0).String() != "1970-01-01T00:00:00Z" {
		t.Errorf("String: %s %s %s", MinTime, MaxTime, Time(0))
	}
	if Of(time.Unix(3, 4)) != 3_000_000_004 || Time(3_000_000_004).Std() != time.Unix(3, 4).UTC() {
		t.Error("Of/Std do not round-trip")
	}
	if iv(0, 10).Compare(iv(0, 11)) != -1 || iv(1, 2).Compare(iv(0, 11)) != 1 || iv(1, 2).Compare(iv(1, 2)) != 0 {
		t.Error("Compare")
	}
}

func TestStrategyBuildersAreImmutable(t *testing.T) {
	base := Fixed(time.Minute)
	a := base.Trigger(AfterCount(3)).Accumulating().AllowedLateness(time.Hour).OutputAt(Earliest)
	if base.String() != "fixed(1m0s)" {
		t.Errorf("base changed: %s", base)
	}
	want := "fixed(1m0s) trigger=AfterCount(3) accumulating lateness=1h0m0s output=earliest"
	if a.String() != want {
		t.Errorf("String = %q, want %q", a, want)
	}
	b := base.WithOffset(time.Second)
	if base.Spec().Fn != (FixedWindows{Size: time.Minute}) || b.Spec().Fn != (FixedWindows{Size: time.Minute, Offset: time.Second}) {
		t.Errorf("WithOffset: base %v, b %v", base.Spec().Fn, b.Spec().Fn)
	}
	bad := Session(time.Minute)
	bad1 := bad.WithOffset(time.Second)
	bad2 := bad.WithOffset(2 * time.Second)
	if bad.Validate() != nil {
		t.Errorf("sessions: %v", bad.Validate())
	}
	if e1, e2 := bad1.Validate(), bad2.Validate(); e1 == nil || e2 == nil || strings.Contains(e1.Error(), "2s") {
		t.Errorf("WithOffset errors leaked between values: %v / %v", e1, e2)
	}
	subs := []Trigger{AfterCount(1), AfterCount(2)}
	each := AfterEach(subs...)
	subs[0] = Never()
	got := each.Subtriggers()
	got[1] = Never()
	if each.String() != "AfterEach(AfterCount(1), AfterCount(2))" {
		t.Errorf("AfterEach shares its slice: %s", each)
	}
	if !Global().IsGlobal() || Global().Trigger(AfterCount(1)).IsGlobal() || Fixed(1).IsGlobal() {
		t.Error("IsGlobal")
	}
	if Global().String() != "global" {
		t.Errorf("Global().String() = %q", Global())
	}
	var w Window = Session(time.Second)
	if !w.Strategy().IsMerging() || Fixed(1).IsMerging() {
		t.Error("IsMerging")
	}
}

func TestTriggerStrings(t *testing.T) {
	for _, c := range []struct {
		t    Trigger
		want string
	}{
		{Default(), "Default"},
		{Never(), "Never"},
		{AfterWatermark(), "AfterWatermark()"},
		{AfterWatermark().Early(AfterCount(2)).Late(AfterCount(3)), "AfterWatermark(early=AfterCount(2), late=AfterCount(3))"},
		{AfterProcessingTime(time.Second), "AfterProcessingTime(1s)"},
		{AfterProcessingTime(time.Second).AlignedTo(time.Minute, 0), "AfterProcessingTime(1s, aligned to 1m0s offset 0s)"},
		{Repeatedly(AfterCount(1)), "Repeatedly(AfterCount(1))"},
		{AfterAny(AfterCount(1), Never()), "AfterAny(AfterCount(1), Never)"},
		{AfterAll(AfterCount(1)), "AfterAll(AfterCount(1))"},
		{OrFinally(Repeatedly(AfterCount(1)), AfterWatermark()), "OrFinally(Repeatedly(AfterCount(1)), AfterWatermark())"},
	} {
		if got := c.t.String(); got != c.want {
			t.Errorf("String = %q, want %q", got, c.want)
		}
	}
	w := AfterWatermark().Early(AfterCount(1))
	if w.EarlyFirings() == nil || w.LateFirings() != nil || w.Late(AfterCount(2)).LateFirings() == nil || w.LateFirings() != nil {
		t.Error("AfterWatermark builders")
	}
	if p, o := AfterProcessingTime(1).AlignedTo(10, 3).Alignment(); p != 10 || o != 3 {
		t.Error("Alignment")
	}
}

func TestValidateReportsEverything(t *testing.T) {
	s := Into(SlidingWindows{Size: -1, Period: 0}).
		Trigger(AfterEach(Repeatedly(AfterCount(0)), nil, AfterProcessingTime(-1).AlignedTo(-1, 0))).
		AllowedLateness(-time.Second).
		OutputAt(TimestampCombiner(9))
	err := s.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"size must be positive",
		"period must be positive",
		"count must be at least 1",
		"subtrigger 1 is nil",
		"never finishes, so the triggers after it never run",
		"delay must not be negative",
		"alignment period must be positive",
		"allowed lateness -1s must not be negative",
		"unknown timestamp combiner",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, "window: ") {
			t.Errorf("error without package prefix: %q", line)
		}
	}
	for _, c := range []struct {
		s    Strategy
		want string
	}{
		{Strategy{}, "no window function"},
		{Fixed(time.Minute).Trigger(nil), "no trigger"},
		{Fixed(time.Minute).WithOffset(time.Minute), "offset 1m0s must be in [0, size)"},
		{Sliding(time.Minute, time.Second).WithOffset(-1), "offset -1ns must be in [0, period)"},
		{Sliding(time.Hour, time.Nanosecond), "more than 65536 windows"},
		{Session(0), "gap must be positive"},
		{Global().WithOffset(1), "offset 1ns applies to fixed and sliding windows, not global"},
		{Fixed(1).Trigger(OrFinally(AfterCount(1), Repeatedly(AfterCount(1)))), "until trigger Repeatedly(AfterCount(1)) never finishes"},
		{Fixed(1).Trigger(AfterAny()), "needs at least one subtrigger"},
		{Fixed(1).Trigger(Repeatedly(nil)), "subtrigger is nil"},
		{Fixed(1).Trigger(AfterProcessingTime(0).AlignedTo(5, 5)), "alignment offset must be in [0, period)"},
		{FromSpec(Spec{Fn: GlobalWindows{}, Trigger: Default(), Mode: 7}), "unknown accumulation mode"},
		{Into(failingFn{}), "window: bad: no good"},
	} {
		err := c.s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: Validate() = %v, want %q", c.s, err, c.want)
		}
	}
	for _, s := range []Strategy{
		Global(), Fixed(time.Minute).WithOffset(time.Second), Sliding(time.Minute, time.Second), Session(time.Minute),
		Fixed(time.Minute).Trigger(AfterWatermark().Early(AfterProcessingTime(time.Second)).Late(AfterCount(1))).
			AllowedLateness(time.Hour).Accumulating().OutputAt(EarliestTransformed),
		Fixed(1).Trigger(Repeatedly(AfterAny(AfterCount(3), AfterProcessingTime(1)))),
		Fixed(1).Trigger(AfterEach(AfterCount(1), AfterAll(AfterCount(2), AfterWatermark()), Repeatedly(AfterCount(1)))),
		Fixed(1).Trigger(OrFinally(Repeatedly(AfterCount(1)), AfterWatermark())),
		Fixed(1).Trigger(Never()),
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("%v: %v", s, err)
		}
	}
}

type failingFn struct{ GlobalWindows }

func (failingFn) String() string  { return "bad" }
func (failingFn) Validate() error { return errors.New("no good") }

func TestFixedNearLimits(t *testing.T) {
	// No assignment may wrap around.
	for _, size := range []time.Duration{1, 7, time.Hour, math.MaxInt64 / 2} {
		for _, ts := range []Time{MinTime, MinTime + 1, -1, 0, 1, MaxTime - 1, MaxTime} {
			ws := FixedWindows{Size: size}.Assign(ts, nil)
			if len(ws) != 1 || ws[0].Start > ts || ws[0].End < ws[0].Start {
				t.Errorf("size %v t %d: %v", size, ts, ws)
			}
		}
	}
}

func ExampleStrategy() {
	s := Fixed(time.Minute).
		Trigger(AfterWatermark().Early(AfterProcessingTime(10 * time.Second)).Late(AfterCount(1))).
		AllowedLateness(time.Hour).
		Accumulating()
	fmt.Println(s)
	fmt.Println(s.Validate())
	fmt.Println(Session(0).AllowedLateness(-1).Validate())
	// Output:
	// fixed(1m0s) trigger=AfterWatermark(early=AfterProcessingTime(10s), late=AfterCount(1)) accumulating lateness=1h0m0s
	// <nil>
	// window: sessions with gap 0s: gap must be positive
	// window: allowed lateness -1ns must not be negative
}
