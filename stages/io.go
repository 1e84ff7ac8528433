package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/sluice-data/sluice/plan"
)

// Split is one independently readable part of a source.
type Split = plan.Split

// Instance identifies one instance of a stage to sources and sinks.
type Instance = plan.Instance

// Source is a bounded source of records of type T. Connectors implement it.
type Source[T any] interface {
	// Splits lists the source's splits, with their sizes where known. The
	// runtime calls it once, before planning.
	Splits(ctx context.Context) ([]Split, error)
	// Open opens one split for reading.
	Open(ctx context.Context, inst Instance, s Split) (Reader[T], error)
}

// Reader reads the records of one split.
type Reader[T any] interface {
	// Read fills buf from the front and returns how many records it wrote;
	// it returns io.EOF (possibly with n > 0) at the end of the split. Any
	// other error fails the job, records returned with it included, except
	// ErrNoData (see there); (0, nil) is an error too. A panic fails the job
	// with the split named.
	Read(buf []T) (n int, err error)
	Close() error
}

// ErrNoData is returned by a Reader of an unbounded source (a broker) that
// has no records right now: the runtime asks again after a short wait (the
// linger) and, when a source instance stays quiet past its idle timeout,
// marks it idle so that its silence does not hold back the watermark.
var ErrNoData = plan.ErrNoData

// TransientErrors is implemented by a Source, and by a Reader, whose
// connector knows which of its errors may pass if the call is made again (a
// connection reset, a timeout, an object store's 5xx); the runtime retries
// those under its retry policy (actors.RetryPolicy: attempts, with a
// doubling backoff on the job's clock) and fails the job on any other.
//
// On the Source, Transient classifies the errors of Open and of its
// Readers' Read after which the split can be opened again: the runtime
// closes the reader and opens the split anew, which reads it from its
// start, so it does so only while none of the split's records have gone on;
// a split that has emitted records fails the job instead, naming it. A
// Reader that implements Transient itself can resume: after an error it
// classifies as transient, Read is called again on the same reader, which
// goes on where it stopped, and any records returned with the error are
// kept. A reader that cannot resume mid-split must not implement it.
//
// Transient must be cheap and safe to call from any goroutine; it is called
// only for errors other than io.EOF and ErrNoData.
type TransientErrors interface {
	Transient(err error) bool
}

// transientError marks an error that a source's connector declared
// transient, for the runtime, which sees only plan.Reader: it retries an
// error with a Resumable method.
type transientError struct {
	err       error
	resumable bool // the reader declared it: Read may be called again
}

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() error   { return e.err }
func (e *transientError) Resumable() bool { return e.resumable }

// markTransient marks err when the reader r (resumable) or the source src
// declares it transient.
func markTransient(err error, r, src any) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, ErrNoData) {
		return err
	}
	if t, ok := r.(TransientErrors); ok && t.Transient(err) {
		return &transientError{err: err, resumable: true}
	}
	if t, ok := src.(TransientErrors); ok && t.Transient(err) {
		return &transientError{err: err}
	}
	return err
}

// Read adds a source stage.
func Read[T any](p *Pipeline, src Source[T], opts ...SourceOption) Stream[T] {
	loc := caller()
	if src == nil {
		p.fail(loc, "read: nil source")
	}
	n := p.addNode(loc, &plan.Node{Kind: plan.KindSource, Op: "source", Out: plan.TypeOf[T]()}, applyOptions(opts))
	wrap := func(r Reader[T], err error) (plan.Reader, error) {
		if err != nil {
			return nil, markTransient(err, nil, src)
		}
		return newBatchReader(r, src), nil
	}
	n.Source = &plan.SourceSpec{
		Discover: func(ctx context.Context) ([]plan.Split, error) { return src.Splits(ctx) },
		Open: func(ctx context.Context, inst plan.Instance, s plan.Split) (plan.Reader, error) {
			return wrap(src.Open(ctx, inst, s))
		},
	}
	if sk, ok := src.(Seeker[T]); ok {
		n.Source.OpenAt = func(ctx context.Context, inst plan.Instance, s plan.Split, pos []byte) (plan.Reader, error) {
			return wrap(sk.OpenAt(ctx, inst, s, pos))
		}
	}
	return Stream[T]{p: p, node: n}
}

