package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-data/sluice/stages"
)

// ErrBadMessage is matched (errors.Is) by every *MessageError.
var ErrBadMessage = errors.New("nats: message does not decode")

// MessageError reports a message that does not decode.
type MessageError struct {
	Stream   string
	Subject  string
	Sequence uint64 // stream sequence
	Err      error  // from the decoder
}

// Error returns "nats: stream S sequence N (subject X): REASON".
func (e *MessageError) Error() string {
	return fmt.Sprintf("nats: stream %s sequence %d (subject %s): %v", e.Stream, e.Sequence, e.Subject, e.Err)
}

// Unwrap returns the decoder's error.
func (e *MessageError) Unwrap() error { return e.Err }

// Is reports whether target is ErrBadMessage.
func (e *MessageError) Is(target error) bool { return target == ErrBadMessage }

// Source returns a source of the JetStream stream named stream on the
// server at url (a nats:// URL, or several separated by commas). See the
// package documentation for its splits, bounds and delivery guarantees.
// Options of the wrong record type (Decode of another T) panic here.
func Source[T any](url, stream string, opts ...SourceOption) stages.Source[T] {
	s := &source[T]{url: url, stream: stream, cfg: defaultSourceConfig()}
	for _, o := range opts {
		o.applySource(&s.cfg)
	}
	s.decode = decodeJSON[T]
	if s.cfg.decode != nil {
		f, ok := s.cfg.decode.(func(Message) (T, error))
		if !ok {
			var zero T
			panic(fmt.Sprintf("nats: Decode gives %T but the source reads %T", s.cfg.decode, zero))
		}
		s.decode = f
	}
	return s
}

func decodeJSON[T any](m Message) (T, error) {
	var v T
	err := json.Unmarshal(m.Data, &v)
	return v, err
}

type source[T any] struct {
	url, stream string
	cfg         sourceConfig
	decode      func(Message) (T, error)
}

// partition is the Data of a split.
type partition struct {
	index   int
	filters []string
	durable string // the durable consumer's name, or ""
}

func (s *source[T]) partitions() []partition {
	if len(s.cfg.partitions) == 0 {
		return []partition{{filters: s.cfg.subjects, durable: s.cfg.durable}}
	}
	out := make([]partition, len(s.cfg.partitions))
	for i, f := range s.cfg.partitions {
		out[i] = partition{index: i, filters: []string{f}}
		if s.cfg.durable != "" {
			out[i].durable = s.cfg.durable + "-" + strconv.Itoa(i)
		}
	}
	return out
}

func (s *source[T]) desc(p partition) string {
	if len(p.filters) == 0 {
		return "nats stream " + s.stream
	}
	return fmt.Sprintf("nats stream %s subjects %s", s.stream, strings.Join(p.filters, ","))
}

func (s *source[T]) bounded() bool { return s.cfg.untilEmpty || s.cfg.stopAfter > 0 }

func (s *source[T]) Splits(ctx context.Context) ([]stages.Split, error) {
	if err := s.cfg.validate(s.url, s.stream); err != nil {
		return nil, err
	}
	parts := s.partitions()
	splits := make([]stages.Split, len(parts))
	for i, p := range parts {
		splits[i] = stages.Split{Index: i, Records: -1, Bytes: -1, Desc: s.desc(p), Data: p, Unbounded: true,
			Acknowledges: p.durable != ""}
	}
	if !s.bounded() {
		return splits, nil
	}
	if !s.cfg.untilEmpty {
		for i := range splits {
			splits[i].Records = s.cfg.stopAfter
		}
		return splits, nil
	}
	// Estimate each bounded split's records: what its consumer would have
	// to deliver now.
	nc, js, err := s.connect("splits")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	str, err := s.openStream(ctx, js)
	if err != nil {
		return nil, err
	}
	for i, p := range parts {
		n, err := s.pending(ctx, str, p)
		if err != nil {
			return nil, fmt.Errorf("nats: %s: counting messages: %w", splits[i].Desc, err)
		}
		if s.cfg.stopAfter > 0 {
			n = min(n, s.cfg.stopAfter)
		}
		splits[i].Records = n
	}
	return splits, nil
}

