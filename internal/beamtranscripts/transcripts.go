// Package beamtranscripts reads Apache Beam's trigger transcripts
// (trigger_transcripts.yaml, kept in ../shared/conformance/beam beside the
// module root and described by the README there) for the tests that run
// them: through the trigger driver (window) and through whole pipelines
// (actors). It parses the YAML as PyYAML does, evaluates the Python
// expressions of window_fn and trigger_fn into a window.Strategy, and
// renders and matches panes as Beam's TranscriptTest does. One transcript
// time unit is one second.
package beamtranscripts

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/window"
)

// RelPath is where the transcripts are, relative to the module root.
const RelPath = "../shared/conformance/beam/trigger_transcripts.yaml"

// Unit is one transcript time unit.
const Unit = window.Time(time.Second)

// Transcript is one YAML document: a windowing strategy and a script of
// actions with the panes they must produce.
type Transcript struct {
	// Name is the document's name; a repeated name gets a suffix _1, _2…
	Name string
	// WindowFn and TriggerFn are the Python expressions of the document
	// (GlobalWindows and Default when absent).
	WindowFn, TriggerFn string
	// TimestampCombiner is upper case (OUTPUT_AT_EOW when absent);
	// AccumulationMode lower case (accumulating when absent).
	TimestampCombiner, AccumulationMode string
	AllowedLateness                     time.Duration
	// Error, when set, is a regular expression: the document tests the
	// checker, and running it must fail with a message matching Error.
	Error   string
	Actions []Action
}

// Kind names an action.
type Kind string

// The actions of a transcript.
const (
	Input     Kind = "input"     // Values: one bundle for one key
	Watermark Kind = "watermark" // N: the input watermark, in units
	Clock     Kind = "clock"     // N: processing time moves by N units
	Expect    Kind = "expect"    // Expect: panes produced since the last other action
	State     Kind = "state"     // State: informational assertions on windows
)

// Action is one step of a transcript.
type Action struct {
	Kind   Kind
	Values []int64
	N      int64
	Expect []Pane
	// State maps present, absent and tombstone to windows given as
	// [start, max timestamp] in units. Beam's harness does not check it.
	State map[string][][2]int64
}

// Path finds the transcript file from the working directory: RelPath from
// the nearest directory above it that holds go.mod.
func Path() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, filepath.FromSlash(RelPath)), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("beamtranscripts: no go.mod above %s", dir)
		}
		dir = parent
	}
}

// Load reads the transcripts for a test run from the package directory.
// When the file is absent it skips t, or fails it under
// SLUICE_TEST_STRICT=1 (testenv.Need).
func Load(t testing.TB) []*Transcript {
	t.Helper()
	path, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Read(path)
	if errors.Is(err, os.ErrNotExist) {
		testenv.Need(t, fmt.Sprintf("Beam trigger transcripts not found at %s (they live in the shared folder beside the checkout)", path))
	}
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// Read reads and parses the transcript file at path.
func Read(path string) ([]*Transcript, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	docs, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return docs, nil
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

// Parse parses a multi-document transcript file.
func Parse(data []byte) ([]*Transcript, error) {
	dec := yaml.NewDecoder(strings.NewReader(string(pyYAMLFlowColons(data))))
	seen := map[string]int{}
	var docs []*Transcript
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
		if n := seen[tr.Name]; n > 0 {
			seen[tr.Name] = n + 1
			tr.Name = fmt.Sprintf("%s_%d", tr.Name, n)
		} else {
			seen[tr.Name] = 1
		}
		docs = append(docs, tr)
	}
}

func transcriptOf(m map[string]any) (*Transcript, error) {
	str := func(key, def string) string {
		if v, ok := m[key]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return def
	}
	tr := &Transcript{
		Name:              str("name", "unnamed"),
		WindowFn:          str("window_fn", "GlobalWindows"),
		TriggerFn:         str("trigger_fn", "Default"),
		TimestampCombiner: strings.ToUpper(str("timestamp_combiner", "OUTPUT_AT_EOW")),
		AccumulationMode:  strings.ToLower(str("accumulation_mode", "accumulating")),
		Error:             str("error", ""),
	}
	if v, ok := m["allowed_lateness"]; ok {
		secs, err := strconv.ParseFloat(fmt.Sprint(v), 64)
		if err != nil {
			return nil, fmt.Errorf("allowed_lateness %v: %w", v, err)
		}
		tr.AllowedLateness = time.Duration(secs * float64(time.Second))
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
			a, err := actionOf(Kind(k), v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			tr.Actions = append(tr.Actions, a)
		}
	}
	return tr, nil
}

func actionOf(k Kind, v any) (Action, error) {
	a := Action{Kind: k}
	var err error
	switch k {
	case Input:
		a.Values, err = ints(v)
	case Watermark, Clock:
		a.N, err = toInt(v)
	case Expect:
		list, ok := v.([]any)
		if !ok && v != nil {
			return a, fmt.Errorf("expect is %T, want a list", v)
		}
		for _, p := range list {
			pm, ok := p.(map[string]any)
			if !ok {
				return a, fmt.Errorf("expected pane %v is not a map", p)
			}
			a.Expect = append(a.Expect, Pane(pm))
		}
	case State:
		sm, ok := v.(map[string]any)
		if !ok {
			return a, fmt.Errorf("state is %T, want a map", v)
		}
		a.State = map[string][][2]int64{}
		for kind, ws := range sm {
			list, ok := ws.([]any)
			if !ok {
				return a, fmt.Errorf("state %s is %T, want a list", kind, ws)
			}
			for _, w := range list {
				b, err := ints(w)
				if err != nil || len(b) != 2 {
					return a, fmt.Errorf("state %s: window %v is not [start, max_ts]", kind, w)
				}
				a.State[kind] = append(a.State[kind], [2]int64{b[0], b[1]})
			}
		}
	default:
		err = fmt.Errorf("unknown action %q", k)
	}
	return a, err
}

// FinalWatermark is the input watermark at the end of the script, in
// event time: the last watermark action's (watermarks never go back), or
// window.MinTime when there is none.
func (tr *Transcript) FinalWatermark() window.Time {
	wm := window.MinTime
	for _, a := range tr.Actions {
		if a.Kind == Watermark {
			wm = max(wm, window.Time(a.N)*Unit)
		}
	}
	return wm
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
