package actors

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// ErrJobFailed is wrapped by the error of a job that failed.
var ErrJobFailed = errors.New("job failed")

// Execution is a running job.
type Execution struct {
	phys  *plan.Physical
	cfg   Config
	ctx   context.Context
	start time.Time
	hosts [][]*host // [vertex][instance]
	eng   engine

	doneOnce sync.Once
	done     chan struct{}
	err      error
	finished atomic.Int64

	sharedMu sync.Mutex
	shared   map[string]*sharedValue

	result *Result
	run    string
	ck     *checkpointing // nil: checkpoints are off
}

// An Executor runs a job's instances: it steps each instance's core.Task
// with the messages its peers send and the timers it asks for. Every
// decision about an instance is its Task's; an executor only delivers.
type Executor interface {
	// Name names the executor ("actors", "sim") in logs and errors.
	Name() string
	start(x *Execution) (engine, error)
}

// engine is a started executor's hold on a job.
type engine interface {
	// stop stops stepping tasks and returns once none is being stepped,
	// or an error if that cannot be (a user function blocked for good).
	stop() error
	// deliver delivers m to task a, from the job layer (a checkpoint's
	// trigger).
	deliver(a core.Addr, m core.Msg)
	// coordTimer asks for a CkptTick to the checkpoint coordinator at
	// unix ns at, replacing the one pending.
	coordTimer(at int64)
	// spawn runs f, which may block on I/O, off the tasks' path.
	spawn(f func())
	// launch lets the engine go once the job layer is set up (a
	// deterministic engine must not start stepping before).
	launch()
}

type sharedValue struct {
	once sync.Once
	v    any
	err  error
}

// Start starts running phys. Cancelling ctx stops the job.
func Start(ctx context.Context, phys *plan.Physical, cfg Config) (*Execution, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	x := &Execution{phys: phys, cfg: cfg, ctx: ctx, start: cfg.Clock.Now(),
		done: make(chan struct{}), shared: map[string]*sharedValue{}, run: runID(phys.Job, cfg.Seed)}
	ccfg := core.Config{BatchRecords: cfg.BatchRecords, BatchBytes: cfg.BatchBytes, MaxParallelism: phys.MaxParallelism}
	for vi, v := range phys.Vertices {
		hs := make([]*host, v.Parallelism)
		for i := range hs {
			inst := plan.Instance{Job: phys.Job, Stage: v.Name(), Index: i, Parallelism: v.Parallelism, Run: x.run, MaxParallelism: phys.MaxParallelism, Seed: cfg.Seed,
				LocalInstances: v.Parallelism, Shared: x.sharedValue}
			for _, e := range v.In {
				inst.Inputs = append(inst.Inputs, e.Kind)
			}
			hs[i] = newHost(x, vi, inst, ccfg)
		}
		x.hosts = append(x.hosts, hs)
	}
	if cfg.Checkpoints != nil {
		x.ck = newCheckpointing(x, *cfg.Checkpoints)
	}
	eng, err := cfg.executor().start(x)
	if err != nil {
		return nil, err
	}
	x.eng = eng
	if x.ck != nil {
		x.ck.start(eng)
	}
	eng.launch()
	// Cancelling ctx ends the job at once, whether or not Wait is running.
	go func() {
		select {
		case <-ctx.Done():
			x.fail(ctx.Err())
		case <-x.done:
		}
	}()
	return x, nil
}

func (x *Execution) sharedValue(key string, build func() (any, error)) (any, error) {
	x.sharedMu.Lock()
	s, ok := x.shared[key]
	if !ok {
		s = &sharedValue{}
		x.shared[key] = s
	}
	x.sharedMu.Unlock()
	s.once.Do(func() { s.v, s.err = build() })
	return s.v, s.err
}

// fail ends the job with err; the first error wins.
func (x *Execution) fail(err error) {
	x.doneOnce.Do(func() {
		x.err = err
		close(x.done)
	})
}

// afterStep takes what task a's last Ready reported to the job layer: the
// checkpoints whose barrier it passed with the snapshots they took, and
// whether it is done.
func (x *Execution) afterStep(a core.Addr, passed []uint64, snaps []core.Snapshot, done bool) {
	if x.ck != nil && len(passed) > 0 {
		x.ck.passed(a, passed, snaps)
	}
	if done {
		if x.ck != nil {
			x.ck.step(core.CoordEvent{Kind: core.CkptFinished, From: a})
		}
		x.instanceFinished()
	}
}

func (x *Execution) instanceFinished() {
	if x.finished.Add(1) == int64(x.instances()) {
		x.doneOnce.Do(func() { close(x.done) })
	}
}

func (x *Execution) instances() int {
	n := 0
	for _, hs := range x.hosts {
		n += len(hs)
	}
	return n
}

