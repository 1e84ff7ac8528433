// Package plan turns the logical graph that stages builds into a physical
// plan: which stages fuse into one operator, how many instances each operator
// has, and how records move between them. It also holds the type-erased
// operator specs that stages makes from typed user functions and that core
// executes.
//
// # The data-plane contract
//
// Records move in a *Batch: a typed slice ([]T, held as any) plus, when the
// stream has event time, one timestamp per record (unix nanoseconds). A batch
// is read-only once sent: every operator builds new batches for its outputs,
// so one batch may be shared by several receivers (broadcast) without copies.
// In one process batches pass by pointer.
//
// Side outputs (dead letters, late records) are first-class outputs of an
// operator, not logs: a node's outputs are numbered ports, port 0 the main
// stream and ports 1.. its side outputs, each a stream with its own record
// type that later stages consume like any other (an Input names the port it
// reads). Only port 0 is built so far; the dead-letter and late-record work
// adds the others on this contract.
//
// Sources declare splits, a size estimate and a record total; the runtime
// gathers these facts (I/O) before planning and hands them to Build as data.
//
// Sinks have a lifecycle tied to the job: Open per instance, Write per batch,
// Prepare when input ends, then Commit on every instance once all instances
// have prepared, or Abort when the job fails or is cancelled.
//
// Read-only state shared by all instances of an operator in one process (a
// broadcast hash table) is built once per process through Instance.Shared.
//
// Timers are set on the injected clock by the runtime; core operators never
// read the time themselves.
package plan

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/sluice-data/sluice/codec"
)

// Batch is a run of records of one type.
type Batch struct {
	// Data is a []T for the stream's record type T.
	Data any
	// Times holds the event time of each record in unix nanoseconds, or is nil
	// when the records carry no event time.
	Times []int64
	// Port is set by a stateful node on a batch it emits to its side output
	// Port (late records) rather than to its main output.
	Port int
}

// Type is the type-erased view of a record type T, built by stages.
type Type struct {
	Name string
	// Size estimates the in-memory bytes of one record.
	Size int
	// New returns an empty []T with the given capacity.
	New func(capacity int) any
	// Len returns len of a []T.
	Len func(data any) int
	// Append appends src[i:j] to dst and returns the result (both []T).
	Append func(dst, src any, i, j int) any
	// Slice returns data[i:j] of a []T, sharing memory.
	Slice func(data any, i, j int) any
	// Format renders record i of data for error messages.
	Format func(data any, i int) string
	// Explain, for a T that implements Explained, gives record i's
	// Explain (nil otherwise): what a stage that set it aside shows.
	Explain func(data any, i int) (record, rule string)
	// Wire returns the codec of T's batches on the network (package codec's
	// encoding), made at its first call; its error (wrapping
	// codec.ErrUnsupported) names what T holds that has no encoding.
	Wire func() (WireCodec, error)
}

// WireCodec encodes batches of one record type T without its caller
// knowing T: what Type is to memory, a WireCodec is to the network. It is
// safe for concurrent use.
type WireCodec interface {
	// Type names T in errors, e.g. "examples.OrderUser".
	Type() string
	// Fingerprint identifies T's encoded schema (codec.Fingerprint).
	Fingerprint() codec.Fingerprint
	// AppendBatch appends data, a []T, to dst as codec.AppendBatch does:
	// the header with the fingerprint, the row count, the rows. Data of
	// another type, or a value the codec cannot encode, is an error.
	AppendBatch(dst []byte, data any) ([]byte, error)
	// DecodeBatch decodes a batch that fills src into a new []T and
	// returns it with its length. Data of another fingerprint is a
	// *codec.MismatchError naming T; corrupt data wraps codec.ErrCorrupt.
	DecodeBatch(src []byte) (data any, rows int, err error)
}

type wireCodec[T any] struct{ c codec.Codec[T] }

func (b wireCodec[T]) Type() string                   { return b.c.Type() }
func (b wireCodec[T]) Fingerprint() codec.Fingerprint { return b.c.Fingerprint() }

func (b wireCodec[T]) AppendBatch(dst []byte, data any) (out []byte, err error) {
	rows, ok := data.([]T)
	if !ok {
		return dst, fmt.Errorf("a batch of %T on an edge of []%s", data, b.c.Type())
	}
	// codec's Append panics on a value nested past codec.MaxDepth (a
	// cycle) or a failing MarshalBinary: that is the user's value, so it
	// becomes an error here, at the boundary.
	defer func() {
		if r := recover(); r != nil {
			out, err = dst, fmt.Errorf("encoding a batch of %s: %v", b.c.Type(), r)
		}
	}()
	return codec.AppendBatch(dst, b.c, rows), nil
}

func (b wireCodec[T]) DecodeBatch(src []byte) (any, int, error) {
	rows, err := codec.DecodeBatch(src, b.c, nil)
	if err != nil {
		return nil, 0, err
	}
	return rows, len(rows), nil
}

// TypeOf returns the Type of T.
func TypeOf[T any]() *Type {
	var zero T
	var explain func(any, int) (string, string)
	if _, ok := any(zero).(Explained); ok {
		explain = func(d any, i int) (string, string) { return any(d.([]T)[i]).(Explained).Explain() }
	}
	return &Type{
		Explain: explain,
		Name:    fmt.Sprintf("%T", zero),
		Size:    int(unsafe.Sizeof(zero)),
		New:     func(n int) any { return make([]T, 0, n) },
		Len:     func(d any) int { return len(d.([]T)) },
		Append: func(dst, src any, i, j int) any {
			return append(dst.([]T), src.([]T)[i:j]...)
		},
		Slice: func(d any, i, j int) any { return d.([]T)[i:j] },
		Format: func(d any, i int) string {
			s := fmt.Sprintf("%+v", d.([]T)[i])
			if len(s) > 200 {
				s = s[:200] + "…"
			}
			return s
		},
		Wire: sync.OnceValues(func() (WireCodec, error) {
			c, err := codec.For[T]()
			if err != nil {
				return nil, err
			}
			return wireCodec[T]{c}, nil
		}),
	}
}

// Count returns the number of records in b (zero for nil).
func (t *Type) Count(b *Batch) int {
	if b == nil || b.Data == nil {
		return 0
	}
	return t.Len(b.Data)
}

// Bytes estimates the in-memory size of b.
func (t *Type) Bytes(b *Batch) int64 { return int64(t.Count(b)) * int64(t.Size) }
