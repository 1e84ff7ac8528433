package stages

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/state"
)

// JoinKind says which unmatched records a join keeps.
type JoinKind int

const (
	// Inner keeps only keys present on both sides.
	Inner JoinKind = iota
	// LeftOuter also keeps left records without a match.
	LeftOuter
	// FullOuter also keeps unmatched records of both sides.
	FullOuter
)

func (k JoinKind) String() string { return [...]string{"inner", "left outer", "full outer"}[k] }

// Joined is one output of a join: a key and a record of each side. HasLeft
// and HasRight say which sides matched (both, for an inner join).
type Joined[K comparable, L, R any] struct {
	Key      K
	Left     L
	Right    R
	HasLeft  bool
	HasRight bool
}

// DefaultBroadcastThreshold is the build-side size under which a join is
// broadcast by default: 256 MiB of estimated in-memory hash table, enough
// for a dimension table of a few million rows. (Spark's default of 10 MB
// is sized for serialized rows shipped to every executor; here the table is
// built once per process and shared by its instances.)
const DefaultBroadcastThreshold = 256 << 20

// Join joins left and right on equal keys. The right side is the build side:
// it is held in memory, in one hash table per process when the join is
// broadcast (the planner's choice when the right side's estimated size is
// under the threshold; see BroadcastThreshold and Strategy), or partitioned
// by key with the left side otherwise. Every pair of matching records gives
// one output; unmatched records are kept as kind says.
func Join[K comparable, L, R any](left Keyed[K, L], right Keyed[K, R], kind JoinKind, opts ...JoinOption) Stream[Joined[K, L, R]] {
	return joinFunc(left, right, kind, func(k K, l L, r R, hasLeft, hasRight bool) Joined[K, L, R] {
		return Joined[K, L, R]{Key: k, Left: l, Right: r, HasLeft: hasLeft, HasRight: hasRight}
	}, caller(), opts)
}

// JoinFunc is Join with the output made by f from each match (or unmatched
// record, with hasLeft or hasRight false), saving the Joined record and a
// Map after it: what a feature join that projects columns wants.
func JoinFunc[K comparable, L, R, O any](left Keyed[K, L], right Keyed[K, R], kind JoinKind,
	f func(key K, l L, r R, hasLeft, hasRight bool) O, opts ...JoinOption) Stream[O] {
	return joinFunc(left, right, kind, f, caller(), opts)
}

