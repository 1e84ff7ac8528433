package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/sluice-data/sluice/backpressure"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// Messages between instance actors. In one process batches pass by pointer.
type (
	startMsg   struct{}
	produceMsg struct{}
	retryMsg   struct{} // a source's backoff after a transient error has passed
	tickMsg    struct{}
	timerMsg   struct{}
	// dataMsg carries a batch, or the end of input, on one channel; backlog
	// is the sender's count of batches waiting for credit on that channel.
	dataMsg struct {
		input, channel int
		batch          *plan.Batch
		records        int
		bytes          int64
		end            bool
		watermark      bool
		idle           bool
		timer          bool // processing time moved to time, in band
		time           int64
		backlog        int
	}
	// creditMsg returns credit on one channel of one of the sender's edges.
	creditMsg struct {
		edge, channel int
		grant         backpressure.Grant
	}
)

// channelOut is the sending end of one channel.
type channelOut struct {
	pid     *actor.PID
	input   int // the edge's input index at the receiver
	ledger  *backpressure.Ledger
	backlog []core.Send
}

// channelIn is the receiving end of one channel.
type channelIn struct {
	pid      *actor.PID
	edge     int // the edge's index at the sender
	receiver *backpressure.Receiver
}

// host is everything of one instance that outlives its actor.
type host struct {
	x  *Execution
	v  *plan.Vertex
	op *core.Operator

	self    *actor.PID
	job     *actor.PID
	outs    [][]*channelOut // [edge][channel]
	ins     [][]*channelIn  // [input][channel]
	inq     []dataMsg
	started bool

	// source
	splits []plan.Split
	split  int         // the next split to open
	open   []openSplit // splits being read
	cur    int         // the one read next
	quiet  int         // open splits in a row that had no data
	// sink
	writer    plan.SinkWriter
	committed bool

	timerMu sync.Mutex
	timers  [timers]clock.Timer
	timerAt int64 // when the eventTimer fires
	linger  bool

	blockedAt  time.Time
	reported   bool
	quietSince time.Time // an unbounded source's first read without data
	idle       bool      // idleness sent
	retrying   bool      // a retry timer is pending: the source reads nothing until it fires
	eventTimes bool      // the vertex reads or assigns event times: it tracks the greatest seen

	// The call the instance is in, for reports of a stuck job: since when
	// (unix ns on the injected clock; 0 between calls), what kind and, for
	// a source, which of its splits. Set around each call, not per record.
	callSince atomic.Int64
	callKind  atomic.Int32
	callSplit atomic.Int32

	// statistics, read by Snapshot from other goroutines
	nodeRecords []atomic.Int64
	sideRecords [][]atomic.Int64
	recordsIn   atomic.Int64
	inputs      []atomic.Int64 // records per input
	busy        atomic.Int64   // ns handling messages: reads, steps, writes, sends
	blocked     atomic.Int64   // ns
	restarts    atomic.Int64
	retries     atomic.Int64 // transient source errors retried
	peak        atomic.Int64 // most records in flight on one channel
	checks      atomic.Int64
	done        atomic.Bool
	watermark   atomic.Int64
	maxEvent    atomic.Int64      // the greatest event time this instance has emitted
	dropped     [][2]atomic.Int64 // per chain node: late, closed
}

// Kinds of call an instance can be in (host.callKind).
const (
	callStep     = iota // an operator step: the chain's user functions
	callRead            // a source reading a split
	callOpen            // a source opening a split
	callWrite           // a sink writing a batch
	callOpenSink        // a sink opening
)

// enter notes that the instance is entering a call of kind (on split, for
// a source) into code that is not the runtime's; leave notes that it is
// back. Two atomic stores and a clock read around each call, none per
// record.
func (h *host) enter(kind, split int) {
	h.callKind.Store(int32(kind))
	h.callSplit.Store(int32(split))
	h.callSince.Store(h.x.cfg.Clock.Now().UnixNano())
}

func (h *host) leave() { h.callSince.Store(0) }

