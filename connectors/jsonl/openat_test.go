package jsonl_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/stages"
)

// TestOpenAt: a reader's position, passed to OpenAt, opens the file at the
// line after the last one read, with its line numbers, for both sources.
func TestOpenAt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.jsonl")
	var b strings.Builder
	for i := range 500 {
		fmt.Fprintf(&b, "{\"id\": %d, \"pad\": %q}\n", i, strings.Repeat("x", i%37))
		if i%50 == 0 {
			b.WriteString("\n") // blank lines count as lines
		}
	}
	b.WriteString(`{"id": 500}`) // no newline at the end
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	type rec struct{ ID int }
	ids := func(src stages.Source[rec]) {
		ctx := context.Background()
		splits, _ := src.Splits(ctx)
		for _, k := range []int{0, 1, 50, 51, 333, 501} {
			r, _ := src.Open(ctx, stages.Instance{}, splits[0])
			first := readN(t, r, k)
			pos, err := r.(stages.Positioner).Position()
			if err != nil {
				t.Fatal(err)
			}
			rest, err := src.(stages.Seeker[rec]).OpenAt(ctx, stages.Instance{}, splits[0], pos)
			if err != nil {
				t.Fatal(err)
			}
			got := append(first, readN(t, rest, 1000)...)
			if len(got) != 501 || !slices.IsSortedFunc(got, func(a, b rec) int { return a.ID - b.ID }) || got[500].ID != 500 {
				t.Fatalf("after %d records and OpenAt(%s): %d records", k, pos, len(got))
			}
		}
	}
	ids(jsonl.Source[rec](path, jsonl.Fail))
	lines := jsonl.Lines(path)
	ctx := context.Background()
	splits, _ := lines.Splits(ctx)
	r, _ := lines.Open(ctx, stages.Instance{}, splits[0])
	readN(t, r, 100)
	pos, _ := r.(stages.Positioner).Position()
	want := readN(t, r, 1)
	again, err := lines.(stages.Seeker[jsonl.Line]).OpenAt(ctx, stages.Instance{}, splits[0], pos)
	if err != nil {
		t.Fatal(err)
	}
	if got := readN(t, again, 1); got[0].Number != want[0].Number || string(got[0].Text) != string(want[0].Text) {
		t.Fatalf("Lines at %s: %v, want %v", pos, got[0], want[0])
	}
}

func readN[T any](t *testing.T, r stages.Reader[T], n int) []T {
	t.Helper()
	var out []T
	buf := make([]T, 7)
	for len(out) < n {
		k, err := r.Read(buf[:min(len(buf), n-len(out))])
		out = append(out, buf[:k]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
