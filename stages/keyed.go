package stages

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"unsafe"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/state"
	"github.com/sluice-data/sluice/window"
)

// KV is a key and a value.
type KV[K comparable, V any] struct {
	Key   K
	Value V
}

// Keyed is a stream with a key function, waiting for a keyed stage
// (Aggregate, GroupByKey) to consume it. Records are routed to the instance
// that owns their key's key group.
type Keyed[K comparable, T any] struct {
	s    Stream[T]
	key  func(T) K
	hash func(K) uint64
	loc  string
}

// KeyBy keys s by key. Keys of integer and string kinds hash natively; other
// key types are hashed through their %v rendering unless HashWith gives a
// hash function. Hashes are the same in every process.
func KeyBy[T any, K comparable](s Stream[T], key func(T) K, opts ...KeyOption[K]) Keyed[K, T] {
	loc := caller()
	check(loc, "keyby", s, key == nil)
	h := hasher[K]()
	for _, o := range opts {
		if o.hash != nil {
			h = o.hash
		}
	}
	return Keyed[K, T]{s: s, key: key, hash: h, loc: loc}
}

// KeyOption configures KeyBy.
type KeyOption[K comparable] struct{ hash func(K) uint64 }

// HashWith hashes keys with h, which must give equal keys equal hashes in
// every process.
func HashWith[K comparable](h func(K) uint64) KeyOption[K] { return KeyOption[K]{hash: h} }

// mix64 is SplitMix64's finaliser: a bijection that spreads every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func hasher[K comparable]() func(K) uint64 {
	var zero K
	switch any(zero).(type) {
	case int, int64, uint, uint64, uintptr:
		return func(k K) uint64 { return mix64(*(*uint64)(unsafe.Pointer(&k))) }
	case int32, uint32:
		return func(k K) uint64 { return mix64(uint64(*(*uint32)(unsafe.Pointer(&k)))) }
	case int16, uint16:
		return func(k K) uint64 { return mix64(uint64(*(*uint16)(unsafe.Pointer(&k)))) }
	case int8, uint8, bool:
		return func(k K) uint64 { return mix64(uint64(*(*uint8)(unsafe.Pointer(&k)))) }
	case string:
		return func(k K) uint64 { return fnv64(*(*string)(unsafe.Pointer(&k))) }
	}
	return func(k K) uint64 { return fnv64(fmt.Sprintf("%v", k)) }
}

func fnv64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return mix64(h.Sum64())
}

// kvKey partitions KV[K, V] records by key.
func kvKey[K comparable, V any](hash func(K) uint64) *plan.KeySpec {
	return &plan.KeySpec{
		Partition: func(in *plan.Batch, route []int32, outs []*plan.Batch, hot *plan.Hot, salt *uint64) {
			xs := in.Data.([]KV[K, V])
			bufs := make([][]KV[K, V], len(outs))
			for c, o := range outs {
				bufs[c], _ = o.Data.([]KV[K, V])
			}
			groups := uint64(len(route))
			// Keep each channel's times as long as its records: pad with
			// zeros where timed and untimed batches meet.
			for c, o := range outs {
				if in.Times != nil && len(o.Times) < len(bufs[c]) {
					o.Times = append(o.Times, make([]int64, len(bufs[c])-len(o.Times))...)
				}
			}
			for i, x := range xs {
				h := hash(x.Key)
				c := route[h%groups]
				if hot != nil {
					if chs, ok := hot.Channels[h]; ok {
						if hot.Replicate {
							for _, c := range chs[1:] {
								bufs[c] = append(bufs[c], x)
								if in.Times != nil {
									outs[c].Times = append(outs[c].Times, in.Times[i])
								}
							}
							c = chs[0]
						} else {
							c = chs[*salt%uint64(len(chs))]
							*salt++
						}
					}
				}
				bufs[c] = append(bufs[c], x)
				if in.Times != nil {
					outs[c].Times = append(outs[c].Times, in.Times[i])
				}
			}
			for c, o := range outs {
				o.Data = bufs[c]
				if in.Times == nil && o.Times != nil && len(o.Times) < len(bufs[c]) {
					if len(o.Times) == 0 {
						o.Times = nil // made ready for times that never came (core's output)
					} else {
						o.Times = append(o.Times, make([]int64, len(bufs[c])-len(o.Times))...)
					}
				}
			}
		},
		Hashes: func(b *plan.Batch, dst []uint64) []uint64 {
			for _, x := range b.Data.([]KV[K, V]) {
				dst = append(dst, hash(x.Key))
			}
			return dst
		},
		Format: func(b *plan.Batch, i int) string { return fmt.Sprint(b.Data.([]KV[K, V])[i].Key) },
	}
}