func newHost(x *Execution, v *plan.Vertex, op *core.Operator) *host {
	h := &host{x: x, v: v, op: op, nodeRecords: make([]atomic.Int64, len(v.Chain)), inputs: make([]atomic.Int64, len(v.In)),
		sideRecords: make([][]atomic.Int64, len(v.Chain)), dropped: make([][2]atomic.Int64, len(v.Chain))}
	h.watermark.Store(math.MinInt64)
	h.maxEvent.Store(math.MinInt64)
	h.eventTimes = v.Head().Kind == plan.KindSource
	for i, n := range v.Chain {
		h.sideRecords[i] = make([]atomic.Int64, len(n.Side))
		h.eventTimes = h.eventTimes || n.Watermarks != nil
	}
	return h
}

// wire connects the host to its peers; pids is [vertex][instance].
func (h *host) wire(pids [][]*actor.PID, job *actor.PID) {
	idx := h.op.Instance().Index
	vi := h.index(h.v)
	h.self, h.job = pids[vi][idx], job
	budget := h.x.cfg.budget()
	for _, e := range h.v.Out {
		to := pids[h.index(e.To)]
		row := make([]*channelOut, len(to))
		for c := range row {
			row[c] = &channelOut{pid: to[c], input: e.Input, ledger: backpressure.NewLedger(budget)}
		}
		h.outs = append(h.outs, row)
	}
	for _, e := range h.v.In {
		from := pids[h.index(e.From)]
		edge := 0
		for k, oe := range e.From.Out {
			if oe == e {
				edge = k
			}
		}
		row := make([]*channelIn, len(from))
		for c := range row {
			row[c] = &channelIn{pid: from[c], edge: edge, receiver: backpressure.NewReceiver(budget)}
		}
		h.ins = append(h.ins, row)
	}
	if h.v.Head().Kind == plan.KindSource {
		h.splits = h.v.SplitsOf(idx)
	}
}

func (h *host) index(v *plan.Vertex) int {
	for i, w := range h.x.phys.Vertices {
		if w == v {
			return i
		}
	}
	panic("actors: vertex not in plan")
}

const (
	lingerTimer = iota
	restartTimer
	pollTimer  // an unbounded source's next read
	eventTimer // the operator's next processing-time timer
	retryTimer // a source's retry after a transient error
	timers
)

func (h *host) setTimer(which int, t clock.Timer) {
	h.timerMu.Lock()
	defer h.timerMu.Unlock()
	if h.timers[which] != nil {
		h.timers[which].Stop()
	}
	h.timers[which] = t
}

func (h *host) stopTimers() {
	for i := range timers {
		h.setTimer(i, nil)
	}
}

// instanceActor is the actor of one instance; a restart replaces it, not its host.
type instanceActor struct{ h *host }

func (a *instanceActor) Receive(c actor.Context) {
	h := a.h
	// Everything the instance does happens here: the time handling a
	// message is busy time, the source's reads and a sink's writes included.
	clk := h.x.cfg.Clock
	t0 := clk.Now()
	defer func() { h.busy.Add(int64(clk.Now().Sub(t0))) }()
	switch m := c.Message().(type) {
	case *actor.Started:
		if h.started { // restarted after a panic: finish the interrupted work
			h.run(c, func() error { return h.op.Resume() })
			h.pump(c)
		}
	case startMsg:
		h.start(c)
	case produceMsg:
		h.produce(c)
	case retryMsg:
		h.retrying = false
		h.produce(c)
	case dataMsg: // m.backlog, the sender's backlog, is for floating credit across processes
		h.inq = append(h.inq, m)
		h.pump(c)
	case creditMsg:
		ch := h.outs[m.edge][m.channel]
		ch.ledger.Grant(m.grant)
		h.drain(c, ch)
		h.pump(c)
	case timerMsg:
		h.setTimer(eventTimer, nil)
		now := h.x.cfg.Clock.Now().UnixNano()
		h.run(c, func() error { return h.op.Step(core.Event{Kind: core.Timer, Time: now}) })
	case tickMsg:
		h.linger = false
		h.run(c, func() error { return h.op.Step(core.Event{Kind: core.Tick}) })
	case *actor.Stopping:
		h.stopTimers()
	}
}

func (h *host) start(c actor.Context) {
	inst := h.op.Instance()
	if tail := h.v.Tail(); tail.Kind == plan.KindSink {
		h.enter(callOpenSink, 0)
		w, err := openSink(h.x.ctx, tail, inst)
		h.leave()
		if err != nil {
			h.x.fail(fmt.Errorf("%s: opening sink: %w", inst, err))
			return
		}
		h.writer = w
	}
	h.started = true
	for _, row := range h.ins {
		for _, in := range row {
			c.Send(in.pid, creditMsg{edge: in.edge, channel: inst.Index, grant: in.receiver.Open()})
		}
	}
	if h.v.Head().Kind == plan.KindSource {
		c.Send(h.self, produceMsg{})
	}
	h.pump(c)
}

