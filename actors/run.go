package actors

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// ErrJobFailed is wrapped by the error of a job that failed.
var ErrJobFailed = errors.New("job failed")

// Execution is a running job.
type Execution struct {
	phys   *plan.Physical
	cfg    Config
	ctx    context.Context
	start  time.Time
	system *actor.ActorSystem
	job    *actor.PID
	hosts  [][]*host // [vertex][instance]

	doneOnce sync.Once
	done     chan struct{}
	err      error
	finished atomic.Int64

	sharedMu sync.Mutex
	shared   map[string]*sharedValue

	result    *Result
	abortErrs []error
	run       string
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
	logger := cfg.Logger
	system := actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger })))
	x := &Execution{phys: phys, cfg: cfg, ctx: ctx, start: cfg.Clock.Now(), system: system,
		done: make(chan struct{}), shared: map[string]*sharedValue{}, run: runID(phys.Job, cfg.Seed)}
	ccfg := core.Config{BatchRecords: cfg.BatchRecords, BatchBytes: cfg.BatchBytes, MaxParallelism: phys.MaxParallelism}
	for _, v := range phys.Vertices {
		hs := make([]*host, v.Parallelism)
		for i := range hs {
			inst := plan.Instance{Job: phys.Job, Stage: v.Name(), Index: i, Parallelism: v.Parallelism, Run: x.run, MaxParallelism: phys.MaxParallelism, Seed: cfg.Seed,
				LocalInstances: v.Parallelism, Shared: x.sharedValue}
			for _, e := range v.In {
				inst.Inputs = append(inst.Inputs, e.Kind)
			}
			hs[i] = newHost(x, v, core.New(v, inst, ccfg))
		}
		x.hosts = append(x.hosts, hs)
	}
	ja := &jobActor{x: x, failures: map[*actor.PID][]time.Time{}}
	pid, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return ja }), "job")
	if err != nil {
		system.Shutdown()
		return nil, fmt.Errorf("job %q: starting: %w", phys.Job, err)
	}
	x.job = pid
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
	err := x.err
	// Stop every actor before touching the hosts from this goroutine. If
	// they do not stop (a user function blocked for good), the hosts are
	// still in use: leave the sinks and readers alone and say so.
	if serr := x.system.Root.StopFuture(x.job).Wait(); serr != nil {
		x.system.Shutdown()
		if err == nil {
			err = errors.New("the job ended but its actors did not stop")
		}
		x.finishJob(true)
		return x.Snapshot(), fmt.Errorf("job %q: %w: %w (a user function may be blocked; sinks were neither committed nor aborted)",
			x.phys.Job, ErrJobFailed, errors.Join(err, serr))
	}
	x.system.Shutdown()
	for _, hs := range x.hosts {
		for _, h := range hs {
			h.stopTimers()
		}
	}
	if err == nil {
		err = x.commit()
	}
	if err == nil {
		err = x.commitJob()
	}
	if err != nil {
		x.abort()
	}
	x.finishJob(err != nil)
	x.closeReaders()
	res := x.Snapshot()
	if err != nil {
		err = errors.Join(append([]error{err}, x.abortErrs...)...)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return res, fmt.Errorf("job %q: %w", x.phys.Job, err)
		}
		return res, fmt.Errorf("job %q: %w: %w", x.phys.Job, ErrJobFailed, err)
	}
	return res, nil
}

func (x *Execution) commit() error {
	for _, hs := range x.hosts {
		for _, h := range hs {
			if h.writer != nil {
				if err := h.writer.Commit(); err != nil {
					return fmt.Errorf("%s: committing: %w", h.op.Instance(), err)
				}
				h.committed = true
			}
		}
	}
	return nil
}

// commitJob runs each sink's job-level commit (a _SUCCESS marker) once all
// its instances have committed.
func (x *Execution) commitJob() error {
	for _, v := range x.phys.Vertices {
		if tail := v.Tail(); tail.Kind == plan.KindSink && tail.Sink.CommitJob != nil {
			if err := tail.Sink.CommitJob(x.ctx, x.instanceOf(v, 0)); err != nil {
				return fmt.Errorf("%s: committing the job's output: %w", tail, err)
			}
		}
	}
	return nil
}

// finishJob runs each sink's end-of-job step (releasing an output's
// lease). Its errors are logged: after a commit the output is published,
// and a failed job has its error already.
func (x *Execution) finishJob(failed bool) {
	for _, v := range x.phys.Vertices {
		if tail := v.Tail(); tail.Kind == plan.KindSink && tail.Sink.FinishJob != nil {
			if err := tail.Sink.FinishJob(context.WithoutCancel(x.ctx), x.instanceOf(v, 0), failed); err != nil {
				x.cfg.Logger.Warn("finishing a sink's output", "stage", tail.String(), "err", err)
			}
		}
	}
}

