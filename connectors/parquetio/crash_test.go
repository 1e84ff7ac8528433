package parquetio_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// Row is writejob's record (connectors/parquetio/internal/writejob).
type Row struct {
	Part    int64 `parquet:"part"`
	ID      int64 `parquet:"id"`
	Version int64 `parquet:"version"`
}

var writejob struct {
	once sync.Once
	path string
	err  error
}

// writejobBin builds connectors/parquetio/internal/writejob once.
func writejobBin(t *testing.T) string {
	t.Helper()
	writejob.once.Do(func() {
		dir, err := os.MkdirTemp("", "writejob")
		if err != nil {
			writejob.err = err
			return
		}
		writejob.path = filepath.Join(dir, "writejob")
		args := []string{"build", "-o", writejob.path}
		if testenv.Race() {
			args = append(args, "-race") // shares the test's compiled packages
		}
		out, err := exec.Command("go", append(args, "./internal/writejob")...).CombinedOutput()
		if err != nil {
			writejob.err = fmt.Errorf("building writejob: %v\n%s", err, out)
		}
	})
	if writejob.err != nil {
		t.Fatal(writejob.err)
	}
	return writejob.path
}

const (
	crashRows  = 24_000
	crashParts = 24
)

// snapshotOf computes what version v of writejob leaves in mode over the
// snapshot before, as sorted rows.
func snapshotOf(mode string, before []Row, v int64) []Row {
	var out []Row
	written := map[int64]bool{}
	for id := range int64(crashRows) {
		part := id % crashParts
		if mode == "overwrite-partitions" && part%3 != v%3 {
			continue
		}
		written[part] = true
		out = append(out, Row{Part: part, ID: id, Version: v})
	}
	switch mode {
	case "append":
		out = append(out, before...)
	case "overwrite-partitions":
		for _, r := range before {
			if !written[r.Part] {
				out = append(out, r)
			}
		}
	}
	return sortRows(out)
}

func sortRows(rs []Row) []Row {
	slices.SortFunc(rs, func(a, b Row) int {
		if a.Version != b.Version {
			return int(a.Version - b.Version)
		}
		if a.Part != b.Part {
			return int(a.Part - b.Part)
		}
		return int(a.ID - b.ID)
	})
	return rs
}

// runWritejob runs writejob to its end and returns how it ended.
func runWritejob(t *testing.T, url, mode string, v int64, extra ...string) (killed bool, stderr string) {
	t.Helper()
	args := append([]string{"-out", url, "-mode", mode, "-version", strconv.FormatInt(v, 10),
		"-rows", strconv.Itoa(crashRows), "-parts", strconv.Itoa(crashParts)}, extra...)
	cmd := exec.Command(writejobBin(t), args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	return signaled(err), errb.String()
}

func signaled(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	return false
}

// globRows reads every *.parquet file below dir as a reader that ignores
// Sluice's manifest would: DuckDB's read_parquet('dir/**/*.parquet')
// through tools/peers when SLUICE_PEERS names its binary, else (and on
// object stores) Sluice's reader with IgnoreManifest.
func globRows(t *testing.T, url string) []Row {
	t.Helper()
	if peers := os.Getenv("SLUICE_PEERS"); peers != "" && !strings.Contains(url, "://") {
		any := false
		_ = filepath.WalkDir(url, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
				any = true
			}
			return nil
		})
		if !any {
			return nil // DuckDB fails on a glob that matches nothing
		}
		q := fmt.Sprintf("SELECT part, id, version FROM read_parquet('%s/**/*.parquet', hive_partitioning=false)", url)
		out, err := exec.Command(peers, "sql", "-json", q).Output()
		if err != nil {
			t.Fatalf("peers sql: %v", err)
		}
		var rs []Row
		dec := json.NewDecoder(bytes.NewReader(out))
		for dec.More() {
			var r struct{ Part, ID, Version int64 }
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("peers sql output: %v", err)
			}
			rs = append(rs, Row{Part: r.Part, ID: r.ID, Version: r.Version})
		}
		return sortRows(rs)
	}
	if !strings.Contains(url, "://") && testenv.Strict() {
		t.Fatal("SLUICE_PEERS is not set: DuckDB's glob cannot be checked (scripts/test.sh builds tools/peers and sets it)")
	}
	rs, err := tryRead[Row](t, url, parquetio.IgnoreManifest(), parquetio.AllowEmpty())
	if err != nil {
		t.Fatal(err)
	}
	return sortRows(rs)
}

