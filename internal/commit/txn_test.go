package commit

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/testenv"
)

var ours = regexp.MustCompile(`^part-[0-9]{5}-[0-9a-z]+\.dat$`).MatchString

func opts(run string, mode Mode) Options {
	return Options{Mode: mode, Job: "test", Run: run, Ours: ours, ForceHint: "Force",
		Data: func(n string) bool { return strings.HasSuffix(n, ".dat") }}
}

// publish writes data files of a run straight into the output, as a sink's
// Commit does, and records them.
func publish(t *testing.T, txn *Txn, out string, rels ...string) {
	t.Helper()
	for _, rel := range rels {
		p := filepath.Join(out, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
		txn.Add(File{Path: rel, Rows: 1, Bytes: int64(len(rel))})
	}
}

func run(t *testing.T, out, runID string, mode Mode, rels ...string) {
	t.Helper()
	ctx := context.Background()
	txn, err := Begin(ctx, Local{}, out, opts(runID, mode))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, txn, out, rels...)
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := txn.Finish(ctx); err != nil {
		t.Fatal(err)
	}
}

// dataFiles lists the output's files outside Sluice's directory.
func dataFiles(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		if d.IsDir() && rel == InternalDir {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

func manifestFiles(t *testing.T, out string) []string {
	t.Helper()
	m, _, err := ReadManifest(context.Background(), Local{}, out)
	if err != nil {
		t.Fatal(err)
	}
	if m == nil {
		return nil
	}
	return m.Paths()
}

func TestModes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	run(t, out, "r1", Overwrite, "d=1/part-00000-r1.dat", "d=2/part-00000-r1.dat")
	if err := os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, out, "r2", Append, "d=3/part-00000-r2.dat")
	want := []string{"d=1/part-00000-r1.dat", "d=2/part-00000-r1.dat", "d=3/part-00000-r2.dat"}
	if got := manifestFiles(t, out); !slices.Equal(got, want) {
		t.Fatalf("after append the manifest lists %v, want %v", got, want)
	}
	run(t, out, "r3", OverwritePartitions, "d=2/part-00000-r3.dat", "d=4/part-00000-r3.dat")
	want = []string{"d=1/part-00000-r1.dat", "d=2/part-00000-r3.dat", "d=3/part-00000-r2.dat", "d=4/part-00000-r3.dat"}
	if got := manifestFiles(t, out); !slices.Equal(got, want) {
		t.Fatalf("after a dynamic overwrite the manifest lists %v, want %v", got, want)
	}
	all := append(slices.Clone(want), "notes.txt", ManifestName)
	slices.Sort(all)
	if got := dataFiles(t, out); !slices.Equal(got, all) {
		t.Fatalf("after a dynamic overwrite the output holds %v", got)
	}
	run(t, out, "r4", Overwrite, "part-00000-r4.dat")
	if got := dataFiles(t, out); !slices.Equal(got, []string{ManifestName, "notes.txt", "part-00000-r4.dat"}) {
		t.Fatalf("after an overwrite the output holds %v (the old snapshot must go, notes.txt stay)", got)
	}
	// An empty result overwrites too.
	run(t, out, "r5", Overwrite)
	if got := manifestFiles(t, out); len(got) != 0 {
		t.Fatalf("an empty overwrite left %v", got)
	}
	_, err := Begin(context.Background(), Local{}, out, opts("r6", ErrorIfExists))
	if !errors.Is(err, ErrExists) {
		t.Fatalf("ErrorIfExists on an output with a snapshot: %v", err)
	}
}

func TestSecondRunFailsFast(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	a, err := Begin(ctx, Local{}, out, opts("runa", Overwrite))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Begin(ctx, Local{}, out, opts("runb", Overwrite))
	if !errors.Is(err, ErrLeased) || !strings.Contains(err.Error(), "run runa") || !strings.Contains(err.Error(), out) {
		t.Fatalf("a second run: %v, want ErrLeased naming run runa and the output", err)
	}
	if err := a.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := Begin(ctx, Local{}, out, opts("runb", Overwrite))
	if err != nil {
		t.Fatalf("after the first run released the lease: %v", err)
	}
	_ = b.Finish(ctx)
}

