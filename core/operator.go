// Package core runs one instance of a physical operator as a pure state
// machine, in the shape of raft's RawNode: the runtime calls Step with an
// event, takes the resulting sends with Ready, and acknowledges them with
// Advance. Core has no goroutines, no clock and no I/O, so the same code runs
// under actors and under a deterministic simulator.
//
// Restart semantics: work for an event is a queue of (node, batch) items kept
// in the Operator, not on a goroutine's stack. An item leaves the queue only
// after its node has processed it whole, and stateful nodes promise to leave
// their state untouched when they panic (or to report it lost). So when a user
// function panics, the runtime restarts the actor around the same Operator and
// calls Resume, which carries on where the panic struck: the output is
// identical to a run without the panic.
package core

import (
	"errors"
	"fmt"
	"slices"

	"github.com/sluice-data/sluice/plan"
)

// Config sizes the batches an operator emits.
type Config struct {
	// BatchRecords is the most records in one batch.
	BatchRecords int
	// BatchBytes bounds one batch's estimated size.
	BatchBytes int64
	// MaxParallelism is the job's number of key groups.
	MaxParallelism int
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.BatchRecords < 1 {
		errs = append(errs, fmt.Errorf("core: BatchRecords %d must be at least 1", c.BatchRecords))
	}
	if c.BatchBytes < 1 {
		errs = append(errs, fmt.Errorf("core: BatchBytes %d must be at least 1", c.BatchBytes))
	}
	if c.MaxParallelism < 1 {
		errs = append(errs, fmt.Errorf("core: MaxParallelism %d must be at least 1", c.MaxParallelism))
	}
	return errors.Join(errs...)
}

// Ready is what the operator has for the runtime after a Step.
type Ready struct {
	// Sends are Data and control messages for channels of output
	// edges, addressed by Edge and Channel.
	Sends []Msg
	// Sink holds batches for the vertex's sink writer, in order.
	Sink []*plan.Batch
	// Finished is set once all input has ended and everything has been
	// emitted; it stays set.
	Finished bool
	// Barriers are the checkpoints whose barrier has passed the whole
	// chain: everything before it processed, the barrier sent on behind
	// it on every output channel.
	Barriers []uint64
	// SinkAt holds, for each of Barriers, how many of Sink's batches came
	// before it: the writer checkpoints after writing those.
	SinkAt []int
	// Snapshots are the copies of state the barriers took, in chain
	// order, to encode and write off the task's path.
	Snapshots []Snapshot
}

// SnapKind says what a Snapshot holds.
type SnapKind uint8

const (
	// SnapKeyed: a stateful node's key groups [Start, End).
	SnapKeyed SnapKind = iota
	// SnapTime: the instance's event-time state (its watermarks).
	SnapTime
	// SnapSource: where a source instance was in its splits.
	SnapSource
	// SnapSink: what a sink instance's writer had written (a
	// plan.SinkCheckpointer's description).
	SnapSink
	numSnapKinds
)

var snapKindNames = [...]string{SnapKeyed: "keyed", SnapTime: "time", SnapSource: "source", SnapSink: "sink"}

func (k SnapKind) String() string {
	if k < numSnapKinds {
		return snapKindNames[k]
	}
	return fmt.Sprintf("SnapKind(%d)", int(k))
}

// Snapshot is one piece of an instance's state at a barrier. A keyed one is
// the key groups [Start, End) of stage Stage (its plan.Node.StableID),
// copied; the others belong to the instance Instance of the vertex whose
// head is Stage. Encode writes the piece.
type Snapshot struct {
	Checkpoint uint64
	Kind       SnapKind
	Stage      string
	Instance   int
	Start, End int
	// PerInstance marks a keyed snapshot whose key groups other instances
	// snapshot too (a broadcast input's): it is stored per instance.
	PerInstance bool
	Encode      func(dst []byte) []byte
}

// ErrStateLost is returned by Resume when a panic left a stateful node's
// state inconsistent, so the batch cannot be retried.
var ErrStateLost = errors.New("core: operator state lost in a panic")

