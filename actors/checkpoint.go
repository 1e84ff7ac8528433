package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// CheckpointConfig turns on checkpoints: aligned barriers every Every,
// coordinated by a core.Coordinator, each checkpoint's manifest written to
// Store once every task has passed its barrier.
//
// Each checkpoint holds the keyed state of every stateful node, by key-group
// range, where each source was in its splits, each instance's watermarks,
// and what each sink had written; a job that fails recovers from the
// latest complete one under Recovery.
type CheckpointConfig struct {
	Store checkpoints.Store
	// Every is the interval between checkpoints; Timeout abandons one that
	// has not completed (0: never); MinPause is the least time between the
	// end of one and the start of the next.
	Every, Timeout, MinPause time.Duration
	// TolerableFailures is how many checkpoints in a row may be abandoned
	// before the job fails.
	TolerableFailures int
	// Retain is how many completed checkpoints are kept (0: 3).
	Retain int
	// Recovery is the job-level restart policy: a failure the instance
	// restarts cannot absorb (restarts exhausted, an instance killed, a
	// sink's or a source's error) rolls the whole job back to its latest
	// complete checkpoint, at most MaxRestarts times within Window, each
	// after a backoff that doubles from Backoff up to MaxBackoff, on the
	// injected clock. The zero policy is DefaultRecovery; NoRecovery turns
	// recovery off.
	Recovery   RestartPolicy
	NoRecovery bool
	// Restore, when set, starts the job from a checkpoint in Store that an
	// earlier process of it took: "latest" (the newest complete, valid
	// checkpoint of the job), a checkpoint's ID or a savepoint's name. The
	// plan must have the checkpoint's stages and key groups, at any
	// parallelism (key groups, splits and sinks' staged output are dealt
	// anew); the run takes the checkpoint's run ID, so that its sinks take
	// back what that process had staged.
	Restore string
}

// DefaultRecovery is the job-level restart policy when none is given: 10
// recoveries within 10 minutes, from 100 ms backoff up to 10 s.
var DefaultRecovery = RestartPolicy{MaxRestarts: 10, Window: 10 * time.Minute, Backoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second}

func (c *CheckpointConfig) recovery() RestartPolicy {
	if c.Recovery == (RestartPolicy{}) {
		return DefaultRecovery
	}
	return c.Recovery
}

func (c *CheckpointConfig) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("actors: Checkpoints.Store is nil"))
	}
	if c.Every <= 0 {
		errs = append(errs, fmt.Errorf("actors: Checkpoints.Every %v must be positive", c.Every))
	}
	if r := c.Recovery; r.MaxRestarts < 0 || r.Backoff < 0 || r.MaxBackoff < r.Backoff {
		errs = append(errs, fmt.Errorf("actors: Checkpoints.Recovery: %d restarts from backoff %v up to %v", r.MaxRestarts, r.Backoff, r.MaxBackoff))
	}
	if c.Timeout < 0 || c.MinPause < 0 || c.TolerableFailures < 0 || c.Retain < 0 {
		errs = append(errs, fmt.Errorf("actors: Checkpoints: Timeout %v, MinPause %v, TolerableFailures %d and Retain %d must not be negative",
			c.Timeout, c.MinPause, c.TolerableFailures, c.Retain))
	}
	return errors.Join(errs...)
}

// checkpointing is an Execution's side of its checkpoints. Its methods may
// be called from any goroutine of the executor.
type checkpointing struct {
	x       *Execution
	cfg     CheckpointConfig
	dir     *checkpoints.Dir
	epoch   uint64 // the attempt's
	first   uint64 // its first checkpoint's ID
	sources []core.Addr

	mu       sync.Mutex
	eng      engine // set by start: before it, events wait
	coord    *core.Coordinator
	writers  map[uint64]*checkpoints.Writer
	events   []core.CoordEvent // to step once the current step's actions are out
	stepping bool
	writes   sync.WaitGroup // manifest writes and abandons in flight
	// passedBy holds the tasks that have passed each checkpoint in
	// flight; final the state of each finished task, which every later
	// checkpoint holds for it; acking the acknowledgements each task has
	// in flight (its chunks being written), and ending the finished tasks
	// that wait for them before the coordinator hears they finished.
	passedBy map[uint64]map[core.Addr]bool
	final    map[core.Addr][]core.Snapshot
	acking   map[core.Addr]int
	ending   map[core.Addr]bool
	stopped  bool
	// stopAt, once set, ends the job at the first checkpoint that
	// completes (a graceful stop).
	stopAt bool
	// savepoint is the savepoint asked for, taken by the next checkpoint
	// triggered (id, once it is).
	savepoint *pendingSavepoint
	// alignment is the longest alignment of each checkpoint; sizes the
	// bytes of each written, by stage.
	alignment map[uint64]time.Duration
	sizes     map[uint64]map[string]int64
}

