package parquetio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/sluice-data/sluice/internal/commit"
	"github.com/sluice-data/sluice/stages"
)

const (
	defaultTargetFileSize = 512 << 20
	defaultRowGroupRows   = 128 << 10
	defaultMaxOpenFiles   = 64
)

// Write adds a sink stage that writes s as Parquet files under the
// directory url, committed through the sink lifecycle: nothing appears
// under url unless the whole job succeeds. See the package documentation
// for the commit protocol.
func Write[T any](s stages.Stream[T], url string, opts ...WriteOption) {
	sink := Sink[T](url, opts...)
	if err := sink.Err(); err != nil {
		s.Pipeline().Errorf("%v", err)
	}
	stages.Write[T](s, sink, sink.cfg.stageOpts...)
}

// FileSink writes records of type T as Parquet files. It implements
// stages.Sink[T].
type FileSink[T any] struct {
	url   string
	cfg   writeConfig
	rec   *record
	parts []partitioner[T]
	err   error
	// utf8 checks a record's text columns for invalid UTF-8 (nil: it
	// has none).
	utf8 func(rec unsafe.Pointer) (column string, ok bool)
}

// ErrInvalidUTF8 is wrapped when a record would write text that is not
// valid UTF-8 into a STRING (or ENUM, JSON) column: parquet-go would write
// the bytes as they are, and readers would fail on them or change them.
var ErrInvalidUTF8 = errors.New("parquetio: invalid UTF-8 in a text column")

type partitioner[T any] struct {
	name        string
	prefix      string // the escaped name and "="
	appendValue func(buf []byte, x *T) []byte
}

// Sink returns a sink writing Parquet files of records of type T under the
// directory url. A configuration error (a bad option, an unknown partition
// column) is returned by Err and when the sink opens.
func Sink[T any](url string, opts ...WriteOption) *FileSink[T] {
	s := &FileSink[T]{url: url, cfg: writeConfig{
		codec:          fastSnappy{},
		targetFileSize: defaultTargetFileSize,
		rowGroupRows:   defaultRowGroupRows,
		maxOpenFiles:   defaultMaxOpenFiles,
	}}
	for _, o := range opts {
		if o != nil {
			o.applyWrite(&s.cfg)
		}
	}
	errs := s.cfg.errs
	rec, err := recordOf[T]()
	s.rec = rec
	if err != nil {
		errs = append(errs, err)
	} else {
		s.utf8 = utf8Checker(rec.typ)
		if bad := brokenDateFields(rec.typ, "", map[reflect.Type]bool{}); len(bad) > 0 {
			errs = append(errs, fmt.Errorf("%w: %v: time.Time fields tagged date (%s) would be written wrong by parquet-go v0.32 (nanoseconds cut to 32 bits, not days): use an int32 field tagged date, or a timestamp", ErrConfig, rec.typ, strings.Join(bad, ", ")))
		}
		for _, col := range s.cfg.partCols {
			i, ok := rec.fields[col]
			if !ok {
				errs = append(errs, fmt.Errorf("%w: PartitionBy(%q): %v has no top-level column %q", ErrConfig, col, rec.typ, col))
				continue
			}
			ft := rec.typ.Field(i).Type
			if !partitionable(ft) {
				errs = append(errs, fmt.Errorf("%w: PartitionBy(%q): a %v field cannot be a partition value (use PartitionByFunc)", ErrConfig, col, ft))
				continue
			}
			s.parts = append(s.parts, partitioner[T]{name: col, appendValue: func(buf []byte, x *T) []byte {
				return appendPartitionValue(buf, reflect.ValueOf(x).Elem().Field(i))
			}})
		}
	}
	for _, pf := range s.cfg.partFuncs {
		f, ok := pf.fn.(func(T) string)
		if !ok {
			errs = append(errs, fmt.Errorf("%w: PartitionByFunc(%q): a func(%v) string cannot partition records of type %v", ErrConfig, pf.name, pf.typ, reflect.TypeFor[T]()))
			continue
		}
		s.parts = append(s.parts, partitioner[T]{name: pf.name, appendValue: func(buf []byte, x *T) []byte {
			return appendEscaped(buf, f(*x))
		}})
	}
	for i := range s.parts {
		s.parts[i].prefix = escapePath(s.parts[i].name) + "="
	}
	seen := map[string]bool{}
	for _, p := range s.parts {
		if seen[p.name] {
			errs = append(errs, fmt.Errorf("%w: partition %q is given twice", ErrConfig, p.name))
		}
		seen[p.name] = true
	}
	if s.cfg.mode < ErrorIfExists || s.cfg.mode > OverwritePartitions {
		errs = append(errs, fmt.Errorf("%w: unknown mode %v", ErrConfig, s.cfg.mode))
	}
	if strings.ContainsAny(url, "*[") {
		errs = append(errs, fmt.Errorf("%w: an output URL cannot be a glob", ErrConfig))
	}
	if err := errors.Join(errs...); err != nil {
		s.err = fmt.Errorf("writing %s: %w", url, err)
	}
	return s
}

