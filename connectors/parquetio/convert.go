package parquetio

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"
)

// Conversions between the types of a file's columns and a record's fields,
// for the files other engines write (DuckDB, Spark, pandas and pyarrow):
// timestamps of another unit or of either isAdjustedToUTC flag, INT96
// timestamps, DATE, narrower integers and DECIMAL. fit decides each
// column's conversion once per file from the two schemas (convOf); a
// conversion that could lose information is refused there, with the file
// and column named, never found value by value. The one exception is range:
// scaling a timestamp to a finer unit of int64 overflows past about the
// year 2262 in nanoseconds, and a value that does is an error naming the
// file, row group and column. Converted columns are read on the direct path
// (direct.go): each page's values, or each dictionary's once, are converted
// to the field's Go type and stored as the direct path stores its own.

// Decimal is an exact decimal number, the value of a Parquet DECIMAL
// column in a record field of type Decimal or *Decimal (nil for null): its
// value is the unscaled integer × 10^-Scale. An unscaled value that fits
// in an int64 (every value of a DECIMAL of up to 18 digits) is in Unscaled,
// with Big nil; a larger one is in Big, with Unscaled 0.
//
// Compare decimals with Cmp (== compares Big by pointer). A Big value may
// be shared by records that read one dictionary entry: treat it as read
// only. Decimal fields are read only (a sink cannot write them) and only as
// top-level fields of a record whose fields the direct read path can fill
// (see the package documentation).
type Decimal struct {
	Unscaled int64    `parquet:"-"`
	Big      *big.Int `parquet:"-"`
	Scale    int32    `parquet:"-"`
}

var decimalType = reflect.TypeFor[Decimal]()

// BigInt returns the unscaled value as a new big.Int.
func (d Decimal) BigInt() *big.Int {
	if d.Big != nil {
		return new(big.Int).Set(d.Big)
	}
	return big.NewInt(d.Unscaled)
}

// Rat returns the value as a new big.Rat.
func (d Decimal) Rat() *big.Rat {
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale)), nil)
	return new(big.Rat).SetFrac(d.BigInt(), den)
}

// Float64 returns the float64 nearest to the value.
func (d Decimal) Float64() float64 {
	f, _ := d.Rat().Float64()
	return f
}

// Cmp compares two decimals by value, whatever their scales: -1, 0 or +1.
func (d Decimal) Cmp(e Decimal) int { return d.Rat().Cmp(e.Rat()) }