// pending counts the messages a reader of p would read now: the durable
// consumer's outstanding ones when it exists, else those of a probe
// consumer with p's filters and start.
func (s *source[T]) pending(ctx context.Context, str jetstream.Stream, p partition) (int64, error) {
	if p.durable != "" {
		c, err := str.Consumer(ctx, p.durable)
		if err == nil {
			info := c.CachedInfo()
			return int64(info.NumPending) + int64(info.NumAckPending), nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, err
		}
	}
	cfg := s.consumerConfig(p, 0)
	cfg.Durable, cfg.AckPolicy, cfg.Description = "", jetstream.AckNonePolicy, "sluice probe"
	c, err := str.CreateConsumer(ctx, cfg)
	if err != nil {
		return 0, err
	}
	info := c.CachedInfo()
	_ = str.DeleteConsumer(ctx, info.Name) // it goes inactive anyway
	return int64(info.NumPending), nil
}

func (s *source[T]) connect(what string) (*natsgo.Conn, jetstream.JetStream, error) {
	opts := append([]natsgo.Option{natsgo.Name("sluice " + what)}, s.cfg.conn...)
	nc, err := natsgo.Connect(s.url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats: connecting to %s: %w", s.url, err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(s.cfg.requestTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("nats: %w", err)
	}
	return nc, js, nil
}

func (s *source[T]) openStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	str, err := js.Stream(ctx, s.stream)
	if err != nil {
		return nil, fmt.Errorf("nats: stream %s on %s: %w", s.stream, s.url, err)
	}
	return str, nil
}

