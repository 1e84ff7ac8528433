package stages

import (
	"fmt"

	"github.com/sluice-data/sluice/plan"
)

// transform adds a stateless node over one input.
func transform[T, U any](s Stream[T], loc, op string, o stageOptions,
	fn func(n *plan.Node) func(*plan.Batch) *plan.Batch) Stream[U] {
	n := s.p.addNode(loc, &plan.Node{Kind: plan.KindTransform, Op: op, Out: plan.TypeOf[U](),
		Inputs: []plan.Input{s.input()}}, o)
	n.Transform = fn(n)
	return Stream[U]{p: s.p, node: n}
}

// Map applies f to every record.
func Map[T, U any](s Stream[T], f func(T) U, opts ...MapOption) Stream[U] {
	loc := caller()
	check(loc, "map", s, f == nil)
	return transform[T, U](s, loc, "map", applyOptions(opts), func(n *plan.Node) func(*plan.Batch) *plan.Batch {
		return func(in *plan.Batch) *plan.Batch {
			xs := in.Data.([]T)
			out := make([]U, len(xs))
			i := -1
			defer func() { repanic(recover(), n, xs, i) }()
			for i = range xs {
				out[i] = f(xs[i])
			}
			return &plan.Batch{Data: out, Times: in.Times}
		}
	})
}

// Filter keeps the records for which keep returns true.
func Filter[T any](s Stream[T], keep func(T) bool, opts ...MapOption) Stream[T] {
	loc := caller()
	check(loc, "filter", s, keep == nil)
	return transform[T, T](s, loc, "filter", applyOptions(opts), func(n *plan.Node) func(*plan.Batch) *plan.Batch {
		return func(in *plan.Batch) *plan.Batch {
			xs := in.Data.([]T)
			out := make([]T, 0, len(xs))
			var times []int64
			if in.Times != nil {
				times = make([]int64, 0, len(xs))
			}
			i := -1
			defer func() { repanic(recover(), n, xs, i) }()
			for i = range xs {
				if keep(xs[i]) {
					out = append(out, xs[i])
					if times != nil {
						times = append(times, in.Times[i])
					}
				}
			}
			return &plan.Batch{Data: out, Times: times}
		}
	})
}

// FlatMap calls f for every record; f emits any number of outputs, each
// with the event time of its input.
func FlatMap[T, U any](s Stream[T], f func(x T, emit func(U)), opts ...MapOption) Stream[U] {
	loc := caller()
	check(loc, "flatmap", s, f == nil)
	return transform[T, U](s, loc, "flatmap", applyOptions(opts), func(n *plan.Node) func(*plan.Batch) *plan.Batch {
		return func(in *plan.Batch) *plan.Batch {
			xs := in.Data.([]T)
			out := make([]U, 0, len(xs))
			var times []int64
			i := -1
			emit := func(u U) {
				out = append(out, u)
				if in.Times != nil {
					times = append(times, in.Times[i])
				}
			}
			defer func() { repanic(recover(), n, xs, i) }()
			for i = range xs {
				f(xs[i], emit)
			}
			return &plan.Batch{Data: out, Times: times}
		}
	})
}

// FlatMapSide is FlatMap with a side output: f emits results with out and
// records for the side stream (dead letters, rejects) with side. The side
// stream must be read by some stage: records are never dropped silently.
func FlatMapSide[T, U, D any](s Stream[T], f func(x T, out func(U), side func(D)), opts ...MapOption) (Stream[U], Stream[D]) {
	loc := caller()
	check(loc, "flatmap", s, f == nil)
	n := s.p.addNode(loc, &plan.Node{Kind: plan.KindTransform, Op: "flatmap", Out: plan.TypeOf[U](),
		Side: []*plan.Type{plan.TypeOf[D]()}, Inputs: []plan.Input{s.input()}}, applyOptions(opts))
	n.Tee = func(in *plan.Batch) (*plan.Batch, []*plan.Batch) {
		xs := in.Data.([]T)
		out := make([]U, 0, len(xs))
		var side []D
		var times, sideTimes []int64
		i := -1
		emit := func(u U) {
			out = append(out, u)
			if in.Times != nil {
				times = append(times, in.Times[i])
			}
		}
		reject := func(d D) {
			side = append(side, d)
			if in.Times != nil {
				sideTimes = append(sideTimes, in.Times[i])
			}
		}
		defer func() { repanic(recover(), n, xs, i) }()
		for i = range xs {
			f(xs[i], emit, reject)
		}
		return &plan.Batch{Data: out, Times: times}, []*plan.Batch{{Data: side, Times: sideTimes}}
	}
	return Stream[U]{p: s.p, node: n}, Stream[D]{p: s.p, node: n, port: 1}
}

