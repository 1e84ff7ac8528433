package parquetio_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice/connectors/parquetio"
)

// seekRec has a plain filter column g that is 0 in runs that do not line
// up with any other column's pages, so the page index keeps several
// disjoint row ranges and the reader seeks into the middle of pages.
type seekRec struct {
	ID    int64    `parquet:"id"`
	G     int32    `parquet:"g,plain"`
	Small *int32   `parquet:"small"`
	Name  *string  `parquet:"name"`
	Tag   *string  `parquet:"tag,dict"`
	Code  *int64   `parquet:"code,dict"`
	Amt   float64  `parquet:"amt"`
	Txt   string   `parquet:"txt"`
	Dict  string   `parquet:"dict,dict"`
	R     *float32 `parquet:"r"`
}

func seekRecs(n int) []seekRec {
	out := make([]seekRec, n)
	for i := range out {
		x := seekRec{ID: int64(i), G: int32((i / 173) % 5), Amt: float64(i) / 3,
			Txt: fmt.Sprintf("t%d", i*37%1001), Dict: []string{"a", "bb", "ccc"}[i%3]}
		if i%3 != 0 {
			v := int32(i)
			x.Small = &v
		}
		if i%4 != 1 && !(i > 2000 && i < 2600) {
			v := fmt.Sprintf("name-%d", i)
			x.Name = &v
		}
		if i%5 != 2 {
			v := []string{"red", "green", "blue"}[i%3]
			x.Tag = &v
		}
		if i%7 != 3 {
			v := int64(i % 11)
			x.Code = &v
		}
		if i%2 == 0 {
			v := float32(i)
			x.R = &v
		}
		out[i] = x
	}
	return out
}

func writeWith[T any](t *testing.T, path string, xs []T, rowGroup int, opts ...parquet.WriterOption) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f, append([]parquet.WriterOption{parquet.PageBufferSize(1 << 10)}, opts...)...)
	for len(xs) > 0 {
		k := min(rowGroup, len(xs))
		if _, err := w.Write(xs[:k]); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		xs = xs[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDirectReadSeeksV1V2(t *testing.T) {
	in := seekRecs(8000)
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			dir := t.TempDir()
			writeWith(t, filepath.Join(dir, "s.parquet"), in, 3000, parquet.DataPageVersion(v))
			cmp := func(a, b seekRec) int { return int(a.ID - b.ID) }
			var st parquetio.Stats
			got := readBoth(t, dir, cmp, parquetio.Where("g", "==", 0), parquetio.WithStats(&st))
			want := keep(in, func(x seekRec) bool { return x.G == 0 })
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("read %d records, want %d", len(got), len(want))
			}
			if st.RowsSkipped.Load() == 0 {
				t.Fatal("no seek")
			}
			got = readBoth(t, dir, cmp)
			if !reflect.DeepEqual(got, in) {
				t.Fatal("differs")
			}
		})
	}
}

// Row groups where an optional column, dictionary-encoded or not, is all
// null: empty dictionaries and pages with no values.
func TestDirectReadAllNullRowGroups(t *testing.T) {
	type rec struct {
		ID   int64      `parquet:"id"`
		Tag  *string    `parquet:"tag,dict"`
		Name *string    `parquet:"name"`
		Code *int64     `parquet:"code,dict"`
		When *time.Time `parquet:"when,timestamp(millisecond),dict"`
		F    *float32   `parquet:"f,dict"`
	}
	in := make([]rec, 3000)
	for i := range in {
		in[i].ID = int64(i)
		if i >= 1000 && i < 2000 {
			continue
		}
		s := fmt.Sprint("v", i%7)
		c := int64(i % 5)
		w := time.UnixMilli(int64(i % 3)).UTC()
		f := float32(i % 4)
		in[i].Tag, in[i].Name, in[i].Code, in[i].When, in[i].F = &s, &s, &c, &w, &f
	}
	for _, v := range []int{1, 2} {
		dir := t.TempDir()
		writeWith(t, filepath.Join(dir, "n.parquet"), in, 1000, parquet.DataPageVersion(v))
		got := readBoth(t, dir, func(a, b rec) int { return int(a.ID - b.ID) })
		if !reflect.DeepEqual(got, in) {
			t.Fatal("differs from written")
		}
	}
}
