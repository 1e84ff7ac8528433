package window

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Trigger says when a window emits a pane. Triggers are immutable values
// built with this package's functions; the interface is sealed. The state
// machine that runs them lives in package core and follows Beam's trigger
// semantics:
//
//   - a trigger fires when its condition holds at a point where the driver
//     evaluates it: after a bundle of records reaches the window, when the
//     watermark passes the window's end, and when a processing-time
//     deadline passes;
//   - some triggers finish after firing (AfterCount, AfterProcessingTime,
//     AfterWatermark without late firings); once a window's trigger has
//     finished the window is closed and later records for it are dropped.
type Trigger interface {
	String() string
	// appendErrors appends what is wrong with the trigger (sealed).
	appendErrors(errs []error) []error
	// mayFinish reports whether the trigger can ever finish.
	mayFinish() bool
}

// DefaultTrigger fires when the watermark passes the end of the window and
// again for every bundle of late records; it never finishes. It behaves as
// Repeatedly(AfterWatermark()).
type DefaultTrigger struct{}

// Default returns the default trigger.
func Default() DefaultTrigger { return DefaultTrigger{} }

func (DefaultTrigger) String() string                    { return "Default" }
func (DefaultTrigger) appendErrors(errs []error) []error { return errs }
func (DefaultTrigger) mayFinish() bool                   { return false }

// NeverTrigger never fires; the window's records come out in one final pane
// when the window is garbage collected (its end plus the allowed lateness).
type NeverTrigger struct{}

// Never returns a trigger that never fires.
func Never() NeverTrigger { return NeverTrigger{} }

func (NeverTrigger) String() string                    { return "Never" }
func (NeverTrigger) appendErrors(errs []error) []error { return errs }
func (NeverTrigger) mayFinish() bool                   { return false }

// AfterWatermarkTrigger fires once when the watermark passes the end of the
// window (the ON_TIME pane). With early firings it also fires whenever the
// early trigger does before that; with late firings it fires whenever the
// late trigger does after it, and never finishes. Early and late triggers
// repeat: they restart after each firing.
type AfterWatermarkTrigger struct {
	early, late Trigger
}

// AfterWatermark returns a trigger that fires when the watermark passes the
// end of the window.
func AfterWatermark() AfterWatermarkTrigger { return AfterWatermarkTrigger{} }

// Early returns the trigger with early (speculative) firings by t; nil
// removes them.
func (a AfterWatermarkTrigger) Early(t Trigger) AfterWatermarkTrigger {
	a.early = t
	return a
}

// Late returns the trigger with late firings by t; nil removes them.
func (a AfterWatermarkTrigger) Late(t Trigger) AfterWatermarkTrigger {
	a.late = t
	return a
}

// EarlyFirings returns the early trigger, or nil.
func (a AfterWatermarkTrigger) EarlyFirings() Trigger { return a.early }

// LateFirings returns the late trigger, or nil.
func (a AfterWatermarkTrigger) LateFirings() Trigger { return a.late }

func (a AfterWatermarkTrigger) String() string {
	var q []string
	if a.early != nil {
		q = append(q, "early="+a.early.String())
	}
	if a.late != nil {
		q = append(q, "late="+a.late.String())
	}
	return "AfterWatermark(" + strings.Join(q, ", ") + ")"
}

func (a AfterWatermarkTrigger) appendErrors(errs []error) []error {
	if a.early != nil {
		errs = a.early.appendErrors(errs)
	}
	if a.late != nil {
		errs = a.late.appendErrors(errs)
	}
	return errs
}

func (a AfterWatermarkTrigger) mayFinish() bool { return a.late == nil }

// AfterProcessingTimeTrigger fires once, when processing time reaches the
// arrival of the pane's first record plus a delay (rounded up to an
// alignment when one is set).
type AfterProcessingTimeTrigger struct {
	delay, period, offset time.Duration
}

// AfterProcessingTime returns a trigger that fires once processing time has
// passed the arrival of the pane's first record by d.
func AfterProcessingTime(d time.Duration) AfterProcessingTimeTrigger {
	return AfterProcessingTimeTrigger{delay: d}
}

