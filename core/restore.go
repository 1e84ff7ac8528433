package core

import (
	"encoding/json"
	"fmt"

	"github.com/sluice-data/sluice/plan"
)

// SourcePosition is where a source instance was in its splits at a
// barrier: every split it had opened, finished or how far read. The splits
// it had not opened yet are not listed.
type SourcePosition struct {
	Splits []SplitPosition `json:"splits"`
}

// SplitPosition is how far a source instance had read one split.
type SplitPosition struct {
	// Split is the split's place among the source's splits, as planned
	// (plan.Vertex.Splits); Desc names it, to check it is still the same.
	Split int    `json:"split"`
	Desc  string `json:"desc"`
	Done  bool   `json:"done,omitempty"`
	// Records counts the records read from it; Pos is the reader's own
	// position after them (plan.Positioner), if it has one.
	Records int64  `json:"records,omitempty"`
	Pos     []byte `json:"pos,omitempty"`
}

// Restored is what a task takes back from a checkpoint before it starts,
// at the checkpoint's parallelism or another: the pieces of state of the
// old instances it takes over, and the chunks of keyed state that cover
// its key groups, by stage.
type Restored struct {
	Checkpoint uint64
	// Sources are the positions (SourcePosition, encoded) of every
	// instance of the source at the checkpoint: the instance takes those
	// of its splits, however they were dealt then.
	Sources [][]byte
	// Time is the instance's event-time state at the checkpoint, or at
	// another parallelism every old instance's, which it merges.
	Time [][]byte
	// Sink is what the instance's sink writer reopens at (nil: it opens
	// afresh, an instance the checkpoint did not have); Adopted, the
	// writers of old instances that no instance has at the parallelism
	// restored, which it takes over (see adoptingWriter).
	Sink    []byte
	Adopted []AdoptedSink
	Keyed   map[string][][]byte
}

// AdoptedSink is the sink state of old instance Instance, which a task
// restored at a lower parallelism takes over.
type AdoptedSink struct {
	Instance int
	State    []byte
}

// global returns the place among the vertex's splits of the instance's
// split k (plan.Vertex.SplitsOf deals every p-th).
func (t *Task) global(k int) int { return t.op.Instance().Index + k*t.v.Parallelism }

// position records where the source is, for checkpoint n.
func (t *Task) position(n uint64) {
	if s, ok := t.positionSnap(n); ok {
		t.ready.Snapshots = append(t.ready.Snapshots, s)
	}
}

func (t *Task) positionSnap(n uint64) (Snapshot, bool) {
	if n > 0 {
		t.positioned = n
	}
	var p SourcePosition
	for k := range t.split {
		sp := SplitPosition{Split: t.global(k), Desc: t.splits[k].Desc, Done: true}
		for _, o := range t.open {
			if o.index != k {
				continue
			}
			sp.Done, sp.Records = false, o.records
			if o.seek != nil && (o.r == nil || o.skip > 0) { // restored, not yet back where it was
				sp.Records, sp.Pos = o.seek.Records, o.seek.Pos
			} else if pr, ok := o.r.(plan.Positioner); ok && o.r != nil {
				pos, err := position(pr, n, t.op.Instance().Checkpointing)
				if err != nil {
					t.fail(fmt.Errorf("%s: checkpoint %d: the position in split %s: %w", t.op.Instance(), n, sp.Desc, err))
					return Snapshot{}, false
				}
				sp.Pos = pos
			}
		}
		for _, e := range t.acking {
			if e.index != k {
				continue
			}
			// Ended, not yet acknowledged: a restore opens it at its end,
			// for it to tell the system it reads from (plan.Split.Acknowledges).
			pos, err := e.r.(plan.Positioner).Position()
			if err != nil {
				t.fail(fmt.Errorf("%s: checkpoint %d: the position in split %s: %w", t.op.Instance(), n, sp.Desc, err))
				return Snapshot{}, false
			}
			sp.Records, sp.Pos = e.records, pos
		}
		p.Splits = append(p.Splits, sp)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.fail(err)
		return Snapshot{}, false
	}
	return Snapshot{Checkpoint: n, Kind: SnapSource, Stage: StageID(t.v.Head()), Instance: t.op.Instance().Index,
		Encode: func(dst []byte) []byte { return append(dst, data...) }}, true
}

