package nexmark_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sluice-data/sluice/connectors/nexmark"
)

// vectors is where the conformance vectors are, relative to the package
// directory: Beam's and the JDK's own output, kept outside the repository.
var vectors = filepath.Join("..", "..", "..", "shared", "conformance", "nexmark")

// openVectors opens one vector file, or skips the test when it is absent.
func openVectors(t *testing.T, name string) *bufio.Scanner {
	t.Helper()
	f, err := os.Open(filepath.Join(vectors, name))
	if os.IsNotExist(err) {
		t.Skipf("conformance vectors %s not found (they live outside the repository, in ../shared/conformance/nexmark)", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<24)
	return sc
}

// randomVector is one line of java_util_random_vectors.jsonl: a fresh
// new Random(seed) for each group of draws.
type randomVector struct {
	Seed       int64              `json:"seed"`
	NextInt    []int32            `json:"nextInt"`
	NextIntN   map[string][]int32 `json:"nextInt_bound"`
	NextLong   []int64            `json:"nextLong"`
	NextDouble []float64          `json:"nextDouble"`
	Prices     []int64            `json:"price_round_pow10_d6_x100"`
}

func TestRandomMatchesJDK(t *testing.T) {
	sc := openVectors(t, "java_util_random_vectors.jsonl")
	lines := 0
	for sc.Scan() {
		lines++
		var v randomVector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %d: %v", lines, err)
		}
		r := nexmark.NewRandom(v.Seed)
		for i, want := range v.NextInt {
			if got := r.NextInt(); got != want {
				t.Errorf("seed %d: nextInt() #%d = %d, want %d", v.Seed, i, got, want)
			}
		}
		if len(v.NextIntN) == 0 {
			t.Errorf("seed %d: no nextInt(bound) vectors", v.Seed)
		}
		for bound, wants := range v.NextIntN {
			b, err := strconv.ParseInt(bound, 10, 32)
			if err != nil {
				t.Fatal(err)
			}
			r := nexmark.NewRandom(v.Seed)
			for i, want := range wants {
				if got := r.NextIntn(int32(b)); got != want {
					t.Errorf("seed %d: nextInt(%d) #%d = %d, want %d", v.Seed, b, i, got, want)
				}
			}
		}
		r = nexmark.NewRandom(v.Seed)
		for i, want := range v.NextLong {
			if got := r.NextLong(); got != want {
				t.Errorf("seed %d: nextLong() #%d = %d, want %d", v.Seed, i, got, want)
			}
		}
		r = nexmark.NewRandom(v.Seed)
		for i, want := range v.NextDouble {
			if got := r.NextDouble(); got != want {
				t.Errorf("seed %d: nextDouble() #%d = %v, want %v", v.Seed, i, got, want)
			}
		}
		r = nexmark.NewRandom(v.Seed)
		for i, want := range v.Prices {
			if got := nexmark.NextPrice(&r); got != want {
				t.Errorf("seed %d: price #%d = %d, want %d", v.Seed, i, got, want)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines == 0 {
		t.Fatal("no vectors")
	}
}

// The javadoc's check values, which hold without the vector files.
func TestRandomCheckValues(t *testing.T) {
	r := nexmark.NewRandom(0)
	if got := r.NextInt(); got != -1155484576 {
		t.Errorf("new Random(0).nextInt() = %d, want -1155484576", got)
	}
	r = nexmark.NewRandom(0)
	if got := r.NextDouble(); got != 0.730967787376657 {
		t.Errorf("new Random(0).nextDouble() = %v, want 0.730967787376657", got)
	}
	// A power-of-two bound takes the high bits; nextInt(1) is always 0.
	r = nexmark.NewRandom(0)
	for range 100 {
		if got := r.NextIntn(1); got != 0 {
			t.Fatalf("nextInt(1) = %d", got)
		}
	}
	// setSeed restarts the sequence.
	r = nexmark.NewRandom(42)
	a := r.NextLong()
	r.SetSeed(42)
	if b := r.NextLong(); a != b {
		t.Errorf("after setSeed(42): %d, want %d", b, a)
	}
	defer func() {
		if recover() == nil {
			t.Error("nextInt(0) did not panic")
		}
	}()
	r.NextIntn(0)
}