// Positioner is a Reader that can say where it is, for a checkpoint: the
// position, in the source's own encoding, where its next Read starts. A
// Source whose readers have positions implements Seeker, so that recovery
// reopens a split there instead of reading it again up to where it was.
type Positioner interface {
	Position() ([]byte, error)
}

// Acknowledger is a Positioner whose source acknowledges what it read
// once the job has made it durable (a broker's consumer): in a job that
// checkpoints, PositionAt(id) is called at checkpoint id's barrier in
// place of Position, and Acknowledge(id) once checkpoint id has completed;
// Acknowledge(0) covers everything read. See plan.Acknowledger.
type Acknowledger interface {
	Positioner
	PositionAt(id uint64) ([]byte, error)
	Acknowledge(id uint64) error
}

// Seeker is a Source that opens a split at a position its Reader's
// Position returned.
type Seeker[T any] interface {
	OpenAt(ctx context.Context, inst Instance, s Split, pos []byte) (Reader[T], error)
}

func newBatchReader[T any](r Reader[T], src Source[T]) plan.Reader {
	b := &batchReader[T]{r: r, src: src}
	if _, ok := r.(Acknowledger); ok {
		return acknowledgingReader[T]{positionedReader[T]{b}}
	}
	if _, ok := r.(Positioner); ok {
		return positionedReader[T]{b}
	}
	return b
}

// acknowledgingReader is a batchReader whose reader acknowledges.
type acknowledgingReader[T any] struct{ positionedReader[T] }

func (a acknowledgingReader[T]) PositionAt(id uint64) ([]byte, error) {
	return a.r.(Acknowledger).PositionAt(id)
}

func (a acknowledgingReader[T]) Acknowledge(id uint64) error {
	return a.r.(Acknowledger).Acknowledge(id)
}

// positionedReader is a batchReader whose reader has positions.
type positionedReader[T any] struct{ *batchReader[T] }

func (p positionedReader[T]) Position() ([]byte, error) { return p.r.(Positioner).Position() }

type batchReader[T any] struct {
	r   Reader[T]
	src Source[T]
	buf []T // kept across reads that return nothing (polls of a broker)
}

func (b *batchReader[T]) Read(max int) (*plan.Batch, error) {
	if cap(b.buf) < max {
		b.buf = make([]T, max)
	}
	buf := b.buf[:max]
	n, err := b.r.Read(buf)
	err = markTransient(err, b.r, b.src)
	if n == 0 {
		if err == nil {
			err = fmt.Errorf("stages: reader returned no records and no error")
		}
		return nil, err
	}
	b.buf = nil // the batch owns it now
	return &plan.Batch{Data: buf[:n]}, err
}

func (b *batchReader[T]) Close() error { return b.r.Close() }

// FromSlice adds a source that reads xs, split in chunks so that several
// instances can share it.
func FromSlice[T any](p *Pipeline, xs []T, opts ...SourceOption) Stream[T] {
	return Read[T](p, sliceSource[T](xs), opts...)
}

type sliceSource[T any] []T

func (s sliceSource[T]) Splits(context.Context) ([]Split, error) {
	size := max(1024, (len(s)+63)/64)
	var out []Split
	for i := 0; i < len(s); i += size {
		j := min(i+size, len(s))
		out = append(out, Split{Index: len(out), Records: int64(j - i), Bytes: -1,
			Desc: fmt.Sprintf("slice[%d:%d]", i, j), Data: [2]int{i, j}})
	}
	return out, nil
}

func (s sliceSource[T]) Open(_ context.Context, _ Instance, sp Split) (Reader[T], error) {
	r := sp.Data.([2]int)
	return &sliceReader[T]{xs: s[r[0]:r[1]]}, nil
}

type sliceReader[T any] struct{ xs []T }

func (r *sliceReader[T]) Read(buf []T) (int, error) {
	n := copy(buf, r.xs)
	r.xs = r.xs[n:]
	if len(r.xs) == 0 {
		return n, io.EOF
	}
	return n, nil
}

func (r *sliceReader[T]) Close() error { return nil }

// Writer writes one sink instance's records under the sink lifecycle: Write
// for each batch, Prepare when input ends, Commit once every instance has
// prepared, Abort if the job fails or is cancelled (also after Prepare).
type Writer[T any] interface {
	Write(recs []T) error
	Prepare() error
	Commit() error
	Abort() error
}

// Reverter is a Writer whose Commit can be undone (see plan.Reverter): a
// failed job whose other commits had succeeded asks it to delete what it
// published. Writers without it leave their committed output in place, and
// the job's error says so.
type Reverter interface {
	Revert() error
}

