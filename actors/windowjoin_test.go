package actors_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// joinSide is a record of a window join test: a key, an event time in
// seconds and an ID.
type joinSide struct {
	Key string
	At  int64
	ID  int
}

// TestWindowJoinNestedLoop: a window join of random records of both sides
// (keys and event times at random; fixed and sliding windows) gives, as a multiset, the pairs a nested-loop join of
// the same windows gives, at parallelism 1 to 3, on actors and the
// simulator. Seeded: a failing seed is printed.
func TestWindowJoinNestedLoop(t *testing.T) {
	windows := []struct {
		w      window.Window
		assign func(at int64) []window.Interval // the windows of a record at second at
	}{
		{window.Fixed(10 * time.Second), func(at int64) []window.Interval {
			s := at / 10 * 10
			return []window.Interval{{Start: window.Time(s) * window.Time(time.Second), End: window.Time(s+10) * window.Time(time.Second)}}
		}},
		{window.Sliding(10*time.Second, 5*time.Second), func(at int64) []window.Interval {
			var out []window.Interval
			for s := at / 5 * 5; s > at-10; s -= 5 {
				out = append(out, window.Interval{Start: window.Time(s) * window.Time(time.Second), End: window.Time(s+10) * window.Time(time.Second)})
			}
			return out
		}},
	}
	for seed := uint64(1); seed <= 12; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		var left, right []joinSide
		for i := range 20 + r.IntN(60) {
			left = append(left, joinSide{Key: fmt.Sprint("k", r.IntN(4)), At: r.Int64N(60), ID: i})
		}
		for i := range 20 + r.IntN(60) {
			right = append(right, joinSide{Key: fmt.Sprint("k", r.IntN(4)), At: r.Int64N(60), ID: 1000 + i})
		}
		wi := int(seed) % len(windows)
		var want []string
		for _, l := range left {
			for _, x := range right {
				if l.Key != x.Key {
					continue
				}
				for _, w := range windows[wi].assign(l.At) {
					if slices.Contains(windows[wi].assign(x.At), w) {
						want = append(want, fmt.Sprintf("%s %v %d %d", l.Key, w, l.ID, x.ID))
					}
				}
			}
		}
		slices.Sort(want)
		if len(want) == 0 {
			t.Fatalf("seed %d: no pairs to join", seed)
		}
		run := transcriptRuns[int(seed)%len(transcriptRuns)]
		par := 1 + int(seed)%3
		cfg := actors.DefaultConfig()
		cfg.Executor, cfg.Seed = run.exec, seed
		p := stages.NewPipeline("window-join")
		ts := func(s joinSide) time.Time { return time.Unix(s.At, 0) }
		ls := stages.EventTime(stages.FromSlice(p, left), ts, stages.MaxDelay(time.Hour))
		rs := stages.EventTime(stages.FromSlice(p, right), ts, stages.MaxDelay(time.Hour))
		key := func(s joinSide) string { return s.Key }
		c := stages.Collect(stages.WindowJoin(stages.KeyBy(ls, key), stages.KeyBy(rs, key), windows[wi].w))
		if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: par, Runtime: &cfg}); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		var got []string
		for _, j := range c.Values() {
			if j.Left.Key != j.Key || j.Right.Key != j.Key {
				t.Fatalf("seed %d: pair of key %s joins %+v and %+v", seed, j.Key, j.Left, j.Right)
			}
			got = append(got, fmt.Sprintf("%s %v %d %d", j.Key, j.Window, j.Left.ID, j.Right.ID))
		}
		slices.Sort(got)
		t.Logf("seed %d: %d pairs (%s, parallelism %d)", seed, len(got), run.name, par)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d (%s, parallelism %d, %v): %d pairs, the nested loop %d\n got %q\nwant %q", seed, run.name, par, windows[wi].w, len(got), len(want), got, want)
		}
	}
}

