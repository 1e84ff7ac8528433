package stages_test

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// kindsOf lists the kinds of stage that an option is typed for, by type
// assertion on the stages' option interfaces.
func kindsOf(opt any) []string {
	var kinds []string
	if _, ok := opt.(stages.SourceOption); ok {
		kinds = append(kinds, "source")
	}
	if _, ok := opt.(stages.MapOption); ok {
		kinds = append(kinds, "map")
	}
	if _, ok := opt.(stages.EventTimeOption); ok {
		kinds = append(kinds, "eventtime")
	}
	if _, ok := opt.(stages.AggregateOption); ok {
		kinds = append(kinds, "aggregate")
	}
	if _, ok := opt.(stages.JoinOption); ok {
		kinds = append(kinds, "join")
	}
	if _, ok := opt.(stages.SinkOption); ok {
		kinds = append(kinds, "sink")
	}
	return kinds
}

// TestOptionKinds holds every option to the kinds of stage it applies to:
// an option typed for a stage it does not configure would compile there
// and be ignored (MaxDelay given to Map, Strategy to Aggregate).
func TestOptionKinds(t *testing.T) {
	every := []string{"source", "map", "eventtime", "aggregate", "join", "sink"}
	for _, tc := range []struct {
		name string
		opt  any
		want []string
	}{
		{"Name", stages.Name("x"), every},
		{"Parallelism", stages.Parallelism(2), every},
		{"ID", stages.ID("x-v1"), []string{"aggregate", "join"}},
		{"Records", stages.Records(10), []string{"source", "map", "aggregate", "join"}},
		{"MaxDelay", stages.MaxDelay(time.Second), []string{"eventtime"}},
		{"IdleAfter", stages.IdleAfter(time.Second), []string{"eventtime"}},
		{"Strategy", stages.Strategy(plan.JoinShuffle), []string{"join"}},
		{"BroadcastThreshold", stages.BroadcastThreshold(1 << 20), []string{"join"}},
		{"NoSkew", stages.NoSkew(), []string{"join"}},
		{"SkewFactor", stages.SkewFactor(3, 0.1), []string{"join"}},
		{"HotKeys", stages.HotKeys(4, int64(42)), []string{"join"}},
		{"HashWith", stages.HashWith(func(int64) uint64 { return 0 }), nil},
	} {
		if got := kindsOf(tc.opt); !slices.Equal(got, tc.want) {
			t.Errorf("%s applies to %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestOptionsReachTheirStage: each option given to a stage it applies to
// lands on that stage's plan node, and only there; defaults stay where no
// option is given.
func TestOptionsReachTheirStage(t *testing.T) {
	p := stages.NewPipeline("options")
	src := stages.Sequence(p, 0, 100, stages.Name("numbers"), stages.Parallelism(2), stages.Records(100))
	ev := stages.EventTime(src, func(x int64) time.Time { return time.Unix(x, 0) },
		stages.MaxDelay(3*time.Second), stages.IdleAfter(time.Minute), stages.Name("times"))
	m := stages.Map(ev, func(x int64) int64 { return x % 10 }, stages.Name("mod"), stages.Parallelism(4), stages.Records(10))
	k := stages.KeyBy(m, func(x int64) int64 { return x })
	agg := stages.Aggregate(k, window.Global(), stages.Sum(func(x int64) int64 { return x }), stages.ID("sum-v1"), stages.Parallelism(3))
	win := stages.WindowAggregate(k, window.Fixed(time.Minute), stages.Count[int64](), stages.ID("count-v1"))
	right := stages.KeyBy(stages.FromSlice(p, []int64{1, 2}), func(x int64) int64 { return x })
	j := stages.Join(stages.KeyBy(agg, func(kv stages.KV[int64, int64]) int64 { return kv.Key }), right, stages.Inner,
		stages.Strategy(plan.JoinShuffle), stages.BroadcastThreshold(1<<10), stages.SkewFactor(3, 0.1),
		stages.HotKeys(2, int64(7)), stages.ID("join-v1"), stages.Name("enrich"))
	stages.Collect(j, stages.Name("out"), stages.Parallelism(1))
	stages.Collect(win)
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}

	type node struct {
		name, id string
		par      int
		records  int64
	}
	var got []node
	byName := map[string]*plan.Node{}
	for _, n := range p.Graph().Nodes {
		got = append(got, node{n.Name, n.StableID, n.Parallelism, n.Records})
		byName[n.Name] = n
	}
	want := []node{
		{"numbers", "", 2, 100},
		{"times", "", 0, 0},
		{"mod", "", 4, 10},
		{"sum", "", 0, 0},       // the pre-combiner takes only the name
		{"sum", "sum-v1", 3, 0}, // the aggregate
		{"key", "", 0, 0},       // the window's keying
		{"count fixed(1m0s)", "count-v1", 0, 0},
		{"source", "", 0, 0},
		{"key", "", 0, 0},
		{"key", "", 0, 0},
		{"enrich", "join-v1", 0, 0},
		{"out", "", 1, 0},
		{"collect", "", 0, 0},
	}
	if !slices.Equal(got, want) {
		t.Errorf("nodes:\n got %v\nwant %v", got, want)
	}
	if wm := byName["times"].Watermarks; wm == nil || wm.MaxDelay != int64(3*time.Second) || wm.Idle != int64(time.Minute) || wm.New != nil {
		t.Errorf("event time's watermarks = %+v, want MaxDelay 3s, Idle 1m", wm)
	}
	js := byName["enrich"].Join
	if js.Strategy != plan.JoinShuffle || js.Threshold != 1<<10 || js.Skew.Factor != 3 || js.Skew.MinShare != 0.1 || len(js.Skew.Declared) != 1 {
		t.Errorf("join spec = %+v, want shuffle, threshold 1024, skew 3/0.1, one hot key", js)
	}
}

// TestMisappliedOptionNamesTheLine: the mistakes an option's type cannot
// rule out are graph errors at the user's line.
func TestMisappliedOptionNamesTheLine(t *testing.T) {
	p := stages.NewPipeline("bad-options")
	ts := stages.NewTestStream[int64](nil).AddElements(time.Unix(0, 0), 1, 2)
	stages.Collect(ts.Read(p, stages.Parallelism(2)))
	lineA := line()
	stages.EventTime(stages.Sequence(p, 0, 1), func(x int64) time.Time { return time.Unix(x, 0) }, stages.MaxDelay(-time.Second))
	lineB := line()
	k := stages.KeyBy(stages.Sequence(p, 0, 1), func(x int64) int64 { return x })
	stages.Collect(stages.Join(k, k, stages.Inner, stages.HotKeys(2, "not an int64")))
	lineC := line()
	err := p.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		fmt.Sprintf("stages/options_test.go:%d: teststream: parallelism 2", lineA-1),
		fmt.Sprintf("stages/options_test.go:%d: eventtime: MaxDelay -1s", lineB-1),
		fmt.Sprintf("stages/options_test.go:%d: join: hot key not an int64 is a string", lineC-1),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	// A TestStream given Parallelism(1) is fine.
	p = stages.NewPipeline("teststream-one")
	stages.Collect(stages.NewTestStream[int64](nil).AddElements(time.Unix(0, 0), 1).Read(p, stages.Parallelism(1), stages.Name("script")))
	if err := p.Err(); err != nil {
		t.Error(err)
	}
}

// line returns the line it is called from.
func line() int {
	_, _, l, _ := runtime.Caller(1)
	return l
}
