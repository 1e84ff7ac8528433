package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// interopRows is the number of rows of each file write-interop writes:
// several row groups of DuckDB's and arrow-go's, and pages of both plain
// and dictionary encodings.
const interopRows = 5000

// writeInteropCmd writes, under DIR, Parquet files as other engines write
// them, for Sluice's reader to be tested on (connectors/parquetio's
// interop_test.go), and prints their paths:
//
//	duckdb-v1.parquet, duckdb-v2.parquet  the same table, by DuckDB, with V1
//	                                      and V2 data pages (interopTable)
//	duckdb-evolve/part-{0,1}.parquet      one dataset whose second file lacks
//	                                      the column extra
//	arrow-int96.parquet                   arrow-go, timestamps as INT96 (Spark's
//	                                      default)
//	arrow-pandas.parquet                  arrow-go as pyarrow writes a pandas
//	                                      frame: format 2.6, MICROS and NANOS
//	                                      without UTC, DECIMAL as fixed bytes
//
// Every table has a BIGINT id column 0..n-1 to match rows by.
func writeInteropCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("write-interop", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("give one output directory")
	}
	dir := fs.Arg(0)
	if err := os.MkdirAll(filepath.Join(dir, "duckdb-evolve"), 0o755); err != nil {
		return err
	}
	ctx := context.Background()
	db, err := open(ctx, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	out := func(name string) string { return filepath.Join(dir, name) }
	stmts := []string{
		fmt.Sprintf("CREATE TABLE interop AS %s", interopTable(interopRows)),
		fmt.Sprintf("COPY interop TO %s (FORMAT parquet, ROW_GROUP_SIZE 2048)", lit(out("duckdb-v1.parquet"))),
		fmt.Sprintf("COPY interop TO %s (FORMAT parquet, ROW_GROUP_SIZE 2048, PARQUET_VERSION V2)", lit(out("duckdb-v2.parquet"))),
		fmt.Sprintf(`COPY (SELECT i AS id, CASE WHEN i %% 3 = 0 THEN NULL ELSE (i * 7)::INTEGER END AS extra, 'n' || (i %% 5) AS note
			FROM range(1000) t(i)) TO %s (FORMAT parquet)`, lit(out("duckdb-evolve/part-0.parquet"))),
		fmt.Sprintf(`COPY (SELECT i AS id, 'n' || (i %% 5) AS note FROM range(1000, 1500) t(i)) TO %s (FORMAT parquet)`,
			lit(out("duckdb-evolve/part-1.parquet"))),
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	if err := writeArrowInt96(out("arrow-int96.parquet"), interopRows); err != nil {
		return fmt.Errorf("arrow-int96.parquet: %w", err)
	}
	if err := writeArrowPandas(out("arrow-pandas.parquet"), interopRows); err != nil {
		return fmt.Errorf("arrow-pandas.parquet: %w", err)
	}
	for _, name := range []string{"duckdb-v1.parquet", "duckdb-v2.parquet", "duckdb-evolve/part-0.parquet",
		"duckdb-evolve/part-1.parquet", "arrow-int96.parquet", "arrow-pandas.parquet"} {
		fmt.Fprintln(stdout, out(name))
	}
	return nil
}

// decimalExpr is the DECIMAL(p,s) whose unscaled value is the integer
// expression x (evaluated as HUGEINT), built through its text so that no
// float is involved.
func decimalExpr(x string, p, s int) string {
	ax := fmt.Sprintf("abs((%s)::HUGEINT)", x)
	return fmt.Sprintf("CAST(CASE WHEN (%[1]s) < 0 THEN '-' ELSE '' END || (%[2]s // %[3]s)::VARCHAR || '.' || lpad((%[2]s %% %[3]s)::VARCHAR, %[4]d, '0') AS DECIMAL(%[5]d,%[4]d))",
		x, ax, "1"+strings.Repeat("0", s), s, p)
}

// nullEvery makes expr NULL on every k-th row (i % k = k/2).
func nullEvery(k int, expr string) string {
	return fmt.Sprintf("CASE WHEN i %% %d = %d THEN NULL ELSE %s END", k, k/2, expr)
}

// interopTable is the query of the DuckDB files' table of n rows: a column
// of each type that Sluice's reader converts, with values on both sides of
// 1970, NULLs in the n_ columns, and low-cardinality columns (ts_ms, s) so
// that DuckDB writes dictionary pages too. ts_far holds times outside the
// years 1677-2262 that int64 nanoseconds cover.
func interopTable(n int) string {
	us := "((i * 104729) % 200000 - 100000) * 3600000123 + i" // about ±11 years around 1970, in µs
	cols := []string{
		"i AS id",
		fmt.Sprintf("make_timestamp(%s) AS ts", us),
		"make_timestamp((i % 50) * 86400123000 - 1000000000000)::TIMESTAMP_MS AS ts_ms",
		fmt.Sprintf("make_timestamp_ns((%s) * 1000 + i %% 1000) AS ts_ns", us),
		fmt.Sprintf("make_timestamptz(%s) AS tstz", us),
		"make_timestamp(((i * 7919) % 2000 - 1000) * 31557600000000 + i) AS ts_far", // ±1000 years
		"DATE '1970-01-01' + ((i * 37) % 40000 - 20000)::INTEGER AS d",
		"(i % 256 - 128)::TINYINT AS i8",
		"((i * 31) % 65536 - 32768)::SMALLINT AS i16",
		"((i * 2654435761) % 4294967296 - 2147483648)::INTEGER AS i32",
		"((i::HUGEINT * 1844674407370955) % 9223372036854775807 - 4611686018427387904)::BIGINT AS i64",
		"(i % 256)::UTINYINT AS u8",
		"((i * 31) % 65536)::USMALLINT AS u16",
		"((i * 2654435761) % 4294967296)::UINTEGER AS u32",
		"(18446744073709551615 - i::HUGEINT * 3689348814741910)::UBIGINT AS u64",
		decimalExpr("(i * 3) % 19999 - 9999", 4, 1) + " AS dec4",
		decimalExpr("(i * 7919) % 19999999999 - 9999999999", 10, 2) + " AS dec10",
		decimalExpr("(i::HUGEINT * 1234567890123457) % 999999999999999999 - 499999999999999999", 18, 3) + " AS dec18",
		decimalExpr("(i::HUGEINT * 98765432109876543210987654321) % 99999999999999999999999999999999999999 - 49999999999999999999999999999999999999", 38, 10) + " AS dec38",
		"(i / 7)::FLOAT AS f",
		"'name-' || (i % 100) AS s",
		nullEvery(7, fmt.Sprintf("make_timestamp(%s)", us)) + " AS n_ts",
		nullEvery(5, decimalExpr("(i * 7919) % 19999999999 - 9999999999", 10, 2)) + " AS n_dec10",
		nullEvery(3, "((i * 31) % 65536 - 32768)::SMALLINT") + " AS n_i16",
		nullEvery(11, "DATE '1970-01-01' + ((i * 37) % 40000 - 20000)::INTEGER") + " AS n_d",
		nullEvery(4, "((i * 2654435761) % 4294967296)::UINTEGER") + " AS n_u32",
	}
	return fmt.Sprintf("SELECT %s FROM range(%d) t(i)", strings.Join(cols, ",\n\t"), n)
}

// interopMicros is the i-th timestamp of the arrow-go files in µs, about
// ±1000 years around 1970.
func interopMicros(i int) int64 {
	return (int64(i*7919)%2000-1000)*31_557_600_000_000 + int64(i)*1_000_003
}

// writeArrowInt96 writes id, ts and ts_ns as INT96 timestamps, as Spark
// does by default (arrow-go writes INT96 for nanosecond columns only, so
// both lie within the years int64 nanoseconds cover): ts holds whole
// microseconds, as Spark's values do, and is null in every 6th row; ts_ns
// has nanosecond digits, which DuckDB drops when it reads INT96, so
// ts_ns_int holds them as a plain number.
func writeArrowInt96(path string, n int) error {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "ts_ns", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}},
		{Name: "ts_ns_int", Type: arrow.PrimitiveTypes.Int64}, // ts_ns in unix nanoseconds, as a number
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := range n {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if i%6 == 3 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(interopMicros(i) / 10 * 1000)) // ±100 years
		}
		ns := (int64(i*104729)%200000-100000)*3_600_000_123_457 + int64(i)
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(ns))
		b.Field(3).(*array.Int64Builder).Append(ns)
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(2000),
		parquet.WithRootRepetition(parquet.Repetitions.Required))
	return writeArrow(path, b, props, pqarrow.NewArrowWriterProperties(pqarrow.WithDeprecatedInt96Timestamps(true)))
}

