package actors

import (
	"math"
	"slices"
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
	task *core.Task
	op   *core.Operator

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

func newHost(x *Execution, vi int, inst plan.Instance, ccfg core.Config) *host {
	v := x.phys.Vertices[vi]
	h := &host{x: x, v: v, nodeRecords: make([]atomic.Int64, len(v.Chain)), inputs: make([]atomic.Int64, len(v.In)),
		sideRecords: make([][]atomic.Int64, len(v.Chain)), dropped: make([][2]atomic.Int64, len(v.Chain))}
	cfg := x.cfg
	h.task = core.NewTask(x.phys, vi, inst, ccfg, core.TaskConfig{Ctx: x.ctx, Budget: cfg.budget(), Linger: cfg.Linger, Poll: cfg.Poll,
		RetryAttempts: cfg.Retry.Attempts, RetryBackoff: cfg.Retry.backoff, Logger: cfg.Logger, Calls: h,
		NoHold: cfg.Checkpoints != nil})
	h.op = h.task.Operator()
	h.watermark.Store(math.MinInt64)
	h.maxEvent.Store(math.MinInt64)
	for i, n := range v.Chain {
		h.sideRecords[i] = make([]atomic.Int64, len(n.Side))
	}
	return h
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
	done, passed, snaps := rd.Done, slices.Clone(rd.Checkpoints), slices.Clone(rd.Snapshots)
	h.task.Advance()
	h.publish()
	if done {
		h.done.Store(true)
	}
	if done || len(passed) > 0 {
		h.x.afterStep(h.task.Addr(), passed, snaps, done)
	}
}

// publish copies the task's counters where other goroutines read them.
func (h *host) publish() {
	op, t := h.op, h.task
	for i := range h.nodeRecords {
		h.nodeRecords[i].Store(op.NodeRecords[i])
		for p := range h.sideRecords[i] {
			h.sideRecords[i][p].Store(op.SideRecords[i][p])
		}
		h.dropped[i][0].Store(op.DroppedLate[i])
		h.dropped[i][1].Store(op.DroppedClosed[i])
	}
	h.recordsIn.Store(op.RecordsIn)
	for i := range h.inputs {
		h.inputs[i].Store(op.InputRecords[i])
	}
	h.watermark.Store(op.Watermark())
	h.maxEvent.Store(t.MaxEvent)
	h.blocked.Store(int64(t.Blocked))
	h.retries.Store(t.Retries)
	h.peak.Store(t.Peak)
	h.checks.Store(t.Checks)
}
