package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/sluice-data/sluice/backpressure"
	"github.com/sluice-data/sluice/plan"
)

// A Task is one operator instance with everything the runtime decides for
// it: which input to take next, the credit of each channel in and out, the
// backlog waiting for credit, which of a source's splits to read, when a
// source is idle, when to retry a transient error, and the order in which a
// sink's batches are written. It is a pure state machine in the shape of
// raft's RawNode: an executor steps it with a message and the time, takes
// what it has for others with Ready, and acknowledges that with Advance.
//
// A Task reads time only from its Step calls and holds no goroutine. It
// calls a source's Open and Read and a sink's Open, Write and Prepare
// itself, through plan's interfaces: what those do is the connector's
// business, and a request and a reply per batch would cost a message each
// for nothing (every executor would make the same call at the same point).
type Task struct {
	cfg  TaskConfig
	v    *plan.Vertex
	op   *Operator
	self Addr

	outs    [][]*chanOut // [edge][channel]
	ins     [][]*chanIn  // [input][channel]
	inq     []Msg
	started bool
	// aligning is the checkpoint whose barriers the task is gathering
	// from its input channels (0: none); triggers a source got before it
	// started wait in triggers.
	aligning uint64
	alignAt  int64 // when the first barrier of the one aligning came
	triggers []uint64

	// source
	splits []plan.Split
	split  int         // the next split to queue
	open   []openSplit // splits queued and being read
	cur    int         // the one read next
	quiet  int         // open splits in a row that had no data
	// acking holds the ended splits' readers that acknowledge what they
	// read (plan.Acknowledger) until a checkpoint taken after their end
	// has completed; positioned is the last checkpoint whose position the
	// task took.
	acking     []endedReader
	positioned uint64
	// sink
	writer    plan.SinkWriter
	sinkState []byte        // what the writer reopens at, after a restore
	adopted   []AdoptedSink // old instances' writers it takes over, after one
	restored  uint64        // the checkpoint restored (0: none)

	linger     bool  // a Tick is due
	timerAt    int64 // when the Timer asked for is due; 0: none
	blockedAt  int64 // since when an output has had a backlog; 0: not blocked
	quietSince int64 // an unbounded source's first read without data; 0: not quiet
	idle       bool  // idleness sent
	retrying   bool  // a Retry is due: the source reads nothing until it comes
	eventTimes bool  // the vertex reads or assigns event times: it tracks the greatest seen
	inbandTime bool  // processing time comes in band from a source upstream (timeInBand)
	reported   bool
	err        error

	ready TaskReady

	// Counters, for statistics.
	Blocked  time.Duration // time with a backlog waiting for credit
	Retries  int64         // transient source errors retried
	Peak     int64         // most records in flight on one channel
	Checks   int64         // ledger checks
	MaxEvent int64         // the greatest event time this instance has emitted
	// BytesIn and BytesOut estimate the in-memory bytes of the batches the
	// task took from its input channels and sent on its output channels
	// (plan.Type's estimate, which sizes credit).
	BytesIn, BytesOut int64
}

// TaskConfig configures a Task.
type TaskConfig struct {
	// Ctx is passed to a source's and a sink's Open.
	Ctx    context.Context
	Budget backpressure.Budget
	// Linger is how long a partly filled batch may wait.
	Linger time.Duration
	// Poll is how long an unbounded source waits before it reads again
	// when all its splits had no data; 0 is Linger.
	Poll time.Duration
	// RetryAttempts and RetryBackoff are the policy for a source's
	// transient errors: at most RetryAttempts in a row, the nth after
	// RetryBackoff(n).
	RetryAttempts int
	RetryBackoff  func(attempt int) time.Duration
	Logger        *slog.Logger
	// Calls, if not nil, is told when the task calls into code that is not
	// the runtime's (for reports of a stuck job).
	Calls Calls
	// NoHold takes every input as it comes, even one the operator would
	// leave waiting (a join's probe side until its build side has ended,
	// plan.JoinSpec.HoldProbe): the job checkpoints, and a held input
	// would keep its barrier in the sender's backlog, waiting on credit the
	// hold does not return, while the alignment blocks the build side the
	// hold waits on. The join keeps the probe batches in its state (and
	// its snapshot) instead.
	NoHold bool
}

// Calls is told around each call a Task makes into user or connector code:
// which kind, and for a source which split. Never per record.
type Calls interface {
	Enter(kind CallKind, split int)
	Leave()
}

// CallKind is the kind of call a Task is in.
type CallKind int