// Err reports a configuration error.
func (s *FileSink[T]) Err() error { return s.err }

func (s *FileSink[T]) stats() *Stats {
	if s.cfg.stats != nil {
		return s.cfg.stats
	}
	return &discard
}

// commitState is shared by the instances of one sink in one process, through
// stages.Instance.Shared: the run's transaction on the output, begun by the
// first instance to open.
type commitState struct {
	mu     sync.Mutex
	opened bool
	txn    *commit.Txn
	err    error
	// writers holds the instances that have opened a writer: one that
	// opens again is a recovered job's, which takes its staging over.
	writers map[int]bool
}

func newRunID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// commitMode maps a Mode to the commit protocol's.
func (m Mode) commitMode() commit.Mode {
	switch m {
	case Overwrite:
		return commit.Overwrite
	case Append:
		return commit.Append
	case OverwritePartitions:
		return commit.OverwritePartitions
	}
	return commit.ErrorIfExists
}

// dataFileName matches the names of the data files sinks write:
// part-<instance>-<run>-<seq><codec>.parquet.
var dataFileName = regexp.MustCompile(`^part-[0-9]{5}-[0-9A-Za-z_]+-[0-9]{4,}(\.[a-z0-9]+)?\.parquet$`)

// outputOptions are the commit protocol's options for a Parquet output.
func outputOptions(mode commit.Mode, force bool, job, run string) commit.Options {
	return commit.Options{
		Mode: mode, Force: force, Job: job, Run: run,
		ForceHint: "pass parquetio.Force() (the bundled jobs: --arg force=true)",
		Ours:      dataFileName.MatchString,
		Data:      func(name string) bool { return strings.HasSuffix(name, ".parquet") },
	}
}

// stagedSuffix ends the names of staged files, so that no reader's
// *.parquet glob matches them before they are published.
const stagedSuffix = ".inprogress"

func (s *FileSink[T]) shared(inst stages.Instance, run string) (*commitState, error) {
	if inst.Shared == nil {
		return &commitState{}, nil
	}
	v, err := inst.Shared("parquetio.sink "+run+" "+inst.Stage+" "+s.url, func() (any, error) {
		return &commitState{}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*commitState), nil
}

// Open implements stages.Sink. The first instance to open takes the
// output's lease and checks it against the mode.
func (s *FileSink[T]) Open(ctx context.Context, inst stages.Instance) (stages.Writer[T], error) {
	return s.open(ctx, inst, nil)
}

// checkpointState is what a writer had written at a checkpoint: its
// closed files in staging, and the next file's sequence number.
type checkpointState struct {
	Checkpoint uint64         `json:"checkpoint,omitempty"`
	Seq        int            `json:"seq"`
	Records    int64          `json:"records"`
	Staged     []stagedRecord `json:"staged"`
}

type stagedRecord struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Rel   string `json:"rel"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"`
	// Ck is the checkpoint whose barrier the file was staged before (0:
	// staged since the last one).
	Ck uint64 `json:"ck,omitempty"`
}

// Reopen implements stages.Reopener: the writer takes over the files the
// checkpoint had staged and deletes the ones begun after it, staged or
// published.
func (s *FileSink[T]) Reopen(ctx context.Context, inst stages.Instance, state []byte) (stages.Writer[T], error) {
	var st checkpointState
	if err := json.Unmarshal(state, &st); err != nil {
		return nil, fmt.Errorf("parquetio: reopening %s at a checkpoint: %w", s.url, err)
	}
	return s.open(ctx, inst, &st)
}

