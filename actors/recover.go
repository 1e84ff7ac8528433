package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice/checkpoints"
	"github.com/sluice-data/sluice/clock"
	"github.com/sluice-data/sluice/core"
	"github.com/sluice-data/sluice/plan"
)

// Recovery: a failure that ends an attempt (restarts of an instance
// exhausted, an instance killed, a source's, a sink's or a checkpoint's
// error) rolls the whole job back to its latest complete checkpoint, as
// Flink's full restart does: every task is made anew, restores its key
// groups, its watermarks, its source position and its sink's output as the
// checkpoint has them, and the data in flight at the failure is dropped.
// Sinks that can roll back (plan.SinkCheckpointer) reopen at what they had
// written at the checkpoint, so the job's output is that of a run without
// the failure.

// RecoveryStat describes one recovery.
type RecoveryStat struct {
	// Attempt is the attempt that started (2 for the first recovery).
	Attempt uint64
	// Cause is the failure that ended the attempt before it.
	Cause string
	// Checkpoint is the checkpoint restored; 0: none had completed, and
	// the job started again from the beginning. Skipped says which newer
	// ones were passed over, and why.
	Checkpoint uint64
	Skipped    []string
	// Failed is when the failure ended the attempt; Restored how long from
	// then until the new attempt's sources read their first record (0:
	// they read none).
	Failed   time.Time
	Restored time.Duration
	// Replayed counts the records the sources read again: those the failed
	// attempt had read past the checkpoint restored (all it read, without
	// one). The stages' counts include them again.
	Replayed int64
}

// recovery is the Execution's record of its recoveries.
type recovery struct {
	mu       sync.Mutex
	failures []time.Time // counted against the policy
	stats    []RecoveryStat
	waiting  atomic.Bool // the latest recovery waits for its first record
	// from is the input position of the checkpoint the attempt started
	// from, and read the records the sources had read then, in all
	// attempts: the position the attempt reached is from plus what they
	// read since.
	from, read int64
}

// KilledError is the cause of an attempt that chaos ended by killing an
// instance (ChaosConfig).
type KilledError struct {
	Instance plan.Instance
	Kill     int // 1, 2, …
}

func (e *KilledError) Error() string {
	return fmt.Sprintf("chaos: kill %d: %s was killed", e.Kill, e.Instance)
}

// StoppedError ends a job that Stop stopped at a checkpoint: it can go on
// from it in a new process (CheckpointConfig.Restore).
type StoppedError struct {
	Checkpoint uint64
	Store      string
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("stopped at checkpoint %d in %s: restore it to go on", e.Checkpoint, e.Store)
}

// Stop stops the job at a checkpoint: one is taken at once, and when it
// completes the job ends without committing its sinks, which keep what
// they staged for the run that restores it (Wait returns a *StoppedError).
// Without checkpoints there is nothing to stop at: Stop returns an error
// and the job goes on.
func (x *Execution) Stop() error {
	if x.cfg.Checkpoints == nil {
		return errors.New("the job does not checkpoint: it cannot stop at a checkpoint")
	}
	if n := x.sinkWithoutReopen(); n != nil {
		return fmt.Errorf("sink %s (%s) cannot take its output back in a new process: the job cannot stop at a checkpoint", n, n.Loc)
	}
	x.attMu.Lock()
	x.stopping = true
	ck := x.ck
	x.attMu.Unlock()
	ck.stopAtNext()
	return nil
}

// restoreTasks restores every task, before it starts, from checkpoint r
// (nil: none, the tasks start from the beginning), and tells chaos where
// in the input the attempt starts.
func (x *Execution) restoreTasks(r *checkpoints.Restored) error {
	if r != nil {
		at := x.attempt()
		for vi, hs := range x.hosts {
			for i, h := range hs {
				if !at.local(x, core.Addr{Vertex: vi, Instance: i}) {
					continue // restored on its node
				}
				if err := h.task.Restore(restoredFor(r, h)); err != nil {
					return fmt.Errorf("restoring checkpoint %d: %w", r.ID, err)
				}
			}
		}
	}
	x.rec.from, x.rec.read = x.position(r), x.sourcesRead()
	if x.chaos != nil {
		x.chaos.attemptStarted(x.rec.from)
	}
	return nil
}