// TestIntervalJoinNestedLoop: an interval join of random records (keys,
// event times, bounds with a negative lower one at random) gives, as a
// multiset, the pairs a nested loop gives, at parallelism 1 to 3 on actors
// and the simulator; on the simulator with checkpoints and seeded kills of
// its instances too (its state restored from checkpoints). Lateness:
// TestIntervalStateLate in package stages.
func TestIntervalJoinNestedLoop(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		lower, upper := time.Duration(r.IntN(11)-5)*time.Second, time.Duration(r.IntN(6))*time.Second
		var left, right []joinSide
		for i := range 50 + r.IntN(100) {
			left = append(left, joinSide{Key: fmt.Sprint("k", r.IntN(5)), At: int64(i/2 + r.IntN(3)), ID: i})
		}
		for i := range 50 + r.IntN(100) {
			right = append(right, joinSide{Key: fmt.Sprint("k", r.IntN(5)), At: int64(i/2 + r.IntN(3)), ID: 1000 + i})
		}
		var want []string
		for _, l := range left {
			for _, x := range right {
				d := time.Duration(x.At-l.At) * time.Second
				if l.Key == x.Key && d >= lower && d <= upper {
					want = append(want, fmt.Sprintf("%s %d %d", l.Key, l.ID, x.ID))
				}
			}
		}
		slices.Sort(want)
		if len(want) == 0 {
			t.Fatalf("seed %d: no pairs to join", seed)
		}
		run := transcriptRuns[int(seed)%len(transcriptRuns)]
		par := 1 + int(seed)%3
		cfg := actors.DefaultConfig()
		cfg.Executor, cfg.Seed = run.exec, seed
		kills := seed%2 == 0 && run.exec.Name() == "sim"
		if kills {
			cfg.BatchRecords = 16
			cfg.Executor = actors.Sim{StepTime: time.Microsecond}
			cfg.Checkpoints = &actors.CheckpointConfig{Store: checkpoints.NewMem(), Every: 50 * time.Microsecond, Timeout: time.Second}
			cfg.Chaos = &actors.ChaosConfig{Kills: 3, Seed: seed}
		}
		p := stages.NewPipeline("interval-join")
		ts := func(s joinSide) time.Time { return time.Unix(s.At, 0) }
		ls := stages.EventTime(stages.FromSlice(p, left), ts, stages.MaxDelay(time.Hour))
		rs := stages.EventTime(stages.FromSlice(p, right), ts, stages.MaxDelay(time.Hour))
		key := func(s joinSide) string { return s.Key }
		c := stages.Collect(stages.IntervalJoin(stages.KeyBy(ls, key), stages.KeyBy(rs, key), lower, upper))
		res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: par, Runtime: &cfg})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if kills && len(res.Recoveries) == 0 {
			t.Fatalf("seed %d: no recovery under chaos", seed)
		}
		var got []string
		for _, j := range c.Values() {
			got = append(got, fmt.Sprintf("%s %d %d", j.Key, j.Left.ID, j.Right.ID))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d (%s, parallelism %d, [%v, %v], kills %v): %d pairs, the nested loop %d\n got %q\nwant %q",
				seed, run.name, par, lower, upper, kills, len(got), len(want), got, want)
		}
	}
}

// TestTopNPerWindow: TopN in a window aggregate keeps each key's and
// window's three greatest records, greatest first, as sorting them does.
func TestTopNPerWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	var recs []joinSide
	for i := range 400 {
		recs = append(recs, joinSide{Key: fmt.Sprint("k", r.IntN(3)), At: r.Int64N(40), ID: i})
	}
	want := map[string][]int{}
	for _, x := range recs {
		k := fmt.Sprintf("%s/%d", x.Key, x.At/10)
		want[k] = append(want[k], x.ID)
	}
	for k, ids := range want {
		slices.SortFunc(ids, func(a, b int) int { return b - a })
		want[k] = ids[:min(3, len(ids))]
	}
	p := stages.NewPipeline("top-n")
	in := stages.EventTime(stages.FromSlice(p, recs), func(s joinSide) time.Time { return time.Unix(s.At, 0) }, stages.MaxDelay(time.Hour))
	c := stages.Collect(stages.WindowAggregate(stages.KeyBy(in, func(s joinSide) string { return s.Key }), window.Fixed(10*time.Second),
		stages.TopN(3, func(a, b joinSide) int { return a.ID - b.ID })))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
	got := map[string][]int{}
	for _, w := range c.Values() {
		k := fmt.Sprintf("%s/%d", w.Key, int64(w.Window.Start)/int64(10*time.Second))
		for _, x := range w.Value {
			got[k] = append(got[k], x.ID)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d key windows, want %d", len(got), len(want))
	}
	for k, ids := range want {
		if !slices.Equal(got[k], ids) {
			t.Fatalf("%s: top 3 %v, want %v", k, got[k], ids)
		}
	}
}