// consumerConfig returns the configuration of p's consumer, starting after
// stream sequence after when it is not zero.
func (s *source[T]) consumerConfig(p partition, after uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	switch len(p.filters) {
	case 0:
	case 1:
		cfg.FilterSubject = p.filters[0]
	default:
		cfg.FilterSubjects = p.filters
	}
	switch {
	case after > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	case s.cfg.startSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.cfg.startSeq
	case !s.cfg.startTime.IsZero():
		t := s.cfg.startTime
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	if p.durable != "" {
		cfg.Durable = p.durable
		cfg.AckPolicy = jetstream.AckExplicitPolicy
		cfg.AckWait = s.cfg.ackWait
		cfg.MaxAckPending = s.cfg.maxAckPending
		return cfg
	}
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.InactiveThreshold = 5 * time.Minute
	cfg.MemoryStorage = true
	cfg.Replicas = 1
	return cfg
}

func (s *source[T]) Open(ctx context.Context, inst stages.Instance, sp stages.Split) (stages.Reader[T], error) {
	if err := s.cfg.validate(s.url, s.stream); err != nil {
		return nil, err
	}
	p, ok := sp.Data.(partition)
	if !ok {
		return nil, fmt.Errorf("nats: split %q is not one of this source's", sp.Desc)
	}
	nc, js, err := s.connect(fmt.Sprintf("%s split %d", inst, p.index))
	if err != nil {
		return nil, err
	}
	r := &reader[T]{src: s, ctx: ctx, part: p, desc: sp.Desc, nc: nc, js: js, checkpointing: inst.Checkpointing}
	if err := r.open(inst); err != nil {
		nc.Close()
		return nil, err
	}
	return r, nil
}

// position is where a reader is in its partition: the stream sequence of
// the last record it handed over, how many it has, and the bound of a
// source read until empty (so that a reopened split ends where it would
// have).
type position struct {
	Cursor  uint64 `json:"cursor"`
	Read    int64  `json:"read"`
	LastSeq uint64 `json:"last_seq,omitempty"`
	Done    bool   `json:"done,omitempty"`
}

// Position implements stages.Positioner.
func (r *reader[T]) Position() ([]byte, error) {
	return json.Marshal(position{Cursor: r.cursor, Read: r.read, LastSeq: r.lastSeq, Done: r.done})
}

// PositionAt implements stages.Acknowledger: the position, and for a
// durable consumer the messages that checkpoint id will acknowledge.
func (r *reader[T]) PositionAt(id uint64) ([]byte, error) {
	if r.part.durable != "" {
		r.marks = append(r.marks, ackMark{id: id, n: len(r.acks)})
	}
	return r.Position()
}

// Acknowledge implements stages.Acknowledger: a durable consumer's split
// acknowledges the messages it handed over before checkpoint id's barrier
// (0: all of them).
func (r *reader[T]) Acknowledge(id uint64) error {
	if r.part.durable == "" || r.nc == nil {
		return nil
	}
	n := 0
	if id == 0 {
		n, r.marks = len(r.acks), r.marks[:0]
	} else {
		k := 0
		for k < len(r.marks) && r.marks[k].id <= id {
			n = r.marks[k].n
			k++
		}
		r.marks = append(r.marks[:0], r.marks[k:]...)
	}
	if n == 0 {
		return nil
	}
	// The last synchronously: the server handles a consumer's
	// acknowledgements in order, so when it confirms the last they have
	// all landed, before the reader may close its connection.
	err := ackEach(r.acks[:n-1])
	if err == nil {
		ctx, cancel := context.WithTimeout(r.ctx, r.src.cfg.requestTimeout)
		if aerr := r.acks[n-1].DoubleAck(ctx); aerr != nil {
			err = fmt.Errorf("acknowledging stream sequence %d: %w", seqOf(r.acks[n-1]), aerr)
		}
		cancel()
	}
	if err != nil {
		return r.errorf("acknowledging what checkpoint %d holds: %w", id, err)
	}
	r.acks = append(r.acks[:0], r.acks[n:]...)
	for i := range r.marks {
		r.marks[i].n -= n
	}
	return nil
}

// ackMark: the first n messages of reader.acks were handed over before
// checkpoint id's barrier.
type ackMark struct {
	id uint64
	n  int
}

// OpenAt implements stages.Seeker: an ephemeral consumer starting after
// the position's stream sequence, or the durable consumer made again to
// start there (the server's position goes back or forward to the
// checkpoint's, and what it had delivered and not yet acknowledged is
// dropped with the old consumer).
func (s *source[T]) OpenAt(ctx context.Context, inst stages.Instance, sp stages.Split, pos []byte) (stages.Reader[T], error) {
	var p position
	if err := json.Unmarshal(pos, &p); err != nil {
		return nil, fmt.Errorf("nats: opening %s at %q: %w", sp.Desc, pos, err)
	}
	if err := s.cfg.validate(s.url, s.stream); err != nil {
		return nil, err
	}
	part, ok := sp.Data.(partition)
	if !ok {
		return nil, fmt.Errorf("nats: split %q cannot be opened at a position", sp.Desc)
	}
	nc, js, err := s.connect(fmt.Sprintf("%s split %d", inst, part.index))
	if err != nil {
		return nil, err
	}
	r := &reader[T]{src: s, ctx: ctx, part: part, desc: sp.Desc, nc: nc, js: js, checkpointing: inst.Checkpointing,
		cursor: p.Cursor, read: p.Read, lastSeq: p.LastSeq, done: p.Done}
	r.consDesc = fmt.Sprintf("sluice job %q run %q %s", inst.Job, inst.Run, inst)
	// A durable consumer is moved even for a split that had ended, so that
	// what an attempt after the checkpoint had delivered and not
	// acknowledged is not delivered again to a later run.
	if !r.done || part.durable != "" {
		if r.str, err = s.openStream(ctx, js); err == nil && part.durable != "" {
			err = r.remakeDurable(p.Cursor, "the checkpoint's position")
		} else if err == nil {
			err = r.newConsumer(p.Cursor) // 0: from where the source starts
		}
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return r, nil
}

type reader[T any] struct {
	src  *source[T]
	ctx  context.Context
	part partition
	desc string
	nc   *natsgo.Conn
	js   jetstream.JetStream
	str  jetstream.Stream
	cons jetstream.Consumer
	// description of the ephemeral consumers this reader creates
	consDesc string

	lastSeq  uint64 // UntilEmpty: the stream's last sequence at open
	read     int64  // records handed over
	cursor   uint64 // stream sequence of the last record handed over
	nextCons uint64 // ephemeral consumers: the consumer sequence expected next
	acks     []jetstream.Msg
	done     bool // the split has ended (io.EOF returned or due)
	// checkpointing: the job checkpoints, and a durable consumer's
	// messages are acknowledged when a checkpoint holding them completes
	// (marks), not when the next batch is read.
	checkpointing bool
	marks         []ackMark
	// again: the last pull request delivered a message handed over
	// already (checkpointing, seq <= cursor).
	again bool
}

func (r *reader[T]) errorf(format string, args ...any) error {
	return fmt.Errorf("nats: %s: "+format, append([]any{r.desc}, args...)...)
}

func (r *reader[T]) open(inst stages.Instance) error {
	var err error
	if r.str, err = r.src.openStream(r.ctx, r.js); err != nil {
		return err
	}
	if r.src.cfg.untilEmpty {
		info, err := r.str.Info(r.ctx)
		if err != nil {
			return r.errorf("stream info: %w", err)
		}
		r.lastSeq = info.State.LastSeq
		if r.lastSeq == 0 || r.src.cfg.startSeq > r.lastSeq {
			r.done = true // nothing to read
			return nil
		}
	}
	r.consDesc = fmt.Sprintf("sluice job %q run %q %s", inst.Job, inst.Run, inst)
	if r.part.durable != "" && r.checkpointing {
		return r.resumeDurable()
	}
	return r.newConsumer(0)
}

// resumeDurable opens the durable consumer of a job that checkpoints where
// the server has it: after the last message acknowledged in order (its ack
// floor), which the reader's position starts from. A consumer that an
// earlier run left with messages delivered and not acknowledged is made
// again to start there, so that it delivers in stream order at once rather
// than those messages after AckWait, out of order.
func (r *reader[T]) resumeDurable() error {
	info, err := r.str.Consumer(r.ctx, r.part.durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return r.newConsumer(0)
	case err != nil:
		return r.errorf("durable consumer %q: %w", r.part.durable, err)
	}
	ci := info.CachedInfo()
	floor := ci.AckFloor.Stream
	r.cursor = floor
	if ci.NumAckPending == 0 && ci.NumRedelivered == 0 {
		// As it is, with this source's settings (AckWait, MaxAckPending);
		// where it starts cannot change.
		cfg := r.src.consumerConfig(r.part, 0)
		cfg.Description = r.consDesc
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = ci.Config.DeliverPolicy, ci.Config.OptStartSeq, ci.Config.OptStartTime
		if r.cons, err = r.str.CreateOrUpdateConsumer(r.ctx, cfg); err != nil {
			return r.errorf("updating durable consumer %q: %w", r.part.durable, err)
		}
		return nil
	}
	return r.remakeDurable(floor, "its ack floor")
}

// remakeDurable deletes the split's durable consumer, if any, and makes it
// again to start after stream sequence after (0: where the source starts);
// at names that place, for errors.
func (r *reader[T]) remakeDurable(after uint64, at string) error {
	if err := r.str.DeleteConsumer(r.ctx, r.part.durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return r.errorf("durable consumer %q: making it again at %s (stream sequence %d): %w", r.part.durable, at, after, err)
	}
	return r.newConsumer(after)
}

// newConsumer creates the split's consumer, an ephemeral one starting
// after stream sequence after when that is not zero.
func (r *reader[T]) newConsumer(after uint64) error {
	cfg := r.src.consumerConfig(r.part, after)
	cfg.Description = r.consDesc
	var err error
	if r.part.durable != "" {
		r.cons, err = r.str.CreateOrUpdateConsumer(r.ctx, cfg)
	} else {
		r.cons, err = r.str.CreateConsumer(r.ctx, cfg)
		r.nextCons = 1
	}
	if err != nil {
		return r.errorf("creating consumer: %w", err)
	}
	return nil
}

func (r *reader[T]) Read(buf []T) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	if r.nc == nil {
		return 0, r.errorf("read after close")
	}
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if !r.checkpointing {
		if err := r.ack(); err != nil {
			return 0, err
		}
	} else if r.part.durable != "" && len(r.acks) >= r.src.cfg.maxAckPending {
		return 0, stages.ErrNoData // the server delivers no more until a checkpoint completes
	}
	want := len(buf)
	if r.src.cfg.stopAfter > 0 {
		want = min(want, int(r.src.cfg.stopAfter-r.read))
	}
	if r.part.durable != "" {
		want = min(want, r.src.cfg.maxAckPending/2)
	}
	n, err := r.fetch(buf[:want], false)
	if err == nil && n == 0 && !r.done {
		if r.src.cfg.untilEmpty {
			// The consumer has nothing to deliver right now: every message
			// up to the bound has been read, unless what it delivered was
			// only messages handed over already (then ErrNoData: the next
			// read asks again).
			r.done = !r.again
		} else if n, err = r.fetch(buf[:1], true); err == nil && n > 0 && !r.done && want > 1 {
			var m int
			m, err = r.fetch(buf[n:want], false)
			n += m
		}
	}
	if r.src.cfg.stopAfter > 0 && r.read >= r.src.cfg.stopAfter {
		r.done = true
	}
	switch {
	case err != nil:
		return n, err
	case r.done:
		return n, io.EOF
	case n == 0:
		return 0, stages.ErrNoData
	}
	return n, nil
}

// fetch reads up to len(dst) messages into dst: those available now, or
// when wait is set, those that arrive within FetchWait (used for one). It
// creates a new ephemeral consumer when the old one is gone or lost a
// message, and tries again.
func (r *reader[T]) fetch(dst []T, wait bool) (int, error) {
	for attempt := 0; ; attempt++ {
		n, reset, err := r.fetchOnce(dst, wait)
		if err != nil || !reset {
			return n, err
		}
		if err := r.newConsumer(r.cursor); err != nil {
			return n, err
		}
		if n > 0 || attempt >= 2 {
			return n, nil
		}
	}
}

// fetchOnce makes one pull request. reset reports that the ephemeral
// consumer must be created again (after r.cursor).
func (r *reader[T]) fetchOnce(dst []T, wait bool) (n int, reset bool, err error) {
	durable := r.part.durable != ""
	r.again = false
	var batch jetstream.MessageBatch
	if wait {
		batch, err = r.cons.Fetch(len(dst), jetstream.FetchMaxWait(r.src.cfg.fetchWait))
	} else {
		batch, err = r.cons.FetchNoWait(len(dst))
	}
	if err != nil {
		if !durable && consumerGone(err) {
			return 0, true, nil
		}
		return 0, false, r.errorf("fetching: %w", err)
	}
	var bad error
	// Drain the batch whatever happens, so that its goroutine ends.
	for msg := range batch.Messages() {
		if bad != nil || reset || n == len(dst) {
			continue // not handed over: a durable consumer delivers it again
		}
		md, err := msg.Metadata()
		if err != nil {
			bad = r.errorf("subject %s: reading message metadata: %w", msg.Subject(), err)
			continue
		}
		seq := md.Sequence.Stream
		if durable && r.checkpointing && seq <= r.cursor {
			// Delivered again (AckWait passed before the checkpoint that
			// acknowledges it completed): handed over already.
			r.acks = append(r.acks, msg)
			r.again = true
			continue
		}
		if !durable {
			if md.Sequence.Consumer != r.nextCons {
				reset = true // a message was lost on the way: start again after the cursor
				continue
			}
			r.nextCons++
		}
		if r.done || r.src.cfg.untilEmpty && seq > r.lastSeq {
			r.done = true
			if durable {
				_ = msg.Nak() // beyond the bound: for the next reader; AckWait covers a lost Nak
			}
			continue
		}
		v, err := r.src.decode(Message{Stream: md.Stream, Subject: msg.Subject(), Sequence: seq,
			Time: md.Timestamp, Header: msg.Headers(), Data: msg.Data()})
		if err != nil {
			bad = &MessageError{Stream: md.Stream, Subject: msg.Subject(), Sequence: seq, Err: err}
			continue
		}
		dst[n] = v
		n++
		r.read++
		r.cursor = seq
		if durable {
			r.acks = append(r.acks, msg)
		}
		if r.src.cfg.untilEmpty && (seq >= r.lastSeq || md.NumPending == 0) {
			r.done = true
		}
	}
	if bad != nil {
		return n, false, bad
	}
	if err := batch.Error(); err != nil {
		switch {
		case !durable && consumerGone(err):
			reset = true
		case transient(err):
		default:
			return n, false, r.errorf("fetching: %w", err)
		}
	}
	return n, reset, nil
}

// consumerGone reports an error of a pull request to a consumer that no
// longer exists.
func consumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, natsgo.ErrNoResponders)
}

