package jsonl

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/sluice-data/sluice/internal/commit"
	"github.com/sluice-data/sluice/internal/sinkstate"
	"github.com/sluice-data/sluice/stages"
)

// ErrNoDir is returned by a sink with an empty directory name.
var ErrNoDir = errors.New("jsonl: no output directory")

// ErrState is wrapped by the error of a Writer method called out of the
// sink lifecycle's order (Write after Prepare, Commit before Prepare, ...).
var ErrState = errors.New("jsonl: writer used out of order")

// Write adds a sink stage that writes s as JSON lines into dir, named
// "jsonl" unless opts name it. See the package documentation for the files
// it writes and when they appear.
func Write[T any](s stages.Stream[T], dir string, opts ...stages.SinkOption) {
	stages.Write(s, Sink[T](dir), append([]stages.SinkOption{stages.Name("jsonl")}, opts...)...)
}

// Sink returns a sink that writes JSON lines into dir, replacing the
// snapshot its manifest names (see the package documentation).
func Sink[T any](dir string) stages.Sink[T] { return &sink[T]{dir: dir} }

type sink[T any] struct{ dir string }

// PartName returns the name of the file that instance index of run writes.
func PartName(index int, run string) string { return fmt.Sprintf("part-%05d-%s.jsonl", index, run) }

// partName matches PartName's names, and the names of earlier versions'
// (part-00000.jsonl): the files a sink deletes when they leave the snapshot.
var partName = regexp.MustCompile(`^part-[0-9]{5}(-[0-9A-Za-z_]+)?\.jsonl$`)

// txnState is the run's transaction on the output, shared by the
// instances of one process.
type txnState struct {
	mu     sync.Mutex
	opened bool
	txn    *commit.Txn
	err    error
}

func (s *sink[T]) shared(inst stages.Instance) (*txnState, error) {
	if inst.Shared == nil {
		return &txnState{}, nil
	}
	v, err := inst.Shared("jsonl.sink "+inst.Run+" "+inst.Stage+" "+s.dir, func() (any, error) { return &txnState{}, nil })
	if err != nil {
		return nil, err
	}
	return v.(*txnState), nil
}

func (s *sink[T]) Open(ctx context.Context, inst stages.Instance) (stages.Writer[T], error) {
	return s.open(ctx, inst, nil)
}

// checkpointState is what a writer had written at a checkpoint: the first
// Size bytes of its staged file, Records records.
type checkpointState struct {
	Staging string `json:"staging"`
	Size    int64  `json:"size"`
	Records int64  `json:"records"`
}

// Reopen implements stages.Reopener: the staged file is cut back to what
// it held at the checkpoint, and the writer appends from there.
func (s *sink[T]) Reopen(ctx context.Context, inst stages.Instance, state []byte) (stages.Writer[T], error) {
	var st checkpointState
	if err := json.Unmarshal(state, &st); err != nil {
		return nil, fmt.Errorf("jsonl: reopening %s at a checkpoint: %w", s.dir, err)
	}
	return s.open(ctx, inst, &st)
}

func (s *sink[T]) open(ctx context.Context, inst stages.Instance, at *checkpointState) (stages.Writer[T], error) {
	if s.dir == "" {
		return nil, ErrNoDir
	}
	dir, err := filepath.Abs(s.dir)
	if err != nil {
		return nil, fmt.Errorf("jsonl: %w", err)
	}
	run := fileSafe(inst.Run)
	if inst.Run == "" {
		run = newRunID()
	}
	st, err := s.shared(inst)
	if err != nil {
		return nil, err
	}
	final := filepath.Join(dir, PartName(inst.Index, run))
	st.mu.Lock()
	if !st.opened {
		st.opened = true
		st.txn, st.err = commit.Begin(ctx, commit.Local{}, dir, commit.Options{
			Mode: commit.Overwrite, Job: inst.Job, Run: run, Resume: inst.Resumed,
			ForceHint: "write into an empty directory",
			Ours:      partName.MatchString,
			Data:      func(name string) bool { return strings.HasSuffix(name, ".jsonl") },
		})
	}
	txn, err := st.txn, st.err
	st.mu.Unlock()
	if err != nil {
		return nil, commit.MarkConfig(fmt.Errorf("jsonl: opening %s: %w", final, err), stages.ErrConfig)
	}
	staging := filepath.Join(txn.Staging(), PartName(inst.Index, run)+".inprogress")
	if err := os.MkdirAll(filepath.Dir(staging), 0o755); err != nil {
		return nil, fmt.Errorf("jsonl: opening %s: %w", final, err)
	}
	// A recovered job's writer takes the staged file over: from its start,
	// or cut back to the checkpoint's size.
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if at != nil {
		if at.Staging != staging {
			return nil, fmt.Errorf("jsonl: reopening %s: the checkpoint staged %s, this run stages %s", final, at.Staging, staging)
		}
		flags = os.O_WRONLY
	}
	f, err := os.OpenFile(staging, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jsonl: opening %s: %w", final, err)
	}
	w := &writer[T]{dir: dir, final: final, staging: staging, inst: inst, f: f, txn: txn, alone: inst.Shared == nil}
	if at != nil {
		err := f.Truncate(at.Size)
		if err == nil {
			_, err = f.Seek(at.Size, io.SeekStart)
		}
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("jsonl: reopening %s at %d bytes: %w", staging, at.Size, err)
		}
		w.size, w.records = at.Size, at.Records
	}
	w.cw = &countWriter{w: f, n: &w.size}
	w.bw = bufio.NewWriterSize(w.cw, 256<<10)
	w.enc = json.NewEncoder(w.bw)
	w.enc.SetEscapeHTML(false)
	return w, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n *int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// CommitJob implements stages.JobCommitter: it switches the manifest to
