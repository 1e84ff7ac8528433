package core

import (
	"errors"
	"fmt"
)

// A Committer is the job's sink commit coordinator: a state machine that
// decides, once every instance has stopped, which writer commits, aborts or
// reverts, and when each sink's job-level commit and end-of-job step run.
// Its executor carries out one CommitAction at a time and replies with the
// action's error; in one process that is a call, across nodes a message to
// the node holding the writer and its answer.
//
// The protocol is Spark's commit protocol on the sink lifecycle of plan:
//
//   - A job that ended without an error commits its writers one by one, in
//     plan order, then runs each sink's CommitJob (a manifest switch, a
//     _SUCCESS marker): its output becomes visible there.
//   - On the first failure — the job's own, a writer's Commit or a sink's
//     CommitJob — no further commit is made. Every writer not committed
//     aborts, and every writer that committed reverts (its output was not
//     yet visible through the job's commit, or it is taken back).
//   - Last, whatever happened, each sink's FinishJob runs once (it releases
//     the output's lease, deletes files a committed overwrite replaced).
//     Its errors do not change the job's outcome: they are Warnings.
//
// A Committer holds no clock and makes no call; its tests script it.
type Committer struct {
	sinks []CommitSink

	phase     commitPhase
	sink, w   int    // the position of the next action in phase
	committed []bool // by writer, in the order of sinks and their writers
	pending   *CommitAction

	err      error   // the job's error: its own or the first failed commit
	undone   []error // writers that could not abort or revert
	warnings []error
}

// CommitSink is one sink vertex as the Committer sees it.
type CommitSink struct {
	Vertex int
	Name   string // the sink stage, for errors
	// Writers are the sink's instances that opened a writer, each with its
	// instance's name, for errors.
	Writers []CommitWriter
	// CommitJob and FinishJob say whether the sink has those steps.
	CommitJob, FinishJob bool
}

// CommitWriter is one instance's writer.
type CommitWriter struct {
	Instance int
	Name     string
}

// CommitOp is what a CommitAction asks for.
type CommitOp int

const (
	// CommitWriterOp commits the writer of instance At.
	CommitWriterOp CommitOp = iota
	// CommitJobOp runs the job-level commit of the sink of vertex
	// At.Vertex, on its instance 0.
	CommitJobOp
	// AbortWriterOp discards the output of a writer that has not committed.
	AbortWriterOp
	// RevertWriterOp takes back a writer's commit. A writer that cannot
	// revert replies with an error: its output stays published.
	RevertWriterOp
	// FinishJobOp runs the end-of-job step of the sink of vertex At.Vertex,
	// on its instance 0; Failed says whether the job failed.
	FinishJobOp
)

var commitOpNames = [...]string{"commit", "commit-job", "abort", "revert", "finish-job"}

func (o CommitOp) String() string { return commitOpNames[o] }

// CommitAction is one step for the executor.
type CommitAction struct {
	Op     CommitOp
	At     Addr
	Failed bool // FinishJobOp: the job failed
}

func (a CommitAction) String() string {
	s := fmt.Sprintf("%s v%d/%d", a.Op, a.At.Vertex, a.At.Instance)
	if a.Op == FinishJobOp {
		s += fmt.Sprintf(" failed=%t", a.Failed)
	}
	return s
}

type commitPhase int

const (
	committingWriters commitPhase = iota
	committingJobs
	undoing
	finishing
	commitDone
)

// NewCommitter returns the coordinator of a job whose instances have all
// stopped, jobErr its error (nil if it ended well). If inUse, a task could
// not be stopped and its writer may still be in use: no writer is touched,
// and only the sinks' FinishJob runs, as failed.
func NewCommitter(sinks []CommitSink, jobErr error, inUse bool) *Committer {
	n := 0
	for _, s := range sinks {
		n += len(s.Writers)
	}
	c := &Committer{sinks: sinks, err: jobErr, committed: make([]bool, n)}
	switch {
	case inUse:
		if c.err == nil {
			c.err = errors.New("the job ended but its tasks did not stop")
		}
		c.phase = finishing
	case jobErr != nil:
		c.phase = undoing
	}
	c.pending = c.next()
	return c
}

