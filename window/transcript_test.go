package window_test

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/beamtranscripts"
	"github.com/sluice-data/sluice/window"
)

// This file runs Apache Beam's trigger transcripts
// (../shared/conformance/beam/trigger_transcripts.yaml beside the module
// root, described by the README there; read by internal/beamtranscripts)
// against the trigger driver, with the semantics of Beam's
// TriggerDriverTranscriptTest. One transcript unit is one second. The same
// transcripts run through whole pipelines in actors.

const unit = beamtranscripts.Unit

// runDriver executes the transcript as TriggerDriverTranscriptTest does,
// with each input action cut into bundles by rebundle. It returns the
// checker's failure ("Unmatched output ..." / "Unexpected output ..."), or
// nil. Mismatches of the informational state assertions go to notes.
func runDriver(tr *beamtranscripts.Transcript, s window.Strategy, rebundle func([]int64) [][]int64, notes *[]string) error {
	d, err := window.NewWindowing[int64](s, window.Collect[int64]())
	if err != nil {
		return err
	}
	var st window.KeyState[[]int64]
	var out window.Output[int64, []int64]
	wm, pt := window.MinTime, window.Time(0)
	var produced []beamtranscripts.Pane
	take := func() {
		for _, p := range out.Panes {
			produced = append(produced, beamtranscripts.PaneOf(p.Window, p.Value, p.Timestamp, p.Info))
		}
		out.Reset()
	}
	for _, a := range tr.Actions {
		if a.Kind != beamtranscripts.Expect && len(produced) > 0 {
			return fmt.Errorf("Unexpected output: %v before %s", produced, a.Kind)
		}
		switch a.Kind {
		case beamtranscripts.Input:
			for _, bundle := range rebundle(a.Values) {
				elems := make([]window.Element[int64], len(bundle))
				for i, v := range bundle {
					elems[i] = window.Element[int64]{Value: v, Time: window.Time(v) * unit}
				}
				d.ProcessElements(&st, elems, wm, pt, &out)
			}
		case beamtranscripts.Watermark:
			wm = window.Time(a.N) * unit
			d.AdvanceWatermark(&st, wm, &out)
		case beamtranscripts.Clock:
			pt = pt.Add(time.Duration(a.N) * time.Second)
			d.AdvanceProcessingTime(&st, pt, &out)
		case beamtranscripts.Expect:
			if produced, err = beamtranscripts.MatchPanes(produced, a.Expect); err != nil {
				return err
			}
		case beamtranscripts.State:
			*notes = append(*notes, checkState(&st, a.State)...)
		}
		take()
	}
	if len(produced) > 0 {
		return fmt.Errorf("Unexpected output: %v", produced)
	}
	return nil
}

// checkState compares the informational state assertions (which Beam's
// harness does not check) with the key's windows.
func checkState(st *window.KeyState[[]int64], want map[string][][2]int64) []string {
	have := map[[2]int64]window.WindowInfo{}
	for _, w := range st.Windows(nil) {
		have[[2]int64{beamtranscripts.Floor(w.Window.Start), beamtranscripts.Floor(w.Window.MaxTimestamp())}] = w
	}
	var notes []string
	for _, kind := range []string{"present", "absent", "tombstone"} {
		for _, b := range want[kind] {
			w, ok := have[b]
			var got string
			switch {
			case !ok:
				got = "absent"
			case w.Closed:
				got = "tombstone"
			default:
				got = "present"
			}
			if got != kind {
				notes = append(notes, fmt.Sprintf("state: window %v is %s, the transcript says %s", b, got, kind))
			}
		}
	}
	return notes
}

func TestBeamTriggerTranscripts(t *testing.T) {
	docs := beamtranscripts.Load(t)
	passed := 0
	for _, tr := range docs {
		ok := t.Run(tr.Name, func(t *testing.T) {
			s, err := tr.Strategy()
			if err != nil {
				t.Fatalf("window_fn %q trigger_fn %q: %v", tr.WindowFn, tr.TriggerFn, err)
			}
			variants := beamtranscripts.Rebundlings[:1]
			if beamtranscripts.OrderAgnostic(s) {
				variants = beamtranscripts.Rebundlings
			}
			for vi, v := range variants {
				r := rand.New(rand.NewPCG(uint64(vi), 0x5eed))
				var notes []string
				err := runDriver(tr, s, func(vs []int64) [][]int64 { return v.Bundles(vs, r) }, &notes)
				for _, n := range notes {
					t.Logf("%s: %s (informational: Beam does not check state)", v.Name, n)
				}
				switch {
				case tr.Error == "" && err != nil:
					t.Errorf("%s (%s, %s): %v", v.Name, s, tr.WindowFn, err)
				case tr.Error != "" && err == nil:
					t.Errorf("%s: ran clean, want a failure matching %q", v.Name, tr.Error)
				case tr.Error != "" && !regexp.MustCompile(tr.Error).MatchString(err.Error()):
					t.Errorf("%s: failed with %v, want a failure matching %q", v.Name, err, tr.Error)
				}
			}
		})
		if ok {
			passed++
		}
	}
	t.Logf("Beam trigger transcripts: %d of %d pass", passed, len(docs))
}
