package core

import (
	"fmt"
	"slices"
	"time"
)

// A Coordinator is the job's checkpoint coordinator: a pure state machine
// in the shape of Task (Step, Ready, Advance) that decides when checkpoint
// n starts, when it is complete, when it is abandoned, and when too many
// failures in a row fail the job. Its executor carries out what Ready asks:
// inject barrier n at the sources, write the manifest once every task has
// acknowledged n, tell the tasks that n completed or was abandoned, and
// deliver a Tick at the time Ready names.
//
// One checkpoint is in flight at a time (Flink's default). A checkpoint
// starts every Interval, but never sooner than MinPause after the previous
// one ended, so that a slow store cannot keep the job checkpointing all
// the time. One that does not complete within Timeout is abandoned.
type Coordinator struct {
	cfg   CheckpointConfig
	tasks []Addr // every task that acknowledges a checkpoint

	next     uint64 // the ID of the next checkpoint
	nextAt   int64  // when it is due
	lastEnd  int64  // when the last checkpoint completed or was abandoned; 0: none yet
	failures int    // checkpoints abandoned in a row
	pending  *pendingCheckpoint
	stopping bool // the job is ending: nothing more is triggered
	done     bool

	ready CoordReady

	// Stats has one entry per checkpoint that ended, in order.
	Stats []CheckpointStat
}

// CheckpointConfig configures a Coordinator.
type CheckpointConfig struct {
	Interval time.Duration
	Timeout  time.Duration
	MinPause time.Duration
	// TolerableFailures is how many checkpoints in a row may be abandoned;
	// one more fails the job.
	TolerableFailures int
}

type pendingCheckpoint struct {
	id      uint64
	start   int64
	acked   map[Addr]bool
	writing bool // every task acknowledged: the manifest is being written
}

// CheckpointStat is the outcome of one checkpoint.
type CheckpointStat struct {
	ID         uint64
	Start, End int64 // unix ns
	Completed  bool
	Reason     string // why it was abandoned
	// Filled in by the job layer: the bytes written, in all and by stage,
	// and the longest any task took to align its inputs' barriers.
	Bytes     int64
	ByStage   map[string]int64
	Alignment time.Duration
}

// CoordReady is what the Coordinator has for its executor.
type CoordReady struct {
	// Trigger, when not 0, asks for barrier Trigger at every source.
	Trigger uint64
	// WriteManifest, when not 0, asks for that checkpoint's manifest: reply
	// with CkptManifestWritten.
	WriteManifest uint64
	// Completed and Abandoned, when not 0, are to be told to every task
	// (sinks publish a completed checkpoint's output; an abandoned one's
	// snapshots are dropped).
	Completed, Abandoned uint64
	// Tick, when not 0, is when the Coordinator wants the next Tick.
	Tick int64
	// Fail, when not nil, fails the job.
	Fail error
}

// CoordEvent is what the executor tells the Coordinator.
type CoordEvent struct {
	Kind CoordKind
	ID   uint64 // the checkpoint it is about
	From Addr   // CkptAck, CkptDecline: the task
	Err  error  // CkptDecline's reason; CkptManifestWritten's failure
}

// CoordKind tells CoordEvents apart.
type CoordKind int

const (
	// CkptTick: time has passed (the Tick asked for, or any later time).
	CkptTick CoordKind = iota
	// CkptAck: a task has snapshotted checkpoint ID (its state is written).
	CkptAck
	// CkptDecline: a task could not take or write checkpoint ID.
	CkptDecline
	// CkptManifestWritten: the manifest of ID was written (Err nil) or not.
	CkptManifestWritten
	// CkptStop: the job is ending; nothing more is triggered. A checkpoint
	// in flight is abandoned, unless its manifest is being written: that
	// one still completes (or fails) with CkptManifestWritten.
	CkptStop
	// CkptFinished: task From has finished. Its state is final and it sees
	// no more barriers: checkpoints from now on do without its
	// acknowledgement.
	CkptFinished
	// CkptNow: take a checkpoint as soon as none is in flight, whatever
	// the interval and the minimum pause (a graceful stop's).
	CkptNow
)

// NewCoordinator returns the coordinator of a job whose tasks are tasks,
// started at now; its first checkpoint is first, due an interval from now.
func NewCoordinator(cfg CheckpointConfig, tasks []Addr, first uint64, now int64) *Coordinator {
	c := &Coordinator{cfg: cfg, tasks: slices.Clone(tasks), next: first, nextAt: now + int64(cfg.Interval)}
	c.ready.Tick = c.nextTick()
	return c
}

// Ready returns what the coordinator has for its executor.
func (c *Coordinator) Ready() *CoordReady { return &c.ready }

// Advance acknowledges the last Ready.
func (c *Coordinator) Advance() { c.ready = CoordReady{} }

// Pending returns the checkpoint in flight, or 0.
func (c *Coordinator) Pending() uint64 {
	if c.pending == nil {
		return 0
	}
	return c.pending.id
}

