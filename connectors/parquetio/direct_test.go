package parquetio_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/sluice-data/sluice/connectors/parquetio"
)

// flat is a record the direct path reads: flat columns of plain types,
// a dictionary-encoded string among them.
type flat struct {
	ID      int64     `parquet:"id"`
	Small   int32     `parquet:"small"`
	Ratio   float32   `parquet:"ratio"`
	Amount  float64   `parquet:"amount"`
	TS      int64     `parquet:"ts,timestamp(millisecond)"`
	Country string    `parquet:"country,dict"`
	Name    string    `parquet:"name"`
	Code    int64     `parquet:"code,dict"`
	When    time.Time `parquet:"when,timestamp(millisecond)"`
	WhenUS  time.Time `parquet:"when_us,timestamp(microsecond)"`
	Day     time.Time `parquet:"day,timestamp(millisecond),dict"`
}

// flatProj reads three of flat's columns, in another order.
type flatProj struct {
	Name    string `parquet:"name"`
	Country string `parquet:"country"`
	ID      int64  `parquet:"id"`
}

// flatOpt is flat's file with an optional column, which holds no nulls.
type flatOpt struct {
	ID     int64    `parquet:"id"`
	Amount *float64 `parquet:"amount,optional"`
}

func usesDirect[T any](path string) (r struct {
	direct bool
	err    error
}) {
	r.direct, r.err = parquetio.UsesDirect[T](path)
	return r
}

func flats(n int) []flat {
	out := make([]flat, n)
	for i := range out {
		out[i] = flat{
			ID:      int64(i),
			Small:   int32(i%1000 - 500),
			Ratio:   float32(i) / 7,
			Amount:  float64(i*31%10007) / 100,
			TS:      1_700_000_000_000 + int64(i)*1000,
			Country: []string{"de", "fr", "jp", "us", "br"}[i*7%5],
			Name:    fmt.Sprintf("name-%d", i*7919%100_003),
			Code:    int64(i % 17),
			When:    time.UnixMilli(1_700_000_000_000 + int64(i)*1777).UTC(),
			WhenUS:  time.UnixMicro(1_700_000_000_000_000 + int64(i)*1_000_003).UTC(),
			Day:     time.Date(2024, 1, 1+i%30, 0, 0, 0, 0, time.UTC),
		}
	}
	return out
}

// writeFile writes xs with parquet-go itself, in small pages and row
// groups so that reads cross many page and row-group boundaries.
func writeFile[T any](t *testing.T, path string, xs []T, rowGroup int) {
	t.Helper()
	writeWith(t, path, xs, rowGroup, parquet.PageBufferSize(2<<10))
}

// readBoth reads url as T on the direct path and on the general path and
// fails unless both give the same records; it returns them sorted by less.
func readBoth[T any](t *testing.T, url string, cmp func(a, b T) int, opts ...parquetio.ReadOption) []T {
	t.Helper()
	direct, general := readDirectAndGeneral(t, url, cmp, opts...)
	if len(direct) != len(general) {
		t.Fatalf("direct path read %d records, general path %d", len(direct), len(general))
	}
	for i := range direct {
		if !reflect.DeepEqual(direct[i], general[i]) { // through pointers
			t.Fatalf("record %d: direct path %+v, general path %+v", i, direct[i], general[i])
		}
	}
	return direct
}

func TestDirectReadMatchesGeneral(t *testing.T) {
	dir := t.TempDir()
	in := flats(50_000)
	writeFile(t, filepath.Join(dir, "a.parquet"), in[:30_000], 7_000)
	writeFile(t, filepath.Join(dir, "b.parquet"), in[30_000:], 20_000)
	byID := func(a, b flat) int { return int(a.ID - b.ID) }

	for _, uses := range []struct {
		direct bool
		err    error
	}{usesDirect[flat](dir + "/a.parquet"), usesDirect[flatProj](dir + "/b.parquet")} {
		if uses.err != nil || !uses.direct {
			t.Fatalf("the direct path is not taken (%v)", uses.err)
		}
	}
	type withBool struct {
		ID   int64 `parquet:"id"`
		Flag bool  `parquet:"flag"`
	}
	boolFile := filepath.Join(t.TempDir(), "b.parquet")
	writeFile(t, boolFile, []withBool{{1, true}}, 10)
	if uses := usesDirect[withBool](boolFile); uses.err != nil || uses.direct {
		t.Fatal("a record with a bool field takes the direct path")
	}
	got := readBoth(t, dir, byID)
	if !slices.Equal(got, in) {
		t.Fatalf("read %d records, not the %d written", len(got), len(in))
	}

	proj := readBoth(t, dir, func(a, b flatProj) int { return int(a.ID - b.ID) })
	for i, p := range proj {
		if w := in[i]; p.ID != w.ID || p.Name != w.Name || p.Country != w.Country {
			t.Fatalf("projection, record %d: %+v, want %+v", i, p, w)
		}
	}

	// A filter that the page index narrows: the reader seeks within
	// row groups, and rows are filtered exactly.
	var st parquetio.Stats
	lo, hi := int64(12_345), int64(31_234)
	got = readBoth(t, dir, byID, parquetio.Where("id", ">=", lo), parquetio.Where("id", "<", hi),
		parquetio.Where("country", "!=", "jp"), parquetio.WithStats(&st))
	want := keep(in, func(f flat) bool { return f.ID >= lo && f.ID < hi && f.Country != "jp" })
	if !slices.Equal(got, want) {
		t.Fatalf("filtered: read %d records, want %d", len(got), len(want))
	}
	if st.RowsSkipped.Load() == 0 {
		t.Fatal("the page index skipped no rows: the test does not exercise seeking")
	}
}

