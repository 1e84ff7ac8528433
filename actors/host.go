package actors

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// host is one instance as the job layer sees it, whichever executor runs
// it: its core.Task (where every decision about the instance is made), the
// statistics other goroutines read, and the call it is in. An executor
// steps the task and calls publish after each step.
type host struct {
	x    *Execution
	v    *plan.Vertex
	vi   int
	inst plan.Instance
	ccfg core.Config
	// task and op are the instance's in the current attempt: only the
	// executor's goroutines touch them. first is the first attempt's
	// task, whose immutable split descriptions others may read.
	task  *core.Task
	op    *core.Operator
	first *core.Task
	// base holds what earlier attempts counted (a recovery starts new
	// tasks): the published counters go on from it.
	base counters

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
	bytesIn     atomic.Int64 // estimated bytes taken from input channels
	bytesOut    atomic.Int64 // and sent on output channels
	done        atomic.Bool
	watermark   atomic.Int64
	maxEvent    atomic.Int64      // the greatest event time this instance has emitted
	dropped     [][2]atomic.Int64 // per chain node: late, closed
	late        []atomic.Int64    // per chain node: records added behind the watermark
	// asides are the examples of records each chain node set aside
	// (explain-why), over the attempts, at most plan.MaxAsides per reason;
	// seen counts the current task's examples taken into them.
	asideMu sync.Mutex
	asides  [][]plan.Aside
	seen    []int
	// exceptions are the instance's last failures (asideMu), at most
	// maxExceptions.
	exceptions []Exception
	// remoteWriter: on a cluster's coordinator, the instance runs on
	// another node and has opened its sink's writer there; hasWriter, on
	// the node that runs it, that it has opened it (for its reports, read
	// off the instance's goroutine). remoteLast holds, on the coordinator,
	// each node's last report of the instance (remoteMu).
	remoteWriter atomic.Bool
	hasWriter    atomic.Bool
	remoteMu     sync.Mutex
	remoteLast   map[string]wireStats
}

// counters are a task's counters, as publish copies them.
type counters struct {
	nodeRecords, recordsIn, blocked, retries, checks int64
	bytesIn, bytesOut                                int64
	nodes                                            []int64
	side                                             [][]int64
	inputs                                           []int64
	dropped                                          [][2]int64
	late                                             []int64
}

func newHost(x *Execution, vi int, inst plan.Instance, ccfg core.Config) *host {
	v := x.phys.Vertices[vi]
	h := &host{x: x, v: v, vi: vi, inst: inst, ccfg: ccfg, nodeRecords: make([]atomic.Int64, len(v.Chain)), inputs: make([]atomic.Int64, len(v.In)),
		sideRecords: make([][]atomic.Int64, len(v.Chain)), dropped: make([][2]atomic.Int64, len(v.Chain)), late: make([]atomic.Int64, len(v.Chain)),
		asides: make([][]plan.Aside, len(v.Chain)), seen: make([]int, len(v.Chain))}
	h.base = counters{nodes: make([]int64, len(v.Chain)), side: make([][]int64, len(v.Chain)), inputs: make([]int64, len(v.In)),
		dropped: make([][2]int64, len(v.Chain)), late: make([]int64, len(v.Chain))}
	h.newTask()
	h.first = h.task
	h.watermark.Store(math.MinInt64)
	h.maxEvent.Store(math.MinInt64)
	for i, n := range v.Chain {
		h.sideRecords[i] = make([]atomic.Int64, len(n.Side))
		h.base.side[i] = make([]int64, len(n.Side))
	}
	return h
}

// newTask makes the instance's task for a new attempt; the counters go on
// from what the last one published.
func (h *host) newTask() {
	cfg := h.x.cfg
	if h.task != nil {
		b := &h.base
		for i := range h.nodeRecords {
			b.nodes[i] = h.nodeRecords[i].Load()
			for p := range h.sideRecords[i] {
				b.side[i][p] = h.sideRecords[i][p].Load()
			}
			b.dropped[i] = [2]int64{h.dropped[i][0].Load(), h.dropped[i][1].Load()}
			b.late[i] = h.late[i].Load()
			h.seen[i] = 0
		}
		for i := range h.inputs {
			b.inputs[i] = h.inputs[i].Load()
		}
		b.recordsIn, b.blocked, b.retries, b.checks = h.recordsIn.Load(), h.blocked.Load(), h.retries.Load(), h.checks.Load()
		b.bytesIn, b.bytesOut = h.bytesIn.Load(), h.bytesOut.Load()
	}
	inst := h.inst
	inst.Attempt = h.x.attempt().epoch
	h.task = core.NewTask(h.x.phys, h.vi, inst, h.ccfg, core.TaskConfig{Ctx: h.x.ctx, Budget: cfg.budget(), Linger: cfg.Linger, Poll: cfg.Poll,
		RetryAttempts: cfg.Retry.Attempts, RetryBackoff: cfg.Retry.backoff, Logger: cfg.Logger, Calls: h,
		NoHold: cfg.Checkpoints != nil})
	h.op = h.task.Operator()
	h.done.Store(false)
	h.remoteWriter.Store(false)
}