// Step handles ev at time now (unix ns).
func (c *Coordinator) Step(now int64, ev CoordEvent) {
	if c.done {
		return
	}
	p := c.pending
	switch ev.Kind {
	case CkptNow:
		c.nextAt, c.lastEnd = min(c.nextAt, now), min(c.lastEnd, now-int64(c.cfg.MinPause))
	case CkptTick:
	case CkptAck:
		if p != nil && p.id == ev.ID && !p.writing && slices.Contains(c.tasks, ev.From) {
			p.acked[ev.From] = true
			c.allAcked(p)
		}
	case CkptFinished:
		if i := slices.Index(c.tasks, ev.From); i >= 0 {
			c.tasks = slices.Delete(c.tasks, i, i+1)
			if p != nil && !p.writing {
				delete(p.acked, ev.From)
				c.allAcked(p)
			}
		}
	case CkptDecline:
		if p != nil && p.id == ev.ID {
			c.abandon(now, fmt.Sprintf("%v declined it: %v", ev.From, ev.Err))
		}
	case CkptManifestWritten:
		if p != nil && p.id == ev.ID && p.writing {
			if ev.Err != nil {
				c.abandon(now, fmt.Sprintf("writing its manifest: %v", ev.Err))
			} else {
				c.Stats = append(c.Stats, CheckpointStat{ID: p.id, Start: p.start, End: now, Completed: true})
				c.ready.Completed = p.id
				c.pending, c.failures, c.lastEnd = nil, 0, now
			}
		}
	case CkptStop:
		if p != nil && !p.writing { // not a failure: the job is ending anyway
			c.Stats = append(c.Stats, CheckpointStat{ID: p.id, Start: p.start, End: now, Reason: "the job (or its attempt, to recover) ended first"})
			c.ready.Abandoned, c.pending = p.id, nil
		}
		c.stopping = true
	}
	if c.stopping {
		c.done = c.pending == nil
		c.ready.Tick = 0
		return
	}
	// Time: abandon a checkpoint past its timeout, start one that is due.
	if p := c.pending; p != nil && c.cfg.Timeout > 0 && now-p.start >= int64(c.cfg.Timeout) {
		c.abandon(now, fmt.Sprintf("it did not complete within %v (%s)", c.cfg.Timeout, c.missing(p)))
	}
	if c.ready.Fail != nil {
		c.done = true
		c.ready.Tick = 0
		return
	}
	if c.pending == nil && now >= c.nextAt && now >= c.lastEnd+int64(c.cfg.MinPause) {
		c.pending = &pendingCheckpoint{id: c.next, start: now, acked: map[Addr]bool{}}
		c.ready.Trigger = c.next
		c.next++
		c.nextAt = now + int64(c.cfg.Interval)
		c.allAcked(c.pending) // a job whose tasks have all finished
	}
	c.ready.Tick = c.nextTick()
}

// allAcked asks for p's manifest once every task has acknowledged p.
func (c *Coordinator) allAcked(p *pendingCheckpoint) {
	if len(p.acked) == len(c.tasks) {
		p.writing = true
		c.ready.WriteManifest = p.id
	}
}

// abandon ends the pending checkpoint as failed.
func (c *Coordinator) abandon(now int64, reason string) {
	p := c.pending
	c.Stats = append(c.Stats, CheckpointStat{ID: p.id, Start: p.start, End: now, Reason: reason})
	c.ready.Abandoned = p.id
	if c.ready.WriteManifest == p.id {
		c.ready.WriteManifest = 0
	}
	c.pending, c.lastEnd = nil, now
	c.failures++
	if c.failures > c.cfg.TolerableFailures {
		c.ready.Fail = fmt.Errorf("checkpoint %d was abandoned: %s; %d checkpoints in a row failed, more than the %d tolerated",
			p.id, reason, c.failures, c.cfg.TolerableFailures)
	}
}

// missing names the tasks that have not acknowledged p.
func (c *Coordinator) missing(p *pendingCheckpoint) string {
	if p.writing {
		return "its manifest was still being written"
	}
	var n int
	var first Addr
	for _, a := range c.tasks {
		if !p.acked[a] {
			if n == 0 {
				first = a
			}
			n++
		}
	}
	return fmt.Sprintf("%d of %d tasks had not acknowledged it, the first %v", n, len(c.tasks), first)
}

// nextTick is when the coordinator next has something to decide.
func (c *Coordinator) nextTick() int64 {
	if p := c.pending; p != nil {
		if c.cfg.Timeout > 0 {
			return p.start + int64(c.cfg.Timeout)
		}
		return 0 // it waits on its tasks
	}
	return max(c.nextAt, c.lastEnd+int64(c.cfg.MinPause))
}

func (a Addr) String() string { return fmt.Sprintf("v%d/%d", a.Vertex, a.Instance) }