type item struct {
	node   int // chain index that processes batch
	input  int // for the head node: which vertex input batch came from
	batch  *plan.Batch
	flush  bool // flush the stateful node at index node
	ended  bool // input has ended (for an InputState head)
	wm     bool // a watermark (time) reaching node
	timer  bool // processing time (time) reaching node
	inband bool // a timer that travels on down the graph
	idle   bool // the input went idle
	time   int64
	// barrier is checkpoint barrier's barrier reaching node (0: none).
	barrier uint64
}

// Operator is one instance of a vertex.
type Operator struct {
	v      *plan.Vertex
	inst   plan.Instance
	cfg    Config
	states []plan.State // per chain node; nil for stateless nodes
	outs   []*output
	sink   bool
	// bundles: a source upstream moves processing time in band (a test
	// stream): each batch's output goes on as it is, never gathered with
	// the next one's, so that a bundle reaches a window as one batch and
	// its trigger is asked once for it, as Beam's runners do.
	bundles bool

	open     int      // input channels not yet ended
	openIn   []int    // per input
	ended    [][]bool // [input][channel]
	queue    []item
	ready    Ready
	finished bool

	// NodeRecords counts the records each chain node has emitted (for a
	// sink, written); NodeRecords[0] of a source counts records read.
	NodeRecords []int64
	// SideRecords counts what each chain node sent to each side output.
	SideRecords [][]int64
	// RecordsIn counts records received from input edges, InputRecords
	// per input.
	RecordsIn    int64
	InputRecords []int64
	// DroppedLate and DroppedClosed count, per chain node, the records a
	// windowed node dropped as too late and for closed windows; Late the
	// records it added behind the watermark (plan.Explainer).
	DroppedLate, DroppedClosed, Late []int64
	// Asides holds, per chain node, examples of the records it set aside
	// (explain-why): a windowed node's (plan.Explainer), a transform's dead
	// letters, at most plan.MaxAsides of each reason. A slice is only
	// appended to, so a reader that has seen its first n has seen them.
	Asides [][]plan.Aside

	time timeState
}

// New returns instance inst of vertex v.
func New(v *plan.Vertex, inst plan.Instance, cfg Config) *Operator {
	o := &Operator{v: v, inst: inst, cfg: cfg, states: make([]plan.State, len(v.Chain)),
		NodeRecords: make([]int64, len(v.Chain)), SideRecords: make([][]int64, len(v.Chain)), sink: v.IsSink(),
		DroppedLate: make([]int64, len(v.Chain)), DroppedClosed: make([]int64, len(v.Chain)), Late: make([]int64, len(v.Chain)),
		Asides: make([][]plan.Aside, len(v.Chain))}
	for i, n := range v.Chain {
		o.SideRecords[i] = make([]int64, len(n.Side))
		if n.Kind == plan.KindStateful {
			o.states[i] = n.NewState(inst)
		}
	}
	for _, in := range v.In {
		o.open += in.From.Parallelism
		o.openIn = append(o.openIn, in.From.Parallelism)
		o.ended = append(o.ended, make([]bool, in.From.Parallelism))
		o.InputRecords = append(o.InputRecords, 0)
	}
	if v.Head().Kind == plan.KindSource {
		o.open = 1
	}
	for _, e := range v.Out {
		o.outs = append(o.outs, newOutput(e, inst.Index, cfg))
	}
	o.time.init(v)
	o.bundles = timeInBand(v)
	return o
}

// Vertex returns the operator's vertex.
func (o *Operator) Vertex() *plan.Vertex { return o.v }

// Instance returns the operator's instance.
func (o *Operator) Instance() plan.Instance { return o.inst }