const (
	CallStep     CallKind = iota // an operator step: the chain's user functions
	CallRead                     // a source reading a split
	CallOpen                     // a source opening a split
	CallWrite                    // a sink writing a batch
	CallOpenSink                 // a sink opening
)

// Addr names an instance: its vertex's index in the plan and its index.
type Addr struct{ Vertex, Instance int }

// Out is a message for another instance.
type Out struct {
	To  Addr
	Msg Msg
}

// TimerKind names the timers a Task asks for. At most one of each kind is
// pending; asking again moves it.
type TimerKind int

const (
	TimerLinger TimerKind = iota // delivers Tick
	TimerPoll                    // delivers Produce
	TimerEvent                   // delivers Timer
	TimerRetry                   // delivers Retry
	NumTimers
)

// Message returns the kind of message the timer delivers.
func (k TimerKind) Message() Kind {
	return [...]Kind{TimerLinger: Tick, TimerPoll: Produce, TimerEvent: Timer, TimerRetry: Retry}[k]
}

// TimerReq asks for message Kind.Message() at time At (unix ns).
type TimerReq struct {
	Kind TimerKind
	At   int64
}

// TaskReady is what a Task has for its executor after a Step.
type TaskReady struct {
	// Msgs go to other instances, in order per receiver.
	Msgs []Out
	// Timers are set, each replacing the pending one of its kind.
	Timers []TimerReq
	// Produce asks for a Produce message to the task itself, behind what
	// its mailbox holds: a source reads its next batch.
	Produce bool
	// Done is set once, when the instance has finished and everything has
	// left it (a sink's writer has prepared).
	Done bool
	// Checkpoints are the checkpoints whose barrier has passed the task:
	// aligned on every input, its state as the barrier found it, the
	// barrier sent on behind everything before it. The executor
	// acknowledges each to the Coordinator once the task's snapshots of it
	// are written.
	Checkpoints []uint64
	// Snapshots are the copies of the task's state those barriers took,
	// to encode and write off the task's path.
	Snapshots []Snapshot
	// Final, with Done, is the finished task's state for the checkpoints
	// whose barrier does not reach it (see finalStates).
	Final []Snapshot
	// Aligned says how long the task took to align each checkpoint's
	// barriers: from the first input's to the last's.
	Aligned []Aligned
}

// Aligned is how long a task took to align checkpoint Checkpoint.
type Aligned struct {
	Checkpoint uint64
	Took       time.Duration
}

// chanOut is the sending end of one channel.
type chanOut struct {
	to      Addr
	input   int // the edge's input index at the receiver
	ledger  *backpressure.Ledger
	backlog []Msg
	batches int // the Data messages in backlog
}

// chanIn is the receiving end of one channel.
type chanIn struct {
	from     Addr
	edge     int // the edge's index at the sender
	receiver *backpressure.Receiver
	// barrier is the checkpoint whose barrier came on the channel while
	// the task aligns: what comes after it waits (0: not blocked).
	barrier uint64
	ended   bool
}

// openSplit is a split queued to read or being read.
type openSplit struct {
	split plan.Split
	index int         // in Task.splits
	r     plan.Reader // nil until opened, and after a transient error that needs it opened again
	// queued: a restore queued it, and the watermark cap is due when it
	// opens (openNext sends it for the others).
	queued bool
	// records counts the records read from it; attempts the transient
	// errors in a row it has had.
	records  int64
	attempts int
	// seek is where a restored split opens (nil: at its start); skip, the
	// records still to read and drop to get there.
	seek *SplitPosition
	skip int64
}

// timeInBand reports whether a source upstream of v (or v's own) moves
// processing time in band (plan.SourceSpec.ProcessingTime).
func timeInBand(v *plan.Vertex) bool {
	if h := v.Head(); h.Kind == plan.KindSource && h.Source != nil && h.Source.ProcessingTime {
		return true
	}
	for _, e := range v.In {
		if timeInBand(e.From) {
			return true
		}
	}
	return false
}