// String renders the value with exactly Scale digits after the point, as
// DuckDB prints a DECIMAL: "-12.50" for -1250 at scale 2.
func (d Decimal) String() string {
	digits := new(big.Int).Abs(d.BigInt()).String()
	sign := ""
	if d.Big != nil && d.Big.Sign() < 0 || d.Big == nil && d.Unscaled < 0 {
		sign = "-"
	}
	s := int(d.Scale)
	if s <= 0 {
		return sign + digits + strings.Repeat("0", -s)
	}
	if len(digits) <= s {
		digits = strings.Repeat("0", s-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-s] + "." + digits[len(digits)-s:]
}

// maxFloatDigits is the most decimal digits that a float64 always holds
// exactly (and gives back unchanged): a DECIMAL of more is refused for a
// float64 field.
const maxFloatDigits = 15

// fieldConv is how one file column fills one top-level record field.
type fieldConv struct {
	// exact: the file's type is the record's (the check parquet-go's own
	// reader needs), so either read path can read the column.
	exact bool
	kind  directKind // the direct path's way to fill the field; 0: none
	unit  int64      // directTime: nanoseconds in the column's unit
	conv  *converter // directConv: the values' conversion
}

// converter converts a page's or a dictionary's values to a field's Go
// type. buf is the result of an earlier call, to reuse when it is large
// enough; the result is only read before the next call.
type converter struct {
	desc    string // what it does, for messages
	convert func(src *encoding.Values, buf colValues) (colValues, error)
}

// colValues are values converted to a field's Go type V (vals[V]).
type colValues interface {
	count() int
	// put stores values lo..hi, or those that idx[lo:hi] index, into
	// the field at dst of consecutive records stride bytes apart.
	put(dst unsafe.Pointer, stride uintptr, idx []int32, lo, hi int)
	// putPointers stores pointers to them, nil where defs says null, into
	// n records (see directColumn.putPointers).
	putPointers(dst unsafe.Pointer, stride uintptr, n int, defs []byte, idx []int32, lo, hi int)
}

type vals[V any] []V

func (v vals[V]) count() int { return len(v) }

func (v vals[V]) put(dst unsafe.Pointer, stride uintptr, idx []int32, lo, hi int) {
	if idx != nil {
		putIndexed(dst, stride, []V(v), idx[lo:hi])
		return
	}
	put(dst, stride, []V(v)[lo:hi])
}

func (v vals[V]) putPointers(dst unsafe.Pointer, stride uintptr, n int, defs []byte, idx []int32, lo, hi int) {
	putPtrs(dst, stride, n, defs, gather([]V(v), idx, lo, hi))
}

// reuse returns buf as n values of V when it has room, or a new slice.
func reuse[V any](buf colValues, n int) []V {
	if b, ok := buf.(vals[V]); ok && cap(b) >= n {
		return b[:n]
	}
	return make([]V, n)
}

// ---- the decision, once per file ----

// unitOf returns the nanoseconds in a TIMESTAMP type's unit, or 0 when t
// is not an INT64 TIMESTAMP.
func unitOf(t parquet.Type) int64 {
	if t == nil || t.Kind() != parquet.Int64 {
		return 0
	}
	if lt := t.LogicalType(); lt != nil {
		if ts, ok := lt.Value.(*format.TimestampType); ok && ts.Unit.Value != nil {
			return int64(ts.Unit.Value.Duration())
		}
	}
	return 0
}

func unitName(ns int64) string {
	switch ns {
	case int64(time.Millisecond):
		return "MILLIS"
	case int64(time.Microsecond):
		return "MICROS"
	case 1:
		return "NANOS"
	}
	return fmt.Sprintf("%dns", ns)
}

// intOf returns the width and signedness of an integer column (INT32 or
// INT64 with an INT logical type or none), ok false for other types.
func intOf(t parquet.Type) (bits int, signed, ok bool) {
	switch t.Kind() {
	case parquet.Int32:
		bits = 32
	case parquet.Int64:
		bits = 64
	default:
		return 0, false, false
	}
	lt := t.LogicalType()
	if lt == nil || lt.Value == nil {
		return bits, true, true
	}
	if it, isInt := lt.Value.(*format.IntType); isInt {
		return int(it.BitWidth), it.IsSigned, true
	}
	return 0, false, false
}

func decimalOf(t parquet.Type) *format.DecimalType {
	if lt := t.LogicalType(); lt != nil {
		if d, ok := lt.Value.(*format.DecimalType); ok {
			return d
		}
	}
	return nil
}

func isDate(t parquet.Type) bool {
	if lt := t.LogicalType(); lt != nil && t.Kind() == parquet.Int32 {
		_, ok := lt.Value.(*format.DateType)
		return ok
	}
	return false
}

// exactType is the check of a file column against the record's column
// that parquet-go's reader needs: the same physical type (and length) and,
// where both have one, the same logical type.
func exactType(wt, gt parquet.Type) bool {
	if wt.Kind() != gt.Kind() || (wt.Kind() == parquet.FixedLenByteArray && wt.Length() != gt.Length()) {
		return false
	}
	wl, gl := wt.LogicalType(), gt.LogicalType()
	return wl == nil || gl == nil || wl.String() == gl.String()
}

var timeType = reflect.TypeFor[time.Time]()

// convOf decides how the file column of type gt fills a top-level field of
// Go type ft (a pointer's element type), whose column in the record's
// schema has type wt (nil for a Decimal field). problem says why it cannot.
func convOf(ft reflect.Type, wt, gt parquet.Type, truncate bool) (fc fieldConv, problem string) {
	if ft == decimalType {
		d := decimalOf(gt)
		if d == nil {
			return fc, "a Decimal field reads only DECIMAL columns"
		}
		c, err := decimalConverter(gt, d, false)
		if err != "" {
			return fc, err
		}
		return fieldConv{kind: directConv, conv: c}, ""
	}
	if exactType(wt, gt) {
		fc.exact = true
		if fc.kind, fc.unit = directKindOf(ft, gt); fc.kind == 0 {
			if c := intConverter(ft, gt); c != nil {
				fc.kind, fc.conv = directConv, c
			}
		}
		return fc, ""
	}
	mismatch := func(why string) (fieldConv, string) {
		return fieldConv{}, fmt.Sprintf("%s in the file cannot be read into a field of type %v (%s): %s", typeName(gt), ft, typeName(wt), why)
	}
	fu, wu := unitOf(gt), unitOf(wt)
	switch {
	case fu != 0 && ft == timeType:
		// Any unit and either UTC flag: exact (directTime).
		return fieldConv{kind: directTime, unit: fu}, ""
	case fu != 0 && wu != 0 && isInt64(ft):
		if fu == wu { // the UTC flag alone differs: the same numbers
			return fieldConv{kind: directInt64}, ""
		}
		if fu < wu && !truncate {
			return mismatch(fmt.Sprintf("%s to %s drops digits; use parquetio.TruncateTimestamps() to truncate, or a time.Time or finer field",
				unitName(fu), unitName(wu)))
		}
		return fieldConv{kind: directConv, conv: rescaleConverter(fu, wu)}, ""
	case gt.Kind() == parquet.Int96 && ft == timeType:
		return fieldConv{kind: directConv, conv: int96TimeConverter()}, ""
	case gt.Kind() == parquet.Int96 && wu != 0 && isInt64(ft):
		if wu != 1 && !truncate {
			return mismatch(fmt.Sprintf("INT96 holds nanoseconds and %s drops digits; use parquetio.TruncateTimestamps() to truncate, or a time.Time field", unitName(wu)))
		}
		return fieldConv{kind: directConv, conv: int96UnitConverter(wu)}, ""
	case isDate(gt) && ft == timeType:
		return fieldConv{kind: directConv, conv: dateConverter()}, ""
	case isDate(gt) && ft.Kind() == reflect.Int32:
		return fieldConv{kind: directInt32}, "" // days since 1970-01-01
	case decimalOf(gt) != nil && ft.Kind() == reflect.Float64:
		d := decimalOf(gt)
		if d.Precision > maxFloatDigits {
			return mismatch(fmt.Sprintf("%d digits do not fit a float64 exactly (at most %d); read it into a parquetio.Decimal field",
				d.Precision, maxFloatDigits))
		}
		c, err := decimalConverter(gt, d, true)
		if err != "" {
			return mismatch(err)
		}
		return fieldConv{kind: directConv, conv: c}, ""
	case gt.Kind() == parquet.Float && ft.Kind() == reflect.Float64:
		return fieldConv{kind: directConv, conv: floatConverter()}, ""
	}
	if bits, signed, ok := intOf(gt); ok && isInteger(ft) {
		fbits, fsigned := ft.Bits(), isSigned(ft)
		switch {
		case signed == fsigned && bits <= fbits, !signed && fsigned && bits < fbits:
			if c := intConverter(ft, gt); c != nil {
				return fieldConv{kind: directConv, conv: c}, ""
			}
		case signed && !fsigned:
			return mismatch("negative values do not fit an unsigned field")
		default:
			return mismatch(fmt.Sprintf("%d-bit values do not all fit", bits))
		}
	}
	return mismatch("no conversion")
}

func isInt64(t reflect.Type) bool {
	return t.Kind() == reflect.Int64 || t.Kind() == reflect.Int && t.Size() == 8
}

func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func isSigned(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	}
	return false
}

