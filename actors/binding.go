package actors

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/core"
)

// The actor executor: one protoactor actor per instance under a job actor
// that supervises them. Its code is only the binding: a message from the
// mailbox is stepped into the instance's core.Task, and the task's Ready
// becomes sends to PIDs and timers on the injected clock. Every decision is
// the Task's.

// actorExecutor is the Executor of the actor runtime.
type actorExecutor struct{}

// Actors returns the executor that runs each instance in a protoactor
// actor: the default.
func Actors() Executor { return actorExecutor{} }

func (actorExecutor) Name() string { return "actors" }

// Messages of the actor binding besides core.Msg, which peers send.
type (
	startMsg   struct{}
	produceMsg struct{}
	timerMsg   struct{ kind core.TimerKind }
	restartMsg struct{ pid *actor.PID }
	killMsg    struct{ a core.Addr }
	launchMsg  struct{}
	deliverMsg struct {
		to core.Addr
		m  core.Msg
	}
)

// actorEngine runs one job's instances as actors.
type actorEngine struct {
	x      *Execution
	at     *attempt // the attempt it runs
	system *actor.ActorSystem
	job    *actor.PID
	pids   [][]*actor.PID // [vertex][instance]
	hosts  []*actorHost   // in spawn order

	coordMu sync.Mutex
	coordT  clock.Timer // the checkpoint coordinator's tick
}

// actorHost is the binding's part of one instance: its PID and timers.
type actorHost struct {
	*host
	e *actorEngine

	timerMu sync.Mutex
	timers  [core.NumTimers + 1]clock.Timer // the last is the restart timer
}

const restartTimer = int(core.NumTimers)

func (actorExecutor) start(x *Execution) (engine, error) {
	logger := x.cfg.Logger
	e := &actorEngine{x: x, at: x.attempt(), system: actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger })))}
	ja := &jobActor{e: e, failures: map[core.Addr][]time.Time{}}
	pid, err := e.system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return ja }), "job")
	if err != nil {
		e.system.Shutdown()
		return nil, fmt.Errorf("job %q: starting: %w", x.phys.Job, err)
	}
	e.job = pid
	return e, nil
}

// launch has the job actor spawn and start the instances.
func (e *actorEngine) launch() error {
	e.system.Root.Send(e.job, launchMsg{})
	return nil
}

// stop stops every actor. If they do not stop (a user function blocked for
// good), the hosts are still in use and stop says so.
func (e *actorEngine) stop() error {
	if err := e.system.Root.StopFuture(e.job).Wait(); err != nil {
		e.system.Shutdown()
		return err
	}
	e.system.Shutdown()
	for _, h := range e.hosts {
		h.stopTimers()
	}
	e.coordMu.Lock()
	if e.coordT != nil {
		e.coordT.Stop()
	}
	e.coordMu.Unlock()
	return nil
}

func (h *actorHost) setTimer(which int, t clock.Timer) {
	h.timerMu.Lock()
	defer h.timerMu.Unlock()
	if h.timers[which] != nil {
		h.timers[which].Stop()
	}
	h.timers[which] = t
}

func (h *actorHost) stopTimers() {
	for i := range h.timers {
		h.setTimer(i, nil)
	}
}

// instanceActor is the actor of one instance; a restart replaces it, not its host.
type instanceActor struct{ h *actorHost }

func (a *instanceActor) Receive(c actor.Context) {
	h := a.h
	// Everything the instance does happens here: the time handling a
	// message is busy time, the source's reads and a sink's writes included.
	clk := h.x.cfg.Clock
	t0 := clk.Now()
	defer func() { h.busy.Add(int64(clk.Now().Sub(t0))) }()
	now := t0.UnixNano()
	var err error
	switch m := c.Message().(type) {
	case *actor.Started:
		// After a restart, finish the interrupted work and ship what the
		// task had made ready before the panic.
		err = h.task.Resume(now)
	case core.Msg:
		err = h.task.Step(now, m)
	case produceMsg:
		err = h.task.Step(now, core.Msg{Kind: core.Produce})
	case timerMsg:
		err = h.task.Step(now, core.Msg{Kind: m.kind.Message()})
	case startMsg:
		err = h.task.Step(now, core.Msg{Kind: core.Start})
	case *actor.Stopping:
		h.stopTimers()
		return
	default:
		return
	}
	if err != nil {
		h.x.fail(err)
		return
	}
	h.ship(c, now)
}

