package parquetio_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/connectors/parquetio"
	"github.com/sluice-data/sluice/internal/testenv"
)

// The interop tests read files that DuckDB and arrow-go write (tools/peers
// write-interop) and compare every value Sluice reads with what DuckDB
// reads from the same file (tools/peers sql -json). The peers binary is
// found through $SLUICE_PEERS, which scripts/test.sh builds and sets:
//
//	(cd tools/peers && go build -o /tmp/peers .)
//	SLUICE_PEERS=/tmp/peers go test ./connectors/parquetio/

func peersBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("SLUICE_PEERS")
	if p == "" {
		testenv.Need(t, "SLUICE_PEERS is not set: build tools/peers with (cd tools/peers && go build -o /tmp/peers .) and set SLUICE_PEERS=/tmp/peers")
	}
	return p
}

// writeInterop writes the interop files into a new directory.
func writeInterop(t *testing.T) string {
	t.Helper()
	bin := peersBinary(t)
	dir := t.TempDir()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "write-interop", dir)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s write-interop %s: %v\n%s", bin, dir, err, stderr.String())
	}
	return dir
}

// duck runs a query in DuckDB and returns its rows, numbers as json.Number.
func duck(t *testing.T, query string) []map[string]any {
	t.Helper()
	bin := peersBinary(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "sql", "-json", query)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("peers sql %q: %v\n%s", query, err, stderr.String())
	}
	dec := json.NewDecoder(&stdout)
	dec.UseNumber()
	var rows []map[string]any
	for dec.More() {
		var row map[string]any
		if err := dec.Decode(&row); err != nil {
			t.Fatalf("peers sql %q: %v", query, err)
		}
		rows = append(rows, row)
	}
	return rows
}

// columnsOf returns the Parquet column names of T's fields, in order.
func columnsOf(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("parquet"), ",")
		out = append(out, name)
	}
	return out
}