// NewTask returns the task of instance inst of vertex vi of phys.
func NewTask(phys *plan.Physical, vi int, inst plan.Instance, ocfg Config, cfg TaskConfig) *Task {
	v := phys.Vertices[vi]
	t := &Task{cfg: cfg, v: v, op: New(v, inst, ocfg), self: Addr{vi, inst.Index}, MaxEvent: math.MinInt64}
	t.eventTimes = v.Head().Kind == plan.KindSource
	for _, n := range v.Chain {
		t.eventTimes = t.eventTimes || n.Watermarks != nil
	}
	t.inbandTime = timeInBand(v)
	index := func(w *plan.Vertex) int {
		i := slices.Index(phys.Vertices, w)
		if i < 0 {
			panic("core: vertex not in plan")
		}
		return i
	}
	for _, e := range v.Out {
		to := index(e.To)
		row := make([]*chanOut, e.To.Parallelism)
		for c := range row {
			row[c] = &chanOut{to: Addr{to, c}, input: e.Input, ledger: backpressure.NewLedger(cfg.Budget)}
		}
		t.outs = append(t.outs, row)
	}
	for _, e := range v.In {
		from := index(e.From)
		edge := slices.Index(e.From.Out, e)
		row := make([]*chanIn, e.From.Parallelism)
		for c := range row {
			row[c] = &chanIn{from: Addr{from, c}, edge: edge, receiver: backpressure.NewReceiver(cfg.Budget)}
		}
		t.ins = append(t.ins, row)
	}
	if v.Head().Kind == plan.KindSource {
		t.splits = v.SplitsOf(inst.Index)
	}
	return t
}

// Operator returns the task's operator.
func (t *Task) Operator() *Operator { return t.op }

// Addr returns the task's address.
func (t *Task) Addr() Addr { return t.self }

// Writer returns the sink's writer, once opened.
func (t *Task) Writer() plan.SinkWriter { return t.writer }

// SplitDesc describes split i of the task's source.
func (t *Task) SplitDesc(i int) string {
	if i >= 0 && i < len(t.splits) {
		return t.splits[i].Desc
	}
	return "?"
}

// Ready returns what the task has for its executor.
func (t *Task) Ready() *TaskReady { return &t.ready }

// Advance acknowledges the last Ready.
func (t *Task) Advance() {
	clear(t.ready.Msgs)
	clear(t.ready.Snapshots)
	t.ready = TaskReady{Msgs: t.ready.Msgs[:0], Timers: t.ready.Timers[:0], Checkpoints: t.ready.Checkpoints[:0],
		Snapshots: t.ready.Snapshots[:0], Aligned: t.ready.Aligned[:0]}
}

// HasReady reports whether Ready holds anything.
func (t *Task) HasReady() bool {
	r := &t.ready
	return len(r.Msgs) > 0 || len(r.Timers) > 0 || r.Produce || r.Done || len(r.Checkpoints) > 0
}

// Step handles message m at processing time now (unix ns). An error ends
// the job; a panic (a user function's) unwinds to the executor, which
// restarts the instance and calls Resume.
func (t *Task) Step(now int64, m Msg) error {
	if t.err != nil {
		return t.err
	}
	switch m.Kind {
	case Start:
		t.start(now)
	case Produce:
		t.produce(now)
	case Retry:
		t.retrying = false
		t.produce(now)
	case Data, EndOfInput, Watermark, Idle, Time, Barrier:
		t.inq = append(t.inq, m)
		t.pump(now)
	case Trigger:
		t.trigger(now, m.Checkpoint)
	case Completed:
		t.completed(m.Checkpoint)
		if t.v.Head().Kind == plan.KindSource {
			t.acknowledge(m.Checkpoint)
		}
	case Credit:
		ch := t.outs[m.Edge][m.Channel]
		ch.ledger.Grant(m.Grant)
		t.drain(now, ch)
		t.pump(now)
	case Timer:
		t.timerAt = 0
		t.run(now, func() error { return t.op.Step(Msg{Kind: Timer, Time: now}) })
	case Tick:
		t.linger = false
		t.run(now, func() error { return t.op.Step(Msg{Kind: Tick}) })
	default:
		t.fail(fmt.Errorf("core: %s: task cannot step a %s message", t.op.Instance(), m.Kind))
	}
	return t.err
}

// Resume finishes the work a panic interrupted, after a restart.
func (t *Task) Resume(now int64) error {
	if t.err != nil {
		return t.err
	}
	if t.started {
		t.run(now, t.op.Resume)
		t.pump(now)
	}
	return t.err
}

func (t *Task) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

func (t *Task) enter(kind CallKind, split int) {
	if t.cfg.Calls != nil {
		t.cfg.Calls.Enter(kind, split)
	}
}

func (t *Task) leave() {
	if t.cfg.Calls != nil {
		t.cfg.Calls.Leave()
	}
}

func (t *Task) send(to Addr, m Msg) { t.ready.Msgs = append(t.ready.Msgs, Out{To: to, Msg: m}) }

func (t *Task) setTimer(k TimerKind, at int64) {
	t.ready.Timers = append(t.ready.Timers, TimerReq{Kind: k, At: at})
}