// Step applies one event. It may panic with a user function's panic; the
// runtime then calls Resume on the same Operator after restarting.
func (o *Operator) Step(ev Msg) error {
	if o.finished {
		if ev.Kind == Tick { // a linger timer that fired late
			return nil
		}
		return fmt.Errorf("core: %s: event after end of input", o.inst)
	}
	switch ev.Kind {
	case Data:
		o.time.pt = max(o.time.pt, ev.Time)
		if o.v.Head().Kind != plan.KindSource {
			o.activate(ev.Input, ev.Channel)
		}
		if o.v.Head().Kind == plan.KindSource {
			n := o.v.Head().Out.Count(ev.Batch)
			o.NodeRecords[0] += int64(n)
			o.queue = append(o.queue, item{node: 1, batch: ev.Batch})
		} else {
			n := int64(o.v.In[ev.Input].Type.Count(ev.Batch))
			o.RecordsIn += n
			o.InputRecords[ev.Input] += n
			o.queue = append(o.queue, item{node: 0, input: ev.Input, batch: ev.Batch})
		}
	case EndOfInput:
		if len(o.ended) > 0 {
			if ev.Input < 0 || ev.Input >= len(o.ended) || ev.Channel < 0 || ev.Channel >= len(o.ended[ev.Input]) {
				return fmt.Errorf("core: %s: end of input on unknown input %d channel %d", o.inst, ev.Input, ev.Channel)
			}
			if o.ended[ev.Input][ev.Channel] {
				return fmt.Errorf("core: %s: input %d channel %d ended twice", o.inst, ev.Input, ev.Channel)
			}
			o.ended[ev.Input][ev.Channel] = true
			o.time.chWM[ev.Input][ev.Channel] = maxTime
			o.time.chIdle[ev.Input][ev.Channel] = false
			o.advanceInput()
		}
		o.open--
		if o.open < 0 {
			return fmt.Errorf("core: %s: more ends of input than input channels", o.inst)
		}
		if len(o.openIn) > 0 {
			if o.openIn[ev.Input]--; o.openIn[ev.Input] == 0 {
				if _, ok := o.states[0].(plan.InputState); ok {
					o.queue = append(o.queue, item{node: 0, input: ev.Input, ended: true})
				}
			}
		}
		if o.open == 0 {
			o.queue = append(o.queue, item{node: o.nextStateful(0), flush: true})
		}
	case Tick:
		for i, out := range o.outs {
			o.ready.Sends = out.flush(i, o.ready.Sends)
		}
		return nil
	case Watermark:
		if o.v.Head().Kind == plan.KindSource { // from an EventReader
			o.queue = append(o.queue, item{node: 1, wm: true, time: ev.Time})
			break
		}
		if err := o.checkChannel(ev); err != nil {
			return err
		}
		o.time.chIdle[ev.Input][ev.Channel] = false
		o.time.chWM[ev.Input][ev.Channel] = max(o.time.chWM[ev.Input][ev.Channel], ev.Time)
		o.advanceInput()
	case Idle:
		if o.v.Head().Kind == plan.KindSource {
			o.queue = append(o.queue, item{node: 1, idle: true})
			break
		}
		if err := o.checkChannel(ev); err != nil {
			return err
		}
		o.time.chIdle[ev.Input][ev.Channel] = true
		o.advanceInput()
	case SplitCap:
		// A new split starts: as Flink's per-split watermarks, the times
		// of finished splits no longer count (the watermark never goes
		// back), and the splits still to read cap it.
		o.time.splitCap = ev.Time
		for k, n := range o.v.Chain {
			if n.Watermarks != nil {
				o.time.genMax[k] = minTime
				if o.time.gens != nil {
					o.time.gens[k] = nil // a fresh generator for the split
				}
			}
		}
	case Time:
		o.time.pt = max(o.time.pt, ev.Time)
		if o.v.Head().Kind == plan.KindSource {
			o.queue = append(o.queue, item{node: 1, timer: true, inband: true, time: o.time.pt})
		} else {
			o.queue = append(o.queue, item{node: 0, timer: true, inband: true, time: o.time.pt})
		}
	case Barrier:
		// Behind the work queued before it, through the whole chain.
		node := 0
		if o.v.Head().Kind == plan.KindSource {
			node = 1
		}
		o.queue = append(o.queue, item{node: node, barrier: ev.Checkpoint})
	case Timer:
		o.time.pt = max(o.time.pt, ev.Time)
		for k, st := range o.states {
			if _, ok := st.(plan.TimeState); ok {
				o.queue = append(o.queue, item{node: k, timer: true, time: o.time.pt})
			}
		}
	default:
		return fmt.Errorf("core: %s: operator cannot step a %s message", o.inst, ev.Kind)
	}
	if err := o.Resume(); err != nil || !o.bundles || ev.Kind != Data || len(o.queue) > 0 {
		return err
	}
	for i, out := range o.outs {
		o.ready.Sends = out.flush(i, o.ready.Sends)
	}
	return nil
}

