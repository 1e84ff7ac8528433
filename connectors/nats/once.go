package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-data/sluice/internal/sinkstate"
	"github.com/sluice-data/sluice/stages"
)

// onceSink is a Sink with ExactlyOnce: its writers stage what they are
// given per checkpoint and publish it when the checkpoint completes
// (stages.Publisher).
type onceSink[T any] struct{ *sink[T] }

// staged is a message held for publication: its subject, data and ID.
type staged struct {
	Subject string `json:"s"`
	Data    []byte `json:"d"`
	ID      string `json:"i"`
}

// epoch is what a writer was given before one checkpoint's barrier (or, for
// Checkpoint 0, before the end of its input) and has not published.
type epoch struct {
	Checkpoint uint64   `json:"c"`
	Sealed     int64    `json:"t"` // unix ms
	Msgs       []staged `json:"m"`
}

type onceWriter[T any] struct {
	*writer[T]
	inst   stages.Instance
	buf    []staged // given since the last checkpoint
	epochs []epoch  // sealed, not yet published, oldest first
}

func (s *onceSink[T]) Open(ctx context.Context, inst stages.Instance) (stages.Writer[T], error) {
	w, err := s.open(ctx, inst)
	if err != nil {
		return nil, err
	}
	return &onceWriter[T]{writer: w, inst: inst}, nil
}

// Reopen implements stages.Reopener: the writer publishes the epochs that
// the checkpoint held unpublished (its own among them: it completed, and
// whether they were published before the failure is not known; JetStream
// drops those it has seen within its duplicate window), and goes on.
func (s *onceSink[T]) Reopen(ctx context.Context, inst stages.Instance, state []byte) (stages.Writer[T], error) {
	var epochs []epoch
	if err := json.Unmarshal(state, &epochs); err != nil {
		return nil, fmt.Errorf("nats: reopening the sink to %s at a checkpoint: %w", s.url, err)
	}
	w, err := s.open(ctx, inst)
	if err != nil {
		return nil, err
	}
	o := &onceWriter[T]{writer: w, inst: inst, epochs: epochs}
	o.warnPastWindow(ctx)
	if err := o.publish(^uint64(0)); err != nil {
		w.close()
		return nil, err
	}
	return o, nil
}

func (w *onceWriter[T]) Write(recs []T) error {
	if w.state != sinkstate.Writing {
		return w.outOfOrder("writing")
	}
	for i := range recs {
		subject, data, err := w.s.message(&recs[i], w.records)
		if err != nil {
			return err
		}
		w.buf = append(w.buf, staged{Subject: subject, Data: data})
		w.records++
	}
	return nil
}

// seal makes what was given since the last checkpoint the epoch of
// checkpoint id, each message's ID fixed: the run, the checkpoint (or, at
// the end of the input, the attempt, since what comes after the last
// checkpoint may come again otherwise after a failure), the instance and
// the message's place.
func (w *onceWriter[T]) seal(id uint64) {
	if len(w.buf) == 0 {
		return
	}
	tag := fmt.Sprintf("c%d", id)
	if id == 0 {
		tag = fmt.Sprintf("end%d", w.inst.Attempt)
	}
	for k := range w.buf {
		w.buf[k].ID = fmt.Sprintf("%s/%s/%s/%d/%d", w.inst.Job, w.inst.Run, tag, w.inst.Index, k)
	}
	w.epochs = append(w.epochs, epoch{Checkpoint: id, Sealed: time.Now().UnixMilli(), Msgs: w.buf})
	w.buf = nil
}

// Checkpoint implements stages.Checkpointer: what was given before the
// barrier becomes the checkpoint's epoch, and the state lists every epoch
// not yet published.
func (w *onceWriter[T]) Checkpoint(id uint64) ([]byte, error) {
	if w.state == sinkstate.Writing {
		w.seal(id)
	}
	b, err := json.Marshal(w.epochs)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	return b, nil
}

// Completed implements stages.Publisher: the epochs of checkpoint id and
// older are published, and wait for their acknowledgements.
func (w *onceWriter[T]) Completed(id uint64) error {
	if w.state != sinkstate.Writing && w.state != sinkstate.Prepared {
		return nil
	}
	return w.publish(id)
}

// publish publishes the epochs of checkpoints up to id, in order, and
// drops them once acknowledged; the end's (checkpoint 0, the last) only
// for all (id ^0: at Commit, or at Reopen, whose checkpoint held it).
func (w *onceWriter[T]) publish(id uint64) error {
	n := 0
	for n < len(w.epochs) && (id == ^uint64(0) || w.epochs[n].Checkpoint != 0 && w.epochs[n].Checkpoint <= id) {
		for _, m := range w.epochs[n].Msgs {
			paf, err := w.js.PublishMsgAsync(&natsgo.Msg{Subject: m.Subject, Data: m.Data},
				append(w.pubOpts[:len(w.pubOpts):len(w.pubOpts)], jetstream.WithMsgID(m.ID))...)
			if err != nil {
				w.state = sinkstate.Failed
				return fmt.Errorf("nats: publishing message %s to %s: %w", m.ID, m.Subject, err)
			}
			w.pending = append(w.pending, inflight{paf: paf, subject: m.Subject, id: m.ID})
		}
		n++
	}
	if err := w.settle(true); err != nil {
		return err
	}
	w.epochs = append(w.epochs[:0], w.epochs[n:]...)
	return nil
}

// Detach implements stages.Checkpointer: the connection closes; what the
// checkpoint holds unpublished the reopened writer publishes.
func (w *onceWriter[T]) Detach() error {
	w.close()
	return nil
}

// Prepare seals what came after the last checkpoint: it is published at
// Commit, once every instance has prepared.
func (w *onceWriter[T]) Prepare() error {
	if w.state != sinkstate.Writing {
		return w.outOfOrder("preparing")
	}
	w.seal(0)
	w.state = sinkstate.Prepared
	return nil
}

// Commit publishes every epoch left, then closes the connection.
func (w *onceWriter[T]) Commit() error {
	if work, err := w.state.Committing(ErrState); !work {
		return w.wrapState("committing", err)
	}
	if err := w.publish(^uint64(0)); err != nil {
		return err
	}
	w.state = sinkstate.Committed
	w.close()
	return nil
}

// Abort publishes nothing more and closes the connection.
func (w *onceWriter[T]) Abort() error {
	w.buf, w.epochs = nil, nil
	return w.writer.Abort()
}

// warnPastWindow warns when an epoch about to be published again was
// sealed longer ago than its stream's duplicate window: JetStream no
// longer knows its IDs, and consumers may see its messages twice.
func (w *onceWriter[T]) warnPastWindow(ctx context.Context) {
	windows := map[string]time.Duration{}
	for _, e := range w.epochs {
		if len(e.Msgs) == 0 {
			continue
		}
		subject := e.Msgs[0].Subject
		window, ok := windows[subject]
		if !ok {
			if name, err := w.js.StreamNameBySubject(ctx, subject); err == nil {
				if st, err := w.js.Stream(ctx, name); err == nil {
					window = st.CachedInfo().Config.Duplicates
				}
			}
			windows[subject] = window
		}
		if age := time.Since(time.UnixMilli(e.Sealed)); window > 0 && age > window {
			slog.Warn("nats: publishing a checkpoint's messages again past the stream's duplicate window: consumers may see them twice",
				"url", w.s.url, "subject", subject, "checkpoint", e.Checkpoint, "messages", len(e.Msgs),
				"sealed", age.Round(time.Second).String(), "window", window.String())
		}
	}
}
