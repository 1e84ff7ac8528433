package actors_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/internal/beamtranscripts"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// TestBeamTranscriptPipelinesPerBundle runs Beam's transcripts that
// TestBeamTranscriptPipelines cannot — those whose trigger is not the
// default one, or that discard, whose panes depend on the bundling —
// through whole pipelines, as Beam's harness runs them: one key, each
// input action one bundle in its order, from a TestStream on a manual
// clock (clock actions move processing time). A trigger is asked once per
// key and bundle, so the panes, in the order they were emitted, are cut
// into the transcript's expect actions in turn and matched as Beam's
// checker does. What comes after the last expect (Beam's harness ignores
// it) is the end of input's flush: it must be what the trigger driver,
// checked against every transcript in package window, emits when the
// watermark then goes to the end of time. Error transcripts must fail.
func TestBeamTranscriptPipelinesPerBundle(t *testing.T) {
	docs := beamtranscripts.Load(t)
	eligible, passed, rejects, rejected := 0, 0, 0, 0
	for _, tr := range docs {
		s, err := tr.Strategy()
		if err != nil {
			t.Errorf("%s: %v", tr.Name, err)
			continue
		}
		if beamtranscripts.OrderAgnostic(s) {
			continue
		}
		if tr.Error == "" {
			eligible++
		} else {
			rejects++
		}
		ok := t.Run(tr.Name, func(t *testing.T) {
			for _, run := range transcriptRuns {
				err := checkPerBundle(t, tr, s, run.par, run.exec, run.seed)
				switch {
				case tr.Error == "" && err != nil:
					t.Errorf("%s (%s): %v", run.name, s, err)
				case tr.Error != "" && err == nil:
					t.Errorf("%s: ran clean, want a failure matching %q", run.name, tr.Error)
				case tr.Error != "" && !regexp.MustCompile(tr.Error).MatchString(err.Error()):
					t.Errorf("%s: failed with %v, want a failure matching %q", run.name, err, tr.Error)
				}
			}
		})
		switch {
		case ok && tr.Error == "":
			passed++
		case ok:
			rejected++
		}
	}
	t.Logf("Beam trigger transcripts per bundle through pipelines: %d of %d eligible pass; %d of %d error transcripts rejected",
		passed, eligible, rejected, rejects)
	if eligible == 0 {
		t.Fatal("no transcript with another trigger or mode: the file has changed")
	}
}

// checkPerBundle runs tr through a pipeline and checks its panes.
func checkPerBundle(t *testing.T, tr *beamtranscripts.Transcript, s window.Strategy, par int, exec actors.Executor, seed uint64) error {
	t.Helper()
	clk := clock.NewManual(time.Unix(1_000_000, 0))
	cfg := actors.DefaultConfig()
	cfg.Clock, cfg.Executor, cfg.Seed = clk, exec, seed
	ts := stages.NewTestStream[transcriptRecord](clk)
	for _, a := range tr.Actions {
		switch a.Kind {
		case beamtranscripts.Input:
			recs := make([]transcriptRecord, len(a.Values))
			times := make([]time.Time, len(a.Values))
			for i, v := range a.Values {
				recs[i], times[i] = transcriptRecord{Key: "k", Value: v}, time.Unix(v, 0)
			}
			ts.AddTimestamped(recs, times)
		case beamtranscripts.Watermark:
			ts.AdvanceWatermark(time.Unix(a.N, 0))
		case beamtranscripts.Clock:
			ts.AdvanceProcessingTime(time.Duration(a.N) * time.Second)
		}
	}
	p := stages.NewPipeline("transcript-" + tr.Name)
	keyed := stages.KeyBy(ts.Read(p), func(r transcriptRecord) string { return r.Key })
	c := stages.Collect(stages.WindowAggregate(keyed, s, groupValues()))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: par, Runtime: &cfg}); err != nil {
		t.Fatal(err)
	}
	var panes []beamtranscripts.Pane
	for _, w := range c.Values() {
		panes = append(panes, beamtranscripts.PaneOf(w.Window, w.Value, w.Timestamp, w.Pane))
	}
	panes, err := cutIntoExpects(tr, panes)
	if err != nil {
		return err
	}
	flush, err := driverFlush(tr, s)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(panes))
	for i, p := range panes {
		got[i] = fmt.Sprint(p)
	}
	if !slices.Equal(got, flush) {
		return fmt.Errorf("Unexpected output after the last expect: %v, the driver's flush %v", got, flush)
	}
	return nil
}

// driverFlush returns what the trigger driver emits for tr after its last
// expect action, the watermark going to the end of time at the end.
func driverFlush(tr *beamtranscripts.Transcript, s window.Strategy) ([]string, error) {
	d, err := window.NewWindowing[int64](s, window.Collect[int64]())
	if err != nil {
		return nil, err
	}
	var st window.KeyState[[]int64]
	var out window.Output[int64, []int64]
	wm, pt := window.MinTime, window.Time(0)
	var after []string
	for _, a := range tr.Actions {
		switch a.Kind {
		case beamtranscripts.Input:
			elems := make([]window.Element[int64], len(a.Values))
			for i, v := range a.Values {
				elems[i] = window.Element[int64]{Value: v, Time: window.Time(v) * beamtranscripts.Unit}
			}
			d.ProcessElements(&st, elems, wm, pt, &out)
		case beamtranscripts.Watermark:
			wm = window.Time(a.N) * beamtranscripts.Unit
			d.AdvanceWatermark(&st, wm, &out)
		case beamtranscripts.Clock:
			pt = pt.Add(time.Duration(a.N) * time.Second)
			d.AdvanceProcessingTime(&st, pt, &out)
		case beamtranscripts.Expect:
			out.Reset()
			after = nil
			continue
		}
		for _, p := range out.Panes {
			after = append(after, fmt.Sprint(beamtranscripts.PaneOf(p.Window, p.Value, p.Timestamp, p.Info)))
		}
		out.Reset()
	}
	d.AdvanceWatermark(&st, window.MaxTime, &out)
	for _, p := range out.Panes {
		after = append(after, fmt.Sprint(beamtranscripts.PaneOf(p.Window, p.Value, p.Timestamp, p.Info)))
	}
	return after, nil
}
