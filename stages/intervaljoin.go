package stages

import (
	"container/heap"
	"fmt"
	"time"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/state"
)

// IntervalJoined is one pair of an interval join.
type IntervalJoined[K comparable, L, R any] struct {
	Key   K
	Left  L
	Right R
}

// Timed is a record with its event time (unix nanoseconds), as a join
// holds it.
type Timed[T any] struct {
	At int64
	V  T
}

// IntervalSides is an interval join's state for one key: the records of
// each side that may still meet one of the other.
type IntervalSides[L, R any] struct {
	Left  []Timed[L]
	Right []Timed[R]
}

// IntervalJoin joins each left record of a key with the right records of
// the key whose event time is within [left's + lower, left's + upper], as
// Flink's interval join does (lower may be negative; lower <= upper): a
// pair is emitted as soon as its second record arrives, at the later of
// the two times. Both sides need event times. A record behind the input
// watermark when it arrives is dropped and counted as late (its pairs
// could have been missed). Its state is each key's records that can still
// meet one of the other side, in key groups, checkpointed and restored at
// any parallelism: a left record is let go once the watermark passes its
// time + upper, a right one once it passes its time - lower.
func IntervalJoin[K comparable, L, R any](left Keyed[K, L], right Keyed[K, R], lower, upper time.Duration, opts ...AggregateOption) Stream[IntervalJoined[K, L, R]] {
	loc := caller()
	p := left.s.p
	if lower > upper {
		p.fail(loc, "intervaljoin: the lower bound %v is after the upper bound %v", lower, upper)
	}
	for _, side := range []*plan.Node{left.s.node, right.s.node} {
		if side != nil && !hasEventTime(side) && !hasTestStream(side) {
			p.fail(loc, "intervaljoin: the records have no event time: add stages.EventTime after each side's source")
			break
		}
	}
	u := joinUnion(left, right, loc, "intervaljoin")
	keyedIn := keyed(u, loc)
	node := &plan.Node{Kind: plan.KindStateful, Op: "intervaljoin", Out: plan.TypeOf[IntervalJoined[K, L, R]](),
		Inputs: []plan.Input{{From: keyedIn.node, Edge: plan.Hash, Key: kvKey[K, JoinRecord[L, R]](u.hash)}}}
	o := applyOptions(opts)
	if o.name == "" {
		o.name = fmt.Sprintf("interval join [%v, %v]", lower, upper)
	}
	n := p.addNode(loc, node, o)
	n.NewState = func(inst plan.Instance) plan.State {
		return &intervalState[K, L, R]{n: n, lower: int64(lower), upper: int64(upper), wm: minTime,
			t:      state.NewAggregate[K, IntervalSides[L, R]](groupsOf(u.hash, inst), state.Seed(inst.Seed, n.ID)),
			codecs: codecsOf[K, IntervalSides[L, R]](n)}
	}
	return Stream[IntervalJoined[K, L, R]]{p: p, node: n}
}

// intervalState is an interval join's instance: each key's records, and a
// heap of when each may be let go.
type intervalState[K comparable, L, R any] struct {
	n            *plan.Node
	lower, upper int64
	t            *state.Aggregate[K, IntervalSides[L, R]]
	codecs       stateCodecs[K, IntervalSides[L, R]]
	wm           int64
	expiry       expiryHeap[K]
	seen         map[K]bool // scratch: the keys an Advance has passed over
	late         int64
}

