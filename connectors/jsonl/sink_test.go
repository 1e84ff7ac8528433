package jsonl_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/actors"
	"github.com/sluice-data/sluice/connectors/generator"
	"github.com/sluice-data/sluice/connectors/jsonl"
	"github.com/sluice-data/sluice/stages"
)

type event struct {
	ID    int64    `json:"id"`
	User  string   `json:"user"`
	Score float64  `json:"score"`
	Tags  []string `json:"tags,omitempty"`
	Note  *string  `json:"note,omitempty"`
}

var odd = []string{"<a&b>", "line\nbreak", "tab\there", "ünïcødé ✓", "quote\"back\\slash", "\u2028sep", ""}

// toEvent makes an event from a generator row, with awkward strings on some.
func toEvent(r generator.Row) event {
	e := event{ID: r.Index, User: fmt.Sprintf("u%d", r.Key), Score: float64(r.Value) / 7}
	if r.Index%5 == 0 {
		e.User = odd[r.Index/5%int64(len(odd))]
		e.Tags = []string{"x", e.User}
	}
	if r.Index%11 == 0 {
		note := fmt.Sprintf("note %d", r.Value)
		e.Note = &note
	}
	return e
}

func events(n int64) []event {
	g, err := generator.New(generator.Config{Seed: 3, Rows: n, Keys: 100, Zipf: 1.1})
	if err != nil {
		panic(err)
	}
	out := make([]event, n)
	for i := range out {
		out[i] = toEvent(g.Row(int64(i)))
	}
	return out
}

func byID(xs []event) []event {
	slices.SortFunc(xs, func(a, b event) int { return int(a.ID - b.ID) })
	return xs
}

// entries lists dir, hidden entries included, with every part file of a
// run shown as its instance's name (part-00000).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		name := e.Name()
		if strings.HasPrefix(name, "part-") && strings.HasSuffix(name, ".jsonl") {
			name = name[:len("part-00000")]
		}
		names = append(names, name)
	}
	return names
}

// parts is what entries shows of an output of n instances: its manifest,
// its parts and Sluice's own directory.
func parts(n int) []string {
	out := []string{"_SUCCESS", "_sluice"}
	for i := range n {
		out = append(out, fmt.Sprintf("part-%05d", i))
	}
	return out
}

// partFile returns the path of instance i's file in dir.
func partFile(t testing.TB, dir string, i int) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf("part-%05d-*.jsonl", i)))
	if err != nil || len(m) != 1 {
		t.Fatalf("part %d of %s: %v (%v)", i, dir, m, err)
	}
	return m[0]
}

func noRestarts() *actors.Config {
	cfg := actors.DefaultConfig()
	cfg.Restart.MaxRestarts = 0
	return &cfg
}

// writeEvents runs a job that writes xs into dir with a sink of parallelism par.
func writeEvents(t testing.TB, dir string, xs []event, par int) {
	t.Helper()
	p := stages.NewPipeline("write-events")
	jsonl.Write(stages.FromSlice(p, xs), dir, stages.Parallelism(par))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
}

// readEvents runs a job that reads back every part file of dir.
func readEvents(t *testing.T, dir string) []event {
	t.Helper()
	p := stages.NewPipeline("read-events")
	out := stages.Collect(jsonl.Read[event](p, filepath.Join(dir, "part-*.jsonl")))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
	return byID(out.Values())
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	const n = 20_000
	p := stages.NewPipeline("round-trip")
	src := generator.Source(generator.Config{Seed: 3, Rows: n, Keys: 100, Zipf: 1.1, Splits: 5}, toEvent)
	jsonl.Write(stages.Read(p, src), dir, stages.Parallelism(3))
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
	if got, want := entries(t, dir), parts(3); !slices.Equal(got, want) {
		t.Fatalf("directory holds %q, want %q", got, want)
	}
	got, want := readEvents(t, dir), events(n)
	if len(got) != len(want) {
		t.Fatalf("read back %d events, wrote %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("event %d read back as %+v, wrote %+v", i, got[i], want[i])
		}
	}
	// One JSON value per line, HTML characters unescaped.
	b, err := os.ReadFile(partFile(t, dir, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(b), "}\n") || strings.Contains(string(b), `\u003c`) {
		t.Errorf("part 0 does not look like unescaped JSON lines: %.200q", b)
	}
}

// TestOverwrite checks that a run replaces an earlier run's parts, also
// those of instances it does not have, and leaves other files alone.
func TestOverwrite(t *testing.T) {
	dir := t.TempDir()
	first, second := events(100), events(40)
	writeEvents(t, dir, first, 4)
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeEvents(t, dir, second, 2)
	if got, want := entries(t, dir), append([]string{"README"}, parts(2)...); !slices.Equal(got, want) {
		t.Fatalf("directory holds %q, want %q", got, want)
	}
	if got := readEvents(t, dir); !reflect.DeepEqual(got, second) {
		t.Fatalf("read back %d events, want the second run's %d", len(got), len(second))
	}
}

// TestFailedJobLeavesNothing runs jobs whose map always panics, with no
// restarts: no part file appears, no staging debris stays, and an earlier
// run's output is untouched.
func TestFailedJobLeavesNothing(t *testing.T) {
	for _, earlier := range []bool{false, true} {
		t.Run(fmt.Sprintf("earlier=%v", earlier), func(t *testing.T) {
			dir := t.TempDir()
			var want []string
			if earlier {
				writeEvents(t, dir, events(10), 2)
				want = parts(2)
			}
			p := stages.NewPipeline("doomed")
			xs := stages.FromSlice(p, events(5000))
			boom := stages.Map(xs, func(e event) event { panic(fmt.Sprintf("boom on %d", e.ID)) })
			jsonl.Write(boom, dir, stages.Parallelism(3))
			_, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: noRestarts(), Parallelism: 3})
			if !errors.Is(err, actors.ErrJobFailed) || !strings.Contains(err.Error(), "boom on") {
				t.Fatalf("error %v, want the job to fail with the panic", err)
			}
			if got := entries(t, dir); !slices.Equal(got, want) {
				t.Fatalf("directory holds %q after the failed job, want %q", got, want)
			}
			if earlier {
				if got := readEvents(t, dir); !reflect.DeepEqual(got, events(10)) {
					t.Fatalf("the earlier output changed: %d events", len(got))
				}
			}
		})
	}
}