// openSplit is a split being read.
type openSplit struct {
	split plan.Split
	index int         // in host.splits
	r     plan.Reader // nil until opened, and after a transient error that needs it opened again
	// records counts the records read from it; attempts the transient
	// errors in a row it has had.
	records  int64
	attempts int
}

// openSink opens a sink instance, fencing a panic of the connector: the job
// fails naming the instance rather than restarting without a writer.
func openSink(ctx context.Context, n *plan.Node, inst plan.Instance) (w plan.SinkWriter, err error) {
	defer func() {
		if r := recover(); r != nil {
			w, err = nil, fmt.Errorf("%s (%s) panicked: %v", n, n.Loc, r)
		}
	}()
	return n.Sink.Open(ctx, inst)
}

// produce reads one batch from the source, or ends its input. Splits are
// read one after another; a split with no data for now (an unbounded one
// answering ErrNoData) stays open while the instance moves on to its other
// splits, so that every partition of a broker is read. A transient error
// (see retry) pauses the instance for a backoff.
func (h *host) produce(c actor.Context) {
	if h.retrying || h.blockedNow() || h.op.Finished() || h.op.Pending() {
		return
	}
	inst := h.op.Instance()
	if len(h.open) == 0 && h.split < len(h.splits) {
		h.openNext()
	}
	if len(h.open) == 0 {
		h.run(c, func() error { return h.op.Step(core.Event{Kind: core.EndOfInput}) })
		return
	}
	h.cur %= len(h.open)
	cur := &h.open[h.cur]
	if cur.r == nil {
		h.enter(callOpen, cur.index)
		r, err := h.v.Head().Source.Open(h.x.ctx, inst, cur.split)
		h.leave()
		if err != nil {
			h.retry(c, cur, "opening", nil, err)
			return
		}
		cur.r = r
	}
	h.enter(callRead, cur.index)
	b, wm, kind, err := h.read(cur.r)
	h.leave()
	if kind != plan.ReadBatch && err == nil {
		cur.attempts = 0
		ev := core.Event{Kind: core.Watermark, Time: wm}
		if kind == plan.ReadTime {
			ev = core.Event{Kind: core.Timer, InBand: true, Time: h.x.cfg.Clock.Now().UnixNano()}
		}
		h.run(c, func() error { return h.op.Step(ev) })
		c.Send(h.self, produceMsg{})
		return
	}
	ended := errors.Is(err, io.EOF)
	noData := errors.Is(err, plan.ErrNoData)
	if err != nil && !ended && !noData {
		h.retry(c, cur, "reading", b, err)
		return
	}
	cur.attempts = 0
	if ended {
		last := *cur
		cur = &last
		h.open = append(h.open[:h.cur], h.open[h.cur+1:]...)
		if cerr := cur.r.Close(); cerr != nil {
			h.x.fail(fmt.Errorf("%s: closing split %s: %w", inst, cur.split.Desc, cerr))
			return
		}
	}
	if b != nil {
		h.emit(c, cur, b)
	}
	if !noData {
		c.Send(h.self, produceMsg{})
		return
	}
	// Nothing now from this split: try a split not yet opened, then the
	// next open one; only when all of them are quiet, wait a linger.
	if h.split < len(h.splits) {
		h.openNext()
		h.cur = len(h.open) - 1
		c.Send(h.self, produceMsg{})
		return
	}
	h.cur++
	if h.quiet++; h.quiet < len(h.open) {
		c.Send(h.self, produceMsg{})
		return
	}
	h.quiet = 0
	// Past the idle timeout, tell downstream not to wait for this instance.
	now := h.x.cfg.Clock.Now()
	if h.quietSince.IsZero() {
		h.quietSince = now
	}
	if idle := h.idleTimeout(); idle > 0 && !h.idle && now.Sub(h.quietSince) >= idle {
		h.idle = true
		h.run(c, func() error { return h.op.Step(core.Event{Kind: core.Idle}) })
	}
	root, self := h.x.system.Root, h.self
	h.setTimer(pollTimer, h.x.cfg.Clock.AfterFunc(h.x.cfg.Linger, func() { root.Send(self, produceMsg{}) }))
}