func (s *FileSink[T]) open(ctx context.Context, inst stages.Instance, at *checkpointState) (stages.Writer[T], error) {
	if s.err != nil {
		return nil, s.err
	}
	loc, err := parseLocation(ctx, s.url)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", s.url, err)
	}
	st, out := loc.st, loc.path
	run := inst.Run
	if run == "" {
		run = newRunID() // outside the runtime: each instance is its own run
	}
	run = fileSafe(run)
	state, err := s.shared(inst, run)
	if err != nil {
		return nil, err
	}
	state.mu.Lock()
	if !state.opened {
		state.opened = true
		o := outputOptions(s.cfg.mode.commitMode(), s.cfg.force, inst.Job, run)
		o.Resume = inst.Resumed
		state.txn, state.err = commit.Begin(ctx, commitFS(st), out, o)
		if state.err != nil {
			state.err = commit.MarkConfig(fmt.Errorf("parquetio: %w", state.err), stages.ErrConfig)
		}
	}
	txn, err := state.txn, state.err
	again := state.writers[inst.Index]
	if state.writers == nil {
		state.writers = map[int]bool{}
	}
	state.writers[inst.Index] = true
	state.mu.Unlock()
	if err != nil {
		return nil, err
	}
	w := &writer[T]{
		s: s, ctx: ctx, cleanup: context.WithoutCancel(ctx), inst: inst, st: st, out: out,
		txn:     txn,
		staging: st.join(txn.Staging(), fmt.Sprintf("%05d", inst.Index)),
		run:     run, state: state, open: map[string]*partFile[T]{}, groups: map[string]*group[T]{},
		ext: codecExt(s.cfg.codec),
	}
	if at != nil {
		w.seq, w.records = at.Seq, at.Records
		if c := txn.Checkpoint(); c > inst.Restored {
			return nil, fmt.Errorf("parquetio: reopening %s at checkpoint %d: the output holds what checkpoint %d published, "+
				"which restoring an older checkpoint would write again: restore checkpoint %d or a later one, or write to another output",
				s.url, inst.Restored, c, c)
		}
		var taken []commit.File
		for _, f := range at.Staged {
			sf := stagedFile{from: f.From, to: f.To, rel: f.Rel, rows: f.Rows, bytes: f.Bytes, ck: f.Ck}
			published, err := w.publishedAlready(ctx, sf)
			if err != nil {
				return nil, fmt.Errorf("parquetio: reopening %s: %w", s.url, err)
			}
			if published { // at the checkpoint's completion, before the failure
				taken = append(taken, commit.File{Path: sf.rel, Rows: sf.rows, Bytes: sf.bytes})
				continue
			}
			w.staged = append(w.staged, sf)
		}
		if inst.Unbounded { // a bounded job publishes nothing before its end
			if err := w.removeBegunAfter(ctx, at.Seq); err != nil {
				return nil, fmt.Errorf("parquetio: reopening %s: %w", s.url, err)
			}
		}
		if err := w.takeBack(ctx, taken); err != nil {
			return nil, fmt.Errorf("parquetio: reopening %s at checkpoint %d: %w", s.url, inst.Restored, err)
		}
	}
	if again || at != nil {
		// What the failed attempt staged after the checkpoint goes.
		if err := w.removeStrays(ctx, w.staging); err != nil {
			return nil, fmt.Errorf("parquetio: reopening %s: %w", s.url, err)
		}
	}
	return w, nil
}

// publishedAlready reports whether staged file f was published (a job
// that does not end publishes at each completed checkpoint): gone from
// staging and at its place in the output. Gone from both is an error.
func (w *writer[T]) publishedAlready(ctx context.Context, f stagedFile) (bool, error) {
	if _, _, exists, err := w.st.stat(ctx, f.from); err != nil || exists {
		return false, err
	}
	_, _, exists, err := w.st.stat(ctx, f.to)
	if err == nil && !exists {
		err = fmt.Errorf("staged file %s is neither in staging nor published as %s", w.st.display(f.from), w.st.display(f.to))
	}
	return exists, err
}

