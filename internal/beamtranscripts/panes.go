package beamtranscripts

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/sluice-data/sluice/window"
)

// Pane is a pane as Beam's harness renders it (_windowed_value_info):
// window [start, max timestamp] and timestamp in whole units, values
// sorted, index, nonspeculative_index, early, late and final. An expected
// pane is partial: it holds only the keys it checks.
type Pane map[string]any

// Floor is Python's int(Timestamp) for transcript units: t in whole units,
// rounded down.
func Floor(t window.Time) int64 {
	q := int64(t / Unit)
	if t%Unit < 0 {
		q--
	}
	return q
}

// PaneOf renders a pane of window w holding values (in any order), with
// event time ts and firing info.
func PaneOf(w window.Interval, values []int64, ts window.Time, info window.PaneInfo) Pane {
	vs := slices.Clone(values)
	slices.Sort(vs)
	list := make([]any, len(vs))
	for i, v := range vs {
		list[i] = v
	}
	return Pane{
		"window":               []any{Floor(w.Start), Floor(w.MaxTimestamp())},
		"values":               list,
		"timestamp":            Floor(ts),
		"index":                info.Index,
		"nonspeculative_index": info.NonSpeculativeIndex,
		"early":                info.Timing == window.Early,
		"late":                 info.Timing == window.Late,
		"final":                info.IsLast,
	}
}

// Matches reports whether p agrees with want on every key want lists.
func (p Pane) Matches(want Pane) bool {
	for k, g := range p {
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

// MatchPanes is the harness's expect step: for each expected pane in turn
// it removes the first pane of got that matches it. It returns the panes
// left over, or an error starting "Unmatched output" for the first expected
// pane that matches none. got is not modified.
func MatchPanes(got, want []Pane) ([]Pane, error) {
	rest := slices.Clone(got)
	for _, w := range want {
		i := slices.IndexFunc(rest, func(p Pane) bool { return p.Matches(w) })
		if i < 0 {
			return rest, fmt.Errorf("Unmatched output %v in %v", w, rest)
		}
		rest = slices.Delete(rest, i, i+1)
	}
	return rest, nil
}

// Rebundling is one of the ways Beam's TestStream harness replays an input
// action of an order-agnostic transcript, under a key of its own.
type Rebundling struct {
	Name string
	// Bundles cuts an input action's values into bundles; r is only used
	// by the seeded shuffle.
	Bundles func(vs []int64, r *rand.Rand) [][]int64
}

// Rebundlings are Beam's six replays, in its order: the original bundle,
// reversed, a seeded shuffle, one-element bundles, one-element bundles
// reversed, and two-element bundles.
var Rebundlings = []Rebundling{
	{"original", func(vs []int64, _ *rand.Rand) [][]int64 { return [][]int64{slices.Clone(vs)} }},
	{"reversed", func(vs []int64, _ *rand.Rand) [][]int64 { return [][]int64{reversed(vs)} }},
	{"reshuffled", func(vs []int64, r *rand.Rand) [][]int64 {
		s := slices.Clone(vs)
		r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		return [][]int64{s}
	}},
	{"one-element-bundles", func(vs []int64, _ *rand.Rand) [][]int64 { return chunks(vs, 1) }},
	{"one-element-bundles-reversed", func(vs []int64, _ *rand.Rand) [][]int64 { return chunks(reversed(vs), 1) }},
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
		out = append(out, slices.Clone(vs[i:min(i+n, len(vs))]))
	}
	return out
}