// DeadLetter is a record that a stage could not process, with why.
type DeadLetter struct {
	Stage  string // the stage that rejected it
	Where  string // where the record came from (file:line), if known
	Record string // the record, formatted
	Err    string
}

// Explain implements plan.Explained: a job's explain-why shows the
// rejected record and the error.
func (d DeadLetter) Explain() (record, rule string) {
	rule = "rejected: " + d.Err
	if d.Where != "" {
		rule += " (record from " + d.Where + ")"
	}
	return d.Record, rule
}

// TryMap applies f to every record; records for which f fails go to the
// returned dead-letter stream, which must be read (written somewhere, or
// counted): nothing is dropped silently.
func TryMap[T, U any](s Stream[T], f func(T) (U, error), opts ...MapOption) (Stream[U], Stream[DeadLetter]) {
	loc := caller()
	check(loc, "trymap", s, f == nil)
	var stage string
	main, dead := FlatMapSide(s, func(x T, out func(U), side func(DeadLetter)) {
		u, err := f(x)
		if err != nil {
			side(DeadLetter{Stage: stage, Record: formatRecord(x), Err: err.Error()})
			return
		}
		out(u)
	}, append([]MapOption{Name("trymap")}, opts...)...)
	main.node.Op, main.node.Loc = "trymap", loc
	stage = main.node.String()
	return main, dead
}

func formatRecord(x any) string {
	s := fmt.Sprintf("%+v", x)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// MapBatches applies f to whole batches of records, for work that is cheaper
// per batch (vectorised code, a model). f must not keep or modify its input.
// Its output carries no event times.
func MapBatches[T, U any](s Stream[T], f func([]T) []U, opts ...MapOption) Stream[U] {
	loc := caller()
	check(loc, "mapbatches", s, f == nil)
	return transform[T, U](s, loc, "mapbatches", applyOptions(opts), func(n *plan.Node) func(*plan.Batch) *plan.Batch {
		return func(in *plan.Batch) *plan.Batch {
			xs := in.Data.([]T)
			defer func() { repanic(recover(), n, xs, -1) }()
			return &plan.Batch{Data: f(xs)}
		}
	})
}

func identity(*plan.Node) func(*plan.Batch) *plan.Batch {
	return func(b *plan.Batch) *plan.Batch { return b }
}

// Rebalance makes the next stage receive s's batches round-robin over its
// instances. It adds no stage.
func Rebalance[T any](s Stream[T]) Stream[T] {
	check(caller(), "rebalance", s, false)
	s.edge = plan.Rebalance
	return s
}

// Broadcast makes every instance of the next stage receive every record of
// s. It adds no stage.
func Broadcast[T any](s Stream[T]) Stream[T] {
	check(caller(), "broadcast", s, false)
	s.edge = plan.Broadcast
	return s
}

// Union merges streams of one type. Records of different inputs interleave in
// no fixed order.
func Union[T any](ss ...Stream[T]) Stream[T] {
	loc := caller()
	if len(ss) == 0 {
		panic("stages: " + loc + ": Union of no streams")
	}
	p := ss[0].p
	var inputs []plan.Input
	for i, s := range ss {
		check(loc, "union", s, false)
		if s.p != p {
			p.fail(loc, "union: input %d belongs to pipeline %q, not %q", i, s.p.Name(), p.Name())
			continue
		}
		inputs = append(inputs, s.input())
	}
	if len(ss) == 1 {
		return ss[0]
	}
	n := p.addNode(loc, &plan.Node{Kind: plan.KindTransform, Op: "union", Out: plan.TypeOf[T](), Inputs: inputs}, stageOptions{})
	n.Transform = identity(n)
	return Stream[T]{p: p, node: n}
}
