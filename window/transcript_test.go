package window

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// This file runs Apache Beam's trigger transcripts
// (../shared/conformance/beam/trigger_transcripts.yaml beside the module
// root, described by the README there) against the trigger driver, with the
// semantics of Beam's TriggerDriverTranscriptTest. One transcript unit is one
// second.

const transcriptRel = "../shared/conformance/beam/trigger_transcripts.yaml"

// transcriptPath finds the transcript file from the module root (the nearest
// directory above the test's package directory holding go.mod).
func transcriptPath(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, filepath.FromSlash(transcriptRel))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

func readTranscripts(t *testing.T) []*transcript {
	t.Helper()
	path := transcriptPath(t)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if os.Getenv("SLUICE_TEST_STRICT") == "1" {
			t.Fatalf("Beam trigger transcripts not found at %s (SLUICE_TEST_STRICT=1)", path)
		}
		t.Skipf("Beam trigger transcripts not found at %s: skipping (they live in the shared folder beside the checkout)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	docs, err := parseTranscripts(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return docs
}

// transcript is one YAML document.
type transcript struct {
	name      string
	windowFn  string
	triggerFn string
	combiner  string
	mode      string
	lateness  time.Duration
	errRe     string // the run must fail with a message matching it
	actions   []action
}

type action struct {
	kind   string // input, watermark, clock, expect, state
	values []int64
	n      int64
	expect []map[string]any
	state  map[string]any
}

// pyYAMLFlowColons makes the file readable by yaml.v3 as PyYAML reads it:
// inside flow collections PyYAML takes every ':' as the value indicator, so
// Beam's file writes "values:[1, 2]"; libyaml-derived parsers want a space
// after the colon.
func pyYAMLFlowColons(src []byte) []byte {
	var b strings.Builder
	depth := 0
	var quote byte
	comment := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		b.WriteByte(c)
		switch {
		case c == '\n':
			comment = false
		case comment:
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '#' && (i == 0 || src[i-1] == ' ' || src[i-1] == '\t' || src[i-1] == '\n'):
			comment = true
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth = max(0, depth-1)
		case c == ':' && depth > 0 && i+1 < len(src) && !unicode.IsSpace(rune(src[i+1])):
			b.WriteByte(' ')
		}
	}
	return []byte(b.String())
}

func parseTranscripts(data []byte) ([]*transcript, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(pyYAMLFlowColons(data))))
	seen := map[string]int{}
	var docs []*transcript
	for i := 0; ; i++ {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if m == nil {
			continue
		}
		tr, err := transcriptOf(m)
		if err != nil {
			return nil, fmt.Errorf("document %d (%v): %w", i, m["name"], err)
		}
		if n := seen[tr.name]; n > 0 {
			seen[tr.name] = n + 1
			tr.name = fmt.Sprintf("%s_%d", tr.name, n)
		} else {
			seen[tr.name] = 1
		}
		docs = append(docs, tr)
	}
}

func transcriptOf(m map[string]any) (*transcript, error) {
	str := func(key, def string) string {
		if v, ok := m[key]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return def
	}
	tr := &transcript{
		name:      str("name", "unnamed"),
		windowFn:  str("window_fn", "GlobalWindows"),
		triggerFn: str("trigger_fn", "Default"),
		combiner:  strings.ToUpper(str("timestamp_combiner", "OUTPUT_AT_EOW")),
		mode:      strings.ToLower(str("accumulation_mode", "accumulating")),
		errRe:     str("error", ""),
	}
	if v, ok := m["allowed_lateness"]; ok {
		secs, err := strconv.ParseFloat(fmt.Sprint(v), 64)
		if err != nil {
			return nil, fmt.Errorf("allowed_lateness %v: %w", v, err)
		}
		tr.lateness = time.Duration(secs * float64(time.Second))
	}
	lines, ok := m["transcript"].([]any)
	if !ok {
		return nil, fmt.Errorf("transcript is %T, want a list", m["transcript"])
	}
	for _, line := range lines {
		lm, ok := line.(map[string]any)
		if !ok || len(lm) != 1 {
			return nil, fmt.Errorf("transcript line %v: want a map with one key", line)
		}
		for k, v := range lm {
			a := action{kind: k}
			var err error
			switch k {
			case "input":
				a.values, err = ints(v)
			case "watermark", "clock":
				a.n, err = toInt(v)
			case "expect":
				list, ok := v.([]any)
				if !ok && v != nil {
					err = fmt.Errorf("expect is %T, want a list", v)
				}
				for _, p := range list {
					pm, ok := p.(map[string]any)
					if !ok {
						err = fmt.Errorf("expected pane %v is not a map", p)
						break
					}
					a.expect = append(a.expect, pm)
				}
			case "state":
				a.state, _ = v.(map[string]any)
			default:
				err = fmt.Errorf("unknown action %q", k)
			}
			if err != nil {
				return nil, err
			}
			tr.actions = append(tr.actions, a)
		}
	}
	return tr, nil
}

