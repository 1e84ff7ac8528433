package parquetio_test

import (
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go/deprecated"

	"github.com/sluice-data/sluice/connectors/parquetio"
)

// The conversions on files that parquet-go writes, without DuckDB: small
// pages and row groups, dictionaries and nulls, and a filter whose page
// index makes the reader seek, checked against values computed from what
// was written. interop_test.go checks them against DuckDB on DuckDB's and
// arrow-go's files.

// foreign is written with the types other engines use.
type foreign struct {
	ID    int64            `parquet:"id"`
	US    int64            `parquet:"us,timestamp(microsecond)"`
	NUS   *int64           `parquet:"nus,timestamp(microsecond)"`
	NS    int64            `parquet:"ns,timestamp(nanosecond),dict"`
	Day   int32            `parquet:"day,date"`
	I8    int8             `parquet:"i8,dict"`
	U32   uint32           `parquet:"u32"`
	Cents int64            `parquet:"cents,decimal(2:12)"`
	Old   deprecated.Int96 `parquet:"old"`
	F32   float32          `parquet:"f32"`
	Name  string           `parquet:"name,dict"`
}

// int96Of is t as Impala and Spark write it: the nanoseconds of the day,
// then the Julian day.
func int96Of(t time.Time) deprecated.Int96 {
	days := int64(math.Floor(float64(t.Unix()) / 86400))
	nanos := t.Sub(time.Unix(days*86400, 0)).Nanoseconds()
	return deprecated.Int96{uint32(nanos), uint32(nanos >> 32), uint32(days + 2440588)}
}

func foreigns(n int) []foreign {
	out := make([]foreign, n)
	for i := range out {
		us := (int64(i*7919)%4000-2000)*86_400_000_123 + int64(i)
		f := foreign{
			ID: int64(i), US: us, NS: int64(i%13)*1_000_000_001 - 5_000_000_000,
			Day: int32(i*37%40000 - 20000), I8: int8(i%256 - 128), U32: uint32(uint64(i) * 2654435761 % math.MaxUint32),
			Cents: int64(i*104729)%2_000_000_000 - 1_000_000_000,
			Old:   int96Of(time.UnixMicro(us).Add(time.Duration(i % 1000))),
			F32:   float32(i) / 7, Name: "n" + strconv.Itoa(i%7),
		}
		if i%5 != 2 {
			v := us * 3
			f.NUS = &v
		}
		out[i] = f
	}
	return out
}