// takeBack adds to the transaction the files of the checkpoint reopened at
// that a completion published before the failure. In a job that does not
// end by itself, if the process died before a manifest listed them all,
// that completion is finished now: the manifest is written at the
// checkpoint reopened at (which may be the one the output holds, another
// instance's completion having written it). The writer's later
// checkpoints no longer name these files, so a manifest must list them
// before it goes on, or a restore from a later checkpoint (after a stop,
// or a second crash before the next manifest) would lose them. A bounded
// job lists them at its end, with the rest of its output.
func (w *writer[T]) takeBack(ctx context.Context, files []commit.File) error {
	if len(files) == 0 {
		return nil
	}
	w.txn.Add(files...)
	if !w.inst.Unbounded {
		return nil
	}
	m, _, err := commit.ReadManifest(ctx, commitFS(w.st), w.out)
	if err != nil {
		return err
	}
	if m != nil && !slices.ContainsFunc(files, func(f commit.File) bool { return !m.Has(f.Path) }) {
		return nil // listed: the completion wrote its manifest
	}
	return w.txn.CommitCheckpoint(ctx, w.inst.Restored)
}

// removeBegunAfter deletes the instance's files in the output numbered seq
// or above, begun after the checkpoint reopened at: a later checkpoint's
// completion published them, and the process died before a manifest
// listed them (one that did would hold a later checkpoint, which open
// refuses). The replay writes their records again. A file's name does not
// tell its partition, so the whole output is listed, but Sluice's own
// directory.
func (w *writer[T]) removeBegunAfter(ctx context.Context, seq int) error {
	ours := regexp.MustCompile(`^` + regexp.QuoteMeta(fmt.Sprintf("part-%05d-%s-", w.inst.Index, w.run)) + `([0-9]{4,})(\.[a-z0-9]+)?\.parquet$`)
	var dirs []string
	err := w.removeBelow(ctx, w.out, func(dir, sub string) bool { return dir == w.out && sub == commit.InternalDir },
		func(p, name string) bool {
			m := ours.FindStringSubmatch(name)
			if m == nil {
				return false
			}
			n, err := strconv.Atoi(m[1])
			if err != nil || n < seq {
				return false
			}
			if w.st.local() {
				dirs = appendDirs(dirs, w.st, p, w.out)
			}
			return true
		})
	removeEmptyDirs(dirs, w.out)
	return err
}

// removeStrays deletes the files below dir that the writer has not staged.
func (w *writer[T]) removeStrays(ctx context.Context, dir string) error {
	if _, _, exists, err := w.st.stat(ctx, dir); err != nil || !exists {
		return err
	}
	return w.removeBelow(ctx, dir, func(string, string) bool { return false }, func(p, _ string) bool {
		return !slices.ContainsFunc(w.staged, func(s stagedFile) bool { return s.from == p })
	})
}

// removeBelow deletes the files below dir (at any depth) for which drop,
// given the file's path and name, reports true, not going into the
// subdirectories for which skip, given a directory and a subdirectory's
// name, does.
func (w *writer[T]) removeBelow(ctx context.Context, dir string, skip func(dir, sub string) bool, drop func(p, name string) bool) error {
	files, subs, err := w.st.list(ctx, dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", w.st.display(dir), err)
	}
	for _, f := range files {
		if p := w.st.join(dir, f.name); drop(p, f.name) {
			if err := w.st.remove(ctx, p); err != nil {
				return fmt.Errorf("deleting %s: %w", w.st.display(p), err)
			}
		}
	}
	for _, d := range subs {
		if skip(dir, d) {
			continue
		}
		if err := w.removeBelow(ctx, w.st.join(dir, d), skip, drop); err != nil {
			return err
		}
	}
	return nil
}

// Checkpoint implements stages.Checkpointer: every open file is closed
// into staging (Flink's rolling of bulk formats on checkpoints), and the
// staged files are the checkpoint's.
func (w *writer[T]) Checkpoint(id uint64) ([]byte, error) {
	if w.failed != nil {
		return nil, w.failed
	}
	if err := w.closeAll(); err != nil {
		return nil, err
	}
	st := checkpointState{Checkpoint: id, Seq: w.seq, Records: w.records}
	for i := range w.staged {
		f := &w.staged[i]
		if f.ck == 0 {
			f.ck = id
		}
		st.Staged = append(st.Staged, stagedRecord{From: f.from, To: f.to, Rel: f.rel, Rows: f.rows, Bytes: f.bytes, Ck: f.ck})
	}
	return json.Marshal(st)
}

