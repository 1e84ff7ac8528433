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
	"testing"
	"time"
)

// quiet drops the warning of a run that takes over a dead one's output.
var quiet = slog.New(slog.DiscardHandler)

// errKilled is what every write of a process fails with once crashFS has
// killed it.
var errKilled = errors.New("the process was killed")

// crashFS is an FS whose process is killed as it writes the manifest that
// would publish checkpoint crashAt: that write fails, and so does every
// write after it.
type crashFS struct {
	FS
	crashAt uint64

	mu     sync.Mutex
	killed bool
}

func (f *crashFS) WriteFile(ctx context.Context, p string, data []byte, cond Cond) (string, error) {
	f.mu.Lock()
	if !f.killed && base(filepath.ToSlash(p)) == ManifestName {
		m, err := ParseManifest(data)
		f.killed = err == nil && m != nil && m.Checkpoint == f.crashAt
	}
	killed := f.killed
	f.mu.Unlock()
	if killed {
		return "", fmt.Errorf("writing %s: %w", p, errKilled)
	}
	return f.FS.WriteFile(ctx, p, data, cond)
}

// kill abandons a run's transaction as a killed process does: its lease is
// no longer renewed, and nothing of it runs again.
func kill(txn *Txn) {
	close(txn.stop)
	txn.renewing.Wait()
}

// ckptWriter is a sink instance as the Parquet writer behaves in a job
// that does not end by itself: it stages files, and at a checkpoint's
// completion publishes the ones staged before its barrier (renames) and
// then has the transaction write the manifest.
type ckptWriter struct {
	t    *testing.T
	txn  *Txn
	seq  int
	dirs []string          // the partition directories it writes, in turn
	at   map[uint64][]File // the files staged before each checkpoint's barrier
}

// stage writes n files staged before checkpoint ck's barrier, each holding
// two records named after it.
func (w *ckptWriter) stage(ck uint64, n int) {
	w.t.Helper()
	for range n {
		rel := fmt.Sprintf("%s/part-%05d-live.dat", w.dirs[w.seq%len(w.dirs)], w.seq)
		w.seq++
		data := rel + "#0\n" + rel + "#1\n"
		p := w.staged(rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			w.t.Fatal(err)
		}
		w.at[ck] = append(w.at[ck], File{Path: rel, Rows: 2, Bytes: int64(len(data))})
	}
}

func (w *ckptWriter) staged(rel string) string {
	return filepath.Join(w.txn.Staging(), "00000", filepath.FromSlash(rel)+".inprogress")
}

// publish renames the files staged before checkpoint ck into the output
// and adds them to the transaction.
func (w *ckptWriter) publish(ck uint64) {
	w.t.Helper()
	for _, f := range w.at[ck] {
		if err := w.txn.fsys.Publish(context.Background(), w.staged(f.Path), w.txn.abs(f.Path)); err != nil {
			w.t.Fatal(err)
		}
	}
	w.txn.Add(w.at[ck]...)
}

// reopen takes back, as the writer's Reopen does at the checkpoint it is
// restored from, the files staged before the barriers of cks that are
// gone from staging and in the output: published at a completion before
// the process died.
func (w *ckptWriter) reopen(cks ...uint64) {
	w.t.Helper()
	for _, ck := range cks {
		for _, f := range w.at[ck] {
			if _, err := os.Stat(w.staged(f.Path)); !errors.Is(err, os.ErrNotExist) {
				w.t.Fatalf("checkpoint %d's %s is still staged: %v", ck, f.Path, err)
			}
			if _, err := os.Stat(w.txn.abs(f.Path)); err != nil {
				w.t.Fatalf("checkpoint %d's %s is not published: %v", ck, f.Path, err)
			}
			w.txn.Add(f)
		}
	}
}

// paths returns the paths of the files staged before the barriers of
// cks, and of all the files it staged when cks is empty, sorted.
func (w *ckptWriter) paths(cks ...uint64) []string {
	var out []string
	for ck, fs := range w.at {
		if len(cks) > 0 && !slices.Contains(cks, ck) {
			continue
		}
		for _, f := range fs {
			out = append(out, f.Path)
		}
	}
	slices.Sort(out)
	return out
}

// TestCrashBetweenPublishAndManifest kills a job that does not end by
// itself after it has renamed a checkpoint's files into the output and
// before the manifest naming them is written, then resumes the run from
// that checkpoint (Resume) as a new process: its writer takes the files
// back, and the next checkpoint's manifest and the run's last one name
// every file exactly once; nothing is deleted that a snapshot needs, and
// the snapshot holds each record once. The crash comes at the run's first
// publication (over an output with no manifest, or an older run's
// snapshot) or at a later one (over its own).
func TestCrashBetweenPublishAndManifest(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		old  []string // the older run's snapshot
		keep []string // the part of it the run leaves
	}{
		{mode: ErrorIfExists},
		{mode: Overwrite},
		{mode: Overwrite, old: []string{"d=1/part-00000-old.dat"}},
		{mode: Append, old: []string{"d=1/part-00000-old.dat"}, keep: []string{"d=1/part-00000-old.dat"}},
		{mode: OverwritePartitions, old: []string{"d=0/part-00000-old.dat", "d=1/part-00000-old.dat"}, keep: []string{"d=0/part-00000-old.dat"}},
	} {
		for _, crashAt := range []uint64{1, 2, 3} {
			t.Run(fmt.Sprintf("%v/old=%d/crash=%d", tc.mode, len(tc.old), crashAt), func(t *testing.T) {
				crashBetweenPublishAndManifest(t, tc.mode, tc.old, tc.keep, crashAt)
			})
		}
	}
}