// TestConcurrentBeginOneWins races runs for one output: exactly one takes
// the lease.
func TestConcurrentBeginOneWins(t *testing.T) {
	for range 20 {
		out := filepath.Join(t.TempDir(), "out")
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []*Txn
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				txn, err := Begin(context.Background(), Local{}, out, opts("r"+string(rune('a'+i)), Overwrite))
				if err == nil {
					mu.Lock()
					won = append(won, txn)
					mu.Unlock()
				} else if !errors.Is(err, ErrLeased) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("%d runs took the lease", len(won))
		}
		_ = won[0].Finish(context.Background())
	}
}

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	return cmd.Process.Pid
}

// TestDeadRunIsCleanedUp leaves an output as a killed run would (its lease
// held by a process that is gone, its files published but not in the
// manifest, its staging) and begins a new run: the lease is taken over at
// once and the dead run's files go; other files stay.
func TestDeadRunIsCleanedUp(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	run(t, out, "old", Overwrite, "d=1/part-00000-old.dat")
	dead, err := Begin(ctx, Local{}, out, opts("dead", Overwrite))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, dead, out, "d=1/part-00001-dead.dat", "d=9/part-00000-dead.dat")
	if err := os.MkdirAll(filepath.Join(dead.Staging(), "00000"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "d=1", "foreign.dat"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The dead run's process: stop renewing, and make the lease name a
	// PID that no longer runs (the lease looks unexpired).
	close(dead.stop)
	dead.renewing.Wait()
	rec := dead.lease.rec
	rec.PID, rec.Start = deadPID(t), ""
	if err := dead.lease.update(ctx, rec); err != nil {
		t.Fatal(err)
	}

	txn, err := Begin(ctx, Local{}, out, opts("next", Append))
	if err != nil {
		t.Fatalf("taking over a dead run's lease: %v", err)
	}
	if got := dataFiles(t, out); !slices.Equal(got, []string{ManifestName, "d=1/foreign.dat", "d=1/part-00000-old.dat"}) {
		t.Fatalf("after cleaning up the output holds %v", got)
	}
	if _, err := os.Stat(filepath.Join(out, InternalDir, "staging", "dead")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dead run's staging stayed: %v", err)
	}
	_ = txn.Finish(ctx)
}

// TestLostLeaseCannotPublish lets a run's lease expire (a stopped
// process) and another take it over: the first can no longer switch the
// manifest; the second can.
func TestLostLeaseCannotPublish(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	oa := opts("slow", Overwrite)
	oa.Now, oa.LeaseTTL = clock, time.Hour
	a, err := Begin(ctx, Local{}, out, oa)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, a, out, "part-00000-slow.dat")
	later := func() time.Time { return now.Add(2 * time.Hour) }
	ob := opts("fast", Overwrite)
	ob.Now = later
	b, err := Begin(ctx, Local{}, out, ob)
	if err != nil {
		t.Fatalf("taking over an expired lease: %v", err)
	}
	publish(t, b, out, "part-00000-fast.dat")
	if err := a.Commit(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("the run that lost its lease published: %v", err)
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := manifestFiles(t, out); !slices.Equal(got, []string{"part-00000-fast.dat"}) {
		t.Fatalf("the manifest lists %v", got)
	}
	_ = b.Finish(ctx)
	_ = a.Finish(ctx) // must not release b's lease or delete its files
	if got := manifestFiles(t, out); !slices.Equal(got, []string{"part-00000-fast.dat"}) {
		t.Fatalf("after the stale run finished the manifest lists %v", got)
	}
}

func TestRevertRestoresPreviousSnapshot(t *testing.T) {
	ctx := context.Background()
	for _, first := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "out")
		var want []string
		if first {
			run(t, out, "old", Overwrite, "part-00000-old.dat")
			want = []string{"part-00000-old.dat"}
		}
		txn, err := Begin(ctx, Local{}, out, opts("new", Overwrite))
		if err != nil {
			t.Fatal(err)
		}
		publish(t, txn, out, "part-00000-new.dat")
		if err := txn.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := txn.Revert(ctx); err != nil {
			t.Fatal(err)
		}
		if err := txn.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		if got := manifestFiles(t, out); !slices.Equal(got, want) {
			t.Fatalf("after a revert the manifest lists %v, want %v", got, want)
		}
		if first {
			if _, err := os.Stat(filepath.Join(out, "part-00000-old.dat")); err != nil {
				t.Fatalf("a reverted run deleted the old snapshot: %v", err)
			}
		}
	}
}

