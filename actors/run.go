package actors

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice/checkpoints"
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

	// att is the attempt running: a recovery ends one and starts the next
	// (attMu guards the pointer, for fail from any goroutine). ended is
	// closed when the last attempt has ended.
	attMu sync.Mutex
	att   *attempt
	ended chan struct{}
	rec   recovery
	chaos *chaos
	// ckDone holds the checkpoint statistics of earlier attempts (attMu).
	ckDone []core.CheckpointStat
	// stopping: Stop was called (attMu); a recovered attempt stops at its
	// first checkpoint too.
	stopping bool
	// last is the attempt that ended the job, stopErr its engine's stop
	// error; both set before ended is closed.
	last    *attempt
	stopErr error

	sharedMu sync.Mutex
	shared   map[string]*sharedValue

	result *Result
	run    string
	exec   string // this execution of the run, unique: its checkpoints are its own
	// from is the execution whose checkpoint the job was restored from at
	// its start, if any: a recovery may restore its checkpoints too.
	from string
	ck   *checkpointing // nil: checkpoints are off
	// cl is the job's side of its cluster (nil: one process); restored
	// the checkpoint the current attempt restored (0: none).
	cl       *clusterState
	restored uint64
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
	// coordTimer asks for a CkptTick to ck's coordinator (the attempt's)
	// at unix ns at, replacing the one pending.
	coordTimer(at int64, ck *checkpointing)
	// spawn runs f, which may block on I/O, off the tasks' path.
	spawn(f func())
	// launch lets the engine go once the job layer is set up: no task
	// is stepped before.
	launch() error
	// kill drops task a's actor at once, with what it held (chaos); the
	// job layer ends the attempt.
	kill(a core.Addr)
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
	x := &Execution{phys: phys, cfg: cfg, ctx: ctx, start: cfg.Clock.Now(), att: newAttempt(1),
		ended: make(chan struct{}), shared: map[string]*sharedValue{}, run: runID(phys.Job, cfg.Seed), exec: execID()}
	if cfg.Cluster != nil {
		x.cl = &clusterState{cfg: *cfg.Cluster}
	}
	var restored *checkpoints.Restored
	if c := cfg.Checkpoints; c != nil && c.Restore != "" && !x.worker() {
		r, err := x.restoreAtStart(*c)
		if err != nil {
			return nil, fmt.Errorf("job %q: %w", phys.Job, err)
		}
		restored = r
	}
	if cfg.Chaos != nil {
		x.chaos = newChaos(x, *cfg.Chaos)
	}
	ccfg := core.Config{BatchRecords: cfg.BatchRecords, BatchBytes: cfg.BatchBytes, MaxParallelism: phys.MaxParallelism}
	unbounded := slices.ContainsFunc(phys.Vertices, func(v *plan.Vertex) bool {
		return slices.ContainsFunc(v.Splits, func(s plan.Split) bool { return s.Unbounded })
	})
	for vi, v := range phys.Vertices {
		hs := make([]*host, v.Parallelism)
		for i := range hs {
			inst := plan.Instance{Job: phys.Job, Stage: v.Name(), Index: i, Parallelism: v.Parallelism, Run: x.run, MaxParallelism: phys.MaxParallelism, Seed: cfg.Seed,
				LocalInstances: v.Parallelism, Shared: x.sharedValue, Resumed: restored != nil, Unbounded: unbounded,
				Checkpointing: cfg.Checkpoints != nil}
			for _, e := range v.In {
				inst.Inputs = append(inst.Inputs, e.Kind)
			}
			hs[i] = newHost(x, vi, inst, ccfg)
		}
		x.hosts = append(x.hosts, hs)
	}
	if x.worker() { // its attempts start when the coordinator says
		x.startWorker()
		return x, nil
	}
	if err := x.place(x.att); err != nil {
		return nil, fmt.Errorf("job %q: %w", phys.Job, err)
	}
	if restored != nil {
		x.restored = restored.ID
		if err := x.restoreTasks(restored); err != nil {
			return nil, fmt.Errorf("job %q: %w", phys.Job, err)
		}
	}
	if err := x.launch(); err != nil {
		return nil, err
	}
	go x.supervise()
	// Cancelling ctx ends the job at once, whether or not Wait is running.
	go func() {
		select {
		case <-ctx.Done():
			x.fail(ctx.Err())
		case <-x.ended:
		}
	}()
	return x, nil
}

// supervise waits for each attempt to end, stops it, and recovers from
// its failure when it can; the attempt that ends the job ends it.
func (x *Execution) supervise() {
	for {
		at := x.attempt()
		<-at.done
		if x.ck != nil {
			x.ck.stop()
		}
		// Stop every task before touching the hosts from this goroutine. If
		// they do not stop (a user function blocked for good), the hosts are
		// still in use: the coordinator leaves the writers alone.
		if x.cl != nil {
			x.cl.mu.Lock()
			x.cl.live = 0 // the attempt's messages from other nodes are dropped from now on
			x.cl.mu.Unlock()
		}
		serr := x.eng.stop()
		if x.coordinator() {
			serr = errors.Join(serr, x.stopRemote(at))
		}
		if at.err == nil || serr != nil || !x.recoverable(at.err) {
			x.last, x.stopErr = at, serr
			break
		}
		if err := x.recover(at); err != nil {
			at.err = err
			x.last = at
			break
		}
	}
	close(x.ended)
}

