package jsonl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// point decodes from an array [x, y]: its own UnmarshalJSON decides what a
// line may hold.
type point struct{ X, Y int }

func (p *point) UnmarshalJSON(b []byte) error {
	var xy [2]int
	if err := json.Unmarshal(b, &xy); err != nil {
		return err
	}
	p.X, p.Y = xy[0], xy[1]
	return nil
}

// readLines reads content as JSON lines of T under the Fail policy, line by
// line, and returns each line's record or error.
func readLines[T any](t *testing.T, content string) ([]T, []error) {
	t.Helper()
	dir := t.TempDir()
	var recs []T
	var errs []error
	for i, line := range strings.Split(content, "\n") {
		path := writeFile(t, filepath.Join(dir, fmt.Sprintf("%d.jsonl", i)), line+"\n")
		got, err := readSplits(t, jsonl.Source[T](path, jsonl.Fail), 4)
		var v T
		if len(got) == 1 {
			v = got[0]
		}
		recs, errs = append(recs, v), append(errs, err)
	}
	return recs, errs
}

// TestNotRecordLines checks that a null line is never a zero record, and
// that a record type read from objects refuses other values, while types
// that are not objects, or decode themselves, read what they read.
func TestNotRecordLines(t *testing.T) {
	const lines = "null\n1\n[1,2]\n\"s\"\ntrue\n{\"a\":1}"
	notObject := []string{"null, not an object", "a number, not an object", "an array, not an object", "a string, not an object", "a boolean, not an object", ""}
	check := func(name string, errs []error, want []string) {
		t.Helper()
		for i, err := range errs {
			var le *jsonl.LineError
			switch {
			case want[i] == "" && err != nil:
				t.Errorf("%s, line %q: %v", name, strings.Split(lines, "\n")[i], err)
			case want[i] == "":
			case want[i] == "json":
				if !errors.As(err, &le) || le.Line != 1 || errors.Is(err, jsonl.ErrNotRecord) {
					t.Errorf("%s, line %q: error %v, want encoding/json's", name, strings.Split(lines, "\n")[i], err)
				}
			case !errors.Is(err, jsonl.ErrNotRecord) || !errors.As(err, &le) || le.Line != 1 ||
				!strings.HasSuffix(err.Error(), ":1: the line holds "+want[i]):
				t.Errorf("%s, line %q: error %v, want ErrNotRecord: %q", name, strings.Split(lines, "\n")[i], err, want[i])
			}
		}
	}
	_, errs := readLines[rec](t, lines)
	// encoding/json refuses the other values for a struct itself.
	check("rec", errs, []string{notObject[0], "json", "json", "json", "json", ""})
	_, errs = readLines[*rec](t, lines)
	check("*rec", errs, []string{notObject[0], "json", "json", "json", "json", ""})
	_, errs = readLines[map[string]int](t, lines)
	check("map", errs, []string{notObject[0], "json", "json", "json", "json", ""})
	got, errs := readLines[any](t, lines)
	check("any", errs, notObject)
	if !reflect.DeepEqual(got[5], map[string]any{"a": 1.0}) {
		t.Errorf("any: read %v", got[5])
	}
	nums, errs := readLines[int](t, "null\n7")
	check("int", errs, []string{"null, not a record", ""})
	if nums[1] != 7 {
		t.Errorf("int: read %v", nums[1])
	}
	pts, errs := readLines[point](t, "null\n[3,4]")
	check("point", errs, []string{"null, not a record", ""})
	if pts[1] != (point{3, 4}) {
		t.Errorf("point: read %v", pts[1])
	}
}

// TestInvalidUTF8Lines checks that text encoding/json would decode into
// U+FFFD fails naming the file, line and field, and that what it decodes
// faithfully passes.
func TestInvalidUTF8Lines(t *testing.T) {
	type inner struct {
		Name string `json:"name"`
	}
	type doc struct {
		A     int               `json:"a"`
		B     string            `json:"b"`
		Items []inner           `json:"items"`
		Tags  map[string]string `json:"tags"`
	}
	for _, tc := range []struct{ line, want string }{
		{"{\"b\":\"\xff\"}", `field "b" is not valid UTF-8 (byte 0xff)`},
		{"{\"a\":1,\"items\":[{\"name\":\"ok\"},{\"name\":\"caf\xe9\"}]}", `field "items[1].name" is not valid UTF-8 (byte 0xe9)`},
		{"{\"tags\":{\"k\xc3\":\"v\"}}", `a key in "tags" is not valid UTF-8 (byte 0xc3)`},
		{"{\"\xc3\":1}", `a key is not valid UTF-8 (byte 0xc3)`},
		{"{\"unknown\":[1,\"\xf0\x9f\x98\"]}", `field "unknown[1]" is not valid UTF-8 (byte 0xf0)`},
		{`{"b":"\ud800"}`, `field "b" escapes a lone surrogate (\ud800), which encoding/json would decode as U+FFFD`},
		{`{"b":"x\uDC00y"}`, `field "b" escapes a lone surrogate (\uDC00), which encoding/json would decode as U+FFFD`},
		{`{"b":"\ud83d\u0041"}`, `field "b" escapes a lone surrogate (\ud83d), which encoding/json would decode as U+FFFD`},
		{`{"b":"\ud83d\ude00\ud83d"}`, `field "b" escapes a lone surrogate (\ud83d), which encoding/json would decode as U+FFFD`},
		{"{\"b\":\"\\ud800\",\"a\":\"\xff\"}", `field "b" escapes a lone surrogate (\ud800), which encoding/json would decode as U+FFFD`},
		// Faithful: a pair, an escaped backslash before "ud800", U+FFFD itself.
		{`{"b":"\ud83d\ude00"}`, ""},
		{`{"b":"\\ud800\\"}`, ""},
		{`{"b":"\ufffd�"}`, ""},
	} {
		_, errs := readLines[doc](t, tc.line)
		err := errs[0]
		var le *jsonl.LineError
		switch {
		case tc.want == "":
			if err != nil {
				t.Errorf("%q: %v", tc.line, err)
			}
		case !errors.Is(err, jsonl.ErrInvalidUTF8) || !errors.As(err, &le) || le.Line != 1 ||
			!strings.HasSuffix(err.Error(), ".jsonl:1: "+tc.want):
			t.Errorf("%q: error %v, want ErrInvalidUTF8: %s", tc.line, err, tc.want)
		}
	}
	// A bad byte outside any string is bad JSON, as encoding/json says.
	_, errs := readLines[doc](t, "{\"a\":1\xff}")
	if err := errs[0]; err == nil || errors.Is(err, jsonl.ErrInvalidUTF8) || !strings.Contains(err.Error(), "invalid character") {
		t.Errorf("a bad byte outside a string: error %v, want encoding/json's", err)
	}
	// A line that is one string.
	_, errs = readLines[string](t, "\"\xff\"")
	if err := errs[0]; !errors.Is(err, jsonl.ErrInvalidUTF8) || !strings.HasSuffix(err.Error(), "the string is not valid UTF-8 (byte 0xff)") {
		t.Errorf("a string line: error %v", err)
	}
}
