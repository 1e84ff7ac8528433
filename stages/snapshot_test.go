package stages

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/codec"
	"github.com/sluice-data/sluice/plan"
	"github.com/sluice-data/sluice/state"
	"github.com/sluice-data/sluice/window"
)

var snapSeed = flag.Uint64("stages.seed", 0, "seed of the snapshot property tests (0: a new one each run)")

const snapMax = 8 // key groups

const (
	sBatch = iota
	sWatermark
	sClock
	sEnd // the end of input 1 (a join's build side)
)

// sOp is one input of a stage's instances: a batch for input 0 or 1
// (routed by key group, or broadcast), a watermark, a clock advance, the
// end of the build side.
type sOp struct {
	kind      int
	input     int
	xs        []KV[int64, int64]
	times     []int64
	wm, pt    int64
	broadcast bool
}

// instances makes n instances of a stage (sharing what a process shares).
type instances func(n int) []plan.State

func ofGroup(k int64) int { return int(hasher[int64]()(k) % snapMax) }

// deliver gives o to the instances as the runtime would: a keyed batch
// split by key group, a broadcast batch (the same *Batch) to all; it
// returns the output watermark of a watermark op, the least over the
// instances.
func deliver(ss []plan.State, o sOp, emit func(*plan.Batch)) {
	switch o.kind {
	case sWatermark:
		out := int64(maxTime)
		for _, s := range ss {
			out = min(out, s.(plan.TimeState).Advance(o.wm, emit))
		}
		emit(&plan.Batch{Data: []string{fmt.Sprint("output watermark ", out)}})
	case sClock:
		for _, s := range ss {
			s.(plan.TimeState).Fire(o.pt, emit)
		}
	case sEnd:
		for _, s := range ss {
			s.(plan.InputState).EndInput(1, emit)
		}
	default:
		if o.broadcast {
			b := &plan.Batch{Data: o.xs}
			for _, s := range ss {
				s.(plan.InputState).StepInput(o.input, b, emit)
			}
			return
		}
		parts := make([]*plan.Batch, len(ss))
		for i, x := range o.xs {
			j := ofGroup(x.Key) * len(ss) / snapMax
			if parts[j] == nil {
				parts[j] = &plan.Batch{Data: []KV[int64, int64]{}}
				if o.times != nil {
					parts[j].Times = []int64{}
				}
			}
			parts[j].Data = append(parts[j].Data.([]KV[int64, int64]), x)
			if o.times != nil {
				parts[j].Times = append(parts[j].Times, o.times[i])
			}
		}
		for j, b := range parts {
			if b == nil {
				continue
			}
			switch s := ss[j].(type) {
			case plan.TimeState:
				s.StepTime(b, o.wm, o.pt, emit)
			case plan.InputState:
				s.StepInput(o.input, b, emit)
			default:
				s.Step(b, emit)
			}
		}
	}
}

func finish(ss []plan.State, emit func(*plan.Batch)) {
	for _, s := range ss {
		if is, ok := s.(plan.InputState); ok {
			is.EndInput(0, emit)
		}
		s.Flush(emit)
	}
}

// render appends a batch's records to out as strings.
func render(out *[]string) func(*plan.Batch) {
	return func(b *plan.Batch) {
		v := reflect.ValueOf(b.Data)
		for i := range v.Len() {
			s := fmt.Sprintf("%d %+v", b.Port, v.Index(i).Interface())
			if b.Times != nil {
				s += fmt.Sprint(" @", b.Times[i])
			}
			*out = append(*out, s)
		}
	}
}

