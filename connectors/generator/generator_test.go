package generator_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/connectors/generator"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// readAll reads every split of src in split order with a buffer of bufLen.
func readAll[T any](t testing.TB, src stages.Source[T], bufLen int) ([]T, []stages.Split) {
	t.Helper()
	ctx := context.Background()
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	buf := make([]T, bufLen)
	for _, sp := range splits {
		r, err := src.Open(ctx, stages.Instance{Job: "test", Parallelism: 1}, sp)
		if err != nil {
			t.Fatal(err)
		}
		start := len(out)
		for {
			n, err := r.Read(buf)
			out = append(out, buf[:n]...)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatalf("%s: Read returned no rows and no error", sp.Desc)
			}
		}
		if got := int64(len(out) - start); got != sp.Records {
			t.Errorf("%s: read %d rows, split says %d", sp.Desc, got, sp.Records)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out, splits
}

func TestRowsIndependentOfSplits(t *testing.T) {
	for _, zipf := range []float64{0, 1.2} {
		base := generator.Config{Seed: 42, Rows: 10_007, Keys: 500, Zipf: zipf, Start: 1000, Disorder: 50}
		g, err := generator.New(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ splits, buf int }{{1, 1024}, {3, 7}, {7, 1}, {0, 4096}, {20_000, 3}} {
			t.Run(fmt.Sprintf("zipf=%v/splits=%d/buf=%d", zipf, tc.splits, tc.buf), func(t *testing.T) {
				cfg := base
				cfg.Splits = tc.splits
				rows, splits := readAll(t, generator.Rows(cfg), tc.buf)
				want := min(max(tc.splits, 1), int(cfg.Rows))
				if len(splits) != want {
					t.Errorf("%d splits, want %d", len(splits), want)
				}
				if len(rows) != int(cfg.Rows) {
					t.Fatalf("read %d rows, want %d", len(rows), cfg.Rows)
				}
				for i, r := range rows {
					if r != g.Row(int64(i)) {
						t.Fatalf("row %d is %+v, want %+v", i, r, g.Row(int64(i)))
					}
				}
			})
		}
	}
}

func TestFillMatchesRow(t *testing.T) {
	for _, zipf := range []float64{0, 0.7} {
		g, err := generator.New(generator.Config{Seed: 3, Rows: 1000, Keys: 97, Zipf: zipf, Disorder: 5})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]generator.Row, 300)
		g.Fill(buf, 123)
		for j, r := range buf {
			if want := g.Row(123 + int64(j)); r != want {
				t.Fatalf("zipf %v: Fill row %d is %+v, Row gives %+v", zipf, j, r, want)
			}
		}
	}
}

// TestRunAnyParallelism runs the source through sluice.Run at several split
// counts and parallelisms: the same multiset of rows comes out.
func TestRunAnyParallelism(t *testing.T) {
	cfg := generator.Config{Seed: 9, Rows: 50_000, Keys: 1000, Zipf: 1.1, Disorder: 10}
	g, err := generator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ splits, par int }{{1, 1}, {3, 2}, {7, 3}} {
		t.Run(fmt.Sprintf("splits=%d/parallelism=%d", tc.splits, tc.par), func(t *testing.T) {
			c := cfg
			c.Splits = tc.splits
			p := stages.NewPipeline("generator-run")
			out := stages.Collect(generator.Read(p, c))
			res, err := sluice.Run(context.Background(), p, sluice.Options{Parallelism: tc.par})
			if err != nil {
				t.Fatal(err)
			}
			if tot := res.Stages[0].Total; tot != cfg.Rows {
				t.Errorf("source total %d, want %d", tot, cfg.Rows)
			}
			rows := out.Values()
			slices.SortFunc(rows, func(a, b generator.Row) int { return int(a.Index - b.Index) })
			if len(rows) != int(cfg.Rows) {
				t.Fatalf("%d rows, want %d", len(rows), cfg.Rows)
			}
			for i, r := range rows {
				if r != g.Row(int64(i)) {
					t.Fatalf("row %d is %+v, want %+v", i, r, g.Row(int64(i)))
				}
			}
		})
	}
}

func harmonic(n int, s float64) float64 {
	h := 0.0
	for k := n; k >= 1; k-- {
		h += math.Pow(float64(k), -s)
	}
	return h
}

func keyCounts(t *testing.T, cfg generator.Config) []int64 {
	t.Helper()
	g, err := generator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int64, cfg.Keys)
	buf := make([]generator.Row, 4096)
	for i := int64(0); i < cfg.Rows; i += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), cfg.Rows-i)]
		g.Fill(b, i)
		for _, r := range b {
			if r.Key < 0 || r.Key >= cfg.Keys {
				t.Fatalf("row %d: key %d out of [0, %d)", r.Index, r.Key, cfg.Keys)
			}
			counts[r.Key]++
		}
	}
	return counts
}