func (t *Task) start(now int64) {
	inst := t.op.Instance()
	if tail := t.v.Tail(); tail.Kind == plan.KindSink {
		t.enter(CallOpenSink, 0)
		si := inst
		si.Restored = t.restored
		w, err := openSink(t.cfg.Ctx, tail, si, t.sinkState, t.adopted)
		t.leave()
		if err != nil {
			t.fail(fmt.Errorf("%s: opening sink: %w", inst, err))
			return
		}
		t.writer = w
	}
	t.started = true
	for _, row := range t.ins {
		for _, in := range row {
			t.send(in.from, Msg{Kind: Credit, Edge: in.edge, Channel: inst.Index, Grant: in.receiver.Open()})
		}
	}
	if t.v.Head().Kind == plan.KindSource {
		t.ready.Produce = true
	}
	for _, n := range t.triggers {
		t.trigger(now, n)
	}
	t.triggers = nil
	t.pump(now)
}

// trigger starts checkpoint n at a source: its barrier goes through the
// chain behind what the source has read. A source that has finished has
// nothing left to checkpoint but takes part.
func (t *Task) trigger(now int64, n uint64) {
	switch {
	case t.v.Head().Kind != plan.KindSource:
		t.fail(fmt.Errorf("core: %s: a trigger for checkpoint %d reached a task that is not a source", t.op.Instance(), n))
	case !t.started:
		t.triggers = append(t.triggers, n)
	case t.op.Finished():
		t.position(n)
		t.ready.Checkpoints = append(t.ready.Checkpoints, n)
	default:
		t.position(n)
		t.run(now, func() error { return t.op.Step(Msg{Kind: Barrier, Checkpoint: n}) })
	}
}

// barrier takes checkpoint n's barrier from channel ch: the channel waits
// until the barrier has come on every channel still open (alignment), and
// then the barrier goes through the operator.
func (t *Task) barrier(now int64, ch *chanIn, n uint64) {
	if t.aligning != 0 && t.aligning != n {
		t.fail(fmt.Errorf("core: %s: the barrier of checkpoint %d came while aligning checkpoint %d", t.op.Instance(), n, t.aligning))
		return
	}
	if t.aligning == 0 {
		t.alignAt = now
	}
	t.aligning, ch.barrier = n, n
	t.aligned(now)
}

// aligned passes the barrier being aligned once every open channel has
// delivered it, and unblocks the channels.
func (t *Task) aligned(now int64) {
	if t.aligning == 0 {
		return
	}
	for _, row := range t.ins {
		for _, in := range row {
			if !in.ended && in.barrier != t.aligning {
				return
			}
		}
	}
	n := t.aligning
	t.aligning = 0
	t.ready.Aligned = append(t.ready.Aligned, Aligned{Checkpoint: n, Took: time.Duration(now - t.alignAt)})
	for _, row := range t.ins {
		for _, in := range row {
			in.barrier = 0
		}
	}
	t.run(now, func() error { return t.op.Step(Msg{Kind: Barrier, Checkpoint: n}) })
}

// openSink opens a sink instance, fencing a panic of the connector: the job
// fails naming the instance rather than restarting without a writer.
func openSink(ctx context.Context, n *plan.Node, inst plan.Instance, state []byte, adopted []AdoptedSink) (w plan.SinkWriter, err error) {
	defer func() {
		if r := recover(); r != nil {
			w, err = nil, fmt.Errorf("%s (%s) panicked: %v", n, n.Loc, r)
		}
	}()
	if (state != nil || adopted != nil) && n.Sink.Reopen == nil {
		return nil, fmt.Errorf("%s (%s) cannot reopen its output at a checkpoint", n, n.Loc)
	}
	if state != nil {
		w, err = n.Sink.Reopen(ctx, inst, state)
	} else {
		w, err = n.Sink.Open(ctx, inst)
	}
	if err != nil || adopted == nil {
		return w, err
	}
	return adopt(ctx, n, inst, w, adopted)
}

