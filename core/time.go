package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/sluice-data/sluice/plan"
)

// Event time in an operator. Each input channel has a watermark; the
// operator's input watermark is the least over the channels that are not
// idle (an ended channel counts as +∞) and never goes back. It travels down
// the chain as an item behind the data before it: stateless nodes pass it,
// windowed nodes (plan.TimeState) fire what falls due and pass their output
// watermark, other stateful nodes hold it (they emit at end of input), and
// at the end of the chain it goes out on every channel of every edge, after
// the partly filled batches those channels hold. A node that assigns event
// times (plan.WatermarkSpec) generates its own watermark from the greatest
// time it has seen, after each batch: deterministic for a given input order.

const (
	minTime = math.MinInt64
	maxTime = math.MaxInt64
)

type timeState struct {
	chWM    [][]int64 // [input][channel]
	chIdle  [][]bool
	inWM    int64   // the operator's input watermark
	nodeWM  []int64 // the watermark each chain node has seen
	outWM   int64   // last watermark sent downstream
	idleOut bool    // idleness sent downstream and not yet undone
	pt      int64   // processing time, from events

	genMax []int64 // per generating node: greatest event time seen
	genWM  []int64 // per generating node: its watermark
	// gens: per generating node with a user's strategy, its generator
	// (made at its first batch and at each new split).
	gens []plan.WatermarkGenerator
	// splitCap bounds a source's generated watermarks: the least event
	// time of the splits it has yet to read (Split.Order), so that records
	// of a later split are not behind a watermark an earlier one made.
	splitCap int64
}

func (t *timeState) init(v *plan.Vertex) {
	t.inWM, t.outWM, t.splitCap = minTime, minTime, maxTime
	t.nodeWM = make([]int64, len(v.Chain))
	t.genMax = make([]int64, len(v.Chain))
	t.genWM = make([]int64, len(v.Chain))
	for i := range v.Chain {
		t.nodeWM[i], t.genMax[i], t.genWM[i] = minTime, minTime, minTime
	}
	for _, e := range v.In {
		wm := make([]int64, e.From.Parallelism)
		for c := range wm {
			wm[c] = minTime
		}
		t.chWM = append(t.chWM, wm)
		t.chIdle = append(t.chIdle, make([]bool, e.From.Parallelism))
	}
}

// observe notes the event times a generating node emitted and reports
// whether its watermark moved.
func (t *timeState) observe(node int, times []int64, maxDelay int64) bool {
	m := t.genMax[node]
	for _, x := range times {
		m = max(m, x)
	}
	t.genMax[node] = m
	return t.regenerate(node, maxDelay)
}

// generate asks node's user generator (made by mk when it has none) for
// its watermark after batch b; it reports whether the node's watermark
// moved. The splits still to read cap it, as they cap observe's.
func (t *timeState) generate(node int, mk func() plan.WatermarkGenerator, b *plan.Batch) bool {
	if t.gens == nil {
		t.gens = make([]plan.WatermarkGenerator, len(t.genWM))
	}
	if t.gens[node] == nil {
		t.gens[node] = mk()
	}
	wm := min(t.gens[node].OnBatch(b), t.splitCap)
	if wm > t.genWM[node] {
		t.genWM[node] = wm
		return true
	}
	return false
}

// regenerate recomputes a generating node's watermark: the greatest time
// seen less maxDelay, but never past the source's cap (the least event time
// of the splits it has still to read); it reports whether it moved.
func (t *timeState) regenerate(node int, maxDelay int64) bool {
	m := t.genMax[node]
	if m == minTime {
		return false
	}
	wm := min(m-maxDelay, t.splitCap)
	if wm > t.genWM[node] {
		t.genWM[node] = wm
		return true
	}
	return false
}

func (o *Operator) checkChannel(ev Msg) error {
	if ev.Input < 0 || ev.Input >= len(o.time.chWM) || ev.Channel < 0 || ev.Channel >= len(o.time.chWM[ev.Input]) {
		return fmt.Errorf("core: %s: event on unknown input %d channel %d", o.inst, ev.Input, ev.Channel)
	}
	return nil
}

// activate marks a channel that sent data as no longer idle.
func (o *Operator) activate(input, channel int) {
	if input < len(o.time.chIdle) && channel < len(o.time.chIdle[input]) && o.time.chIdle[input][channel] {
		o.time.chIdle[input][channel] = false
		o.advanceInput()
	}
}