// within reports whether count is within 5 standard deviations of a
// binomial(rows, p).
func within(count, rows int64, p float64) bool {
	mean := float64(rows) * p
	sd := math.Sqrt(float64(rows) * p * (1 - p))
	return math.Abs(float64(count)-mean) <= 5*sd+1
}

func TestZipfSkew(t *testing.T) {
	const rows = 1_000_000
	for _, s := range []float64{0.5, 1, 1.2, 3} {
		t.Run(fmt.Sprintf("s=%v", s), func(t *testing.T) {
			counts := keyCounts(t, generator.Config{Seed: 11, Rows: rows, Keys: 1000, Zipf: s})
			h := harmonic(1000, s)
			top := float64(counts[0]) / rows
			if want := 1 / h; math.Abs(top-want) > 0.005 {
				t.Errorf("top key share %.4f, want 1/H(1000, %v) = %.4f", top, s, want)
			}
			for k := range 20 {
				if p := math.Pow(float64(k+1), -s) / h; !within(counts[k], rows, p) {
					t.Errorf("key %d: %d rows, want about %.0f", k, counts[k], rows*p)
				}
			}
		})
	}
}

func TestUniform(t *testing.T) {
	const rows, keys = 1_000_000, 100
	counts := keyCounts(t, generator.Config{Seed: 5, Rows: rows, Keys: keys})
	for k, c := range counts {
		if !within(c, rows, 1.0/keys) {
			t.Errorf("key %d: %d rows, want about %d", k, c, rows/keys)
		}
	}
}

func TestValuesAndTimes(t *testing.T) {
	for _, disorder := range []int64{0, 1, 1000} {
		cfg := generator.Config{Seed: 8, Rows: 100_000, Keys: 10, Start: 1_704_067_200_000, Disorder: disorder}
		g, err := generator.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var valueSum, lagMax int64
		prev := int64(math.MinInt64)
		buf := make([]generator.Row, cfg.Rows)
		g.Fill(buf, 0)
		for _, r := range buf {
			if r.Value < 0 || r.Value >= generator.ValueRange {
				t.Fatalf("row %d: value %d out of range", r.Index, r.Value)
			}
			valueSum += r.Value
			lag := cfg.Start + r.Index - r.Time
			if lag < 0 || lag > disorder {
				t.Fatalf("disorder %d: row %d lags %d ms", disorder, r.Index, lag)
			}
			lagMax = max(lagMax, lag)
			if disorder == 0 && r.Time <= prev {
				t.Fatalf("row %d: time %d not after %d", r.Index, r.Time, prev)
			}
			prev = r.Time
		}
		if lagMax != disorder {
			t.Errorf("disorder %d: largest lag %d", disorder, lagMax)
		}
		mean := float64(valueSum) / float64(cfg.Rows)
		if math.Abs(mean-generator.ValueRange/2) > 5000 {
			t.Errorf("mean value %.0f, want about %d", mean, generator.ValueRange/2)
		}
	}
}