// produce reads one batch from the source, or ends its input. Bounded
// splits are read one after another; a split with no data for now (an
// unbounded one answering ErrNoData) stays open while the instance moves
// on to its other splits. Unbounded splits (Split.Unbounded, a broker's
// partitions) are opened together and read a batch each in turn, so that
// a busy partition does not starve the others and hold their records back
// until they are late. A transient error (see retry) pauses the instance
// for a backoff.
func (t *Task) produce(now int64) {
	if t.retrying || t.blockedNow() || t.op.Finished() || t.op.Pending() || !t.started {
		return
	}
	inst := t.op.Instance()
	if len(t.open) == 0 && t.split < len(t.splits) {
		t.openNext()
	}
	// Unbounded splits are all read side by side: one that always has data
	// must not keep the others from being read at all.
	for t.split < len(t.splits) && t.splits[t.split].Unbounded && t.open[len(t.open)-1].split.Unbounded {
		t.openNext()
	}
	if len(t.open) == 0 {
		t.run(now, func() error { return t.op.Step(Msg{Kind: EndOfInput}) })
		return
	}
	t.cur %= len(t.open)
	cur := &t.open[t.cur]
	if cur.r == nil {
		t.enter(CallOpen, cur.index)
		var r plan.Reader
		var err error
		if cur.seek != nil {
			r, err = t.openSplitAt(cur)
		} else {
			r, err = t.v.Head().Source.Open(t.cfg.Ctx, inst, cur.split)
		}
		t.leave()
		if err != nil {
			t.retry(now, cur, "opening", nil, err)
			return
		}
		cur.r = r
		if cur.skip == 0 {
			cur.seek = nil
		}
		if cur.queued {
			cur.queued = false
			t.capWatermark()
		}
	}
	t.enter(CallRead, cur.index)
	b, wm, kind, err := t.read(cur.r, cur.skip)
	t.leave()
	if kind != plan.ReadBatch && err == nil {
		cur.attempts = 0
		ev := Msg{Kind: Watermark, Time: wm}
		if kind == plan.ReadTime {
			ev = Msg{Kind: Time, Time: max(now, wm)}
		}
		t.run(now, func() error { return t.op.Step(ev) })
		t.ready.Produce = true
		return
	}
	ended := errors.Is(err, io.EOF)
	noData := errors.Is(err, plan.ErrNoData)
	if err != nil && !ended && !noData {
		t.retry(now, cur, "reading", b, err)
		return
	}
	cur.attempts = 0
	if cur.skip > 0 { // what the checkpoint had read: dropped
		if serr := t.skipped(cur, b, ended); serr != nil {
			t.fail(fmt.Errorf("%s: reopening split %s at the checkpoint: %w", inst, cur.split.Desc, serr))
			return
		}
		b = nil
		if cur.skip == 0 {
			cur.seek = nil
		}
	}
	if ended {
		last := *cur
		cur = &last
		t.open = append(t.open[:t.cur], t.open[t.cur+1:]...)
		if _, ok := cur.r.(plan.Acknowledger); ok && inst.Checkpointing {
			t.acking = append(t.acking, endedReader{cur.r, cur.index, cur.records, t.positioned})
		} else if cerr := cur.r.Close(); cerr != nil {
			t.fail(fmt.Errorf("%s: closing split %s: %w", inst, cur.split.Desc, cerr))
			return
		}
	}
	if b != nil {
		t.emit(now, cur, b)
	}
	if !noData {
		if cur.split.Unbounded && !ended {
			t.cur++ // side by side: the next open split reads next
		}
		t.ready.Produce = true
		return
	}
	// Nothing now from this split: try a split not yet opened, then the
	// next open one; only when all of them are quiet, wait a linger.
	if t.split < len(t.splits) {
		t.openNext()
		t.cur = len(t.open) - 1
		t.ready.Produce = true
		return
	}
	t.cur++
	if t.quiet++; t.quiet < len(t.open) {
		t.ready.Produce = true
		return
	}
	t.quiet = 0
	// Past the idle timeout, tell downstream not to wait for this instance.
	if t.quietSince == 0 {
		t.quietSince = now
	}
	if idle := t.idleTimeout(); idle > 0 && !t.idle && time.Duration(now-t.quietSince) >= idle {
		t.idle = true
		t.run(now, func() error { return t.op.Step(Msg{Kind: Idle}) })
	}
	poll := t.cfg.Poll
	if poll <= 0 {
		poll = t.cfg.Linger
	}
	t.setTimer(TimerPoll, now+int64(poll))
}