// Combiner folds the records of a key into an accumulator A and turns it into
// a result O. Merge must be associative and commutative: records are
// combined before the shuffle, per instance, in no fixed order. In
// accumulating windows a pane's accumulator goes on being merged into after
// the pane fires, so an accumulator with shared memory (a slice, a map)
// needs a Merge that does not modify its first argument in place, or an
// Output that copies.
type Combiner[T, A, O any] struct {
	Name string
	// Zero is the empty accumulator, for windows that fire with no records
	// (an on-time pane in discarding mode); nil means A's zero value.
	Zero   func() A
	Lift   func(T) A    // the accumulator of one record
	Merge  func(A, A) A // two accumulators into one
	Output func(A) O    // the result of an accumulator
	// safe marks built-in combiners whose Merge cannot panic.
	safe bool
}

// Combine makes a user combiner.
func Combine[T, A, O any](name string, lift func(T) A, merge func(A, A) A, output func(A) O) Combiner[T, A, O] {
	return Combiner[T, A, O]{Name: name, Lift: lift, Merge: merge, Output: output}
}

// Number is what Sum adds.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

func same[A any](a A) A { return a }

// Sum adds f over a key's records.
func Sum[T any, N Number](f func(T) N) Combiner[T, N, N] {
	return Combiner[T, N, N]{Name: "sum", Lift: f, Merge: func(a, b N) N { return a + b }, Output: same[N], safe: true}
}

// Count counts a key's records.
func Count[T any]() Combiner[T, int64, int64] {
	return Combiner[T, int64, int64]{Name: "count", Lift: func(T) int64 { return 1 },
		Merge: func(a, b int64) int64 { return a + b }, Output: same[int64], safe: true}
}

// Min keeps the least f over a key's records.
func Min[T any, N cmp.Ordered](f func(T) N) Combiner[T, N, N] {
	return Combiner[T, N, N]{Name: "min", Lift: f, Merge: func(a, b N) N { return min(a, b) }, Output: same[N], safe: true}
}

// Max keeps the greatest f over a key's records.
func Max[T any, N cmp.Ordered](f func(T) N) Combiner[T, N, N] {
	return Combiner[T, N, N]{Name: "max", Lift: f, Merge: func(a, b N) N { return max(a, b) }, Output: same[N], safe: true}
}

// TopN keeps the n greatest of a key's records by cmp (a negative result:
// a before b), greatest first, as Flink's ROW_NUMBER() … <= n per window
// does; give cmp a total order for a result that does not depend on the
// order records arrive in.
func TopN[T any](n int, cmp func(a, b T) int) Combiner[T, []T, []T] {
	n = max(n, 1)
	desc := func(a, b T) int { return cmp(b, a) }
	return Combiner[T, []T, []T]{Name: fmt.Sprintf("top %d", n),
		Lift: func(x T) []T { return []T{x} },
		Merge: func(a, b []T) []T { // a new slice: a pane keeps what it was given
			out := make([]T, 0, min(n, len(a)+len(b)))
			for len(out) < n && (len(a) > 0 || len(b) > 0) {
				if len(b) == 0 || len(a) > 0 && desc(a[0], b[0]) <= 0 {
					out, a = append(out, a[0]), a[1:]
				} else {
					out, b = append(out, b[0]), b[1:]
				}
			}
			return out
		},
		Output: slices.Clone[[]T]}
}