func TestSafetyRails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign")
	for _, f := range []string{"notes.txt", "sub/data.csv", ".git/config"} {
		p := filepath.Join(foreign, f)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wd, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	for _, tc := range []struct {
		name, out, want string
		mode            Mode
		force           bool
	}{
		{"a regular file", file, "it is a regular file", Overwrite, true},
		{"the root", "/", "the root directory", Append, true},
		{"the working directory", wd, "working directory", Overwrite, false},
		{"above the working directory", filepath.Dir(wd), "holds the working directory", Append, false},
		{"the home directory", home, "home directory", Overwrite, false},
		{"foreign files", foreign, "files Sluice did not write", Overwrite, false},
		{"foreign files, dynamic", foreign, "files Sluice did not write", OverwritePartitions, false},
	} {
		o := opts("r", tc.mode)
		o.Force = tc.force
		_, err := Begin(ctx, Local{}, tc.out, o)
		if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrUnsafe saying %q", tc.name, err, tc.want)
		}
		if !tc.force && (err == nil || !strings.Contains(err.Error(), "Force")) {
			t.Errorf("%s: the error does not say how to force it: %v", tc.name, err)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("a refused write changed the file")
	}
	// Forced, a run writes beside the foreign files and never deletes them.
	o := opts("forced", Overwrite)
	o.Force = true
	txn, err := Begin(ctx, Local{}, foreign, o)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, txn, foreign, "part-00000-forced.dat")
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := txn.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"notes.txt", "sub/data.csv", ".git/config"} {
		if _, err := os.Stat(filepath.Join(foreign, f)); err != nil {
			t.Errorf("forced overwrite deleted %s: %v", f, err)
		}
	}
}

func TestFindSnapshotBelowOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	run(t, out, "r1", Overwrite, "day=1/h=2/part-00000-r1.dat", "day=2/part-00000-r1.dat")
	snap, err := FindSnapshot(context.Background(), Local{}, filepath.Join(out, "day=1", "h=2"))
	if err != nil || snap == nil {
		t.Fatalf("no snapshot found below the output: %v", err)
	}
	if got := snap.Files(Local{}); !slices.Equal(got, []string{filepath.Join(out, "day=1", "h=2", "part-00000-r1.dat")}) {
		t.Fatalf("files below day=1/h=2: %v", got)
	}
	// A Spark marker (empty _SUCCESS) is not a manifest.
	spark := filepath.Join(t.TempDir(), "spark")
	_ = os.MkdirAll(spark, 0o755)
	_ = os.WriteFile(filepath.Join(spark, ManifestName), nil, 0o644)
	if snap, err := FindSnapshot(context.Background(), Local{}, spark); snap != nil || err != nil {
		t.Fatalf("an empty _SUCCESS read as %v, %v", snap, err)
	}
	// A manifest naming a path outside the output is refused.
	bad := filepath.Join(t.TempDir(), "bad")
	_ = os.MkdirAll(bad, 0o755)
	body, _ := json.Marshal(Manifest{Format: ManifestFormat, Files: []File{{Path: "../etc/passwd"}}})
	_ = os.WriteFile(filepath.Join(bad, ManifestName), body, 0o644)
	if _, err := FindSnapshot(context.Background(), Local{}, bad); !errors.Is(err, ErrManifest) {
		t.Fatalf("a manifest naming ../etc/passwd: %v", err)
	}
}

// TestLeaseIsRenewed: a running job's lease is renewed before it expires,
// so a second run keeps failing; once released, it is free at once.
func TestLeaseIsRenewed(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	o := opts("long", Overwrite)
	o.LeaseTTL = 300 * time.Millisecond
	txn, err := Begin(ctx, Local{}, out, o)
	if err != nil {
		t.Fatal(err)
	}
	txn.mu.Lock()
	first := txn.lease.rec.Expires
	txn.mu.Unlock()
	testenv.WaitFor(t, "the lease to be renewed past its first expiry", 10*time.Second, func() bool {
		cur, _, err := currentLease(ctx, Local{}, filepath.Join(out, InternalDir, leaseDir))
		return err == nil && cur.Expires > first+int64(o.LeaseTTL/time.Millisecond)
	})
	if _, err := Begin(ctx, Local{}, out, opts("other", Overwrite)); !errors.Is(err, ErrLeased) {
		t.Fatalf("a second run past the first expiry: %v, want ErrLeased", err)
	}
	if err := txn.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	next, err := Begin(ctx, Local{}, out, opts("other", Overwrite))
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	_ = next.Finish(ctx)
}

