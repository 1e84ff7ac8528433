package actors_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/internal/beamtranscripts"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// TestBeamTranscriptPipelines runs Beam's order-agnostic trigger transcripts
// (default trigger, accumulating mode) through whole pipelines, as Beam's
// TestStreamTranscriptTest does: each input action is replayed under six
// keys, each with its own order and bundling (beamtranscripts.Rebundlings),
// from one TestStream on a manual clock; watermark actions become
// AdvanceWatermark steps (one transcript unit is one second of event time).
// Two aggregations read the stream, as Beam's GroupByKey and
// CombinePerKey(concat): a window aggregate whose accumulator is a slice of
// the values (copied on every merge, so that no pane shares memory with a
// later one) and one whose accumulator is an immutable string. Every key of
// both must give the transcript's panes.
//
// The end of input. The script ends after the transcript's last action and
// then the job's input ends, which moves the watermark to the end of time
// and flushes every window still open (Beam's TestStream harness also ends
// with advance_watermark_to_infinity, and its checker ignores what comes
// after its last expect). The flush may emit panes the transcript does not
// list. They are told apart soundly: under the default trigger, which never
// finishes, a pane is final only when the watermark reaches its window's
// garbage-collection time, end + allowed lateness. So a final pane whose
// window's end + allowed lateness is after the script's last watermark can
// only come from the flush; no other pane can. Such panes are set aside,
// after checking that they come after every other pane of their key (the
// runtime keeps a key's panes in order) and that a window has at most one.
// (What this cannot catch: a spurious final pane of a still-open window
// that comes last and is its window's only final pane.) No eligible
// transcript of Beam's file leaves a window with pending data open at its
// end, so for them every pane is checked; TestTranscriptPipelineEndOfInput
// exercises the setting aside.
// The other panes of a key, in the order they were emitted, are cut into
// the transcript's expect actions in turn, each taking as many panes as it
// lists and matching them as Beam's harness does (partial maps, values
// sorted); panes left over are unexpected. The error transcripts with the
// default trigger, which test the checker, must be rejected on every key.
func TestBeamTranscriptPipelines(t *testing.T) {
	docs := beamtranscripts.Load(t)
	eligible, passed, rejects, rejected := 0, 0, 0, 0
	for _, tr := range docs {
		s, err := tr.Strategy()
		if err != nil {
			t.Errorf("%s: window_fn %q trigger_fn %q: %v", tr.Name, tr.WindowFn, tr.TriggerFn, err)
			continue
		}
		if !beamtranscripts.OrderAgnostic(s) {
			continue
		}
		if tr.Error == "" {
			eligible++
		} else {
			rejects++
		}
		ok := t.Run(tr.Name, func(t *testing.T) {
			for _, run := range transcriptRuns {
				t.Run(run.name, func(t *testing.T) {
					failures, _ := runTranscriptPipeline(t, tr, s, run.par, run.exec, run.seed)
					if tr.Error == "" {
						for _, f := range failures {
							t.Error(f)
						}
						return
					}
					// An error transcript must fail on every key of both
					// aggregations, with the message it names.
					re := regexp.MustCompile(tr.Error)
					want := 2 * len(beamtranscripts.Rebundlings)
					if len(failures) != want {
						t.Errorf("%d of %d key checks failed, want all to fail matching %q: %q", len(failures), want, tr.Error, failures)
					}
					for _, f := range failures {
						if !re.MatchString(f) {
							t.Errorf("failed with %q, want a failure matching %q", f, tr.Error)
						}
					}
				})
			}
		})
		switch {
		case ok && tr.Error == "":
			passed++
		case ok:
			rejected++
		}
	}
	t.Logf("Beam trigger transcripts through pipelines: %d of %d eligible (default trigger, accumulating) pass; %d of %d error transcripts rejected",
		passed, eligible, rejected, rejects)
}

// transcriptRecord is an input of a transcript under one of the six keys;
// its value is its timestamp in units.
type transcriptRecord struct {
	Key   string
	Value int64
}

const reshuffleSeed = 0x5eed

// rebundledKey names the key of a rebundling, as Beam does.
func rebundledKey(r beamtranscripts.Rebundling) string {
	if r.Name == "reshuffled" {
		return fmt.Sprintf("reshuffled(%d)", reshuffleSeed)
	}
	return r.Name
}

