package parquetio_test

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// readAllReusing reads every split of url as T through the exported
// FileSource API, reusing one buffer for all reads as a Reader's caller
// may.
func readAllReusing[T any](t *testing.T, url string) []T {
	t.Helper()
	ctx := context.Background()
	src := parquetio.Source[T](url)
	splits, err := src.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	buf := make([]T, 64)
	for _, sp := range splits {
		r, err := src.Open(ctx, stages.Instance{}, sp)
		if err != nil {
			t.Fatal(err)
		}
		for {
			k, err := r.Read(buf)
			out = append(out, buf[:k]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// A file without an optional column of the record: the general path sets
// the field to nil in every record it reads. The direct path skipped the
// column (as it does a partition key) and left whatever the caller's
// buffer held, here the values of the file read before (found by a
// review); such files now take the general path.
func TestDirectReadMissingOptionalColumn(t *testing.T) {
	type withExtra struct {
		ID    int64  `parquet:"id"`
		Extra *int64 `parquet:"extra"`
	}
	type without struct {
		ID int64 `parquet:"id"`
	}
	dir := t.TempDir()
	a := make([]withExtra, 64)
	for i := range a {
		v := int64(1000 + i)
		a[i] = withExtra{ID: int64(i), Extra: &v}
	}
	b := make([]without, 64)
	for i := range b {
		b[i] = without{ID: int64(100 + i)}
	}
	writeFile(t, filepath.Join(dir, "a.parquet"), a, 64)
	writeFile(t, filepath.Join(dir, "b.parquet"), b, 64)
	for _, direct := range []bool{false, true} {
		restore := parquetio.SetDirect(direct)
		got := readAllReusing[withExtra](t, dir)
		restore()
		for _, g := range got {
			if g.ID >= 100 && g.Extra != nil {
				t.Errorf("direct=%v: record %d of b.parquet, which has no column extra: Extra=%d, want nil", direct, g.ID, *g.Extra)
				break
			}
		}
	}
}

// A file replaced between Splits and Open with its columns in another
// order: the direct path kept the column indexes that Splits planned and
// read the wrong columns (found by a review); it now plans from the file
// it opens, as the general path looks columns up by name there.
func TestDirectPlanFromTheFileOpened(t *testing.T) {
	type ab struct {
		A int64 `parquet:"a"`
		B int64 `parquet:"b"`
	}
	type ba struct {
		B int64 `parquet:"b"`
		A int64 `parquet:"a"`
	}
	for _, direct := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "f.parquet")
		writeFile(t, path, []ab{{A: 1, B: 2}}, 10)
		restore := parquetio.SetDirect(direct)
		ctx := context.Background()
		src := parquetio.Source[ab](path)
		splits, err := src.Splits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, []ba{{A: 1, B: 2}}, 10) // same data, columns swapped
		r, err := src.Open(ctx, stages.Instance{}, splits[0])
		if err != nil {
			restore()
			t.Logf("direct=%v: open: %v", direct, err)
			continue
		}
		buf := make([]ab, 4)
		n, err := r.Read(buf)
		_ = r.Close()
		restore()
		if err != nil && err != io.EOF {
			t.Logf("direct=%v: read: %v", direct, err)
			continue
		}
		if n != 1 || buf[0] != (ab{A: 1, B: 2}) {
			t.Errorf("direct=%v: read %d records %+v, want {A:1 B:2}", direct, n, buf[:n])
		}
	}
}
