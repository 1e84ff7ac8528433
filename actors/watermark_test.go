package actors_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// mark is a record of TestPunctuatedWatermarks: Mark says the stream is
// complete up to At.
type mark struct {
	At   int64 // seconds
	Mark bool
}

// punctuated is a watermark strategy per record: the watermark moves to a
// marking record's time and nowhere else.
type punctuated struct{ wm time.Time }

func (p *punctuated) Observe(x mark, t time.Time) {
	if x.Mark && t.After(p.wm) {
		p.wm = t
	}
}
func (p *punctuated) Watermark() time.Time { return p.wm }

// TestPunctuatedWatermarks: a user's watermark strategy moves the
// watermark only at marking records: a record behind a mark is late for
// a window the mark has closed (dropped and counted), though the default
// strategy with a long delay would have kept it; on actors and the
// simulator, one record a batch so that the watermark moves between them.
func TestPunctuatedWatermarks(t *testing.T) {
	recs := []mark{{1, false}, {25, false}, {3, false}, {12, false}, {20, true}, {5, false}, {26, false}}
	for _, exec := range []actors.Executor{actors.Actors(), actors.Sim{}} {
		cfg := actors.DefaultConfig()
		cfg.Executor, cfg.BatchRecords = exec, 1
		p := stages.NewPipeline("punctuated")
		in := stages.EventTimeWith(stages.FromSlice(p, recs, stages.Parallelism(1)), func(m mark) time.Time { return time.Unix(m.At, 0) },
			func() stages.WatermarkGenerator[mark] { return &punctuated{} })
		c := stages.Collect(stages.WindowAggregate(stages.KeyBy(in, func(mark) string { return "k" }), window.Fixed(10*time.Second),
			stages.Sum(func(m mark) int64 { return m.At }), stages.Name("sums")))
		res, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: &cfg})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, w := range c.Values() {
			got = append(got, w.Value)
		}
		slices.Sort(got)
		// The mark at 20 closes [0,10) (1+3) and [10,20) (12): 5, after
		// it, is late; [20,30): 25+20+26. The greatest time seen (25 at
		// the second record) would have made 3, 12 and 5 late.
		if want := []int64{4, 12, 71}; !slices.Equal(got, want) {
			t.Errorf("%s: window sums %v, want %v", exec.Name(), got, want)
		}
		found := false
		for _, s := range res.Stages {
			if s.Name == `window "sums"` {
				found = true
				if s.DroppedLate != 1 {
					t.Errorf("%s: %d dropped late, want 1", exec.Name(), s.DroppedLate)
				}
			}
		}
		if !found {
			t.Errorf("no stage sums in %+v", res.Stages)
		}
	}
}
