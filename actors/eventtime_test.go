package actors_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

type click struct {
	User int64
	Ms   int64 // event time, unix ms
}

// TestFixedWindows counts clicks per user in one-minute event-time windows
// over out-of-order input and compares the panes with a batch computation;
// records behind the watermark by more than the allowed lateness are
// counted as dropped and routed to the late side output.
func TestFixedWindows(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var clicks []click
	for i := range 50_000 {
		// Mostly in order, up to 5 s early; one in 500 an hour late.
		ms := int64(i)*20 - r.Int64N(5000)
		if i%500 == 250 {
			ms -= 3_600_000
		}
		clicks = append(clicks, click{User: r.Int64N(50), Ms: ms})
	}
	for _, par := range []int{1, 3} {
		t.Run(fmt.Sprint("par", par), func(t *testing.T) {
			p := stages.NewPipeline("windows")
			src := stages.EventTime(stages.FromSlice(p, clicks), func(c click) time.Time { return time.UnixMilli(c.Ms) },
				stages.MaxDelay(5*time.Second))
			counts, late := stages.WindowAggregateLate(stages.KeyBy(src, func(c click) int64 { return c.User }),
				window.Fixed(time.Minute), stages.Count[click]())
			got := stages.Collect(counts)
			lateOut := stages.Collect(late)
			res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: par})
			if err != nil {
				t.Fatal(err)
			}
			lateSet := map[click]int{}
			for _, l := range lateOut.Values() {
				lateSet[l.Value]++
				if l.Closed {
					t.Errorf("late record %+v dropped for a closed window; default trigger windows close only by lateness", l)
				}
			}
			// The batch answer over the records that were not dropped.
			want := map[string]int64{}
			for _, c := range clicks {
				if lateSet[c] > 0 {
					lateSet[c]--
					continue
				}
				start := c.Ms - ((c.Ms%60_000)+60_000)%60_000
				want[fmt.Sprint(c.User, "@", start)]++
			}
			have := map[string]int64{}
			for _, w := range got.Values() {
				k := fmt.Sprint(w.Key, "@", int64(w.Window.Start)/1e6)
				if w.Pane.Timing != window.OnTime || !w.Pane.IsLast || w.Pane.Index != 0 {
					t.Errorf("pane %+v: want one on-time, final pane per window", w.Pane)
				}
				if int64(w.Timestamp) != int64(w.Window.End)-1 {
					t.Errorf("pane timestamp %v, want the end of window %v", w.Timestamp, w.Window)
				}
				have[k] += w.Value
			}
			if len(have) != len(want) {
				t.Fatalf("%d windows, want %d", len(have), len(want))
			}
			for k, v := range want {
				if have[k] != v {
					t.Fatalf("window %s: count %d, want %d", k, have[k], v)
				}
			}
			var dropped int64
			for _, s := range res.Stages {
				if len(s.Side) > 0 && s.Name[:6] == "window" {
					dropped = s.Side[0]
				}
			}
			if dropped != int64(len(lateOut.Values())) {
				t.Errorf("summary counts %d late records, side output has %d", dropped, len(lateOut.Values()))
			}
			// With one source instance the watermark follows the input order
			// exactly, so every record an hour late is dropped; with several,
			// how far the least watermark has come depends on timing.
			// The first batch (1024 records) is processed before any watermark.
			if wantLate := int64(len(clicks)/500 - 2); par == 1 && dropped != wantLate {
				t.Errorf("%d records dropped as late, want the %d an hour late after the first batch", dropped, wantLate)
			}
		})
	}
}

// TestWindowsNeedEventTime checks that windowing records without event
// times is refused when the graph is built, naming the line.
func TestWindowsNeedEventTime(t *testing.T) {
	p := stages.NewPipeline("no-time")
	stages.Collect(stages.WindowAggregate(stages.KeyBy(stages.Sequence(p, 0, 10), func(x int64) int64 { return x }),
		window.Fixed(time.Minute), stages.Count[int64]()))
	err := p.Err()
	if err == nil || !strings.Contains(err.Error(), "eventtime_test.go") || !strings.Contains(err.Error(), "no event time") {
		t.Fatalf("err = %v, want one naming the line and the missing event time", err)
	}
}