// Aggregate combines the records of each key in each window of w. Records are
// pre-combined per instance before the shuffle (as Spark's map-side combine),
// so a hot key costs one record per instance, not one per input record.
// Only the global window, which fires at the end of input, is supported so far.
func Aggregate[K comparable, T, A, O any](k Keyed[K, T], w window.Window, c Combiner[T, A, O], opts ...AggregateOption) Stream[KV[K, O]] {
	loc := caller()
	p := k.s.p
	check(loc, "aggregate", k.s, c.Lift == nil || c.Merge == nil || c.Output == nil || k.key == nil)
	if w == nil || !w.IsGlobal() {
		p.fail(loc, "aggregate: window %v: Aggregate is for the global window; use WindowAggregate for event-time windows", w)
	}
	o := applyOptions(opts)
	if o.name == "" {
		o.name = c.Name
	}
	if o.name == "" {
		o.name = "aggregate"
	}
	pre := p.addNode(loc, &plan.Node{Kind: plan.KindStateful, Op: "combine", Out: plan.TypeOf[KV[K, A]](),
		Inputs: []plan.Input{k.s.input()}}, stageOptions{name: o.name})
	pre.NewState = func(inst plan.Instance) plan.State {
		return newCombineState(pre, k.key, c, combineLimit[K, A](), inst.Seed)
	}
	agg := p.addNode(loc, &plan.Node{Kind: plan.KindStateful, Op: "aggregate", Out: plan.TypeOf[KV[K, O]](),
		Inputs: []plan.Input{{From: pre, Edge: plan.Hash, Key: kvKey[K, A](k.hash)}}}, o)
	agg.NewState = func(inst plan.Instance) plan.State {
		return newAggregateState[K, T, A, O](agg, c, groupsOf(k.hash, inst), inst.Seed)
	}
	return Stream[KV[K, O]]{p: p, node: agg}
}

// combineLimit bounds a pre-combiner's table to about 32 MiB.
func combineLimit[K comparable, A any]() int {
	var kv KV[K, A]
	return max(1024, (32<<20)/int(unsafe.Sizeof(kv)+16))
}

// combineState pre-combines records per key before the shuffle, emitting its
// partial accumulators when its table is full and at the end of input.
type combineState[K comparable, T, A, O any] struct {
	n     *plan.Node
	key   func(T) K
	c     Combiner[T, A, O]
	limit int
	t     *hashTable[K, A]
	keys  []K
	accs  []A
	lost  bool
	// in counts the records combined into the table. When the table fills
	// up holding nearly as many keys as it took records (many keys, few
	// records each), combining costs a lookup per record and saves little,
	// so the state passes lifted records straight on from then, as Spark's
	// adaptive partial aggregation does.
	in          int64
	judged      bool
	passThrough bool
}

// Combining is judged once, when combineSample records have gone into the
// table or it has filled up, whichever comes first: it is kept only if the
// table holds at most combineMaxShare of those records (they reduced at
// least 2 to 1). With 100 k keys the table holds a fifth of the first 512 k
// records and combining stays; with 1 M keys and 10 records each it holds
// four fifths, and records pass straight on.
const (
	combineSample   = 1 << 19
	combineMaxShare = 0.5
)

func newCombineState[K comparable, T, A, O any](n *plan.Node, key func(T) K, c Combiner[T, A, O], limit int, seed uint64) *combineState[K, T, A, O] {
	return &combineState[K, T, A, O]{n: n, key: key, c: c, limit: limit, t: newHashTable[K, A](seed, n.ID)}
}

