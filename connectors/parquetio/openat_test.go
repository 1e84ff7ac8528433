package parquetio_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/internal/testenv"
	"github.com/sluice-data/sluice/stages"
)

// TestOpenAt: a reader's position, passed to OpenAt, opens its split where
// the reader was, with and without a filter that rules out pages; a split
// opened again reads from its start (a reader used to consume the split's
// row ranges in place, so a second open of a filtered split lost rows).
func TestOpenAt(t *testing.T) {
	dir := t.TempDir()
	write(t, events(30_000), dir, parquetio.RowGroupRows(10_000))
	for _, opts := range [][]parquetio.ReadOption{nil, {parquetio.Where("id", ">=", int64(4_000))}} {
		src := parquetio.Source[Event](filepath.Join(dir, "*.parquet"), opts...)
		ctx := context.Background()
		splits, err := src.Splits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range splits {
			all := readSplit(t, src, sp, nil)
			again := readSplit(t, src, sp, nil)
			if len(again) != len(all) {
				t.Fatalf("%s opened again: %d rows, the first time %d", sp.Desc, len(again), len(all))
			}
			for _, k := range []int{0, 1, min(777, len(all)), len(all) / 2, len(all)} {
				r, err := src.Open(ctx, stages.Instance{}, sp)
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]Event, k)
				for n := 0; n < k; {
					m, err := r.Read(buf[n:])
					n += m
					if err != nil && !(errors.Is(err, io.EOF) && n == k) {
						t.Fatalf("%s: reading %d rows: %v", sp.Desc, k, err)
					}
				}
				pos, err := r.(stages.Positioner).Position()
				if err != nil {
					t.Fatal(err)
				}
				_ = r.Close()
				rest := readSplit(t, src, sp, pos)
				if len(rest) != len(all)-k || len(rest) > 0 && rest[0].ID != all[k].ID {
					t.Fatalf("%s at %s after %d rows: %d rows, want %d", sp.Desc, pos, k, len(rest), len(all)-k)
				}
			}
		}
		if _, err := src.OpenAt(ctx, stages.Instance{}, splits[0], []byte(`{"file":"elsewhere","row_group":0,"row":3}`)); err == nil {
			t.Error("a position in another file opened")
		}
	}
}

// readSplit reads split sp of src, from pos if not nil.
func readSplit(t *testing.T, src *parquetio.FileSource[Event], sp stages.Split, pos []byte) []Event {
	t.Helper()
	var r stages.Reader[Event]
	var err error
	if pos != nil {
		r, err = src.OpenAt(context.Background(), stages.Instance{}, sp, pos)
	} else {
		r, err = src.Open(context.Background(), stages.Instance{}, sp)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return testenv.ReadAll(t, r)
}