// Resume processes the queued work; after a restart it retries the item whose
// processing panicked.
func (o *Operator) Resume() error {
	for len(o.queue) > 0 {
		it := o.queue[0]
		if it.barrier != 0 {
			if err := o.passBarrier(it); err != nil {
				return err
			}
			continue
		}
		if it.wm || it.timer || it.idle {
			if err := o.control(it); err != nil {
				return err
			}
			continue
		}
		if it.flush {
			if it.node >= len(o.v.Chain) {
				o.queue = o.queue[1:]
				o.finish()
				continue
			}
			var emitted []*plan.Batch
			st := o.states[it.node]
			st.Flush(func(b *plan.Batch) { emitted = append(emitted, b) })
			o.queue = o.queue[1:]
			o.pushFront(it.node, emitted, item{node: o.nextStateful(it.node + 1), flush: true})
			continue
		}
		if it.node >= len(o.v.Chain) {
			o.emit(it.batch) // routing may call a user hash function: pop after
			o.queue = o.queue[1:]
			continue
		}
		n := o.v.Chain[it.node]
		switch n.Kind {
		case plan.KindTransform:
			var out *plan.Batch
			if n.Tee != nil {
				var side []*plan.Batch
				out, side = n.Tee(it.batch)
				for p, b := range side {
					if k := n.Side[p].Count(b); k > 0 {
						o.route(it.node, p+1, b)
						o.SideRecords[it.node][p] += int64(k)
						o.deadLetters(it.node, p, b, k)
					}
				}
			} else {
				out = n.Transform(it.batch)
			}
			o.queue[0] = item{node: it.node + 1, batch: out}
			o.NodeRecords[it.node] += int64(n.Out.Count(out))
			if n.Watermarks != nil {
				// The watermark follows each batch, as a bundle's does in
				// Beam: deterministic for a given input order.
				var moved bool
				if n.Watermarks.New != nil {
					moved = o.time.generate(it.node, n.Watermarks.New, out)
				} else {
					moved = o.time.observe(it.node, out.Times, n.Watermarks.MaxDelay)
				}
				if moved {
					o.queue = append(o.queue[:1], append([]item{{node: it.node + 1, wm: true, time: o.time.genWM[it.node]}}, o.queue[1:]...)...)
				}
			}
		case plan.KindStateful:
			st := o.states[it.node]
			if st.Lost() {
				return fmt.Errorf("%w: %s", ErrStateLost, o.inst)
			}
			var emitted []*plan.Batch
			emit := func(b *plan.Batch) { emitted = append(emitted, b) }
			if ist, ok := st.(plan.InputState); ok && it.node == 0 {
				if it.ended {
					ist.EndInput(it.input, emit)
				} else {
					ist.StepInput(it.input, it.batch, emit)
				}
			} else if tst, ok := st.(plan.TimeState); ok {
				tst.StepTime(it.batch, o.time.nodeWM[it.node], o.time.pt, emit)
				o.dropped(it.node, tst)
			} else {
				st.Step(it.batch, emit)
			}
			o.queue = o.queue[1:]
			o.pushFront(it.node, emitted)
		case plan.KindSink:
			o.queue = o.queue[1:]
			o.NodeRecords[it.node] += int64(n.Out.Count(it.batch))
			o.ready.Sink = append(o.ready.Sink, it.batch)
		default:
			return fmt.Errorf("core: %s: node %s of kind %d inside a chain", o.inst, n, n.Kind)
		}
	}
	return nil
}

// dropped copies what windowed node node has dropped, added late and kept
// as examples.
func (o *Operator) dropped(node int, tst plan.TimeState) {
	o.DroppedLate[node], o.DroppedClosed[node] = tst.Dropped()
	if ex, ok := tst.(plan.Explainer); ok {
		o.Late[node], o.Asides[node] = ex.Explain()
	}
}