// checkStageRestore runs random inputs through a stage uninterrupted, and
// cut at a random point where its instances snapshot (ranges that fall in
// one instance both before and after, or every key group where the
// stage's records are not routed by key) and fresh instances, as many or
// not, restore and go on. The outputs must be equal, output watermarks
// included, and a restored instance's snapshot must be the bytes it
// restored.
func checkStageRestore(t *testing.T, trials int, newRun instances, gen func(r *rand.Rand) []sOp, everyGroup bool) {
	t.Helper()
	seed := *snapSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rerun with -stages.seed=%d", seed)
		}
	})
	rng := rand.New(rand.NewPCG(seed, 0x57a6e5))
	for trial := range trials {
		ops := gen(rng)
		var want []string
		one := newRun(1)
		for _, o := range ops {
			deliver(one, o, render(&want))
		}
		finish(one, render(&want))

		n1, n2 := 1+rng.IntN(4), 1+rng.IntN(4)
		cut := rng.IntN(len(ops) + 1)
		var got []string
		old := newRun(n1)
		for _, o := range ops[:cut] {
			deliver(old, o, render(&got))
		}
		type piece struct {
			from  int
			r     state.Range
			chunk []byte
		}
		var pieces []piece
		if everyGroup {
			for i := range old {
				pieces = append(pieces, piece{from: i, r: state.Range{Start: 0, End: snapMax}})
			}
		} else {
			at := []int{snapMax}
			for i := range n1 { // each old instance's range, whole: some hold groups of two new ones
				at = append(at, state.InstanceRange(snapMax, n1, i).Start)
			}
			slices.Sort(at)
			at = slices.Compact(at)
			for i := 1; i < len(at); i++ {
				r := state.Range{Start: at[i-1], End: at[i]}
				pieces = append(pieces, piece{from: r.Start * n1 / snapMax, r: r})
			}
		}
		encs := make([]func([]byte) []byte, len(pieces))
		for i, p := range pieces {
			enc, err := old[p.from].(plan.Snapshotter).Snapshot(p.r.Start, p.r.End)
			if err != nil {
				t.Fatalf("trial %d: snapshot of %v: %v", trial, p.r, err)
			}
			encs[i] = enc
		}
		// The old instances go on (off the record): the snapshots must not see it.
		for _, o := range ops[cut:min(len(ops), cut+1+rng.IntN(20))] {
			deliver(old, o, func(*plan.Batch) {})
		}
		for i := range pieces {
			pieces[i].chunk = encs[i](nil)
		}
		for _, p := range pieces {
			if everyGroup {
				break
			}
			again := newRun(1)[0].(plan.Snapshotter)
			if err := again.Restore(p.chunk, 0, snapMax); err != nil {
				t.Fatalf("trial %d: restoring %v: %v", trial, p.r, err)
			}
			enc, _ := again.Snapshot(p.r.Start, p.r.End)
			if b := enc(nil); !bytes.Equal(b, p.chunk) {
				t.Fatalf("trial %d: snapshot of the restored %v differs", trial, p.r)
			}
		}
		nu := newRun(n2)
		for j, s := range nu {
			own := state.InstanceRange(snapMax, n2, j)
			for _, p := range pieces {
				// A stage whose records are not routed by key restores
				// every chunk (and keeps what is its own); the others, the
				// groups they own of every chunk that overlaps them.
				if everyGroup {
					own = state.Range{Start: 0, End: snapMax}
				}
				if p.r.Start < own.End && own.Start < p.r.End {
					if err := s.(plan.Snapshotter).Restore(p.chunk, own.Start, own.End); err != nil {
						t.Fatalf("trial %d: instance %d/%d restoring %v: %v", trial, j, n2, p.r, err)
					}
				}
			}
		}
		for _, o := range ops[cut:] {
			deliver(nu, o, render(&got))
		}
		finish(nu, render(&got))
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (%d ops, cut at %d, %d → %d instances): output differs from an uninterrupted run\n got %d: %q\nwant %d: %q",
				trial, len(ops), cut, n1, n2, len(got), got, len(want), want)
		}
	}
}

// genTimed makes batches of records with event times, watermark moves and
// clock advances.
func genTimed(r *rand.Rand) []sOp {
	ops := make([]sOp, r.IntN(120))
	keys := 1 + r.IntN(30)
	var wm, pt, clock int64 = 0, 0, 0
	ms := int64(time.Millisecond)
	for i := range ops {
		switch r.IntN(6) {
		case 0:
			wm = max(wm, clock-int64(r.IntN(30))*ms)
			ops[i] = sOp{kind: sWatermark, wm: wm}
		case 1:
			pt += int64(r.IntN(15)) * ms
			ops[i] = sOp{kind: sClock, pt: pt}
		default:
			k := 1 + r.IntN(8)
			o := sOp{kind: sBatch, xs: make([]KV[int64, int64], k), times: make([]int64, k), wm: wm, pt: pt}
			for j := range o.xs {
				clock += int64(r.IntN(3)) * ms
				o.xs[j] = KV[int64, int64]{Key: int64(r.IntN(keys)), Value: int64(r.IntN(100))}
				o.times[j] = max(0, clock-int64(r.IntN(25))*ms)
			}
			ops[i] = o
		}
	}
	return ops
}

var sumCount = Combine("sum", func(x int64) [2]int64 { return [2]int64{1, x} },
	func(a, b [2]int64) [2]int64 { return [2]int64{a[0] + b[0], a[1] + b[1]} },
	func(a [2]int64) string { return fmt.Sprint(a[0], ":", a[1]) })