// AlignedTo returns the trigger with its deadline rounded up to the next
// time that is offset past a multiple of period, so that the panes of many
// windows and keys fire together (Beam's alignedTo).
func (a AfterProcessingTimeTrigger) AlignedTo(period, offset time.Duration) AfterProcessingTimeTrigger {
	a.period, a.offset = period, offset
	return a
}

// Delay returns the delay after the pane's first record.
func (a AfterProcessingTimeTrigger) Delay() time.Duration { return a.delay }

// Alignment returns the alignment period and offset; period is 0 when the
// trigger is not aligned.
func (a AfterProcessingTimeTrigger) Alignment() (period, offset time.Duration) {
	return a.period, a.offset
}

func (a AfterProcessingTimeTrigger) String() string {
	if a.period != 0 {
		return fmt.Sprintf("AfterProcessingTime(%v, aligned to %v offset %v)", a.delay, a.period, a.offset)
	}
	return fmt.Sprintf("AfterProcessingTime(%v)", a.delay)
}

func (a AfterProcessingTimeTrigger) appendErrors(errs []error) []error {
	if a.delay < 0 {
		errs = append(errs, fmt.Errorf("window: trigger %v: delay must not be negative", a))
	}
	if a.period < 0 || (a.period == 0 && a.offset != 0) {
		errs = append(errs, fmt.Errorf("window: trigger %v: alignment period must be positive", a))
	} else if a.period > 0 && (a.offset < 0 || a.offset >= a.period) {
		errs = append(errs, fmt.Errorf("window: trigger %v: alignment offset must be in [0, period)", a))
	}
	return errs
}

func (AfterProcessingTimeTrigger) mayFinish() bool { return true }

// AfterCountTrigger fires once the pane holds at least n records.
type AfterCountTrigger struct {
	n int64
}

// AfterCount returns a trigger that fires once, when the pane holds at least
// n records.
func AfterCount(n int) AfterCountTrigger { return AfterCountTrigger{n: int64(n)} }

// Count returns the number of records the trigger waits for.
func (a AfterCountTrigger) Count() int64 { return a.n }

func (a AfterCountTrigger) String() string { return fmt.Sprintf("AfterCount(%d)", a.n) }

func (a AfterCountTrigger) appendErrors(errs []error) []error {
	if a.n < 1 {
		errs = append(errs, fmt.Errorf("window: trigger %v: count must be at least 1", a))
	}
	return errs
}

func (AfterCountTrigger) mayFinish() bool { return true }

// RepeatedlyTrigger fires whenever its subtrigger does, restarting the
// subtrigger after each time it finishes; it never finishes.
type RepeatedlyTrigger struct {
	sub Trigger
}

// Repeatedly returns a trigger that runs t again each time it finishes.
func Repeatedly(t Trigger) RepeatedlyTrigger { return RepeatedlyTrigger{sub: t} }

// Always returns a trigger that fires a pane for every bundle of records
// (Beam Python's Always): Repeatedly(AfterCount(1)).
func Always() RepeatedlyTrigger { return Repeatedly(AfterCount(1)) }

// Subtrigger returns the repeated trigger.
func (r RepeatedlyTrigger) Subtrigger() Trigger { return r.sub }

func (r RepeatedlyTrigger) String() string { return "Repeatedly(" + str(r.sub) + ")" }

func (r RepeatedlyTrigger) appendErrors(errs []error) []error {
	if r.sub == nil {
		return append(errs, fmt.Errorf("window: trigger %v: subtrigger is nil", r))
	}
	return r.sub.appendErrors(errs)
}

func (RepeatedlyTrigger) mayFinish() bool { return false }

// AfterEachTrigger runs its subtriggers one after another: it fires when the
// current one fires, moves to the next when the current one finishes, and
// finishes after the last.
type AfterEachTrigger struct {
	subs []Trigger
}

// AfterEach returns a trigger that runs ts in sequence.
func AfterEach(ts ...Trigger) AfterEachTrigger { return AfterEachTrigger{subs: slices.Clone(ts)} }

// Subtriggers returns a copy of the subtriggers.
func (a AfterEachTrigger) Subtriggers() []Trigger { return slices.Clone(a.subs) }

func (a AfterEachTrigger) String() string { return "AfterEach(" + strs(a.subs) + ")" }