// emit steps a batch read from split s through the operator. s may point
// into t.open, which the step does not change.
func (t *Task) emit(now int64, s *openSplit, b *plan.Batch) {
	if out := t.v.Head().Out; out != nil && out.Len != nil {
		s.records += int64(out.Len(b.Data))
	} else {
		s.records++ // at least one: a batch is never empty
	}
	t.quietSince, t.idle, t.quiet = 0, false, 0
	t.run(now, func() error { return t.op.Step(Msg{Kind: Data, Batch: b, Time: now}) })
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
// retry policy's backoff until RetryAttempts in a row have failed: a
// resumable reader is read again where it stopped, after b goes on; any
// other reader is closed and its split opened again, which is safe only
// while none of its records have gone on, so a split that has emitted some
// fails the job instead (reading it again would repeat them).
func (t *Task) retry(now int64, s *openSplit, what string, b *plan.Batch, err error) {
	inst, src := t.op.Instance(), t.v.Head()
	var tr transient
	if !errors.As(err, &tr) {
		t.fail(fmt.Errorf("%s: %s (%s): %s split %s: %w", inst, src, src.Loc, what, s.split.Desc, err))
		return
	}
	s.attempts++
	if s.attempts > t.cfg.RetryAttempts {
		t.fail(fmt.Errorf("%s: %s (%s): %s split %s: giving up after %d transient errors in a row: %w",
			inst, src, src.Loc, what, s.split.Desc, s.attempts, err))
		return
	}
	resume := what == "reading" && tr.Resumable()
	if what == "reading" && !resume {
		if s.records > 0 {
			t.fail(fmt.Errorf("%s: %s (%s): reading split %s: transient error after %d of its records went on: "+
				"the reader cannot resume mid-split, and opening the split again would repeat them: %w",
				inst, src, src.Loc, s.split.Desc, s.records, err))
			return
		}
		b = nil // the split is read again from its start
		if cerr := s.r.Close(); cerr != nil {
			t.cfg.Logger.Warn("closing a split after a transient error", "instance", inst.String(), "split", s.split.Desc, "err", cerr)
		}
		s.r = nil
	}
	d := t.cfg.RetryBackoff(s.attempts)
	t.Retries++
	t.cfg.Logger.Warn("transient source error: retrying", "instance", inst.String(), "split", s.split.Desc,
		"attempt", s.attempts, "backoff", d, "reopen", !resume, "err", err)
	if b != nil {
		t.emit(now, s, b)
	}
	t.retrying = true
	t.setTimer(TimerRetry, now+int64(d))
}

// openNext queues the instance's next split, to be opened when it is read.
func (t *Task) openNext() {
	t.open = append(t.open, openSplit{split: t.splits[t.split], index: t.split})
	t.split++
	t.capWatermark()
}

// capWatermark tells the operator, when the source orders its splits by
// event time, that a split has opened and the least event time of the
// splits this instance has still to open.
func (t *Task) capWatermark() {
	if !t.ordered() {
		return
	}
	if err := t.op.Step(Msg{Kind: SplitCap, Time: t.capOf(0)}); err != nil {
		t.fail(err)
	}
}

// ordered reports whether the source orders its splits by event time.
func (t *Task) ordered() bool {
	return slices.ContainsFunc(t.splits, func(s plan.Split) bool { return s.Order != 0 })
}

// capOf returns the least event time of the splits still to open: those
// not queued yet, and those a restore queued that have not opened, past
// the first skip of them.
func (t *Task) capOf(skip int) int64 {
	cap := int64(math.MaxInt64)
	for _, s := range t.splits[t.split:] {
		cap = min(cap, s.Order)
	}
	for _, o := range t.open {
		if o.r == nil && o.queued {
			if skip > 0 {
				skip--
				continue
			}
			cap = min(cap, o.split.Order)
		}
	}
	return cap
}

// idleTimeout is the source's idle timeout, from the node that assigns its
// event times.
func (t *Task) idleTimeout() time.Duration {
	for _, n := range t.v.Chain {
		if n.Watermarks != nil {
			return time.Duration(n.Watermarks.Idle)
		}
	}
	return 0
}

// read reads a batch or, from an EventReader, a watermark, fencing a panic
// of the reader: its position is unknown after one, so the job fails with
// the split named.
func (t *Task) read(r plan.Reader, skip int64) (b *plan.Batch, wm int64, kind plan.ReadKind, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, kind, err = nil, plan.ReadBatch, fmt.Errorf("reader panicked: %v", r)
		}
	}()
	n := t.cfg.Budget.BatchRecords
	if skip > 0 {
		n = int(min(int64(n), skip)) // never past the checkpoint's position
	}
	if er, ok := r.(plan.EventReader); ok {
		return er.ReadEvent(n)
	}
	b, err = r.Read(n)
	return b, 0, plan.ReadBatch, err
}