// TestReusedRunRefused: a run whose ID already wrote the output (a job
// replayed with its seed) is refused before it can replace files of the
// snapshot named like its own.
func TestReusedRunRefused(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	run(t, out, "abc123", Append, "part-00000-abc123.dat")
	run(t, out, "def456", Append, "part-00000-def456.dat")
	for _, mode := range []Mode{Append, Overwrite, OverwritePartitions} {
		if _, err := Begin(ctx, Local{}, out, opts("abc123", mode)); !errors.Is(err, ErrRunReused) || !strings.Contains(err.Error(), "abc123") {
			t.Fatalf("%v with a run ID of the snapshot: %v, want ErrRunReused", mode, err)
		}
	}
	if got := manifestFiles(t, out); !slices.Equal(got, []string{"part-00000-abc123.dat", "part-00000-def456.dat"}) {
		t.Fatalf("the refused runs changed the manifest: %v", got)
	}
}

// TestCommitCheckpoints: a job that does not end publishes at each
// completed checkpoint: the manifest grows and records the checkpoint, the
// old snapshot's files go after the first, a stale checkpoint is refused,
// Revert goes back to the last checkpoint's snapshot, and a resumed
// process of the run (Resume) goes on from its own snapshot.
func TestCommitCheckpoints(t *testing.T) {
	ctx := context.Background()
	out := t.TempDir()
	run(t, out, "old1", Overwrite, "part-00000-old1.dat")
	txn, err := Begin(ctx, Local{}, out, opts("live1", Overwrite))
	if err != nil {
		t.Fatal(err)
	}
	manifest := func() *Manifest {
		t.Helper()
		m, _, err := ReadManifest(ctx, Local{}, out)
		if err != nil || m == nil {
			t.Fatalf("manifest: %v %v", m, err)
		}
		return m
	}
	publish(t, txn, out, "part-00000-live1a.dat")
	if err := txn.CommitCheckpoint(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if m := manifest(); m.Checkpoint != 3 || !slices.Equal(m.Paths(), []string{"part-00000-live1a.dat"}) {
		t.Fatalf("after checkpoint 3: %+v", m)
	}
	if got := dataFiles(t, out); !slices.Equal(got, []string{ManifestName, "part-00000-live1a.dat"}) {
		t.Fatalf("after checkpoint 3 the old snapshot's file is left: %q", got)
	}
	publish(t, txn, out, "part-00001-live1b.dat")
	if err := txn.CommitCheckpoint(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if err := txn.CommitCheckpoint(ctx, 2); !errors.Is(err, ErrStale) {
		t.Fatalf("checkpoint 2 after 4: %v, want ErrStale", err)
	}
	publish(t, txn, out, "part-00000-live1c.dat")
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := txn.Revert(ctx); err != nil {
		t.Fatal(err)
	}
	if m := manifest(); m.Checkpoint != 4 || len(m.Files) != 2 {
		t.Fatalf("reverted: %+v, want checkpoint 4's two files", m)
	}
	txn.Suspend(ctx) // the process stops; another resumes the run
	o := opts("live1", Overwrite)
	o.Resume = true
	again, err := Begin(ctx, Local{}, out, o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Checkpoint() != 4 {
		t.Fatalf("resumed at checkpoint %d, want 4", again.Checkpoint())
	}
	publish(t, again, out, "part-00002-live1d.dat")
	if err := again.CommitCheckpoint(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if err := again.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"part-00000-live1a.dat", "part-00001-live1b.dat", "part-00002-live1d.dat"}
	if m := manifest(); !slices.Equal(m.Paths(), want) || m.Checkpoint != 0 {
		t.Fatalf("after the resumed run: %q at checkpoint %d, want %q at its end (0)", m.Paths(), m.Checkpoint, want)
	}
	// The run has ended: no process of it resumes it again.
	if _, err := Begin(ctx, Local{}, out, o); !errors.Is(err, ErrRunReused) {
		t.Fatalf("resuming an ended run: %v, want ErrRunReused", err)
	}
	if got := dataFiles(t, out); !slices.Contains(got, "part-00002-live1d.dat") || slices.Contains(got, "part-00000-old1.dat") {
		t.Fatalf("files after the resumed run: %q", got)
	}
	// A run that does not resume may not reuse the run's ID.
	if _, err := Begin(ctx, Local{}, out, opts("live1", Overwrite)); !errors.Is(err, ErrRunReused) {
		t.Fatalf("a new run with the same ID: %v, want ErrRunReused", err)
	}
}
