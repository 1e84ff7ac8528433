// Package window holds window and trigger values: immutable descriptions of
// how a keyed stream is cut into panes, following Beam's windowing model.
// It imports only the standard library so that the user API, the planner and
// the core can all share it.
//
// A Strategy combines a window function (Fixed, Sliding, Session, Global, or
// a user's Fn through Into), a Trigger, an accumulation mode, the allowed
// lateness and a timestamp combiner:
//
//	perMinute := window.Fixed(time.Minute).
//		Trigger(window.AfterWatermark().Early(window.AfterProcessingTime(10 * time.Second))).
//		AllowedLateness(time.Hour).
//		Accumulating()
//
// Every builder returns a new value; none changes its receiver. Mistakes are
// collected and reported together by Validate.
//
// The package also holds the pure state machine that runs a strategy over
// one key's windows (Windowing, KeyState: Beam's ReduceFnRunner). It lives
// here rather than in core because it is generic in the user's record and
// accumulator types, and the typed API (stages) may import window but not
// core; core hosts it through the type-erased specs stages builds.
package window

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Window is a windowing strategy as the user API passes it around. The
// interface is sealed: Strategy, from this package's constructors, is its
// only implementation.
type Window interface {
	String() string
	// IsGlobal reports whether this is the plain global window: every
	// record of a key in one window, with the default trigger, so that it
	// fires once, when input ends.
	IsGlobal() bool
	// Strategy returns the full strategy.
	Strategy() Strategy
	sealed()
}

// AccumulationMode says what happens to a window's contents when it fires.
type AccumulationMode int

const (
	// Discarding panes hold only the records that arrived since the
	// previous pane. It is Beam's default.
	Discarding AccumulationMode = iota
	// Accumulating panes hold every record of the window so far.
	Accumulating
)

func (m AccumulationMode) String() string {
	switch m {
	case Discarding:
		return "discarding"
	case Accumulating:
		return "accumulating"
	}
	return fmt.Sprintf("AccumulationMode(%d)", int(m))
}

// TimestampCombiner chooses the output time of a pane from the times of its
// records; the window holds its output watermark back to that time until the
// pane fires.
type TimestampCombiner int

const (
	// EndOfWindow gives every pane the window's MaxTimestamp.
	EndOfWindow TimestampCombiner = iota
	// Earliest gives a pane the earliest time among its records that were
	// not behind the input watermark when they arrived (MaxTimestamp when
	// there is none).
	Earliest
	// Latest gives a pane the latest such time.
	Latest
	// EarliestTransformed is Earliest over the times as the window function
	// transforms them (see OutputTimeFn).
	EarliestTransformed
)

func (c TimestampCombiner) String() string {
	switch c {
	case EndOfWindow:
		return "end-of-window"
	case Earliest:
		return "earliest"
	case Latest:
		return "latest"
	case EarliestTransformed:
		return "earliest-transformed"
	}
	return fmt.Sprintf("TimestampCombiner(%d)", int(c))
}

// Spec is a plain view of a Strategy for the planner and the core.
type Spec struct {
	Fn                Fn
	Trigger           Trigger
	Mode              AccumulationMode
	AllowedLateness   time.Duration
	TimestampCombiner TimestampCombiner
}

// Strategy is an immutable windowing strategy. Build one with Fixed,
// Sliding, Session, Global or Into and refine it with the builder methods.
// The zero Strategy has no window function and does not validate.
type Strategy struct {
	spec Spec
	errs []error // builder misuse, reported by Validate
}

// Fixed returns back-to-back windows of size (Beam's FixedWindows, Flink's
// tumbling windows) with the default trigger. See WithOffset.
func Fixed(size time.Duration) Strategy { return Into(FixedWindows{Size: size}) }

// Sliding returns windows of size starting every period.
func Sliding(size, period time.Duration) Strategy {
	return Into(SlidingWindows{Size: size, Period: period})
}

// Session returns session windows that close after gap without records.
func Session(gap time.Duration) Strategy { return Into(Sessions{Gap: gap}) }

// Global returns the global window: every record of a key in one window that
// fires when input ends.
func Global() Strategy { return Into(GlobalWindows{}) }

// Into returns the strategy for window function fn with the default trigger,
// discarding mode, no allowed lateness and EndOfWindow timestamps.
func Into(fn Fn) Strategy { return Strategy{spec: Spec{Fn: fn, Trigger: Default()}} }

