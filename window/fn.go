package window

import (
	"fmt"
	"time"
)

// Fn assigns records to windows. FixedWindows, SlidingWindows, Sessions and
// GlobalWindows implement it; a user may implement it too and pass it to
// Into. Implementations must be pure and safe for concurrent use.
//
// An Fn may also implement MergingFn (windows merge, like sessions),
// OutputTimeFn (Beam's get_transformed_output_time, used by
// EarliestTransformed) and Validate() error (checked by Strategy.Validate).
type Fn interface {
	// Assign appends to dst the windows a record at event time t falls in,
	// and returns the extended slice.
	Assign(t Time, dst []Interval) []Interval
	String() string
}

// Merge says that the windows From become the window Into.
type Merge struct {
	From []Interval
	Into Interval
}

// MergingFn is an Fn whose windows merge, such as Sessions.
type MergingFn interface {
	Fn
	// Merge appends to dst how windows merge. windows is sorted by start
	// and then end, without duplicates; every Merge names at least two of
	// them, each window is in at most one Merge, and Into contains all of
	// its From. From may share memory with windows.
	Merge(windows []Interval, dst []Merge) []Merge
}

// OutputTimeFn is an Fn that moves the output time of its records: with
// the EarliestTransformed combiner a pane's timestamp is the earliest
// OutputTime of its records (Beam's get_transformed_output_time). An Fn
// without it leaves record times as they are.
type OutputTimeFn interface {
	Fn
	OutputTime(w Interval, t Time) Time
}

// floorMod returns a mod m in [0, m) for m > 0, without overflow.
func floorMod(a, m Time) Time {
	r := a % m
	if r < 0 {
		r += m
	}
	return r
}

// sinceStart returns how far t lies past the latest start s <= t with
// s ≡ offset (mod period), a value in [0, period).
func sinceStart(t Time, period, offset time.Duration) Time {
	p := Time(period)
	rem := floorMod(t, p) - floorMod(Time(offset), p)
	if rem < 0 {
		rem += p
	}
	return rem
}

// clampedSub returns t-d for d >= 0, clamped to MinTime.
func clampedSub(t, d Time) Time {
	if t < MinTime+d {
		return MinTime
	}
	return t - d
}

// FixedWindows cuts time into back-to-back windows of Size, aligned so that
// window starts are Offset past a multiple of Size (Beam's FixedWindows,
// Flink's tumbling windows).
type FixedWindows struct {
	Size, Offset time.Duration
}

// Assign implements Fn.
func (f FixedWindows) Assign(t Time, dst []Interval) []Interval {
	rem := sinceStart(t, f.Size, f.Offset)
	return append(dst, Interval{Start: clampedSub(t, rem), End: t.Add(time.Duration(Time(f.Size) - rem))})
}

func (f FixedWindows) String() string {
	if f.Offset != 0 {
		return fmt.Sprintf("fixed(%v, offset %v)", f.Size, f.Offset)
	}
	return fmt.Sprintf("fixed(%v)", f.Size)
}

func (f FixedWindows) validate() []error {
	var errs []error
	if f.Size <= 0 {
		errs = append(errs, fmt.Errorf("window: fixed windows of size %v: size must be positive", f.Size))
	} else if f.Offset < 0 || f.Offset >= f.Size {
		errs = append(errs, fmt.Errorf("window: fixed windows of size %v: offset %v must be in [0, size)", f.Size, f.Offset))
	}
	return errs
}

// maxWindowsPerRecord bounds Size/Period of sliding windows.
const maxWindowsPerRecord = 1 << 16

// SlidingWindows are windows of Size starting every Period, aligned so that
// starts are Offset past a multiple of Period; a record falls in about
// Size/Period of them (Beam's SlidingWindows, Flink's sliding windows).
type SlidingWindows struct {
	Size, Period, Offset time.Duration
}

// Assign implements Fn. Windows are appended in order of their start.
func (s SlidingWindows) Assign(t Time, dst []Interval) []Interval {
	// Windows start at t-rem, t-rem-period, ... while they still contain
	// t: rem + k*period < size.
	first := len(dst)
	for rem := sinceStart(t, s.Period, s.Offset); rem < Time(s.Size); rem += Time(s.Period) {
		dst = append(dst, Interval{Start: clampedSub(t, rem), End: t.Add(time.Duration(Time(s.Size) - rem))})
		if t < MinTime+rem || rem > MaxTime-Time(s.Period) {
			break
		}
	}
	for i, j := first, len(dst)-1; i < j; i, j = i+1, j-1 {
		dst[i], dst[j] = dst[j], dst[i]
	}
	return dst
}

func (s SlidingWindows) String() string {
	if s.Offset != 0 {
		return fmt.Sprintf("sliding(%v every %v, offset %v)", s.Size, s.Period, s.Offset)
	}
	return fmt.Sprintf("sliding(%v every %v)", s.Size, s.Period)
}

func (s SlidingWindows) validate() []error {
	var errs []error
	if s.Size <= 0 {
		errs = append(errs, fmt.Errorf("window: sliding windows of size %v: size must be positive", s.Size))
	}
	if s.Period <= 0 {
		errs = append(errs, fmt.Errorf("window: sliding windows every %v: period must be positive", s.Period))
	} else {
		if s.Offset < 0 || s.Offset >= s.Period {
			errs = append(errs, fmt.Errorf("window: sliding windows every %v: offset %v must be in [0, period)", s.Period, s.Offset))
		}
		if s.Size > 0 && s.Size/s.Period > maxWindowsPerRecord {
			errs = append(errs, fmt.Errorf("window: sliding windows of size %v every %v: each record would fall in more than %d windows", s.Size, s.Period, maxWindowsPerRecord))
		}
	}
	return errs
}

// Sessions puts each record in the window [t, t+Gap) and merges windows that
// overlap, so that a session ends after Gap without records (Beam's
// Sessions, Flink's session windows).
type Sessions struct {
	Gap time.Duration
}

// Assign implements Fn.
func (s Sessions) Assign(t Time, dst []Interval) []Interval {
	return append(dst, Interval{Start: t, End: t.Add(s.Gap)})
}

// Merge implements MergingFn: runs of overlapping windows become one.
func (s Sessions) Merge(windows []Interval, dst []Merge) []Merge {
	for i := 0; i < len(windows); {
		end := windows[i].End
		j := i + 1
		for j < len(windows) && windows[j].Start < end {
			end = max(end, windows[j].End)
			j++
		}
		if j-i > 1 {
			dst = append(dst, Merge{From: windows[i:j:j], Into: Interval{Start: windows[i].Start, End: end}})
		}
		i = j
	}
	return dst
}

func (s Sessions) String() string { return fmt.Sprintf("sessions(gap %v)", s.Gap) }

func (s Sessions) validate() []error {
	if s.Gap <= 0 {
		return []error{fmt.Errorf("window: sessions with gap %v: gap must be positive", s.Gap)}
	}
	return nil
}

// GlobalWindows puts every record in the one global window.
type GlobalWindows struct{}

// Assign implements Fn.
func (GlobalWindows) Assign(_ Time, dst []Interval) []Interval {
	return append(dst, GlobalInterval())
}

func (GlobalWindows) String() string { return "global" }