func joinFunc[K comparable, L, R, O any](left Keyed[K, L], right Keyed[K, R], kind JoinKind,
	f func(key K, l L, r R, hasLeft, hasRight bool) O, loc string, opts []JoinOption) Stream[O] {
	p := left.s.p
	check(loc, "join", left.s, left.key == nil || f == nil)
	check(loc, "join", right.s, right.key == nil)
	if right.s.p != p {
		p.fail(loc, "join: the right side belongs to pipeline %q, not %q", right.s.p.Name(), p.Name())
		return Stream[O]{p: p, node: left.s.node}
	}
	o := applyOptions(opts)
	l := keyed(left, loc)
	r := keyed(right, loc)
	var kv KV[K, R]
	spec := &plan.JoinSpec{Strategy: o.strategy, Threshold: DefaultBroadcastThreshold, Broadcastable: kind != FullOuter,
		EntryBytes: int64(unsafe.Sizeof(kv)) + 48}
	if o.threshold > 0 {
		spec.Threshold = o.threshold
	}
	// A full outer join emits unmatched build rows: with a hot key's rows
	// copied to several instances, each would emit them, so it is not split.
	spec.Skew = plan.SkewSpec{Off: o.skewOff || kind == FullOuter, Factor: 2, MinShare: 0.05}
	if o.skewFactor > 0 {
		spec.Skew.Factor, spec.Skew.MinShare = o.skewFactor, o.skewShare
	}
	for _, k := range o.hotKeys {
		key, ok := k.(K)
		if !ok {
			p.fail(loc, "join: hot key %v is a %T, not the join's key type %T", k, k, key)
			continue
		}
		if o.hotWays < 2 {
			p.fail(loc, "join: hot keys must be split at least 2 ways, not %d", o.hotWays)
			break
		}
		spec.Skew.Declared = append(spec.Skew.Declared, plan.HotKey{Hash: left.hash(key), Key: fmt.Sprint(key), Ways: o.hotWays})
	}
	n := p.addNode(loc, &plan.Node{Kind: plan.KindStateful, Op: "join", Out: plan.TypeOf[O](), Join: spec,
		Inputs: []plan.Input{
			{From: l.node, Edge: plan.Hash, Key: kvKey[K, L](left.hash)},
			{From: r.node, Edge: plan.Hash, Key: kvKey[K, R](right.hash)},
		}}, o)
	n.NewState = func(inst plan.Instance) plan.State {
		groups := groupsOf(left.hash, inst)
		seed := state.Seed(inst.Seed, n.ID)
		s := &joinState[K, L, R, O]{n: n, kind: kind, f: f, own: state.NewJoin[K, L, R](groups, seed, kind == FullOuter)}
		if len(inst.Inputs) == 2 && inst.Inputs[1] == plan.Broadcast {
			v, _ := inst.Shared(fmt.Sprintf("join/%d", n.ID), func() (any, error) {
				return &sharedTable[K, L, R]{seen: map[*plan.Batch]int{}, local: max(1, inst.LocalInstances),
					t: state.NewJoin[K, L, R](groups, seed, false)}, nil
			})
			s.shared = v.(*sharedTable[K, L, R])
		}
		return s
	}
	return Stream[O]{p: p, node: n}
}

