package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// explainBase is the event time of test-explain's first window.
var explainBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func init() {
	// test-explain: a scripted stream (stages.TestStream) through a TryMap
	// that rejects negative numbers (dead letters) into two one-minute
	// windows with a minute of allowed lateness: "late-panes" (the default
	// trigger: late records make late panes; past the lateness they go to
	// its late side output) and "once" (fires once at the watermark, then
	// its window is closed). The script: 1, 2, 3 and -1 at 0:10; the
	// watermark to 1:30; 4 and 5 at 0:20 (late for late-panes, a closed
	// window for once); the watermark to 3:20; 6, 7, 8 at 0:30 (too late
	// for both); -2 at 3:30.
	stages.Register("test-explain", func(p *stages.Pipeline, _ stages.Args) {
		at := func(d time.Duration) time.Time { return explainBase.Add(d) }
		ts := stages.NewTestStream[int64](nil).
			AddElements(at(10*time.Second), 1, 2, 3, -1).
			AdvanceWatermark(at(90*time.Second)).
			AddElements(at(20*time.Second), 4, 5).
			AdvanceWatermark(at(200*time.Second)).
			AddElements(at(30*time.Second), 6, 7, 8).
			AddElements(at(210*time.Second), -2).
			AdvanceWatermarkToInfinity()
		ok, dead := stages.TryMap(ts.Read(p, stages.Name("script")), func(x int64) (int64, error) {
			if x < 0 {
				return 0, fmt.Errorf("negative: %d", x)
			}
			return x, nil
		}, stages.Name("positive"))
		keyed := stages.KeyBy(ok, func(x int64) int64 { return x % 2 })
		panes, late := stages.WindowAggregateLate(keyed, window.Fixed(time.Minute).AllowedLateness(time.Minute), stages.Count[int64](),
			stages.Name("late-panes"), stages.ID("late-panes-v1"))
		once := stages.WindowAggregate(keyed, window.Fixed(time.Minute).Trigger(window.AfterWatermark()).AllowedLateness(time.Minute),
			stages.Count[int64](), stages.Name("once"), stages.ID("once-v1"))
		stages.ForEach(panes, func(stages.Windowed[int64, int64]) error { return nil }, stages.Name("panes"))
		stages.ForEach(once, func(stages.Windowed[int64, int64]) error { return nil }, stages.Name("onces"))
		stages.ForEach(late, func(stages.Late[int64, int64]) error { return nil }, stages.Name("late"))
		stages.ForEach(dead, func(stages.DeadLetter) error { return nil }, stages.Name("dead"))
	}).Describe("an explain-why test's job: late, too late, closed-window and dead-letter records")
}

// asideWant is what a stage of test-explain set aside for one reason: how
// many, and what each example's record and rule hold.
type asideWant struct {
	stage  string
	reason plan.AsideReason
	n      int64
	// records are the examples' records, in order; rule a pattern each
	// example's rule matches.
	records []string
	rule    string
	port    int
}

var explainWants = []asideWant{
	{`trymap "positive"`, plan.AsideDeadLetter, 2, []string{"-1", "-2"}, `^rejected: negative: -[12]$`, 1},
	{`window "late-panes"`, plan.AsideLate, 2, []string{"{Key:0 Value:4}", "{Key:1 Value:5}"},
		`^event time 2026-01-01T00:00:20.000Z behind the watermark 2026-01-01T00:01:30.000Z, which had passed the end of its window ` +
			`\[2026-01-01T00:00:00.000Z, 2026-01-01T00:01:00.000Z\); within the allowed lateness 1m0s: added to a late pane$`, 0},
	{`window "late-panes"`, plan.AsideTooLate, 3, []string{"{Key:0 Value:6}", "{Key:1 Value:7}", "{Key:0 Value:8}"},
		`^event time 2026-01-01T00:00:30.000Z: the watermark 2026-01-01T00:03:20.000Z had passed the end of its window ` +
			`\[2026-01-01T00:00:00.000Z, 2026-01-01T00:01:00.000Z\) plus the allowed lateness 1m0s$`, 1},
	{`window "once"`, plan.AsideClosed, 2, []string{"{Key:0 Value:4}", "{Key:1 Value:5}"},
		`^event time 2026-01-01T00:00:20.000Z: the trigger of its window \[2026-01-01T00:00:00.000Z, 2026-01-01T00:01:00.000Z\) ` +
			`had finished \(watermark 2026-01-01T00:01:30.000Z, allowed lateness 1m0s\)$`, 0},
	{`window "once"`, plan.AsideTooLate, 3, []string{"{Key:0 Value:6}", "{Key:1 Value:7}", "{Key:0 Value:8}"},
		`the watermark 2026-01-01T00:03:20.000Z had passed the end of its window`, 0},
}