// transcriptStream scripts the transcript's actions as a test stream, every
// input action as the six keys' bundles in Beam's order: the original
// bundle, then the reversed one, the shuffled one, the one-element bundles,
// the reversed one-element bundles and the two-element bundles.
func transcriptStream(tr *beamtranscripts.Transcript, clk *clock.Manual) *stages.TestStream[transcriptRecord] {
	ts := stages.NewTestStream[transcriptRecord](clk)
	for _, a := range tr.Actions {
		switch a.Kind {
		case beamtranscripts.Input:
			for _, rb := range beamtranscripts.Rebundlings {
				// As Beam: a generator of the same seed for each action.
				r := rand.New(rand.NewPCG(reshuffleSeed, 0))
				key := rebundledKey(rb)
				for _, bundle := range rb.Bundles(a.Values, r) {
					recs := make([]transcriptRecord, len(bundle))
					times := make([]time.Time, len(bundle))
					for i, v := range bundle {
						recs[i] = transcriptRecord{Key: key, Value: v}
						times[i] = time.Unix(v, 0)
					}
					ts.AddTimestamped(recs, times)
				}
			}
		case beamtranscripts.Watermark:
			ts.AdvanceWatermark(time.Unix(a.N, 0))
		case beamtranscripts.Clock:
			ts.AdvanceProcessingTime(time.Duration(a.N) * time.Second)
		}
	}
	return ts
}

// groupValues gathers the values of a window as GroupByKey does. Merge
// copies: an accumulating pane hands out its accumulator, which must not
// change when the window goes on.
func groupValues() stages.Combiner[transcriptRecord, []int64, []int64] {
	return stages.Combine("group",
		func(r transcriptRecord) []int64 { return []int64{r.Value} },
		func(a, b []int64) []int64 { return slices.Concat(a, b) },
		slices.Clone[[]int64])
}

// concatValues is Beam's _ConcatCombineFn with an immutable accumulator:
// the values as a comma-separated string.
func concatValues() stages.Combiner[transcriptRecord, string, []int64] {
	return stages.Combine("concat",
		func(r transcriptRecord) string { return strconv.FormatInt(r.Value, 10) },
		func(a, b string) string {
			if a == "" || b == "" {
				return a + b
			}
			return a + "," + b
		},
		func(acc string) []int64 {
			var out []int64
			for f := range strings.SplitSeq(acc, ",") {
				if f == "" {
					continue
				}
				n, err := strconv.ParseInt(f, 10, 64)
				if err != nil {
					panic(fmt.Sprintf("concat accumulator %q: %v", acc, err))
				}
				out = append(out, n)
			}
			return out
		})
}

// transcriptRuns are the ways each transcript runs: on actors at
// parallelism 1 and 2, and on the simulator at parallelism 2 under two
// seeds of its interleaving.
var transcriptRuns = []struct {
	name string
	par  int
	exec actors.Executor
	seed uint64
}{
	{"parallelism-1", 1, actors.Actors(), 0},
	{"parallelism-2", 2, actors.Actors(), 0},
	{"sim-parallelism-2-seed-1", 2, actors.Sim{}, 1},
	{"sim-parallelism-2-seed-2", 2, actors.Sim{}, 2},
}

// runTranscriptPipeline runs tr through a pipeline at parallelism par and
// returns what the checker found, one message per failing key and
// aggregation, and the panes it set aside as the end-of-input flush's.
func runTranscriptPipeline(t *testing.T, tr *beamtranscripts.Transcript, s window.Strategy, par int, exec actors.Executor, seed uint64) (failures, flushed []string) {
	t.Helper()
	clk := clock.NewManual(time.Unix(1_000_000, 0))
	cfg := actors.DefaultConfig()
	cfg.Clock, cfg.Executor, cfg.Seed = clk, exec, seed
	p := stages.NewPipeline("transcript-" + tr.Name)
	keyed := stages.KeyBy(transcriptStream(tr, clk).Read(p), func(r transcriptRecord) string { return r.Key })
	outs := []struct {
		name string
		c    *stages.Collection[stages.Windowed[string, []int64]]
	}{
		{"group", stages.Collect(stages.WindowAggregate(keyed, s, groupValues()))},
		{"concat", stages.Collect(stages.WindowAggregate(keyed, s, concatValues()))},
	}
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: par, Runtime: &cfg}); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, rb := range beamtranscripts.Rebundlings {
		keys[rebundledKey(rb)] = true
	}
	for _, out := range outs {
		byKey := map[string][]stages.Windowed[string, []int64]{}
		for _, w := range out.c.Values() {
			if !keys[w.Key] {
				failures = append(failures, fmt.Sprintf("%s: Unexpected output for unknown key %q: %+v", out.name, w.Key, w))
				continue
			}
			byKey[w.Key] = append(byKey[w.Key], w)
		}
		for _, rb := range beamtranscripts.Rebundlings {
			key := rebundledKey(rb)
			fl, err := checkTranscriptPanes(tr, s, byKey[key])
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s, key %s: %v", out.name, key, err))
			}
			for _, f := range fl {
				flushed = append(flushed, fmt.Sprintf("%s, key %s: %v", out.name, key, f))
			}
		}
	}
	if len(flushed) > 0 {
		t.Logf("%d panes set aside as the end-of-input flush's (not in the transcript), e.g. %s", len(flushed), flushed[0])
	}
	return failures, flushed
}