// Completed implements stages.Publisher: in a job that does not end by
// itself (Instance.Unbounded), the files staged before checkpoint id's
// barrier are published and the output's manifest switched to list them
// (commit.Txn.CommitCheckpoint), so that a streaming job's output becomes
// visible checkpoint by checkpoint, exactly once. A bounded job publishes
// at its end, all or nothing.
func (w *writer[T]) Completed(id uint64) error {
	if !w.inst.Unbounded || w.failed != nil {
		return nil
	}
	ctx := w.ctx
	var files []commit.File
	var sync []string
	kept := w.staged[:0]
	for _, f := range w.staged {
		if f.ck == 0 || f.ck > id || id == 0 {
			kept = append(kept, f)
			continue
		}
		if err := w.st.publish(ctx, f.from, f.to); err != nil {
			return fmt.Errorf("parquetio: publishing %s as %s: %w", w.st.display(f.from), w.st.display(f.to), err)
		}
		files = append(files, commit.File{Path: f.rel, Rows: f.rows, Bytes: f.bytes})
		w.s.stats().FilesCommitted.Add(1)
		if w.st.local() {
			sync = appendDirs(sync, w.st, f.to, w.out)
		}
	}
	w.staged = kept
	if len(sync) > 0 {
		if err := w.st.syncDirs(sync); err != nil {
			return fmt.Errorf("parquetio: writing %s: %w", w.s.url, err)
		}
	}
	if len(files) == 0 {
		return nil // nothing new: no manifest to write
	}
	w.txn.Add(files...)
	if err := w.txn.CommitCheckpoint(ctx, id); err != nil {
		return fmt.Errorf("parquetio: publishing checkpoint %d to %s: %w", id, w.s.url, err)
	}
	return nil
}

// Detach implements stages.Checkpointer: open files are dropped, staged
// ones left for Reopen.
func (w *writer[T]) Detach() error {
	for _, f := range w.open {
		f.fw.Abort()
	}
	clear(w.open)
	w.staged = nil
	w.failed = errors.New("parquetio: the writer was detached")
	return nil
}

// fileSafe makes a run ID usable in a file name.
func fileSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

func codecExt(c interface {
	CompressionCodec() format.CompressionCodec
}) string {
	switch c.CompressionCodec() {
	case format.Snappy:
		return ".snappy"
	case format.Zstd:
		return ".zstd"
	case format.Gzip:
		return ".gz"
	case format.Lz4Raw:
		return ".lz4"
	case format.Brotli:
		return ".br"
	}
	return ""
}

// writer is one sink instance.
type writer[T any] struct {
	s       *FileSink[T]
	ctx     context.Context
	cleanup context.Context // ctx without its cancellation, for Abort
	inst    stages.Instance
	st      store
	out     string

	txn     *commit.Txn
	staging string // the run's staging directory/<instance>
	run     string
	state   *commitState
	ext     string

	open      map[string]*partFile[T] // by partition directory
	clock     uint64
	seq       int
	staged    []stagedFile
	published []string
	committed []string // what Commit published, for Revert
	reverted  bool
	groups    map[string]*group[T]
	active    []*group[T]
	records   int64 // records written, for messages
	key       []byte
	failed    error
}

type partFile[T any] struct {
	dir  string
	name string
	fw   fileWriter
	cw   *countingWriter
	pw   *parquet.GenericWriter[T]
	rows int64
	used uint64
}

type stagedFile struct {
	from, to string
	rel      string // path below the output
	rows     int64
	bytes    int64
	ck       uint64 // the checkpoint it was staged before (0: none yet)
}

type countingWriter struct {
	w     fileWriter
	n     int64
	stats *Stats
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.stats.BytesWritten.Add(int64(n))
	return n, err
}