func (s *combineState[K, T, A, O]) Step(in *plan.Batch, emit func(*plan.Batch)) {
	xs := in.Data.([]T)
	if s.passThrough {
		// Lifted records go straight out: nothing of the state changes.
		out := make([]KV[K, A], len(xs))
		i := -1
		defer func() { repanic(recover(), s.n, xs, i) }()
		for i = range xs {
			out[i] = KV[K, A]{Key: s.key(xs[i]), Value: s.c.Lift(xs[i])}
		}
		emit(&plan.Batch{Data: out})
		return
	}
	// Phase 1 runs the user's functions without touching the state, so a
	// panic here leaves the state as it was and the batch can be retried.
	s.keys = s.keys[:0]
	s.accs = s.accs[:0]
	func() {
		i := -1
		defer func() { repanic(recover(), s.n, xs, i) }()
		for i = range xs {
			s.keys = append(s.keys, s.key(xs[i]))
			s.accs = append(s.accs, s.c.Lift(xs[i]))
		}
	}()
	// Phase 2 merges; only a user Merge can panic here, and then the state is lost.
	s.lost = !s.c.safe
	t := s.t
	s.in += int64(len(s.keys))
	for i, k := range s.keys {
		if v, found := t.Find(k); found {
			*v = s.c.Merge(*v, s.accs[i])
		} else {
			*v = s.accs[i]
		}
	}
	s.lost = false
	if !s.judged && (s.in >= combineSample || t.Len() >= s.limit) {
		s.judged = true
		if float64(t.Len()) > combineMaxShare*float64(s.in) {
			s.passThrough = true
			s.Flush(emit)
			s.t.Release()
			return
		}
	}
	if t.Len() >= s.limit {
		s.Flush(emit)
	}
}

func (s *combineState[K, T, A, O]) Flush(emit func(*plan.Batch)) {
	if s.t.Len() == 0 {
		return
	}
	out := make([]KV[K, A], 0, s.t.Len())
	s.t.All(func(k K, v *A) { out = append(out, KV[K, A]{Key: k, Value: *v}) })
	s.t.Clear()
	emit(&plan.Batch{Data: out})
}

// FlushBarrier passes the partial accumulators on at a checkpoint barrier,
// ahead of it: the aggregate after the shuffle holds them in its snapshot,
// so the pre-combiner has no keyed state to checkpoint. Whether it passes
// records straight on is a judgment of its own input that a restored
// instance makes afresh; either way the aggregate's results are the same.
func (s *combineState[K, T, A, O]) FlushBarrier(emit func(*plan.Batch)) { s.Flush(emit) }

func (s *combineState[K, T, A, O]) Lost() bool { return s.lost }

// aggregateState merges partial accumulators per key and emits the results
// at the end of input. Its table is keyed state (state.Aggregate): it can
// be snapshot and restored by range of key groups.
type aggregateState[K comparable, T, A, O any] struct {
	n      *plan.Node
	c      Combiner[T, A, O]
	t      *state.Aggregate[K, A]
	codecs stateCodecs[K, A]
	lost   bool
}

func newAggregateState[K comparable, T, A, O any](n *plan.Node, c Combiner[T, A, O], groups state.Groups[K], seed uint64) *aggregateState[K, T, A, O] {
	return &aggregateState[K, T, A, O]{n: n, c: c, t: state.NewAggregate[K, A](groups, state.Seed(seed, n.ID)), codecs: codecsOf[K, A](n)}
}

// Snapshot copies the accumulators of key groups [start, end)
// (state.Aggregate's Snapshot: a copy of the table's slots).
func (s *aggregateState[K, T, A, O]) Snapshot(start, end int) (func([]byte) []byte, error) {
	if s.codecs.err != nil {
		return nil, s.codecs.err
	}
	snap := s.t.Snapshot(state.Range{Start: start, End: end})
	kc, ac := s.codecs.k, s.codecs.v
	return func(dst []byte) []byte { return snap.Append(dst, kc, ac) }, nil
}

// Restore adds the accumulators of a chunk.
func (s *aggregateState[K, T, A, O]) Restore(chunk []byte, start, end int) error {
	if s.codecs.err != nil {
		return s.codecs.err
	}
	if err := s.t.Restore(chunk, state.Range{Start: start, End: end}, s.codecs.k, s.codecs.v); err != nil {
		return fmt.Errorf("restoring stage %s: %w", s.n, err)
	}
	return nil
}

func (s *aggregateState[K, T, A, O]) Step(in *plan.Batch, _ func(*plan.Batch)) {
	xs := in.Data.([]KV[K, A])
	s.lost = !s.c.safe
	t := s.t
	for i := range xs {
		x := &xs[i]
		if v, found := t.Find(x.Key); found {
			*v = s.c.Merge(*v, x.Value)
		} else {
			*v = x.Value
		}
	}
	s.lost = false
}