// TestCancelledJobLeavesNothing cancels a job from inside it, mid-stream.
func TestCancelledJobLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := stages.NewPipeline("cancelled")
	rows := generator.Read(p, generator.Config{Seed: 1, Rows: 1 << 40, Keys: 10})
	seen := stages.Map(rows, func(r generator.Row) generator.Row {
		if r.Index == 1000 {
			cancel()
		}
		return r
	})
	jsonl.Write(seen, dir, stages.Parallelism(2))
	_, err := sluice.Run(ctx, p, sluice.Options{Parallelism: 2})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Fatalf("directory holds %q after the cancelled job", got)
	}
}

func TestUnsupportedValue(t *testing.T) {
	dir := t.TempDir()
	p := stages.NewPipeline("nan")
	jsonl.Write(stages.FromSlice(p, []float64{1, 2, math.NaN()}), dir, stages.Parallelism(1))
	_, err := sluice.Run(context.Background(), p, sluice.Options{Runtime: noRestarts()})
	want := "jsonl: writing " + filepath.Join(dir, "part-00000-")
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ": record 2 (NaN)") {
		t.Fatalf("error %v, want it to contain %q and the record", err, want)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Fatalf("directory holds %q after the failed job", got)
	}
}

func open(t *testing.T, dir string, index, par int) stages.Writer[event] {
	t.Helper()
	w, err := jsonl.Sink[event](dir).Open(context.Background(),
		stages.Instance{Job: "nightly/run 1", Stage: "sink", Index: index, Parallelism: par})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestWriterLifecycle drives a writer by hand, outside the runtime (its
// Commit then commits the output too): nothing is visible before Commit,
// staging goes, and calls out of order fail.
func TestWriterLifecycle(t *testing.T) {
	dir := t.TempDir()
	w0 := open(t, dir, 0, 1)
	staged, err := filepath.Glob(filepath.Join(dir, "_sluice", "staging", "*", "part-00000-*.jsonl.inprogress"))
	if err != nil || len(staged) != 1 {
		t.Fatalf("staging files %q (%v), want one", staged, err)
	}
	if err := w0.Write(events(3)); err != nil {
		t.Fatal(err)
	}
	if err := w0.Commit(); !errors.Is(err, jsonl.ErrState) {
		t.Errorf("Commit before Prepare: %v, want ErrState", err)
	}
	if err := w0.Prepare(); err != nil {
		t.Fatal(err)
	}
	if err := w0.Write(events(1)); !errors.Is(err, jsonl.ErrState) {
		t.Errorf("Write after Prepare: %v, want ErrState", err)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"_sluice"}) {
		t.Fatalf("before Commit the directory holds %q", got)
	}
	if err := w0.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w0.Commit(); err != nil {
		t.Errorf("a second Commit: %v", err)
	}
	if err := w0.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
	if got := entries(t, dir); !slices.Equal(got, parts(1)) {
		t.Fatalf("after Commit the directory holds %q", got)
	}
	if got := readEvents(t, dir); !reflect.DeepEqual(got, events(3)) {
		t.Fatalf("read back %v", got)
	}

	// Abort after Prepare, and Abort twice: the output stays as it was.
	w := open(t, dir, 0, 1)
	if err := w.Write(events(2)); err != nil {
		t.Fatal(err)
	}
	if err := w.Prepare(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
	}
	if got := entries(t, dir); !slices.Equal(got, parts(1)) {
		t.Fatalf("after Abort the directory holds %q", got)
	}
	if got := readEvents(t, dir); !reflect.DeepEqual(got, events(3)) {
		t.Fatalf("after Abort read back %v", got)
	}
}

func TestSinkNoDir(t *testing.T) {
	_, err := jsonl.Sink[event]("").Open(context.Background(), stages.Instance{Parallelism: 1})
	if !errors.Is(err, jsonl.ErrNoDir) {
		t.Fatalf("error %v, want ErrNoDir", err)
	}
}

func TestSinkOpenError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := jsonl.Sink[event](file).Open(context.Background(), stages.Instance{Parallelism: 1})
	if want := "it is a regular file"; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), file) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
}
