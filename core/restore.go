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

// Restored is what a task takes back from a checkpoint before it starts:
// the pieces of state of its instance, and the chunks of keyed state that
// cover its key groups, by stage.
type Restored struct {
	Checkpoint uint64
	Source     []byte // a SourcePosition, encoded
	Time       []byte
	Sink       []byte
	Keyed      map[string][][]byte
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
				pos, err := pr.Position()
				if err != nil {
					t.fail(fmt.Errorf("%s: checkpoint %d: the position in split %s: %w", t.op.Instance(), n, sp.Desc, err))
					return Snapshot{}, false
				}
				sp.Pos = pos
			}
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

// checkpointSink has the sink's writer describe what it has written, for
// checkpoint n.
func (t *Task) checkpointSink(n uint64) {
	if s, ok := t.sinkSnap(n); ok {
		t.ready.Snapshots = append(t.ready.Snapshots, s)
	}
}

func (t *Task) sinkSnap(n uint64) (Snapshot, bool) {
	c, ok := t.writer.(plan.SinkCheckpointer)
	if !ok {
		return Snapshot{}, false
	}
	t.enter(CallWrite, 0)
	state, err := c.Checkpoint(n)
	t.leave()
	if err != nil {
		t.fail(fmt.Errorf("%s: checkpoint %d: %w", t.op.Instance(), n, err))
		return Snapshot{}, false
	}
	return Snapshot{Checkpoint: n, Kind: SnapSink, Stage: StageID(t.v.Tail()), Instance: t.op.Instance().Index,
		Encode: func(dst []byte) []byte { return append(dst, state...) }}, true
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
		if s, ok := t.sinkSnap(0); ok {
			out = append(out, s)
		}
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
	if r.Source != nil {
		var p SourcePosition
		if err := json.Unmarshal(r.Source, &p); err != nil {
			return fmt.Errorf("%s: checkpoint %d: the source's position: %w", inst, r.Checkpoint, err)
		}
		if err := t.restoreSplits(r.Checkpoint, p); err != nil {
			return err
		}
	}
	t.sinkState = r.Sink
	return nil
}

func (t *Task) restoreSplits(id uint64, p SourcePosition) error {
	inst := t.op.Instance()
	if len(p.Splits) > len(t.splits) {
		return fmt.Errorf("%s: checkpoint %d had read %d splits; the instance has %d", inst, id, len(p.Splits), len(t.splits))
	}
	for k, sp := range p.Splits {
		if sp.Split != t.global(k) || sp.Desc != t.splits[k].Desc {
			return fmt.Errorf("%s: checkpoint %d read split %d (%s) where the instance now has split %d (%s): the source's splits changed",
				inst, id, sp.Split, sp.Desc, t.global(k), t.splits[k].Desc)
		}
		if sp.Done {
			continue
		}
		o := openSplit{split: t.splits[k], index: k, records: sp.Records}
		if sp.Records > 0 || sp.Pos != nil {
			o.seek = &sp
		}
		t.open = append(t.open, o)
	}
	t.split = len(p.Splits)
	return nil
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
				return fmt.Errorf("%s: %s: checkpoint %d: %w", o.inst, n, r.Checkpoint, err)
			}
		}
	}
	return nil
}
