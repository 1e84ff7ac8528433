package parquetio

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// op is a comparison of a filter.
type op int

const (
	opEq op = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opIn
)

var opNames = map[string]op{"=": opEq, "==": opEq, "!=": opNe, "<>": opNe, "<": opLt, "<=": opLe,
	">": opGt, ">=": opGe, "in": opIn, "IN": opIn}

func (o op) String() string {
	return [...]string{"=", "!=", "<", "<=", ">", ">=", "in"}[o]
}

// filter is one Where option. Its values are Go values; they are converted
// to the type of each file's column (or parsed partition value) when bound.
type filter struct {
	column string
	path   []string // column split at dots
	op     op
	values []any // one, or several for in
}

func newFilter(column, opName string, value any) (*filter, error) {
	o, ok := opNames[strings.TrimSpace(opName)]
	if !ok {
		return nil, fmt.Errorf("%w: Where(%q, %q, ...): unknown operator (want =, !=, <, <=, >, >=, in)", ErrConfig, column, opName)
	}
	if column == "" {
		return nil, fmt.Errorf("%w: Where: empty column name", ErrConfig)
	}
	f := &filter{column: column, path: strings.Split(column, "."), op: o}
	if o == opIn {
		v := reflect.ValueOf(value)
		if value == nil || (v.Kind() != reflect.Slice && v.Kind() != reflect.Array) || v.Type().Elem().Kind() == reflect.Uint8 {
			return nil, fmt.Errorf("%w: Where(%q, in, %v): in takes a slice of values", ErrConfig, column, value)
		}
		for i := range v.Len() {
			f.values = append(f.values, v.Index(i).Interface())
		}
	} else {
		f.values = []any{value}
	}
	for _, x := range f.values {
		if x == nil {
			return nil, fmt.Errorf("%w: Where(%q, %s, nil): compare with a value; nulls match no filter", ErrConfig, column, o)
		}
	}
	return f, nil
}

func (f *filter) String() string {
	if f.op == opIn {
		return fmt.Sprintf("%s in %v", f.column, f.values)
	}
	return fmt.Sprintf("%s %s %v", f.column, f.op, f.values[0])
}

// test applies the filter to c, the comparison of a value with each of the
// filter's values in turn (c(i) < 0 when the value is below values[i]).
func (f *filter) test(c func(i int) int) bool {
	switch f.op {
	case opEq:
		return c(0) == 0
	case opNe:
		return c(0) != 0
	case opLt:
		return c(0) < 0
	case opLe:
		return c(0) <= 0
	case opGt:
		return c(0) > 0
	case opGe:
		return c(0) >= 0
	default:
		for i := range f.values {
			if c(i) == 0 {
				return true
			}
		}
		return false
	}
}

// ---- partition values ----

// defaultPartition is Hive's name for a null partition value.
const defaultPartition = "__HIVE_DEFAULT_PARTITION__"

// matchPartition tests a filter against a partition value from a path. The
// value is parsed as the filter value's Go type.
func (f *filter) matchPartition(raw string) (bool, error) {
	if raw == defaultPartition {
		return false, nil
	}
	cmps := make([]int, len(f.values))
	for i, x := range f.values {
		c, err := comparePartition(raw, x)
		if err != nil {
			return false, fmt.Errorf("%w: filter %s: partition value %q: %v", ErrConfig, f, raw, err)
		}
		cmps[i] = c
	}
	return f.test(func(i int) int { return cmps[i] }), nil
}

func comparePartition(raw string, x any) (int, error) {
	v := reflect.ValueOf(x)
	switch v.Kind() {
	case reflect.String:
		return strings.Compare(raw, v.String()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return 0, err
		}
		return cmpOrdered(n, v.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return 0, err
		}
		return cmpOrdered(n, v.Uint()), nil
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return 0, err
		}
		return cmpOrdered(n, v.Float()), nil
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return 0, err
		}
		return cmpOrdered(b2i(b), b2i(v.Bool())), nil
	}
	if t, ok := x.(time.Time); ok {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02"} {
			if p, err := time.Parse(layout, raw); err == nil {
				return p.Compare(t), nil
			}
		}
		return 0, fmt.Errorf("not a date or time")
	}
	return 0, fmt.Errorf("cannot compare with a %T", x)
}