// deadLetters keeps the first records a transform sent to side output p
// (of k records in b) as examples, up to plan.MaxAsides per node.
func (o *Operator) deadLetters(node, p int, b *plan.Batch, k int) {
	t := o.v.Chain[node].Side[p]
	for i := 0; i < k && len(o.Asides[node]) < plan.MaxAsides; i++ {
		rec, rule := t.AsideRecord(b.Data, i)
		if rule == "" {
			rule = fmt.Sprintf("sent to side output %d (%s)", p+1, t.Name)
		}
		o.Asides[node] = append(o.Asides[node], plan.Aside{Reason: plan.AsideDeadLetter, Rule: rule, Record: rec, Port: p + 1})
	}
}

// pushFront puts the batches node emitted ahead of the rest of the queue, so
// that they are processed before later input, followed by extra items.
func (o *Operator) pushFront(node int, emitted []*plan.Batch, extra ...item) {
	if len(emitted) == 0 && len(extra) == 0 {
		return
	}
	front := make([]item, 0, len(emitted)+len(extra)+len(o.queue))
	for _, b := range emitted {
		if b.Port > 0 { // a side output of a stateful node
			n := o.v.Chain[node]
			o.route(node, b.Port, b)
			o.SideRecords[node][b.Port-1] += int64(n.Side[b.Port-1].Count(b))
			continue
		}
		o.NodeRecords[node] += int64(o.v.Chain[node].Out.Count(b))
		front = append(front, item{node: node + 1, batch: b})
	}
	front = append(front, extra...)
	o.queue = append(front, o.queue...)
}

func (o *Operator) nextStateful(from int) int {
	for i := from; i < len(o.v.Chain); i++ {
		if o.states[i] != nil {
			return i
		}
	}
	return len(o.v.Chain)
}

// emit sends the chain's output down the vertex's main output edges.
func (o *Operator) emit(b *plan.Batch) { o.route(len(o.v.Chain)-1, 0, b) }

// route sends b down the edges that carry output port of chain node node.
// Routing can call user code (a hash function); if it panics, the outputs
// are put back as they were, so that the retry routes b once.
func (o *Operator) route(node, port int, b *plan.Batch) {
	sends := len(o.ready.Sends)
	var saved []outputState
	for _, out := range o.outs {
		if out.e.FromNode == node && out.e.Port == port {
			saved = append(saved, out.save())
		}
	}
	defer func() {
		if r := recover(); r != nil {
			for _, st := range saved {
				st.restore()
			}
			clear(o.ready.Sends[sends:])
			o.ready.Sends = o.ready.Sends[:sends]
			panic(r)
		}
	}()
	for i, out := range o.outs {
		if out.e.FromNode == node && out.e.Port == port {
			out.pt = o.time.pt
			o.ready.Sends = out.add(i, b, o.ready.Sends)
		}
	}
	// Data makes the channels active again downstream: idleness must be
	// said again when it comes back.
	o.time.idleOut = false
}

func (o *Operator) finish() {
	for i, out := range o.outs {
		o.ready.Sends = out.flush(i, o.ready.Sends)
		o.ready.Sends = out.end(i, o.ready.Sends)
	}
	o.finished = true
	o.ready.Finished = true
}

// Preferred returns the vertex input to read first when it has data, or -1.
func (o *Operator) Preferred() int {
	if ist, ok := o.states[0].(plan.InputState); ok {
		return ist.Preferred()
	}
	return -1
}

// Waiting returns the vertex input that the operator cannot take yet (a
// join's probe side before its build side has ended), or -1.
func (o *Operator) Waiting() int {
	if w, ok := o.states[0].(plan.Waiter); ok {
		return w.Waiting()
	}
	return -1
}

// Pending reports whether work is queued (after a panic, until Resume).
func (o *Operator) Pending() bool { return len(o.queue) > 0 }

// Buffered reports whether partly filled output batches wait for a Tick.
func (o *Operator) Buffered() bool {
	for _, out := range o.outs {
		if out.buffered() {
			return true
		}
	}
	return false
}

// Ready returns what the operator has for the runtime. Each batch carries
// the processing time at which its first record was emitted, so that
// downstream timers fire in order with the data under a manual clock.
func (o *Operator) Ready() Ready { return o.ready }