// emit steps a batch read from split s through the operator. s may point
// into h.open, which the step does not change.
func (h *host) emit(c actor.Context, s *openSplit, b *plan.Batch) {
	if out := h.v.Head().Out; out != nil && out.Len != nil {
		s.records += int64(out.Len(b.Data))
	} else {
		s.records++ // at least one: a batch is never empty
	}
	h.quietSince, h.idle, h.quiet = time.Time{}, false, 0
	now := h.x.cfg.Clock.Now().UnixNano()
	h.run(c, func() error { return h.op.Step(core.Event{Kind: core.Data, Batch: b, Time: now}) })
}

// transient is the mark package stages puts on an error that a source's
// connector declares transient (stages.TransientErrors). Resumable reports
// that the reader itself said so, and so can be read again after it; else
// only the split can be opened again.
type transient interface {
	error
	Resumable() bool
}

// retry handles the error err of split s, met while doing what ("opening",
// "reading"), with b the records a read returned with it. An error that is
// not transient fails the job. A transient one is tried again after the
// retry policy's backoff, on the injected clock, until Attempts in a row
// have failed: a resumable reader is read again where it stopped, after b
// goes on; any other reader is closed and its split opened again, which is
// safe only while none of its records have gone on, so a split that has
// emitted some fails the job instead (reading it again would repeat them).
func (h *host) retry(c actor.Context, s *openSplit, what string, b *plan.Batch, err error) {
	inst, src := h.op.Instance(), h.v.Head()
	var t transient
	if !errors.As(err, &t) {
		h.x.fail(fmt.Errorf("%s: %s (%s): %s split %s: %w", inst, src, src.Loc, what, s.split.Desc, err))
		return
	}
	pol := h.x.cfg.Retry
	s.attempts++
	if s.attempts > pol.Attempts {
		h.x.fail(fmt.Errorf("%s: %s (%s): %s split %s: giving up after %d transient errors in a row: %w",
			inst, src, src.Loc, what, s.split.Desc, s.attempts, err))
		return
	}
	resume := what == "reading" && t.Resumable()
	if what == "reading" && !resume {
		if s.records > 0 {
			h.x.fail(fmt.Errorf("%s: %s (%s): reading split %s: transient error after %d of its records went on: "+
				"the reader cannot resume mid-split, and opening the split again would repeat them: %w",
				inst, src, src.Loc, s.split.Desc, s.records, err))
			return
		}
		b = nil // the split is read again from its start
		if cerr := s.r.Close(); cerr != nil {
			h.x.cfg.Logger.Warn("closing a split after a transient error", "instance", inst.String(), "split", s.split.Desc, "err", cerr)
		}
		s.r = nil
	}
	d := pol.backoff(s.attempts)
	h.retries.Add(1)
	h.x.cfg.Logger.Warn("transient source error: retrying", "instance", inst.String(), "split", s.split.Desc,
		"attempt", s.attempts, "backoff", d, "reopen", !resume, "err", err)
	if b != nil {
		h.emit(c, s, b)
	}
	h.retrying = true
	root, self := h.x.system.Root, h.self
	h.setTimer(retryTimer, h.x.cfg.Clock.AfterFunc(d, func() { root.Send(self, retryMsg{}) }))
}

// openNext queues the instance's next split, to be opened when it is read.
func (h *host) openNext() {
	h.open = append(h.open, openSplit{split: h.splits[h.split], index: h.split})
	h.split++
	h.capWatermark()
}

// capWatermark tells the operator, when the source orders its splits by
// event time, that a split has opened and the least event time of the
// splits this instance has still to open.
func (h *host) capWatermark() {
	rest := h.splits[h.split:]
	if !slices.ContainsFunc(h.splits, func(s plan.Split) bool { return s.Order != 0 }) {
		return
	}
	cap := int64(math.MaxInt64)
	for _, s := range rest {
		cap = min(cap, s.Order)
	}
	if err := h.op.Step(core.Event{Kind: core.SplitCap, Time: cap}); err != nil {
		h.x.fail(err)
	}
}