// writeArrowPandas writes a table as pyarrow writes a pandas frame: format
// 2.6 (so NANOS stay NANOS), the Arrow schema stored, timestamps without a
// time zone (isAdjustedToUTC=false) but for ts_ms, DECIMAL(12,2) as fixed
// bytes, every 5th value of the nullable columns null.
func writeArrowPandas(path string, n int) error {
	dec := &arrow.Decimal128Type{Precision: 12, Scale: 2}
	dec30 := &arrow.Decimal128Type{Precision: 30, Scale: 4}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ts_us", Type: &arrow.TimestampType{Unit: arrow.Microsecond}, Nullable: true},
		{Name: "ts_ns", Type: &arrow.TimestampType{Unit: arrow.Nanosecond}},
		{Name: "ts_ms", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32},
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8},
		{Name: "i16", Type: arrow.PrimitiveTypes.Int16, Nullable: true},
		{Name: "u32", Type: arrow.PrimitiveTypes.Uint32},
		{Name: "dec", Type: dec, Nullable: true},
		{Name: "dec30", Type: dec30},
		{Name: "f", Type: arrow.PrimitiveTypes.Float32},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	base := time.Date(2024, 3, 10, 1, 59, 0, 0, time.UTC).UnixNano()
	for i := range n {
		null := i%5 == 2
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if null {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(interopMicros(i)))
		}
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(base + int64(i)*1_000_000_007 - 2_000_000_000_000))
		b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(i%40)*3_600_000_001 - 50_000_000))
		b.Field(4).(*array.Date32Builder).Append(arrow.Date32(int32(i*37%40000 - 20000)))
		b.Field(5).(*array.Int8Builder).Append(int8(i%256 - 128))
		if null {
			b.Field(6).AppendNull()
			b.Field(8).AppendNull()
		} else {
			b.Field(6).(*array.Int16Builder).Append(int16(i*31%65536 - 32768))
			b.Field(8).(*array.Decimal128Builder).Append(decimal128.FromI64(int64(i*7919)%200_000_000_000 - 100_000_000_000))
		}
		b.Field(7).(*array.Uint32Builder).Append(uint32(uint64(i) * 2654435761 % 4294967296))
		big30 := new(big.Int).Mul(big.NewInt(int64(i)-2500), new(big.Int).Exp(big.NewInt(10), big.NewInt(24), nil))
		big30.Add(big30, big.NewInt(int64(i)*7919))
		b.Field(9).(*array.Decimal128Builder).Append(decimal128.FromBigInt(big30))
		b.Field(10).(*array.Float32Builder).Append(float32(i) / 7)
	}
	props := parquet.NewWriterProperties(parquet.WithVersion(parquet.V2_LATEST), parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(2000), parquet.WithDictionaryDefault(true), parquet.WithRootRepetition(parquet.Repetitions.Required))
	return writeArrow(path, b, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
}

// writeArrow writes the builder's rows as one file. The callers' props set
// the schema's root REQUIRED, as pyarrow (Arrow C++) and Spark write it:
// arrow-go's default, a REPEATED root, makes parquet-go see every column as
// repeated, so Sluice refuses such files (a known limitation).
func writeArrow(path string, b *array.RecordBuilder, props *parquet.WriterProperties, aprops pqarrow.ArrowWriterProperties) error {
	rec := b.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w, err := pqarrow.NewFileWriter(rec.Schema(), f, props, aprops)
	if err != nil {
		f.Close()
		return err
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return err
	}
	return w.Close() // closes f
}