// AckSends acknowledges the sends of the last Ready: the runtime has
// taken them.
func (o *Operator) AckSends() {
	clear(o.ready.Sends)
	o.ready.Sends = o.ready.Sends[:0]
}

// AckSink acknowledges the first n sink batches of the last Ready: written.
func (o *Operator) AckSink(n int) {
	clear(o.ready.Sink[:n])
	o.ready.Sink = o.ready.Sink[n:]
	for i, at := range o.ready.SinkAt {
		if at > 0 { // -1: the writer has checkpointed for it (Task.run)
			o.ready.SinkAt[i] = max(at-n, 0)
		}
	}
}

// Advance acknowledges the last Ready.
func (o *Operator) Advance() {
	clear(o.ready.Sends)
	clear(o.ready.Sink)
	o.ready.Sends = o.ready.Sends[:0]
	o.ready.Sink = o.ready.Sink[:0]
	o.ready.Barriers = o.ready.Barriers[:0]
	o.ready.SinkAt = o.ready.SinkAt[:0]
	clear(o.ready.Snapshots)
	o.ready.Snapshots = o.ready.Snapshots[:0]
}

// keyGroups returns the instance's key groups [start, end), as plan.Route
// deals them, which its keyed state snapshots and restores; all reports an
// input that is broadcast, which is not routed by key: each instance may
// hold records of any key group, and snapshots all.
func (o *Operator) keyGroups() (start, end int, all bool) {
	n, max, i := o.inst.Parallelism, o.inst.MaxParallelism, o.inst.Index
	if slices.Contains(o.inst.Inputs, plan.Broadcast) {
		return 0, max, true
	}
	return (i*max + n - 1) / n, ((i+1)*max + n - 1) / n, false
}

// passBarrier moves the barrier at the head of the queue one node on; past
// the last node it goes out on every channel. A stateful node's state is
// as the barrier finds it: all input before the barrier applied, none
// after (the checkpoint issue snapshots it here).
func (o *Operator) passBarrier(it item) error {
	if it.node < len(o.v.Chain) {
		switch st := o.states[it.node].(type) {
		case plan.BarrierFlusher: // its partial results go on before the barrier
			var emitted []*plan.Batch
			st.FlushBarrier(func(b *plan.Batch) { emitted = append(emitted, b) })
			o.queue = o.queue[1:]
			o.pushFront(it.node, emitted, item{node: it.node + 1, barrier: it.barrier})
			return nil
		case plan.Snapshotter:
			start, end, all := o.keyGroups()
			i := o.inst.Index
			if start == end { // more instances than key groups: none is this one's
				break
			}
			enc, err := st.Snapshot(start, end)
			if err != nil {
				return fmt.Errorf("%s: %s: checkpoint %d: %w", o.inst, o.v.Chain[it.node], it.barrier, err)
			}
			o.ready.Snapshots = append(o.ready.Snapshots, Snapshot{Checkpoint: it.barrier,
				Stage: StageID(o.v.Chain[it.node]), Instance: i, PerInstance: all, Start: start, End: end, Encode: enc})
		}
		o.queue[0].node++
		return nil
	}
	o.queue = o.queue[1:]
	if o.time.hasEventTime(o.v) {
		o.ready.Snapshots = append(o.ready.Snapshots, Snapshot{Checkpoint: it.barrier, Kind: SnapTime,
			Stage: StageID(o.v.Head()), Instance: o.inst.Index, Encode: o.time.encoder()})
	}
	o.broadcast(Msg{Kind: Barrier, Checkpoint: it.barrier})
	o.ready.Barriers = append(o.ready.Barriers, it.barrier)
	o.ready.SinkAt = append(o.ready.SinkAt, len(o.ready.Sink))
	return nil
}

// StageID names node n's state in checkpoints: its stable ID (stages.ID),
// else its name and its place in the graph, which tell apart two stages of
// one name (two collects) and stay the same when the same program builds
// the graph again.
func StageID(n *plan.Node) string {
	if n.StableID != "" {
		return n.StableID
	}
	return fmt.Sprintf("%s#%d", n, n.ID)
}

// Finished reports whether all input has ended and been emitted.
func (o *Operator) Finished() bool { return o.finished }
