package jsonl_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/stages"
)

type rec struct {
	A int    `json:"a"`
	B string `json:"b,omitempty"`
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// readSplits reads every split of src by hand with a buffer of bufLen.
func readSplits[T any](t *testing.T, src stages.Source[T], bufLen int) ([]T, error) {
	t.Helper()
	ctx := context.Background()
	splits, err := src.Splits(ctx)
	if err != nil {
		return nil, err
	}
	var out []T
	buf := make([]T, bufLen)
	for _, sp := range splits {
		r, err := src.Open(ctx, stages.Instance{Parallelism: 1}, sp)
		if err != nil {
			return out, err
		}
		for {
			n, err := r.Read(buf)
			out = append(out, buf[:n]...)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				r.Close()
				return out, err
			}
		}
		if err := r.Close(); err != nil {
			return out, err
		}
	}
	return out, nil
}

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", 600<<10) // longer than the reader's buffer
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.jsonl"), "\xef\xbb\xbf{\"a\":1}\r\n\n   \n{\"a\":2,\"b\":\"two\",\"extra\":[1]}\n")
	writeFile(t, filepath.Join(dir, "b.jsonl"), `{"a":3,"b":"`+long+`"}`+"\n"+`{"a":4}`) // no final newline
	writeFile(t, filepath.Join(dir, "c.jsonl"), "")
	writeFile(t, filepath.Join(dir, "d.jsonl"), "\t{\"a\": 5 , \"b\":\"\\u00e9\"}  \n")
	if err := os.Mkdir(filepath.Join(dir, "e.jsonl"), 0o755); err != nil { // a directory: skipped
		t.Fatal(err)
	}
	want := []rec{{A: 1}, {A: 2, B: "two"}, {A: 3, B: long}, {A: 4}, {A: 5, B: "é"}}
	for _, bufLen := range []int{1, 2, 1024} {
		got, err := readSplits(t, jsonl.Source[rec](filepath.Join(dir, "*.jsonl"), jsonl.Fail), bufLen)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("buffer %d: read %d records, want %d (%.80v)", bufLen, len(got), len(want), got)
		}
	}
}

// TestReadZeroesRecords checks that a field absent from a line is zero, not
// left from a previous record in a reused buffer.
func TestReadZeroesRecords(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "x.jsonl"), "{\"a\":1,\"b\":\"one\"}\n{\"a\":2}\n")
	src := jsonl.Source[rec](path, jsonl.Fail)
	splits, err := src.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r, err := src.Open(context.Background(), stages.Instance{Parallelism: 1}, splits[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]rec, 1)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(buf); n != 1 || buf[0] != (rec{A: 2}) || (err != nil && !errors.Is(err, io.EOF)) {
		t.Fatalf("second read: %d %+v %v", n, buf[0], err)
	}
}

// TestBadLine runs a job over a file with a bad third line: the job fails
// with an error naming file:line and the reason.
func TestBadLine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.jsonl"), "{\"a\":1}\n{\"a\":2}\n")
	bad := writeFile(t, filepath.Join(dir, "bad.jsonl"), "{\"a\":1}\n\n{\"a\":\"three\"}\n{\"a\":4}\n")
	p := stages.NewPipeline("bad-line")
	stages.Collect(jsonl.Read[rec](p, filepath.Join(dir, "*.jsonl")))
	_, err := sluice.Run(context.Background(), p, sluice.Options{})
	if !errors.Is(err, jsonl.ErrBadLine) {
		t.Fatalf("error %v, want ErrBadLine", err)
	}
	var le *jsonl.LineError
	if !errors.As(err, &le) || le.Path != bad || le.Line != 3 {
		t.Fatalf("error %v, want a LineError for %s line 3", err, bad)
	}
	for _, w := range []string{bad + ":3:", "cannot unmarshal string"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}

	// Syntax errors and two values on one line fail too.
	for content, line := range map[string]int64{"{\"a\":1}\n{\"a\":\n": 2, "{\"a\":1} {\"a\":2}\n": 1, "[1,2]\n": 1} {
		path := writeFile(t, filepath.Join(t.TempDir(), "x.jsonl"), content)
		_, err := readSplits(t, jsonl.Source[rec](path, jsonl.Fail), 16)
		if !errors.As(err, &le) || le.Line != line {
			t.Errorf("%q: error %v, want a LineError at line %d", content, err, line)
		}
	}
}

func TestSplits(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.jsonl"), "{}\n")
	writeFile(t, filepath.Join(dir, "a.jsonl"), "{}\n{}\n")
	splits, err := jsonl.Source[rec](filepath.Join(dir, "*.jsonl"), jsonl.Fail).Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 2 || splits[0].Desc != filepath.Join(dir, "a.jsonl") || splits[0].Bytes != 6 || splits[0].Records != -1 {
		t.Fatalf("splits %+v", splits)
	}
	for _, tc := range []struct {
		pattern string
		policy  jsonl.Policy
		is      error
		msg     string
	}{
		{filepath.Join(dir, "missing.jsonl"), jsonl.Fail, fs.ErrNotExist, "missing.jsonl"},
		{filepath.Join(dir, "*.csv"), jsonl.Fail, jsonl.ErrNoFiles, "*.csv"},
		{"", jsonl.Fail, jsonl.ErrNoFiles, "empty pattern"},
		{dir, jsonl.Fail, nil, "is a directory"},
		{filepath.Join(dir, "[.jsonl"), jsonl.Fail, filepath.ErrBadPattern, "[.jsonl"},
		{filepath.Join(dir, "a.jsonl"), jsonl.Policy(7), nil, "unknown policy Policy(7)"},
	} {
		_, err := jsonl.Source[rec](tc.pattern, tc.policy).Splits(context.Background())
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("pattern %q: error %v, want %v mentioning %q", tc.pattern, err, tc.is, tc.msg)
		}
	}
}