// Wait waits for the job to end, commits or aborts its sinks, stops every
// actor and returns the job's statistics.
func (x *Execution) Wait() (*Result, error) {
	<-x.done // a cancelled ctx ends the job through the watcher in Start
	if x.ck != nil {
		x.ck.stop()
	}
	// Stop every task before touching the hosts from this goroutine. If
	// they do not stop (a user function blocked for good), the hosts are
	// still in use: the coordinator leaves the writers alone.
	serr := x.eng.stop()
	c := core.NewCommitter(x.commitSinks(), x.err, serr != nil)
	for a, ok := c.Next(); ok; a, ok = c.Next() {
		c.Reply(x.carryOut(a))
	}
	for _, w := range c.Warnings() {
		x.cfg.Logger.Warn("finishing a sink's output", "err", w)
	}
	err := c.Err()
	if serr != nil {
		return x.Snapshot(), fmt.Errorf("job %q: %w: %w (a user function may be blocked; sinks were neither committed nor aborted)",
			x.phys.Job, ErrJobFailed, errors.Join(err, serr))
	}
	x.closeReaders()
	res := x.Snapshot()
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return res, fmt.Errorf("job %q: %w", x.phys.Job, err)
		}
		return res, fmt.Errorf("job %q: %w: %w", x.phys.Job, ErrJobFailed, err)
	}
	return res, nil
}

// commitSinks describes the job's sinks and their open writers to the
// commit coordinator.
func (x *Execution) commitSinks() []core.CommitSink {
	var sinks []core.CommitSink
	for vi, v := range x.phys.Vertices {
		tail := v.Tail()
		if tail.Kind != plan.KindSink {
			continue
		}
		s := core.CommitSink{Vertex: vi, Name: tail.String(),
			CommitJob: tail.Sink.CommitJob != nil, FinishJob: tail.Sink.FinishJob != nil}
		for i, h := range x.hosts[vi] {
			if h.task.Writer() != nil {
				s.Writers = append(s.Writers, core.CommitWriter{Instance: i, Name: h.op.Instance().String()})
			}
		}
		sinks = append(sinks, s)
	}
	return sinks
}

// carryOut does what the commit coordinator asks and returns its error.
func (x *Execution) carryOut(a core.CommitAction) error {
	h := x.hosts[a.At.Vertex][a.At.Instance]
	tail := x.phys.Vertices[a.At.Vertex].Tail()
	switch a.Op {
	case core.CommitWriterOp:
		return h.task.Writer().Commit()
	case core.CommitJobOp:
		return tail.Sink.CommitJob(x.ctx, h.op.Instance())
	case core.AbortWriterOp:
		err := h.task.Writer().Abort()
		if err != nil { // the job has failed already; say what was left behind
			x.cfg.Logger.Error("aborting sink left output behind", "instance", h.op.Instance().String(), "err", err)
		}
		return err
	case core.RevertWriterOp:
		err := errors.New("the sink cannot revert its commit: its output stays published")
		if r, ok := h.task.Writer().(plan.Reverter); ok {
			err = r.Revert()
		}
		if err != nil {
			x.cfg.Logger.Error("reverting a committed sink left output behind", "instance", h.op.Instance().String(), "err", err)
		}
		return err
	case core.FinishJobOp:
		return tail.Sink.FinishJob(context.WithoutCancel(x.ctx), h.op.Instance(), a.Failed)
	}
	panic(fmt.Sprintf("actors: commit action %v", a))
}

func (x *Execution) closeReaders() {
	for _, hs := range x.hosts {
		for _, h := range hs {
			h.task.CloseReaders()
		}
	}
}

// Plan returns the physical plan being run.
func (x *Execution) Plan() *plan.Physical { return x.phys }

// Run returns the run's ID, derived from the job's name and Config.Seed.
func (x *Execution) Run() string { return x.run }

// Done is closed when the job has ended (before Wait has cleaned up).
func (x *Execution) Done() <-chan struct{} { return x.done }

// restartAfter applies the restart policy, on the injected clock, to a
// failure of h: reason is what it panicked with, failures the times of its
// failures so far (by instance, kept by the executor). It returns the
// backoff before the restart, or false when the instance has failed too
// often and the job fails.
func (x *Execution) restartAfter(h *host, failures map[core.Addr][]time.Time, reason any) (time.Duration, bool) {
	pol := x.cfg.Restart
	now := x.cfg.Clock.Now()
	a := h.task.Addr()
	recent := failures[a][:0]
	for _, t := range failures[a] {
		if now.Sub(t) < pol.Window {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	failures[a] = recent
	err := panicError(reason)
	x.cfg.Logger.Warn("operator failed", "instance", h.op.Instance().String(), "failures", len(recent), "err", err)
	if len(recent) > pol.MaxRestarts {
		x.fail(fmt.Errorf("%s failed %d times within %v, giving up: %w", h.op.Instance(), len(recent), pol.Window, err))
		return 0, false
	}
	h.restarts.Add(1)
	return pol.backoff(len(recent)), true
}

// runID returns the identifier of a run of job with seed: 12 hex digits of
// SHA-256 over both, so a run replayed with its seed has the same ID (and
// the same output file names), and runs of other seeds or jobs differ.
func runID(job string, seed uint64) string {
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(job))
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// panicError turns a panic value into an error.
func panicError(reason any) error {
	if err, ok := reason.(error); ok {
		return err
	}
	return fmt.Errorf("panic: %v", reason)
}
