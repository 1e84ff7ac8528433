package parquetio_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/stages"
)

// readDirectAndGeneral reads url as T on both paths, sorted by cmp.
func readDirectAndGeneral[T any](t *testing.T, url string, cmp func(a, b T) int, opts ...parquetio.ReadOption) (direct, general []T) {
	t.Helper()
	direct = read[T](t, url, opts...)
	restore := parquetio.SetDirect(false)
	general = read[T](t, url, opts...)
	restore()
	slices.SortFunc(direct, cmp)
	slices.SortFunc(general, cmp)
	return direct, general
}

// A time.Duration field read from a TIME(MICROS) column: parquet-go's
// general path converts the column's micros to nanoseconds
// (timeType.AssignValue: v * unit). The direct path took the field for a
// plain int64 and stored the raw micros, 1000 times too small (found by a
// review); TIME columns now take the general path. The file is written as
// other writers write TIME(MICROS) (pyarrow's time64[us]): an int64 of
// microseconds.
func TestDirectPathLeavesTimeColumns(t *testing.T) {
	type file struct {
		ID int64 `parquet:"id"`
		D  int64 `parquet:"d,time(microsecond)"`
		DP int64 `parquet:"dp,time(microsecond)"`
	}
	type rec struct {
		ID int64          `parquet:"id"`
		D  time.Duration  `parquet:"d,time(microsecond)"`
		DP *time.Duration `parquet:"dp,time(microsecond)"`
	}
	in := make([]file, 100)
	for i := range in {
		us := int64(i) * 1500 // 1.5 ms steps
		in[i] = file{ID: int64(i), D: us, DP: us}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "d.parquet")
	writeFile(t, path, in, 50)
	if ok, err := parquetio.UsesDirect[rec](path); err != nil || ok {
		t.Fatalf("the direct path is taken for TIME columns (%v)", err)
	}
	direct, general := readDirectAndGeneral(t, dir, func(a, b rec) int { return int(a.ID - b.ID) })
	want := 3 * 1500 * time.Microsecond
	if general[3].D != want || *general[3].DP != want {
		t.Errorf("general path: record 3 D=%v DP=%v, want %v", general[3].D, *general[3].DP, want)
	}
	if !reflect.DeepEqual(direct, general) {
		t.Fatalf("record 3: direct path D=%v DP=%v, general path D=%v DP=%v (want %v)",
			direct[3].D, *direct[3].DP, general[3].D, *general[3].DP, want)
	}
}

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