// count returns the stage's count of reason r.
func asideCount(s actors.StageStats, r plan.AsideReason) int64 {
	switch r {
	case plan.AsideLate:
		return s.Late
	case plan.AsideTooLate:
		return s.DroppedLate
	case plan.AsideClosed:
		return s.DroppedClosed
	}
	return s.DeadLetters
}

// checkAsides checks a stage's counts and examples against explainWants,
// and that nothing else was set aside.
func checkAsides(t *testing.T, where string, ss []actors.StageStats) {
	t.Helper()
	got := map[string]map[plan.AsideReason]bool{}
	for _, s := range ss {
		for _, r := range []plan.AsideReason{plan.AsideLate, plan.AsideTooLate, plan.AsideClosed, plan.AsideDeadLetter} {
			if asideCount(s, r) > 0 {
				if got[s.Name] == nil {
					got[s.Name] = map[plan.AsideReason]bool{}
				}
				got[s.Name][r] = true
			}
		}
	}
	for _, w := range explainWants {
		i := slices.IndexFunc(ss, func(s actors.StageStats) bool { return s.Name == w.stage })
		if i < 0 {
			t.Fatalf("%s: no stage %s", where, w.stage)
		}
		s := ss[i]
		delete(got[s.Name], w.reason)
		if n := asideCount(s, w.reason); n != w.n {
			t.Errorf("%s: %s: %d %s, want %d", where, s.Name, n, w.reason, w.n)
		}
		var records []string
		for _, a := range s.Asides {
			if a.Reason != w.reason {
				continue
			}
			records = append(records, a.Record)
			if !regexp.MustCompile(w.rule).MatchString(a.Rule) {
				t.Errorf("%s: %s: %s example %s: rule %q, want it to match %q", where, s.Name, w.reason, a.Record, a.Rule, w.rule)
			}
			if a.Port != w.port {
				t.Errorf("%s: %s: %s example %s: port %d, want %d", where, s.Name, w.reason, a.Record, a.Port, w.port)
			}
			if w.reason != plan.AsideDeadLetter {
				if !a.HasTime || a.AllowedLateness != time.Minute || a.WindowStart != explainBase.UnixNano() ||
					a.WindowEnd != explainBase.Add(time.Minute).UnixNano() || a.Watermark <= a.EventTime {
					t.Errorf("%s: %s: %s example %+v: want its event time behind the watermark, a minute's lateness, the first window", where, s.Name, w.reason, a)
				}
			}
		}
		slices.Sort(records)
		want := slices.Sorted(slices.Values(w.records))
		if !slices.Equal(records, want) {
			t.Errorf("%s: %s: %s examples %q, want %q", where, s.Name, w.reason, records, want)
		}
	}
	for name, rs := range got {
		for r := range rs {
			t.Errorf("%s: %s set records aside as %s, which the test does not expect", where, name, r)
		}
	}
}

// summaryAsides parses the summary's "set aside / dropped" section: per
// stage, its counts by reason and its examples' lines.
func summaryAsides(t *testing.T, summary string) (map[string]map[plan.AsideReason]int64, map[string][]string) {
	t.Helper()
	_, section, ok := strings.Cut(summary, "\nset aside / dropped (")
	if !ok {
		t.Fatalf("the summary has no set aside / dropped section:\n%s", summary)
	}
	counts, examples := map[string]map[plan.AsideReason]int64{}, map[string][]string{}
	head := regexp.MustCompile(`^  (\S.*) \(v\d+, [^)]*\): (.*)$`)
	stage := ""
	for _, line := range strings.Split(section, "\n")[1:] {
		if line == "" || !strings.HasPrefix(line, "  ") {
			break
		}
		if m := head.FindStringSubmatch(line); m != nil {
			stage = m[1]
			counts[stage] = map[plan.AsideReason]int64{}
			for _, part := range strings.Split(m[2], ", ") {
				n, what, _ := strings.Cut(part, " ")
				var r plan.AsideReason
				if err := r.UnmarshalText([]byte(what)); err != nil {
					t.Fatalf("summary line %q: %v", line, err)
				}
				counts[stage][r], _ = strconv.ParseInt(n, 10, 64)
			}
			continue
		}
		examples[stage] = append(examples[stage], strings.TrimSpace(line))
	}
	return counts, examples
}

