package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// sqlCmd runs one DuckDB query (an in-memory database, session time zone
// UTC) and prints its rows: with -json one JSON object a line, keys in the
// query's column order; otherwise a tab-separated header and rows.
//
// Values are rendered so that Go can compare them without DuckDB:
//   - TIMESTAMP, TIMESTAMP_MS/NS/S, TIMESTAMPTZ and DATE as RFC 3339 strings
//     in UTC with nanoseconds as needed (time.RFC3339Nano), a DATE at
//     midnight UTC;
//   - DECIMAL(p,s) as a string with exactly s digits after the point
//     ("-12.50" for DECIMAL(10,2)), never through a float;
//   - integers of any width, HUGEINT included, as JSON numbers of their
//     exact digits (decode with json.Decoder.UseNumber to keep them exact);
//   - floats as JSON numbers in Go's shortest exact form, NaN and ±Inf as
//     the strings "NaN", "+Inf", "-Inf";
//   - BLOB as base64 strings, lists as arrays, structs and maps as objects
//     (a MAP's keys rendered as text, in the map's order), NULL as null;
//     other types as the driver's text for them (UUID as its 16 bytes in
//     base64, as the driver scans it).
func sqlCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sql", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON lines objects instead of tab-separated text")
	threads := fs.Int("threads", 0, "DuckDB threads (0: DuckDB's default, all cores)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("give one query (quote it)")
	}
	ctx := context.Background()
	db, err := open(ctx, *threads)
	if err != nil {
		return err
	}
	defer db.Close()
	return query(ctx, db, fs.Arg(0), *asJSON, stdout)
}

// query runs q on db and writes its rows to w as sqlCmd describes.
func query(ctx context.Context, db *sql.DB, q string, asJSON bool, w io.Writer) error {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var line bytes.Buffer
	if !asJSON {
		line.WriteString(strings.Join(cols, "\t"))
		line.WriteByte('\n')
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if asJSON {
			line.WriteByte('{')
			for i, c := range cols {
				if i > 0 {
					line.WriteByte(',')
				}
				k, _ := json.Marshal(c)
				line.Write(k)
				line.WriteByte(':')
				if err := writeJSON(&line, vals[i]); err != nil {
					return fmt.Errorf("column %s: %w", c, err)
				}
			}
			line.WriteString("}\n")
		} else {
			for i, v := range vals {
				if i > 0 {
					line.WriteByte('\t')
				}
				line.WriteString(text(v))
			}
			line.WriteByte('\n')
		}
		if _, err := w.Write(line.Bytes()); err != nil {
			return err
		}
		line.Reset()
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if !asJSON && line.Len() > 0 { // the header of an empty result
		_, err = w.Write(line.Bytes())
	}
	return err
}

// scalar renders the values that are not containers: the text of a
// number (json true) or of a string (json false).
func scalar(v any) (s string, number bool) {
	switch v := v.(type) {
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano), false
	case duckdb.Decimal:
		return decimalText(v.Value, int(v.Scale)), false
	case *big.Int:
		return v.String(), true
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return fmt.Sprint(v), true
	case float32:
		return floatText(float64(v), 32)
	case float64:
		return floatText(v, 64)
	case bool:
		return strconv.FormatBool(v), false
	case string:
		return v, false
	case []byte:
		return base64.StdEncoding.EncodeToString(v), false
	}
	return fmt.Sprint(v), false
}

func floatText(f float64, bits int) (string, bool) {
	switch {
	case math.IsNaN(f):
		return "NaN", false
	case math.IsInf(f, 1):
		return "+Inf", false
	case math.IsInf(f, -1):
		return "-Inf", false
	}
	return strconv.FormatFloat(f, 'g', -1, bits), true
}

// decimalText writes unscaled×10^-scale with exactly scale fraction digits.
func decimalText(unscaled *big.Int, scale int) string {
	digits := new(big.Int).Abs(unscaled).String()
	sign := ""
	if unscaled.Sign() < 0 {
		sign = "-"
	}
	if scale <= 0 {
		return sign + digits + strings.Repeat("0", -scale)
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}

// writeJSON appends v's JSON rendering to b.
func writeJSON(b *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
		return nil
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case map[string]any: // a STRUCT
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return writeObject(b, keys, func(k string) any { return v[k] })
	case duckdb.OrderedMap: // a MAP: its keys in its order
		return writeMap(b, v.Keys(), v.Values())
	case duckdb.Map:
		keys := make([]any, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return text(keys[i]) < text(keys[j]) })
		vals := make([]any, len(keys))
		for i, k := range keys {
			vals[i] = v[k]
		}
		return writeMap(b, keys, vals)
	}
	s, number := scalar(v)
	if number {
		b.WriteString(s)
		return nil
	}
	enc, err := json.Marshal(s)
	if err != nil {
		return err
	}
	b.Write(enc)
	return nil
}

// writeMap writes a MAP as an object whose keys are its keys' text.
func writeMap(b *bytes.Buffer, keys, vals []any) error {
	texts := make([]string, len(keys))
	byText := make(map[string]any, len(keys))
	for i, k := range keys {
		texts[i] = text(k)
		byText[texts[i]] = vals[i]
	}
	return writeObject(b, texts, func(k string) any { return byText[k] })
}

func writeObject(b *bytes.Buffer, keys []string, get func(string) any) error {
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		enc, _ := json.Marshal(k)
		b.Write(enc)
		b.WriteByte(':')
		if err := writeJSON(b, get(k)); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

// text renders v for the tab-separated form: NULL for null, containers
// as their JSON.
func text(v any) string {
	switch v.(type) {
	case nil:
		return "NULL"
	case []any, map[string]any, duckdb.Map, duckdb.OrderedMap:
		var b bytes.Buffer
		if err := writeJSON(&b, v); err != nil {
			return fmt.Sprint(v)
		}
		return b.String()
	}
	s, _ := scalar(v)
	return s
}
