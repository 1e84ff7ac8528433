package sluice_test

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// A processing-time trigger tested without sleeping: the job runs on a
// manual clock, and the test stream's script moves it. A one-minute window
// fires early every 10 s of processing time that brought new records, then
// once on time when the watermark passes its end.
func ExampleOptions_clock() {
	clk := clock.NewManual(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	t0 := time.Unix(0, 0)
	ts := stages.NewTestStream[int64](clk).
		AddElements(t0.Add(1*time.Second), 1, 2).
		AdvanceProcessingTime(11*time.Second). // an early pane: 3
		AddElements(t0.Add(5*time.Second), 3).
		AdvanceProcessingTime(11 * time.Second). // an early pane: 6
		AdvanceProcessingTime(11 * time.Second). // nothing new: no pane
		AdvanceWatermarkToInfinity()             // the on-time pane

	p := stages.NewPipeline("early-firings")
	w := window.Fixed(time.Minute).
		Trigger(window.AfterWatermark().Early(window.AfterProcessingTime(10 * time.Second))).
		Accumulating()
	sums := stages.WindowAggregate(stages.KeyBy(ts.Read(p), func(int64) string { return "all" }), w,
		stages.Sum(func(x int64) int64 { return x }))
	out := stages.Collect(stages.Map(sums, func(p stages.Windowed[string, int64]) string {
		return fmt.Sprintf("pane %d %s: sum %d", p.Pane.Index, p.Pane.Timing, p.Value)
	}))

	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 1, Clock: clk}); err != nil {
		fmt.Println(err)
		return
	}
	panes := out.Values()
	slices.Sort(panes)
	for _, s := range panes {
		fmt.Println(s)
	}
	// Output:
	// pane 0 early: sum 3
	// pane 1 early: sum 6
	// pane 2 on-time: sum 6
}
