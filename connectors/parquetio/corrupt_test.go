package parquetio_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// readSource reads every split of a source directly, without the runtime.
func readSource[T any](src *parquetio.FileSource[T]) (n int, err error) {
	ctx := context.Background()
	splits, err := src.Splits(ctx)
	if err != nil {
		return 0, err
	}
	buf := make([]T, 1024)
	for _, sp := range splits {
		r, err := src.Open(ctx, stages.Instance{}, sp)
		if err != nil {
			return n, err
		}
		for {
			k, err := r.Read(buf)
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				_ = r.Close()
				return n, err
			}
		}
		if err := r.Close(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Damaged files, seeded: every damage either reads (parquet has no
// checksums by default) or fails with an error that names the file; no
// panic of parquet-go gets through.
//
// Under -race only truncations are tried: some damaged pages make
// parquet-go call unsafe.Slice with a nil pointer and a length, a panic in
// a normal build (fenced here) but a fatal error, which nothing can
// recover, under the race detector's pointer checks (checkptr).
func TestDamagedFilesNeverPanic(t *testing.T) {
	part, body := onePart(t, 3000, 500)
	out := filepath.Dir(part)
	rng := rand.New(rand.NewPCG(1, 2))
	failed, panics := 0, 0
	for i := range 300 {
		bad := append([]byte(nil), body...)
		kind := i % 3
		if testenv.Race() {
			kind = 2
		}
		switch kind {
		case 0: // a few random bytes anywhere, the footer included
			for range 1 + rng.IntN(4) {
				bad[rng.IntN(len(bad))] = byte(rng.Uint32())
			}
		case 1: // a run of garbage in the data
			at := rng.IntN(len(bad) - 64)
			for j := at; j < at+1+rng.IntN(64); j++ {
				bad[j] = byte(rng.Uint32())
			}
		default: // cut short
			bad = bad[:rng.IntN(len(bad))]
		}
		if err := os.WriteFile(part, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		// Odd damages read through the general path, even ones through
		// the direct path.
		var err error
		if i%2 == 0 {
			_, err = readSource(parquetio.Source[Event](out))
		} else {
			restore := parquetio.SetDirect(false)
			_, err = readSource(parquetio.Source[Event](out))
			restore()
		}
		if err == nil {
			continue
		}
		failed++
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("damage %d: the error does not name the file: %v", i, err)
		}
		if strings.Contains(err.Error(), "panicked") {
			panics++
			if !errors.Is(err, parquetio.ErrCorrupt) {
				t.Fatalf("damage %d: a fenced panic is not ErrCorrupt: %v", i, err)
			}
		}
	}
	t.Logf("%d of 300 damaged files failed to read, %d of them through a fenced panic of parquet-go", failed, panics)
}