// Enter and Leave implement core.Calls: two atomic stores and a clock read
// around each call into code that is not the runtime's, none per record.
func (h *host) Enter(kind core.CallKind, split int) {
	h.callKind.Store(int32(kind))
	h.callSplit.Store(int32(split))
	h.callSince.Store(h.x.cfg.Clock.Now().UnixNano())
}

func (h *host) Leave() { h.callSince.Store(0) }

// advance acknowledges the task's Ready once the executor has carried out
// its messages and timers, publishes the counters, and hands what the task
// reported for the job (done; checkpoints passed and their snapshots) to
// the job layer.
func (h *host) advance() {
	rd := h.task.Ready()
	rep := taskReport{done: rd.Done, passed: slices.Clone(rd.Checkpoints), snaps: slices.Clone(rd.Snapshots),
		final: slices.Clone(rd.Final), aligned: slices.Clone(rd.Aligned)}
	h.task.Advance()
	read := h.nodeRecords[0].Load()
	h.publish()
	if h.v.Head().Kind == plan.KindSource {
		h.x.progressed(h.nodeRecords[0].Load() - read)
	} else if c := h.x.chaos; c != nil && c.due.Load() {
		c.progressed(0)
	}
	if rep.done {
		h.done.Store(true)
	}
	if rep.done || len(rep.passed) > 0 || len(rep.aligned) > 0 {
		h.x.afterStep(h.task.Addr(), rep)
	}
}

// takeAsides adds a task's new examples of chain node i to h's, up to
// plan.MaxAsides of each reason.
func (h *host) takeAsides(i int, new []plan.Aside) {
	h.asideMu.Lock()
	defer h.asideMu.Unlock()
	h.asides[i] = appendAsides(h.asides[i], new)
}

// appendAsides appends to dst the examples of src whose reason dst has
// fewer than plan.MaxAsides of.
func appendAsides(dst, src []plan.Aside) []plan.Aside {
	for _, a := range src {
		n := 0
		for _, d := range dst {
			if d.Reason == a.Reason {
				n++
			}
		}
		if n < plan.MaxAsides {
			dst = append(dst, a)
		}
	}
	return dst
}

// maxExceptions bounds the failures an instance keeps for the job's
// exception history.
const maxExceptions = 10

// noteException keeps a failure of the instance.
func (h *host) noteException(e Exception) {
	h.asideMu.Lock()
	defer h.asideMu.Unlock()
	h.exceptions = append(h.exceptions, e)
	if len(h.exceptions) > maxExceptions {
		h.exceptions = slices.Delete(h.exceptions, 0, len(h.exceptions)-maxExceptions)
	}
}

// publish copies the task's counters where other goroutines read them.
func (h *host) publish() {
	op, t, b := h.op, h.task, &h.base
	for i := range h.nodeRecords {
		h.nodeRecords[i].Store(b.nodes[i] + op.NodeRecords[i])
		for p := range h.sideRecords[i] {
			h.sideRecords[i][p].Store(b.side[i][p] + op.SideRecords[i][p])
		}
		h.dropped[i][0].Store(b.dropped[i][0] + op.DroppedLate[i])
		h.dropped[i][1].Store(b.dropped[i][1] + op.DroppedClosed[i])
		h.late[i].Store(b.late[i] + op.Late[i])
		if len(op.Asides[i]) > h.seen[i] {
			h.takeAsides(i, op.Asides[i][h.seen[i]:])
			h.seen[i] = len(op.Asides[i])
		}
	}
	h.recordsIn.Store(b.recordsIn + op.RecordsIn)
	for i := range h.inputs {
		h.inputs[i].Store(b.inputs[i] + op.InputRecords[i])
	}
	h.watermark.Store(op.Watermark())
	h.hasWriter.Store(t.Writer() != nil)
	h.maxEvent.Store(max(h.maxEvent.Load(), t.MaxEvent))
	h.blocked.Store(b.blocked + int64(t.Blocked))
	h.retries.Store(b.retries + t.Retries)
	h.peak.Store(max(h.peak.Load(), t.Peak))
	h.checks.Store(b.checks + t.Checks)
	h.bytesIn.Store(b.bytesIn + t.BytesIn)
	h.bytesOut.Store(b.bytesOut + t.BytesOut)
}