// TestWindowAggregateAll: a window aggregate without a key, pre-combined
// on every instance, gives the panes of the same aggregate keyed by one
// constant (records shuffled, some behind the watermark, an allowed
// lateness), for fixed and sliding windows, at parallelism 1 to 3 on
// actors and the simulator: each window's on-time pane equal, and its late
// panes (discarding: each adds what came late since) summing alike, since
// late records are cut into panes by the batches they come in; and the
// window stage sees fewer records than the input.
func TestWindowAggregateAll(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		r := rand.New(rand.NewPCG(seed, 5))
		var recs []joinSide
		for i := range 2000 {
			recs = append(recs, joinSide{At: int64(i/20 + r.IntN(8)), ID: i})
		}
		w := window.Window(window.Fixed(10 * time.Second).AllowedLateness(5 * time.Second))
		if seed%2 == 0 {
			w = window.Sliding(10*time.Second, 4*time.Second).AllowedLateness(5 * time.Second)
		}
		run := transcriptRuns[int(seed)%len(transcriptRuns)]
		par := 1 + int(seed)%3
		panes := func(all bool) (map[string]string, int64) {
			cfg := actors.DefaultConfig()
			cfg.Executor, cfg.Seed, cfg.BatchRecords = run.exec, seed, 16+int(seed)*8
			p := stages.NewPipeline("window-all")
			in := stages.EventTime(stages.FromSlice(p, recs, stages.Parallelism(1)), func(s joinSide) time.Time { return time.Unix(s.At, 0) },
				stages.MaxDelay(2*time.Second))
			sum := stages.Sum(func(s joinSide) int64 { return int64(s.ID) })
			onTime, late := map[window.Interval]int64{}, map[window.Interval]int64{}
			note := func(w window.Interval, v int64, timing window.Timing) {
				if timing == window.OnTime {
					onTime[w] = v
				} else {
					late[w] += v
				}
			}
			var res *sluice.Result
			var err error
			if all {
				c := stages.Collect(stages.WindowAggregateAll(in, w, sum, stages.Name("agg")))
				res, err = sluice.Run(context.Background(), p, sluice.Options{Parallelism: par, Runtime: &cfg})
				for _, x := range c.Values() {
					note(x.Window, x.Value, x.Pane.Timing)
				}
			} else {
				c := stages.Collect(stages.WindowAggregate(stages.KeyBy(in, func(joinSide) int { return 0 }), w, sum, stages.Name("agg")))
				res, err = sluice.Run(context.Background(), p, sluice.Options{Parallelism: par, Runtime: &cfg})
				for _, x := range c.Values() {
					note(x.Window, x.Value, x.Pane.Timing)
				}
			}
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			got := map[string]string{}
			for w, v := range onTime {
				got[fmt.Sprint(w)] = fmt.Sprintf("on time %d, late %d", v, late[w])
			}
			var windowIn int64 = -1
			for _, s := range res.Stages {
				if s.Name == `window "agg"` {
					windowIn = s.Records
				}
			}
			return got, windowIn
		}
		want, _ := panes(false)
		got, windowIn := panes(true)
		if len(want) == 0 || len(got) != len(want) {
			t.Fatalf("seed %d: %d windows, keyed %d", seed, len(got), len(want))
		}
		for w, v := range want {
			if got[w] != v {
				t.Fatalf("seed %d (%s, parallelism %d): window %s: %s, keyed %s", seed, run.name, par, w, got[w], v)
			}
		}
		if windowIn < 0 || windowIn >= int64(len(recs)) {
			t.Fatalf("seed %d: the window stage took %d records of %d: not pre-combined", seed, windowIn, len(recs))
		}
	}
}