// Write implements stages.Writer.
func (w *writer[T]) Write(recs []T) (err error) {
	if w.failed != nil {
		return w.failed
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("parquetio: writing %s: parquet-go panicked: %v", w.s.url, p)
		}
		if err != nil {
			w.failed = err
		}
	}()
	if check := w.s.utf8; check != nil {
		for i := range recs {
			if col, ok := check(unsafe.Pointer(&recs[i])); !ok {
				return fmt.Errorf("%w: writing %s: record %d of instance %d (%s): column %q", ErrInvalidUTF8, w.s.url,
					w.records+int64(i), w.inst.Index, formatRecord(recs[i]), col)
			}
		}
	}
	w.records += int64(len(recs))
	if len(w.s.parts) == 0 {
		return w.write("", recs)
	}
	// Group the batch by partition directory, without allocating per record.
	var last *group[T]
	for i := range recs {
		buf := w.key[:0]
		for j, p := range w.s.parts {
			if j > 0 {
				buf = append(buf, '/')
			}
			buf = append(buf, p.prefix...)
			buf = p.appendValue(buf, &recs[i])
		}
		w.key = buf
		g := last
		if g == nil || g.dir != string(buf) {
			if g = w.groups[string(buf)]; g == nil {
				g = &group[T]{dir: string(buf)}
				w.groups[g.dir] = g
			}
			last = g
		}
		if len(g.recs) == 0 {
			w.active = append(w.active, g)
		}
		g.recs = append(g.recs, recs[i])
	}
	slices.SortFunc(w.active, func(a, b *group[T]) int { return strings.Compare(a.dir, b.dir) })
	for _, g := range w.active {
		if err := w.write(g.dir, g.recs); err != nil {
			return err
		}
		clear(g.recs) // drop references to the records
		g.recs = g.recs[:0]
	}
	w.active = w.active[:0]
	if len(w.groups) > 4*w.s.cfg.maxOpenFiles {
		clear(w.groups)
	}
	return nil
}

type group[T any] struct {
	dir  string
	recs []T
}

func (w *writer[T]) write(dir string, recs []T) error {
	f, err := w.file(dir)
	if err != nil {
		return err
	}
	n, err := f.pw.Write(recs)
	f.rows += int64(n)
	if err != nil {
		return fmt.Errorf("parquetio: writing %s: %w", w.st.display(w.st.join(w.out, dir, f.name)), err)
	}
	if f.pw.Size() >= w.s.cfg.targetFileSize {
		return w.closeFile(f)
	}
	return nil
}

// file returns the open file of a partition, opening one (and closing the
// least recently written one past MaxOpenFiles) if needed.
func (w *writer[T]) file(dir string) (*partFile[T], error) {
	w.clock++
	if f, ok := w.open[dir]; ok {
		f.used = w.clock
		return f, nil
	}
	if len(w.open) >= w.s.cfg.maxOpenFiles {
		var lru *partFile[T]
		for _, f := range w.open {
			if lru == nil || f.used < lru.used {
				lru = f
			}
		}
		if err := w.closeFile(lru); err != nil {
			return nil, err
		}
	}
	name := fmt.Sprintf("part-%05d-%s-%04d%s.parquet", w.inst.Index, w.run, w.seq, w.ext)
	w.seq++
	staged := w.st.join(w.staging, dir, name+stagedSuffix)
	fw, err := w.st.create(w.ctx, staged)
	if err != nil {
		return nil, fmt.Errorf("parquetio: creating %s: %w", w.st.display(staged), err)
	}
	cw := &countingWriter{w: fw, stats: w.s.stats()}
	pw := parquet.NewGenericWriter[T](cw,
		parquet.Compression(w.s.cfg.codec),
		parquet.MaxRowsPerRowGroup(w.s.cfg.rowGroupRows),
		parquet.CreatedBy("sluice", "", ""),
	)
	f := &partFile[T]{dir: dir, name: name, fw: fw, cw: cw, pw: pw, used: w.clock}
	w.open[dir] = f
	return f, nil
}

