package beamtranscripts

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sluice-data/sluice/window"
)

// Strategy builds the transcript's windowing strategy from its window_fn,
// trigger_fn, accumulation_mode, allowed_lateness and timestamp_combiner,
// and validates it.
func (tr *Transcript) Strategy() (window.Strategy, error) {
	fnv, err := parsePy(tr.WindowFn, windowFnNames)
	if err != nil {
		return window.Strategy{}, fmt.Errorf("window_fn: %w", err)
	}
	fn, ok := fnv.(window.Fn)
	if !ok {
		return window.Strategy{}, fmt.Errorf("window_fn %q is a %T, not a window function", tr.WindowFn, fnv)
	}
	tv, err := parsePy(tr.TriggerFn, triggerNames)
	if err != nil {
		return window.Strategy{}, fmt.Errorf("trigger_fn: %w", err)
	}
	trig, ok := tv.(window.Trigger)
	if !ok {
		return window.Strategy{}, fmt.Errorf("trigger_fn %q is a %T, not a trigger", tr.TriggerFn, tv)
	}
	s := window.Into(fn).Trigger(trig).AllowedLateness(tr.AllowedLateness)
	switch tr.AccumulationMode {
	case "accumulating":
		s = s.Accumulating()
	case "discarding":
		s = s.Discarding()
	default:
		return window.Strategy{}, fmt.Errorf("unknown accumulation_mode %q", tr.AccumulationMode)
	}
	switch tr.TimestampCombiner {
	case "OUTPUT_AT_EOW":
		s = s.OutputAt(window.EndOfWindow)
	case "OUTPUT_AT_EARLIEST":
		s = s.OutputAt(window.Earliest)
	case "OUTPUT_AT_LATEST":
		s = s.OutputAt(window.Latest)
	case "OUTPUT_AT_EARLIEST_TRANSFORMED":
		s = s.OutputAt(window.EarliestTransformed)
	default:
		return window.Strategy{}, fmt.Errorf("unknown timestamp_combiner %q", tr.TimestampCombiner)
	}
	return s, s.Validate()
}

// OrderAgnostic reports whether Beam's TestStream harness replays each
// input in other orders and bundlings under s (see Rebundlings): the
// default trigger in accumulating mode.
func OrderAgnostic(s window.Strategy) bool {
	_, def := s.Spec().Trigger.(window.DefaultTrigger)
	return def && s.Spec().Mode == window.Accumulating
}

// CustomTimestampingFixed is Beam's CustomTimestampingFixedWindowsWindowFn:
// fixed windows whose transformed output time is t + 100 units.
type CustomTimestampingFixed struct{ window.FixedWindows }

// OutputTime implements window.OutputTimeFn.
func (c CustomTimestampingFixed) OutputTime(_ window.Interval, t window.Time) window.Time {
	return t.Add(100 * time.Second)
}

func (c CustomTimestampingFixed) String() string {
	return "custom-timestamping-" + c.FixedWindows.String()
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
				if _, dup := kw[k]; dup {
					return nil, fmt.Errorf("keyword argument %s repeated", k)
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

var windowFnNames = map[string]pyFunc{
	"GlobalWindows": func(pos []any, kw map[string]any) (any, error) {
		if _, err := bind(pos, kw); err != nil {
			return nil, err
		}
		return window.GlobalWindows{}, nil
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
		return window.FixedWindows{Size: d[0], Offset: d[1]}, nil
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
		return window.SlidingWindows{Size: d[0], Period: d[1], Offset: d[2]}, nil
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
		return window.Sessions{Gap: d[0]}, nil
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
		return CustomTimestampingFixed{window.FixedWindows{Size: d[0]}}, nil
	},
}

func triggerArg(v any) (window.Trigger, error) {
	t, ok := v.(window.Trigger)
	if !ok {
		return nil, fmt.Errorf("%v (%T) is not a trigger", v, v)
	}
	return t, nil
}

func triggerArgs(pos []any, kw map[string]any) ([]window.Trigger, error) {
	if len(kw) > 0 {
		return nil, errors.New("keyword arguments are not allowed")
	}
	out := make([]window.Trigger, len(pos))
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
		return window.Default(), nil
	}
	never := func(pos []any, kw map[string]any) (any, error) {
		if _, err := bind(pos, kw); err != nil {
			return nil, err
		}
		return window.Never(), nil
	}
	watermark := func(pos []any, kw map[string]any) (any, error) {
		a, err := bind(pos, kw, "early?", "late?")
		if err != nil {
			return nil, err
		}
		t := window.AfterWatermark()
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
			return window.AfterCount(int(n)), nil
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
			return window.AfterProcessingTime(d[0]), nil
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
			return window.Repeatedly(t), nil
		},
		"AfterAny": func(pos []any, kw map[string]any) (any, error) {
			ts, err := triggerArgs(pos, kw)
			return window.AfterAny(ts...), err
		},
		"AfterAll": func(pos []any, kw map[string]any) (any, error) {
			ts, err := triggerArgs(pos, kw)
			return window.AfterAll(ts...), err
		},
		"AfterEach": func(pos []any, kw map[string]any) (any, error) {
			ts, err := triggerArgs(pos, kw)
			return window.AfterEach(ts...), err
		},
		"OrFinally": func(pos []any, kw map[string]any) (any, error) {
			ts, err := triggerArgs(pos, kw)
			if err != nil {
				return nil, err
			}
			if len(ts) != 2 {
				return nil, fmt.Errorf("want 2 triggers, got %d", len(ts))
			}
			return window.OrFinally(ts[0], ts[1]), nil
		},
	}
}