func (x *Execution) instanceOf(v *plan.Vertex, i int) plan.Instance {
	for vi, w := range x.phys.Vertices {
		if w == v {
			return x.hosts[vi][i].op.Instance()
		}
	}
	panic("actors: vertex not in plan")
}

// abort discards the output of a failed job: writers not committed abort,
// and writers that had committed (the job failed in a later commit) revert.
func (x *Execution) abort() {
	for _, hs := range x.hosts {
		for _, h := range hs {
			if h.writer == nil {
				continue
			}
			if !h.committed {
				if err := h.writer.Abort(); err != nil {
					// The job has failed already; say what was left behind.
					x.cfg.Logger.Error("aborting sink left output behind", "instance", h.op.Instance().String(), "err", err)
					x.abortErrs = append(x.abortErrs, fmt.Errorf("%s: aborting: %w", h.op.Instance(), err))
				}
				continue
			}
			var err error
			if r, ok := h.writer.(plan.Reverter); ok {
				err = r.Revert()
			} else {
				err = errors.New("the sink cannot revert its commit: its output stays published")
			}
			if err != nil {
				x.cfg.Logger.Error("reverting a committed sink left output behind", "instance", h.op.Instance().String(), "err", err)
				x.abortErrs = append(x.abortErrs, fmt.Errorf("%s: reverting its commit: %w", h.op.Instance(), err))
			}
			h.committed = false
		}
	}
}

func (x *Execution) closeReaders() {
	for _, hs := range x.hosts {
		for _, h := range hs {
			for _, o := range h.open {
				if o.r != nil {
					_ = o.r.Close()
				}
			}
			h.open = nil
		}
	}
}

// Plan returns the physical plan being run.
func (x *Execution) Plan() *plan.Physical { return x.phys }

// Run returns the run's ID, derived from the job's name and Config.Seed.
func (x *Execution) Run() string { return x.run }

// Done is closed when the job has ended (before Wait has cleaned up).
func (x *Execution) Done() <-chan struct{} { return x.done }

// jobActor supervises the instance actors.
type jobActor struct {
	x        *Execution
	pids     [][]*actor.PID
	byPID    map[*actor.PID]*host
	failures map[*actor.PID][]time.Time
	self     *actor.PID
}

type restartMsg struct{ pid *actor.PID }

func (j *jobActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		j.self = c.Self()
		j.byPID = map[*actor.PID]*host{}
		for vi, hs := range j.x.hosts {
			v := j.x.phys.Vertices[vi]
			row := make([]*actor.PID, len(hs))
			for i, h := range hs {
				h := h
				pid, err := c.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &instanceActor{h: h} }),
					fmt.Sprintf("v%d-%d", v.ID, i))
				if err != nil {
					j.x.fail(fmt.Errorf("spawning %s: %w", h.op.Instance(), err))
					return
				}
				row[i] = pid
				j.byPID[pid] = h
			}
			j.pids = append(j.pids, row)
		}
		// Wire every host before starting any: a started instance sends
		// to its peers as soon as they grant credit.
		for _, hs := range j.x.hosts {
			for _, h := range hs {
				h.wire(j.pids, c.Self())
			}
		}
		for vi, hs := range j.x.hosts {
			for i := range hs {
				c.Send(j.pids[vi][i], startMsg{})
			}
		}
	case restartMsg:
		c.(actor.Supervisor).RestartChildren(m.pid)
	}
}

// HandleFailure makes jobActor the supervisor strategy of its children: it
// restarts a failed instance under the restart policy or fails the job.
func (j *jobActor) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ any) {
	h := j.byPID[child]
	if h == nil {
		j.x.fail(fmt.Errorf("unknown actor %s failed: %v", child, reason))
		return
	}
	pol := j.x.cfg.Restart
	now := j.x.cfg.Clock.Now()
	recent := j.failures[child][:0]
	for _, t := range j.failures[child] {
		if now.Sub(t) < pol.Window {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	j.failures[child] = recent
	err := panicError(reason)
	j.x.cfg.Logger.Warn("operator failed", "instance", h.op.Instance().String(), "failures", len(recent), "err", err)
	if len(recent) > pol.MaxRestarts {
		j.x.fail(fmt.Errorf("%s failed %d times within %v, giving up: %w", h.op.Instance(), len(recent), pol.Window, err))
		sup.StopChildren(child)
		return
	}
	h.restarts.Add(1)
	d := pol.backoff(len(recent))
	if d <= 0 {
		sup.RestartChildren(child)
		return
	}
	root, self := j.x.system.Root, j.self
	h.setTimer(restartTimer, j.x.cfg.Clock.AfterFunc(d, func() { root.Send(self, restartMsg{pid: child}) }))
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