// closeFile finishes a file: footer, flush, fsync (local) or upload.
func (w *writer[T]) closeFile(f *partFile[T]) error {
	delete(w.open, f.dir)
	staged := w.st.join(w.staging, f.dir, f.name+stagedSuffix)
	err := f.pw.Close()
	if err == nil {
		err = f.fw.Close()
	} else {
		f.fw.Abort()
	}
	if err != nil {
		return fmt.Errorf("parquetio: closing %s: %w", w.st.display(staged), err)
	}
	stats := w.s.stats()
	stats.FilesWritten.Add(1)
	stats.RowsWritten.Add(f.rows)
	rel := f.name
	if f.dir != "" {
		rel = f.dir + "/" + f.name
	}
	w.staged = append(w.staged, stagedFile{from: staged, to: w.st.join(w.out, f.dir, f.name), rel: rel, rows: f.rows, bytes: f.cw.n})
	return nil
}

// Prepare implements stages.Writer: it closes every file, making it
// durable in staging.
func (w *writer[T]) Prepare() error {
	if w.failed != nil {
		return w.failed
	}
	return w.closeAll()
}

// closeAll closes every open file, making it durable in staging.
func (w *writer[T]) closeAll() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("parquetio: writing %s: parquet-go panicked: %v", w.s.url, p)
		}
		if err != nil {
			w.failed = err
		}
	}()
	dirs := make([]string, 0, len(w.open))
	for d := range w.open {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		if err := w.closeFile(w.open[d]); err != nil {
			return err
		}
	}
	if w.st.local() {
		var sync []string
		for _, f := range w.staged {
			sync = appendDirs(sync, w.st, f.from, w.txn.Staging())
		}
		if err := w.st.syncDirs(sync); err != nil {
			return fmt.Errorf("parquetio: writing %s: %w", w.s.url, err)
		}
	}
	return nil
}

// appendDirs appends the directories from p's up to and including stop.
func appendDirs(dirs []string, st store, p, stop string) []string {
	for {
		d, _ := parent(st, p)
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
		if d == stop || len(d) <= len(stop) || d == p {
			return dirs
		}
		p = d
	}
}

// Commit implements stages.Writer: it publishes this instance's files
// under the output path. Readers that honour the manifest do not see them
// until the job's commit switches it (CommitJob).
func (w *writer[T]) Commit() error {
	if w.failed != nil {
		return w.failed
	}
	ctx := w.ctx
	var sync []string
	var files []commit.File
	for _, f := range w.staged {
		if err := w.st.publish(ctx, f.from, f.to); err != nil {
			return fmt.Errorf("parquetio: publishing %s as %s: %w", w.st.display(f.from), w.st.display(f.to), err)
		}
		w.published = append(w.published, f.to)
		files = append(files, commit.File{Path: f.rel, Rows: f.rows, Bytes: f.bytes})
		w.s.stats().FilesCommitted.Add(1)
		if w.st.local() {
			sync = appendDirs(sync, w.st, f.to, w.out)
		}
	}
	if len(sync) > 0 {
		if err := w.st.syncDirs(sync); err != nil {
			return fmt.Errorf("parquetio: writing %s: %w", w.s.url, err)
		}
	}
	w.txn.Add(files...)
	_ = w.st.removeAll(ctx, w.staging)
	w.committed = append(w.committed, w.published...)
	w.staged, w.published = nil, nil
	return nil
}

// Revert implements stages.Reverter: a later commit of the job failed, so
// the output's previous manifest is put back (by the first instance to
// revert) and the files this instance published are deleted, with the
// directories that leaves empty. The previous snapshot is whole again:
// its files are deleted only after the whole job has committed.
func (w *writer[T]) Revert() error {
	if w.reverted {
		return nil
	}
	w.reverted = true
	ctx := w.cleanup
	// The manifest goes back first: it must never list a deleted file.
	if err := w.txn.Revert(ctx); err != nil {
		return fmt.Errorf("parquetio: reverting %s: %w", w.s.url, err)
	}
	var errs []error
	var dirs []string
	for _, p := range w.committed {
		if err := w.st.remove(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", w.st.display(p), err))
		}
		if w.st.local() {
			dirs = appendDirs(dirs, w.st, p, w.out)
		}
	}
	removeEmptyDirs(dirs, w.out)
	w.committed = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("parquetio: reverting %s: %w", w.s.url, err)
	}
	return nil
}

// removeEmptyDirs removes the directories in dirs that are empty, deepest
// first, below out.
func removeEmptyDirs(dirs []string, out string) {
	slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	for _, d := range dirs {
		if len(d) > len(out) {
			_ = os.Remove(d)
		}
	}
}