// Next returns the action to carry out, or false when the coordinator is
// done. It returns the same action until Reply.
func (c *Committer) Next() (CommitAction, bool) {
	if c.pending == nil {
		return CommitAction{}, false
	}
	return *c.pending, true
}

// Reply takes the outcome of the action Next returned.
func (c *Committer) Reply(err error) {
	a := c.pending
	if a == nil {
		panic("core: Committer.Reply without an action")
	}
	s := c.sinks[c.sink]
	switch a.Op {
	case CommitWriterOp:
		if err != nil {
			c.err = fmt.Errorf("%s: committing: %w", s.Writers[c.w].Name, err)
			c.phase, c.sink, c.w = undoing, 0, 0
		} else {
			c.committed[c.index(c.sink, c.w)] = true
			c.w++
		}
	case CommitJobOp:
		if err != nil {
			c.err = fmt.Errorf("%s: committing the job's output: %w", s.Name, err)
			c.phase, c.sink, c.w = undoing, 0, 0
		} else {
			c.sink++
		}
	case AbortWriterOp, RevertWriterOp:
		if err != nil {
			what := "aborting"
			if a.Op == RevertWriterOp {
				what = "reverting its commit"
			}
			c.undone = append(c.undone, fmt.Errorf("%s: %s: %w", s.Writers[c.w].Name, what, err))
		}
		c.committed[c.index(c.sink, c.w)] = false
		c.w++
	case FinishJobOp:
		if err != nil {
			c.warnings = append(c.warnings, fmt.Errorf("%s: finishing the output: %w", s.Name, err))
		}
		c.sink++
	}
	c.pending = c.next()
}

// Err returns the job's outcome once the coordinator is done: nil if every
// commit succeeded, else the job's error or the first failed commit,
// joined with the writers that could not abort or revert.
func (c *Committer) Err() error {
	if c.err == nil {
		return nil
	}
	return errors.Join(append([]error{c.err}, c.undone...)...)
}

// Warnings returns the sinks' FinishJob errors: logged, not failing the job.
func (c *Committer) Warnings() []error { return c.warnings }

func (c *Committer) index(sink, w int) int {
	n := w
	for _, s := range c.sinks[:sink] {
		n += len(s.Writers)
	}
	return n
}

// next finds the next action from the current position, moving through
// the phases as each runs out.
func (c *Committer) next() *CommitAction {
	for c.phase != commitDone {
		if c.sink == len(c.sinks) {
			c.sink, c.w = 0, 0
			switch c.phase {
			case committingWriters:
				c.phase = committingJobs
			case committingJobs, undoing:
				c.phase = finishing
			case finishing:
				c.phase = commitDone
			}
			continue
		}
		s := c.sinks[c.sink]
		switch c.phase {
		case committingWriters, undoing:
			if c.w == len(s.Writers) {
				c.sink, c.w = c.sink+1, 0
				continue
			}
			at := Addr{Vertex: s.Vertex, Instance: s.Writers[c.w].Instance}
			switch {
			case c.phase == committingWriters:
				return &CommitAction{Op: CommitWriterOp, At: at}
			case c.committed[c.index(c.sink, c.w)]:
				return &CommitAction{Op: RevertWriterOp, At: at}
			default:
				return &CommitAction{Op: AbortWriterOp, At: at}
			}
		case committingJobs:
			if !s.CommitJob {
				c.sink++
				continue
			}
			return &CommitAction{Op: CommitJobOp, At: Addr{Vertex: s.Vertex}}
		case finishing:
			if !s.FinishJob {
				c.sink++
				continue
			}
			return &CommitAction{Op: FinishJobOp, At: Addr{Vertex: s.Vertex}, Failed: c.err != nil}
		}
	}
	return nil
}
