package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCommandOutputRails runs a bundled job as a process against outputs
// a user gets wrong: a directory of their own files, a regular file, the
// working directory, an empty --arg out=. Each exits 2 with one error line
// that names the path and, where it can be forced, says how; nothing is
// changed. Forced, the job writes beside the files and deletes none.
func TestCommandOutputRails(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine")
	for _, f := range []string{"notes.txt", "sub/data.csv", ".git/config"} {
		p := filepath.Join(mine, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	small := []string{"--arg", "n-orders=2000", "--arg", "n-users=100", "--quiet"}
	for _, tc := range []struct{ out, want string }{
		{mine, "--arg force=true"},
		{file, "regular file"},
		{dir, "working directory"}, // run from dir: out is "."
		{"", "--arg out= is empty"},
	} {
		out := tc.out
		if out == dir {
			out = "."
		}
		args := append([]string{"run", "orders-per-user", "--arg", "out=" + out}, small...)
		p := startProcess(t, args...)
		p.cmd.Dir = dir
		code := p.wait(t, time.Minute)
		stderr := p.stderr.String()
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("out=%q: status %d, stderr %q; want 2 and one line saying %q", out, code, stderr, tc.want)
		}
	}
	for _, f := range []string{"notes.txt", "sub/data.csv", ".git/config"} {
		if b, err := os.ReadFile(filepath.Join(mine, f)); err != nil || string(b) != f {
			t.Errorf("%s changed: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "a file" {
		t.Error("the regular file changed")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.parquet")); len(m) != 0 {
		t.Errorf("wrote into the working directory: %v", m)
	}
	for range 2 {
		p := startProcess(t, append([]string{"run", "orders-per-user", "--arg", "out=" + mine, "--arg", "force=true"}, small...)...)
		if code := p.wait(t, time.Minute); code != 0 {
			t.Fatalf("forced: status %d: %s", code, p.stderr.String())
		}
	}
	for _, f := range []string{"notes.txt", "sub/data.csv", ".git/config"} {
		if _, err := os.Stat(filepath.Join(mine, f)); err != nil {
			t.Errorf("a forced overwrite deleted %s", f)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(mine, "*.parquet")); len(m) == 0 {
		t.Error("the forced job wrote nothing")
	}
}
