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
	"slices"
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

// rolledName returns the name of the seq-th file that instance index of
// run writes in a job that does not end by itself. The underscore after
// the instance tells it from a PartName (whose run a dash follows), and
// the digits before the next dash are the sequence number, whatever the
// run's characters: no two of these names are alike.
func rolledName(index, seq int, run string) string {
	return fmt.Sprintf("part-%05d_%06d-%s.jsonl", index, seq, run)
}

// partName matches PartName's and rolledName's names, and the names of
// earlier versions' (part-00000.jsonl): the files a sink deletes when they
// leave the snapshot.
var partName = regexp.MustCompile(`^part-[0-9]{5}(-[0-9A-Za-z_]+|_[0-9]{6,}-[0-9A-Za-z_.-]+)?\.jsonl$`)

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
// Size bytes of the staged file it was writing, Records records (a
// bounded job's writer, which writes one file), and the files it had
// closed and not yet published (a writer in a job that does not end by
// itself, which closes its file at each barrier), Seq the next one's
// number. A state of an earlier version holds the first three only.
type checkpointState struct {
	Staging string       `json:"staging,omitempty"`
	Size    int64        `json:"size,omitempty"`
	Records int64        `json:"records,omitempty"`
	Seq     int          `json:"seq,omitempty"`
	Staged  []stagedFile `json:"staged,omitempty"`
}

// stagedFile is a file closed in staging, to be published as Name.
type stagedFile struct {
	Staging string `json:"staging"`
	Name    string `json:"name"`
	Rows    int64  `json:"rows"`
	Bytes   int64  `json:"bytes"`
	// Ck is the checkpoint whose barrier it was closed before (0: none
	// yet); its completion publishes it.
	Ck uint64 `json:"ck,omitempty"`
}

// Reopen implements stages.Reopener: the staged file is cut back to what
// it held at the checkpoint, and the writer appends from there; the files
// the checkpoint had closed are taken back, those published since counted
// as published (and listed, if the manifest does not list them yet), and
// what was staged or published after the checkpoint goes.
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
	w := &writer[T]{dir: dir, run: run, inst: inst, txn: txn, alone: inst.Shared == nil,
		rolls: inst.Unbounded, rollDir: filepath.Join(txn.Staging(), fmt.Sprintf("%05d", inst.Index))}
	w.cw = &countWriter{n: &w.size}
	w.bw = bufio.NewWriterSize(w.cw, 256<<10)
	w.enc = json.NewEncoder(w.bw)
	w.enc.SetEscapeHTML(false)
	staging := filepath.Join(txn.Staging(), PartName(inst.Index, run)+".inprogress")
	mkdir := filepath.Dir(staging)
	if w.rolls {
		mkdir = w.rollDir
	}
	err = os.MkdirAll(mkdir, 0o755)
	if err == nil && w.rolls {
		err = syncDir(txn.Staging()) // rollDir's entry, for the files closed in it
	}
	if err != nil {
		return nil, fmt.Errorf("jsonl: opening %s: %w", final, err)
	}
	if at != nil {
		if c := txn.Checkpoint(); c > inst.Restored {
			return nil, fmt.Errorf("jsonl: reopening %s at checkpoint %d: the output holds what checkpoint %d published, "+
				"which restoring an older checkpoint would write again: restore checkpoint %d or a later one, or write to another output",
				dir, inst.Restored, c, c)
		}
		if err := w.takeBack(ctx, at); err != nil {
			return nil, fmt.Errorf("jsonl: reopening %s: %w", dir, err)
		}
	} else if w.rolls {
		// What an earlier attempt of this process staged goes.
		if err := w.removeStrays(); err != nil {
			return nil, fmt.Errorf("jsonl: opening %s: %w", dir, err)
		}
	}
	resume := at != nil && at.Staging != ""
	if w.rolls && !resume {
		return w, nil // the first record opens a file
	}
	// A bounded job's writer stages its one file at once. A recovered
	// job's writer takes the staged file over: from its start, or cut back
	// to the checkpoint's size.
	if !resume {
		f, err := os.OpenFile(staging, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("jsonl: opening %s: %w", final, err)
		}
		w.use(f, staging, final, 0, 0)
		return w, nil
	}
	if at.Staging != staging {
		return nil, fmt.Errorf("jsonl: reopening %s: the checkpoint staged %s, this run stages %s", final, at.Staging, staging)
	}
	f, err := os.OpenFile(staging, os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("jsonl: opening %s: %w", final, err)
	}
	err = f.Truncate(at.Size)
	if err == nil {
		_, err = f.Seek(at.Size, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("jsonl: reopening %s at %d bytes: %w", staging, at.Size, err)
	}
	w.use(f, staging, final, at.Size, at.Records)
	return w, nil
}