// ErrNotReverted is returned for a committed writer that cannot undo its
// commit when the job fails afterwards.
var ErrNotReverted = errors.New("committed output cannot be reverted and stays published")

// Sink opens a writer per instance. Connectors implement it.
type Sink[T any] interface {
	Open(ctx context.Context, inst Instance) (Writer[T], error)
}

// Checkpointer is a Writer whose output can be rolled back to a checkpoint
// (plan.SinkCheckpointer): at a checkpoint's barrier Checkpoint makes what
// was written durable, not visible, and describes it; Detach lets go of
// the writer when the job rolls back, leaving that for Reopen.
type Checkpointer interface {
	Checkpoint(id uint64) ([]byte, error)
	Detach() error
}

// Reopener is a Sink whose writers are Checkpointers: when a job recovers
// from a checkpoint, Reopen opens instance inst's writer at what its
// Checkpoint returned there, discarding whatever was written after. A job
// with checkpoints recovers only if every sink is a Reopener; its output
// is then exactly that of a run without the failure.
type Reopener[T any] interface {
	Reopen(ctx context.Context, inst Instance, state []byte) (Writer[T], error)
}

// JobCommitter is a Sink with a job-level commit, run once after every
// instance has committed: a _SUCCESS marker, a manifest.
type JobCommitter interface {
	CommitJob(ctx context.Context, inst Instance) error
}

// JobFinisher is a Sink that holds something for the whole job (an
// output's lease): FinishJob runs once when the job has ended, after every
// commit, abort and revert, with failed telling whether the job failed.
// An error is reported but does not fail a job that committed.
type JobFinisher interface {
	FinishJob(ctx context.Context, inst Instance, failed bool) error
}

// JobSuspender is a Sink whose output can wait for a later process: when
// the job stops at a checkpoint to be restored (a graceful stop),
// SuspendJob runs once instead of its commits and FinishJob; it releases
// what the sink holds and keeps what it staged, which the restored run's
// writers take back (Reopener).
type JobSuspender interface {
	SuspendJob(ctx context.Context, inst Instance)
}

// Write adds a sink stage.
func Write[T any](s Stream[T], sink Sink[T], opts ...SinkOption) {
	loc := caller()
	check(loc, "write", s, sink == nil)
	addSink(s, loc, "sink", sink, opts)
}

// AtLeastOnce makes a sink that cannot take its output back (NATS,
// Redis, a custom Sink that is not a Reopener) recover and stop at
// checkpoints: when a job recovers or is restored, its writers are opened
// afresh and see the records after the checkpoint a second time. Use it
// where writing a record twice is harmless: writes by key (Redis), or
// de-duplicated downstream (NATS with a message ID derived from the
// record). A job with checkpoints and such a sink not wrapped fails
// instead of recovering, naming the sink.
func AtLeastOnce[T any](sink Sink[T]) Sink[T] { return atLeastOnce[T]{sink} }

type atLeastOnce[T any] struct{ Sink[T] }

func addSink[T any](s Stream[T], loc, op string, sink Sink[T], opts []SinkOption) *plan.Node {
	n := s.p.addNode(loc, &plan.Node{Kind: plan.KindSink, Op: op, Out: plan.TypeOf[T](),
		Inputs: []plan.Input{s.input()}}, applyOptions(opts))
	again, wrapped := sink.(atLeastOnce[T])
	if wrapped {
		sink = again.Sink
	}
	_, retry := sink.(funcSink[T])
	wrap := func(w Writer[T], err error) (plan.SinkWriter, error) {
		if err != nil {
			return nil, err
		}
		return wrapWriter(&batchWriter[T]{w: w, n: n, retry: retry})
	}
	n.Sink = &plan.SinkSpec{Open: func(ctx context.Context, inst plan.Instance) (plan.SinkWriter, error) {
		return wrap(sink.Open(ctx, inst))
	}}
	if ro, ok := sink.(Reopener[T]); ok {
		n.Sink.Reopen = func(ctx context.Context, inst plan.Instance, state []byte) (plan.SinkWriter, error) {
			return wrap(ro.Reopen(ctx, inst, state))
		}
	} else if wrapped {
		n.Sink.Reopen = func(ctx context.Context, inst plan.Instance, _ []byte) (plan.SinkWriter, error) {
			return wrap(sink.Open(ctx, inst))
		}
	}
	if jc, ok := sink.(JobCommitter); ok {
		n.Sink.CommitJob = jc.CommitJob
	}
	if jf, ok := sink.(JobFinisher); ok {
		n.Sink.FinishJob = jf.FinishJob
	}
	if js, ok := sink.(JobSuspender); ok {
		n.Sink.SuspendJob = js.SuspendJob
	}
	return n
}

