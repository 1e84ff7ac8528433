package jsonl_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/stages"
)

// badLines writes two files with bad lines among good ones and returns the
// glob that names them, the good records, and the dead letters expected
// (Stage left empty), in file and line order.
func badLines(t *testing.T) (string, []rec, []stages.DeadLetter) {
	t.Helper()
	dir := t.TempDir()
	long := `{"a":` + strings.Repeat("é", jsonl.MaxRecord) // cut inside a two-byte character
	a := writeFile(t, filepath.Join(dir, "a.jsonl"), "\xef\xbb\xbf{\"a\":1}\r\n"+
		"{\"a\":\"two\"}\r\n"+ // 2: a string for an int
		"\n"+
		"{\"a\":4}\n"+
		"{\"a\":5} {\"a\":6}\n"+ // 5: two values
		"  {\"a\":7,\"b\":\"seven\"}  \n")
	b := writeFile(t, filepath.Join(dir, "b.jsonl"), "{\"a\":\n"+ // 1: truncated
		long+"\n"+ // 2: long and bad
		"{\"a\":3}\n"+
		"[1,2]") // 4: an array, without a final newline
	c := writeFile(t, filepath.Join(dir, "c.jsonl"), "null\n"+ // 1: no record
		"{\"a\":8,\"b\":\"x\xffy\"}\n"+ // 2: not UTF-8
		"{\"a\":9,\"b\":\"\\ud800\"}\n"+ // 3: a lone surrogate
		"{\"a\":10,\"b\":\"\\ud83d\\ude00\"}\n"+ // a surrogate pair
		"{\"a\":11,\"zz\":\"\xc3\"}\n") // 5: not UTF-8, in a field that rec does not read
	good := []rec{{A: 1}, {A: 4}, {A: 7, B: "seven"}, {A: 3}, {A: 10, B: "😀"}}
	cut := long[:jsonl.MaxRecord-1] + "…"
	dead := []stages.DeadLetter{
		{Where: a + ":2", Record: `{"a":"two"}`, Err: "json: cannot unmarshal string into Go struct field rec.a of type int"},
		{Where: a + ":5", Record: `{"a":5} {"a":6}`, Err: "invalid character '{' after top-level value"},
		{Where: b + ":1", Record: `{"a":`, Err: "unexpected end of JSON input"},
		{Where: b + ":2", Record: cut, Err: "invalid character 'Ã' looking for beginning of value"},
		{Where: b + ":4", Record: `[1,2]`, Err: "json: cannot unmarshal array into Go value of type jsonl_test.rec"},
		{Where: c + ":1", Record: `null`, Err: "the line holds null, not an object"},
		{Where: c + ":2", Record: `{"a":8,"b":"x\xffy"}`, Err: `field "b" is not valid UTF-8 (byte 0xff)`},
		{Where: c + ":3", Record: `{"a":9,"b":"\ud800"}`, Err: `field "b" escapes a lone surrogate (\ud800), which encoding/json would decode as U+FFFD`},
		{Where: c + ":5", Record: `{"a":11,"zz":"\xc3"}`, Err: `field "zz" is not valid UTF-8 (byte 0xc3)`},
	}
	return filepath.Join(dir, "*.jsonl"), good, dead
}

func byWhere(ds []stages.DeadLetter) []stages.DeadLetter {
	slices.SortFunc(ds, func(x, y stages.DeadLetter) int { return strings.Compare(x.Where, y.Where) })
	return ds
}