// Transient implements stages.TransientErrors for the errors of Open and
// of a reader that cannot go on, after which opening the split again may
// work: no server reachable (refused, reset, not yet back from a restart),
// a server shutting down, a request that timed out. The runtime retries
// them with a backoff, opening the split again only while none of its
// records have gone on: an ephemeral consumer starts again from the start
// position, and a durable one from the server's position.
func (s *source[T]) Transient(err error) bool {
	if badMessage(err) || errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	return transient(err) || errors.Is(err, natsgo.ErrNoServers) || errors.Is(err, natsgo.ErrConnectionClosed) ||
		errors.Is(err, natsgo.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.As(err, &ne) && ne.Timeout()
}

// Transient implements stages.TransientErrors for the errors after which
// the reader can be read again where it stopped, its connection being
// open: a pull request that timed out or met a leader change or a server
// restarting in a cluster, a connection reconnecting, an acknowledgement
// that failed (the reader keeps it to send again). The records it returned
// with the error are the next ones of the split: the runtime keeps them.
func (r *reader[T]) Transient(err error) bool {
	if badMessage(err) || errors.Is(err, context.Canceled) || r.nc == nil || r.nc.IsClosed() {
		return false
	}
	return transient(err) || errors.Is(err, natsgo.ErrNoResponders) ||
		errors.Is(err, context.DeadlineExceeded) && r.ctx.Err() == nil
}

// badMessage reports a message that does not decode: never transient.
func badMessage(err error) bool {
	var me *MessageError
	return errors.As(err, &me)
}

// transient reports an error after which the next pull request may work.
func transient(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerLeadershipChanged) || errors.Is(err, jetstream.ErrServerShutdown) ||
		errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, natsgo.ErrTimeout) ||
		errors.Is(err, natsgo.ErrConnectionReconnecting)
}

