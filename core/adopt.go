package core

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-data/sluice/plan"
)

// adoptingWriter is the sink writer of an instance restored at a lower
// parallelism than its checkpoint's: its own writer, and those of the old
// instances that no instance has now (old instance j goes to instance j
// mod the new parallelism), reopened at the checkpoint and prepared at
// once. What they had written before the checkpoint is committed with the
// instance's output or aborted with it, and described at every checkpoint
// under its old instance, so that a later restore adopts it again. Records
// go to the instance's own writer.
type adoptingWriter struct {
	plan.SinkWriter
	adopted []adoptedWriter
}

type adoptedWriter struct {
	inst int
	w    plan.SinkWriter
}

// adopt reopens the writers of adopted at their states and prepares them,
// behind own.
func adopt(ctx context.Context, n *plan.Node, inst plan.Instance, own plan.SinkWriter, adopted []AdoptedSink) (plan.SinkWriter, error) {
	a := &adoptingWriter{SinkWriter: own}
	for _, x := range adopted {
		old := inst
		old.Index = x.Instance
		w, err := n.Sink.Reopen(ctx, old, x.State)
		if err == nil {
			if err = w.Prepare(); err != nil {
				err = errors.Join(err, detach(w))
			}
		}
		if err != nil {
			// What the checkpoint holds stays staged, for the next try.
			err = fmt.Errorf("taking over the output of instance %d of the checkpoint: %w", x.Instance, err)
			return nil, errors.Join(err, a.Detach())
		}
		a.adopted = append(a.adopted, adoptedWriter{x.Instance, w})
	}
	return a, nil
}

func detach(w plan.SinkWriter) error {
	if c, ok := w.(plan.SinkCheckpointer); ok {
		return c.Detach()
	}
	return nil
}

// each calls f on the instance's writer and then on every adopted one.
func (a *adoptingWriter) each(f func(plan.SinkWriter) error) error {
	errs := []error{f(a.SinkWriter)}
	for _, x := range a.adopted {
		if err := f(x.w); err != nil {
			errs = append(errs, fmt.Errorf("the output of instance %d of the checkpoint: %w", x.inst, err))
		}
	}
	return errors.Join(errs...)
}

// Commit commits the instance's output, then what it adopted.
func (a *adoptingWriter) Commit() error {
	return a.each(func(w plan.SinkWriter) error { return w.Commit() })
}

// Abort discards the instance's output and what it adopted.
func (a *adoptingWriter) Abort() error {
	return a.each(func(w plan.SinkWriter) error { return w.Abort() })
}

// Revert undoes the commits of the writers that can.
func (a *adoptingWriter) Revert() error {
	return a.each(func(w plan.SinkWriter) error {
		if r, ok := w.(plan.Reverter); ok {
			return r.Revert()
		}
		return nil
	})
}

// Checkpoint describes the instance's own output; sinkSnaps asks each
// adopted writer for its own.
func (a *adoptingWriter) Checkpoint(id uint64) ([]byte, error) {
	c, ok := a.SinkWriter.(plan.SinkCheckpointer)
	if !ok {
		return nil, errors.New("the sink's writer cannot checkpoint")
	}
	return c.Checkpoint(id)
}

// Detach lets go of every writer.
func (a *adoptingWriter) Detach() error { return a.each(detach) }
