package window

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Time is an event time or a processing time in unix nanoseconds. Plain
// integers keep windowing arithmetic cheap; plan.Batch carries record times
// in the same unit.
type Time int64

const (
	// MinTime is the earliest time: the input watermark before any input has
	// been seen (Beam's MIN_TIMESTAMP).
	MinTime Time = math.MinInt64
	// MaxTime is the latest time: a watermark at MaxTime says the input has
	// ended (Beam's MAX_TIMESTAMP).
	MaxTime Time = math.MaxInt64
	// GlobalMaxTimestamp is the last time inside the global window. As in
	// Beam it lies a day before MaxTime, so that timers past the end of the
	// global window (garbage collection after allowed lateness) still come
	// before the final watermark.
	GlobalMaxTimestamp = MaxTime - Time(24*time.Hour)
)

// Of converts a time.Time to a Time. Times outside the range of UnixNano
// (years before 1678 or after 2262) are not representable.
func Of(t time.Time) Time { return Time(t.UnixNano()) }

// Std converts t to a time.Time in UTC.
func (t Time) Std() time.Time { return time.Unix(0, int64(t)).UTC() }

// Add returns t+d, saturating at MinTime and MaxTime instead of wrapping.
func (t Time) Add(d time.Duration) Time {
	r := t + Time(d)
	if d > 0 && r < t {
		return MaxTime
	}
	if d < 0 && r > t {
		return MinTime
	}
	return r
}

// String renders t as RFC 3339 in UTC, or as -inf / +inf for the sentinels.
func (t Time) String() string {
	switch t {
	case MinTime:
		return "-inf"
	case MaxTime:
		return "+inf"
	}
	return t.Std().Format(time.RFC3339Nano)
}

// Interval is one window: the half-open range of event times [Start, End).
// Intervals are comparable and usable as map keys.
type Interval struct {
	Start, End Time
}

// GlobalInterval returns the global window: all of time up to and including
// GlobalMaxTimestamp.
func GlobalInterval() Interval { return Interval{Start: MinTime, End: GlobalMaxTimestamp + 1} }

// IsGlobal reports whether w is the global window.
func (w Interval) IsGlobal() bool { return w == GlobalInterval() }

// MaxTimestamp returns the last time inside w, End-1: the output time of its
// end-of-window panes.
func (w Interval) MaxTimestamp() Time { return w.End - 1 }

// Contains reports whether t lies in w.
func (w Interval) Contains(t Time) bool { return w.Start <= t && t < w.End }

// Overlaps reports whether w and o share a time. Windows that only touch
// ([0,10) and [10,20)) do not overlap.
func (w Interval) Overlaps(o Interval) bool { return w.Start < o.End && o.Start < w.End }

// Span returns the smallest interval that contains both w and o.
func (w Interval) Span(o Interval) Interval {
	return Interval{Start: min(w.Start, o.Start), End: max(w.End, o.End)}
}

// Compare orders intervals by start, then by end. It returns -1, 0 or +1.
func (w Interval) Compare(o Interval) int {
	switch {
	case w.Start < o.Start:
		return -1
	case w.Start > o.Start:
		return 1
	case w.End < o.End:
		return -1
	case w.End > o.End:
		return 1
	}
	return 0
}

func (w Interval) String() string {
	if w.IsGlobal() {
		return "[global)"
	}
	return fmt.Sprintf("[%s, %s)", w.Start, w.End)
}

// Timing says when a pane fired relative to the watermark.
type Timing uint8

const (
	// Early panes fire before the watermark passes the end of the window.
	Early Timing = iota
	// OnTime is the pane fired when the watermark passes the end of the
	// window; a window has at most one.
	OnTime
	// Late panes fire after the watermark has passed the end of the window.
	Late
)

func (t Timing) String() string {
	switch t {
	case Early:
		return "early"
	case OnTime:
		return "on-time"
	case Late:
		return "late"
	}
	return "Timing(" + strconv.Itoa(int(t)) + ")"
}

// PaneInfo describes a pane, as Beam's PaneInfo.
type PaneInfo struct {
	// Index counts the panes of the window before this one. A window made
	// by merging starts again at 0.
	Index int64
	// NonSpeculativeIndex counts the ON_TIME and LATE panes of the window
	// before this one; it is -1 for early panes.
	NonSpeculativeIndex int64
	Timing              Timing
	IsFirst             bool
	// IsLast is set on the window's last pane: its trigger has finished or
	// the window is being garbage collected.
	IsLast bool
}