// newCheckpointing makes the checkpoints of attempt epoch, numbered after
// every checkpoint the store holds. (A task restored as finished finishes
// again at once, with the same final state.)
func newCheckpointing(x *Execution, cfg CheckpointConfig, epoch uint64) (*checkpointing, error) {
	c := &checkpointing{x: x, cfg: cfg, dir: checkpoints.New(cfg.Store), epoch: epoch, writers: map[uint64]*checkpoints.Writer{},
		passedBy: map[uint64]map[core.Addr]bool{}, final: map[core.Addr][]core.Snapshot{}, acking: map[core.Addr]int{},
		ending: map[core.Addr]bool{}, alignment: map[uint64]time.Duration{}, sizes: map[uint64]map[string]int64{}}
	first, err := c.dir.NextID(x.ctx)
	if err != nil {
		return nil, fmt.Errorf("checkpoints in %s: %w", cfg.Store, err)
	}
	c.first = first
	return c, nil
}

// start makes the coordinator, on the started engine's clock (the
// simulator brings its own), asks for its first tick, and steps the events
// that came before.
func (c *checkpointing) start(eng engine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	x := c.x
	var tasks []core.Addr
	for vi, hs := range x.hosts {
		for i := range hs {
			a := core.Addr{Vertex: vi, Instance: i}
			tasks = append(tasks, a)
			if x.phys.Vertices[vi].Head().Kind == plan.KindSource {
				c.sources = append(c.sources, a)
			}
		}
	}
	cfg := c.cfg
	now := x.cfg.Clock.Now().UnixNano()
	c.coord = core.NewCoordinator(core.CheckpointConfig{Interval: cfg.Every, Timeout: cfg.Timeout, MinPause: cfg.MinPause,
		TolerableFailures: cfg.TolerableFailures}, tasks, c.first, now)
	c.eng = eng
	c.carryOut(now)
	c.drain()
}

// step gives the coordinator ev and carries out what it asks.
func (c *checkpointing) step(ev core.CoordEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, ev)
	c.drain()
}

// drain steps the queued events, with c.mu held; one that comes while the
// actions of another are carried out waits behind it.
func (c *checkpointing) drain() {
	if c.eng == nil || c.stepping {
		return
	}
	c.stepping = true
	defer func() { c.stepping = false }()
	for len(c.events) > 0 {
		ev := c.events[0]
		c.events = c.events[1:]
		now := c.x.cfg.Clock.Now().UnixNano()
		c.coord.Step(now, ev)
		c.carryOut(now)
	}
}

