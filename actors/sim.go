package actors

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/core"
)

// Sim is the deterministic executor: one goroutine steps every task, on a
// manual clock, choosing among the tasks that have a message with a
// random source seeded from the job's seed (Config.Seed). Every
// interleaving it runs is reproducible from that seed: the same job, data
// and seed deliver the same messages in the same order at the same
// virtual times, and write the same output byte for byte.
//
// Virtual time stands still while any task has a message and jumps to the
// next timer when none has. Sim drives the clock itself: it uses
// Config.Clock if that is a *clock.Manual (which nothing else may then
// advance), else a manual clock from 2000-01-01 UTC.
//
// A user function that panics is restarted under Config.Restart, after the
// policy's backoff in virtual time, exactly as the actor executor does.
type Sim struct {
	// Trace, if not nil, gets one line per delivered message: the virtual
	// time, the receiving instance and the message.
	Trace io.Writer
	// StepTime, when not 0, is how much virtual time each delivered
	// message takes: timers then come due while the tasks are busy, as on
	// a real clock (a checkpoint interval elapses mid-stream). 0: time
	// stands still while any task has a message.
	StepTime time.Duration
}

// SimEpoch is where Sim's own manual clock starts.
var SimEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func (Sim) Name() string { return "sim" }

// simTask is one instance under the simulator.
type simTask struct {
	*host
	addr    core.Addr
	mailbox []core.Msg
	timers  [core.NumTimers]int64 // when each pending timer is due; 0: none
	// restartAt is when a failed instance restarts (0: it has not failed);
	// until then it takes no messages.
	restartAt int64
}

type simEngine struct {
	x       *Execution
	att     *attempt
	clk     *clock.Manual
	trace   io.Writer
	rng     *rand.Rand
	tasks   [][]*simTask // [vertex][instance]
	all     []*simTask
	failed  map[core.Addr][]time.Time
	stopped chan struct{}
	quit    chan struct{}
	ready   []*simTask // scratch: the tasks with a message
	step    int64      // virtual ns a delivery takes
	coordAt int64      // when the checkpoint coordinator's tick is due; 0: none
	laterMu sync.Mutex
	later   []func() // the job layer's I/O, run between deliveries
	exited  bool     // the loop has returned: later runs at once
}

func (s Sim) start(x *Execution) (engine, error) {
	clk, ok := x.cfg.Clock.(*clock.Manual)
	if !ok {
		clk = clock.NewManual(SimEpoch)
		x.cfg.Clock = clk
	}
	at := x.attempt()
	if at.epoch == 1 {
		x.start = clk.Now()
	}
	e := &simEngine{x: x, att: at, clk: clk, trace: s.Trace, failed: map[core.Addr][]time.Time{},
		rng:     rand.New(rand.NewPCG(x.cfg.Seed, 0x736c75696365+at.epoch-1)), // "sluice"
		stopped: make(chan struct{}), quit: make(chan struct{}), step: int64(s.StepTime)}
	for vi, hs := range x.hosts {
		row := make([]*simTask, len(hs))
		for i, h := range hs {
			t := &simTask{host: h, addr: core.Addr{Vertex: vi, Instance: i}}
			t.mailbox = append(t.mailbox, core.Msg{Kind: core.Start})
			row[i] = t
			e.all = append(e.all, t)
		}
		e.tasks = append(e.tasks, row)
	}
	return e, nil
}

// stop ends the loop and waits for it to return: at once, unless a user
// function is blocked in it.
func (e *simEngine) stop() error {
	close(e.quit)
	select {
	case <-e.stopped:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the simulator is still inside a call after 10s")
	}
}

func (e *simEngine) loop() {
	defer close(e.stopped)
	defer func() { // a write the job's end overtook
		e.runLater()
		e.laterMu.Lock()
		e.exited = true
		e.laterMu.Unlock()
		e.runLater()
	}()
	for {
		e.runLater()
		select {
		case <-e.quit:
			return
		case <-e.att.done:
			return
		default:
		}
		now := e.clk.Now().UnixNano()
		e.ready = e.ready[:0]
		for _, t := range e.all {
			if t.restartAt == 0 && len(t.mailbox) > 0 {
				e.ready = append(e.ready, t)
			}
		}
		if e.step > 0 && e.due(now) {
			continue
		}
		if len(e.ready) == 0 {
			if !e.fireNext(now) {
				e.x.fail(fmt.Errorf("sim: the job stalled at %v: no instance has a message and no timer is pending (%s)",
					e.clk.Now().Sub(e.x.start), e.pending()))
				return
			}
			continue
		}
		t := e.ready[e.rng.IntN(len(e.ready))]
		m := t.mailbox[0]
		t.mailbox[0] = core.Msg{}
		t.mailbox = t.mailbox[1:]
		if e.trace != nil {
			fmt.Fprintf(e.trace, "%d v%d/%d %s\n", now-e.x.start.UnixNano(), t.addr.Vertex, t.addr.Instance, m)
		}
		e.stepTask(t, now, func() error { return t.task.Step(now, m) })
		if e.step > 0 {
			e.clk.Advance(time.Duration(e.step))
		}
	}
}