// crashSeeds is how many seeded kills each mode gets: a few in CI, more
// with SLUICE_CRASH_SEEDS=N (the long run). A failure names its seed; run
// it again with -run 'TestCrashDuringCommit/MODE/seed=N$'.
func crashSeeds(ci int) int {
	if n, err := strconv.Atoi(os.Getenv("SLUICE_CRASH_SEEDS")); err == nil && n > 0 {
		return n
	}
	return ci
}

// TestCrashDuringCommit runs writejob as a real process over an output
// holding an older snapshot and SIGKILLs it at seeded moments of its
// commit: once every file is staged, after a seeded number of files is
// published, once the manifest has switched (while the old files are
// deleted), or after a seeded delay. Every time, Sluice's reader sees the
// old snapshot or the new one whole; after parquetio.Repair (what the next
// run does by itself) a reader that ignores the manifest (DuckDB's glob)
// sees the same; before it, staged files are never seen.
func TestCrashDuringCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	crashTest(t, func(t *testing.T) string { return filepath.Join(t.TempDir(), "out") }, crashSeeds(2), true)
}

// TestCrashDuringCommitS3 is TestCrashDuringCommit on a real S3 server
// (VersityGW): publishing is a copy and a delete per file, the manifest a
// conditional PUT.
func TestCrashDuringCommitS3(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	_, _, urlOf := s3Bucket(t)
	var mu sync.Mutex
	n := 0
	crashTest(t, func(t *testing.T) string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return urlOf(fmt.Sprintf("out%d", n))
	}, crashSeeds(1), false)
}

func crashTest(t *testing.T, newOut func(*testing.T) string, seeds int, local bool) {
	writejobBin(t)
	for mi, mode := range []string{"overwrite", "overwrite-partitions", "append"} {
		for seed := range uint64(seeds) {
			t.Run(fmt.Sprintf("%s/seed=%d", mode, seed), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(seed, uint64(mi)))
				out := newOut(t)
				start := time.Now()
				if killed, stderr := runWritejob(t, out, "overwrite", 1); killed || stderr != "" {
					t.Fatalf("writing version 1: %s", stderr)
				}
				clean := time.Since(start)
				old := sortRows(read[Row](t, out))
				if want := snapshotOf("overwrite", nil, 1); !slices.Equal(old, want) {
					t.Fatalf("version 1 read back as %d rows, want %d", len(old), len(want))
				}
				files := fileCount(t, out)
				kinds := []string{"staged", "files", "delay"}
				if local {
					kinds = append(kinds, "manifest")
				}
				// The kinds take turns, so that a few seeds cover them all.
				kind := kinds[(int(seed)+mi)%len(kinds)]
				var extra []string
				var delay time.Duration
				switch kind {
				case "staged", "manifest":
					extra = []string{"-kill", kind}
				case "files":
					extra = []string{"-kill", fmt.Sprintf("files=%d", rng.IntN(files+1))}
				case "delay":
					delay = time.Duration(rng.Int64N(int64(clean + clean/4)))
				}
				killed := crashRun(t, out, mode, extra, delay)
				t.Logf("seed %d: kill %s %v (delay %v): killed=%v", seed, kind, extra, delay, killed)
				newSnap := snapshotOf(mode, old, 2)
				got := sortRows(read[Row](t, out))
				if !slices.Equal(got, old) && !slices.Equal(got, newSnap) {
					t.Fatalf("seed %d (kill %s %v, delay %v): Sluice reads %d rows, neither the old snapshot (%d) nor the new (%d)",
						seed, kind, extra, delay, len(got), len(old), len(newSnap))
				}
				if kind == "staged" && killed {
					if g := globRows(t, out); !slices.Equal(g, old) {
						t.Fatalf("seed %d: with the new files staged, a glob reads %d rows, not the old snapshot's %d", seed, len(g), len(old))
					}
				}
				if err := parquetio.Repair(context.Background(), out); err != nil {
					t.Fatalf("seed %d: repair: %v", seed, err)
				}
				if g := globRows(t, out); !slices.Equal(g, got) {
					t.Fatalf("seed %d (kill %s %v, delay %v): after repair a glob reads %d rows, Sluice %d",
						seed, kind, extra, delay, len(g), len(got))
				}
				// The next run writes as if nothing had happened.
				if killed, stderr := runWritejob(t, out, mode, 3); killed || stderr != "" {
					t.Fatalf("seed %d: the next run: %s", seed, stderr)
				}
				if got, want := sortRows(read[Row](t, out)), snapshotOf(mode, got, 3); !slices.Equal(got, want) {
					t.Fatalf("seed %d: after the next run Sluice reads %d rows, want %d", seed, len(got), len(want))
				}
			})
		}
	}
}

