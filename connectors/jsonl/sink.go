package jsonl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluice-data/sluice/internal/sinkstate"
	"github.com/sluice-data/sluice/stages"
)

// StagingDir is the directory, inside the output directory, that holds the
// files of instances that have not committed yet.
const StagingDir = ".sluice-staging"

// ErrNoDir is returned by a sink with an empty directory name.
var ErrNoDir = errors.New("jsonl: no output directory")

// ErrState is wrapped by the error of a Writer method called out of the
// sink lifecycle's order (Write after Prepare, Commit before Prepare, ...).
var ErrState = errors.New("jsonl: writer used out of order")

// Write adds a sink stage that writes s as JSON lines into dir, named
// "jsonl" unless opts name it. See the package documentation for the files
// it writes and when they appear.
func Write[T any](s stages.Stream[T], dir string, opts ...stages.Option) {
	stages.Write(s, Sink[T](dir), append([]stages.Option{stages.Name("jsonl")}, opts...)...)
}

// Sink returns a sink that writes JSON lines into dir.
func Sink[T any](dir string) stages.Sink[T] { return sink[T]{dir: dir} }

type sink[T any] struct{ dir string }

// PartName returns the name of the file that instance index writes.
func PartName(index int) string { return fmt.Sprintf("part-%05d.jsonl", index) }

func (s sink[T]) Open(_ context.Context, inst stages.Instance) (stages.Writer[T], error) {
	if s.dir == "" {
		return nil, ErrNoDir
	}
	final := filepath.Join(s.dir, PartName(inst.Index))
	staging := filepath.Join(s.dir, StagingDir)
	pattern := fmt.Sprintf("%s-%05d-*.jsonl.tmp", fileSafe(inst.Job), inst.Index)
	var f *os.File
	var err error
	// Another instance may remove the staging directory, empty, between our
	// MkdirAll and CreateTemp: try again.
	for range 3 {
		if err = os.MkdirAll(staging, 0o755); err != nil {
			break
		}
		if f, err = os.CreateTemp(staging, pattern); !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("jsonl: opening %s: %w", final, err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &writer[T]{dir: s.dir, final: final, staging: f.Name(), inst: inst, f: f, bw: bw, enc: enc}, nil
}

// fileSafe makes a job name usable in a file name.
func fileSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "job"
	}
	return string(b)
}

type writer[T any] struct {
	dir, final, staging string
	inst                stages.Instance
	f                   *os.File
	bw                  *bufio.Writer
	enc                 *json.Encoder
	records             int64
	state               sinkstate.State
	done                bool // Commit returned nil
}

func (w *writer[T]) errorf(verb string, err error) error {
	return fmt.Errorf("jsonl: %s %s: %w", verb, w.final, err)
}

func (w *writer[T]) outOfOrder(op string) error {
	return w.wrapState(op, sinkstate.OutOfOrder(w.state, op, ErrState))
}

func (w *writer[T]) wrapState(op string, err error) error {
	if err == nil {
		return nil
	}
	return w.errorf(op, err)
}

func (w *writer[T]) Write(recs []T) error {
	if w.state != sinkstate.Writing {
		return w.outOfOrder("writing")
	}
	for i := range recs {
		if err := w.enc.Encode(&recs[i]); err != nil {
			var jerr *json.UnsupportedValueError
			var terr *json.UnsupportedTypeError
			var merr *json.MarshalerError
			if errors.As(err, &jerr) || errors.As(err, &terr) || errors.As(err, &merr) {
				// Nothing of the record was written: the writer is intact,
				// but the job cannot go on without the record.
				return w.errorf("writing", fmt.Errorf("record %d (%s): %w", w.records, format(recs[i]), err))
			}
			w.state = sinkstate.Failed
			return w.errorf("writing", err)
		}
		w.records++
	}
	return nil
}

func (w *writer[T]) Prepare() error {
	if w.state != sinkstate.Writing {
		return w.outOfOrder("preparing")
	}
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		w.state = sinkstate.Failed
		return w.errorf("preparing", err)
	}
	w.state = sinkstate.Prepared
	return nil
}

func (w *writer[T]) Commit() error {
	if work, err := w.state.Committing(ErrState); !work {
		return w.wrapState("committing", err)
	}
	if err := os.Rename(w.staging, w.final); err != nil {
		return w.errorf("committing", err)
	}
	w.state = sinkstate.Committed
	if w.inst.Index == 0 && w.inst.Parallelism >= 1 {
		if err := removeStaleParts(w.dir, w.inst.Parallelism); err != nil {
			return w.errorf("committing", err)
		}
	}
	if err := syncDir(w.dir); err != nil {
		return w.errorf("committing", err)
	}
	removeIfEmpty(filepath.Join(w.dir, StagingDir))
	w.done = true
	return nil
}

// Revert deletes the committed file: a later commit of the job failed.
func (w *writer[T]) Revert() error {
	if w.state != sinkstate.Committed {
		return nil
	}
	w.state = sinkstate.Aborted
	if err := os.Remove(w.final); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return w.errorf("reverting", err)
	}
	return nil
}

func (w *writer[T]) Abort() error {
	if w.state == sinkstate.Committed && !w.done {
		// Commit renamed the file and then failed (removing stale parts
		// or syncing): the file goes. After a whole Commit, Abort does
		// nothing.
		err := w.Revert()
		removeIfEmpty(filepath.Join(w.dir, StagingDir))
		return err
	}
	if !w.state.Aborting() {
		return nil
	}
	w.state = sinkstate.Aborted
	if w.f != nil {
		_ = w.f.Close() // the file is being thrown away
		w.f = nil
	}
	err := os.Remove(w.staging)
	removeIfEmpty(filepath.Join(w.dir, StagingDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return w.errorf("aborting", err)
	}
	return nil
}

// removeStaleParts deletes dir's part files of index parallelism and above:
// an earlier run's, with more instances.
func removeStaleParts(dir string, parallelism int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if i, ok := partIndex(e.Name()); ok && i >= parallelism && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing stale part: %w", err)
			}
		}
	}
	return nil
}

// partIndex parses the index of a name PartName gives.
func partIndex(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, "part-")
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, ".jsonl"); !ok || len(digits) < 5 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	i, err := strconv.Atoi(digits)
	return i, err == nil && PartName(i) == name
}

// format renders a record for an error message.
func format(x any) string {
	s := fmt.Sprintf("%+v", x)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// syncDir makes dir's entries (a rename) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeIfEmpty removes dir if it is empty; other instances may still be
// using it, so failing is normal.
func removeIfEmpty(dir string) { _ = os.Remove(dir) }