// carryOut does what the coordinator's Ready asks, with c.mu held.
func (c *checkpointing) carryOut(now int64) {
	rd := *c.coord.Ready()
	c.coord.Advance()
	x := c.x
	if rd.Trigger != 0 && !c.stopped {
		w := c.dir.Begin(x.phys.Job, x.run, x.exec, rd.Trigger, c.epoch, now/1e6)
		w.Shape(x.phys.MaxParallelism, shape(x.phys), graphFingerprint(x.phys))
		if sp := c.savepoint; sp != nil && sp.id == 0 {
			sp.id = rd.Trigger
			w.Savepoint(sp.name)
		}
		c.writers[rd.Trigger] = w
		c.passedBy[rd.Trigger] = map[core.Addr]bool{}
		for _, snaps := range c.final {
			writeStates(w, rd.Trigger, snaps)
		}
		for _, a := range c.sources {
			c.eng.deliver(a, core.Msg{Kind: core.Trigger, Checkpoint: rd.Trigger})
		}
	}
	if id := rd.WriteManifest; id != 0 && c.writers[id] != nil {
		w := c.writers[id]
		c.writes.Add(1)
		c.eng.spawn(func() {
			defer c.writes.Done()
			m, err := w.Commit(x.ctx)
			if err == nil {
				by := map[string]int64{}
				for _, ch := range m.Chunks {
					by[ch.Stage] += ch.Size
				}
				for _, st := range m.States {
					by[st.Stage] += int64(len(st.Data))
				}
				c.mu.Lock()
				c.sizes[id] = by
				c.mu.Unlock()
				err = c.dir.Retain(x.ctx, c.retain())
				if err != nil { // not the checkpoint's failure: it is complete
					x.cfg.Logger.Warn("deleting old checkpoints", "store", c.cfg.Store.String(), "err", err)
					err = nil
				}
			}
			c.step(core.CoordEvent{Kind: core.CkptManifestWritten, ID: id, Err: err})
		})
	}
	if id := rd.Completed; id != 0 {
		delete(c.writers, id)
		delete(c.passedBy, id)
		x.cfg.Logger.Info("checkpoint completed", "id", id)
		// Sinks publish what they staged before it; not at a stop's, so
		// that the restored run publishes it, however much later. Sources
		// acknowledge what they read before it (plan.Acknowledger).
		for vi, v := range x.phys.Vertices {
			if v.Tail().Kind == plan.KindSink && !c.stopAt || v.Head().Kind == plan.KindSource {
				for i := range x.hosts[vi] {
					c.eng.deliver(core.Addr{Vertex: vi, Instance: i}, core.Msg{Kind: core.Completed, Checkpoint: id})
				}
			}
		}
		if sp := c.savepoint; sp != nil && sp.id == id {
			c.savepoint = nil
			sp.done <- nil
		}
		if c.stopAt {
			x.fail(&StoppedError{Checkpoint: id, Store: c.cfg.Store.String()})
		}
	}
	if id := rd.Abandoned; id != 0 {
		delete(c.passedBy, id)
		if w := c.writers[id]; w != nil {
			delete(c.writers, id)
			c.writes.Add(1)
			c.eng.spawn(func() {
				defer c.writes.Done()
				_ = w.Abandon(context.WithoutCancel(x.ctx))
			})
		}
		x.cfg.Logger.Warn("checkpoint abandoned", "id", id)
		if sp := c.savepoint; sp != nil && sp.id == id {
			c.savepoint = nil
			sp.done <- fmt.Errorf("savepoint %q: checkpoint %d was abandoned", sp.name, id)
		}
	}
	if rd.Fail != nil {
		x.fail(rd.Fail)
	}
	if rd.Tick != 0 {
		c.eng.coordTimer(rd.Tick, c)
	}
}

func (c *checkpointing) retain() int {
	if c.cfg.Retain == 0 {
		return 3
	}
	return c.cfg.Retain
}

// passed takes task a's passing of the barriers ids: its snapshots of
// each are encoded and written as chunks off the task's path, and then the
// coordinator gets the acknowledgement (or, if a write failed, the task's
// decline).
func (c *checkpointing) passed(a core.Addr, ids []uint64, snaps []core.Snapshot) {
	for _, id := range ids {
		var keyed []core.Snapshot
		c.mu.Lock()
		w, eng := c.writers[id], c.eng
		if w != nil {
			c.passedBy[id][a] = true
			// The instance's own pieces are small: into the manifest now.
			for _, s := range snaps {
				if s.Checkpoint == id && s.Kind == core.SnapKeyed {
					keyed = append(keyed, s)
				}
			}
			writeStates(w, id, snaps)
			c.acking[a]++
			c.writes.Add(1) // under mu: stop's Wait comes after, or w is gone
		}
		c.mu.Unlock()
		if w == nil { // abandoned meanwhile, or the attempt is ending
			continue
		}
		eng.spawn(func() {
			defer c.writes.Done()
			var err error
			for _, s := range keyed {
				if s.PerInstance {
					err = w.ChunkOf(c.x.ctx, s.Stage, s.Instance, s.Start, s.End-1, nil, s.Encode(nil))
				} else {
					err = w.Chunk(c.x.ctx, s.Stage, s.Start, s.End-1, nil, s.Encode(nil))
				}
				if err != nil {
					break
				}
			}
			if err != nil {
				c.step(core.CoordEvent{Kind: core.CkptDecline, ID: id, From: a, Err: err})
			} else {
				c.step(core.CoordEvent{Kind: core.CkptAck, ID: id, From: a})
			}
			c.mu.Lock()
			c.acking[a]--
			end := c.acking[a] == 0 && c.ending[a]
			delete(c.ending, a)
			c.mu.Unlock()
			if end {
				c.step(core.CoordEvent{Kind: core.CkptFinished, From: a})
			}
		})
	}
}

