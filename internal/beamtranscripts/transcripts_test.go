package beamtranscripts

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/window"
)

func TestPyYAMLFlowColons(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"{a: 1, values:[1, 2]}", "{a: 1, values: [1, 2]}"},
		{"key: value # a:b {c:d}", "key: value # a:b {c:d}"},
		{"x: 'a:[b'", "x: 'a:[b'"},
		{"- {window: [1, 14], values:[1]}", "- {window: [1, 14], values: [1]}"},
	} {
		if got := string(pyYAMLFlowColons([]byte(c.in))); got != c.want {
			t.Errorf("pyYAMLFlowColons(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

const sample = `
name: a
window_fn: FixedWindows(10)
trigger_fn: AfterWatermark(early=AfterCount(2), late=AfterCount(1))
allowed_lateness: 20
accumulation_mode: discarding
timestamp_combiner: output_at_earliest
transcript:
  - input: [1, 2]
  - expect:
      - {window: [0, 9], values:[1, 2], early: true}
  - watermark: 30
  - state: {present: [[0, 9]]}
---
name: a
error: Unmatched output
transcript:
  - input: [3]
`

func TestParse(t *testing.T) {
	docs, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Name != "a" || docs[1].Name != "a_1" {
		t.Fatalf("got %d documents %v, want a and a_1", len(docs), docs)
	}
	a := docs[0]
	s, err := a.Strategy()
	if err != nil {
		t.Fatal(err)
	}
	spec := s.Spec()
	if spec.Fn != (window.FixedWindows{Size: 10 * time.Second}) || spec.Mode != window.Discarding ||
		spec.AllowedLateness != 20*time.Second || spec.TimestampCombiner != window.Earliest || OrderAgnostic(s) {
		t.Errorf("strategy %v", s)
	}
	if got := a.FinalWatermark(); got != 30*Unit {
		t.Errorf("final watermark %v, want 30 s", got)
	}
	if len(a.Actions) != 4 || a.Actions[2].N != 30 || a.Actions[3].State["present"][0] != [2]int64{0, 9} {
		t.Errorf("actions %+v", a.Actions)
	}
	pane := PaneOf(window.Interval{Start: 0, End: 10 * Unit}, []int64{2, 1}, 9*Unit, window.PaneInfo{Timing: window.Early})
	if rest, err := MatchPanes([]Pane{pane}, a.Actions[1].Expect); err != nil || len(rest) != 0 {
		t.Errorf("MatchPanes(%v, %v) = %v, %v", pane, a.Actions[1].Expect, rest, err)
	}
	if _, err := MatchPanes(nil, a.Actions[1].Expect); err == nil || !strings.HasPrefix(err.Error(), "Unmatched output") {
		t.Errorf("MatchPanes with nothing produced: %v, want Unmatched output", err)
	}
	b := docs[1]
	if s, err := b.Strategy(); err != nil || !OrderAgnostic(s) || b.Error != "Unmatched output" {
		t.Errorf("defaults: %v, %v, error %q", s, err, b.Error)
	}
	for _, bad := range []string{"FixedWindows(", "FixedWindows(size=1, size=2)", "Nope(1)", "FixedWindows(1, 2, 3)"} {
		tr := Transcript{WindowFn: bad, TriggerFn: "Default", AccumulationMode: "accumulating", TimestampCombiner: "OUTPUT_AT_EOW"}
		if _, err := tr.Strategy(); err == nil {
			t.Errorf("window_fn %q: no error", bad)
		}
	}
}