// CommitJob implements stages.JobCommitter: once every instance has
// committed, it switches the output's manifest (_SUCCESS) to the new
// snapshot in one conditional write. This is the step that publishes the
// job's output.
func (s *FileSink[T]) CommitJob(ctx context.Context, inst stages.Instance) error {
	state, err := s.shared(inst, fileSafe(inst.Run))
	if err != nil {
		return err
	}
	state.mu.Lock()
	txn := state.txn
	state.mu.Unlock()
	if txn == nil {
		return fmt.Errorf("parquetio: writing %s: the sink was never opened", s.url)
	}
	if err := txn.Commit(ctx); err != nil {
		return fmt.Errorf("parquetio: writing %s: %w", s.url, err)
	}
	return nil
}

// FinishJob implements stages.JobFinisher: when the job has ended it
// deletes the files of the old snapshot that the new one no longer lists
// (after a commit), removes the run's staging and releases the output's
// lease.
// SuspendJob implements stages.JobSuspender: the lease goes, the staged
// files stay for the restored run.
func (s *FileSink[T]) SuspendJob(ctx context.Context, inst stages.Instance) {
	state, err := s.shared(inst, fileSafe(inst.Run))
	if err != nil {
		return
	}
	state.mu.Lock()
	txn := state.txn
	state.txn = nil
	state.mu.Unlock()
	if txn != nil {
		txn.Suspend(ctx)
	}
}

func (s *FileSink[T]) FinishJob(ctx context.Context, inst stages.Instance, _ bool) error {
	state, err := s.shared(inst, fileSafe(inst.Run))
	if err != nil {
		return err
	}
	state.mu.Lock()
	txn := state.txn
	state.txn = nil
	state.mu.Unlock()
	if txn == nil {
		return nil
	}
	if err := txn.Finish(ctx); err != nil {
		return fmt.Errorf("parquetio: writing %s: %w", s.url, err)
	}
	return nil
}

// Abort implements stages.Writer: it discards open and staged files, and
// the files of a commit that failed halfway.
func (w *writer[T]) Abort() error {
	ctx := w.cleanup
	var errs []error
	for _, f := range w.open {
		f.fw.Abort()
	}
	clear(w.open)
	for _, f := range w.staged {
		if err := w.st.remove(ctx, f.from); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", w.st.display(f.from), err))
		}
	}
	w.staged = nil
	for _, p := range w.published {
		if err := w.st.remove(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", w.st.display(p), err))
		}
	}
	if w.st.local() {
		// Remove the directories a failed commit created, if left empty.
		var dirs []string
		for _, p := range w.published {
			dirs = appendDirs(dirs, w.st, p, w.out)
		}
		removeEmptyDirs(dirs, w.out)
	}
	w.published = nil
	if err := w.st.removeAll(ctx, w.staging); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("parquetio: aborting %s: %w", w.s.url, err)
	}
	return nil
}

// Repair cleans up an output after a run that died writing it (a killed
// process): it takes the output's lease (at once when the dead run was on
// this host, else once its lease has expired), deletes what the dead run
// published or staged without committing and the old snapshot's files it
// had not deleted yet, and releases the lease. The next run on the output
// does the same by itself; Repair is for readers that ignore the manifest.
// It fails with ErrLeased while a live run holds the lease.
func Repair(ctx context.Context, url string) error {
	loc, err := parseLocation(ctx, url)
	if err != nil {
		return fmt.Errorf("repairing %s: %w", url, err)
	}
	txn, err := commit.Begin(ctx, commitFS(loc.st), loc.path, outputOptions(commit.Append, true, "repair", newRunID()))
	if err != nil {
		return fmt.Errorf("parquetio: repairing: %w", err)
	}
	if err := txn.Finish(ctx); err != nil {
		return fmt.Errorf("parquetio: repairing: %w", err)
	}
	return nil
}

// formatRecord renders a record for an error message, its text quoted so
// that invalid bytes show.
func formatRecord(x any) string {
	s := fmt.Sprintf("%+q", x)
	if strings.HasPrefix(s, "%!") {
		s = fmt.Sprintf("%+v", x)
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