// checkTranscriptPanes checks one key's panes, in the order they were
// emitted, against the transcript's expectations, and returns the panes set
// aside as coming from the end-of-input flush (see TestBeamTranscriptPipelines).
func checkTranscriptPanes(tr *beamtranscripts.Transcript, s window.Strategy, got []stages.Windowed[string, []int64]) (flushed []beamtranscripts.Pane, err error) {
	wmEnd := tr.FinalWatermark()
	lateness := s.Spec().AllowedLateness
	var panes []beamtranscripts.Pane
	flushedWindows := map[window.Interval]bool{}
	for _, w := range got {
		p := beamtranscripts.PaneOf(w.Window, w.Value, w.Timestamp, w.Pane)
		if w.Pane.IsLast && w.Window.End.Add(lateness) > wmEnd {
			if flushedWindows[w.Window] {
				return flushed, fmt.Errorf("Unexpected output: a second final pane %v of window %v", p, w.Window)
			}
			flushedWindows[w.Window] = true
			flushed = append(flushed, p)
			continue
		}
		if len(flushed) > 0 {
			return flushed, fmt.Errorf("Unexpected output: pane %v after the end-of-input flush's %v", p, flushed)
		}
		panes = append(panes, p)
	}
	panes, err = cutIntoExpects(tr, panes)
	if err != nil {
		return flushed, err
	}
	if len(panes) > 0 {
		return flushed, fmt.Errorf("Unexpected output: %v", panes)
	}
	return flushed, nil
}

// cutIntoExpects cuts a key's panes, in the order they were emitted, into
// the transcript's expect actions in turn, each taking as many as it lists
// and matching them as Beam's harness does, and returns the panes left
// after the last.
func cutIntoExpects(tr *beamtranscripts.Transcript, panes []beamtranscripts.Pane) ([]beamtranscripts.Pane, error) {
	for _, a := range tr.Actions {
		if a.Kind != beamtranscripts.Expect {
			continue
		}
		n := min(len(a.Expect), len(panes))
		rest, err := beamtranscripts.MatchPanes(panes[:n], a.Expect)
		if err != nil {
			return nil, err
		}
		if len(rest) > 0 {
			return nil, fmt.Errorf("Unexpected output: %v", rest)
		}
		panes = panes[n:]
	}
	return panes, nil
}

// endOfInput tests the harness's handling of the end-of-input flush (see
// TestBeamTranscriptPipelines) without the shared file: window [20, 30) is
// still open when the script ends at watermark 15, so the flush fires it
// with a final pane no transcript action produced.
const endOfInput = `
name: open_at_end
window_fn: FixedWindows(10)
allowed_lateness: 50
transcript:
  - input: [1, 2, 25]
  - watermark: 15
  - expect:
      - {window: [0, 9], values: [1, 2], index: 0, final: false}
  - input: [3]
  - expect:
      - {window: [0, 9], values: [1, 2, 3], late: true, index: 1, final: false}
---
name: late_pane_not_expected
error: Unexpected output
window_fn: FixedWindows(10)
allowed_lateness: 50
transcript:
  - input: [1, 2, 25]
  - watermark: 15
  - expect:
      - {window: [0, 9], values: [1, 2], index: 0, final: false}
  - input: [3]
`

func TestTranscriptPipelineEndOfInput(t *testing.T) {
	docs, err := beamtranscripts.Parse([]byte(endOfInput))
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range docs {
		s, err := tr.Strategy()
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range transcriptRuns[1:] {
			checkEndOfInput(t, tr, s, run.par, run.exec, run.seed)
		}
	}
}

// checkEndOfInput checks the end-of-input flush of tr on exec.
func checkEndOfInput(t *testing.T, tr *beamtranscripts.Transcript, s window.Strategy, par int, exec actors.Executor, seed uint64) {
	t.Helper()
	failures, flushed := runTranscriptPipeline(t, tr, s, par, exec, seed)
	name := fmt.Sprintf("%s on %s (seed %d)", tr.Name, exec.Name(), seed)
	// Each of the six keys of both aggregations gets one final ON_TIME
	// pane of [20, 30) from the flush, and no other.
	if want := 2 * len(beamtranscripts.Rebundlings); len(flushed) != want {
		t.Errorf("%s: %d panes set aside as the flush's, want %d: %q", name, len(flushed), want, flushed)
	}
	for _, f := range flushed {
		if !strings.Contains(f, "values:[25] window:[20 29]") || !strings.Contains(f, "final:true") {
			t.Errorf("%s: set aside %s, want only the final pane of [20, 29]", name, f)
		}
	}
	if tr.Error == "" {
		for _, f := range failures {
			t.Errorf("%s: %s", name, f)
		}
		return
	}
	if len(failures) != len(flushed) {
		t.Errorf("%s: %d key checks failed, want %d: %q", name, len(failures), len(flushed), failures)
	}
	for _, f := range failures {
		if !regexp.MustCompile(tr.Error).MatchString(f) {
			t.Errorf("%s: failed with %q, want a failure matching %q", name, f, tr.Error)
		}
	}
}