// An optional column with no nulls reads into a required field on the
// direct path too; a null there is refused.
func TestDirectReadOptionalColumn(t *testing.T) {
	dir := t.TempDir()
	in := make([]flatOpt, 10_000)
	for i := range in {
		v := float64(i) / 4
		in[i] = flatOpt{ID: int64(i), Amount: &v}
	}
	writeFile(t, filepath.Join(dir, "opt.parquet"), in, 3_000)
	type required struct {
		ID     int64   `parquet:"id"`
		Amount float64 `parquet:"amount"`
	}
	got := readBoth(t, dir, func(a, b required) int { return int(a.ID - b.ID) })
	for i, g := range got {
		if g.ID != int64(i) || g.Amount != float64(i)/4 {
			t.Fatalf("record %d: %+v", i, g)
		}
	}
	in[5_000].Amount = nil
	writeFile(t, filepath.Join(dir, "opt.parquet"), in, 3_000)
	if _, err := tryRead[required](t, dir); err == nil {
		t.Fatal("a null read into a required field without an error")
	}
}

// nullable is a record of optional columns, read into pointer fields.
type nullable struct {
	ID     int64      `parquet:"id"`
	Small  *int32     `parquet:"small"`
	Big    *int64     `parquet:"big"`
	Ratio  *float32   `parquet:"ratio"`
	Amount *float64   `parquet:"amount"`
	Name   *string    `parquet:"name"`
	Tag    *string    `parquet:"tag,dict"`
	When   *time.Time `parquet:"when,timestamp(millisecond)"`
	Code   *int64     `parquet:"code,dict"`
}

func nullables(n int) []nullable {
	out := make([]nullable, n)
	for i := range out {
		x := nullable{ID: int64(i)}
		// Nulls at different rates per column, and a stretch of rows
		// where all are null (whole pages of nulls) or none are.
		allNull := i >= 3000 && i < 4500
		noNull := i >= 6000 && i < 8000
		if !allNull && (noNull || i%3 != 0) {
			v := int32(i - 5000)
			x.Small = &v
		}
		if !allNull && (noNull || i%5 != 1) {
			v := int64(i) * 1_000_003
			x.Big = &v
		}
		if !allNull && (noNull || i%2 == 0) {
			v := float32(i) / 3
			x.Ratio = &v
		}
		if !allNull && (noNull || i%7 != 0) {
			v := float64(i) / 8
			x.Amount = &v
		}
		if !allNull && (noNull || i%4 != 3) {
			v := fmt.Sprintf("name-%d", i*31%9973)
			x.Name = &v
		}
		if !allNull && (noNull || i%6 != 5) {
			v := []string{"red", "green", "blue"}[i%3]
			x.Tag = &v
		}
		if !allNull && (noNull || i%9 != 4) {
			v := time.UnixMilli(1_700_000_000_000 + int64(i)*60_000).UTC()
			x.When = &v
		}
		if !allNull && (noNull || i%11 != 2) {
			v := int64(i % 13)
			x.Code = &v
		}
		out[i] = x
	}
	return out
}

// Optional columns with nulls read into pointer fields on the direct path,
// as parquet-go reads them: pages of every mix of nulls, dictionaries,
// projections and page-index seeks.
func TestDirectReadNullable(t *testing.T) {
	dir := t.TempDir()
	in := nullables(12_000)
	writeFile(t, filepath.Join(dir, "n.parquet"), in, 5_000)
	if uses := usesDirect[nullable](dir + "/n.parquet"); uses.err != nil || !uses.direct {
		t.Fatalf("the direct path is not taken for pointer fields (%v)", uses.err)
	}
	byID := func(a, b nullable) int { return int(a.ID - b.ID) }
	got := readBoth(t, dir, byID)
	if !reflect.DeepEqual(got, in) {
		t.Fatal("records read differ from those written")
	}
	type some struct {
		Tag  *string `parquet:"tag"`
		ID   int64   `parquet:"id"`
		Name *string `parquet:"name"`
	}
	readBoth(t, dir, func(a, b some) int { return int(a.ID - b.ID) })
	var st parquetio.Stats
	got = readBoth(t, dir, byID, parquetio.Where("id", ">=", 2_500), parquetio.Where("id", "<", 7_777), parquetio.WithStats(&st))
	if want := in[2_500:7_777]; !reflect.DeepEqual(got, want) {
		t.Fatalf("filtered: %d records, want %d", len(got), len(want))
	}
	// The same file read into fields that are not pointers fails on the
	// nulls, naming the column.
	type required struct {
		ID    int64 `parquet:"id"`
		Small int32 `parquet:"small"`
	}
	if _, err := tryRead[required](t, dir); err == nil || !strings.Contains(err.Error(), "small") {
		t.Fatalf("nulls read into a required field: %v", err)
	}
}