// TestExplainWhy: a job with late records, records past the allowed
// lateness, records for a closed window and dead letters reports each
// count per stage with examples that say why (for a late record: its
// event time, the watermark and the allowed lateness then) in its JSON
// (/v1/job) and its summary, with the same counts in both.
func TestExplainWhy(t *testing.T) {
	code, _, stderr := command(context.Background(), false, "run", "test-explain", "--parallelism", "2")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	x := finishedJob(t, "test-explain", nil, 2)
	base, _ := serveFinished(t, x)
	resp, err := http.Get(base + "/v1/job")
	if err != nil {
		t.Fatal(err)
	}
	var view jobView
	err = json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkAsides(t, "/v1/job", view.Stages)
	checkAsides(t, "Snapshot", x.Snapshot().Stages)

	counts, examples := summaryAsides(t, stderr)
	for _, s := range view.Stages {
		for _, r := range []plan.AsideReason{plan.AsideLate, plan.AsideTooLate, plan.AsideClosed, plan.AsideDeadLetter} {
			if got, want := counts[s.Name][r], asideCount(s, r); got != want {
				t.Errorf("summary: %s: %d %s, /v1/job %d", s.Name, got, r, want)
			}
		}
		var want []string
		for _, a := range s.Asides {
			to := ""
			if a.Port > 0 && a.Reason != plan.AsideDeadLetter {
				to = fmt.Sprintf(" (sent to side output %d)", a.Port)
			}
			want = append(want, fmt.Sprintf("%s: %s: %s%s", a.Reason, a.Record, a.Rule, to))
		}
		got := examples[s.Name]
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("summary: %s: examples\n%q\nwant\n%q", s.Name, got, want)
		}
	}
	// The existing lines stay: the stage table's SET ASIDE column and the
	// warnings.
	for _, line := range []string{"side 1: 3, late: 3", "late: 3", "closed window: 2", `stage window "once"`, "dropped 2 records of windows whose trigger had finished"} {
		if !strings.Contains(stderr, line) {
			t.Errorf("the summary lacks %q:\n%s", line, stderr)
		}
	}
}

// TestPageExplainsWhy: the page lists the records set aside per stage and
// reason with the counts and examples of the JSON.
func TestPageExplainsWhy(t *testing.T) {
	chrome := chromium(t)
	x := finishedJob(t, "test-explain", nil, 1)
	base, _ := serveFinished(t, x)
	view := viewOf("", x)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alloc, stopAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true))...)
	defer stopAlloc()
	tab, stopTab := chromedp.NewContext(alloc)
	defer stopTab()
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("loading %s/: %v", base, err)
	}
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](`Number(document.body.dataset.polls) > 0`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("no poll within 20 s: %v", err)
	}
	type row struct {
		Stage    int      `json:"stage"`
		Reason   string   `json:"reason"`
		Count    int64    `json:"count"`
		Records  []string `json:"records"`
		Rules    []string `json:"rules"`
		Reasons  []string `json:"reasons"`
		NoneShow bool     `json:"none"`
	}
	rows, err := chromedp.Run(tab, chromedp.Evaluate[[]row](`[...document.querySelectorAll('#asides tr[data-aside]')].map((r) => ({
  stage: Number(r.dataset.stage), reason: r.dataset.reason, count: Number(r.dataset.count),
  records: [...r.querySelectorAll('li[data-reason]')].map((li) => li.dataset.record),
  rules: [...r.querySelectorAll('li[data-reason]')].map((li) => li.dataset.rule),
  reasons: [...r.querySelectorAll('li[data-reason]')].map((li) => li.dataset.reason),
  none: !document.getElementById('asides-none').hidden}))`))
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for i, s := range view.Stages {
		for _, r := range []plan.AsideReason{plan.AsideLate, plan.AsideTooLate, plan.AsideClosed, plan.AsideDeadLetter} {
			if n := asideCount(s, r); n > 0 {
				line := fmt.Sprintf("%d %s %d:", i, r, n)
				for _, a := range s.Asides {
					if a.Reason == r {
						line += " " + a.Record + " — " + a.Rule
					}
				}
				want = append(want, line)
			}
		}
	}
	for _, r := range rows {
		line := fmt.Sprintf("%d %s %d:", r.Stage, r.Reason, r.Count)
		for i := range r.Records {
			line += " " + r.Records[i] + " — " + r.Rules[i]
			if r.Reasons[i] != r.Reason {
				t.Errorf("row %d %s: an example of %s", r.Stage, r.Reason, r.Reasons[i])
			}
		}
		if r.NoneShow {
			t.Errorf("the page says none were set aside, and lists %d", len(rows))
		}
		got = append(got, line)
	}
	if len(want) != len(explainWants) || !slices.Equal(got, want) {
		t.Errorf("the page's rows:\n%s\nwant (/v1/job):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
