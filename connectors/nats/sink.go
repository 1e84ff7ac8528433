package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-data/sluice/internal/sinkstate"
	"github.com/sluice-data/sluice/stages"
)

// ErrState is wrapped by the error of a Writer method called out of the
// sink lifecycle's order (Write after Prepare, Commit before Prepare, ...).
var ErrState = errors.New("nats: writer used out of order")

// Sink returns a sink that publishes each record to subject on the server
// at url, or to the subject SubjectOf derives from the record (then subject
// may be empty). See the package documentation for acknowledgements and
// de-duplication. Options of the wrong record type panic here.
func Sink[T any](url, subject string, opts ...SinkOption) stages.Sink[T] {
	s := &sink[T]{url: url, subject: subject, cfg: defaultSinkConfig()}
	for _, o := range opts {
		o.applySink(&s.cfg)
	}
	var zero T
	wrong := func(opt string, f any) {
		panic(fmt.Sprintf("nats: %s gives %T but the sink writes %T", opt, f, zero))
	}
	s.encode = func(v T) ([]byte, error) { return json.Marshal(v) }
	if f := s.cfg.encode; f != nil {
		var ok bool
		if s.encode, ok = f.(func(T) ([]byte, error)); !ok {
			wrong("Encode", f)
		}
	}
	if f := s.cfg.subjectOf; f != nil {
		var ok bool
		if s.subjectOf, ok = f.(func(T) string); !ok {
			wrong("SubjectOf", f)
		}
	}
	if f := s.cfg.msgID; f != nil {
		var ok bool
		if s.msgID, ok = f.(func(T) string); !ok {
			wrong("MsgID", f)
		}
	}
	if s.cfg.once {
		if s.msgID != nil {
			s.cfg.errs = append(s.cfg.errs, errors.New("nats: ExactlyOnce sets each message's ID itself: not with MsgID"))
		}
		return &onceSink[T]{s}
	}
	return s
}

type sink[T any] struct {
	url, subject string
	cfg          sinkConfig
	encode       func(T) ([]byte, error)
	subjectOf    func(T) string
	msgID        func(T) string
}

func (s *sink[T]) validate() error {
	errs := append([]error(nil), s.cfg.errs...)
	if s.url == "" {
		errs = append(errs, errors.New("nats: no server URL"))
	}
	if s.subjectOf == nil && !validSubject(s.subject) {
		errs = append(errs, fmt.Errorf("nats: cannot publish to subject %q", s.subject))
	}
	return errors.Join(errs...)
}

func (s *sink[T]) Open(ctx context.Context, inst stages.Instance) (stages.Writer[T], error) {
	return s.open(ctx, inst)
}