// takeBack takes over what checkpoint at describes: the files it had
// closed, kept to be published unless a completion before the failure
// published them, and the next file's number. What was staged after the
// checkpoint goes, and so does what was published after it without
// reaching the manifest (a process that died between the two): no
// manifest lists a file begun after the checkpoint restored, since the
// output would then hold a later checkpoint, which open refuses. If the
// process died before a manifest listed the checkpoint's published files,
// their completion is finished now: the manifest is written at the
// checkpoint restored (which may be the one the output holds, another
// instance's completion having written it). The writer's later
// checkpoints no longer name these files, so a manifest must list them
// before it goes on, or a restore from a later checkpoint (after a stop,
// or a second crash before the next manifest) would lose them.
func (w *writer[T]) takeBack(ctx context.Context, at *checkpointState) error {
	w.seq = at.Seq
	var published []commit.File
	for _, f := range at.Staged {
		if !strings.HasPrefix(f.Staging, w.txn.Staging()+string(filepath.Separator)) || !partName.MatchString(f.Name) {
			return fmt.Errorf("the checkpoint staged %s as %s, which is not this run's (it stages in %s)", f.Staging, f.Name, w.txn.Staging())
		}
		_, err := os.Stat(f.Staging)
		if err == nil {
			if f.Ck == 0 { // closed by Prepare, before the barrier restored
				f.Ck = w.inst.Restored
			}
			w.staged = append(w.staged, f)
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if _, err := os.Stat(filepath.Join(w.dir, f.Name)); err != nil {
			return fmt.Errorf("staged file %s is neither in staging nor published: %w", f.Staging, err)
		}
		published = append(published, commit.File{Path: f.Name, Rows: f.Rows, Bytes: f.Bytes})
	}
	w.txn.Add(published...)
	if err := w.removeStrays(); err != nil {
		return err
	}
	for seq := at.Seq; ; seq++ {
		err := os.Remove(filepath.Join(w.dir, rolledName(w.inst.Index, seq, w.run)))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return err
		}
	}
	if len(published) == 0 {
		return nil
	}
	m, _, err := commit.ReadManifest(ctx, commit.Local{}, w.dir)
	if err != nil {
		return err
	}
	if m != nil && !slices.ContainsFunc(published, func(f commit.File) bool { return !m.Has(f.Path) }) {
		return nil // listed: the completion wrote its manifest
	}
	return w.txn.CommitCheckpoint(ctx, w.inst.Restored)
}