// compareWithDuckDB reads url as T with Sluice and checks every field of
// every record against DuckDB's value of the field's column, or of the
// expression that exprs gives for it, read from the same files (from, a
// DuckDB table expression). T's first field is the id the rows are
// matched by.
func compareWithDuckDB[T any](t *testing.T, url, from string, exprs map[string]string, opts ...parquetio.ReadOption) {
	t.Helper()
	got, err := tryRead[T](t, url, opts...)
	if err != nil {
		t.Fatalf("reading %s as %v: %v", url, reflect.TypeFor[T](), err)
	}
	typ := reflect.TypeFor[T]()
	cols := columnsOf(typ)
	sel := make([]string, len(cols))
	for i, c := range cols {
		e, ok := exprs[c]
		if !ok {
			e = c
		}
		sel[i] = fmt.Sprintf("%s AS f%d", e, i)
	}
	want := duck(t, fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", strings.Join(sel, ", "), from, cols[0]))
	sort.Slice(got, func(i, j int) bool {
		return reflect.ValueOf(got[i]).Field(0).Int() < reflect.ValueOf(got[j]).Field(0).Int()
	})
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("%s as %v: Sluice read %d records, DuckDB %d", url, typ, len(got), len(want))
	}
	bad := 0
	for r := range got {
		v := reflect.ValueOf(got[r])
		for i := range cols {
			if err := sameValue(v.Field(i), want[r][fmt.Sprintf("f%d", i)]); err != nil {
				bad++
				if bad <= 5 {
					t.Errorf("%s as %v, record %d (id %v), field %s (column %s): %v", filepath.Base(url), typ, r, v.Field(0), typ.Field(i).Name, cols[i], err)
				}
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d wrong values in all", bad)
	}
}

// sameValue compares a field with DuckDB's JSON rendering of a value.
func sameValue(v reflect.Value, want any) error {
	if v.Kind() == reflect.Pointer {
		if want == nil {
			if !v.IsNil() {
				return fmt.Errorf("got %v, DuckDB NULL", v.Elem())
			}
			return nil
		}
		if v.IsNil() {
			return fmt.Errorf("got nil, DuckDB %v", want)
		}
		v = v.Elem()
	} else if want == nil {
		return fmt.Errorf("got %v, DuckDB NULL", v)
	}
	text := fmt.Sprint(want)
	switch x := v.Interface().(type) {
	case time.Time:
		if _, isNumber := want.(json.Number); isNumber { // unix nanoseconds
			if w, err := strconv.ParseInt(text, 10, 64); err != nil || w != x.UnixNano() || x.Location() != time.UTC {
				return fmt.Errorf("got %s (%d), DuckDB %s", x.Format(time.RFC3339Nano), x.UnixNano(), text)
			}
			return nil
		}
		w, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			return err
		}
		if !x.Equal(w) || x.Location() != time.UTC {
			return fmt.Errorf("got %s, DuckDB %s", x.Format(time.RFC3339Nano), text)
		}
		return nil
	case parquetio.Decimal:
		if x.String() != text {
			return fmt.Errorf("got %s, DuckDB %s", x, text)
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w, err := strconv.ParseInt(text, 10, 64)
		if err != nil || w != v.Int() {
			return fmt.Errorf("got %d, DuckDB %s", v.Int(), text)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		w, err := strconv.ParseUint(text, 10, 64)
		if err != nil || w != v.Uint() {
			return fmt.Errorf("got %d, DuckDB %s", v.Uint(), text)
		}
	case reflect.Float64:
		bits := 64
		if _, isNumber := want.(json.Number); isNumber {
			bits = 32 // a FLOAT column, in float32's shortest digits
		}
		w, err := strconv.ParseFloat(text, bits)
		if err != nil || w != v.Float() {
			return fmt.Errorf("got %v, DuckDB %s", v.Float(), text)
		}
	case reflect.String:
		if text != v.String() {
			return fmt.Errorf("got %q, DuckDB %q", v.String(), text)
		}
	default:
		return fmt.Errorf("cannot compare a %v", v.Type())
	}
	return nil
}

// Records reading the DuckDB files.
type (
	duckTimes struct {
		ID   int64      `parquet:"id"`
		TS   time.Time  `parquet:"ts"` // TIMESTAMP: MICROS, not UTC
		TSms time.Time  `parquet:"ts_ms"`
		TSns time.Time  `parquet:"ts_ns"`
		TStz time.Time  `parquet:"tstz"`   // MICROS, UTC
		Far  time.Time  `parquet:"ts_far"` // outside int64 nanoseconds' years
		D    time.Time  `parquet:"d"`      // DATE
		NTS  *time.Time `parquet:"n_ts"`
		ND   *time.Time `parquet:"n_d"`
	}
	duckUnits struct {
		ID     int64  `parquet:"id"`
		MSasUS int64  `parquet:"ts_ms,timestamp(microsecond)"`
		USasNS int64  `parquet:"ts,timestamp(nanosecond)"`
		TZasUS int64  `parquet:"tstz,timestamp(microsecond)"` // the UTC flag alone differs
		NSasNS int64  `parquet:"ts_ns,timestamp(nanosecond)"`
		FarMS  int64  `parquet:"ts_far,timestamp(millisecond)"` // truncated
		NTSms  *int64 `parquet:"n_ts,timestamp(millisecond)"`   // truncated
	}
	duckInts struct {
		ID   int64  `parquet:"id"`
		I8   int16  `parquet:"i8"`
		I16  int64  `parquet:"i16"`
		I32  int64  `parquet:"i32"`
		I64  int64  `parquet:"i64"`
		U8   int32  `parquet:"u8"`
		U16  uint32 `parquet:"u16"`
		U32  int64  `parquet:"u32"`
		U64  uint64 `parquet:"u64"`
		D    int32  `parquet:"d"` // days since 1970-01-01
		NI16 *int32 `parquet:"n_i16"`
		NU32 *int64 `parquet:"n_u32"`
		S    string `parquet:"s"`
	}
	// duckIntsV2 is duckInts without the INTEGER and UINTEGER columns, for
	// DuckDB's V2 pages: their values span more than an int32, and DuckDB's
	// DELTA_BINARY_PACKED pages of them are refused (fileFit.checkDeltas;
	// TestInteropRefusals).
	duckIntsV2 struct {
		ID   int64  `parquet:"id"`
		I8   int16  `parquet:"i8"`
		I16  int64  `parquet:"i16"`
		I64  int64  `parquet:"i64"`
		U8   int32  `parquet:"u8"`
		U16  uint32 `parquet:"u16"`
		U64  uint64 `parquet:"u64"`
		D    int32  `parquet:"d"`
		NI16 *int32 `parquet:"n_i16"`
		S    string `parquet:"s"`
	}
	duckDecimals struct {
		ID     int64             `parquet:"id"`
		Dec4   float64           `parquet:"dec4"`
		Dec10  float64           `parquet:"dec10"`
		NDec10 *float64          `parquet:"n_dec10"`
		Dec18  parquetio.Decimal `parquet:"dec18"`
		Dec38  parquetio.Decimal `parquet:"dec38"` // FIXED_LEN_BYTE_ARRAY(16)
		F      float64           `parquet:"f"`     // FLOAT
	}
	duckDecimalsExact struct {
		ID     int64              `parquet:"id"`
		Dec4   parquetio.Decimal  `parquet:"dec4"`
		Dec10  parquetio.Decimal  `parquet:"dec10"`
		NDec10 *parquetio.Decimal `parquet:"n_dec10"`
	}
)

// Records reading arrow-go's files.
type (
	int96Times struct {
		ID   int64      `parquet:"id"`
		TS   *time.Time `parquet:"ts"`
		TSns time.Time  `parquet:"ts_ns"`
	}
	int96Units struct {
		ID   int64  `parquet:"id"`
		TS   *int64 `parquet:"ts,timestamp(nanosecond)"`
		TSms int64  `parquet:"ts_ns,timestamp(millisecond)"` // truncated
	}
	pandasTimes struct {
		ID   int64      `parquet:"id"`
		TSus *time.Time `parquet:"ts_us"` // MICROS, not UTC, ±1000 years
		TSns time.Time  `parquet:"ts_ns"` // NANOS, not UTC
		TSms time.Time  `parquet:"ts_ms"` // MILLIS, UTC
		D    time.Time  `parquet:"d"`
	}
	pandasMixed struct {
		ID    int64             `parquet:"id"`
		MSasU int64             `parquet:"ts_ms,timestamp(microsecond)"`
		D     int32             `parquet:"d"`
		I8    int64             `parquet:"i8"`
		I16   *int32            `parquet:"i16"`
		U32   uint64            `parquet:"u32"`
		Dec   *float64          `parquet:"dec"` // DECIMAL(12,2) in 6 fixed bytes
		Dec30 parquetio.Decimal `parquet:"dec30"`
		F     float64           `parquet:"f"`
	}
)

func TestInteropReads(t *testing.T) {
	dir := writeInterop(t)
	src := func(file string) string { return fmt.Sprintf("read_parquet('%s')", filepath.Join(dir, file)) }
	// TruncateTimestamps floors, as DuckDB's date_trunc does (its casts to
	// TIMESTAMP_MS round instead).
	units := map[string]string{
		"ts_ms":  "epoch_us(ts_ms)",
		"ts":     "epoch_ns(ts)",
		"tstz":   "epoch_us(tstz)",
		"ts_ns":  "epoch_ns(ts_ns)",
		"ts_far": "epoch_ms(date_trunc('millisecond', ts_far))",
		"n_ts":   "epoch_ms(date_trunc('millisecond', n_ts))",
	}
	days := map[string]string{"d": "datediff('day', DATE '1970-01-01', d)"}
	for _, file := range []string{"duckdb-v1.parquet", "duckdb-v2.parquet"} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join(dir, file)
			compareWithDuckDB[duckTimes](t, path, src(file), nil)
			compareWithDuckDB[duckUnits](t, path, src(file), units, parquetio.TruncateTimestamps())
			if file == "duckdb-v1.parquet" {
				compareWithDuckDB[duckInts](t, path, src(file), days)
			} else {
				compareWithDuckDB[duckIntsV2](t, path, src(file), days)
			}
			compareWithDuckDB[duckDecimals](t, path, src(file), nil)
			compareWithDuckDB[duckDecimalsExact](t, path, src(file), nil)
		})
	}
	t.Run("arrow-int96.parquet", func(t *testing.T) {
		path := filepath.Join(dir, "arrow-int96.parquet")
		// DuckDB reads INT96 in microseconds, dropping ts_ns's last three
		// digits: compare it whole with the number arrow-go wrote beside
		// it, and in milliseconds (int96Units) with DuckDB's reading.
		compareWithDuckDB[int96Times](t, path, src("arrow-int96.parquet"), map[string]string{"ts_ns": "ts_ns_int"})
		compareWithDuckDB[int96Units](t, path, src("arrow-int96.parquet"),

			// The floor of the exact nanoseconds in milliseconds: DuckDB's
			// own INT96 reading truncates to microseconds toward 1970.
			map[string]string{"ts": "epoch_ns(ts)", "ts_ns": "(ts_ns_int - (ts_ns_int % 1000000 + 1000000) % 1000000) // 1000000"}, parquetio.TruncateTimestamps())
	})
	t.Run("arrow-pandas.parquet", func(t *testing.T) {
		path := filepath.Join(dir, "arrow-pandas.parquet")
		compareWithDuckDB[pandasTimes](t, path, src("arrow-pandas.parquet"), nil)
		compareWithDuckDB[pandasMixed](t, path, src("arrow-pandas.parquet"),
			map[string]string{"ts_ms": "epoch_us(ts_ms)", "d": days["d"]})
	})
	t.Run("duckdb-evolve", func(t *testing.T) {
		// A dataset whose second file lacks the column extra: nil there.
		type evolve struct {
			ID    int64  `parquet:"id"`
			Extra *int64 `parquet:"extra"`
			Note  string `parquet:"note"`
		}
		evolveDir := filepath.Join(dir, "duckdb-evolve")
		from := fmt.Sprintf("read_parquet('%s/*.parquet', union_by_name = true)", evolveDir)
		for _, direct := range []bool{true, false} {
			restore := parquetio.SetDirect(direct)
			compareWithDuckDB[evolve](t, evolveDir, from, nil)
			restore()
		}
	})
}