// sourcesRead returns the records the sources have read, in all attempts.
func (x *Execution) sourcesRead() int64 {
	var n int64
	for vi, v := range x.phys.Vertices {
		if v.Head().Kind == plan.KindSource {
			for _, h := range x.hosts[vi] {
				n += h.nodeRecords[0].Load()
			}
		}
	}
	return n
}

// Savepoint takes a savepoint named name (checkpoints.CheckSavepointName):
// a checkpoint taken at once, which the store keeps until it is deleted,
// to restore later in a new process or at another parallelism. It
// returns the checkpoint's ID once it has completed, or why it could not
// be taken: the job does not checkpoint, a sink cannot take its output
// back, another savepoint is being taken, the checkpoint failed (the job
// goes on; ask again), the job ended, or ctx was done.
func (x *Execution) Savepoint(ctx context.Context, name string) (uint64, error) {
	if err := checkpoints.CheckSavepointName(name); err != nil {
		return 0, err
	}
	if x.cfg.Checkpoints == nil {
		return 0, fmt.Errorf("savepoint %q: the job does not checkpoint", name)
	}
	if n := x.sinkWithoutReopen(); n != nil {
		return 0, fmt.Errorf("savepoint %q: sink %s (%s) cannot take its output back in a new process", name, n, n.Loc)
	}
	x.attMu.Lock()
	ck := x.ck
	x.attMu.Unlock()
	if ck == nil {
		return 0, fmt.Errorf("savepoint %q: the job has not started checkpointing", name)
	}
	if m, err := checkpoints.New(x.cfg.Checkpoints.Store).FindSavepoint(ctx, name); err != nil || m != nil {
		if err == nil {
			err = fmt.Errorf("savepoint %q: %s holds one already (checkpoint %d)", name, x.cfg.Checkpoints.Store, m.ID)
		}
		return 0, err
	}
	sp, err := ck.savepointNext(name)
	if err != nil {
		return 0, err
	}
	select {
	case err := <-sp.done:
		if err != nil {
			return 0, err
		}
		return sp.id, nil
	case <-x.ended:
		return 0, fmt.Errorf("savepoint %q: the job ended first", name)
	case <-ctx.Done():
		return 0, fmt.Errorf("savepoint %q: %w", name, ctx.Err())
	}
}

// CheckpointStore returns the store the job checkpoints to, or nil.
func (x *Execution) CheckpointStore() checkpoints.Store {
	if x.cfg.Checkpoints == nil {
		return nil
	}
	return x.cfg.Checkpoints.Store
}