func (s *aggregateState[K, T, A, O]) Flush(emit func(*plan.Batch)) {
	rows := make([]KV[K, A], 0, s.t.Len())
	s.t.All(func(k K, v *A) { rows = append(rows, KV[K, A]{Key: k, Value: *v}) })
	out := make([]KV[K, O], len(rows))
	func() {
		i := -1
		defer func() { repanic(recover(), s.n, rows, i) }()
		for i = range rows {
			out[i] = KV[K, O]{Key: rows[i].Key, Value: s.c.Output(rows[i].Value)}
		}
	}()
	const chunk = 1 << 14
	for i := 0; i < len(out); i += chunk {
		emit(&plan.Batch{Data: out[i:min(i+chunk, len(out))]})
	}
	s.t.Release()
}

func (s *aggregateState[K, T, A, O]) Lost() bool { return s.lost }

// GroupByKey gathers the records of each key into one slice, emitted at the
// end of input. Use Aggregate when the group can be folded: it moves far less
// data.
func GroupByKey[K comparable, T any](k Keyed[K, T], opts ...AggregateOption) Stream[KV[K, []T]] {
	loc := caller()
	p := k.s.p
	check(loc, "groupbykey", k.s, k.key == nil)
	keyed := transform[T, KV[K, T]](k.s, loc, "key", stageOptions{}, func(n *plan.Node) func(*plan.Batch) *plan.Batch {
		return func(in *plan.Batch) *plan.Batch {
			xs := in.Data.([]T)
			out := make([]KV[K, T], len(xs))
			i := -1
			defer func() { repanic(recover(), n, xs, i) }()
			for i = range xs {
				out[i] = KV[K, T]{Key: k.key(xs[i]), Value: xs[i]}
			}
			return &plan.Batch{Data: out, Times: in.Times}
		}
	})
	g := p.addNode(loc, &plan.Node{Kind: plan.KindStateful, Op: "groupbykey", Out: plan.TypeOf[KV[K, []T]](),
		Inputs: []plan.Input{{From: keyed.node, Edge: plan.Hash, Key: kvKey[K, T](k.hash)}}}, applyOptions(opts))
	g.NewState = func(inst plan.Instance) plan.State {
		return &groupState[K, T]{n: g, l: state.NewLists[K, T](groupsOf(k.hash, inst)), codecs: codecsOf[K, T](g)}
	}
	return Stream[KV[K, []T]]{p: p, node: g}
}

// groupState gathers each key's records (state.Lists: keys in the order of
// their first record, kept by key group for checkpoints).
type groupState[K comparable, T any] struct {
	n      *plan.Node
	l      *state.Lists[K, T]
	codecs stateCodecs[K, T]
}

func (s *groupState[K, T]) Step(in *plan.Batch, _ func(*plan.Batch)) {
	for _, x := range in.Data.([]KV[K, T]) {
		s.l.Add(x.Key, x.Value)
	}
}

func (s *groupState[K, T]) Flush(emit func(*plan.Batch)) {
	rows := s.l.Rows()
	if len(rows) > 0 {
		out := make([]KV[K, []T], len(rows))
		for i, r := range rows {
			out[i] = KV[K, []T]{Key: r.Key, Value: r.Values}
		}
		emit(&plan.Batch{Data: out})
	}
	s.l.Release()
}

func (s *groupState[K, T]) Lost() bool { return false }

// Snapshot copies the lists of key groups [start, end) (state.Lists'
// Snapshot: a key and a slice header per key).
func (s *groupState[K, T]) Snapshot(start, end int) (func([]byte) []byte, error) {
	if s.codecs.err != nil {
		return nil, s.codecs.err
	}
	snap := s.l.Snapshot(state.Range{Start: start, End: end})
	kc, vc := s.codecs.k, s.codecs.v
	return func(dst []byte) []byte { return snap.Append(dst, kc, vc) }, nil
}

// Restore adds the lists of a chunk.
func (s *groupState[K, T]) Restore(chunk []byte, start, end int) error {
	if s.codecs.err != nil {
		return s.codecs.err
	}
	if err := s.l.Restore(chunk, state.Range{Start: start, End: end}, s.codecs.k, s.codecs.v); err != nil {
		return fmt.Errorf("restoring stage %s: %w", s.n, err)
	}
	return nil
}