// pump steps queued input while the outputs are not blocked.
func (t *Task) pump(now int64) {
	if t.v.Head().Kind == plan.KindSource {
		if !t.blockedNow() && !t.op.Finished() && t.started {
			// A credit may have unblocked the source; Produce messages
			// are idempotent, so an extra one is harmless.
			t.ready.Produce = true
		}
		return
	}
	// Ends of input need no credit, so they can arrive before the start
	// message that opens the sink: hold everything until started.
	for t.started && len(t.inq) > 0 && !t.blockedNow() && !t.op.Pending() && t.err == nil {
		k := t.next()
		if k < 0 {
			break
		}
		m := t.inq[k]
		t.inq = append(t.inq[:k], t.inq[k+1:]...)
		in := t.ins[m.Input][m.Channel]
		if m.Kind == Barrier {
			t.barrier(now, in, m.Checkpoint)
			continue
		}
		if m.Kind == EndOfInput {
			in.ended = true
		}
		if m.Kind == Data {
			// Processing time travels with the data from the source, so
			// that timers fire in order with it under a manual clock.
			if m.Time == 0 {
				m.Time = now
			}
			// The operator holds the batch from here on: its buffer is free.
			in.receiver.Consumed(m.Records, m.Bytes)
			t.BytesIn += m.Bytes
		}
		t.run(now, func() error { return t.op.Step(m) })
		if m.Kind == EndOfInput {
			t.aligned(now) // an ended channel sends no barrier
		}
	}
}

// next chooses the queued message to step: the oldest of the input the
// operator prefers (a join's build side), else the oldest; order within an
// input stays. A message of the input the operator cannot take yet (a
// join's probe side, unless NoHold) waits, and so does one of a channel
// blocked by alignment; -1 if nothing can go.
func (t *Task) next() int {
	wait, pref := t.op.Waiting(), t.op.Preferred()
	if t.cfg.NoHold {
		wait = -1
	}
	k := -1
	for i, m := range t.inq {
		if m.Input == wait || t.ins[m.Input][m.Channel].barrier != 0 {
			continue // held, or after its barrier: waits for the alignment
		}
		if k < 0 {
			k = i
		}
		if pref < 0 || m.Input == pref {
			return i
		}
	}
	return k
}

// run applies step to the operator and ships what it made ready. A user
// panic unwinds through here to the executor.
func (t *Task) run(now int64, step func() error) {
	t.enter(CallStep, 0)
	err := step()
	t.leave()
	if err != nil {
		t.fail(err)
		return
	}
	rd := t.op.Ready()
	if t.eventTimes {
		t.noteEventTimes(rd)
	}
	// Take the sends first and acknowledge them, then write the sink
	// batches one at a time: if a write panics (a retried ForEach), the
	// restart resumes with what is left, and nothing goes out twice.
	for _, s := range rd.Sends {
		ch := t.outs[s.Edge][s.Channel]
		ch.backlog = append(ch.backlog, s)
		if s.Kind == Data {
			ch.batches++
		}
	}
	t.op.AckSends()
	for b := 0; ; {
		// A barrier's checkpoint of the writer comes after the batches
		// before it and before those after.
		for ; b < len(rd.Barriers) && t.writer != nil && t.op.Ready().SinkAt[b] <= 0; b++ {
			if t.op.Ready().SinkAt[b] < 0 {
				continue // checkpointed before a write panicked and the step resumed
			}
			if t.checkpointSink(rd.Barriers[b]); t.err != nil {
				return
			}
			t.op.Ready().SinkAt[b] = -1
		}
		if len(t.op.Ready().Sink) == 0 {
			break
		}
		t.enter(CallWrite, 0)
		err := t.writer.Write(t.op.Ready().Sink[0])
		t.leave()
		if err != nil {
			t.fail(fmt.Errorf("%s: writing: %w", t.op.Instance(), err))
			return
		}
		t.op.AckSink(1)
	}
	t.ready.Checkpoints = append(t.ready.Checkpoints, rd.Barriers...)
	t.ready.Snapshots = append(t.ready.Snapshots, rd.Snapshots...)
	t.op.Advance()
	for _, row := range t.outs {
		for _, ch := range row {
			t.drain(now, ch)
		}
	}
	for _, row := range t.ins {
		for _, in := range row {
			if g, ok := in.receiver.Take(); ok {
				t.send(in.from, Msg{Kind: Credit, Edge: in.edge, Channel: t.op.Instance().Index, Grant: g})
			}
		}
	}
	if at, ok := t.op.NextTimer(); ok && !t.inbandTime && (t.timerAt == 0 || at < t.timerAt) {
		t.timerAt = at
		t.setTimer(TimerEvent, max(at, now))
	}
	if t.op.Buffered() && !t.linger {
		t.linger = true
		t.setTimer(TimerLinger, now+int64(t.cfg.Linger))
	}
	t.checkDone()
}

// noteEventTimes notes the greatest event time among the records rd sends
// on or writes: the vertex reads or assigns event times, so these are the
// times its source has seen (less those its chain filtered out).
func (t *Task) noteEventTimes(rd Ready) {
	m := t.MaxEvent
	for _, s := range rd.Sends {
		if s.Batch != nil {
			for _, x := range s.Batch.Times {
				m = max(m, x)
			}
		}
	}
	for _, b := range rd.Sink {
		for _, x := range b.Times {
			m = max(m, x)
		}
	}
	t.MaxEvent = m
}