// idleTimeout is the source's idle timeout, from the node that assigns its
// event times.
func (h *host) idleTimeout() time.Duration {
	for _, n := range h.v.Chain {
		if n.Watermarks != nil {
			return time.Duration(n.Watermarks.Idle)
		}
	}
	return 0
}

// read reads a batch or, from an EventReader, a watermark, fencing a panic
// of the reader: its position is unknown after one, so the job fails with
// the split named.
func (h *host) read(r plan.Reader) (b *plan.Batch, wm int64, kind plan.ReadKind, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, kind, err = nil, plan.ReadBatch, fmt.Errorf("reader panicked: %v", r)
		}
	}()
	if er, ok := r.(plan.EventReader); ok {
		return er.ReadEvent(h.x.cfg.BatchRecords)
	}
	b, err = r.Read(h.x.cfg.BatchRecords)
	return b, 0, plan.ReadBatch, err
}

// pump steps queued input while the outputs are not blocked.
func (h *host) pump(c actor.Context) {
	if h.v.Head().Kind == plan.KindSource {
		if !h.blockedNow() && !h.op.Finished() && h.started {
			// A credit may have unblocked the source; produce messages
			// are idempotent, so an extra one is harmless.
			c.Send(h.self, produceMsg{})
		}
		return
	}
	// Ends of input need no credit, so they can arrive before the start
	// message that opens the sink: hold everything until started.
	for h.started && len(h.inq) > 0 && !h.blockedNow() && !h.op.Pending() {
		// Take the oldest message of the input the operator prefers (a
		// join's build side), else the oldest; order within an input stays.
		k := 0
		if pref := h.op.Preferred(); pref >= 0 {
			for i, m := range h.inq {
				if m.input == pref {
					k = i
					break
				}
			}
		}
		if wait := h.op.Waiting(); wait >= 0 && h.inq[k].input == wait {
			// Leave that input's messages queued, in order: the oldest of
			// another input, if any, goes next.
			k = slices.IndexFunc(h.inq, func(m dataMsg) bool { return m.input != wait })
			if k < 0 {
				break
			}
		}
		m := h.inq[k]
		h.inq = append(h.inq[:k], h.inq[k+1:]...)
		ev := core.Event{Kind: core.Data, Input: m.input, Channel: m.channel, Batch: m.batch, Time: m.time}
		switch {
		case m.end:
			ev.Kind = core.EndOfInput
		case m.watermark:
			ev.Kind = core.Watermark
		case m.idle:
			ev.Kind = core.Idle
		case m.timer:
			ev.Kind, ev.InBand = core.Timer, true
		default:
			// Processing time travels with the data from the source, so
			// that timers fire in order with it under a manual clock.
			ev.Time = m.time
			if ev.Time == 0 {
				ev.Time = h.x.cfg.Clock.Now().UnixNano()
			}
			// The operator holds the batch from here on: its buffer is free.
			h.ins[m.input][m.channel].receiver.Consumed(m.records, m.bytes)
		}
		h.run(c, func() error { return h.op.Step(ev) })
	}
}