// ---- the converters ----

// intConverter converts an integer column's values (INT32 or INT64, read
// as unsigned when its logical type says so) to the integer type ft; the
// caller has checked that every value fits. nil when ft or gt is not an
// integer type.
func intConverter(ft reflect.Type, gt parquet.Type) *converter {
	bits, signed, ok := intOf(gt)
	if !ok || !isInteger(ft) {
		return nil
	}
	desc := fmt.Sprintf("INT(%d,%t) to %v", bits, signed, ft)
	switch ft.Kind() {
	case reflect.Int8:
		return intsTo[int8](desc, gt.Kind(), signed)
	case reflect.Int16:
		return intsTo[int16](desc, gt.Kind(), signed)
	case reflect.Int32:
		return intsTo[int32](desc, gt.Kind(), signed)
	case reflect.Int64:
		return intsTo[int64](desc, gt.Kind(), signed)
	case reflect.Int:
		return intsTo[int](desc, gt.Kind(), signed)
	case reflect.Uint8:
		return intsTo[uint8](desc, gt.Kind(), signed)
	case reflect.Uint16:
		return intsTo[uint16](desc, gt.Kind(), signed)
	case reflect.Uint32:
		return intsTo[uint32](desc, gt.Kind(), signed)
	case reflect.Uint64:
		return intsTo[uint64](desc, gt.Kind(), signed)
	case reflect.Uint:
		return intsTo[uint](desc, gt.Kind(), signed)
	}
	return nil
}

type integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

func intsTo[V integer](desc string, kind parquet.Kind, signed bool) *converter {
	return &converter{desc: desc, convert: func(src *encoding.Values, buf colValues) (colValues, error) {
		if kind == parquet.Int32 {
			in := src.Int32()
			out := reuse[V](buf, len(in))
			if signed {
				for i, x := range in {
					out[i] = V(x)
				}
			} else {
				for i, x := range in {
					out[i] = V(uint32(x))
				}
			}
			return vals[V](out), nil
		}
		in := src.Int64()
		out := reuse[V](buf, len(in))
		if signed {
			for i, x := range in {
				out[i] = V(x)
			}
		} else {
			for i, x := range in {
				out[i] = V(uint64(x))
			}
		}
		return vals[V](out), nil
	}}
}

// unixTime is time.Unix(0, v*unit).UTC() (parquet-go's conversion of a
// TIMESTAMP) without its overflow past the years 1677 and 2262: exact for
// every int64 of any unit.
func unixTime(v, unit int64) time.Time {
	if unit == 1 {
		return time.Unix(0, v).UTC()
	}
	perSec := int64(time.Second) / unit
	sec, frac := v/perSec, v%perSec
	if frac < 0 {
		sec, frac = sec-1, frac+perSec
	}
	return time.Unix(sec, frac*unit).UTC()
}

// timeRange returns the values of a TIMESTAMP of unit that v*unit does not
// overflow for: there unixTime is time.Unix(0, v*unit).
func timeRange(unit int64) (lo, hi int64) {
	return math.MinInt64 / unit, math.MaxInt64 / unit
}

// errRange is a value that does not fit its field's type.
type errRange struct{ what string }

func (e *errRange) Error() string { return e.what }

func isRangeError(err error) bool {
	var re *errRange
	return errors.As(err, &re)
}