// the run's files in one step.
func (s *sink[T]) CommitJob(ctx context.Context, inst stages.Instance) error {
	st, err := s.shared(inst)
	if err != nil {
		return err
	}
	st.mu.Lock()
	txn := st.txn
	st.mu.Unlock()
	if txn == nil {
		return fmt.Errorf("jsonl: writing %s: the sink was never opened", s.dir)
	}
	if err := txn.Commit(ctx); err != nil {
		return fmt.Errorf("jsonl: writing %s: %w", s.dir, err)
	}
	return nil
}

// SuspendJob implements stages.JobSuspender: the lease goes, the staged
// file stays for the restored run.
func (s *sink[T]) SuspendJob(ctx context.Context, inst stages.Instance) {
	st, err := s.shared(inst)
	if err != nil {
		return
	}
	st.mu.Lock()
	txn := st.txn
	st.txn = nil
	st.mu.Unlock()
	if txn != nil {
		txn.Suspend(ctx)
	}
}

// FinishJob implements stages.JobFinisher: it deletes the files of the
// replaced snapshot and releases the output's lease.
func (s *sink[T]) FinishJob(ctx context.Context, inst stages.Instance, _ bool) error {
	st, err := s.shared(inst)
	if err != nil {
		return err
	}
	st.mu.Lock()
	txn := st.txn
	st.txn = nil
	st.mu.Unlock()
	if txn == nil {
		return nil
	}
	if err := txn.Finish(ctx); err != nil {
		return fmt.Errorf("jsonl: writing %s: %w", s.dir, err)
	}
	return nil
}

func newRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
	cw                  *countWriter
	size                int64 // bytes written to the staged file
	bw                  *bufio.Writer
	enc                 *json.Encoder
	records             int64
	state               sinkstate.State
	txn                 *commit.Txn
	// alone: the writer runs outside the runtime (no CommitJob, no
	// FinishJob), so its Commit commits the transaction too.
	alone bool
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

// Checkpoint implements stages.Checkpointer: the staged file is flushed
// and synced, and its size is the checkpoint's.
func (w *writer[T]) Checkpoint(uint64) ([]byte, error) {
	switch w.state {
	case sinkstate.Writing:
		if err := w.bw.Flush(); err != nil {
			w.state = sinkstate.Failed
			return nil, w.errorf("checkpointing", err)
		}
		if err := w.f.Sync(); err != nil {
			w.state = sinkstate.Failed
			return nil, w.errorf("checkpointing", err)
		}
	case sinkstate.Prepared: // closed and synced
	default:
		return nil, w.outOfOrder("checkpointing")
	}
	return json.Marshal(checkpointState{Staging: w.staging, Size: w.size, Records: w.records})
}

// Detach implements stages.Checkpointer: the staged file is closed as it
// is, for Reopen to cut back.
func (w *writer[T]) Detach() error {
	if w.f != nil {
		_ = w.f.Close() // what counts was synced at the checkpoint
		w.f = nil
	}
	w.state = sinkstate.Aborted // nothing more from this writer
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
	if err := syncDir(w.dir); err != nil {
		return w.errorf("committing", err)
	}
	w.txn.Add(commit.File{Path: filepath.Base(w.final), Rows: w.records, Bytes: w.bytes()})
	if w.alone {
		ctx := context.Background()
		err := w.txn.Commit(ctx)
		if ferr := w.txn.Finish(ctx); err == nil {
			err = ferr
		}
		if err != nil {
			return w.errorf("committing", err)
		}
	}
	return nil
}

func (w *writer[T]) bytes() int64 {
	if fi, err := os.Stat(w.final); err == nil {
		return fi.Size()
	}
	return -1
}

// Revert puts the previous manifest back and deletes the committed file: a
// later commit of the job failed.
func (w *writer[T]) Revert() error {
	if w.state != sinkstate.Committed {
		return nil
	}
	w.state = sinkstate.Aborted
	if err := w.txn.Revert(context.Background()); err != nil {
		return w.errorf("reverting", err)
	}
	if err := os.Remove(w.final); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return w.errorf("reverting", err)
	}
	return nil
}

// Abort discards the staged file; after Commit it does nothing (a failed
// job reverts committed writers instead).
func (w *writer[T]) Abort() error {
	if !w.state.Aborting() {
		return nil
	}
	w.state = sinkstate.Aborted
	if w.f != nil {
		_ = w.f.Close() // the file is being thrown away
		w.f = nil
	}
	err := os.Remove(w.staging)
	if w.alone {
		_ = w.txn.Finish(context.Background())
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return w.errorf("aborting", err)
	}
	return nil
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