// TestReadOrDeadLetter reads files with bad lines under the dead-letter
// policy: the good lines arrive, each bad line becomes one dead letter naming
// its file and line, the summary counts them, and the parse stage fuses with
// the source.
func TestReadOrDeadLetter(t *testing.T) {
	pattern, want, wantDead := badLines(t)
	p := stages.NewPipeline("dead-lines")
	good, dead := jsonl.ReadOrDeadLetter[rec](p, pattern)
	gotGood, gotDead := stages.Collect(good), stages.Collect(dead)
	res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := gotGood.Values()
	slices.SortFunc(got, func(x, y rec) int { return x.A - y.A })
	slices.SortFunc(want, func(x, y rec) int { return x.A - y.A })
	if !reflect.DeepEqual(got, want) {
		t.Errorf("good records %+v, want %+v", got, want)
	}
	const stage = `flatmap "jsonl/parse"`
	ds := byWhere(gotDead.Values())
	for i := range wantDead {
		wantDead[i].Stage = stage
	}
	if len(ds) != len(wantDead) {
		t.Fatalf("%d dead letters, want %d:\n%+v", len(ds), len(wantDead), ds)
	}
	for i := range ds {
		if ds[i] != wantDead[i] {
			t.Errorf("dead letter %d:\n got %+v\nwant %+v", i, ds[i], wantDead[i])
		}
	}
	var side []int64
	var read int64
	for _, s := range res.Stages {
		switch s.Name {
		case stage:
			side = s.Side
		case `source "jsonl"`:
			read = s.Records
		}
	}
	if !slices.Equal(side, []int64{int64(len(wantDead))}) {
		t.Errorf("the summary counts %v dead letters, want [%d]", side, len(wantDead))
	}
	if want := int64(len(want) + len(wantDead)); read != want {
		t.Errorf("the summary counts %d lines read, want %d", read, want)
	}
	plan := res.Plan.String()
	if !strings.Contains(plan, `source "jsonl" → flatmap "jsonl/parse" → collect`) {
		t.Errorf("the parse stage does not fuse with the source:\n%s", plan)
	}
}

// TestReadFailsOnFirstBadLine reads the same files under the Fail policy:
// the job fails with the first bad line of the file that a reader reaches.
func TestReadFailsOnFirstBadLine(t *testing.T) {
	pattern, _, wantDead := badLines(t)
	firsts := map[string]bool{wantDead[0].Where: true, wantDead[2].Where: true, wantDead[5].Where: true}
	p := stages.NewPipeline("fail-lines")
	stages.Collect(jsonl.Read[rec](p, pattern))
	_, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: noRestarts()})
	var le *jsonl.LineError
	if !errors.As(err, &le) || !firsts[fmt.Sprintf("%s:%d", le.Path, le.Line)] {
		t.Fatalf("error %v, want a LineError at one of %v", err, firsts)
	}
	if want := fmt.Sprintf("jsonl: %s:%d: ", le.Path, le.Line); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

// TestDeadLettersMustBeRead checks that the plan is refused when the
// dead-letter stream goes nowhere, naming the user's line.
func TestDeadLettersMustBeRead(t *testing.T) {
	pattern, _, _ := badLines(t)
	p := stages.NewPipeline("unread")
	good, _ := jsonl.ReadOrDeadLetter[rec](p, pattern, stages.Name("events"))
	stages.Collect(good)
	_, err := sluice.Run(context.Background(), p, sluice.Options{})
	for _, want := range []string{"deadletter_test.go:", `side output 1 (stages.DeadLetter) of flatmap "events/parse" is never read`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
}

// TestLines reads raw lines with small buffers: each batch's lines stay
// intact after later reads, numbers count blank lines, and text is trimmed.
func TestLines(t *testing.T) {
	long := strings.Repeat("y", 300<<10)
	path := writeFile(t, filepath.Join(t.TempDir(), "x.jsonl"), "\xef\xbb\xbf a \r\n\n\t\nb\n"+long+"\r\n  c")
	want := []jsonl.Line{
		{Path: path, Number: 1, Text: []byte("a")},
		{Path: path, Number: 4, Text: []byte("b")},
		{Path: path, Number: 5, Text: []byte(long)},
		{Path: path, Number: 6, Text: []byte("c")},
	}
	for _, bufLen := range []int{1, 3, 100} {
		got, err := readSplits(t, jsonl.Lines(path), bufLen)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("buffer %d: lines %.100q, want %.100q", bufLen, got, want)
		}
	}
	if got := want[1].String(); got != path+":4" {
		t.Errorf("String() = %q", got)
	}
	if _, err := jsonl.Lines(filepath.Join(t.TempDir(), "*.jsonl")).Splits(context.Background()); !errors.Is(err, jsonl.ErrNoFiles) {
		t.Errorf("no files: error %v, want ErrNoFiles", err)
	}
}