// graphFingerprint fingerprints the plan's stages, by stable ID, and the
// edges between its vertices.
func graphFingerprint(phys *plan.Physical) string {
	h := fnv.New64a()
	for _, v := range phys.Vertices {
		for _, n := range v.Chain {
			fmt.Fprintf(h, "%s;", core.StageID(n))
		}
		for _, e := range v.Out {
			fmt.Fprintf(h, "->%s/%d;", core.StageID(e.To.Head()), e.Input)
		}
		h.Write([]byte{'\n'})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// sinkWithoutReopen returns a sink of the job that cannot reopen at a
// checkpoint (plan.SinkSpec.Reopen), if any.
func (x *Execution) sinkWithoutReopen() *plan.Node {
	for _, v := range x.phys.Vertices {
		if tail := v.Tail(); tail.Kind == plan.KindSink && tail.Sink.Reopen == nil {
			return tail
		}
	}
	return nil
}

// detachWriters lets go of the sinks' writers of the attempt that ended
// and closes its readers; what the writers made durable stays for a reopen.
func (x *Execution) detachWriters() error {
	var errs []error
	if x.coordinator() {
		for _, n := range x.attempt().nodes(x.cl.cfg.Self) {
			var lost *NodeLostError
			if err := x.call(n, core.CommitAction{Op: detachOp}); err != nil && !errors.As(err, &lost) {
				errs = append(errs, err) // a lost node's writers are gone with it
			}
		}
	}
	for _, hs := range x.hosts {
		for _, h := range hs {
			h.task.CloseReaders()
			if c, ok := h.task.Writer().(plan.SinkCheckpointer); ok {
				if err := c.Detach(); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", h.inst, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// recoverable reports whether the job may recover from err.
func (x *Execution) recoverable(err error) bool {
	c := x.cfg.Checkpoints
	var stopped *StoppedError
	if c == nil || c.NoRecovery || x.ctx.Err() != nil || errors.As(err, &stopped) {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, plan.ErrConfig)
}

// recover rolls the job back after attempt at ended with an error, and
// starts the next attempt; its error ends the job.
func (x *Execution) recover(at *attempt) error {
	cause := at.err
	pol := x.cfg.Checkpoints.recovery()
	if n := x.sinkWithoutReopen(); n != nil {
		return fmt.Errorf("%w (the job cannot recover: sink %s (%s) cannot roll its output back to a checkpoint)", cause, n, n.Loc)
	}
	now := x.cfg.Clock.Now()
	var backoff time.Duration
	var killed *KilledError
	if !errors.As(cause, &killed) { // chaos's kills are not held against the policy
		x.rec.mu.Lock()
		x.rec.failures = pol.note(x.rec.failures, now)
		n := len(x.rec.failures)
		x.rec.mu.Unlock()
		if n > pol.MaxRestarts {
			return fmt.Errorf("%w (the job failed %d times within %v: giving up)", cause, n, pol.Window)
		}
		backoff = pol.backoff(n)
	}
	x.cfg.Logger.Warn("job failed: recovering from the latest checkpoint", "attempt", at.epoch, "err", cause, "backoff", backoff)
	if err := x.detachWriters(); err != nil {
		return fmt.Errorf("%w (recovering: %w)", cause, err)
	}
	if err := x.sleep(backoff); err != nil {
		return fmt.Errorf("%w (recovering: %w)", cause, err)
	}
	dir := checkpoints.New(x.cfg.Checkpoints.Store)
	r, skipped, err := dir.LatestOf(x.ctx, x.exec, x.from)
	if err != nil {
		return fmt.Errorf("%w (recovering: %w)", cause, err)
	}
	st := RecoveryStat{Attempt: at.epoch + 1, Cause: cause.Error(), Failed: at.endedAt}
	for _, s := range skipped {
		st.Skipped = append(st.Skipped, s.String())
		x.cfg.Logger.Warn("recovery skipped a checkpoint", "checkpoint", s.ID, "reason", s.Reason)
	}
	if r != nil {
		st.Checkpoint = r.ID
	}
	x.cfg.Logger.Warn("recovering", "attempt", st.Attempt, "checkpoint", st.Checkpoint)
	next := newAttempt(at.epoch + 1)
	if err := x.place(next); err != nil {
		return fmt.Errorf("%w (recovering: %w)", cause, err)
	}
	x.attMu.Lock()
	x.att = next
	x.attMu.Unlock()
	// The watcher of ctx fails the attempt that is current when ctx is
	// done: one cancelled before the swap failed the attempt that had
	// ended already, so the new one must not start.
	if err := x.ctx.Err(); err != nil {
		return fmt.Errorf("%w (recovering: %w)", cause, err)
	}
	for _, hs := range x.hosts {
		for _, h := range hs {
			h.newTask()
		}
	}
	reached := x.rec.from + x.sourcesRead() - x.rec.read
	x.restored = 0
	if r != nil {
		x.restored = r.ID
	}
	if err := x.restoreTasks(r); err != nil {
		return fmt.Errorf("%w (recovering: %w)", cause, err)
	}
	st.Replayed = max(reached-x.rec.from, 0)
	x.rec.mu.Lock()
	x.rec.stats = append(x.rec.stats, st)
	x.rec.waiting.Store(true)
	x.rec.mu.Unlock()
	if err := x.launch(); err != nil {
		return fmt.Errorf("%w (recovering: %w)", cause, err)
	}
	return nil
}

// restoreAtStart reads the checkpoint a job starts from (Restore), checks
// it against the plan, takes its run ID and records the restore as the
// job's first recovery.
func (x *Execution) restoreAtStart(c CheckpointConfig) (*checkpoints.Restored, error) {
	dir := checkpoints.New(c.Store)
	var r *checkpoints.Restored
	var skipped []checkpoints.Skipped
	var err error
	if c.Restore == "latest" {
		r, skipped, err = dir.LatestOfJob(x.ctx, x.phys.Job)
		if err == nil && r == nil {
			err = fmt.Errorf("restore: %s holds no complete, valid checkpoint of the job%s (%w)", c.Store, skippedList(skipped), plan.ErrConfig)
		}
	} else {
		id, perr := strconv.ParseUint(c.Restore, 10, 64)
		if perr != nil && checkpoints.CheckSavepointName(c.Restore) != nil {
			return nil, fmt.Errorf("restore %q: want \"latest\", a checkpoint's ID or a savepoint's name (%w)", c.Restore, plan.ErrConfig)
		}
		if perr != nil {
			var m *checkpoints.Manifest
			if m, err = dir.FindSavepoint(x.ctx, c.Restore); err != nil {
				return nil, err
			}
			if m == nil {
				return nil, fmt.Errorf("restore: %w: %s holds no savepoint %q (%w)", checkpoints.ErrInvalid, c.Store, c.Restore, plan.ErrConfig)
			}
			id = m.ID
		}
		if r, err = dir.Read(x.ctx, id); errors.Is(err, checkpoints.ErrInvalid) {
			err = fmt.Errorf("restore: %w (%w)", err, plan.ErrConfig)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := checkShape(r, x.phys); err != nil {
		return nil, fmt.Errorf("restore: checkpoint %d in %s: %w (%w)", r.ID, c.Store, err, plan.ErrConfig)
	}
	x.run, x.from = r.Run, r.Execution
	x.att = newAttempt(r.Epoch + 1)
	st := RecoveryStat{Attempt: x.att.epoch, Cause: fmt.Sprintf("restored at start from %s", c.Store), Checkpoint: r.ID,
		Failed: x.cfg.Clock.Now()}
	for _, s := range skipped {
		st.Skipped = append(st.Skipped, s.String())
	}
	x.rec.stats = append(x.rec.stats, st)
	x.rec.waiting.Store(true)
	x.cfg.Logger.Info("restoring", "checkpoint", r.ID, "run", r.Run, "skipped", len(skipped))
	return r, nil
}

func skippedList(skipped []checkpoints.Skipped) string {
	var b strings.Builder
	for _, s := range skipped {
		fmt.Fprintf(&b, "; skipped %s", s)
	}
	return b.String()
}

// shape is the plan's parallelism by the stage ID of each vertex's head.
func shape(phys *plan.Physical) map[string]int {
	m := map[string]int{}
	for _, v := range phys.Vertices {
		m[core.StageID(v.Head())] = v.Parallelism
	}
	return m
}

// checkShape refuses a checkpoint of another job, of other key groups, or
// whose stages and the plan's differ: a stage of either that the other
// does not have. Each stage may have another parallelism: its state is
// dealt anew (restoredFor).
func checkShape(r *checkpoints.Restored, phys *plan.Physical) error {
	if r.Job != phys.Job {
		return fmt.Errorf("it is of job %q, not %q", r.Job, phys.Job)
	}
	if r.MaxParallelism != phys.MaxParallelism {
		return fmt.Errorf("it was taken with %d key groups (max parallelism), the plan has %d", r.MaxParallelism, phys.MaxParallelism)
	}
	now := shape(phys)
	var errs []error
	for stage := range r.Parallelism {
		if _, ok := now[stage]; !ok {
			errs = append(errs, fmt.Errorf("stage %s is not in the plan", stage))
		}
	}
	for stage := range now {
		if _, ok := r.Parallelism[stage]; !ok {
			errs = append(errs, fmt.Errorf("stage %s of the plan is not in the checkpoint", stage))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// sleep waits d on the job's clock; the simulator, which owns its manual
// clock, moves it on instead.
func (x *Execution) sleep(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if _, ok := x.cfg.executor().(Sim); ok {
		if m, ok := x.cfg.Clock.(*clock.Manual); ok {
			m.Advance(d)
			return nil
		}
	}
	done := make(chan struct{})
	t := x.cfg.Clock.AfterFunc(d, func() { close(done) })
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-x.ctx.Done():
		return x.ctx.Err()
	}
}

// restoredFor picks host h's part of checkpoint r: its instance's pieces
// and the chunks of its chain's keyed stages that cover its key groups.
func restoredFor(r *checkpoints.Restored, h *host) core.Restored {
	rs := core.Restored{Checkpoint: r.ID, Keyed: map[string][][]byte{}}
	head, tail := core.StageID(h.v.Head()), core.StageID(h.v.Tail())
	n, most, i := h.inst.Parallelism, h.inst.MaxParallelism, h.inst.Index
	same := r.Parallelism[head] == n
	for _, s := range r.States { // in order of instance
		switch {
		case s.Kind == core.SnapSource.String() && s.Stage == head:
			rs.Sources = append(rs.Sources, s.Data) // every instance's: it takes its splits'
		case s.Kind == core.SnapTime.String() && s.Stage == head && (!same || s.Instance == i):
			rs.Time = append(rs.Time, s.Data)
		case s.Kind == core.SnapSink.String() && s.Stage == tail && s.Instance == i:
			rs.Sink = s.Data
		case s.Kind == core.SnapSink.String() && s.Stage == tail && s.Instance >= n && s.Instance%n == i:
			// An old instance that none has at this parallelism.
			rs.Adopted = append(rs.Adopted, core.AdoptedSink{Instance: s.Instance, State: s.Data})
		}
	}
	start, end := (i*most+n-1)/n, ((i+1)*most+n-1)/n
	// A broadcast input is not routed by key: any instance may hold its
	// records of any key group, so each restores every chunk (a broadcast
	// join keeps what is its own).
	all := slices.Contains(h.inst.Inputs, plan.Broadcast)
	for _, c := range r.Chunks {
		if !all && (c.Last < start || c.First >= end) {
			continue
		}
		for _, node := range h.v.Chain {
			if core.StageID(node) == c.Stage {
				rs.Keyed[c.Stage] = append(rs.Keyed[c.Stage], r.Data(c))
			}
		}
	}
	return rs
}

// position counts the records the sources had read at checkpoint r: the
// records of the splits they had finished and how far into the others.
func (x *Execution) position(r *checkpoints.Restored) int64 {
	if r == nil {
		return 0
	}
	var n int64
	for _, s := range r.States {
		if s.Kind != core.SnapSource.String() {
			continue
		}
		var p core.SourcePosition
		if json.Unmarshal(s.Data, &p) != nil {
			continue
		}
		for _, v := range x.phys.Vertices {
			if core.StageID(v.Head()) != s.Stage {
				continue
			}
			for _, sp := range p.Splits {
				if sp.Done && sp.Split < len(v.Splits) {
					n += max(v.Splits[sp.Split].Records, sp.Records, 0)
				} else {
					n += sp.Records
				}
			}
		}
	}
	return n
}

// recoveries returns the job's recoveries so far.
func (x *Execution) recoveries() []RecoveryStat {
	x.rec.mu.Lock()
	defer x.rec.mu.Unlock()
	return slices.Clone(x.rec.stats)
}

// progressed notes that the sources read n more records: the first after a
// recovery ends its restore time, and chaos kills at its chosen counts.
func (x *Execution) progressed(n int64) {
	if n <= 0 {
		return
	}
	if x.rec.waiting.Load() { // the lock only for the first record after a recovery
		x.rec.mu.Lock()
		if x.rec.waiting.CompareAndSwap(true, false) {
			st := &x.rec.stats[len(x.rec.stats)-1]
			st.Restored = x.cfg.Clock.Now().Sub(st.Failed)
		}
		x.rec.mu.Unlock()
	}
	if x.chaos != nil {
		x.chaos.progressed(n)
	}
}

// ChaosConfig kills instances of a running job, to test its recovery:
// Kills hard kills, each of an unfinished instance chosen at random, at
// moments chosen at random over the run, all from Seed (0: the job's). A kill drops the
// instance's actor with its state (not a panic, which the instance's
// restart would absorb): the job recovers from its latest checkpoint.
// Kills are not held against the recovery policy.
//
// The moments are positions in the input: counts of the records the
// sources have read, from the checkpoint an attempt restored, drawn
// uniformly below the sources' total, so that every kill comes before the
// job can end; a split whose size is unknown counts as four batches. An
// attempt that restores a checkpoint taken past the next kill's count
// (the sources may have read everything) makes that kill at its first
// step.
//
// StopAt, if set, stops the job (as Execution.Stop) once the sources have
// read that many records, to test a restore in a new process or at another
// parallelism at a place in the input that a seed chooses.
type ChaosConfig struct {
	Kills  int
	Seed   uint64
	StopAt int64
}

// Kill is one kill chaos made.
type Kill struct {
	N        int
	Instance plan.Instance
	// Records is the position in the input at which it came; At when.
	Records int64
	At      time.Time
}

type chaos struct {
	x   *Execution
	rng *rand.Rand // under mu

	read atomic.Int64
	mu   sync.Mutex
	at   []int64 // the counts at which to kill, increasing
	done []Kill
	// armed is false from a kill until the next attempt starts: one kill
	// per attempt at most, the one that ends it.
	armed   bool
	stopAt  int64
	stopped atomic.Bool
	// due is set when an attempt starts at or past the next kill's count
	// (it restored a checkpoint taken after it): the kill comes at the
	// attempt's first step of any instance, as the sources may have
	// nothing left to read.
	due atomic.Bool
}

func newChaos(x *Execution, cfg ChaosConfig) *chaos {
	total := int64(0)
	for _, v := range x.phys.Vertices {
		if v.Head().Kind != plan.KindSource {
			continue
		}
		for _, s := range v.Splits {
			if s.Records >= 0 {
				total += s.Records
			} else {
				total += 4 * int64(x.cfg.BatchRecords) // unknown: kills come early
			}
		}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = x.cfg.Seed
	}
	c := &chaos{x: x, rng: rand.New(rand.NewPCG(seed, 0x6b696c6c)), armed: true, stopAt: cfg.StopAt} // "kill"
	for range cfg.Kills {
		c.at = append(c.at, 1+c.rng.Int64N(max(total-1, 1)))
	}
	slices.Sort(c.at)
	return c
}

func (c *chaos) attemptStarted(position int64) {
	c.mu.Lock()
	c.armed = true
	c.read.Store(position)
	c.due.Store(len(c.done) < len(c.at) && position >= c.at[len(c.done)])
	c.mu.Unlock()
}

// progressed notes n more records read (n may be 0: an instance stepped)
// and kills if the next kill's count is reached.
func (c *chaos) progressed(n int64) {
	read := c.read.Add(n)
	if c.stopAt > 0 && read >= c.stopAt && c.stopped.CompareAndSwap(false, true) {
		if err := c.x.Stop(); err != nil {
			c.x.fail(fmt.Errorf("chaos: stopping at record %d: %w", read, err))
		}
	}
	c.mu.Lock()
	if !c.armed || len(c.done) == len(c.at) || read < c.at[len(c.done)] {
		c.mu.Unlock()
		return
	}
	x := c.x
	var alive []*host
	for _, hs := range x.hosts {
		for _, h := range hs {
			if !h.done.Load() {
				alive = append(alive, h)
			}
		}
	}
	if len(alive) == 0 {
		c.mu.Unlock()
		return
	}
	h := alive[c.rng.IntN(len(alive))]
	k := Kill{N: len(c.done) + 1, Instance: h.inst, Records: read, At: x.cfg.Clock.Now()}
	c.done = append(c.done, k)
	c.armed = false
	c.due.Store(false)
	c.mu.Unlock()
	x.cfg.Logger.Warn("chaos: killing an instance", "kill", k.N, "instance", k.Instance.String(), "records", read)
	x.eng.kill(core.Addr{Vertex: h.vi, Instance: h.inst.Index})
	x.fail(&KilledError{Instance: h.inst, Kill: k.N})
}

// kills returns the kills made so far.
func (c *chaos) kills() []Kill {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.done)
}