// Conversions that could lose information are refused when the schema is
// checked, with an error naming the file and the column; so are values
// out of a field's range, naming the row group too.
func TestInteropRefusals(t *testing.T) {
	dir := writeInterop(t)
	v1 := filepath.Join(dir, "duckdb-v1.parquet")
	v2 := filepath.Join(dir, "duckdb-v2.parquet")
	int96 := filepath.Join(dir, "arrow-int96.parquet")
	pandas := filepath.Join(dir, "arrow-pandas.parquet")
	type (
		coarsen struct {
			ID int64 `parquet:"id"`
			TS int64 `parquet:"ts,timestamp(millisecond)"` // MICROS in the file
		}
		coarsenInt96 struct {
			ID int64 `parquet:"id"`
			TS int64 `parquet:"ts_ns,timestamp(microsecond)"`
		}
		dec18Float struct {
			ID    int64   `parquet:"id"`
			Dec18 float64 `parquet:"dec18"`
		}
		ubigintInt64 struct {
			ID  int64 `parquet:"id"`
			U64 int64 `parquet:"u64"`
		}
		signedUnsigned struct {
			ID  int64  `parquet:"id"`
			I16 uint32 `parquet:"i16"`
		}
		narrower struct {
			ID  int64 `parquet:"id"`
			I32 int16 `parquet:"i32"`
		}
		notDecimal struct {
			ID int64             `parquet:"id"`
			S  parquetio.Decimal `parquet:"s"`
		}
		farNanos struct { // ±1000 years do not fit int64 nanoseconds
			ID  int64 `parquet:"id"`
			Far int64 `parquet:"ts_far,timestamp(nanosecond)"`
		}
		pandasFarNanos struct {
			ID   int64  `parquet:"id"`
			TSus *int64 `parquet:"ts_us,timestamp(nanosecond)"`
		}
		bytesBeside struct { // a conversion, and a field only the general path fills
			ID int64     `parquet:"id"`
			TS time.Time `parquet:"ts"`
			S  []byte    `parquet:"s"`
		}
		deltaInt32 struct {
			ID  int64 `parquet:"id"`
			I32 int32 `parquet:"i32"`
		}
		deltaUint32 struct {
			ID  int64  `parquet:"id"`
			U32 uint32 `parquet:"u32"`
		}
	)
	for _, tc := range []struct {
		name, file, column string
		sentinel           error
		read               func(string) error
		says               string
	}{
		{"MICROS into a millisecond int64", v1, "ts", parquetio.ErrSchema,
			func(u string) error { _, err := tryRead[coarsen](t, u); return err }, "TruncateTimestamps"},
		{"INT96 into a microsecond int64", int96, "ts_ns", parquetio.ErrSchema,
			func(u string) error { _, err := tryRead[coarsenInt96](t, u); return err }, "TruncateTimestamps"},
		{"DECIMAL(18,3) into float64", v1, "dec18", parquetio.ErrSchema,
			func(u string) error { _, err := tryRead[dec18Float](t, u); return err }, "parquetio.Decimal"},
		{"UBIGINT into int64", v1, "u64", parquetio.ErrSchema,
			func(u string) error { _, err := tryRead[ubigintInt64](t, u); return err }, "do not all fit"},
		{"SMALLINT into uint32", v1, "i16", parquetio.ErrSchema,
			func(u string) error { _, err := tryRead[signedUnsigned](t, u); return err }, "negative"},
		{"INTEGER into int16", v1, "i32", parquetio.ErrSchema,
			func(u string) error { _, err := tryRead[narrower](t, u); return err }, "do not all fit"},
		{"VARCHAR into Decimal", v1, "s", parquetio.ErrSchema,
			func(u string) error { _, err := tryRead[notDecimal](t, u); return err }, "DECIMAL"},
		{"far MICROS into nanoseconds", v1, "ts_far", parquetio.ErrSchema,
			func(u string) error { _, err := tryRead[farNanos](t, u); return err }, "out of range"},
		{"pandas far MICROS into nanoseconds", pandas, "ts_us", parquetio.ErrSchema,
			func(u string) error { _, err := tryRead[pandasFarNanos](t, u); return err }, "out of range"},
		{"a conversion beside a []byte field", v1, "ts", parquetio.ErrSchema,
			func(u string) error { _, err := tryRead[bytesBeside](t, u); return err }, "field S is a []uint8"},
		{"V2 INTEGER deltas beyond an int32", v2, "i32", parquetio.ErrCorrupt,
			func(u string) error { _, err := tryRead[deltaInt32](t, u); return err }, "DELTA_BINARY_PACKED"},
		{"V2 UINTEGER deltas beyond an int32", v2, "u32", parquetio.ErrCorrupt,
			func(u string) error { _, err := tryRead[deltaUint32](t, u); return err }, "DELTA_BINARY_PACKED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.read(tc.file)
			if !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.file) ||
				!strings.Contains(err.Error(), "column "+tc.column) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("want %v naming %s, column %s and saying %q; got %v", tc.sentinel, tc.file, tc.column, tc.says, err)
			}
			t.Log(err)
		})
	}
	t.Run("missing column into a non-pointer field", func(t *testing.T) {
		type strict struct {
			ID    int64 `parquet:"id"`
			Extra int32 `parquet:"extra"`
		}
		_, err := tryRead[strict](t, filepath.Join(dir, "duckdb-evolve"))
		part1 := filepath.Join(dir, "duckdb-evolve", "part-1.parquet")
		if !errors.Is(err, parquetio.ErrSchema) || !strings.Contains(err.Error(), part1) || !strings.Contains(err.Error(), "column extra is missing") {
			t.Fatalf("want a schema error naming %s and column extra, got %v", part1, err)
		}
		t.Log(err)
	})
}
