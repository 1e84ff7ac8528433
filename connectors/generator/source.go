package generator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unsafe"

	"github.com/sluice-data/sluice/stages"
)

// Rows returns the source of cfg's rows. An invalid cfg is reported when the
// runtime lists the source's splits (by sluice.Plan and sluice.Run, naming
// the stage), with every problem at once.
//
// Splits are contiguous row ranges with exact record counts. Each process
// builds the Zipf alias table once, on its first Open.
func Rows(cfg Config) stages.Source[Row] {
	return &rowSource{gen: newLazy(cfg)}
}

// Source returns a source of f applied to each of cfg's rows: synthetic
// records of the caller's own type (orders, users, events) in one stage.
// f must be a pure function of its row, so that records, like rows, do not
// depend on splits or instances, and must not panic.
func Source[T any](cfg Config, f func(Row) T) stages.Source[T] {
	return &funcSource[T]{gen: newLazy(cfg), f: f}
}

// Read adds a source stage of cfg's rows to p, named "generator" unless
// opts name it. An invalid cfg fails sluice.Plan and sluice.Run with an
// error naming the stage and wrapping ErrConfig.
func Read(p *stages.Pipeline, cfg Config, opts ...stages.SourceOption) stages.Stream[Row] {
	return stages.Read(p, Rows(cfg), append([]stages.SourceOption{stages.Name("generator")}, opts...)...)
}

// lazy validates a Config at once and builds its Generator on first use.
type lazy struct {
	cfg     Config
	invalid error // from Validate; immutable

	once sync.Once
	gen  *Generator
	err  error // from New, set once
}

func newLazy(cfg Config) *lazy { return &lazy{cfg: cfg, invalid: cfg.Validate()} }

func (l *lazy) get() (*Generator, error) {
	if l.invalid != nil {
		return nil, l.invalid
	}
	l.once.Do(func() { l.gen, l.err = New(l.cfg) })
	return l.gen, l.err
}

// splits lists the splits of l's rows, of recordBytes bytes each.
func (l *lazy) splits(recordBytes int64) ([]stages.Split, error) {
	if l.invalid != nil {
		return nil, l.invalid
	}
	n := l.cfg.splitCount()
	out := make([]stages.Split, n)
	for i := range n {
		lo, hi := splitRange(l.cfg.Rows, n, i)
		out[i] = stages.Split{Index: int(i), Records: hi - lo, Bytes: (hi - lo) * recordBytes,
			Desc: fmt.Sprintf("generator rows [%d, %d)", lo, hi), Data: rowRange{lo, hi}}
	}
	return out, nil
}

// rowRange is a split's rows [lo, hi).
type rowRange struct{ lo, hi int64 }

func (l *lazy) open(s stages.Split) (*Generator, rowRange, error) {
	g, err := l.get()
	if err != nil {
		return nil, rowRange{}, err
	}
	r, ok := s.Data.(rowRange)
	if !ok || r.lo < 0 || r.lo > r.hi || r.hi > l.cfg.Rows {
		return nil, rowRange{}, fmt.Errorf("generator: split %q is not one of this source's", s.Desc)
	}
	return g, r, nil
}

// openAt checks a position a reader of split s returned: the index of
// the next row, within the split.
func (l *lazy) openAt(s stages.Split, pos []byte) (*Generator, rowRange, error) {
	g, r, err := l.open(s)
	if err != nil {
		return nil, r, err
	}
	next, err := strconv.ParseInt(string(pos), 10, 64)
	if err != nil || next < r.lo || next > r.hi {
		return nil, r, fmt.Errorf("generator: position %q is not in split %q (rows %d..%d)", pos, s.Desc, r.lo, r.hi)
	}
	r.lo = next
	return g, r, nil
}

// position is a reader's position: the index of its next row.
func position(next int64) ([]byte, error) { return strconv.AppendInt(nil, next, 10), nil }

type rowSource struct{ gen *lazy }

func (s *rowSource) Splits(context.Context) ([]stages.Split, error) {
	return s.gen.splits(int64(unsafe.Sizeof(Row{})))
}

func (s *rowSource) Open(_ context.Context, _ stages.Instance, sp stages.Split) (stages.Reader[Row], error) {
	g, r, err := s.gen.open(sp)
	if err != nil {
		return nil, err
	}
	return &rowReader{g: g, next: r.lo, end: r.hi}, nil
}

// OpenAt implements stages.Seeker: rows are computed from their index, so
// a split opens at any row at once.
func (s *rowSource) OpenAt(_ context.Context, _ stages.Instance, sp stages.Split, pos []byte) (stages.Reader[Row], error) {
	g, r, err := s.gen.openAt(sp, pos)
	if err != nil {
		return nil, err
	}
	return &rowReader{g: g, next: r.lo, end: r.hi}, nil
}

// rowReader fills the caller's buffer in place.
type rowReader struct {
	g         *Generator
	next, end int64
}

func (r *rowReader) Read(buf []Row) (int, error) {
	n := int(min(int64(len(buf)), r.end-r.next))
	r.g.Fill(buf[:n], r.next)
	r.next += int64(n)
	if r.next == r.end {
		return n, io.EOF
	}
	return n, nil
}

func (r *rowReader) Close() error { return nil }

// Position implements stages.Positioner.
func (r *rowReader) Position() ([]byte, error) { return position(r.next) }

var errNilFunc = errors.New("generator: Source needs a function")

type funcSource[T any] struct {
	gen *lazy
	f   func(Row) T
}

func (s *funcSource[T]) Splits(context.Context) ([]stages.Split, error) {
	if s.f == nil {
		return nil, errNilFunc
	}
	var zero T
	return s.gen.splits(int64(unsafe.Sizeof(zero)))
}

func (s *funcSource[T]) Open(_ context.Context, _ stages.Instance, sp stages.Split) (stages.Reader[T], error) {
	if s.f == nil {
		return nil, errNilFunc
	}
	g, r, err := s.gen.open(sp)
	if err != nil {
		return nil, err
	}
	return &funcReader[T]{g: g, f: s.f, next: r.lo, end: r.hi}, nil
}

// OpenAt implements stages.Seeker.
func (s *funcSource[T]) OpenAt(_ context.Context, _ stages.Instance, sp stages.Split, pos []byte) (stages.Reader[T], error) {
	if s.f == nil {
		return nil, errNilFunc
	}
	g, r, err := s.gen.openAt(sp, pos)
	if err != nil {
		return nil, err
	}
	return &funcReader[T]{g: g, f: s.f, next: r.lo, end: r.hi}, nil
}

type funcReader[T any] struct {
	g         *Generator
	f         func(Row) T
	next, end int64
}

func (r *funcReader[T]) Read(buf []T) (int, error) {
	n := int(min(int64(len(buf)), r.end-r.next))
	for j := range buf[:n] {
		buf[j] = r.f(r.g.Row(r.next + int64(j)))
	}
	r.next += int64(n)
	if r.next == r.end {
		return n, io.EOF
	}
	return n, nil
}

func (r *funcReader[T]) Close() error { return nil }

// Position implements stages.Positioner.
func (r *funcReader[T]) Position() ([]byte, error) { return position(r.next) }
