package window

import (
	"fmt"
	"slices"
	"testing"
)

// TestSamples: the driver counts the records it adds behind the
// watermark (Late) beside those it drops, and keeps the first Samples of
// each kind with the watermark they came at.
func TestSamples(t *testing.T) {
	r := newRun(t, Fixed(10).Trigger(AfterWatermark()).AllowedLateness(10))
	r.out.Samples = 2
	r.input(1, 2).watermark(12) // [0,10) fires once and closes
	r.input(3, 4, 5)            // closed
	r.watermark(25).input(6, 7) // expired: [0,10) ended at 10, collected at 20
	r2 := newRun(t, Fixed(10).AllowedLateness(10))
	r2.out.Samples = 2
	r2.input(1).watermark(12).input(3, 4, 5) // late, into late panes
	render := func(out *Output[int64, []int64]) []string {
		var got []string
		for _, s := range out.Sampled {
			got = append(got, fmt.Sprintf("%d %d@%d [%d,%d)", s.Kind, s.Element.Value, s.Watermark, s.Window.Start, s.Window.End))
		}
		return got
	}
	if got, want := render(&r.out), []string{"1 3@12 [0,10)", "1 4@12 [0,10)", "0 6@25 [0,10)", "0 7@25 [0,10)"}; !slices.Equal(got, want) {
		t.Errorf("samples %q, want %q", got, want)
	}
	if r.out.DroppedClosed != 3 || r.out.DroppedLate != 2 || r.out.Late != 0 {
		t.Errorf("closed %d, too late %d, late %d", r.out.DroppedClosed, r.out.DroppedLate, r.out.Late)
	}
	if got, want := render(&r2.out), []string{"2 3@12 [0,10)", "2 4@12 [0,10)"}; !slices.Equal(got, want) || r2.out.Late != 3 {
		t.Errorf("samples %q (late %d), want %q and 3", got, r2.out.Late, want)
	}
}
