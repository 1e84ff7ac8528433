package parquetio_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// Event is the test record: sorted by ID in the input, so that row groups
// cover disjoint ID ranges and statistics can skip them.
type Event struct {
	ID      int64   `parquet:"id"`
	User    string  `parquet:"user"`
	Year    int32   `parquet:"year"`
	Month   int32   `parquet:"month"`
	Cents   int64   `parquet:"amount_cents"`
	Payload string  `parquet:"payload"`
	Note    *string `parquet:"note"`
}

func events(n int) []Event {
	out := make([]Event, n)
	for i := range out {
		e := Event{
			ID:      int64(i),
			User:    fmt.Sprintf("user-%04d", (i*7919)%5000),
			Year:    int32(2022 + i%3),
			Month:   int32(1 + (i/3)%12),
			Cents:   int64((i * 104729) % 100000),
			Payload: strings.Repeat(string(rune('a'+i%26)), 40),
		}
		if i%5 == 0 {
			s := fmt.Sprintf("note %d", i)
			e.Note = &s
		}
		out[i] = e
	}
	return out
}

func byID(xs []Event) []Event {
	xs = slices.Clone(xs)
	sort.Slice(xs, func(i, j int) bool { return xs[i].ID < xs[j].ID })
	return xs
}

func keep[T any](xs []T, f func(T) bool) []T {
	var out []T
	for _, x := range xs {
		if f(x) {
			out = append(out, x)
		}
	}
	return out
}

func runJob(t *testing.T, p *stages.Pipeline) (*sluice.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return sluice.Run(ctx, p, sluice.Options{Parallelism: 3})
}

func mustRun(t *testing.T, p *stages.Pipeline) *sluice.Result {
	t.Helper()
	res, err := runJob(t, p)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func write(t *testing.T, xs []Event, url string, opts ...parquetio.WriteOption) {
	t.Helper()
	p := stages.NewPipeline("write")
	parquetio.Write(stages.FromSlice(p, xs), url, opts...)
	mustRun(t, p)
}

func read[T any](t *testing.T, url string, opts ...parquetio.ReadOption) []T {
	t.Helper()
	got, err := tryRead[T](t, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func tryRead[T any](t *testing.T, url string, opts ...parquetio.ReadOption) ([]T, error) {
	t.Helper()
	p := stages.NewPipeline("read")
	c := stages.Collect(parquetio.Read[T](p, url, opts...))
	if _, err := runJob(t, p); err != nil {
		return nil, err
	}
	return c.Values(), nil
}

func equalEvents(t *testing.T, got, want []Event) {
	t.Helper()
	got, want = byID(got), byID(want)
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.User != w.User || g.Year != w.Year || g.Month != w.Month || g.Cents != w.Cents ||
			g.Payload != w.Payload || (g.Note == nil) != (w.Note == nil) || (g.Note != nil && *g.Note != *w.Note) {
			t.Fatalf("record %d: got %+v, want %+v", i, g, w)
		}
	}
}

// files lists the regular files below dir, relative to it, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			if strings.Contains(rel, "_sluice/lease/") {
				return nil // the output's lease: bookkeeping kept between runs
			}
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// opens records the files a source opens.
type opens struct {
	mu    sync.Mutex
	files map[string]int
}

func (o *opens) hook() parquetio.ReadOption {
	return parquetio.OnOpen(func(f string) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.files == nil {
			o.files = map[string]int{}
		}
		o.files[f]++
	})
}

func (o *opens) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for f := range o.files {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// onePart writes n events as one part file (one instance) with row groups
// of rowGroup rows and returns the file's path and contents.
func onePart(t *testing.T, n int, rowGroup int64) (path string, body []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "events")
	write(t, events(n), out, parquetio.StageOptions(stages.Parallelism(1)), parquetio.RowGroupRows(rowGroup))
	for _, f := range files(t, out) {
		if strings.HasPrefix(f, "part-") {
			path = filepath.Join(out, f)
		}
	}
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, body
}