// rescaleConverter converts timestamps of unit from (nanoseconds) to unit
// to: exactly when to is finer (an error past int64's range), and
// truncated toward the past when coarser (the caller has checked that the
// user asked for that).
func rescaleConverter(from, to int64) *converter {
	if from > to {
		m := from / to
		lo, hi := math.MinInt64/m, math.MaxInt64/m
		return &converter{desc: fmt.Sprintf("%s to %s", unitName(from), unitName(to)),
			convert: func(src *encoding.Values, buf colValues) (colValues, error) {
				in := src.Int64()
				out := reuse[int64](buf, len(in))
				for i, v := range in {
					if v < lo || v > hi {
						return nil, &errRange{fmt.Sprintf("%s %s is out of range in %s", unitName(from), unixTime(v, from).Format(time.RFC3339Nano), unitName(to))}
					}
					out[i] = v * m
				}
				return vals[int64](out), nil
			}}
	}
	d := to / from
	return &converter{desc: fmt.Sprintf("%s to %s, truncated", unitName(from), unitName(to)),
		convert: func(src *encoding.Values, buf colValues) (colValues, error) {
			in := src.Int64()
			out := reuse[int64](buf, len(in))
			for i, v := range in {
				out[i] = floorDiv(v, d)
			}
			return vals[int64](out), nil
		}}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// julianUnixEpoch is the Julian day of 1970-01-01, INT96's day origin.
const julianUnixEpoch = 2440588

// int96Parts splits an INT96 timestamp (Impala's and Spark's: nanoseconds
// of the day in the first 8 bytes, little endian, then the Julian day)
// into unix seconds and nanoseconds of the second. The nanoseconds are
// read as signed, as DuckDB and Arrow read them: arrow-go writes a time
// before 1970 as the day after it and negative nanoseconds.
func int96Parts(v [3]uint32) (sec, nsec int64) {
	nanos := int64(uint64(v[1])<<32 | uint64(v[0]))
	days := int64(int32(v[2])) - julianUnixEpoch
	sec, nsec = nanos/1e9, nanos%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return days*86400 + sec, nsec
}

func int96TimeConverter() *converter {
	return &converter{desc: "INT96 to time.Time", convert: func(src *encoding.Values, buf colValues) (colValues, error) {
		in := src.Int96()
		out := reuse[time.Time](buf, len(in))
		for i, v := range in {
			sec, nsec := int96Parts(v)
			out[i] = time.Unix(sec, nsec).UTC()
		}
		return vals[time.Time](out), nil
	}}
}

// int96UnitConverter converts INT96 timestamps to int64s of unit: exactly
// in nanoseconds (an error past int64's range), truncated toward the past
// in a coarser unit.
func int96UnitConverter(unit int64) *converter {
	perSec := int64(time.Second) / unit
	lo, hi := math.MinInt64/perSec+1, math.MaxInt64/perSec-1
	return &converter{desc: "INT96 to " + unitName(unit), convert: func(src *encoding.Values, buf colValues) (colValues, error) {
		in := src.Int96()
		out := reuse[int64](buf, len(in))
		for i, v := range in {
			sec, nsec := int96Parts(v)
			if sec < lo || sec > hi {
				return nil, &errRange{fmt.Sprintf("INT96 %s is out of range in %s", time.Unix(sec, nsec).UTC().Format(time.RFC3339Nano), unitName(unit))}
			}
			out[i] = sec*perSec + nsec/unit
		}
		return vals[int64](out), nil
	}}
}

func dateConverter() *converter {
	return &converter{desc: "DATE to time.Time", convert: func(src *encoding.Values, buf colValues) (colValues, error) {
		in := src.Int32()
		out := reuse[time.Time](buf, len(in))
		for i, d := range in {
			out[i] = time.Unix(int64(d)*86400, 0).UTC()
		}
		return vals[time.Time](out), nil
	}}
}

func floatConverter() *converter {
	return &converter{desc: "FLOAT to float64", convert: func(src *encoding.Values, buf colValues) (colValues, error) {
		in := src.Float()
		out := reuse[float64](buf, len(in))
		for i, f := range in {
			out[i] = float64(f)
		}
		return vals[float64](out), nil
	}}
}

// pow10 holds the powers of ten that a float64 holds exactly.
var pow10 = func() (p [23]float64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// decimalConverter converts a DECIMAL column's values (INT32, INT64,
// FIXED_LEN_BYTE_ARRAY or BYTE_ARRAY, the last two big-endian two's
// complement) to Decimal, or with toFloat to float64: unscaled / 10^scale,
// the float64 nearest the decimal (both operands are exact in a float64
// for at most 15 digits, and IEEE division rounds correctly).
func decimalConverter(gt parquet.Type, d *format.DecimalType, toFloat bool) (*converter, string) {
	scale := d.Scale
	if scale < 0 || toFloat && int(scale) >= len(pow10) {
		return nil, fmt.Sprintf("DECIMAL scale %d is not supported", scale)
	}
	desc := fmt.Sprintf("DECIMAL(%d,%d) to Decimal", d.Precision, d.Scale)
	if toFloat {
		desc = fmt.Sprintf("DECIMAL(%d,%d) to float64", d.Precision, d.Scale)
	}
	div := pow10[min(int(scale), len(pow10)-1)]
	kind := gt.Kind()
	switch kind {
	case parquet.Int32, parquet.Int64, parquet.FixedLenByteArray, parquet.ByteArray:
	default:
		return nil, fmt.Sprintf("a DECIMAL of physical type %s is not supported", kind)
	}
	// each calls f with the index and unscaled value (big non-nil when it
	// does not fit an int64) of every value.
	each := func(src *encoding.Values, f func(i int, u int64, big *big.Int)) int {
		switch kind {
		case parquet.Int32:
			in := src.Int32()
			for i, v := range in {
				f(i, int64(v), nil)
			}
			return len(in)
		case parquet.Int64:
			in := src.Int64()
			for i, v := range in {
				f(i, v, nil)
			}
			return len(in)
		case parquet.FixedLenByteArray:
			data, size := src.FixedLenByteArray()
			if size == 0 {
				return 0
			}
			n := len(data) / size
			for i := range n {
				u, b := twosComplement(data[i*size : (i+1)*size])
				f(i, u, b)
			}
			return n
		default:
			data, offs := src.ByteArray()
			n := max(len(offs)-1, 0)
			for i := range n {
				u, b := twosComplement(data[offs[i]:offs[i+1]])
				f(i, u, b)
			}
			return n
		}
	}
	count := func(src *encoding.Values) int {
		switch kind {
		case parquet.Int32:
			return len(src.Int32())
		case parquet.Int64:
			return len(src.Int64())
		case parquet.FixedLenByteArray:
			data, size := src.FixedLenByteArray()
			if size == 0 {
				return 0
			}
			return len(data) / size
		default:
			_, offs := src.ByteArray()
			return max(len(offs)-1, 0)
		}
	}
	if toFloat {
		return &converter{desc: desc, convert: func(src *encoding.Values, buf colValues) (colValues, error) {
			out := reuse[float64](buf, count(src))
			var bad error
			each(src, func(i int, u int64, b *big.Int) {
				if b != nil || u >= 1<<53 || u <= -1<<53 {
					if bad == nil {
						bad = &errRange{fmt.Sprintf("unscaled value %s has more digits than DECIMAL(%d,%d)", Decimal{Unscaled: u, Big: b}.String(), d.Precision, d.Scale)}
					}
					return
				}
				out[i] = float64(u) / div
			})
			if bad != nil {
				return nil, bad
			}
			return vals[float64](out), nil
		}}, ""
	}
	return &converter{desc: desc, convert: func(src *encoding.Values, buf colValues) (colValues, error) {
		out := reuse[Decimal](buf, count(src))
		each(src, func(i int, u int64, b *big.Int) {
			out[i] = Decimal{Unscaled: u, Big: b, Scale: scale}
		})
		return vals[Decimal](out), nil
	}}, ""
}

// twosComplement decodes a big-endian two's complement integer: in u when
// it fits an int64, else in b.
func twosComplement(p []byte) (u int64, b *big.Int) {
	if len(p) == 0 {
		return 0, nil
	}
	neg := p[0]&0x80 != 0
	// Leading bytes that only extend the sign do not count.
	i := 0
	for i < len(p)-1 && (p[i] == 0 && p[i+1]&0x80 == 0 || p[i] == 0xFF && p[i+1]&0x80 != 0) {
		i++
	}
	p = p[i:]
	if len(p) <= 8 {
		var x uint64
		if neg {
			x = math.MaxUint64
		}
		for _, c := range p {
			x = x<<8 | uint64(c)
		}
		return int64(x), nil
	}
	b = new(big.Int).SetBytes(p)
	if neg {
		b.Sub(b, new(big.Int).Lsh(big.NewInt(1), uint(8*len(p))))
	}
	return 0, b
}