// position returns r's position at checkpoint n (0: a finished task's
// final state): PositionAt for a reader that acknowledges what checkpoints
// hold, in a job that checkpoints.
func position(r plan.Positioner, n uint64, checkpointing bool) ([]byte, error) {
	if a, ok := r.(plan.Acknowledger); ok && n > 0 && checkpointing {
		return a.PositionAt(n)
	}
	return r.Position()
}

// checkpointSink has the sink's writer describe what it has written, for
// checkpoint n.
func (t *Task) checkpointSink(n uint64) {
	t.ready.Snapshots = append(t.ready.Snapshots, t.sinkSnaps(n)...)
}

// sinkSnaps has the sink's writer describe what it has written, and an
// adopting writer each old instance's writer it took over, under that
// instance.
func (t *Task) sinkSnaps(n uint64) []Snapshot {
	var out []Snapshot
	for _, p := range t.sinkWriters() {
		c, ok := p.w.(plan.SinkCheckpointer)
		if !ok {
			continue
		}
		t.enter(CallWrite, 0)
		state, err := c.Checkpoint(n)
		t.leave()
		if err != nil {
			t.fail(fmt.Errorf("%s: checkpoint %d: %w", t.op.Instance(), n, err))
			return nil
		}
		out = append(out, Snapshot{Checkpoint: n, Kind: SnapSink, Stage: StageID(t.v.Tail()), Instance: p.inst,
			Encode: func(dst []byte) []byte { return append(dst, state...) }})
	}
	return out
}

// sinkWriters returns the sink's writer, or an adopting writer's own and
// those it adopted, each with its instance at the checkpoint.
func (t *Task) sinkWriters() []adoptedWriter {
	ws := []adoptedWriter{{t.op.Instance().Index, t.writer}}
	if a, ok := t.writer.(*adoptingWriter); ok {
		ws = append(ws[:0], adoptedWriter{ws[0].inst, a.SinkWriter})
		ws = append(ws, a.adopted...)
	}
	return ws
}

// completed has the sink's writers that publish at completed checkpoints,
// its own and those it adopted, publish what they wrote before checkpoint
// id.
func (t *Task) completed(id uint64) {
	for _, x := range t.sinkWriters() {
		p, ok := x.w.(plan.CheckpointPublisher)
		if !ok {
			continue
		}
		t.enter(CallWrite, 0)
		err := p.Completed(id)
		t.leave()
		if err != nil {
			t.fail(fmt.Errorf("%s: publishing the output of checkpoint %d: %w", t.op.Instance(), id, err))
			return
		}
	}
}

// finalStates returns the state of a task that has finished, for the
// checkpoints whose barrier never reaches it (Checkpoint 0: the job layer
// sets it): a source has read all its splits, a sink's writer has
// prepared everything. The instance's keyed state has been emitted and its
// inputs have ended, so there is nothing else.
func (t *Task) finalStates() []Snapshot {
	var out []Snapshot
	if t.v.Head().Kind == plan.KindSource {
		if s, ok := t.positionSnap(0); ok {
			out = append(out, s)
		}
	}
	if t.writer != nil {
		out = append(out, t.sinkSnaps(0)...)
	}
	return out
}

// Restore sets the task to checkpoint r before it starts: the operator's
// keyed and time state, the source's splits and the sink's writer. A
// source's splits are reopened at their positions as they are read.
func (t *Task) Restore(r Restored) error {
	inst := t.op.Instance()
	if t.started {
		return fmt.Errorf("core: %s: restore after start", inst)
	}
	if err := t.op.restore(r); err != nil {
		return err
	}
	if r.Sources != nil {
		at := map[int]SplitPosition{}
		for _, data := range r.Sources {
			var p SourcePosition
			if err := json.Unmarshal(data, &p); err != nil {
				return fmt.Errorf("%s: checkpoint %d: the source's position: %w", inst, r.Checkpoint, err)
			}
			for _, sp := range p.Splits {
				if _, twice := at[sp.Split]; twice || sp.Split < 0 || sp.Split >= len(t.v.Splits) || t.v.Splits[sp.Split].Desc != sp.Desc {
					return fmt.Errorf("%s: checkpoint %d read split %d (%s), which the source does not have now (%d splits), or twice: the source's splits changed",
						inst, r.Checkpoint, sp.Split, sp.Desc, len(t.v.Splits))
				}
				at[sp.Split] = sp
			}
		}
		t.restoreSplits(at)
	}
	t.sinkState, t.adopted, t.restored = r.Sink, r.Adopted, r.Checkpoint
	return nil
}