// runLater runs the job layer's deferred I/O in order.
func (e *simEngine) runLater() {
	for {
		e.laterMu.Lock()
		if len(e.later) == 0 {
			e.laterMu.Unlock()
			return
		}
		f := e.later[0]
		e.later = e.later[1:]
		e.laterMu.Unlock()
		f()
	}
}

// due fires the earliest timer, restart or coordinator tick that is due by
// now, if any.
func (e *simEngine) due(now int64) bool {
	n, ok := e.earliest()
	if c := e.coordAt; c != 0 && c <= now && (!ok || c <= n.at) {
		e.coordAt = 0
		e.x.ck.step(core.CoordEvent{Kind: core.CkptTick})
		return true
	}
	return ok && n.at <= now && e.fireNext(now)
}

func (e *simEngine) deliver(a core.Addr, m core.Msg) {
	t := e.tasks[a.Vertex][a.Instance]
	t.mailbox = append(t.mailbox, m)
}

func (e *simEngine) coordTimer(at int64, _ *checkpointing) { e.coordAt = at }

// spawn defers f to the loop, between deliveries, so that the job layer's
// I/O stays in the simulation's order; once the loop has returned (the
// job's end), f runs on a goroutine of its own.
func (e *simEngine) spawn(f func()) {
	e.laterMu.Lock()
	defer e.laterMu.Unlock()
	if e.exited {
		go f()
		return
	}
	e.later = append(e.later, f)
}

func (e *simEngine) launch() error { go e.loop(); return nil }

// kill needs nothing more: the attempt ends, and the loop returns before
// it delivers another message.
func (e *simEngine) kill(core.Addr) {}

// step runs one call into t's task and carries out its Ready; a panic
// restarts t under the restart policy.
func (e *simEngine) stepTask(t *simTask, now int64, call func() error) {
	err, failed, reason := protect(call)
	if failed {
		d, ok := e.x.restartAfter(t.host, e.failed, reason)
		if ok {
			t.restartAt = max(now+int64(d), now+1)
		}
		return
	}
	if err != nil {
		e.x.fail(err)
		return
	}
	e.ship(t, now)
}

// protect calls f, turning a panic into its value.
func protect(f func() error) (err error, panicked bool, reason any) {
	defer func() {
		if r := recover(); r != nil {
			panicked, reason = true, r
		}
	}()
	return f(), false, nil
}

// ship carries out t's Ready: messages into the receivers' mailboxes (in
// order, so each channel stays FIFO), timers into the timer table.
func (e *simEngine) ship(t *simTask, now int64) {
	rd := t.task.Ready()
	for _, o := range rd.Msgs {
		to := e.tasks[o.To.Vertex][o.To.Instance]
		to.mailbox = append(to.mailbox, o.Msg)
	}
	for _, r := range rd.Timers {
		t.timers[r.Kind] = max(r.At, now)
	}
	if rd.Produce {
		t.mailbox = append(t.mailbox, core.Msg{Kind: core.Produce})
	}
	t.advance()
}

// simNext is the earliest timer or restart of a task.
type simNext struct {
	at   int64
	t    *simTask
	kind int // the timer's kind; -1: the restart
}

// earliest finds the earliest pending timer or restart of the tasks. Ties
// go in instance order, then in timer kind order: deterministic, and the
// random choice among the mailboxes they fill comes after.
func (e *simEngine) earliest() (simNext, bool) {
	var n simNext
	for _, t := range e.all {
		if t.restartAt != 0 && (n.t == nil || t.restartAt < n.at) {
			n = simNext{t.restartAt, t, -1}
		}
		if t.restartAt != 0 {
			continue // a failed instance's timers wait for its restart
		}
		for k, due := range t.timers {
			if due != 0 && (n.t == nil || due < n.at) {
				n = simNext{due, t, k}
			}
		}
	}
	return n, n.t != nil
}

// fireNext moves the clock to the earliest pending timer, restart or
// coordinator tick and delivers it; false if no task has a timer or a
// restart pending (the coordinator's ticks alone cannot move the job on).
func (e *simEngine) fireNext(now int64) bool {
	n, ok := e.earliest()
	if !ok {
		return false
	}
	at := n.at
	coord := e.coordAt != 0 && e.coordAt <= n.at
	if coord {
		at = e.coordAt
	}
	if at > now {
		e.clk.Advance(time.Duration(at - now))
		now = at
	}
	switch {
	case coord:
		e.coordAt = 0
		e.x.ck.step(core.CoordEvent{Kind: core.CkptTick})
	case n.kind < 0:
		t := n.t
		t.restartAt = 0
		e.stepTask(t, now, func() error { return t.task.Resume(now) })
	default:
		n.t.timers[n.kind] = 0
		n.t.mailbox = append(n.t.mailbox, core.Msg{Kind: core.TimerKind(n.kind).Message()})
	}
	return true
}

// pending says which instances have not finished, for a stalled job's error.
func (e *simEngine) pending() string {
	var n int
	first := ""
	for _, t := range e.all {
		if !t.task.Finished() {
			if n == 0 {
				first = t.op.Instance().String()
			}
			n++
		}
	}
	return fmt.Sprintf("%d instances unfinished, the first %s", n, first)
}