// drain sends what the channel's credit allows, in order; control messages
// consume no credit but wait behind the data.
func (t *Task) drain(now int64, ch *chanOut) {
	wasBlocked := t.blockedAt != 0
	idx := t.op.Instance().Index
	for len(ch.backlog) > 0 {
		s := ch.backlog[0]
		if s.Kind == Data {
			if !ch.ledger.CanSend(s.Bytes) {
				break
			}
			ch.ledger.Send(s.Records, s.Bytes)
			t.BytesOut += s.Bytes
			t.Peak = max(t.Peak, ch.ledger.PeakRecords())
			t.Checks++
			ch.batches--
		}
		ch.backlog[0] = Msg{}
		ch.backlog = ch.backlog[1:]
		s.Input, s.Channel, s.Backlog = ch.input, idx, ch.batches
		t.send(ch.to, s)
	}
	ch.ledger.SetBacklog(ch.batches)
	blocked := t.blockedNow()
	switch {
	case blocked && !wasBlocked:
		t.blockedAt = max(now, 1)
	case !blocked && wasBlocked:
		t.Blocked += time.Duration(now - t.blockedAt)
		t.blockedAt = 0
	}
	t.checkDone()
}

func (t *Task) blockedNow() bool {
	for _, row := range t.outs {
		for _, ch := range row {
			if len(ch.backlog) > 0 {
				return true
			}
		}
	}
	return false
}

// checkDone reports the instance done once its operator has finished and
// everything, the ends of input included, has left.
func (t *Task) checkDone() {
	if t.reported || !t.op.Finished() || t.blockedNow() || t.err != nil {
		return
	}
	if t.writer != nil {
		if err := t.writer.Prepare(); err != nil {
			t.fail(fmt.Errorf("%s: preparing sink: %w", t.op.Instance(), err))
			return
		}
	}
	t.reported = true
	t.ready.Done = true
	t.ready.Final = t.finalStates()
}

// Finished reports whether the task has reported Done.
func (t *Task) Finished() bool { return t.reported }

// CloseReaders closes the splits still open (a job that ended early).
func (t *Task) CloseReaders() {
	for _, o := range t.open {
		if o.r != nil {
			_ = o.r.Close()
		}
	}
	for _, e := range t.acking {
		_ = e.r.Close()
	}
	t.open, t.acking = nil, nil
}

// endedReader is an ended split's reader that acknowledges what it read
// once checkpoint after+1 or a later one has completed.
type endedReader struct {
	r       plan.Reader // a plan.Acknowledger
	index   int         // in Task.splits
	records int64
	after   uint64
}

func (e endedReader) ack(id uint64) error { return e.r.(plan.Acknowledger).Acknowledge(id) }

// AcknowledgeAll has the readers that acknowledge what they read
// acknowledge all of it: the job has ended and committed its output.
func (t *Task) AcknowledgeAll() {
	t.acknowledge(0)
}

// acknowledge has the source's readers that acknowledge what they read
// acknowledge what checkpoint id holds (0: everything), and closes the
// ended ones it covers. A failed acknowledgement loses nothing (the
// broker delivers the records again and recovery seeks past them): it is
// logged.
func (t *Task) acknowledge(id uint64) {
	warn := func(desc string, err error) {
		t.cfg.Logger.Warn("acknowledging what a checkpoint holds", "instance", t.op.Instance().String(), "split", desc,
			"checkpoint", id, "err", err)
	}
	for _, o := range t.open {
		if a, ok := o.r.(plan.Acknowledger); ok && o.r != nil {
			t.enter(CallRead, o.index)
			err := a.Acknowledge(id)
			t.leave()
			if err != nil {
				warn(o.split.Desc, err)
			}
		}
	}
	keep := t.acking[:0]
	for _, e := range t.acking {
		if id != 0 && id <= e.after { // what it read before barrier id, not its end
			t.enter(CallRead, e.index)
			err := e.ack(id)
			t.leave()
			if err != nil {
				warn(t.splits[e.index].Desc, err)
			}
			keep = append(keep, e)
			continue
		}
		t.enter(CallRead, e.index)
		err := errors.Join(e.ack(0), e.r.Close())
		t.leave()
		if err != nil {
			warn(t.splits[e.index].Desc, err)
		}
	}
	clear(t.acking[len(keep):])
	t.acking = keep
}