func toInt(v any) (int64, error) {
	switch v := v.(type) {
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case uint64:
		return int64(v), nil
	case float64:
		if v == float64(int64(v)) {
			return int64(v), nil
		}
	}
	return 0, fmt.Errorf("%v (%T) is not an integer", v, v)
}

func ints(v any) ([]int64, error) {
	list, ok := v.([]any)
	if !ok && v != nil {
		return nil, fmt.Errorf("%v (%T) is not a list", v, v)
	}
	out := make([]int64, 0, len(list))
	for _, x := range list {
		n, err := toInt(x)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// ---- A parser for the Python expressions of window_fn and trigger_fn:
// Name, Name(arg, kw=arg), integers, [int, ...]. A bare name is called with
// no arguments.

type pyParser struct {
	src   string
	pos   int
	names map[string]pyFunc
}

// pyFunc builds a value from positional and keyword arguments.
type pyFunc func(pos []any, kw map[string]any) (any, error)

func parsePy(src string, names map[string]pyFunc) (any, error) {
	p := &pyParser{src: src, names: names}
	v, err := p.expr()
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", src, err)
	}
	p.space()
	if p.pos != len(p.src) {
		return nil, fmt.Errorf("parsing %q: unexpected %q at %d", src, p.src[p.pos:], p.pos)
	}
	return v, nil
}

func (p *pyParser) space() {
	for p.pos < len(p.src) && unicode.IsSpace(rune(p.src[p.pos])) {
		p.pos++
	}
}

func (p *pyParser) peek() byte {
	p.space()
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (p *pyParser) expect(c byte) error {
	if p.peek() != c {
		return fmt.Errorf("want %q at %d", c, p.pos)
	}
	p.pos++
	return nil
}

func (p *pyParser) ident() string {
	p.space()
	start := p.pos
	for p.pos < len(p.src) {
		c := rune(p.src[p.pos])
		if c != '_' && !unicode.IsLetter(c) && !(p.pos > start && unicode.IsDigit(c)) {
			break
		}
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *pyParser) expr() (any, error) {
	switch c := p.peek(); {
	case c == '[':
		p.pos++
		var list []int64
		for p.peek() != ']' {
			v, err := p.expr()
			if err != nil {
				return nil, err
			}
			n, ok := v.(int64)
			if !ok {
				return nil, fmt.Errorf("list element %v is not an integer", v)
			}
			list = append(list, n)
			if p.peek() == ',' {
				p.pos++
			} else if p.peek() != ']' {
				return nil, fmt.Errorf("want ',' or ']' at %d", p.pos)
			}
		}
		p.pos++
		return list, nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		return strconv.ParseInt(p.src[start:p.pos], 10, 64)
	}
	name := p.ident()
	if name == "" {
		return nil, fmt.Errorf("want a name, number or list at %d", p.pos)
	}
	f, ok := p.names[name]
	if !ok {
		return nil, fmt.Errorf("unknown function: %s", name)
	}
	var pos []any
	kw := map[string]any{}
	if p.peek() == '(' {
		p.pos++
		for p.peek() != ')' {
			save := p.pos
			if k := p.ident(); k != "" && p.peek() == '=' {
				p.pos++
				v, err := p.expr()
				if err != nil {
					return nil, err
				}
				kw[k] = v
			} else {
				p.pos = save
				v, err := p.expr()
				if err != nil {
					return nil, err
				}
				pos = append(pos, v)
			}
			if p.peek() == ',' {
				p.pos++
			} else if p.peek() != ')' {
				return nil, fmt.Errorf("want ',' or ')' at %d", p.pos)
			}
		}
		p.pos++
	}
	v, err := f(pos, kw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// bind matches Python-style arguments to parameter names; params after
// the first optional one (marked with a trailing '?') may be missing.
func bind(pos []any, kw map[string]any, params ...string) (map[string]any, error) {
	out := map[string]any{}
	if len(pos) > len(params) {
		return nil, fmt.Errorf("%d arguments for %d parameters", len(pos), len(params))
	}
	for i, v := range pos {
		out[strings.TrimSuffix(params[i], "?")] = v
	}
	for k, v := range kw {
		if !slices.Contains(params, k) && !slices.Contains(params, k+"?") {
			return nil, fmt.Errorf("unknown keyword argument %s", k)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("argument %s given twice", k)
		}
		out[k] = v
	}
	for _, p := range params {
		if !strings.HasSuffix(p, "?") {
			if _, ok := out[p]; !ok {
				return nil, fmt.Errorf("missing argument %s", p)
			}
		}
	}
	return out, nil
}

func seconds(v any) (time.Duration, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("%v is not an integer", v)
	}
	return time.Duration(n) * time.Second, nil
}

func secondsArgs(args map[string]any, names ...string) ([]time.Duration, error) {
	out := make([]time.Duration, len(names))
	for i, n := range names {
		if v, ok := args[n]; ok {
			d, err := seconds(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", n, err)
			}
			out[i] = d
		}
	}
	return out, nil
}

// customTimestampingFixed is Beam's CustomTimestampingFixedWindowsWindowFn:
// fixed windows whose transformed output time is t + 100.
type customTimestampingFixed struct{ FixedWindows }

func (c customTimestampingFixed) OutputTime(_ Interval, t Time) Time {
	return t.Add(100 * time.Second)
}

func (c customTimestampingFixed) String() string {
	return "custom-timestamping-" + c.FixedWindows.String()
}

var windowFnNames = map[string]pyFunc{
	"GlobalWindows": func(pos []any, kw map[string]any) (any, error) {
		if _, err := bind(pos, kw); err != nil {
			return nil, err
		}
		return GlobalWindows{}, nil
	},
	"FixedWindows": func(pos []any, kw map[string]any) (any, error) {
		a, err := bind(pos, kw, "size", "offset?")
		if err != nil {
			return nil, err
		}
		d, err := secondsArgs(a, "size", "offset")
		if err != nil {
			return nil, err
		}
		return FixedWindows{Size: d[0], Offset: d[1]}, nil
	},
	"SlidingWindows": func(pos []any, kw map[string]any) (any, error) {
		a, err := bind(pos, kw, "size", "period", "offset?")
		if err != nil {
			return nil, err
		}
		d, err := secondsArgs(a, "size", "period", "offset")
		if err != nil {
			return nil, err
		}
		return SlidingWindows{Size: d[0], Period: d[1], Offset: d[2]}, nil
	},
	"Sessions": func(pos []any, kw map[string]any) (any, error) {
		a, err := bind(pos, kw, "gap_size")
		if err != nil {
			return nil, err
		}
		d, err := secondsArgs(a, "gap_size")
		if err != nil {
			return nil, err
		}
		return Sessions{Gap: d[0]}, nil
	},
	"CustomTimestampingFixedWindowsWindowFn": func(pos []any, kw map[string]any) (any, error) {
		a, err := bind(pos, kw, "size")
		if err != nil {
			return nil, err
		}
		d, err := secondsArgs(a, "size")
		if err != nil {
			return nil, err
		}
		return customTimestampingFixed{FixedWindows{Size: d[0]}}, nil
	},
}

func triggerArg(v any) (Trigger, error) {
	t, ok := v.(Trigger)
	if !ok {
		return nil, fmt.Errorf("%v (%T) is not a trigger", v, v)
	}
	return t, nil
}

func triggerArgs(pos []any, kw map[string]any) ([]Trigger, error) {
	if len(kw) > 0 {
		return nil, errors.New("keyword arguments are not allowed")
	}
	out := make([]Trigger, len(pos))
	for i, v := range pos {
		t, err := triggerArg(v)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

var triggerNames map[string]pyFunc

func init() {
	def := func(pos []any, kw map[string]any) (any, error) {
		if _, err := bind(pos, kw); err != nil {
			return nil, err
		}
		return Default(), nil
	}
	never := func(pos []any, kw map[string]any) (any, error) {
		if _, err := bind(pos, kw); err != nil {
			return nil, err
		}
		return Never(), nil
	}
	watermark := func(pos []any, kw map[string]any) (any, error) {
		a, err := bind(pos, kw, "early?", "late?")
		if err != nil {
			return nil, err
		}
		t := AfterWatermark()
		if v, ok := a["early"]; ok {
			e, err := triggerArg(v)
			if err != nil {
				return nil, fmt.Errorf("early: %w", err)
			}
			t = t.Early(e)
		}
		if v, ok := a["late"]; ok {
			l, err := triggerArg(v)
			if err != nil {
				return nil, fmt.Errorf("late: %w", err)
			}
			t = t.Late(l)
		}
		return t, nil
	}
	triggerNames = map[string]pyFunc{
		"Default":          def,
		"DefaultTrigger":   def,
		"Never":            never,
		"_Never":           never,
		"AfterWatermark":   watermark,
		"AfterEndOfWindow": watermark,
		"AfterCount": func(pos []any, kw map[string]any) (any, error) {
			a, err := bind(pos, kw, "count")
			if err != nil {
				return nil, err
			}
			n, ok := a["count"].(int64)
			if !ok {
				return nil, fmt.Errorf("count %v is not an integer", a["count"])
			}
			return AfterCount(int(n)), nil
		},
		"AfterProcessingTime": func(pos []any, kw map[string]any) (any, error) {
			a, err := bind(pos, kw, "delay?")
			if err != nil {
				return nil, err
			}
			d, err := secondsArgs(a, "delay")
			if err != nil {
				return nil, err
			}
			return AfterProcessingTime(d[0]), nil
		},
		"Repeatedly": func(pos []any, kw map[string]any) (any, error) {
			a, err := bind(pos, kw, "underlying")
			if err != nil {
				return nil, err
			}
			t, err := triggerArg(a["underlying"])
			if err != nil {
				return nil, err
			}
			return Repeatedly(t), nil
		},
		"AfterAny": func(pos []any, kw map[string]any) (any, error) {
			ts, err := triggerArgs(pos, kw)
			return AfterAny(ts...), err
		},
		"AfterAll": func(pos []any, kw map[string]any) (any, error) {
			ts, err := triggerArgs(pos, kw)
			return AfterAll(ts...), err
		},
		"AfterEach": func(pos []any, kw map[string]any) (any, error) {
			ts, err := triggerArgs(pos, kw)
			return AfterEach(ts...), err
		},
		"OrFinally": func(pos []any, kw map[string]any) (any, error) {
			ts, err := triggerArgs(pos, kw)
			if err != nil {
				return nil, err
			}
			if len(ts) != 2 {
				return nil, fmt.Errorf("want 2 triggers, got %d", len(ts))
			}
			return OrFinally(ts[0], ts[1]), nil
		},
	}
}

// strategy builds the transcript's windowing strategy.
func (tr *transcript) strategy() (Strategy, error) {
	fnv, err := parsePy(tr.windowFn, windowFnNames)
	if err != nil {
		return Strategy{}, err
	}
	fn, ok := fnv.(Fn)
	if !ok {
		return Strategy{}, fmt.Errorf("window_fn %q is a %T, not a window function", tr.windowFn, fnv)
	}
	tv, err := parsePy(tr.triggerFn, triggerNames)
	if err != nil {
		return Strategy{}, err
	}
	trig, ok := tv.(Trigger)
	if !ok {
		return Strategy{}, fmt.Errorf("trigger_fn %q is a %T, not a trigger", tr.triggerFn, tv)
	}
	s := Into(fn).Trigger(trig).AllowedLateness(tr.lateness)
	switch tr.mode {
	case "accumulating":
		s = s.Accumulating()
	case "discarding":
		s = s.Discarding()
	default:
		return Strategy{}, fmt.Errorf("unknown accumulation_mode %q", tr.mode)
	}
	switch tr.combiner {
	case "OUTPUT_AT_EOW":
		s = s.OutputAt(EndOfWindow)
	case "OUTPUT_AT_EARLIEST":
		s = s.OutputAt(Earliest)
	case "OUTPUT_AT_LATEST":
		s = s.OutputAt(Latest)
	case "OUTPUT_AT_EARLIEST_TRANSFORMED":
		s = s.OutputAt(EarliestTransformed)
	default:
		return Strategy{}, fmt.Errorf("unknown timestamp_combiner %q", tr.combiner)
	}
	return s, s.Validate()
}

// orderAgnostic reports whether Beam replays the inputs in other orders and
// bundlings for this transcript: the default trigger in accumulating mode.
func (tr *transcript) orderAgnostic(s Strategy) bool {
	_, def := s.Spec().Trigger.(DefaultTrigger)
	return def && s.Spec().Mode == Accumulating
}

// rebundlings are Beam's six replays of an input action, as bundles.
var rebundlings = []struct {
	name string
	f    func(vs []int64, r *rand.Rand) [][]int64
}{
	{"original", func(vs []int64, _ *rand.Rand) [][]int64 { return [][]int64{vs} }},
	{"reversed", func(vs []int64, _ *rand.Rand) [][]int64 {
		return [][]int64{reversed(vs)}
	}},
	{"reshuffled", func(vs []int64, r *rand.Rand) [][]int64 {
		s := slices.Clone(vs)
		r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		return [][]int64{s}
	}},
	{"one-element-bundles", func(vs []int64, _ *rand.Rand) [][]int64 { return chunks(vs, 1) }},
	{"one-element-bundles-reversed", func(vs []int64, _ *rand.Rand) [][]int64 {
		return chunks(reversed(vs), 1)
	}},
	{"two-element-bundles", func(vs []int64, _ *rand.Rand) [][]int64 { return chunks(vs, 2) }},
}

func reversed(vs []int64) []int64 {
	s := slices.Clone(vs)
	slices.Reverse(s)
	return s
}

func chunks(vs []int64, n int) [][]int64 {
	var out [][]int64
	for i := 0; i < len(vs); i += n {
		out = append(out, vs[i:min(i+n, len(vs))])
	}
	return out
}

const unit = Time(time.Second)

// run executes the transcript as TriggerDriverTranscriptTest does, with each
// input action cut into bundles by rebundle. It returns the checker's
// failure ("Unmatched output ..." / "Unexpected output ..."), or nil.
// Mismatches of the informational state assertions go to notes.
func (tr *transcript) run(s Strategy, rebundle func([]int64) [][]int64, notes *[]string) error {
	d, err := NewWindowing[int64](s, Collect[int64]())
	if err != nil {
		return err
	}
	var st KeyState[[]int64]
	var out Output[int64, []int64]
	wm, pt := MinTime, Time(0)
	var produced []map[string]any
	take := func() {
		for _, p := range out.Panes {
			produced = append(produced, paneInfoMap(p))
		}
		out.Reset()
	}
	for _, a := range tr.actions {
		if a.kind != "expect" && len(produced) > 0 {
			return fmt.Errorf("Unexpected output: %v before %s", produced, a.kind)
		}
		switch a.kind {
		case "input":
			for _, bundle := range rebundle(a.values) {
				elems := make([]Element[int64], len(bundle))
				for i, v := range bundle {
					elems[i] = Element[int64]{Value: v, Time: Time(v) * unit}
				}
				d.ProcessElements(&st, elems, wm, pt, &out)
			}
		case "watermark":
			wm = Time(a.n) * unit
			d.AdvanceWatermark(&st, wm, &out)
		case "clock":
			pt = pt.Add(time.Duration(a.n) * time.Second)
			d.AdvanceProcessingTime(&st, pt, &out)
		case "expect":
			for _, want := range a.expect {
				i := slices.IndexFunc(produced, func(got map[string]any) bool { return paneMatches(got, want) })
				if i < 0 {
					return fmt.Errorf("Unmatched output %v in %v", want, produced)
				}
				produced = slices.Delete(produced, i, i+1)
			}
		case "state":
			*notes = append(*notes, checkState(&st, a.state)...)
		}
		take()
	}
	if len(produced) > 0 {
		return fmt.Errorf("Unexpected output: %v", produced)
	}
	return nil
}

// floorUnits is Python's int(Timestamp): floor division to whole seconds.
func floorUnits(t Time) int64 {
	q := int64(t / unit)
	if t%unit < 0 {
		q--
	}
	return q
}

func paneInfoMap(p Pane[[]int64]) map[string]any {
	vs := slices.Clone(p.Value)
	slices.Sort(vs)
	values := make([]any, len(vs))
	for i, v := range vs {
		values[i] = v
	}
	return map[string]any{
		"window":               []any{floorUnits(p.Window.Start), floorUnits(p.Window.MaxTimestamp())},
		"values":               values,
		"timestamp":            floorUnits(p.Timestamp),
		"index":                p.Info.Index,
		"nonspeculative_index": p.Info.NonSpeculativeIndex,
		"early":                p.Info.Timing == Early,
		"late":                 p.Info.Timing == Late,
		"final":                p.Info.IsLast,
	}
}

// paneMatches compares the keys the expectation and the pane share.
func paneMatches(got, want map[string]any) bool {
	for k, g := range got {
		if w, ok := want[k]; ok && !yamlEqual(g, w) {
			return false
		}
	}
	return true
}

func yamlEqual(a, b any) bool {
	if al, ok := a.([]any); ok {
		bl, ok := b.([]any)
		if !ok && b != nil {
			return false
		}
		return slices.EqualFunc(al, bl, yamlEqual)
	}
	if ai, err := toInt(a); err == nil {
		bi, err := toInt(b)
		return err == nil && ai == bi
	}
	return a == b
}

// checkState compares the informational state assertions (which Beam's
// harness does not check) with the key's windows.
func checkState(st *KeyState[[]int64], want map[string]any) []string {
	have := map[[2]int64]WindowInfo{}
	for _, w := range st.Windows(nil) {
		have[[2]int64{floorUnits(w.Window.Start), floorUnits(w.Window.MaxTimestamp())}] = w
	}
	var notes []string
	for _, kind := range []string{"present", "absent", "tombstone"} {
		list, _ := want[kind].([]any)
		for _, x := range list {
			b, err := ints(x)
			if err != nil || len(b) != 2 {
				notes = append(notes, fmt.Sprintf("state %s: bad window %v", kind, x))
				continue
			}
			w, ok := have[[2]int64{b[0], b[1]}]
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
	docs := readTranscripts(t)
	passed := 0
	for _, tr := range docs {
		ok := t.Run(tr.name, func(t *testing.T) {
			s, err := tr.strategy()
			if err != nil {
				t.Fatalf("window_fn %q trigger_fn %q: %v", tr.windowFn, tr.triggerFn, err)
			}
			variants := rebundlings[:1]
			if tr.orderAgnostic(s) {
				variants = rebundlings
			}
			for vi, v := range variants {
				r := rand.New(rand.NewPCG(uint64(vi), 0x5eed))
				var notes []string
				err := tr.run(s, func(vs []int64) [][]int64 { return v.f(vs, r) }, &notes)
				for _, n := range notes {
					t.Logf("%s: %s (informational: Beam does not check state)", v.name, n)
				}
				switch {
				case tr.errRe == "" && err != nil:
					t.Errorf("%s (%s, %s): %v", v.name, s, tr.windowFn, err)
				case tr.errRe != "" && err == nil:
					t.Errorf("%s: ran clean, want a failure matching %q", v.name, tr.errRe)
				case tr.errRe != "" && !regexp.MustCompile(tr.errRe).MatchString(err.Error()):
					t.Errorf("%s: failed with %v, want a failure matching %q", v.name, err, tr.errRe)
				}
			}
		})
		if ok {
			passed++
		}
	}
	t.Logf("Beam trigger transcripts: %d of %d pass", passed, len(docs))
}

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
