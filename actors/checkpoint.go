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
// range. Not yet: source positions are not recorded and nothing restores,
// so a checkpoint is not yet a recovery point.
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
}

func (c *CheckpointConfig) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("actors: Checkpoints.Store is nil"))
	}
	if c.Every <= 0 {
		errs = append(errs, fmt.Errorf("actors: Checkpoints.Every %v must be positive", c.Every))
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
	sources []core.Addr

	mu       sync.Mutex
	eng      engine // set by start: before it, events wait
	coord    *core.Coordinator
	writers  map[uint64]*checkpoints.Writer
	events   []core.CoordEvent // to step once the current step's actions are out
	stepping bool
	writes   sync.WaitGroup // manifest writes and abandons in flight
}

func newCheckpointing(x *Execution, cfg CheckpointConfig) *checkpointing {
	return &checkpointing{x: x, cfg: cfg, dir: checkpoints.New(cfg.Store), writers: map[uint64]*checkpoints.Writer{}}
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
	c.coord = core.NewCoordinator(core.CheckpointConfig{Interval: cfg.Every, Timeout: cfg.Timeout, MinPause: cfg.MinPause,
		TolerableFailures: cfg.TolerableFailures}, tasks, 1, x.start.UnixNano())
	c.eng = eng
	c.carryOut(x.start.UnixNano())
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
	if rd.Trigger != 0 {
		c.writers[rd.Trigger] = c.dir.Begin(x.phys.Job, rd.Trigger, 1, now/1e6)
		for _, a := range c.sources {
			c.eng.deliver(a, core.Msg{Kind: core.Trigger, Checkpoint: rd.Trigger})
		}
	}
	if id := rd.WriteManifest; id != 0 {
		w := c.writers[id]
		c.writes.Add(1)
		c.eng.spawn(func() {
			defer c.writes.Done()
			_, err := w.Commit(x.ctx)
			if err == nil {
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
		x.cfg.Logger.Info("checkpoint completed", "id", id)
	}
	if id := rd.Abandoned; id != 0 {
		if w := c.writers[id]; w != nil {
			delete(c.writers, id)
			c.writes.Add(1)
			c.eng.spawn(func() {
				defer c.writes.Done()
				_ = w.Abandon(context.WithoutCancel(x.ctx))
			})
		}
		x.cfg.Logger.Warn("checkpoint abandoned", "id", id)
	}
	if rd.Fail != nil {
		x.fail(rd.Fail)
	}
	if rd.Tick != 0 {
		c.eng.coordTimer(rd.Tick)
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
		var mine []core.Snapshot
		for _, s := range snaps {
			if s.Checkpoint == id {
				mine = append(mine, s)
			}
		}
		if len(mine) == 0 {
			c.step(core.CoordEvent{Kind: core.CkptAck, ID: id, From: a})
			continue
		}
		c.mu.Lock()
		w, eng := c.writers[id], c.eng
		c.mu.Unlock()
		if w == nil { // abandoned meanwhile
			continue
		}
		c.writes.Add(1)
		eng.spawn(func() {
			defer c.writes.Done()
			var err error
			for _, s := range mine {
				if err = w.Chunk(c.x.ctx, s.Stage, s.Start, s.End-1, nil, s.Encode(nil)); err != nil {
					break
				}
			}
			if err != nil {
				c.step(core.CoordEvent{Kind: core.CkptDecline, ID: id, From: a, Err: err})
				return
			}
			c.step(core.CoordEvent{Kind: core.CkptAck, ID: id, From: a})
		})
	}
}

// stats returns the checkpoints that ended.
func (c *checkpointing) stats() []core.CheckpointStat {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.coord == nil {
		return nil
	}
	return append([]core.CheckpointStat(nil), c.coord.Stats...)
}

// stop ends checkpointing with the job: nothing more is triggered, a
// checkpoint in flight is abandoned unless its manifest is being written,
// and stop waits for the writes.
func (c *checkpointing) stop() {
	c.step(core.CoordEvent{Kind: core.CkptStop})
	c.writes.Wait()
}
