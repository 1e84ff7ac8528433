package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/generator"
	"github.com/sluice-data/sluice/stages"
)

// capture makes the printers print into the returned buffer for the rest
// of the test.
func capture(t *testing.T) *bytes.Buffer {
	var buf bytes.Buffer
	prev := output
	output = func() io.Writer { return &buf }
	t.Cleanup(func() { output = prev })
	return &buf
}

func run(t *testing.T, job *stages.Job, args map[string]string, parallelism int) string {
	t.Helper()
	buf := capture(t)
	p, err := job.Build(args)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: parallelism}); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// oracleTop ranks sums computed without the engine.
func oracleTop[K, V interface{ ~int64 | ~string }](sums map[K]V, n int) ranking[K, V] {
	r := ranking[K, V]{Records: int64(len(sums))}
	for k, v := range sums {
		r.Top = append(r.Top, stages.KV[K, V]{Key: k, Value: v})
	}
	slices.SortFunc(r.Top, func(a, b stages.KV[K, V]) int {
		if before(a, b) {
			return -1
		}
		return 1
	})
	r.Top = r.Top[:min(n, len(r.Top))]
	return r
}

func TestSumByKeyMatchesOracle(t *testing.T) {
	cfg := generator.Config{Seed: 3, Rows: 50_000, Keys: 500, Zipf: 1.1}
	g, err := generator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[int64]int64{}
	for i := range cfg.Rows {
		r := g.Row(i)
		sums[r.Key] += r.Value
	}
	var want bytes.Buffer
	writeTop(&want, oracleTop(sums, 10), "keys", "KEY", "sum")
	args := map[string]string{"rows": "50000", "keys": "500", "seed": "3", "zipf": "1.1"}
	for _, par := range []int{1, 2, 5} {
		if got := run(t, SumByKey, args, par); got != want.String() {
			t.Errorf("parallelism %d: got\n%s\nwant\n%s", par, got, want.String())
		}
	}
}

func TestSumByKeyJSONL(t *testing.T) {
	cfg := generator.Config{Seed: 9, Rows: 20_000, Keys: 300}
	g, err := generator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]int64{}
	for i := range cfg.Rows {
		r := g.Row(i)
		want[r.Key] += r.Value
	}
	dir := t.TempDir()
	if out := run(t, SumByKey, map[string]string{"rows": "20000", "keys": "300", "seed": "9", "out": dir}, 3); out != "" {
		t.Errorf("printed %q; want nothing when writing files", out)
	}
	parts, err := filepath.Glob(filepath.Join(dir, "part-*.jsonl"))
	if err != nil || len(parts) == 0 {
		t.Fatalf("no part files in %s (%v)", dir, err)
	}
	got := map[int64]int64{}
	for _, part := range parts {
		data, err := os.ReadFile(part)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			var kv stages.KV[int64, int64]
			if err := json.Unmarshal([]byte(line), &kv); err != nil {
				t.Fatalf("%s: %q: %v", part, line, err)
			}
			if _, dup := got[kv.Key]; dup {
				t.Errorf("key %d written twice", kv.Key)
			}
			got[kv.Key] = kv.Value
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the files hold %d sums that differ from the %d expected", len(got), len(want))
	}
}

func TestWordCountFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.txt")
	text := "The cat; the DOG.\n\n'Tis the cat's hat — don't!\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got := run(t, WordCount, map[string]string{"in": path}, 2)
	want := "7 distinct words; the 7 with the greatest count:\n" +
		"WORD   COUNT\nthe    3\ncat    1\ncat's  1\ndog    1\ndon't  1\nhat    1\ntis    1\n\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestWordCountMissingFile(t *testing.T) {
	capture(t)
	path := filepath.Join(t.TempDir(), "missing.txt")
	p, err := WordCount.Build(map[string]string{"in": path})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sluice.Run(context.Background(), p, sluice.Options{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("got error %v, want one naming %s", err, path)
	}
}

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"", nil},
		{"Hello, world!", []string{"hello", "world"}},
		{"four of us—George, and", []string{"four", "of", "us", "george", "and"}},
		{"'quoted' don't 42nd", []string{"quoted", "don't", "42nd"}},
		{"' '' -- ", nil},
	} {
		var got []string
		splitWords(tc.line, func(w string) { got = append(got, w) })
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitWords(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestRankMergeOrder folds the same records in random groupings and orders:
// Merge must be associative and commutative for the pre-combiner.
func TestRankMergeOrder(t *testing.T) {
	const n = 5
	c := rank[string, int64](n)
	rng := rand.New(rand.NewPCG(1, 2))
	var all []stages.KV[string, int64]
	sums := map[string]int64{}
	for i := range 200 {
		kv := stages.KV[string, int64]{Key: "k" + strconv.Itoa(i), Value: rng.Int64N(20)} // many ties
		all = append(all, kv)
		sums[kv.Key] = kv.Value
	}
	want := oracleTop(sums, n)
	for trial := range 50 {
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		accs := make([]ranking[string, int64], len(all))
		for i, kv := range all {
			accs[i] = c.Lift(kv)
		}
		for len(accs) > 1 {
			i := rng.IntN(len(accs) - 1)
			a, b := accs[i], accs[i+1]
			if rng.IntN(2) == 0 {
				a, b = b, a
			}
			accs = slices.Replace(accs, i, i+2, c.Merge(a, b))
		}
		if got := c.Output(accs[0]); !reflect.DeepEqual(got, want) {
			t.Fatalf("trial %d: got %+v, want %+v", trial, got, want)
		}
	}
}