func cmpOrdered[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// ---- column values ----

// boundFilter is a filter bound to a column of one file: its values are
// parquet values of the column's type.
type boundFilter struct {
	*filter
	leaf   parquet.LeafColumn
	typ    parquet.Type
	values []parquet.Value
	bytes  bool // a byte array column: page-index bounds may be truncated
}

func (f *filter) bind(leaf parquet.LeafColumn) (*boundFilter, error) {
	if leaf.MaxRepetitionLevel > 0 {
		return nil, fmt.Errorf("filter %s: column is repeated; only columns with one value per row can be filtered", f)
	}
	typ := leaf.Node.Type()
	b := &boundFilter{filter: f, leaf: leaf, typ: typ,
		bytes: typ.Kind() == parquet.ByteArray || typ.Kind() == parquet.FixedLenByteArray}
	for _, x := range f.values {
		v, err := toValue(typ, x)
		if err != nil {
			return nil, fmt.Errorf("filter %s: column of type %s: %w", f, typeName(typ), err)
		}
		b.values = append(b.values, v)
	}
	return b, nil
}

// match tests one column value.
func (b *boundFilter) match(v parquet.Value) bool {
	if v.IsNull() {
		return false
	}
	return b.test(func(i int) int { return b.typ.Compare(v, b.values[i]) })
}

// mayMatch reports whether a value in [lo, hi] can pass.
func (b *boundFilter) mayMatch(lo, hi parquet.Value) bool {
	cmp := b.typ.Compare
	switch b.op {
	case opEq:
		return cmp(b.values[0], lo) >= 0 && cmp(b.values[0], hi) <= 0
	case opNe:
		return !(cmp(lo, b.values[0]) == 0 && cmp(hi, b.values[0]) == 0)
	case opLt:
		return cmp(lo, b.values[0]) < 0
	case opLe:
		return cmp(lo, b.values[0]) <= 0
	case opGt:
		return cmp(hi, b.values[0]) > 0
	case opGe:
		return cmp(hi, b.values[0]) >= 0
	default:
		for _, v := range b.values {
			if cmp(v, lo) >= 0 && cmp(v, hi) <= 0 {
				return true
			}
		}
		return false
	}
}

// allMatch reports whether every value in [lo, hi] passes.
func (b *boundFilter) allMatch(lo, hi parquet.Value) bool {
	cmp := b.typ.Compare
	switch b.op {
	case opEq, opIn:
		if cmp(lo, hi) != 0 {
			return false
		}
		for _, v := range b.values {
			if cmp(v, lo) == 0 {
				return true
			}
		}
		return false
	case opNe:
		return cmp(b.values[0], lo) < 0 || cmp(b.values[0], hi) > 0
	case opLt:
		return cmp(hi, b.values[0]) < 0
	case opLe:
		return cmp(hi, b.values[0]) <= 0
	case opGt:
		return cmp(lo, b.values[0]) > 0
	default:
		return cmp(lo, b.values[0]) >= 0
	}
}

// verdict is what statistics say about a row group or page.
type verdict int

const (
	some verdict = iota // must filter row by row
	none                // no row can pass
	all                 // every row passes
)

// chunkVerdict judges a column chunk by its statistics.
func (b *boundFilter) chunkVerdict(cc parquet.ColumnChunk, numRows int64) verdict {
	fc, ok := cc.(*parquet.FileColumnChunk)
	if !ok {
		return some
	}
	nulls := fc.NullCount()
	if nulls >= numRows && numRows > 0 && fc.NumValues() == nulls {
		return none // only nulls
	}
	lo, hi, ok := fc.Bounds()
	if !ok || lo.IsNull() || hi.IsNull() {
		return some
	}
	if !b.mayMatch(lo, hi) {
		return none
	}
	if nulls == 0 && b.allMatch(lo, hi) {
		return all
	}
	return some
}

// pageMayMatch judges page i of a column index.
func (b *boundFilter) pageMayMatch(ci parquet.ColumnIndex, i int) bool {
	if ci.NullPage(i) {
		return false
	}
	lo, hi := ci.MinValue(i), ci.MaxValue(i)
	if lo.IsNull() || hi.IsNull() {
		return true
	}
	if b.bytes {
		// parquet-go truncates page-index bounds of long byte arrays; a
		// truncated max that overflowed is left as all 0xFF bytes, which
		// is not an upper bound: judge the page by its lower bound alone.
		if hb := hi.ByteArray(); len(hb) > 0 && bytes.Count(hb, []byte{0xFF}) == len(hb) {
			switch b.op {
			case opGt, opGe, opNe:
				return true
			case opLt:
				return b.typ.Compare(lo, b.values[0]) < 0
			case opLe:
				return b.typ.Compare(lo, b.values[0]) <= 0
			default:
				return b.mayMatchLow(lo)
			}
		}
	}
	return b.mayMatch(lo, hi)
}

// mayMatchLow is mayMatch with no upper bound.
func (b *boundFilter) mayMatchLow(lo parquet.Value) bool {
	for _, v := range b.values {
		if b.typ.Compare(v, lo) >= 0 {
			return true
		}
	}
	return false
}

// toValue converts a Go value to a parquet value of typ.
func toValue(typ parquet.Type, x any) (parquet.Value, error) {
	v := reflect.ValueOf(x)
	lt := typ.LogicalType()
	var ltv format.LogicalTypeValue
	if lt != nil {
		ltv = lt.Value
	}
	if d, ok := ltv.(*format.DecimalType); ok {
		return decimalValue(typ, d, x)
	}
	if t, ok := x.(time.Time); ok {
		switch l := ltv.(type) {
		case *format.TimestampType:
			if typ.Kind() == parquet.Int64 && l.Unit.Value != nil {
				switch l.Unit.Value.Duration() {
				case time.Millisecond:
					return parquet.Int64Value(t.UnixMilli()), nil
				case time.Microsecond:
					return parquet.Int64Value(t.UnixMicro()), nil
				default:
					return parquet.Int64Value(t.UnixNano()), nil
				}
			}
		case *format.DateType:
			if typ.Kind() == parquet.Int32 {
				days := math.Floor(float64(t.Unix()) / 86400)
				return parquet.Int32Value(int32(days)), nil
			}
		}
		return parquet.Value{}, fmt.Errorf("a time.Time compares only with TIMESTAMP or DATE columns")
	}
	it, isInt := ltv.(*format.IntType)
	unsigned := isInt && !it.IsSigned
	switch typ.Kind() {
	case parquet.Boolean:
		if v.Kind() == reflect.Bool {
			return parquet.BooleanValue(v.Bool()), nil
		}
	case parquet.Int32, parquet.Int64:
		var n int64
		switch v.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			n = v.Int()
			if unsigned && n < 0 {
				return parquet.Value{}, fmt.Errorf("%d is negative", n)
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			u := v.Uint()
			if !unsigned && u > math.MaxInt64 {
				return parquet.Value{}, fmt.Errorf("%d is out of range", u)
			}
			n = int64(u)
		default:
			return parquet.Value{}, fmt.Errorf("cannot compare with a %T", x)
		}
		if typ.Kind() == parquet.Int32 {
			if unsigned && uint64(n) > math.MaxUint32 || !unsigned && (n < math.MinInt32 || n > math.MaxInt32) {
				return parquet.Value{}, fmt.Errorf("%d is out of range of a 32-bit column", n)
			}
			return parquet.Int32Value(int32(n)), nil
		}
		return parquet.Int64Value(n), nil
	case parquet.Float, parquet.Double:
		var f float64
		switch v.Kind() {
		case reflect.Float32, reflect.Float64:
			f = v.Float()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f = float64(v.Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f = float64(v.Uint())
		default:
			return parquet.Value{}, fmt.Errorf("cannot compare with a %T", x)
		}
		if typ.Kind() == parquet.Float {
			return parquet.FloatValue(float32(f)), nil
		}
		return parquet.DoubleValue(f), nil
	case parquet.ByteArray, parquet.FixedLenByteArray:
		var b []byte
		switch {
		case v.Kind() == reflect.String:
			b = []byte(v.String())
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
			b = v.Bytes()
		default:
			return parquet.Value{}, fmt.Errorf("cannot compare with a %T", x)
		}
		if typ.Kind() == parquet.FixedLenByteArray {
			if len(b) != typ.Length() {
				return parquet.Value{}, fmt.Errorf("%d bytes do not fit a column of %d", len(b), typ.Length())
			}
			return parquet.FixedLenByteArrayValue(b), nil
		}
		return parquet.ByteArrayValue(b), nil
	}
	return parquet.Value{}, fmt.Errorf("cannot compare with a %T", x)
}

// typeName renders a column type for messages: the physical type and,
// when there is one, the logical type.
func typeName(t parquet.Type) string {
	s := t.Kind().String()
	if lt := t.LogicalType(); lt != nil {
		if l := lt.String(); l != "" && l != s {
			s += " " + l
		}
	}
	return s
}

// decimalValue converts an integer or a Decimal to the unscaled value of a
// DECIMAL column stored as INT32 or INT64, exactly: a value with more
// fraction digits than the column's scale, or out of its range, is an
// error. Floats are refused: 0.1 is not a decimal. DECIMAL columns stored
// as bytes are not filtered (parquet-go compares them as bytes).
func decimalValue(typ parquet.Type, d *format.DecimalType, x any) (parquet.Value, error) {
	if typ.Kind() != parquet.Int32 && typ.Kind() != parquet.Int64 {
		return parquet.Value{}, fmt.Errorf("a DECIMAL column stored as %s cannot be filtered", typ.Kind())
	}
	var r *big.Rat
	v := reflect.ValueOf(x)
	switch {
	case v.Type() == decimalType:
		r = x.(Decimal).Rat()
	case v.CanInt():
		r = new(big.Rat).SetInt64(v.Int())
	case v.CanUint():
		r = new(big.Rat).SetInt(new(big.Int).SetUint64(v.Uint()))
	default:
		return parquet.Value{}, fmt.Errorf("a DECIMAL column compares with an integer or a parquetio.Decimal, not a %T", x)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale)), nil)))
	if !r.IsInt() {
		return parquet.Value{}, fmt.Errorf("%v has more fraction digits than the column's scale %d", x, d.Scale)
	}
	n := r.Num()
	if typ.Kind() == parquet.Int32 {
		if !n.IsInt64() || n.Int64() < math.MinInt32 || n.Int64() > math.MaxInt32 {
			return parquet.Value{}, fmt.Errorf("%v is out of the column's range", x)
		}
		return parquet.Int32Value(int32(n.Int64())), nil
	}
	if !n.IsInt64() {
		return parquet.Value{}, fmt.Errorf("%v is out of the column's range", x)
	}
	return parquet.Int64Value(n.Int64()), nil
}
