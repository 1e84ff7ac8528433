package parquetio_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/internal/commit"
	"github.com/sluice-data/sluice/stages"
)

// writeRows writes version v of rows partitioned by part into url.
func writeRows(t *testing.T, url string, v int64, n int64, opts ...parquetio.WriteOption) error {
	t.Helper()
	var xs []Row
	for id := range n {
		xs = append(xs, Row{Part: id % 4, ID: id, Version: v})
	}
	p := stages.NewPipeline(fmt.Sprintf("write-v%d", v))
	parquetio.Write(stages.FromSlice(p, xs), url, append([]parquetio.WriteOption{parquetio.PartitionBy("part")}, opts...)...)
	_, err := runJob(t, p)
	return err
}

func versions(rs []Row) map[int64]int {
	m := map[int64]int{}
	for _, r := range rs {
		m[r.Version]++
	}
	return m
}

// A job whose other sink fails at its job commit, after the Parquet sink's
// commit switched the manifest, leaves the previous snapshot whole: to
// Sluice's reader and to a reader that ignores the manifest.
func TestFailedLaterCommitKeepsPreviousSnapshot(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	if err := writeRows(t, out, 1, 1000); err != nil {
		t.Fatal(err)
	}
	p := stages.NewPipeline("overwrite-then-fail")
	src := stages.FromSlice(p, events(2_000))
	rows := stages.Map(src, func(e Event) Row { return Row{Part: e.ID % 4, ID: e.ID, Version: 2} })
	parquetio.Write(rows, out, parquetio.Overwrite, parquetio.PartitionBy("part"))
	stages.Write(src, failJob{}, stages.Name("refuses-job"))
	if _, err := runJob(t, p); err == nil || !strings.Contains(err.Error(), "job commit refused") {
		t.Fatalf("want the job to fail in its job commit, got %v", err)
	}
	if got := versions(read[Row](t, out)); len(got) != 1 || got[1] != 1000 {
		t.Fatalf("after the failed overwrite Sluice reads %v, want version 1's 1000 rows", got)
	}
	if got := versions(globRows(t, out)); len(got) != 1 || got[1] != 1000 {
		t.Fatalf("after the failed overwrite a glob reads %v, want version 1's 1000 rows", got)
	}
}

// Dynamic partition overwrite replaces the partitions the job writes and
// keeps the others.
func TestOverwritePartitions(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	if err := writeRows(t, out, 1, 1000); err != nil {
		t.Fatal(err)
	}
	var xs []Row
	for id := range int64(50) {
		xs = append(xs, Row{Part: 2, ID: id, Version: 2})
	}
	p := stages.NewPipeline("daily")
	parquetio.Write(stages.FromSlice(p, xs), out, parquetio.OverwritePartitions, parquetio.PartitionBy("part"))
	if _, err := runJob(t, p); err != nil {
		t.Fatal(err)
	}
	got := read[Row](t, out)
	byPart := map[int64]map[int64]int{}
	for _, r := range got {
		if byPart[r.Part] == nil {
			byPart[r.Part] = map[int64]int{}
		}
		byPart[r.Part][r.Version]++
	}
	want := map[int64]map[int64]int{0: {1: 250}, 1: {1: 250}, 2: {2: 50}, 3: {1: 250}}
	if fmt.Sprint(byPart) != fmt.Sprint(want) {
		t.Fatalf("by partition and version %v, want %v", byPart, want)
	}
	if g := globRows(t, out); len(g) != len(got) {
		t.Fatalf("a glob reads %d rows, Sluice %d: the replaced partition's files were not deleted", len(g), len(got))
	}
	// A reader pointed at a partition directory reads it by the manifest.
	if got := versions(read[Row](t, filepath.Join(out, "part=2"))); len(got) != 1 || got[2] != 50 {
		t.Fatalf("part=2 reads %v", got)
	}
}

