package stages

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/sluice-data/sluice/codec"
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
	codecs := joinCodecsOf[K, L, R](n)
	n.NewState = func(inst plan.Instance) plan.State {
		groups := groupsOf(left.hash, inst)
		seed := state.Seed(inst.Seed, n.ID)
		s := &joinState[K, L, R, O]{n: n, kind: kind, f: f, own: state.NewJoin[K, L, R](groups, seed, kind == FullOuter), codecs: codecs,
			groups: groups, seed: seed, mine: state.InstanceRange(groups.Max, max(1, inst.Parallelism), inst.Index)}
		if len(inst.Inputs) == 2 && inst.Inputs[1] == plan.Broadcast {
			v, _ := inst.Shared(fmt.Sprintf("join/%d/%d", n.ID, inst.Attempt), func() (any, error) {
				return newSharedTable[K, L, R](max(1, inst.LocalInstances), state.NewJoin[K, L, R](groups, seed, false)), nil
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
//
// Until then the table may hold batches that an instance has not seen yet
// (another instance is past a checkpoint barrier that this one is at), so
// each instance keeps the rows of the batches it has seen (spans), and
// snapshots only those.
type sharedTable[K comparable, L, R any] struct {
	mu    sync.Mutex
	seen  map[*plan.Batch]seenBatch // batches not yet seen by every instance
	local int                       // the join's instances in this process
	t     *state.Join[K, L, R]
	// restored holds the ranges restored into t and the rows each gave:
	// every local instance restores them, the first into t.
	restored []restoredRange
}

type seenBatch struct {
	n    int // instances that have seen it
	rows state.Span
}

type restoredRange struct {
	r    state.Range
	rows state.Span
}

func newSharedTable[K comparable, L, R any](local int, t *state.Join[K, L, R]) *sharedTable[K, L, R] {
	return &sharedTable[K, L, R]{seen: map[*plan.Batch]seenBatch{}, local: local, t: t}
}

// add adds build batch b, unless another instance has, and returns its rows.
func (s *sharedTable[K, L, R]) add(b *plan.Batch) state.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.seen[b]
	if !ok {
		sb.rows.Start = s.t.Rows()
		addBuild(s.t, b.Data.([]KV[K, R]))
		sb.rows.End = s.t.Rows()
	}
	sb.n++
	if sb.n == s.local {
		delete(s.seen, b)
	} else {
		s.seen[b] = sb
	}
	return sb.rows
}

// snapshot copies the build rows of r: all of them once the instance's
// build input has ended, else those of spans.
func (s *sharedTable[K, L, R]) snapshot(r state.Range, built bool, spans []state.Span) *state.JoinSnapshot[K, L, R] {
	s.mu.Lock()
	defer s.mu.Unlock()
	if built {
		return s.t.Snapshot(r)
	}
	return s.t.SnapshotRows(r, spans)
}

// restore restores a chunk of build rows into the table, unless another
// local instance has restored its range, and returns the rows it holds.
// Chunks of ranges that overlap but differ are refused: every instance of
// a broadcast join is snapshot over the same ranges.
func (s *sharedTable[K, L, R]) restore(chunk []byte, c joinCodecs[K, L, R]) (state.Span, error) {
	_, rg, err := state.ChunkRange(chunk)
	if err != nil {
		return state.Span{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.restored {
		if x.r == rg {
			return x.rows, nil
		}
		if x.r.Start < rg.End && rg.Start < x.r.End {
			return state.Span{}, fmt.Errorf("%w: build rows of %v overlap those of %v restored", state.ErrMismatch, rg, x.r)
		}
	}
	start := s.t.Rows()
	if err := s.t.Restore(chunk, rg, c.k, c.l, c.r); err != nil {
		return state.Span{}, err
	}
	rows := state.Span{Start: start, End: s.t.Rows()}
	s.restored = append(s.restored, restoredRange{rg, rows})
	return rows, nil
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
	codecs joinCodecs[K, L, R]
	groups state.Groups[K]
	seed   uint64
	mine   state.Range // the key groups plan.Route gives this instance
	// spans are the shared table's rows this instance has seen, sorted and
	// merged; for its snapshots while its build input goes on.
	spans []state.Span

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
			s.saw(s.shared.add(in))
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

// saw adds rows to the spans of the shared table this instance has seen.
func (s *joinState[K, L, R, O]) saw(rows state.Span) {
	if rows.Start == rows.End {
		return
	}
	i, _ := slices.BinarySearchFunc(s.spans, rows.Start, func(sp state.Span, start int) int { return cmp.Compare(sp.Start, start) })
	s.spans = slices.Insert(s.spans, i, rows)
	// Merge neighbours: batches arrive mostly in table order, so this is
	// the last span growing.
	out := s.spans[:1]
	for _, sp := range s.spans[1:] {
		if last := &out[len(out)-1]; last.End == sp.Start {
			last.End = sp.End
		} else {
			out = append(out, sp)
		}
	}
	s.spans = out
}

// Snapshot copies the join's state in key groups [start, end)
// (state.Join's Snapshot: a copy of the table's slots, the rows beyond
// each key's first, the matched set and the held probes). A broadcast
// join's chunk is followed by one of the shared build table's rows in the
// range that this instance has seen. Its probe input is not routed by
// key, so each of its instances is to be snapshot over every key group
// (the same ranges for all), and each of the new instances restores every
// chunk (see Restore).
func (s *joinState[K, L, R, O]) Snapshot(start, end int) (func([]byte) []byte, error) {
	if s.codecs.err != nil {
		return nil, s.codecs.err
	}
	r := state.Range{Start: start, End: end}
	own := s.own.Snapshot(r)
	var shared *state.JoinSnapshot[K, L, R]
	if s.shared != nil {
		shared = s.shared.snapshot(r, s.own.Built(), s.spans)
	}
	c := s.codecs
	return func(dst []byte) []byte {
		dst = own.Append(dst, c.k, c.l, c.r)
		if shared != nil {
			dst = shared.Append(dst, c.k, c.l, c.r)
		}
		return dst
	}, nil
}

// Restore adds the state of a chunk that Snapshot wrote. A broadcast join
// restores every chunk of every old instance in each new one: the build
// rows go into the process's shared table once, whichever of its
// instances there restores them first; each instance learns whether the
// build side had ended, and keeps the held probe records of its own key
// groups (any instance could probe them; these are the ones it would have
// been sent under plan.Route).
func (s *joinState[K, L, R, O]) Restore(chunk []byte, start, end int) error {
	if s.codecs.err != nil {
		return s.codecs.err
	}
	own, rest, err := state.Cut(chunk)
	if err == nil && (s.shared == nil) != (len(rest) == 0) {
		err = fmt.Errorf("%w: a broadcast join's chunk holds its build rows after its own: broadcast %v, %d bytes after the first",
			state.ErrMismatch, s.shared != nil, len(rest))
	}
	if err == nil && s.shared == nil {
		err = s.own.Restore(own, state.Range{Start: start, End: end}, s.codecs.k, s.codecs.l, s.codecs.r)
	} else if err == nil {
		// The own chunk is read first, so that a bad one changes nothing.
		var probes *state.Join[K, L, R]
		if probes, err = s.readProbes(own); err == nil {
			var rows state.Span
			if rows, err = s.shared.restore(rest, s.codecs); err == nil {
				s.saw(rows)
				if probes.Built() {
					s.own.EndBuild()
				}
				for _, h := range probes.Held() {
					if s.mine.Contains(s.groups.Of(h.Key)) {
						s.own.Hold(h.Key, h.Value)
					}
				}
			}
		}
	}
	if err != nil {
		return fmt.Errorf("restoring stage %s: %w", s.n, err)
	}
	return nil
}

// readProbes reads a broadcast join's own chunk, which holds no build rows:
// whether its build side had ended, and the probe records held.
func (s *joinState[K, L, R, O]) readProbes(chunk []byte) (*state.Join[K, L, R], error) {
	j := state.NewJoin[K, L, R](s.groups, s.seed, false)
	if err := j.Restore(chunk, s.groups.All(), s.codecs.k, s.codecs.l, s.codecs.r); err != nil {
		return nil, err
	}
	if j.Rows() > 0 {
		return nil, fmt.Errorf("%w: a broadcast join's own chunk with %d build rows", state.ErrCorrupt, j.Rows())
	}
	return j, nil
}

// joinCodecs are a join's codecs: its key's and its two sides'.
type joinCodecs[K comparable, L, R any] struct {
	k   codec.Codec[K]
	l   codec.Codec[L]
	r   codec.Codec[R]
	err error
}

func joinCodecsOf[K comparable, L, R any](n *plan.Node) joinCodecs[K, L, R] {
	var c joinCodecs[K, L, R]
	var errK, errL, errR error
	c.k, errK = codec.For[K]()
	c.l, errL = codec.For[L]()
	c.r, errR = codec.For[R]()
	if err := firstErr(errK, errL, errR); err != nil {
		c.err = fmt.Errorf("stage %s cannot be checkpointed: %w", n, err)
	}
	return c
}

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