// removeStrays deletes the files in the writer's staging for rolled files
// that it has not taken back.
func (w *writer[T]) removeStrays() error {
	es, err := os.ReadDir(w.rollDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range es {
		p := filepath.Join(w.rollDir, e.Name())
		if !slices.ContainsFunc(w.staged, func(f stagedFile) bool { return f.Staging == p }) {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
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
	dir  string // the output directory
	run  string
	inst stages.Instance
	txn  *commit.Txn
	// alone: the writer runs outside the runtime (no CommitJob, no
	// FinishJob), so its Commit commits the transaction too.
	alone bool
	// rolls: the job does not end by itself (Instance.Unbounded), so the
	// writer closes its file at each barrier that follows records, into
	// rollDir, and publishes the files closed before a checkpoint's
	// barrier once the checkpoint has completed.
	rolls   bool
	rollDir string

	// The file being written: f is nil when none is open (a rolling
	// writer's between its barrier and its next record; a bounded job's
	// after Prepare, whose staging and final stay set).
	staging, final string
	f              *os.File
	cw             *countWriter
	size           int64 // bytes written to the staged file
	rows           int64 // records written to it
	bw             *bufio.Writer
	enc            *json.Encoder

	seq       int          // the next rolled file's number
	staged    []stagedFile // closed, not yet published
	committed []string     // the files Commit published, for Revert
	state     sinkstate.State
}

// use makes f, staged at staging and to be published as final, the file
// being written, which holds size bytes and rows records already.
func (w *writer[T]) use(f *os.File, staging, final string, size, rows int64) {
	w.f, w.staging, w.final, w.size, w.rows = f, staging, final, size, rows
	w.cw.w = f
}

// create opens the next rolled file.
func (w *writer[T]) create() error {
	name := rolledName(w.inst.Index, w.seq, w.run)
	staging := filepath.Join(w.rollDir, name+".inprogress")
	f, err := os.OpenFile(staging, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w.seq++
	w.use(f, staging, filepath.Join(w.dir, name), 0, 0)
	return nil
}

// roll closes the file being written, flushed and synced, into the staged
// files, its name in staging made durable; an empty one is deleted.
func (w *writer[T]) roll(verb string) error {
	if w.f == nil {
		return nil
	}
	err := w.closeFile()
	if err == nil && w.rows == 0 {
		err = os.Remove(w.staging)
	} else if err == nil {
		w.staged = append(w.staged, stagedFile{Staging: w.staging, Name: filepath.Base(w.final), Rows: w.rows, Bytes: w.size})
		err = syncDir(w.rollDir)
	}
	if err != nil {
		return w.errorf(verb, err)
	}
	w.staging, w.final, w.size, w.rows = "", "", 0, 0
	return nil
}

// closeFile flushes, syncs and closes the file being written.
func (w *writer[T]) closeFile() error {
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}

func (w *writer[T]) errorf(verb string, err error) error {
	where := w.final
	if where == "" {
		where = w.dir
	}
	return fmt.Errorf("jsonl: %s %s: %w", verb, where, err)
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
	if w.rolls && w.f == nil && len(recs) > 0 {
		if err := w.create(); err != nil {
			w.state = sinkstate.Failed
			return w.errorf("writing", err)
		}
	}
	for i := range recs {
		if err := w.enc.Encode(&recs[i]); err != nil {
			var jerr *json.UnsupportedValueError
			var terr *json.UnsupportedTypeError
			var merr *json.MarshalerError
			if errors.As(err, &jerr) || errors.As(err, &terr) || errors.As(err, &merr) {
				// Nothing of the record was written: the writer is intact,
				// but the job cannot go on without the record.
				return w.errorf("writing", fmt.Errorf("record %d (%s): %w", w.rows, format(recs[i]), err))
			}
			w.state = sinkstate.Failed
			return w.errorf("writing", err)
		}
		w.rows++
	}
	return nil
}

func (w *writer[T]) Prepare() error {
	if w.state != sinkstate.Writing {
		return w.outOfOrder("preparing")
	}
	if w.rolls {
		if err := w.roll("preparing"); err != nil {
			w.state = sinkstate.Failed
			return err
		}
		w.state = sinkstate.Prepared
		return nil
	}
	if err := w.closeFile(); err != nil {
		w.state = sinkstate.Failed
		return w.errorf("preparing", err)
	}
	w.state = sinkstate.Prepared
	return nil
}

// Checkpoint implements stages.Checkpointer: the staged file is flushed
// and synced, and its size is the checkpoint's. In a job that does not end
// by itself the file is closed instead, if it holds records, and the
// checkpoint lists it with the others not yet published.
func (w *writer[T]) Checkpoint(id uint64) ([]byte, error) {
	switch w.state {
	case sinkstate.Writing:
		if w.rolls {
			if err := w.roll("checkpointing"); err != nil {
				w.state = sinkstate.Failed
				return nil, err
			}
			break
		}
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
	for i := range w.staged {
		if w.staged[i].Ck == 0 {
			w.staged[i].Ck = id
		}
	}
	st := checkpointState{Seq: w.seq, Staged: w.staged}
	if w.staging != "" {
		st.Staging, st.Size, st.Records = w.staging, w.size, w.rows
	}
	return json.Marshal(st)
}

// Completed implements stages.Publisher: in a job that does not end by
// itself (Instance.Unbounded), the files closed before checkpoint id's
// barrier move into the output and its manifest switches to list them
// (commit.Txn.CommitCheckpoint), so that a streaming job's output appears
// checkpoint by checkpoint, each record once. A checkpoint older than one
// the output was published at is refused (commit.ErrStale) before any
// file moves: the writer is of an attempt that was rolled back. A
// bounded job publishes at its end.
func (w *writer[T]) Completed(id uint64) error {
	if !w.rolls || id == 0 {
		return nil
	}
	switch w.state {
	case sinkstate.Writing, sinkstate.Prepared:
	case sinkstate.Committed:
		return nil
	default:
		return w.outOfOrder("publishing")
	}
	if c := w.txn.Checkpoint(); id < c {
		return fmt.Errorf("jsonl: publishing checkpoint %d to %s: %w: checkpoint %d was published", id, w.dir, commit.ErrStale, c)
	}
	var files []commit.File
	var kept []stagedFile
	for _, f := range w.staged {
		if f.Ck == 0 || f.Ck > id {
			kept = append(kept, f)
			continue
		}
		if err := os.Rename(f.Staging, filepath.Join(w.dir, f.Name)); err != nil {
			w.state = sinkstate.Failed
			return fmt.Errorf("jsonl: publishing checkpoint %d to %s: %w", id, w.dir, err)
		}
		files = append(files, commit.File{Path: f.Name, Rows: f.Rows, Bytes: f.Bytes})
	}
	if len(files) == 0 {
		return nil // nothing new: no manifest to write
	}
	w.staged = kept
	err := syncDir(w.dir)
	if err == nil {
		w.txn.Add(files...)
		err = w.txn.CommitCheckpoint(context.Background(), id)
	}
	if err != nil {
		w.state = sinkstate.Failed
		return fmt.Errorf("jsonl: publishing checkpoint %d to %s: %w", id, w.dir, err)
	}
	return nil
}

// Detach implements stages.Checkpointer: the staged file is closed as it
// is, for Reopen to cut back; closed files stay for Reopen to take back.
func (w *writer[T]) Detach() error {
	if w.f != nil {
		_ = w.f.Close() // what counts was synced at the checkpoint
		w.f = nil
	}
	w.state = sinkstate.Aborted // nothing more from this writer
	return nil
}

// Commit moves the staged files into the output: the one file of a
// bounded job, or the files of one that does not end by itself that no
// completed checkpoint has published.
func (w *writer[T]) Commit() error {
	if work, err := w.state.Committing(ErrState); !work {
		return w.wrapState("committing", err)
	}
	pending := w.staged
	if w.staging != "" {
		pending = append([]stagedFile{{Staging: w.staging, Name: filepath.Base(w.final), Rows: w.rows, Bytes: w.size}}, pending...)
	}
	files := make([]commit.File, 0, len(pending))
	for _, f := range pending {
		final := filepath.Join(w.dir, f.Name)
		if err := os.Rename(f.Staging, final); err != nil {
			return w.errorf("committing", err)
		}
		w.committed = append(w.committed, final)
		files = append(files, commit.File{Path: f.Name, Rows: f.Rows, Bytes: f.Bytes})
	}
	w.staged = nil
	w.state = sinkstate.Committed
	if err := syncDir(w.dir); err != nil {
		return w.errorf("committing", err)
	}
	w.txn.Add(files...)
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

// Revert puts the previous manifest back (in a job that does not end by
// itself, the last completed checkpoint's) and deletes the files Commit
// published: a later commit of the job failed.
func (w *writer[T]) Revert() error {
	if w.state != sinkstate.Committed {
		return nil
	}
	w.state = sinkstate.Aborted
	if err := w.txn.Revert(context.Background()); err != nil {
		return w.errorf("reverting", err)
	}
	var errs []error
	for _, p := range w.committed {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	w.committed = nil
	if err := errors.Join(errs...); err != nil {
		return w.errorf("reverting", err)
	}
	return nil
}

// Abort discards the staged files, and those a Commit that failed halfway
// published; after Commit it does nothing (a failed job reverts committed
// writers instead).
func (w *writer[T]) Abort() error {
	if !w.state.Aborting() {
		return nil
	}
	w.state = sinkstate.Aborted
	if w.f != nil {
		_ = w.f.Close() // the file is being thrown away
		w.f = nil
	}
	var errs []error
	remove := func(p string) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if w.staging != "" {
		remove(w.staging)
	}
	for _, f := range w.staged {
		remove(f.Staging)
	}
	for _, p := range w.committed {
		remove(p)
	}
	w.staged, w.committed = nil, nil
	if w.rolls {
		_ = os.Remove(w.rollDir) // if empty
	}
	if w.alone {
		_ = w.txn.Finish(context.Background())
	}
	if err := errors.Join(errs...); err != nil {
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