type batchWriter[T any] struct {
	w Writer[T]
	n *plan.Node
	// retry lets a panic restart the instance and pass the batch again
	// (ForEach); a connector's writer may have written part of the batch,
	// so its panic fails the job instead.
	retry bool
}

func (b *batchWriter[T]) Write(batch *plan.Batch) (err error) {
	xs := batch.Data.([]T)
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if b.retry {
			repanic(r, b.n, xs, -1)
		}
		err = fmt.Errorf("sink %s (%s) panicked: %v", b.n, b.n.Loc, r)
	}()
	return b.w.Write(xs)
}
func (b *batchWriter[T]) Prepare() error { return b.w.Prepare() }
func (b *batchWriter[T]) Commit() error  { return b.w.Commit() }
func (b *batchWriter[T]) Abort() error   { return b.w.Abort() }

func (b *batchWriter[T]) Revert() error {
	if r, ok := b.w.(Reverter); ok {
		return r.Revert()
	}
	return ErrNotReverted
}

// wrapWriter gives the runtime a writer that checkpoints when b's does.
func wrapWriter[T any](b *batchWriter[T]) (plan.SinkWriter, error) {
	if _, ok := b.w.(Publisher); ok {
		return publishWriter[T]{checkpointWriter[T]{b}}, nil
	}
	if _, ok := b.w.(Checkpointer); ok {
		return checkpointWriter[T]{b}, nil
	}
	return b, nil
}

// Publisher is a Checkpointer whose output becomes visible as checkpoints
// complete (plan.CheckpointPublisher): Completed(id) publishes what was
// written before checkpoint id's barrier.
type Publisher interface {
	Checkpointer
	Completed(id uint64) error
}

// publishWriter is a batchWriter whose writer is a Publisher.
type publishWriter[T any] struct{ checkpointWriter[T] }

func (p publishWriter[T]) Completed(id uint64) error { return p.w.(Publisher).Completed(id) }

// checkpointWriter is a batchWriter whose writer is a Checkpointer.
type checkpointWriter[T any] struct{ *batchWriter[T] }

func (c checkpointWriter[T]) Checkpoint(id uint64) ([]byte, error) {
	return c.w.(Checkpointer).Checkpoint(id)
}

func (c checkpointWriter[T]) Detach() error { return c.w.(Checkpointer).Detach() }

// ForEach adds a sink that calls f for every record. f sees each record at
// least once: a batch retried after a panic is passed again.
func ForEach[T any](s Stream[T], f func(T) error, opts ...SinkOption) {
	loc := caller()
	check(loc, "foreach", s, f == nil)
	addSink(s, loc, "foreach", funcSink[T](f), opts)
}

type funcSink[T any] func(T) error

func (f funcSink[T]) Open(context.Context, Instance) (Writer[T], error) { return funcWriter[T](f), nil }

// Reopen implements Reopener: f sees the records after the checkpoint
// again (at least once, as after a retried panic).
func (f funcSink[T]) Reopen(context.Context, Instance, []byte) (Writer[T], error) {
	return funcWriter[T](f), nil
}

type funcWriter[T any] func(T) error

func (f funcWriter[T]) Write(xs []T) error {
	for _, x := range xs {
		if err := f(x); err != nil {
			return err
		}
	}
	return nil
}
func (funcWriter[T]) Prepare() error { return nil }
func (funcWriter[T]) Commit() error  { return nil }
func (funcWriter[T]) Abort() error   { return nil }

// Revert has nothing to undo: f saw each record as it passed.
func (funcWriter[T]) Revert() error { return nil }

// Checkpoint has nothing to keep: f has seen the records.
func (funcWriter[T]) Checkpoint(uint64) ([]byte, error) { return []byte("at least once"), nil }
func (funcWriter[T]) Detach() error                     { return nil }