// crashRun runs writejob (version 2) and kills it: by its own -kill, or
// from here after delay. It reports whether it died by SIGKILL.
func crashRun(t *testing.T, out, mode string, extra []string, delay time.Duration) bool {
	t.Helper()
	args := append([]string{"-out", out, "-mode", mode, "-version", "2",
		"-rows", strconv.Itoa(crashRows), "-parts", strconv.Itoa(crashParts)}, extra...)
	cmd := exec.Command(writejobBin(t), args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	if extra == nil {
		select {
		case err = <-done:
		case <-time.After(delay):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			err = <-done
		}
	} else {
		select {
		case err = <-done:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatal("writejob did not end within 2 minutes")
		}
	}
	if err != nil && !signaled(err) {
		t.Fatalf("writejob failed: %v\n%s", err, errb.String())
	}
	return signaled(err)
}

// fileCount counts the data files of an output's snapshot.
func fileCount(t *testing.T, url string) int {
	t.Helper()
	var st parquetio.Stats
	read[Row](t, url, parquetio.WithStats(&st))
	return int(st.FilesListed.Load())
}

// TestConcurrentWritersOneFails starts two real processes on one output:
// the second fails at once naming the run that holds the output, and the
// output is the first's whole.
func TestConcurrentWritersOneFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	out := filepath.Join(t.TempDir(), "out")
	if killed, stderr := runWritejob(t, out, "overwrite", 1); killed || stderr != "" {
		t.Fatalf("writing version 1: %s", stderr)
	}
	first := exec.Command(writejobBin(t), "-out", out, "-mode", "overwrite", "-version", "2", "-rows", strconv.Itoa(crashRows),
		"-parts", strconv.Itoa(crashParts), "-hold", "2s")
	var ferr bytes.Buffer
	first.Stderr = &ferr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Process.Kill() }()
	// Wait until the first holds the lease (its epoch's file appears).
	testenv.WaitFor(t, "the first writer to take the lease", 30*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(out, "_sluice", "lease", "*2"))
		return len(m) == 1
	})
	start := time.Now()
	killed, stderr := runWritejob(t, out, "overwrite", 3)
	took := time.Since(start)
	if killed || !strings.Contains(stderr, "being written by another run") || !strings.Contains(stderr, fmt.Sprintf("pid %d", first.Process.Pid)) {
		t.Fatalf("the second writer: %q, want it to fail naming the first (pid %d)", stderr, first.Process.Pid)
	}
	t.Logf("the second writer failed after %v: %s", took, strings.TrimSpace(stderr))
	if err := first.Wait(); err != nil {
		t.Fatalf("the first writer: %v\n%s", err, ferr.String())
	}
	if got := sortRows(read[Row](t, out)); !slices.Equal(got, snapshotOf("overwrite", nil, 2)) {
		t.Fatalf("the output reads %d rows, want the first writer's version 2 whole", len(got))
	}
	if g := globRows(t, out); !slices.Equal(g, snapshotOf("overwrite", nil, 2)) {
		t.Fatalf("a glob reads %d rows, want the first writer's version 2 whole", len(g))
	}
}