// advanceInput recomputes the input watermark and queues it when it moved;
// when every open channel is idle, it queues idleness instead.
func (o *Operator) advanceInput() {
	t := &o.time
	m, active, open := int64(maxTime), false, false
	idleMax := int64(minTime)
	for i := range t.chWM {
		for c, wm := range t.chWM[i] {
			if wm == maxTime {
				continue
			}
			open = true
			if t.chIdle[i][c] {
				idleMax = max(idleMax, wm)
				continue
			}
			active = true
			m = min(m, wm)
		}
	}
	if open && !active {
		// Every open channel is idle: as Flink's watermark valve does, move
		// to the greatest of their watermarks (nothing active holds it back)
		// and pass the idleness on.
		if idleMax > t.inWM {
			t.inWM = idleMax
			o.queue = append(o.queue, item{node: 0, wm: true, time: idleMax})
		}
		if !t.idleOut {
			o.queue = append(o.queue, item{node: 0, idle: true})
		}
		return
	}
	if m > t.inWM {
		t.inWM = m
		o.queue = append(o.queue, item{node: 0, wm: true, time: m})
	}
}

// control moves a watermark, a timer or idleness at the head of the queue
// one node on.
func (o *Operator) control(it item) error {
	t := &o.time
	if it.node >= len(o.v.Chain) {
		o.queue = o.queue[1:]
		switch {
		case it.wm && it.time > t.outWM:
			t.outWM, t.idleOut = it.time, false
			o.broadcast(Msg{Kind: Watermark, Time: it.time})
		case it.idle && !t.idleOut:
			t.idleOut = true
			o.broadcast(Msg{Kind: Idle})
		case it.timer && it.inband:
			o.broadcast(Msg{Kind: Time, Time: it.time})
		}
		return nil
	}
	n := o.v.Chain[it.node]
	st := o.states[it.node]
	tst, timed := st.(plan.TimeState)
	if timed && tst.Lost() {
		return fmt.Errorf("%w: %s", ErrStateLost, o.inst)
	}
	switch {
	case it.timer:
		if !timed {
			if it.inband && n.Kind != plan.KindSink {
				o.queue[0].node++
			} else {
				o.queue = o.queue[1:]
			}
			return nil
		}
		var emitted []*plan.Batch
		tst.Fire(it.time, func(b *plan.Batch) { emitted = append(emitted, b) })
		o.dropped(it.node, tst)
		o.queue = o.queue[1:]
		var next []item
		if it.inband {
			next = append(next, item{node: it.node + 1, timer: true, inband: true, time: it.time})
		}
		o.pushFront(it.node, emitted, next...)
	case it.idle:
		if n.Kind == plan.KindSink {
			o.queue = o.queue[1:]
			return nil
		}
		o.queue[0].node++
	case timed: // a watermark reaching a windowed node
		t.nodeWM[it.node] = max(t.nodeWM[it.node], it.time)
		var emitted []*plan.Batch
		out := tst.Advance(it.time, func(b *plan.Batch) { emitted = append(emitted, b) })
		o.dropped(it.node, tst)
		o.queue = o.queue[1:]
		o.pushFront(it.node, emitted, item{node: it.node + 1, wm: true, time: out})
	case n.Kind == plan.KindStateful || n.Kind == plan.KindSink:
		// Other state emits at the end of input: it holds the watermark.
		o.queue = o.queue[1:]
	case n.Watermarks != nil && it.time != maxTime:
		// A node that assigns times makes its own watermark.
		o.queue = o.queue[1:]
	default:
		t.nodeWM[it.node] = max(t.nodeWM[it.node], it.time)
		o.queue[0].node++
	}
	return nil
}

// broadcast sends a control event on every channel of every output edge,
// behind the data those channels hold.
func (o *Operator) broadcast(s Msg) {
	for i, out := range o.outs {
		o.ready.Sends = out.flush(i, o.ready.Sends)
		for c := range out.bufs {
			s.Edge, s.Channel = i, c
			o.ready.Sends = append(o.ready.Sends, s)
		}
	}
}

// Watermark returns the last watermark the operator sent downstream.
func (o *Operator) Watermark() int64 { return o.time.outWM }

// NextTimer returns the earliest processing time at which a windowed node
// has work.
func (o *Operator) NextTimer() (int64, bool) {
	best, ok := int64(maxTime), false
	for _, st := range o.states {
		if tst, timed := st.(plan.TimeState); timed {
			if t, has := tst.NextTimer(); has && t < best {
				best, ok = t, true
			}
		}
	}
	return best, ok
}

// hasEventTime reports whether v's instances have event-time state worth a
// checkpoint: input channels' watermarks, or a node that generates them.
func (t *timeState) hasEventTime(v *plan.Vertex) bool {
	if len(v.In) > 0 {
		return true
	}
	for _, n := range v.Chain {
		if n.Watermarks != nil {
			return true
		}
	}
	return false
}

