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
	"github.com/sluice-data/sluice/internal/beamtranscripts"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// bundleStep is one step of a bundle test's script: a bundle of records
// (value = event time in seconds), or a watermark move (wm, seconds).
type bundleStep struct {
	bundle []transcriptRecord
	wm     int64
	isWM   bool
}

func bundleOf(key string, secs ...int64) bundleStep {
	st := bundleStep{}
	for _, s := range secs {
		st.bundle = append(st.bundle, transcriptRecord{Key: key, Value: s})
	}
	return st
}

func wmAt(secs int64) bundleStep { return bundleStep{wm: secs, isWM: true} }

// paneString describes a pane for comparison: window, values (sorted),
// timestamp and pane info.
func paneString(w window.Interval, values []int64, ts window.Time, info window.PaneInfo) string {
	return fmt.Sprint(beamtranscripts.PaneOf(w, values, ts, info))
}

// bundlePanes runs the script through a pipeline on executor exec and
// returns each key's panes in the order they were emitted.
func bundlePanes(t *testing.T, s window.Strategy, script []bundleStep, par int, exec actors.Executor) map[string][]string {
	t.Helper()
	clk := clock.NewManual(time.Unix(1_000_000, 0))
	cfg := actors.DefaultConfig()
	cfg.Clock, cfg.Executor, cfg.Seed = clk, exec, 7
	ts := stages.NewTestStream[transcriptRecord](clk)
	for _, st := range script {
		if st.isWM {
			ts.AdvanceWatermark(time.Unix(st.wm, 0))
			continue
		}
		times := make([]time.Time, len(st.bundle))
		for i, r := range st.bundle {
			times[i] = time.Unix(r.Value, 0)
		}
		ts.AddTimestamped(st.bundle, times)
	}
	p := stages.NewPipeline("bundles")
	keyed := stages.KeyBy(ts.Read(p), func(r transcriptRecord) string { return r.Key })
	c := stages.Collect(stages.WindowAggregate(keyed, s, groupValues()))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: par, Runtime: &cfg}); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, w := range c.Values() {
		out[w.Key] = append(out[w.Key], paneString(w.Window, w.Value, w.Timestamp, w.Pane))
	}
	return out
}

// driverPanes runs the script through the trigger driver (checked against
// Beam's transcripts in package window), one ProcessElements per key and
// bundle, and the end of input as a watermark at the end of time.
func driverPanes(t *testing.T, s window.Strategy, script []bundleStep) map[string][]string {
	t.Helper()
	d, err := window.NewWindowing[int64](s, window.Collect[int64]())
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]*window.KeyState[[]int64]{}
	var keys []string
	var out window.Output[int64, []int64]
	got := map[string][]string{}
	take := func(k string) {
		for _, p := range out.Panes {
			got[k] = append(got[k], paneString(p.Window, p.Value, p.Timestamp, p.Info))
		}
		out.Reset()
	}
	wm := window.MinTime
	for _, st := range script {
		if st.isWM {
			wm = window.Time(st.wm) * beamtranscripts.Unit
			for _, k := range keys {
				d.AdvanceWatermark(states[k], wm, &out)
				take(k)
			}
			continue
		}
		byKey := map[string][]window.Element[int64]{}
		var order []string
		for _, r := range st.bundle {
			if _, ok := byKey[r.Key]; !ok {
				order = append(order, r.Key)
			}
			byKey[r.Key] = append(byKey[r.Key], window.Element[int64]{Value: r.Value, Time: window.Time(r.Value) * beamtranscripts.Unit})
		}
		for _, k := range order {
			if states[k] == nil {
				states[k] = &window.KeyState[[]int64]{}
				keys = append(keys, k)
			}
			d.ProcessElements(states[k], byKey[k], wm, 0, &out)
			take(k)
		}
	}
	for _, k := range keys {
		d.AdvanceWatermark(states[k], window.MaxTime, &out)
		take(k)
	}
	return got
}

// TestBundlesAskTriggersOnce: a trigger is asked once per key and bundle,
// as Beam's runners ask it, through whole pipelines: AfterCount(2) over
// one bundle [1, 2, 3] fires one pane of all three (asked after each
// record it would fire {1, 2} and drop 3). Each strategy's panes, key by
// key and in order, equal the trigger driver's over the same bundles, on
// actors at parallelism 1 and 2 and on the simulator.
func TestBundlesAskTriggersOnce(t *testing.T) {
	fixed := window.Fixed(10 * time.Second)
	cases := []struct {
		name   string
		s      window.Strategy
		script []bundleStep
	}{
		{"after-count-2", fixed.Trigger(window.AfterCount(2)),
			[]bundleStep{bundleOf("k", 1, 2, 3), bundleOf("k", 4), wmAt(20)}},
		{"repeatedly-after-count-2-discarding", fixed.Trigger(window.Repeatedly(window.AfterCount(2))).Discarding(),
			[]bundleStep{bundleOf("k", 1, 2, 3), bundleOf("k", 4), bundleOf("k", 5, 6, 7, 8, 9), wmAt(5), bundleOf("k", 11), wmAt(30)}},
		{"two-keys-one-bundle", fixed.Trigger(window.Repeatedly(window.AfterCount(2))).Accumulating(),
			[]bundleStep{{bundle: []transcriptRecord{{"a", 1}, {"b", 2}, {"a", 3}, {"b", 4}, {"a", 5}}}, bundleOf("b", 6), wmAt(30)}},
		{"early-and-late", fixed.Trigger(window.AfterWatermark().Early(window.AfterCount(2)).Late(window.AfterCount(1))).
			AllowedLateness(time.Minute).Accumulating(),
			[]bundleStep{bundleOf("k", 1, 2, 3), bundleOf("k", 4), wmAt(15), bundleOf("k", 5, 6), bundleOf("k", 7), wmAt(100)}},
		{"always", fixed.Trigger(window.Always()).Discarding(),
			[]bundleStep{bundleOf("k", 1, 2), bundleOf("k", 3), wmAt(12), bundleOf("k", 14, 15), wmAt(30)}},
		{"sessions", window.Session(5 * time.Second).Trigger(window.Repeatedly(window.AfterCount(3))).Accumulating(),
			[]bundleStep{bundleOf("k", 1, 2), bundleOf("k", 20, 4, 22), bundleOf("k", 12, 8), wmAt(100)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := driverPanes(t, tc.s, tc.script)
			for _, run := range transcriptRuns {
				if got := bundlePanes(t, tc.s, tc.script, run.par, run.exec); !equalPanes(got, want) {
					t.Errorf("%s:\n got %v\nwant %v", run.name, got, want)
				}
			}
		})
	}
	// The case Beam's runners and a per-record trigger tell apart.
	want := paneString(window.Interval{Start: 0, End: window.Time(10 * time.Second)}, []int64{1, 2, 3}, window.Time(10*time.Second-1),
		window.PaneInfo{Timing: window.Early, Index: 0, NonSpeculativeIndex: -1, IsFirst: true, IsLast: true})
	if got := bundlePanes(t, cases[0].s, cases[0].script, 1, actors.Actors())["k"]; len(got) != 1 || got[0] != want {
		t.Errorf("AfterCount(2) over the bundle [1, 2, 3]: panes %q, want only %q", got, want)
	}
}

func equalPanes(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