// Collection gathers a stream's records in memory, for tests and small
// results. Records become visible when the job commits.
type Collection[T any] struct {
	mu    sync.Mutex
	parts [][]T // each commit's records; a reverted commit's is nil
	// latest is each instance's latest writer, whose records a reopen
	// after a recovery takes up to the checkpoint's count.
	latest map[int]*collectWriter[T]
}

// Collect adds a sink that gathers s into the returned Collection.
func Collect[T any](s Stream[T], opts ...SinkOption) *Collection[T] {
	loc := caller()
	check(loc, "collect", s, false)
	c := &Collection[T]{}
	addSink(s, loc, "collect", c, opts)
	return c
}

// Values returns the records committed so far, in no fixed order across
// instances.
func (c *Collection[T]) Values() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []T
	for _, p := range c.parts {
		out = append(out, p...)
	}
	return out
}

// Open implements Sink.
func (c *Collection[T]) Open(_ context.Context, inst Instance) (Writer[T], error) {
	w := &collectWriter[T]{c: c, part: -1}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.latest == nil {
		c.latest = map[int]*collectWriter[T]{}
	}
	c.latest[inst.Index] = w
	return w, nil
}

// Reopen implements Reopener: the instance's records up to the
// checkpoint's count are kept, those after it dropped.
func (c *Collection[T]) Reopen(ctx context.Context, inst Instance, state []byte) (Writer[T], error) {
	n, err := strconv.Atoi(string(state))
	c.mu.Lock()
	old := c.latest[inst.Index]
	c.mu.Unlock()
	if err != nil || old == nil || n > len(old.buf) {
		return nil, fmt.Errorf("stages: collect %s: cannot reopen at %q: the collection does not hold those records", inst, state)
	}
	w, _ := c.Open(ctx, inst)
	w.(*collectWriter[T]).buf = slices.Clone(old.buf[:n])
	return w, nil
}

type collectWriter[T any] struct {
	c    *Collection[T]
	buf  []T
	part int // this writer's commit in c.parts, or -1
}

func (w *collectWriter[T]) Write(xs []T) error { w.buf = append(w.buf, xs...); return nil }
func (w *collectWriter[T]) Prepare() error     { return nil }
func (w *collectWriter[T]) Commit() error {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	w.part = len(w.c.parts)
	w.c.parts = append(w.c.parts, w.buf)
	w.buf = nil
	return nil
}
func (w *collectWriter[T]) Abort() error { w.buf = nil; return nil }

func (w *collectWriter[T]) Checkpoint(uint64) ([]byte, error) {
	return strconv.AppendInt(nil, int64(len(w.buf)), 10), nil
}
func (w *collectWriter[T]) Detach() error { return nil }

// Revert takes the committed records back out of the collection.
func (w *collectWriter[T]) Revert() error {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	if w.part >= 0 && w.part < len(w.c.parts) {
		w.c.parts[w.part] = nil
	}
	w.part = -1
	return nil
}

// Sequence adds a source of the integers [start, end), in splits of equal
// size, like Beam's GenerateSequence and Flink's fromSequence.
func Sequence(p *Pipeline, start, end int64, opts ...SourceOption) Stream[int64] {
	if end < start {
		p.fail(caller(), "sequence: end %d before start %d", end, start)
		end = start
	}
	return Read[int64](p, sequence{start, end}, opts...)
}

type sequence struct{ start, end int64 }

func (s sequence) Splits(context.Context) ([]Split, error) {
	n := s.end - s.start
	size := max(1<<16, (n+127)/128)
	var out []Split
	for lo := s.start; lo < s.end; lo += size {
		hi := min(lo+size, s.end)
		out = append(out, Split{Index: len(out), Records: hi - lo, Bytes: 8 * (hi - lo),
			Desc: fmt.Sprintf("sequence[%d,%d)", lo, hi), Data: [2]int64{lo, hi}})
	}
	return out, nil
}

func (s sequence) Open(_ context.Context, _ Instance, sp Split) (Reader[int64], error) {
	r := sp.Data.([2]int64)
	return &sequenceReader{next: r[0], end: r[1]}, nil
}

type sequenceReader struct{ next, end int64 }

func (r *sequenceReader) Read(buf []int64) (int, error) {
	n := int(min(int64(len(buf)), r.end-r.next))
	for i := range buf[:n] {
		buf[i] = r.next + int64(i)
	}
	r.next += int64(n)
	if r.next >= r.end {
		return n, io.EOF
	}
	return n, nil
}

func (r *sequenceReader) Close() error { return nil }
