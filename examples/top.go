package examples

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/sluice-data/sluice/stages"
	"github.com/sluice-data/sluice/window"
)

// ranking is the n records of greatest value of a stream, and how many
// records the stream had.
type ranking[K, V cmp.Ordered] struct {
	Records int64
	Top     []stages.KV[K, V] // greatest value first; equal values by key
}

// before orders a ranking: greater value first, then lesser key, so that
// every ranking is unique and merging is associative and commutative.
func before[K, V cmp.Ordered](a, b stages.KV[K, V]) bool {
	if a.Value != b.Value {
		return a.Value > b.Value
	}
	return a.Key < b.Key
}

// rank is a combiner keeping the n records of greatest value.
func rank[K, V cmp.Ordered](n int) stages.Combiner[stages.KV[K, V], ranking[K, V], ranking[K, V]] {
	lift := func(x stages.KV[K, V]) ranking[K, V] {
		return ranking[K, V]{Records: 1, Top: []stages.KV[K, V]{x}}
	}
	merge := func(a, b ranking[K, V]) ranking[K, V] {
		if len(a.Top) < len(b.Top) {
			a, b = b, a
		}
		// The common case: b has nothing that enters a full ranking.
		if len(a.Top) == n && (len(b.Top) == 0 || !before(b.Top[0], a.Top[n-1])) {
			return ranking[K, V]{Records: a.Records + b.Records, Top: a.Top}
		}
		top := make([]stages.KV[K, V], 0, min(n, len(a.Top)+len(b.Top)))
		x, y := a.Top, b.Top
		for len(top) < n && (len(x) > 0 || len(y) > 0) {
			if len(y) == 0 || len(x) > 0 && before(x[0], y[0]) {
				top, x = append(top, x[0]), x[1:]
			} else {
				top, y = append(top, y[0]), y[1:]
			}
		}
		return ranking[K, V]{Records: a.Records + b.Records, Top: top}
	}
	return stages.Combine("top", lift, merge, func(r ranking[K, V]) ranking[K, V] { return r })
}

// printTop ranks the records of s, one per key, by value, and prints the n
// greatest and the number of keys to standard output when the job commits:
//
//	100000 keys; the 10 with the greatest sum:
//	KEY    SUM
//	…
func printTop[K, V cmp.Ordered](s stages.Stream[stages.KV[K, V]], n int, keys, key, value string) {
	one := stages.KeyBy(s, func(stages.KV[K, V]) bool { return true })
	top := stages.Aggregate(one, window.Global(), rank[K, V](n), stages.Parallelism(1))
	stages.Write(top, printer[stages.KV[bool, ranking[K, V]]](func(w io.Writer, r stages.KV[bool, ranking[K, V]]) {
		writeTop(w, r.Value, keys, key, value)
	}), stages.Name("print"), stages.Parallelism(1))
}

// writeTop prints r as a table under a line that counts its records, and
// a blank line.
func writeTop[K, V cmp.Ordered](w io.Writer, r ranking[K, V], keys, key, value string) {
	fmt.Fprintf(w, "%d %s; the %d with the greatest %s:\n", r.Records, keys, len(r.Top), value)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\t%s\n", key, strings.ToUpper(value))
	for _, kv := range r.Top {
		fmt.Fprintf(tw, "%v\t%v\n", kv.Key, kv.Value)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// output is where printers print; tests replace it.
var output = func() io.Writer { return os.Stdout }

// printer is a sink that prints its records to standard output when the
// job commits, so that a job that fails or is cancelled prints nothing.
type printer[T any] func(w io.Writer, x T)

// Open implements stages.Sink.
func (p printer[T]) Open(_ context.Context, inst stages.Instance) (stages.Writer[T], error) {
	w := &printWriter[T]{print: p}
	if latest := printWriters[T](inst); latest != nil {
		latest.mu.Lock()
		latest.m[inst.Index] = w
		latest.mu.Unlock()
	}
	return w, nil
}

// Reopen implements stages.Reopener: after a recovery the instance's
// writer keeps the records it had buffered at the checkpoint.
func (p printer[T]) Reopen(ctx context.Context, inst stages.Instance, state []byte) (stages.Writer[T], error) {
	n, err := strconv.Atoi(string(state))
	latest := printWriters[T](inst)
	if err != nil || latest == nil {
		return nil, fmt.Errorf("printer %s: cannot reopen at %q", inst, state)
	}
	latest.mu.Lock()
	old := latest.m[inst.Index]
	latest.mu.Unlock()
	if old == nil || n > len(old.buf) {
		return nil, fmt.Errorf("printer %s: cannot reopen at %d records: it does not hold them", inst, n)
	}
	w, _ := p.Open(ctx, inst)
	w.(*printWriter[T]).buf = slices.Clone(old.buf[:n])
	return w, nil
}

// latestWriters holds each instance's latest writer of a printer, in the
// process.
type latestWriters[T any] struct {
	mu sync.Mutex
	m  map[int]*printWriter[T]
}

func printWriters[T any](inst stages.Instance) *latestWriters[T] {
	if inst.Shared == nil {
		return nil
	}
	v, _ := inst.Shared("examples.printer "+inst.Stage, func() (any, error) {
		return &latestWriters[T]{m: map[int]*printWriter[T]{}}, nil
	})
	return v.(*latestWriters[T])
}

type printWriter[T any] struct {
	print printer[T]
	buf   []T
}

// Checkpoint and Detach implement stages.Checkpointer: the records so far
// stay buffered.
func (w *printWriter[T]) Checkpoint(uint64) ([]byte, error) {
	return strconv.AppendInt(nil, int64(len(w.buf)), 10), nil
}
func (w *printWriter[T]) Detach() error { return nil }

func (w *printWriter[T]) Write(xs []T) error { w.buf = append(w.buf, xs...); return nil }
func (w *printWriter[T]) Prepare() error     { return nil }
func (w *printWriter[T]) Abort() error       { w.buf = nil; return nil }
func (w *printWriter[T]) Commit() error {
	out := output()
	for _, x := range w.buf {
		w.print(out, x)
	}
	w.buf = nil
	return nil
}