func windowRun(t *testing.T, st window.Strategy) instances {
	drv, err := window.NewWindowing(st, window.Combine[lifted[int64, [2]int64], [2]int64]{
		Zero:  func() [2]int64 { return [2]int64{} },
		Add:   func(acc [2]int64, v lifted[int64, [2]int64]) [2]int64 { return sumCount.Merge(acc, v.a) },
		Merge: sumCount.Merge,
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &plan.Node{ID: 7, Op: "window"}
	return func(k int) []plan.State {
		ss := make([]plan.State, k)
		for i := range ss {
			if endOfWindowOnly(st) {
				ss[i] = newEOWState(n, st.Spec().Fn, sumCount, func() [2]int64 { return [2]int64{} }, true,
					state.Groups[int64]{Hash: hasher[int64](), Max: snapMax}, 1)
			} else {
				ss[i] = newWindowState(n, drv, sumCount, hasher[int64](), true, snapMax)
			}
		}
		return ss
	}
}

// TestWindowStagesRestore: windowed aggregation under the trigger driver
// (early panes by processing time and count, late panes, accumulating,
// sessions, lateness) and at the end of windows, restored mid-stream,
// gives the panes, late records and output watermarks of an uninterrupted
// run: restored keys' timers and holds fire and bind as before.
func TestWindowStagesRestore(t *testing.T) {
	ms := time.Millisecond
	for _, st := range []window.Strategy{
		window.Fixed(10 * ms),
		window.Sliding(30*ms, 10*ms),
		window.Fixed(10 * ms).Trigger(window.AfterWatermark().Early(window.AfterProcessingTime(5 * ms)).Late(window.AfterCount(1))).
			AllowedLateness(20 * ms).Accumulating(),
		window.Fixed(20 * ms).Trigger(window.Repeatedly(window.AfterCount(3))).AllowedLateness(10 * ms).OutputAt(window.Earliest),
		window.Session(5 * ms).Trigger(window.AfterWatermark().Early(window.AfterCount(2))).AllowedLateness(15 * ms),
		window.Global().Trigger(window.Repeatedly(window.AfterProcessingTime(7 * ms))).Accumulating(),
	} {
		t.Run(st.String(), func(t *testing.T) { checkStageRestore(t, 25, windowRun(t, st), genTimed, false) })
	}
}

func genKeyedOps(r *rand.Rand) []sOp {
	ops := make([]sOp, r.IntN(40))
	keys := 1 + r.IntN(50)
	for i := range ops {
		o := sOp{kind: sBatch, xs: make([]KV[int64, int64], 1+r.IntN(10))}
		for j := range o.xs {
			o.xs[j] = KV[int64, int64]{Key: int64(r.IntN(keys)), Value: int64(r.IntN(100))}
		}
		ops[i] = o
	}
	return ops
}

// TestAggregateAndGroupStagesRestore: Aggregate's and GroupByKey's state.
func TestAggregateAndGroupStagesRestore(t *testing.T) {
	inst := plan.Instance{MaxParallelism: snapMax, Seed: 3}
	lifted := Combine("sum", func(a [2]int64) [2]int64 { return a }, sumCount.Merge, sumCount.Output)
	t.Run("aggregate", func(t *testing.T) {
		n := &plan.Node{ID: 4, Op: "aggregate"}
		checkStageRestore(t, 40, func(k int) []plan.State {
			ss := make([]plan.State, k)
			for i := range ss {
				ss[i] = &liftIn{newAggregateState[int64](n, lifted, groupsOf(hasher[int64](), inst), inst.Seed)}
			}
			return ss
		}, genKeyedOps, false)
	})
	t.Run("groupbykey", func(t *testing.T) {
		n := &plan.Node{ID: 5, Op: "groupbykey"}
		checkStageRestore(t, 40, func(k int) []plan.State {
			ss := make([]plan.State, k)
			for i := range ss {
				ss[i] = &groupState[int64, int64]{n: n, l: state.NewLists[int64, int64](groupsOf(hasher[int64](), inst)), codecs: codecsOf[int64, int64](n)}
			}
			return ss
		}, genKeyedOps, false)
	})
}

// liftIn feeds an aggregate state KV[int64, int64] records as accumulators
// (what its pre-combiner would send).
type liftIn struct {
	*aggregateState[int64, [2]int64, [2]int64, string]
}

func (s *liftIn) Step(in *plan.Batch, emit func(*plan.Batch)) {
	xs := in.Data.([]KV[int64, int64])
	out := make([]KV[int64, [2]int64], len(xs))
	for i, x := range xs {
		out[i] = KV[int64, [2]int64]{Key: x.Key, Value: [2]int64{1, x.Value}}
	}
	s.aggregateState.Step(&plan.Batch{Data: out}, emit)
}

func genJoinOps(broadcast bool) func(r *rand.Rand) []sOp {
	return func(r *rand.Rand) []sOp {
		n := r.IntN(40)
		end := r.IntN(n + 1)
		keys := 1 + r.IntN(40)
		var ops []sOp
		for i := range n {
			if i == end {
				ops = append(ops, sOp{kind: sEnd})
			}
			o := sOp{kind: sBatch, xs: make([]KV[int64, int64], 1+r.IntN(6))}
			if i < end && r.IntN(2) == 0 {
				o.input, o.broadcast = 1, broadcast
			}
			for j := range o.xs {
				o.xs[j] = KV[int64, int64]{Key: int64(r.IntN(keys)), Value: int64(r.IntN(1000))}
			}
			ops = append(ops, o)
		}
		if end == n {
			ops = append(ops, sOp{kind: sEnd})
		}
		return ops
	}
}

func joinRun(kind JoinKind, broadcast bool) instances {
	n := &plan.Node{ID: 9, Op: "join", Join: &plan.JoinSpec{}}
	groups := state.Groups[int64]{Hash: hasher[int64](), Max: snapMax}
	codecs := joinCodecsOf[int64, int64, int64](n)
	return func(k int) []plan.State {
		var shared *sharedTable[int64, int64, int64]
		if broadcast {
			shared = newSharedTable(k, state.NewJoin[int64, int64, int64](groups, 5, false))
		}
		ss := make([]plan.State, k)
		for i := range ss {
			ss[i] = &joinState[int64, int64, int64, Joined[int64, int64, int64]]{n: n, kind: kind, shared: shared, codecs: codecs,
				groups: groups, seed: 5, mine: state.InstanceRange(snapMax, k, i),
				own: state.NewJoin[int64, int64, int64](groups, 5, kind == FullOuter),
				f: func(k, l, r int64, hl, hr bool) Joined[int64, int64, int64] {
					return Joined[int64, int64, int64]{Key: k, Left: l, Right: r, HasLeft: hl, HasRight: hr}
				}}
		}
		return ss
	}
}

// TestJoinStagesRestore: a partitioned join's state, and a broadcast
// join's (its held probes and the process's shared build table, restored
// into it once).
func TestJoinStagesRestore(t *testing.T) {
	for _, kind := range []JoinKind{Inner, LeftOuter, FullOuter} {
		t.Run(kind.String(), func(t *testing.T) { checkStageRestore(t, 40, joinRun(kind, false), genJoinOps(false), false) })
	}
	for _, kind := range []JoinKind{Inner, LeftOuter} {
		t.Run("broadcast "+kind.String(), func(t *testing.T) { checkStageRestore(t, 40, joinRun(kind, true), genJoinOps(true), true) })
	}
}

// TestBroadcastJoinSnapshotSeesItsBarrier: an instance of a broadcast join
// at a barrier snapshots the build rows it has seen, not those that
// another instance of its process, past the barrier, added to the shared
// table since.
func TestBroadcastJoinSnapshotSeesItsBarrier(t *testing.T) {
	var batches []*plan.Batch
	for b := range 15 {
		var rows []KV[int64, int64]
		for i := range 10 {
			rows = append(rows, KV[int64, int64]{Key: int64(b*10+i) % 23, Value: int64(b*10 + i)})
		}
		batches = append(batches, &plan.Batch{Data: rows})
	}
	pair := joinRun(Inner, true)(2)
	a, b := pair[0].(*joinState[int64, int64, int64, Joined[int64, int64, int64]]), pair[1].(*joinState[int64, int64, int64, Joined[int64, int64, int64]])
	for _, x := range batches[:10] {
		b.StepInput(1, x, nil)
	}
	encB, _ := b.Snapshot(0, snapMax)
	for _, x := range batches[10:] {
		b.StepInput(1, x, nil)
	}
	for _, x := range batches[:10] {
		a.StepInput(1, x, nil)
	}
	encA, _ := a.Snapshot(0, snapMax)
	ref := joinRun(Inner, true)(1)[0].(*joinState[int64, int64, int64, Joined[int64, int64, int64]])
	for _, x := range batches[:10] {
		ref.StepInput(1, x, nil)
	}
	encRef, _ := ref.Snapshot(0, snapMax)
	want := encRef(nil)
	if got := encA(nil); !bytes.Equal(got, want) {
		t.Errorf("the instance at the barrier snapshot %d bytes, want the %d of the rows before it", len(got), len(want))
	}
	if got := encB(nil); !bytes.Equal(got, want) {
		t.Errorf("the instance that went on snapshot %d bytes, want the %d of the rows before the barrier", len(got), len(want))
	}
	if a.shared.t.Rows() != 150 {
		t.Fatalf("shared table holds %d rows, want 150", a.shared.t.Rows())
	}
}

// TestPreCombinerFlushesAtBarrier: a pre-combiner has no keyed state to
// checkpoint: FlushBarrier passes its partial accumulators on, and an
// aggregate that snapshots after them, restored with a fresh pre-combiner
// in front, ends with an uninterrupted run's results.
func TestPreCombinerFlushesAtBarrier(t *testing.T) {
	inst := plan.Instance{MaxParallelism: snapMax, Seed: 3}
	key := func(x int64) int64 { return x % 17 }
	pre := func() *combineState[int64, int64, [2]int64, string] {
		return newCombineState(&plan.Node{ID: 3}, key, sumCount, 1<<10, inst.Seed)
	}
	agg := func() *aggregateState[int64, int64, [2]int64, string] {
		return newAggregateState[int64](&plan.Node{ID: 4}, sumCount, groupsOf(hasher[int64](), inst), inst.Seed)
	}
	in := func(lo, hi int64) *plan.Batch {
		var xs []int64
		for x := lo; x < hi; x++ {
			xs = append(xs, x*7)
		}
		return &plan.Batch{Data: xs}
	}
	var want, got []string
	p, a := pre(), agg()
	into := func(a *aggregateState[int64, int64, [2]int64, string]) func(*plan.Batch) {
		return func(b *plan.Batch) { a.Step(b, nil) }
	}
	p.Step(in(0, 500), into(a))
	p.Step(in(500, 1000), into(a))
	p.Flush(into(a))
	a.Flush(render(&want))

	p, a = pre(), agg()
	p.Step(in(0, 500), into(a))
	var passed int
	p.FlushBarrier(func(b *plan.Batch) { passed += len(b.Data.([]KV[int64, [2]int64])); a.Step(b, nil) })
	if passed != 17 || p.t.Len() != 0 {
		t.Fatalf("at the barrier the pre-combiner passed %d accumulators and kept %d, want 17 and 0", passed, p.t.Len())
	}
	enc, err := a.Snapshot(0, snapMax)
	if err != nil {
		t.Fatal(err)
	}
	p, a = pre(), agg()
	if err := a.Restore(enc(nil), 0, snapMax); err != nil {
		t.Fatal(err)
	}
	p.Step(in(500, 1000), into(a))
	p.Flush(into(a))
	a.Flush(render(&got))
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("restored behind a flushed pre-combiner:\n got %q\nwant %q", got, want)
	}
}

// TestStageRestoreRefusesAnotherType: a stage's chunk is refused by a
// stage of another accumulator type, naming the type and both
// fingerprints (the codecs are codec.For's).
func TestStageRestoreRefusesAnotherType(t *testing.T) {
	inst := plan.Instance{MaxParallelism: snapMax, Seed: 3}
	a := newAggregateState[int64](&plan.Node{ID: 4}, sumCount, groupsOf(hasher[int64](), inst), inst.Seed)
	a.Step(&plan.Batch{Data: []KV[int64, [2]int64]{{Key: 1, Value: [2]int64{1, 2}}}}, nil)
	enc, _ := a.Snapshot(0, snapMax)
	other := Combine("sum", func(x int64) float64 { return float64(x) }, func(a, b float64) float64 { return a + b }, func(a float64) float64 { return a })
	b := newAggregateState[int64](&plan.Node{ID: 4, Name: "revenue"}, other, groupsOf(hasher[int64](), inst), inst.Seed)
	err := b.Restore(enc(nil), 0, snapMax)
	var mm *codec.MismatchError
	if !errors.As(err, &mm) || !strings.Contains(err.Error(), "float64") ||
		!strings.Contains(err.Error(), mm.Want.String()) || !strings.Contains(err.Error(), mm.Got.String()) {
		t.Fatalf("restoring [2]int64 accumulators as float64: %v", err)
	}
}

// The keyed stages' states are plan.Snapshotters; the pre-combiner is a
// plan.BarrierFlusher.
var (
	_ plan.Snapshotter    = (*aggregateState[int64, int64, int64, int64])(nil)
	_ plan.Snapshotter    = (*groupState[int64, int64])(nil)
	_ plan.Snapshotter    = (*windowState[int64, int64, int64, int64])(nil)
	_ plan.Snapshotter    = (*eowState[int64, int64, int64, int64])(nil)
	_ plan.Snapshotter    = (*joinState[int64, int64, int64, int64])(nil)
	_ plan.BarrierFlusher = (*combineState[int64, int64, int64, int64])(nil)
)