// ack acknowledges the records handed over so far.
func (r *reader[T]) ack() error {
	if err := ackEach(r.acks); err != nil {
		return r.errorf("%w", err)
	}
	r.acks = r.acks[:0]
	return nil
}

// ackEach acknowledges ms, up to the first that fails; acknowledging the
// same messages again after that does no harm.
func ackEach(ms []jetstream.Msg) error {
	for _, m := range ms {
		if err := m.Ack(); err != nil {
			return fmt.Errorf("acknowledging stream sequence %d: %w", seqOf(m), err)
		}
	}
	return nil
}

func seqOf(m jetstream.Msg) uint64 {
	if md, err := m.Metadata(); err == nil {
		return md.Sequence.Stream
	}
	return 0
}

// Close acknowledges the last records when the split has ended (else the
// runtime may not have taken them: the server delivers them again), removes
// an ephemeral consumer and closes the connection.
func (r *reader[T]) Close() error {
	if r.nc == nil {
		return nil
	}
	var err error
	if r.done && len(r.acks) > 0 && !r.checkpointing {
		// Acknowledge the last one synchronously: the server handles a
		// consumer's acknowledgements in order, so when it confirms the
		// last, the position is durable and a reader opened next starts
		// after it.
		last := r.acks[len(r.acks)-1]
		r.acks = r.acks[:len(r.acks)-1]
		if err = r.ack(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), r.src.cfg.requestTimeout)
			if aerr := last.DoubleAck(ctx); aerr != nil {
				err = r.errorf("acknowledging stream sequence %d: %w", seqOf(last), aerr)
			}
			cancel()
		}
	}
	if r.part.durable == "" && r.cons != nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.src.cfg.requestTimeout)
		_ = r.str.DeleteConsumer(ctx, r.cons.CachedInfo().Name) // it goes inactive anyway
		cancel()
	}
	r.nc.Close()
	r.nc = nil
	r.acks = nil
	return err
}