// restoreSplits queues the instance's splits that the checkpoint had not
// finished (at, by place among the source's splits), in their order: those
// it had read from to reopen where they were, the others from their start.
// Restored at another parallelism an instance may hold several splits that
// instances of the checkpoint had begun; they are read one after another
// in the source's order, as the checkpoint's instances read theirs, so that
// a split of earlier event times is not read after a later one.
func (t *Task) restoreSplits(at map[int]SplitPosition) {
	for k := range t.splits {
		sp, ok := at[t.global(k)]
		if ok && sp.Done && !(t.splits[k].Acknowledges && sp.Pos != nil) {
			continue
		}
		o := openSplit{split: t.splits[k], index: k, queued: true}
		if ok && (sp.Records > 0 || sp.Pos != nil) {
			o.records, o.seek = sp.Records, &sp
		}
		t.open = append(t.open, o)
	}
	t.split = len(t.splits)
	if t.ordered() {
		// As capWatermark: the splits after the one read first.
		t.op.time.splitCap = t.capOf(1)
	}
}

// openSplitAt opens a restored split where the checkpoint had it: at the
// reader's position, or at its start with the records read before to
// skip (produce reads and drops them, polling as for any read).
func (t *Task) openSplitAt(o *openSplit) (plan.Reader, error) {
	src, inst := t.v.Head().Source, t.op.Instance()
	if o.seek.Pos != nil && src.OpenAt != nil {
		return src.OpenAt(t.cfg.Ctx, inst, o.split, o.seek.Pos)
	}
	r, err := src.Open(t.cfg.Ctx, inst, o.split)
	if err == nil {
		o.skip = o.seek.Records
	}
	return r, err
}

// skipped drops the records of batch b, read from split s to skip what
// the checkpoint had read; it fails when the reader returned more than
// asked for, or ended first.
func (t *Task) skipped(s *openSplit, b *plan.Batch, ended bool) error {
	if b != nil {
		n := int64(1)
		if out := t.v.Head().Out; out != nil && out.Len != nil {
			n = int64(out.Len(b.Data))
		}
		if n > s.skip {
			return fmt.Errorf("skipping to record %d: the reader returned more records than asked for", s.seek.Records)
		}
		s.skip -= n
	}
	if ended && s.skip > 0 {
		return fmt.Errorf("the split has %d records, the checkpoint had read %d: it changed", s.seek.Records-s.skip, s.seek.Records)
	}
	return nil
}

// restore sets the operator's state to r's.
func (o *Operator) restore(r Restored) error {
	if r.Time != nil {
		if err := o.time.restore(r.Time); err != nil {
			return fmt.Errorf("%s: checkpoint %d: %w", o.inst, r.Checkpoint, err)
		}
	}
	for k, n := range o.v.Chain {
		chunks := r.Keyed[StageID(n)]
		if len(chunks) == 0 {
			continue
		}
		st, ok := o.states[k].(plan.Snapshotter)
		if !ok {
			return fmt.Errorf("%s: checkpoint %d holds keyed state of %s, which has none", o.inst, r.Checkpoint, n)
		}
		start, end, _ := o.keyGroups()
		for _, c := range chunks {
			if err := st.Restore(c, start, end); err != nil {
				return fmt.Errorf("%s: %s, state %q: checkpoint %d: %w", o.inst, n, StageID(n), r.Checkpoint, err)
			}
		}
	}
	return nil
}