// ship carries out the task's Ready.
func (h *actorHost) ship(c actor.Context, now int64) {
	rd := h.task.Ready()
	for _, o := range rd.Msgs {
		if pid := h.e.pids[o.To.Vertex][o.To.Instance]; pid != nil {
			c.Send(pid, o.Msg)
		} else { // on another node
			h.x.sendRemote(h.e.at, o.To, o.Msg)
		}
	}
	root, self, clk := h.e.system.Root, c.Self(), h.x.cfg.Clock
	for _, t := range rd.Timers {
		kind := t.Kind
		h.setTimer(int(kind), clk.AfterFunc(time.Duration(max(t.At-now, 0)), func() { root.Send(self, timerMsg{kind}) }))
	}
	if rd.Produce {
		c.Send(self, produceMsg{})
	}
	h.advance()
}

// deliver goes through the job actor, which knows the instances' PIDs once
// it has spawned them.
func (e *actorEngine) deliver(a core.Addr, m core.Msg) {
	if !e.at.local(e.x, a) {
		e.x.sendRemote(e.at, a, m)
		return
	}
	e.system.Root.Send(e.job, deliverMsg{a, m})
}

func (e *actorEngine) coordTimer(at int64, ck *checkpointing) {
	clk := e.x.cfg.Clock
	d := time.Duration(max(at-clk.Now().UnixNano(), 0))
	// The tick goes to the coordinator that asked: a timer that fires as
	// a recovery starts the next attempt must not step (nor race with the
	// making of) the next attempt's.
	t := clk.AfterFunc(d, func() { ck.step(core.CoordEvent{Kind: core.CkptTick}) })
	e.coordMu.Lock()
	defer e.coordMu.Unlock()
	if e.coordT != nil {
		e.coordT.Stop()
	}
	e.coordT = t
}

func (e *actorEngine) spawn(f func()) { go f() }

func (e *actorEngine) kill(a core.Addr) { e.system.Root.Send(e.job, killMsg{a}) }

// jobActor supervises the instance actors.
type jobActor struct {
	e        *actorEngine
	byPID    map[*actor.PID]*actorHost
	failures map[core.Addr][]time.Time
	self     *actor.PID
	early    []deliverMsg // delivered before launch
}

func (j *jobActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *actor.Started:
		j.self = c.Self()
	case launchMsg:
		e := j.e
		j.byPID = map[*actor.PID]*actorHost{}
		for vi, hs := range e.x.hosts {
			v := e.x.phys.Vertices[vi]
			row := make([]*actor.PID, len(hs))
			for i, h := range hs {
				if !e.at.local(e.x, core.Addr{Vertex: vi, Instance: i}) {
					continue // runs on another node
				}
				ah := &actorHost{host: h, e: e}
				pid, err := c.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &instanceActor{h: ah} }),
					fmt.Sprintf("v%d-%d", v.ID, i))
				if err != nil {
					e.x.fail(fmt.Errorf("spawning %s: %w", h.op.Instance(), err))
					return
				}
				row[i] = pid
				j.byPID[pid] = ah
				e.hosts = append(e.hosts, ah)
			}
			e.pids = append(e.pids, row)
		}
		// Every PID is known before any instance starts: a started
		// instance sends to its peers as soon as they grant credit.
		for vi, hs := range e.x.hosts {
			for i := range hs {
				if pid := e.pids[vi][i]; pid != nil {
					c.Send(pid, startMsg{})
				}
			}
		}
		for _, m := range j.early {
			c.Send(e.pids[m.to.Vertex][m.to.Instance], m.m)
		}
		j.early = nil
	case restartMsg:
		c.(actor.Supervisor).RestartChildren(m.pid)
	case deliverMsg:
		if j.e.pids == nil { // before the instances are spawned
			j.early = append(j.early, m)
			return
		}
		c.Send(j.e.pids[m.to.Vertex][m.to.Instance], m.m)
	case killMsg:
		if pid := j.e.pids[m.a.Vertex][m.a.Instance]; pid != nil {
			c.Stop(pid)
		}
	}
}

// HandleFailure makes jobActor the supervisor strategy of its children: it
// restarts a failed instance under the restart policy or fails the job.
func (j *jobActor) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ any) {
	h := j.byPID[child]
	if h == nil {
		j.e.x.fail(fmt.Errorf("unknown actor %s failed: %v", child, reason))
		return
	}
	x := j.e.x
	d, ok := x.restartAfter(h.host, j.failures, reason)
	if !ok {
		sup.StopChildren(child)
		return
	}
	if d <= 0 {
		sup.RestartChildren(child)
		return
	}
	root, self := j.e.system.Root, j.self
	h.setTimer(restartTimer, x.cfg.Clock.AfterFunc(d, func() { root.Send(self, restartMsg{pid: child}) }))
}