func TestSeedsDiffer(t *testing.T) {
	a, _ := generator.New(generator.Config{Seed: 1, Rows: 10, Keys: 1 << 40})
	b, _ := generator.New(generator.Config{Seed: 2, Rows: 10, Keys: 1 << 40})
	same := 0
	for i := range int64(1000) {
		if a.Row(i).Key == b.Row(i).Key || a.Row(i).Key == b.Row(i+1).Key {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 1 and 2 share %d keys of 1000", same)
	}
}

// TestStable pins the generated data: benchmarks and checksums computed by
// other engines on generator data depend on it. Change it only with a note
// that the data changed.
func TestStable(t *testing.T) {
	for _, tc := range []struct {
		cfg  generator.Config
		want uint64
	}{
		{generator.DefaultConfig(), 0x935870791c468090},
		{generator.Config{Seed: 7, Rows: 100_000, Keys: 1000, Zipf: 1.2, Disorder: 100}, 0x8bfc3dce78b5ccc2},
	} {
		g, err := generator.New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		h := fnv.New64a()
		for i := range min(tc.cfg.Rows, 100_000) {
			fmt.Fprintf(h, "%+v\n", g.Row(i))
		}
		if got := h.Sum64(); got != tc.want {
			t.Errorf("%+v: checksum %#x, want %#x", tc.cfg, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  generator.Config
		want []string // every problem reported, in order
	}{
		{"default", generator.DefaultConfig(), nil},
		{"zero rows", generator.Config{Keys: 1}, nil},
		{"zero", generator.Config{}, []string{"Keys 0"}},
		{"negative", generator.Config{Rows: -1, Keys: -2, Zipf: -1, Splits: -1, Disorder: -1},
			[]string{"Rows -1", "Keys -2", "Zipf -1", "Splits -1", "Disorder -1"}},
		{"nan", generator.Config{Keys: 1, Zipf: math.NaN()}, []string{"Zipf NaN"}},
		{"inf", generator.Config{Keys: 1, Zipf: math.Inf(1)}, []string{"Zipf +Inf"}},
		{"zipf keys", generator.Config{Keys: generator.MaxZipfKeys + 1, Zipf: 1}, []string{"at most 16777216 when Zipf > 0"}},
		{"big", generator.Config{Rows: generator.MaxRows + 1, Keys: 1, Start: generator.MaxStart + 1, Disorder: generator.MaxDisorder + 1},
			[]string{"Rows 9007199254740993", "Start 9007199254740993", "Disorder 1099511627777"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, generator.ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d problems reported, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d is %q, want it to mention %q", i, lines[i], w)
				}
			}
			if _, err := generator.New(tc.cfg); !errors.Is(err, generator.ErrConfig) {
				t.Errorf("New: error %v, want ErrConfig", err)
			}
		})
	}
}

// TestReadInvalid checks that an invalid Config fails the run, naming the
// stage and every problem.
func TestReadInvalid(t *testing.T) {
	p := stages.NewPipeline("bad-generator")
	stages.Collect(generator.Read(p, generator.Config{Rows: -5, Keys: 0}))
	_, err := sluice.Run(context.Background(), p, sluice.Options{})
	if !errors.Is(err, generator.ErrConfig) {
		t.Fatalf("error %v, want ErrConfig", err)
	}
	for _, w := range []string{`source "generator"`, "Rows -5", "Keys 0"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

type order struct {
	ID, User int64
	Cents    int64
}

func TestSource(t *testing.T) {
	cfg := generator.Config{Seed: 4, Rows: 5000, Keys: 300, Zipf: 1.5, Splits: 4}
	g, _ := generator.New(cfg)
	toOrder := func(r generator.Row) order { return order{ID: r.Index, User: r.Key, Cents: r.Value} }
	got, _ := readAll(t, generator.Source(cfg, toOrder), 333)
	if len(got) != int(cfg.Rows) {
		t.Fatalf("%d orders, want %d", len(got), cfg.Rows)
	}
	for i, o := range got {
		if want := toOrder(g.Row(int64(i))); o != want {
			t.Fatalf("order %d is %+v, want %+v", i, o, want)
		}
	}
	if _, err := generator.Source[order](cfg, nil).Splits(context.Background()); err == nil {
		t.Error("a nil function was accepted")
	}
}

// BenchmarkGenerator measures how fast a reader fills batches of 1024 rows.
func BenchmarkGenerator(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  generator.Config
	}{
		{"uniform", generator.Config{Seed: 1, Rows: generator.MaxRows, Keys: 1_000_000, Disorder: 1000}},
		{"zipf1.2-1k", generator.Config{Seed: 1, Rows: generator.MaxRows, Keys: 1000, Zipf: 1.2, Disorder: 1000}},
		{"zipf1.2-10M", generator.Config{Seed: 1, Rows: generator.MaxRows, Keys: 10_000_000, Zipf: 1.2, Disorder: 1000}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bc.cfg.Splits = 1
			src := generator.Rows(bc.cfg)
			splits, err := src.Splits(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			r, err := src.Open(context.Background(), stages.Instance{Parallelism: 1}, splits[0])
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]generator.Row, 1024)
			b.ReportAllocs()
			b.ResetTimer()
			var rows int64
			for b.Loop() {
				n, err := r.Read(buf)
				if err != nil {
					b.Fatal(err)
				}
				rows += int64(n)
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows), "ns/row")
		})
	}
}

// TestOpenAt: a reader's position, passed to OpenAt, opens the split where
// the reader was: the rest of the split, row for row, for both sources.
func TestOpenAt(t *testing.T) {
	cfg := generator.Config{Seed: 8, Rows: 5_000, Keys: 100, Zipf: 1.1, Splits: 3}
	ctx := context.Background()
	double := func(r generator.Row) int64 { return r.Key * 2 }
	check := func(name string, src stages.Source[int64]) {
		splits, err := src.Splits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sk := src.(stages.Seeker[int64])
		for _, sp := range splits {
			r, err := src.Open(ctx, stages.Instance{}, sp)
			if err != nil {
				t.Fatal(err)
			}
			first := make([]int64, 777)
			n, _ := r.Read(first)
			pos, err := r.(stages.Positioner).Position()
			if err != nil {
				t.Fatal(err)
			}
			rest := testenv.ReadAll(t, r)
			again, err := sk.OpenAt(ctx, stages.Instance{}, sp, pos)
			if err != nil {
				t.Fatal(err)
			}
			if got := testenv.ReadAll(t, again); !slices.Equal(got, rest) {
				t.Fatalf("%s: split %s opened at %q after %d rows: %d rows, want the %d after them", name, sp.Desc, pos, n, len(got), len(rest))
			}
		}
		if _, err := sk.OpenAt(ctx, stages.Instance{}, splits[0], []byte("999999")); err == nil {
			t.Errorf("%s: a position past the split opened", name)
		}
	}
	check("Source", generator.Source(cfg, double))
}
