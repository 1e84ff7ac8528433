package actors_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/stages"
)

type order struct{ User, Amount int64 }
type user struct{ ID, Age int64 }

// TestJoins compares every join kind, under each strategy and several
// parallelisms, with the same join computed with Go maps.
func TestJoins(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	orders := make([]order, 30_000)
	for i := range orders {
		orders[i] = order{User: r.Int64N(1200), Amount: r.Int64N(1000)}
	}
	var users []user
	for id := int64(0); id < 1500; id += 1 + r.Int64N(2) { // some users missing, some without orders
		users = append(users, user{ID: id, Age: 18 + id%60})
		if id%7 == 0 { // duplicate build keys
			users = append(users, user{ID: id, Age: 99})
		}
	}
	for _, kind := range []stages.JoinKind{stages.Inner, stages.LeftOuter, stages.FullOuter} {
		want := plainJoin(orders, users, kind)
		for _, strategy := range []plan.JoinStrategy{plan.JoinAuto, plan.JoinBroadcast, plan.JoinShuffle} {
			for _, par := range []int{1, 3} {
				name := fmt.Sprintf("%s/%s/par%d", kind, strategy, par)
				t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
					p := stages.NewPipeline("join")
					o := stages.KeyBy(stages.FromSlice(p, orders), func(o order) int64 { return o.User })
					u := stages.KeyBy(stages.FromSlice(p, users), func(u user) int64 { return u.ID })
					j := stages.Join(o, u, kind, stages.Strategy(strategy))
					c := stages.Collect(stages.Map(j, func(x stages.Joined[int64, order, user]) string { return joinedString(x) }))
					res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: par})
					if err != nil {
						t.Fatal(err)
					}
					got := c.Values()
					slices.Sort(got)
					if !slices.Equal(got, want) {
						t.Fatalf("%s: %d rows, want %d\nplan:\n%s", name, len(got), len(want), res.Plan)
					}
					wantBroadcast := kind != stages.FullOuter && strategy != plan.JoinShuffle
					if isBroadcast := strings.Contains(res.Plan.String(), "broadcast join"); isBroadcast != wantBroadcast {
						t.Errorf("plan broadcast=%v, want %v:\n%s", isBroadcast, wantBroadcast, res.Plan)
					}
				})
			}
		}
	}
}

func joinedString(x stages.Joined[int64, order, user]) string {
	return fmt.Sprintf("%d|%v|%v|%v|%v", x.Key, x.HasLeft, x.Left, x.HasRight, x.Right)
}