// launch starts the current attempt's engine and checkpoints.
func (x *Execution) launch() error {
	if x.cfg.Checkpoints != nil {
		ck, err := newCheckpointing(x, *x.cfg.Checkpoints, x.attempt().epoch)
		if err != nil {
			return fmt.Errorf("job %q: %w", x.phys.Job, err)
		}
		x.attMu.Lock()
		if x.ck != nil {
			x.ckDone = append(x.ckDone, x.ck.stats()...)
		}
		x.ck = ck
		stopping := x.stopping
		x.attMu.Unlock()
		if stopping {
			defer ck.stopAtNext() // once started
		}
	}
	eng, err := x.cfg.executor().start(x)
	if err != nil {
		return err
	}
	x.eng = eng
	if x.ck != nil {
		x.ck.start(eng)
	}
	if err := eng.launch(); err != nil {
		return err
	}
	if x.cl != nil {
		at := x.attempt()
		x.goLive(at)
		if err := x.startRemote(at, x.restored); err != nil {
			x.fail(err)
		}
	}
	return nil
}

// place places attempt at's instances: on the cluster's nodes, or all here.
func (x *Execution) place(at *attempt) error {
	if !x.coordinator() {
		return nil
	}
	x.cl.mu.Lock()
	var lost []string
	for n := range x.cl.lost {
		lost = append(lost, n)
	}
	x.cl.mu.Unlock()
	slices.Sort(lost)
	owner, err := x.cl.cfg.Place(x.phys, lost)
	if err != nil {
		return fmt.Errorf("placing attempt %d: %w", at.epoch, err)
	}
	if len(owner) != len(x.hosts) {
		return fmt.Errorf("placing attempt %d: %d vertices placed, the plan has %d", at.epoch, len(owner), len(x.hosts))
	}
	for vi, row := range owner {
		if len(row) != len(x.hosts[vi]) {
			return fmt.Errorf("placing attempt %d: %d instances of vertex %d placed, it has %d", at.epoch, len(row), vi, len(x.hosts[vi]))
		}
		// A sink's output is one transaction per process (its lease, its
		// staging, the job's commit): its instances run where the job is
		// committed.
		for i, n := range row {
			if slices.Contains(lost, n) {
				return fmt.Errorf("placing attempt %d: instance %d of vertex %d on node %s, which the job lost", at.epoch, i, x.phys.Vertices[vi].ID, n)
			}
		}
		if v := x.phys.Vertices[vi]; v.Tail().Kind == plan.KindSink {
			for i, n := range row {
				if n != x.cl.cfg.Self {
					return fmt.Errorf("placing attempt %d: instance %d of sink vertex %d (%s) on node %s: a sink's instances run on the coordinator, %s",
						at.epoch, i, v.ID, v.Name(), n, x.cl.cfg.Self)
				}
			}
		}
	}
	at.owner = owner
	x.cl.mu.Lock()
	if x.cl.placed == nil {
		x.cl.placed = map[string]bool{}
	}
	for _, row := range owner {
		for _, n := range row {
			x.cl.placed[n] = true
		}
	}
	x.cl.mu.Unlock()
	return nil
}

// attempt is one run of the job's tasks, from its start or from a
// checkpoint, until it ends: finished, failed or cancelled.
type attempt struct {
	epoch    uint64 // 1, 2, …
	done     chan struct{}
	once     sync.Once
	err      error
	endedAt  time.Time
	finished atomic.Int64
	// owner is the node of each instance ([vertex][instance]) on a
	// cluster; nil in one process.
	owner [][]string
}

func newAttempt(epoch uint64) *attempt { return &attempt{epoch: epoch, done: make(chan struct{})} }

func (x *Execution) endAttempt(a *attempt, err error) {
	a.once.Do(func() {
		a.err, a.endedAt = err, x.cfg.Clock.Now()
		close(a.done)
	})
}

