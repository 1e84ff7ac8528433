package actors_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// TestEarlyFirings plays a test stream through a whole pipeline on a manual
// clock: a one-minute window with early firings every 10 s of processing
// time, accumulating, gives an early pane per 10 s with new data and then
// one on-time pane when the watermark passes the end of the window.
func TestEarlyFirings(t *testing.T) {
	clk := clock.NewManual(time.Unix(10_000, 0))
	cfg := actors.DefaultConfig()
	cfg.Clock = clk
	t0 := time.Unix(0, 0)
	ts := stages.NewTestStream[int64](clk).
		AddElements(t0.Add(1*time.Second), 1, 2).
		AdvanceProcessingTime(11*time.Second).
		AddElements(t0.Add(5*time.Second), 3).
		AdvanceProcessingTime(11*time.Second).
		AdvanceProcessingTime(11*time.Second). // nothing new: no pane
		AdvanceWatermark(t0.Add(time.Minute)).
		AddElements(t0.Add(70*time.Second), 4).
		AdvanceWatermarkToInfinity()

	p := stages.NewPipeline("early")
	w := window.Fixed(time.Minute).
		Trigger(window.AfterWatermark().Early(window.AfterProcessingTime(10 * time.Second))).
		Accumulating()
	sums := stages.WindowAggregate(stages.KeyBy(ts.Read(p), func(int64) string { return "k" }), w,
		stages.Sum(func(x int64) int64 { return x }))
	out := stages.Collect(stages.Map(sums, func(p stages.Windowed[string, int64]) string {
		return fmt.Sprintf("[%ds,%ds) %s #%d sum=%d last=%v", int64(p.Window.Start)/1e9, int64(p.Window.End)/1e9,
			p.Pane.Timing, p.Pane.Index, p.Value, p.Pane.IsLast)
	}))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 1, Runtime: &cfg}); err != nil {
		t.Fatal(err)
	}
	got := out.Values()
	slices.Sort(got)
	want := []string{
		"[0s,60s) early #0 sum=3 last=false",
		"[0s,60s) early #1 sum=6 last=false",
		"[0s,60s) on-time #2 sum=6 last=true",
		"[60s,120s) on-time #0 sum=4 last=true",
	}
	if !slices.Equal(got, want) {
		t.Errorf("panes:\n got %q\nwant %q", got, want)
	}
}