// encoder copies the time state and returns the function that encodes the
// copy: varints, in a fixed order, the shape first so that a restore can
// check it.
func (t *timeState) encoder() func(dst []byte) []byte {
	var xs []int64
	xs = append(xs, int64(len(t.nodeWM)), int64(len(t.chWM)))
	for _, row := range t.chWM {
		xs = append(xs, int64(len(row)))
	}
	xs = append(xs, t.pt, t.inWM, t.outWM, b2i(t.idleOut), t.splitCap)
	xs = append(xs, t.nodeWM...)
	xs = append(xs, t.genMax...)
	xs = append(xs, t.genWM...)
	for i, row := range t.chWM {
		xs = append(xs, row...)
		for _, idle := range t.chIdle[i] {
			xs = append(xs, b2i(idle))
		}
	}
	return func(dst []byte) []byte {
		for _, x := range xs {
			dst = binary.AppendVarint(dst, x)
		}
		return dst
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// restore sets the time state to what encoder wrote at the checkpoint:
// one instance's, at the same parallelism and of the same shape, is taken
// as it was; several (the vertex restored at another parallelism) or one
// whose input channels differ (an upstream vertex was) are merged, so that
// the restored instance is behind every old one: the least watermark of
// each kind, no channel idle, the latest processing time. A lower
// watermark than the uninterrupted run's makes nothing late that was not,
// and watermarks pass it again as the sources go on.
func (t *timeState) restore(datas [][]byte) error {
	olds := make([]timeState, len(datas))
	for i, data := range datas {
		if err := olds[i].decode(data); err != nil {
			return fmt.Errorf("time state: %w", err)
		}
		if len(olds[i].nodeWM) != len(t.nodeWM) || len(olds[i].chWM) != len(t.chWM) {
			return fmt.Errorf("time state of %d chain nodes and %d inputs, the plan has %d chain nodes, %d inputs",
				len(olds[i].nodeWM), len(olds[i].chWM), len(t.nodeWM), len(t.chWM))
		}
	}
	if len(olds) == 1 && t.sameChannels(&olds[0]) {
		*t = olds[0]
		return nil
	}
	t.inWM, t.outWM, t.splitCap = maxTime, maxTime, maxTime
	for k := range t.nodeWM {
		t.nodeWM[k], t.genMax[k], t.genWM[k] = maxTime, maxTime, maxTime
	}
	for i, row := range t.chWM {
		for c := range row {
			row[c], t.chIdle[i][c] = maxTime, false
		}
	}
	t.idleOut = false
	for _, o := range olds {
		t.pt = max(t.pt, o.pt)
		t.inWM, t.outWM, t.splitCap = min(t.inWM, o.inWM), min(t.outWM, o.outWM), min(t.splitCap, o.splitCap)
		for k := range t.nodeWM {
			t.nodeWM[k], t.genMax[k], t.genWM[k] = min(t.nodeWM[k], o.nodeWM[k]), min(t.genMax[k], o.genMax[k]), min(t.genWM[k], o.genWM[k])
		}
		for i, row := range t.chWM {
			for _, wm := range o.chWM[i] {
				for c := range row {
					row[c] = min(row[c], wm)
				}
			}
		}
	}
	return nil
}

// sameChannels reports whether o has as many channels on each input as t.
func (t *timeState) sameChannels(o *timeState) bool {
	for i := range t.chWM {
		if len(t.chWM[i]) != len(o.chWM[i]) {
			return false
		}
	}
	return true
}

// decode sets t to what encoder wrote, of the shape it wrote.
func (t *timeState) decode(data []byte) error {
	var err error
	read := func() int64 {
		x, n := binary.Varint(data)
		if n <= 0 {
			if err == nil {
				err = errors.New("truncated")
			}
			return 0
		}
		data = data[n:]
		return x
	}
	count := func() int {
		n := read()
		if err == nil && (n < 0 || n > int64(len(data))) {
			err = fmt.Errorf("a count of %d with %d bytes left", n, len(data))
		}
		if err != nil {
			return 0
		}
		return int(n)
	}
	nodes, inputs := count(), count()
	t.chWM, t.chIdle = make([][]int64, inputs), make([][]bool, inputs)
	for i := range inputs {
		c := count()
		t.chWM[i], t.chIdle[i] = make([]int64, c), make([]bool, c)
	}
	t.pt, t.inWM, t.outWM, t.idleOut, t.splitCap = read(), read(), read(), read() != 0, read()
	t.nodeWM, t.genMax, t.genWM = make([]int64, nodes), make([]int64, nodes), make([]int64, nodes)
	for _, xs := range [][]int64{t.nodeWM, t.genMax, t.genWM} {
		for k := range xs {
			xs[k] = read()
		}
	}
	for i, row := range t.chWM {
		for c := range row {
			row[c] = read()
		}
		for c := range t.chIdle[i] {
			t.chIdle[i][c] = read() != 0
		}
	}
	if err == nil && len(data) > 0 {
		err = fmt.Errorf("%d bytes after the end", len(data))
	}
	return err
}