// run applies step to the operator and ships what it made ready. A user
// panic unwinds through here into protoactor's supervision.
func (h *host) run(c actor.Context, step func() error) {
	clk := h.x.cfg.Clock
	h.enter(callStep, 0)
	err := step()
	h.leave()
	if err != nil {
		h.x.fail(err)
		return
	}
	if h.eventTimes {
		h.noteEventTimes(h.op.Ready())
	}
	// Take the sends first and acknowledge them, then write the sink
	// batches one at a time: if a write panics (a retried ForEach), the
	// restart resumes with what is left, and nothing goes out twice.
	for _, s := range h.op.Ready().Sends {
		ch := h.outs[s.Edge][s.Channel]
		ch.backlog = append(ch.backlog, s)
	}
	h.op.AckSends()
	for len(h.op.Ready().Sink) > 0 {
		h.enter(callWrite, 0)
		err := h.writer.Write(h.op.Ready().Sink[0])
		h.leave()
		if err != nil {
			h.x.fail(fmt.Errorf("%s: writing: %w", h.op.Instance(), err))
			return
		}
		h.op.AckSink(1)
	}
	h.op.Advance()
	for _, row := range h.outs {
		for _, ch := range row {
			h.drain(c, ch)
		}
	}
	for _, row := range h.ins {
		for _, in := range row {
			if g, ok := in.receiver.Take(); ok {
				c.Send(in.pid, creditMsg{edge: in.edge, channel: h.op.Instance().Index, grant: g})
			}
		}
	}
	for i := range h.nodeRecords {
		h.nodeRecords[i].Store(h.op.NodeRecords[i])
		for p := range h.sideRecords[i] {
			h.sideRecords[i][p].Store(h.op.SideRecords[i][p])
		}
	}
	h.recordsIn.Store(h.op.RecordsIn)
	h.watermark.Store(h.op.Watermark())
	for i := range h.dropped {
		h.dropped[i][0].Store(h.op.DroppedLate[i])
		h.dropped[i][1].Store(h.op.DroppedClosed[i])
	}
	for i := range h.inputs {
		h.inputs[i].Store(h.op.InputRecords[i])
	}
	if at, ok := h.op.NextTimer(); ok && (h.timers[eventTimer] == nil || at < h.timerAt) {
		h.timerAt = at
		root, self := h.x.system.Root, h.self
		d := time.Duration(at - clk.Now().UnixNano())
		h.setTimer(eventTimer, clk.AfterFunc(max(d, 0), func() { root.Send(self, timerMsg{}) }))
	}
	if h.op.Buffered() && !h.linger {
		h.linger = true
		root, self := h.x.system.Root, h.self
		h.setTimer(lingerTimer, clk.AfterFunc(h.x.cfg.Linger, func() { root.Send(self, tickMsg{}) }))
	}
	h.checkDone()
}

// noteEventTimes notes the greatest event time among the records rd sends
// on or writes: the vertex reads or assigns event times, so these are the
// times its source has seen (less those its chain filtered out).
func (h *host) noteEventTimes(rd core.Ready) {
	m := h.maxEvent.Load()
	for _, s := range rd.Sends {
		if s.Batch != nil {
			for _, t := range s.Batch.Times {
				m = max(m, t)
			}
		}
	}
	for _, b := range rd.Sink {
		for _, t := range b.Times {
			m = max(m, t)
		}
	}
	h.maxEvent.Store(m)
}

// drain sends what the channel's credit allows, in order; the end of input
// consumes no credit but waits behind the data.
func (h *host) drain(c actor.Context, ch *channelOut) {
	wasBlocked := !h.blockedAt.IsZero()
	for len(ch.backlog) > 0 {
		s := ch.backlog[0]
		if s.Batch != nil { // control events need no credit
			if !ch.ledger.CanSend(s.Bytes) {
				break
			}
			ch.ledger.Send(s.Records, s.Bytes)
			if p := ch.ledger.PeakRecords(); p > h.peak.Load() {
				h.peak.Store(p)
			}
			h.checks.Add(1)
		}
		ch.backlog[0] = core.Send{}
		ch.backlog = ch.backlog[1:]
		c.Send(ch.pid, dataMsg{input: ch.input, channel: h.op.Instance().Index, batch: s.Batch,
			records: s.Records, bytes: s.Bytes, end: s.End, watermark: s.Watermark, idle: s.Idle, timer: s.Timer, time: s.Time,
			backlog: len(ch.backlog)})
	}
	ch.ledger.SetBacklog(len(ch.backlog))
	blocked := h.blockedNow()
	switch {
	case blocked && !wasBlocked:
		h.blockedAt = h.x.cfg.Clock.Now()
	case !blocked && wasBlocked:
		h.blocked.Add(int64(h.x.cfg.Clock.Now().Sub(h.blockedAt)))
		h.blockedAt = time.Time{}
	}
	h.checkDone()
}

func (h *host) blockedNow() bool {
	for _, row := range h.outs {
		for _, ch := range row {
			if len(ch.backlog) > 0 {
				return true
			}
		}
	}
	return false
}

// checkDone reports the instance finished once its operator has finished
// and everything, the ends of input included, has left.
func (h *host) checkDone() {
	if h.reported || !h.op.Finished() || h.blockedNow() {
		return
	}
	if h.writer != nil {
		if err := h.writer.Prepare(); err != nil {
			h.x.fail(fmt.Errorf("%s: preparing sink: %w", h.op.Instance(), err))
			return
		}
	}
	h.reported = true
	h.done.Store(true)
	h.x.instanceFinished()
}