// writeStates records the instance pieces among snaps (not keyed chunks)
// in checkpoint id's manifest; a final state (Checkpoint 0) goes into any.
func writeStates(w *checkpoints.Writer, id uint64, snaps []core.Snapshot) {
	for _, s := range snaps {
		if s.Kind != core.SnapKeyed && (s.Checkpoint == id || s.Checkpoint == 0) {
			w.State(s.Kind.String(), s.Stage, s.Instance, s.Encode(nil))
		}
	}
}

// finished takes task a's end, with its final state: every checkpoint in
// flight that a has not passed, and every later one, holds that state for
// it. The coordinator hears of it once a's acknowledgements in flight are
// in: it must not write a manifest without a's chunks of a checkpoint a
// passed.
func (c *checkpointing) finished(a core.Addr, final []core.Snapshot) {
	c.mu.Lock()
	c.final[a] = final
	for id, w := range c.writers {
		if !c.passedBy[id][a] {
			writeStates(w, id, final)
		}
	}
	wait := c.acking[a] > 0
	if wait {
		c.ending[a] = true
	}
	c.mu.Unlock()
	if !wait {
		c.step(core.CoordEvent{Kind: core.CkptFinished, From: a})
	}
}

// stats returns the checkpoints that ended, with their sizes and
// alignment times.
func (c *checkpointing) stats() []core.CheckpointStat {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.coord == nil {
		return nil
	}
	out := append([]core.CheckpointStat(nil), c.coord.Stats...)
	for i := range out {
		s := &out[i]
		s.Alignment = c.alignment[s.ID]
		if by := c.sizes[s.ID]; by != nil {
			s.ByStage = by
			for _, n := range by {
				s.Bytes += n
			}
		}
	}
	return out
}

// aligned notes how long tasks took to align checkpoints.
func (c *checkpointing) aligned(as []core.Aligned) {
	if len(as) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range as {
		c.alignment[a.Checkpoint] = max(c.alignment[a.Checkpoint], a.Took)
	}
}

type pendingSavepoint struct {
	name string
	id   uint64
	done chan error // gets one value: nil when checkpoint id completed
}

// savepointNext has the next checkpoint, taken at once, be savepoint
// name; it returns the channel that tells how it went.
func (c *checkpointing) savepointNext(name string) (*pendingSavepoint, error) {
	c.mu.Lock()
	if c.savepoint != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("savepoint %q: savepoint %q is being taken", name, c.savepoint.name)
	}
	if c.stopped {
		c.mu.Unlock()
		return nil, fmt.Errorf("savepoint %q: the job's checkpoints have stopped", name)
	}
	sp := &pendingSavepoint{name: name, done: make(chan error, 1)}
	c.savepoint = sp
	c.mu.Unlock()
	c.step(core.CoordEvent{Kind: core.CkptNow})
	return sp, nil
}

// stopAtNext asks for a checkpoint now and ends the job when one
// completes.
func (c *checkpointing) stopAtNext() {
	c.mu.Lock()
	c.stopAt = true
	c.mu.Unlock()
	c.step(core.CoordEvent{Kind: core.CkptNow})
}

// stop ends checkpointing with the job: nothing more is triggered, a
// checkpoint in flight is abandoned unless its manifest is being written,
// and stop waits for the writes.
func (c *checkpointing) stop() {
	c.step(core.CoordEvent{Kind: core.CkptStop})
	c.mu.Lock()
	c.stopped = true
	clear(c.writers) // what the stop abandoned is gone; what it writes holds its writer
	if sp := c.savepoint; sp != nil {
		c.savepoint = nil
		sp.done <- fmt.Errorf("savepoint %q: the attempt ended before its checkpoint completed", sp.name)
	}
	c.mu.Unlock()
	c.writes.Wait()
}