// TestCrashDuringCommitJSONL kills a JSON lines job at seeded moments of
// its commit (all staged, once the manifest switched, after a delay) over
// an older output: jsonl's reader then sees the old run's records or the
// new run's, never a mix, and after the next run's cleanup so does a glob.
func TestCrashDuringCommitJSONL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	bin := writejobBin(t)
	run := func(out string, v int64, kill string, delay time.Duration) bool {
		args := []string{"-format", "jsonl", "-out", out, "-version", strconv.FormatInt(v, 10), "-rows", "20000"}
		if kill != "" {
			args = append(args, "-kill", kill)
		}
		cmd := exec.Command(bin, args...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		limit := 2 * time.Minute
		if delay > 0 {
			limit = delay
		}
		var err error
		select {
		case err = <-done:
		case <-time.After(limit):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			err = <-done
		}
		if err != nil && !signaled(err) {
			t.Fatalf("writejob -format jsonl: %v\n%s", err, errb.String())
		}
		return signaled(err)
	}
	versionsOf := func(pattern string) map[int64]int {
		t.Helper()
		got, err := readJSONL(pattern)
		if err != nil {
			t.Fatal(err)
		}
		return versions(got)
	}
	for seed := range uint64(crashSeeds(3)) {
		rng := rand.New(rand.NewPCG(seed, 7))
		out := filepath.Join(t.TempDir(), "out")
		start := time.Now()
		if run(out, 1, "", 0) {
			t.Fatal("version 1 was killed")
		}
		clean := time.Since(start)
		kind := []string{"staged", "manifest", "delay"}[seed%3]
		var delay time.Duration
		if kind == "delay" {
			delay, kind = time.Duration(rng.Int64N(int64(clean+clean/4)))+time.Millisecond, ""
		}
		killed := run(out, 2, kind, delay)
		got := versionsOf(out)
		if !(len(got) == 1 && (got[1] == 20000 || got[2] == 20000)) {
			t.Fatalf("seed %d (kill %q, delay %v, killed %v): jsonl reads %v, want one version's 20000 records", seed, kind, delay, killed, got)
		}
		if kind == "staged" && killed {
			if g := versionsOf(filepath.Join(out, "*.jsonl")); len(g) != 1 || g[1] != 20000 {
				t.Fatalf("seed %d: with the new files staged a glob reads %v", seed, g)
			}
		}
		if run(out, 3, "", 0) {
			t.Fatal("version 3 was killed")
		}
		if g := versionsOf(filepath.Join(out, "*.jsonl")); len(g) != 1 || g[3] != 20000 {
			t.Fatalf("seed %d: after the next run a glob reads %v", seed, g)
		}
	}
}

// readJSONL reads writejob's JSON lines: a directory through jsonl's
// reader (which follows the manifest), a glob by decoding every file it
// matches, as a reader that ignores the manifest does.
func readJSONL(pattern string) ([]Row, error) {
	if fi, err := os.Stat(pattern); err == nil && fi.IsDir() {
		p := stages.NewPipeline("read-jsonl")
		c := stages.Collect(jsonl.Read[Row](p, pattern))
		if _, err := sluice.Run(context.Background(), p, sluice.Options{}); err != nil {
			return nil, err
		}
		return c.Values(), nil
	}
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out []Row
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		for dec.More() {
			var r Row
			if err := dec.Decode(&r); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}