func (s *intervalState[K, L, R]) StepTime(in *plan.Batch, wm, _ int64, emit func(*plan.Batch)) {
	s.wm = max(s.wm, wm)
	xs := in.Data.([]KV[K, JoinRecord[L, R]])
	var out []IntervalJoined[K, L, R]
	var times []int64
	for i := range xs {
		x := &xs[i]
		at := in.Times[i]
		if at < s.wm {
			s.late++
			continue
		}
		v, _ := s.t.Find(x.Key) // a key not there yet is added empty
		// The sides are appended to, never changed in place: a snapshot
		// holds them shallowly.
		if x.Value.IsRight {
			for _, l := range v.Left {
				if at >= l.At+s.lower && at <= l.At+s.upper {
					out = append(out, IntervalJoined[K, L, R]{Key: x.Key, Left: l.V, Right: x.Value.Right})
					times = append(times, max(l.At, at))
				}
			}
			v.Right = append(v.Right, Timed[R]{At: at, V: x.Value.Right})
			heap.Push(&s.expiry, expiry[K]{at: at - s.lower, key: x.Key})
		} else {
			for _, r := range v.Right {
				if r.At >= at+s.lower && r.At <= at+s.upper {
					out = append(out, IntervalJoined[K, L, R]{Key: x.Key, Left: x.Value.Left, Right: r.V})
					times = append(times, max(r.At, at))
				}
			}
			v.Left = append(v.Left, Timed[L]{At: at, V: x.Value.Left})
			heap.Push(&s.expiry, expiry[K]{at: at + s.upper, key: x.Key})
		}
	}
	if len(out) > 0 {
		emit(&plan.Batch{Data: out, Times: times})
	}
}

// Advance lets go of the records no record to come can meet: those to
// come are at or after wm.
func (s *intervalState[K, L, R]) Advance(wm int64, _ func(*plan.Batch)) int64 {
	s.wm = max(s.wm, wm)
	if s.seen == nil {
		s.seen = map[K]bool{}
	}
	clear(s.seen)
	for len(s.expiry) > 0 && s.expiry[0].at < s.wm {
		e := heap.Pop(&s.expiry).(expiry[K])
		v, found := s.t.Get(e.key)
		if !found || s.seen[e.key] { // one pass a key lets go of all it may
			continue
		}
		s.seen[e.key] = true
		var keep IntervalSides[L, R]
		for _, l := range v.Left {
			if l.At+s.upper >= s.wm {
				keep.Left = append(keep.Left, l)
			}
		}
		for _, r := range v.Right {
			if r.At-s.lower >= s.wm {
				keep.Right = append(keep.Right, r)
			}
		}
		*v = keep
	}
	return wm
}

func (s *intervalState[K, L, R]) Step(in *plan.Batch, emit func(*plan.Batch)) {
	s.StepTime(in, s.wm, 0, emit)
}
func (s *intervalState[K, L, R]) Flush(func(*plan.Batch))       {}
func (s *intervalState[K, L, R]) Lost() bool                    { return false }
func (s *intervalState[K, L, R]) NextTimer() (int64, bool)      { return 0, false }
func (s *intervalState[K, L, R]) Fire(int64, func(*plan.Batch)) {}
func (s *intervalState[K, L, R]) Dropped() (late, closed int64) { return s.late, 0 }

// Snapshot copies the records of the keys of key groups [start, end).
func (s *intervalState[K, L, R]) Snapshot(start, end int) (func([]byte) []byte, error) {
	if s.codecs.err != nil {
		return nil, s.codecs.err
	}
	snap := s.t.Snapshot(state.Range{Start: start, End: end})
	kc, vc := s.codecs.k, s.codecs.v
	return func(dst []byte) []byte { return snap.Append(dst, kc, vc) }, nil
}

// Restore adds the records of a chunk and queues when each may be let go.
func (s *intervalState[K, L, R]) Restore(chunk []byte, start, end int) error {
	if s.codecs.err != nil {
		return s.codecs.err
	}
	if err := s.t.Restore(chunk, state.Range{Start: start, End: end}, s.codecs.k, s.codecs.v); err != nil {
		return fmt.Errorf("restoring stage %s: %w", s.n, err)
	}
	s.expiry = s.expiry[:0]
	s.t.All(func(k K, v *IntervalSides[L, R]) {
		for _, l := range v.Left {
			s.expiry = append(s.expiry, expiry[K]{at: l.At + s.upper, key: k})
		}
		for _, r := range v.Right {
			s.expiry = append(s.expiry, expiry[K]{at: r.At - s.lower, key: k})
		}
	})
	heap.Init(&s.expiry)
	return nil
}

// expiry is when a key's record may be let go.
type expiry[K comparable] struct {
	at  int64
	key K
}

type expiryHeap[K comparable] []expiry[K]

func (h expiryHeap[K]) Len() int           { return len(h) }
func (h expiryHeap[K]) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap[K]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap[K]) Push(x any)        { *h = append(*h, x.(expiry[K])) }
func (h *expiryHeap[K]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
