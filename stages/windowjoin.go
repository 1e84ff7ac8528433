package stages

import (
	"slices"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/window"
)

// WindowJoined is one pair of a window join: a left and a right record of
// one key in one window.
type WindowJoined[K comparable, L, R any] struct {
	Key    K
	Window window.Interval
	Left   L
	Right  R
}

// JoinSides is a window join's state for one key and window: the records
// of each side it holds.
type JoinSides[L, R any] struct {
	Left  []L
	Right []R
}

// JoinRecord is a record of either side of a window join on its way to
// the window: Left when IsRight is false, else Right.
type JoinRecord[L, R any] struct {
	Left    L
	Right   R
	IsRight bool
}

// WindowJoin joins the left and right records of a key that fall in the
// same event-time window of w, as Beam's windowed CoGroupByKey and Flink's
// window join do: when a window's trigger fires (under the default
// trigger once, when the watermark passes the window's end) it emits
// every pair of a left and a right record of the key in the pane, an
// inner join. Both sides need event times, and keys hashed alike (the
// left side's hash routes both). Its state is each window's records of
// both sides, in key groups, checkpointed and restored as every window's
// state is; a record later than the allowed lateness is dropped and
// counted as a window's are. A trigger that fires more than once emits a
// window's pairs with each pane: all the pane holds when accumulating,
// those of the records since the last pane when discarding (pairs across
// panes are then lost: join with the default trigger, or accumulate).
func WindowJoin[K comparable, L, R any](left Keyed[K, L], right Keyed[K, R], w window.Window, opts ...AggregateOption) Stream[WindowJoined[K, L, R]] {
	loc := caller()
	keyed := joinUnion(left, right, loc, "windowjoin")
	type rec = JoinRecord[L, R]
	sides := Combine("window-join",
		func(x rec) JoinSides[L, R] {
			if x.IsRight {
				return JoinSides[L, R]{Right: []R{x.Right}}
			}
			return JoinSides[L, R]{Left: []L{x.Left}}
		},
		func(a, b JoinSides[L, R]) JoinSides[L, R] { // copies: a pane keeps what it was given
			return JoinSides[L, R]{Left: slices.Concat(a.Left, b.Left), Right: slices.Concat(a.Right, b.Right)}
		},
		func(a JoinSides[L, R]) JoinSides[L, R] { return a })
	panes, _ := windowAggregate(keyed, w, sides, false, loc, opts)
	return transform[Windowed[K, JoinSides[L, R]], WindowJoined[K, L, R]](panes, loc, "join-pairs", stageOptions{},
		func(n *plan.Node) func(*plan.Batch) *plan.Batch {
			return func(in *plan.Batch) *plan.Batch {
				xs := in.Data.([]Windowed[K, JoinSides[L, R]])
				var out []WindowJoined[K, L, R]
				var times []int64
				for i, x := range xs {
					for _, l := range x.Value.Left {
						for _, r := range x.Value.Right {
							out = append(out, WindowJoined[K, L, R]{Key: x.Key, Window: x.Window, Left: l, Right: r})
							if in.Times != nil {
								times = append(times, in.Times[i])
							}
						}
					}
				}
				return &plan.Batch{Data: out, Times: times}
			}
		})
}

// joinUnion tags both sides of a join and merges them into one stream,
// keyed by each side's key (routed by the left side's hash).
func joinUnion[K comparable, L, R any](left Keyed[K, L], right Keyed[K, R], loc, op string) Keyed[K, JoinRecord[L, R]] {
	p := left.s.p
	check(loc, op, left.s, left.key == nil)
	check(loc, op, right.s, right.key == nil)
	if right.s.p != p {
		p.fail(loc, "%s: the right side belongs to pipeline %q, not %q", op, right.s.p.Name(), p.Name())
		right = Keyed[K, R]{s: Stream[R]{p: p, node: right.s.node}, key: right.key, hash: right.hash}
	}
	type rec = JoinRecord[L, R]
	lt := transform[L, rec](left.s, loc, "join-left", stageOptions{}, func(n *plan.Node) func(*plan.Batch) *plan.Batch {
		return func(in *plan.Batch) *plan.Batch {
			xs := in.Data.([]L)
			out := make([]rec, len(xs))
			for i, x := range xs {
				out[i] = rec{Left: x}
			}
			return &plan.Batch{Data: out, Times: in.Times}
		}
	})
	rt := transform[R, rec](right.s, loc, "join-right", stageOptions{}, func(n *plan.Node) func(*plan.Batch) *plan.Batch {
		return func(in *plan.Batch) *plan.Batch {
			xs := in.Data.([]R)
			out := make([]rec, len(xs))
			for i, x := range xs {
				out[i] = rec{Right: x, IsRight: true}
			}
			return &plan.Batch{Data: out, Times: in.Times}
		}
	})
	u := p.addNode(loc, &plan.Node{Kind: plan.KindTransform, Op: "union", Out: plan.TypeOf[rec](), Inputs: []plan.Input{lt.input(), rt.input()}}, stageOptions{})
	u.Transform = identity(u)
	lk, rk := left.key, right.key
	return Keyed[K, rec]{s: Stream[rec]{p: p, node: u}, loc: loc, hash: left.hash, key: func(x rec) K {
		if x.IsRight {
			return rk(x.Right)
		}
		return lk(x.Left)
	}}
}