func (a AfterEachTrigger) appendErrors(errs []error) []error {
	errs = appendSubErrors(errs, a, a.subs)
	for i, t := range a.subs {
		if t != nil && i < len(a.subs)-1 && !t.mayFinish() {
			errs = append(errs, fmt.Errorf("window: trigger %v: %v never finishes, so the triggers after it never run", a, t))
		}
	}
	return errs
}

func (a AfterEachTrigger) mayFinish() bool {
	return len(a.subs) > 0 && a.subs[len(a.subs)-1] != nil && a.subs[len(a.subs)-1].mayFinish()
}

// AfterAnyTrigger fires when any subtrigger fires and finishes when any of
// them finishes.
type AfterAnyTrigger struct {
	subs []Trigger
}

// AfterAny returns a trigger that fires when any of ts does.
func AfterAny(ts ...Trigger) AfterAnyTrigger { return AfterAnyTrigger{subs: slices.Clone(ts)} }

// Subtriggers returns a copy of the subtriggers.
func (a AfterAnyTrigger) Subtriggers() []Trigger { return slices.Clone(a.subs) }

func (a AfterAnyTrigger) String() string { return "AfterAny(" + strs(a.subs) + ")" }

func (a AfterAnyTrigger) appendErrors(errs []error) []error {
	return appendSubErrors(errs, a, a.subs)
}

func (a AfterAnyTrigger) mayFinish() bool {
	return slices.ContainsFunc(a.subs, func(t Trigger) bool { return t != nil && t.mayFinish() })
}

// AfterAllTrigger fires when every unfinished subtrigger is ready to fire
// and finishes when all of them have finished.
type AfterAllTrigger struct {
	subs []Trigger
}

// AfterAll returns a trigger that fires when all of ts are ready.
func AfterAll(ts ...Trigger) AfterAllTrigger { return AfterAllTrigger{subs: slices.Clone(ts)} }

// Subtriggers returns a copy of the subtriggers.
func (a AfterAllTrigger) Subtriggers() []Trigger { return slices.Clone(a.subs) }

func (a AfterAllTrigger) String() string { return "AfterAll(" + strs(a.subs) + ")" }

func (a AfterAllTrigger) appendErrors(errs []error) []error {
	return appendSubErrors(errs, a, a.subs)
}

func (a AfterAllTrigger) mayFinish() bool {
	return len(a.subs) > 0 && !slices.ContainsFunc(a.subs, func(t Trigger) bool { return t == nil || !t.mayFinish() })
}

// OrFinallyTrigger fires when its main trigger does, and fires a last time
// and finishes when until fires (or when main finishes).
type OrFinallyTrigger struct {
	main, until Trigger
}

// OrFinally returns a trigger that runs t until until fires.
func OrFinally(t, until Trigger) OrFinallyTrigger { return OrFinallyTrigger{main: t, until: until} }

// Main returns the main trigger.
func (o OrFinallyTrigger) Main() Trigger { return o.main }

// Until returns the trigger that ends it.
func (o OrFinallyTrigger) Until() Trigger { return o.until }

func (o OrFinallyTrigger) String() string {
	return "OrFinally(" + str(o.main) + ", " + str(o.until) + ")"
}

func (o OrFinallyTrigger) appendErrors(errs []error) []error {
	errs = appendSubErrors(errs, o, []Trigger{o.main, o.until})
	if o.until != nil && !o.until.mayFinish() {
		errs = append(errs, fmt.Errorf("window: trigger %v: until trigger %v never finishes", o, o.until))
	}
	return errs
}

func (o OrFinallyTrigger) mayFinish() bool { return true }

func appendSubErrors(errs []error, parent Trigger, subs []Trigger) []error {
	if len(subs) == 0 {
		return append(errs, fmt.Errorf("window: trigger %v: needs at least one subtrigger", parent))
	}
	for i, t := range subs {
		if t == nil {
			errs = append(errs, fmt.Errorf("window: trigger %v: subtrigger %d is nil", parent, i))
			continue
		}
		errs = t.appendErrors(errs)
	}
	return errs
}

func str(t Trigger) string {
	if t == nil {
		return "nil"
	}
	return t.String()
}

func strs(ts []Trigger) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = str(t)
	}
	return strings.Join(s, ", ")
}