// keyed adds the stage that computes k's keys: a fusable transform to
// KV[K, T], so that routing and joining never call user code.
func keyed[K comparable, T any](k Keyed[K, T], loc string) Stream[KV[K, T]] {
	return transform[T, KV[K, T]](k.s, loc, "key", stageOptions{}, func(n *plan.Node) func(*plan.Batch) *plan.Batch {
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
}

// sharedTable is a broadcast join's build side, built once per process by
// all the join's instances there. Every instance receives every build batch
// (the same *Batch: see core's broadcast output); the first to see a batch
// inserts it under the lock, the others skip it. An instance whose build
// input has ended has seen every batch, each inserted before its own look
// at it, so from then on the table is complete and read without the lock.
type sharedTable[K comparable, L, R any] struct {
	mu    sync.Mutex
	seen  map[*plan.Batch]int // instances that have seen a batch
	local int                 // the join's instances in this process
	t     *state.Join[K, L, R]
}

func (s *sharedTable[K, L, R]) add(b *plan.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.seen[b] + 1
	if n == 1 {
		addBuild(s.t, b.Data.([]KV[K, R]))
	}
	if n == s.local {
		delete(s.seen, b)
	} else {
		s.seen[b] = n
	}
}

// addBuild adds build rows to j.
func addBuild[K comparable, L, R any](j *state.Join[K, L, R], xs []KV[K, R]) {
	for i := range xs {
		j.Add(xs[i].Key, xs[i].Value)
	}
}

// joinState is one join instance: input 0 probes, input 1 builds. Its
// keyed state (state.Join: build rows, held probes, matches) is own; a
// broadcast join's build rows are in the process's shared table instead.
type joinState[K comparable, L, R, O any] struct {
	n      *plan.Node
	kind   JoinKind
	f      func(K, L, R, bool, bool) O
	shared *sharedTable[K, L, R]
	own    *state.Join[K, L, R]

	hits []*state.Row[R] // a probe batch's first build rows, nil where none
}

func (s *joinState[K, L, R, O]) table() *state.Join[K, L, R] {
	if s.shared != nil {
		return s.shared.t
	}
	return s.own
}

func (s *joinState[K, L, R, O]) StepInput(i int, in *plan.Batch, emit func(*plan.Batch)) {
	if i == 1 {
		if s.shared != nil {
			s.shared.add(in)
			return
		}
		addBuild(s.own, in.Data.([]KV[K, R]))
		return
	}
	if !s.own.Built() {
		for _, x := range in.Data.([]KV[K, L]) {
			s.own.Hold(x.Key, x.Value)
		}
		return
	}
	s.probe(in.Data.([]KV[K, L]), emit)
}

// probe joins a probe batch; the user's f may panic, and then nothing has
// been emitted and nothing changed but the (idempotent) matched set.
func (s *joinState[K, L, R, O]) probe(xs []KV[K, L], emit func(*plan.Batch)) {
	b := s.table()
	// First every lookup, then every output: lookups with nothing else in
	// the loop are independent, so the processor overlaps their cache
	// misses; interleaved with the user's f and the appends, fewer were in
	// flight (BenchmarkJoinProbe: 106-116 against 126-138 ns a probe on a
	// table of 1 M keys).
	hits := s.hits[:0]
	defer func() {
		clear(hits)
		s.hits = hits[:0]
	}()
	i := -1
	// Hashing a key can panic too (an interface key holding a slice).
	defer func() { repanic(recover(), s.n, xs, i) }()
	for i = range xs {
		hits = append(hits, b.Get(xs[i].Key))
	}
	out := make([]O, 0, len(xs))
	var noR R
	for i = range xs {
		x := &xs[i]
		v := hits[i]
		if v == nil {
			if s.kind != Inner {
				out = append(out, s.f(x.Key, x.Value, noR, true, false))
			}
			continue
		}
		for ; v != nil; v = b.Next(v) {
			out = append(out, s.f(x.Key, x.Value, v.R, true, true))
			s.own.Match(v)
		}
	}
	if len(out) > 0 {
		emit(&plan.Batch{Data: out})
	}
}

func (s *joinState[K, L, R, O]) EndInput(i int, emit func(*plan.Batch)) {
	if i != 1 {
		return
	}
	s.own.EndBuild()
	// Probe what waited; drop it only when all of it is done, so that a
	// panic retries the whole of it (its outputs were not kept).
	held := s.own.Held()
	const chunk = 1024
	xs := make([]KV[K, L], 0, min(chunk, len(held)))
	for i := 0; i < len(held); i += chunk {
		xs = xs[:0]
		for _, h := range held[i:min(i+chunk, len(held))] {
			xs = append(xs, KV[K, L](h))
		}
		s.probe(xs, emit)
	}
	s.own.DropHeld()
}

func (s *joinState[K, L, R, O]) Step(in *plan.Batch, emit func(*plan.Batch)) {
	s.StepInput(0, in, emit)
}

func (s *joinState[K, L, R, O]) Flush(emit func(*plan.Batch)) {
	if s.kind != FullOuter {
		return
	}
	var out []O
	var noL L
	var at KV[K, R] // the row being emitted, for a panic's report
	defer func() {
		if p := recover(); p != nil {
			repanic(p, s.n, []KV[K, R]{at}, 0)
		}
	}()
	s.own.Unmatched(func(k K, r *R) {
		at = KV[K, R]{Key: k, Value: *r}
		out = append(out, s.f(k, noL, *r, false, true))
	})
	if len(out) > 0 {
		emit(&plan.Batch{Data: out})
	}
}

func (s *joinState[K, L, R, O]) Lost() bool { return false }

// Waiting holds the probe input until the build side has ended, when the
// planner found that safe (plan.JoinSpec.HoldProbe).
func (s *joinState[K, L, R, O]) Waiting() int {
	if !s.own.Built() && s.n.Join.HoldProbe {
		return 0
	}
	return -1
}

// Preferred asks for the build side first: queued build batches are stepped
// before probe batches. Probe batches that arrive while no build batch is
// queued are still taken and held in memory until the build side ends
// (refusing them could deadlock a graph that feeds both sides from one
// source).
func (s *joinState[K, L, R, O]) Preferred() int {
	if s.own.Built() {
		return -1
	}
	return 1
}
