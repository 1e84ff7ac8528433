package commit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Mode says what a run does with an output's current snapshot.
type Mode int

const (
	// ErrorIfExists fails if the output holds any file.
	ErrorIfExists Mode = iota
	// Overwrite replaces the snapshot with the run's files.
	Overwrite
	// OverwritePartitions replaces only the partition directories the run
	// writes files into (Spark's partitionOverwriteMode=dynamic).
	OverwritePartitions
	// Append adds the run's files to the snapshot.
	Append
)

func (m Mode) String() string {
	switch m {
	case ErrorIfExists:
		return "error-if-exists"
	case Overwrite:
		return "overwrite"
	case OverwritePartitions:
		return "overwrite-partitions"
	case Append:
		return "append"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Errors of the protocol.
var (
	// ErrExists is wrapped when the output exists and the mode is
	// ErrorIfExists.
	ErrExists = errors.New("output exists")
	// ErrUnsafe is wrapped when an output path is refused: a regular
	// file, the root, the home or working directory, or a directory of
	// files Sluice did not write.
	ErrUnsafe = errors.New("unsafe output path")
)

// Options configure a run's transaction on an output.
type Options struct {
	Mode Mode
	// Force writes into a directory that the safety rails refuse (the
	// working or home directory, one holding files Sluice did not write).
	// Files Sluice did not write are never deleted, forced or not.
	Force bool
	Job   string
	Run   string
	// Resume: the run goes on from a checkpoint that an earlier process of
	// it took (a restore): the lease of that process, which died or
	// stopped, may name the run, and its staging is the run's own, kept
	// for the sinks to take back. A run the snapshot already holds is still
	// refused.
	Resume bool
	// ForceHint says how the user forces it, for messages
	// ("parquetio.Force()").
	ForceHint string
	// Ours reports whether a file name is one that this connector writes
	// (part-00000-<run>-0000.snappy.parquet): such files not listed in the
	// manifest are a dead run's, and are deleted when cleaning up.
	Ours func(name string) bool
	// Data reports whether a file name is a data file to readers that
	// ignore manifests (*.parquet): what a snapshot is made of when the
	// output has no manifest yet.
	Data func(name string) bool
	// LeaseTTL is how long a lease lasts unless renewed (30 s); it is
	// renewed every third of it.
	LeaseTTL time.Duration
	// Now is the clock (time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Txn is one run's transaction on an output directory, shared by the run's
// sink instances of one process.
type Txn struct {
	fsys    FS
	out     string
	o       Options
	lease   *lease
	created bool // Begin made the output directory

	prev        *Manifest // the snapshot at Begin; nil: none
	prevVersion string
	prevListed  bool // prev was made by listing (no manifest): none of it is deleted unless Ours

	// own: the snapshot at Begin is this run's, published at checkpoints
	// by a process of it that stopped or died (Options.Resume): the run
	// goes on adding to it.
	own bool

	commitMu  sync.Mutex // one manifest write at a time
	mu        sync.Mutex
	files     []File
	committed *Manifest // what Commit published
	version   string    // of the manifest Commit wrote
	// ckpt is the newest checkpoint published (CommitCheckpoint), whose
	// manifest Revert puts back; dropped: the old snapshot's files are
	// deleted.
	ckpt        uint64
	ckptM       *Manifest
	ckptVersion string
	dropped     bool
	reverted    bool
	finished    bool
	lost        error
	stop        chan struct{}
	renewing    sync.WaitGroup
}

// Begin starts a run's transaction on the output at out: it applies the
// safety rails, takes the output's lease (cleaning up after a run that
// died holding it), reads the current snapshot and checks it against the
// mode.
func Begin(ctx context.Context, fsys FS, out string, o Options) (*Txn, error) {
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Ours == nil {
		o.Ours = func(string) bool { return false }
	}
	if o.Data == nil {
		o.Data = func(name string) bool { return !hidden(name) }
	}
	t := &Txn{fsys: fsys, out: out, o: o, stop: make(chan struct{})}
	isFile, _, exists, err := fsys.Stat(ctx, out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fsys.Display(out), err)
	}
	if isFile {
		return nil, fmt.Errorf("%s: %w: it is a regular file, not a directory (delete it or choose another output)", fsys.Display(out), ErrUnsafe)
	}
	if err := t.checkPath(); err != nil {
		return nil, err
	}
	if !exists && fsys.Local() {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return nil, err
		}
		t.created = true
	}
	t.lease, err = takeLease(ctx, fsys, out, &t.o)
	if err != nil {
		t.removeCreated()
		return nil, err
	}
	fail := func(err error) (*Txn, error) {
		t.release(ctx, false)
		t.removeCreated()
		return nil, err
	}
	t.prev, t.prevVersion, err = ReadManifest(ctx, fsys, out)
	if err != nil {
		return fail(err)
	}
	if o.Resume && t.prev != nil && t.prev.Run == o.Run && t.prev.Checkpoint > 0 {
		// This run's own snapshot, published at its checkpoints: it goes on.
		t.own, t.files, t.ckpt = true, slices.Clone(t.prev.Files), t.prev.Checkpoint
		t.committed, t.version, t.ckptM, t.ckptVersion = t.prev, t.prevVersion, t.prev, t.prevVersion
		t.dropped = true
	}
	if err := t.checkRunReused(ctx); err != nil {
		return fail(err)
	}
	if t.lease.prev != nil {
		o.Logger.Warn("cleaning up after a run that did not finish", "output", fsys.Display(out), "run", t.lease.prev.Run, "epoch", t.lease.prev.Epoch)
		if err := t.fence(ctx); err != nil {
			return fail(err)
		}
		if err := t.recover(ctx); err != nil {
			return fail(fmt.Errorf("%s: cleaning up after run %s: %w", fsys.Display(out), t.lease.prev.Run, err))
		}
	}
	if err := t.checkMode(ctx); err != nil {
		return fail(err)
	}
	t.renewing.Add(1)
	go t.renew()
	return t, nil
}

// ErrRunReused is wrapped when a run's ID has written the output before
// (a job replayed with the same seed): its files would replace the ones of
// the snapshot they are named like.
var ErrRunReused = errors.New("the run's ID has written this output before")

// checkRunReused refuses a run whose ID the output already knows: in its
// snapshot, in the lease it takes over, or in its staging.
func (t *Txn) checkRunReused(ctx context.Context) error {
	run := t.o.Run
	reused := t.lease.prev != nil && t.lease.prev.Run == run && !t.o.Resume
	if t.prev != nil && !reused && !t.own {
		reused = t.prev.Run == run || slices.ContainsFunc(t.prev.Files, func(f File) bool { return strings.Contains(base(f.Path), run) })
	}
	if !reused && !t.o.Resume {
		_, _, exists, err := t.fsys.Stat(ctx, t.Staging())
		if err != nil {
			return err
		}
		reused = exists
	}
	if reused {
		return fmt.Errorf("%s: %w: run %s (a replay with the same seed?): write the replay to another output, or run with another seed",
			t.fsys.Display(t.out), ErrRunReused, run)
	}
	return nil
}

func hidden(name string) bool { return strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") }

// checkPath refuses the root, the working and home directories and their
// ancestors, unless forced.
func (t *Txn) checkPath() error {
	if !t.fsys.Local() {
		if t.out == "" && !t.o.Force {
			return fmt.Errorf("%s: %w: an output cannot be a bucket's root (add a prefix, or %s)", t.fsys.Display(t.out), ErrUnsafe, t.o.ForceHint)
		}
		return nil
	}
	out := filepath.Clean(t.out)
	if out == string(filepath.Separator) {
		return fmt.Errorf("%s: %w: an output cannot be the root directory", out, ErrUnsafe)
	}
	if t.o.Force {
		return nil
	}
	for what, dir := range map[string]func() (string, error){"working": os.Getwd, "home": os.UserHomeDir} {
		d, err := dir()
		if err != nil || d == "" {
			continue
		}
		if d = filepath.Clean(d); d == out || strings.HasPrefix(d, out+string(filepath.Separator)) {
			rel := "is"
			if d != out {
				rel = "holds"
			}
			return fmt.Errorf("%s: %w: it %s the %s directory (choose a directory of its own, or %s)", out, ErrUnsafe, rel, what, t.o.ForceHint)
		}
	}
	return nil
}

// removeCreated removes Sluice's own directory from an output that has no
// snapshot, and the output directory itself if Begin made it and it is
// left empty (local only).
func (t *Txn) removeCreated() {
	if t.lease != nil && t.lost == nil {
		_ = t.fsys.Remove(context.Background(), t.lease.path)
	}
	if !t.fsys.Local() {
		return
	}
	_ = os.Remove(filepath.Join(t.out, InternalDir, leaseDir))
	_ = os.Remove(filepath.Join(t.out, InternalDir, "staging"))
	_ = os.Remove(filepath.Join(t.out, InternalDir))
	if t.created {
		_ = os.Remove(t.out)
	}
}

// walk lists every file below the output but Sluice's own directory, as
// paths relative to it.
func (t *Txn) walk(ctx context.Context) ([]File, error) {
	var out []File
	var walk func(dir, rel string) error
	walk = func(dir, rel string) error {
		files, dirs, err := t.fsys.List(ctx, dir)
		if errors.Is(err, ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range files {
			out = append(out, File{Path: joinRel(rel, f.Name), Bytes: f.Size, Rows: -1})
		}
		for _, d := range dirs {
			if rel == "" && d == InternalDir {
				continue
			}
			if err := walk(t.fsys.Join(dir, d), joinRel(rel, d)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(t.out, ""); err != nil {
		return nil, fmt.Errorf("listing %s: %w", t.fsys.Display(t.out), err)
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

func base(rel string) string { return rel[strings.LastIndexByte(rel, '/')+1:] }

// dataFile reports whether a listed file is data to a reader that ignores
// manifests: a data name in directories that are not hidden.
func (t *Txn) dataFile(rel string) bool {
	parts := strings.Split(rel, "/")
	for _, p := range parts[:len(parts)-1] {
		if hidden(p) {
			return false
		}
	}
	return t.o.Data(parts[len(parts)-1])
}

// checkMode checks the output against the mode; with no manifest, it
// takes the data files found, but a resumed run's own, as the current
// snapshot.
func (t *Txn) checkMode(ctx context.Context) error {
	if t.own {
		return nil
	}
	if t.prev != nil {
		if t.o.Mode == ErrorIfExists {
			return fmt.Errorf("%s: %w: it holds a snapshot of run %s of job %q (%d files; overwrite or append to it)",
				t.fsys.Display(t.out), ErrExists, t.prev.Run, t.prev.Job, len(t.prev.Files))
		}
		return nil
	}
	files, err := t.walk(ctx)
	if err != nil {
		return err
	}
	files = slices.DeleteFunc(files, func(f File) bool { return t.resumedOwn(f.Path) })
	var foreign, data []string
	snap := &Manifest{Format: ManifestFormat}
	for _, f := range files {
		if f.Path == ManifestName {
			continue
		}
		if t.dataFile(f.Path) {
			data = append(data, f.Path)
			snap.Files = append(snap.Files, f)
		}
		if !t.o.Ours(base(f.Path)) {
			foreign = append(foreign, f.Path)
		}
	}
	switch t.o.Mode {
	case ErrorIfExists:
		if len(files) > 0 {
			return fmt.Errorf("%s: %w: %s (overwrite or append to it)", t.fsys.Display(t.out), ErrExists, t.fsys.Display(t.fsys.Join(t.out, files[0].Path)))
		}
	case Overwrite, OverwritePartitions:
		if len(foreign) > 0 && !t.o.Force {
			return fmt.Errorf("%s: %w: it holds files Sluice did not write and no Sluice manifest (%s): refusing to write over them (choose another directory, or %s to write beside them; they are never deleted)",
				t.fsys.Display(t.out), ErrUnsafe, sample(foreign), t.o.ForceHint)
		}
	}
	if len(data) > 0 {
		t.prev, t.prevListed = snap, true
	}
	return nil
}

func sample(names []string) string {
	if len(names) <= 3 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:3], ", "), len(names)-3)
}

// fence makes the manifest's version change after a takeover, so that the
// run that lost the lease cannot switch it: its write is conditional on
// the version it read. Local outputs need none (the manifest's write checks
// the lease under the output's lock), but it does no harm.
func (t *Txn) fence(ctx context.Context) error {
	if t.fsys.Local() {
		return nil
	}
	m := &Manifest{Format: ManifestFormat, Files: []File{}}
	if t.prev != nil {
		c := *t.prev
		m = &c
	}
	m.Epoch = t.lease.rec.Epoch
	cond := Cond{IfAbsent: t.prevVersion == "", IfMatch: t.prevVersion}
	v, err := t.fsys.WriteFile(ctx, t.fsys.Join(t.out, ManifestName), m.encode(), cond)
	if err != nil {
		return fmt.Errorf("fencing %s: %w", t.fsys.Display(t.fsys.Join(t.out, ManifestName)), err)
	}
	t.prev, t.prevVersion = m, v
	return nil
}

// recover deletes what runs that died left: their staging, and the data
// files of Sluice's naming that the manifest does not list (published by
// a run that died before it switched the manifest, or of an older
// snapshot that a run died before deleting).
func (t *Txn) recover(ctx context.Context) error {
	staging := t.fsys.Join(t.out, InternalDir, "staging")
	_, runs, err := t.fsys.List(ctx, staging)
	if err != nil && !errors.Is(err, ErrNotExist) {
		return err
	}
	var errs []error
	for _, r := range runs {
		if r != t.o.Run {
			if err := t.fsys.RemoveAll(ctx, t.fsys.Join(staging, r)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	files, err := t.walk(ctx)
	if err != nil {
		return err
	}
	var dirs []string
	for _, f := range files {
		if !t.o.Ours(base(f.Path)) || (t.prev != nil && t.prev.Has(f.Path)) {
			continue
		}
		if t.resumedOwn(f.Path) {
			continue
		}
		if err := t.fsys.Remove(ctx, t.abs(f.Path)); err != nil {
			errs = append(errs, err)
		}
		dirs = append(dirs, dirOf(t.fsys, t.abs(f.Path)))
	}
	t.removeEmptyDirs(dirs)
	return errors.Join(errs...)
}

// resumedOwn reports whether a file below the output is one that this
// run, resumed, published at a checkpoint: the manifest may not list it
// yet (a process of the run died between publishing it and writing the
// manifest), and it is no earlier snapshot's. It is left to the resumed
// writers: reopened at the checkpoint whose completion published it, a
// writer takes it back and has a manifest list it at once; reopened at an
// older checkpoint, whose replay writes its records again, the writer
// deletes it (each its own files, those begun after that checkpoint).
func (t *Txn) resumedOwn(rel string) bool {
	return t.o.Resume && t.o.Ours(base(rel)) && strings.Contains(base(rel), t.o.Run)
}

func (t *Txn) abs(rel string) string {
	return t.fsys.Join(append([]string{t.out}, strings.Split(rel, "/")...)...)
}

// removeEmptyDirs removes the directories in dirs that are empty, deepest
// first, and their parents up to the output (local only).
func (t *Txn) removeEmptyDirs(dirs []string) {
	if !t.fsys.Local() {
		return
	}
	seen := map[string]bool{}
	var all []string
	for _, d := range dirs {
		for d != t.out && strings.HasPrefix(d, t.out+string(filepath.Separator)) && !seen[d] {
			seen[d] = true
			all = append(all, d)
			d = filepath.Dir(d)
		}
	}
	slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
	for _, d := range all {
		_ = os.Remove(d)
	}
}

// renew renews the lease every third of its time to live until Finish.
func (t *Txn) renew() {
	defer t.renewing.Done()
	tick := time.NewTicker(t.o.LeaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		t.mu.Lock()
		if t.lost == nil {
			rec := t.lease.rec
			rec.Expires = t.o.Now().Add(t.o.LeaseTTL).UnixMilli()
			if err := t.lease.update(context.Background(), rec); err != nil {
				if errors.Is(err, ErrPrecondition) {
					t.lost = fmt.Errorf("%w: %v", ErrLeaseLost, err)
				}
				t.o.Logger.Warn("renewing the output's lease failed", "output", t.fsys.Display(t.out), "err", err)
			}
		}
		t.mu.Unlock()
	}
}

// Staging returns the run's staging directory: inside the output, on its
// file system, where no reader looks.
func (t *Txn) Staging() string { return t.fsys.Join(t.out, InternalDir, "staging", t.o.Run) }

// Epoch returns the run's lease epoch.
func (t *Txn) Epoch() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lease.rec.Epoch
}

// Add records files an instance has published (paths relative to the
// output, "/" separated).
func (t *Txn) Add(files ...File) {
	t.mu.Lock()
	t.files = append(t.files, files...)
	t.mu.Unlock()
}

// next builds the new snapshot from the current one and the run's files
// (which, resuming its own snapshot, hold it already).
func (t *Txn) next() *Manifest {
	m := &Manifest{Format: ManifestFormat, Job: t.o.Job, Run: t.o.Run, Epoch: t.lease.rec.Epoch,
		Mode: t.o.Mode.String(), Committed: nowString(t.o.Now())}
	m.Files = append(m.Files, t.files...)
	if t.prev != nil && !t.own {
		switch t.o.Mode {
		case Append:
			m.Files = append(m.Files, t.prev.Files...)
		case OverwritePartitions:
			written := map[string]bool{}
			for _, f := range t.files {
				written[dirOfRel(f.Path)] = true
			}
			for _, f := range t.prev.Files {
				if !written[dirOfRel(f.Path)] {
					m.Files = append(m.Files, f)
				}
			}
		}
	}
	slices.SortFunc(m.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	m.Files = slices.CompactFunc(m.Files, func(a, b File) bool { return a.Path == b.Path })
	if m.Files == nil {
		m.Files = []File{}
	}
	return m
}

func dirOfRel(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

// checkLease is the fence of a manifest write: the run must still hold
// the lease.
func (t *Txn) checkLease(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost != nil {
		return t.lost
	}
	return t.lease.check(ctx, t.o.Now())
}

// Commit publishes the run's snapshot: it replaces the manifest with one
// listing the new snapshot, conditionally on the manifest read at Begin
// (or the one the run's last CommitCheckpoint wrote) and on the run still
// holding the lease. This is the one step that switches readers from the
// old snapshot to the new one.
func (t *Txn) Commit(ctx context.Context) error { return t.commit(ctx, 0) }

// ErrStale is wrapped when CommitCheckpoint is called for a checkpoint
// older than the one the output's manifest holds: a writer of an attempt
// that was rolled back.
var ErrStale = errors.New("commit: a checkpoint older than the output's")

// CommitCheckpoint publishes the files added so far when checkpoint id of
// a job that does not end by itself has completed: as Commit, and each
// call replaces the manifest the last one wrote, recording id in it. A
// call for a checkpoint older than the last one published is refused
// (ErrStale). After the first, the old snapshot's files that the new one
// no longer lists are deleted, as Finish does after Commit.
func (t *Txn) CommitCheckpoint(ctx context.Context, id uint64) error {
	if id == 0 {
		return fmt.Errorf("commit: checkpoint 0")
	}
	if err := t.commit(ctx, id); err != nil {
		return err
	}
	t.mu.Lock()
	drop := !t.dropped
	t.dropped = true
	committed := t.committed
	t.mu.Unlock()
	if drop {
		if err := t.dropOld(ctx, committed); err != nil {
			t.o.Logger.Warn("the output's old files could not all be deleted; the next run deletes them", "output", t.fsys.Display(t.out), "err", err)
		}
	}
	return nil
}

// Checkpoint returns the newest checkpoint the output's manifest was
// published at by this run (0: none).
func (t *Txn) Checkpoint() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ckpt
}

func (t *Txn) commit(ctx context.Context, id uint64) error {
	t.commitMu.Lock()
	defer t.commitMu.Unlock()
	t.mu.Lock()
	if id != 0 && id < t.ckpt {
		last := t.ckpt
		t.mu.Unlock()
		return fmt.Errorf("%w: checkpoint %d after %d was published", ErrStale, id, last)
	}
	m := t.next()
	m.Checkpoint = id // 0 at the end: the run is over, and a resumed process of it is refused
	version, absent := t.prevVersion, t.prevVersion == ""
	if t.committed != nil {
		version, absent = t.version, false
	}
	t.mu.Unlock()
	cond := Cond{IfAbsent: absent, IfMatch: version, Fence: t.checkLease, Lock: t.lease.lock}
	p := t.fsys.Join(t.out, ManifestName)
	v, err := t.fsys.WriteFile(ctx, p, m.encode(), cond)
	if errors.Is(err, ErrPrecondition) {
		err = fmt.Errorf("%w (another run changed the output since this one began; nothing was published)", err)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", t.fsys.Display(p), err)
	}
	t.mu.Lock()
	t.committed, t.version = m, v
	if id != 0 {
		t.ckpt, t.ckptM, t.ckptVersion = id, m, v
	}
	t.mu.Unlock()
	return nil
}

// Revert puts the previous manifest back after Commit, when a later commit
// of the job failed; the caller then deletes the files it published. Only
// the first call does anything.
func (t *Txn) Revert(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.committed == nil || t.reverted {
		return nil
	}
	t.reverted = true
	p := t.fsys.Join(t.out, ManifestName)
	var err error
	switch {
	case t.ckptM != nil:
		// What completed checkpoints published stays: back to the last.
		if t.committed != t.ckptM {
			var v string
			if v, err = t.fsys.WriteFile(ctx, p, t.ckptM.encode(), Cond{IfMatch: t.version, Lock: t.lease.lock}); err == nil {
				t.committed, t.version = t.ckptM, v
			}
		}
		if err != nil {
			return fmt.Errorf("restoring %s: %w", t.fsys.Display(p), err)
		}
		return nil
	case t.prev != nil && !t.prevListed:
		_, err = t.fsys.WriteFile(ctx, p, t.prev.encode(), Cond{IfMatch: t.version, Lock: t.lease.lock})
	default:
		// There was no manifest: remove ours.
		unlock := func() {}
		if t.fsys.Local() {
			if u, lerr := lockFile(t.lease.lock); lerr == nil {
				unlock = u
			}
		}
		err = t.fsys.Remove(ctx, p)
		unlock()
	}
	if err != nil {
		return fmt.Errorf("restoring %s: %w", t.fsys.Display(p), err)
	}
	t.committed = nil
	return nil
}

// Finish ends the run's transaction once the job has ended, committed
// (ok) or not. After a commit it deletes the files the new snapshot no
// longer lists (only files of an earlier Sluice manifest, or of Sluice's
// naming), then removes the run's staging and releases the lease. A
// failure to delete is logged and left for the next run.
func (t *Txn) Finish(ctx context.Context) error {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return nil
	}
	t.finished = true
	committed := t.committed
	t.mu.Unlock()
	close(t.stop)
	t.renewing.Wait()
	var errs []error
	if err := t.dropOld(ctx, committed); err != nil {
		errs = append(errs, err)
	}
	if err := t.fsys.RemoveAll(ctx, t.Staging()); err != nil {
		errs = append(errs, err)
	}
	if t.fsys.Local() {
		_ = os.Remove(filepath.Join(t.out, InternalDir, "staging"))
	}
	err := errors.Join(errs...)
	if err != nil {
		t.o.Logger.Warn("the output's old files could not all be deleted; the next run deletes them", "output", t.fsys.Display(t.out), "err", err)
	}
	t.release(ctx, err != nil)
	if committed == nil && t.prev == nil {
		t.removeCreated()
	}
	return err
}

// dropOld deletes the files of the snapshot at Begin that committed, the
// snapshot published since, no longer lists (only files of an earlier
// Sluice manifest, or of Sluice's naming).
func (t *Txn) dropOld(ctx context.Context, committed *Manifest) error {
	if committed == nil || t.prev == nil || t.own {
		return nil
	}
	var errs []error
	var dirs []string
	for _, f := range t.prev.Files {
		if committed.Has(f.Path) || (t.prevListed && !t.o.Ours(base(f.Path))) {
			continue
		}
		if err := t.fsys.Remove(ctx, t.abs(f.Path)); err != nil && !errors.Is(err, ErrNotExist) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", t.fsys.Display(t.abs(f.Path)), err))
		}
		dirs = append(dirs, dirOf(t.fsys, t.abs(f.Path)))
	}
	t.removeEmptyDirs(dirs)
	return errors.Join(errs...)
}

// Suspend ends the run's transaction without committing and without
// deleting its staging: the job stopped at a checkpoint, and a later
// process of the same run (Options.Resume) takes the staged files back.
// The lease is released, dirty, so that the next run may take it at once.
func (t *Txn) Suspend(ctx context.Context) {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return
	}
	t.finished = true
	t.mu.Unlock()
	close(t.stop)
	t.renewing.Wait()
	t.release(ctx, true)
}

// release marks the lease released (dirty: files are left to clean up).
func (t *Txn) release(ctx context.Context, dirty bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost != nil {
		return
	}
	rec := t.lease.rec
	rec.Released, rec.Dirty = true, dirty
	if err := t.lease.update(ctx, rec); err != nil {
		t.o.Logger.Warn("releasing the output's lease failed; it expires on its own", "output", t.fsys.Display(t.out), "err", err)
		return
	}
}

// MarkConfig returns err marked as also being config (errors.Is(err,
// config) holds, its message unchanged) when it is a mistake of the user's
// configuration: ErrUnsafe or ErrExists. Connectors pass stages.ErrConfig,
// so that the command line exits with a usage status.
func MarkConfig(err, config error) error {
	if err == nil || !(errors.Is(err, ErrUnsafe) || errors.Is(err, ErrExists) || errors.Is(err, ErrRunReused)) {
		return err
	}
	return marked{err, config}
}

type marked struct{ err, also error }

func (m marked) Error() string        { return m.err.Error() }
func (m marked) Unwrap() error        { return m.err }
func (m marked) Is(target error) bool { return target == m.also }