func plainJoin(orders []order, users []user, kind stages.JoinKind) []string {
	byID := map[int64][]user{}
	for _, u := range users {
		byID[u.ID] = append(byID[u.ID], u)
	}
	matched := map[int64]bool{}
	var out []string
	for _, o := range orders {
		us := byID[o.User]
		if len(us) == 0 && kind != stages.Inner {
			out = append(out, joinedString(stages.Joined[int64, order, user]{Key: o.User, Left: o, HasLeft: true}))
		}
		for _, u := range us {
			matched[u.ID] = true
			out = append(out, joinedString(stages.Joined[int64, order, user]{Key: o.User, Left: o, Right: u, HasLeft: true, HasRight: true}))
		}
	}
	if kind == stages.FullOuter {
		for _, u := range users {
			if !matched[u.ID] {
				out = append(out, joinedString(stages.Joined[int64, order, user]{Key: u.ID, Right: u, HasRight: true}))
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestBroadcastJoinThreshold checks that the planner shuffles a join whose
// build side is estimated over the threshold, and says so in the plan.
func TestBroadcastJoinThreshold(t *testing.T) {
	p := stages.NewPipeline("threshold")
	o := stages.KeyBy(stages.Sequence(p, 0, 1000), func(x int64) int64 { return x })
	u := stages.KeyBy(stages.Sequence(p, 0, 1000), func(x int64) int64 { return x })
	stages.Collect(stages.Join(o, u, stages.Inner, stages.BroadcastThreshold(1000)))
	phys, err := sluice.Plan(context.Background(), p, sluice.Options{Parallelism: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(phys.String(), "shuffle join: build side over 1000 B, 1000 rows") {
		t.Errorf("a 1000-row build side over a 1000-byte threshold was not shuffled:\n%s", phys)
	}
}

// TestSkewedJoin joins at parallelism 8 a left side where one key holds 20%
// of the rows: sampling finds the key, its rows are spread over at least 4
// instances (max/median of left rows per instance at most 2), and the
// output equals the join computed with Go maps.
func TestSkewedJoin(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	orders := make([]order, 200_000)
	for i := range orders {
		u := r.Int64N(5000)
		if r.IntN(5) == 0 {
			u = 42 // the hot key: 20% of the rows
		}
		orders[i] = order{User: u, Amount: r.Int64N(100)}
	}
	var users []user
	for id := range int64(5000) {
		users = append(users, user{ID: id, Age: id % 90})
	}
	want := plainJoin(orders, users, stages.Inner)

	for _, skew := range []bool{true, false} {
		p := stages.NewPipeline("skew")
		o := stages.KeyBy(stages.FromSlice(p, orders), func(o order) int64 { return o.User })
		u := stages.KeyBy(stages.FromSlice(p, users), func(u user) int64 { return u.ID })
		opts := []stages.JoinOption{stages.Strategy(plan.JoinShuffle), stages.Parallelism(8)}
		if !skew {
			opts = append(opts, stages.NoSkew())
		}
		j := stages.Join(o, u, stages.Inner, opts...)
		c := stages.Collect(stages.Map(j, joinedString))
		hotAt := &perInstance{counts: map[int]int{}}
		stages.Write(j, hotAt) // fuses with the join: counts where key 42 was joined
		res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2})
		if err != nil {
			t.Fatal(err)
		}
		got := c.Values()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("skew=%v: %d rows, want %d", skew, len(got), len(want))
		}
		var join actors.VertexStats
		for _, v := range res.Vertices {
			if strings.HasPrefix(v.Name, "join") {
				join = v
			}
		}
		left := slices.Clone(join.InputRecords[0])
		slices.Sort(left)
		ratio := float64(left[len(left)-1]) / float64(left[len(left)/2])
		t.Logf("skew=%v: left rows per instance %v, max/median %.2f, key 42 joined on instances %v; %s",
			skew, join.InputRecords[0], ratio, hotAt.counts, join.Note)
		if !skew {
			if ratio <= 2 {
				t.Errorf("without skew handling max/median is %.2f: the test data is not skewed", ratio)
			}
			continue
		}
		if !strings.Contains(join.Note, "key 42") {
			t.Errorf("the plan does not name the hot key 42: %s", join.Note)
		}
		holding := len(hotAt.counts)
		if ratio > 2 {
			t.Errorf("max/median of left rows per instance is %.2f, want ≤ 2", ratio)
		}
		if holding < 4 {
			t.Errorf("the hot key's rows reached %d instances, want at least 4", holding)
		}
	}
}

// perInstance is a sink that counts, per instance, the joined rows of key 42.
type perInstance struct {
	mu     sync.Mutex
	counts map[int]int
}

func (p *perInstance) Open(_ context.Context, inst stages.Instance) (stages.Writer[stages.Joined[int64, order, user]], error) {
	return &perInstanceWriter{p: p, i: inst.Index}, nil
}

type perInstanceWriter struct {
	p *perInstance
	i int
}

func (w *perInstanceWriter) Write(xs []stages.Joined[int64, order, user]) error {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	for _, x := range xs {
		if x.Key == 42 {
			w.p.counts[w.i]++
		}
	}
	return nil
}
func (w *perInstanceWriter) Prepare() error { return nil }
func (w *perInstanceWriter) Commit() error  { return nil }
func (w *perInstanceWriter) Abort() error   { return nil }

// TestJoinFuncAndRetry: JoinFunc gives what Join and a Map give, for every
// kind and strategy; a projection that panics once (on a probe batch that
// waited for the build side, or later) is retried and changes nothing.
func TestJoinFuncAndRetry(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	orders := make([]order, 5000)
	for i := range orders {
		orders[i] = order{User: r.Int64N(300), Amount: int64(i)}
	}
	var users []user
	for id := int64(0); id < 400; id += 2 {
		users = append(users, user{ID: id, Age: id % 70})
	}
	for _, kind := range []stages.JoinKind{stages.Inner, stages.LeftOuter, stages.FullOuter} {
		for _, strategy := range []plan.JoinStrategy{plan.JoinBroadcast, plan.JoinShuffle} {
			want := plainJoin(orders, users, kind)
			var panicked atomic.Bool
			p := stages.NewPipeline("joinfunc")
			o := stages.KeyBy(stages.FromSlice(p, orders), func(o order) int64 { return o.User })
			u := stages.KeyBy(stages.FromSlice(p, users), func(u user) int64 { return u.ID })
			j := stages.JoinFunc(o, u, kind, func(k int64, l order, r user, hasL, hasR bool) string {
				if l.Amount >= 2500 && panicked.CompareAndSwap(false, true) {
					panic("transient")
				}
				return joinedString(stages.Joined[int64, order, user]{Key: k, Left: l, Right: r, HasLeft: hasL, HasRight: hasR})
			}, stages.Strategy(strategy))
			c := stages.Collect(j)
			if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2, Runtime: fastRestarts()}); err != nil {
				t.Fatalf("%s/%s: %v", kind, strategy, err)
			}
			if !panicked.Load() {
				t.Fatalf("%s/%s: the projection never panicked", kind, strategy)
			}
			got := c.Values()
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("%s/%s: %d rows after a retried panic, want %d", kind, strategy, len(got), len(want))
			}
		}
	}
}