// A reader pointed below an output reads only what the manifest lists
// there: not a file a dead run published, not a file Sluice did not write.
func TestReaderBelowOutputFollowsManifest(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	if err := writeRows(t, out, 1, 1000); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "part=1")
	names, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
	if len(names) == 0 {
		t.Fatal("no files in part=1")
	}
	b, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, stray := range []string{"part-00007-deadbeef0001-0000.snappy.parquet", "from-spark.parquet"} {
		if err := os.WriteFile(filepath.Join(dir, stray), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := versions(read[Row](t, dir)); got[1] != 250 {
		t.Fatalf("part=1 reads %v, want the snapshot's 250 rows", got)
	}
	if got := len(read[Row](t, out)); got != 1000 {
		t.Fatalf("the output reads %d rows, want the snapshot's 1000", got)
	}
	// A file the manifest lists that is gone is an error naming it.
	if err := os.Remove(names[0]); err != nil {
		t.Fatal(err)
	}
	_, err = tryRead[Row](t, out)
	if !errors.Is(err, parquetio.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(names[0])) {
		t.Fatalf("reading with a listed file missing: %v", err)
	}
}

// The safety rails, through the sink: each refusal names the path and says
// how to force it; nothing is changed.
func TestUnsafeOutputsRefused(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "mine")
	for _, f := range []string{"notes.txt", "sub/data.csv", ".git/config"} {
		p := filepath.Join(foreign, f)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "out")
	if err := os.WriteFile(file, []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	for _, tc := range []struct{ name, url, want string }{
		{"foreign files", foreign, "Sluice did not write"},
		{"a regular file", file, "regular file"},
		{"the working directory", ".", "working directory"},
		{"the root", "/", "root directory"},
		{"an empty URL", "", "empty URL"},
	} {
		err := writeRows(t, tc.url, 1, 10, parquetio.Overwrite)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
		if tc.name != "an empty URL" && tc.name != "the root" && tc.name != "a regular file" && !strings.Contains(err.Error(), "parquetio.Force()") {
			t.Errorf("%s: the error does not say how to force it: %v", tc.name, err)
		}
	}
	for _, f := range []string{"notes.txt", "sub/data.csv", ".git/config"} {
		if b, err := os.ReadFile(filepath.Join(foreign, f)); err != nil || string(b) != f {
			t.Errorf("%s changed: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "a file" {
		t.Error("the regular file changed")
	}
	if m, _ := filepath.Glob(filepath.Join(wd, "part=*")); len(m) != 0 {
		t.Errorf("wrote into the working directory: %v", m)
	}
	// Forced, the job writes beside the foreign files and deletes none.
	if err := writeRows(t, foreign, 1, 10, parquetio.Overwrite, parquetio.Force()); err != nil {
		t.Fatal(err)
	}
	if err := writeRows(t, foreign, 2, 10, parquetio.Overwrite, parquetio.Force()); err != nil {
		t.Fatal(err)
	}
	if got := versions(read[Row](t, foreign)); len(got) != 1 || got[2] != 10 {
		t.Fatalf("the forced output reads %v", got)
	}
	for _, f := range []string{"notes.txt", "sub/data.csv", ".git/config"} {
		if _, err := os.Stat(filepath.Join(foreign, f)); err != nil {
			t.Errorf("a forced overwrite deleted %s", f)
		}
	}
}

// An input directory with no data files is an error unless allowed; a
// snapshot of zero rows is read as empty, and an empty result overwrites.
func TestEmptyInputs(t *testing.T) {
	empty := t.TempDir()
	if _, err := tryRead[Row](t, empty); !errors.Is(err, parquetio.ErrNotFound) || !strings.Contains(err.Error(), "AllowEmpty") {
		t.Fatalf("reading an empty directory: %v", err)
	}
	if got, err := tryRead[Row](t, empty, parquetio.AllowEmpty()); err != nil || len(got) != 0 {
		t.Fatalf("reading an empty directory allowed: %v, %v", got, err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := writeRows(t, out, 1, 100); err != nil {
		t.Fatal(err)
	}
	if err := writeRows(t, out, 2, 0, parquetio.Overwrite); err != nil {
		t.Fatal(err)
	}
	if got, err := tryRead[Row](t, out); err != nil || len(got) != 0 {
		t.Fatalf("an empty snapshot reads %d rows, %v", len(got), err)
	}
	if g := globRows(t, out); len(g) != 0 {
		t.Fatalf("after an empty overwrite a glob reads %d rows", len(g))
	}
}

// Publishing fails halfway (a rename refused, as across devices): the job
// fails naming the file, and the old snapshot stays whole.
func TestPublishFailureKeepsOldSnapshot(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	if err := writeRows(t, out, 1, 1000); err != nil {
		t.Fatal(err)
	}
	n := 0
	restore := parquetio.SetRename(func(from, to string) error {
		if n++; n == 3 {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: syscall.EXDEV}
		}
		return os.Rename(from, to)
	})
	err := writeRows(t, out, 2, 1000, parquetio.Overwrite)
	restore()
	if !errors.Is(err, syscall.EXDEV) || !strings.Contains(err.Error(), "publishing") {
		t.Fatalf("want the job to fail publishing with EXDEV, got %v", err)
	}
	if got := versions(read[Row](t, out)); len(got) != 1 || got[1] != 1000 {
		t.Fatalf("after the failed publish Sluice reads %v", got)
	}
	if got := versions(globRows(t, out)); len(got) != 1 || got[1] != 1000 {
		t.Fatalf("after the failed publish a glob reads %v", got)
	}
	if m, _ := filepath.Glob(filepath.Join(out, commit.InternalDir, "staging", "*")); len(m) != 0 {
		t.Fatalf("staging left behind: %v", m)
	}
}

// An output at the root of a mounted file system (a container volume):
// staging is inside it, so every rename stays on its device. It mounts a
// tmpfs, which needs root; without the privilege it skips.
func TestOutputAtMountRoot(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "volume")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	for v := int64(1); v <= 2; v++ {
		if err := writeRows(t, mnt, v, 1000, parquetio.Overwrite); err != nil {
			t.Fatalf("writing version %d at the mount's root: %v", v, err)
		}
	}
	if got := versions(read[Row](t, mnt)); len(got) != 1 || got[2] != 1000 {
		t.Fatalf("the volume reads %v", got)
	}
}

// On S3, a run whose lease expired and was taken over cannot switch the
// manifest: the new holder's fence changed its ETag.
func TestS3LostLeaseCannotPublish(t *testing.T) {
	_, _, urlOf := s3Bucket(t)
	url := urlOf("out")
	if err := writeRows(t, url, 1, 100); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fsys, out, err := parquetio.CommitFS(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	o := commit.Options{Mode: commit.Overwrite, Job: "test", Run: "slow", LeaseTTL: time.Minute, Now: func() time.Time { return now }}
	slow, err := commit.Begin(ctx, fsys, out, o)
	if err != nil {
		t.Fatal(err)
	}
	// The slow run's process looks alive (it is this one) but its lease
	// expires: another host's run takes it over.
	o.Run, o.Now = "fast", func() time.Time { return now.Add(2 * time.Minute) }
	fast, err := commit.Begin(ctx, fsys, out, o)
	if err != nil {
		t.Fatalf("taking over an expired lease on S3: %v", err)
	}
	slow.Add(commit.File{Path: "part=9/x.parquet", Rows: 1})
	if err := slow.Commit(ctx); err == nil {
		t.Fatal("the run that lost its lease switched the manifest")
	}
	fast.Add()
	if err := fast.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	_ = fast.Finish(ctx)
	_ = slow.Finish(ctx)
	if got, err := tryRead[Row](t, url); err != nil || len(got) != 0 {
		t.Fatalf("after the new holder's empty overwrite: %d rows, %v", len(got), err)
	}
}

// Invalid UTF-8 never reaches a STRING column: the job fails naming the
// record and column, and the output is unchanged.
func TestInvalidUTF8IsRefused(t *testing.T) {
	type named struct {
		ID   int64  `parquet:"id"`
		Name string `parquet:"name"`
	}
	out := filepath.Join(t.TempDir(), "out")
	p := stages.NewPipeline("utf8")
	parquetio.Write(stages.FromSlice(p, []named{{1, "ok"}, {2, "caf\xe9"}}), out)
	_, err := runJob(t, p)
	if !errors.Is(err, parquetio.ErrInvalidUTF8) || !strings.Contains(err.Error(), `column "name"`) || !strings.Contains(err.Error(), "record 1") {
		t.Fatalf("want ErrInvalidUTF8 naming record 1 and column name, got %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed job left its output: %v", err)
	}
}

// The object store's conditional writes, on a real S3 server: what the
// lease and the manifest's switch rest on.
func TestS3ConditionalWrites(t *testing.T) {
	_, _, urlOf := s3Bucket(t)
	ctx := context.Background()
	fsys, dir, err := parquetio.CommitFS(ctx, urlOf("cond"))
	if err != nil {
		t.Fatal(err)
	}
	p := fsys.Join(dir, "x")
	v1, err := fsys.WriteFile(ctx, p, []byte("one"), commit.Cond{IfAbsent: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.WriteFile(ctx, p, []byte("two"), commit.Cond{IfAbsent: true}); !errors.Is(err, commit.ErrPrecondition) {
		t.Fatalf("If-None-Match on an existing key: %v, want ErrPrecondition", err)
	}
	v2, err := fsys.WriteFile(ctx, p, []byte("two"), commit.Cond{IfMatch: v1})
	if err != nil {
		t.Fatalf("If-Match with the current ETag: %v", err)
	}
	if _, err := fsys.WriteFile(ctx, p, []byte("three"), commit.Cond{IfMatch: v1}); !errors.Is(err, commit.ErrPrecondition) {
		t.Fatalf("If-Match with a stale ETag: %v, want ErrPrecondition", err)
	}
	data, v, err := fsys.ReadFile(ctx, p)
	if err != nil || string(data) != "two" || v != v2 {
		t.Fatalf("read back %q version %q (%v), want \"two\" version %q", data, v, err, v2)
	}
	if _, _, err := fsys.ReadFile(ctx, fsys.Join(dir, "absent")); !errors.Is(err, commit.ErrNotExist) {
		t.Fatalf("reading an absent key: %v", err)
	}
}