func TestConversionsOnParquetGoFiles(t *testing.T) {
	dir := t.TempDir()
	in := foreigns(3000)
	writeFile(t, filepath.Join(dir, "f.parquet"), in, 700)
	type asTimes struct {
		ID   int64      `parquet:"id"`
		US   time.Time  `parquet:"us"`
		NUS  *time.Time `parquet:"nus"`
		NS   time.Time  `parquet:"ns"`
		Day  time.Time  `parquet:"day"`
		Old  time.Time  `parquet:"old"`
		Name string     `parquet:"name"`
	}
	type asNumbers struct {
		ID    int64             `parquet:"id"`
		USns  int64             `parquet:"us,timestamp(nanosecond)"`
		NUSms *int64            `parquet:"nus,timestamp(millisecond)"` // truncated
		OldUS int64             `parquet:"old,timestamp(microsecond)"` // truncated
		Day   int32             `parquet:"day"`
		I8    int64             `parquet:"i8"`
		U32   int64             `parquet:"u32"`
		Cents float64           `parquet:"cents"`
		F32   float64           `parquet:"f32"`
		Exact parquetio.Decimal `parquet:"cents_exact"` // missing: not a pointer, so refused
	}
	type asNumbersOK struct {
		ID    int64              `parquet:"id"`
		USns  int64              `parquet:"us,timestamp(nanosecond)"`
		NUSms *int64             `parquet:"nus,timestamp(millisecond)"`
		OldUS int64              `parquet:"old,timestamp(microsecond)"`
		Day   int32              `parquet:"day"`
		I8    int64              `parquet:"i8"`
		U32   int64              `parquet:"u32"`
		Cents float64            `parquet:"cents"`
		F32   float64            `parquet:"f32"`
		Gone  *parquetio.Decimal `parquet:"gone"` // missing: nil
	}
	type asDecimal struct {
		ID    int64             `parquet:"id"`
		Cents parquetio.Decimal `parquet:"cents"`
	}
	for _, filtered := range []bool{false, true} {
		var opts []parquetio.ReadOption
		from := 0
		if filtered { // skips pages by the page index: the reader seeks
			from = 2222
			opts = append(opts, parquetio.Where("id", ">=", from))
		}
		want := in[from:]
		byID := func(a, b int64) int { return int(a - b) }

		times := read[asTimes](t, dir, opts...)
		slices.SortFunc(times, func(a, b asTimes) int { return byID(a.ID, b.ID) })
		if len(times) != len(want) {
			t.Fatalf("filtered=%v: read %d records, want %d", filtered, len(times), len(want))
		}
		for i, g := range times {
			w := want[i]
			old := time.UnixMicro(w.US).Add(time.Duration(w.ID % 1000)).UTC()
			ok := g.ID == w.ID && g.US.Equal(time.UnixMicro(w.US)) && g.NS.Equal(time.Unix(0, w.NS)) &&
				g.Day.Equal(time.Unix(int64(w.Day)*86400, 0)) && g.Old.Equal(old) && g.Name == w.Name &&
				(g.NUS == nil) == (w.NUS == nil) && (w.NUS == nil || g.NUS.Equal(time.UnixMicro(*w.NUS)))
			if !ok || g.US.Location() != time.UTC || g.Old.Location() != time.UTC {
				t.Fatalf("filtered=%v: record %d: got %+v, wrote %+v", filtered, i, g, w)
			}
		}

		if _, err := tryRead[asNumbers](t, dir, append(opts, parquetio.TruncateTimestamps())...); err == nil {
			t.Fatal("a missing column read into a Decimal field that is not a pointer")
		}
		nums := read[asNumbersOK](t, dir, append(opts, parquetio.TruncateTimestamps())...)
		slices.SortFunc(nums, func(a, b asNumbersOK) int { return byID(a.ID, b.ID) })
		if len(nums) != len(want) {
			t.Fatalf("filtered=%v: read %d records as numbers, want %d", filtered, len(nums), len(want))
		}
		for i, g := range nums {
			w := want[i]
			oldUS := time.UnixMicro(w.US).Add(time.Duration(w.ID % 1000)).UnixMicro() // whole µs below: floor
			ok := g.USns == w.US*1000 && g.OldUS == oldUS && g.Day == w.Day && g.I8 == int64(w.I8) &&
				g.U32 == int64(w.U32) && g.Cents == float64(w.Cents)/100 && g.F32 == float64(w.F32) && g.Gone == nil &&
				(g.NUSms == nil) == (w.NUS == nil) && (w.NUS == nil || *g.NUSms == time.UnixMicro(*w.NUS).Truncate(time.Millisecond).UnixMilli())
			if !ok {
				t.Fatalf("filtered=%v: record %d: got %+v, wrote %+v", filtered, i, g, w)
			}
		}

		decs := read[asDecimal](t, dir, opts...)
		slices.SortFunc(decs, func(a, b asDecimal) int { return byID(a.ID, b.ID) })
		if len(decs) != len(want) {
			t.Fatalf("filtered=%v: read %d decimals, want %d", filtered, len(decs), len(want))
		}
		for i, g := range decs {
			if w := want[i]; g.Cents != (parquetio.Decimal{Unscaled: w.Cents, Scale: 2}) {
				t.Fatalf("filtered=%v: record %d: got %+v, wrote %d cents", filtered, i, g.Cents, w.Cents)
			}
		}
	}
}

// A filter on a DECIMAL column compares decimals, not unscaled integers.
func TestWhereDecimal(t *testing.T) {
	dir := t.TempDir()
	in := foreigns(2000)
	writeFile(t, filepath.Join(dir, "f.parquet"), in, 500)
	type rec struct {
		ID    int64             `parquet:"id"`
		Cents parquetio.Decimal `parquet:"cents"`
	}
	limit := parquetio.Decimal{Unscaled: -95_000_005, Scale: 1} // -9500000.5, among the values
	got := read[rec](t, dir, parquetio.Where("cents", ">=", limit))
	want := 0
	for _, f := range in {
		if (parquetio.Decimal{Unscaled: f.Cents, Scale: 2}).Cmp(limit) >= 0 {
			want++
		}
	}
	if len(got) != want || want == 0 || want == len(in) {
		t.Fatalf("cents >= %s: %d records, want %d of %d", limit, len(got), want, len(in))
	}
	for _, g := range got {
		if g.Cents.Cmp(limit) < 0 {
			t.Fatalf("record %d: %s < %s", g.ID, g.Cents, limit)
		}
	}
	if _, err := tryRead[rec](t, dir, parquetio.Where("cents", ">=", 12.5)); err == nil {
		t.Fatal("a float filter on a DECIMAL column was accepted")
	}
}