func (x *Execution) attempt() *attempt {
	x.attMu.Lock()
	defer x.attMu.Unlock()
	return x.att
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

// fail ends the current attempt with err; the first error wins. Wait
// recovers from it when it can, or ends the job.
func (x *Execution) fail(err error) {
	if x.worker() { // the coordinator decides
		x.reportFailure(x.attempt().epoch, err)
		return
	}
	x.endAttempt(x.attempt(), err)
}

// taskReport is what a task's Ready reports to the job layer: the
// checkpoints whose barrier it passed, with the snapshots they took and
// how long it aligned them, and whether it is done, with its final state.
type taskReport struct {
	done    bool
	passed  []uint64
	snaps   []core.Snapshot
	final   []core.Snapshot
	aligned []core.Aligned
}

// afterStep takes what task a reported.
func (x *Execution) afterStep(a core.Addr, rep taskReport) {
	if x.worker() {
		x.report(a, rep)
		return
	}
	x.afterStepIn(x.attempt(), a, rep)
}

// afterStepIn takes what task a of attempt at reported (a worker's report
// names its attempt: one that has ended counts for nothing).
func (x *Execution) afterStepIn(at *attempt, a core.Addr, rep taskReport) {
	if x.ck != nil {
		x.ck.aligned(rep.aligned)
		if len(rep.passed) > 0 {
			x.ck.passed(a, rep.passed, rep.snaps)
		}
	}
	if rep.done {
		if x.ck != nil {
			x.ck.finished(a, rep.final)
		}
		x.instanceFinished(at)
	}
}

func (x *Execution) instanceFinished(at *attempt) {
	if at.finished.Add(1) == int64(x.instances()) {
		x.endAttempt(at, nil)
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
	if x.worker() {
		return x.waitWorker()
	}
	<-x.ended
	at, serr := x.last, x.stopErr
	var stopped *StoppedError
	if serr == nil && errors.As(at.err, &stopped) {
		return x.suspend(at.err)
	}
	c := core.NewCommitter(x.commitSinks(), at.err, serr != nil)
	for a, ok := c.Next(); ok; a, ok = c.Next() {
		c.Reply(x.carryOut(a))
	}
	for _, w := range c.Warnings() {
		x.cfg.Logger.Warn("finishing a sink's output", "err", w)
	}
	err := c.Err()
	if serr != nil {
		if x.coordinator() {
			x.endRemote(false)
		}
		return x.Snapshot(), fmt.Errorf("job %q: %w: %w (a user function may be blocked; sinks were neither committed nor aborted)",
			x.phys.Job, ErrJobFailed, errors.Join(err, serr))
	}
	if err == nil { // committed: the sources' acknowledgements are due
		for vi, hs := range x.hosts {
			for i, h := range hs {
				if at.local(x, core.Addr{Vertex: vi, Instance: i}) {
					h.task.AcknowledgeAll()
				}
			}
		}
	}
	if x.coordinator() {
		x.endRemote(err == nil && serr == nil)
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
			if h.task.Writer() != nil || h.remoteWriter.Load() {
				s.Writers = append(s.Writers, core.CommitWriter{Instance: i, Name: h.op.Instance().String()})
			}
		}
		sinks = append(sinks, s)
	}
	return sinks
}

// carryOut does what the commit coordinator asks and returns its error.
func (x *Execution) carryOut(a core.CommitAction) error {
	if node := x.ownerOf(a.At); x.coordinator() && node != x.cl.cfg.Self && (a.Op != core.CommitJobOp && a.Op != core.FinishJobOp) {
		return x.call(node, a)
	}
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

// suspend ends a job stopped at a checkpoint: its writers let go of what
// they staged, which stays, and each sink releases what it holds.
func (x *Execution) suspend(err error) (*Result, error) {
	if derr := x.detachWriters(); derr != nil {
		x.cfg.Logger.Warn("letting go of the sinks' writers", "err", derr)
	}
	for vi, v := range x.phys.Vertices {
		if tail := v.Tail(); tail.Kind == plan.KindSink && tail.Sink.SuspendJob != nil {
			tail.Sink.SuspendJob(context.WithoutCancel(x.ctx), x.hosts[vi][0].op.Instance())
		}
	}
	if x.coordinator() {
		x.endRemote(false)
	}
	return x.Snapshot(), fmt.Errorf("job %q: %w", x.phys.Job, err)
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

// Done is closed when the job has ended, after its last recovery, before
// Wait has committed or cleaned up. Wait closes it.
func (x *Execution) Done() <-chan struct{} { return x.ended }

// restartAfter applies the restart policy, on the injected clock, to a
// failure of h: reason is what it panicked with, failures the times of its
// failures so far (by instance, kept by the executor). It returns the
// backoff before the restart, or false when the instance has failed too
// often and the job fails.
func (x *Execution) restartAfter(h *host, failures map[core.Addr][]time.Time, reason any) (time.Duration, bool) {
	pol := x.cfg.Restart
	now := x.cfg.Clock.Now()
	a := h.task.Addr()
	recent := pol.note(failures[a], now)
	failures[a] = recent
	err := panicError(reason)
	x.cfg.Logger.Warn("operator failed", "instance", h.op.Instance().String(), "failures", len(recent), "err", err)
	node := ""
	if x.cl != nil {
		node = x.cl.cfg.Self
	}
	h.noteException(Exception{At: now, Vertex: h.v.ID, Instance: h.inst.Index, Stage: h.op.Instance().String(), Node: node,
		Error: err.Error(), Restarted: len(recent) <= pol.MaxRestarts})
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

// execID returns a random identifier of an execution.
func execID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// panicError turns a panic value into an error.
func panicError(reason any) error {
	if err, ok := reason.(error); ok {
		return err
	}
	return fmt.Errorf("panic: %v", reason)
}