func (s *sink[T]) open(ctx context.Context, inst stages.Instance) (*writer[T], error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	opts := append([]natsgo.Option{natsgo.Name("sluice " + inst.String())}, s.cfg.conn...)
	nc, err := natsgo.Connect(s.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connecting to %s: %w", s.url, err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(s.cfg.requestTimeout),
		jetstream.WithPublishAsyncMaxPending(s.cfg.maxPending), jetstream.WithPublishAsyncTimeout(s.cfg.ackTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	return &writer[T]{s: s, ctx: ctx, nc: nc, js: js,
		pubOpts: []jetstream.PublishOpt{jetstream.WithStallWait(s.cfg.ackTimeout)}}, nil
}

// inflight is a publish awaiting its acknowledgement.
type inflight struct {
	paf     jetstream.PubAckFuture
	record  int64
	subject string
	id      string
}

type writer[T any] struct {
	s       *sink[T]
	ctx     context.Context
	nc      *natsgo.Conn
	js      jetstream.JetStream
	pubOpts []jetstream.PublishOpt
	pending []inflight // in publishing order
	records int64
	state   sinkstate.State
}

func (w *writer[T]) outOfOrder(op string) error {
	return w.wrapState(op, sinkstate.OutOfOrder(w.state, op, ErrState))
}

func (w *writer[T]) wrapState(_ string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("nats: %s: %w", w.s.url, err)
}

func describe(record int64, subject, id string) string {
	if id == "" {
		return fmt.Sprintf("record %d to %s", record, subject)
	}
	return fmt.Sprintf("record %d to %s (msg id %q)", record, subject, id)
}

// message returns the subject and the encoding of record x, the
// writer's n-th.
func (s *sink[T]) message(x *T, n int64) (subject string, data []byte, err error) {
	subject = s.subject
	if s.subjectOf != nil {
		subject = s.subjectOf(*x)
		if !validSubject(subject) {
			return "", nil, fmt.Errorf("nats: record %d (%s): cannot publish to subject %q", n, format(*x), subject)
		}
	}
	if data, err = s.encode(*x); err != nil {
		return "", nil, fmt.Errorf("nats: encoding record %d for %s (%s): %w", n, subject, format(*x), err)
	}
	return subject, data, nil
}

func (w *writer[T]) Write(recs []T) error {
	if w.state != sinkstate.Writing {
		return w.outOfOrder("writing")
	}
	for i := range recs {
		subject, data, err := w.s.message(&recs[i], w.records)
		if err != nil {
			return err
		}
		msg := &natsgo.Msg{Subject: subject, Data: data}
		opts := w.pubOpts
		var id string
		if w.s.msgID != nil {
			if id = w.s.msgID(recs[i]); id != "" {
				opts = append(opts[:len(opts):len(opts)], jetstream.WithMsgID(id))
			}
		}
		paf, err := w.js.PublishMsgAsync(msg, opts...)
		if err != nil {
			w.state = sinkstate.Failed
			return fmt.Errorf("nats: publishing %s: %w", describe(w.records, subject, id), err)
		}
		w.pending = append(w.pending, inflight{paf: paf, record: w.records, subject: subject, id: id})
		w.records++
	}
	return w.settle(false)
}

// settle collects the acknowledgements of the publishes in flight, in
// order: those that have come when wait is false, all of them when it is
// set. It returns the first failure.
func (w *writer[T]) settle(wait bool) error {
	var done <-chan struct{}
	if wait {
		done = w.ctx.Done()
	}
	k := 0
	defer func() {
		if k > 0 {
			w.pending = append(w.pending[:0], w.pending[k:]...)
		}
	}()
	for ; k < len(w.pending); k++ {
		p := w.pending[k]
		var err error
		if wait {
			select {
			case <-p.paf.Ok():
			case err = <-p.paf.Err():
			case <-done:
				err = w.ctx.Err()
			}
		} else {
			select {
			case <-p.paf.Ok():
			case err = <-p.paf.Err():
			default:
				return nil
			}
		}
		if err != nil {
			w.state = sinkstate.Failed
			return fmt.Errorf("nats: publishing %s: %w", describe(p.record, p.subject, p.id), err)
		}
	}
	return nil
}

// Prepare waits until every publish has been acknowledged.
func (w *writer[T]) Prepare() error {
	if w.state != sinkstate.Writing {
		return w.outOfOrder("preparing")
	}
	if err := w.settle(true); err != nil {
		return err
	}
	w.state = sinkstate.Prepared
	return nil
}

// Commit closes the connection: the messages were visible once published.
func (w *writer[T]) Commit() error {
	if work, err := w.state.Committing(ErrState); !work {
		return w.wrapState("committing", err)
	}
	w.state = sinkstate.Committed
	w.close()
	return nil
}

// Abort closes the connection; what was published stays in the stream.
func (w *writer[T]) Abort() error {
	if !w.state.Aborting() {
		return nil
	}
	w.state = sinkstate.Aborted
	w.close()
	return nil
}

func (w *writer[T]) close() {
	if w.nc != nil {
		w.nc.Close()
		w.nc = nil
	}
	w.pending = nil
}

// format renders a record for an error message.
func format(x any) string {
	s := fmt.Sprintf("%+v", x)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
