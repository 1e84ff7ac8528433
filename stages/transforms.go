package stages

import "github.com/sluice-data/sluice/plan"

// transform adds a stateless node over one input.
func transform[T, U any](s Stream[T], loc, op string, opts []Option,
	fn func(n *plan.Node) func(*plan.Batch) *plan.Batch) Stream[U] {
	n := s.p.addNode(loc, &plan.Node{Kind: plan.KindTransform, Op: op, Out: plan.TypeOf[U](),
		Inputs: []plan.Input{s.input()}}, opts)
	n.Transform = fn(n)
	return Stream[U]{p: s.p, node: n}
}

// Map applies f to every record.
func Map[T, U any](s Stream[T], f func(T) U, opts ...Option) Stream[U] {
	loc := caller()
	check(loc, "map", s, f == nil)
	return transform[T, U](s, loc, "map", opts, func(n *plan.Node) func(*plan.Batch) *plan.Batch {
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
func Filter[T any](s Stream[T], keep func(T) bool, opts ...Option) Stream[T] {
	loc := caller()
	check(loc, "filter", s, keep == nil)
	return transform[T, T](s, loc, "filter", opts, func(n *plan.Node) func(*plan.Batch) *plan.Batch {
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
func FlatMap[T, U any](s Stream[T], f func(x T, emit func(U)), opts ...Option) Stream[U] {
	loc := caller()
	check(loc, "flatmap", s, f == nil)
	return transform[T, U](s, loc, "flatmap", opts, func(n *plan.Node) func(*plan.Batch) *plan.Batch {
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

// MapBatches applies f to whole batches of records, for work that is cheaper
// per batch (vectorised code, a model). f must not keep or modify its input.
// Its output carries no event times.
func MapBatches[T, U any](s Stream[T], f func([]T) []U, opts ...Option) Stream[U] {
	loc := caller()
	check(loc, "mapbatches", s, f == nil)
	return transform[T, U](s, loc, "mapbatches", opts, func(n *plan.Node) func(*plan.Batch) *plan.Batch {
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
	n := p.addNode(loc, &plan.Node{Kind: plan.KindTransform, Op: "union", Out: plan.TypeOf[T](), Inputs: inputs}, nil)
	n.Transform = identity(n)
	return Stream[T]{p: p, node: n}
}