func crashBetweenPublishAndManifest(t *testing.T, mode Mode, old, keep []string, crashAt uint64) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	if len(old) > 0 {
		run(t, out, "old", Overwrite, old...)
	}
	now := time.Unix(1_700_000_000, 0)
	o := opts("live", mode)
	o.Now, o.LeaseTTL, o.Logger = func() time.Time { return now }, time.Hour, quiet
	txn, err := Begin(ctx, &crashFS{FS: Local{}, crashAt: crashAt}, out, o)
	if err != nil {
		t.Fatal(err)
	}
	w := &ckptWriter{t: t, txn: txn, dirs: []string{"d=1", "d=2"}, at: map[uint64][]File{}}
	for ck := uint64(1); ck <= crashAt; ck++ {
		w.stage(ck, int(ck))
		w.publish(ck)
		err := txn.CommitCheckpoint(ctx, ck)
		if ck < crashAt && err != nil {
			t.Fatalf("checkpoint %d: %v", ck, err)
		}
		if ck == crashAt && !errors.Is(err, errKilled) {
			t.Fatalf("checkpoint %d: %v, want the process killed at its manifest", ck, err)
		}
	}
	kill(txn)
	before := old // the snapshot the manifest still holds
	if crashAt > 1 {
		var done []uint64
		for ck := uint64(1); ck < crashAt; ck++ {
			done = append(done, ck)
		}
		before = append(w.paths(done...), keep...)
		slices.Sort(before)
	}
	if got := manifestFiles(t, out); !slices.Equal(got, before) {
		t.Fatalf("after the crash the manifest lists %q, want the snapshot before checkpoint %d, %q", got, crashAt, before)
	}
	published := w.paths()

	// A new process resumes the run from checkpoint crashAt, its lease
	// taken over once the dead one's has expired.
	ro := opts("live", mode)
	ro.Resume = true
	ro.Now, ro.LeaseTTL, ro.Logger = func() time.Time { return now.Add(2 * time.Hour) }, time.Hour, quiet
	again, err := Begin(ctx, Local{}, out, ro)
	if err != nil {
		t.Fatalf("resuming the run after the crash at checkpoint %d: %v", crashAt, err)
	}
	if got, want := again.Checkpoint(), crashAt-1; got != want {
		t.Fatalf("resumed at checkpoint %d, want %d (the last whose manifest was written)", got, want)
	}
	for _, rel := range published {
		if _, err := os.Stat(filepath.Join(out, filepath.FromSlash(rel))); err != nil {
			t.Fatalf("resuming deleted %s, published at a checkpoint: %v", rel, err)
		}
	}
	w.txn = again
	// The state of checkpoint crashAt names what was staged at its barrier
	// and not yet published: the checkpoint's files, and the previous
	// one's if its completion came after the barrier.
	reopened := []uint64{crashAt}
	if crashAt > 1 {
		reopened = append(reopened, crashAt-1)
	}
	w.reopen(reopened...)

	want := func() []string {
		all := append(w.paths(), keep...)
		slices.Sort(all)
		return all
	}
	w.stage(crashAt+1, 2)
	w.publish(crashAt + 1)
	if err := again.CommitCheckpoint(ctx, crashAt+1); err != nil {
		t.Fatal(err)
	}
	m, _, err := ReadManifest(ctx, Local{}, out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Checkpoint != crashAt+1 || !slices.Equal(m.Paths(), want()) {
		t.Fatalf("checkpoint %d after resuming published %q at checkpoint %d, want %q", crashAt+1, m.Paths(), m.Checkpoint, want())
	}

	w.stage(0, 1) // after the last checkpoint, published by the job's end
	w.publish(0)
	if err := again.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	m, _, err = ReadManifest(ctx, Local{}, out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Checkpoint != 0 || !slices.Equal(m.Paths(), want()) {
		t.Fatalf("the run's end published %q at checkpoint %d, want %q at 0", m.Paths(), m.Checkpoint, want())
	}
	if got := slices.DeleteFunc(dataFiles(t, out), func(rel string) bool { return rel == ManifestName }); !slices.Equal(got, want()) {
		t.Fatalf("the output holds %q, want the snapshot's %q and nothing else", got, want())
	}
	seen := map[string]int{}
	for _, f := range m.Files {
		data, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatalf("reading the snapshot: %v", err)
		}
		for rec := range strings.Lines(string(data)) {
			seen[rec]++
		}
	}
	for rec, n := range seen {
		if n != 1 {
			t.Errorf("the snapshot holds record %q %d times", strings.TrimSpace(rec), n)
		}
	}
	if got, want := len(seen), 2*len(w.paths())+len(keep); got != want {
		t.Errorf("the snapshot holds %d records, want %d", got, want)
	}
}