// FromSpec returns the strategy that spec describes.
func FromSpec(spec Spec) Strategy { return Strategy{spec: spec} }

// WithOffset returns s with its fixed or sliding windows shifted by offset;
// Validate reports it on any other window function.
func (s Strategy) WithOffset(offset time.Duration) Strategy {
	switch fn := s.spec.Fn.(type) {
	case FixedWindows:
		fn.Offset = offset
		s.spec.Fn = fn
	case SlidingWindows:
		fn.Offset = offset
		s.spec.Fn = fn
	default:
		s.errs = append(s.errs[:len(s.errs):len(s.errs)],
			fmt.Errorf("window: offset %v applies to fixed and sliding windows, not %s", offset, fnString(s.spec.Fn)))
	}
	return s
}

// Trigger returns s with trigger t.
func (s Strategy) Trigger(t Trigger) Strategy {
	s.spec.Trigger = t
	return s
}

// AllowedLateness returns s keeping each window d past its end for late
// records; records for a window whose end plus d is behind the watermark are
// dropped.
func (s Strategy) AllowedLateness(d time.Duration) Strategy {
	s.spec.AllowedLateness = d
	return s
}

// Accumulating returns s in accumulating mode.
func (s Strategy) Accumulating() Strategy {
	s.spec.Mode = Accumulating
	return s
}

// Discarding returns s in discarding mode.
func (s Strategy) Discarding() Strategy {
	s.spec.Mode = Discarding
	return s
}

// OutputAt returns s with timestamp combiner c.
func (s Strategy) OutputAt(c TimestampCombiner) Strategy {
	s.spec.TimestampCombiner = c
	return s
}

// Spec returns the parts of s.
func (s Strategy) Spec() Spec { return s.spec }

// Strategy implements Window.
func (s Strategy) Strategy() Strategy { return s }

func (Strategy) sealed() {}

// IsGlobal implements Window.
func (s Strategy) IsGlobal() bool {
	_, global := s.spec.Fn.(GlobalWindows)
	_, def := s.spec.Trigger.(DefaultTrigger)
	return global && def
}

// IsMerging reports whether windows of s merge (sessions).
func (s Strategy) IsMerging() bool {
	_, ok := s.spec.Fn.(MergingFn)
	return ok
}

// String renders s compactly, leaving out what is at its default. The plain
// global window is "global".
func (s Strategy) String() string {
	var b strings.Builder
	b.WriteString(fnString(s.spec.Fn))
	if _, def := s.spec.Trigger.(DefaultTrigger); !def {
		b.WriteString(" trigger=" + str(s.spec.Trigger))
	}
	if s.spec.Mode != Discarding {
		b.WriteString(" " + s.spec.Mode.String())
	}
	if s.spec.AllowedLateness != 0 {
		fmt.Fprintf(&b, " lateness=%v", s.spec.AllowedLateness)
	}
	if s.spec.TimestampCombiner != EndOfWindow {
		b.WriteString(" output=" + s.spec.TimestampCombiner.String())
	}
	return b.String()
}

func fnString(fn Fn) string {
	if fn == nil {
		return "nil"
	}
	return fn.String()
}

// Validate reports every problem with s at once, joined with errors.Join,
// or nil.
func (s Strategy) Validate() error {
	errs := append([]error(nil), s.errs...)
	switch fn := s.spec.Fn.(type) {
	case nil:
		errs = append(errs, errors.New("window: no window function"))
	case interface{ validate() []error }:
		errs = append(errs, fn.validate()...)
	case interface{ Validate() error }:
		if err := fn.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("window: %s: %w", fn, err))
		}
	}
	if s.spec.Trigger == nil {
		errs = append(errs, errors.New("window: no trigger"))
	} else {
		errs = s.spec.Trigger.appendErrors(errs)
	}
	if s.spec.Mode != Discarding && s.spec.Mode != Accumulating {
		errs = append(errs, fmt.Errorf("window: unknown accumulation mode %v", s.spec.Mode))
	}
	if s.spec.AllowedLateness < 0 {
		errs = append(errs, fmt.Errorf("window: allowed lateness %v must not be negative", s.spec.AllowedLateness))
	}
	if c := s.spec.TimestampCombiner; c < EndOfWindow || c > EarliestTransformed {
		errs = append(errs, fmt.Errorf("window: unknown timestamp combiner %v", c))
	}
	return errors.Join(errs...)
}
