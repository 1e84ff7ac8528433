package plan

import (
	"fmt"
	"time"
)

// This file is explain-why: the records a stage set aside (a windowed
// stage's late and dropped records, a transform's dead letters), counted
// per stage and kept as a few examples, each with the rule that set it
// aside. A stage keeps at most MaxAsides examples of each reason: the
// first ones, in the order they came, so that the examples of a given
// input order are the same in every run and memory stays bounded.

// MaxAsides is the most examples a stage keeps of each reason.
const MaxAsides = 5

// AsideReason says why a stage set a record aside.
type AsideReason uint8

const (
	// AsideLate: the record came after the watermark had passed the end of
	// its window, within the allowed lateness; it went into a late pane.
	AsideLate AsideReason = iota
	// AsideTooLate: dropped (or sent to the late side output): the
	// watermark had passed the end of its window plus the allowed lateness.
	AsideTooLate
	// AsideClosed: dropped (or sent to the late side output): its window's
	// trigger had finished.
	AsideClosed
	// AsideDeadLetter: a transform sent it to a side output (TryMap's
	// failures, FlatMapSide's rejects).
	AsideDeadLetter
	numAsideReasons
)

var asideNames = [...]string{AsideLate: "late", AsideTooLate: "too late", AsideClosed: "window closed", AsideDeadLetter: "dead letter"}

func (r AsideReason) String() string {
	if r < numAsideReasons {
		return asideNames[r]
	}
	return fmt.Sprintf("AsideReason(%d)", int(r))
}

// MarshalText names the reason in JSON.
func (r AsideReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a name MarshalText wrote.
func (r *AsideReason) UnmarshalText(b []byte) error {
	for i, n := range asideNames {
		if n == string(b) {
			*r = AsideReason(i)
			return nil
		}
	}
	return fmt.Errorf("plan: unknown set-aside reason %q", b)
}

// Aside is one record a stage set aside, as an example of why.
type Aside struct {
	Reason AsideReason
	// Rule says, in words, the rule that set the record aside: for a late
	// record its window, the watermark and the allowed lateness; for a
	// dead letter the error.
	Rule string
	// Record is the record, formatted (Type.Format; a dead letter's
	// record is the one the stage rejected).
	Record string
	// Port is the side output a dead letter went to (1..), or that a
	// windowed stage sent its dropped records to (0: none, dropped).
	Port int
	// For a windowed stage's record (HasTime): its event time, the stage's
	// input watermark when it came, the allowed lateness and its window
	// [WindowStart, WindowEnd), times in unix ns.
	HasTime                bool
	EventTime, Watermark   int64
	AllowedLateness        time.Duration
	WindowStart, WindowEnd int64
}

// Explainer is a State that counts the records it added behind the
// watermark and keeps examples of those and of the records it dropped.
// Explain is called between steps, on the state's goroutine.
type Explainer interface {
	// Explain returns how many records the state has added to windows the
	// watermark had passed (within the allowed lateness: late panes), and
	// its examples, at most MaxAsides of each reason, in the order they
	// came. The state only ever appends to the slice.
	Explain() (late int64, asides []Aside)
}

// Explained is a record type that says what it holds when a stage sets it
// aside: a dead letter gives the record it stands for and what failed.
type Explained interface {
	Explain() (record, rule string)
}

// AsideRecord renders record i of data, of type t, for an Aside: the
// record Explained gives, or Format's.
func (t *Type) AsideRecord(data any, i int) (record, rule string) {
	if t.Explain != nil {
		return t.Explain(data, i)
	}
	return t.Format(data, i), ""
}

// TimeRule says why a windowed stage set a record aside, from what an
// Aside with HasTime holds.
func (a *Aside) TimeRule() string {
	fmtT := func(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z") }
	win := fmt.Sprintf("[%s, %s)", fmtT(a.WindowStart), fmtT(a.WindowEnd))
	switch a.Reason {
	case AsideLate:
		return fmt.Sprintf("event time %s behind the watermark %s, which had passed the end of its window %s; within the allowed lateness %s: added to a late pane",
			fmtT(a.EventTime), fmtT(a.Watermark), win, a.AllowedLateness)
	case AsideTooLate:
		return fmt.Sprintf("event time %s: the watermark %s had passed the end of its window %s plus the allowed lateness %s",
			fmtT(a.EventTime), fmtT(a.Watermark), win, a.AllowedLateness)
	case AsideClosed:
		return fmt.Sprintf("event time %s: the trigger of its window %s had finished (watermark %s, allowed lateness %s)",
			fmtT(a.EventTime), win, fmtT(a.Watermark), a.AllowedLateness)
	}
	return a.Reason.String()
}
